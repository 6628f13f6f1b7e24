#!/usr/bin/env bash
# The mini supercomputer in a site's shape (cluster/nodes.txt): a login node (this machine: the
# hub's host, with its own munged and PostgreSQL for the hub's database, a SLURM client only), the
# controller's host (slurmctld, slurmdbd, MariaDB, a munged of its own) and compute nodes (one
# slurmd each, the users' software read-only), each a network, UTS and mount namespace of its
# own, joined by a bridge.
#   minicluster.sh start              install what is missing, start what is not running (idempotent)
#   minicluster.sh stop               cancel jobs, stop every daemon, take the cluster network down
#   minicluster.sh status             each daemon's and node's state, and sinfo
#   minicluster.sh fail-node NODE     the node fails: its slurmd is killed, its link is cut
#   minicluster.sh restore-node NODE  the node comes back: link up, slurmd started, back to work
#   minicluster.sh on-node NODE CMD   run CMD on a compute node or the controller's host (its
#                                     network, host name and view of the files)
# State lives under $AIFACTORY_CLUSTER_STATE (default /var/lib/aifactory-cluster);
# SLURM's client configuration goes where SLURM looks by default (/etc/slurm) so sinfo, sacctmgr &
# co work from any root shell; the controller's own (slurmdbd.conf, with the database's password,
# is there alone) is its /etc/slurm, kept in $STATE/controller.  There is no systemd here: daemons
# are started directly.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${AIFACTORY_CLUSTER_STATE:-/var/lib/aifactory-cluster}
CLUSTER=mn5mini
NODES_FILE=$HERE/nodes.txt
BRIDGE=mn5-net
UTS_DIR=/run/aifactory-cluster/uts   # each machine's UTS namespace (its host name), kept by a bind mount
MNT_DIR=/run/aifactory-cluster/mnt   # each machine's mount namespace (its view of the files), likewise
# The shared software stack (the users' venv, root's helpers and SLURM's epilog): the compute nodes
# mount it read-only, as a site's nodes mount its shared filesystem.
SOFTWARE=${AIFACTORY_SOFTWARE:-/opt/aifactory}
HOSTS_BEGIN="# $CLUSTER nodes: begin (written by minicluster.sh)"
HOSTS_END="# $CLUSTER nodes: end"
USERS_GROUP=aifactory-users
ADMINS_GROUP=aifactory-admins   # the hub's admins: never among the users it submits jobs for (Makefile)
DB_SOCKET=/run/mysqld/mysqld.sock
PACKAGES=(munge mariadb-server slurm-wlm slurmctld slurmd slurmdbd slurm-client sudo lmod postgresql)
# The hub's production database: Debian's PostgreSQL, a cluster of our own on a Unix socket
# only (no TCP), where the hub's Unix user is its own role (peer authentication, no password).
PG_DATA=$STATE/postgres
PG_SOCKET_DIR=/run/aifactory-postgres
PG_ROLE=aifactory-hub
PG_DB=jupyterhub
MODULES_DIR=/etc/lmod/modules  # on Lmod's default MODULEPATH: `module avail` in any shell

# nodes.txt's rows: name address partition cores memory_mb gpus features; the login node's
# partition is "-", the controller host's "controller".
node_rows() { awk '!/^#/ && NF' "$NODES_FILE"; }
compute_rows() { node_rows | awk '$3 != "-" && $3 != "controller"'; }
compute_nodes() { compute_rows | awk '{print $1}'; }
node_address() { node_rows | awk -v n="$1" '$1 == n {print $2}'; }
LOGIN_NAME=$(node_rows | awk '$3 == "-" {print $1}')
LOGIN_ADDR=$(node_address "$LOGIN_NAME")
CTL_NAME=$(node_rows | awk '$3 == "controller" {print $1}')
CTL_ADDR=$(node_address "$CTL_NAME")
CTL_ETC=$STATE/controller/etc   # the controller's /etc/slurm

