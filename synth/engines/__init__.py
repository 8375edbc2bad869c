"""Generation engines behind one interface (``synth.engines.base.Engine``)."""

from __future__ import annotations

from synth.engines.base import Engine, GenerationResult, ShardWork


def make_engine(cfg, show: bool = True) -> Engine:
    """The engine a ``SynthConfig`` names (not yet started)."""
    if cfg.engine.kind == "vllm":
        from synth.engines.vllm_ray import VllmRayEngine

        return VllmRayEngine(cfg.engine, cfg.prompt, cfg.sampling, cfg.ray, show=show)
    from synth.engines.openai_http import OpenAIEngine

    return OpenAIEngine(cfg.engine, cfg.prompt, cfg.sampling)


__all__ = ["Engine", "GenerationResult", "ShardWork", "make_engine"]
