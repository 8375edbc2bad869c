"""``o1e report PATH``: one self-contained HTML page of a pipeline's or a stage's output, for people to read
and share. It opens offline (no scripts, no network: every plot is an inline SVG drawn by matplotlib) and
shows:

- nDCG@10 of every evaluation and k;
- quality against cost: nDCG@10 against thought tokens per query and generation seconds per query;
- training curves (contrastive, generation and distillation loss, accuracy, learning rate);
- the committee's agreement (pairwise matrix, each member's share of the final choice, vote margins);
- per-query wins and losses of the most-thinking variant against k = 0, with the thoughts behind them;
- each stage's cost (time, tokens) and the lineage of every figure.

It reads only what the stages wrote (summaries, ``metrics.json``, ``metrics.jsonl``, Parquet datasets), so it
works on any output, local or in object storage, and imports no stage.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from o1e import runs, storage
from o1e.costs import gain_per_1k_tokens, thought_seconds_per_query, thought_tokens_per_query
from o1e.provenance import code_version

REPORT = "report.html"


@dataclass
class Evaluation:
    name: str
    url: str
    metrics: dict[str, Any]

    @property
    def variants(self) -> dict[int, dict[str, Any]]:
        return {int(k.split("=")[1]): m for k, m in self.metrics["variants"].items()}

    @property
    def thoughts(self) -> dict[str, Any] | None:
        return (self.metrics.get("info") or {}).get("thoughts")

    def tokens(self, k: int) -> float:
        return thought_tokens_per_query(self.thoughts, self.metrics["num_queries"], k)

    def generation_s(self, k: int) -> float:
        return thought_seconds_per_query(self.thoughts, self.metrics["num_queries"], k)


@dataclass
class Run:
    path: str
    summary: dict[str, Any]
    steps: list[dict[str, Any]]
    evaluations: list[Evaluation] = field(default_factory=list)
    trainings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    committees: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(path: str) -> Run:
    """A pipeline's output (its summary lists the steps) or one stage's output."""
    summary = runs.read_summary(path)
    if summary is None:
        raise FileNotFoundError(f"{path} has no {runs.SUMMARY}: give a pipeline's or a stage's output folder "
                                "once it has finished")
    steps = summary.get("steps") or [{"step": summary.get("stage", "stage"), "stage": summary.get("stage"),
                                      "output": path, "elapsed_s": summary.get("throughput", {}).get("elapsed_s")}]
    run = Run(path, summary, steps)
    for step in steps:
        out, stage = step["output"], step.get("stage")
        metrics = runs.EVAL_METRICS.read(out) if stage == "eval" else None
        committee = runs.read_summary(out) if stage in ("vote", "committee") else None
        if metrics is not None:
            run.evaluations.append(Evaluation(step["step"], out, metrics))
        elif stage == "train" and storage.exists(storage.join(out, "metrics.jsonl")):
            lines = storage.read_text(storage.join(out, "metrics.jsonl")).splitlines()
            run.trainings[step["step"]] = [json.loads(line) for line in lines if line.strip()]
        elif committee is not None:
            scores = storage.join(out, "committee_scores")
            if storage.is_dataset(scores):
                committee["margins"] = storage.read_table(scores, columns=["margin"]).column("margin").to_pylist()
            run.committees[step["step"]] = committee
    return run


# --- plots -------------------------------------------------------------------------------------------

def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float = 8.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    """A matplotlib figure and its axes grid (no display: the Agg backend), text kept as text in the SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)


def plot_ndcg(evaluations: list[Evaluation]) -> str:
    labels, values = [], []
    for e in evaluations:
        for k, m in sorted(e.variants.items()):
            labels.append(f"{e.name} (k={k})" if len(e.variants) > 1 or k else e.name)
            values.append(m["ndcg@10"])
    fig, axes = _figure(8, 0.35 * len(labels) + 1)
    ax = axes[0][0]
    bars = ax.barh(range(len(labels)), values, color="#4c72b0")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("nDCG@10")
    ax.set_xlim(0, max(1.0, max(values, default=0) * 1.1))
    ax.bar_label(bars, fmt="%.4f", padding=3)
    return _svg(fig)


def plot_cost(evaluations: list[Evaluation]) -> str | None:
    thinking = [e for e in evaluations if e.thoughts and len(e.variants) > 1]
    if not thinking:
        return None
    fig, axes = _figure(9, 3.6, ncols=2)
    for e in thinking:
        ks = sorted(e.variants)
        ndcg = [e.variants[k]["ndcg@10"] for k in ks]
        for ax, xs in ((axes[0][0], [e.tokens(k) for k in ks]), (axes[0][1], [e.generation_s(k) for k in ks])):
            ax.plot(xs, ndcg, marker="o", label=e.name)
            for x, y, k in zip(xs, ndcg, ks):
                ax.annotate(f"k={k}", (x, y), textcoords="offset points", xytext=(4, 4))
    axes[0][0].set_xlabel("thought tokens per query")
    axes[0][1].set_xlabel("generation seconds per query")
    for ax in axes[0]:
        ax.set_ylabel("nDCG@10")
        ax.legend(loc="best")
    return _svg(fig)


