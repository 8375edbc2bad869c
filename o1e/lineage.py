"""Where a dataset, model or evaluation came from: its record, its parents, and theirs.

Every output names its parents: a dataset's ``_manifest.json`` lists ``parents`` (location + config
fingerprint), a model written by ``o1e train`` has ``lineage.json`` (training dataset, base model), an
evaluation's ``metrics.json`` names its dataset, thoughts and model. Following those links from any of
them gives the whole chain, which ``o1e lineage PATH`` prints and ``metrics.json`` summarises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o1e import runs, storage

MODEL_LINEAGE = runs.MODEL_LINEAGE.name
EVAL_METRICS = runs.EVAL_METRICS.name


@dataclass
class Node:
    url: str
    kind: str
    """A dataset's schema name, ``model`` or ``eval``."""
    fingerprint: str | None
    facts: dict[str, Any] = field(default_factory=dict)
    """What a reader wants to know about this step (expert model, committee members, base model, ...)."""
    parents: list[str] = field(default_factory=list)
    created_at: str | None = None
    code_version: str | None = None


def _dataset_facts(schema: str, config: dict[str, Any]) -> dict[str, Any]:
    if schema == "candidates":
        engine = config.get("engine", {})
        return {"expert_model": engine.get("served_name") or engine.get("model"),
                "candidates_per_query": config.get("num_candidates")}
    if schema in ("training", "committee_scores"):
        return {"committee": [m.get("name") for m in config.get("members", [])], "vote": config.get("vote")}
    if schema == "training_rows":
        return {"source": config.get("dataset", {}).get("path"), "mining": config.get("mining", {}).get("method")}
    return {}


def read_node(url: str) -> Node:
    """The record at ``url``: a committed dataset, a trained model folder, or an evaluation output."""
    if storage.is_dataset(url):
        m = storage.read_manifest(url)
        return Node(url, m.schema, m.config_fingerprint, _dataset_facts(m.schema, m.config or {}),
                    [p["url"] for p in m.parents if p.get("url")], m.created_at, m.code_version)
    if storage.exists(storage.join(url, MODEL_LINEAGE)):
        rec = storage.read_json(storage.join(url, MODEL_LINEAGE))  # the model folder's own view of train's summary
        base = rec.get("base_model", {})
        return Node(url, "model", rec.get("config_fingerprint"),
                    {"base_model": base.get("path"), "base_model_fingerprint": base.get("fingerprint"),
                     "training_fingerprint": rec.get("config_fingerprint")},
                    [rec["training_dataset"]["url"]], None, rec.get("code_version"))
    rec = runs.EVAL_METRICS.read(url)
    if rec is not None:
        model = rec.get("model")
        parents = [rec["dataset"]] + ([model] if model else [])
        thoughts = rec.get("info", {}).get("thoughts", {}).get("url")
        if thoughts and storage.is_dataset(thoughts):
            parents.append(thoughts)
        return Node(url, "eval", rec.get("config_fingerprint"),
                    {"retriever": rec.get("retriever"), "ndcg@10": rec.get("ndcg@10"), "k": rec.get("k")},
                    parents, None, rec.get("code_version"))
    raise storage.StorageError(
        f"{url}: no lineage record here (expected a dataset's {storage.MANIFEST_NAME}, a model's {MODEL_LINEAGE} "
        f"or an evaluation's {EVAL_METRICS})")


def walk(url: str) -> list[Node]:
    """``url``'s record and every ancestor that has one, each once, nearest first. Parents without a
    record of their own (a BEIR folder, a base model from a hub) end the walk there."""
    nodes, seen, todo = [], set(), [url]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        try:
            node = read_node(current)
        except storage.StorageError:
            continue
        nodes.append(node)
        todo.extend(node.parents)
    return nodes


def summarise(nodes: list[Node]) -> dict[str, Any]:
    """The chain's headline facts, and each step's location and fingerprint."""
    out: dict[str, Any] = {}
    for node in nodes:
        for key, value in node.facts.items():
            if value is not None:
                out.setdefault(key, value)
    out["chain"] = [{"kind": n.kind, "url": n.url, "fingerprint": n.fingerprint} for n in nodes]
    return out
