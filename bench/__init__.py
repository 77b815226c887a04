"""Benchmarks: each prints its figures beside a reference (PEFT, llama.cpp, mergekit, a
naive script, the floor) in one run. Performance is measured here, never asserted in a
test.

Run each as a module from the repository root, ``python -m bench.merge``: it imports the
installed ``release``, ``bench.shared`` and the tests' helpers (``tests.*``) as packages,
with no edit of ``sys.path``; a child process it starts is ``python -m`` the same module.

- ``shared``: random models of real shapes written tensor by tensor, the GGUF stage's
  work outside a release (``build_gguf``), a child process measured as a whole tree.
- ``merge``, ``recipe``: the streaming merge against PEFT's, a merge recipe against
  mergekit's. ``gguf_export``: our exporter against llama.cpp's converter;
  ``gguf_peak``: the GGUF stage's peak memory against the preflight's estimate;
  ``reference_topk``: the kept top-k reference against the full logits.
- ``eval``, ``equivalence``, ``contamination``: the evaluate stage's checks.
- ``card_build``: a card rebuilt from its files; ``fuzz_inputs``: the fuzz pass at full
  size; ``scale``: a release at a user's size, stage by stage (``device.sh`` runs it on a
  GPU machine); ``runner_needs``: the preflight's estimates at the users'
  sizes, from sparse checkpoints of real shapes (the README's runner table).
"""