CURVES = [("loss", "loss"), ("contrastive_loss", "contrastive loss"), ("generation_loss", "generation loss"),
          ("distill_loss", "distillation loss"), ("contrastive_accuracy", "contrastive accuracy"), ("lr", "learning rate")]


def plot_training(trainings: dict[str, list[dict[str, Any]]]) -> str | None:
    curves = [(key, label) for key, label in CURVES if any(key in m for h in trainings.values() for m in h)]
    if not curves:
        return None
    rows = (len(curves) + 2) // 3
    fig, axes = _figure(10, 2.6 * rows, ncols=3, nrows=rows)
    for ax, (key, label) in zip(axes.flat, curves):
        for name, history in trainings.items():
            points = [(m["step"], m[key]) for m in history if m.get(key) is not None]
            if points:
                ax.plot(*zip(*points), label=name)
        ax.set_title(label)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    axes.flat[0].legend(loc="best")
    fig.tight_layout()
    return _svg(fig)


def plot_committee(committee: dict[str, Any]) -> str:
    import numpy as np

    members = committee.get("members") or []
    matrix = np.eye(len(members))
    for pair, value in (committee.get("pairwise_agreement") or {}).items():
        a, b = pair.split(" ~ ")
        i, j = members.index(a), members.index(b)
        matrix[i, j] = matrix[j, i] = value
    fig, axes = _figure(11, 3.4, ncols=3)
    ax = axes[0][0]
    ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(members)), members, rotation=30, ha="right")
    ax.set_yticks(range(len(members)), members)
    for i in range(len(members)):
        for j in range(len(members)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center")
    ax.set_title("pairwise agreement (same top-1)")
    share = committee.get("member_matches_vote") or {}
    axes[0][1].bar(list(share), list(share.values()), color="#55a868")
    axes[0][1].set_ylim(0, 1)
    axes[0][1].set_title("top-1 equals the final choice")
    axes[0][1].tick_params(axis="x", rotation=30)
    margins = committee.get("margins") or []
    axes[0][2].hist(margins, bins=20, color="#c44e52")
    axes[0][2].set_title(f"vote margins (mean {committee.get('mean_margin', 0):.3f})")
    return _svg(fig)


def per_query_changes(e: Evaluation) -> list[dict[str, Any]]:
    """Each query's nDCG@10 at the most thoughts against k = 0, largest change first, with its thoughts."""
    ks = sorted(e.variants)
    if len(ks) < 2 or ks[0] != 0:
        return []
    table = storage.read_table(storage.join(e.url, "per_query"), columns=["k", "query_id", "ndcg@10", "thoughts"])
    rows = table.to_pylist()
    base = {r["query_id"]: r["ndcg@10"] for r in rows if r["k"] == 0}
    top = max(ks)
    changes = [{"query_id": r["query_id"], "k0": base[r["query_id"]], "k": r["ndcg@10"],
                "change": r["ndcg@10"] - base[r["query_id"]], "thoughts": r["thoughts"]}
               for r in rows if r["k"] == top and r["query_id"] in base]
    return sorted(changes, key=lambda c: (-abs(c["change"]), c["query_id"]))


def plot_changes(changes: list[dict[str, Any]], k: int) -> str:
    values = sorted(c["change"] for c in changes)
    fig, axes = _figure(8, 3)
    ax = axes[0][0]
    ax.bar(range(len(values)), values, color=["#c44e52" if v < 0 else "#55a868" for v in values], width=1.0)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("queries, sorted by change")
    ax.set_ylabel(f"nDCG@10 at k={k} minus k=0")
    wins, losses = sum(v > 0 for v in values), sum(v < 0 for v in values)
    ax.set_title(f"{wins} queries gain, {losses} lose, {len(values) - wins - losses} unchanged")
    return _svg(fig)


# --- the page ------------------------------------------------------------------------------------------

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
.muted { color: #777; font-size: .85em; } code { background: #f4f4f4; padding: 0 .2em; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='num'>{_esc(c)}</td>" if i in numeric else f"<td>{_esc(c)}</td>"
                                     for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value + 0.0:.{digits}f}"  # + 0.0: no "-0.0000"
    return "" if value is None else str(value)


def _lineage(summary: dict[str, Any]) -> str:
    """An evaluation's lineage facts, its chain of datasets and models last, newest first."""
    facts = "; ".join(f"{k}={v}" for k, v in summary.items() if k != "chain")
    chain = " <- ".join(f"{c.get('kind')} {c.get('url')} ({c.get('fingerprint')})" for c in summary.get("chain") or [])
    return facts + (f"; chain: {chain}" if chain else "")


def _figure_html(svg: str | None, caption: str) -> str:
    return f"<figure class='plot'>{svg}<figcaption class='muted'>{_esc(caption)}</figcaption></figure>" if svg else ""


def _query_texts(e: Evaluation) -> dict[str, str]:
    from o1e import beir

    url = storage.join(e.metrics.get("dataset", ""), "queries.jsonl")
    try:
        return beir.load_queries(url, "skip", [])
    except Exception:  # noqa: BLE001 - the texts are a courtesy; the ids stand alone
        return {}


def render(run: Run) -> str:
    parts = [f"<h1>o1e report: {_esc(run.path)}</h1>",
             f"<p class='muted'>{_esc(run.summary.get('stage'))} output, finished {_esc(run.summary.get('finished_at'))} "
             f"by o1e {_esc(run.summary.get('code_version'))}; report made "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} by o1e {_esc(code_version())}.</p>"]
    parts.append("<h2>Steps and their cost</h2>")
    rows = []
    thoughts_by_output = {e.url: e.thoughts for e in run.evaluations}
    for step in run.steps:
        out = step["output"]
        summary = runs.read_summary(out) or {}
        thoughts = thoughts_by_output.get(out) or {}
        rows.append([step["step"], step.get("status", ""), _fmt(step.get("elapsed_s"), 1),
                     summary.get("prompt_tokens", ""), summary.get("completion_tokens", thoughts.get("generated_tokens", "")),
                     _fmt(summary.get("generation_s", thoughts.get("generation_s")), 1), step.get("fingerprint", ""), out])
    parts.append(_table(["step", "status", "seconds", "prompt tokens", "generated tokens", "generation s",
                         "fingerprint", "output"], rows, numeric={2, 3, 4, 5}))

    if run.evaluations:
        parts.append("<h2>Retrieval quality</h2>")
        rows = []
        for e in run.evaluations:
            base = e.variants.get(0, {}).get("ndcg@10")
            for k, m in sorted(e.variants.items()):
                tokens = e.tokens(k)
                gain = gain_per_1k_tokens(m["ndcg@10"], base, tokens)
                rows.append([e.name, k, _fmt(m["ndcg@10"]), _fmt(m.get("recall@100")), _fmt(tokens, 1) if k else "",
                             _fmt(gain) if gain is not None else "", m.get("num_queries")])
        parts.append(_table(["evaluation", "k", "nDCG@10", "Recall@100", "thought tokens / query",
                             "nDCG@10 gain per 1k thought tokens", "queries"], rows, numeric={1, 2, 3, 4, 5, 6}))
        parts.append(_figure_html(plot_ndcg(run.evaluations), "nDCG@10 of every evaluation and k (k: thoughts averaged)"))
        parts.append(_figure_html(plot_cost(run.evaluations),
                                  "Quality against cost: each point a k; thought tokens and generation time per query"))

    if run.trainings:
        parts.append("<h2>Training</h2>")
        parts.append(_figure_html(plot_training(run.trainings), "Per-step training metrics (metrics.jsonl)"))
        rows = [[name, h[-1].get("step"), _fmt(h[-1].get("loss")), _fmt(h[-1].get("contrastive_loss")),
                 _fmt(h[-1].get("generation_loss")), _fmt(h[-1].get("contrastive_accuracy"), 2)]
                for name, h in run.trainings.items() if h]
        parts.append(_table(["training", "steps", "loss", "contrastive", "generation", "accuracy"], rows,
                            numeric={1, 2, 3, 4, 5}))

    for name, committee in run.committees.items():
        parts.append(f"<h2>Committee: {_esc(name)}</h2>")
        parts.append(f"<p>{_esc(committee.get('queries_voted'))} queries, {_esc(committee.get('vote'))} vote of "
                     f"{_esc(', '.join(committee.get('members') or []))}; all members agreed on "
                     f"{_fmt(committee.get('unanimous'), 2)} of the queries.</p>")
        parts.append(_figure_html(plot_committee(committee), "How the members agree, and how decided the votes were"))

    for e in run.evaluations:
        changes = per_query_changes(e)
        if not changes:
            continue
        top = max(e.variants)
        texts = _query_texts(e)
        parts.append(f"<h2>Per query: {_esc(e.name)}, k={top} against k=0</h2>")
        parts.append(_figure_html(plot_changes(changes, top), "Each bar a query: nDCG@10 with thoughts minus without"))
        for title, picked in (("Largest gains", [c for c in changes if c["change"] > 0][:3]),
                              ("Largest losses", [c for c in changes if c["change"] < 0][:3])):
            rows = [[c["query_id"], texts.get(c["query_id"], ""), _fmt(c["k0"]), _fmt(c["k"]),
                     " | ".join(c["thoughts"])] for c in picked]
            if rows:
                parts.append(f"<h3>{title}</h3>" + _table(["query", "text", "k=0", f"k={top}", "thoughts"], rows,
                                                           numeric={2, 3}))

    lineage_rows = [[e.name, e.metrics.get("model") or "", e.metrics.get("dataset"), e.metrics.get("split"),
                     e.metrics.get("config_fingerprint"), _lineage(e.metrics.get("lineage") or {})]
                    for e in run.evaluations]
    if lineage_rows:
        parts.append("<h2>Lineage of the figures</h2>")
        parts.append(_table(["evaluation", "model", "dataset", "split", "config", "chain"], lineage_rows))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>o1e report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write(path: str, output: str | None = None) -> str:
    """Render the report of the output at ``path`` into ``output`` (default ``<path>/report.html``)."""
    url = output or storage.join(path, REPORT)
    storage.write_text(url, render(load(path)))
    return url
