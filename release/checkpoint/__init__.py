"""Model folders on disk: the one reader and writer of their files.

- ``safetensors``: headers, one tensor (or block of rows) at a time by plain reads,
  shards written in order and hashed as they are written; parameter counts for the
  preflight.
- ``config``: config.json, the text model's view of a multimodal one, its towers;
  whether the folder has a chat template.
- ``base``: the base model of a release, local or downloaded from the Hub.
- ``adapter``: the adapter's folder, local or downloaded from the Hub.
- ``snapshot``: Hub downloads pinned to the commit they resolved to; one-line errors.
- ``fingerprint``: which base weights an adapter is merged onto, cheaply.
- ``dequantize``: a bitsandbytes 4-bit base as plain float weights (``base.dequantize``).
"""
