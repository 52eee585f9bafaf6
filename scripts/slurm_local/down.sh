#!/bin/bash
# Stop the daemons scripts/slurm_local/up.sh started (by their pid files in the state directory); nothing else.
# The state directory (configuration, logs, job state) stays, so `up.sh` starts the same cluster again.
set -uo pipefail
STATE=${SLURM_LOCAL_DIR:-/tmp/modern-llm-slurm}
for d in slurmd slurmctld munged; do
  f=$STATE/run/$d.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  # the pid file may be stale (reboot, pid reuse): only signal a process that is still that daemon
  if kill -0 "$pid" 2>/dev/null && grep -q "$d" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    echo "slurm_local: stopped $d ($pid)"
  fi
  rm -f "$f"
done
