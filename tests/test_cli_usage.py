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
