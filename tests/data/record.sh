#!/usr/bin/env bash
# Re-records the parser fixtures in this folder from the running mini cluster (as root):
#   squeue.txt      a running job holding the acc node (its cores and GPUs) and a pending one
#   sacct.txt       cancelled, failed (exit 3) and walltime-ended jobs
#   sacct_ends.txt  preempted, out of memory (no cgroups: killed above --mem) and node failure
#   workbench_jobs.txt  a session's job, its Dask workers (one running, one queued), notebook jobs
#                   done and failed, one whose name holds "|" (sacct with the unit separator);
#                   `record.sh workbench` records only this one, in a few seconds
# It takes a few minutes (the walltime job runs its minute out) and fails a gpp node for real
# (minicluster.sh fail-node, then restore-node): run it on a cluster no one uses. The field lists
# are the ones slurm/parsers.py reads, printed by slurm/formats.py (standard library only).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
format() { python3 "$HERE/../../slurm/formats.py" "$1"; }
CLUSTER_SH="$HERE/../../cluster/minicluster.sh"
GPP_NODE=mn5-g01
ACC_NODE=mn5-a01
FAILED=""
NAME=aifw-record
SQUEUE_FORMAT=$(format squeue)
SACCT_FIELDS=$(format sacct)
CORES=$(sinfo -h -n "$GPP_NODE" -o %c)
ACC_CORES=$(sinfo -h -n "$ACC_NODE" -o %c)
ACC_GPUS=$(sinfo -h -n "$ACC_NODE" -o %G | sed 's/.*://')

as() { local user=$1; shift; sudo -u "$user" -- "$@"; }
submit() { local user=$1; shift; as "$user" sbatch --parsable --no-requeue --job-name=$NAME --output=/dev/null --chdir=/tmp "$@" | cut -d';' -f1; }
ended() {  # wait until every job named has left the controller's queue
  for _ in $(seq 600); do [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0; sleep 0.5; done
  echo "jobs $* did not end" >&2; return 1
}
running() { for _ in $(seq 120); do [ "$(squeue -h -j "$1" -o %T)" = RUNNING ] && return 0; sleep 0.5; done; return 1; }
accounted() { sleep 2; sacct -n -P -j "$(IFS=,; echo "$*")" -o "$SACCT_FIELDS"; }
trap 'scancel --name=$NAME 2>/dev/null || true; [ -z "$FAILED" ] || bash "$CLUSTER_SH" restore-node "$FAILED"' EXIT

# The jobs the workbench starts besides JupyterLab, as spawners/workbench_jobs.py reads them
# (the session's job is named $NAME here, as a hub's job_name).
record_workbench() {
  local session worker queued done broken piped fields
  fields=$(format workbench)
  session=$(submit alice --mem=100M --time=30 --wrap "sleep 300"); running "$session"
  worker=$(as alice sbatch --parsable --job-name="aifw-dask-$session" --output=/dev/null --chdir=/tmp --mem=100M --cpus-per-task=2 --wrap "sleep 300")
  queued=$(as alice sbatch --parsable --job-name="aifw-dask-$session" --output=/dev/null --chdir=/tmp --mem=100M --begin=now+1hour --wrap "sleep 300")
  done=$(as alice sbatch --parsable --job-name=aifw-nb-analysis --output=/dev/null --chdir=/tmp --mem=100M --wrap "sleep 2")
  broken=$(as alice sbatch --parsable --job-name=aifw-nb-broken --output=/dev/null --chdir=/tmp --mem=100M --wrap "exit 1")
  piped=$(as alice sbatch --parsable --job-name="aifw-nb-a|b" --output=/dev/null --chdir=/tmp --mem=100M --wrap "true")
  running "$worker"; ended "$done" "$broken" "$piped"
  sacct -X -n -P --delimiter=$'\x1f' -j "$session,$worker,$queued,$done,$broken,$piped" -o "$fields" > "$HERE/workbench_jobs.txt"
  scancel "$session" "$worker" "$queued"
  echo "recorded: workbench jobs (session $session, workers $worker $queued, notebooks $done $broken $piped)"
}
if [ "${1:-}" = workbench ]; then record_workbench; exit 0; fi

# A running job that holds every core and GPU of the acc node, and one that waits for them.
run=$(submit alice --partition=acc --cpus-per-task="$ACC_CORES" --gres=gpu:"$ACC_GPUS" --mem=500M --wrap "sleep 300")
running "$run"
pend=$(submit bob --partition=acc --account=ehpc02 --cpus-per-task=2 --gres=gpu:1 --mem=500M --wrap "sleep 300")
sleep 3
squeue -h --name=$NAME -o "$SQUEUE_FORMAT" > "$HERE/squeue.txt"
scancel "$run" "$pend"; ended "$run" "$pend"

# Cancelled, failed, walltime.
cancelled=$(submit alice --mem=100M --wrap "sleep 300"); running "$cancelled"; scancel "$cancelled"
failed=$(submit alice --mem=100M --wrap "exit 3")
timeout=$(submit alice --mem=100M --time=1 --wrap "sleep 600")
ended "$cancelled" "$failed" "$timeout"
accounted "$cancelled" "$failed" "$timeout" > "$HERE/sacct.txt"

# Preempted (QoS urgent), out of memory, node failure.
victim=$(submit alice --qos=normal --nodelist="$GPP_NODE" --cpus-per-task="$CORES" --mem=1G --wrap "sleep 300"); running "$victim"
urgent=$(sbatch --parsable --job-name=$NAME --output=/dev/null --chdir=/tmp --qos=urgent --nodelist="$GPP_NODE" --cpus-per-task="$CORES" --mem=1G --wrap "sleep 5" | cut -d";" -f1)
ended "$victim" "$urgent"
oom=$(submit bob --account=ehpc02 --mem=200M --wrap "python3 -c 'x = bytearray(800 * 1024 * 1024); import time; time.sleep(60)'")
ended "$oom"
lost=$(submit alice --mem=100M --wrap "sleep 300"); running "$lost"
FAILED=$(squeue -h -j "$lost" -o %N)
bash "$CLUSTER_SH" fail-node "$FAILED"
ended "$lost"
bash "$CLUSTER_SH" restore-node "$FAILED" && FAILED=""
accounted "$victim" "$oom" "$lost" > "$HERE/sacct_ends.txt"
record_workbench
echo "recorded: squeue ($run $pend), sacct ($cancelled $failed $timeout), ends ($victim $oom $lost)"
