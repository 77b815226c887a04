"""Map an adapter's module paths to the base checkpoint's tensor names.

An adapter names modules as the model class it was trained on lays them out
(``model.layers.0.self_attn.q_proj``); a checkpoint names tensors as whoever saved it
did. They differ by model class: a checkpoint saved from the bare ``*Model`` has no
``model.`` prefix; a multimodal checkpoint nests the text model; transformers v5 renames
keys of some architectures while loading. Rather than guess with string rules that only
fit Llama, we ask the model itself: build it on the meta device (no memory, no weights)
and run every checkpoint name through transformers' own load-time renaming for that
class. That gives model parameter name -> checkpoint tensor name, exactly as
``from_pretrained`` would load it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
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


def parameter_to_checkpoint(
    base_dir: Path,
    checkpoint_names: Collection[str],
    wanted: Collection[str],
    *,
    preferred_class: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict[str, str], str]:
    """Model parameter name -> checkpoint tensor name for the ``wanted`` parameters,
    under the first candidate model class that explains most of them, and that class's
    name. Parameters it cannot place are left out (the caller reports them)."""
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


def placement(checkpoint_names: Iterable[str]) -> str:
    """Where edited tensors sit, part by part: "model.language_model 28, model.audio_tower
    3" (a part is the name before ``.layers.``, else before the module's own name), so a
    plain target list that also reached a multimodal model's towers shows it."""
    parts: Counter[str] = Counter()
    for name in checkpoint_names:
        head, layers, _ = name.partition(".layers.")
        parts[head if layers else ".".join(name.split(".")[:-2]) or name] += 1
    return ", ".join(f"{part} {count}" for part, count in sorted(parts.items()))
