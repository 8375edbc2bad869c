"""Ray Train retries a failed worker group up to ``max_failures`` times, whatever the error. A run whose
worker raised one of o1e's deterministic errors (config, data, storage, model folder) would fail the same
way on every retry, so it fails at once with that error; lost workers and nodes are still retried."""

from __future__ import annotations

from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision
from ray.train.v2.api.exceptions import WorkerGroupError

from o1e.errors import is_deterministic
from o1e.ray_utils import started_local_cluster


class NoRetryOnDeterministicErrors(DefaultFailurePolicy):
    def make_decision(self, training_failed_error) -> FailureDecision:
        if isinstance(training_failed_error, WorkerGroupError) and is_deterministic(training_failed_error):
            return FailureDecision.RAISE
        return super().make_decision(training_failed_error)


class O1eTorchTrainer(TorchTrainer):
    """A ``TorchTrainer`` whose controller decides retries with ``NoRetryOnDeterministicErrors``. Ray Train
    has no public setting for a failure policy: this replaces the default one where the trainer hands it
    to the controller (Ray 2.60).

    On a local cluster that o1e started it also leaves out Ray Train's placement-group cleaner: a detached
    actor that asks Ray's state API, once a second, whether the controller still lives, to remove the
    workers' placement group if it died. That cluster has no dashboard, so no state API: the cleaner could
    never clean, and only logged a warning a second (or, with several clusters on the machine, died with a
    traceback). Either way, a placement group whose controller died goes when the driver's job ends."""

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        controller_init_kwargs["failure_policy"] = NoRetryOnDeterministicErrors(self.run_config.failure_config)
        return super()._initialize_and_run_controller(**controller_init_kwargs)

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        if started_local_cluster():
            callbacks = [c for c in callbacks if not isinstance(c, PlacementGroupCleanerCallback)]
        return callbacks
