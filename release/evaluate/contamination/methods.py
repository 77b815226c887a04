"""The methods of the check, one row each: the key its counts go under in the facts, and
how the card says what it compared (``MethodFacts``)."""

from __future__ import annotations

from release.evaluate.contamination.facts import MethodFacts
from release.spec.schema import ContaminationSpec

NORMAL_FORM = "Unicode NFKC, case-folded, punctuation and symbols removed, whitespace collapsed"


def methods_of(spec: ContaminationSpec) -> list[MethodFacts]:
    """The methods ``spec`` asks for, in the order the card lists them."""
    rows: list[MethodFacts] = []
    if "exact" in spec.methods:
        rows.append(
            MethodFacts(key="exact", label="Exact", description=f"exact match ({NORMAL_FORM})")
        )
    if "substring" in spec.methods:
        rows.append(
            MethodFacts(
                key="substring",
                label="Substring",
                description="a test text inside a training text (same normal form; "
                f"test texts of at least {spec.min_substring_chars} characters)",
            )
        )
    if "word_ngrams" in spec.methods:
        n = spec.word_ngram
        rows.append(
            MethodFacts(
                key=f"word_{n}grams",
                label=f"Word {n}-grams",
                description=f"any shared word {n}-gram, tokenized and normalized as "
                "lm-evaluation-harness's decontamination Janitor",
                n=n,
            )
        )
    if "char_ngrams" in spec.methods:
        for n in spec.char_ngrams:
            rows.append(
                MethodFacts(
                    key=f"char_{n}grams",
                    label=f"Char {n}-grams",
                    description=f"at least {spec.min_overlap:.0%} of a test text's character "
                    f"{n}-grams found in training ({NORMAL_FORM})",
                    n=n,
                    min_overlap=spec.min_overlap,
                )
            )
    return rows
