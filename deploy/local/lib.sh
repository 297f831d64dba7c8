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

# The local stack's secrets (the webhook's, and the keys that sign and verify
# events from WhatsApp): each generated once into .local/secrets.env (random,
# readable by this user only) and exported, unless the environment already sets
# it. No public default exists: the services refuse to start without them.
load_local_secrets() {
    local file="$LOCAL_DIR/secrets.env"
    "$VENV_PYTHON" "$ROOT/deploy/local/local_secrets.py" "$file" ||
        die "cannot write the local secrets into $file"
    # Split at the first '=' by hand: `IFS='=' read` drops a value's trailing '=',
    # which is base64's padding.
    local line name value
    while IFS= read -r line; do
        name="${line%%=*}"
        value="${line#*=}"
        [[ -n "$name" && "$line" == *=* && -z "${!name:-}" ]] && export "$name=$value"
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

# The local secured Kafka (KAFKA_SECURED=1, deploy/local/kafka.sh): SASL/SCRAM-SHA-512
# users for the super user and every principal of shared/kafka/acl_matrix.py's MATRIX
# (each service, `producer` for the other systems, `gateway` for the webhook gateways;
# tests/unit/test_acl_matrix.py keeps the two lists equal). Their passwords are generated
# once into KAFKA_USERS_FILE (default .local/kafka-users.env, readable by this
# user only) as KAFKA_PASSWORD_<NAME>=...; the broker's storage is formatted with them.
KAFKA_PRINCIPALS=(admin inbound consent dispatcher audit producer gateway)
KAFKA_USERS_FILE="$(realpath -m -- "${KAFKA_USERS_FILE:-$LOCAL_DIR/kafka-users.env}")"

kafka_secured() {
    case "${KAFKA_SECURED:-0}" in
    1) return 0 ;;
    0 | "") return 1 ;;
    *) die "KAFKA_SECURED must be 1 (a secured local Kafka) or 0, not '$KAFKA_SECURED'" ;;
    esac
}

# Adds a password for every principal the file lacks (none on later calls).
ensure_kafka_users() {
    local name missing=()
    for name in "${KAFKA_PRINCIPALS[@]}"; do
        grep -q "^KAFKA_PASSWORD_${name^^}=" "$KAFKA_USERS_FILE" 2>/dev/null || missing+=("$name")
    done
    ((${#missing[@]} > 0)) || return 0
    mkdir -p "$(dirname "$KAFKA_USERS_FILE")"
    (
        umask 077
        # Hex: nothing the StorageTool's --add-scram syntax or a JAAS line would parse.
        "$VENV_PYTHON" -c 'import secrets, sys
for name in sys.argv[1:]:
    print(f"KAFKA_PASSWORD_{name.upper()}={secrets.token_hex(24)}")' "${missing[@]}" >>"$KAFKA_USERS_FILE"
    )
    note "generated the Kafka passwords of ${missing[*]} into $KAFKA_USERS_FILE"
}

# kafka_password NAME: prints principal NAME's password.
kafka_password() {
    local password
    ensure_kafka_users
    password="$(sed -n "s/^KAFKA_PASSWORD_${1^^}=//p" "$KAFKA_USERS_FILE" | tail -n1)"
    [[ -n "$password" ]] || die "no password for the Kafka principal '$1' in $KAFKA_USERS_FILE"
    echo "$password"
}

# use_kafka_principal NAME: under KAFKA_SECURED=1, exports the client settings
# (shared/kafka/security.py) that make this shell's children principal NAME of the
# local secured Kafka; otherwise does nothing. Call it in a subshell to give one
# process its own principal.
use_kafka_principal() {
    kafka_secured || return 0
    local password
    password="$(kafka_password "$1")" || exit 1
    export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512
    export KAFKA_SASL_USERNAME="$1" KAFKA_SASL_PASSWORD="$password"
}

# The local cluster's service roles (docs/security.md): each service's own URL
# (`postgres.sh role-urls`), exported unless the environment sets it. None when
# DATABASE_URL names another database: every service then connects as DATABASE_URL.
export_local_role_urls() {
    local urls name value
    urls="$("$ROOT/deploy/local/postgres.sh" role-urls)" ||
        die "no service roles for the local PostgreSQL: run 'deploy/local/postgres.sh start' (make infra-up)"
    while IFS='=' read -r name value; do
        [[ -n "$name" && -z "${!name:-}" ]] && export "$name=$value"
    done <<<"$urls"
    return 0
}