log() { printf '[minicluster] %s\n' "$*"; }
die() { printf '[minicluster] error: %s\n' "$*" >&2; exit 1; }

# Wait until "$@" succeeds, up to $1 seconds; names what it waited for on failure.
wait_for() {
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up within ${seconds}s (logs: $STATE/log)"
}

# A pid file left by a killed daemon may name a recycled pid: check the process's name too
# (pid_alive FILE [NAME], NAME by default the file's).
pid_alive() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${2:-$(basename "$1" .pid)}" ]
}
slurmd_pidfile() { echo "$STATE/run/slurmd-$1.pid"; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# slurm.conf's node lines and gres.conf's, from nodes.txt (one per line, joined by sed's \n).
node_lines() {
  compute_rows | awk '{printf "NodeName=%s NodeAddr=%s NodeHostname=%s CPUs=%s Boards=1 SocketsPerBoard=1 CoresPerSocket=%s ThreadsPerCore=1 RealMemory=%s%s%s State=UNKNOWN\\n",
    $1, $2, $1, $4, $4, $5, ($6 > 0 ? " Gres=gpu:" $6 : ""), ($7 != "-" ? " Features=" $7 : "")}'
}
gres_lines() {
  compute_rows | awk -v dev="$STATE/dev" '$6 > 0 {printf "NodeName=%s Name=gpu File=%s/%s/nvidia[0-%d]\\n", $1, dev, $1, $6 - 1}'
}

CONFIG_CHANGED=0
render() {  # render TEMPLATE DEST MODE OWNER; sets CONFIG_CHANGED when DEST changes
  local tmp partition; tmp=$(mktemp)
  local partitions=()
  for partition in $(compute_rows | awk '{print $3}' | sort -u); do
    partitions+=(-e "s|@NODES:$partition@|$(compute_rows | awk -v p="$partition" '$3 == p {print $1}' | paste -sd,)|g")
  done
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@CTL_NAME@|$CTL_NAME|g" -e "s|@STATE@|$STATE|g" \
      -e "s|@CTL_ADDR@|$CTL_ADDR|g" -e "s|^@NODE_LINES@\$|$(node_lines)|" -e "s|^@GRES_LINES@\$|$(gres_lines)|" \
      "${partitions[@]}" -e "s|@DBPASS@|$(cat "$STATE/dbpass")|g" "$HERE/templates/$1" > "$tmp"
  cmp -s "$tmp" "$2" || CONFIG_CHANGED=1
  install -m "$3" -o "$4" -g "$4" "$tmp" "$2"
  rm -f "$tmp"
}

