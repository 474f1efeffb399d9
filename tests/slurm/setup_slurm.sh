#!/usr/bin/env bash
# A real single-node SLURM (slurmctld + slurmd, slurmdbd + MariaDB for sacct) on localhost,
# for the workflow's SLURM test. Debian/Ubuntu with apt; must run as root.
#
#   bash tests/slurm/setup_slurm.sh start    # install what is missing, configure, start, smoke test
#   bash tests/slurm/setup_slurm.sh status   # exit 0 when the node is idle and sacct answers
#   bash tests/slurm/setup_slurm.sh stop     # stop only the daemons this script started
#   bash tests/slurm/setup_slurm.sh check    # exit 0 when `start` can work here (else says why)
#
# Idempotent: packages are installed only when missing, configs rewritten (and the SLURM
# daemons restarted) only when they change, a daemon is started only when the process named
# in its pidfile is not alive. Settings (environment):
#   SLURM_ACCOUNTING=1   also run MariaDB + slurmdbd so that `sacct` works (0: none; the
#                        profile then needs slurm-status-command: squeue)
#   SLURM_UP_TIMEOUT=60  seconds allowed for the daemons to come up after apt
#   SLURM_PARTITION=debug
#   SLURM_MEM_MB=        RealMemory of the node (default: min(20000, 90% of what slurmd -C finds))
#   SLURM_CPUS=4         CPUs the node offers: max(nproc, this); more than the machine has
#                        (config_overrides) lets small jobs overlap their start-up and I/O
#   SLURM_GPUS=1         GPUs the node announces (a GRES count without devices, so that
#                        `--gpus=1` jobs are scheduled; they run on the CPU); also adds a
#                        partition `gpu` on the same node. 0: none
#   SLURM_SMOKE=1        run srun/sbatch/sacct once the node is idle
#   SLURM_MEM_ENFORCE=1  kill a job step whose memory (RSS of its processes, sampled every
#                        SLURM_ACCT_FREQ s by jobacct_gather) exceeds its --mem request
#                        (JobAcctGatherParams=OverMemoryKill; no cgroups needed). 0: off
#   SLURM_ACCT_FREQ=5    seconds between the samples of sacct's MaxRSS (and of the check)
set -euo pipefail

ACTION=${1:-start}
ACCOUNTING=${SLURM_ACCOUNTING:-1}
UP_TIMEOUT=${SLURM_UP_TIMEOUT:-60}
PARTITION=${SLURM_PARTITION:-debug}
SMOKE=${SLURM_SMOKE:-1}
MEM_ENFORCE=${SLURM_MEM_ENFORCE:-1}
ACCT_FREQ=${SLURM_ACCT_FREQ:-5}
CLUSTER=localcluster
HOST=$(hostname -s)
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
MUNGE_PID=/run/munge/munged.pid
MYSQL_SOCK=/run/mysqld/mysqld.sock
MYSQL_PID=/run/mysqld/mysqld.pid
DBD_PID=/run/slurmdbd.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DB_PASS=slurmdbpass

log() { echo "[setup_slurm $(date +%H:%M:%S)] $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

# alive PIDFILE COMM: the process named in PIDFILE exists and is COMM
alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm") == "$2"* ]]
}

# wait_for WHAT CMD...: retry CMD until it succeeds or the deadline passes
wait_for() {
    local what=$1
    shift
    while ! "$@" >/dev/null 2>&1; do
        if ((SECONDS > DEADLINE)); then
            echo "ERROR: SLURM did not come up within ${UP_TIMEOUT}s: timed out waiting for $what" >&2
            for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log "$LOG_DIR"/slurmdbd.log \
                /var/log/mariadb-local.log; do
                [[ -f $f ]] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
            done
            sinfo -R >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.5
    done
}

install_packages() {
    local want=(slurmctld slurmd slurm-client munge) missing=()
    ((ACCOUNTING)) && want+=(slurmdbd mariadb-server)
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and apt-get is not available"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

node_mem_mb() {
    if [[ -n ${SLURM_MEM_MB:-} ]]; then
        echo "$SLURM_MEM_MB"
        return
    fi
    local real
    real=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n $real ]] || real=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    real=$((real * 9 / 10))
    echo $((real < 20000 ? real : 20000))
}

# write_if_changed FILE MODE OWNER: stdin -> FILE; returns 0 when the file changed
write_if_changed() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    install -m "$2" -o "${3%%:*}" -g "${3##*:}" "$tmp" "$1"
    rm -f "$tmp"
    return 0
}

