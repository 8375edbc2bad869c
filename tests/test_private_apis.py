"""The private APIs o1e reaches into where its libraries offer no public one, each used in one place that
says why. These tests pin their shape, so that an upgrade of Ray or vLLM that moves them fails here, by
name, instead of in a cluster job."""

from __future__ import annotations

import inspect

import pytest


def test_ray_train_hands_its_failure_policy_to_the_controller():
    """train/failures.py: Ray Train has no public setting for a failure policy; O1eTorchTrainer replaces the
    one the trainer passes to its controller (tests/test_worker_failures.py checks the behaviour)."""
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.execution.controller import TrainController
    from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision

    from o1e.train.failures import NoRetryOnDeterministicErrors, O1eTorchTrainer

    assert "failure_policy" in inspect.signature(TrainController.__init__).parameters
    assert "_initialize_and_run_controller" in vars(O1eTorchTrainer)
    assert hasattr(TorchTrainer, "_initialize_and_run_controller")
    assert issubclass(NoRetryOnDeterministicErrors, DefaultFailurePolicy) and FailureDecision.RAISE


def test_ray_train_builds_its_placement_group_cleaner_among_its_default_callbacks():
    """train/failures.py: on a local cluster without a state API, O1eTorchTrainer leaves the cleaner out of
    the default callbacks (Ray Train has no switch for it); tests/test_train_e2e.py checks it stays quiet."""
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    assert "PlacementGroupCleanerCallback()" in inspect.getsource(TorchTrainer._create_default_callbacks)
    assert PlacementGroupCleanerCallback.__module__.endswith("placement_group_callback")


def test_vllm_engine_death_and_shutdown_are_where_o1e_looks():
    """o1e/llm/vllm_worker.py: the error a dead engine raises has no public name, and ``LLM`` has no public
    shutdown (its engine core's stops the engine processes)."""
    pytest.importorskip("vllm")
    from vllm import LLM
    from vllm.v1.engine.core_client import EngineCoreClient
    from vllm.v1.engine.exceptions import EngineDeadError
    from vllm.v1.engine.llm_engine import LLMEngine

    assert issubclass(EngineDeadError, Exception)
    assert "self.llm_engine =" in inspect.getsource(LLM.__init__)
    assert "self.engine_core =" in inspect.getsource(LLMEngine.__init__)
    assert callable(EngineCoreClient.shutdown)
