"""A recipe's models found, read and proven to belong to the base, before any byte is written.

Each ``model:`` (and ``base_model:``) of the recipe names one of:

- the release's base (its ``base.repo_id``, with or without ``@revision``, or its
  ``base.path``);
- an earlier step, by its ``name``;
- a local folder (relative to release.yaml's folder): a PEFT LoRA adapter
  (``adapter_config.json``), applied to the release's base as the single-adapter merge
  applies it, or a full checkpoint (``config.json`` and safetensors) fine-tuned from it;
- a Hub repo, ``owner/name@revision``, downloaded (at that revision) as the base is.

``resolve_inputs`` checks what can be checked from headers and configs: a checkpoint has
exactly the base's tensors, shapes and text config; an adapter's modules sit on the
base's tensors with the shapes its rank gives; every step's parameters are the method's
and in range; the mask file's tensors are the base's, in [0, 1]; the tokenizers and chat
templates of the inputs agree, or the recipe says which one the release ships. Each
problem is one line naming the recipe field and the input.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from release.checkpoint.base import ALLOW_PATTERNS, TOKENIZER_FILES
from release.checkpoint.config import read_config, text_config
from release.checkpoint.safetensors import (
    FLOAT_DTYPES,
    TensorInfo,
    list_checkpoint,
    list_tensors,
    read_array,
    to_float32,
)
from release.checkpoint.snapshot import download
from release.core.errors import InputError
from release.merge import initialization, lora
from release.merge.methods import METHODS, Method
from release.merge.module_names import parameter_to_checkpoint
from release.spec.recipe import ConditionalParameter, MergeRecipe, MergeStep

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_CONFIG_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
"""What a checkpoint must share with the base's (text) config to be a fine-tune of it."""


@dataclass(frozen=True)
class BaseIdentity:
    """How the recipe may name the release's base, and where its files are."""

    folder: Path
    repo_id: str | None = None
    path: Path | None = None


@dataclass
class Source:
    """One model a step reads, as the engine reads it."""

    label: str
    """As the recipe names it (a Hub id@revision, a folder, a step's name)."""
    kind: Literal["base", "checkpoint", "lora", "step"]
    folder: Path | None = None
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    """A checkpoint's tensors by name."""
    edits: dict[str, lora.ModuleEdit] = field(default_factory=dict)
    """A LoRA's edits by the base tensor they change."""
    settings: lora.LoraSettings | None = None
    commit: str | None = None
    """The commit a Hub input resolved to."""
    sha256: str | None = None
    """A local input's identity on the card: the sha256 of its weights' hashes."""


@dataclass
class Inputs:
    """Every source of the recipe, by the name the recipe gives it, and what ships."""

    base: Source
    sources: dict[str, Source]
    base_tensors: dict[str, TensorInfo]
    layers: int
    tokenizer_folder: Path
    tokenizer_from: str


def local_paths(recipe: MergeRecipe, root: Path) -> list[Path]:
    """The local folders and mask files the recipe reads (the merge stage's inputs)."""
    found = []
    for step in recipe.steps:
        for ref in [m.model for m in step.models] + [step.base_model or ""]:
            if ref and (root / ref).is_dir():
                found.append((root / ref).absolute())
        if step.delta_mask and step.delta_mask.file:
            found.append(step.delta_mask.file)
    return list(dict.fromkeys(found))


def layer_of(tensor: str) -> int | None:
    match = _LAYER.search(tensor)
    return int(match.group(1)) if match else None


