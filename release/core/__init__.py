"""What every room of the house shares; imports nothing from the rest of ``release``.

- ``errors``: the exceptions raised on purpose (one line for a person, an exit code);
  ``WorkError`` and ``named_stage`` for domain code that does not know its stage.
- ``events``: what the runner tells a front end (plain data), and ``Reporter``, the
  narrow interface domain code reports and checks cancellation through.
- ``manifest``: ``workspace/manifest.json``, the release's memory: keys, files, facts.
- ``files``: atomic writes and folder swaps, hashing, listing a stage's outputs.
- ``workspace``: the workspace's identity marker; a folder the tool may not write in.
- ``hashing``: input files hashed on background threads while the stages run.
- ``paths``: the cache folder; paths kept relative to the spec's folder.
- ``relay``: re-yield a worker generator's items as stage events.
- ``redact``: the one rule that keeps tokens out of every text we write, and says what
  in a text is a secret (a spec value is refused for it).
- ``quiet``: the libraries' chatter (progress bars, warnings) held off the terminal.
- ``child_python``: how this Python starts itself as a child, safe from the user's
  folders (``-P``: a ``release/`` folder in the working directory is not imported).
- ``waiting``: one blocking call on a thread, with a progress event every 2 s.
- ``units``: the one byte formatter of the pipeline (cards/ keeps its own for card text).
"""
