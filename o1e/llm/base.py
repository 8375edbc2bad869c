"""What every engine takes and gives: a shard of requests in, one result per request out.

A request's ``payload`` is opaque to the engine; the engine's *renderer* (given at construction, and
pickled to the replicas) turns it into a prompt, in one of two shapes:

- ``ChatRenderer`` (``kind = "chat"``): ``variants(payload)`` yields chat message lists from the preferred
  one to the shortest fallback. vLLM renders each with the model's chat template and takes the first that
  leaves ``max_tokens`` of room in the context; an OpenAI-compatible endpoint is sent each in turn until it
  does not refuse the prompt as too long.
- ``TokenRenderer`` (``kind = "tokens"``): ``token_ids(payload, tokenizer)`` gives the exact prompt ids
  (vLLM only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Protocol, Union


class EngineError(RuntimeError):
    """The engine cannot start, or lost a replica beyond its restarts (committed shards are kept)."""


@dataclass
class Request:
    key: str
    payload: Any  # what the renderer turns into a prompt
    seed: int | None = None  # per-request sampling seed (None: unseeded)


@dataclass
class ShardWork:
    shard_id: str
    requests: list[Request]


@dataclass
class GenerationResult:
    key: str  # the request's key
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_fingerprint: str = ""
    fallbacks_used: int = 0  # preferred prompt variants skipped to fit the model's context
    error: str | None = None  # reject reason when the request failed: query_too_long, engine_error, ...
    detail: str = ""


class ChatRenderer(Protocol):
    kind: Literal["chat"]

    def variants(self, payload: Any) -> Iterator[list[dict[str, str]]]:
        """Chat messages for ``payload``, the preferred first, then ever shorter fallbacks."""


class TokenRenderer(Protocol):
    kind: Literal["tokens"]

    def token_ids(self, payload: Any, tokenizer: Any) -> list[int]:
        """The exact prompt token ids for ``payload`` under the model's ``tokenizer``."""


Renderer = Union[ChatRenderer, TokenRenderer]


class Engine(Protocol):
    model_name: str
    renderer: Renderer
    sampling: Any  # the SamplingConfig it was built with
    info: dict

    def start(self) -> None:
        """Load the model / check the endpoint; may take minutes."""

    def stream(self, work: Iterable[ShardWork]) -> Iterator[tuple[str, list[GenerationResult]]]:
        """Generate every shard pulled from ``work`` (lazily, a bounded number in flight) and yield
        ``(shard_id, results)`` as shards finish, in any order; results in the order of the shard's requests."""

    def close(self) -> None:
        """Release replicas, processes and connections."""


def prompt_fingerprint(chat: list[dict[str, str]]) -> str:
    """Hash of the exact messages sent."""
    blob = json.dumps(chat, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def token_fingerprint(ids: list[int]) -> str:
    """Hash of the exact prompt token ids sent."""
    return hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode("ascii")).hexdigest()[:16]


def classify_error(message: str) -> str:
    """Reject reason for an engine's error message (``o1e.schemas.REJECT_REASONS``): a prompt the model's
    context cannot hold is ``query_too_long``, as when the engine checks the length before generating."""
    lowered = message.lower()
    if any(s in lowered for s in ("maximum context length", "max_model_len", "too long", "longer than the maximum",
                                  "context length", "maximum model length")):
        return "query_too_long"
    return "engine_error"
