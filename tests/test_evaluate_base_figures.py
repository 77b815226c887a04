"""The base's eval figures kept between releases (``release.evaluate.base_figures``): a
second adapter on the same base reads the base's perplexity and probe logits instead of
computing them, and gets the figures a run without the cache computes; another held-out
text or another dtype misses. Each perplexity pass reports its progress chunk by chunk.

Runs the real stages (adapter, merge, evaluate) on the tiny Llama with two adapters made
by peft (``tiny_adapter``: q, v, up; ``tiny_qv_adapter``: q, v)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from release.core.events import Log, Progress
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.checks import model_checks
from release.evaluate.facts import EvaluateFacts
from release.evaluate.loading import LoadPlan
from release.evaluate.settings import EvaluateSettings
from release.reference.heldout import CHUNK_TOKENS
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from tests.support.reporters import SilentReporter


def _heldout(path: Path, characters: int) -> Path:
    """The shipped held-out text's start."""
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    path.write_text(text[:characters], encoding="utf-8")
    return path


def _spec(root: Path, base: Path, adapter: Path) -> ReleaseSpec:
    shutil.copytree(adapter, root / "adapter")
    heldout = _heldout(root / "heldout.txt", 3600)  # two chunks of 512 tokens
    # a random model cannot chat: the checks here are the others
    evaluate = {"prompts": [], "heldout_text": str(heldout)}
    return ReleaseSpec.model_validate(
        {
            "name": "figures",
            "version": "0.1.0",
            "base": {"path": str(base)},
            "adapter": {"path": str(root / "adapter")},
            "workspace": str(root / "build"),
            "eval": evaluate,
        }
    )


def _evaluate(spec: ReleaseSpec, *, force: bool = False) -> tuple[EvaluateFacts, list]:
    """The release through its evaluate stage: the stage's facts and the events."""
    run = run_release(spec, only=["adapter", "merge", "evaluate"], force=["evaluate"] * force)
    events = list(run)
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    return EvaluateFacts.model_validate(manifest.stages["evaluate"].facts), events


def _passes(events: list, what: str) -> list[Progress]:
    return [e for e in events if isinstance(e, Progress) and e.message.startswith(what)]


@pytest.fixture(scope="module")
def two_releases(tiny_llama_dir, tiny_adapter, tiny_qv_adapter, tmp_path_factory):
    """The first adapter released on the base, then the second, sharing one cache."""
    root = tmp_path_factory.mktemp("two-releases")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_RELEASE_EVAL_CACHE", str(root / "cache"))
        first = _evaluate(_spec(root / "first", tiny_llama_dir, tiny_adapter))
        second_spec = _spec(root / "second", tiny_llama_dir, tiny_qv_adapter)
        second = _evaluate(second_spec)
    return first, second, second_spec


def test_a_second_adapter_on_the_base_reads_the_base_figures(two_releases):
    (first, first_events), (second, second_events), _ = two_releases
    assert second.base_figures.key == first.base_figures.key
    assert _passes(first_events, "perplexity: base")
    assert not _passes(second_events, "perplexity: base")  # the pass did not run
    assert _passes(second_events, "perplexity: merged")
    said = [e.message for e in second_events if isinstance(e, Log)]
    assert any("cached by an earlier eval of this base" in line for line in said), said
    assert second.perplexity.base == first.perplexity.base


def test_the_cached_figures_are_the_computed_ones(two_releases, tmp_path, monkeypatch):
    """The second release evaluated again with an empty cache: the same base perplexity,
    and the same adapter effect (measured against the base's probe logits)."""
    _, (cached, _), spec = two_releases
    monkeypatch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path / "empty"))
    computed, events = _evaluate(spec, force=True)
    assert _passes(events, "perplexity: base")
    assert computed.perplexity == cached.perplexity
    assert computed.equivalence == cached.equivalence
    assert computed.equivalence.adapter_effect > 0
    assert len(list((tmp_path / "empty").glob("*.safetensors"))) == 1


def test_progress_moves_during_every_perplexity_pass(two_releases):
    """A progress event after each held-out chunk of the pass: tokens scored, rate, time
    left."""
    (facts, events), _, _ = two_releases
    chunks = facts.perplexity.tokens // CHUNK_TOKENS
    assert chunks > 1 and facts.perplexity.tokens == chunks * CHUNK_TOKENS
    scored = chunks * (CHUNK_TOKENS - 1)  # each chunk's first token is not predicted
    for what in ("perplexity: base", "perplexity: merged"):
        # its start, then one per chunk (and, within a chunk that takes seconds, a tick)
        steps = [step for step in _passes(events, what) if "into a chunk" not in step.message]
        assert len(steps) == 1 + chunks
        assert [step.done for step in steps] == [n * (CHUNK_TOKENS - 1) for n in range(chunks + 1)]
        assert {(step.total, step.unit) for step in steps} == {(scored, "tokens")}
        assert all("tokens/s, about" in step.message for step in steps[1:])


def _checks(spec, workspace: Path, plan: LoadPlan, fingerprint: str) -> EvaluateFacts:
    run = model_checks(
        EvaluateSettings.of(spec),
        spec.base.path,
        workspace / "adapter",
        workspace / "merge",
        plan,
        SilentReporter(),
        base_fingerprint=fingerprint,
    )
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def test_another_text_or_dtype_misses(two_releases, tmp_path, monkeypatch):
    """Keyed by the held-out text and the dtype: each change computes the base's figures
    again; the same ones again hit."""
    _, (second, _), spec = two_releases
    monkeypatch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path / "cache"))
    fingerprint = Manifest.load(spec.workspace / MANIFEST_NAME).stages["adapter"].facts
    fingerprint = fingerprint["base_fingerprint"]
    heldout = _heldout(tmp_path / "heldout.txt", 1500)
    short = spec.model_copy(update={"eval": spec.eval.model_copy(update={"heldout_text": heldout})})
    f32, bf16 = LoadPlan("float32", 0), LoadPlan("bfloat16", 0)

    runs = [
        (spec, f32),  # fills the cache
        (spec, f32),  # hits
        (short, f32),  # another text: misses
        (spec, bf16),  # another dtype: misses
        (short, f32),  # hits what the third run kept
    ]
    facts = [_checks(s, spec.workspace, plan, fingerprint) for s, plan in runs]
    assert [f.base_figures.cached for f in facts] == [False, True, False, False, True]
    assert len({f.base_figures.key for f in facts}) == 3
    assert facts[0].base_figures.key == second.base_figures.key  # the stage's own key
    assert facts[1].perplexity == facts[0].perplexity
    assert facts[2].perplexity.base != facts[0].perplexity.base
    assert facts[3].perplexity.base != facts[0].perplexity.base
