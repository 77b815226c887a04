"""eval.contamination: the release's training data against the documents of the
benchmarks its card reports (exact, substring, word and character n-grams).

- ``normalize``: each method's normal form (NFKC…; lm-eval's Janitor's for word n-grams).
- ``hashing``: 64-bit hashes of every n-gram of a batch of texts at once (numpy).
- ``index``: the training n-grams' hashes, sorted runs in memory up to a cap, on disk past it.
- ``training``: the training data's texts (JSONL, JSON, Parquet, text, cached Hub datasets).
- ``tasks``: the test side: the reported lm-eval tasks' documents, built offline.
- ``offline``: nothing downloaded while either side is read.
- ``check``: one pass over the training data, one over the test documents.
- ``methods``: the methods as the card names them; ``verdict``: per-task facts, the gate.
- ``settings``: what the stage's domain reads of the spec, one object (its key's source).
- ``facts``: what the stage records; ``run``: the stage's one call.
"""
