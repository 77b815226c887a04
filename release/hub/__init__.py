"""Publishing a release on the Hugging Face Hub.

``plan`` decides what goes where (a pure function of spec and manifest, so a dry run
and a real push agree by construction); ``checks`` refuses a release before any byte
leaves the machine; ``commit`` talks to the Hub through ``huggingface_hub.HfApi``
(``api``: the client at the endpoint and token of now); ``remote`` says what the Hub
holds for a dry run. The push stage and ``release.card_push`` drive them.
"""
