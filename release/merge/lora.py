"""A PEFT LoRA adapter as data: its config, its tensors grouped by module, and the merge.

PEFT saves an adapter as ``adapter_config.json`` plus ``adapter_model.safetensors``
whose keys are the wrapped model's module paths, ``base_model.model.<module>.<part>``:

- ``lora_A.weight`` (r, in) and ``lora_B.weight`` (out, r) for a Linear layer;
- ``lora_embedding_A`` (r, vocab) and ``lora_embedding_B`` (dim, r) for an Embedding;
- ``lora_magnitude_vector`` for DoRA (one value per output row; per embedding column);
- ``base_layer.weight``: a full copy of an embedding PEFT saved alongside its LoRA
  (``save_embedding_layers``), which replaces the base weight on load;
- ``token_adapter.trainable_tokens_delta``: the new values of the rows listed in
  ``trainable_token_indices`` (and ``token_adapter.base_layer.weight``, the resized
  layer, when the vocabulary grew);
- ``<param>`` (e.g. ``lm_head.weight``): a ``modules_to_save`` copy, which replaces it
  (saved again as ``<module>.modules_to_save.<param>`` beside the base's
  ``<module>.original_module.<param>`` when the vocabulary grew).

The merge follows PEFT's formulas (``peft.tuners.lora.layer`` and ``variants``), in
float32 (``B @ A`` the same bytes on every CPU: ``LoraFactors``): ``W' = W + s * (B @ A)``
with ``s = alpha / r`` (``alpha / sqrt(r)`` for rsLoRA), transposed for embeddings, and
for DoRA ``W' = m / ||W + s B A|| * (W + s B A)`` with the norm taken per output row
(per embedding dimension for an Embedding).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from release.core.errors import InputError
from release.merge import initialization

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_NAME = "adapter_model.bin"
PREFIX = "base_model.model."
SUPPORTED_TYPES = ("LORA",)
# Options that change what the merged weight is; we refuse them rather than merge wrong.
_UNSUPPORTED_OPTIONS = (
    "lora_bias",
    "use_qalora",
    "target_parameters",
    "layer_replication",
    "alora_invocation_tokens",
    "use_bdlora",
    "arrow_config",
    "kasa_config",
    "velora_config",
    "monteclora_config",
)


@dataclass(frozen=True)
class LoraSettings:
    """The parts of adapter_config.json that decide the merge (and go on the card)."""

    r: int
    alpha: float
    dropout: float
    use_rslora: bool
    use_dora: bool
    fan_in_fan_out: bool
    target_modules: list[str] | str
    modules_to_save: list[str]
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    base_model_name_or_path: str | None
    revision: str | None
    base_model_class: str | None
    init_lora_weights: str | None = None
    """PEFT's ``init_lora_weights`` (None: its default), ``release.merge.initialization``."""
    trainable_token_indices: dict[str, list[int]] = field(default_factory=dict)
    """The rows PEFT's trainable tokens replace, by module (``*``: the input embedding
    and the head tied to it, PEFT's list form)."""

    def token_indices(self, module: str) -> list[int]:
        """The token rows of ``module`` its ``trainable_tokens_delta`` holds, in order."""
        by_module = self.trainable_token_indices
        named = next((v for k, v in by_module.items() if module.split(".")[-1] == k), None)
        return list(named if named is not None else by_module.get("*", []))

    def scale(self, module: str, rank: int) -> float:
        """PEFT's scaling for ``module``: alpha / r, or alpha / sqrt(r) with rsLoRA;
        alpha_pattern overrides alpha by the same pattern rule PEFT uses."""
        alpha = _by_pattern(self.alpha_pattern, module, self.alpha)
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank

    def rank(self, module: str) -> int:
        """The rank PEFT gives ``module``: r, or its rank_pattern entry."""
        return int(_by_pattern(self.rank_pattern, module, self.r))


