#!/usr/bin/env bash
# Re-records the parser fixtures in this folder from the running mini cluster (as root):
#   squeue.txt      a running job holding the acc node (its cores and GPUs) and a pending one
#   scontrol_job.txt  that running job as scontrol show job -o prints it
#   sacct.txt       cancelled, failed (exit 3) and walltime-ended jobs
#   sacct_ends.txt  preempted, out of memory (no cgroups: killed above --mem) and node failure
#   workbench_jobs.txt  a session's job, its Dask workers (one running, one queued), notebook jobs
#                   done and failed, one whose name holds "|" (sacct with the unit separator);
#                   `record.sh workbench` records only this one, in a few seconds
#   sinfo_*.txt, sacctmgr_*.txt, scontrol_*.txt  what the controller and SLURM's database say of
#                   the cluster (partitions, QoS, associations, accounts, users, a node, the
#                   configuration), read only: `record.sh settings` records only these, submits
#                   no job and changes nothing
# It takes a few minutes (the walltime job runs its minute out) and fails a gpp node for real
# (minicluster.sh fail-node, then restore-node): run it on a cluster no one uses. The field lists
# are the ones slurm/parsers.py reads, printed by slurm/formats.py (standard library only).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
format() { python3 "$HERE/../../slurm/formats.py" "$1"; }

# The settings, as the doctor, the extension helper, the spawn form and aifactory-workshop read them.
record_settings() {
  sinfo -h -o "$(format sinfo-partitions)" > "$HERE/sinfo_partitions.txt"
  sacctmgr -n -P show qos format="$(format qos-names)" > "$HERE/sacctmgr_qos_names.txt"
  sacctmgr -n -P show qos interactive format="$(format qos-wall)" > "$HERE/sacctmgr_qos_wall.txt"
  sacctmgr -n -P show qos format="$(format qos-limits)" > "$HERE/sacctmgr_qos_limits.txt"
  sacctmgr -n -P show user alice,instructor,nosuchuser withassoc format="$(format associations)" > "$HERE/sacctmgr_associations.txt"
  sacctmgr -n -P show assoc where user=alice account=ehpc01 format="$(format assoc-walls)" > "$HERE/sacctmgr_assoc_walls.txt"
  sacctmgr -n -P show assoc where user=instructor format="$(format accounts)" > "$HERE/sacctmgr_accounts.txt"
  sacctmgr -n -P show user format="$(format users)" > "$HERE/sacctmgr_users.txt"
  sacctmgr -n -P show user alice format="$(format default-account)" > "$HERE/sacctmgr_default_account.txt"
  scontrol show partition -o > "$HERE/scontrol_partitions.txt"
  scontrol show node mn5-g01 -o > "$HERE/scontrol_node.txt"
  scontrol show config > "$HERE/scontrol_config.txt"
  echo "recorded: the settings (sinfo, sacctmgr, scontrol show)"
}
if [ "${1:-}" = settings ]; then record_settings; exit 0; fi
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
scontrol show job "$run" -o > "$HERE/scontrol_job.txt"  # the extension helper reads its account
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
record_settings
echo "recorded: squeue ($run $pend), sacct ($cancelled $failed $timeout), ends ($victim $oom $lost)"