def resolve_inputs(recipe: MergeRecipe, base: BaseIdentity, root: Path) -> Inputs:
    """Find and check every input of ``recipe``; ``root`` is release.yaml's folder."""
    base_tensors = list_checkpoint(base.folder)
    config = read_config(base.folder)
    layers = int(text_config(config).get("num_hidden_layers") or 0)
    base_source = Source(base.repo_id or str(base.path), "base", base.folder, base_tensors)
    sources: dict[str, Source] = {}
    steps: set[str] = set()
    for number, step in enumerate(recipe.steps):
        where = f"merge.recipe.steps[{number}]" if len(recipe.steps) > 1 else "merge.recipe"
        method = METHODS.get(step.merge_method)
        if method is None:
            raise InputError(
                f"{where}.merge_method: {step.merge_method!r} is not a merge method we have",
                hint="use one of " + ", ".join(METHODS),
            )
        refs = [model.model for model in step.models] + [step.base_model or step.models[0].model]
        for ref in refs:
            if ref is not None and ref not in sources:
                if ref in steps:
                    sources[ref] = Source(ref, "step")
                else:
                    sources[ref] = _resolve(ref, base, base_source, root, where, config)
        check_step(step, method, where, base_tensors, layers)
        if step.delta_mask and step.delta_mask.file:
            check_mask(step.delta_mask.file, base_tensors, f"{where}.delta_mask.file")
        if step.name:
            steps.add(step.name)
    tokenizer_folder, tokenizer_from = _tokenizer(recipe, sources, base_source)
    return Inputs(base_source, sources, base_tensors, layers, tokenizer_folder, tokenizer_from)


def _is_base(ref: str, base: BaseIdentity, root: Path) -> bool:
    if base.repo_id and ref.split("@")[0] == base.repo_id:
        return True
    return base.path is not None and (root / ref).absolute().resolve() == base.path.resolve()


def _resolve(
    ref: str, base: BaseIdentity, base_source: Source, root: Path, where: str, config: dict
) -> Source:
    if _is_base(ref, base, root):
        return base_source
    folder, commit = _locate(ref, root, where)
    if (folder / lora.CONFIG_NAME).is_file():
        source = _lora_source(ref, folder, base_source, config, where)
    elif (folder / "config.json").is_file():
        source = _checkpoint_source(ref, folder, base_source, config, where)
    else:
        raise InputError(
            f"{where}: {folder} is neither a PEFT adapter (adapter_config.json) nor a "
            "model folder (config.json)",
            hint="point model at a folder save_pretrained wrote",
        )
    source.commit = commit
    return source


_HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")
"""A Hub repo id (owner/name): what a ref that is no folder is taken for."""


def missing_inputs(recipe: MergeRecipe, base: BaseIdentity, root: Path) -> list[tuple[tuple, Path]]:
    """The recipe's local inputs that are not there, each with its path in the recipe
    (``("steps", 0, "models", 1, "model")``): a ref that is no folder and no Hub repo id
    (``_locate`` would refuse it), or owner/name whose owner is a folder beside
    release.yaml (a local path, then); a mask file that is not there. Nothing is
    downloaded: a Hub ref is the merge stage's to find."""
    missing = []
    steps = {step.name for step in recipe.steps}
    for number, step in enumerate(recipe.steps):
        refs = [(("models", index, "model"), m.model) for index, m in enumerate(step.models)]
        refs += [(("base_model",), step.base_model)] if step.base_model else []
        for loc, ref in refs:
            folder = (root / ref).expanduser()
            if ref in steps or _is_base(ref, base, root) or folder.is_dir():
                continue
            repo_id, at, _ = ref.partition("@")
            hub = _HUB_REPO.fullmatch(repo_id) and (at or not folder.parent.is_dir())
            if not hub:
                missing.append((("steps", number, *loc), folder))
        mask = step.delta_mask.file if step.delta_mask else None
        if mask is not None and not mask.is_file():
            missing.append((("steps", number, "delta_mask", "file"), mask))
    return list(dict((path, (loc, path)) for loc, path in missing).values())


def _locate(ref: str, root: Path, where: str) -> tuple[Path, str | None]:
    """The folder ``ref`` names (relative to ``root``), or its Hub snapshot (downloaded
    at its revision, once: a later call finds it in the cache) and the commit."""
    folder = (root / ref).expanduser()
    if folder.is_dir():
        return folder, None
    repo_id, _, revision = ref.partition("@")
    if not _HUB_REPO.fullmatch(repo_id):
        raise InputError(
            f"{where}: model {ref!r} is neither a folder nor a Hub repo id",
            hint="give a local folder (relative to release.yaml) or owner/name@revision",
        )
    snapshot = download(repo_id, revision or None, ALLOW_PATTERNS, field="merge.recipe")
    return snapshot.folder, snapshot.commit


