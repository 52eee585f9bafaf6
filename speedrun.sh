#!/usr/bin/env bash
# One button: every stage (pretrain -> SFT -> DPO -> verifier -> evaluate -> report) into runs/<run_id>/.
#
#   bash speedrun.sh smoke                 # 2 CPU cores, minutes (what CI runs)
#   bash speedrun.sh local                 # one 12 GB GPU (preset local_rtx3060)
#   bash speedrun.sh tacc | tacc-smoke     # presets tacc_h100 / tacc_smoke (SLURM: scripts/tacc/submit_speedrun.sh)
#   bash speedrun.sh PRESET [papermill args]   e.g. -p stages pretrain,sft  -p overrides "train.pretrain.max_steps=20"
#   RUN_ID=<id> bash speedrun.sh smoke -p resume True    # continue a run (without RUN_ID: the run runs/latest points at)
#   MODERN_LLM_RUNS=/scratch/runs bash speedrun.sh ...     # runs somewhere other than ./runs
#
# A thin wrapper: set up the environment when missing or stale (scripts/setup_env.sh: .venv with the torch build for
# this machine; MODERN_LLM_PYTHON=... to use your own), then papermill nbs/speedrun.ipynb -> runs/<run_id>/speedrun.ipynb.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] || usage 2
name=$1; shift
case "$name" in
  -h|--help) usage 0 ;;
  smoke) preset=smoke ;;
  local) preset=local_rtx3060 ;;
  tacc) preset=tacc_h100 ;;
  tacc-smoke) preset=tacc_smoke ;;
  *) preset=$name ;;
esac

# --- environment: set up or repair .venv when missing or stale (a no-op when good; scripts/setup_env.sh) ----------
# MODERN_LLM_PYTHON=/path/to/python uses an environment you manage yourself (conda, cluster modules) as it is.
if [ -n "${MODERN_LLM_PYTHON:-}" ]; then
  py=$MODERN_LLM_PYTHON
  "$py" -c "import torch, papermill, modern_llm" 2>/dev/null || {
    echo "error: MODERN_LLM_PYTHON=$py cannot import torch, papermill and modern_llm; pip install -e . there first" >&2; exit 2; }
else
  bash scripts/setup_env.sh || exit $?
  py=${MODERN_LLM_VENV:-$PWD/.venv}/bin/python
fi
# the -p arguments must parse, the preset with its '-p overrides' must load and '-p stages' must name stage notebooks
# (a typo fails here, naming the key, before a run directory exists); the preset tells what hardware it expects
read -r device num_gpus < <("$py" -c "
import sys
from modern_llm.config import load_preset
from modern_llm.errors import ModernLLMError
from modern_llm.orchestrate import as_list, default_stages_dir, stage_notebook
a, params = sys.argv[2:], {}
while a:   # papermill's '-p NAME VALUE' / '-r NAME VALUE', as modern_llm.progress reads them
    if len(a) < 3 or a[0] not in ('-p', '--parameters', '-r', '--parameters_raw'):
        got = ' '.join(a); sys.exit(f'error: expected -p NAME VALUE or -r NAME VALUE, got: {got}')
    params[a[1]], a = a[2], a[3:]
try:
    p = load_preset(sys.argv[1], as_list(params.get('overrides', '')))
    for s in as_list(params.get('stages', '')): stage_notebook(s, default_stages_dir())
except (ModernLLMError, FileNotFoundError) as e: sys.exit(f'error: {e}')
print(p.hardware.device, p.hardware.num_gpus)" "$preset" "$@") || exit 2
if [ "$device" != cpu ] && ! "$py" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  if [ "${MODERN_LLM_ALLOW_CPU:-0}" != 1 ]; then
    echo "error: preset $preset expects a GPU (hardware.device=$device) but torch sees none (CPU build of torch?);" >&2
    echo "  use 'bash speedrun.sh smoke' here, or MODERN_LLM_ALLOW_CPU=1 to run it on the CPU anyway" >&2
    exit 2
  fi
fi
[ "$num_gpus" -gt 1 ] && echo "note: preset $preset asks for $num_gpus GPUs; the notebook speedrun trains in one process (use scripts/tacc/submit_speedrun.sh for torchrun)"
# the data mirror: the package's one rule (modern_llm.data.default_mirror: $MODERN_LLM_DATA, else ../shared/data
# beside the checkout, else the hub), the same the CLI and every stage use
mirror=$("$py" -c "
import sys
from modern_llm.data import default_mirror
from modern_llm.errors import ModernLLMError
try: m = default_mirror()
except ModernLLMError as e: sys.exit(f'error: {e}')
print(m or '')") || exit 2
if [ -n "$mirror" ]; then
  export MODERN_LLM_DATA="$mirror"; echo "data: mirror $mirror"
else
  echo "data: no mirror (MODERN_LLM_DATA unset or 'hub'): datasets come from the Hugging Face hub, which needs network access;"
  echo "      'modern-llm data pull --preset $preset --mirror DIR' makes a mirror where the hub is reachable"
fi

# --- run id: RUN_ID, else <runs>/latest when resuming, else a new one ------------------------------
runs=${MODERN_LLM_RUNS:-$PWD/runs}
resume=0; prev=""
for a in "$@"; do [ "$prev" = resume ] && [ "$a" = True ] && resume=1; [ "$a" = resume ] && prev=resume || prev=""; done
# the package checks a given id (a plain name), follows latest only when it is a run's symlink, and claims a new id
# atomically (two speedruns started in the same second get two directories)
run_id=$("$py" -c "
import sys
from modern_llm.errors import ModernLLMError
from modern_llm.orchestrate import claim_run_id, latest_run_id
from modern_llm.runs import check_run_id
runs, preset, given, resume = sys.argv[1:]
try: print(check_run_id(given) if given else latest_run_id(runs) if resume == '1' else claim_run_id(runs, preset))
except ModernLLMError as e: sys.exit(f'error: {e}')" "$runs" "$preset" "${RUN_ID:-}" "$resume") || exit 2
run="$runs/$run_id"
mkdir -p "$run"
echo "speedrun: preset $preset -> $run (stage logs: $run/notebooks/<stage>.log)"

# the driver (12b_progress) runs papermill with quiet kernels; the notebook prints live progress and where the report
# is (only when this run rendered one); Ctrl-C ends in one line naming the interrupted stage and the resume command
exec "$py" -m modern_llm.progress "$run" -p preset "$preset" -p run_id "$run_id" -p runs_dir "$runs" "$@"
