"""The sanity eval and the release gate: is the merged model the trained one, and no
worse than the last release?

- ``settings``: what the stage's domain reads of the spec, one object (its key's source).
- ``sanity``: the arithmetic of the checks (equivalence, perplexity, chat smoke).
- ``checks``: the model checks in order, one model resident at a time, each failure one
  line.
- ``loading``: which dtype and placement a model loads with, and loading it.
- ``harness``: eval.tasks: lm-evaluation-harness on the merged model (and with
  compare_base on the base), in a child process; with eval.tasks.gguf on GGUF files.
- ``llama_cpp_lm``: lm-eval's model for a GGUF file, run by llama.cpp in process with
  full logits (the harness's child on a GGUF file).
- ``harness_log``: how far the harness has got, read from its log.
- ``launch``: how the harness runs on the GPUs there are (data parallel, one model
  spread over them, vLLM's tensor parallel): the one rule.
- ``scores``: which scores are this release's (stored and produced, merged; the base's
  beside them): the one rule the gate, the card and every reader use.
- ``gate``: this release's scores against the last release's (no model, no torch).
- ``history``: the chain of previous manifests the gates compared against; a version the
  gate held back stands for the release before it.
- ``needs``: what the eval will hold at its peak (the preflight's estimate).
"""
