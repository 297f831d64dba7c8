# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source this
# Helpers shared by deploy/local/*.sh (sourced, not executed).
#
# They manage background processes by pid file: a pid file is trusted only
# while its process is alive AND its command line is still ours, because pids
# are reused and a pid file left over from an earlier run (kill -9, reboot,
# a machine handed over) must never make a script signal a stranger's process.

# The repository root, from this file's location, so the scripts work from any
# clone path and any working directory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
LOCAL_DIR="$ROOT/.local"
VENV_PYTHON="$ROOT/.venv/bin/python"

# The connection strings the local stack serves come from the scripts that
# run it: `kafka.sh bootstrap` and `postgres.sh url` (with no variable set,
# 127.0.0.1:9092 and postgresql://consent:consent@127.0.0.1:55432/consent,
# CONTRACT.md section 7).

# The services, in start order, and their HTTP ports (CONTRACT.md section 6),
# overridable with the variables the services themselves read.
SERVICES=(inbound consent dispatcher)
service_port() {
    case "$1" in
    inbound) echo "${INBOUND_HTTP_PORT:-8081}" ;;
    consent) echo "${CONSENT_HTTP_PORT:-8082}" ;;
    dispatcher) echo "${DISPATCHER_HTTP_PORT:-8083}" ;;
    *) echo "unknown service $1" >&2; return 1 ;;
    esac
}

_script_name="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"

die() {
    echo "[$_script_name] ERROR: $*" >&2
    exit 1
}

note() {
    echo "[$_script_name] $*" >&2
}

require_venv() {
    [[ -x "$VENV_PYTHON" ]] || die "no virtualenv at $ROOT/.venv: run 'make venv' first"
}

# pid_alive PID: true when a process with that pid exists (and is not a zombie).
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A zombie answers kill -0 but is dead for our purposes.
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]]
}

# pid_cmdline PID: the process's command line with spaces between arguments.
pid_cmdline() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# live_pid_from_file FILE MARKER: prints the pid stored in FILE when that
# process is alive and its command line contains MARKER (a string only our
# process has, such as the absolute path of its config). Otherwise removes the
# stale file and prints nothing.
live_pid_from_file() {
    local file="$1" marker="$2" pid
    [[ -f "$file" ]] || return 0
    pid="$(tr -dc '0-9' <"$file")"
    if [[ -n "$pid" ]] && pid_alive "$pid" && [[ "$(pid_cmdline "$pid")" == *"$marker"* ]]; then
        echo "$pid"
    else
        note "removing stale pid file $file${pid:+ (pid $pid is not our process any more)}"
        rm -f "$file"
    fi
}

# pids_with_arg ARG MARKER: the live processes that have ARG as one whole
# argument and MARKER in their command line, one per line: how a server of ours
# is found when its pid file was lost (ARG is, say, the absolute path of its
# config, which only that server has).
pids_with_arg() {
    local arg="$1" marker="$2" file pid
    while IFS= read -r file; do
        pid="${file#/proc/}"
        pid="${pid%/cmdline}"
        if pid_alive "$pid" && [[ "$(pid_cmdline "$pid")" == *"$marker"* ]]; then
            echo "$pid"
        fi
    done < <(grep -lsFxz -- "$arg" /proc/[0-9]*/cmdline 2>/dev/null || true)
}

# port_pids PORT: the pids of the processes listening on TCP PORT (any local
# address), one per line. Empty when the port is free. When `ss` cannot name
# the owner (not root and not our process), prints "?" for a listener found.
port_pids() {
    local port="$1" out
    if command -v ss >/dev/null 2>&1; then
        out="$(ss -Hltnp "sport = :$port" 2>/dev/null || true)"
        [[ -n "$out" ]] || return 0
        if grep -q 'pid=' <<<"$out"; then
            grep -o 'pid=[0-9]*' <<<"$out" | cut -d= -f2 | sort -u
        else
            echo "?"
        fi
    else
        # No iproute2: a connect() tells whether something listens, not who.
        if python3 - "$port" <<'PY' 2>/dev/null; then echo "?"; fi
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
    fi
}

# describe_pid PID: "pid N: command line" for error messages.
describe_pid() {
    if [[ "$1" == "?" ]]; then
        echo "a process this user cannot see"
    else
        echo "pid $1: $(pid_cmdline "$1" | cut -c1-200)"
    fi
}

# require_port_free PORT WHAT: dies with a clear message when something
# already listens on PORT.
require_port_free() {
    local port="$1" what="$2" pids pid
    pids="$(port_pids "$port")"
    [[ -z "$pids" ]] && return 0
    for pid in $pids; do
        echo "[$_script_name] ERROR: port $port (needed by $what) is already taken by $(describe_pid "$pid")" >&2
    done
    die "free port $port (stop that process) and try again"
}

# stop_pid PID NAME TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S for a clean
# shutdown, then SIGKILL (a stuck process must not make `make down` hang).
stop_pid() {
    local pid="$1" name="$2" timeout="$3" waited=0
    pid_alive "$pid" || return 0
    note "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if ((waited >= timeout * 10)); then
            note "$name (pid $pid) still running after ${timeout}s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in {1..50}; do pid_alive "$pid" || break; sleep 0.1; done
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# The local stack's webhook secrets: generated once into .local/secrets.env
# (random, readable by this user only) and exported, unless the environment
# already sets them. No public default exists: inbound refuses to start without.
load_local_secrets() {
    local file="$LOCAL_DIR/secrets.env"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$LOCAL_DIR"
        (
            umask 077
            "$VENV_PYTHON" -c 'import secrets
print("WHATSAPP_APP_SECRET=" + secrets.token_hex(16))
print("WHATSAPP_VERIFY_TOKEN=" + secrets.token_urlsafe(24))' >"$file.tmp"
        )
        mv "$file.tmp" "$file"
        note "generated the local webhook secrets into $file"
    fi
    local name value
    while IFS='=' read -r name value; do
        [[ -n "$name" && -z "${!name:-}" ]] && export "$name=$value"
    done <"$file"
    return 0
}

# The local instances' addresses unless the environment gives them (under
# KAFKA_BROKERS=3, the cluster's), exported for the services.
export_local_addresses() {
    if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        KAFKA_BOOTSTRAP_SERVERS="$("$ROOT/deploy/local/kafka.sh" bootstrap)"
    fi
    if [[ -z "${DATABASE_URL:-}" ]]; then
        DATABASE_URL="$("$ROOT/deploy/local/postgres.sh" url)"
    fi
    export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
}
