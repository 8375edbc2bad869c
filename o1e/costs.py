"""What a run cost.

- Thought tokens per query and the gain in retrieval quality per 1,000 of them, from the counts an evaluation
  records (``metrics.json`` ``info.thoughts``).
- Actor-seconds: the CPUs and GPUs that Ray actors (and tasks) held for a stage, times how long they held them.
  Wherever the driver places actors it counts them (``hold`` / ``release``, or ``held`` around a block); a
  run record sums what was held between its start and its end (``actor_seconds``) into its summary.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator


def thought_tokens_per_query(thoughts: dict[str, Any] | None, num_queries: int, k: int) -> float:
    """Generated thought tokens a query uses at ``k`` thoughts: k times the mean thought length."""
    if not thoughts or not k or not num_queries or not thoughts.get("generated_tokens"):
        return 0.0
    return k * thoughts["generated_tokens"] / (num_queries * thoughts["n"])


def thought_seconds_per_query(thoughts: dict[str, Any] | None, num_queries: int, k: int) -> float:
    """Generation seconds a query's ``k`` thoughts took: k times the mean time per thought."""
    if not thoughts or not k or not num_queries or not thoughts.get("generation_s"):
        return 0.0
    return k * thoughts["generation_s"] / (num_queries * thoughts["n"])


def gain_per_1k_tokens(ndcg: float, ndcg_k0: float | None, tokens: float) -> float | None:
    """nDCG@10 gained against k = 0 per 1,000 thought tokens a query uses."""
    if ndcg_k0 is None or tokens <= 0:
        return None
    return (ndcg - ndcg_k0) / (tokens / 1000)


@dataclass
class Holding:
    """``actors`` actors of ``cpus`` CPUs and ``gpus`` GPUs each, held from ``since`` to ``until``
    (``time.perf_counter``; ``until`` is ``None`` while they are held)."""

    actors: int
    cpus: float
    gpus: float
    since: float
    until: float | None = None


_holdings: list[Holding] = []
"""Everything this driver process has held, in the order it was placed."""


def hold(actors: int, cpus: float, gpus: float = 0.0) -> Holding:
    """Count ``actors`` actors as held from now until ``release``: from when the driver asks Ray for them (or
    their placement group is ready) to when it kills them (as the driver sees it, so a wait for resources counts
    too)."""
    holding = Holding(actors, float(cpus or 0.0), float(gpus or 0.0), time.perf_counter())
    _holdings.append(holding)
    return holding


def release(holding: Holding | None) -> None:
    """The actors of ``holding`` are gone (killed, or their placement group removed); a second call is a no-op."""
    if holding is not None and holding.until is None:
        holding.until = time.perf_counter()


@contextmanager
def held(actors: int, cpus: float, gpus: float = 0.0) -> Iterator[Holding]:
    """``actors`` actors (or tasks) held for the duration of the block."""
    holding = hold(actors, cpus, gpus)
    try:
        yield holding
    finally:
        release(holding)


def actor_seconds(since: float, until: float | None = None) -> dict[str, float]:
    """CPU- and GPU-seconds held between ``since`` and ``until`` (``time.perf_counter``; default now): each
    holding's resources times the part of its time inside that window (one still held counts up to ``until``)."""
    until = time.perf_counter() if until is None else until
    totals = {"CPU": 0.0, "GPU": 0.0}
    for h in _holdings:
        end = until if h.until is None else min(until, h.until)
        seconds = end - max(since, h.since)
        if seconds > 0:
            totals["CPU"] += h.actors * h.cpus * seconds
            totals["GPU"] += h.actors * h.gpus * seconds
    return {name: round(value, 2) for name, value in totals.items()}
