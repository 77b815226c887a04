"""Usage mistakes at the command line are answered like click answers them (usage line,
the problem, exit 2), never as "unexpected …: this is a bug"."""

from __future__ import annotations

import pytest

from release import __version__
from release.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--bogus"], "No such option: --bogus"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["run", "--stage"], "Option '--stage' requires an argument"),
        ([], "Commands:"),  # no command: the help, as a usage error
    ],
)
def test_a_usage_mistake_exits_2_with_clicks_message(argv, says, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert says in out + err
    assert "this is a bug" not in out + err
    assert "Traceback" not in out + err


def test_version_and_help_exit_0(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"model-release {__version__}\n"
    assert main(["run", "--help"]) == 0
    assert "--json" in capsys.readouterr().out


def test_a_log_keeps_each_line_whole(tmp_path):
    """Piped into a CI log (no terminal, no COLUMNS), a long path stays on its line."""
    import os
    import subprocess
    import sys

    adapter = tmp_path / ("an-adapter-with-a-long-name-" * 3)
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 8, "lora_alpha": 16,'
        ' "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}'
    )
    out = adapter / "release.yaml"
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "release.cli", "init", str(adapter), "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(str(out)) > 100
    assert f"wrote {out}; fill in the card section" in done.stdout.splitlines()[0]
