"""The fingerprint rule (``o1e.config``): what a config's fingerprint covers, and why an upgrade that adds
fields leaves outputs current. The pipeline-level check is in tests/test_pipeline.py."""

from __future__ import annotations

from typing import ClassVar

import pytest

from o1e import config as o1e_config
from o1e.config import Section, StageConfig, added
from o1e.provenance import fingerprint


class Inner(Section):
    not_fingerprinted: ClassVar[tuple[str, ...]] = ("workers",)
    size: int = 4
    workers: int = 1


class Before(StageConfig):
    inner: Inner = Inner()
    items: list[Inner] = [Inner()]
    output: str = "out"


class InnerAfter(Inner):
    mode: str = added("exact", since="9.0")


class After(StageConfig):
    inner: InnerAfter = InnerAfter()
    items: list[InnerAfter] = [InnerAfter()]
    output: str = "out"
    seed: int | None = added(None, since="9.0")


def test_rule_one_hashes_every_field_but_the_ones_that_do_not_change_results():
    cfg = Before(inner={"size": 8, "workers": 3}, output="elsewhere")
    assert cfg.fingerprint_data() == {"inner": {"size": 8}, "items": [{"size": 4}]}
    assert cfg.fingerprint() == fingerprint(cfg.fingerprint_data())
    # Where the work runs or lands is not what it computes.
    assert cfg.fingerprint() == Before(inner={"size": 8, "workers": 1}).fingerprint()
    assert cfg.fingerprint() != Before(inner={"size": 9}).fingerprint()


def test_added_fields_at_their_neutral_value_leave_the_fingerprint_as_it_was():
    assert After().fingerprint() == Before().fingerprint()
    assert After(inner={"size": 8}).fingerprint() == Before(inner={"size": 8}).fingerprint()
    # Set to anything else, they count, nested or not, in a list or not.
    assert After(seed=1).fingerprint() != Before().fingerprint()
    assert After(inner={"mode": "fast"}).fingerprint() != Before().fingerprint()
    assert After(items=[{"mode": "fast"}]).fingerprint() != Before().fingerprint()


def test_a_changed_default_supersedes_even_for_an_added_field():
    class DefaultChanged(StageConfig):
        inner: Inner = Inner(size=5)
        items: list[Inner] = [Inner()]
        output: str = "out"

    class AddedDefaultChanged(After):
        seed: int | None = added(0, since="9.0", neutral=None)

    assert DefaultChanged().fingerprint() != Before().fingerprint()
    assert AddedDefaultChanged().fingerprint() != Before().fingerprint()
    assert AddedDefaultChanged(seed=None).fingerprint() == Before().fingerprint()


def test_a_new_rule_changes_every_fingerprint_visibly(monkeypatch):
    old = Before().fingerprint()
    monkeypatch.setattr(o1e_config, "FINGERPRINT_RULE", 2)
    assert Before().fingerprint() != old
    assert Before().fingerprint() == fingerprint({"fingerprint_rule": 2, **Before().fingerprint_data()})


@pytest.mark.parametrize("stage", ["synth", "eval"])
def test_engine_deployment_never_counts(stage):
    from o1e.eval.config import EvalConfig
    from o1e.synth.config import SynthConfig

    if stage == "synth":
        make = lambda **engine: SynthConfig(engine={"model": "m", **engine})  # noqa: E731
    else:
        make = lambda **engine: EvalConfig(retriever={"kind": "expand"}, thoughts={"engine": {"model": "m", **engine}})  # noqa: E731
    assert make(replicas=4, num_cpus_per_replica=8, start_timeout_s=60).fingerprint() == make().fingerprint()
    assert make(max_model_len=1024).fingerprint() != make().fingerprint()


def test_shipped_train_fields_added_in_0_2_are_neutral_at_their_defaults():
    from o1e.train.config import TrainConfig

    data = TrainConfig().fingerprint_data()
    assert "cross_device_gradient" not in data["loss"] and "warmup" not in data["optim"]
    local = TrainConfig(loss={"cross_device_gradient": "local"}, optim={"warmup": "log"}).fingerprint_data()
    assert local["loss"]["cross_device_gradient"] == "local" and local["optim"]["warmup"] == "log"
