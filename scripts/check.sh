#!/usr/bin/env bash
# The project's test command (README, .ci/run): set up the environment when missing or stale (scripts/setup_env.sh
# --dev; MODERN_LLM_PYTHON=... to use your own), then notebooks and package in sync, notebooks clean, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODERN_LLM_DATA="${MODERN_LLM_DATA:-$(cd .. && pwd)/shared/data}"
export HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export HF_HOME="${HF_HOME:-$PWD/.hf_home}"
if [ -n "${MODERN_LLM_PYTHON:-}" ]; then bin=$(dirname "$MODERN_LLM_PYTHON")/
else bash scripts/setup_env.sh --dev || exit $?; bin=${MODERN_LLM_VENV:-$PWD/.venv}/bin/; fi

echo "== nbdev-export: the package must match the notebooks"
"${bin}nbdev-export"
echo "== nbdev-clean: notebooks must be committed clean"
"${bin}nbdev-clean"
dirty=$(git status --porcelain -- modern_llm nbs)
if [ -n "$dirty" ]; then
  echo "FAIL: nbdev-export / nbdev-clean changed these files; edit the notebooks, run both, commit:"; echo "$dirty"
  git --no-pager diff --stat -- modern_llm nbs; exit 1
fi
echo "== pytest: every notebook, tests/, the smoke speedrun"
"${bin}python" -m pytest tests/ -v -rs --durations=15 "$@"
