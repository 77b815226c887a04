"""Preflight: before a stage writes a byte, check that its outputs fit on the disk and its
peak fits in memory; refuse at once, with the numbers, when they do not.

A merge that dies of ENOSPC after twenty minutes, or is killed by the OOM killer halfway
through a GGUF export, costs the user the time and tells them less than a line that says
"needs 15.2 GB, 9.8 GB free on /data" would have before the start.

Each domain says what its stage needs (a ``Needs``), from headers alone, no tensor
loaded: ``release.merge.needs``, ``release.gguf.needs``, ``release.evaluate.needs``.
This module holds what they share: the record, what the machine has, the refusal.

Stages write into a staging folder beside their final one and rename it: a rename on
the same filesystem needs no extra space, so the staging copy costs nothing more. An
older output folder stays until the new one replaces it, and is already counted as used.

Free disk is measured on the filesystem holding the workspace (its nearest existing
folder); available memory is psutil's, or less where a cgroup limit leaves less (the
tightest level of the process's cgroup, v1 or v2). Disk gets a margin (filesystem
overhead, the manifest); memory does not, as the estimate is already a peak.

In GitHub Actions a refusal also names the runner that fits: GitHub's standard Linux
runner starts with about 14 GB of free disk and 16 GB of RAM, its larger runners have
more (``LARGER_RUNNERS``), and a self-hosted runner has what its machine has.

``MODEL_RELEASE_SKIP_PREFLIGHT=1`` turns a refusal into a warning, for filesystems whose
free space misleads (compression, quotas counted elsewhere), like rpm's --ignoresize.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release.core.errors import NotEnoughResources
from release.core.units import human

if TYPE_CHECKING:
    from release.core.events import Event, Reporter

SKIP_ENV = "MODEL_RELEASE_SKIP_PREFLIGHT"
DISK_MARGIN_FRACTION = 0.03
DISK_MARGIN_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Needs:
    """What a stage will write and hold at its peak, estimated before it starts."""

    what: str
    """The outputs, as a message names them ("the merged model", "2 GGUF files")."""
    output_bytes: int
    memory_bytes: int
    hint: str
    """What to do when the disk is too small, beyond freeing space."""


@dataclass(frozen=True)
class Resources:
    """What the machine has, measured now."""

    disk_path: Path
    free_disk_bytes: int
    available_memory_bytes: int
    memory_source: str
    """Where the memory figure comes from: "RAM" or a cgroup's limit."""


def disk_margin(output_bytes: int) -> int:
    """Room kept free beyond the estimate (filesystem overhead, the manifest)."""
    if output_bytes == 0:
        return 0
    return DISK_MARGIN_BYTES + round(output_bytes * DISK_MARGIN_FRACTION)


@dataclass(frozen=True)
class RunnerSize:
    """A GitHub-hosted Linux runner: cores, RAM and disk, in GB as GitHub lists them."""

    name: str
    memory_gb: int
    disk_gb: int


HOSTED_RUNNER = RunnerSize("ubuntu-latest", memory_gb=16, disk_gb=14)
"""The standard runner of a public repository: its RAM and the free disk it starts with."""
LARGER_RUNNERS = (
    RunnerSize("4-core", memory_gb=16, disk_gb=150),
    RunnerSize("8-core", memory_gb=32, disk_gb=300),
    RunnerSize("16-core", memory_gb=64, disk_gb=600),
    RunnerSize("32-core", memory_gb=128, disk_gb=1200),
    RunnerSize("64-core", memory_gb=256, disk_gb=2040),
)
RUNNER_MEMORY_OVERHEAD = 2 * 10**9
"""RAM a runner's OS and agent hold beside the stage."""


