"""Keep what the libraries we call print while they work off the terminal.

transformers draws a "Loading weights" bar for each model it loads and warns of its own
deprecations (FutureWarning); PEFT warns when it cannot find a base's config file;
llama.cpp's quantizer logs a line per tensor that falls back to another type (printed
to ``sys.stderr`` by llama-cpp-python's log callback). On the demo that is hundreds of
lines between the stages' own. The CLI and the wizard show each stage's progress and
log lines, and stderr is for errors: the chatter is held, and a failure can quote its
last line.

A block that holds must not ``yield`` an event: the front end would print it while the
block still holds stderr.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def held_stderr() -> Iterator[io.StringIO]:
    """What the libraries write inside the block, kept in a buffer.

    Python's ``sys.stderr`` (warnings and tqdm bars write there) is redirected; and, as
    transformers' own logger holds the stderr it started with and its bars can be turned
    off, both are quieted for the block (warnings and errors still reach the buffer).
    transformers is quieted only where it is loaded already: a block around llama.cpp or
    gguf-py (the GGUF stage) must not import it for nothing (half a second, 600 modules).
    """
    buffer = io.StringIO()
    with _transformers_quiet(), contextlib.redirect_stderr(buffer):
        yield buffer


@contextlib.contextmanager
def _transformers_quiet() -> Iterator[None]:
    logging = sys.modules.get("transformers.utils.logging")
    if logging is None:
        yield
        return
    bars = logging.is_progress_bar_enabled()
    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def last_line(buffer: io.StringIO) -> str:
    lines = buffer.getvalue().strip().splitlines()
    return lines[-1].strip() if lines else ""
