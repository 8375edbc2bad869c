"""How the committee turns member scores into one chosen candidate (PAPER.md §2). Pure numpy, no Ray.

``scores`` is a matrix: one row per member, one column per candidate (any N >= 1). Every mode breaks
ties towards the lowest candidate index.

- ``soft`` (the paper's default): softmax each member's row over the candidates, sum the rows with the
  member weights, take the arg-max.
- ``hard``: each member votes for its own top candidate (weighted by its weight; 1.0 each makes it a
  plain majority), the candidate with the most votes wins.
- ``median``: the candidate whose soft aggregate is the median one (sorted ascending, position N // 2,
  as the reference code does for its 7-candidate setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

VoteMode = Literal["soft", "hard", "median"]
VOTE_MODES: tuple[str, ...] = ("soft", "hard", "median")


@dataclass(frozen=True)
class VoteResult:
    selected: int
    """Position of the chosen candidate among the scored ones."""
    aggregate: np.ndarray
    """The per-candidate quantity the mode chose by: soft sums, vote counts or (median) soft sums."""
    margin: float
    """soft/hard: the winner's aggregate minus the runner-up's; median: the distance from the chosen
    aggregate to the nearest other candidate's. NaN with a single candidate (there is no runner-up)."""
    member_top1: np.ndarray
    """Each member's own top candidate."""
    agreed: bool
    """Whether every member's top candidate is the chosen one."""


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64 and shifted by the row maximum for stability."""
    x = np.asarray(scores, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def first_argmax(values: np.ndarray) -> int:
    """Index of the largest value; the lowest index among equals."""
    return int(np.argmax(values))  # numpy returns the first occurrence


def vote(scores: np.ndarray, weights: np.ndarray | list[float], mode: VoteMode = "soft") -> VoteResult:
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be members x candidates with at least one candidate, got {scores.shape}")
    if weights.shape != (scores.shape[0],):
        raise ValueError(f"{scores.shape[0]} members but {weights.shape} weights")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    num_candidates = scores.shape[1]
    member_top1 = np.array([first_argmax(row) for row in scores], dtype=np.int64)

    if mode in ("soft", "median"):
        aggregate = (softmax(scores) * weights[:, None]).sum(axis=0)
    elif mode == "hard":
        aggregate = np.zeros(num_candidates, dtype=np.float64)
        np.add.at(aggregate, member_top1, weights)
    else:
        raise ValueError(f"unknown vote mode {mode!r}; expected one of {VOTE_MODES}")

    if mode == "median":
        order = np.argsort(aggregate, kind="stable")
        median_value = aggregate[order[num_candidates // 2]]
        selected = int(np.flatnonzero(aggregate == median_value)[0])
    else:
        selected = first_argmax(aggregate)

    if num_candidates == 1:
        margin = float("nan")
    else:
        others = np.delete(aggregate, selected)
        if mode == "median":
            margin = float(np.abs(others - aggregate[selected]).min())
        else:
            margin = float(aggregate[selected] - others.max())
    return VoteResult(
        selected=selected,
        aggregate=aggregate,
        margin=margin,
        member_top1=member_top1,
        agreed=bool((member_top1 == selected).all()),
    )
