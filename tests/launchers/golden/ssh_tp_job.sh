#!/usr/bin/env bash
# Rendered by trainer_platform (launcher=ssh) for run sft-run. It runs the verl job in the folder
# it lies in and records the job's own start and end in job_state.json (state, pid, host, UTC times, exit code), so
# the final state never depends on the process that submitted it. Secrets come from the environment, never from here.
#   bash tp_job.sh <secrets   run the job (the launcher starts it detached, in a session of its own)
#   bash tp_job.sh --alive    exit 0 while the job recorded in job_state.json is still running
#   bash tp_job.sh --cancel   stop the job and everything it started; its state becomes cancelled
# With diagnostics on, tp_monitor.py runs beside the job: a rule whose action is stop writes its reason into
# stop_requested and sends this wrapper SIGTERM; the state becomes stopped (the last checkpoint stays).
set -u
cd "$(dirname "$0")" || exit 1
here=$PWD

recorded_pid() { sed -n 's/.*"pid": \([0-9]*\).*/\1/p' job_state.json 2>/dev/null; }
is_ours() { [ -n "$1" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$here/tp_job.sh"; }
case "${1:-}" in
  --alive) is_ours "$(recorded_pid)"; exit $? ;;
  --cancel) pid=$(recorded_pid); touch cancel_requested; is_ours "$pid" && kill -TERM "$pid"; exit 0 ;;
  "") ;;
  *) echo "usage: bash tp_job.sh [--alive|--cancel]" >&2; exit 2 ;;
esac

# secrets (WANDB_API_KEY, ...) arrive on stdin as NAME=VALUE lines up to "--": never in argv, files or logs
if [ ! -t 0 ]; then
  while IFS= read -r line && [ "$line" != "--" ]; do export "$line"; done
fi
exec >>train.log 2>&1 </dev/null
now() { date -u +%Y-%m-%dT%H:%M:%S+00:00; }
started=$(now)
host=$(hostname)
record() {  # STATE EXIT_CODE FINISHED [STOP_REASON] (JSON literals); written whole, then renamed into place
  printf '{"state": "%s", "pid": %d, "host": "%s", "started": "%s", "exit_code": %s, "finished": %s%s}\n' \
    "$1" "$$" "$host" "$started" "$2" "$3" "${4:+, \"stop_reason\": $4}" >job_state.json.tmp &&
    mv -f job_state.json.tmp job_state.json
}
members() {  # M=( the other processes of this session ), with no subshell that would count as one
  M=()
  pgrep -s "$$" >.tp_members 2>/dev/null
  while read -r p; do [ "$p" != "$$" ] && M+=("$p"); done <.tp_members
}
stop_members() {  # TERM every other process of this session, KILL what is left after the grace period
  members; [ ${#M[@]} = 0 ] || kill -TERM "${M[@]}" 2>/dev/null
  for _ in $(seq 50); do members; [ ${#M[@]} = 0 ] && return; sleep 0.1; done
  kill -KILL "${M[@]}" 2>/dev/null
}
cancelled=""
on_signal() { trap '' TERM INT HUP; cancelled=$1; stop_members; }
trap 'on_signal 143' TERM
trap 'on_signal 130' INT
trap 'on_signal 129' HUP

rm -f stop_requested  # an earlier attempt's
record running null null
# WANDB_SERVICE names a W&B service of the submitting process (it is set once that process has logged to W&B): the
# job starts its own. Shared, a requeued attempt found its killed attempt's run still open there ("run ID in use").
unset WANDB_SERVICE
export TP_RUN_DIR="$here"
export TP_VERL_EXT="$here"/../../code/verl-0123456789ab
export PYTHONUNBUFFERED=1
(
  set -e
  # launcher.setup
  source ~/venvs/verl/bin/activate
  module load cuda/12.4
  set +e
  exec env PYTHONPATH="${TP_VERL_EXT}" VERL_FILE_LOGGER_PATH="${TP_RUN_DIR}"/metrics.jsonl python3 -m torch.distributed.run --nproc_per_node=2 --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint="${MASTER_ADDR}":"${MASTER_PORT}" -m verl.trainer.sft_trainer 'trainer.default_local_dir='"'"''"${TP_RUN_DIR}"'/checkpoints'"'"'' model.path="${TP_RUN_DIR}"/../../inputs/m 'trainer.experiment_name=it'"'"'s $(not) run'
) &
child=$!
wait "$child"; code=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
members; [ -n "$cancelled" ] || [ ${#M[@]} = 0 ] || stop_members  # leftovers end with the job
rm -f .tp_members
if [ -e stop_requested ]; then
  record stopped "${cancelled:-$code}" "\"$(now)\"" "$(head -n 1 stop_requested)"
elif [ -e cancel_requested ]; then
  record cancelled "${cancelled:-$code}" "\"$(now)\""
elif [ -n "$cancelled" ]; then  # stopped by a signal nobody asked for here: a scheduler's requeue or preemption
  record failed "$cancelled" "\"$(now)\""
elif [ "$code" = 0 ]; then
  record succeeded 0 "\"$(now)\""
else
  record failed "$code" "\"$(now)\""
fi
exit "$code"
