"""Thoughts at query time (PAPER.md §4 for ``o1``, §5 for ``expand``): generated into a ``thoughts``
dataset shard by shard, or read from one (``thoughts.source``).

Generation runs on the ``o1e.llm`` engines: vLLM replicas on Ray (or transformers replicas), prompted with
the O1 model's own ``<query>q</query><thought>`` ids, or an external LLM prompted in chat for ``expand``.
Every (query id, thought index) request is seeded from (seed, query id, thought index). Shards are
consecutive ``shard_size`` slices of the sorted query ids; each is committed as it finishes, so a rerun
with the same model and settings reuses every committed shard and generates only the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from o1e.eval.config import EvalConfig, ExpansionPrompt
from o1e.eval.dataset import EvalDataset
from o1e import beir, storage
from o1e.schemas import Reject
from o1e.llm import Request, ShardWork, make_engine
from o1e.llm.base import EngineError
from o1e.llm.config import TransformersEngineConfig
from o1e.provenance import directory_fingerprint, fingerprint, stable_seed
from o1e.sequences import ThoughtPrompt
from o1e.progress import bar as progress_bar

REQUIRED_COLUMNS = ("query_id", "thought_index", "thought")


@dataclass(frozen=True)
class ExpansionChat:
    """Chat renderer for an external LLM (``expand``): one user message asking for a passage."""

    prompt: ExpansionPrompt
    kind: ClassVar[str] = "chat"

    def variants(self, query: str) -> Iterator[list[dict[str, str]]]:
        messages = [{"role": "user", "content": self.prompt.template.format(query=query)}]
        if self.prompt.system:
            messages.insert(0, {"role": "system", "content": self.prompt.system})
        yield messages


@dataclass
class ThoughtSet:
    by_query: dict[str, list[str]]
    """Each evaluated query's thoughts in thought-index order (at most ``n``)."""
    url: str
    """The dataset or file they come from."""
    stats: Counter = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)

    def num_thoughts(self, query_id: str) -> int:
        return len(self.by_query.get(query_id, []))


def thought_seed(seed: int, query_id: str, thought_index: int) -> int:
    """The sampling seed of one thought (31 bits, accepted by every engine)."""
    return stable_seed(seed, f"thought\x1f{query_id}", thought_index) & 0x7FFFFFFF


def group_thoughts(table: pa.Table, query_ids: set[str], n: int, source: str) -> ThoughtSet:
    """Thoughts per known query (first ``n`` by thought index); rows naming an unknown query are counted
    rejects; a missing or blank thought counts as empty (the query's no-thinking sequence)."""
    stats: Counter = Counter()
    rejects: list[Reject] = []
    rows: dict[str, list[tuple[int, str]]] = {}
    for query_id, index, thought in zip(*(table.column(c).to_pylist() for c in REQUIRED_COLUMNS)):
        if query_id not in query_ids:
            stats["unknown_query"] += 1
            if len(rejects) < 1000:
                rejects.append(Reject(source, f"{query_id}/{index}", "unknown_query",
                                           f"thought {index} names query {query_id!r}, which the split does not judge"))
            continue
        text = (thought or "").strip()
        rows.setdefault(query_id, []).append((int(index), text))
    by_query = {}
    for query_id, items in rows.items():
        texts = [t for _, t in sorted(items)[:n]]
        stats["empty_thought"] += sum(not t for t in texts)
        by_query[query_id] = texts
    stats["queries_without_thoughts"] = len(query_ids) - len(by_query)
    stats["queries_with_fewer_than_n"] = sum(len(ts) < n for ts in by_query.values())
    return ThoughtSet(by_query, source, stats, rejects)


