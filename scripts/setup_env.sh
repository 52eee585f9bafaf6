#!/usr/bin/env bash
# Create or repair the project's Python environment (.venv), then exit 0; a no-op when it is already good.
#
#   bash scripts/setup_env.sh           # what the pipeline needs (speedrun.sh calls this)
#   bash scripts/setup_env.sh --dev     # + tests, notebooks, interop (scripts/check.sh calls this)
#   bash scripts/setup_env.sh --check   # exit 0 when the environment is good, 1 when it needs set-up; installs nothing
#
# torch first, chosen for this machine:
#   MODERN_LLM_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"   your own pin (any pip arguments)
#   else an NVIDIA GPU (nvidia-smi lists one)  -> torch==$TORCH_VERSION from PyPI (a CUDA build on Linux, ~2.5 GB)
#   else                                       -> the CPU build of torch==$TORCH_VERSION (~0.8 GB): from the PyTorch
#                                                 CPU index when reachable, else a wheel pip already finds (a local one)
# MODERN_LLM_VENV=DIR puts the environment elsewhere (default: .venv in the checkout).
#
# The environment counts as good only when its stamp (pyproject.toml, the torch choice, the extras, this script)
# matches and torch, papermill and this checkout's modern_llm import. The stamp is written last, so a failed or
# interrupted set-up is never mistaken for a good one: the next run repairs it.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/.."
root=$PWD
venv=${MODERN_LLM_VENV:-$root/.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
extras=""; check_only=0
for a in "$@"; do
  case "$a" in
    --dev) extras="[dev]" ;;
    --check) check_only=1 ;;
    -h|--help) sed -n '2,18p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

# --- which torch ---------------------------------------------------------------------------------------------------
cpu_index=https://download.pytorch.org/whl/cpu
if [ -n "${MODERN_LLM_TORCH:-}" ]; then torch_kind=pinned; torch_args=$MODERN_LLM_TORCH
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  torch_kind=cuda; torch_args="torch==$TORCH_VERSION"
else torch_kind=cpu; torch_args="torch==$TORCH_VERSION"; fi

stamp_file=$venv/.modern_llm_setup
stamp=$( { cat pyproject.toml "$self"; echo "$torch_kind|$torch_args"; } | sha256sum | cut -c1-16)

env_ok() {   # the stamp matches (a --dev environment also serves the plain one) and the imports resolve to this checkout
  [ -x "$venv/bin/python" ] && [ -f "$stamp_file" ] || return 1
  local have; have=$(cat "$stamp_file")
  [ "$have" = "$stamp $extras" ] || { [ -z "$extras" ] && [ "$have" = "$stamp [dev]" ]; } || return 1
  "$venv/bin/python" -I - "$root" <<'EOF' >/dev/null 2>&1   # -I: not the checkout's folder on sys.path, the install
import sys, pathlib, torch, papermill, modern_llm
sys.exit(0 if pathlib.Path(modern_llm.__file__).resolve().parent.parent == pathlib.Path(sys.argv[1]).resolve() else 1)
EOF
}
if env_ok; then exit 0; fi
[ $check_only = 1 ] && exit 1

# --- set up --------------------------------------------------------------------------------------------------------
log=$(mktemp "${TMPDIR:-/tmp}/modern_llm_setup.XXXXXX.log")
fail() { echo "setup: error: $1" >&2; echo "setup: full pip output: $log; the environment is marked incomplete and the next run retries" >&2; exit 2; }
pip_step() {   # pip_step "what" pip-args...: one progress line, the output in the log, one clear line on failure
  local what=$1; shift
  echo "setup: $what ..."
  local t0=$SECONDS
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
    local why
    why=$(grep -E '^(ERROR|error):' "$log" | tail -1)
    if grep -qiE 'Failed to establish|NewConnectionError|Name or service not known|network is unreachable|timed out|Max retries|from versions: none' "$log"
    then why="no package registry answered (offline, proxy, or an index URL that is down?): ${why:-see the log}"; fi
    fail "$what failed: ${why:-see the log}"
  fi
  echo "setup:   done in $((SECONDS - t0)) s"
}
py=$(command -v python3 || true)
[ -n "$py" ] || { echo "setup: error: python3 not found (Python >= 3.10 is needed)" >&2; exit 2; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "setup: error: $("$py" --version) is too old (>= 3.10 needed)" >&2; exit 2; }
rm -f "$stamp_file"
echo "setup: environment $venv (torch: $torch_kind, '$torch_args'; package: modern_llm$extras, editable); log: $log"
case "$torch_kind$extras" in
  cpu) echo "setup: installs the CPU build of torch and the pipeline's packages (~1.8 GB on disk, torch 0.75 GB of it)" ;;
  cpu\[dev\]) echo "setup: installs the CPU build of torch, the pipeline's packages and the dev/interop extras (~2.4 GB on disk)" ;;
  cuda*) echo "setup: installs the CUDA build of torch (~2.5 GB of wheels, ~5 GB on disk) and the pipeline's packages (~1 GB)" ;;
  *) echo "setup: installs your torch pin and the pipeline's packages" ;;
esac
[ -x "$venv/bin/python" ] || { echo "setup: creating the virtual environment ..."; "$py" -m venv "$venv" >>"$log" 2>&1 || fail "python3 -m venv $venv failed"; }

if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1 || [ "$torch_kind" = pinned ]; then
  if [ "$torch_kind" = cpu ] && "$venv/bin/python" - "$cpu_index" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
EOF
  then pip_step "installing $torch_args (CPU build, from $cpu_index)" "$torch_args" --index-url "$cpu_index" \
         --extra-index-url https://pypi.org/simple
  else
    # shellcheck disable=SC2086  # MODERN_LLM_TORCH may hold several pip arguments
    pip_step "installing $torch_args" $torch_args
  fi
else
  echo "setup: torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)') already installed, kept"
fi
# the package and its dependencies; torch stays as installed (a range it satisfies installs nothing more)
pip_step "installing modern_llm$extras (editable) and its dependencies" -e "$root$extras"
"$venv/bin/python" -I -c "import torch, papermill, modern_llm" >>"$log" 2>&1 || fail "the new environment does not import torch, papermill and modern_llm"
echo "$stamp $extras" > "$stamp_file.tmp" && mv "$stamp_file.tmp" "$stamp_file"
echo "setup: ready: $venv ($(du -sh "$venv" 2>/dev/null | cut -f1) on disk; torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'))"
rm -f "$log"
