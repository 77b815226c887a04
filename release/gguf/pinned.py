"""The pinned llama.cpp: the converter of the same llama.cpp as the runtime that verifies.

llama-cpp-python vendors a llama.cpp commit; its runtime (the installed wheel) loads our
files and quantizes them, and the sdist of the same release carries that commit's
``convert_hf_to_gguf.py``, its ``conversion/`` package and ``gguf-py`` under
``vendor/llama.cpp``. The sdist of the installed version is fetched once with pip
(``pip download --no-deps --no-binary :all:``) into the cache and unpacked there; it is
checked against the installed runtime before use (the same package version, the same
llama.cpp version as ``llama_version()``), and ``BUILD.json`` beside the script records
the build: package, llama.cpp version and commit, the sdist's sha256. A converter of
another commit writes tensors and keys the runtime may not read (a PyPI copy of the
script is months older than the runtime and fails on Gemma 4).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

from release.core.paths import cache_dir

PACKAGE = "llama-cpp-python"
SCRIPT = "convert_hf_to_gguf.py"
BUILD_FILE = "BUILD.json"
_VENDORED = "vendor/llama.cpp/"
_KEPT = (SCRIPT, "conversion/", "gguf-py/", "CMakeLists.txt", "LICENSE")
"""What of the vendored llama.cpp is unpacked: the converter and what it imports."""


class PinnedConverterError(RuntimeError):
    """The pinned converter cannot be fetched or does not match the runtime."""


@dataclass(frozen=True)
class LlamaCppBuild:
    """Which llama.cpp a file was written or checked with."""

    package: str
    """llama-cpp-python's version (its wheel is the runtime, its sdist the converter)."""
    llama_cpp: str
    """llama.cpp's own version string, as ``llama_version()`` reports it."""
    commit: str | None = None
    """The vendored llama.cpp commit, from the sdist's git metadata."""
    sdist_sha256: str | None = None

    @property
    def label(self) -> str:
        commit = f" {self.commit[:10]}" if self.commit else ""
        return f"llama.cpp {self.llama_cpp}{commit} (llama-cpp-python {self.package})"

    def to_facts(self) -> dict:
        return asdict(self) | {"label": self.label}


def runtime_build() -> LlamaCppBuild | None:
    """The installed runtime's build, or None without llama-cpp-python."""
    try:
        package = installed_version(PACKAGE)
        import llama_cpp
    except (PackageNotFoundError, ImportError):
        return None
    return LlamaCppBuild(package, llama_cpp.llama_version().decode())


def runtime_knows(arch_name: str) -> bool | None:
    """Whether the installed runtime's libllama names the GGUF architecture ``arch_name``
    (its table of architecture names is NUL-terminated strings in the library; a runtime
    older than the architecture lacks it). The name is looked for as the end of a
    string, since the linker stores "bert" inside "nomic-bert": a false yes only skips
    the refusal. None without the runtime."""
    try:
        import llama_cpp
    except ImportError:
        return None
    libraries = sorted(Path(llama_cpp.__file__).parent.glob("lib/libllama.*"))
    libraries = libraries or sorted(Path(llama_cpp.__file__).parent.glob("lib/llama.*"))
    if not libraries:
        return None
    return arch_name.encode() + b"\0" in libraries[0].read_bytes()


@dataclass(frozen=True)
class PinnedConverter:
    script: Path
    build: LlamaCppBuild


def pinned_converter(cache: Path | None = None) -> PinnedConverter:
    """The converter of the installed runtime's llama.cpp, fetched and unpacked once."""
    runtime = runtime_build()
    if runtime is None:
        raise PinnedConverterError(f"llama.cpp's converter comes with {PACKAGE}: not installed")
    root = (cache or cache_dir()) / "llama.cpp" / f"{PACKAGE}-{runtime.package}"
    if not (root / BUILD_FILE).is_file():
        _fetch(runtime, root)
    build = LlamaCppBuild(**json.loads((root / BUILD_FILE).read_text(encoding="utf-8")))
    if (build.package, build.llama_cpp) != (runtime.package, runtime.llama_cpp):
        raise PinnedConverterError(
            f"{root}: the converter is {build.label}, the runtime {runtime.label}"
        )
    return PinnedConverter(root / SCRIPT, build)


def known_build(cache: Path | None = None) -> LlamaCppBuild | None:
    """The installed runtime's build, with its commit and sdist when the pinned converter
    of the same version is already in the cache (nothing is fetched); None without
    llama-cpp-python."""
    runtime = runtime_build()
    if runtime is None:
        return None
    path = (cache or cache_dir()) / "llama.cpp" / f"{PACKAGE}-{runtime.package}" / BUILD_FILE
    if not path.is_file():
        return runtime
    cached = LlamaCppBuild(**json.loads(path.read_text(encoding="utf-8")))
    same = (cached.package, cached.llama_cpp) == (runtime.package, runtime.llama_cpp)
    return cached if same else runtime


def _fetch(runtime: LlamaCppBuild, root: Path) -> None:
    """Download the sdist, check it against ``runtime``, unpack the converter into
    ``root`` (through a staging folder, so a failure leaves nothing half-written)."""
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", "-d", download, f"{PACKAGE}=={runtime.package}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = sorted(Path(download).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            said = (done.stderr or done.stdout).strip().splitlines() or ["no sdist"]
            raise PinnedConverterError(
                f"cannot download the {PACKAGE} {runtime.package} sdist: {said[-1]}"
            )
        staging = root.with_name(f".partial-{root.name}")
        shutil.rmtree(staging, ignore_errors=True)
        build = _unpack(archives[0], staging, runtime)
        (staging / BUILD_FILE).write_text(json.dumps(asdict(build), indent=2), encoding="utf-8")
        shutil.rmtree(root, ignore_errors=True)
        staging.replace(root)


def _unpack(archive: Path, target: Path, runtime: LlamaCppBuild) -> LlamaCppBuild:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    commit = None
    version = None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if inner == "PKG-INFO":
                info = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                version = re.search(r"^Version: (\S+)", info, re.M)
            elif inner == ".git/modules/vendor/llama.cpp/HEAD":
                commit = tar.extractfile(member).read().decode().strip()  # type: ignore[union-attr]
            elif inner.startswith(_VENDORED) and member.isfile():
                relative = inner.removeprefix(_VENDORED)
                if relative.startswith(_KEPT) and "/tests/" not in relative:
                    member.name = relative
                    tar.extract(member, target, filter="data")
    if version is None or version.group(1) != runtime.package:
        raise PinnedConverterError(f"{archive.name} is not {PACKAGE} {runtime.package}")
    vendored = _cmake_version(target / "CMakeLists.txt")
    if not runtime.llama_cpp.startswith(vendored):
        raise PinnedConverterError(
            f"{archive.name} vendors llama.cpp {vendored}, the runtime is {runtime.llama_cpp}"
        )
    if not (target / SCRIPT).is_file():
        raise PinnedConverterError(f"{archive.name} has no {_VENDORED}{SCRIPT}")
    return LlamaCppBuild(runtime.package, runtime.llama_cpp, commit, digest)


def _cmake_version(cmake: Path) -> str:
    text = cmake.read_text(encoding="utf-8") if cmake.is_file() else ""
    parts = [re.search(rf"LLAMA_VERSION_{p} (\d+)", text) for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts if m) or "unknown"
