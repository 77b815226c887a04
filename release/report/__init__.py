"""What a run tells people: the terminal, GitHub Actions, and the cards' context.

- ``console``: rich output of the runner's events, and their JSON-lines twin.
- ``error_table``: exception types to one line and an exit code.
- ``github``: the job summary, annotations and step outputs of a run in Actions.
- ``card_context``: a release's spec and manifest as the context cards/ renders.
- ``history``: each version of a release's chain of manifests, as typed entries.
"""
