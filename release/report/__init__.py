"""What a run tells people: the terminal, GitHub Actions, the cards' context, and what
changed since the last release.

- ``console``: rich output of the runner's events, and their JSON-lines twin.
- ``error_table``: exception types to one line and an exit code.
- ``github``: the job summary, annotations and step outputs of a run in Actions.
- ``card_context``: a release's card settings, manifest and scores as the typed context
  cards/ renders; ``card_settings``: what the card stage reads of the spec, one object
  (its key's source); ``card_facts``: what the card stage records.
- ``history``: each version of a release's chain of manifests, as typed entries, and
  the card's "Release history" entry.
- ``compare``: the gate's comparison as a table (``compare``, the notes, the wizard).
- ``notes``: Markdown release notes against the last release.
"""
