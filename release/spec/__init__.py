"""release.yaml: what a release is, as a person writes it.

- ``schema``: ``ReleaseSpec``, loaded with every problem located to its line.
- ``yaml_lines``: pydantic's error paths to lines (on cards' one YAML locator).
- ``starter``: ``model-release init``'s commented file, filled from adapter_config.json.
- ``base_names``: the unquantized repo a pre-quantized base's name (``-bnb-4bit``) gives way
  to: the base ``init`` writes and intake accepts for an unsloth adapter.
- ``editor``: the wizard's saves, round-tripped so the person's comments stay.
"""
