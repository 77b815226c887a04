"""Catalan-shaped text, made here: sentences of Catalan words (accents, apostrophes,
«cometes», the punctuation of a real corpus) drawn from a fixed vocabulary, for the
contamination check's tests and bench/contamination.py. Deterministic for a seed."""

from __future__ import annotations

import numpy as np

_VOCABULARY = (
    "el la els les un una de del dels a al amb per però i o que qui on quan com molt més "
    "menys també encara sempre mai avui ahir demà aquí allà casa ciutat poble carrer plaça "
    "muntanya mar riu platja bosc camp escola feina família amic amiga mare pare fill filla "
    "àvia avi germà germana llibre taula cadira finestra porta cotxe tren vaixell pa vi "
    "aigua llet formatge pomes taronges peix carn sopa arròs cafè temps dia nit matí tarda "
    "setmana mes any estiu hivern primavera tardor pluja sol vent neu història llengua "
    "català catalana música cançó festa sardana castells diada ajuntament govern país "
    "Barcelona Girona Lleida Tarragona València Palma Andorra Perpinyà Montserrat Pirineu "
    "és són era eren serà ha han havia va van anar venir fer dir veure saber poder voler "
    "menjar beure viure treballar estudiar escriure llegir parlar caminar córrer jugar "
    "gran petit petita nou nova vell vella bo bona dolent bonic bonica llarg curt alt baix "
    "fàcil difícil ràpid lent feliç trist càlid fred calent important necessari possible "
    "d'aquest d'aquesta l'home l'aigua l'escola l'any l'àvia l'estiu s'ha n'hi m'agrada "
    "t'estimo col·legi il·lusió paral·lel intel·ligent ço això allò açò cap cada tot tota"
)
WORDS = tuple(_VOCABULARY.split())
_ENDINGS = (".", ".", ".", "?", "!", "…", ".")
_INSIDE = (",", ",", ";", ":", " —")


def sentences(count: int, seed: int = 0, words: tuple[int, int] = (8, 30)) -> list[str]:
    """``count`` sentences of ``words`` (low, high) words each."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(words[0], words[1] + 1, size=count)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum())).tolist()
    endings = rng.integers(0, len(_ENDINGS), size=count).tolist()
    commas = rng.integers(0, 4 * len(_INSIDE), size=count).tolist()
    quoted = rng.random(count) < 0.1
    out = []
    at = 0
    for number, length in enumerate(lengths.tolist()):
        chosen = [WORDS[i] for i in picks[at : at + length]]
        at += length
        chosen[0] = chosen[0][:1].upper() + chosen[0][1:]
        if commas[number] < len(_INSIDE):
            middle = length // 2
            chosen[middle] += _INSIDE[commas[number]]
        text = " ".join(chosen) + _ENDINGS[endings[number]]
        out.append(f"«{text}»" if quoted[number] else text)
    return out


def planted_corpus(
    documents: int,
    segments: int,
    per_kind: int,
    seed: int,
    question_words: tuple[int, int],
    answer_words: tuple[int, int],
) -> tuple[list[str], list[str]]:
    """Test documents (``Pregunta: … Resposta: …``) and training texts with contamination
    planted, ``per_kind`` of each kind: test ``k`` copied exactly, test ``per_kind + k``
    with its middle word changed, test ``2 * per_kind + k`` inside a longer training text,
    at training texts ``10 * (3k + 1)``, ``10 * (3k + 2)`` and ``10 * (3k + 3)``; the other
    tests nowhere. The contamination tests and bench/contamination.py share it."""
    tests = [
        f"Pregunta: {question} Resposta: {answer}"
        for question, answer in zip(
            sentences(documents, seed, words=question_words),
            sentences(documents, seed + 1, words=answer_words),
            strict=True,
        )
    ]
    training = sentences(segments, seed + 2)
    for k in range(per_kind):
        training[10 * (3 * k + 1)] = tests[k]
        changed = tests[per_kind + k].split()
        changed[len(changed) // 2] = "paraula"
        training[10 * (3 * k + 2)] = " ".join(changed)
        training[10 * (3 * k + 3)] = f"Abans de res. {tests[2 * per_kind + k]} I després, res més."
    return tests, training
