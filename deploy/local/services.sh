#!/usr/bin/env bash
# The three services as background processes (for `make up` / `make down`).
#
#   deploy/local/services.sh start    start the ones not running, return when every /readyz is 200
#   deploy/local/services.sh stop     SIGTERM, wait, SIGKILL after a bound
#   deploy/local/services.sh status   exit 0 when all run (3 when any does not)
#
# Pid files and logs: .local/services/<name>.pid and <name>.log.
# Environment passed through, with local defaults: KAFKA_BOOTSTRAP_SERVERS
# (the local Kafka instance's, `kafka.sh bootstrap`: 3 brokers under
# KAFKA_BROKERS=3), DATABASE_URL (`postgres.sh url`), each service's role URL
# (`postgres.sh role-urls`, none when DATABASE_URL names another database; see
# docs/security.md), LOG_FORMAT (json by
# default: these logs are for machines), and anything else the services read
# (LOG_LEVEL, WHATSAPP_*, <SERVICE>_*). Under KAFKA_SECURED=1 each service gets
# the SASL credentials of its own Kafka principal (KAFKA_SASL_USERNAME=<name>, ...).
# Ports: 8081 inbound, 8082 consent, 8083 dispatcher, or the services' own
# INBOUND_HTTP_PORT / CONSENT_HTTP_PORT / DISPATCHER_HTTP_PORT when set.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SVC_DIR="$LOCAL_DIR/services"
READY_TIMEOUT="${SERVICES_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${SERVICES_STOP_TIMEOUT:-20}"

# Only a service of this clone has this command line.
marker_of() {
    echo "$VENV_PYTHON -m services.$1"
}

# The pid of our running service: from its pid file, or (pid file lost) from
# the process listening on its port when that process is ours.
service_pid() {
    local name="$1" pid p
    pid="$(live_pid_from_file "$SVC_DIR/$name.pid" "$(marker_of "$name")")"
    if [[ -z "$pid" ]]; then
        for p in $(port_pids "$(service_port "$name")"); do
            if [[ "$p" != "?" && "$(pid_cmdline "$p")" == *"$(marker_of "$name")"* ]]; then
                pid="$p"
                echo "$pid" >"$SVC_DIR/$name.pid"
                break
            fi
        done
    fi
    echo "$pid"
}

show_log_tail() {
    local name="$1"
    echo "---- last lines of $SVC_DIR/$name.log ----" >&2
    tail -n 40 "$SVC_DIR/$name.log" >&2 2>/dev/null || echo "(no log)" >&2
    echo "----" >&2
}

cmd_start() {
    require_venv
    mkdir -p "$SVC_DIR"
    export_local_addresses
    export_local_role_urls
    export LOG_FORMAT="${LOG_FORMAT:-json}"
    load_local_secrets
    export PYTHONUNBUFFERED=1 # a crash's last lines must reach the log

    local name pid to_start=() targets=()
    # Check everything before starting anything: all or nothing.
    for name in "${SERVICES[@]}"; do
        [[ -f "$ROOT/services/$name/__main__.py" ]] ||
            die "services/$name/__main__.py does not exist: 'python -m services.$name' cannot start"
        pid="$(service_pid "$name")"
        if [[ -n "$pid" ]]; then
            note "$name already running (pid $pid)"
            targets+=("$name,http://127.0.0.1:$(service_port "$name")/readyz,$pid")
        else
            require_port_free "$(service_port "$name")" "service $name"
            to_start+=("$name")
        fi
    done

    for name in "${to_start[@]}"; do
        if [[ -f "$SVC_DIR/$name.log" ]]; then mv -f "$SVC_DIR/$name.log" "$SVC_DIR/$name.log.1"; fi
        rm -f "$SVC_DIR/$name.pid"
        # setsid: own session, out of reach of a Ctrl-C in the terminal that
        # ran `make up`. The wrapper records the pid that then becomes python,
        # and runs it from the repo root, as `make run` does.
        # Under KAFKA_SECURED=1 each service is its own Kafka principal (lib.sh).
        (
            use_kafka_principal "$name"
            # shellcheck disable=SC2016  # expanded by the inner bash
            exec setsid bash -c 'echo $$ >"$0"; cd "$1" && shift && exec "$@"' "$SVC_DIR/$name.pid" "$ROOT" \
                "$VENV_PYTHON" -m "services.$name" </dev/null >>"$SVC_DIR/$name.log" 2>&1
        ) &
    done
    for name in "${to_start[@]}"; do
        for _ in {1..50}; do
            [[ -s "$SVC_DIR/$name.pid" ]] && break
            sleep 0.1
        done
        pid="$(tr -dc '0-9' <"$SVC_DIR/$name.pid" 2>/dev/null || true)"
        [[ -n "$pid" ]] || die "$name did not start (no pid written)"
        note "started $name (pid $pid, port $(service_port "$name"), log $SVC_DIR/$name.log)"
        targets+=("$name,http://127.0.0.1:$(service_port "$name")/readyz,$pid")
    done

    local failed
    if failed="$("$VENV_PYTHON" "$ROOT/deploy/local/wait_http.py" --timeout "$READY_TIMEOUT" "${targets[@]}")"; then
        note "all services ready"
        return 0
    fi
    for name in $failed; do
        show_log_tail "$name"
    done
    # Leave nothing half-started behind: stop what this call started.
    for name in "${to_start[@]}"; do
        pid="$(service_pid "$name")"
        [[ -n "$pid" ]] && stop_pid "$pid" "$name" "$STOP_TIMEOUT"
        rm -f "$SVC_DIR/$name.pid"
    done
    die "not ready: ${failed//$'\n'/ } (reasons and log tails above; logs in $SVC_DIR)"
}

cmd_stop() {
    local name pid
    mkdir -p "$SVC_DIR"
    # In parallel: each service may take seconds to leave its consumer group.
    for name in "${SERVICES[@]}"; do
        pid="$(service_pid "$name")"
        if [[ -z "$pid" ]]; then
            note "$name not running"
            continue
        fi
        (stop_pid "$pid" "$name" "$STOP_TIMEOUT" && rm -f "$SVC_DIR/$name.pid") &
    done
    wait
}

cmd_status() {
    local name pid rc=0
    mkdir -p "$SVC_DIR"
    for name in "${SERVICES[@]}"; do
        pid="$(service_pid "$name" 2>/dev/null)"
        if [[ -n "$pid" ]]; then
            echo "$name: running (pid $pid) on port $(service_port "$name"), log $SVC_DIR/$name.log"
        else
            echo "$name: not running"
            rc=3
        fi
    done
    return "$rc"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
