"""`ray job submit --working-dir . -- python -m o1e.eval ...` against a real Ray head on loopback."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, _free_port

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


@pytest.fixture(scope="module")
def ray_head():  # one head for both jobs: starting and stopping one takes ~45 s
    if not os.path.exists(RAY):
        pytest.skip("the ray CLI is not installed beside this Python")
    port, dashboard = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="o1e-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    # Ray's token authentication, as a real cluster would run it: the head and the submitter share a token.
    # The job's `python` is looked up on PATH: put this interpreter's folder (the venv) first, as an activated
    # environment on a cluster node would.
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(16),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--temp-dir", temp, "--disable-usage-stats",
         # the agents' default ports are fixed: another Ray cluster on the machine would hold them, and
         # then the head takes no job ("No available agent to submit job")
         *(arg for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                            "--runtime-env-agent-port", "--metrics-export-port")
           for arg in (flag, str(_free_port())))],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # answering, if only to ask for Ray's auth token: it is up
                break
            except OSError:
                if time.time() > deadline or head.poll() is not None:
                    pytest.fail("the Ray head did not come up within 120 s")
                time.sleep(1)
        # The dashboard answers before its job agent is up ("No available agent to submit job, please try
        # again later"): a trivial job, retried, says when jobs can be submitted.
        deadline = time.time() + 300
        while (probe := subprocess.run([RAY, "job", "submit", "--address", address, "--", "true"], env=env,
                                       capture_output=True, text=True, timeout=300)).returncode != 0:
            if time.time() > deadline or head.poll() is not None:
                pytest.fail(f"the Ray head took no job within 300 s: {probe.stderr[-1500:]}")
            time.sleep(2)
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)  # a clean stop can take half a minute; the head's state is thrown away
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_eval_stage(ray_head, demo_data, tmp_path):
    address, env = ray_head
    out = tmp_path / "out"
    proc = subprocess.run(
        [RAY, "job", "submit", "--address", address, "--working-dir", REPO,
         "--runtime-env", os.path.join(REPO, "clusters", "runtime_env.yaml"), "--",
         "python", "-m", "o1e.eval", "-d", demo_data, "-r", "bm25", "-k", "100", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["num_queries"] == 100 and metrics["ndcg@10"] > 0.8


def test_pipeline_job_via_submit_script_names_the_commit(ray_head, pipeline_demo, tmp_path):
    """clusters/submit.sh submits the demo pipeline (a copy of the finished run, one baseline changed): the
    job skips every current stage, reruns that baseline, and what it writes names the commit submitted."""
    address, env = ray_head
    root = tmp_path / "pipeline"
    shutil.copytree(pipeline_demo["root"], root, ignore=shutil.ignore_patterns("ray"))
    # The demo's config with the demo run's overrides (its data by path: inside the job a default would be
    # the uploaded copy's).
    proc = subprocess.run(
        [os.path.join(REPO, "clusters", "submit.sh"), "pipeline", "-c", "pipeline/configs/demo.yaml",
         f"output={root}", *pipeline_demo["overrides"], "baselines.bm25.top_k=100"],
        env=dict(env, RAY_ADDRESS=address), capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout and "o1e-pipeline-" in proc.stdout  # the submission id
    steps = {s["step"]: s["status"] for s in json.load(open(root / "summary.json"))["steps"]}
    assert steps.pop("baseline:bm25") == "ran" and set(steps.values()) == {"skipped"}
    assert "superseded" in proc.stdout  # its earlier output was removed before the rerun
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    manifest = json.load(open(root / "baselines" / "bm25" / "per_query" / "_manifest.json"))
    assert f"+g{commit}" in manifest["code_version"]
    metrics = json.load(open(root / "baselines" / "bm25" / "metrics.json"))
    assert f"+g{commit}" in metrics["code_version"] and metrics["num_queries"] == 8
