#!/usr/bin/env bash
# Single-node Slurm 22.05 on Debian 12 without systemd, for CI (`make test-slurm`). The
# project's copy of the checked recipe in shared/reference/slurm/; `up` is a no-op when the
# node is already up.
# Usage: [FAKE_GPU=1] ci-slurm.sh up | test | down
set -euo pipefail
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 90 / 100 ))

up() {
  if [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]; then sinfo; return 0; fi   # already up
  export DEBIAN_FRONTEND=noninteractive
  dpkg -s slurmctld slurmd slurm-client munge >/dev/null 2>&1 ||
    apt-get install -y slurmctld slurmd slurm-client munge
  # munge: the package postinst already creates /etc/munge/munge.key
  [ -s /etc/munge/munge.key ] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge          # normally made by systemd-tmpfiles
  runuser -u munge -- /usr/sbin/munged                      # forks; PID in /run/munge/munged.pid
  munge -n | unmunge >/dev/null                             # sanity check

  install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
  install -d -m 0755 /var/spool/slurmd
  GRES_TYPES=""; NODE_GRES=""; : > /etc/slurm/gres.conf
  if [ "${FAKE_GPU:-0}" = 1 ]; then   # optional fake GPU so --gres=gpu:1 is accepted
    GRES_TYPES="GresTypes=gpu"; NODE_GRES="Gres=gpu:1"
    echo "NodeName=${NODE} Name=gpu File=/dev/null" > /etc/slurm/gres.conf   # without File= the node goes INVAL
  fi
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=${NODE}
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
${GRES_TYPES}
NodeName=${NODE} CPUs=${CPUS} RealMemory=${MEM_MB} ${NODE_GRES} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  /usr/sbin/slurmctld -c                                     # forks; PID in /run/slurmctld.pid
  /usr/sbin/slurmd                                          # forks; PID in /run/slurmd.pid
  for i in $(seq 1 60); do
    [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ] && { sinfo; return 0; }
    sleep 0.5
  done
  echo "node never became idle" >&2; sinfo -N -l >&2 || true; tail -n 30 /var/log/slurm/*.log >&2; return 1
}

test_array() {
  local d; d=$(mktemp -d); cd "$d"
  cat > job.sh <<'JOB'
#!/bin/bash
#SBATCH --output=slurm-%A_%a.out
echo "$SLURM_ARRAY_TASK_ID $(hostname)" > "task_${SLURM_ARRAY_TASK_ID}.txt"
sleep 3
JOB
  local j; j=$(sbatch --parsable --array=0-3%2 job.sh)
  while [ -n "$(squeue -h -j "$j")" ]; do sleep 0.5; done
  cat task_*.txt
  [ "$(ls task_*.txt | wc -l)" = 4 ]
  scontrol show job "$j" | grep -E 'ArrayTaskId|JobState|ExitCode'  # works for MinJobAge (300 s) after the end
  echo "OK in $d"
}

down() {
  # slurmd first, then slurmctld, then munged - each by the PID in its pid file
  # (slurmctld cannot delete its root-owned pid file, so check the process name before killing)
  for pair in slurmd:/run/slurmd.pid slurmctld:/run/slurmctld.pid munged:/run/munge/munged.pid; do
    n=${pair%%:*}; f=${pair#*:}
    [ -s "$f" ] || continue
    p=$(cat "$f")
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$n" ] || continue
    kill -TERM "$p"
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  done
}

case "${1:-}" in up) up ;; test) test_array ;; down) down ;; *) echo "usage: $0 up|test|down"; exit 2 ;; esac
