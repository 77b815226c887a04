"""Every GGUF file a release asks for: written, read back, checked, then given its name.

Order of work: the checks that need no work come first (is the architecture built in, or
is llama.cpp's converter there; is llama.cpp's quantizer there for K-quants), so a
release that cannot finish fails at once. Then llama.cpp's child starts, so its import
runs while the export writes; the merged model's reference is the evaluate stage's
(``release.reference``), or, where that stage kept none, is computed in a child of its
own beside the export and waited for before llama.cpp loads the first file (one model
resident at a time). Then each file: written under a hidden temporary name, read back with gguf-py,
loaded once by llama.cpp (one child for all the files; transformers' GGUF loader where
llama.cpp is missing) and compared
with the reference, hashed, and only then renamed to ``<name>-<TYPE>.gguf``. A file that
fails a check never gets its final name. The stage log ends with the seconds spent on
the export and on the checks.

K-quants (and, for delegated architectures, every type the converter cannot write) are
made by llama.cpp's quantizer from an f16 file: the release's own f16 when it asks for
one, else a hidden intermediate that is deleted at the end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gguf

from release.checkpoint.config import has_chat_template, read_config, text_config
from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.waiting import waiting
from release.gguf.agreement import Probe
from release.gguf.architectures import gguf_arch, supported_classes
from release.gguf.delegate import (
    CONVERTER_TYPES,
    Converter,
    ConverterMissing,
    convert_with_llama_cpp,
    find_converter,
)
from release.gguf.facts import GGUFFacts, GGUFFileFacts, LlamaCppFacts
from release.gguf.formats import FORMATS, GGUFFormat, file_name
from release.gguf.kquant import INSTALL_HINT, llama_cpp_version, quantize_with_llama_cpp
from release.gguf.llama_cpp_process import LlamaCppChild
from release.gguf.metadata import ReleaseMetadata
from release.gguf.pinned import known_build, runtime_build, runtime_knows
from release.gguf.projector import (
    Projector,
    checked_projector,
    projector_name,
    projector_record,
    towers,
)
from release.gguf.readback import ReadBack, check_read_back, read_back, required_keys
from release.gguf.reference_process import KeptReference, ReferenceRun
from release.gguf.settings import GGUFSettings
from release.gguf.timing import GGUFBuild, StageClock
from release.gguf.verify import FileCheck, judge, send
from release.gguf.writer import (
    ExportSource,
    PlannedTensor,
    UnsupportedModel,
    UnwritableModel,
    export_gguf,
    open_source,
)
from release.merge.facts import AdapterFacts

BUILT_IN = "built-in"
CONVERTER = "llama.cpp convert_hf_to_gguf.py"
QUANTIZER = "llama.cpp quantizer"


def release_metadata(settings: GGUFSettings, intake: AdapterFacts | None) -> ReleaseMetadata:
    """The GGUF header's ``general.*`` from the stage's settings, and the Hub commits
    ``intake`` (the adapter stage's facts) pinned."""
    return ReleaseMetadata(
        name=settings.name,
        version=settings.version,
        license=settings.license,
        base_model=settings.base_model,
        base_commit=intake.base_commit if intake else None,
        adapter_repo_id=intake.adapter_repo_id if intake else None,
        adapter_commit=intake.adapter_commit if intake else None,
        repo_id=settings.repo_id,
        tags=list(settings.tags),
        languages=list(settings.language),
        datasets=list(settings.datasets),
    )


@dataclass(frozen=True)
class _Job:
    fmt: GGUFFormat
    exporter: str
    temp: Path
    """Where the file is written and checked, under a hidden name."""
    final: Path | None
    """Its name once checked; None for the quantizer's f16 source, never shipped."""


def _jobs(settings: GGUFSettings, out_dir: Path, delegated: bool) -> list[_Job]:
    """One job per requested type, f16 first (the quantizer starts from it)."""
    formats = [FORMATS[name] for name in dict.fromkeys(settings.types)]
    direct = CONVERTER_TYPES if delegated else tuple(f.name for f in formats if f.in_process)
    writer = CONVERTER if delegated else BUILT_IN
    jobs = []
    for fmt in formats:
        final = out_dir / file_name(settings.name, fmt)
        exporter = writer if fmt.name in direct else QUANTIZER
        jobs.append(_Job(fmt, exporter, final.with_name(f".{final.name}.partial"), final))
    jobs.sort(key=lambda job: (job.exporter == QUANTIZER, job.fmt.name != "f16"))
    if any(job.exporter == QUANTIZER for job in jobs) and "f16" not in settings.types:
        source = out_dir / f".{file_name(settings.name, FORMATS['f16'])}.source"
        jobs.insert(0, _Job(FORMATS["f16"], writer, source, None))
    return jobs


@dataclass(frozen=True)
class _Exporter:
    """The built-in source, or else llama.cpp's converter script; and the converter
    that writes a multimodal checkpoint's projector (None: a text model)."""

    source: ExportSource | None
    converter: Converter | None
    projector: Converter | None = None


def _preflight(settings: GGUFSettings, out_dir: Path, model_dir: Path) -> _Exporter:
    """Fail before any work when the release cannot finish."""
    try:
        exporter = _Exporter(open_source(model_dir), None)
    except UnsupportedModel as problem:
        if isinstance(problem, UnwritableModel) and settings.llama_cpp_dir is None:
            raise WorkError(
                f"{model_dir}: {problem}",
                hint="fix the file named, or set gguf.llama_cpp_dir to a llama.cpp "
                "checkout to have its converter try",
            ) from None
        try:
            converter = find_converter(settings.llama_cpp_dir)
        except ConverterMissing as missing:
            raise WorkError(
                f"{model_dir}: {problem}, and llama.cpp's converter is not there ({missing})",
                hint=f"built in: {', '.join(supported_classes())}; for other models "
                f"{INSTALL_HINT}, or set gguf.llama_cpp_dir to a llama.cpp checkout",
            ) from None
        exporter = _Exporter(None, converter)
    _check_runtime_knows(model_dir)
    if towers(model_dir):
        projector = exporter.converter or _projector(settings, model_dir)
        exporter = _Exporter(exporter.source, exporter.converter, projector)
    needs = [
        job.fmt.name
        for job in _jobs(settings, out_dir, exporter.converter is not None)
        if job.exporter == QUANTIZER
    ]
    if needs and llama_cpp_version() is None:
        raise WorkError(
            f"{', '.join(needs)} need llama.cpp's quantizer (llama-cpp-python)",
            hint=INSTALL_HINT,
        )
    return exporter


def _projector(settings: GGUFSettings, model_dir: Path) -> Converter:
    """The converter that writes the towers' projector, where the text model is ours."""
    try:
        return find_converter(settings.llama_cpp_dir)
    except ConverterMissing as missing:
        raise WorkError(
            f"{model_dir}: the {', '.join(towers(model_dir))} towers' projector needs "
            f"llama.cpp's converter, which is not there ({missing})",
            hint=f"{INSTALL_HINT}, or set gguf.llama_cpp_dir to a llama.cpp checkout",
        ) from None


def _check_runtime_knows(model_dir: Path) -> None:
    """A runtime older than the architecture would fail every check after the export."""
    arch = gguf_arch(text_config(read_config(model_dir)))
    runtime = runtime_build()
    if arch is None or runtime is None:
        return
    name = gguf.MODEL_ARCH_NAMES[arch]
    if runtime_knows(name) is False:
        raise WorkError(
            f"{model_dir}: the installed {runtime.label} cannot load {name} models",
            hint="install a llama-cpp-python release that supports it, or drop gguf.types",
        )


def build_gguf_files(
    settings: GGUFSettings,
    model_dir: Path,
    out_dir: Path,
    report: Reporter,
    intake: AdapterFacts | None = None,
    kept: KeptReference | None = None,
    model_id: str | None = None,
) -> Generator[Event, None, GGUFBuild]:
    """The GGUF files ``settings`` ask for, from the merged model in ``model_dir``, into
    ``out_dir``; yields ``report``'s events, returns the facts and timings. ``intake`` is
    the adapter stage's facts (the commits the release was made from); ``kept``, the merged
    model's reference the evaluate stage kept (None: computed here, of ``model_id``)."""
    exporter = _preflight(settings, out_dir, model_dir)
    meta = release_metadata(settings, intake)
    clock = StageClock()
    with contextlib.ExitStack() as children:
        # started now, so their imports (and the reference, where none was kept) run
        # while the export writes; the checks then wait only for what is not done yet
        llama = children.enter_context(LlamaCppChild()) if llama_cpp_version() else None
        reference: ReferenceRun | KeptReference
        if kept is None:
            reference = children.enter_context(
                contextlib.closing(ReferenceRun(model_dir, model_id, settings.heldout_text))
            )
            yield report.log("computing the merged model's reference beside the export")
        else:
            reference = kept
            yield report.log("checking against the evaluate stage's reference of the merged model")
        files, projector, projector_file, probe = yield from _build_files(
            settings, model_dir, out_dir, report, exporter, meta, clock, reference, llama
        )
    facts = GGUFFacts(
        architecture=read_config(model_dir)["architectures"][0],
        exporter=CONVERTER if exporter.converter else BUILT_IN,
        llama_cpp=_llama_cpp_build(exporter),
        files=files,
        projector=projector_record(projector, projector_file, files),
        probe_prompts=len(probe.prompts),
        probe_positions=sum(len(ids) for ids in probe.prompts),
        smoke_prompt=probe.kept.facts.smoke_prompt,
        smoke_reference_output=probe.smoke_output,
        reference_source=probe.kept.source,
        reference=probe.kept.facts,
    )
    return GGUFBuild(facts, clock.rounded("export"), clock.rounded("checks"))


def _build_files(
    settings: GGUFSettings,
    model_dir: Path,
    out_dir: Path,
    report: Reporter,
    exporter: _Exporter,
    meta: ReleaseMetadata,
    clock: StageClock,
    reference: ReferenceRun | KeptReference,
    llama: LlamaCppChild | None,
) -> Generator[Event, None, tuple[list[GGUFFileFacts], Projector | None, Path, Probe]]:
    """Write, check and name each file; the records, the projector and the probe."""
    jobs = _jobs(settings, out_dir, exporter.converter is not None)
    projector_file = out_dir / projector_name(settings.name)
    projector_temp = projector_file.with_name(f".{projector_file.name}.partial")
    f16_source: Path | None = None
    layout: dict[str, tuple[tuple[int, ...], str | None]] | None = None
    files = []
    projector = None
    probe: Probe | None = None
    sent: FileCheck | None = None
    try:
        if exporter.projector is not None:
            yield report.log(
                f"writing {projector_file.name} (the {', '.join(towers(model_dir))} towers)"
            )
            projector = checked_projector(
                exporter.projector.script, model_dir, projector_temp, meta
            )
        for job in jobs:
            yield report.log(f"writing {job.final.name if job.final else 'an f16 source'}")
            with clock.counting("export"):
                expected = yield from _write(report, job, exporter, model_dir, f16_source, meta)
            with clock.counting("checks"):
                found = read_back(job.temp)
                layout = layout or {n: (shape, None) for n, (shape, _) in found.tensors.items()}
                _check(found, expected or layout, model_dir, job.temp)
            if job.fmt.name == "f16":
                f16_source = job.temp
            if job.final is None:
                continue
            if sent is not None:  # the file before, checked while this one was written
                files.append((yield from _judged(report, clock, sent, probe, llama, settings)))
                if f16_source == sent.path:
                    f16_source = sent.path.with_name(sent.name)
            checking = f"checking {job.final.name} with {'llama_cpp' if llama else 'transformers'}"
            yield report.log(checking)
            with clock.counting("checks"):
                if probe is None:  # the first file waits for a reference computed here
                    kept = reference
                    if isinstance(reference, ReferenceRun):
                        waited = "computing the merged model's reference"
                        kept = yield from waiting(report, waited, reference.wait)
                    probe = Probe(kept)
                mmproj = projector.path if projector else None
                sent = yield from waiting(
                    report,
                    checking,
                    partial(
                        send,
                        job.final.name,
                        job.fmt,
                        job.exporter,
                        job.temp,
                        probe,
                        mmproj=mmproj,
                        llama=llama,
                    ),
                )
        if sent is not None:
            files.append((yield from _judged(report, clock, sent, probe, llama, settings)))
        if projector is not None:
            os.replace(projector_temp, projector_file)
        yield report.log(clock.summary(len(files)))
    finally:
        projector_temp.unlink(missing_ok=True)
        for job in jobs:
            job.temp.unlink(missing_ok=True)
    assert probe is not None  # every release asks for at least one file
    return files, projector, projector_file, probe


def _judged(
    report: Reporter,
    clock: StageClock,
    sent: FileCheck,
    probe: Probe | None,
    llama: LlamaCppChild | None,
    settings: GGUFSettings,
) -> Generator[Event, None, GGUFFileFacts]:
    """Wait for ``sent``'s check; once it passed, give the file its name."""
    assert probe is not None
    with clock.counting("checks"):
        record = yield from waiting(
            report,
            f"checking {sent.name} with {sent.loader}",
            partial(judge, sent, probe, llama, settings.max_kld),
        )
    os.replace(sent.path, sent.path.with_name(sent.name))
    return record


def _write(
    report: Reporter,
    job: _Job,
    exporter: _Exporter,
    model_dir: Path,
    f16_source: Path | None,
    meta: ReleaseMetadata,
) -> Generator[Event, None, dict | None]:
    """Write one file; return the layout it must read back as (None: the f16 one)."""
    if job.exporter == BUILT_IN:
        assert exporter.source is not None
        planned = yield from _progress(
            report, export_gguf(exporter.source, job.temp, job.fmt, meta)
        )
        return {p.name: (p.shape, p.qtype.name) for p in planned}
    report.check_cancelled()
    try:
        if job.exporter == CONVERTER:
            assert exporter.converter is not None
            script = exporter.converter.script
            yield from waiting(
                report,
                f"llama.cpp's converter writing {job.fmt.name}",
                partial(convert_with_llama_cpp, script, model_dir, job.temp, job.fmt.name, meta),
            )
        else:
            assert f16_source is not None
            yield from waiting(
                report,
                f"llama.cpp's quantizer writing {job.fmt.name}",
                partial(quantize_with_llama_cpp, f16_source, job.temp, job.fmt),
            )
    except RuntimeError as exc:
        raise WorkError(str(exc), hint="see the message above; rerun with --debug") from exc
    return None


def _progress(
    report: Reporter, export: Generator[tuple[int, int], None, list[PlannedTensor]]
) -> Generator[Event, None, list[PlannedTensor]]:
    """Turn the exporter's (done, total) into progress events; return its result."""
    while True:
        try:
            done, total = next(export)
        except StopIteration as stop:
            return stop.value
        yield report.progress(done, total, "tensors")


def _check(found: ReadBack, expected: dict, model_dir: Path, path: Path) -> None:
    keys = required_keys(found.architecture, chat_template=has_chat_template(model_dir))
    try:
        check_read_back(found, expected, keys, path)
    except ValueError as exc:
        raise WorkError(
            str(exc),
            hint="the file does not hold what the model does; drop this type from gguf.types "
            "and report it with the manifest (rerun with --debug for the details)",
        ) from None


def _llama_cpp_build(exporter: _Exporter) -> LlamaCppFacts | None:
    """The llama.cpp the files were written (converter) and checked (runtime) with."""
    if (converter := exporter.converter or exporter.projector) is not None:
        return converter.build
    runtime = known_build()
    return LlamaCppFacts.model_validate(runtime.to_facts()) if runtime else None