def _by_pattern(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """The value of the first pattern that matches ``module`` (PEFT's rule), else default."""
    return next(
        (value for pattern, value in patterns.items() if re.match(rf"(.*\.)?({pattern})$", module)),
        default,
    )


def read_adapter_config(folder: Path) -> tuple[dict[str, Any], LoraSettings]:
    """adapter_config.json, checked for what we can merge."""
    path = folder / CONFIG_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: missing; {folder} is not a PEFT adapter folder",
            hint="point adapter.path at the folder save_pretrained wrote",
        ) from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a JSON object of settings")
    peft_type = str(raw.get("peft_type", "")).upper()
    if peft_type not in SUPPORTED_TYPES:
        raise InputError(
            f"{path}: peft_type {raw.get('peft_type')!r} is not supported",
            hint="model-release merges LoRA adapters (incl. rsLoRA, DoRA, modules_to_save)",
        )
    for option in _UNSUPPORTED_OPTIONS:
        if raw.get(option):
            raise InputError(
                f"{path}: {option}={raw[option]!r} is not supported by the merge",
                hint="merge it with PEFT's merge_and_unload and give the result as base",
            )
    initialization.check(raw.get("init_lora_weights", True), path)
    auto_mapping = raw.get("auto_mapping") or {}
    try:
        settings = _settings(raw, auto_mapping)
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"{exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise InputError(
            f"{path}: {problem}",
            hint="re-save the adapter with PEFT's save_pretrained",
        ) from None
    return raw, settings


def _number(raw: dict[str, Any], key: str, default: float | None = None) -> float:
    """``raw[key]`` when it is a JSON number: PEFT reads ``"8"`` as no number at all."""
    value = raw[key] if default is None else raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is {value!r}, not a number (write it without quotes)")
    return value


def _settings(raw: dict[str, Any], auto_mapping: dict[str, Any]) -> LoraSettings:
    rank = _number(raw, "r")
    if rank != int(rank) or rank < 1:
        raise ValueError(f"r is {rank!r}, not a rank (a whole number, 1 or more)")
    for key in ("rank_pattern", "alpha_pattern", "auto_mapping"):
        if not isinstance(raw.get(key) or {}, dict):
            raise ValueError(f"{key} is {raw[key]!r}, not a mapping")
    return LoraSettings(
        r=int(rank),
        alpha=float(_number(raw, "lora_alpha", 8)),
        dropout=float(raw.get("lora_dropout") or 0.0),
        use_rslora=bool(raw.get("use_rslora")),
        use_dora=bool(raw.get("use_dora")),
        fan_in_fan_out=bool(raw.get("fan_in_fan_out")),
        target_modules=_sorted_if_list(raw.get("target_modules") or []),
        modules_to_save=sorted(raw.get("modules_to_save") or []),
        rank_pattern=dict(raw.get("rank_pattern") or {}),
        alpha_pattern=dict(raw.get("alpha_pattern") or {}),
        base_model_name_or_path=raw.get("base_model_name_or_path"),
        revision=raw.get("revision"),
        base_model_class=auto_mapping.get("base_model_class"),
        init_lora_weights=initialization.label(raw.get("init_lora_weights", True)),
        trainable_token_indices=_token_indices(raw.get("trainable_token_indices")),
    )


def _token_indices(value: Any) -> dict[str, list[int]]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(key): [int(i) for i in rows] for key, rows in value.items()}
    return {"*": [int(i) for i in value]}


def _sorted_if_list(value: Any) -> list[str] | str:
    """target_modules as PEFT reads it: a regex (checked here) or a list of names."""
    if isinstance(value, str):
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"target_modules {value!r} is not a valid regex ({error})") from None
        return value
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"target_modules {value!r} is not a regex or a list of module names")
    return sorted(value)


@dataclass
class ModuleEdit:
    """What the adapter does to one parameter of the base (``<module>.<param>``)."""

    module: str
    param: str = "weight"
    kind: Literal["linear", "embedding"] | None = None  # None: replacement only
    lora_a: str | None = None
    lora_b: str | None = None
    magnitude: str | None = None
    replacement: str | None = None
    tokens: str | None = None
    """``trainable_tokens_delta``: the new values of some rows (PEFT's trainable tokens)."""
    snapshot: str | None = None
    """``<module>.original_module.<param>``: the base's parameter as it was (resized),
    saved beside a modules_to_save copy when the vocabulary grew; not trained, not used."""
    keys: list[str] = field(default_factory=list)

    @property
    def parameter(self) -> str:
        return f"{self.module}.{self.param}"


