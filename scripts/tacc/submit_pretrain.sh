#!/bin/bash
#SBATCH --job-name=modern-llm-pretrain
#SBATCH --nodes=1                  # more nodes: sbatch -N 4 (or run this script on the login node: bash ... -N 4)
#SBATCH --ntasks-per-node=1        # one torchrun per node; it starts one worker per GPU
#SBATCH --gpus-per-node=4          # match GPUS_PER_NODE; drop on systems that allocate whole nodes without --gpus
#SBATCH --time=48:00:00
#SBATCH --partition=gpu-h100
#SBATCH --signal=B:USR1@120        # 2-2.5 min before the limit, to this shell, passed on to the step (common.sh)
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=modern-llm-pretrain-%j.out
# Multi-node pretraining with torchrun DDP, resumable across jobs.
#
#   bash scripts/tacc/submit_pretrain.sh [sbatch args]    # on the login node: pull the data mirror, then sbatch itself
#   PRESET=tacc_smoke bash scripts/tacc/submit_pretrain.sh -N 1 -t 00:30:00 -p gpu-h100
#
# Settings (environment): PRESET (default tacc_h100), RUN_DIR (default $SCRATCH/modern-llm/runs/$PRESET), and those
# in common.sh (REPO, SCRATCH, MODERN_LLM_DATA, VENV, MODULES, GPUS_PER_NODE).
set -euo pipefail
PRESET=${PRESET:-tacc_h100}
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
. "$REPO/scripts/tacc/common.sh"
RUN_DIR=${RUN_DIR:-$ROOT/runs/$PRESET}
export PRESET RUN_DIR REPO

if [ -z "${SLURM_JOB_ID:-}" ]; then submit_from_login "$REPO/scripts/tacc/submit_pretrain.sh" "$@"; exit 0; fi

job_setup
mkdir -p "$RUN_DIR"
rc=0
run_torchrun modern-llm train pretrain --preset "$PRESET" --run-dir "$RUN_DIR" --resume || rc=$?
finish "$rc" "$RUN_DIR"
echo "pretraining done: $RUN_DIR/checkpoints/base"
