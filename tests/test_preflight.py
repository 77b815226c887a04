"""Preflight: a stage that would not fit refuses before writing, with the numbers.

Disk: real tmpfs mounts too small for the merge or the GGUF files, then big enough.
Memory: the decision on measured inputs, the cgroup reader on cgroup files laid out as
the kernel does, and the CLI in a real cgroup v1 memory limit where we may make one.
The estimates are measured against the files the stages really write.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from release.cli import main
from release.core.errors import NotEnoughResources
from release.core.manifest import MANIFEST_NAME, Manifest
from release.core.units import human
from release.evaluate.needs import evaluate_needs
from release.gguf.facts import GGUFFacts
from release.merge.needs import merge_needs
from release.preflight import Needs, Resources, cgroup_headroom, disk_margin, refusal
from tests.support.disk_fixtures import tmpfs

SPEC = "name: tiny\nversion: 0.1.0\nbase:\n  path: {base}\nadapter:\n  path: adapter\n"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def adapter(tiny_qv_adapter) -> Path:
    """The session's q_proj + v_proj LoRA (each release copies it)."""
    return tiny_qv_adapter


def release_in(root: Path, base: Path, adapter: Path, extra: str = "") -> Path:
    shutil.copytree(adapter, root / "adapter")
    spec = root / "release.yaml"
    spec.write_text(SPEC.format(base=base) + "eval:\n  enabled: false\n" + extra)
    return spec


def run(spec: Path, *stages: str) -> list[str]:
    return ["run", str(spec), *(arg for s in stages for arg in ("--stage", s))]


def refused_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def output_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_merge_that_does_not_fit_is_refused_before_a_byte(
    tmp_path, tiny_llama_dir, adapter, capsys
):
    with tmpfs(tmp_path / "disk", "20m") as disk:
        spec = release_in(disk, tiny_llama_dir, adapter)
        assert main(run(spec, "adapter")) == 0
        workspace = disk / "build"
        before = sorted(p.name for p in workspace.iterdir())
        capsys.readouterr()

        line = refused_line(capsys, main(run(spec, "merge")))

        free = shutil.disk_usage(disk).free  # nothing written since the check
        needed = merge_needs(tiny_llama_dir, workspace / "adapter", "auto", 2 * 10**9)
        assert line.startswith(f"error: merge: not enough disk space in {workspace}: ")
        assert f"the merged model needs {human(needed.output_bytes, 'bytes')}" in line
        assert f"{human(free, 'bytes')} free" in line
        assert "move the workspace" in line and "shard_size does not help" in line
        assert sorted(p.name for p in workspace.iterdir()) == before
        assert sorted(Manifest.load(workspace / MANIFEST_NAME).stages) == ["adapter"]


def test_merge_and_gguf_fit_a_bigger_disk_and_the_estimates_hold(
    tmp_path, tiny_llama_dir, adapter, capsys
):
    with tmpfs(tmp_path / "disk", "48m") as small_disk:
        _fit_a_bigger_disk(small_disk, tiny_llama_dir, adapter, capsys)


def _fit_a_bigger_disk(small_disk: Path, tiny_llama_dir: Path, adapter: Path, capsys) -> None:
    spec = release_in(small_disk, tiny_llama_dir, adapter, "gguf:\n  types: [q8_0]\n")
    workspace = small_disk / "build"
    assert main(run(spec, "adapter", "merge")) == 0

    record = Manifest.load(workspace / MANIFEST_NAME).stages["merge"]
    facts, measured = record.facts, record.measured
    written = output_bytes(workspace / "merge")
    assert abs(facts["estimated_output_bytes"] - written) <= 0.02 * written
    assert 0 < measured["free_disk_bytes"] <= 48 * 2**20
    assert measured["available_memory_bytes"] > facts["estimated_peak_memory_bytes"] > 0

    # f32 + f16 + q8_0 is about 50 MB: more than the 48 MB disk has left
    many = spec.read_text().replace("[q8_0]", "[f32, f16, q8_0]")
    (small_disk / "many.yaml").write_text(many)
    capsys.readouterr()
    line = refused_line(capsys, main(run(small_disk / "many.yaml", "gguf")))
    assert "not enough disk space" in line and "3 GGUF files (f32 27.2 MB" in line
    assert "choose fewer gguf.types" in line
    assert f"{human(shutil.disk_usage(small_disk).free, 'bytes')} free" in line
    assert not (workspace / "gguf").exists() and not list(workspace.glob(".partial-*"))

    assert main(run(spec, "gguf")) == 0
    facts = GGUFFacts.of(Manifest.load(workspace / MANIFEST_NAME))
    (gguf_file,) = (workspace / "gguf").iterdir()
    assert facts.estimated_output_bytes == pytest.approx(gguf_file.stat().st_size, rel=0.005)


