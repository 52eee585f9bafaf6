#!/bin/bash
#SBATCH --job-name=modern-llm-speedrun
#SBATCH --nodes=1                  # pretraining uses every node (torchrun); the later stages run on the first one
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=48:00:00
#SBATCH --partition=gpu-h100
#SBATCH --signal=USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=modern-llm-speedrun-%j.out
# The whole pipeline on SLURM: pretraining with torchrun on all GPUs, then `bash speedrun.sh TARGET -p resume True`
# (SFT, DPO, verifier, evaluation, report; the pretrain stage finds its work done and only re-exports).
#
#   bash scripts/tacc/submit_speedrun.sh [sbatch args]              # TARGET=tacc (preset tacc_h100)
#   TARGET=tacc-smoke bash scripts/tacc/submit_speedrun.sh -t 01:00:00
#
# Settings: TARGET (speedrun.sh's first argument: tacc, tacc-smoke or a preset name), RUN_ID (default
# speedrun-$PRESET; a requeued job continues the same run), plus those in common.sh.
set -euo pipefail
TARGET=${TARGET:-tacc}
case "$TARGET" in tacc) PRESET=tacc_h100 ;; tacc-smoke) PRESET=tacc_smoke ;; *) PRESET=$TARGET ;; esac
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$REPO/scripts/tacc/common.sh"
RUN_ID=${RUN_ID:-speedrun-$PRESET}
RUNS=$ROOT/runs
RUN_DIR=$RUNS/$RUN_ID
export TARGET PRESET RUN_ID REPO

if [ -z "${SLURM_JOB_ID:-}" ]; then submit_from_login "$REPO/scripts/tacc/submit_speedrun.sh" "$@"; exit 0; fi

job_setup
mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/checkpoints/base/model.safetensors" ]; then
  rc=0
  run_torchrun modern-llm train pretrain --preset "$PRESET" --run-dir "$RUN_DIR" --resume || rc=$?
  finish "$rc" "$RUN_DIR"
fi
# The later stages: one process on the first node, a job step of its own so that it gets the USR1 warning too.
rc=0
srun --nodes=1 --ntasks=1 --kill-on-bad-exit=1 bash -c 'trap "" USR1; exec "$@"' usr1-ignored \
  env RUN_ID="$RUN_ID" MODERN_LLM_RUNS="$RUNS" bash "$REPO/speedrun.sh" "$TARGET" -p resume True || rc=$?
finish "$rc" "$RUN_DIR"
echo "speedrun done: $RUN_DIR/report"
