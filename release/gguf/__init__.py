"""GGUF export: a merged HF model folder in, verified ``<name>-<TYPE>.gguf`` files out.

How it works, one module a job:

- ``source``: the merged checkpoint as the exporter reads it (through
  ``release.checkpoint.safetensors``): headers to plan, one float32 tensor at a time.
- ``architectures``: the registry of built-in architectures and their quirks.
- ``gemma4``: Gemma 4's text model as arch ``gemma4``, as llama.cpp's converter writes
  it (header keys in its order, the proportional-RoPE tensor, kept embedding rows).
- ``vocab``: the tokenizer as GGUF metadata (byte-level BPE with llama.cpp's
  pre-tokenizer names, SentencePiece, Gemma 4's), special tokens, chat template.
- ``metadata``: ``general.*`` from the release; sampling defaults from the model.
- ``release_keys``: the release's keys added to a file llama.cpp's converter wrote.
- ``formats``: the types a release can ask for, and which type each tensor is stored in.
- ``sizes``: every byte count of a GGUF file (tensors by type, alignment, the header
  as gguf-py writes it), and the quick estimate from a parameter count.
- ``kquant_types``: the type llama.cpp's quantizer picks per tensor (mixes, fallbacks).
- ``needs``: the GGUF stage's files and peak memory, for the preflight.
- ``settings``: what the stage's domain reads of the spec, one object (its key's source;
  push's repo id is the header's ``general.repo_url``).
- ``writer``: the streaming exporter on gguf-py's GGUFWriter.
- ``kquant``: K-quants through llama.cpp's quantizer (llama-cpp-python).
- ``pinned``: the llama.cpp build: the runtime's, and its converter from the sdist of
  the installed llama-cpp-python (fetched once, checked against the runtime).
- ``delegate``: architectures we lack, through that convert_hf_to_gguf.py.
- ``converter_plan``: the size of a file that converter would write, measured by it
  without writing the data (the preflight's plan of its files).
- ``projector``: a multimodal checkpoint's towers as ``mmproj-<name>-F16.gguf``
  (llama.cpp's converter), read back.
- ``readback``: gguf-py's reader confirms what was written.
- ``agreement``: llama.cpp (or, without it, transformers) loads each file, and it is
  compared with the merged model's reference (``release.reference``).
- ``child``: a Python child process answering JSON lines, started early so its imports
  overlap the export; its death a one-line error.
- ``reference_process``: the merged model's reference where the evaluate stage kept
  none, computed in a child process started when the stage starts.
- ``llama_cpp_process``: llama.cpp's loads, one child process for all of a stage's
  files, so an abort or a segfault is a one-line error.
- ``timing``: what the stage's checks cost next to its export.
- ``build``: the GGUF stage's work, file by file, atomic; it sees the stage only
  through ``release.core.events.Reporter``.

Nothing here is imported by ``release.stages.gguf`` until the stage runs.
"""
