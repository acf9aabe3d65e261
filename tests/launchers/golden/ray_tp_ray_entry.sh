#!/usr/bin/env bash
# Rendered by trainer_platform (launcher=ray) for run sft-run: the Ray job's entrypoint, `bash tp_ray_entry.sh
# TAG`. Ray runs it in the job's working directory (what the launcher shipped: this file, the platform's verl/
# folder, the job's inputs) on the cluster. It runs the job in the run dir there and records the job's own start and
# end in job_state.json (state, pid, host, UTC times, exit code); Ray's job status is the scheduler's view. verl's
# driver attaches to that cluster (ray_init.address=auto, never sized with num_cpus/num_gpus). Secrets come from the
# cluster's environment.
# That run dir is not the submitting side's: tp_logsync.py sends metrics.jsonl, diagnostics.jsonl, verl's checkpoint
# pointer and job_state.json back through this job's output as lines marked with TAG (made per submission, never in
# the job's environment); the launcher writes them into the local run dir and leaves them out of train.log.
# With diagnostics on, tp_monitor.py runs beside the job: a rule whose action is stop prints its reason into this
# job's output, writes it into stop_requested and sends this script SIGTERM; the state becomes stopped.
set -u
tag=${1:-}
work=$PWD
export TP_RUN_DIR="$work"
export TP_VERL_EXT="$work"/verl
export PYTHONUNBUFFERED=1
# Ray's job supervisor leaves its GPU workaround in the entrypoint's environment (meant for the supervisor alone: Ray
# keeps it from the job's tasks and actors); verl's torchrun ranks (SFT, DPO) took it to mean they were Ray actors
unset RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES
mkdir -p "$TP_RUN_DIR" && cd "$TP_RUN_DIR" || exit 1
rm -f stop_requested job_state.json metrics.jsonl diagnostics.jsonl  # an earlier attempt's
now() { date -u +%Y-%m-%dT%H:%M:%S+00:00; }
started=$(now)
host=$(hostname)
record() {  # STATE EXIT_CODE FINISHED [STOP_REASON] (JSON literals); written whole, then renamed into place
  printf '{"state": "%s", "pid": %d, "host": "%s", "started": "%s", "exit_code": %s, "finished": %s%s}\n' \
    "$1" "$$" "$host" "$started" "$2" "$3" "${4:+, \"stop_reason\": $4}" >job_state.json.tmp &&
    mv -f job_state.json.tmp job_state.json
}
child=""
cancelled=""
on_signal() { cancelled=$1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null; }
trap 'on_signal 143' TERM
trap 'on_signal 130' INT
trap 'on_signal 129' HUP

record running null null
python3 "$work"/tp_logsync.py . --tag "$tag" --pid $$ &
sync=$!
python3 "$work"/tp_monitor.py . --config "$work"/tp_diagnostics.json --pid $$ &
monitor=$!
env PYTHONPATH="${TP_VERL_EXT}" VERL_FILE_LOGGER_PATH="${TP_RUN_DIR}"/metrics.jsonl python3 -m torch.distributed.run --nproc_per_node=2 --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint="${MASTER_ADDR}":"${MASTER_PORT}" -m verl.trainer.sft_trainer 'trainer.default_local_dir='"'"''"${TP_RUN_DIR}"'/checkpoints'"'"'' model.path="${TP_RUN_DIR}"/../../inputs/m 'trainer.experiment_name=it'"'"'s $(not) run' &
child=$!
wait "$child"; code=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
kill -TERM "$monitor" 2>/dev/null; wait "$monitor"  # its last look at the metrics, then it ends
if [ -e stop_requested ]; then
  record stopped "$code" "\"$(now)\"" "$(head -n 1 stop_requested)"
elif [ -n "$cancelled" ]; then  # Ray's stop (it signals every process of the job)
  record cancelled "$code" "\"$(now)\""
elif [ "$code" = 0 ]; then
  record succeeded 0 "\"$(now)\""
else
  record failed "$code" "\"$(now)\""
fi
wait "$sync"  # it ends once it has sent the record above: all of it is in the job's output before the job ends
exit "$code"
