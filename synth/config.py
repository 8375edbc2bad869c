"""The synth stage's configs: ``o1e synth prepare`` (training rows) and ``o1e synth run`` (candidate thoughts).

Every default is the paper's recipe (PAPER.md section 1): 3 candidates per query, each from its own prompt
with 3 freshly drawn in-context examples, the examples block cut at 20,480 characters, max_tokens 512,
temperature and top-p left to the engine's defaults (for Llama-3.1-70B-Instruct under vLLM: its
generation_config.json, temperature 0.6, top-p 0.9; see ``o1e.llm.config.SamplingConfig``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from o1e.bm25 import BM25Config
from o1e.config import Section, StageConfig
from o1e.llm.config import EngineConfig, SamplingConfig, VllmEngineConfig
from o1e.paths import DEMO_DATA
from o1e.ray_utils import RayConfig
from o1e.retrievers import DenseRetrieverConfig, O1RetrieverConfig

# ---------------------------------------------------------------------------------------------------
# o1e synth prepare


class PrepareSource(Section):
    path: str = DEMO_DATA
    """BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a JSONL file of rows
    (``query``, ``pos``, optional ``neg``, ``query_id``, ``pos_id``, ``neg_id``), local or ``s3://``."""
    format: Literal["auto", "beir", "jsonl"] = "auto"
    """``auto``: a folder is BEIR, a ``.jsonl`` file is rows."""
    split: str = "train"
    on_bad_line: Literal["error", "skip"] = "error"
    max_queries: int | None = Field(None, ge=1)
    """A BEIR split: only its first N judged queries (in the qrels file's order), a stated subset for small
    machines; ``None``: every query. JSONL rows are always read whole."""
    corpus: str | None = None
    """For JSONL rows without negatives: a BEIR ``corpus.jsonl`` to mine from (default: every passage
    the rows themselves carry)."""


class MiningConfig(Section):
    method: Literal["bm25", "dense", "o1", "none"] = "bm25"
    """How rows without negatives get hard negatives: the top-k of a retriever (``bm25``, ``dense``, or an
    ``o1`` model's no-thinking embedding, each configured in its own section below), or not at all."""
    count: int = Field(15, ge=0)
    """Hard negatives per row (the paper's group is 1 positive + 15 negatives)."""
    depth: int = Field(100, ge=1)
    """Negatives come from the top ``depth`` retrieved passages, minus the row's positives."""
    pick: Literal["top", "sample"] = "top"
    """``top``: the best-ranked ``count``; ``sample``: ``count`` drawn (seeded) from the top ``depth``."""
    seed: int = 0
    bm25: BM25Config = BM25Config()
    dense: DenseRetrieverConfig = DenseRetrieverConfig()
    o1: O1RetrieverConfig = O1RetrieverConfig()


class PrepareConfig(StageConfig):
    """Turn a BEIR dataset with a train split (or JSONL rows) into a ``training_rows`` dataset."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + (
        "shard_rows", "mine_batch_rows", "batches_in_flight", "actor_min_bytes")

    dataset: PrepareSource = PrepareSource()
    mining: MiningConfig = MiningConfig()
    shard_rows: int = Field(10_000, ge=1)
    """Rows per Parquet part of the output: also what the driver holds at once, so it bounds the driver's
    memory (10,000 MS MARCO rows with 15 negatives are ~60 MB of text)."""
    mine_batch_rows: int = Field(256, ge=1)
    """Rows per request to the worker that holds the corpus and mines negatives (the output does not
    depend on it)."""
    batches_in_flight: int = Field(4, ge=1)
    """Requests queued at that worker while the driver reads on: the driver holds at most this many
    batches besides the shard it is filling."""
    actor_min_bytes: int = Field(16 * 2**20, ge=0)
    """Sources (the rows file and ``dataset.corpus``, or a BEIR folder's ``corpus.jsonl``) of at least
    this many bytes get that worker in a Ray actor, so that the driver never holds the corpus; smaller
    ones get it in the driver's own process, where a 16 MiB source costs less memory (~100 MB) than
    starting Ray and an actor costs time. 0: always an actor. The output is the same either way."""
    output: str = "outputs/synth/prepared"
    """Folder or s3:// prefix: training_rows/, rejects/, summary.json."""
    ray: RayConfig = RayConfig()


# ---------------------------------------------------------------------------------------------------
# o1e synth run


class PromptConfig(Section):
    """The exploration prompt. The user message is ``template`` filled with the task line, the examples
    block and the query; the examples block is the examples joined and then cut at ``examples_max_chars``."""

    system: str = (
        "You are a helpful assistant. Follow the task description. Never ask for clarification and "
        "do not repeat the query: just give the response."
    )
    task: str = "Think about a plausible response to address the query."
    template: str = "Task: \n{task}\n\nExamples: \n{examples}\n\nQuery: \n{query}\nResponse: "
    """Four blocks in the paper's order: task line, in-context examples, the query, an open Response slot;
    character for character the reference code's template (a space ends each heading line and the prompt)."""
    example_template: str = "Query: {query}\nResponse: {response}"
    """One in-context example: a training query and its first positive passage as the response."""
    example_separator: str = "\n"
    num_examples: int = Field(3, ge=0)
    examples_max_chars: int = Field(20_480, ge=0)
    exclude_self: bool = False
    """Never draw the query itself as one of its examples. The paper draws from the whole training set
    (``false``); ``true`` avoids showing the model the answer on small sets."""


class SynthConfig(StageConfig):
    """Write ``num_candidates`` thoughts per training query with an expert LLM."""


    input: str = "outputs/synth/prepared/training_rows"
    """A ``training_rows`` dataset (``o1e synth prepare`` writes one)."""
    num_candidates: int = Field(3, ge=1)
    seed: int = 0
    prompt: PromptConfig = PromptConfig()
    sampling: SamplingConfig = SamplingConfig()
    engine: EngineConfig = VllmEngineConfig()
    shard_size: int = Field(256, ge=1)
    """Queries per shard: the unit of work that is committed, resumed and retried."""
    output: str = "outputs/synth/run"
    examples_from: str | None = None
    """A ``training_rows`` dataset the in-context examples are drawn from; ``None``: the input itself.
    Scheduled runs over a growing source pin it, so that a query's prompts do not depend on which run
    processed it."""
    example_pool_rows: int = Field(10_000, ge=1)
    """At most this many rows are held as the example pool: a source with more usable rows gives a seeded
    uniform sample of this many (``seed``), one with fewer is held whole (then the bound changes nothing).
    Each prompt's examples are uniform draws from the pool, so from the whole source: the bound only sets
    how often one example recurs (about 450 times over MS MARCO's ~500k queries x 9 draws) and keeps the
    driver's memory flat from 10k queries on (the pool is each row's query and first positive: about 4 MB at
    MS MARCO lengths)."""
    incremental: bool = False
    """Add to the output instead of resuming one run: generate only for queries the output does not hold
    yet, commit them as this run's shards and append the run (id, time, rows added) to the candidates
    manifest's ``history`` (scheduled synthesis over a growing source)."""
    progress: bool = True
    ray: RayConfig = RayConfig()

