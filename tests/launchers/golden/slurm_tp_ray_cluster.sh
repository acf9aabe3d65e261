#!/usr/bin/env bash
# Rendered by trainer_platform for run grpo-2n: a Ray cluster across this Slurm allocation for one verl job.
#   bash tp_ray_cluster.sh              in the batch step (first node): bring the cluster up, run verl attached to
#                                       it, tear it down; exits with verl's exit code
#   bash tp_ray_cluster.sh node ROLE LOGS ATTEMPT   one node's Ray (head|worker) for the job's restart ATTEMPT,
#                                       started through srun by the line above
# The head runs on the first node of the allocation; the other nodes join through one batched `srun --overlap`
# step. The head's address is published in LOGS/head_address only once its GCS listens (the file gate the workers
# wait on); verl starts only after all 2 nodes and 2 GPUs have registered, and fails fast, naming
# the missing nodes, when they haven't after 120 s or a node's step ended. LOGS/ENDED tells every
# node to stop its Ray. Logs: ray_cluster/<job id>.<restart count>/ (a requeued job gets a fresh folder). Each
# node's Ray temp dir, /tmp/tp-ray-<job id>-<node>-r<restart count>, is removed when that node's Ray stops; a node
# also removes the ones an earlier, killed attempt of the job left there (requeue, preemption: no teardown ran).
# Ports are fixed (Ray's GCS on 25000, node services 25010-25015, workers 25100-25999).
set -u
cd "$(dirname "$0")" || exit 1
here=$PWD
python=python3
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=disabled
export PYTHONPATH="${TP_VERL_EXT}"
export VERL_PLATFORM=tp_cpu
export WANDB_MODE=disabled

say() { echo "[tp_ray_cluster $(date -u +%H:%M:%S) ${SLURMD_NODENAME:-?}] $*"; }

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


# --- one node's Ray: runs under srun on every node ---------------------------------------------------------------
if [ "${1:-}" = node ]; then
  role=$2 logs=$3 attempt=$4
  exec >>"$logs/ray-$SLURMD_NODENAME.log" 2>&1
  tmp="/tmp/tp-ray-$SLURM_JOB_ID-$SLURMD_NODENAME-r$attempt"
  for ((r = 0; r < attempt; r++)); do  # by exact name: a glob could match another node's (gpu, gpu-r1)
    old="/tmp/tp-ray-$SLURM_JOB_ID-$SLURMD_NODENAME-r$r"
    if [ -d "$old" ]; then say "removing $old (an earlier attempt's)"; rm -rf -- "$old"; fi
  done
  trap 'rm -rf -- "$tmp"' EXIT
  ip=$(node_ip)
  [ -n "$ip" ] || { say "cannot find this node's address (scontrol show node, getent)"; exit 1; }
  echo "$ip" >"$logs/nodes/$SLURMD_NODENAME.tmp" && mv -f "$logs/nodes/$SLURMD_NODENAME.tmp" "$logs/nodes/$SLURMD_NODENAME"
  gloo_interface "$ip"
  args=(--block --disable-usage-stats --node-ip-address="$ip" --temp-dir="$tmp"
    --node-manager-port=25010 --object-manager-port=25011
    --runtime-env-agent-port=25012 --dashboard-agent-grpc-port=25013
    --dashboard-agent-listen-port=25014 --metrics-export-port=25015
    --min-worker-port=25100 --max-worker-port=25999 --num-cpus=16 --num-gpus=1)
  trap 'touch "$logs/ENDED"' TERM INT HUP
  # Ray's own start-up gives a raylet 30 s to register (more on a loaded node): a failed start is retried, as a
  # restarted head keeps its fixed address
  for attempt in $(seq 3); do
    if [ "$role" = head ]; then
      say "starting the Ray head at $ip:25000 (attempt $attempt)"
      "$python" -m ray.scripts.scripts start --head --port=25000 --ray-client-server-port=25001 \
        --include-dashboard=false "${args[@]}" &
      ray_pid=$!
      until (exec 3<>"/dev/tcp/$ip/25000") 2>/dev/null || ! kill -0 "$ray_pid" 2>/dev/null; do
        [ -e "$logs/ENDED" ] && break
        sleep 0.5
      done
      if kill -0 "$ray_pid" 2>/dev/null && [ ! -e "$logs/head_address" ]; then
        echo "$ip:25000" >"$logs/head_address.tmp" && mv -f "$logs/head_address.tmp" "$logs/head_address"
        say "Ray head listening at $ip:25000"
      fi
    else
      until [ -s "$logs/head_address" ]; do
        [ -e "$logs/ENDED" ] && { say "ENDED before the head started"; exit 1; }
        sleep 0.5
      done
      say "joining the Ray cluster at $(cat "$logs/head_address") from $ip (attempt $attempt)"
      "$python" -m ray.scripts.scripts start --address="$(cat "$logs/head_address")" "${args[@]}" &
      ray_pid=$!
    fi
    while kill -0 "$ray_pid" 2>/dev/null && [ ! -e "$logs/ENDED" ]; do sleep 1; done
    if [ -e "$logs/ENDED" ]; then
      kill -TERM "$ray_pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$ray_pid" 2>/dev/null || exit 0; sleep 0.1; done
      kill -KILL "$ray_pid" 2>/dev/null
      exit 0
    fi
    wait "$ray_pid"; code=$?
    say "Ray on this node exited with code $code before the job ended (attempt $attempt of 3)"
    sleep 2
  done
  exit $((code == 0 ? 1 : code))