prepare_state() {
  mkdir -p "$STATE"/{slurmctld,slurmd,log,run,mysql,dev} /etc/slurm /run/munge /run/mysqld
  local name gpus
  while read -r name gpus; do
    mkdir -p "$STATE/slurmd/$name" "$STATE/dev/$name"
    for ((i = 0; i < gpus; i++)); do touch "$STATE/dev/$name/nvidia$i"; done
  done < <(compute_rows | awk '{print $1, $6}')
  chmod 755 "$STATE"
  chown slurm:slurm "$STATE"/{slurmctld,log,run}
  chown munge:munge /run/munge
  touch "$STATE/log/mariadb.log"
  chown mysql:mysql "$STATE/mysql" /run/mysqld "$STATE/log/mariadb.log"
  [ -s "$STATE/dbpass" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/dbpass")
  render slurm.conf.in /etc/slurm/slurm.conf 644 root
  render gres.conf.in /etc/slurm/gres.conf 644 root
  # The controller's host: the same slurm.conf, and slurmdbd.conf there alone. Its folder is root's
  # alone on this disk; the controller reads it as its /etc/slurm (its mount namespace).
  install -d -m 700 "$STATE/controller" && install -d -m 755 "$CTL_ETC"
  render slurm.conf.in "$CTL_ETC/slurm.conf" 644 root
  render gres.conf.in "$CTL_ETC/gres.conf" 644 root
  render slurmdbd.conf.in "$CTL_ETC/slurmdbd.conf" 600 slurm
  rm -f /etc/slurm/slurmdbd.conf  # an older cluster's: the hub's host holds no database password
  mkdir -p "$SOFTWARE"  # before the nodes mount it (the install fills it)
  mkdir -p "$MODULES_DIR" && cp -r "$HERE/modules/." "$MODULES_DIR/"
}

start_munge() {
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  wait_for 10 munged bash -c 'munge -n | unmunge'
}

# The controller's host has its own munged (the cluster's key, its own socket in its /run/munge).
ctl_munge_up() { on_ctl sh -c 'munge -n | unmunge'; }
start_ctl_munge() {
  ctl_munge_up >/dev/null 2>&1 && return 0
  log "starting munged on $CTL_NAME"
  on_ctl runuser -u munge -- /usr/sbin/munged --force --seed-file=/run/munge/munged.seed \
    --log-file="/var/log/munge/munged-$CTL_NAME.log"
  wait_for 10 "munged on $CTL_NAME" ctl_munge_up
}

# MariaDB, slurmdbd and slurmctld run on the controller's host; SLURM's clients reach them across
# the cluster network.
db_up() { on_ctl mariadb-admin --socket="$DB_SOCKET" ping; }

start_mariadb() {
  if ! db_up >/dev/null 2>&1; then
    if [ ! -d "$STATE/mysql/mysql" ]; then
      log "initialising MariaDB in $STATE/mysql"
      on_ctl mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket >"$STATE/log/mariadb-init.log" 2>&1
    fi
    log "starting MariaDB on $CTL_NAME"
    on_ctl setsid runuser -u mysql -- /usr/sbin/mariadbd --datadir="$STATE/mysql" --socket="$DB_SOCKET" \
      --pid-file=/run/mysqld/mariadbd.pid --skip-networking \
      --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for 60 MariaDB db_up
  fi
  on_ctl mariadb --socket="$DB_SOCKET" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$(cat "$STATE/dbpass")';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$(cat "$STATE/dbpass")';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
  pid_alive "$STATE/run/slurmdbd.pid" || { log "starting slurmdbd on $CTL_NAME"; on_ctl /usr/sbin/slurmdbd; }
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

start_slurmctld() {
  pid_alive "$STATE/run/slurmctld.pid" || { log "starting slurmctld on $CTL_NAME"; on_ctl /usr/sbin/slurmctld; }
  wait_for 60 slurmctld scontrol ping
}

# -- the cluster network ----------------------------------------------------------------
# The login node's end is the bridge, with the login node's address. Each other machine (the
# controller's host, each compute node) is a network namespace (/run/netns/NAME: loopback, and
# eth0 on the bridge with its address), a UTS namespace ($UTS_DIR/NAME: its host name) and a
# mount namespace ($MNT_DIR/NAME: its view of the files). Its default route leads into a link that
# ends inside the machine: software that asks which address reaches "the outside" (Dask does) gets
# the machine's own, and no packet can leave the cluster network.
start_network() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$LOGIN_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  mkdir -p "$UTS_DIR" "$MNT_DIR"
  # A mount namespace is kept by a bind mount that must not propagate: the folder is a private mount.
  mountpoint -q "$MNT_DIR" || mount --bind "$MNT_DIR" "$MNT_DIR"
  mount --make-private "$MNT_DIR"
  local name addr
  while read -r name addr; do
    start_machine "$name" "$addr"
    # The shared software stack, read-only: no job, root's epilog included, changes what every node runs.
    mount_ns "$name" "mount --bind '$SOFTWARE' '$SOFTWARE' && mount -o remount,bind,ro '$SOFTWARE'"
  done < <(compute_rows | awk '{print $1, $2}')
  start_machine "$CTL_NAME" "$CTL_ADDR"
  # Its own SLURM configuration and munged socket, and MariaDB's socket that no other host sees.
  mount_ns "$CTL_NAME" "mount --bind '$CTL_ETC' /etc/slurm \
    && mount -t tmpfs -o mode=0755 tmpfs /run/munge && chown munge:munge /run/munge \
    && mount -t tmpfs -o mode=0755 tmpfs /run/mysqld && chown mysql:mysql /run/mysqld"
  write_hosts
}

start_machine() {  # start_machine NAME ADDRESS: its network and host name
  local name=$1 addr=$2
  [ -e "/run/netns/$name" ] || ip netns add "$name"
  # A veth whose other end went with an earlier namespace of this name (one a process still held
  # when the cluster stopped) is made again: the new namespace has no eth0 of its own yet.
  if ! ip -n "$name" link show eth0 >/dev/null 2>&1; then
    ip link del "v-$name" 2>/dev/null || true
    ip link add "v-$name" type veth peer name eth0 netns "$name"
  fi
  ip link set "v-$name" master "$BRIDGE" up
  ip -n "$name" link set lo up
  ip -n "$name" addr replace "$addr/24" dev eth0
  ip -n "$name" link set eth0 up
  ip -n "$name" link show nowhere >/dev/null 2>&1 || ip -n "$name" link add nowhere type veth peer name nowhere-end
  ip -n "$name" link set nowhere up && ip -n "$name" link set nowhere-end up
  ip -n "$name" route replace default dev nowhere src "$addr"
  nsenter --uts="$UTS_DIR/$name" true 2>/dev/null || { touch "$UTS_DIR/$name"; unshare --uts="$UTS_DIR/$name" hostname "$name"; }
}

mount_ns() {  # mount_ns NAME SETUP: the machine's mount namespace, made once by the shell commands SETUP
  local file=$MNT_DIR/$1
  nsenter --mount="$file" true 2>/dev/null && return 0
  touch "$file"
  # A slave of this machine's mounts: what mounts here later (a new /run folder) is seen there too.
  unshare --mount="$file" --propagation slave sh -euc "$2" || { umount "$file" 2>/dev/null; rm -f "$file"; die "$1's mounts: $2"; }
}

# The nodes' names in /etc/hosts (the cluster's DNS): the hub is reached at the login node's
# name from every node, and each node's software finds its own address by its host name.
write_hosts() {
  local tmp; tmp=$(mktemp)
  { sed "/^$HOSTS_BEGIN\$/,/^$HOSTS_END\$/d" /etc/hosts
    [ "${1:-}" = remove ] || { echo "$HOSTS_BEGIN"; node_rows | awk '{printf "%s\t%s\n", $2, $1}'; echo "$HOSTS_END"; }
  } > "$tmp"
  cmp -s "$tmp" /etc/hosts || cat "$tmp" > /etc/hosts  # in place: /etc/hosts may be a mount
  rm -f "$tmp"
}

stop_network() {
  local name
  for name in $(compute_nodes) "$CTL_NAME"; do
    [ -e "/run/netns/$name" ] && ip netns del "$name"
    if [ -e "$UTS_DIR/$name" ]; then umount "$UTS_DIR/$name" 2>/dev/null || true; rm -f "$UTS_DIR/$name"; fi
    if [ -e "$MNT_DIR/$name" ]; then umount "$MNT_DIR/$name" 2>/dev/null || true; rm -f "$MNT_DIR/$name"; fi
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  write_hosts remove
}

on_node() {  # on_node NAME COMMAND...: run it on a compute node or the controller's host
  nsenter --net="/run/netns/$1" --uts="$UTS_DIR/$1" --mount="$MNT_DIR/$1" -- "${@:2}"
}
on_ctl() { on_node "$CTL_NAME" "$@"; }
ctl_up() { [ -e "/run/netns/$CTL_NAME" ] && nsenter --mount="$MNT_DIR/$CTL_NAME" true 2>/dev/null; }

# A daemon that an older cluster ran on the login node (before the controller had a host of its
# own) is stopped: it starts again on the controller's host.
stop_misplaced() {
  local ctl entry name file
  ctl=$(on_ctl readlink /proc/self/ns/mnt)
  for entry in "slurmctld:$STATE/run/slurmctld.pid" "slurmdbd:$STATE/run/slurmdbd.pid" "mariadbd:/run/mysqld/mariadbd.pid"; do
    name=${entry%%:*} file=${entry#*:}
    pid_alive "$file" "$name" || continue
    [ "$(readlink "/proc/$(cat "$file")/ns/mnt")" = "$ctl" ] && continue
    stop_pidfile "$name on the login node (it moves to $CTL_NAME)" "$file" "$name"
  done
}

node_state() { sinfo -h -n "$1" -o %T 2>/dev/null; }

# On a real site the compute nodes are other machines: the hub and its proxy never share a CPU
# with a JupyterLab job. Here they do. NODE_CPU_WEIGHT=N runs every node's slurmd, and with it every
# job, in one CPU cgroup whose weight against the login node's services is N (10: the hub gets ten
# times the nodes' share when both want the CPU; 100 = equal). Nice does not do it: the kernel's
# autogroups give each job's session an equal share whatever its nice. The default is off (no
# cgroup): the test suite has not been run with the nodes weighted down (docs/operators/benchmarks.md).
NODES_CGROUP=aifactory-nodes

nodes_cgroup_procs() {  # the cgroup.procs file the nodes' slurmd join, made with their weight; nothing when off
  local weight=${NODE_CPU_WEIGHT:-off} dir
  [ "$weight" = off ] && return 0
  case "$weight" in ''|*[!0-9]*) die "NODE_CPU_WEIGHT: a weight from 1 to 10000 (100 = the login node's), or off" ;; esac
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # cgroup v2
    dir=/sys/fs/cgroup/$NODES_CGROUP
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
    mkdir -p "$dir" && echo "$weight" >"$dir/cpu.weight"
  elif [ -d /sys/fs/cgroup/cpu ]; then  # cgroup v1: cpu.shares, 1024 for a weight of 100
    dir=/sys/fs/cgroup/cpu/$NODES_CGROUP
    mkdir -p "$dir" && echo $((weight * 1024 / 100)) >"$dir/cpu.shares"
  else
    die "NODE_CPU_WEIGHT=$weight needs the cpu cgroup controller (or NODE_CPU_WEIGHT=off)"
  fi
  echo "$dir/cgroup.procs"
}

start_slurmd() {  # start_slurmd NODE
  pid_alive "$(slurmd_pidfile "$1")" slurmd && return 0
  local procs; procs=$(nodes_cgroup_procs)
  log "starting slurmd on $1 ($(node_address "$1"))${procs:+, CPU weight $NODE_CPU_WEIGHT in ${procs%/*}}"
  # The shell joins the cgroup, then becomes slurmd; its jobs are its children and stay there.
  on_node "$1" sh -c '[ -z "$1" ] || echo $$ >"$1"; exec /usr/sbin/slurmd -N "$2"' sh "$procs" "$1"
}

# A node drained or down from an earlier run (killed jobs, a failure) is put back to work.
node_to_work() {  # node_to_work NODE
  wait_for 60 "node $1" bash -c "sinfo -h -n $1 -o %T | grep -qvE 'unknown|not_responding'"
  if node_state "$1" | grep -qE 'drain|down'; then
    scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true
  fi
  wait_for 30 "node $1 (idle)" bash -c "sinfo -h -n $1 -o %T | grep -qxE '(idle|mixed|allocated|completing)'"
}

start_nodes() {
  local node
  for node in $(compute_nodes); do start_slurmd "$node"; done
  for node in $(compute_nodes); do node_to_work "$node"; done
}

# sacctmgr says "Nothing new added" (exit 1) for what exists: check before adding.
ensure_qos() {
  sacctmgr -n -P list qos format=name | grep -qx "$1" || sacctmgr -i add qos "$1" >/dev/null
  sacctmgr -i modify qos "$1" set "${@:2}" >/dev/null || true
}

ensure_accounts() {
  ensure_qos normal MaxWall=2-00:00:00
  ensure_qos interactive MaxWall=12:00:00 MaxJobsPerUser=4 Priority=100
  # Partition QoS (slurm.conf): they must exist before slurmctld reads the partitions. No GPU
  # rule is needed on gpp: its nodes have none.
  ensure_qos part_gpp Flags=DenyOnLimit
  ensure_qos part_acc Flags=DenyOnLimit
  # An admin's urgent work preempts (cancels) interactive and normal jobs.
  ensure_qos urgent Priority=1000 Preempt=normal,interactive
  sacctmgr -i modify user root set qos+=urgent >/dev/null || true
  local account desc users
  while read -r account rest; do
    case "$account" in ''|'#'*) continue;; esac
    users=$(sed -E 's/.*  +//' <<<"$rest"); desc=$(sed -E 's/  +[^ ].*$//' <<<"$rest")
    sacctmgr -n -P list account "$account" format=account | grep -qx "$account" ||
      sacctmgr -i add account "$account" description="$desc" organization="$account" cluster="$CLUSTER" >/dev/null
    # Granted on the account, so users an admin adds later inherit both QoS.
    sacctmgr -i modify account "$account" set qos=normal,interactive defaultqos=normal >/dev/null || true
    for u in $users; do
      sacctmgr -n -P list assoc user="$u" account="$account" format=user | grep -qx "$u" ||
        sacctmgr -i add user "$u" account="$account" cluster="$CLUSTER" >/dev/null
      sacctmgr -i modify user "$u" where account="$account" set qos=normal,interactive defaultqos=normal >/dev/null || true
    done
  done < "$HERE/accounts.txt"
}

