"""Release notes: what changed since the last release, in Markdown.

Scores up and down (with the gate's thresholds), tasks added or dropped, released files
added, removed or resized, what each GGUF type loses against the merged model (KL
divergence, same top-1, perplexity ratio: ``release.gguf.quality``) where it changed,
base and adapter changes, tool versions that changed. Every
line comes from the two manifests (``release.report.history``); a section with nothing
in it is left out, so the notes name exactly what changed. ``model-release notes``
prints them, the push uses them as the Hub commit description, the Action writes them
to the job summary and its ``notes`` output.
"""

from __future__ import annotations

from pathlib import Path

from cards.facts import size
from release.core.errors import InputError
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import evaluated
from release.evaluate.gate import compare
from release.report.compare import DropLimits, comparison_markdown
from release.report.history import History, ReleaseEntry, history
from release.spec.schema import ReleaseSpec


def notes_of(spec: ReleaseSpec) -> str:
    """The notes of ``spec``'s release, from the manifest in its workspace."""
    path = spec.workspace / MANIFEST_NAME
    if not path.is_file():
        raise InputError(
            f"{path}: no manifest yet", hint="run `model-release run` first; the notes read it"
        )
    notes = manifest_notes(Manifest.load(path), spec.workspace, spec.eval)
    if not notes:
        raise InputError(
            f"{path}: the evaluate stage has not run, so the last release is not known",
            hint="run `model-release run` with eval.previous set; the notes compare with it",
        )
    return notes


def manifest_notes(manifest: Manifest, workspace: Path, limits: DropLimits) -> str:
    """The notes of a release whose manifest (lying in ``workspace``) is in hand (the
    push's, being written); empty before the evaluate stage has recorded which release
    was the last one. ``limits``: the gate's, which the notes state beside the scores."""
    if evaluated(manifest) is None:
        return ""
    return release_notes(history(manifest, workspace), limits)


def release_notes(history: History, limits: DropLimits) -> str:
    current = history.entries[0]
    last = history.last_released()
    title = f"## {current.name} {current.version}"
    if last is None:
        return f"{title}\n\nThe first release: no earlier release to compare with.\n"
    held = [e for e in history.entries[1 : history.entries.index(last)] if not e.released]
    when = f"released {last.date[:10]}" if last.date else "undated"
    lines = [title, "", f"Changes since {last.version} ({when})."]
    lines += ["", *(f"- {e.version} was not released: {e.refused}" for e in held)] if held else []
    sections = [
        ("Scores", _scores(current, last, limits)),
        ("Tasks", _tasks(current, last)),
        ("Files", _files(current, last)),
        ("Quants", _quants(current, last)),
        ("Base and adapter", _model(current, last)),
        ("Tools", _changed(current.tools, last.tools)),
    ]
    for heading, body in sections:
        if body:
            lines += ["", f"### {heading}", "", *body]
    if not any(body for _, body in sections):
        lines += ["", "Nothing changed."]
    return "\n".join(lines) + "\n"


def _scores(current: ReleaseEntry, last: ReleaseEntry, limits: DropLimits) -> list[str]:
    verdict = compare(
        current.scores,
        last.scores,
        max_task_drop=limits.max_task_drop,
        max_average_drop=limits.max_average_drop,
    )
    if not verdict.compared and not verdict.flagged:
        return []
    return comparison_markdown(verdict, last.version, current.version, limits).splitlines()


def _tasks(current: ReleaseEntry, last: ReleaseEntry) -> list[str]:
    now, before = _labels(current), _labels(last)
    added = [f"- added: {label}" for key, label in now.items() if key not in before]
    return added + [f"- dropped: {label}" for key, label in before.items() if key not in now]


def _labels(entry: ReleaseEntry) -> dict[tuple[str, str, str], str]:
    return {r.key: r.label for r in entry.scores}


def _files(current: ReleaseEntry, last: ReleaseEntry) -> list[str]:
    lines = [f"- added: `{p}` ({size(n)})" for p, n in current.files.items() if p not in last.files]
    lines += [f"- removed: `{p}`" for p in last.files if p not in current.files]
    lines += [
        f"- resized: `{p}` {size(last.files[p])} → {size(n)}"
        for p, n in current.files.items()
        if p in last.files and last.files[p] != n
    ]
    return lines


QUANT_FIGURES = {
    "KLD mean": lambda q: f"{q.kld_mean:.4g}",
    "KLD 99%": lambda q: f"{q.kld_p99:.4g}",
    "same top-1": lambda q: f"{q.same_top1:.1%}",
    "PPL ratio": lambda q: f"{q.ppl_ratio:.3f}",
}
"""The figures the GGUF card's file table shows, as the notes compare them."""


def _quants(current: ReleaseEntry, last: ReleaseEntry) -> list[str]:
    """Each GGUF type measured in both releases whose figures read differently; one
    measured on another text (or another cut of it) says so instead."""
    lines = []
    for kind, now in current.quants.items():
        before = last.quants.get(kind)
        if before is None:
            continue
        if (before.text, before.chunk, before.tokens) != (now.text, now.chunk, now.tokens):
            lines.append(
                f"- {kind}: measured on another text ({before.text}, {before.tokens} tokens "
                f"before; {now.text}, {now.tokens} now)"
            )
            continue
        pairs = {name: (shown(before), shown(now)) for name, shown in QUANT_FIGURES.items()}
        if any(old != new for old, new in pairs.values()):
            lines.append(
                f"- {kind}: "
                + ", ".join(f"{name} {old} → {new}" for name, (old, new) in pairs.items())
            )
    return lines


def _model(current: ReleaseEntry, last: ReleaseEntry) -> list[str]:
    pairs = {
        "base": (last.base, current.base),
        "base revision": (last.base_revision, current.base_revision),
        "adapter rank": (last.rank, current.rank),
        "adapter targets": (", ".join(last.targets), ", ".join(current.targets)),
    }
    return [f"- {what}: {old} → {new}" for what, (old, new) in pairs.items() if old != new]


def _changed(now: dict[str, str], before: dict[str, str]) -> list[str]:
    return [
        f"- {tool}: {before.get(tool, 'not used')} → {now.get(tool, 'not used')}"
        for tool in sorted({*now, *before})
        if now.get(tool) != before.get(tool)
    ]