def locate_inputs(recipe: MergeRecipe, base: BaseIdentity, root: Path) -> dict[str, Source]:
    """Each model the recipe names (earlier steps left out), found and its kind told by
    its config file, without reading or checking it again: what ``resolve_inputs``
    proved for the merge stays proven (the eval measures the inputs after the merge)."""
    base_source = Source(base.repo_id or str(base.path), "base", base.folder)
    found: dict[str, Source] = {}
    for ref in recipe.input_names:
        if _is_base(ref, base, root):
            found[ref] = base_source
            continue
        folder, commit = _locate(ref, root, "merge.recipe")
        kind = "lora" if (folder / lora.CONFIG_NAME).is_file() else "checkpoint"
        found[ref] = Source(ref, kind, folder, commit=commit)
    return found


def _checkpoint_source(
    ref: str, folder: Path, base: Source, base_config: dict, where: str
) -> Source:
    tensors = list_checkpoint(folder)
    hint = "a recipe merges fine-tunes of the release's base; point base at their base"
    theirs, ours = text_config(read_config(folder)), text_config(base_config)
    for key in _CONFIG_KEYS:
        if theirs.get(key) != ours.get(key):
            raise InputError(
                f"{where}: {ref}: config.json {key} is {theirs.get(key)!r}, the base's "
                f"is {ours.get(key)!r}",
                hint=hint,
            )
    missing = sorted(set(base.tensors) - set(tensors))
    extra = sorted(set(tensors) - set(base.tensors))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the base lacks"
        count = len(missing) + len(extra)
        raise InputError(f"{where}: {ref} {what} ({count} tensors differ)", hint=hint)
    for name, info in tensors.items():
        if info.shape != base.tensors[name].shape:
            raise InputError(
                f"{where}: {ref}: {name} is {list(info.shape)}, the base's is "
                f"{list(base.tensors[name].shape)}",
                hint=hint,
            )
    return Source(ref, "checkpoint", folder, tensors, sha256=_weights_sha256(folder))