# Each demo user's home is private to its owner (useradd's default is 0755): also the homes
# of users made by an older version of this script.
ensure_users() {
  local group name pass role home
  for group in "$USERS_GROUP" "$ADMINS_GROUP"; do getent group "$group" >/dev/null || groupadd --system "$group"; done
  while read -r name pass role; do
    case "$name" in ''|'#'*) continue;; esac
    id "$name" >/dev/null 2>&1 || { useradd -m -K HOME_MODE=0700 -s /bin/bash -c "demo $role" "$name"; echo "$name:$pass" | chpasswd; }
    home=$(getent passwd "$name" | cut -d: -f6)
    if [ -d "$home" ] && [ ! -L "$home" ]; then chmod 0700 "$home"; fi
    if [ "$role" = admin ]; then
      usermod -a -G "$ADMINS_GROUP" "$name"
      if id -nG "$name" | tr ' ' '\n' | grep -qx "$USERS_GROUP"; then gpasswd -d "$name" "$USERS_GROUP" >/dev/null; fi
    else
      usermod -a -G "$USERS_GROUP" "$name"
    fi
  done < "$HERE/users.txt"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE [PROCESS]
  pid_alive "$2" "${3:-}" || return 0
  log "stopping $1"
  kill "$(cat "$2")" 2>/dev/null || true
  for _ in $(seq 80); do pid_alive "$2" "${3:-}" || return 0; sleep 0.25; done
  kill -9 "$(cat "$2")" 2>/dev/null || true
}

