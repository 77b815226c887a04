"""What the usage snippets load a release with, from its measured facts.

transformers: a checkpoint that keeps its vision tower (``facts.towers``) loads with
``AutoModelForImageTextToText`` and takes its input from ``AutoProcessor`` (the Hub's
``image-text-to-text`` models); a text model with ``AutoModelForCausalLM`` and
``AutoTokenizer``. The chat template is applied only where the release has one.

llama.cpp: the GGUF file named in the snippets, its quant as ``-hf``/Ollama tags spell
it (``Q8_0``), and the towers' projector (``--mmproj``) with the media flag of the
tower it carries.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cards.measured import MeasuredFacts

VISION = ("AutoModelForImageTextToText", "AutoProcessor")
TEXT = ("AutoModelForCausalLM", "AutoTokenizer")
MEDIA = {
    "vision": ("--image image.jpg", "Describe this image."),
    "audio": ("--audio audio.wav", "Transcribe this audio."),
}
"""llama-mtmd-cli's flag for each tower, with a prompt that uses it."""


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_class: str
    processor_class: str
    chat_template: bool
    vision: bool


class GGUFUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    quant: str
    mmproj: str | None = None
    media_flag: str | None = None
    media_prompt: str | None = None


def usage(facts: MeasuredFacts) -> Usage:
    vision = "vision" in (facts.towers or [])
    model_class, processor_class = VISION if vision else TEXT
    return Usage(
        model_class=model_class,
        processor_class=processor_class,
        chat_template=bool(facts.chat_template),
        vision=vision,
    )


def gguf_usage(facts: MeasuredFacts) -> GGUFUsage | None:
    """The first GGUF file of the release (the spec's first type), and the projector."""
    files = [file for file in facts.gguf_files if file.name]
    if not files:
        return None
    first, mmproj = files[0], facts.mmproj
    towers = mmproj.towers if mmproj else []
    tower = next((t for t in MEDIA if t in towers), None)
    flag, prompt = MEDIA[tower] if tower else (None, None)
    return GGUFUsage(
        file=str(first.name),
        quant=str(first.type).upper(),
        mmproj=mmproj.name if mmproj else None,
        media_flag=flag,
        media_prompt=prompt,
    )
