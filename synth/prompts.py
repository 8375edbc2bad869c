"""Exploration prompts (PAPER.md section 1), as pure functions: no engine, no Ray.

Each candidate of each query gets its own prompt with its own draw of in-context examples. The draw is
seeded by (run seed, query id, candidate index), so a prompt depends on nothing else: not on shard size,
shard order, replicas or reruns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

import numpy as np
import pyarrow as pa

from o1e.provenance import stable_seed
from o1e.synth.config import PromptConfig


@dataclass(frozen=True)
class Example:
    query: str
    response: str


@dataclass(frozen=True)
class Prompt:
    query_id: str
    candidate_index: int
    query: str
    examples: tuple[Example, ...]

    @property
    def key(self) -> str:
        return f"{self.query_id}/{self.candidate_index}"


class ExamplePool:
    """The training rows examples are drawn from: query and first positive only, held as Arrow strings
    (a compact fraction of the dataset; negatives and further positives are never loaded)."""

    def __init__(self, query_ids: pa.Array | pa.ChunkedArray, queries: pa.Array | pa.ChunkedArray,
                 responses: pa.Array | pa.ChunkedArray) -> None:
        self.query_ids, self.queries, self.responses = query_ids, queries, responses

    def __len__(self) -> int:
        return len(self.queries)

    def example(self, index: int) -> Example:
        return Example(self.queries[index].as_py(), self.responses[index].as_py())

    def draw(self, rng: np.random.Generator, k: int, exclude_query_id: str | None = None) -> list[Example]:
        """``k`` examples drawn uniformly with replacement; ``exclude_query_id`` is never drawn."""
        n = len(self)
        if k == 0 or n == 0:
            return []
        examples = []
        for _ in range(k):
            index = int(rng.integers(n))
            if exclude_query_id is not None:
                if n == 1 and self.query_ids[0].as_py() == exclude_query_id:
                    return []
                while self.query_ids[index].as_py() == exclude_query_id:
                    index = int(rng.integers(n))
            examples.append(self.example(index))
        return examples


def candidate_prompts(cfg: PromptConfig, pool: ExamplePool, seed: int, query_id: str, query: str,
                      num_candidates: int) -> list[Prompt]:
    """The ``num_candidates`` prompts of one query, each with a fresh draw of examples."""
    prompts = []
    for index in range(num_candidates):
        rng = np.random.default_rng(stable_seed(seed, query_id, index))
        examples = pool.draw(rng, cfg.num_examples, query_id if cfg.exclude_self else None)
        prompts.append(Prompt(query_id, index, query, tuple(examples)))
    return prompts


def examples_block(cfg: PromptConfig, examples: tuple[Example, ...] | list[Example]) -> str:
    text = cfg.example_separator.join(
        cfg.example_template.format(query=e.query, response=e.response) for e in examples
    )
    return text[: cfg.examples_max_chars]


def user_message(cfg: PromptConfig, query: str, examples: tuple[Example, ...] | list[Example]) -> str:
    return cfg.template.format(task=cfg.task, examples=examples_block(cfg, examples), query=query)


def messages(cfg: PromptConfig, prompt: Prompt, num_examples: int | None = None) -> list[dict[str, str]]:
    """Chat messages for ``prompt``, optionally with only its first ``num_examples`` examples."""
    examples = prompt.examples if num_examples is None else prompt.examples[:num_examples]
    return [
        {"role": "system", "content": cfg.system},
        {"role": "user", "content": user_message(cfg, prompt.query, examples)},
    ]


@dataclass
class ExplorationPrompts:
    """The chat renderer of these prompts for ``o1e.llm`` engines: the full prompt first, then one trailing
    example fewer at a time down to none, so that a prompt too long for the model's context loses trailing
    examples first. Equal renderers render alike."""

    cfg: PromptConfig
    kind: ClassVar[str] = "chat"

    def variants(self, prompt: Prompt) -> Iterator[list[dict[str, str]]]:
        for count in range(len(prompt.examples), -1, -1):
            yield messages(self.cfg, prompt, count)


def sampling_seed(seed: int, query_id: str, candidate_index: int) -> int:
    """The per-request sampling seed (31 bits, accepted by every engine), independent of the draw seed."""
    return stable_seed(seed, f"sample\x1f{query_id}", candidate_index) & 0x7FFFFFFF
