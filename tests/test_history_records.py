"""The pieces of the release history without a model: a refusal kept and cleared by
the runner, a chain whose previous manifest is gone, notes on base and tool changes,
the card's history table from a hand-written facts entry, compare on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.evals import load_results
from cards.records import scores_as_json
from cards.render import CardContext, render_model_card
from cards.schema import CardMetadata
from release.cli import main
from release.core.errors import Refused
from release.core.manifest import MANIFEST_NAME, FileRecord, Manifest, StageRecord
from release.gguf.facts import GGUFFacts, GGUFFileFacts, QuantQualityFacts
from release.report.history import history_facts, history_of
from release.report.notes import release_notes
from release.runner import run_release
from release.spec.schema import EvalSpec, ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun
from tests.test_gate import lm_eval_file
from tests.test_runner import WriteFacts


class GateStage(Stage):
    """Says no while ``refuse`` is set, recording what it measured."""

    name = title = "evaluate"

    def __init__(self) -> None:
        self.refuse = True

    def run(self, ctx: StageContext) -> StageRun:
        yield ctx.progress(1, 1, "checks")
        if self.refuse:
            raise Refused("regression gate failed: arc_easy acc 0.62 → 0.2", facts={"x": 1})
        return StageOutput(facts=WriteFacts(length=1))


def test_the_runner_keeps_a_refusal_until_the_stage_passes(tmp_path):
    spec = ReleaseSpec.model_validate(
        {
            "name": "t",
            "version": "1.0",
            "base": {"repo_id": "a/b"},
            "adapter": {"path": "."},
            "workspace": str(tmp_path / "ws"),
        }
    )
    stage = GateStage()
    with pytest.raises(Refused):
        list(run_release(spec, stages=[stage]))
    manifest = Manifest.load(tmp_path / "ws" / MANIFEST_NAME)
    assert manifest.refused["evaluate"].message.startswith("regression gate failed")
    assert manifest.refused["evaluate"].facts == {"x": 1}
    assert "evaluate" not in manifest.stages and not (tmp_path / "ws" / "evaluate").exists()
    stage.refuse = False
    list(run_release(spec, stages=[stage]))
    manifest = Manifest.load(tmp_path / "ws" / MANIFEST_NAME)
    assert manifest.refused == {} and "evaluate" in manifest.stages


def release_manifest(
    folder: Path,
    version: str,
    scores: dict[str, float],
    *,
    previous: Path | None = None,
    tools: dict[str, str] | None = None,
    base_revision: str = "abc",
    files: dict[str, int] | None = None,
    quants: dict[str, QuantQualityFacts] | None = None,
) -> Path:
    """A manifest as the stages write it, for the history's reading of it; ``quants``:
    the GGUF stage's files (type -> their held-out figures)."""
    folder.mkdir(parents=True, exist_ok=True)
    results = scores_as_json(load_results([lm_eval_file(folder / "results.json", scores)]))
    evaluate = {"results": results, "gate": {"passed": True}}
    if previous is not None:
        evaluate["previous"] = [
            {
                "path": f"../{previous.parent.name}/{MANIFEST_NAME}",
                "sha256": "0" * 64,
                "version": "?",
            }
        ]
    manifest = Manifest(name="m", version=version)
    stamp = f"2026-01-0{version[0]}T00:00:00+00:00"
    manifest.stages["adapter"] = StageRecord(
        key="a",
        finished_at=stamp,
        seconds=0,
        facts={
            "r": 8,
            "target_modules": ["q_proj"],
            "base_repo_id": "org/base",
            "base_revision": base_revision,
        },
        tools=tools or {"torch": "2.13.0"},
    )
    manifest.stages["merge"] = StageRecord(
        key="m",
        finished_at=stamp,
        seconds=0,
        outputs=[
            FileRecord(path=p, bytes=n, sha256="0" * 64)
            for p, n in (files or {"merge/model.safetensors": 100}).items()
        ],
    )
    manifest.stages["evaluate"] = StageRecord(key="e", finished_at=stamp, seconds=0, facts=evaluate)
    if quants:
        gguf = GGUFFacts(
            files=[
                GGUFFileFacts(name=f"m-{kind}.gguf", type=kind, bytes=1, sha256="0", quality=q)
                for kind, q in quants.items()
            ]
        )
        manifest.stages["gguf"] = StageRecord(
            key="g", finished_at=stamp, seconds=0, facts=gguf.as_json()
        )
    manifest.save(folder / MANIFEST_NAME)
    return folder / MANIFEST_NAME


def test_a_gone_previous_manifest_ends_the_chain_and_says_so(tmp_path):
    one = release_manifest(tmp_path / "one", "1.0", {"arc_easy": 0.6})
    two = release_manifest(tmp_path / "two", "2.0", {"arc_easy": 0.6}, previous=one)
    one.unlink()
    found = history_of(two)
    assert [e.version for e in found.entries] == ["2.0"]
    assert found.missing == ["?: ../one/manifest.json is gone"]
    assert history_facts(found).missing == found.missing


