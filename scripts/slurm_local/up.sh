#!/bin/bash
# A one-node SLURM on this machine, for trying the cluster path (scripts/tacc/) and for tests/test_slurm_real.py.
#
#   sudo bash scripts/slurm_local/up.sh            # install (Debian/Ubuntu), configure, start; prints the export line
#   export SLURM_CONF=/tmp/modern-llm-slurm/slurm.conf
#   sbatch -p local ...; squeue; scancel ...
#   sudo bash scripts/slurm_local/down.sh          # stop the daemons this script started
#
# Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are missing, writes a configuration for
# one node (this host, its real CPU count and memory, partition "local") into the state directory, creates a munge
# key there and starts munged, slurmctld and slurmd with pid files there. No systemd and no cgroups:
# proctrack/linuxproc (processes tracked through /proc) and task/none. Nothing under /etc is changed; the daemons
# and every client find the configuration through SLURM_CONF. Idempotent: running daemons are left alone; it
# returns once the node is idle. Needs root (slurmd starts jobs as the submitting user).
#
# Settings (environment): SLURM_LOCAL_DIR [/tmp/modern-llm-slurm], SLURM_LOCAL_PORT [16817; slurmd uses +1],
# SLURM_LOCAL_CRED_EXPIRE [5]: seconds a job credential lives. SLURM holds a requeued job back until the credentials
# of its previous run have expired (AuthInfo cred_expire, 120 s by default); lowered here so that a requeued test job
# runs again within seconds. A real cluster keeps its own (usually the default), so count on ~2 minutes there.
set -euo pipefail
STATE=${SLURM_LOCAL_DIR:-/tmp/modern-llm-slurm}
PORT=${SLURM_LOCAL_PORT:-16817}
CRED_EXPIRE=${SLURM_LOCAL_CRED_EXPIRE:-5}
CONF=$STATE/slurm.conf
export SLURM_CONF=$CONF

die() { echo "slurm_local: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (apt-get, and slurmd starts jobs as their user): run it with sudo"

missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  echo "slurm_local: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
PATH=/usr/sbin:/sbin:$PATH

mkdir -p "$STATE"/{ctld,spool,log,run,munge}
chmod 755 "$STATE/munge"                       # the socket must be reachable by job users; the key stays 0600
HOST=$(hostname -s)
# the node as slurmd sees it (a node configured with more CPUs or memory than slurmd finds is marked invalid; `nproc`
# would count only the CPUs this process may run on)
DETECTED=$(slurmd -C 2>/dev/null | head -n 1)
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$DETECTED"); CPUS=${CPUS:-$(getconf _NPROCESSORS_ONLN)}
MEM_MB=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$DETECTED")
MEM_MB=$(( ${MEM_MB:-$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))} * 9 / 10 ))   # a tenth for the system

# Written every time; when it changed (CPU count, memory, a setting) while the daemons run, they are restarted with it
# (node changes need a restart of slurmctld, not just `scontrol reconfigure`).
cat > "$CONF.tmp" <<CONF
# written by scripts/slurm_local/up.sh: one node, no cgroups, no accounting database
ClusterName=modernllm
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long (job credentials of the previous run expire) before it runs again
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=$CRED_EXPIRE
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# look at pending jobs every 2 s (default 60 s; backfill every 30 s): a requeued job starts soon after its wait
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# finished jobs stay visible to scontrol for 10 minutes (tests read their state and restart count)
MinJobAge=600
# jobs may requeue themselves (scontrol requeue) and be requeued by the system
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=60
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
# OverSubscribe=YES: jobs submitted with --oversubscribe may share CPUs (the tests run light jobs side by side)
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
running() { [ -f "$STATE/run/$1.pid" ] && kill -0 "$(cat "$STATE/run/$1.pid")" 2>/dev/null; }
if cmp -s "$CONF.tmp" "$CONF"; then rm "$CONF.tmp"
else
  if running slurmctld || running slurmd; then
    echo "slurm_local: configuration changed; restarting slurmctld and slurmd"
    for d in slurmd slurmctld; do
      if running "$d"; then
        pid=$(cat "$STATE/run/$d.pid"); kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      fi
    done
  fi
  mv "$CONF.tmp" "$CONF"
fi

if ! running munged; then
  if [ ! -s "$STATE/munge/munge.key" ]; then
    (umask 077; dd if=/dev/urandom of="$STATE/munge/munge.key.tmp" bs=1024 count=1 status=none)
    mv "$STATE/munge/munge.key.tmp" "$STATE/munge/munge.key"
  fi
  # --force: the state directory may sit under a world-writable /tmp, which munged otherwise refuses
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed" \
    || die "munged did not start: see $STATE/log/munged.log"
fi
if ! running slurmctld; then
  slurmctld -f "$CONF" || die "slurmctld did not start: see $STATE/log/slurmctld.log"
fi
if ! running slurmd; then
  slurmd -f "$CONF" -N "$HOST" || die "slurmd did not start: see $STATE/log/slurmd.log"
fi

# wait for the node to be idle (a node left down or drained by an earlier run is resumed)
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mixed|allocated|completing) echo "slurm_local: node $HOST ($CPUS CPUs, ${MEM_MB} MB) is $state; export SLURM_CONF=$CONF"; exit 0 ;;
    down*|drain*|fail*|inval*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
die "node $HOST not idle after 60 s (state: ${state:-none}); see $STATE/log/"
