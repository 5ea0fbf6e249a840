#!/usr/bin/env bash
# The GPU check in one call: real-size SD 1.5, SDXL and FLUX.1 (fp8, and fp8 with 16 swapped blocks)
# trained through the engine, with measured peaks against the estimate (benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh              # here: fetch the wheels into .whl/; on a GPU: install them and run
#   bash benchmarks/gpu_check.sh --dry-run    # the same code on the CPU with small models (CI runs it)
#   bash benchmarks/gpu_check.sh --fetch      # only fetch the wheels (on a machine with PyPI access)
#
# A lent GPU machine has torch, transformers, peft, accelerate and safetensors but neither diffusers nor
# bitsandbytes, and no network. So the wheels of the versions installed here are downloaded into the
# git-ignored .whl/ folder (about 50 MB: carry it with the tree), and the GPU machine installs whatever it
# lacks from there with no index. Extra arguments go to gpu_check.py (--only, --json, --budget-s).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
PYTHON="${PYTHON:-python3}"
WHEELS=.whl
# pip name and import name of everything the engine needs beyond what a lent GPU machine has
PACKAGES=(diffusers bitsandbytes nvidia-ml-py importlib_metadata zipp pillow)
MODULES=(diffusers bitsandbytes pynvml importlib_metadata zipp PIL)

installed_version() {  # the version pip has here, empty when it is not installed
  "$PYTHON" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass" "$1"
}

fetch() {
  mkdir -p "$WHEELS"
  for package in "${PACKAGES[@]}"; do
    version="$(installed_version "$package")"
    if [ -z "$version" ]; then
      echo "gpu_check.sh: $package is not installed here, so there is no version to fetch" >&2
      continue
    fi
    if ls "$WHEELS"/ | grep -qi "^${package//-/_}-$version-"; then
      continue
    fi
    # binary wheels for Linux x86_64 and this Python (Pillow is built per Python version)
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64 --platform any \
      -d "$WHEELS" "$package==$version" 2>&1 | grep -v "is ignored: it is neither" || true
  done
}

install_missing() {
  local missing=()
  for index in "${!MODULES[@]}"; do
    "$PYTHON" -c "import ${MODULES[$index]}" 2>/dev/null || missing+=("${PACKAGES[$index]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  for package in "${missing[@]}"; do
    wheel="$(ls "$WHEELS"/ 2>/dev/null | grep -i "^${package//-/_}-.*\.whl$" | head -n 1 || true)"
    wheel="${wheel:+$WHEELS/$wheel}"
    if [ -z "$wheel" ]; then
      echo "gpu_check.sh: $package is missing and $WHEELS/ holds no wheel for it;" \
           "run 'bash benchmarks/gpu_check.sh --fetch' where PyPI is reachable and carry $WHEELS/" >&2
      exit 2
    fi
    "$PYTHON" -m pip install --quiet --no-index --no-deps "$wheel"
  done
  for module in "${MODULES[@]}"; do
    "$PYTHON" -c "import $module" || { echo "gpu_check.sh: $module still does not import (see above)" >&2; exit 2; }
  done
}

case "${1:-}" in
  --fetch)
    fetch
    ls -l "$WHEELS"
    exit 0
    ;;
  --dry-run)
    shift
    install_missing
    exec "$PYTHON" benchmarks/gpu_check.py --dry-run "$@"
    ;;
esac

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  fetch  # no GPU here: get the wheels ready to carry to one
  echo "gpu_check.sh: no CUDA GPU here; the wheels are in $WHEELS/ — run this script on the GPU machine" \
       "with $WHEELS/ carried, or use --dry-run"
  exit 0
fi
install_missing
exec "$PYTHON" benchmarks/gpu_check.py "$@"
