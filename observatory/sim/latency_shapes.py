"""Latency distributions of real delivery traffic, for the test and benchmark generators.

Detection must hold whatever shape a destination's latencies have, so the generators draw
from several on purpose: ``lognormal`` (the textbook shape), ``uniform`` (bounded: a client
with a fixed timeout budget), ``quantised`` (a few values, as timeouts, retries and coarse
clocks produce), ``bimodal`` (a cache or region split) and ``heavy`` (a Pareto tail). Every
shape is scaled by ``factor`` (a latency fault multiplies every latency by it). Not used by
the engine; numpy only here and in the generators.
"""

from __future__ import annotations

from functools import cache
from typing import Literal, get_args

import numpy as np

from observatory.detect.counts import LN_BIN_BASE, MAX_BIN

Shape = Literal["lognormal", "uniform", "quantised", "bimodal", "heavy"]
SHAPES: tuple[Shape, ...] = get_args(Shape)
QUANTA = np.array([100.0, 200.0, 300.0])
QUANTA_P = np.array([0.90, 0.08, 0.02])


def sample(shape: Shape, rng: np.random.Generator, n: int, factor: float = 1.0) -> np.ndarray:
    """``n`` latencies (ms) of the shape, each multiplied by ``factor``."""
    if shape == "lognormal":
        x = rng.lognormal(np.log(80.0), 0.5, n)
    elif shape == "uniform":
        x = rng.uniform(20.0, 200.0, n)
    elif shape == "quantised":
        x = QUANTA[rng.choice(len(QUANTA), size=n, p=QUANTA_P)]
    elif shape == "bimodal":
        fast = rng.random(n) < 0.85
        x = np.where(
            fast, rng.lognormal(np.log(40.0), 0.3, n), rng.lognormal(np.log(400.0), 0.3, n)
        )
    elif shape == "heavy":
        x = 30.0 * (1.0 + rng.pareto(1.5, n))
    else:
        raise ValueError(f"unknown latency shape {shape!r}; known: {', '.join(SHAPES)}")
    return x * factor


def bins_of(x: np.ndarray) -> np.ndarray:
    """The engine's latency bins of many latencies (``engine.counts.latency_bin``, vectorised)."""
    b = np.floor(np.log(np.maximum(x, 1.0)) / LN_BIN_BASE)
    return np.minimum(b, MAX_BIN).astype(np.int64)


def true_p99(shape: Shape, factor: float = 1.0) -> float:
    """The shape's p99 (ms), from a large seeded sample."""
    return float(np.quantile(_reference(shape, factor), 0.99))


def share_above(shape: Shape, ms: float) -> float:
    """The share of the shape's latencies at or above ``ms``."""
    return float(np.mean(_reference(shape, 1.0) >= ms))


def median(shape: Shape) -> float:
    return float(np.median(_reference(shape, 1.0)))


@cache
def _reference(shape: Shape, factor: float) -> np.ndarray:
    return sample(shape, np.random.default_rng(12345), 400_000, factor)


@cache
def bin_probabilities(shape: Shape, factor: float = 1.0) -> tuple[np.ndarray, float]:
    """P(latency in bin b) for b = 0..MAX_BIN, and the mean latency (ms)."""
    x = _reference(shape, factor)
    counts = np.bincount(bins_of(x), minlength=MAX_BIN + 1).astype(float)
    return counts / counts.sum(), float(x.mean())
