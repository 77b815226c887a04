"""The merge methods, one table: name -> how it combines one tensor, its paper, its rules.

Each method takes the step's base (``None`` where the method ignores it) and the inputs'
values of one tensor, as float32 arrays of the same shape ``(rows, width)`` (the tensor
reshaped by its first axis, as mergekit's batches are), with the parameters resolved for
that tensor, and returns the merged float32 array. The arithmetic follows mergekit
0.1.5's (``merge_methods/``, ``sparsify.py``) operation by operation in float32, so
that the same YAML gives the same tensors (tests/test_merge_recipe_mergekit.py measures
it). A method marked ``whole`` looks across the whole tensor (a top-k by magnitude, a
norm for rescaling) and is given all of it at once; the others work on any block of
rows, which the streaming engine uses to bound its memory.

Random methods draw from numpy's PCG64 seeded by (random_seed, tensor name, input), so
a tensor's mask does not depend on the order tensors are merged in, nor on the machine.
mergekit draws from torch's global generator in its task order; the two cannot draw the
same masks, so the random methods are checked against it statistically.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

BasePolicy = Literal["required", "ignored"]


@dataclass(frozen=True)
class Parameter:
    """One parameter a method takes: per input (``weight``) or shared (``lambda``)."""

    name: str
    kind: type
    scope: Literal["input", "shared"]
    default: Any = None
    low: float | None = None
    high: float | None = None
    """Bounds of a number, inclusive."""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Resolved:
    """The parameters of one tensor: shared ones by name, per-input ones by input."""

    shared: dict[str, Any]
    inputs: list[dict[str, Any]]
    seeds: list[np.random.Generator | None] = field(default_factory=list)


MergeFunction = Callable[[np.ndarray | None, list[np.ndarray], Resolved], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    pretty_name: str
    paper: str
    """The paper's URL (the card cites it: cards/data/citations.bib)."""
    merge: MergeFunction
    parameters: tuple[Parameter, ...]
    base: BasePolicy
    whole: bool = False
    random: bool = False
    inputs: tuple[int, int | None] = (1, None)
    """Least and most inputs (the base counts where it is listed among the models)."""
    held: tuple[int, int] = (1, 5)
    """float32 copies of the block it is given (a block of rows, or the whole tensor for
    a ``whole`` method) held at its peak: per input, and besides (the base, the sums,
    the result, the cast), as tracemalloc measured them on the tiny Llama (merge preflight,
    ``release.merge.needs``)."""

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


# --- sparsification (mergekit.sparsify) ---------------------------------------------


def _rescaled(tensor: np.ndarray, mask: np.ndarray, rescale: bool) -> np.ndarray:
    masked = tensor * mask
    if not rescale:
        return masked
    before, after = np.abs(tensor).sum(dtype=np.float32), np.abs(masked).sum(dtype=np.float32)
    if before < 1e-7 or after < 1e-7:
        return masked
    return masked * (before / after)


def magnitude(delta: np.ndarray, density: float, rescale: bool, **_: Any) -> np.ndarray:
    """Keep the ``density`` share of largest magnitudes (at least one element)."""
    if density >= 1:
        return delta
    if density <= 0 or delta.size == 0:
        return np.zeros_like(delta)
    k = max(1, int(density * delta.size))
    mask = np.zeros(delta.size, dtype=np.float32)
    mask[np.argsort(-np.abs(delta).reshape(-1), kind="stable")[:k]] = 1
    return _rescaled(delta, mask.reshape(delta.shape), rescale)


def magnitude_outliers(
    delta: np.ndarray, density: float, rescale: bool, gamma: float = 0.01, **_: Any
) -> np.ndarray:
    """Drop the ``gamma`` share of largest magnitudes, then the smallest down to
    ``density`` (Model Breadcrumbs)."""
    if density >= 1:
        return delta
    count = delta.size
    target, top = int(density * count), int(gamma * count)
    bottom = max(0, count - target - top)
    order = np.argsort(np.abs(delta).reshape(-1), kind="stable")
    mask = np.zeros(count, dtype=np.float32)
    mask[order[bottom : bottom + target]] = 1
    return _rescaled(delta, mask.reshape(delta.shape), rescale)


def bernoulli(
    delta: np.ndarray, density: float, rescale: bool, rng: np.random.Generator, **_: Any
) -> np.ndarray:
    """Keep each element with probability ``density`` (DARE), seeded."""
    if density >= 1:
        return delta
    mask = (rng.random(delta.shape, dtype=np.float32) < np.float32(density)).astype(np.float32)
    return _rescaled(delta, mask, rescale)


