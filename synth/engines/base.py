"""What every engine takes and gives: a shard of prompts in, one result per prompt out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

from synth.prompts import Prompt


class EngineError(RuntimeError):
    """The engine cannot start, or lost a replica beyond its restarts (committed shards are kept)."""


@dataclass
class ShardWork:
    shard_id: str
    prompts: list[Prompt]
    seeds: list[int | None]  # per-request sampling seed (None: unseeded)


@dataclass
class GenerationResult:
    key: str  # Prompt.key: "<query id>/<candidate index>"
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_fingerprint: str = ""
    examples_dropped: int = 0  # trailing examples left out to fit the model's context
    error: str | None = None  # reject reason when the request failed: query_too_long, engine_error, ...
    detail: str = ""


class Engine(Protocol):
    model_name: str

    def start(self) -> None:
        """Load the model / check the endpoint; may take minutes."""

    def stream(self, work: Iterable[ShardWork]) -> Iterator[tuple[str, list[GenerationResult]]]:
        """Generate every shard pulled from ``work`` (lazily, a bounded number in flight) and yield
        ``(shard_id, results)`` as shards finish, in any order."""

    def close(self) -> None:
        """Release replicas, processes and connections."""


def classify_error(message: str) -> str:
    """Reject reason for an engine's error message: over-long prompts are named as such."""
    lowered = message.lower()
    if any(s in lowered for s in ("maximum context length", "max_model_len", "too long", "longer than the maximum",
                                  "context length", "maximum model length")):
        return "prompt_too_long"
    return "engine_error"
