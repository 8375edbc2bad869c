#!/usr/bin/env bash
# Create .venv and install o1e with what this kind of CPU machine needs, pinned by constraints-cpu.txt.
#   bash install.sh            # CPU stack (faiss-cpu), with test tools
# Environment: PYTHON (interpreter, default python3.11 or python3), TORCH_SPEC (default torch==2.13.0,
# the CPU build this machine keeps on disk; an unpinned torch would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
# DeepSpeed (o1e train) first: its setup imports torch, so no build isolation; on a CPU machine no CUDA ops are
# built now, and its CPU comm op compiles at first use (40-70 s, cached under TORCH_EXTENSIONS_DIR).
DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} DS_BUILD_OPS=${DS_BUILD_OPS:-0} \
  .venv/bin/python -m pip install -q --no-build-isolation -c constraints-cpu.txt deepspeed
.venv/bin/python -m pip install -q -c constraints-cpu.txt -e ".[cpu,test,train]"
.venv/bin/python -c "import torch, ray, faiss, sentence_transformers, pytrec_eval, deepspeed, peft; print('o1e installed: torch', torch.__version__, '| ray', ray.__version__)"
