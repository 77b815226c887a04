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
- ``writer``: what the two merges (``stream``, ``recipe_stream``) share in writing the
  merged folder: progress and result records, each tensor's dtype and whether it goes by
  rows, config.json and the side files.
- ``methods``: the merge methods of a recipe, one table (mergekit's names, papers).
- ``recipe_inputs``: a recipe's models found and proven to belong to the base.
- ``recipe_stream``: a recipe streamed tensor by tensor into one model folder.
- ``recipe_card``: the recipe as the card shows it (no local paths).
- ``blocks``: one tensor merged and cast a block of rows at a time (in the CPU's cache).
- ``needs``: what the merge will write and hold (the preflight's estimate).
- ``settings``: what the merge and intake read of the spec, one object each (their keys'
  source).
"""
