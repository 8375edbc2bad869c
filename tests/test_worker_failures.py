"""A deterministic error inside a worker (o1e's config, data, storage or model-folder errors) fails the
run at once with its one-line message. Attempts are counted in a file each attempt appends to."""

from __future__ import annotations

import os
import sys

import pytest
import ray.cloudpickle

from o1e.config import ConfigError
from o1e.errors import describe, is_deterministic

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/


def attempt(counter: str) -> None:
    with open(counter, "a") as f:
        f.write("x")


def failing_loop(config: dict) -> None:
    attempt(config["counter"])
    raise ConfigError("model: /models/base cannot be loaded (no weights)")


def test_train_worker_config_error_fails_at_once(ray_cluster, tmp_path):
    """One worker allowed three failures raises a ConfigError: one attempt, and the driver gets that error.
    (That a lost worker is still retried: test_train_e2e's killed-worker test, through the same trainer.)"""
    from ray.train import FailureConfig, RunConfig, ScalingConfig

    from o1e.train.failures import O1eTorchTrainer

    counter = str(tmp_path / "attempts")
    trainer = O1eTorchTrainer(
        failing_loop, train_loop_config={"counter": counter},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="fails", storage_path=str(tmp_path / "ray"),
                             failure_config=FailureConfig(max_failures=3)),
    )
    with pytest.raises(Exception) as raised:
        trainer.fit()
    assert os.path.getsize(counter) == 1 and is_deterministic(raised.value)
    assert describe(raised.value) == (2, "error: model: /models/base cannot be loaded (no weights)")


class Replica:
    """An actor as the committee and the generation engine make theirs: restarted if its process is lost."""

    def __init__(self, counter: str, fail_on_start: bool) -> None:
        attempt(counter + ".start")
        if fail_on_start:
            raise ConfigError("model: /models/base is not a usable model folder")
        self.counter = counter

    def work(self) -> None:
        attempt(self.counter + ".work")
        raise ConfigError("data: row 3 has no query")


def test_actor_errors_are_not_retried_with_the_stages_restart_options(ray_cluster, tmp_path):
    """Restarts and task retries are for a lost actor process: Ray retries no exception an actor's method
    raises (no ``retry_exceptions``), and restarts no actor whose constructor raised."""
    ray = ray_cluster
    # more retries than any stage sets (the generation engine restarts replicas 3 times and retries shards
    # itself; the committee's actors allow 1 of each): still none for an exception
    actor = ray.remote(Replica).options(num_cpus=0, max_restarts=3, max_task_retries=3)
    counter = str(tmp_path / "replica")
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(actor.remote(counter, False).work.remote())
    assert describe(raised.value) == (2, "error: data: row 3 has no query")
    broken = actor.remote(counter + "-broken", True)
    with pytest.raises(ray.exceptions.RayActorError, match="is not a usable model folder"):
        ray.get(broken.work.remote())
    assert os.path.getsize(counter + ".work") == 1 and os.path.getsize(counter + "-broken.start") == 1


def test_which_errors_are_deterministic():
    from ray.train import WorkerGroupError

    from o1e.beir import DatasetError
    from o1e.storage import StorageError

    assert is_deterministic(StorageError("s3://b/ds: no _manifest.json"))
    assert not is_deterministic(OSError("AWS Error NETWORK_CONNECTION during GetObject operation"))
    assert not is_deterministic(RuntimeError("Connection closed by peer"))
    # a rank's own data error, the other rank's collateral collective error: the run is not retried
    group = WorkerGroupError("two workers failed", {0: RuntimeError("gloo: connection reset"),
                                                    1: DatasetError("rows.jsonl line 3: no query")})
    assert is_deterministic(group) and describe(group) == (1, "error: rows.jsonl line 3: no query")
    assert not is_deterministic(WorkerGroupError("lost", {0: RuntimeError("gloo: connection reset")}))
