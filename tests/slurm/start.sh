#!/usr/bin/env bash
# Install (if missing) and start a single-node Slurm on this machine, for the Slurm
# integration tests (tests/cli/slurm.rs). Idempotent: daemons already running are kept.
# Needs root and Debian's packages (slurm-wlm, munge); no systemd.
#
#   bash tests/slurm/start.sh        # then: sinfo; sbatch --wrap 'hostname'
#
# Writes /etc/slurm/slurm.conf (only when absent or written by this script) with one node
# named after this host (reached at 127.0.0.1, so the name need not resolve), one `debug`
# partition, no accounting, no cgroups.
set -euo pipefail

log() { echo "slurm-start: $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "slurm-start: must run as root" >&2
    exit 1
fi

# --- packages -------------------------------------------------------------------------
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null ||
    ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Package scripts may try to start the daemons through init scripts; that is harmless
    # here (they are started below, once the configuration exists).
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host="$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)"

# --- munge ----------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged is running"
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null
fi

# --- slurm.conf -----------------------------------------------------------------------
conf=/etc/slurm/slurm.conf
marker="# written by cllm4rec-pipe tests/slurm/start.sh"
# NodeName=<host> CPUs=... RealMemory=... (slurmd -C also prints an UpTime line: dropped)
node_line="$(slurmd -C | head -n 1)"
if [ ! -e "$conf" ] || head -n 1 "$conf" | grep -qF "$marker"; then
    install -d /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    new="$(mktemp)"
    cat >"$new" <<EOF
$marker
ClusterName=cllm4rec-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if ! cmp -s "$new" "$conf"; then
        log "writing $conf"
        mv "$new" "$conf"
        chmod 0644 "$conf"
        changed=1
    else
        rm -f "$new"
        changed=0
    fi
else
    log "$conf was not written by this script; using it as it is"
    changed=0
fi

# --- daemons --------------------------------------------------------------------------
if alive /run/slurmctld.pid; then
    if [ "$changed" = 1 ]; then
        log "reconfiguring slurmctld"
        scontrol reconfigure || true
    else
        log "slurmctld is running"
    fi
else
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
done
scontrol ping | grep -q UP || {
    echo "slurm-start: slurmctld does not answer; see /var/log/slurm/slurmctld.log" >&2
    tail -n 20 /var/log/slurm/slurmctld.log >&2 || true
    exit 1
}

if alive /run/slurmd.pid; then
    log "slurmd is running"
else
    log "starting slurmd"
    /usr/sbin/slurmd
fi

# Wait for the node to be usable; a node left down or drained by an earlier run is resumed.
for i in $(seq 150); do
    state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1)"
    case "$state" in
    idle* | mixed* | allocated* | completing*) break ;;
    down* | drain* | fail*)
        scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1)"
case "$state" in
idle* | mixed* | allocated* | completing*) log "node $host is $state" ;;
*)
    echo "slurm-start: node $host is \`${state:-unknown}\`; see /var/log/slurm/slurmd.log" >&2
    tail -n 20 /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
esac
