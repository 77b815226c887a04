"""BibTeX: check what a card cites, and cite what a release used.

``parse_bibtex`` reads with bibtexparser v2 and reports, with 1-based line numbers,
entries it could not parse (an unclosed brace swallows the rest of the block),
duplicate keys and fields, unknown entry types and missing required fields.

``method_citations`` picks, from a release's measured facts, the methods it used
(LoRA, its rsLoRA / DoRA / PiSSA / QLoRA variants, GGUF via llama.cpp,
lm-evaluation-harness) and returns their BibTeX from cards/data/citations.bib,
followed by the base model's and datasets' own citations when the facts carry them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cards.measured import MeasuredFacts

# Per entry type, the fields BibTeX requires; a tuple means "one of these".
_REQUIRED: dict[str, list[str | tuple[str, ...]]] = {
    "article": ["author", "title", "journal", ("year", "date")],
    "book": [("author", "editor"), "title", "publisher", ("year", "date")],
    "booklet": ["title"],
    "inproceedings": ["author", "title", "booktitle", ("year", "date")],
    "conference": ["author", "title", "booktitle", ("year", "date")],
    "inbook": [("author", "editor"), "title", ("chapter", "pages"), "publisher", ("year", "date")],
    "incollection": ["author", "title", "booktitle", "publisher", ("year", "date")],
    "manual": ["title"],
    "mastersthesis": ["author", "title", "school", ("year", "date")],
    "phdthesis": ["author", "title", "school", ("year", "date")],
    "misc": [],
    "online": [("author", "editor"), "title", ("year", "date"), ("url", "doi")],
    "software": [("author", "editor"), "title", ("url", "doi")],
    "proceedings": ["title", ("year", "date")],
    "techreport": ["author", "title", "institution", ("year", "date")],
    "unpublished": ["author", "title", "note"],
}

# Method name -> key of its entry in cards/data/citations.bib.
METHODS = {
    "lora": "hu2022lora",
    "qlora": "dettmers2023qlora",
    "dora": "liu2024dora",
    "rslora": "kalajdzievski2023rslora",
    "pissa": "meng2024pissa",
    "gguf": "gerganov2023llamacpp",
    "lm-eval": "eval-harness",
    # merge methods (a recipe's merge_method; release.merge.methods has their papers)
    "linear": "wortsman2022soups",
    "task_arithmetic": "ilharco2023taskarithmetic",
    "ties": "yadav2023ties",
    "dare_ties": "yu2024dare",
    "dare_linear": "yu2024dare",
    "slerp": "shoemake1985slerp",
    "breadcrumbs": "davari2024breadcrumbs",
    "breadcrumbs_ties": "davari2024breadcrumbs",
    "della": "deep2024della",
    "della_linear": "deep2024della",
}


@dataclass(frozen=True)
class BibProblem:
    line: int
    severity: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class BibEntry:
    key: str
    entry_type: str
    line: int
    fields: dict[str, str]
    text: str


def parse_bibtex(text: str) -> tuple[list[BibEntry], list[BibProblem]]:
    """Entries and problems in ``text``; lines are 1-based within ``text``."""
    import bibtexparser
    from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock

    with _quiet("bibtexparser.splitter"):
        library = bibtexparser.parse_string(text, parse_stack=[])
    problems = []
    for block in library.failed_blocks:
        line = block.start_line + 1
        if isinstance(block, DuplicateBlockKeyBlock):
            problems.append(BibProblem(line, "error", f"duplicate BibTeX key {block.key!r}"))
        elif isinstance(block, DuplicateFieldKeyBlock):
            fields = ", ".join(sorted(block.duplicate_keys))
            problems.append(BibProblem(line, "error", f"field given twice: {fields}"))
        else:
            head = block.raw.strip().splitlines()[0][:60]
            reason = getattr(block.error, "abort_reason", "") or "syntax error"
            problems.append(
                BibProblem(line, "error", f"unclosed or malformed entry {head!r}: {reason}")
            )
    entries = []
    for entry in library.entries:
        fields = {f.key.lower(): str(f.value) for f in entry.fields}
        kind = entry.entry_type.lower()
        line = entry.start_line + 1
        problems += _field_problems(kind, entry.key, fields, line)
        entries.append(BibEntry(entry.key, kind, line, fields, entry.raw.strip()))
    return entries, sorted(problems, key=lambda p: p.line)


def _field_problems(kind: str, key: str, fields: dict[str, str], line: int) -> list[BibProblem]:
    if kind not in _REQUIRED:
        return [BibProblem(line, "warning", f"@{kind}{{{key}}}: unknown BibTeX entry type")]
    problems = []
    for need in _REQUIRED[kind]:
        options = need if isinstance(need, tuple) else (need,)
        if not any(fields.get(name, "").strip("{} ") for name in options):
            missing = " or ".join(options)
            problems.append(BibProblem(line, "error", f"@{kind}{{{key}}}: missing {missing}"))
    if kind == "misc" and "title" not in fields:
        problems.append(BibProblem(line, "warning", f"@misc{{{key}}}: no title"))
    return problems


@contextmanager
def _quiet(logger_name: str):
    """bibtexparser logs each failed block; we return them as problems instead."""
    logger = logging.getLogger(logger_name)
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def methods_used(facts: MeasuredFacts, harnesses: Iterable[str] = ()) -> list[str]:
    """Names from ``METHODS`` that the facts show were used, in citation order.

    Reads ``facts.lora`` (``use_rslora``, ``use_dora``, ``init_lora_weights``
    starting with "pissa", ``qlora``), ``facts.gguf_files``, and the harnesses
    that produced the card's eval records, and ``facts.merge_recipe``'s methods.
    """
    lora = facts.lora
    if lora is None:
        used = []
    else:
        used = ["lora"] if lora.model_dump(exclude_none=True) else []
        used += ["qlora"] if lora.qlora else []
        used += ["rslora"] if lora.use_rslora else []
        used += ["dora"] if lora.use_dora else []
        used += ["pissa"] if str(lora.init_lora_weights or "").startswith("pissa") else []
    used += ["gguf"] if facts.gguf_files else []
    used += ["lm-eval"] if "lm-evaluation-harness" in set(harnesses) else []
    recipe = facts.merge_recipe
    used += [m.name for m in recipe.methods if m.name in METHODS] if recipe else []
    return used


def method_citations(facts: MeasuredFacts, harnesses: Iterable[str] = ()) -> list[str]:
    """BibTeX for the methods used, then ``facts.base_model_citation`` and
    ``facts.dataset_citations`` (BibTeX strings) when given."""
    library = _library()
    keys = dict.fromkeys(METHODS[name] for name in methods_used(facts, harnesses))
    cited = [library[key] for key in keys]
    extra = [facts.base_model_citation, *facts.dataset_citations]
    return cited + [text.strip() for text in extra if text and text.strip()]


@cache
def _library() -> dict[str, str]:
    text = resources.files("cards").joinpath("data", "citations.bib").read_text(encoding="utf-8")
    return {entry.key: entry.text for entry in parse_bibtex(text)[0]}


def unique_citations(texts: Iterable[str]) -> list[str]:
    """``texts`` without repeats: a text whose BibTeX keys were all cited already (the
    base model's card citing LoRA, say) is dropped, so the card has no duplicate key."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        keys = {entry.key for entry in parse_bibtex(text)[0]}
        if text.strip() and not (keys and keys <= seen):
            kept.append(text)
            seen |= keys
    return kept
