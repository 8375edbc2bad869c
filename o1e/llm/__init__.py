"""LLM generation engines behind one interface (``o1e.llm.base.Engine``): vLLM or transformers replicas on
Ray, or an OpenAI-compatible endpoint, each turning requests into prompts through a renderer the stage
supplies."""

from __future__ import annotations

from o1e.llm.base import Engine, EngineError, GenerationResult, Renderer, Request, ShardWork
from o1e.llm.config import SamplingConfig
from o1e.ray_utils import RayConfig


def make_engine(engine_cfg, renderer: Renderer, sampling: SamplingConfig, ray_config: RayConfig,
                show: bool = True, stage: str = "") -> Engine:
    """The engine ``engine_cfg`` (an ``EngineConfig``) names, not yet started; ``stage`` names who asks in
    its errors."""
    if engine_cfg.kind in ("vllm", "transformers"):
        from o1e.llm.ray_engine import RayEngine

        return RayEngine(engine_cfg, renderer, sampling, ray_config, show=show, stage=stage)
    from o1e.llm.openai_http import OpenAIEngine

    return OpenAIEngine(engine_cfg, renderer, sampling)


__all__ = ["Engine", "EngineError", "GenerationResult", "Renderer", "Request", "ShardWork", "make_engine"]
