"""The committee stage's config (``o1e vote``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from o1e.bm25 import PAPER_TOKENIZER, BM25Config, TokenizerConfig
from o1e.config import Section, StageConfig, kind_union
from o1e.encoders import DenseEncoderConfig
from o1e.ray_utils import RayConfig


class Placement(Section):
    """Where a member's actors run. Changes where work happens, not what it computes. ``None`` fields are
    decided at run time from the cluster (``resolve_placements``)."""

    replicas: int | None = Field(None, ge=1)
    """Actors in this member's pool; ``None``: one per unit of the member's share of the cluster (one
    per GPU for a dense member on GPUs, else one per CPU of its share, at least one)."""
    num_cpus: float | None = Field(None, ge=0)
    """CPUs reserved per actor, also a dense actor's torch threads (at least 1); ``None``: its share of
    the cluster's CPUs over its actors (a BM25 member beside dense members on a CPU cluster gets 0: it
    costs little next to them, and reserving a core would leave the encoders one fewer)."""
    num_gpus: float | None = Field(None, ge=0)
    """GPUs per actor; ``None``: one per dense-member actor when the cluster has GPUs, else none."""


def resolve_placements(members: list, cluster_cpus: float, cluster_gpus: float, max_actors: int) -> list[Placement]:
    """Every member's placement with its ``None`` fields decided for a cluster of this many CPUs and GPUs.

    Dense members on a GPU cluster get the GPUs, one actor per GPU (split evenly between them) with one
    CPU each. The costly CPU members (the dense ones on CPUs, else the BM25 ones) share evenly the CPUs
    that no other actor reserves, each share as one 1-CPU actor per core; a BM25 member beside dense
    members on CPUs is one actor reserving no CPU. A pool gets at most ``max_actors`` actors by default
    (more would find no batch to score). Set values are kept; ``num_cpus`` alone set gives
    ``share // num_cpus`` actors."""
    gpus = int(cluster_gpus)
    on_gpu = [m.kind == "dense" and (gpus >= 1 if m.placement.num_gpus is None else m.placement.num_gpus > 0)
              for m in members]
    cpu_dense = any(m.kind == "dense" and not g for m, g in zip(members, on_gpu))
    gpu_members = sum(on_gpu)
    resolved: list[Placement | None] = [None] * len(members)
    sharing = []
    for i, (member, g) in enumerate(zip(members, on_gpu)):
        p = member.placement
        if g:
            num_gpus = 1.0 if p.num_gpus is None else p.num_gpus
            replicas = p.replicas or min(max_actors, max(1, int(gpus / num_gpus) // gpu_members))
            resolved[i] = Placement(replicas=replicas, num_cpus=1.0 if p.num_cpus is None else p.num_cpus,
                                    num_gpus=num_gpus)
        elif p.replicas is not None and p.num_cpus is not None:
            resolved[i] = Placement(replicas=p.replicas, num_cpus=p.num_cpus, num_gpus=p.num_gpus or 0.0)
        elif member.kind == "dense" or not cpu_dense:
            sharing.append(i)
        else:
            resolved[i] = Placement(replicas=p.replicas or 1, num_cpus=p.num_cpus or 0.0, num_gpus=p.num_gpus or 0.0)
    reserved = sum(p.replicas * p.num_cpus for p in resolved if p is not None)
    share = max(1.0, (int(cluster_cpus) - reserved) // max(1, len(sharing)))
    for i in sharing:
        p = members[i].placement
        replicas = p.replicas or min(max_actors, max(1, int(share // (p.num_cpus or 1.0))))
        num_cpus = p.num_cpus if p.num_cpus is not None else max(1.0, share // replicas)
        resolved[i] = Placement(replicas=replicas, num_cpus=num_cpus, num_gpus=p.num_gpus or 0.0)
    return resolved


class BM25Member(BM25Config):
    """The paper's sparse member: the candidates form the corpus, the gold document is the query."""

    # A member's placement says where it runs, not what it computes: a rerun on a cluster of another shape
    # resumes the same shards.
    not_fingerprinted: ClassVar[tuple[str, ...]] = ("placement",)

    kind: Literal["bm25"] = "bm25"
    name: str = "bm25"
    weight: float = Field(1.0, ge=0)
    tokenizer: TokenizerConfig = PAPER_TOKENIZER
    placement: Placement = Placement()


class DenseMember(DenseEncoderConfig):
    """A dense member: cosine(gold document, thought) x 100 on normalised embeddings.

    The gold document takes ``query_prefix`` and the thoughts ``document_prefix``; both are empty by
    default, as the reference code encodes both sides without a prompt."""

    not_fingerprinted: ClassVar[tuple[str, ...]] = ("placement",)

    kind: Literal["dense"] = "dense"
    name: str = "all-MiniLM-L6-v2"
    weight: float = Field(1.0, ge=0)
    placement: Placement = Placement()

    @field_validator("normalize")
    @classmethod
    def _cosine_needs_normalised(cls, value: bool) -> bool:
        if not value:
            raise ValueError("a committee member scores cosine similarity: normalize must stay true")
        return value


Member = kind_union("dense", bm25=BM25Member, dense=DenseMember)


class CommitteeConfig(StageConfig):
    """Score every query's candidate thoughts against its gold document and vote for one."""

    # The executor changes where members run, not what they compute: a local run and a Ray run of the
    # same config write the same rows and may resume each other.
    not_fingerprinted: ClassVar[tuple[str, ...]] = StageConfig.not_fingerprinted + ("executor", "shards_in_flight")

    training_rows: str = ""
    """``training_rows`` dataset (query, positives, negatives); the first positive is the gold document."""
    candidates: str = ""
    """``candidates`` dataset written by ``o1e synth``."""
    members: list[Member] = Field(default_factory=lambda: [BM25Member(), DenseMember()], min_length=1)
    vote: Literal["soft", "hard", "median"] = "soft"
    batch_size: int = Field(64, ge=1)
    """Queries (groups of one gold document and its candidates) per scoring call of a member."""
    shard_size: int = Field(2048, ge=1)
    """Queries per committed shard: the unit of resume after a crash."""
    shards_in_flight: int = Field(2, ge=1)
    """Shards scored at once, so that every member's pool has work queued while a shard is voted."""
    executor: Literal["ray", "local"] = "ray"
    """``ray``: every member as its own actor pool; ``local``: every member in this process (same rows)."""
    output: str = "outputs/committee"
    progress: bool = True
    ray: RayConfig = RayConfig()

    def placements(self, cluster_cpus: float, cluster_gpus: float) -> list[Placement]:
        """Each member's placement on a cluster of this many CPUs and GPUs (``resolve_placements``)."""
        batches_in_flight = self.shards_in_flight * -(-self.shard_size // self.batch_size)
        return resolve_placements(self.members, cluster_cpus, cluster_gpus, batches_in_flight)

    @model_validator(mode="after")
    def _check(self) -> "CommitteeConfig":
        names = [m.name for m in self.members]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"member names must be unique; repeated: {duplicates}")
        if not any(m.weight > 0 for m in self.members):
            raise ValueError("at least one member needs a weight above 0")
        return self
