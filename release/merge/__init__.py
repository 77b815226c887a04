"""The merge: a PEFT LoRA adapter folded into its base, tensor by tensor.

- ``lora``: the adapter as data (config, tensors grouped by module, the merge formula).
- ``module_names``: the adapter's module paths to the base checkpoint's tensor names
  (from the names alone), and where they sit (language model, towers).
- ``class_names``: what names alone cannot place, asked of transformers' model class in
  a child process (``python -m release.merge.class_names``).
- ``base_checks``: what the folders declare that rules a merge out (a quantized base,
  tokenizer and generation_config disagreeing on EOS).
- ``initialization``: ``init_lora_weights`` as PEFT's load treats it (PiSSA's and OLoRA's
  residual of the base, or a one-line refusal naming PEFT's conversion).
- ``vocabulary``: an adapter of a resized vocabulary (added tokens) and a tied head.
- ``intake``: prove the adapter belongs to the base (the adapter stage's work).
- ``stream``: the streaming merge, in bounded memory.
- ``blocks``: one tensor merged and cast a block of rows at a time (in the CPU's cache).
- ``needs``: what the merge will write and hold (the preflight's estimate).
- ``settings``: what the merge stage's domain reads of the spec, one object (its key's
  source).
"""
