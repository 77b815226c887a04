"""Release history, release notes and compare on a chain of three releases built by the
real runner from a tiny Llama: 1.0.0 released, 2.0.0 held back by the gate (its scores
collapsed on purpose), 3.0.0 released against 1.0.0. Every number checked here is read
back from the lm-eval-shaped results files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cards.facts import size
from release.cli import main
from release.core.errors import StageError
from release.core.manifest import MANIFEST_NAME
from release.report.history import history_of
from release.report.notes import release_notes
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from tests.support.lora_models import make_adapter
from tests.test_gate import lm_eval_file

SCORES = {
    "1.0.0": {"arc_easy": 0.62, "hellaswag": 0.41, "piqa": 0.68},
    "2.0.0": {"arc_easy": 0.20, "hellaswag": 0.40, "piqa": 0.35},
    "3.0.0": {"arc_easy": 0.64, "hellaswag": 0.40, "boolq": 0.55},
}
RANK = {"1.0.0": 4, "2.0.0": 4, "3.0.0": 8}


@dataclass
class Chain:
    root: Path
    specs: dict[str, ReleaseSpec]

    def manifest(self, version: str) -> Path:
        return self.specs[version].workspace / MANIFEST_NAME

    def results(self, version: str) -> dict[str, float]:
        data = json.loads((self.root / f"{version}.json").read_text())
        return {task: values["acc,none"] for task, values in data["results"].items()}


@pytest.fixture(scope="module")
def chain(tiny_llama_dir, tmp_path_factory) -> Chain:
    root = tmp_path_factory.mktemp("history")
    specs: dict[str, ReleaseSpec] = {}
    previous: list[str] = []
    for seed, version in enumerate(SCORES, start=1):
        adapter = make_adapter(
            tiny_llama_dir, root / f"adapter-{version}", seed=seed, r=RANK[version]
        )
        results = lm_eval_file(root / f"{version}.json", SCORES[version])
        spec = ReleaseSpec.model_validate(
            {
                "name": "tiny-chat",
                "version": version,
                "base": {"path": str(tiny_llama_dir)},
                "adapter": {"path": str(adapter)},
                "workspace": str(root / version / "build"),
                "gguf": {"types": []},
                "eval": {
                    "prompts": ["Say hello."],
                    "max_new_tokens": 8,
                    "results": [str(results)],
                    "previous": previous,
                },
            }
        )
        specs[version] = spec
        if version == "2.0.0":
            with pytest.raises(StageError, match="regression gate failed"):
                list(run_release(spec))
        else:
            list(run_release(spec))
        previous = [str(spec.workspace / MANIFEST_NAME)]
    return Chain(root, specs)


def test_the_history_lists_all_three_and_the_held_back_round(chain):
    found = history_of(chain.manifest("3.0.0"))
    assert [e.version for e in found.entries] == ["3.0.0", "2.0.0", "1.0.0"]
    assert [e.released for e in found.entries] == [True, False, True]
    assert [e.rank for e in found.entries] == [8, 4, 4]
    held = found.entries[1]
    assert held.refused.startswith("regression gate failed against the last release:")
    assert "arc_easy acc 0.62 → 0.2 (-68%)" in held.refused
    for item in found.entries:
        by_task = {r.task: r.value for r in item.scores}
        assert by_task == chain.results(item.version)
        assert item.files["merge/model.safetensors"] > 0
    assert found.last_released().version == "1.0.0"
    assert found.missing == []


def test_the_third_card_shows_the_history_of_all_three(chain):
    card = (chain.specs["3.0.0"].workspace / "card" / "README.md").read_text()
    section = card.split("## Release history", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith(
        "| Version | Date | Status | arc_easy acc | boolq acc | hellaswag acc |"
    )
    one, two, three = (chain.results(v) for v in SCORES)
    assert rows[1].startswith("| 1.0.0 | ") and f"| {one['arc_easy']:.4f} |" in rows[1]
    change = (two["arc_easy"] - one["arc_easy"]) / one["arc_easy"]
    assert "| not released (1) |" in rows[2] and f"{two['arc_easy']:.4f} ({change:+.1%})" in rows[2]
    # 3.0.0 against 1.0.0, the release its gate compared with, not the held-back 2.0.0
    change = (three["arc_easy"] - one["arc_easy"]) / one["arc_easy"]
    assert rows[3].startswith("| 3.0.0 |") and f"{three['arc_easy']:.4f} ({change:+.1%})" in rows[3]
    assert "(1) 2.0.0 was not released: regression gate failed" in section


def test_the_notes_name_exactly_what_changed(chain):
    spec = chain.specs["3.0.0"]
    notes = release_notes(history_of(chain.manifest("3.0.0")), spec.eval)
    one, three = chain.results("1.0.0"), chain.results("3.0.0")
    assert notes.startswith("## tiny-chat 3.0.0\n\nChanges since 1.0.0")
    assert "\n\n- 2.0.0 was not released: regression gate failed" in notes
    for task in ("arc_easy", "hellaswag"):
        change = (three[task] - one[task]) / one[task]
        row = f"| {task} | acc | none | 0 | {one[task]:.4g} | {three[task]:.4g} | {change:+.1%} |"
        assert row in notes
    assert "- added: boolq acc" in notes and "- dropped: piqa acc" in notes
    assert "- adapter rank: 4 → 8" in notes
    assert re.findall(r"^### (.+)$", notes, re.M) == [
        "Scores",
        "Tasks",
        "Files",
        "Base and adapter",
    ]
    old, new = (
        (chain.root / f"adapter-{v}" / "adapter_model.safetensors") for v in ("1.0.0", "3.0.0")
    )
    files = notes.split("### Files\n\n")[1].split("\n\n")[0].splitlines()
    assert files == [  # as peft wrote them; merged weights and config kept their sizes
        f"- resized: `adapter/adapter_model.safetensors` {size(old.stat().st_size)} → "
        f"{size(new.stat().st_size)}"
    ]
    assert "- gate: passed (a score may drop 20%, the average of the compared scores 5%)" in notes
    assert "base:" not in notes and "### Tools" not in notes  # the same base and tools


def test_compare_fails_on_the_regressing_round_naming_the_worst(chain, capsys):
    code = main(["compare", str(chain.manifest("1.0.0")), str(chain.manifest("2.0.0"))])
    out = capsys.readouterr().out
    assert code == 1
    one, two = chain.results("1.0.0"), chain.results("2.0.0")
    worst = (one["arc_easy"] - two["arc_easy"]) / one["arc_easy"]
    row = f"| arc_easy | acc | none | 0 | {one['arc_easy']:.4g} | {two['arc_easy']:.4g} |"
    assert f"{row} {-worst:+.1%} |" in out
    assert "- gate: FAILED" in out and f"arc_easy acc 0.62 → 0.2 (-{worst:.0%})" in out
    assert "piqa acc 0.68 → 0.35 (-49%)" in out


def test_compare_passes_on_results_files_and_flags_other_shots(chain, tmp_path, capsys):
    assert main(["compare", str(chain.root / "1.0.0.json"), str(chain.root / "3.0.0.json")]) == 0
    five = lm_eval_file(tmp_path / "five.json", SCORES["1.0.0"], n_shot=5)
    assert main(["compare", str(chain.root / "1.0.0.json"), str(five)]) == 0
    out = capsys.readouterr().out
    assert "- not compared: arc_easy acc: n-shot differs (0 before, 5 now); not compared" in out


def test_notes_command_prints_them(chain, tmp_path, capsys):
    spec_file = tmp_path / "release.yaml"
    spec_file.write_text(chain.specs["3.0.0"].model_dump_json())
    assert main(["notes", str(spec_file)]) == 0
    assert "### Scores" in capsys.readouterr().out


def test_notes_before_any_run_is_one_line(tmp_path, capsys):
    (tmp_path / "release.yaml").write_text(
        "name: m\nversion: 1.0.0\nbase: {repo_id: a/b}\nadapter: {path: .}\n"
    )
    assert main(["notes", str(tmp_path / "release.yaml")]) == 2
    assert "no manifest yet" in capsys.readouterr().err


def test_the_push_gives_the_notes_as_the_hub_commit_description(chain, hub):
    """Last in this file: it adds a push to 3.0.0's manifest."""
    spec = chain.specs["3.0.0"]
    pushed = spec.model_copy(update={"push": spec.push.model_copy(update={"repo_id": "me/tiny"})})
    notes = release_notes(history_of(chain.manifest("3.0.0")), spec.eval)
    list(run_release(pushed))
    repo = hub.repo("me/tiny")
    description = repo.commits[repo.branches["main"]]["description"]
    assert description.startswith(notes.strip() + "\n\nReleased with model-release")
