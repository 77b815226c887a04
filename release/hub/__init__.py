"""Publishing a release on the Hugging Face Hub.

``settings`` is what the push reads of the spec, one object (its key's source);
``plan`` decides what goes where (a pure function of those settings and the manifest,
so a dry run and a real push agree by construction); ``checks`` refuses a release before any byte
leaves the machine; ``commit`` talks to the Hub through ``huggingface_hub.HfApi``
(``api``: the client at the endpoint and token of now); ``remote`` says what the Hub
holds for a dry run. The push stage and ``release.card_push`` drive them.
"""
