"""The paper's ablation at small scale, on full BEIR SciFact, with SmolLM2-135M-Instruct (hours on 2 CPU cores).

    python bench/scifact_study.py [--dataset ../shared/data/beir/scifact] [--output outputs/study-scifact]
                                  [--report-only] [key=value ...]

Runs ``pipeline/configs/study_scifact.yaml`` (train on SciFact train, evaluate on SciFact test): the trained
O1 model with k = 0, 1, 3 thoughts, the no-thinking fine-tune, the untrained backbone, HyDE, BM25,
all-MiniLM-L6-v2, and the trained model with oracle thoughts (three 12-word slices of each test query's
first gold document, written here) as the bound better thoughts could reach. The pipeline resumes where a
killed run stopped (finished stages are skipped, a stage resumes from its committed shards or checkpoints),
so the command can be rerun across sessions until it completes. ``--report-only`` prints what has finished.

At the end it prints, and writes to ``<output>/study.json``, every evaluation's
nDCG@10 / Recall@100, each stage's wall time, the trained model's per-query wins and losses of k = 3 against
k = 0 with the thoughts behind the largest of them, and the training curves (loss, accuracy) of both
trainings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIG = os.path.join(REPO, "pipeline", "configs", "study_scifact.yaml")
ORACLE_WORDS, ORACLE_THOUGHTS = 12, 3


def oracle_thoughts(dataset: str, split: str, path: str) -> str:
    """Three consecutive 12-word slices of each query's first gold document (title and text), as a Parquet
    file with eval's ``thoughts.source`` columns; written once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from o1e import beir

    if os.path.isfile(path):
        return path
    data = beir.load(dataset, split)
    passages = dict(zip(data.corpus.ids, data.corpus.passages()))
    rows = []
    for query_id, judged in data.qrels.items():
        gold = next((d for d, score in judged.items() if score > 0 and d in passages), None)
        words = passages[gold].split() if gold else []
        for index in range(ORACLE_THOUGHTS):
            rows.append({"query_id": query_id, "thought_index": index,
                         "thought": " ".join(words[index * ORACLE_WORDS:(index + 1) * ORACLE_WORDS])})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def evaluations(root: str) -> list[tuple[str, str, dict]]:
    """(name, folder, metrics.json) of every finished evaluation under the pipeline root."""
    found = [("trained O1 model", os.path.join(root, "eval"))]
    for group, label in (("ablations", "{} (ablation)"), ("baselines", "{}")):
        base = os.path.join(root, group)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            folder = os.path.join(base, name, "eval") if group == "ablations" else os.path.join(base, name)
            found.append((label.format(name), folder))
    out = []
    for name, folder in found:
        path = os.path.join(folder, "metrics.json")
        if os.path.isfile(path):
            with open(path) as f:
                out.append((name, folder, json.load(f)))
    return out


def wins_and_losses(folder: str, k: int, queries: dict[str, str], examples: int = 3) -> dict:
    """Per-query nDCG@10 of k thoughts against k = 0 on one evaluation, with the queries and thoughts of the
    largest gains and losses."""
    import pandas as pd

    per_query = pd.read_parquet(os.path.join(folder, "per_query"), columns=["k", "query_id", "ndcg@10", "thoughts"])
    base = per_query[per_query.k == 0].set_index("query_id")["ndcg@10"]
    think = per_query[per_query.k == k].set_index("query_id")
    delta = (think["ndcg@10"] - base).dropna().sort_values()

    def show(ids) -> list[dict]:
        return [{"query_id": q, "query": queries.get(q, ""), "change": round(float(delta[q]), 4),
                 "thoughts": list(think.loc[q, "thoughts"])[:k]} for q in ids]

    return {"k": k, "queries": int(len(delta)), "wins": int((delta > 0).sum()), "losses": int((delta < 0).sum()),
            "ties": int((delta == 0).sum()), "mean_change": round(float(delta.mean()), 4),
            "helped": show(delta.index[::-1][:examples]), "hurt": show(delta.index[:examples])}