_LORA_PARTS = {
    "lora_A.weight": ("linear", "lora_a"),
    "lora_B.weight": ("linear", "lora_b"),
    "lora_embedding_A": ("embedding", "lora_a"),
    "lora_embedding_B": ("embedding", "lora_b"),
    "lora_magnitude_vector": (None, "magnitude"),
    "lora_magnitude_vector.weight": (None, "magnitude"),
    "base_layer.weight": (None, "replacement"),
    "trainable_tokens_delta": (None, "tokens"),
}


def group_edits(keys: list[str], source: Path) -> dict[str, ModuleEdit]:
    """Adapter tensor keys -> one edit per base parameter, by model parameter name."""
    edits: dict[str, ModuleEdit] = {}
    for key in keys:
        if not key.startswith(PREFIX):
            raise InputError(f"{source}: tensor {key!r} is not a PEFT LoRA weight")
        path = key.removeprefix(PREFIX).replace(".token_adapter.", ".")
        part = next((p for p in _LORA_PARTS if path.endswith("." + p)), None)
        if part is None:  # a modules_to_save copy of one parameter
            # PEFT saves a grown vocabulary's copies twice (``lm_head.weight`` and
            # ``lm_head.modules_to_save.weight``, the same) and the base's beside them
            snapshot = ".original_module." in path
            path = path.replace(".modules_to_save.", ".").replace(".original_module.", ".")
            module, _, param = path.rpartition(".")
            edit = edits.setdefault(path, ModuleEdit(module, param))
            if snapshot:
                edit.snapshot = key
            elif edit.replacement is None or ".modules_to_save." not in key:
                edit.replacement = key
        else:
            module = path[: -len(part) - 1]
            kind, slot = _LORA_PARTS[part]
            edit = edits.setdefault(f"{module}.weight", ModuleEdit(module))
            setattr(edit, slot, key)
            edit.kind = kind or edit.kind
        edit.keys.append(key)
    for edit in edits.values():
        has_lora = edit.lora_a is not None, edit.lora_b is not None
        if (any(has_lora) and not all(has_lora)) or (edit.magnitude and not edit.lora_a):
            raise InputError(f"{source}: {edit.module} has an incomplete LoRA pair ({edit.keys})")
    return edits


def expected_shapes(
    edit: ModuleEdit, base_shape: tuple[int, ...], rank: int, settings: LoraSettings
) -> dict[str, tuple[int, ...]]:
    """The shape each adapter tensor of ``edit`` must have on a base weight of
    ``base_shape`` (rank from lora_A)."""
    fan_in_fan_out = settings.fan_in_fan_out
    shapes: dict[str, tuple[int, ...]] = {}
    if edit.replacement:
        shapes[edit.replacement] = base_shape
    if edit.tokens and len(base_shape) == 2:
        shapes[edit.tokens] = (len(settings.token_indices(edit.module)), base_shape[1])
    if edit.kind is None or len(base_shape) != 2:
        return shapes
    assert edit.lora_a and edit.lora_b
    if edit.kind == "embedding":
        vocab, dim = base_shape
        shapes |= {edit.lora_a: (rank, vocab), edit.lora_b: (dim, rank)}
        columns = dim
    else:
        out, inp = reversed(base_shape) if fan_in_fan_out else base_shape
        shapes |= {edit.lora_a: (rank, inp), edit.lora_b: (out, rank)}
        columns = out
    if edit.magnitude:
        shapes[edit.magnitude] = (columns,)
    return shapes


