"""The size of a file llama.cpp's converter would write, measured without writing it.

The converter plans everything before it writes a byte of tensor data: its tensors are
lazy (shapes and types known, values not read) until ``GGUFWriter.write_tensors_to_file``.
So the pinned converter is run as itself, in a child process, with that one method
replaced: it writes the tensor infos after the header and keys, reports each tensor's
data size (padded to the alignment) and the keys it wrote, and stops. The header-only
file's size plus the data is the file's size; the keys tell which of the release's own
keys ``release_keys`` will add afterwards, and those are measured the same way.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from release.core.child_python import PYTHON
from release.gguf.delegate import converter_command
from release.gguf.metadata import ReleaseMetadata
from release.gguf.release_keys import missing_key_bytes
from release.gguf.sizes import aligned

_LAUNCHER = """
import json, runpy, sys
import gguf

report, script = sys.argv[1], sys.argv[2]

def header_only(self, *, progress=False):
    self.write_ti_data_to_file()
    pad = gguf.GGUFWriter.ggml_pad
    data = sum(pad(ti.nbytes, self.data_alignment) for s in self.tensors for ti in s.values())
    keys = [key for shard in self.kv_data for key in shard]
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"data": data, "keys": keys}, out)

gguf.GGUFWriter.write_tensors_to_file = header_only
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


class PlanFailed(RuntimeError):
    """The converter could not plan the file (it would fail to write it too)."""


def converter_file_bytes(
    script: Path, model_dir: Path, outtype: str, meta: ReleaseMetadata, *, mmproj: bool = False
) -> int:
    """The bytes of the file ``delegate.convert_with_llama_cpp`` would write, with the
    release's keys it adds."""
    with tempfile.TemporaryDirectory(prefix="gguf-plan-") as folder:
        target, report = Path(folder) / "header.gguf", Path(folder) / "plan.json"
        with converter_command(script, model_dir, target, outtype, meta, mmproj) as (
            command,
            env,
        ):
            launcher = [*PYTHON, "-c", _LAUNCHER, str(report), *command[1:]]
            done = subprocess.run(launcher, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not report.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise PlanFailed(f"llama.cpp's converter cannot plan {model_dir.name}: {lines[-1]}")
        plan = json.loads(report.read_text(encoding="utf-8"))
        header = target.stat().st_size + missing_key_bytes(set(plan["keys"]), meta)
        return aligned(header) + int(plan["data"])
