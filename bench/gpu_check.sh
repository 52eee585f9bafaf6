#!/usr/bin/env bash
# The one-command GPU check (issue 22); see bench/gpu_check.py and bench/RESULTS.md.
#   bash bench/gpu_check.sh OUT_DIR [--dry-run]   on one H100/H200 in <= 9 minutes; --dry-run: tiny shapes on the CPU
#   bash bench/gpu_check.sh --prepare             here, before a device call: the data mirror into .data/ and the
#                                                 wheels a bare GPU image lacks into .whl/ (both git-ignored; carry them)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--prepare" ]; then
    src=${MODERN_LLM_DATA:-../shared/data}
    [ -d "$src" ] || { echo "gpu_check: no data mirror at $src (set MODERN_LLM_DATA)" >&2; exit 2; }
    rm -rf .data.tmp && mkdir -p .data.tmp && cp -r "$src"/. .data.tmp/ && rm -rf .data && mv .data.tmp .data
    mkdir -p .whl
    v=$($PY -c "import fastcore; print(fastcore.__version__)")
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl "fastcore==$v"
    du -sh .data .whl
    exit 0
fi
if [ -d .whl ] && ! $PY -c "import fastcore" 2>/dev/null; then   # a bare GPU image: install the carried wheels
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site .whl/*.whl
    export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -z "${MODERN_LLM_DATA:-}" ] && [ -d .data ]; then export MODERN_LLM_DATA=$PWD/.data; fi
exec "$PY" bench/gpu_check.py "$@"
