"""The `card` typer app: output format, exit codes, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard
from typer.testing import CliRunner

from cards.cli import app

SAMPLES = Path(__file__).parent / "cards_samples"
CARDS = SAMPLES / "cards"
DEMO = SAMPLES / "demo"
runner = CliRunner()


def test_check_prints_file_line_severity_message_and_exits_1_on_errors():
    result = runner.invoke(app, ["check", str(CARDS / "bad_license.md"), str(CARDS / "good.md")])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{CARDS / 'bad_license.md'}:3: error: license: 'apache2' is not a Hub license id; "
        "use one from https://huggingface.co/docs/hub/repositories-licenses or 'other'"
    ]


def test_check_exits_0_with_only_warnings():
    result = runner.invoke(app, ["check", str(CARDS / "typo_key.md")])
    assert result.exit_code == 0
    assert [line.split(": ")[0:2] for line in result.stdout.splitlines()] == [
        [f"{CARDS / 'typo_key.md'}:1", "warning"],
        [f"{CARDS / 'typo_key.md'}:2", "warning"],
    ]


def test_check_json():
    result = runner.invoke(app, ["check", "--json", str(CARDS / "negative_accuracy.md")])
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)
    assert problem["line"] == 13 and problem["severity"] == "error"
    assert problem["field"] == "model-index[0].results[0].metrics[0].value"


def test_check_unreadable_file_exits_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["check", str(tmp_path / "nope.md")])
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == f"error: {tmp_path / 'nope.md'}: cannot read card (No such file or directory)"
    )
    assert "Traceback" not in result.output


def test_build_writes_the_card_and_eval_results(tmp_path):
    out = tmp_path / "README.md"
    args = ["build", "--metadata", str(DEMO / "card.yaml"), "--facts", str(DEMO / "facts.json")]
    args += ["--results", str(SAMPLES / "results_2026-03-01T10-00-00.123456.json")]
    args += ["--results", str(SAMPLES / "simple_results.yaml"), "--output", str(out)]
    args += ["--eval-results-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    card = ModelCard.load(out)
    scores = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert scores[("toxigen", "acc")] == 0.4319
    assert scores[("hellaswag", "acc_norm")] == 0.41236805417247563
    assert (tmp_path / ".eval_results" / "toxigen-acc.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".eval_results", "README.md"]
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0


def test_build_gguf_card(tmp_path):
    out = tmp_path / "README.md"
    args = [
        "build",
        "--gguf",
        "--metadata",
        str(DEMO / "card.yaml"),
        "--facts",
        str(DEMO / "facts.json"),
    ]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert ModelCard.load(out).data.base_model_relation == "quantized"


def test_build_error_is_one_line_exit_2_and_leaves_the_old_card(tmp_path):
    spec = tmp_path / "card.yaml"
    spec.write_text((DEMO / "card.yaml").read_text() + "licence: mit\n")
    out = tmp_path / "README.md"
    out.write_text("old card\n")
    result = runner.invoke(app, ["build", "--metadata", str(spec), "--output", str(out)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {spec}: licence: unknown field; check its spelling\n"
    assert out.read_text() == "old card\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "card.yaml"]


def test_build_reports_bad_results_with_their_file(tmp_path):
    bad = tmp_path / "results.yaml"
    bad.write_text("harness: h\nresults:\n- {task: arc, metric: acc, value: .nan}\n")
    args = ["build", "--metadata", str(DEMO / "card.yaml"), "--results", str(bad)]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "README.md")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {bad}: results[0]: value: Input should be a finite number"
    )


def test_build_writes_no_token(tmp_path, monkeypatch):
    """`card build` imports nothing of release/, yet writes through the one rule for
    secrets (``cards.redact``): the token in use, and any Hub-token-shaped string, in the
    card's prose are not in the file written."""
    token = "s3cret-Zq81-not-shaped-like-one"
    shaped = "hf_" + "Q7xZ3kW9pR2mCANARYdoNotLeak"
    monkeypatch.setenv("HF_TOKEN", token)
    card_yaml = tmp_path / "card.yaml"
    text = (DEMO / "card.yaml").read_text()
    text = text.replace("Testing release tooling.", f"Testing with {token}.")
    text = text.replace("A few hundred examples", f"A few hundred ({shaped}) examples")
    card_yaml.write_text(text)
    out = tmp_path / "README.md"
    result = runner.invoke(app, ["build", "--metadata", str(card_yaml), "--output", str(out)])
    assert result.exit_code == 0, result.output
    card = out.read_text()
    assert token not in card and shaped not in card
    assert "Testing with ***." in card and "A few hundred (hf_***) examples" in card
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