# --- memory -------------------------------------------------------------------------


@pytest.mark.parametrize("saved", [[], ["embed_tokens"]], ids=["lora", "modules_to_save"])
def test_the_merge_estimate_holds_the_merge_s_peak(tiny_llama_dir, saved, tmp_path):
    """merge_needs against the merge's own peak, as tracemalloc (which numpy reports its
    arrays to) sees it: a LoRA merged by rows holds a chunk, a replacement its tensor."""
    import tracemalloc

    from release.merge import lora
    from release.merge.stream import merge_streaming
    from tests.support.lora_models import make_adapter

    adapter = make_adapter(
        tiny_llama_dir, tmp_path / "adapter", target_modules=["q_proj"], modules_to_save=saved
    )
    weights = adapter / lora.WEIGHTS_NAME
    edits = lora.group_edits(list(safe_open(weights, "np").keys()), weights)
    (tmp_path / "merged").mkdir()
    tracemalloc.start()
    try:
        for _ in merge_streaming(
            tiny_llama_dir, adapter, {p: p for p in edits}, tmp_path / "merged"
        ):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    needs = merge_needs(tiny_llama_dir, adapter, "auto", 2 * 10**9)
    assert peak <= needs.memory_bytes <= 3 * peak


def test_the_decision_on_measured_numbers(tiny_llama_dir, adapter, tmp_path):
    from release.preflight import measure

    needs = merge_needs(tiny_llama_dir, adapter, "auto", 2 * 10**9)
    have = measure(tmp_path)
    assert refusal("merge", needs, have) is None  # a tiny merge fits this machine

    short = Resources(have.disk_path, have.free_disk_bytes, needs.memory_bytes - 1, "RAM")
    problem = refusal("merge", needs, short)
    assert isinstance(problem, NotEnoughResources) and problem.exit_code == 1
    assert (problem.resource, problem.needed, problem.available) == (
        "memory",
        needs.memory_bytes,
        needs.memory_bytes - 1,
    )
    assert str(problem).startswith(
        f"merge: not enough memory: merge needs about {human(needs.memory_bytes, 'bytes')}"
    )
    assert (
        refusal(
            "merge",
            needs,
            Resources(have.disk_path, have.free_disk_bytes, needs.memory_bytes, "RAM"),
        )
        is None
    )

    exact = needs.output_bytes + disk_margin(needs.output_bytes)
    full = Resources(tmp_path, exact - 1, have.available_memory_bytes, "RAM")
    assert refusal("merge", needs, full).resource == "disk"
    assert (
        refusal("merge", needs, Resources(tmp_path, exact, have.available_memory_bytes, "RAM"))
        is None
    )


