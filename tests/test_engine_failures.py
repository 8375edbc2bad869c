"""The generation engines' failures on a real local Ray cluster: a request that cannot be placed, and a shard
that kills its replica, with transformers replicas of a tiny random LM (machinery only: its output is noise).
Its own module: ``test_llm``'s vLLM replica holds the cluster's CPUs while that module runs."""

from __future__ import annotations

import os
import sys

import pytest

from o1e.llm import EngineError, Request, ShardWork, make_engine
from o1e.llm.config import SamplingConfig
from o1e.ray_utils import RayConfig


class CrashOn:
    """A token renderer (the payload's word-piece ids) whose replica process dies on the payload ``crash``, as
    a replica does on a request that brings its engine down."""

    kind = "tokens"

    def token_ids(self, payload: str, tokenizer) -> list[int]:
        if payload == "crash":
            os._exit(1)
        return tokenizer.encode(payload, add_special_tokens=False)


@pytest.fixture(scope="module")
def tiny_lm(ray_cluster, tmp_path_factory) -> str:
    """A tiny random LM (machinery only: its output is noise)."""
    from o1e.tiny import make_random_lm

    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return make_random_lm(str(tmp_path_factory.mktemp("llm-tiny") / "lm"), hidden=32, max_positions=64)


def test_a_request_that_cannot_be_placed_fails_in_one_line(tiny_lm):
    """More CPUs than any node has free: one line naming who asked, for what, and what is free, after the
    placement timeout, instead of waiting for ever."""
    import time

    from o1e.llm.config import TransformersEngineConfig
    from o1e.ray_utils import PlacementError

    engine = make_engine(TransformersEngineConfig(model=tiny_lm, num_cpus_per_replica=3), CrashOn(),
                         SamplingConfig(max_tokens=2), RayConfig(placement_timeout_s=2), show=False, stage="synth")
    started = time.perf_counter()
    with pytest.raises(PlacementError) as caught:
        engine.start()
    assert time.perf_counter() - started < 30
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("synth: transformers replicas of ") and "asking for 3 CPU + 0 GPU" in message
    assert "within 2 s; free now: 2 CPU + 0 GPU; largest node: 2 CPU + 0 GPU" in message


def test_a_shard_that_kills_its_replica_twice_stops_the_run_with_the_cause(tiny_lm):
    """The replica is restarted once for the shard; when the retry kills it again the run stops with one line
    (rather than restarting for minutes), after the shards that did not crash were delivered."""
    from o1e.llm.config import TransformersEngineConfig

    cfg = TransformersEngineConfig(model=tiny_lm, max_restarts=3, shards_in_flight=1)
    engine = make_engine(cfg, CrashOn(), SamplingConfig(max_tokens=2), RayConfig(), show=False, stage="synth")
    engine.start()
    assert engine.info["num_cpus_per_replica"] >= 1  # the default share: CPUs free at placement
    delivered = []
    try:
        with pytest.raises(EngineError, match=r"replica 0 died twice on shard b \(at most engine.max_restarts=3"):
            for shard_id, results in engine.stream([ShardWork("a", [Request("a/0", "iron")]),
                                                    ShardWork("b", [Request("b/0", "crash")])]):
                delivered.append(shard_id)
    finally:
        engine.close()
    assert delivered == ["a"]
