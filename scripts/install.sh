#!/usr/bin/env bash
# Install tui-lora into the current Python (a virtualenv is recommended).
#   bash scripts/install.sh          the app and engine
#   bash scripts/install.sh test     plus the test tools and optional optimizers
# With no torch installed, a plain `pip install torch` pulls a multi-GB CUDA build. GPU users
# should install the torch build for their CUDA first; otherwise we take torch 2.13.0 (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
extra=""
if [ "${1:-}" = "test" ]; then extra="[test]"; fi
"$PYTHON" -m pip install --quiet -e ".${extra}"
