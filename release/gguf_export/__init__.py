"""GGUF export: a merged HF model folder in, verified ``<name>-<TYPE>.gguf`` files out.

How it works, one module a job:

- ``source``: the safetensors headers (planning) and one tensor at a time (writing).
- ``architectures``: the registry of built-in architectures and their quirks.
- ``vocab``: the tokenizer as GGUF metadata (byte-level BPE with llama.cpp's
  pre-tokenizer names, SentencePiece), special tokens, chat template.
- ``metadata``: ``general.*`` from the release.
- ``formats``: the types a release can ask for, and how each tensor is stored.
- ``writer``: the streaming exporter on gguf-py's GGUFWriter.
- ``kquant``: K-quants through llama.cpp's quantizer (llama-cpp-python).
- ``delegate``: architectures we lack, through llama.cpp's convert_hf_to_gguf.py.
- ``readback``: gguf-py's reader confirms what was written.
- ``agreement``: llama.cpp and transformers load each file and are compared with the
  merged model's logits.
- ``build``: the GGUF stage's work, file by file, atomic.

Nothing here is imported by ``release.stages.gguf`` until the stage runs.
"""
