"""What the tests share, apart from the test files: tiny models, the local Hub and GitHub
stand-ins, fixtures and process helpers. The benches import some of it too.

- Models: ``models`` (the tiny Llama and its LoRAs' base), ``lora_models`` (PEFT adapters
  made on it), ``gemma4_models`` (tiny Gemma 4 text, multimodal and MoE), ``spm_models``
  (a SentencePiece tokenizer), ``bnb_models`` (QLoRA bases), ``adapter_layouts`` (the
  adapter corpus's layouts, shared with ``bench.adapter_corpus``), ``sparse_models``
  (published models' shapes as sparse checkpoints: headers only, shared with
  ``bench.runner_needs``).
- Fixtures (``pytest_plugins`` of tests/conftest.py or a test module): ``demo_fixtures``,
  ``disk_fixtures`` (a small full disk), ``gguf_fixtures``, ``hub_fixtures``;
  ``cache_lock`` (one builder at a time of a cached entry, for ``pytest -n 2``).
- Stand-ins: ``hub_server`` / ``hub_http`` (a Hub-compatible server on 127.0.0.1, see
  docs/hub-protocol.md), ``github_server`` and ``action_runner`` (the GitHub Action).
- Processes and output: ``cli_process`` (the CLI as a user runs it), ``kill_harness``
  (kill a run at each stage), ``reporters``, ``tui_pilot``, ``tui_workspace``,
  ``secret_scan``, ``eval_peak``, ``gguf_helpers``.
- Data makers: ``catalan_text`` (planted contamination, shared with
  ``bench.contamination``), ``fuzz_inputs`` (the fuzz mutations, shared with
  ``bench.fuzz_inputs``), ``llama_perplexity`` (llama.cpp's own tool, built once).
"""
