"""Adapter intake: prove an adapter belongs to the base before anything is merged.

A LoRA merged onto the wrong base silently ruins a model, so intake checks, in order of
cost: the adapter's declared base (name and revision) against the spec's; that every
module it edits exists in the base with the shapes it expects and a float dtype; and the
base's fingerprint (``release.checkpoint.fingerprint``) against the one recorded for the same
declared base, in the spec or in the previous release's manifest.

Its output folder is the adapter as the merge will read it: adapter_config.json,
adapter_model.safetensors (converted from a pickle when the spec allows one), the
adapter's tokenizer files if it has them, and ``targets.json``, which maps each edited
model parameter to the base checkpoint tensor it lands on.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cards.schema import is_repo_id
from release.checkpoint.adapter import adapter_folder, adapter_label, adapter_snapshot
from release.checkpoint.base import (
    DEQUANTIZED_DIR,
    TOKENIZER_FILES,
    base_citations,
    base_label,
    base_snapshot,
    resolve_base_dir,
)
from release.checkpoint.config import read_config, text_config
from release.checkpoint.dequantize import dequantize_checkpoint, dequantize_needs
from release.checkpoint.fingerprint import base_fingerprint
from release.checkpoint.safetensors import (
    FLOAT_DTYPES,
    TORCH_NAMES,
    TensorInfo,
    list_checkpoint,
    read_array,
    to_float32,
)
from release.checkpoint.safetensors import list_tensors as list_file_tensors
from release.checkpoint.snapshot import Snapshot, resolve_commit
from release.core.errors import InputError, ReleaseError
from release.core.files import atomic_write_text
from release.core.manifest import Manifest
from release.core.relay import relay
from release.merge import lora, vocabulary
from release.merge.base_checks import (
    check_chat_template,
    check_quantized,
    check_remote_code,
    check_stop_tokens,
    check_target_modules,
)
from release.merge.facts import AdapterFacts
from release.merge.module_names import parameter_to_checkpoint, placement
from release.merge.settings import IntakeSettings
from release.preflight import measure, refuse
from release.spec.base_names import unquantized_repo
from release.spec.schema import BaseModelSpec

TARGETS_NAME = "targets.json"


@dataclass
class _Mismatch:
    """The adapter does not fit the base: the one-line error, naming both."""

    adapter: str
    base: str
    subject: str = ""
    """What does not fit, where not the adapter (``merge.recipe``)."""

    def error(self, what: str, hint: str) -> InputError:
        who = self.subject or f"adapter {self.adapter}"
        return InputError(f"{who} does not fit base {self.base}: {what}", hint=hint)


@dataclass(frozen=True)
class _Base:
    """The base as intake found it: its folder (the dequantized copy, with
    base.dequantize), tensors and config, and what the Hub downloads pinned."""

    folder: Path
    tensors: dict[str, TensorInfo]
    config: dict[str, Any]
    quantized: str | None
    pinned: dict[str, str | None]


@dataclass(frozen=True)
class TensorChecked:
    """Intake's progress: ``done`` of the adapter's ``total`` tensors read and checked."""

    done: int
    total: int
    name: str


@dataclass(frozen=True)
class Notice:
    """A warning for the user that does not stop intake."""

    message: str


def inspect(
    intake: IntakeSettings, out_dir: Path, last: AdapterFacts | None = None
) -> Generator[str | Notice | TensorChecked, None, AdapterFacts]:
    """Check the adapter against the base and write the intake folder into ``out_dir``.

    ``intake`` is all it reads of the spec (the adapter stage's key). ``last`` is the
    previous run's facts, whose pinned commits a rerun compares with.
    Yields log lines, notices and a ``TensorChecked`` per adapter tensor read; returns
    the facts for the manifest. Without an adapter (a merge recipe's release) the
    stage runs ``inspect_base`` instead."""
    spec_base, spec_adapter = intake.base, intake.adapter
    assert spec_adapter is not None, "a release without adapter is inspect_base's"
    adapter_hub = adapter_snapshot(spec_adapter)
    adapter_dir = adapter_folder(spec_adapter, adapter_hub)
    label = base_label(spec_base)
    mismatch = _Mismatch(adapter_label(spec_adapter), label)
    if not adapter_dir.is_dir():
        raise InputError(f"adapter.path: {adapter_dir} is not a folder")
    raw, settings = lora.read_adapter_config(adapter_dir)
    _check_declared_base(settings, spec_base, mismatch)

    found = yield from _base_checkpoint(spec_base, out_dir, last, adapter_hub)
    base_dir, base, config, quantized = found.folder, found.tensors, found.config, found.quantized
    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    check_stop_tokens(adapter_dir if has_tokenizer else base_dir, base_dir)
    check_chat_template(adapter_dir if has_tokenizer else base_dir)
    check_remote_code(base_dir, config, spec_base.trust_remote_code)
    check_target_modules(settings.target_modules, base, adapter_dir / lora.CONFIG_NAME)

    staged = out_dir / lora.WEIGHTS_NAME
    adapter_format = _stage_weights(adapter_dir, staged, intake.allow_pickle)
    try:
        adapter = {info.name: info for info in list_file_tensors(staged)}
    except InputError as error:  # name the user's file, not the staged copy of it
        source = str(adapter_dir / lora.WEIGHTS_NAME)
        raise InputError(error.message.replace(str(staged), source), hint=error.hint) from None
    if not adapter:
        raise InputError(
            f"{adapter_dir / lora.WEIGHTS_NAME}: holds no tensors; a merge would change nothing",
            hint="point adapter.path at the folder PEFT's save_pretrained wrote",
        )
    yield from _check_finite(adapter, adapter_dir / lora.WEIGHTS_NAME)
    edits = lora.group_edits(list(adapter), adapter_dir / lora.WEIGHTS_NAME)
    head = vocabulary.tied_head(edits, base, adapter)
    placed = parameter_to_checkpoint(
        base_dir,
        config,
        list(base),
        set(edits) - {head.parameter} if head else set(edits),
        preferred_class=settings.base_model_class,
        trust_remote_code=spec_base.trust_remote_code,
    )
    targets = dict(placed.targets)
    yield f"adapter modules placed on {placed.model_class or 'the base'}'s checkpoint names: " + (
        placement(targets.values()) or "none"
    )
    if head and head.untied and edits[head.parameter].replacement is None:
        raise InputError(
            f"{mismatch.adapter}: trainable tokens of lm_head at other rows than embed_tokens' "
            "on a base that ties the two: PEFT's merge_and_unload writes both into the one "
            "tied matrix, which is not the model that was trained",
            hint="merge it onto the base untied (lm_head.weight a copy of embed_tokens.weight, "
            "tie_word_embeddings: false; point base.path at that copy), or retrain with the "
            "same rows for both (PEFT's ensure_weight_tying=True)",
        )
    if head and head.untied:
        targets[head.parameter] = vocabulary.HEAD
        yield Notice(
            "the base ties lm_head to embed_tokens, but the adapter trained them apart: the "
            "merged model unties them (its own lm_head.weight, tie_word_embeddings: false)"
        )
    elif head:
        yield "the adapter's lm_head copy is its embed_tokens copy: they stay tied"
    vocab_size = text_config(config).get("vocab_size")
    for parameter, edit in sorted(edits.items()):
        if head is None or parameter != head.parameter:
            target = targets.get(parameter)
            _check_edit(edit, target, base, adapter, settings, mismatch, vocab_size)
    grown_to = _check_vocabulary(edits, targets, base, adapter, vocab_size, mismatch)
    if grown_to:
        added = grown_to - (vocab_size or 0)
        yield f"the adapter adds {added} tokens: vocabulary {vocab_size} → {grown_to}"

    fingerprint = base_fingerprint(base)
    yield f"base fingerprint {fingerprint[:16]}…"
    _check_fingerprint(fingerprint, intake, mismatch)

    shutil.copyfile(adapter_dir / lora.CONFIG_NAME, out_dir / lora.CONFIG_NAME)
    for name in TOKENIZER_FILES:
        if (adapter_dir / name).is_file():
            shutil.copyfile(adapter_dir / name, out_dir / name)
    atomic_write_text(out_dir / TARGETS_NAME, json.dumps(targets, indent=2, sort_keys=True))
    facts = _facts(raw, settings, edits, adapter, base, staged, adapter_format, spec_base)
    return facts.model_copy(
        update={
            "dequantized_base": quantized,
            "base_fingerprint": fingerprint,
            "base_model_class": placed.model_class,
            "base_citations": base_citations(base_dir),
            **found.pinned,
        }
    )


def inspect_base(
    intake: IntakeSettings, out_dir: Path, last: AdapterFacts | None = None
) -> Generator[str | Notice | TensorChecked, None, AdapterFacts]:
    """A merge recipe's release (no adapter): intake's checks of the base alone, as
    ``inspect`` makes them (quantized, stop tokens, chat template, remote code, the
    fingerprint against the spec's and the last release's), so the base's commit is
    pinned and its fingerprint keys the eval's cached figures as for an adapter. The
    recipe's own checks (each input against the base) are the merge stage's."""
    spec_base = intake.base
    found = yield from _base_checkpoint(spec_base, out_dir, last, None)
    check_stop_tokens(found.folder, found.folder)
    check_chat_template(found.folder)
    check_remote_code(found.folder, found.config, spec_base.trust_remote_code)
    fingerprint = base_fingerprint(found.tensors)
    yield f"base fingerprint {fingerprint[:16]}…"
    mismatch = _Mismatch("", base_label(spec_base), subject="merge.recipe")
    _check_fingerprint(fingerprint, intake, mismatch)
    return AdapterFacts(
        **_base_facts(found.tensors, spec_base),
        base_fingerprint=fingerprint,
        dequantized_base=found.quantized,
        base_citations=base_citations(found.folder),
        **found.pinned,
    )


def _base_checkpoint(
    spec_base: BaseModelSpec,
    out_dir: Path,
    last: AdapterFacts | None,
    adapter_hub: Snapshot | None,
) -> Generator[str | Notice | TensorChecked, None, _Base]:
    """The base found (downloaded at a pinned commit from the Hub), refused when it is
    quantized, or dequantized into ``out_dir`` as base.dequantize asks."""
    base_hub = base_snapshot(spec_base)
    base_dir = base_hub.folder if base_hub else resolve_base_dir(spec_base)
    pinned = _pinned(base_hub, adapter_hub)
    for field, snapshot in (("base", base_hub), ("adapter", adapter_hub)):
        if snapshot is not None:
            yield f"{field} {snapshot.repo_id} at commit {snapshot.commit}"
            if moved := _moved(field, snapshot.repo_id, snapshot.revision, snapshot.commit, last):
                yield Notice(moved)
    base = list_checkpoint(base_dir)
    config = read_config(base_dir)
    quantized = check_quantized(
        base_label(spec_base), config, base, spec_base.repo_id, dequantize=spec_base.dequantize
    )
    if quantized:
        base_dir = yield from _dequantized(base_dir, out_dir / DEQUANTIZED_DIR, quantized)
        base = list_checkpoint(base_dir)
        config = read_config(base_dir)
    return _Base(base_dir, base, config, quantized, pinned)


def _dequantized(
    base_dir: Path, target: Path, found: str
) -> Generator[Notice | TensorChecked, None, Path]:
    """The quantized base's weights dequantized into ``target`` (base.dequantize)."""
    yield Notice(
        f"base is quantized ({found}): merging onto its weights dequantized, as "
        "base.dequantize asks; they keep their 4-bit rounding, so the merge differs from "
        "one onto the full-precision base (the card says so)"
    )
    if skipped := refuse(AdapterFacts.stage, dequantize_needs(base_dir), measure(target.parent)):
        yield Notice(skipped)
    yield from relay(
        dequantize_checkpoint(base_dir, target),
        lambda step: TensorChecked(step.done, step.total, f"dequantizing {step.name}"),
    )
    return target


def _last_pin(field: str, last: AdapterFacts) -> tuple[str | None, str | None, str | None]:
    """What the last run asked of the base or the adapter, and the commit it resolved."""
    if field == "base":
        return last.base_repo_id, last.base_revision, last.base_commit
    return last.adapter_repo_id, last.adapter_revision, last.adapter_commit


def _moved(
    field: str, repo_id: str, revision: str | None, commit: str, last: AdapterFacts | None
) -> str | None:
    """The warning for a rerun whose revision now resolves to another commit than the
    last run's did (None when it does not): a rerun is meant to repeat a release."""
    if last is None:
        return None
    last_repo, last_revision, before = _last_pin(field, last)
    same_ask = (last_repo, last_revision) == (repo_id, revision)
    if not same_ask or before is None or before == commit:
        return None
    asked = revision or "the default branch"
    return (
        f"{field}.revision: {repo_id} {asked} now resolves to commit {commit[:12]}, "
        f"the last run used {before[:12]}; set {field}.revision: {before} to repeat that run"
    )


def moved_since(intake: IntakeSettings, last: AdapterFacts) -> list[str]:
    """For a rerun that keeps intake's result: each Hub source whose revision now
    resolves to another commit than the one the release was made from. The release
    keeps its pinned commits; this says they are no longer the branch's head."""
    sources = {
        "base": (intake.base.repo_id if intake.base.path is None else None, intake.base.revision),
        "adapter": (intake.adapter.repo_id, intake.adapter.revision)
        if intake.adapter
        else (None, None),
    }
    notes = []
    for field, (repo_id, revision) in sources.items():
        if repo_id is None or _last_pin(field, last)[2] is None:
            continue
        try:
            commit = resolve_commit(repo_id, revision, field=field)
        except ReleaseError as error:  # offline: the pinned commits stand, unchecked
            notes.append(f"{field}: cannot check whether {repo_id} moved ({error})")
            continue
        if moved := _moved(field, repo_id, revision, commit, last):
            notes.append(f"{moved} (kept: --force adapter takes the new commit)")
    return notes


def _pinned(base: Snapshot | None, adapter: Snapshot | None) -> dict[str, str | None]:
    """The commit each Hub download resolved to: the stages after intake fetch these,
    so a release is made of one commit of each repo. Nothing for local folders, whose
    facts (and so the manifests of local releases) stay as they were."""
    facts: dict[str, str | None] = {}
    if base is not None:
        facts["base_commit"] = base.commit
    if adapter is not None:
        facts |= {
            "adapter_repo_id": adapter.repo_id,
            "adapter_revision": adapter.revision,
            "adapter_commit": adapter.commit,
        }
    return facts


def _check_declared_base(
    settings: lora.LoraSettings, spec_base: BaseModelSpec, mismatch: _Mismatch
) -> None:
    declared = settings.base_model_name_or_path
    repo_id = spec_base.repo_id
    by_name = (
        declared
        and repo_id
        and is_repo_id(declared, owner_required=True)
        and not Path(declared).exists()
    )
    plain = unquantized_repo(declared) if by_name else None
    if by_name and repo_id.lower() not in {declared.lower(), (plain or "").lower()}:
        hint = f"set base.repo_id to {declared}, or use the adapter trained on {repo_id}"
        if plain:  # unsloth's QLoRA: merged onto the weights its 4-bit base was made from
            hint = (
                f"set base.repo_id to {plain}, the unquantized weights of the 4-bit "
                f"{declared} (or base.path to a copy of them), or use the adapter "
                f"trained on {repo_id}"
            )
        raise mismatch.error(f"adapter_config.json says it was trained on {declared}", hint=hint)
    if settings.revision and spec_base.revision and settings.revision != spec_base.revision:
        raise mismatch.error(
            f"adapter_config.json says it was trained on revision {settings.revision}",
            hint=f"set base.revision to {settings.revision}",
        )


def _stage_weights(adapter_dir: Path, target: Path, allow_pickle: bool) -> str:
    """Copy the adapter's weights to ``target`` as safetensors; returns the source format."""
    source = adapter_dir / lora.WEIGHTS_NAME
    if source.is_file():
        shutil.copyfile(source, target)
        return "safetensors"
    pickled = adapter_dir / lora.PICKLE_NAME
    if not pickled.is_file():
        raise InputError(
            f"{adapter_dir}: no {lora.WEIGHTS_NAME}",
            hint="point adapter.path at the folder PEFT's save_pretrained wrote",
        )
    if not allow_pickle:
        raise InputError(
            f"{pickled}: the adapter is a pickle only; model-release does not load pickles",
            hint="re-save it with safe_serialization=True, or set adapter.allow_pickle: true "
            "(loaded with torch.load(weights_only=True))",
        )
    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses arbitrary objects; say so in one line
        raise InputError(f"{pickled}: cannot load safely ({str(exc).splitlines()[0]})") from None
    save_file({key: value.contiguous() for key, value in state.items()}, target)
    return "pickle"


def _check_finite(adapter: dict[str, TensorInfo], source: Path) -> Iterator[TensorChecked]:
    """NaN or inf in an adapter spreads into every merged weight it touches: refuse it."""
    import numpy as np

    for done, info in enumerate(adapter.values(), start=1):
        if info.dtype in FLOAT_DTYPES:
            with open(info.file, "rb") as handle:
                values = to_float32(read_array(handle, info), info.dtype)
            if not np.isfinite(values).all():
                raise InputError(
                    f"{source}: tensor {info.name} holds NaN or inf",
                    hint="the training diverged; release an earlier checkpoint",
                )
        yield TensorChecked(done, len(adapter), info.name)


def _check_edit(
    edit: lora.ModuleEdit,
    target: str | None,
    base: dict[str, TensorInfo],
    adapter: dict[str, TensorInfo],
    settings: lora.LoraSettings,
    mismatch: _Mismatch,
    vocab_size: int | None,
) -> None:
    hint = "the adapter was trained on another model; point base at that model"
    if target is None:
        raise mismatch.error(f"the base has no parameter {edit.parameter}", hint=hint)
    weight = base[target]
    if weight.dtype not in FLOAT_DTYPES:
        raise mismatch.error(f"base tensor {target} is {weight.dtype}, not a float", hint=hint)
    rank = adapter[edit.lora_a].shape[0] if edit.lora_a else 0
    if edit.lora_a and rank != settings.rank(edit.module):
        raise InputError(
            f"{mismatch.adapter}: {edit.lora_a} has rank {rank}, but adapter_config.json "
            f"gives {edit.module} rank {settings.rank(edit.module)}",
            hint="fix r / rank_pattern in adapter_config.json, or re-save the adapter with PEFT",
        )
    expected = lora.expected_shapes(edit, weight.shape, rank, settings)
    rows = adapter[edit.replacement].shape[0] if edit.replacement else weight.shape[0]
    if edit.tokens and any(not 0 <= i < rows for i in settings.token_indices(edit.module)):
        raise mismatch.error(
            f"trainable_token_indices of {edit.module} reach past its {rows} rows",
            hint="point base at the model the tokens were added to, or save the adapter "
            "with its resized embeddings (PEFT's save_embedding_layers=True)",
        )
    for key in edit.keys:
        info = adapter[key]
        if info.dtype not in FLOAT_DTYPES:
            raise InputError(f"{mismatch.adapter}: tensor {key} is {info.dtype}, not a float")
        grown = key == edit.replacement and vocabulary.grows(weight.shape, info.shape, vocab_size)
        if key in expected and info.shape != expected[key] and not grown:
            raise mismatch.error(
                f"{key} is {list(info.shape)}, but the base's {target} is "
                f"{list(weight.shape)} (expected {list(expected[key])})",
                hint=hint,
            )


def _check_vocabulary(
    edits: dict[str, lora.ModuleEdit],
    targets: dict[str, str],
    base: dict[str, TensorInfo],
    adapter: dict[str, TensorInfo],
    vocab_size: int | None,
    mismatch: _Mismatch,
) -> int | None:
    """The vocabulary the adapter grows the base to (None: it keeps the base's), after
    checking that every vocabulary-sized tensor grows alike."""
    copies = {
        target: adapter[edit.replacement].shape[0]
        for parameter, edit in edits.items()
        if edit.replacement and (target := targets.get(parameter))
    }
    rows = {
        target: count
        for target, count in copies.items()
        if target not in base or count != base[target].shape[0]
    }
    if not rows or vocab_size is None or set(rows.values()) == {vocab_size}:
        return None  # no added rows (an untied head of the base's size at most)
    left = sorted(
        name
        for name, info in base.items()
        if len(info.shape) == 2 and info.shape[0] == vocab_size and name not in rows
    )
    if len(set(rows.values())) > 1 or left:
        sizes = ", ".join(f"{name} to {count}" for name, count in sorted(rows.items()))
        raise mismatch.error(
            f"the adapter grows the vocabulary unevenly: {sizes} rows"
            + (f", but leaves {', '.join(left)} at {vocab_size}" if left else ""),
            hint="save the adapter with modules_to_save holding every vocabulary-sized "
            "module (embed_tokens and lm_head) after resize_token_embeddings",
        )
    return next(iter(rows.values()))


def _previous_fingerprints(previous: list[Path], base_id: str) -> Iterator[tuple[str, str]]:
    """(where, fingerprint) recorded for ``base_id`` by the previous release's manifest."""
    for path in previous:
        if path.suffix != ".json" or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if not isinstance(data, dict) or "stages" not in data:
            continue  # stored eval results, not a manifest
        manifest = Manifest.load(path)
        facts = AdapterFacts.of(manifest)
        if facts and facts.base_id == base_id and facts.base_fingerprint:
            yield f"the base of release v{manifest.version} ({path})", facts.base_fingerprint


def _check_fingerprint(fingerprint: str, intake: IntakeSettings, mismatch: _Mismatch) -> None:
    expected: list[tuple[str, str]] = []
    if intake.base.fingerprint:
        expected.append(("base.fingerprint in the spec", intake.base.fingerprint))
    expected += _previous_fingerprints(intake.previous, base_label(intake.base))
    if intake.allow_fingerprint_mismatch:
        return
    for where, value in expected:
        if value.lower() != fingerprint:
            raise mismatch.error(
                f"declared base {mismatch.base}, but its weights differ from {where}: "
                f"fingerprint {fingerprint[:16]}… != {value[:16]}…",
                hint="point base at the weights the adapter was trained on; if the base "
                "was changed on purpose, set base.allow_fingerprint_mismatch: true",
            )


def _facts(
    raw: dict[str, Any],
    settings: lora.LoraSettings,
    edits: dict[str, lora.ModuleEdit],
    adapter: dict[str, TensorInfo],
    base: dict[str, TensorInfo],
    staged: Path,
    adapter_format: str,
    spec_base: BaseModelSpec,
) -> AdapterFacts:
    # A base_layer copy (PEFT's save_embedding_layers) is a snapshot of the base, not
    # trained; everything else in the file is.
    copies = {edit.replacement for edit in edits.values() if edit.kind and edit.replacement}
    copies |= {edit.snapshot for edit in edits.values() if edit.snapshot}
    copies |= {  # a grown copy saved twice counts once
        key for edit in edits.values() for key in edit.keys if ".modules_to_save." in key
    } - {edit.replacement for edit in edits.values()}
    trainable = sum(info.numel for key, info in adapter.items() if key not in copies)
    adapter_dtypes = sorted({TORCH_NAMES.get(i.dtype, i.dtype) for i in adapter.values()})
    return AdapterFacts(
        peft_type=str(raw["peft_type"]).upper(),
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
        init_lora_weights=settings.init_lora_weights,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save,
        rank_pattern=settings.rank_pattern,
        alpha_pattern=settings.alpha_pattern,
        edited_parameters=len(edits),
        trainable_parameters=trainable,
        adapter_bytes=staged.stat().st_size,
        adapter_format=adapter_format,
        adapter_dtypes=adapter_dtypes,
        declared_base=settings.base_model_name_or_path,
        **_base_facts(base, spec_base),
    )


def _base_facts(base: dict[str, TensorInfo], spec_base: BaseModelSpec) -> dict[str, Any]:
    """What intake records of the base: which it is, its size and its main dtype."""
    dtype_bytes: Counter[str] = Counter()
    for info in base.values():
        dtype_bytes[info.dtype] += info.nbytes
    return {
        "base_id": base_label(spec_base),
        "base_repo_id": spec_base.repo_id,
        "base_revision": spec_base.revision,
        "base_parameters": sum(info.numel for info in base.values()),
        "base_dtype": TORCH_NAMES.get(dtype_bytes.most_common(1)[0][0], "mixed"),
        "base_tensors": len(base),
    }