def test_notes_name_base_revision_tools_and_files(tmp_path):
    one = release_manifest(tmp_path / "one", "1.0", {"arc_easy": 0.6})
    two = release_manifest(
        tmp_path / "two",
        "2.0",
        {"arc_easy": 0.6},
        previous=one,
        tools={"torch": "2.14.0", "peft": "0.18.0"},
        base_revision="def",
        files={"merge/model.safetensors": 100, "merge/extra.bin": 5_000},
    )
    notes = release_notes(history_of(two), EvalSpec())
    assert "- base revision: abc → def" in notes
    assert "- torch: 2.13.0 → 2.14.0" in notes and "- peft: not used → 0.18.0" in notes
    assert "- added: `merge/extra.bin` (5.0 kB (5,000 bytes))" in notes
    assert "| arc_easy | acc | none | 0 | 0.6 | 0.6 | +0.0% |" in notes
    assert "### Tasks" not in notes and "resized" not in notes


def _quality(kld_mean: float, same_top1: float, ppl: float, text: str = "held.txt"):
    return QuantQualityFacts(
        text=text,
        chunk=512,
        tokens=510,
        kld_mean=kld_mean,
        kld_median=kld_mean / 2,
        kld_p99=kld_mean * 8,
        kld_max=kld_mean * 25,
        same_top1=same_top1,
        ppl=ppl,
        ppl_reference=40.0,
        ppl_ratio=ppl / 40.0,
        max_kld=0.5,
    )


def test_notes_compare_each_quant_with_the_last_release(tmp_path):
    same = _quality(0.0065, 0.941, 40.4)
    one = release_manifest(
        tmp_path / "one",
        "1.0",
        {"arc_easy": 0.6},
        quants={"q8_0": same, "q4_k_m": _quality(0.0917, 0.8157, 44.6), "q2_k": same},
    )
    two = release_manifest(
        tmp_path / "two",
        "2.0",
        {"arc_easy": 0.6},
        previous=one,
        quants={
            "q8_0": same,
            "q4_k_m": _quality(0.1023, 0.7902, 45.2),
            "q2_k": _quality(0.0065, 0.941, 40.4, text="other.txt"),
            "q6_k": same,
        },
    )
    notes = release_notes(history_of(two), EvalSpec())
    quants = notes.split("### Quants\n\n")[1].split("\n\n")[0].splitlines()
    assert quants == [
        "- q4_k_m: KLD mean 0.0917 → 0.1023, KLD 99% 0.7336 → 0.8184, "
        "same top-1 81.6% → 79.0%, PPL ratio 1.115 → 1.130",
        "- q2_k: measured on another text (held.txt, 510 tokens before; other.txt, 510 now)",
    ]
    assert "### Quants" not in release_notes(history_of(one), EvalSpec())


DIFFERS = "n-shot differs (0 before, 5 now)"


def test_the_card_renders_a_history_entry_and_marks_other_measurements():
    history = {
        "columns": ["arc_easy acc"],
        "versions": [
            {"version": "1.0", "date": "2026-01-01", "scores": [{"value": 0.62}]},
            {
                "version": "2.0",
                "date": "2026-02-01",
                "reason": "gate failed: arc_easy",
                "scores": [{"value": 0.2, "change": -0.6774}],
            },
            {
                "version": "3.0",
                "date": "2026-03-01",
                "scores": [
                    {"value": 0.7, "differs": "arc_easy acc: n-shot differs (0 before, 5 now)"}
                ],
            },
        ],
        "missing": ["0.9: /old/manifest.json is gone"],
    }
    ctx = CardContext(
        metadata=CardMetadata.model_validate(
            {"license": "apache-2.0", "base_model": "org/base", "base_model_relation": "finetune"}
        ),
        repo_id="me/m",
        facts={"history": history},
    )
    card = render_model_card(ctx)
    assert "| Version | Date | Status | arc_easy acc |" in card
    assert "| 1.0 | 2026-01-01 | released | 0.6200 |" in card
    assert "| 2.0 | 2026-02-01 | not released (1) | 0.2000 (-67.7%) |" in card
    assert "| 3.0 | 2026-03-01 | released | 0.7000 (measured differently (2)) |" in card
    assert "(1) 2.0 was not released: gate failed: arc_easy" in card
    assert f"(2) arc_easy acc: {DIFFERS}" in card
    assert "(3) The history stops before 0.9: /old/manifest.json is gone" in card


def test_a_card_without_history_has_no_section():
    metadata = CardMetadata.model_validate({"license": "apache-2.0"})
    assert "Release history" not in render_model_card(CardContext(metadata=metadata, repo_id="m/m"))


def test_compare_of_a_missing_file_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 2
    err = capsys.readouterr().err
    assert "old.json: no such file" in err and len(err.strip().splitlines()) == 1


def test_notes_before_the_evaluate_stage_ran_is_one_line(tmp_path, capsys):
    spec = tmp_path / "release.yaml"
    spec.write_text("name: m\nversion: 1.0.0\nbase: {repo_id: a/b}\nadapter: {path: .}\n")
    Manifest(name="m", version="1.0.0").save(tmp_path / "build" / MANIFEST_NAME)
    assert main(["notes", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "the evaluate stage has not run, so the last release is not known" in err
