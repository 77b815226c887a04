"""Map an adapter's module paths to the base checkpoint's tensor names.

An adapter names modules as the model class it was trained on lays them out
(``model.layers.0.self_attn.q_proj``); a checkpoint names tensors as whoever saved it
did. They differ by wrapper prefixes: a checkpoint saved from the bare ``*Model`` has
no ``model.``; a multimodal checkpoint nests the text model (``model.language_model.``),
in older layouts the other way round (``language_model.model.``).

From the checkpoint's header names alone, no model built:

1. a parameter whose name is a checkpoint tensor's is that tensor;
2. the others are placed by one prefix rewrite at a time (``model.`` -> ``""``,
   ``model.`` -> ``model.language_model.``): the rewrite that places the most of them,
   applied to all; a tie is not guessed at. A rewrite only adds, drops or reorders
   wrapper components: it never turns one layer or module into another.

What names alone cannot place (transformers v5 renames or fuses the keys of some
architectures while loading) is asked of transformers itself, in a short-lived child
process so intake's own process never imports it: ``release.merge.class_names``.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from release.core.child_python import PYTHON, project_env

CHILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class ParameterMap:
    """Model parameter name -> checkpoint tensor name, for the parameters placed."""

    targets: dict[str, str]
    model_class: str | None
    """The model class whose names these are: the one the adapter records, else the
    checkpoint's own (or the one transformers' mapping found)."""


@dataclass(frozen=True)
class _Rewrite:
    """Replace the leading components ``old`` of a name by ``new`` (either may be "")."""

    old: str
    new: str

    def apply(self, name: str) -> str | None:
        if self.old and not name.startswith(self.old + "."):
            return None
        rest = name.removeprefix(self.old + ".") if self.old else name
        return f"{self.new}.{rest}" if self.new else rest


def _heads_by_tail(names: Iterable[str]) -> dict[str, set[str]]:
    """For every dotted tail of at least two components, the heads that precede it:
    ``a.b.c.weight`` gives ``c.weight`` -> {``a.b``}, ``b.c.weight`` -> {``a``}..."""
    heads: dict[str, set[str]] = defaultdict(set)
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts) - 1):
            heads[".".join(parts[cut:])].add(".".join(parts[:cut]))
    return heads


def _candidates(name: str, heads: dict[str, set[str]]) -> Iterable[_Rewrite]:
    """Rewrites that turn ``name`` into a checkpoint name sharing its longest tail."""
    parts = name.split(".")
    for cut in range(len(parts) - 1):
        found = heads.get(".".join(parts[cut:]))
        if found:
            old = ".".join(parts[:cut])
            return [_Rewrite(old, new) for new in sorted(found) if _wrapper_change(old, new)]
    return []


def _wrapper_change(old: str, new: str) -> bool:
    """Whether ``old`` -> ``new`` only adds, drops or reorders wrapper components
    (``model`` -> ``model.language_model``), never swaps one module or layer index for
    another (``layers.7`` -> ``layers.1``, ``vision`` -> ``audio``)."""
    before, after = set(old.split(".")) - {""}, set(new.split(".")) - {""}
    indexed = any(part.isdigit() for part in before | after)
    return old != new and not indexed and (before <= after or after <= before)


def _placed(rewrite: _Rewrite, names: Iterable[str], free: set[str]) -> dict[str, str]:
    """What ``rewrite`` places of ``names`` on checkpoint tensors still ``free``."""
    placed: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        target = rewrite.apply(name)
        if target is not None and target in free and target not in taken:
            placed[name] = target
            taken.add(target)
    return placed


def map_by_names(checkpoint_names: Collection[str], wanted: Collection[str]) -> dict[str, str]:
    """Parameter -> checkpoint name for the ``wanted`` parameters that names alone place."""
    checkpoint = set(checkpoint_names)
    targets = {name: name for name in wanted if name in checkpoint}
    heads = _heads_by_tail(checkpoint)
    while left := sorted(set(wanted) - targets.keys()):
        free = checkpoint - set(targets.values())
        votes = Counter(rewrite for name in left for rewrite in _candidates(name, heads))
        scored = sorted(
            ((len(_placed(rewrite, left, free)), rewrite) for rewrite in votes),
            key=lambda item: -item[0],
        )
        if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            break  # nothing more to place, or two rewrites place as much: not ours to pick
        targets |= _placed(scored[0][1], left, free)
    return targets


def parameter_to_checkpoint(
    base_dir: Path,
    config: dict,
    checkpoint_names: Collection[str],
    wanted: Collection[str],
    *,
    preferred_class: str | None = None,
    trust_remote_code: bool = False,
) -> ParameterMap:
    """Place the ``wanted`` parameters on the checkpoint's names: by names alone, else
    (for what they leave) by transformers in a child process, whichever places more.
    Parameters neither can place are left out (the caller reports them)."""
    targets = map_by_names(checkpoint_names, wanted)
    model_class = preferred_class or next(iter(config.get("architectures") or []), None)
    if len(targets) == len(wanted):
        return ParameterMap(targets, model_class)
    asked = _ask_transformers(
        base_dir, checkpoint_names, wanted, preferred_class, trust_remote_code
    )
    if len(asked.targets) > len(targets):
        return asked
    return ParameterMap(targets, model_class)


def _ask_transformers(
    base_dir: Path,
    checkpoint_names: Collection[str],
    wanted: Collection[str],
    preferred_class: str | None,
    trust_remote_code: bool,
) -> ParameterMap:
    """``release.merge.class_names`` in a child process; nothing placed if it fails
    (the caller's error then names the first parameter left)."""
    request = {
        "base_dir": str(base_dir),
        "checkpoint_names": sorted(checkpoint_names),
        "wanted": sorted(wanted),
        "preferred_class": preferred_class,
        "trust_remote_code": trust_remote_code,
    }
    try:
        done = subprocess.run(
            [*PYTHON, "-m", "release.merge.class_names"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=project_env(),
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
        answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        answer = {}
    return ParameterMap(answer.get("targets", {}), answer.get("model_class") or None)


def placement(checkpoint_names: Iterable[str]) -> str:
    """Where edited tensors sit, part by part: "model.language_model 28, model.audio_tower
    3" (a part is the name before ``.layers.``, else before the module's own name), so a
    plain target list that also reached a multimodal model's towers shows it."""
    parts: Counter[str] = Counter()
    for name in checkpoint_names:
        head, layers, _ = name.partition(".layers.")
        parts[head if layers else ".".join(name.split(".")[:-2]) or name] += 1
    return ", ".join(f"{part} {count}" for part, count in sorted(parts.items()))
