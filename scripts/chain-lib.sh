# chain-lib.sh - sourced by run-chain.sh and run-events.sh: start functions
# on 127.0.0.1 with their logs prefixed by name, wait for readiness, and
# stop exactly the PIDs started (SIGTERM) on Ctrl-C or exit.
# The caller sets ME (its name for messages) before sourcing.

AUDIT_PORT="${AUDIT_PORT:-8081}"
BALANCE_PORT="${BALANCE_PORT:-8082}"
TX_PORT="${TX_PORT:-8083}"
BIN="${BIN:-build/bin}"
# Where the chain keeps its state (a SQLite file per function) unless
# ZC_STORE_URL is given: build/state, so a restart shows the same balances.
STATE_DIR="${STATE_DIR:-build/state}"
HOST=127.0.0.1
pids=()
mkdir -p "$STATE_DIR"

stop() {
	trap - INT TERM EXIT
	if ((${#pids[@]})); then
		echo "$ME: stopping ${pids[*]}" >&2
		kill -TERM "${pids[@]}" 2>/dev/null
		wait "${pids[@]}" 2>/dev/null
	fi
	# the caller's own clean-up (a database), after the functions
	if declare -F on_stop >/dev/null; then on_stop; fi
	exit 0
}
trap stop INT TERM EXIT

start() { # name port env... (a ZC_STORE_URL=... among env wins)
	local name="$1" port="$2"
	shift 2
	env PORT="$port" ZC_LISTEN_ADDRESS="$HOST" \
		ZC_STORE_URL="${ZC_STORE_URL:-sqlite:$STATE_DIR/$name.db}" \
		"$@" "$BIN/$name" 2> >(sed -u "s/^/[$name] /" >&2) &
	pids+=($!)
}

# A helper process (a proxy, a database) stopped with the functions.
track() { pids+=("$1"); }

wait_ready() { # name port
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fs -o /dev/null "http://$HOST:$2/health/readiness" && return 0
		sleep 0.05
	done
	echo "$ME: $1 did not become ready on port $2" >&2
	return 1
}

# Run until Ctrl-C, or RUN_SECONDS when set; then stop.
run_until_stopped() {
	if [[ -n "${RUN_SECONDS:-}" ]]; then
		sleep "$RUN_SECONDS"
	else
		wait
	fi
	stop
}
