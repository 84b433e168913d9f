#!/usr/bin/env bash
# Undo .ci/slurm-up.sh: cancel every job of the test cluster and stop slurmd, slurmctld and
# munged (by their PID files). The packages and /etc/slurm/slurm.conf stay; slurm-up.sh starts
# the daemons again.
set -uo pipefail

if command -v scancel >/dev/null 2>&1 && scontrol ping 2>/dev/null | grep -q UP; then
  scancel --full --user="$(id -un)" 2>/dev/null || true
fi
# a process that has exited (a zombie no init reaps, in a container) is not alive
alive() { [ -r "/proc/$1/status" ] && ! grep -q "^State:.*zombie" "/proc/$1/status"; }
stop() {
  local pidfile="$1" pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && alive "$pid"; then
    kill "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}
stop /run/slurm/slurmd.pid
stop /run/slurm/slurmctld.pid
stop /run/munge/munged.pid
echo "slurm-down: stopped"
