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
# A thin wrapper: check the environment, then papermill nbs/speedrun.ipynb -> runs/<run_id>/speedrun.ipynb.
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

# --- environment check ---------------------------------------------------------------------------
if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=$(command -v python3 || true); fi
if [ -z "$py" ] || ! "$py" -c "import torch, papermill, modern_llm" 2>/dev/null; then
  echo "error: no Python with torch, papermill and modern_llm. Set up once:" >&2
  echo "  python3 -m venv .venv && .venv/bin/pip install torch && .venv/bin/pip install -e '.[dev]'" >&2
  exit 2
fi
papermill=$(dirname "$py")/papermill; [ -x "$papermill" ] || papermill=$(command -v papermill)
# the preset must load (a typo fails here, naming the key) and tells what hardware it expects
read -r device num_gpus < <("$py" -c "
import sys
from modern_llm.config import load_preset, PresetError
try: p = load_preset(sys.argv[1])
except PresetError as e: sys.exit(f'error: {e}')
print(p.hardware.device, p.hardware.num_gpus)" "$preset") || exit 2
if [ "$device" != cpu ] && ! "$py" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  if [ "${MODERN_LLM_ALLOW_CPU:-0}" != 1 ]; then
    echo "error: preset $preset expects a GPU (hardware.device=$device) but torch sees none (CPU build of torch?);" >&2
    echo "  use 'bash speedrun.sh smoke' here, or MODERN_LLM_ALLOW_CPU=1 to run it on the CPU anyway" >&2
    exit 2
  fi
fi
[ "$num_gpus" -gt 1 ] && echo "note: preset $preset asks for $num_gpus GPUs; the notebook speedrun trains in one process (use scripts/tacc/submit_speedrun.sh for torchrun)"
if [ -n "${MODERN_LLM_DATA:-}" ]; then
  echo "data: mirror $MODERN_LLM_DATA"
elif [ -d ../shared/data ]; then
  export MODERN_LLM_DATA; MODERN_LLM_DATA=$(cd ../shared/data && pwd); echo "data: mirror $MODERN_LLM_DATA (found beside the checkout)"
else
  echo "data: no mirror (MODERN_LLM_DATA unset): datasets come from the Hugging Face hub, which needs network access;"
  echo "      'modern-llm data pull --preset $preset --mirror DIR' makes a mirror where the hub is reachable"
fi

# --- run id: RUN_ID, else <runs>/latest when resuming, else a new one ------------------------------
runs=${MODERN_LLM_RUNS:-$PWD/runs}
resume=0; prev=""
for a in "$@"; do [ "$prev" = resume ] && [ "$a" = True ] && resume=1; [ "$a" = resume ] && prev=resume || prev=""; done
if [ -n "${RUN_ID:-}" ]; then run_id=$RUN_ID
elif [ $resume = 1 ] && [ -L "$runs/latest" ]; then run_id=$(basename "$(readlink "$runs/latest")")
else run_id="$(date +%Y%m%d-%H%M%S)-$(basename "${preset%.yaml}")"; fi
run="$runs/$run_id"
mkdir -p "$run"
echo "speedrun: preset $preset -> $run (stage logs: $run/notebooks/<stage>.log)"

if "$papermill" nbs/speedrun.ipynb "$run/speedrun.ipynb" -p preset "$preset" -p run_id "$run_id" -p runs_dir "$runs" \
     --no-progress-bar --stdout-file - "$@"; then
  if [ -f "$run/report/report.md" ]; then echo "report: $run/report/report.md (also report.html, report.pdf)"
  else echo "done: $run (no report: the report stage was not among the stages run)"; fi
else
  rc=$?
  echo "speedrun failed (exit $rc): the error is above and in $run/speedrun.ipynb; per-stage status in $run/stages.json" >&2
  exit $rc
fi
