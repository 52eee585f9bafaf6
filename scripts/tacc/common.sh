# Shared by submit_pretrain.sh and submit_speedrun.sh (sourced, not run). Settings come from the environment:
#   PRESET          preset name (default set by the caller)
#   REPO            the checkout (default: the directory sbatch was called from)
#   SCRATCH         TACC's scratch file system; runs, data and caches live under $SCRATCH/modern-llm
#   MODERN_LLM_DATA the data mirror (default $SCRATCH/modern-llm/data), pulled on the login node
#   VENV            the virtual environment (default $REPO/.venv)
#   MODULES         modules to load (default "cuda python3"; e.g. MODULES="gcc cuda/12.4 python3/3.11")
#   GPUS_PER_NODE   torchrun workers per node (default $SLURM_GPUS_ON_NODE, else 1)

REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ ! -f "$REPO/pyproject.toml" ] || [ ! -d "$REPO/modern_llm" ]; then
  echo "error: REPO=$REPO is not a modern-llm checkout; submit from the checkout or set REPO" >&2; exit 2
fi
: "${SCRATCH:?SCRATCH is not set (on TACC it is; elsewhere point it at a large shared file system)}"
ROOT=$SCRATCH/modern-llm
export MODERN_LLM_DATA=${MODERN_LLM_DATA:-$ROOT/data}
export HF_HOME=${HF_HOME:-$ROOT/hf_home}
VENV=${VENV:-$REPO/.venv}
MODULES=${MODULES:-cuda python3}

load_env() {
  if ! command -v module >/dev/null 2>&1 && [ -f /etc/profile ]; then . /etc/profile; fi  # Lmod in batch shells
  # shellcheck disable=SC2086  # MODULES is a list
  module load $MODULES
  if [ ! -f "$VENV/bin/activate" ]; then
    echo "error: no virtual environment at $VENV (set VENV, or create it: python3 -m venv $VENV && $VENV/bin/pip install torch && $VENV/bin/pip install -e '$REPO')" >&2
    exit 2
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
}

# On a login node (no SLURM_JOB_ID): pull the data mirror (compute nodes may have no internet), then submit "$0".
submit_from_login() {  # submit_from_login SCRIPT [sbatch args...]
  local script=$1; shift
  load_env
  echo "login node: pulling the data of preset $PRESET into $MODERN_LLM_DATA"
  modern-llm data pull --preset "$PRESET" --mirror "$MODERN_LLM_DATA"
  echo "submitting $script (preset $PRESET)"
  sbatch --chdir="$REPO" "$@" "$script"
}

job_setup() {
  load_env
  export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1                  # the mirror is local; never wait for the hub
  MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  export MASTER_ADDR
  NNODES=${SLURM_NNODES:-1}
  GPUS=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
  echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): preset $PRESET, $NNODES node(s) x $GPUS GPU(s), master $MASTER_ADDR"
  STARTED=$(mktemp "${TMPDIR:-/tmp}/modern-llm-job.XXXXXX")         # checkpoints newer than this were written by this job
}

# srun one torchrun per node. SLURM sends --signal=USR1 to every process of the step; torchrun itself would die of it
# (it is not one of the signals it handles), so it runs with USR1 ignored. The workers install their own handler: they
# finish the current step, save a checkpoint and exit 0, and torchrun then exits 0 too.
run_torchrun() {  # run_torchrun ARGS... (after torchrun's own options)
  srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c 'trap "" USR1; exec "$@"' usr1-ignored \
    torchrun --nnodes="$NNODES" --nproc_per_node="$GPUS" --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d \
    --rdzv_endpoint="$MASTER_ADDR:29500" --no-python "$@"
}

# A checkpoint written during this job with "preempted": true means the trainer stopped on the signal and saved:
# requeue (the next job resumes from it). Anything else is success (rc 0) or a real failure, which is not retried.
finish() {  # finish RC RUN_DIR
  local rc=$1 run_dir=$2 f
  for f in $(find "$run_dir/train" -name trainer_state.json -newer "$STARTED" 2>/dev/null); do
    if grep -q '"preempted": true' "$f"; then
      echo "preempted: $(dirname "$f") saved; requeueing job $SLURM_JOB_ID"
      rm -f "$STARTED"; scontrol requeue "$SLURM_JOB_ID"; exit 0
    fi
  done
  rm -f "$STARTED"
  if [ "$rc" -ne 0 ]; then echo "failed (exit $rc); not requeued" >&2; exit "$rc"; fi
}