stop_slurmds() {
  local node
  for node in $(compute_nodes); do stop_pidfile "slurmd on $node" "$(slurmd_pidfile "$node")" slurmd; done
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
pg_up() { runuser -u postgres -- "$(pg_bin)/pg_isready" -q -h "$PG_SOCKET_DIR"; }
pg_sql() { runuser -u postgres -- "$(pg_bin)/psql" -X -q -h "$PG_SOCKET_DIR" -d postgres -tA -c "$1"; }

start_postgres() {
  install -d -o postgres -g postgres -m 755 "$PG_SOCKET_DIR"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    log "creating the hub's PostgreSQL cluster in $PG_DATA"
    install -d -o postgres -g postgres -m 700 "$PG_DATA"
    runuser -u postgres -- "$(pg_bin)/initdb" -D "$PG_DATA" -U postgres --auth-local=peer --auth-host=reject \
      --encoding=UTF8 --locale=C.UTF-8 >"$STATE/log/postgres-initdb.log"
  fi
  touch "$STATE/log/postgres.log" && chown postgres: "$STATE/log/postgres.log"
  if ! pg_up >/dev/null 2>&1; then
    log "starting PostgreSQL (socket $PG_SOCKET_DIR, no TCP)"
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PG_DATA" -l "$STATE/log/postgres.log" -w -s \
      -o "-c listen_addresses='' -c unix_socket_directories=$PG_SOCKET_DIR" start
  fi
  wait_for 30 PostgreSQL pg_up
  [ "$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" = 1 ] || pg_sql "CREATE ROLE \"$PG_ROLE\" LOGIN"
  [ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" = 1 ] || pg_sql "CREATE DATABASE $PG_DB OWNER \"$PG_ROLE\""
}

stop_postgres() {
  [ -s "$PG_DATA/postmaster.pid" ] || return 0
  log "stopping PostgreSQL"
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -s stop || true
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "run as root"
  install_packages
  ensure_users
  prepare_state
  if [ "$CONFIG_CHANGED" = 1 ] && pid_alive "$STATE/run/slurmctld.pid"; then
    # Jobs survive: slurmctld saves its state, job steps do not depend on slurmd.
    log "configuration changed: restarting slurmctld and the nodes' slurmd"
    stop_slurmds
    stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
  fi
  start_network
  stop_misplaced
  start_munge
  start_ctl_munge
  start_postgres
  start_mariadb
  start_slurmdbd
  ensure_accounts
  start_slurmctld
  start_nodes
  log "cluster $CLUSTER is up"
}

# Jobs outlive slurmd (their slurmstepd keeps running): cancel them and let them end.
cancel_all_jobs() {
  scontrol ping >/dev/null 2>&1 || return 0
  local jobs; jobs=$(squeue -h -o %i 2>/dev/null || true)
  [ -n "$jobs" ] || return 0
  log "cancelling jobs: $(echo $jobs)"
  # shellcheck disable=SC2086 # one id per word
  scancel $jobs 2>/dev/null || true
  for _ in $(seq 80); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && return 0; sleep 0.25; done
}

kill_tree() {  # kill_tree PID: the process and all its descendants, children first
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill -9 "$1" 2>/dev/null || true
}

DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd slurmstepd)  # the login node's and the other machines'
# pgrep matches names of at most 15 characters: one name at a time.
daemons_left() { for d in "${DAEMONS[@]}"; do pgrep -x "$d" >/dev/null && printf '%s ' "$d"; done; true; }

cmd_stop() {
  [ "$(id -u)" = 0 ] || die "run as root"
  cancel_all_jobs
  stop_slurmds
  # Last resort (no controller to cancel through): end each job step with its processes.
  for pid in $(pgrep -x slurmstepd); do kill_tree "$pid"; done
  stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
  stop_pidfile slurmdbd "$STATE/run/slurmdbd.pid"
  if ctl_up && db_up >/dev/null 2>&1; then log "stopping MariaDB"; on_ctl mariadb-admin --socket="$DB_SOCKET" shutdown || true; fi
  stop_pidfile MariaDB /run/mysqld/mariadbd.pid mariadbd  # an older cluster's, on the login node
  stop_postgres
  if pgrep -x munged >/dev/null; then log "stopping munged"; pkill -x munged || true; fi
  for _ in $(seq 40); do [ -z "$(daemons_left)" ] && break; sleep 0.25; done
  [ -z "$(daemons_left)" ] || die "daemons still running after stop: $(daemons_left)"
  rmdir "/sys/fs/cgroup/cpu/$NODES_CGROUP" "/sys/fs/cgroup/$NODES_CGROUP" 2>/dev/null || true  # empty by now
  stop_network
  log "cluster $CLUSTER is stopped"
}

daemon_state() {  # daemon_state NAME PROCESS
  if pgrep -x "$2" >/dev/null; then printf '%-10s running\n' "$1"; else printf '%-10s stopped\n' "$1"; return 1; fi
}

cmd_status() {
  local ok=0
  daemon_state munge munged || ok=1
  if ctl_up && ctl_munge_up >/dev/null 2>&1; then printf '%-10s running (%s: munged, MariaDB, slurmdbd, slurmctld; %s)\n' "$CTL_NAME" "$CTL_NAME" "$CTL_ADDR"
  else printf '%-10s stopped (the controller'"'"'s host)\n' "$CTL_NAME"; ok=1; fi
  daemon_state mariadb mariadbd || ok=1
  daemon_state slurmdbd slurmdbd || ok=1
  daemon_state slurmctld slurmctld || ok=1
  local node
  for node in $(compute_nodes); do
    if pid_alive "$(slurmd_pidfile "$node")" slurmd; then printf '%-10s running (slurmd, %s)\n' "$node" "$(node_address "$node")"
    else printf '%-10s stopped\n' "$node"; ok=1; fi
  done
  if pg_up >/dev/null 2>&1; then printf '%-10s running (postgresql://%s@/%s?host=%s)\n' postgresql "$PG_ROLE" "$PG_DB" "$PG_SOCKET_DIR"
  else printf '%-10s stopped\n' postgresql; ok=1; fi
  if [ $ok = 0 ]; then echo; sinfo -N -o '%N %9P %6T %C %G'; fi
  return $ok
}

is_node() { compute_nodes | grep -qx "${1:-}" || die "no compute node ${1:-(none given)}: $(compute_nodes | paste -sd' ')"; }
is_machine() { [ "${1:-}" = "$CTL_NAME" ] || is_node "${1:-}"; }

# A node failure, as an admin would see one: the node stops answering (its slurmd dies and its
# network link goes down); its processes are cut off with it. SLURM marks it DOWN after
# SlurmdTimeout and ends its jobs as NODE_FAIL.
cmd_fail_node() {
  is_node "$1"
  log "failing node $1: slurmd killed, link cut"
  ip link set "v-$1" down
  local pid; pid=$(cat "$(slurmd_pidfile "$1")" 2>/dev/null) || true
  if [ -n "$pid" ] && pid_alive "$(slurmd_pidfile "$1")" slurmd; then kill -9 "$pid"; fi
}

# The node comes back: its link up and slurmd started. SLURM ends what still ran of the jobs it
# had given up (slurmd reports them), and the node returns to service (ReturnToService=2).
cmd_restore_node() {
  is_node "$1"
  log "restoring node $1"
  ip link set "v-$1" up
  start_slurmd "$1"
  node_to_work "$1"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  users) [ "$(id -u)" = 0 ] || die "run as root"; ensure_users ;;
  fail-node) [ "$(id -u)" = 0 ] || die "run as root"; cmd_fail_node "${2:-}" ;;
  restore-node) [ "$(id -u)" = 0 ] || die "run as root"; cmd_restore_node "${2:-}" ;;
  on-node) [ "$(id -u)" = 0 ] || die "run as root"; is_machine "${2:-}"; [ $# -gt 2 ] || die "on-node NODE COMMAND..."
    on_node "$2" "${@:3}" ;;
  *) echo "usage: $0 start|stop|status|users|fail-node NODE|restore-node NODE|on-node NODE COMMAND..." >&2; exit 2 ;;
esac
