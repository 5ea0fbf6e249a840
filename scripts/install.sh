#!/usr/bin/env bash
# Install tui-lora into the current Python (a virtualenv is recommended).
#   bash scripts/install.sh          the app and engine
#   bash scripts/install.sh test     plus the test tools and optional optimizers
# With no torch installed, a plain `pip install torch` pulls a multi-GB CUDA build. GPU users
# should install the torch build for their CUDA first; otherwise we take torch 2.13.0 (CPU).
# Each step says what it does and pip shows its progress: the first install downloads about
# 1 GB and takes minutes, which must never look like a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
started=$SECONDS
step() { printf '\n==> [%s/3] %s\n' "$1" "$2"; }
# pip's own lines show (downloads with their progress), less the "already satisfied" noise; pipefail
# keeps pip's exit status.
pip_install() { "$PYTHON" -m pip install --progress-bar on --no-input "$@" 2>&1 | { grep -v '^Requirement already satisfied' || true; }; }

step 1 "checking Python and torch ($("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "    torch $("$PYTHON" -c 'import torch; print(torch.__version__)') is already installed: kept as it is"
    step 2 "torch: nothing to do"
else
    echo "    torch is not installed"
    step 2 "installing torch 2.13.0 (a large download: this is the step that takes minutes)"
    pip_install "torch==2.13.0"
fi
extra=""
if [ "${1:-}" = "test" ]; then extra="[test]"; fi
step 3 "installing tui-lora${extra} and its libraries (diffusers, transformers, peft, accelerate, textual, ...)"
pip_install -e ".${extra}"
"$PYTHON" -c "import tui_lora, engine" || { echo "tui-lora did not import: see the pip output above" >&2; exit 1; }
printf '\n==> done in %ss. Try: tui-lora demo   (a LoRA on a tiny built-in model, on the CPU)\n' "$((SECONDS - started))"