def _lora_source(ref: str, folder: Path, base: Source, base_config: dict, where: str) -> Source:
    _, settings = lora.read_adapter_config(folder)
    if initialization.moves_base(settings.init_lora_weights):
        raise InputError(
            f"{where}: {ref}: a {settings.init_lora_weights} adapter applies to the base less "
            "its initialization, which a recipe does not merge yet",
            hint="convert it with PEFT's save_pretrained("
            "path_initial_model_for_weight_conversion=...), or release it alone",
        )
    weights = folder / lora.WEIGHTS_NAME
    if not weights.is_file():
        raise InputError(f"{where}: {ref}: no {lora.WEIGHTS_NAME}", hint="save it with PEFT")
    adapter = {info.name: info for info in list_tensors(weights)}
    edits = lora.group_edits(list(adapter), weights)
    assert base.folder is not None
    placed = parameter_to_checkpoint(
        base.folder,
        base_config,
        list(base.tensors),
        set(edits),
        preferred_class=settings.base_model_class,
    )
    hint = "the adapter was trained on another model; point base at that model"
    by_tensor: dict[str, lora.ModuleEdit] = {}
    for parameter, edit in edits.items():
        target = placed.targets.get(parameter)
        if target is None:
            raise InputError(f"{where}: {ref}: the base has no parameter {parameter}", hint=hint)
        rank = adapter[edit.lora_a].shape[0] if edit.lora_a else 0
        expected = lora.expected_shapes(edit, base.tensors[target].shape, rank, settings)
        for key, shape in expected.items():
            if adapter[key].shape != shape:
                raise InputError(
                    f"{where}: {ref}: {key} is {list(adapter[key].shape)}, expected "
                    f"{list(shape)} on the base's {target}",
                    hint=hint,
                )
        by_tensor[target] = edit
    return Source(ref, "lora", folder, adapter, by_tensor, settings, sha256=_sha256(weights))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_sha256(folder: Path) -> str:
    """One sha256 for a checkpoint: of its safetensors files' names and sha256s."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(f"{path.name} {_sha256(path)}\n".encode())
    return digest.hexdigest()


# --- parameters ------------------------------------------------------------------------


def evaluate_setting(setting: Any, tensor: str, t: float) -> Any:
    """mergekit's ``evaluate_setting``: a scalar as it is, a gradient interpolated at
    ``t`` (the layer's place, 0 to 1), conditions by substring of the tensor's name
    (the first that matches); None when no condition matches."""
    if isinstance(setting, ConditionalParameter):
        setting = [setting]
    if isinstance(setting, bool | int | float):
        return setting
    if not setting:
        return None
    if all(isinstance(item, bool | int | float) for item in setting):
        if any(isinstance(item, bool) for item in setting):
            return setting[int(t * (len(setting) - 1))]
        scaled = t * (len(setting) - 1)
        low = int(scaled)
        high = min(len(setting) - 1, low + 1)
        frac = scaled - low
        return (1 - frac) * setting[low] + frac * setting[high]
    for condition in setting:
        if condition.filter in (None, "*") or condition.filter in tensor:
            return evaluate_setting(condition.value, tensor, t)
    return None


def layer_position(tensor: str, layers: int) -> float:
    """mergekit's t: layer / (layers - 1) inside the layers, 0 outside them."""
    layer = layer_of(tensor)
    if layer is None:
        return 0.0
    return layer / (layers - 1) if layers > 1 else 1.0


def parameter_value(name: str, tensor: str, t: float, *settings: dict[str, Any] | None) -> Any:
    """The first value a setting gives (an input's own parameters before the step's)."""
    for source in settings:
        if source and name in source:
            value = evaluate_setting(source[name], tensor, t)
            if value is not None:
                return value
    return None


def check_step(
    step: MergeStep, method: Method, where: str, tensors: dict[str, TensorInfo], layers: int
) -> None:
    """The step's shape for its method and every parameter's name and range."""
    listed = [model.model for model in step.models]
    if method.base == "required" and step.base_model is None:
        raise InputError(f"{where}.base_model: {method.name} needs a base_model")
    counted = len(listed)
    low, high = method.inputs
    if counted < low or (high is not None and counted > high):
        wanted = f"exactly {low}" if low == high else f"at least {low}"
        raise InputError(f"{where}.models: {method.name} takes {wanted} models, not {counted}")
    if method.name == "slerp" and step.base_model not in listed:
        raise InputError(
            f"{where}.models: slerp interpolates from base_model to the other model; "
            "list base_model among the models"
        )
    if method.random and step.random_seed is None:
        raise InputError(
            f"{where}.random_seed: {method.name} draws random masks; give random_seed "
            "so that the release can be repeated"
        )
    if step.random_seed is not None and not method.random:
        raise InputError(f"{where}.random_seed: {method.name} draws nothing at random")
    known = {p.name for p in method.parameters}
    inputs = [m for m in step.models if not is_step_base(step, method, m.model)]
    for label, settings in [("parameters", step.parameters)] + [
        (f"models[{i}].parameters", m.parameters) for i, m in enumerate(step.models)
    ]:
        for name in settings:
            if name not in known:
                raise InputError(
                    f"{where}.{label}.{name}: {method.name} has no parameter {name!r}",
                    hint=f"{method.name} takes " + ", ".join(sorted(known)),
                )
    names = [name for name, info in tensors.items() if info.dtype in FLOAT_DTYPES]
    for parameter in method.parameters:
        per_input = parameter.scope == "input"
        for model in inputs if per_input else [None]:
            label = f"models[{step.models.index(model)}]" if model else "parameters"
            own = model.parameters if model else None
            for name in names:
                value = parameter_value(
                    parameter.name, name, layer_position(name, layers), own, step.parameters
                )
                _checked(value, parameter, f"{where}.{label}.{parameter.name}", name)
    normalize = method.parameter("normalize")
    if normalize is not None and not method.name.endswith("ties") and method.name != "della":
        _check_weight_sum(step, inputs, where, names, layers, normalize.default)


def is_step_base(step: MergeStep, method: Method, ref: str) -> bool:
    """The step's base among its models takes no per-input parameters (task methods)."""
    return method.base == "required" and method.name != "slerp" and ref == step.base_model


def _checked(value: Any, parameter: Any, where: str, tensor: str) -> None:
    if value is None:
        if parameter.required:
            raise InputError(
                f"{where}: missing for {tensor} (the method needs {parameter.name})",
                hint="give a value, or a condition without filter for the other tensors",
            )
        return
    if parameter.kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: {value!r} is not true or false")
        return
    if isinstance(value, bool) or not math.isfinite(float(value)):
        raise InputError(f"{where}: {value!r} is not a finite number")
    if (parameter.low is not None and value < parameter.low) or (
        parameter.high is not None and value > parameter.high
    ):
        raise InputError(f"{where}: {value} is outside [{parameter.low}, {parameter.high}]")


def _check_weight_sum(
    step: MergeStep, inputs: list, where: str, names: list[str], layers: int, default: bool
) -> None:
    """Normalized weights divide by their sum: a sum of zero means nothing."""
    for name in names:
        t = layer_position(name, layers)
        normalize = parameter_value("normalize", name, t, step.parameters)
        if not (default if normalize is None else normalize):
            continue
        total = sum(
            float(parameter_value("weight", name, t, m.parameters, step.parameters) or 0)
            for m in inputs
        )
        if abs(total) < 1e-8:
            raise InputError(
                f"{where}: the models' weights sum to 0 on {name}, and {step.merge_method} "
                "normalizes by their sum",
                hint="give weights that sum to something other than 0, or set normalize: false",
            )


def check_mask(path: Path, base: dict[str, TensorInfo], where: str) -> None:
    """Every mask tensor is a base tensor's shape, finite, within [0, 1]."""
    if not path.is_file():
        raise InputError(f"{where}: {path} is not a file")
    infos = list_tensors(path)
    with open(path, "rb") as handle:
        for info in infos:
            if info.name not in base:
                raise InputError(f"{where}: {path}: {info.name} is not a tensor of the base")
            if info.shape != base[info.name].shape or info.dtype not in FLOAT_DTYPES:
                raise InputError(
                    f"{where}: {path}: {info.name} is {info.dtype} {list(info.shape)}, the "
                    f"base's is {list(base[info.name].shape)} (a float mask of its shape)"
                )
            values = to_float32(read_array(handle, info), info.dtype)
            if not np.all((values >= 0) & (values <= 1)):
                raise InputError(
                    f"{where}: {path}: {info.name} has values outside [0, 1] (or NaN)",
                    hint="a mask scales each delta element by a weight from 0 to 1",
                )


# --- tokenizers ------------------------------------------------------------------------


def _tokenizer_digest(folder: Path) -> str | None:
    """What decides tokens and the chat template, hashed (None: the folder has none)."""
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if "tokenizer_config.json" not in present:
        return None
    digest = hashlib.sha256()
    for name in present:
        data = (folder / name).read_bytes()
        if name == "tokenizer_config.json":  # the saving library's version is no difference
            config = json.loads(data)
            config.pop("transformers_version", None)
            data = json.dumps(config, sort_keys=True).encode()
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def _tokenizer(recipe: MergeRecipe, sources: dict[str, Source], base: Source) -> tuple[Path, str]:
    """The folder whose tokenizer the release ships, and its label.

    The last step's ``tokenizer_source`` decides (``base`` or a model's name); without
    it, the inputs that carry a tokenizer must carry the same one (else which one ships
    is a choice the recipe must make), and the base's ships when none does."""
    assert base.folder is not None
    choice = recipe.steps[-1].tokenizer_source
    if choice is not None:
        if choice == "base":
            return base.folder, "base"
        if choice not in sources or sources[choice].folder is None:
            raise InputError(
                f"merge.recipe.tokenizer_source: {choice!r} is not one of the recipe's models",
                hint="write base, or one of the models as the recipe names it",
            )
        return sources[choice].folder, choice
    carrying = {
        ref: digest
        for ref, source in sources.items()
        if source.folder is not None
        and source.kind != "base"
        and (digest := _tokenizer_digest(source.folder)) is not None
    }
    base_digest = _tokenizer_digest(base.folder)
    if source_refs := sorted(ref for ref, digest in carrying.items() if digest != base_digest):
        if len({carrying[ref] for ref in source_refs}) > 1 or len(source_refs) < len(carrying):
            raise InputError(
                "merge.recipe: the models' tokenizers or chat templates differ ("
                + ", ".join(sorted(carrying))
                + ")",
                hint="set tokenizer_source to the model whose tokenizer the release ships",
            )
        return sources[source_refs[0]].folder, source_refs[0]  # type: ignore[return-value]
    return base.folder, "base"