@dataclass(frozen=True)
class LoraFactors:
    """One edit's LoRA factors, giving its delta a block of rows at a time, with the same
    bytes on every CPU, whatever the block and the BLAS threads.

    A float32 ``B @ A`` by BLAS is not one number: the kernel (picked by CPU) and the block
    shape change the order of the sums, and with it the last bits (on an AMD EPYC, 9
    tests found other bytes than on the Intel machines). So ``B`` and ``A`` are put on
    grids where BLAS computes their product exactly, in any order and any blocking: each
    row of ``B`` (each column of ``A``) is rounded to multiples of ``2**(e - m)``, where
    ``2**e`` is the first power of two above its largest magnitude, with
    ``2m + ceil(log2 r) <= 53``. Every product and every partial sum of the float64
    ``B @ A`` is then an integer multiple of one step, below ``2**53`` of them: exact.
    At ``r <= 32``, ``m = 24``: a value keeps all its bits down to 2**-24 of its line's
    largest (``balanced`` first evens out each rank's scale between ``A`` and ``B``). On
    factors as trained this costs what float32 arithmetic does (tests/test_merge_blocks);
    the delta is ``s * (B @ A)`` rounded once to float64, then to float32.
    """

    a: np.ndarray
    b: np.ndarray
    """``A`` and ``B`` on their grids, in float64."""
    scale: float
    transposed: bool
    """The delta is ``(B @ A).T``: an Embedding's, or a fan-in-fan-out Conv1D's."""

    def delta_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``s * (B @ A)`` (transposed where it is), as a new
        float32 array; each element is the same whatever rows are asked for."""
        rows = (
            (self.b @ self.a[:, start:stop]).T if self.transposed else self.b[start:stop] @ self.a
        )
        rows *= self.scale
        return rows.astype(np.float32)


def balanced(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` and ``B`` with each rank's row of ``A`` and column of ``B`` scaled by powers
    of two (``2**-k``, ``2**k``, ``k`` half the difference of their peaks' exponents) so
    they peak alike: ``B @ A`` is unchanged, exactly, and the grid of ``on_exact_grid``
    loses less of the smaller one (a trained LoRA's ``B`` is far smaller than its ``A``)."""
    _, exponent_a = np.frexp(np.max(np.abs(a), axis=1))
    _, exponent_b = np.frexp(np.max(np.abs(b), axis=0))
    shift = (exponent_a - exponent_b) // 2
    return np.ldexp(a, -shift[:, None]), np.ldexp(b, shift[None, :])


def on_exact_grid(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """``values`` in float64, each line along ``axis`` rounded (to nearest, ties to even)
    to ``2**(e - m)`` steps, ``2**e`` above its largest magnitude: ``LoraFactors``'s grid."""
    bits = (53 - math.ceil(math.log2(max(rank, 1)))) // 2
    wide = values.astype(np.float64, copy=False)
    _, exponent = np.frexp(np.max(np.abs(wide), axis=axis, keepdims=True))
    step = np.ldexp(1.0, exponent - bits)
    return np.rint(wide / step) * step


def lora_factors(
    edit: ModuleEdit, read: Callable[[str], np.ndarray], settings: LoraSettings
) -> LoraFactors:
    """The factors of ``edit`` (which has a LoRA pair), read and scaled as PEFT does."""
    assert edit.lora_a and edit.lora_b
    lora_a, lora_b = read(edit.lora_a), read(edit.lora_b)
    rank = lora_a.shape[0]
    wide_a, wide_b = balanced(lora_a.astype(np.float64), lora_b.astype(np.float64))
    return LoraFactors(
        on_exact_grid(wide_a, 0, rank),
        on_exact_grid(wide_b, 1, rank),
        float(np.float32(settings.scale(edit.module, rank))),
        edit.kind == "embedding" or settings.fan_in_fan_out,
    )


def merge_weight(
    weight: np.ndarray,
    edit: ModuleEdit,
    read: Callable[[str], np.ndarray],
    settings: LoraSettings,
) -> np.ndarray:
    """The merged parameter in float32 from float32 inputs (a new array)."""
    merged = (read(edit.replacement) if edit.replacement else weight).astype(np.float32, copy=False)
    if edit.tokens:  # PEFT's trainable tokens: rows replaced (index_copy), not added to
        merged[settings.token_indices(edit.module)] = read(edit.tokens)
    if edit.kind is None:
        return merged
    factors = lora_factors(edit, read, settings)
    merged += factors.delta_rows(0, merged.shape[0])
    if edit.magnitude:
        # Rows of W are output features for Linear; for an Embedding (and a fan-in-fan-out
        # Conv1D) the output features are W's columns.
        by_column = factors.transposed
        norm = np.linalg.norm(merged, axis=0 if by_column else 1)
        factor = read(edit.magnitude) / norm
        merged *= factor.reshape(1, -1) if by_column else factor.reshape(-1, 1)
    return merged