def test_the_eval_runs_float32_where_it_fits_else_bf16_and_its_refusal_names_ways_out(
    tiny_llama_dir, adapter, tmp_path, monkeypatch
):
    from release.evaluate import needs as eval_needs
    from release.evaluate.loading import LoadPlan
    from release.evaluate.needs import choose_plan
    from release.preflight import SKIP_ENV, measure

    fp32 = evaluate_needs(tiny_llama_dir, tiny_llama_dir, adapter, LoadPlan("float32", 0))
    # where nothing fits, the refusal is the smaller dtype's (bf16: half the weights, the
    # same float32 logits), naming float32's figure too
    plan, refused = choose_plan(tiny_llama_dir, tiny_llama_dir, adapter, 0, 0)
    assert plan == LoadPlan("bfloat16", 0) and refused.memory_bytes < fp32.memory_bytes
    assert f"float32 needs about {human(fp32.memory_bytes, 'bytes')}" in refused.hint

    # a model whose weights outweigh its logits, as at the users' sizes
    monkeypatch.setattr(eval_needs, "WINDOW_TOKENS", 1)
    monkeypatch.setattr(eval_needs, "FORWARD_SCRATCH", 0)
    fp32 = evaluate_needs(tiny_llama_dir, tiny_llama_dir, adapter, LoadPlan("float32", 0))
    plan, needs = choose_plan(tiny_llama_dir, tiny_llama_dir, adapter, 0, fp32.memory_bytes)
    assert plan == LoadPlan("float32", 0) and needs == fp32
    plan, bf16 = choose_plan(tiny_llama_dir, tiny_llama_dir, adapter, 0, fp32.memory_bytes - 1)
    assert plan == LoadPlan("bfloat16", 0)  # the checkpoint's dtype, used in place
    sizes = []
    for shard in tiny_llama_dir.glob("*.safetensors"):
        with safe_open(shard, "pt") as handle:
            shapes = [handle.get_slice(k).get_shape() for k in handle.keys()]  # noqa: SIM118
            sizes += [math.prod(shape) for shape in shapes]
    parameters, largest = sum(sizes), max(sizes)
    # float32 holds 4 bytes a parameter and, while converting, the tensor being read (2
    # bytes of the largest one: the file is read, not mapped); bf16 holds 2 in place (less
    # one window's logits here)
    saved = fp32.memory_bytes - bf16.memory_bytes
    assert 2 * parameters < saved <= 2 * parameters + 2 * largest

    have = measure(tmp_path)
    short = Resources(have.disk_path, have.free_disk_bytes, bf16.memory_bytes - 1, "RAM")
    problem = refusal("evaluate", bf16, short)
    assert "eval.enabled: false" in problem.hint and f"{SKIP_ENV}=1" in problem.hint
    assert human(bf16.memory_bytes, "bytes") in problem.message
    assert f"that is in bfloat16, float32 needs about {human(fp32.memory_bytes, 'bytes')}" in (
        problem.hint
    )