def read_source(url: str, query_ids: set[str], n: int) -> ThoughtSet:
    """Thoughts from a ``thoughts`` dataset (its manifest's parts) or any Parquet file or folder."""
    try:
        if storage.is_dataset(url):
            table = storage.read_table(url, columns=list(REQUIRED_COLUMNS))
        else:
            fs, path = storage.resolve(url)
            table = pq.read_table(path, filesystem=fs)
    except (OSError, pa.ArrowInvalid) as err:
        raise beir.DatasetError(f"thoughts.source {url}: cannot read Parquet: {err}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise beir.DatasetError(f"thoughts.source {url}: missing column(s) {missing}; has {table.column_names}")
    return group_thoughts(table, query_ids, n, url)


def _renderer(cfg: EvalConfig, model_dir: str | None):
    if cfg.retriever.kind == "o1":
        return ThoughtPrompt(cfg.retriever.sequence(model_dir))
    return ExpansionChat(cfg.thoughts.prompt)


def engine_config(cfg: EvalConfig, model_dir: str | None):
    """The engine config to generate with: the retriever's own model when none is named, vLLM's context
    the model's own unless set; transformers where vLLM is wanted but not installed (and the fallback is
    allowed)."""
    import importlib.util

    engine = cfg.thoughts.engine
    if engine.kind == "vllm" and "max_model_len" not in engine.model_fields_set:
        # A thought needs the query prompt and 128 tokens: the model's own context, not synth's 8192.
        engine = engine.model_copy(update={"max_model_len": None})
    if not engine.model:
        if cfg.retriever.kind != "o1":
            raise EngineError("thoughts.engine.model is empty: name the LLM that writes the expansions "
                              "(or give thoughts.source)")
        engine = engine.model_copy(update={"model": model_dir})
    if engine.kind == "vllm" and importlib.util.find_spec("vllm") is None:
        if not cfg.thoughts.fallback_to_transformers:
            raise EngineError("thoughts.engine.kind=vllm but vLLM is not installed "
                              "(install it, or allow thoughts.fallback_to_transformers)")
        engine = TransformersEngineConfig(model=engine.model, replicas=engine.replicas,
                                          num_cpus_per_replica=engine.num_cpus_per_replica)
    return engine


def generation_fingerprint(cfg: EvalConfig, engine, model_dir: str | None, query_ids: list[str]) -> str:
    """What the generated thoughts depend on: model files, engine settings (not its deployment), prompt,
    sampling, n, seed, shards, queries."""
    t = cfg.thoughts
    model = directory_fingerprint(model_dir) if model_dir else engine.model
    prompt = cfg.thoughts.prompt.fingerprint_data() if cfg.retriever.kind == "expand" else "o1"
    settings = engine.fingerprint_data(exclude=("model", "served_name"))
    return fingerprint({"model": model, "engine": settings, "prompt": prompt, "sampling": t.sampling.fingerprint_data(),
                        "n": t.n, "seed": t.seed, "shard_size": t.shard_size, "queries": query_ids})


def generate(cfg: EvalConfig, data: EvalDataset, model_dir: str | None, show: bool = True) -> ThoughtSet:
    """Generate (or resume) the ``thoughts`` dataset under ``<output>/thoughts``."""
    t = cfg.thoughts
    engine_cfg = engine_config(cfg, model_dir)
    gen_model_dir = None
    if engine_cfg.kind != "openai":
        from o1e.models import resolve_model_dir

        gen_model_dir = model_dir if engine_cfg.model == model_dir else resolve_model_dir(engine_cfg.model)
    query_ids = sorted(data.queries)
    fp = generation_fingerprint(cfg, engine_cfg, gen_model_dir, query_ids)
    url = storage.join(cfg.output, "thoughts")
    lineage = {"config": t.model_dump(mode="json"), "config_fingerprint": fp,
               "parents": [data.source_ref()]}
    writer = storage.DatasetWriter(url, "thoughts", overwrite=cfg.overwrite, **lineage)
    shards = {f"{i // t.shard_size:05d}": query_ids[i:i + t.shard_size]
              for i in range(0, len(query_ids), t.shard_size)}
    done = set(writer.committed())
    stats: Counter = Counter(shards_total=len(shards), shards_reused=len(done & set(shards)))
    todo = [s for s in shards if s not in done]
    model_name = engine_cfg.model
    if todo:
        engine = make_engine(engine_cfg, _renderer(cfg, model_dir), t.sampling, cfg.ray, show=show,
                             stage="eval thoughts")
        started = time.perf_counter()
        engine.start()
        stats["engine_start_s"] = round(time.perf_counter() - started, 3)
        model_name = getattr(engine, "model_name", model_name)
        work = (ShardWork(s, [Request(f"{q}\x1f{i}", data.queries[q], thought_seed(t.seed, q, i)
                                      if t.sampling.per_request_seed else None)
                              for q in shards[s] for i in range(t.n)]) for s in todo)
        bar = progress_bar(total=len(query_ids), initial=len(query_ids) - sum(len(shards[s]) for s in todo),
                   unit="query", desc=f"thoughts (n={t.n}, {engine_cfg.kind})", disable=not show)
        started = time.perf_counter()
        try:
            for shard_id, results in engine.stream(work):
                rows = []
                for r in results:
                    query_id, _, index = r.key.rpartition("\x1f")
                    if r.error is not None:
                        stats[f"failed_{r.error}"] += 1
                    rows.append({"query_id": query_id, "thought_index": int(index), "thought": r.text.strip(),
                                 "num_tokens": r.completion_tokens, "finish_reason": r.finish_reason or r.error,
                                 "model": model_name})
                    stats["generated_tokens"] += r.completion_tokens
                table = pa.Table.from_pylist(rows) if rows else storage.schemas.THOUGHTS.empty()
                writer.commit_shard(shard_id, table)
                stats["shards_generated"] += 1
                bar.update(len(shards[shard_id]))
                elapsed = time.perf_counter() - started
                bar.set_postfix_str(f"{stats['generated_tokens'] / max(elapsed, 1e-9):,.0f} tok/s", refresh=False)
        finally:
            bar.close()
            engine.close()
        stats["generation_s"] = round(time.perf_counter() - started, 3)
    writer.finalize(extra={"model": model_name, "engine": engine_cfg.kind})
    thoughts = group_thoughts(storage.read_table(url), set(query_ids), t.n, url)
    thoughts.stats.update(stats)
    return thoughts


def obtain(cfg: EvalConfig, data: EvalDataset, model_dir: str | None, show: bool = True) -> ThoughtSet:
    if cfg.thoughts.source:
        return read_source(cfg.thoughts.source, set(data.queries), cfg.thoughts.n)
    return generate(cfg, data, model_dir, show)
