"""The merged model's reference: what later stages compare the release's files with.

The merged model runs once per release, in the evaluate stage; what the GGUF stage (and
later checks) compare against is kept from that run, so no later stage loads the model
again (DESIGN.md, "One load of each model per release").

- ``probe``: the probe prompts and the smoke prompt the GGUF checks run, and their digest.
- ``store``: the file: named sets of token sequences with the merged model's
  next-token distribution at every position, compactly (its top-k logits and the
  log-sum-exp over the whole vocabulary), and the smoke prompt's greedy answer; one
  safetensors file, read and written with numpy alone.
- ``facts``: its record in the manifest (``ReferenceFacts``), and the merged model's
  identity it was computed from.
- ``record``: the reference of a loaded transformers model (torch), written to the file.
- ``batched``: several short sequences' logits from one padded forward pass (the probe
  prompts: a short pass through a 4B model on a CPU costs as much as a long one).
- ``greedy``: greedy generation a few tokens per call, so a long answer shows progress
  (the reference's smoke answer; the evaluate stage's smoke test).
- ``compute``: the same where no stage holds the model: the merged model loaded in its
  checkpoint's dtype on the best device (GPUs with ``device_map="auto"``), for the
  GGUF stage of a release whose evaluate stage is off.

Nothing here imports torch until ``record`` or ``compute`` runs.
"""