def training_curve(train_folder: str) -> list[dict]:
    """Rank 0's metrics at every step of one training (``metrics.jsonl``: losses, accuracy, lr)."""
    path = os.path.join(train_folder, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    keep = ("step", "loss", "contrastive_loss", "generation_loss", "contrastive_accuracy", "lr")
    with open(path) as f:
        return [{k: m[k] for k in keep if k in m} for m in map(json.loads, f)]


def report(root: str, dataset: str) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"SciFact test (300 queries, 5,183 documents): {root}")
    for column in ("evaluation", "k", "nDCG@10", "Recall@100", "queries"):
        table.add_column(column, justify="left" if column == "evaluation" else "right")
    results = []
    for name, folder, metrics in evaluations(root):
        for variant, m in (metrics.get("variants") or {"k=0": metrics}).items():
            k = variant.split("=", 1)[1] if "variants" in metrics else ""
            table.add_row(name, k, f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", str(m["num_queries"]))
            results.append({"evaluation": name, "k": k, "ndcg@10": m["ndcg@10"], "recall@100": m["recall@100"],
                            "num_queries": m["num_queries"]})
    console.print(table)
    stages = []
    records = os.path.join(root, "_pipeline")
    for name in sorted(os.listdir(records)) if os.path.isdir(records) else []:
        with open(os.path.join(records, name)) as f:
            record = json.load(f)
        stages.append({"step": record["step"], "elapsed_s": record["elapsed_s"], "rows_out": record.get("rows_out")})
    stage_table = Table(title="stage wall times")
    for column in ("step", "time", "rows out"):
        stage_table.add_column(column, justify="left" if column == "step" else "right")
    for s in stages:
        stage_table.add_row(s["step"], f"{s['elapsed_s'] / 60:.1f} min", "" if s["rows_out"] is None else str(s["rows_out"]))
    console.print(stage_table)
    study = {"root": root, "results": results, "stages": stages}
    if os.path.isfile(os.path.join(root, "eval", "metrics.json")):
        from o1e import beir

        queries = beir.load_queries(os.path.join(dataset, "queries.jsonl"))
        study["wins_and_losses"] = changes = wins_and_losses(os.path.join(root, "eval"), 3, queries)
        console.print(f"trained model, k=3 against k=0 on {changes['queries']} queries: {changes['wins']} better, "
                      f"{changes['losses']} worse, {changes['ties']} unchanged (mean nDCG@10 change "
                      f"{changes['mean_change']:+.4f})")
        for side in ("helped", "hurt"):
            for example in changes[side]:
                console.print(f"  {side} {example['query_id']} ({example['change']:+.3f}) {example['query']!r}: "
                              f"{example['thoughts'][:1]}")
    study["training_curves"] = {name: training_curve(os.path.join(root, *parts))
                                for name, parts in (("o1", ("train",)),
                                                    ("no-thinking", ("ablations", "no-thinking", "train")))}
    with open(os.path.join(root, "study.json"), "w") as f:
        json.dump(study, f, indent=2)
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(REPO, "..", "shared", "data", "beir", "scifact"))
    parser.add_argument("--output", default="outputs/study-scifact")
    parser.add_argument("--report-only", action="store_true", help="print what has finished; run nothing")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    root = os.path.abspath(args.output)
    if not args.report_only:
        if not os.path.isfile(os.path.join(args.dataset, "corpus.jsonl")):
            raise SystemExit(f"SciFact not found at {args.dataset}: give --dataset")
        from o1e.config import load_config
        from o1e.pipeline.config import PipelineConfig
        from o1e.pipeline.driver import run_pipeline

        oracle = oracle_thoughts(args.dataset, "test", os.path.join(root, "oracle_thoughts.parquet"))
        cfg = load_config(PipelineConfig, CONFIG, [
            f"output={root}", f"prepare.dataset.path={os.path.abspath(args.dataset)}",
            f"baselines.oracle-thoughts.retriever.model={os.path.join(root, 'train', 'model')}",
            f"baselines.oracle-thoughts.thoughts.source={oracle}", *args.overrides])
        run_pipeline(cfg)
    report(root, args.dataset)


if __name__ == "__main__":
    main()
