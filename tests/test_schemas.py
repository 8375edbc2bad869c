import os
import re

import pyarrow as pa
import pytest

from o1e import schemas

DATA_DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "data.md")


def test_docs_document_every_schema_exactly():
    text = open(DATA_DOC).read()
    block = re.search(r"<!-- schemas:begin -->\n(.*)\n<!-- schemas:end -->", text, re.S)
    assert block, "docs/data.md lost its schemas block"
    assert block.group(1).strip() == schemas.markdown().strip(), "run: python -m o1e.schemas, paste into docs/data.md"


def test_conform_orders_and_casts_columns():
    table = pa.table({"doc_id": ["d"], "query_id": ["q"], "score": [1], "rank": [1], "k": [0]})
    out = schemas.EVAL_RUN.conform(table)
    assert out.column_names == ["k", "query_id", "doc_id", "rank", "score"]
    assert out.schema.field("score").type == pa.float32()
    assert out.schema.metadata[b"o1e.schema"] == b"eval_run"


def test_conform_rejects_nulls_and_extra_columns():
    with pytest.raises(ValueError, match="'query_id' has 1 null"):
        schemas.EVAL_RUN.conform(pa.table({"k": [0], "query_id": [None], "doc_id": ["d"], "rank": [1],
                                           "score": [1.0]}))
    with pytest.raises(ValueError, match=r"unexpected column\(s\) \['x'\]"):
        schemas.EVAL_RUN.conform(pa.table({"k": [0], "query_id": ["q"], "doc_id": ["d"], "rank": [1],
                                           "score": [1.0], "x": [1]}))


def test_conform_fills_a_missing_nullable_column_with_nulls():
    table = pa.table({"query_id": ["q"], "query": ["x"], "positive_ids": [["d"]], "positives": [["p"]],
                      "negative_ids": [[]], "negatives": [[]]})
    out = schemas.TRAINING_ROWS.conform(table)
    assert out.column("pos_scores").to_pylist() == [None] and out.column("neg_scores").null_count == 1
    with pytest.raises(ValueError, match=r"missing column\(s\) \['negatives'\]"):
        schemas.TRAINING_ROWS.conform(table.drop(["negatives"]))


def test_unknown_schema_name():
    with pytest.raises(KeyError, match="unknown dataset schema"):
        schemas.get("nope")