def runner_needed(resource: str, needed: int, available: int) -> str:
    """In GitHub Actions, the runner a refused stage needs ("" elsewhere). The disk a
    runner needs in all is this stage's output plus what the job already wrote, counted
    from the free disk a standard runner starts with."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return ""
    if resource == "memory":
        total, label = needed + RUNNER_MEMORY_OVERHEAD, "RAM"
        fits = [r for r in LARGER_RUNNERS if r.memory_gb * 10**9 >= total]
    else:
        total = needed + max(HOSTED_RUNNER.disk_gb * 10**9 - available, 0)
        label = "disk"
        fits = [r for r in LARGER_RUNNERS if r.disk_gb * 10**9 >= total]
    wanted = f"about {_bytes(total)} of {label}"
    if not fits:
        return f"; on GitHub Actions it needs a self-hosted runner with {wanted}"
    size = fits[0]
    return (
        f"; on GitHub Actions it needs a runner with {wanted}: a {size.name} larger runner "
        f"({size.memory_gb} GB RAM, {size.disk_gb} GB disk) or a self-hosted one "
        f"(ubuntu-latest has {HOSTED_RUNNER.memory_gb} GB RAM, about "
        f"{HOSTED_RUNNER.disk_gb} GB free disk)"
    )


_OVERRIDE = f" (if the estimate is wrong here, {SKIP_ENV}=1 goes on regardless)"


def refusal(stage: str, needs: Needs, have: Resources) -> NotEnoughResources | None:
    """The error a stage should stop with, or None when ``needs`` fits in ``have``."""
    wanted = needs.output_bytes + disk_margin(needs.output_bytes)
    if wanted > have.free_disk_bytes:
        return NotEnoughResources(
            stage,
            f"not enough disk space in {have.disk_path}: {needs.what} needs "
            f"{_bytes(needs.output_bytes)} (+ {_bytes(wanted - needs.output_bytes)} margin), "
            f"{_bytes(have.free_disk_bytes)} free",
            hint=f"free {_bytes(wanted - have.free_disk_bytes)} there or move the workspace "
            f"to a bigger disk; {needs.hint}"
            f"{runner_needed('disk', wanted, have.free_disk_bytes)}{_OVERRIDE}",
            resource="disk",
            needed=wanted,
            available=have.free_disk_bytes,
            where=str(have.disk_path),
        )
    if needs.memory_bytes > have.available_memory_bytes:
        return NotEnoughResources(
            stage,
            f"not enough memory: {stage} needs about {_bytes(needs.memory_bytes)} at its "
            f"peak, {_bytes(have.available_memory_bytes)} available ({have.memory_source})",
            hint="close other programs or run on a machine with more memory"
            + (f"; {needs.hint}" if needs.hint else "")
            + runner_needed("memory", needs.memory_bytes, have.available_memory_bytes)
            + _OVERRIDE,
            resource="memory",
            needed=needs.memory_bytes,
            available=have.available_memory_bytes,
            where=have.memory_source,
        )
    return None


def check(
    report: Reporter, workspace: Path, needs: Needs
) -> Generator[Event, None, tuple[dict[str, Any], dict[str, Any]]]:
    """Refuse (``NotEnoughResources``) when ``needs`` does not fit in ``workspace``'s disk
    and the memory left. Returns the estimates (facts: they follow from the inputs) and
    the machine's numbers (measured)."""
    have = measure(workspace)
    if skipped := refuse(report.stage, needs, have):
        yield report.log(skipped, "warning")
    estimates = {
        "estimated_output_bytes": needs.output_bytes,
        "estimated_peak_memory_bytes": needs.memory_bytes,
    }
    measured = {
        "free_disk_bytes": have.free_disk_bytes,
        "available_memory_bytes": have.available_memory_bytes,
    }
    return estimates, measured


def refuse(stage: str, needs: Needs, have: Resources) -> str | None:
    """Raise the refusal when ``needs`` does not fit in ``have``; with the override set,
    return it as the warning to show instead (None: it fits)."""
    problem = refusal(stage, needs, have)
    if problem is None:
        return None
    if os.environ.get(SKIP_ENV) != "1":
        raise problem
    return f"{problem.message} ({SKIP_ENV}=1: going on)"


# --- what the machine has -----------------------------------------------------------


def measure(path: Path) -> Resources:
    folder = nearest_existing(path)
    memory, source = available_memory()
    return Resources(folder, shutil.disk_usage(folder).free, memory, source)


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def available_memory() -> tuple[int, str]:
    """Bytes this process can still take, and where that figure comes from."""
    import psutil

    available = psutil.virtual_memory().available
    limited = cgroup_headroom()
    if limited is not None and limited[0] < available:
        return max(limited[0], 0), f"the memory limit of cgroup {limited[1]}"
    return available, "RAM"


def cgroup_headroom(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[int, str] | None:
    """The least room any memory limit on this process's cgroups leaves (limit minus
    usage, reclaimable page cache counted as free), and that cgroup; None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    tightest: tuple[int, str] | None = None
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":  # cgroup v2
            mount = root if (root / "cgroup.controllers").exists() else root / "unified"
            files = ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            mount = root / "memory"
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in _levels(mount, group):
            room = _room(folder, *files)
            if room is not None and (tightest is None or room < tightest[0]):
                tightest = (room, str(folder))
    return tightest


def _levels(mount: Path, group: str) -> Iterable[Path]:
    """The cgroup's folder and its parents up to the mount (a limit on any applies). In a
    cgroup namespace the group's path may not exist under the mount: start at its top."""
    folder = mount / group.strip("/")
    if not folder.is_dir():
        folder = mount
    while True:
        yield folder
        if folder == mount or mount not in folder.parents:
            return
        folder = folder.parent


def _room(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text())
        limit = None if limit_text == "max" else int(limit_text)
    except (OSError, ValueError):
        return None
    if limit is None or limit >= 2**62:  # v1 writes "no limit" as ~2**63
        return None
    inactive = 0
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
    except (OSError, ValueError):
        pass
    return limit - usage + inactive


def _bytes(size: int) -> str:
    return human(size, "bytes")