def della_magprune(
    delta: np.ndarray,
    density: float,
    rescale: bool,
    rng: np.random.Generator,
    epsilon: float = 0.15,
    **_: Any,
) -> np.ndarray:
    """Keep each element with a probability that grows with its magnitude's rank in its
    row, from density - epsilon to density + epsilon (DELLA's MagPrune), seeded."""
    if density >= 1:
        return delta
    if density <= 0:
        return np.zeros_like(delta)
    rows = delta.reshape(1, -1) if delta.ndim < 2 else delta
    ranks = np.argsort(np.argsort(np.abs(rows), axis=1, kind="stable"), axis=1)
    ranks = ranks.astype(np.float32) + 1
    low, high = ranks.min(axis=1, keepdims=True), ranks.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = np.clip((ranks - low) / (high - low), 0, 1)
    normed = np.nan_to_num(normed, nan=0.0)
    probability = np.float32(density - epsilon) + normed * np.float32(2 * epsilon)
    mask = (rng.random(rows.shape, dtype=np.float32) < probability).astype(np.float32)
    return _rescaled(rows, mask, rescale).reshape(delta.shape)


Sparsify = Callable[..., np.ndarray]


# --- the methods ----------------------------------------------------------------------


def linear(base: np.ndarray | None, values: list[np.ndarray], p: Resolved) -> np.ndarray:
    """sum(w_i x_i), over sum(w_i) when normalize (Model Soups).

    mergekit accumulates with torch's ``addcmul_``, which fuses each multiply-add (one
    rounding) on CPUs with FMA; the exact product and sum in float64, rounded once to
    float32, give the same bits on any CPU."""
    weights = np.array([inp["weight"] for inp in p.inputs], dtype=np.float32)
    result = np.zeros(values[0].shape, dtype=np.float32)
    for value, weight in zip(values, weights, strict=True):
        fused = value.astype(np.float64)
        fused *= np.float64(weight)
        fused += result
        result = fused.astype(np.float32)
    if p.shared["normalize"]:
        result /= weights.sum(dtype=np.float32)
    return result


def _task_arithmetic(
    sparsify: Sparsify | None, consensus: bool
) -> Callable[[np.ndarray | None, list[np.ndarray], Resolved], np.ndarray]:
    """mergekit's generalized task arithmetic: deltas from the base, each sparsified,
    weighted, kept where they agree with the majority sign (TIES), summed, normalized by
    the weights kept, scaled by lambda, added to the base."""

    def merge(base: np.ndarray | None, values: list[np.ndarray], p: Resolved) -> np.ndarray:
        assert base is not None
        if not values:
            return base.copy()
        deltas = np.empty((len(values), *base.shape), dtype=np.float32)
        for index, value in enumerate(values):
            delta = value - base
            if sparsify is not None:
                inp = p.inputs[index]
                delta = sparsify(
                    delta,
                    density=inp["density"],
                    rescale=p.shared["rescale"],
                    rng=p.seeds[index] if p.seeds else None,
                    **{key: inp[key] for key in ("gamma", "epsilon") if key in inp},
                )
            deltas[index] = delta
        weights = np.array([inp["weight"] for inp in p.inputs], dtype=np.float32)
        weights = weights.reshape((-1,) + (1,) * base.ndim)
        deltas *= weights
        if consensus:
            majority = np.where(deltas.sum(axis=0) >= 0, 1, -1).astype(np.float32)
            agree = np.sign(deltas) == majority
            mixed = (deltas * agree).sum(axis=0)
            divisor = (weights * agree).sum(axis=0)
            divisor[divisor == 0] = 1
        else:
            mixed = deltas.sum(axis=0)
            divisor = weights.sum(axis=0)
            divisor[np.abs(divisor) < 1e-8] = 1
        if p.shared["normalize"]:
            mixed /= divisor
        if p.shared["lambda"] != 1:
            mixed *= np.float32(p.shared["lambda"])
        return base + mixed

    return merge


SLERP_DOT_THRESHOLD = 0.9995
SLERP_EPS = 1e-8


def _sum(values: np.ndarray) -> np.float32:
    """A float32 sum taken in float64 and rounded once: within an ulp of torch's
    float32 reduction, whose order (and so its last bit) depends on the CPU's vector
    width; this one does not."""
    return np.float32(values.sum(dtype=np.float64))


