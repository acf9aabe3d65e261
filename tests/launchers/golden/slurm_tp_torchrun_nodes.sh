#!/usr/bin/env bash
# Rendered by trainer_platform for run sft-2n: one torchrun per node of this Slurm allocation for one verl job.
#   bash tp_torchrun_nodes.sh         in the batch step (first node): one `srun --overlap` task per node, exits with
#                                     the step's exit code (any node's failure ends them all)
#   bash tp_torchrun_nodes.sh node    one node's torchrun, started through srun by the line above
# The rendezvous (c10d) is hosted on the first node, at its Slurm address (MASTER_ADDR) and the fixed port
# 29500 (MASTER_PORT). torchrun guesses whether it hosts the rendezvous by matching MASTER_ADDR against
# its host name's addresses, which misses wherever the name resolves elsewhere (loopback in /etc/hosts, a second
# interface): the first node is told (PET_RDZV_CONF=is_host=1), the others join; each node's workers are reached
# at its Slurm address (PET_LOCAL_ADDR, torchrun's --local-addr) and gloo binds to the interface carrying it.
set -u
cd "$(dirname "$0")" || exit 1
here=$PWD

say() { echo "[tp_torchrun_nodes $(date -u +%H:%M:%S) ${SLURMD_NODENAME:-?}] $*"; }

# The address other nodes reach node $1 (default: this one) at: Slurm's NodeAddr for it (resolved when it is a
# name), else the address its name resolves to.
node_ip() {
  local node=${1:-$SLURMD_NODENAME} addr
  addr=$(scontrol show node "$node" -o 2>/dev/null | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
  [ -n "$addr" ] || addr=$node
  if [[ ! $addr =~ ^[0-9.]+$ ]]; then
    addr=$(getent ahostsv4 "$addr" | awk 'NR==1 {print $1}')
  fi
  echo "$addr"
}

# gloo (torch.distributed on CPU, verl's CPU groups) binds to the address the host name resolves to, which is
# loopback where /etc/hosts maps it there: unless GLOO_SOCKET_IFNAME is set, use the interface carrying $1
gloo_interface() {
  local ifname
  [ -z "${GLOO_SOCKET_IFNAME:-}" ] && command -v ip >/dev/null || return 0
  ifname=$(ip -o -4 addr show | awk -v ip="$1" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}')
  if [ -n "$ifname" ]; then
    export GLOO_SOCKET_IFNAME=$ifname
    say "GLOO_SOCKET_IFNAME=$ifname (carries $1)"
  fi
}


if [ "${1:-}" = node ]; then
  if [ "$SLURMD_NODENAME" = "$TP_FIRST_NODE" ]; then export PET_RDZV_CONF=is_host=1; else export PET_RDZV_CONF=is_host=0; fi
  # the address this node's workers are reached at (torchrun's --local-addr; else the host name's, maybe loopback)
  ip=$(node_ip)
  export PET_LOCAL_ADDR=$ip
  gloo_interface "$ip"
  say "torchrun joining the rendezvous at $MASTER_ADDR:$MASTER_PORT ($PET_RDZV_CONF)"
  exec env PYTHONPATH="${TP_VERL_EXT}" VERL_PLATFORM=tp_cpu python3 -m torch.distributed.run --nproc_per_node=1 --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint="${MASTER_ADDR}":"${MASTER_PORT}" -m verl.trainer.sft_trainer 'trainer.default_local_dir='"'"''"${TP_RUN_DIR}"'/checkpoints'"'"'' 'trainer.experiment_name=it'"'"'s $(not) run'
fi

: "${SLURM_JOB_ID:?tp_torchrun_nodes.sh runs inside a Slurm allocation}"
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if [ "${#nodes[@]}" -lt 2 ]; then
  say "the job needs 2 nodes, the allocation has ${#nodes[@]} (${nodes[*]}): submit with nodes=2"
  exit 2
fi
nodes=("${nodes[@]:0:2}")
export TP_FIRST_NODE=${nodes[0]}
MASTER_ADDR=$(node_ip "$TP_FIRST_NODE")
[ -n "$MASTER_ADDR" ] || { say "cannot find the address of $TP_FIRST_NODE (scontrol show node, getent)"; exit 1; }
export MASTER_ADDR MASTER_PORT=29500
say "torchrun on ${nodes[*]}, rendezvous at $MASTER_ADDR:$MASTER_PORT"
node_list=$(IFS=,; echo "${nodes[*]}")
srun --overlap --nodes=2 --ntasks=2 --ntasks-per-node=1 --nodelist="$node_list" \
  --kill-on-bad-exit=1 bash "$here/tp_torchrun_nodes.sh" node &
step=$!
trap 'kill -TERM "$step" 2>/dev/null' TERM INT HUP
wait "$step"; code=$?
while kill -0 "$step" 2>/dev/null; do wait "$step"; code=$?; done
exit "$code"