write_configs() {
    local cpus mem acct_type acct_host="" changed=1
    cpus=$(nproc)
    ((cpus < ${SLURM_CPUS:-4})) && cpus=${SLURM_CPUS:-4}
    local gpus=${SLURM_GPUS:-1} gres="" gres_types="" gpu_part=""
    if ((gpus > 0)); then
        gres="Gres=gpu:$gpus"
        gres_types="GresTypes=gpu
AccountingStorageTRES=gres/gpu"
        gpu_part="PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP"
    fi
    mem=$(node_mem_mb)
    local acct_params=""
    ((MEM_ENFORCE)) && acct_params="JobAcctGatherParams=OverMemoryKill"
    if ((ACCOUNTING)); then
        acct_type=accounting_storage/slurmdbd
        acct_host="AccountingStorageHost=localhost"
    else
        acct_type=accounting_storage/none
    fi
    install -d -m 755 "$CONF_DIR" "$LOG_DIR"
    install -d -m 755 -o slurm -g slurm "$STATE_DIR" "$STATE_DIR/slurmctld"
    install -d -m 755 "$STATE_DIR/slurmd"
    chown slurm:slurm "$LOG_DIR"
    write_if_changed "$CONF_DIR/slurm.conf" 644 root:root <<CONF && changed=0
# written by tests/slurm/setup_slurm.sh (single-node test cluster)
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=$ACCT_FREQ
$acct_params
AccountingStorageType=$acct_type
$acct_host
# keep sbatch --comment (the plugin writes rule_<rule>_wildcards_<values> there) for sacct
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
SlurmdParameters=config_overrides
$gres_types
ReturnToService=2
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
$gpu_part
CONF
    if ((gpus > 0)); then
        write_if_changed "$CONF_DIR/gres.conf" 644 root:root <<CONF && changed=0
# written by tests/slurm/setup_slurm.sh: GPUs counted, no devices (test jobs use the CPU)
NodeName=$HOST Name=gpu Count=$gpus File=/dev/null
CONF
    else
        rm -f "$CONF_DIR/gres.conf"
    fi
    if ((ACCOUNTING)); then
        write_if_changed "$CONF_DIR/slurmdbd.conf" 600 slurm:slurm <<CONF && changed=0
# written by tests/slurm/setup_slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$DBD_PID
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
CONF
    fi
    return $changed
}

# stop_daemon PIDFILE COMM: kill the process named in PIDFILE (only if it is COMM)
stop_daemon() {
    local pid i
    if alive "$1" "$2"; then
        pid=$(tr -dc '0-9' <"$1")
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
        log "stopped $2 ($pid)"
    fi
    rm -f "$1"
}

stop_all() {
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
    stop_daemon "$DBD_PID" slurmdbd
    stop_daemon "$MYSQL_PID" mariadbd
    stop_daemon "$MUNGE_PID" munged
}

start_munge() {
    alive "$MUNGE_PID" munged && return 0
    install -d -o munge -g munge -m 755 /run/munge
    [[ -f /etc/munge/munge.key ]] || { /usr/sbin/mungekey --create 2>/dev/null || true; }
    runuser -u munge -- /usr/sbin/munged
    wait_for "munged" bash -c 'munge -n | unmunge'
}

