"""Bad inputs a user can give ``o1e``, each run through the real command: its exit code and the one line
the user sees. ``tests/test_bad_inputs.py`` asserts every case; run this file to print the table:

    python tests/bad_inputs.py            # markdown table on stdout (starts its own loopback S3 server)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from o1e import storage
from o1e.paths import DEMO_DATA


@dataclass
class Case:
    name: str
    code: int
    message: str
    """A regex the line the user sees must match (the ``o1e ...`` error line, or stdout on success)."""
    argv: Callable[[str], list[str]]
    """scratch folder -> the command line after ``o1e``; it may prepare files there first."""
    env: dict[str, str] = field(default_factory=dict)


def beir_copy(tmp: str, name: str, edit: Callable[[str], None] | None = None) -> str:
    root = os.path.join(tmp, name)
    shutil.copytree(DEMO_DATA, root)
    if edit:
        edit(root)
    return root


def append_bytes(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def jsonl(tmp: str, name: str, rows: list) -> str:
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        for row in rows:
            f.write(row if isinstance(row, bytes) else json.dumps(row).encode() + b"\n")
    return path


def a_file(tmp: str) -> str:
    path = os.path.join(tmp, "a-file")
    open(path, "w").close()
    return path


def training_rows(tmp: str) -> str:
    url = os.path.join(tmp, "training_rows")
    if not storage.is_dataset(url):
        storage.write_table(url, pa.Table.from_pylist([
            {"query_id": "q1", "query": "what?", "positive_ids": ["d1"], "positives": ["an answer"],
             "negative_ids": [], "negatives": []}]), "training_rows")
    return url


def candidates_of_other_queries(tmp: str) -> str:
    url = os.path.join(tmp, "candidates")
    storage.write_table(url, pa.Table.from_pylist([
        {"query_id": "other", "candidate_index": 0, "thought": "t", "finish_reason": "stop", "prompt_tokens": 1,
         "completion_tokens": 1, "model": "m", "prompt_fingerprint": "p"}]), "candidates")
    return url


def training_dataset(tmp: str) -> str:
    url = os.path.join(tmp, "training")
    storage.write_table(url, pa.Table.from_pylist([
        {"query_id": f"q{i}", "query": "q", "thought": "t", "positives": ["p"], "positive_ids": ["d1"],
         "negatives": ["n"], "negative_ids": ["d2"], "teacher_scores": None} for i in range(4)]), "training")
    return url


def empty_config_model(tmp: str) -> str:
    path = os.path.join(tmp, "model-empty-config")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        f.write("{}")
    return path


def eval_then_other_config(tmp: str) -> list[str]:
    out = os.path.join(tmp, "eval-out")
    assert run(["eval", "-o", out, "-k", "10"])[0] == 0
    return ["eval", "-o", out, "-k", "20"]


def tampered_dataset(tmp: str) -> str:
    url = os.path.join(tmp, "tampered")
    table = pa.Table.from_pylist([{"query_id": str(i), "query": "q", "positive_ids": [], "positives": [],
                                   "negative_ids": [], "negatives": []} for i in range(40)])
    manifest = storage.write_table(url, table, "training_rows")
    pq.write_table(table.slice(0, 10), os.path.join(url, manifest.files[0]["path"]))  # another valid file
    return url


BAD_POS = {"query_id": "q", "query": "a query"}

CASES = [
    Case("unknown config key", 2, r"error: invalid config .*foo: unknown key", lambda t: ["eval", "foo=1"]),
    Case("wrong type", 2, r"shards: .*got 'two'", lambda t: ["eval", "shards=two"]),
    Case("unknown retriever kind", 2, r"retriever", lambda t: ["eval", "-r", "nope"]),
    Case("unknown subcommand", 2, r"invalid choice: 'frobnicate'", lambda t: ["frobnicate"]),
    Case("-o s3:// without a bucket", 2, r"output: malformed S3 URL 's3://'", lambda t: ["eval", "-o", "s3://"]),
    Case("-o s3:bucket (no //)", 2, r"output: unsupported URL 's3:bucket/x'",
         lambda t: ["eval", "-o", "s3:bucket/x"]),
    Case("output is a file", 1, r"output .*a-file is a file, not a folder", lambda t: ["eval", "-o", a_file(t)]),
    Case("output not writable", 1, r"output /proc/o1e-out is not writable", lambda t: ["eval", "-o", "/proc/o1e-out"]),
    Case("output bucket missing", 1, r"bucket 'o1e-no-such-bucket' of output .* does not exist",
         lambda t: ["eval", "-o", "s3://o1e-no-such-bucket/out"]),
    Case("S3 endpoint down", 1, r"S3 endpoint for s3://o1e-any/out does not answer .*check O1E_S3_ENDPOINT",
         lambda t: ["eval", "-o", "s3://o1e-any/out"], env={"O1E_S3_ENDPOINT": "http://127.0.0.1:9"}),
    Case("dataset folder missing", 1, r"dataset folder not found: /nowhere",
         lambda t: ["eval", "-d", "/nowhere", "-o", os.path.join(t, "o")]),
    Case("split missing", 1, r"split 'dev' not found: .*available splits: \['test', 'train'\]",
         lambda t: ["eval", "-s", "dev", "-o", os.path.join(t, "o")]),
    Case("corpus not UTF-8", 1, r"corpus.jsonl line 401: not valid UTF-8 \(byte 0xe9 .*on_bad_line=skip",
         lambda t: ["eval", "-d", beir_copy(t, "latin1", lambda r: append_bytes(
             os.path.join(r, "corpus.jsonl"), b'{"_id": "x", "text": "caf\xe9"}\n')), "-o", os.path.join(t, "o")]),
    Case("corpus not UTF-8, on_bad_line=skip", 0, r"rejected \(bad_line\): .*line 401: not valid UTF-8",
         lambda t: ["eval", "-d", beir_copy(t, "latin1s", lambda r: append_bytes(
             os.path.join(r, "corpus.jsonl"), b'{"_id": "x", "text": "caf\xe9"}\n')), "-o", os.path.join(t, "o2"),
             "dataset.on_bad_line=skip", "-k", "10"]),
    Case("repeated query id in eval", 0, r"rejected \(duplicate_query\): .*query id '6' repeated; the first copy",
         lambda t: ["eval", "-d", beir_copy(t, "dupq", lambda r: append_bytes(
             os.path.join(r, "queries.jsonl"), b'{"_id": "6", "text": "another text"}\n')),
             "-o", os.path.join(t, "o3"), "-k", "10"]),
    Case("eval rerun with another config", 1, r"holds output of another config .*rerun with overwrite=true",
         lambda t: eval_then_other_config(t)),
    Case("prepare: pos is a bare string", 1, r"rows.jsonl line 1: 'pos' must be a list of strings, got a string",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "rows.jsonl", [dict(BAD_POS, pos="abc")]),
                       "--mining", "none", "-o", os.path.join(t, "p")]),
    Case("prepare: pos is null", 1, r"line 1: 'pos' must be a list of strings, got null",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "null.jsonl", [dict(BAD_POS, pos=None)]),
                       "--mining", "none", "-o", os.path.join(t, "p")]),
    Case("prepare: pos is a number", 1, r"line 1: 'pos' must be a list of strings, got a number 5",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "num.jsonl", [dict(BAD_POS, pos=5)]),
                       "--mining", "none", "-o", os.path.join(t, "p")]),
    Case("prepare: bad rows, on_bad_line=skip", 0, r"prepared 1 training rows .* 3 rejected",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "mixed.jsonl", [
             dict(BAD_POS, pos="abc"), dict(BAD_POS, pos=None), dict(BAD_POS, pos=5), dict(BAD_POS, pos=["ok"])]),
             "--mining", "none", "-o", os.path.join(t, "p2"), "dataset.on_bad_line=skip"]),
    Case("prepare: invalid UTF-8", 1, r"bad.jsonl line 2: not valid UTF-8",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "bad.jsonl", [
             dict(BAD_POS, pos=["ok"]), b'{"query": "caf\xe9", "pos": ["x"]}\n']), "--mining", "none",
             "-o", os.path.join(t, "p3")]),
    Case("prepare: empty query, repeated id", 0, r"prepared 1 training rows .* 2 rejected",
         lambda t: ["synth", "prepare", "-d", jsonl(t, "dups.jsonl", [
             {"query_id": "a", "query": "one", "pos": ["x"]}, {"query_id": "b", "query": "", "pos": ["y"]},
             {"query_id": "a", "query": "two", "pos": ["z"]}]), "--mining", "none", "-o", os.path.join(t, "p4")]),
    Case("synth run: input not a dataset", 1, r"is not a committed dataset: it has no _manifest.json",
         lambda t: ["synth", "run", "-i", os.path.join(t, "nothing"), "-m", "/m", "-o", os.path.join(t, "s")]),
    Case("synth run: output is a file", 1, r"is a file, not a folder",
         lambda t: ["synth", "run", "-i", training_rows(t), "-m", "/m", "-o", a_file(t)]),
    Case("synth run: model config.json is {}", 2, r"engine.model: .* is not a usable model folder",
         lambda t: ["synth", "run", "-i", training_rows(t), "-m", empty_config_model(t),
                       "-o", os.path.join(t, "s2")]),
    Case("vote: inputs are not datasets", 1, r"training_rows: .* is not a committed dataset",
         lambda t: ["vote", "-t", os.path.join(t, "x"), "-i", os.path.join(t, "y"), "-o", os.path.join(t, "v")]),
    Case("vote: no candidate matches a query", 1, r"no query could be voted: all 2 were rejected",
         lambda t: ["vote", "-t", training_rows(t), "-i", candidates_of_other_queries(t), "--executor", "local",
                       "members=[{kind: bm25}]", "-o", os.path.join(t, "v2")]),
    Case("train: model config.json is {}", 2, r"model: .* is not a usable model folder",
         lambda t: ["train", "-i", training_dataset(t), "-m", empty_config_model(t), "-o", os.path.join(t, "tr")]),
    Case("train: data is not a dataset", 2, r"data: .* is not a committed dataset",
         lambda t: ["train", "-i", os.path.join(t, "none"), "-m", "/m", "-o", os.path.join(t, "tr")]),
    Case("verify: a part replaced after commit", 1,
         r"BAD .*part .* is \d+ bytes, the manifest says \d+: the part was changed or replaced",
         lambda t: ["verify", tampered_dataset(t)]),
    Case("verify: no dataset there", 1, r"no dataset under .*: give a dataset folder",
         lambda t: ["verify", t]),
]


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``o1e ARGV`` in this process: exit code, stdout, stderr."""
    from o1e.pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = int(exit_.code or 0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def seen_line(code: int, out: str, err: str, pattern: str) -> str:
    """The line the user reads: the error line on stderr, or on success the stdout line the case is about."""
    lines = err + out if code else out
    candidates = [line.strip() for line in lines.splitlines() if line.strip()]
    if code:
        ours = [line for line in candidates if line.startswith(("o1e", "BAD "))]
        return ours[-1] if ours else (candidates[-1] if candidates else "")
    matching = [line for line in candidates if re.search(pattern, line)]
    return matching[0] if matching else (candidates[-1] if candidates else "")


def main() -> None:
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from conftest import _free_port  # noqa: PLC0415 - the same loopback S3 server the tests use
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"O1E_S3_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"})
    print("| # | bad input | command | exit | what the user sees |")
    print("|---|---|---|---|---|")
    try:
        for number, case in enumerate(CASES, start=1):
            with tempfile.TemporaryDirectory() as tmp:
                argv = case.argv(tmp)
                code, out, err = run(argv, case.env)
                line = seen_line(code, out, err, case.message).replace(tmp, "$TMP").replace("|", "\\|")
                command = "o1e " + " ".join(shlex.quote(a) for a in argv).replace(tmp, "$TMP")
                print(f"| {number} | {case.name} | `{command}` | {code} | {line} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
