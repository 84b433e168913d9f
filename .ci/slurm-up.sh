#!/usr/bin/env bash
# A one-node Slurm on localhost for tests/test_slurm.py (issue #17): Debian's slurm-wlm and munge,
# munged, slurmctld and slurmd started directly as daemons (containers have no systemd), no
# cgroups (proctrack/linuxproc, task/none), no accounting database. Needs root. Idempotent: a
# second call with the daemons up and the node idle does nothing. Undo with .ci/slurm-down.sh.
#
#   SLURM_UP_MEMORY   RealMemory of the node in MiB (default: what `slurmd -C` measures)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-up: needs root (apt-get, /etc/slurm, the daemons)" >&2
  exit 1
fi

need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  # the packages' maintainer scripts try to start the services: harmless without systemd
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

conf=/etc/slurm/slurm.conf
up() { scontrol ping 2>/dev/null | grep -q "UP" && sinfo -h -n localhost -o %T 2>/dev/null | grep -q -E "^(idle|mixed|allocated)"; }
if [ -f "$conf" ] && grep -q "^ClusterName=fluxscape$" "$conf" && up; then
  echo "slurm-up: already running ($(sinfo -h -o '%P %D %T' | head -1))"
  exit 0
fi

# munge: one key shared by every host of the cluster (here one host); the daemon runs as munge.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n </dev/null | unmunge >/dev/null

# slurm.conf: the node as the hardware reports it (slurmd -C), named localhost.
read -r cpus boards sockets cores threads memory < <(
  slurmd -C | head -1 | sed -E 's/.*CPUs=([0-9]+) Boards=([0-9]+) SocketsPerBoard=([0-9]+) CoresPerSocket=([0-9]+) ThreadsPerCore=([0-9]+) RealMemory=([0-9]+).*/\1 \2 \3 \4 \5 \6/'
)
memory="${SLURM_UP_MEMORY:-$memory}"
install -d -m 0755 /etc/slurm /var/log/slurm /run/slurm
install -d -m 0700 /var/spool/slurmctld /var/spool/slurmd
cat >"$conf.new" <<EOF
# written by fluxscape's .ci/slurm-up.sh: one node on localhost, no cgroups, no accounting
ClusterName=fluxscape
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=10
MinJobAge=60
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$memory State=UNKNOWN
# up to 4 jobs share a core: a driver job and its worker jobs fit on a 2-core CI machine
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
mv "$conf.new" "$conf"
# no cgroup.conf: slurmd finds no cgroup plugin it needs (proctrack/linuxproc, task/none)

# (Re)start the daemons of a previous call: the configuration may have changed.
# A process that has exited (a zombie no init reaps, in a container) is not alive.
alive() { [ -r "/proc/$1/status" ] && ! grep -q "^State:.*zombie" "/proc/$1/status"; }
for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && alive "$pid"; then
    kill "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  fi
done
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 60); do
  up && break
  sleep 0.5
done
if ! up; then
  scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
  sleep 1
fi
if ! up; then
  echo "slurm-up: the node did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
  sinfo -N -l >&2 || true
  exit 1
fi
echo "slurm-up: $(sinfo -h -o 'partition %P, %D node(s) %T, %c CPUs, %m MiB')"