start_mariadb() {
    if ! alive "$MYSQL_PID" mariadbd; then
        install -d -o mysql -g mysql /run/mysqld
        setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --pid-file="$MYSQL_PID" \
            --socket="$MYSQL_SOCK" --skip-networking --innodb-lock-wait-timeout=900 \
            </dev/null >>/var/log/mariadb-local.log 2>&1 &
    fi
    wait_for "mariadb" mariadb-admin --socket="$MYSQL_SOCK" ping
    mariadb --socket="$MYSQL_SOCK" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

start_all() {
    local restart=0
    for unit in slurmd slurmctld slurmdbd munge mariadb; do
        command -v systemctl >/dev/null && [[ -d /run/systemd/system ]] &&
            systemctl stop "$unit" 2>/dev/null || true
    done
    write_configs && restart=1
    if ((restart)); then
        log "configuration changed: restarting the SLURM daemons"
        stop_daemon "$SLURMD_PID" slurmd
        stop_daemon "$CTLD_PID" slurmctld
        stop_daemon "$DBD_PID" slurmdbd
    fi
    start_munge
    if ((ACCOUNTING)); then
        start_mariadb
        alive "$DBD_PID" slurmdbd || /usr/sbin/slurmdbd
        wait_for "slurmdbd (sacctmgr list cluster)" sacctmgr -n list cluster
    else
        stop_daemon "$DBD_PID" slurmdbd
    fi
    alive "$CTLD_PID" slurmctld || /usr/sbin/slurmctld
    wait_for "slurmctld (scontrol ping)" bash -c 'scontrol ping | grep -q UP'
    alive "$SLURMD_PID" slurmd || /usr/sbin/slurmd
    wait_for "slurmd registration" bash -c "sinfo -h -N -n $HOST -o %T | grep -qvE 'unknown|^$'"
    local state
    state=$(sinfo -h -N -n "$HOST" -o %T | head -1)
    if [[ $state =~ drain|down|inval|fail ]]; then
        log "node is $state; resuming it"
        scontrol update NodeName="$HOST" State=RESUME || true
    fi
    wait_for "node $HOST idle (sinfo)" bash -c "sinfo -h -N -n $HOST -o %T | grep -qE '^(idle|mixed|allocated)'"
    if ((ACCOUNTING)); then
        # the cluster registers itself when slurmctld starts; make that explicit (idempotent),
        # and give root an association so jobs are accounted
        sacctmgr -i -n list cluster format=Cluster%40 | grep -qw "$CLUSTER" ||
            sacctmgr -i add cluster "$CLUSTER" >/dev/null
        sacctmgr -i -n list account format=Account%40 | grep -qw root ||
            sacctmgr -i add account root Cluster="$CLUSTER" >/dev/null
        wait_for "sacct" sacct -n -X -S now
    fi
}

smoke_test() {
    local out id st
    out=$(srun -N1 -n1 -t 1 hostname) || die "srun failed"
    [[ $out == "$HOST" ]] || die "srun printed '$out', expected '$HOST'"
    id=$(sbatch --parsable -t 1 -o /dev/null --wrap true) || die "sbatch failed"
    while :; do
        st=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        [[ $st == COMPLETED ]] && break
        [[ $st =~ FAILED|CANCELLED|TIMEOUT|NODE_FAIL ]] && die "smoke job $id ended $st"
        ((SECONDS > DEADLINE)) && die "smoke job $id still $st after ${UP_TIMEOUT}s"
        sleep 0.3
    done
    if ((ACCOUNTING)); then
        wait_for "sacct to list job $id" bash -c "sacct -n -X -j $id -o JobID | grep -q $id"
    fi
    log "smoke test passed (srun, sbatch job $id$( ((ACCOUNTING)) && echo ', sacct'))"
}

status() {
    alive "$MUNGE_PID" munged || { echo "munged: not running"; return 1; }
    if ((ACCOUNTING)); then
        alive "$DBD_PID" slurmdbd || { echo "slurmdbd: not running"; return 1; }
    fi
    alive "$CTLD_PID" slurmctld || { echo "slurmctld: not running"; return 1; }
    alive "$SLURMD_PID" slurmd || { echo "slurmd: not running"; return 1; }
    local state
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1)
    echo "node $HOST: ${state:-unknown}"
    [[ $state =~ ^(idle|mixed|allocated)$ ]] || return 1
    if ((ACCOUNTING)); then
        sacct -n -X -S now >/dev/null 2>&1 || { echo "sacct: not answering"; return 1; }
        echo "sacct: ok"
    fi
}

case $ACTION in
start)
    [[ $(id -u) == 0 ]] || die "must run as root (starts daemons, installs packages)"
    t0=$SECONDS
    install_packages
    log "packages ready ($((SECONDS - t0)) s)"
    DEADLINE=$((SECONDS + UP_TIMEOUT))
    t1=$SECONDS
    start_all
    log "daemons up, node $HOST idle ($((SECONDS - t1)) s)"
    ((SMOKE)) && smoke_test
    log "SLURM ready in $((SECONDS - t0)) s"
    ;;
stop)
    [[ $(id -u) == 0 ]] || die "must run as root"
    stop_all
    ;;
status)
    status
    ;;
check)
    if status >/dev/null 2>&1; then
        echo "SLURM is running"
    elif [[ $(id -u) != 0 ]]; then
        echo "cannot start SLURM: not root" >&2
        exit 1
    elif ! command -v apt-get >/dev/null && ! command -v slurmctld >/dev/null; then
        echo "cannot start SLURM: no apt-get to install the Debian packages" >&2
        exit 1
    else
        echo "SLURM can be started (root, apt)"
    fi
    ;;
*)
    die "usage: $0 start|stop|status|check (got '$ACTION')"
    ;;
esac