def _cgroup_tree(root: Path, proc_cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/self/cgroup and a cgroup filesystem as the kernel lays them out."""
    (root / "cgroup").write_text(proc_cgroup)
    for name, text in files.items():
        (root / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "fs" / name).write_text(text)
    return root / "cgroup", root / "fs"


def test_cgroup_v2_limit_the_tightest_level_wins(tmp_path):
    proc, fs = _cgroup_tree(
        tmp_path,
        "0::/user.slice/job\n",
        {
            "cgroup.controllers": "cpu memory\n",
            "user.slice/memory.max": "1000000000\n",
            "user.slice/memory.current": "600000000\n",
            "user.slice/memory.stat": "anon 500000000\ninactive_file 50000000\n",
            "user.slice/job/memory.max": "max\n",
            "user.slice/job/memory.current": "300000000\n",
        },
    )
    assert cgroup_headroom(proc, fs) == (450_000_000, str(fs / "user.slice"))


def test_cgroup_v1_no_limit_is_none_and_a_namespace_reads_its_top(tmp_path):
    proc, fs = _cgroup_tree(
        tmp_path,
        "4:memory:/docker/abc\n3:cpu:/docker/abc\n",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/memory.usage_in_bytes": "1",
        },
    )
    assert cgroup_headroom(proc, fs) is None
    (fs / "memory" / "memory.limit_in_bytes").write_text("2000\n")
    (fs / "memory" / "memory.stat").write_text("cache 9\ntotal_inactive_file 10\n")
    assert cgroup_headroom(proc, fs) == (2009, str(fs / "memory"))


MEMORY_V1 = Path("/sys/fs/cgroup/memory")


def _own_memory_cgroup() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, group = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = MEMORY_V1 / group.strip("/")
            return folder if (folder / "memory.limit_in_bytes").is_file() else None
    return None


@pytest.fixture
def memory_limit(tmp_path):
    """Make a child cgroup v1 with a memory limit; returns a function that runs the CLI
    in it (root and cgroup v1 only)."""
    parent = _own_memory_cgroup()
    if parent is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup v1 memory controller")
    group = parent / f"model-release-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup here: {exc}")

    def run_cli(limit: int, *argv: str) -> subprocess.CompletedProcess:
        (group / "memory.limit_in_bytes").write_text(str(limit))
        procs = group / "cgroup.procs"
        return subprocess.run(
            [sys.executable, "-m", "release.cli", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            preexec_fn=lambda: procs.write_text(str(os.getpid())),
        )

    yield run_cli
    group.rmdir()


@pytest.mark.slow
def test_a_merge_over_a_cgroup_memory_limit_is_refused(memory_limit, smollm2_base_dir, tmp_path):
    from tests.support.lora_models import make_adapter

    # a modules_to_save copy of the embedding: the merge takes that tensor whole
    adapter = make_adapter(
        smollm2_base_dir, tmp_path / "trained", target_modules=["q_proj"],
        modules_to_save=["embed_tokens"],
    )  # fmt: skip
    spec = release_in(tmp_path, smollm2_base_dir, adapter)
    assert main(run(spec, "adapter")) == 0
    needs = merge_needs(smollm2_base_dir, tmp_path / "build" / "adapter", "auto", 2 * 10**9)
    assert needs.memory_bytes > 300 * 10**6  # the embedding's float32 copies

    done = memory_limit(300 * 10**6, *run(spec, "merge"))

    assert done.returncode == 1, done.stderr
    match = re.fullmatch(
        r"error: merge: not enough memory: merge needs about (\S+ \S+) at its peak, "
        r"(\S+ \S+) available \(the memory limit of cgroup (\S+)\) \(close other programs.*\)",
        done.stderr.strip(),
    )
    assert match, done.stderr
    assert match[1] == human(needs.memory_bytes, "bytes") and match[3].startswith(str(MEMORY_V1))
    assert not (tmp_path / "build" / "merge").exists()

    done = memory_limit(2 * 10**9, *run(spec, "merge"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "build" / MANIFEST_NAME).read_text())["stages"]["merge"]
    assert record["measured"]["available_memory_bytes"] < 2 * 10**9
    assert record["facts"]["estimated_peak_memory_bytes"] == needs.memory_bytes


def test_in_github_actions_the_refusal_names_the_runner_that_fits(tmp_path, monkeypatch):
    """The README's 4B and 8B figures (Runners) on GitHub's standard runner."""
    hosted = Resources(tmp_path, 14 * 10**9, 15 * 10**9, "RAM")
    gguf_4b = Needs("2 GGUF files", 12_300_000_000, 35_300_000_000, hint="fewer gguf.types")
    eval_8b = Needs("nothing", 0, 64_400_000_000, hint="eval.enabled: false")
    merge_8b = Needs("the merged model", 16_100_000_000, 6_300_000_000, hint="")
    assert "GitHub" not in refusal("gguf", gguf_4b, hosted).hint

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert (
        "; on GitHub Actions it needs a runner with about 37.3 GB of RAM: a 16-core larger "
        "runner (64 GB RAM, 600 GB disk) or a self-hosted one (ubuntu-latest has 16 GB RAM, "
        "about 14 GB free disk)"
    ) in refusal("gguf", gguf_4b, hosted).hint
    assert (
        "about 66.4 GB of RAM: a 32-core larger runner" in refusal("evaluate", eval_8b, hosted).hint
    )
    disk = refusal("merge", merge_8b, hosted)
    assert disk.resource == "disk" and "of disk: a 4-core larger runner" in disk.hint
    huge = Needs("nothing", 0, 300 * 10**9, hint="")
    assert "it needs a self-hosted runner with about 302" in refusal("evaluate", huge, hosted).hint
