"""``held_stderr`` keeps the libraries' chatter off the terminal, and loads none of them."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from release.core.quiet import held_stderr, last_line
with held_stderr() as held:
    print("gguf-py: a warning", file=sys.stderr)
print(last_line(held), "transformers" in sys.modules)
"""


def test_a_block_without_transformers_does_not_import_it():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert done.stdout == "gguf-py: a warning False\n"


def test_transformers_bars_and_warnings_are_off_inside_and_back_after():
    from transformers.utils import logging

    from release.core.quiet import held_stderr

    before = logging.get_verbosity()
    with held_stderr():
        assert not logging.is_progress_bar_enabled()
        assert logging.get_verbosity() == logging.ERROR
    assert logging.is_progress_bar_enabled()
    assert logging.get_verbosity() == before
