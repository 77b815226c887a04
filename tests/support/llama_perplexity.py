"""llama.cpp's own ``llama-perplexity``, built once from the pinned llama.cpp source.

The tool (``tools/perplexity`` and the ``common`` library it uses) is compiled from the
sdist of the installed llama-cpp-python, the same llama.cpp commit as the runtime
(``release.gguf.pinned``), and linked against that runtime's ``libllama`` and ``libggml``:
the model code is the runtime's, the chunking and the KL divergence are
llama-perplexity's. Only the tool's own file is optimized (its loops are the arithmetic
under test); the rest is compiled without optimization, so the build takes a few
minutes on two cores rather than the half hour of a full llama.cpp build. The binary is
kept in the user's cache (``~/.cache/model-release/llama.cpp/llama-perplexity-<version>``,
beside the llama-cpp-python wheel .ci/run keeps there), not in the test cache a fresh
clone starts without: a build of the pinned version holds nothing of a test's, and one
that no longer loads here (the runtime it links moved) is built again.

    python -m tests.support.llama_perplexity   # build it now (nice -n 19 it)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from release.gguf.pinned import PACKAGE, runtime_build
from tests.support.cache_lock import building

_CMAKE = """\
cmake_minimum_required(VERSION 3.16)
project(llama_perplexity CXX C)
set(CMAKE_CXX_STANDARD 17)
set(LC "{source}")
include(${{LC}}/common/parsers/sources.cmake)
file(GLOB COMMON ${{LC}}/common/*.cpp ${{LC}}/common/jinja/*.cpp)
set(LLAMA_BUILD_NUMBER 0)
set(LLAMA_BUILD_COMMIT "{label}")
set(BUILD_COMPILER "${{CMAKE_CXX_COMPILER_ID}} ${{CMAKE_CXX_COMPILER_VERSION}}")
set(BUILD_TARGET "${{CMAKE_SYSTEM_PROCESSOR}}")
configure_file(${{LC}}/common/build-info.cpp.in build-info.cpp)
set(PERPLEXITY ${{LC}}/tools/perplexity/perplexity.cpp)
add_executable(llama-perplexity ${{COMMON}} ${{LLAMA_CHAT_PARSERS_SOURCES}}
    ${{LC}}/vendor/cpp-httplib/httplib.cpp ${{CMAKE_BINARY_DIR}}/build-info.cpp
    ${{PERPLEXITY}} ${{LC}}/tools/perplexity/main.cpp)
set_source_files_properties(${{PERPLEXITY}} PROPERTIES COMPILE_OPTIONS -O2)
target_include_directories(llama-perplexity PRIVATE ${{LC}}/include ${{LC}}/ggml/include
    ${{LC}}/common ${{LC}}/vendor ${{LC}}/tools/perplexity)
target_link_libraries(llama-perplexity PRIVATE "{lib}/libllama.so" "{lib}/libggml.so"
    "{lib}/libggml-base.so" pthread)
set_target_properties(llama-perplexity PROPERTIES BUILD_RPATH "{lib}")
"""


def tool_cache() -> Path:
    """$XDG_CACHE_HOME/model-release, else ~/.cache/model-release: the user's cache, which
    the tests' MODEL_RELEASE_CACHE (the release's cache, redirected) does not move."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "model-release"


def llama_perplexity(cache: Path | None = None) -> Path:
    """The built ``llama-perplexity`` (built now if the cache has none that loads)."""
    runtime = runtime_build()
    if runtime is None:
        raise RuntimeError(f"{PACKAGE} is not installed")
    root = (cache or tool_cache()) / "llama.cpp" / f"llama-perplexity-{runtime.package}"
    with building(root):
        return _built(root, runtime.package)


def _built(root: Path, version: str) -> Path:
    """``root``'s binary, built there first if it has none that loads."""
    binary = root / "llama-perplexity"
    if binary.is_file() and _loads(binary):
        return binary
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    source = root / "source"
    if not (source / "tools" / "perplexity").is_dir():
        _unpack_sdist(version, source)
    build = root / "build"
    (root / "cmake").mkdir(parents=True, exist_ok=True)
    (root / "cmake" / "CMakeLists.txt").write_text(
        _CMAKE.format(source=source, lib=lib, label=f"{PACKAGE}-{version}")
    )
    nice = ["nice", "-n", "19"]
    subprocess.run(
        [*nice, "cmake", "-S", root / "cmake", "-B", build, "-G", "Ninja"],
        check=True,
        capture_output=True,
    )
    subprocess.run([*nice, "cmake", "--build", build, "-j", "2"], check=True, capture_output=True)
    shutil.copy2(build / "llama-perplexity", binary.with_suffix(".partial"))
    binary.with_suffix(".partial").replace(binary)
    return binary


def _loads(binary: Path) -> bool:
    """Whether ``binary`` starts here: its libllama is found where it was linked."""
    done = subprocess.run([binary, "--version"], capture_output=True, check=False)
    return done.returncode == 0


def _unpack_sdist(version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", "-d", download, f"{PACKAGE}=={version}"]
        subprocess.run(command, check=True, capture_output=True)
        (archive,) = Path(download).glob("*.tar.gz")
        staging = target.with_name(".partial-source")
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                _, _, inner = member.name.partition("/")
                if inner.startswith("vendor/llama.cpp/") and (member.isfile() or member.isdir()):
                    member.name = inner.removeprefix("vendor/llama.cpp/")
                    if member.name:
                        tar.extract(member, staging, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)


if __name__ == "__main__":
    print(llama_perplexity())
