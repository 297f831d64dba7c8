#!/usr/bin/env bash
# `make run`: the infrastructure in the background (as `make infra-up` does),
# then the three services in the foreground, their console logs interleaved
# with each line prefixed by the service's name. Ctrl-C or SIGTERM stops the
# three services (the broker and the database keep running: `make down`);
# when one service exits on its own, the others are stopped too.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT="${SERVICES_STOP_TIMEOUT:-20}"

# Background services from `make up` hold the same ports.
if "$ROOT/deploy/local/services.sh" status 2>/dev/null | grep -q ': running'; then
    die "the services already run in the background (make up): 'make down' first, or use those"
fi

make -C "$ROOT" --no-print-directory infra-up

export_local_addresses
export_local_role_urls
export LOG_FORMAT="${LOG_FORMAT:-console}"
load_local_secrets
export PYTHONUNBUFFERED=1

for name in "${SERVICES[@]}"; do
    [[ -f "$ROOT/services/$name/__main__.py" ]] ||
        die "services/$name/__main__.py does not exist: 'python -m services.$name' cannot start"
done

declare -A PIDS=()
READY_WATCH_PID=""

stop_all() {
    local name
    trap - INT TERM
    if [[ -n "$READY_WATCH_PID" ]]; then kill "$READY_WATCH_PID" 2>/dev/null || true; fi
    for name in "${!PIDS[@]}"; do
        (stop_pid "${PIDS[$name]}" "$name" "$STOP_TIMEOUT") &
    done
    wait
}

# One signal, one SIGTERM per service. The services run in sessions of their
# own (setsid below) so that a Ctrl-C reaches only this script: a service that
# got both the terminal's SIGINT and our SIGTERM would take the second signal
# as "force exit" (uvicorn does) and skip its clean shutdown.
# shellcheck disable=SC2317  # invoked by the trap
on_signal() {
    note "stopping the services"
    stop_all
    exit 130
}
trap on_signal INT TERM

width=0
for name in "${SERVICES[@]}"; do ((${#name} > width)) && width=${#name}; done

cd "$ROOT"
for name in "${SERVICES[@]}"; do
    require_port_free "$(service_port "$name")" "service $name"
    prefix="$(printf "%-${width}s | " "$name")"
    # The prefixer ignores INT/TERM so it outlives the service and passes on
    # its last (shutdown) lines; it ends when the service closes the pipe.
    # With no job control, setsid runs in the background child itself
    # (no fork), so $! is the service's own pid.
    # Under KAFKA_SECURED=1 each service is its own Kafka principal (lib.sh); the
    # subshell execs, so $! is still the service's pid.
    (
        use_kafka_principal "$name"
        exec setsid "$VENV_PYTHON" -m "services.$name" </dev/null
    ) > >(trap '' INT TERM; exec sed -u "s/^/$prefix/") 2>&1 &
    PIDS[$name]=$!
done
targets=()
for name in "${SERVICES[@]}"; do
    targets+=("$name,http://127.0.0.1:$(service_port "$name")/readyz,${PIDS[$name]}")
done
started=""
for name in "${SERVICES[@]}"; do started+="${started:+, }$name (pid ${PIDS[$name]})"; done
note "started $started; Ctrl-C stops them"
# Say once when the whole system is ready (or which part is not).
{
    if failed="$("$VENV_PYTHON" "$ROOT/deploy/local/wait_http.py" --timeout 60 "${targets[@]}" 2>/dev/null)"; then
        note "all services ready: inbound :$(service_port inbound), consent :$(service_port consent), dispatcher :$(service_port dispatcher)"
    else
        note "WARNING: not ready after 60s: ${failed//$'\n'/ }"
    fi
} &
READY_WATCH_PID=$!

# Returns when the first service exits (or a signal arrives: the trap runs).
status=0
wait -n "${PIDS[@]}" || status=$?
for name in "${!PIDS[@]}"; do
    if ! pid_alive "${PIDS[$name]}"; then
        note "$name exited (status $status): stopping the others"
        unset "PIDS[$name]"
    fi
done
stop_all
exit "$status"
