"""The projector GGUF of a multimodal checkpoint: its vision and audio towers, as
llama.cpp and the Hub's GGUF repos ship them (``mmproj-<name>-F16.gguf`` beside the text
model's files).

llama.cpp's converter writes it (``--mmproj``; the pinned converter, so the runtime that
loads it is the same llama.cpp), in f16 as the Hub's repos have it; it reads the image
normalisation from the merged folder's processor configs. gguf-py's reader checks what
was written (the towers' flags, every tensor 1-D or more), and the GGUF stage has
llama.cpp's multimodal loader open it beside the text model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from release.checkpoint.config import read_config
from release.checkpoint.config import towers as config_towers
from release.core.errors import WorkError
from release.core.files import sha256_file
from release.gguf.delegate import convert_with_llama_cpp
from release.gguf.facts import GGUFFileFacts, ProjectorFacts
from release.gguf.metadata import ReleaseMetadata

PREFIX = "mmproj-"
_TOWER_PARTS = (".vision_tower.", ".audio_tower.", ".embed_vision.", ".embed_audio.")
_TOWER_PARTS += (".multi_modal_projector.",)


def is_tower_tensor(name: str) -> bool:
    """A tensor of a tower (or its projection into the text model): the projector's,
    never the text GGUF's."""
    return any(part in f".{name}" for part in _TOWER_PARTS)


def towers(model_dir: Path) -> list[str]:
    """The towers the checkpoint carries: ``vision``, ``audio`` (none: a text model)."""
    return config_towers(read_config(model_dir))


def projector_name(release_name: str) -> str:
    return f"{PREFIX}{release_name}-F16.gguf"


@dataclass(frozen=True)
class Projector:
    path: Path
    towers: list[str]
    tensors: int


def write_projector(
    script: Path, model_dir: Path, target: Path, meta: ReleaseMetadata
) -> Projector:
    """Write the towers of ``model_dir`` to ``target`` and read it back; ValueError when
    it does not hold them."""
    import gguf

    convert_with_llama_cpp(script, model_dir, target, "f16", meta, mmproj=True)
    reader = gguf.GGUFReader(target)
    found = []
    for tower in ("vision", "audio"):
        field = reader.get_field(f"clip.has_{tower}_encoder")
        if field is not None and field.contents():
            found.append(tower)
    expected = towers(model_dir)
    if found != expected:
        raise ValueError(f"{target.name}: holds the {found} towers, the model has {expected}")
    if any(len(tensor.shape) == 0 for tensor in reader.tensors):
        raise ValueError(f"{target.name}: a 0-d tensor (GGUF has none)")
    return Projector(target, found, len(reader.tensors))


def checked_projector(
    script: Path, model_dir: Path, temp: Path, meta: ReleaseMetadata
) -> Projector:
    """``write_projector``, its failure a one-line error naming the file."""
    try:
        return write_projector(script, model_dir, temp, meta)
    except (RuntimeError, ValueError) as exc:
        raise WorkError(
            f"{temp.name.strip('.').removesuffix('.partial')}: {exc}",
            hint="the towers' projector could not be written; drop gguf.types to skip GGUF, "
            "or report it with the manifest",
        ) from None


def projector_record(
    projector: Projector | None, path: Path, files: list[GGUFFileFacts]
) -> ProjectorFacts | None:
    """The projector's facts: file, towers, bytes, whether llama.cpp opened it beside
    every text file (``mmproj_loaded`` in their records)."""
    if projector is None:
        return None
    return ProjectorFacts(
        name=path.name,
        towers=projector.towers,
        tensors=projector.tensors,
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
        loaded_by_llama_cpp=all(f.mmproj_loaded for f in files) if files else None,
    )
