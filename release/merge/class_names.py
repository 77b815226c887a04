"""Ask transformers how a model class names a checkpoint's tensors: run as a child.

``release.merge.module_names`` places an adapter's parameters by names alone; what it
cannot place is asked here. We build the model on the meta device (no memory, no
weights) and run every checkpoint name through transformers' own load-time renaming for
that class, which gives model parameter name -> checkpoint tensor name exactly as
``from_pretrained`` would load it. It runs in ``python -m release.merge.class_names``
(request as JSON on stdin, answer as one JSON line on stdout), so the process that runs
intake never imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path


def _model_classes(config, preferred: str | None, trust_remote_code: bool) -> Iterator:
    """Candidate model classes, most likely first: the class the adapter records, the
    checkpoint's own architectures, then the causal-LM class transformers picks."""
    import transformers

    seen = set()
    for name in [preferred, *(getattr(config, "architectures", None) or [])]:
        cls = getattr(transformers, name, None) if name else None
        if cls is not None and cls not in seen:
            seen.add(cls)
            yield lambda cls=cls: cls._from_config(config)
    yield lambda: transformers.AutoModelForCausalLM.from_config(
        config, trust_remote_code=trust_remote_code
    )


def _conversions(model) -> tuple[list, list]:
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter
    except ImportError:  # transformers 4.x: no load-time renaming beyond the prefix
        return [], []
    transforms = get_model_conversion_mapping(model)
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    return [t for t in transforms if not isinstance(t, WeightConverter)], converters


def _rename(name: str, model, renamings: list, converters: list, state: dict) -> str | None:
    """The model parameter ``name`` loads into, or None when a converter fuses or splits
    it (then no one model parameter is this tensor)."""
    prefix = model.base_model_prefix
    if renamings or converters:
        from transformers.core_model_loading import rename_source_key

        key, pattern = rename_source_key(name, renamings, converters, prefix, state)
        return None if pattern is not None else key
    if prefix and name.startswith(prefix + ".") and name.removeprefix(prefix + ".") in state:
        return name.removeprefix(prefix + ".")
    if prefix and f"{prefix}.{name}" in state:
        return f"{prefix}.{name}"
    return name


def class_mapping(
    base_dir: Path,
    checkpoint_names: Collection[str],
    wanted: Collection[str],
    *,
    preferred_class: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict[str, str], str]:
    """Model parameter name -> checkpoint tensor name for the ``wanted`` parameters,
    under the first candidate model class that explains most of them, and that class's
    name. Parameters it cannot place are left out."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_dir, trust_remote_code=trust_remote_code)
    best: tuple[dict[str, str], str] = ({}, "")
    for build in _model_classes(config, preferred_class, trust_remote_code):
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            try:
                model = build()
            except (ValueError, TypeError, AttributeError):
                continue  # a class that does not take this config
        state = model.state_dict()
        renamings, converters = _conversions(model)
        mapping = {}
        for name in checkpoint_names:
            with contextlib.suppress(KeyError, ValueError):
                key = _rename(name, model, renamings, converters, state)
                if key is not None and key in wanted:
                    mapping[key] = name
        if len(mapping) > len(best[0]):
            best = (mapping, type(model).__name__)
        if len(mapping) == len(wanted):
            break
    return best


def _main() -> None:
    request = json.loads(sys.stdin.read())
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the answer alone
        targets, model_class = class_mapping(
            Path(request["base_dir"]),
            request["checkpoint_names"],
            set(request["wanted"]),
            preferred_class=request["preferred_class"],
            trust_remote_code=request["trust_remote_code"],
        )
    print(json.dumps({"targets": targets, "model_class": model_class}))


if __name__ == "__main__":
    _main()