fi

# --- the batch step: bring up, run, tear down --------------------------------------------------------------------
: "${SLURM_JOB_ID:?tp_ray_cluster.sh runs inside a Slurm allocation}"
attempt=${SLURM_RESTART_COUNT:-0}
logs="$here/ray_cluster/$SLURM_JOB_ID.$attempt"
mkdir -p "$logs/nodes" || exit 1
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if [ "${#nodes[@]}" -lt 2 ]; then
  say "the job needs 2 nodes, the allocation has ${#nodes[@]} (${nodes[*]}): submit with nodes=2"
  exit 2
fi
nodes=("${nodes[@]:0:2}")
head=${nodes[0]}
workers=("${nodes[@]:1}")
say "Ray head on $head, workers on ${workers[*]}; logs in $logs"

steps=()
srun --overlap --nodes=1 --ntasks=1 --nodelist="$head" bash "$here/tp_ray_cluster.sh" node head "$logs" "$attempt" &
steps+=($!)
worker_list=$(IFS=,; echo "${workers[*]}")
srun --overlap --nodes=1 --ntasks=1 --ntasks-per-node=1 --nodelist="$worker_list" \
  bash "$here/tp_ray_cluster.sh" node worker "$logs" "$attempt" &
steps+=($!)

teardown() {
  touch "$logs/ENDED"
  for _ in $(seq 100); do
    alive=0; for p in "${steps[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return
    sleep 0.1
  done
  kill -TERM "${steps[@]}" 2>/dev/null
}
trap 'teardown; exit 143' TERM
trap 'teardown; exit 130' INT
trap 'teardown; exit 129' HUP

# wait for the file-gated head, then for every node and GPU to register (fails fast when a node's step ended)
"$python" - "$logs" 2 2 120 "${steps[@]}" <<'PY'
import os, sys, time
logs, want_nodes, want_gpus, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
steps = [int(p) for p in sys.argv[5:]]
deadline = time.monotonic() + timeout


def step_ended():
    for pid in steps:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
    return False


def fail(problem):
    published = {n: open(os.path.join(logs, "nodes", n)).read().strip()
                 for n in os.listdir(os.path.join(logs, "nodes")) if not n.endswith(".tmp")}
    print(f"[tp_ray_cluster] {problem}; node addresses published: {published or 'none'}; logs: {logs}/ray-*.log",
          file=sys.stderr)
    sys.exit(1)


address = os.path.join(logs, "head_address")
while not os.path.exists(address):
    if step_ended():
        fail("the Ray head's step ended before its GCS listened")
    if time.monotonic() > deadline:
        fail(f"the Ray head did not listen within {timeout:.0f} s")
    time.sleep(0.5)
import ray  # noqa: E402

status, connected = "no node registered", False
while True:
    try:
        if not connected:
            ray.init(address=open(address).read().strip(), logging_level="ERROR", log_to_driver=False)
            connected = True
        alive = [n for n in ray.nodes() if n["Alive"]]
    except Exception as e:  # the head restarting (its start is retried): connect again until the deadline
        ray.shutdown()
        connected, alive = False, []
        status = f"cannot reach the Ray head ({type(e).__name__})"
    else:
        gpus = sum(n["Resources"].get("GPU", 0) for n in alive)
        if len(alive) >= want_nodes and gpus >= want_gpus:
            print(f"[tp_ray_cluster] {len(alive)} nodes, {gpus:g} GPUs registered", flush=True)
            break
        published = {open(os.path.join(logs, "nodes", n)).read().strip(): n
                     for n in os.listdir(os.path.join(logs, "nodes")) if not n.endswith(".tmp")}
        registered = {n["NodeManagerAddress"] for n in alive}
        missing = sorted(name for ip, name in published.items() if ip not in registered)
        status = (f"{len(alive)} of {want_nodes} nodes and {gpus:g} of {want_gpus:g} GPUs registered"
                  f" (not registered: {', '.join(missing) or 'nodes that never published an address'})")
    if step_ended():
        fail(f"a Ray node's step ended: {status}")
    if time.monotonic() > deadline:
        fail(f"Ray cluster incomplete after {timeout:.0f} s: {status}")
    time.sleep(1)
ray.shutdown()
PY
ready=$?
if [ "$ready" != 0 ]; then
  teardown
  exit 1
fi
export TP_RAY_ADDRESS
TP_RAY_ADDRESS=$(cat "$logs/head_address")
say "running the job on the Ray cluster at $TP_RAY_ADDRESS"
env PYTHONPATH="${TP_VERL_EXT}" VERL_PLATFORM=tp_cpu WANDB_MODE=disabled python3 -m verl.trainer.main_ppo '+ray_kwargs.ray_init.address='"'"''"${TP_RAY_ADDRESS}"''"'"'' trainer.nnodes=2 trainer.n_gpus_per_node=1 'trainer.default_local_dir='"'"''"${TP_RUN_DIR}"'/checkpoints'"'"'' 'trainer.experiment_name=it'"'"'s $(not) run' &
job=$!
wait "$job"; code=$?
while kill -0 "$job" 2>/dev/null; do wait "$job"; code=$?; done
say "the job exited with code $code; stopping the Ray cluster"
teardown
exit "$code"