def slerp(base: np.ndarray | None, values: list[np.ndarray], p: Resolved) -> np.ndarray:
    """Spherical interpolation from the base (t = 0) to the other input (t = 1), the
    whole tensor as one vector; nearly collinear tensors are interpolated linearly."""
    assert base is not None
    other = values[1 - p.shared["base_index"]]
    t = np.float32(p.shared["t"])
    a, b = base.reshape(-1), other.reshape(-1)
    if not a.size:
        return base.copy()
    norm_a, norm_b = np.sqrt(_sum(np.square(a))), np.sqrt(_sum(np.square(b)))
    norm_a = norm_a if norm_a > SLERP_EPS else np.float32(1)
    norm_b = norm_b if norm_b > SLERP_EPS else np.float32(1)
    dot = np.clip(_sum((a / norm_a) * (b / norm_b)), -1, 1)
    one = np.float32(1)
    if abs(dot) > SLERP_DOT_THRESHOLD:
        coef_a, coef_b = one - t, t
    else:  # float32 steps as torch takes them; acos and sin from libm in float64,
        # rounded once (as a correctly rounded float32 libm gives), on any CPU
        theta = np.float32(math.acos(float(dot)))
        sin_theta = np.float32(math.sin(float(theta)))
        coef_a = np.float32(math.sin(float((one - t) * theta))) / sin_theta
        coef_b = np.float32(math.sin(float(t * theta))) / sin_theta
    return (np.float32(coef_a) * a + np.float32(coef_b) * b).reshape(base.shape)


# --- the table ------------------------------------------------------------------------

_WEIGHT = Parameter("weight", float, "input")
_DENSITY = Parameter("density", float, "input", 1.0, 0.0, 1.0)
_LAMBDA = Parameter("lambda", float, "shared", 1.0)


def _task_parameters(normalize: bool, rescale: bool, *extra: Parameter) -> tuple[Parameter, ...]:
    return (
        Parameter("int8_mask", bool, "shared", False),
        Parameter("normalize", bool, "shared", normalize),
        Parameter("rescale", bool, "shared", rescale),
        _LAMBDA,
        _WEIGHT,
        _DENSITY,
        *extra,
    )


_GAMMA = Parameter("gamma", float, "input", 0.01, 0.0, 1.0)
_EPSILON = Parameter("epsilon", float, "input", 0.15, 0.0, 1.0)
_TIES, _DARE = "https://arxiv.org/abs/2306.01708", "https://arxiv.org/abs/2311.03099"
_BREADCRUMBS, _DELLA = "https://arxiv.org/abs/2312.06795", "https://arxiv.org/abs/2406.11617"


def _task(
    name: str,
    pretty: str,
    paper: str,
    sparsify: Sparsify | None,
    consensus: bool,
    *,
    normalize: bool,
    rescale: bool,
    extra: tuple[Parameter, ...] = (),
) -> Method:
    return Method(
        name,
        pretty,
        paper,
        _task_arithmetic(sparsify, consensus),
        _task_parameters(normalize, rescale, *extra),
        base="required",
        whole=sparsify is not None,
        random=sparsify in (bernoulli, della_magprune),
        # each input's value and delta, and with a sparsifier its sign and mask besides
        held=(3, 6) if sparsify is not None else (2, 4),
    )


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "linear",
            "Linear",
            "https://arxiv.org/abs/2203.05482",
            linear,
            (_WEIGHT, Parameter("normalize", bool, "shared", True)),
            base="ignored",
        ),
        Method(
            "slerp",
            "SLERP",
            "https://en.wikipedia.org/wiki/Slerp",
            slerp,
            (Parameter("t", float, "shared", None, 0.0, 1.0),),
            base="required",
            whole=True,
            inputs=(2, 2),
            held=(1, 3),
        ),
        _task(
            "task_arithmetic",
            "Task Arithmetic",
            "https://arxiv.org/abs/2212.04089",
            None,
            False,
            normalize=False,
            rescale=False,
        ),
        _task("ties", "TIES", _TIES, magnitude, True, normalize=True, rescale=False),
        _task("dare_ties", "DARE TIES", _DARE, bernoulli, True, normalize=False, rescale=True),
        _task("dare_linear", "Linear DARE", _DARE, bernoulli, False, normalize=False, rescale=True),
        _task(
            "breadcrumbs",
            "Model Breadcrumbs",
            _BREADCRUMBS,
            magnitude_outliers,
            False,
            normalize=False,
            rescale=False,
            extra=(_GAMMA,),
        ),
        _task(
            "breadcrumbs_ties",
            "Model Breadcrumbs with TIES",
            _BREADCRUMBS,
            magnitude_outliers,
            True,
            normalize=False,
            rescale=False,
            extra=(_GAMMA,),
        ),
        _task(
            "della",
            "DELLA",
            _DELLA,
            della_magprune,
            True,
            normalize=True,
            rescale=True,
            extra=(_EPSILON,),
        ),
        _task(
            "della_linear",
            "Linear DELLA",
            _DELLA,
            della_magprune,
            False,
            normalize=False,
            rescale=True,
            extra=(_EPSILON,),
        ),
    )
}


def seeded(seed: int, tensor: str, index: int) -> np.random.Generator:
    """The generator of input ``index``'s mask on ``tensor``: the same on any machine and
    in any order of tensors."""
    return np.random.default_rng([seed, zlib.crc32(tensor.encode()), index])
