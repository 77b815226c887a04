"""Each GGUF file's checks, sent to llama.cpp while the next file is written.

``send`` hands a written file to the stage's llama.cpp child (``llama_cpp_process``) and
hashes it meanwhile; the stage then writes the next file while llama.cpp loads this one
and runs the probe on the other core, and ``judge`` collects what it found, compares it
with the merged model's logits and returns the file's manifest record (or raises
WorkError: a file that fails is never given its name). Without llama.cpp, transformers'
GGUF loader checks the file in ``send`` itself (``release.gguf.agreement`` says why it
is not a second check where llama.cpp runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from release.core.errors import WorkError
from release.core.files import sha256_file
from release.gguf.agreement import (
    LoaderResult,
    Probe,
    llama_cpp_request,
    llama_cpp_result,
    transformers_check,
)
from release.gguf.facts import GGUFFileFacts, QuantQualityFacts
from release.gguf.formats import GGUFFormat
from release.gguf.llama_cpp_process import LlamaCppChild
from release.gguf.quality import quant_quality
from release.reference import heldout as heldouts


@dataclass(frozen=True)
class FileCheck:
    """A written file on its way through its check."""

    name: str
    """The name it gets once it passes."""
    fmt: GGUFFormat
    exporter: str
    path: Path
    bytes: int
    sha256: str
    done: LoaderResult | None
    """transformers' finding; None while llama.cpp's child has the file."""

    @property
    def loader(self) -> str:
        return "transformers" if self.done else "llama_cpp"


def send(
    name: str,
    fmt: GGUFFormat,
    exporter: str,
    path: Path,
    probe: Probe,
    *,
    mmproj: Path | None,
    llama: LlamaCppChild | None,
) -> FileCheck:
    """Hand ``path`` to llama.cpp's child (or check it with transformers, without one)."""
    done = None
    if llama is not None:
        llama.send(llama_cpp_request(path, probe, mmproj))
    else:
        done = _loaded(name, "transformers", lambda: transformers_check(path, probe))
    return FileCheck(name, fmt, exporter, path, path.stat().st_size, sha256_file(path), done)


def judge(
    check: FileCheck, probe: Probe, llama: LlamaCppChild | None, max_kld: float
) -> GGUFFileFacts:
    """The file's record once its reader answered and agreed with the merged model, and
    lost no more than ``max_kld`` (mean KL divergence on the held-out text)."""
    result = check.done
    if result is None:
        assert llama is not None
        result = _loaded(check.name, "llama_cpp", lambda: llama_cpp_result(probe, llama.receive()))
    loader = check.loader
    if result.agreement.confident_top1_agreement < check.fmt.min_top1:
        raise WorkError(
            f"{check.name}: top-1 agreement with the merged model under {loader} is "
            f"{result.agreement.confident_top1_agreement:.3f} where the model is "
            f"confident, below {check.fmt.min_top1} for {check.fmt.name}",
            hint="drop this type from gguf.types, or report the export as a bug",
        )
    if result.tokenizer_agrees is False:
        raise WorkError(
            f"{check.name}: llama.cpp tokenizes the probe prompts differently from "
            "the merged model's tokenizer",
            hint="the tokenizer export is wrong for this model; please report it",
        )
    read = result.llama_cpp
    quality = _quality(check, probe, read, max_kld)
    return GGUFFileFacts(
        name=check.name,
        type=check.fmt.name,
        exporter=check.exporter,
        bytes=check.bytes,
        sha256=check.sha256,
        top1_agreement={loader: result.agreement.top1_agreement},
        confident_top1_agreement={loader: result.agreement.confident_top1_agreement},
        mean_kl={loader: result.agreement.mean_kl},
        max_abs_diff={loader: result.agreement.max_abs_diff},
        min_top1_agreement=check.fmt.min_top1,
        tokenizer_agreement=result.tokenizer_agrees,
        smoke_output=result.smoke_output,
        stop_ids=read.stop_ids if read else None,
        mmproj_loaded=read.mmproj_loaded if read else None,
        quality=quality,
        passed=True,  # a file that fails a check above is never kept
    )


def _quality(check: FileCheck, probe: Probe, read, max_kld: float) -> QuantQualityFacts | None:
    """The file's figures on the held-out text; WorkError over the limit."""
    if read is None or read.heldout is None or probe.heldout is None:
        return None
    found = quant_quality(probe.heldout, read.heldout)
    if found.kld_mean > max_kld:
        raise WorkError(
            f"{check.name}: mean KL divergence from the merged model on the held-out text "
            f"is {found.kld_mean:.4f} nats ({found.tokens} tokens), over gguf.max_kld "
            f"{max_kld}",
            hint=f"drop {check.fmt.name} from gguf.types, or raise gguf.max_kld in the spec",
        )
    return QuantQualityFacts(
        text=probe.kept.facts.heldout_text or "",
        chunk=int(probe.reference.sets[heldouts.SET].lengths[0]),
        tokens=found.tokens,
        limited=probe.kept.facts.heldout_limited,
        kld_mean=round(found.kld_mean, 6),
        kld_median=round(found.kld_median, 6),
        kld_p99=round(found.kld_p99, 6),
        kld_max=round(found.kld_max, 6),
        same_top1=round(found.same_top1, 4),
        ppl=round(found.ppl, 4),
        ppl_reference=round(found.ppl_reference, 4),
        ppl_ratio=round(found.ppl_ratio, 4),
        max_kld=max_kld,
    )


def _loaded(name: str, loader: str, check) -> LoaderResult:
    try:
        return check()
    except WorkError:
        raise
    except Exception as exc:  # a reader we did not write refused our file
        raise WorkError(
            f"{name}: {loader} could not load it: {exc}",
            hint=f"{loader} does not accept this model's layout; drop this type from "
            "gguf.types, or try another release of it",
        ) from exc
