#!/bin/bash
#SBATCH --job-name=modern-llm-speedrun
#SBATCH --nodes=1                  # pretraining uses every node (torchrun); the later stages run on the first one
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=48:00:00
#SBATCH --partition=gpu-h100
#SBATCH --signal=B:USR1@120        # to this shell, which passes it on to the running step (common.sh)
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=modern-llm-speedrun-%j.out
# The whole pipeline on SLURM: pretraining with torchrun on all GPUs, then `bash speedrun.sh TARGET -p resume True`
# (SFT, DPO, verifier, evaluation, report; the pretrain stage finds its work done and only re-exports).
#
#   bash scripts/tacc/submit_speedrun.sh [sbatch args]              # TARGET=tacc (preset tacc_h100)
#   TARGET=tacc-smoke bash scripts/tacc/submit_speedrun.sh -t 01:00:00
#
# Settings: TARGET (speedrun.sh's first argument: tacc, tacc-smoke, a preset name or a preset file), RUN_ID (default
# speedrun-PRESET; a requeued job continues the same run), SPEEDRUN_ARGS (more papermill arguments for speedrun.sh,
# e.g. "-p stages pretrain,sft"), plus those in common.sh.
set -euo pipefail
TARGET=${TARGET:-tacc}
case "$TARGET" in tacc) PRESET=tacc_h100 ;; tacc-smoke) PRESET=tacc_smoke ;; *) PRESET=$TARGET ;; esac
SPEEDRUN_ARGS=${SPEEDRUN_ARGS:-}
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$REPO/scripts/tacc/common.sh"
RUN_ID=${RUN_ID:-speedrun-$(basename "${PRESET%.yaml}")}                   # a preset file: its name
RUNS=$ROOT/runs
RUN_DIR=$RUNS/$RUN_ID
export TARGET PRESET RUN_ID REPO SPEEDRUN_ARGS

if [ -z "${SLURM_JOB_ID:-}" ]; then submit_from_login "$REPO/scripts/tacc/submit_speedrun.sh" "$@"; exit 0; fi

# The pretrain stage's entry in the run's stages.json, as `bash speedrun.sh` records the stages it runs itself (status,
# start, end, wall time summed over the attempts of a requeued job), so that the report counts this pretraining too.
record_pretrain() {  # record_pretrain STATUS START_EPOCH
  python - "$RUN_DIR" "$1" "$2" <<'PY' || echo "warning: could not record the pretrain stage in $RUN_DIR/stages.json" >&2
import sys, time
from modern_llm.orchestrate import read_stages, stages_file
from modern_llm.runs import write_json
run, status, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
rec = read_stages(run)
e = rec["stages"].setdefault("pretrain", {})
stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
e.update(status=status, action="ran (torchrun)", started=e.get("started") or stamp(t0), finished=stamp(time.time()),
         wall_s=round(e.get("wall_s", 0) + time.time() - t0, 2), notebook=None, error=None)
write_json(stages_file(run), rec)
PY
}

job_setup
mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/checkpoints/base/model.safetensors" ]; then
  rc=0; t0=$(date +%s)
  run_torchrun modern-llm train pretrain --preset "$PRESET" --run-dir "$RUN_DIR" --resume || rc=$?
  if [ -f "$RUN_DIR/checkpoints/base/model.safetensors" ]; then record_pretrain done "$t0"
  elif [ "$rc" -eq 0 ]; then record_pretrain interrupted "$t0"        # preempted: saved, requeued below
  else record_pretrain failed "$t0"; fi
  finish "$rc" "$RUN_DIR"
fi
# The later stages: one process on the first node, a job step of its own so that it gets the USR1 warning too.
# MODERN_LLM_PYTHON: speedrun.sh uses the environment this job loaded as it is (it would otherwise set up or repair
# .venv, which needs the internet that compute nodes often lack, and races other jobs sharing the checkout).
rc=0
# shellcheck disable=SC2086  # SPEEDRUN_ARGS is a list
in_step --nodes=1 --ntasks=1 --kill-on-bad-exit=1 bash -c 'trap "" USR1; exec "$@"' usr1-ignored \
  env RUN_ID="$RUN_ID" MODERN_LLM_RUNS="$RUNS" MODERN_LLM_PYTHON="$(command -v python || command -v python3)" \
  bash "$REPO/speedrun.sh" "$TARGET" -p resume True $SPEEDRUN_ARGS || rc=$?
finish "$rc" "$RUN_DIR"
echo "speedrun done: $RUN_DIR"
