# Shared by submit_pretrain.sh and submit_speedrun.sh (sourced, not run). Settings come from the environment:
#   PRESET          preset name (default set by the caller)
#   REPO            the checkout (default: the directory sbatch was called from)
#   SCRATCH         TACC's scratch file system; runs, data and caches live under $SCRATCH/modern-llm
#   MODERN_LLM_DATA the data mirror (default $SCRATCH/modern-llm/data), pulled on the login node
#   VENV            the virtual environment (default $REPO/.venv)
#   MODULES         modules to load (default "cuda python3"; e.g. MODULES="gcc cuda/12.4 python3/3.11"; MODULES= for
#                   none, on a machine without Lmod such as scripts/slurm_local)
#   GPUS_PER_NODE   torchrun workers per node (default $SLURM_GPUS_ON_NODE, else 1)
#   RDZV_PORT       torchrun's rendezvous port on the first node (default 20000 + job id mod 20000, so that two jobs
#                   sharing a node do not collide on one port)

REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ ! -f "$REPO/pyproject.toml" ] || [ ! -d "$REPO/modern_llm" ]; then
  echo "error: REPO=$REPO is not a modern-llm checkout; submit from the checkout or set REPO" >&2; exit 2
fi
: "${SCRATCH:?SCRATCH is not set (on TACC it is; elsewhere point it at a large shared file system)}"
ROOT=$SCRATCH/modern-llm
export MODERN_LLM_DATA=${MODERN_LLM_DATA:-$ROOT/data}
export HF_HOME=${HF_HOME:-$ROOT/hf_home}
VENV=${VENV:-$REPO/.venv}
MODULES=${MODULES-cuda python3}                                 # set but empty: load nothing

load_env() {
  if [ -n "$MODULES" ]; then
    if ! command -v module >/dev/null 2>&1 && [ -f /etc/profile ]; then . /etc/profile; fi  # Lmod in batch shells
    # shellcheck disable=SC2086  # MODULES is a list
    module load $MODULES
  fi
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
  RDZV_PORT=${RDZV_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
  echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): preset $PRESET, $NNODES node(s) x $GPUS GPU(s), master $MASTER_ADDR"
  # a preset that does not load (a typo in a key) fails here in one line, exit 2, before any worker starts; a failed
  # job is never requeued
  if ! modern-llm preset show "$PRESET" >/dev/null; then
    echo "error: preset $PRESET does not load (the line above names the key); job not started, not requeued" >&2; exit 2
  fi
  STARTED=$(mktemp "${TMPDIR:-/tmp}/modern-llm-job.XXXXXX")         # checkpoints newer than this were written by this job
  trap on_notice USR1
}

# The time-limit notice. SLURM sends `--signal=USR1@N` to the processes of the job's steps only (what srun started),
# not to this batch shell; `--signal=B:USR1@N` sends it to the batch shell only. It checks time limits about every
# 30 s, so the notice comes between N+30 and N s before the limit, and it comes once. The workers listen for USR1 only
# while a training loop runs (before that they import, tokenize, build shards; after it they evaluate and export), so
# a notice sent straight to the step is lost when it lands outside that window, and the job then dies at its limit
# without a checkpoint or a requeue (a local SLURM showed it: a 3-minute job whose notice came during start-up).
# Hence the scripts ask for `B:USR1@N`: this shell traps it and passes USR1 on to the running step
# (`scancel --signal=USR1 JOB`, steps only) every NOTICE_EVERY [5] s until the step ends, so the workers get it as soon
# as they listen. A preemption notice sent to the steps directly (`scancel --signal=USR1 JOB`) still works as before.
# Steps run in the background with `wait`, because bash runs a trap only between commands and `wait` returns at once.
NOTICE=""
on_notice() {
  if [ -z "$NOTICE" ]; then echo "notice (USR1) at $(date +%T): passing it on to the running step until it stops"; fi
  NOTICE=$(date +%s)
  forward_notice
}
forward_notice() {
  [ -n "$NOTICE" ] && [ -n "${STEP_PID:-}" ] || return 0
  ( while kill -0 "$STEP_PID" 2>/dev/null; do
      scancel --signal=USR1 "$SLURM_JOB_ID" >/dev/null 2>&1 || true; sleep "${NOTICE_EVERY:-5}"
    done ) &
}
in_step() {  # in_step SRUN_ARGS... : srun a job step; returns its exit code (passing a USR1 notice on to it)
  local rc
  srun "$@" &
  STEP_PID=$!
  forward_notice                                   # a notice that came between two steps goes to the next one
  while true; do
    rc=0; wait "$STEP_PID" || rc=$?
    kill -0 "$STEP_PID" 2>/dev/null || break       # the step ended (not just a trap interrupting `wait`)
  done
  STEP_PID=""
  return "$rc"
}

# srun one torchrun per node. The notice reaches every process of the step; torchrun itself would die of it (it is
# not one of the signals it handles), so it runs with USR1 ignored, which its workers inherit until the trainer
# installs its handler: they finish the current step, rank 0 saves a checkpoint, all exit 0, and torchrun exits 0.
run_torchrun() {  # run_torchrun ARGS... (after torchrun's own options)
  in_step --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c 'trap "" USR1; exec "$@"' usr1-ignored \
    torchrun --nnodes="$NNODES" --nproc_per_node="$GPUS" --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d \
    --rdzv_endpoint="$MASTER_ADDR:$RDZV_PORT" --no-python "$@"
}

# A checkpoint written during this job with "preempted": true means the trainer stopped on the signal and saved:
# requeue (the next job resumes from it). Anything else is success (rc 0) or a real failure, which is not retried.
# The requeued job keeps its id, runs again with SLURM_RESTART_COUNT=1, 2, ... once the credentials of this run have
# expired (AuthInfo cred_expire, 120 s by default), and appends to the same output file only because of
# `--open-mode=append` (without it every restart truncates the log of the earlier attempts).
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
