"""Keep what llama.cpp and transformers print while they work off the terminal.

llama.cpp's quantizer logs a line per tensor that falls back to another type
(llama-cpp-python's log callback prints it to ``sys.stderr``), and transformers' GGUF
loader draws its own tqdm bar there; on the demo that is 180 lines and a bar inside the
gguf stage's output. The CLI and the wizard show the stage's own progress, and stderr
is for errors: the chatter is held, and a failure can quote its last line.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator


@contextlib.contextmanager
def held_stderr() -> Iterator[io.StringIO]:
    """What Python code writes to ``sys.stderr`` inside the block, kept in a buffer."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer


def last_line(buffer: io.StringIO) -> str:
    lines = buffer.getvalue().strip().splitlines()
    return lines[-1].strip() if lines else ""
