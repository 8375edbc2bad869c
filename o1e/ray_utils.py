"""Starting or joining a Ray cluster the same way in every stage, and keeping a bounded number of Ray calls
in flight (``InFlight``, ``as_finished``, ``read_ahead``)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Sequence

from pydantic import Field

from o1e.config import ConfigError, Section

# Non-secret settings that workers on other nodes need to reach the same object store.
_FORWARDED_ENV = ("O1E_S3_ENDPOINT", "O1E_S3_MAX_ATTEMPTS", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                  "AWS_DEFAULT_REGION", "HF_HUB_OFFLINE")
VERBOSE_ENV = "O1E_VERBOSE"
"""Set (``o1e --verbose``) to let the frameworks log as they do by default."""
# What keeps the frameworks' own progress and info lines (vLLM, transformers, Hugging Face) off the terminal,
# where workers' output arrives through Ray: o1e's bars and tables, warnings and errors still show.
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TORCH_CPP_LOG_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false",
             "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning"}
# Ray's notice, at every start of a local cluster, that it turned on token authentication (its default): quiet
# mode keeps it off the terminal; the cluster is the same either way.
_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
_started_local_cluster = False
_session_logs: str | None = None


class RayConfig(Section):
    address: str | None = None
    """Cluster to join; ``None``: ``RAY_ADDRESS`` when set (as under ``ray job submit``), else a new local one."""
    num_cpus: int | None = None
    """CPUs of a new local cluster (``None``: all)."""
    num_cpus_per_worker: float | None = None
    """``None``: the CPUs free when the stage places its workers, shared evenly among them (at least 1 each,
    at most one node's)."""
    num_gpus_per_worker: float | None = None
    """``None``: one GPU per worker when the cluster has GPUs, none otherwise."""
    placement_timeout_s: float | None = Field(60.0, gt=0)
    """How long a stage waits for Ray to place its actors before failing with what it asked for and what is
    free; ``None``: wait for ever (an autoscaling cluster that adds nodes may need longer than a minute)."""


def worker_cpus(config: RayConfig, workers: int, cluster_cpus: float, largest_node_cpus: float) -> float:
    """CPUs per worker: the config's, else ``cluster_cpus`` shared evenly (at least 1, at most the largest
    node's: one worker cannot span nodes)."""
    if config.num_cpus_per_worker is not None:
        return config.num_cpus_per_worker
    return float(min(max(1, int(cluster_cpus) // max(1, workers)), max(1, int(largest_node_cpus))))


def training_worker_cpus(config: RayConfig, workers: int, cluster_cpus: float, largest_node_cpus: float) -> float:
    """CPUs per Ray Train worker: ``worker_cpus``, but one CPU is left to the Ray Train controller and the
    driver (on a small machine they would otherwise starve). The train stage and the pipeline's dry run
    both size workers by this."""
    if config.num_cpus_per_worker is not None:
        return config.num_cpus_per_worker
    share = worker_cpus(config, workers, cluster_cpus, largest_node_cpus)
    return max(0.5, min(share, (cluster_cpus - 1) / workers))


def worker_gpus(config: RayConfig, cluster_gpus: float) -> float:
    """GPUs per worker: the config's, else one when the cluster has GPUs."""
    if config.num_gpus_per_worker is not None:
        return config.num_gpus_per_worker
    return 1.0 if cluster_gpus >= 1 else 0.0


def free_cpus(ray, settle_s: float = 1.0) -> float:
    """The cluster's CPUs that no one holds now (at least 1). Stages size their CPU shares by these, not by
    the cluster's total: under ``ray job submit`` the job's own driver holds some, and a share of the total
    would ask for CPUs that can never be granted, so the stage would wait forever.

    Ray returns what a task or actor held asynchronously (a finished task's worker lease about 0.1 s after
    its result arrives; a killed actor's or a removed placement group's soon after), so while fewer than all
    CPUs are free the count is read again for up to ``settle_s``: a share sized in that gap would take one
    CPU where two are about to be free, and compute on half the cores."""
    total = float(ray.cluster_resources().get("CPU", 0))
    free = float(ray.available_resources().get("CPU", 0))
    deadline = time.monotonic() + settle_s
    while free < total and time.monotonic() < deadline:
        time.sleep(0.05)
        free = max(free, float(ray.available_resources().get("CPU", 0)))
    return max(1.0, free)


def largest_node_cpus(ray) -> float:
    return max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)


class PlacementError(ConfigError):
    """Ray cannot place what a stage asks for: the request exceeds what the cluster has free."""


def place(ray, what: str, bundles: list[dict[str, float]], timeout_s: float | None):
    """A placement group holding ``bundles`` (one per actor, each on one node), ready within ``timeout_s``;
    else a ``PlacementError`` naming ``what`` asked for and what is free (a request Ray cannot grant would
    otherwise wait for ever, without a word)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    bundles = [{k: v for k, v in b.items() if v} or {"CPU": 0.001} for b in bundles]
    group = placement_group(bundles, strategy="PACK")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        free = ray.available_resources()
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        asked = ", ".join(_resources(b) for b in bundles)
        raise PlacementError(
            f"{what}: Ray could not place {len(bundles)} actor(s) asking for {asked} (each on one node) within "
            f"{timeout_s:g} s; free now: {_resources(free)}; largest node: "
            f"{_resources(max(nodes, key=lambda r: r.get('CPU', 0), default={}))} (a submitted job's driver holds "
            "its own CPUs): ask for less, or add nodes (ray.placement_timeout_s=null waits for an autoscaler)"
        ) from None
    return group


def _resources(resources: dict[str, float]) -> str:
    return " + ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def in_group(group, index: int) -> dict:
    """Actor options that put it in bundle ``index`` of ``group``."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)}


def cpus_per_worker(ray, config: RayConfig, workers: int) -> float:
    return worker_cpus(config, workers, free_cpus(ray), largest_node_cpus(ray))


def gpus_per_worker(ray, config: RayConfig) -> float:
    return worker_gpus(config, ray.cluster_resources().get("GPU", 0))


def started_local_cluster() -> bool:
    """Whether ``init_ray`` started this process's cluster itself: one node, on loopback, without the
    dashboard (so without Ray's state API)."""
    return _started_local_cluster


def framework_logs_dir() -> str | None:
    """Where Ray keeps the logs of this node's workers and of the frameworks in them (its session's ``logs``
    folder; each node of a cluster has its own); ``None`` unless ``init_ray`` connected this process."""
    ray = sys.modules.get("ray")
    return _session_logs if ray is not None and ray.is_initialized() else None


def init_ray(config: RayConfig):
    global _started_local_cluster, _session_logs
    import ray

    if ray.is_initialized():
        return ray
    # Without this Ray binds to the machine's external address; local clusters must stay on loopback.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    address = config.address or os.environ.get("RAY_ADDRESS") or "local"
    quiet = not os.environ.get(VERBOSE_ENV)
    if quiet:
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
    if not sys.stdout.isatty():  # Ray's own switch: no colour codes around forwarded lines' "(Actor pid=...)"
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    kwargs = {"address": address, "log_to_driver": True, "logging_level": "WARNING" if quiet else "INFO"}
    if address == "local":
        # A new local cluster's workers inherit this environment. A job-level runtime_env would also
        # make Ray start a fresh worker for every actor instead of using the idle workers it started
        # with the cluster.
        kwargs.update(num_cpus=config.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
        if quiet:
            logging.getLogger(_TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    else:
        env = {name: os.environ[name] for name in (*_FORWARDED_ENV, VERBOSE_ENV, *(QUIET_ENV if quiet else ()))
               if os.environ.get(name)}
        # Inside a submitted job, Ray merges the job's runtime env with ray.init's and refuses a variable
        # both set: forward only what the job's own runtime env leaves out.
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
        for name in ((job.get("runtime_env") or {}).get("env_vars") or {}):
            env.pop(name, None)
        kwargs["runtime_env"] = {"env_vars": env} if env else None
    context = ray.init(**kwargs)
    _started_local_cluster = address == "local"
    _session_logs = os.path.join(context.address_info["session_dir"], "logs")
    return ray


class InFlight:
    """Ray calls kept bounded: spread over lanes (the actors of a pool; one ``InFlight`` may hold several
    pools), at most ``per_lane`` outstanding on each, every call sent to the least busy lane of its pool,
    and collected one at a time as they finish. While it waits, ``poll`` (a progress bar's redraw) is
    called every ``poll_s`` seconds."""

    def __init__(self, ray, lanes: int | Sequence[int] = 1, per_lane: int = 1,
                 poll: Callable[[], object] | None = None, poll_s: float = 0.5) -> None:
        self.ray, self.per_lane, self.poll, self.poll_s = ray, per_lane, poll, poll_s
        self.busy = [[0] * n for n in ([lanes] if isinstance(lanes, int) else lanes)]
        self.calls: dict = {}  # ref -> (tag, pool, lane)

    def __len__(self) -> int:
        return len(self.calls)

    def room(self, pool: int = 0) -> bool:
        return min(self.busy[pool]) < self.per_lane

    def submit(self, call: Callable[[int], Any], tag: Any, pool: int = 0) -> None:
        """Make ``call(lane)`` (a remote call, returning its ref) on the least busy lane of ``pool``, which
        must have ``room``; ``tag`` comes back with it."""
        busy = self.busy[pool]
        lane = busy.index(min(busy))
        self.calls[call(lane)] = (tag, pool, lane)
        busy[lane] += 1

    def next_done(self) -> tuple[Any, int, Any]:
        """``(tag, lane, ref)`` of a finished call, its lane freed; ``ray.get(ref)`` is its result or error."""
        done: list = []
        while not done:
            done, _ = self.ray.wait(list(self.calls), num_returns=1,
                                    timeout=self.poll_s if self.poll is not None else None)
            if self.poll is not None:
                self.poll()
        tag, pool, lane = self.calls.pop(done[0])
        self.busy[pool][lane] -= 1
        return tag, lane, done[0]


_END = object()


def as_finished(ray, items: Iterable, submit: Callable[[Any, int], Any], lanes: int = 1, per_lane: int = 1,
                retry: deque | None = None, poll: Callable[[], object] | None = None) -> Iterator[tuple[Any, int, Any]]:
    """Run ``submit(item, lane)`` (a remote call on lane ``lane``, returning its ref) for each of ``items``,
    read only as lanes have room (``InFlight``), and yield ``(item, lane, ref)`` as each call finishes. An
    item the caller appends to ``retry`` (its call failed) is submitted again before the next of ``items``."""
    source = iter(items)
    retry = deque() if retry is None else retry
    calls = InFlight(ray, lanes, per_lane, poll)
    exhausted = False
    while True:
        while calls.room() and (retry or not exhausted):
            item = retry.popleft() if retry else next(source, _END)
            if item is _END:
                exhausted = True
            else:
                calls.submit(lambda lane: submit(item, lane), item)
        if not calls:
            return
        yield calls.next_done()


def read_ahead(requests: Iterator, depth: int) -> Iterator:
    """The items of ``requests`` (each submits a call as it is made: a Ray ref, or a value computed in
    process) in their own order, each made ``depth`` items before it is yielded."""
    queue: deque = deque()
    for request in requests:
        queue.append(request)
        if len(queue) > depth:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
