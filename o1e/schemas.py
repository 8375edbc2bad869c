"""The Parquet schemas of every dataset the project exchanges: the public contract, in one place.

Other teams read these datasets. A change that removes, renames or retypes a field bumps that schema's
``version``; readers refuse a version they do not know. ``python -m o1e.schemas`` prints the Markdown
that docs/data.md's "Datasets" section holds (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

STRINGS = pa.list_(pa.string())
FLOATS = pa.list_(pa.float32())


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    version: int
    doc: str
    columns: tuple[Column, ...]

    @property
    def arrow(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns],
            metadata={"o1e.schema": self.name, "o1e.schema_version": str(self.version)},
        )

    def conform(self, table: pa.Table) -> pa.Table:
        """The table with exactly this schema's columns, in order and type; a clear error otherwise. A
        nullable column the table lacks is filled with nulls (optional data its writer does not have)."""
        for col in self.columns:
            if col.nullable and col.name not in table.column_names:
                table = table.append_column(col.name, pa.nulls(table.num_rows, type=col.type))
        missing = [c.name for c in self.columns if c.name not in table.column_names]
        if missing:
            raise ValueError(f"{self.name} dataset: missing column(s) {missing}; got {table.column_names}")
        extra = [n for n in table.column_names if n not in {c.name for c in self.columns}]
        if extra:
            raise ValueError(f"{self.name} dataset: unexpected column(s) {extra}")
        arrays = []
        for col in self.columns:
            array = table.column(col.name)
            if not col.nullable and array.null_count:
                raise ValueError(f"{self.name} dataset: column {col.name!r} has {array.null_count} null(s)")
            try:
                arrays.append(array.cast(col.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise ValueError(f"{self.name} dataset: column {col.name!r} is not {col.type}: {err}") from err
        return pa.Table.from_arrays(arrays, schema=self.arrow)

    def empty(self) -> pa.Table:
        return self.arrow.empty_table()


REJECT_REASONS = {
    "bad_line": "a line that is not valid JSON or TSV, or lacks a required field",
    "empty_query": "a query whose text is empty",
    "duplicate_query": "a query id seen before (the first is kept)",
    "duplicate_doc": "a document id seen before (the first is kept)",
    "duplicate_candidate": "a candidate thought index seen before for the same query (the first is kept)",
    "unknown_query": "a judgment, candidate or thought for a query the dataset does not have",
    "unknown_doc": "a judgment for a document the corpus does not have",
    "missing_positive": "a query with no positive passage: no judgment with score > 0, an empty `pos`, or no gold "
                        "document among its training row's positives",
    "no_candidates": "a training query with no candidate thought",
    "empty_candidates": "a training query whose candidate thoughts are all empty",
    "query_too_long": "a query whose prompt, even in its shortest form, leaves the model no room for max_tokens",
    "engine_error": "a request the generation engine failed",
}
"""Every reason a ``rejects`` row may give, and what it means."""


@dataclass(frozen=True)
class Reject:
    """A row a stage could not use: where it came from, its key, why (one of ``REJECT_REASONS``) and a
    human-readable detail naming the line, row or field."""

    source: str
    row: str
    reason: str
    detail: str

    def __post_init__(self):
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}: one of {', '.join(REJECT_REASONS)}")

    def as_row(self, stage: str) -> dict[str, str]:
        """Its row in a ``rejects`` dataset."""
        return {"stage": stage, "source": self.source, "row": self.row, "reason": self.reason, "detail": self.detail}


REJECTS = DatasetSchema(
    "rejects", 1,
    "Rows a stage could not use, with the reason; the run goes on without them.",
    (
        Column("stage", pa.string(), "stage that rejected the row (eval, synth, committee, train)"),
        Column("source", pa.string(), "file or dataset the row came from"),
        Column("row", pa.string(), "the row's key: a line number, a query id or a shard id"),
        Column("reason", pa.string(), "why, one of the reasons below"),
        Column("detail", pa.string(), "human-readable explanation"),
    ),
)

CORPUS = DatasetSchema(
    "corpus", 1,
    "A BEIR `corpus.jsonl` converted to Parquet (o1e.corpus), one row per document in file order; eval keeps "
    "it under `<cache_dir>/corpus/<key>`, keyed by the file's content.",
    (
        Column("row", pa.int64(), "0-based row number of the document in the dataset"),
        Column("doc_id", pa.string(), "corpus `_id`"),
        Column("title", pa.string(), "document title (empty when the line has none)"),
        Column("text", pa.string(), "document text (empty when the line has none)"),
        Column("line", pa.int64(), "1-based line of the document in the source `corpus.jsonl`"),
    ),
)

EMBEDDINGS = DatasetSchema(
    "embeddings", 1,
    "Document embeddings, as cached by eval (one part per shard), keyed by model and corpus fingerprint.",
    (
        Column("doc_id", pa.string(), "corpus `_id`"),
        Column("embedding", FLOATS, "the document vector (normalised when the encoder normalises)"),
    ),
)

EVAL_RUN = DatasetSchema(
    "eval_run", 2,
    "A retrieval run: the top-k documents per query and variant (`run.trec` holds the headline variant's rows).",
    (
        Column("k", pa.int32(), "thoughts averaged into the query vector (0: no thinking; always 0 for "
               "retrievers that do not think)"),
        Column("query_id", pa.string(), "query `_id`"),
        Column("doc_id", pa.string(), "retrieved corpus `_id`"),
        Column("rank", pa.int32(), "1-based rank"),
        Column("score", pa.float32(), "retriever score (inner product, cosine or BM25)"),
    ),
)

EVAL_PER_QUERY = DatasetSchema(
    "eval_per_query", 2,
    "Metrics of every evaluated query in every variant (metrics.json holds their means).",
    (
        Column("k", pa.int32(), "thoughts averaged into the query vector (0: no thinking)"),
        Column("query_id", pa.string(), "query `_id`"),
        Column("ndcg@10", pa.float64(), "nDCG at 10 (trec_eval `ndcg_cut_10`)"),
        Column("mrr@10", pa.float64(), "reciprocal rank of the first relevant document within the top 10"),
        Column("recall@100", pa.float64(), "recall at 100"),
        Column("recall@1000", pa.float64(), "recall at 1000"),
        Column("num_relevant", pa.int32(), "judged relevant documents (qrels score > 0)"),
        Column("num_retrieved", pa.int32(), "documents in the run for this query"),
        Column("thoughts", STRINGS, "the thoughts this variant used for the query, in thought-index order "
               "(empty when k is 0)"),
    ),
)

THOUGHTS = DatasetSchema(
    "thoughts", 1,
    "Thoughts written at query time, n per query (eval's `o1` and `expand` retrievers; `thoughts.source` reads "
    "them back).",
    (
        Column("query_id", pa.string(), "query `_id`"),
        Column("thought_index", pa.int32(), "0-based index of the thought within its query"),
        Column("thought", pa.string(), "generated text, stripped (empty: the request failed or wrote nothing)"),
        Column("num_tokens", pa.int32(), "tokens generated, the end-of-sequence token included"),
        Column("finish_reason", pa.string(), "`stop`, `length`, or the reject reason of a failed request"),
        Column("model", pa.string(), "model that wrote it (directory or served name)"),
    ),
)

TRAINING_ROWS = DatasetSchema(
    "training_rows", 2,
    "Training queries with their positive passages and mined hard negatives (input of synthesis).",
    (
        Column("query_id", pa.string(), "query `_id`"),
        Column("query", pa.string(), "query text"),
        Column("positive_ids", STRINGS, "corpus ids of the positive passages"),
        Column("positives", STRINGS, "positive passages (`title + ' ' + text`)"),
        Column("negative_ids", STRINGS, "corpus ids of the hard negatives (empty when unknown)"),
        Column("negatives", STRINGS, "hard-negative passages"),
        Column("pos_scores", FLOATS, "teacher scores of the positives, as the input rows carried them "
               "(MS MARCO style `pos_scores`); null when unknown", nullable=True),
        Column("neg_scores", FLOATS, "teacher scores of the negatives (`neg_scores`); null when unknown or "
               "when the negatives were mined", nullable=True),
    ),
)

CANDIDATES = DatasetSchema(
    "candidates", 1,
    "Candidate thoughts written by the expert LLM, several per query (output of synthesis).",
    (
        Column("query_id", pa.string(), "query `_id`"),
        Column("candidate_index", pa.int32(), "0-based index of the candidate within its query"),
        Column("thought", pa.string(), "generated text"),
        Column("finish_reason", pa.string(), "`stop` or `length`"),
        Column("prompt_tokens", pa.int32(), "tokens in the prompt"),
        Column("completion_tokens", pa.int32(), "tokens generated"),
        Column("model", pa.string(), "expert model (directory or served name)"),
        Column("prompt_fingerprint", pa.string(), "hash of the exact prompt text"),
    ),
)

TRAINING = DatasetSchema(
    "training", 2,
    "What the trainer reads: each query with the thought the committee chose (output of the committee).",
    (
        Column("query_id", pa.string(), "query `_id`"),
        Column("query", pa.string(), "query text"),
        Column("thought", pa.string(), "the selected thought"),
        Column("positive_ids", STRINGS, "corpus ids of the positive passages (empty when unknown)"),
        Column("positives", STRINGS, "positive passages"),
        Column("negative_ids", STRINGS, "corpus ids of the hard negatives (empty when unknown)"),
        Column("negatives", STRINGS, "hard-negative passages"),
        Column("teacher_scores", FLOATS, "teacher scores over positives + negatives, in that order (KL "
               "distillation): `pos_scores + neg_scores` of the training rows; null when unknown",
               nullable=True),
    ),
)

COMMITTEE_SCORES = DatasetSchema(
    "committee_scores", 2,
    "Per query, every committee member's scores of every candidate and the vote (diagnostics).",
    (
        Column("query_id", pa.string(), "query `_id`"),
        Column("members", STRINGS, "member names, in the order of `scores`"),
        Column("candidate_indices", pa.list_(pa.int32()),
               "`candidate_index` of each scored candidate, in the order of `scores[m]` (empty thoughts "
               "are not scored)"),
        Column("scores", pa.list_(FLOATS), "scores[m][c]: member m's score of scored candidate c"),
        Column("selected_index", pa.int32(), "`candidate_index` of the candidate chosen by the vote"),
        Column("vote", pa.string(), "`soft`, `hard` or `median`"),
        Column("margin", pa.float32(), "winner's aggregate minus the runner-up's (median vote: distance to the "
               "nearest other aggregate); NaN with a single candidate"),
        Column("agreed", pa.bool_(), "whether every member's top-1 equals the chosen candidate"),
    ),
)

ALL: dict[str, DatasetSchema] = {
    s.name: s
    for s in (TRAINING_ROWS, CANDIDATES, COMMITTEE_SCORES, TRAINING, THOUGHTS, CORPUS, EMBEDDINGS, EVAL_RUN,
              EVAL_PER_QUERY, REJECTS)
}


def get(name: str) -> DatasetSchema:
    try:
        return ALL[name]
    except KeyError:
        raise KeyError(f"unknown dataset schema {name!r}; known: {sorted(ALL)}") from None


def markdown() -> str:
    """The schemas as Markdown tables, for docs/data.md."""
    out = []
    for schema in ALL.values():
        out.append(f"#### `{schema.name}` (version {schema.version})\n\n{schema.doc}\n")
        out.append("| column | type | meaning |\n|---|---|---|")
        for col in schema.columns:
            kind = str(col.type).replace("<item: ", "<").replace("<element: ", "<")
            null = ", nullable" if col.nullable else ""
            out.append(f"| `{col.name}` | `{kind}`{null} | {col.doc} |")
        out.append("")
        if schema is REJECTS:
            out.append("| reason | meaning |\n|---|---|")
            out += [f"| `{reason}` | {meaning} |" for reason, meaning in REJECT_REASONS.items()]
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
