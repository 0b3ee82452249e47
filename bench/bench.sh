#!/usr/bin/env bash
# bench.sh - Zenith C's benchmark (`make bench`, issues 7 and 13): our
# three-function chain with each of its stores (memory:, the default SQLite
# file, a private PostgreSQL 15 with default durability), a bare
# libmicrohttpd ceiling server and, when ../shared/peers/go-chain is present,
# the seed's Go chain as written and --tuned, loaded side by side with wrk on
# loopback; profiles the durable chains; prints a table and the issues' ratios
# (met / not met), writes TSV + markdown + a gnuplot PNG under build/bench/.
# See bench/README.md.
#
# BENCH_SMOKE=1 (`make bench-smoke`): 1 repeat of 2 s at 16 connections, ours
# only (memory: on every target, SQLite on /transaction), no warm-up, no Go,
# no PostgreSQL, no profile; exits non-zero if a server died or a request
# erred.
# BENCH_REPORT=1: draw the tables and plot again from the last run's TSVs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

SMOKE="${BENCH_SMOKE:-0}"
if [[ "$SMOKE" == 1 ]]; then
	REPEAT="${REPEAT:-1}" DURATION="${DURATION:-2}" CONNS="${CONNS:-16}"
	WARMUP="${WARMUP:-0}" COLD_RUNS="${COLD_RUNS:-5}" COLD_SETS="${COLD_SETS:-1}"
	OUT="${OUT:-$ROOT/build/bench/smoke}" WITH_GO="${WITH_GO:-0}"
	WITH_PG="${WITH_PG:-0}" PROFILE="${PROFILE-}" COLD_FNS="${COLD_FNS:-audit}"
	DURABLE_TARGETS="${DURABLE_TARGETS:-transaction}" # through both stateful functions
else
	REPEAT="${REPEAT:-3}" DURATION="${DURATION:-10}" CONNS="${CONNS:-1 16 64 256}"
	WARMUP="${WARMUP:-2}" COLD_RUNS="${COLD_RUNS:-10}" COLD_SETS="${COLD_SETS:-3}"
	OUT="${OUT:-$ROOT/build/bench}" WITH_GO="${WITH_GO:-auto}"
	WITH_PG="${WITH_PG:-auto}" PROFILE="${PROFILE-ours ours-sqlite ours-pg}"
	COLD_FNS="${COLD_FNS:-audit balance tx}"
fi
WITH_SQLITE="${WITH_SQLITE:-1}"
# The durable chains run only where their targets are measured: the
# stateful routes, at the largest connection count (see bench/README.md).
DURABLE_TARGETS="${DURABLE_TARGETS:-update transaction}"
# 64 as well when measured: issue 16's throughput and p99 targets are at 64.
DURABLE_CONNS="${DURABLE_CONNS:-$(tr ' ' '\n' <<<"$CONNS" | sort -n | awk '$1 == 64 {print} {m = $1} END {if (m != 64) print m}' | tr '\n' ' ' | sed 's/ $//')}"
WRK_TIMEOUT="${WRK_TIMEOUT:-2s}"
CMAX="$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1)"
# BIN=DIR: measure those binaries as they are (no `make all`), e.g. a copy
# taken while the tree is being edited.
[[ -n "${BIN:-}" ]] && BUILD_OURS="${BUILD_OURS:-0}"
BUILD_OURS="${BUILD_OURS:-1}"
BIN="${BIN:-$ROOT/build/bin}"
PG_SH="$ROOT/tests/pg/pg.sh"
PG_BIN=/usr/lib/postgresql/15/bin
PEERS="${PEERS:-$ROOT/../shared/peers}"
STRICT="${BENCH_STRICT:-0}"
REPORT="${BENCH_REPORT:-0}"
HOST=127.0.0.1
CLK_TCK="$(getconf CLK_TCK)"

AUDIT_BODY='{"action":"test","details":{"k":"v"}}'
ACCOUNT_BODY='{"account":"ACC-001","amount":100.5}'
ROLES=(audit balance tx)
declare -A BINNAME=([audit]=audit-logger [balance]=balance-manager [tx]=transaction-processor)

say() { printf '%s\n' "$*"; }
die() { say "bench: $*" >&2; exit 1; }

# --- targets -----------------------------------------------------------------

TARGETS=(log update transaction)
declare -A TPATH=([log]=/log [update]=/update [transaction]=/transaction)
declare -A TBODY=([log]="$AUDIT_BODY" [update]="$ACCOUNT_BODY" [transaction]="$ACCOUNT_BODY")
declare -A TROLE=([log]=audit [update]=balance [transaction]=tx)
# The processes a request to the target runs through (for CPU per request).
declare -A TROLES=([log]="audit" [update]="balance audit" [transaction]="tx balance audit")

entry_role() { [[ "$1" == ceiling ]] && echo ceiling || echo "${TROLE[$2]}"; }
target_roles() { [[ "$1" == ceiling ]] && echo ceiling || echo "${TROLES[$2]}"; }
is_ours() { [[ "$1" == ours || "$1" == ours-* ]]; }
is_durable() { [[ "$1" == ours-sqlite || "$1" == ours-pg ]]; }
inlist() { [[ " $2 " == *" $1 "* ]]; } # word list
systems_for() { # target [conns]: who serves it (the ceiling stands in for /log)
	local s out=()
	for s in "${SYSTEMS[@]}"; do
		[[ "$s" == ceiling && "$1" != log ]] && continue
		if is_durable "$s"; then
			inlist "$1" "$DURABLE_TARGETS" || continue
			[[ -z "${2:-}" ]] || inlist "$2" "$DURABLE_CONNS" || continue
		fi
		out+=("$s")
	done
	echo "${out[*]}"
}

roles_of() { [[ "$1" == ceiling ]] && echo ceiling || echo "${ROLES[*]}"; }

if [[ "$REPORT" != 1 ]]; then # the measuring part; BENCH_REPORT=1 only re-renders

# --- packages ---------------------------------------------------------------

ensure_pkgs() { # debian-package...
	local p missing=() sudo=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	say "bench: installing ${missing[*]}"
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || die "missing ${missing[*]}: install them (root or sudo needed)"
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

if [[ "$WITH_GO" == auto ]]; then
	[[ -x "$PEERS/go-chain/build.sh" ]] && WITH_GO=1 || WITH_GO=0
fi
if [[ "$WITH_PG" == auto ]]; then
	# Installs nothing for it: scripts/install-deps.sh brings postgresql-15.
	[[ -x "$PG_SH" && -x "$PG_BIN/initdb" ]] && command -v psql >/dev/null && WITH_PG=1 || WITH_PG=0
fi
pkgs=(wrk curl iproute2 procps gcc pkg-config libmicrohttpd-dev)
[[ "$SMOKE" == 1 ]] || pkgs+=(gnuplot-nox)
[[ "$WITH_GO" == 1 ]] && pkgs+=(golang-go)
[[ "$WITH_SQLITE" == 1 ]] && pkgs+=(libsqlite3-0)
[[ "$WITH_PG" == 1 ]] && pkgs+=(postgresql-15 postgresql-client-15 libpq5)
ensure_pkgs "${pkgs[@]}"

# --- build (release flags: the project's default -O2 build) ----------------

mkdir -p "$OUT/bin" "$OUT/logs" "$OUT/raw"
rm -f "$OUT"/raw/* "$OUT"/logs/*
if [[ "$BUILD_OURS" == 1 ]]; then
	say "bench: building (make all, ceiling, coldstart, threadstates)"
	make --no-print-directory -s -C "$ROOT" all || die "make all failed"
else
	say "bench: measuring the binaries in $BIN as they are (no make all)"
fi
for r in "${ROLES[@]}"; do [[ -x "$BIN/${BINNAME[$r]}" ]] || die "missing $BIN/${BINNAME[$r]}"; done
# The ceiling gets the same optimisation and hardening flags as the runtime.
CFLAGS_BENCH=(-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2
	-fstack-protector-strong -fPIE -pthread)
# shellcheck disable=SC2046  # pkg-config output is a word list
cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/ceiling" bench/ceiling.c -pie -Wl,-z,relro,-z,now \
	$(pkg-config --cflags --libs libmicrohttpd) || die "building bench/ceiling.c failed"
cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/coldstart" bench/coldstart.c || die "building bench/coldstart.c failed"
cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/threadstates" bench/threadstates.c || die "building bench/threadstates.c failed"

SYSTEMS=(ours)
[[ "$WITH_SQLITE" == 1 ]] && SYSTEMS+=(ours-sqlite)
[[ "$WITH_PG" == 1 ]] && SYSTEMS+=(ours-pg)
if [[ "$WITH_GO" == 1 ]]; then
	GO_DIR="$OUT/go-chain"
	say "bench: building the seed's Go chain ($PEERS/go-chain/build.sh --tuned)"
	GO_CHAIN_BUILD_DIR="$GO_DIR" "$PEERS/go-chain/build.sh" --tuned >"$OUT/logs/go-build.txt" 2>&1 ||
		{ cat "$OUT/logs/go-build.txt" >&2; die "Go chain build failed"; }
	SYSTEMS+=(go go-tuned)
fi
SYSTEMS+=(ceiling)

# --- processes: started on 127.0.0.1 only, killed by PID on exit ------------

declare -A PID PORT LOG
ALL_PIDS=()
USED_PORTS=" "
PORT_NEXT=$((20000 + ($$ % 90) * 128)) # below the ephemeral range (32768+)

cleanup() {
	local p i
	trap - EXIT INT TERM
	[[ -n "${WRK_PID:-}" ]] && kill -TERM "$WRK_PID" 2>/dev/null
	for p in "${ALL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${ALL_PIDS[@]}"; do
		for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	stop_stores
}

# --- stores: a fresh directory for the SQLite files, a private PostgreSQL ----

SQLITE_DIR="$OUT/sqlite" # TMPDIR of ours-sqlite: the default file location
PG_DIR="" PG_PID="" PG_PORT=""
PG_DBS=(audit_logger balance_manager transaction_processor)
declare -A PG_DB=([audit]=audit_logger [balance]=balance_manager [tx]=transaction_processor)

psql_pg() { # db args...: psql on the private server, as its superuser
	local db="$1"
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

start_stores() {
	local url i
	if [[ "$WITH_SQLITE" == 1 ]]; then
		rm -rf "$SQLITE_DIR" "$SQLITE_DIR-cold"
		mkdir -p "$SQLITE_DIR" "$SQLITE_DIR-cold" || die "cannot create $SQLITE_DIR"
	fi
	[[ "$WITH_PG" == 1 ]] || return 0
	# tests/pg/pg.sh: initdb as the postgres user, 127.0.0.1 on a free port,
	# its own socket directory, the postmaster's PID in $PG_DIR/pid.
	PG_DIR="$(mktemp -d "$OUT/pg.XXXXXX")" || die "mktemp failed"
	url="$("$PG_SH" start "$PG_DIR" 2>"$OUT/logs/pg-start.txt")" ||
		{ cat "$OUT/logs/pg-start.txt" >&2; die "PostgreSQL did not start (tests/pg/pg.sh)"; }
	PG_PID="$(<"$PG_DIR/pid")"
	PG_PORT="$(sed -n 's|^postgresql://[^@]*@[^:]*:\([0-9]*\)/.*|\1|p' <<<"$url")"
	[[ -n "$PG_PORT" ]] || die "cannot read the port of $url"
	# pg.sh runs its servers with fsync=off and full_page_writes=off, for
	# tests; this one gets PostgreSQL's defaults back (both are reloadable
	# settings), and synchronous_commit stays at its default, on.
	psql_pg postgres -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET full_page_writes" \
		-c "SELECT pg_reload_conf()" >/dev/null || die "cannot reset fsync on the private PostgreSQL"
	for ((i = 0; i < 50; i++)); do
		[[ "$(psql_pg postgres -c "SELECT current_setting('fsync') || current_setting('full_page_writes')")" == onon ]] && break
		sleep 0.1
	done
	PG_SETTINGS="$(psql_pg postgres -F= -c "SELECT name, setting FROM pg_settings WHERE name IN
		('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers',
		 'max_connections', 'commit_delay', 'wal_level', 'server_version') ORDER BY name" | tr '\n' ' ')"
	[[ "$PG_SETTINGS" == *"fsync=on"* && "$PG_SETTINGS" == *"synchronous_commit=on"* ]] ||
		die "the private PostgreSQL is not durable: $PG_SETTINGS"
	for i in "${PG_DBS[@]}" "${PG_DBS[@]/#/cold_}"; do
		psql_pg postgres -c "CREATE DATABASE $i" || die "CREATE DATABASE $i failed"
	done
	say "bench: PostgreSQL pid $PG_PID on $HOST:$PG_PORT ($PG_DIR): $PG_SETTINGS"
}

stop_stores() {
	if [[ -n "$PG_DIR" ]]; then
		cp "$PG_DIR/log" "$OUT/logs/postgres.log" 2>/dev/null
		# pg_ctl stop -m fast, then SIGKILL to $PG_DIR/pid; removes $PG_DIR.
		"$PG_SH" stop "$PG_DIR" >/dev/null 2>&1 || say "bench: stopping PostgreSQL ($PG_DIR) failed"
		PG_DIR=""
	fi
	if [[ "$WITH_SQLITE" == 1 && -d "$SQLITE_DIR" ]]; then
		ls -l "$SQLITE_DIR" "$SQLITE_DIR-cold" >"$OUT/logs/sqlite-files.txt" 2>&1
		rm -rf "$SQLITE_DIR" "$SQLITE_DIR-cold"
	fi
}

# The store of a system's function: the environment it is started with.
store_env() { # system role [cold] -> REPLY_ENV
	REPLY_ENV=()
	case "$1" in
	ours) REPLY_ENV=(ZC_STORE_URL=memory:) ;;
	# ZC_STORE_URL unset: the default, a SQLite file named for the function in $TMPDIR.
	ours-sqlite) REPLY_ENV=("TMPDIR=$SQLITE_DIR${3:+-cold}") ;;
	ours-pg) REPLY_ENV=("ZC_STORE_URL=postgresql://postgres@$HOST:$PG_PORT/${3:+cold_}${PG_DB[$2]}?connect_timeout=5") ;;
	esac
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT TERM

next_port() { # sets REPLY to a port nothing on this machine uses
	local p
	for ((p = PORT_NEXT; p < PORT_NEXT + 4000; p++)); do
		[[ "$USED_PORTS" == *" $p "* ]] && continue
		if [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]]; then
			USED_PORTS+="$p "
			PORT_NEXT=$((p + 1))
			REPLY=$p
			return 0
		fi
	done
	die "no free port"
}

# Settings that would make a run differ from what users run by default.
CLEAN_ENV=()
while IFS='=' read -r k _; do
	[[ "$k" == ZC_* || "$k" == GOMAXPROCS || "$k" == GOGC || "$k" == GODEBUG ||
		"$k" == LOG_LEVEL || "$k" == K_SERVICE || "$k" == *_URL || "$k" == PG* ||
		"$k" == AUDIT_MODE || "$k" == EVENT_MODE || "$k" == K_SINK ]] && CLEAN_ENV+=(-u "$k")
done < <(env)

start() { # system role binary env...
	local sys="$1" role="$2" bin="$3"
	shift 3
	next_port
	PORT[$sys/$role]=$REPLY
	LOG[$sys/$role]="$OUT/logs/$sys.$role.log"
	: >"${LOG[$sys/$role]}"
	# O_APPEND (>>), like a log file users keep, so it can be emptied between runs.
	env "${CLEAN_ENV[@]}" PORT="$REPLY" "$@" "$bin" </dev/null >>"${LOG[$sys/$role]}" 2>&1 &
	PID[$sys/$role]=$!
	ALL_PIDS+=($!)
}

wait_up() { # system role: any HTTP answer on the port
	local i code
	for ((i = 0; i < 500; i++)); do
		kill -0 "${PID[$1/$2]}" 2>/dev/null || { say "bench: $1 $2 exited at start-up:"; tail -5 "${LOG[$1/$2]}"; return 1; }
		code="$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://$HOST:${PORT[$1/$2]}/" 2>/dev/null)"
		[[ -n "$code" && "$code" != 000 ]] && return 0
		sleep 0.02
	done
	say "bench: $1 $2 did not answer on port ${PORT[$1/$2]}"
	return 1
}

start_system() { # system
	local sys="$1" dir
	case "$sys" in
	ours | ours-*)
		store_env "$sys" audit
		start "$sys" audit "$BIN/audit-logger" ZC_LISTEN_ADDRESS=$HOST "${REPLY_ENV[@]}" &&
			wait_up "$sys" audit || return 1
		store_env "$sys" balance
		start "$sys" balance "$BIN/balance-manager" ZC_LISTEN_ADDRESS=$HOST "${REPLY_ENV[@]}" \
			AUDIT_LOGGER_URL="http://$HOST:${PORT[$sys/audit]}" && wait_up "$sys" balance || return 1
		store_env "$sys" tx
		start "$sys" tx "$BIN/transaction-processor" ZC_LISTEN_ADDRESS=$HOST "${REPLY_ENV[@]}" \
			BALANCE_MANAGER_URL="http://$HOST:${PORT[$sys/balance]}" && wait_up "$sys" tx
		;;
	go | go-tuned)
		dir="$GO_DIR/bin"
		[[ "$sys" == go-tuned ]] && dir="$GO_DIR/bin-tuned"
		# The seed's balance-manager dies of "concurrent map writes" unless
		# GOMAXPROCS=1; the tuned one has its mutex and runs with the default.
		local bm_env=()
		[[ "$sys" == go ]] && bm_env=(GOMAXPROCS=1)
		start "$sys" audit "$dir/audit-logger" LISTEN_HOST=$HOST && wait_up "$sys" audit &&
			start "$sys" balance "$dir/balance-manager" LISTEN_HOST=$HOST "${bm_env[@]}" \
				AUDIT_LOGGER_URL="http://$HOST:${PORT[$sys/audit]}" && wait_up "$sys" balance &&
			start "$sys" tx "$dir/transaction-processor" LISTEN_HOST=$HOST \
				BALANCE_MANAGER_URL="http://$HOST:${PORT[$sys/balance]}" && wait_up "$sys" tx
		;;
	ceiling)
		start ceiling ceiling "$OUT/bin/ceiling" CEILING_ADDRESS=$HOST && wait_up ceiling ceiling
		;;
	esac
}

for t in "${TARGETS[@]}"; do
	cat >"$OUT/raw/$t.lua" <<LUA
wrk.method = "POST"
wrk.body = [[${TBODY[$t]}]]
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f status_err=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
LUA
done

# --- measurements ------------------------------------------------------------

cpu_ticks() { # pid... -> utime+stime of all, in clock ticks
	local p t=0
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] && t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo "$t"
}
pg_pids() { # the private PostgreSQL's postmaster and its children (backends)
	[[ -n "$PG_PID" ]] || return 0
	echo "$PG_PID"
	tr -s ' ' '\n' <"/proc/$PG_PID/task/$PG_PID/children" 2>/dev/null | grep .
}
declare -A PG_T0
pg_ticks_start() { # remembers each PostgreSQL process's CPU ticks
	local p
	PG_T0=()
	for p in $(pg_pids); do PG_T0[$p]="$(cpu_ticks "$p")"; done
}
pg_ticks_delta() { # -> ticks since pg_ticks_start (a backend started since: all of it)
	local p t=0
	for p in $(pg_pids); do t=$((t + $(cpu_ticks "$p") - ${PG_T0[$p]:-0})); done
	echo "$t"
}
pd_kib() { # pid -> kB of private dirty memory (smaps_rollup), or "-" when gone
	awk '/^Private_Dirty:/ {s += $2; f = 1} END {print (f ? s : "-")}' "/proc/$1/smaps_rollup" 2>/dev/null || echo -
}
mem_kib() { # field pid -> kB of VmRSS or VmHWM, or "-" when gone
	awk -v f="$1:" '$1 == f {print $2; found = 1} END {if (!found) print "-"}' "/proc/$2/status" 2>/dev/null || echo -
}
timewait() { # port... -> TIME_WAIT sockets on those ports (either end)
	local p f=""
	for p in "$@"; do f+="${f:+ or }sport = :$p or dport = :$p"; done
	ss -Htan state time-wait "( $f )" 2>/dev/null | wc -l
}
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
num() { local v; v="$(kv "$1" "$2")"; echo "${v:-0}"; }
wrk_result() { # wrk output file -> sets req rps p50 p99 st sock (0 requests: one socket error)
	local res dur
	res="$(grep -m1 '^WRKRESULT' "$1")"
	[[ -n "$res" ]] || { say "  wrk gave no result ($1)"; res="WRKRESULT requests=0 duration_us=1"; }
	req="$(num requests "$res")"
	dur="$(num duration_us "$res")"
	((dur > 0)) || dur=1
	rps="$(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.0f", r / (d / 1e6)}')"
	p50="$(awk -v v="$(num p50_us "$res")" 'BEGIN {printf "%.3f", v / 1000}')"
	p99="$(awk -v v="$(num p99_us "$res")" 'BEGIN {printf "%.3f", v / 1000}')"
	st="$(num status_err "$res")"
	sock=$(($(num connect_err "$res") + $(num read_err "$res") + $(num write_err "$res") + $(num timeout_err "$res")))
	# A run that completed no request at all is an error however wrk counts it.
	((req == 0)) && sock=$((sock + 1))
	return 0
}
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

declare -A DEAD # system -> "role role" that died
RUNS="$OUT/runs.tsv"
printf 'system\ttarget\tconns\trep\treq_s\tp50_ms\tp99_ms\tnon2xx\tsock_err\ttime_wait\tcpu_us_per_req\trss_kib\thwm_kib\trss_audit_kib\trss_balance_kib\trss_tx_kib\thwm_audit_kib\thwm_balance_kib\thwm_tx_kib\tlog_warn_err\tlog_bytes_per_req\tdead\tdb_cpu_us_per_req\tpd_audit_kib\tpd_balance_kib\tpd_tx_kib\n' >"$RUNS"

check_dead() { # system -> records and prints dead roles; 0 if all alive
	local sys="$1" r d=""
	for r in $(roles_of "$sys"); do alive "$sys/$r" || d+="$r "; done
	[[ -z "$d" ]] && return 0
	if [[ -z "${DEAD[$sys]:-}" ]]; then
		DEAD[$sys]="${d% }"
		say "  !!! $sys: ${DEAD[$sys]} died; its remaining runs are skipped. Log tail:"
		for r in $d; do tail -3 "${LOG[$sys/$r]}" | sed 's/^/      /'; done
	fi
	return 1
}

run_one() { # system target conns rep [warmup]
	local sys="$1" t="$2" c="$3" rep="$4" warm="${5:-}" entry url out pids=() ports=() r
	local cpu0 cpu1 tw req rps p50 p99 st sock cpu rss hwm d="" lb=0 lw=0 half w db=0 dbcpu=-
	declare -A mid hw pd
	entry="$(entry_role "$sys" "$t")"
	url="http://$HOST:${PORT[$sys/$entry]}${TPATH[$t]}"
	for r in $(target_roles "$sys" "$t"); do pids+=("${PID[$sys/$r]}"); done
	for r in $(roles_of "$sys"); do ports+=("${PORT[$sys/$r]}"); done
	if [[ -n "$warm" ]]; then
		timeout $((WARMUP + 15)) wrk -t1 -c16 -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" \
			-s "$OUT/raw/$t.lua" "$url" >"$OUT/raw/$sys.$t.warmup.txt" 2>&1
		return 0
	fi
	for r in $(roles_of "$sys"); do : >"${LOG[$sys/$r]}"; done
	out="$OUT/raw/$sys.$t.c$c.r$rep.txt"
	[[ "$sys" == ours-pg ]] && pg_ticks_start
	cpu0="$(cpu_ticks "${pids[@]}")"
	timeout $((DURATION + 15)) wrk -t1 -c"$c" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$OUT/raw/$t.lua" "$url" >"$out" 2>&1 &
	w=$!
	WRK_PID=$w
	# Resident memory under load: sampled half way through the run.
	half="$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
	sleep "$half"
	for r in $(roles_of "$sys"); do
		mid[$r]="$(mem_kib VmRSS "${PID[$sys/$r]}")"
		pd[$r]="$(pd_kib "${PID[$sys/$r]}")"
		# The whole map once per function, for the memory by library.
		[[ "$t" == transaction && "$rep" == 1 && "$c" == "$CMAX" ]] &&
			cp "/proc/${PID[$sys/$r]}/smaps" "$OUT/raw/$sys.$r.smaps.txt" 2>/dev/null
	done
	wait "$w"
	WRK_PID=
	cpu1="$(cpu_ticks "${pids[@]}")"
	[[ "$sys" == ours-pg ]] && db="$(pg_ticks_delta)"
	tw="$(timewait "${ports[@]}")"
	for r in $(roles_of "$sys"); do
		# VmHWM is only brought up to date on some kernel paths and can read
		# below an earlier VmRSS: the peak is the larger of the two.
		hw[$r]="$(mem_kib VmHWM "${PID[$sys/$r]}")"
		[[ "${hw[$r]}" != - && "${mid[$r]}" != - ]] && ((mid[$r] > hw[$r])) && hw[$r]=${mid[$r]}
		alive "$sys/$r" || d+="$r,"
		lb=$((lb + $(stat -c %s "${LOG[$sys/$r]}")))
		is_ours "$sys" && lw=$((lw + $(grep -c -E '^[^ ]+ (WARN|ERROR)' "${LOG[$sys/$r]}")))
	done
	wrk_result "$out"
	# The server side of a request: the functions it runs through and, for
	# ours-pg, the PostgreSQL server's processes (also shown on their own).
	cpu="$(awk -v a="$cpu0" -v b="$((cpu1 + db))" -v r="$req" -v hz="$CLK_TCK" 'BEGIN {if (r > 0) printf "%.1f", (b - a) / hz * 1e6 / r; else print "-"}')"
	[[ "$sys" == ours-pg ]] &&
		dbcpu="$(awk -v t="$db" -v r="$req" -v hz="$CLK_TCK" 'BEGIN {if (r > 0) printf "%.1f", t / hz * 1e6 / r; else print "-"}')"
	rss="${mid[$entry]}"
	hwm="${hw[$entry]}"
	local lbpr
	lbpr="$(awk -v b="$lb" -v r="$req" 'BEGIN {if (r > 0) printf "%.0f", b / r; else print "-"}')"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$sys" "$t" "$c" "$rep" "$rps" "$p50" "$p99" "$st" "$sock" "$tw" "$cpu" "$rss" "$hwm" \
		"${mid[audit]:--}" "${mid[balance]:--}" "${mid[tx]:--}" "${hw[audit]:--}" "${hw[balance]:--}" "${hw[tx]:--}" \
		"$(is_ours "$sys" && echo "$lw" || echo -)" "$lbpr" "${d%,}" "$dbcpu" \
		"${pd[audit]:--}" "${pd[balance]:--}" "${pd[tx]:--}" >>"$RUNS"
	printf '  %-11s %-12s c=%-3s rep=%s  %8s req/s  p50 %7s ms  p99 %7s ms  err %s/%s  cpu %6s us/req  rss %s KiB  tw %s%s\n' \
		"$sys" "${TPATH[$t]}" "$c" "$rep" "$rps" "$p50" "$p99" "$st" "$sock" "$cpu" "$rss" "$tw" \
		"${d:+  DIED: ${d%,}}"
	check_dead "$sys" # (each log keeps its last run for inspection)
}

# --- go ----------------------------------------------------------------------

# Idle share of all CPUs over one second, in percent.
cpu_idle() {
	local a b
	a="$(head -1 /proc/stat)"
	sleep 1
	b="$(head -1 /proc/stat)"
	printf '%s\n%s\n' "$a" "$b" | awk '{t = 0; for (i = 2; i <= NF; i++) t += $i; T[NR] = t; I[NR] = $5 + $6}
		END {d = T[2] - T[1]; printf "%.0f", (d > 0 ? 100 * (I[2] - I[1]) / d : 100)}'
}
# Other work on the machine skews every figure: wait (up to QUIET_WAIT s)
# for the CPUs to be mostly idle, and say what the load was.
QUIET_WAIT="${QUIET_WAIT:-$([[ "$SMOKE" == 1 ]] && echo 0 || echo 120)}"
idle="$(cpu_idle)"
for ((waited = 1; idle < 90 && waited < QUIET_WAIT; waited += 1)); do idle="$(cpu_idle)"; done
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
say "bench: CPUs ${idle}% idle before the run, load average $LOAD_START"

T_START=$SECONDS
RUN_START="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
MACHINE="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
say "bench: $RUN_START $MACHINE"
say "bench: systems [${SYSTEMS[*]}] connections [$CONNS] repeat $REPEAT x ${DURATION}s, warm-up ${WARMUP}s, wrk -t1 --timeout $WRK_TIMEOUT"
start_stores
for s in "${SYSTEMS[@]}"; do start_system "$s" || die "could not start $s"; done
for s in "${SYSTEMS[@]}"; do
	line="  $s:"
	for r in $(roles_of "$s"); do line+=" $r=pid ${PID[$s/$r]} port ${PORT[$s/$r]}"; done
	say "$line"
done

# One request each first: a system that cannot answer is not worth measuring.
for t in "${TARGETS[@]}"; do
	for s in $(systems_for "$t"); do
		e="$(entry_role "$s" "$t")"
		code="$(curl -s -o "$OUT/raw/$s.$t.first.txt" -w '%{http_code}' -m 5 -X POST \
			-H 'Content-Type: application/json' -d "${TBODY[$t]}" "http://$HOST:${PORT[$s/$e]}${TPATH[$t]}")"
		[[ "$code" == 2* ]] || die "$s POST ${TPATH[$t]} answered $code: $(cat "$OUT/raw/$s.$t.first.txt")"
	done
done

for t in "${TARGETS[@]}"; do
	say ""
	say "== POST ${TPATH[$t]}"
	if [[ "$WARMUP" != 0 ]]; then
		for s in $(systems_for "$t"); do [[ -z "${DEAD[$s]:-}" ]] && run_one "$s" "$t" 16 0 warm; done
	fi
	for c in $CONNS; do
		for ((rep = 1; rep <= REPEAT; rep++)); do
			# Alternate systems within each repeat so drift and noise hit all alike.
			for s in $(systems_for "$t" "$c"); do
				[[ -z "${DEAD[$s]:-}" ]] && run_one "$s" "$t" "$c" "$rep"
			done
		done
	done
done

# --- latency injected: DELAY_MS between transaction-processor and
# balance-manager (issue 16) ---------------------------------------------------
#
# A second transaction-processor per chain calls its balance-manager through
# bench/delayproxy.c, which holds each request DELAY_MS on its way: the
# downstream of a function in another zone, or a slow one.  At LAT_CONNS
# connections the chain can then complete at most LAT_CONNS / DELAY_MS
# transactions a second; how close it gets is how well a handler that
# waits leaves its thread to others.
LAT="$OUT/latency.tsv"
printf 'system\tdelay_ms\tconns\trep\treq_s\tp99_ms\terrors\n' >"$LAT"
LAT_CONNS="${LAT_CONNS:-256}" DELAY_MS="${DELAY_MS:-50}"
if [[ "$SMOKE" != 1 && "${WITH_LATENCY:-1}" == 1 ]]; then
	cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/delayproxy" bench/delayproxy.c || die "building bench/delayproxy.c failed"
	LAT_SYSTEMS=(ours)
	[[ "$WITH_GO" == 1 ]] && LAT_SYSTEMS+=(go-tuned)
	for s in "${LAT_SYSTEMS[@]}"; do
		[[ -z "${DEAD[$s]:-}" ]] || continue
		next_port
		"$OUT/bin/delayproxy" "$REPLY" "${PORT[$s/balance]}" "$DELAY_MS" >"$OUT/logs/$s.delayproxy.log" 2>&1 &
		ALL_PIDS+=($!)
		if [[ "$s" == ours ]]; then
			start "$s" txlat "$BIN/transaction-processor" ZC_LISTEN_ADDRESS=$HOST ZC_STORE_URL=memory: \
				BALANCE_MANAGER_URL="http://$HOST:$REPLY"
		else
			start "$s" txlat "$GO_DIR/bin-tuned/transaction-processor" LISTEN_HOST=$HOST \
				BALANCE_MANAGER_URL="http://$HOST:$REPLY"
		fi
		wait_up "$s" txlat || die "$s: the transaction-processor behind the delay did not start"
	done
	say ""
	say "== POST /transaction, ${DELAY_MS} ms injected between transaction-processor and balance-manager, $LAT_CONNS connections"
	for ((rep = 1; rep <= REPEAT; rep++)); do
		for s in "${LAT_SYSTEMS[@]}"; do
			out="$OUT/raw/$s.txlat.r$rep.txt"
			timeout $((DURATION + 15)) wrk -t1 -c"$LAT_CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
				-s "$OUT/raw/transaction.lua" "http://$HOST:${PORT[$s/txlat]}/transaction" >"$out" 2>&1
			wrk_result "$out"
			errs=$((st + sock))
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$DELAY_MS" "$LAT_CONNS" "$rep" "$rps" "$p99" "$errs" >>"$LAT"
			printf '  %-11s +%sms        c=%-3s rep=%s  %8s req/s  p99 %7s ms  err %s\n' "$s" "$DELAY_MS" "$LAT_CONNS" "$rep" "$rps" "$p99" "$errs"
		done
	done
fi
T_LOAD=$((SECONDS - T_START))

# --- profile: where a transaction's time goes, per chain ---------------------
#
# One more run of POST /transaction at the largest connection count per
# chain in PROFILE (not in the medians: the probes cost a little CPU), with
#  - bench/threadstates: every 20 ms, what each thread of the three
#    functions (and of PostgreSQL, and wrk) is doing: on a CPU, or asleep in
#    which system call (a lock, an fsync, a poll for an answer); and the CPU
#    time of each over the run, against the whole machine's;
#  - perf record -a -e cpu-clock (no hardware counters in a VM): the CPU by
#    process and shared object;
#  - for ours-pg, PostgreSQL's own counters: commits per database and WAL
#    records, bytes and syncs, per transaction.

PROF="$OUT/profile"
rm -rf "$PROF"
mkdir -p "$PROF"

pg_stats() { # -> "name value" lines of PostgreSQL's cumulative counters
	psql_pg postgres -F' ' -c "SELECT 'wal_records', wal_records FROM pg_stat_wal
		UNION ALL SELECT 'wal_fpi', wal_fpi FROM pg_stat_wal
		UNION ALL SELECT 'wal_bytes', wal_bytes FROM pg_stat_wal
		UNION ALL SELECT 'wal_write', wal_write FROM pg_stat_wal
		UNION ALL SELECT 'wal_sync', wal_sync FROM pg_stat_wal
		UNION ALL SELECT 'commits_' || datname, xact_commit FROM pg_stat_database WHERE datname IN ('audit_logger', 'balance_manager')
		UNION ALL SELECT 'rollbacks_' || datname, xact_rollback FROM pg_stat_database WHERE datname IN ('audit_logger', 'balance_manager')"
}

dsync_us() { # dir -> microseconds per 8 KiB write with O_DSYNC there (200 writes)
	local f="$1/.bench-dsync" t0 t1
	# Over a file written and synced before, as a WAL segment is: the sync
	# then carries data only, no file size or block allocation.
	dd if=/dev/zero of="$f" bs=8k count=200 conv=fsync status=none 2>/dev/null || { echo -; return; }
	t0="$(date +%s%N)"
	dd if=/dev/zero of="$f" bs=8k count=200 conv=notrunc oflag=dsync status=none 2>/dev/null || { rm -f "$f"; echo -; return; }
	t1="$(date +%s%N)"
	rm -f "$f"
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", (b - a) / 1000 / 200}'
}

profile_one() { # system
	local sys="$1" base="$PROF/$1" w perf_pid="" waited args=() pids r
	local url="http://$HOST:${PORT[$sys/tx]}/transaction" t_end
	[[ "$sys" == ours-pg ]] && pg_stats >"$base.pg-before.txt"
	timeout $((DURATION + 15)) wrk -t1 -c"$CMAX" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$OUT/raw/transaction.lua" "$url" >"$base.wrk.txt" 2>&1 &
	w=$!
	WRK_PID=$w
	for r in tx balance audit; do args+=("$r=${PID[$sys/$r]}"); done
	[[ "$sys" == ours-pg ]] && args+=("postgres=+$PG_PID")
	args+=("wrk=+$w")
	# The middle of the run: no connection set-up, no tail.
	sleep 0.5
	if [[ "$PERF_OK" == 1 ]]; then
		timeout $((DURATION + 10)) perf record -q -a -F 499 -e cpu-clock -o "$base.perf.data" \
			-- sleep $((DURATION > 2 ? DURATION - 1 : DURATION)) >/dev/null 2>&1 &
		perf_pid=$!
	fi
	"$OUT/bin/threadstates" -d $((DURATION > 2 ? DURATION - 1 : DURATION)) "${args[@]}" >"$base.states.tsv" 2>&1
	[[ -n "$perf_pid" ]] && wait "$perf_pid"
	wait "$w"
	WRK_PID=
	t_end=$SECONDS
	if [[ "$PERF_OK" == 1 && -s "$base.perf.data" ]]; then
		# Each sample's process, shared object and symbol, grouped by
		# function (and PostgreSQL) here: perf report's own --pid filter
		# does not split by shared object reliably.
		for r in tx balance audit; do echo "${PID[$sys/$r]} $r"; done >"$base.perf-pids.txt"
		[[ "$sys" == ours-pg ]] && pg_pids | sed 's/$/ postgres/' >>"$base.perf-pids.txt"
		perf script -i "$base.perf.data" -F pid,ip,sym,dso 2>/dev/null | awk '
			NR == FNR { lab[$1] = $2; next }
			{	all++
				if (!($1 in lab)) next
				l = lab[$1]; dso = $NF; gsub(/[()]/, "", dso); sub(/.*\//, "", dso)
				sym = ""; for (i = 3; i < NF; i++) sym = sym (sym == "" ? "" : " ") $i
				n[l]++; d[l, dso]++; y[l, dso " " sym]++ }
			END {
				printf "== all CPUs: %d samples\n", all
				split("tx balance audit postgres", L, " ")
				for (j = 1; j <= 4; j++) { l = L[j]; if (!n[l]) continue
					printf "== %s (%d samples, %.1f%% of all), by shared object\n", l, n[l], 100 * n[l] / all
					for (k in d) { split(k, p, SUBSEP); if (p[1] == l) printf "%8.2f%%  %s\n", 100 * d[k] / n[l], p[2] | "sort -rn | head -12" }
					close("sort -rn | head -12")
					printf "== %s, by symbol\n", l
					for (k in y) { split(k, p, SUBSEP); if (p[1] == l) printf "%8.2f%%  %s\n", 100 * y[k] / n[l], p[2] | "sort -rn | head -25" }
					close("sort -rn | head -25") } }' "$base.perf-pids.txt" - >"$base.perf.txt"
		rm -f "$base.perf.data"
	fi
	if [[ "$sys" == ours-pg ]]; then
		# Backends send their counters at most once a second, and when idle
		# after up to 10 s: wait that long for the last ones.
		waited=$((SECONDS - t_end))
		((waited < 11)) && sleep $((11 - waited))
		pg_stats >"$base.pg-after.txt"
	fi
	# SQLite's write-ahead logs: how far they grew over the whole run.
	[[ "$sys" == ours-sqlite ]] && (cd "$SQLITE_DIR" && stat -c '%n %s' -- *) >"$base.sqlite-files.txt" 2>/dev/null
	say "  profiled $sys: $(grep -E '^Requests/sec' "$base.wrk.txt" | tr -s ' ') ($base.*)"
}

PERF_OK=0
if [[ -n "$PROFILE" ]]; then
	say ""
	say "== profile: POST /transaction at $CMAX connections, one ${DURATION}s run per chain ($PROFILE)"
	if command -v perf >/dev/null && perf record -q -a -e cpu-clock -o "$PROF/probe.data" -- true >/dev/null 2>&1; then
		PERF_OK=1
	else
		say "  (perf record -a does not work here: thread states and /proc only)"
	fi
	rm -f "$PROF/probe.data"
	for s in $PROFILE; do
		inlist "$s" "${SYSTEMS[*]}" && [[ -z "${DEAD[$s]:-}" ]] && profile_one "$s"
	done
	DSYNC_US="$(dsync_us "$OUT")"
	say "  one 8 KiB O_DSYNC write in $OUT: ${DSYNC_US} us"
fi
T_PROFILE=$((SECONDS - T_START - T_LOAD))
STORE_FS="$(findmnt -n -o FSTYPE,SOURCE -T "$OUT" 2>/dev/null | tr -s ' ')"

# --- cold start: exec to first 2xx, each function in each mode vs Go ---------

COLD="$OUT/cold.tsv"
printf 'system\tfn\tset\trun\tms\n' >"$COLD"
cold_systems=()
for s in "${SYSTEMS[@]}"; do is_ours "$s" && cold_systems+=("$s"); done
[[ "$WITH_GO" == 1 ]] && cold_systems+=(go)
declare -A CPATH=([audit]=/log [balance]=/update [tx]=/transaction)
declare -A CBODY=([audit]="$AUDIT_BODY" [balance]="$ACCOUNT_BODY" [tx]="$ACCOUNT_BODY")
COLD_FAIL=""
# The command and environment of a cold start: the function as its system
# runs it, its downstream the system's running one, its store a separate one
# (the SQLite file or database that the first, unrecorded run creates: the
# recorded runs are restarts on existing state).
cold_cmd() { # system fn -> CMD and CENV
	local sys="$1" fn="$2"
	if is_ours "$sys"; then
		store_env "$sys" "$fn" cold
		CMD=("$BIN/${BINNAME[$fn]}") CENV=("ZC_LISTEN_ADDRESS=$HOST" "${REPLY_ENV[@]}")
	else
		CMD=("$GO_DIR/bin/${BINNAME[$fn]}") CENV=("LISTEN_HOST=$HOST")
		[[ "$fn" == balance ]] && CENV+=(GOMAXPROCS=1)
	fi
	case "$fn" in
	balance) CENV+=("AUDIT_LOGGER_URL=http://$HOST:${PORT[$sys/audit]}") ;;
	tx) CENV+=("BALANCE_MANAGER_URL=http://$HOST:${PORT[$sys/balance]}") ;;
	esac
}
say ""
say "== cold start: exec to first 2xx (audit-logger POST /log, balance-manager POST /update, transaction-processor POST /transaction), polled every 100 us, ${COLD_SETS} x ${COLD_RUNS} runs each"
for ((set = 1; set <= COLD_SETS; set++)); do
	for fn in $COLD_FNS; do
		for s in "${cold_systems[@]}"; do
			[[ -z "${DEAD[$s]:-}" ]] || continue
			inlist "$s/$fn" "$COLD_FAIL" && continue
			next_port
			cold_cmd "$s" "$fn"
			clog="$OUT/logs/cold.$s.$fn.log"
			# One unrecorded run first, so every recorded one finds the binary in the page cache.
			if ! env "${CLEAN_ENV[@]}" PORT="$REPLY" "${CENV[@]}" "$OUT/bin/coldstart" -p "$REPLY" -P "${CPATH[$fn]}" \
				-b "${CBODY[$fn]}" -n 1 -o "$clog" -- "${CMD[@]}" >/dev/null ||
				! env "${CLEAN_ENV[@]}" PORT="$REPLY" "${CENV[@]}" "$OUT/bin/coldstart" -p "$REPLY" -P "${CPATH[$fn]}" \
					-b "${CBODY[$fn]}" -n "$COLD_RUNS" -o "$clog" -- "${CMD[@]}" >"$OUT/raw/cold.$s.$fn.$set.txt"; then
				say "  !!! cold start of $s ${BINNAME[$fn]} failed (log: $clog)"
				COLD_FAIL+="$s/$fn "
				continue
			fi
			sed -n 's/^run \([0-9]*\): \([0-9.]*\) ms$/\1 \2/p' "$OUT/raw/cold.$s.$fn.$set.txt" |
				while read -r i ms; do printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$fn" "$set" "$i" "$ms"; done >>"$COLD"
			say "  $s ${BINNAME[$fn]} set $set: $(grep '^COLDSTART' "$OUT/raw/cold.$s.$fn.$set.txt")"
		done
	done
done

# --- stop: SIGTERM, as an orchestrator would; ours must drain and exit 0 -------

say ""
declare -A EXIT_STATUS
for key in "${!PID[@]}"; do kill -TERM "${PID[$key]}" 2>/dev/null; done
for key in "${!PID[@]}"; do
	# ZC_DRAIN_TIMEOUT_MS is 20 s by default; after 25 s it is a hang.
	for ((i = 0; i < 250; i++)); do kill -0 "${PID[$key]}" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "${PID[$key]}" 2>/dev/null
	wait "${PID[$key]}"
	EXIT_STATUS[$key]=$?
done
BAD_EXIT=""
for s in "${SYSTEMS[@]}"; do
	is_ours "$s" || [[ "$s" == ceiling ]] || continue
	line="  $s exit statuses after SIGTERM:"
	for r in $(roles_of "$s"); do
		line+=" $r=${EXIT_STATUS[$s/$r]}"
		[[ "${EXIT_STATUS[$s/$r]}" == 0 ]] || BAD_EXIT+="$s/$r=${EXIT_STATUS[$s/$r]} "
	done
	say "$line"
done
ALL_PIDS=()
stop_stores # PostgreSQL (by its PID file) and the SQLite files

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
T_ALL=$((SECONDS - T_START))
RUN_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# What the report needs to be drawn again later from the TSVs (BENCH_REPORT=1).
{
	printf 'RUN_DATE=%q\nRUN_START=%q\nDURATION=%q\nREPEAT=%q\nCONNS=%q\nWARMUP=%q\n' \
		"$RUN_DATE" "$RUN_START" "$DURATION" "$REPEAT" "$CONNS" "$WARMUP"
	printf 'COLD_SETS=%q\nCOLD_RUNS=%q\nWITH_GO=%q\nSYSTEMS_LIST=%q\nSMOKE=%q\n' \
		"$COLD_SETS" "$COLD_RUNS" "$WITH_GO" "${SYSTEMS[*]}" "$SMOKE"
	printf 'COLD_SYSTEMS_LIST=%q\nCOLD_FNS=%q\nCOLD_FAIL=%q\nDURABLE_TARGETS=%q\nDURABLE_CONNS=%q\n' \
		"${cold_systems[*]}" "$COLD_FNS" "$COLD_FAIL" "$DURABLE_TARGETS" "$DURABLE_CONNS"
	printf 'PG_SETTINGS=%q\nSTORE_FS=%q\nDSYNC_US=%q\nPROFILE=%q\nPERF_OK=%q\n' \
		"${PG_SETTINGS:-}" "$STORE_FS" "${DSYNC_US:-}" "$PROFILE" "$PERF_OK"
	printf 'IDLE_START=%q\nLOAD_START=%q\nLOAD_END=%q\nT_LOAD=%q\nT_PROFILE=%q\nT_ALL=%q\nMACHINE=%q\n' \
		"$idle" "$LOAD_START" "$LOAD_END" "$T_LOAD" "$T_PROFILE" "$T_ALL" "$MACHINE"
	printf 'BAD_EXIT=%q\nDELAY_MS=%q\nLAT_CONNS=%q\n' "$BAD_EXIT" "$DELAY_MS" "$LAT_CONNS"
} >"$OUT/meta.env"

else # BENCH_REPORT=1
	[[ -r "$OUT/meta.env" && -r "$OUT/runs.tsv" && -r "$OUT/cold.tsv" ]] ||
		die "BENCH_REPORT=1: no earlier run in $OUT (meta.env, runs.tsv, cold.tsv)"
	# shellcheck disable=SC1091
	. "$OUT/meta.env"
	read -r -a SYSTEMS <<<"$SYSTEMS_LIST"
	RUNS="$OUT/runs.tsv" COLD="$OUT/cold.tsv" PROF="$OUT/profile"
	read -r -a cold_systems <<<"$COLD_SYSTEMS_LIST"
	CMAX="$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1)"
	declare -A DEAD
	say "bench: re-rendering the run of $RUN_DATE from $OUT"
fi

# --- summary -----------------------------------------------------------------

RES="$OUT/results.tsv"
# Medians over repeats (and min..max), error totals, largest memory.
awk -F'\t' -v OFS='\t' '
function srt(a, n,   i, j, v) { for (i = 2; i <= n; i++) { v = a[i] + 0
	for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v } }
function med(s,   a, n) { n = split(s, a, " "); if (n == 0) return "-"
	srt(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function lo(s,   a, n) { n = split(s, a, " "); srt(a, n); return a[1] }
function hi(s,   a, n) { n = split(s, a, " "); srt(a, n); return a[n] }
function add(k, f, v) { if (v != "-" && v != "") L[k, f] = L[k, f] (L[k, f] == "" ? "" : " ") v }
function mx(k, f, v) { if (v != "-" && v != "" && v + 0 > M[k, f] + 0) M[k, f] = v }
NR == 1 { next }
{	k = $1 OFS $2 OFS $3
	if (!(k in seen)) { seen[k] = 1; order[++n] = k }
	reps[k]++; add(k, "rps", $5); add(k, "p50", $6); add(k, "p99", $7); add(k, "tw", $10)
	add(k, "cpu", $11); add(k, "rss", $12); add(k, "ra", $14); add(k, "rb", $15); add(k, "rt", $16)
	mx(k, "hwm", $13); mx(k, "ha", $17); mx(k, "hb", $18); mx(k, "ht", $19)
	st[k] += $8; so[k] += $9; if ($20 != "-") lw[k] += $20; if ($22 != "") dead[k] = dead[k] $22 " "
	add(k, "db", $23); add(k, "pa", $24); add(k, "pb", $25); add(k, "pt", $26) }
END {
	print "system", "target", "conns", "reps", "req_s", "req_s_min", "req_s_max", "p50_ms", "p99_ms", "p99_min", "p99_max",
		"non2xx", "sock_err", "time_wait", "cpu_us_per_req", "rss_mib", "hwm_mib",
		"rss_audit_mib", "rss_balance_mib", "rss_tx_mib", "hwm_audit_mib", "hwm_balance_mib", "hwm_tx_mib", "log_warn_err", "dead",
		"db_cpu_us_per_req", "pd_audit_mib", "pd_balance_mib", "pd_tx_mib"
	for (i = 1; i <= n; i++) { k = order[i]
		printf "%s\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.0f\t%s", k, reps[k], med(L[k, "rps"]),
			lo(L[k, "rps"]), hi(L[k, "rps"]), med(L[k, "p50"]), med(L[k, "p99"]), lo(L[k, "p99"]), hi(L[k, "p99"]),
			st[k], so[k], med(L[k, "tw"]), (L[k, "cpu"] == "" ? "-" : sprintf("%.1f", med(L[k, "cpu"])))
		split("rss:L hwm:M ra:L rb:L rt:L ha:M hb:M ht:M", f, " ")
		for (j = 1; j <= 8; j++) { split(f[j], g, ":")
			if (g[2] == "L") printf "\t%s", (L[k, g[1]] == "" ? "-" : sprintf("%.1f", med(L[k, g[1]]) / 1024))
			else printf "\t%s", (M[k, g[1]] == "" ? "-" : sprintf("%.1f", M[k, g[1]] / 1024)) }
		printf "\t%s\t%s\t%s", (k ~ /^ours/ ? lw[k] + 0 : "-"), (dead[k] == "" ? "-" : dead[k]),
			(L[k, "db"] == "" ? "-" : sprintf("%.1f", med(L[k, "db"])))
		split("pa pb pt", f, " ")
		for (j = 1; j <= 3; j++)
			printf "\t%s", (L[k, f[j]] == "" ? "-" : sprintf("%.1f", med(L[k, f[j]]) / 1024))
		printf "\n" }
}' "$RUNS" >"$RES"

# col NAME: the field number of NAME in results.tsv
col() { head -1 "$RES" | tr '\t' '\n' | grep -nx "$1" | cut -d: -f1; }
get() { # system target conns column -> value ("" if absent)
	awk -F'\t' -v s="$1" -v t="$2" -v c="$3" -v f="$(col "$4")" '$1 == s && $2 == t && $3 == c {print $f}' "$RES"
}
cold_med() { # system fn -> median ms over all recorded runs
	awk -F'\t' -v s="$1" -v f="$2" 'NR > 1 && $1 == s && $2 == f {print $5}' "$COLD" | sort -g |
		awk '{a[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
cold_range() { awk -F'\t' -v s="$1" -v f="$2" 'NR > 1 && $1 == s && $2 == f {print $5}' "$COLD" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {if (NR) printf "%s..%s", a, b}'; }

lat_med() { # system column(5 req_s, 6 p99_ms) -> median over the repeats
	[[ -r "${LAT:-$OUT/latency.tsv}" ]] || return 0
	awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s {print $c}' "${LAT:-$OUT/latency.tsv}" | sort -g |
		awk '{a[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b}'; }

# Memory by library: /proc/PID/smaps of each function, copied half way
# through the first POST /transaction run at CMAX connections, summed by
# the file each mapping comes from (the executable, each shared library)
# and, for anonymous memory, by kind ([heap]: the main arena; anon: the
# other malloc arenas, thread and fiber stacks, libraries' own mmaps).
mem_by_library() {
	local s r f any=0
	for s in "${SYSTEMS[@]}"; do
		for r in audit balance tx; do [[ -s "$OUT/raw/$s.$r.smaps.txt" ]] && any=1; done
	done
	((any)) || return 0
	say ""
	say "Memory by library under POST /transaction at $CMAX connections (smaps half way through the first run; RSS / private dirty in KiB, largest RSS first, the rest summed):"
	say ""
	say "| function | system | RSS KiB | private dirty KiB | by mapping (RSS/private dirty KiB) |"
	say "|---|---|---:|---:|---|"
	for r in audit balance tx; do
		for s in "${SYSTEMS[@]}"; do
			f="$OUT/raw/$s.$r.smaps.txt"
			[[ -s "$f" ]] || continue
			awk -v fn="${BINNAME[$r]}" -v sys="$s" '
				/^[0-9a-f]+-[0-9a-f]+ / { n = split($0, w, " "); k = (n >= 6 ? w[6] : "anon")
					for (i = 7; i <= n; i++) k = k " " w[i]
					sub(/.*\//, "", k); sub(/\.so[.0-9]*$/, "", k); sub(/ \(deleted\)$/, "", k)
					if (k ~ /^\[anon:/ || k ~ /^\[(stack|vvar|vdso|vsyscall)/) k = (k ~ /^\[stack/ ? "[stack]" : (k ~ /^\[anon:/ ? "anon" : "[kernel]"))
					next }
				/^Rss:/ { rss[k] += $2; R += $2 }
				/^Private_Dirty:/ { pd[k] += $2; P += $2 }
				END { m = 0; for (k in rss) if (rss[k] > 0) key[++m] = k
					for (i = 2; i <= m; i++) { v = key[i]; for (j = i - 1; j >= 1 && rss[key[j]] < rss[v]; j--) key[j + 1] = key[j]; key[j + 1] = v }
					out = ""; rr = 0; rp = 0
					for (i = 1; i <= m; i++) if (i <= 8) out = out (out == "" ? "" : ", ") key[i] " " rss[key[i]] "/" pd[key[i]] + 0
						else { rr += rss[key[i]]; rp += pd[key[i]] }
					if (m > 8) out = out ", rest " rr "/" rp
					printf "| %s | %s | %d | %d | %s |\n", fn, sys, R, P, out }' "$f"
		done
	done
}

MD="$OUT/results.md"
{
	say "Run $RUN_START to $RUN_DATE on $MACHINE; CPUs ${IDLE_START:-$idle}% idle before it, load average $LOAD_START at start and $LOAD_END at end."
	say "wrk -t1 --timeout 2s, connections [$CONNS], $REPEAT x ${DURATION}s per (system, target, connections), systems alternating; ${WARMUP}s warm-up per system and target."
	durable=""
	for s in "${SYSTEMS[@]}"; do is_durable "$s" && durable+="${durable:+, }$s"; done
	if [[ -n "$durable" ]]; then
		line="The durable chains ($durable) on [${DURABLE_TARGETS}] at [${DURABLE_CONNS}] connections only. Stores: ours memory:"
		inlist ours-sqlite "${SYSTEMS[*]}" && line+="; ours-sqlite the default (ZC_STORE_URL unset: a SQLite file per function in a fresh \$TMPDIR, on ${STORE_FS:-?})"
		inlist ours-pg "${SYSTEMS[*]}" && line+="; ours-pg a private PostgreSQL 15, one database per function (${PG_SETTINGS% })"
		say "$line."
	fi
	say ""
	say "| system | target | conns | req/s (median) | req/s min..max | p50 ms | p99 ms (min..max) | non-2xx / socket errors | server CPU µs/req | RSS MiB (entry fn, under load) | HWM MiB | TIME_WAIT after |"
	say "|---|---|---|---:|---|---:|---|---|---:|---:|---:|---:|"
	tail -n +2 "$RES" | while IFS=$'\t' read -r s t c _ rps rmin rmax p50 p99 p99l p99h st so tw cpu rss hwm _ _ _ _ _ _ _ _ db _; do
		[[ "${db:--}" != - ]] && cpu+=" (db $db)"
		say "| $s | POST ${TPATH[$t]} | $c | $rps | $rmin..$rmax | $p50 | $p99 ($p99l..$p99h) | $st / $so | $cpu | $rss | $hwm | $tw |"
	done
} >"$MD"

# The injected-latency runs.
if [[ -r "$OUT/latency.tsv" && "$(wc -l <"$OUT/latency.tsv")" -gt 1 ]]; then
	{
		say ""
		say "POST /transaction with ${DELAY_MS:-50} ms injected between transaction-processor and balance-manager (bench/delayproxy.c), ${LAT_CONNS:-256} connections, memory: store; at most ${LAT_CONNS:-256} / ${DELAY_MS:-50} ms = $(( ${LAT_CONNS:-256} * 1000 / ${DELAY_MS:-50} )) transactions/s:"
		say ""
		say "| system | req/s (median) | req/s min..max | p99 ms (median) | errors (all repeats) |"
		say "|---|---:|---|---:|---:|"
		awk -F'\t' 'NR > 1 {print $1}' "$OUT/latency.tsv" | awk '!seen[$0]++' | while read -r s; do
			say "| $s | $(lat_med "$s" 5) | $(awk -F'\t' -v s="$s" 'NR > 1 && $1 == s {print $5}' "$OUT/latency.tsv" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {printf "%s..%s", a, b}') | $(lat_med "$s" 6) | $(awk -F'\t' -v s="$s" 'NR > 1 && $1 == s {e += $7} END {print e + 0}' "$OUT/latency.tsv") |"
		done
	} >>"$MD"
fi

# Memory per function under the heaviest load (POST /transaction, most connections).
{
	say ""
	say "Resident memory per function under POST /transaction at $CMAX connections (VmRSS half way through the run, median; VmHWM: peak over the whole benchmark so far):"
	say ""
	say "| system | audit-logger RSS / HWM MiB | balance-manager RSS / HWM MiB | transaction-processor RSS / HWM MiB |"
	say "|---|---|---|---|"
	for s in "${SYSTEMS[@]}"; do
		[[ "$s" == ceiling ]] && continue
		say "| $s | $(get "$s" transaction "$CMAX" rss_audit_mib) / $(get "$s" transaction "$CMAX" hwm_audit_mib) | $(get "$s" transaction "$CMAX" rss_balance_mib) / $(get "$s" transaction "$CMAX" hwm_balance_mib) | $(get "$s" transaction "$CMAX" rss_tx_mib) / $(get "$s" transaction "$CMAX" hwm_tx_mib) |"
	done
	if [[ -n "$(get ceiling log "$CMAX" rss_mib)" ]]; then
		say "| ceiling (POST /log load) | $(get ceiling log "$CMAX" rss_mib) / $(get ceiling log "$CMAX" hwm_mib) | | |"
	fi
	say ""
	say "Cold start and memory of each function in each mode, against Go. Cold start: posix_spawn to the first 2xx (audit-logger POST /log, balance-manager POST /update, transaction-processor POST /transaction, its downstream the same system's running function), polled every 100 µs, $COLD_SETS sets of $COLD_RUNS runs, alternating, median (min..max); the stores exist already (a restart). Go's cold start is the seed's binaries. Memory: VmRSS half way through the POST /transaction runs at $CMAX connections (median) and the peak (VmHWM) over the whole benchmark:"
	say ""
	say "| function | system | cold start ms | cold / go | RSS MiB | HWM MiB | private dirty MiB | RSS / go | RSS / go-tuned | private dirty / go-tuned |"
	say "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for fn in audit balance tx; do
		for s in "${SYSTEMS[@]}"; do
			[[ "$s" == ceiling ]] && continue
			cm="$(cold_med "$s" "$fn")"
			rs="$(get "$s" transaction "$CMAX" "rss_${fn}_mib")"
			pdv="$(get "$s" transaction "$CMAX" "pd_${fn}_mib")"
			say "| ${BINNAME[$fn]} | $s | ${cm:--}${cm:+ ($(cold_range "$s" "$fn"))} | $(div "$cm" "$(cold_med go "$fn")") | ${rs:--} | $(get "$s" transaction "$CMAX" "hwm_${fn}_mib") | ${pdv:--} | $(div "$rs" "$(get go transaction "$CMAX" "rss_${fn}_mib")") | $(div "$rs" "$(get go-tuned transaction "$CMAX" "rss_${fn}_mib")") | $(div "$pdv" "$(get go-tuned transaction "$CMAX" "pd_${fn}_mib")") |"
		done
	done
	[[ -n "${COLD_FAIL:-}" ]] && say "" && say "Cold start failed: $COLD_FAIL"
	mem_by_library
} >>"$MD"

# The issue's targets, as ratios from this run.
RATIOS="$OUT/ratios.tsv"
printf 'issue\tratio\tvalue\ttarget\tverdict\n' >"$RATIOS"
ISSUE=7
ratio() { # label value target-op target-value
	local label="$1" v="$2" op="$3" want="$4" verdict
	if [[ -z "$v" || "$v" == - ]]; then
		verdict="n/a"
	elif [[ -z "$op" ]]; then
		verdict="(info)"
	elif awk -v v="$v" -v w="$want" -v op="$op" 'BEGIN {exit !((op == ">=" && v >= w) || (op == "<=" && v <= w) || (op == "<" && v < w) || (op == "==" && v == w))}'; then
		verdict="met"
	else
		verdict="NOT MET"
	fi
	# No empty fields: `read` with IFS=tab would merge them.
	printf '%s\t%s\t%s\t%s\t%s\n' "$ISSUE" "$label" "${v:--}" "$([[ -n "$op" ]] && echo "$op $want" || echo -)" "$verdict" >>"$RATIOS"
}
maxdiv() { # a1 b1 a2 b2 ...: largest a/b
	local m="-" r
	while (($# >= 2)); do
		r="$(div "$1" "$2")"
		[[ "$r" != - ]] && { [[ "$m" == - ]] && m="$r" || m="$(awk -v a="$m" -v b="$r" 'BEGIN {print (b > a ? b : a)}')"; }
		shift 2
	done
	echo "$m"
}
o() { get ours "$1" "$CMAX" "$2"; }
if [[ "$WITH_GO" == 1 ]]; then
	ratio "POST /log c=$CMAX req/s ours/go-seed" "$(div "$(o log req_s)" "$(get go log "$CMAX" req_s)")" ">=" 2.5
	ratio "POST /log c=$CMAX req/s ours/go-tuned" "$(div "$(o log req_s)" "$(get go-tuned log "$CMAX" req_s)")" "" ""
fi
ratio "POST /log c=$CMAX req/s ours/ceiling" "$(div "$(o log req_s)" "$(get ceiling log "$CMAX" req_s)")" ">=" 0.8
if [[ "$WITH_GO" == 1 ]]; then
	ratio "POST /transaction c=$CMAX req/s ours/go-seed" "$(div "$(o transaction req_s)" "$(get go transaction "$CMAX" req_s)")" ">=" 8
	ratio "POST /transaction c=$CMAX req/s ours/go-tuned" "$(div "$(o transaction req_s)" "$(get go-tuned transaction "$CMAX" req_s)")" ">=" 2
	ratio "POST /transaction c=$CMAX p99 ours/go-tuned" "$(div "$(o transaction p99_ms)" "$(get go-tuned transaction "$CMAX" p99_ms)")" "<=" 0.5
fi
ratio "POST /transaction c=$CMAX errors (ours, all repeats)" "$(awk -v a="$(o transaction non2xx)" -v b="$(o transaction sock_err)" 'BEGIN {print (a == "" ? "-" : a + b)}')" "==" 0
# Bounded: TIME_WAIT must not grow with the request count; wrk's own closing
# connections and a few per function, also left from the last minute's runs,
# are fine.
TW_MAX=$((4 * CMAX > 256 ? 4 * CMAX : 256))
ratio "POST /transaction c=$CMAX TIME_WAIT (ours)" "$(o transaction time_wait)" "<=" "$TW_MAX"
if [[ "$WITH_GO" == 1 ]]; then
	ratio "POST /transaction c=$CMAX TIME_WAIT (go-seed, for scale)" "$(get go transaction "$CMAX" time_wait)" "" ""
	ratio "RSS under /transaction c=$CMAX load, worst function ours/go-seed" "$(maxdiv \
		"$(o transaction rss_audit_mib)" "$(get go transaction "$CMAX" rss_audit_mib)" \
		"$(o transaction rss_balance_mib)" "$(get go transaction "$CMAX" rss_balance_mib)" \
		"$(o transaction rss_tx_mib)" "$(get go transaction "$CMAX" rss_tx_mib)")" "<=" 0.33
	ratio "RSS under /transaction c=$CMAX load, worst function ours/go-tuned" "$(maxdiv \
		"$(o transaction rss_audit_mib)" "$(get go-tuned transaction "$CMAX" rss_audit_mib)" \
		"$(o transaction rss_balance_mib)" "$(get go-tuned transaction "$CMAX" rss_balance_mib)" \
		"$(o transaction rss_tx_mib)" "$(get go-tuned transaction "$CMAX" rss_tx_mib)")" "<=" 0.33
	ratio "HWM (peak) worst function ours/go-seed" "$(maxdiv \
		"$(o transaction hwm_audit_mib)" "$(get go transaction "$CMAX" hwm_audit_mib)" \
		"$(o transaction hwm_balance_mib)" "$(get go transaction "$CMAX" hwm_balance_mib)" \
		"$(o transaction hwm_tx_mib)" "$(get go transaction "$CMAX" hwm_tx_mib)")" "" ""
	ratio "cold start ours/go (audit-logger, median)" "$(div "$(cold_med ours audit)" "$(cold_med go audit)")" "<" 1
fi

# Issue 13: the durable chain.  ours-sqlite is the default store.
ISSUE=13
errs() { awk -v a="$(get "$1" "$2" "$CMAX" non2xx)" -v b="$(get "$1" "$2" "$CMAX" sock_err)" 'BEGIN {print (a == "" ? "-" : a + b)}'; }
worst() { # column stem (rss, pd) system against -> the largest ratio over the three functions
	maxdiv "$(get "$2" transaction "$CMAX" "$1_audit_mib")" "$(get "$3" transaction "$CMAX" "$1_audit_mib")" \
		"$(get "$2" transaction "$CMAX" "$1_balance_mib")" "$(get "$3" transaction "$CMAX" "$1_balance_mib")" \
		"$(get "$2" transaction "$CMAX" "$1_tx_mib")" "$(get "$3" transaction "$CMAX" "$1_tx_mib")"
}
if inlist ours-sqlite "${SYSTEMS[*]}"; then
	if [[ "$WITH_GO" == 1 ]]; then
		ratio "POST /transaction c=$CMAX req/s ours-sqlite/go-tuned" "$(div "$(get ours-sqlite transaction "$CMAX" req_s)" "$(get go-tuned transaction "$CMAX" req_s)")" ">=" 1.5
		ratio "POST /transaction c=$CMAX p99 ours-sqlite/go-tuned" "$(div "$(get ours-sqlite transaction "$CMAX" p99_ms)" "$(get go-tuned transaction "$CMAX" p99_ms)")" "<=" 1
		ratio "POST /update c=$CMAX req/s ours-sqlite/go-tuned" "$(div "$(get ours-sqlite update "$CMAX" req_s)" "$(get go-tuned update "$CMAX" req_s)")" "" ""
	fi
	ratio "POST /transaction c=$CMAX req/s ours-sqlite/ours (memory)" "$(div "$(get ours-sqlite transaction "$CMAX" req_s)" "$(o transaction req_s)")" "" ""
	ratio "POST /transaction c=$CMAX errors (ours-sqlite, all repeats)" "$(errs ours-sqlite transaction)" "==" 0
fi
if inlist ours-pg "${SYSTEMS[*]}"; then
	ratio "POST /transaction c=$CMAX req/s ours-pg/ours (memory)" "$(div "$(get ours-pg transaction "$CMAX" req_s)" "$(o transaction req_s)")" "" ""
	ratio "POST /transaction c=$CMAX p99 ours-pg/ours (memory)" "$(div "$(get ours-pg transaction "$CMAX" p99_ms)" "$(o transaction p99_ms)")" "" ""
	ratio "POST /update c=$CMAX req/s ours-pg/ours (memory)" "$(div "$(get ours-pg update "$CMAX" req_s)" "$(o update req_s)")" "" ""
	[[ "$WITH_GO" == 1 ]] &&
		ratio "POST /transaction c=$CMAX req/s ours-pg/go-tuned" "$(div "$(get ours-pg transaction "$CMAX" req_s)" "$(get go-tuned transaction "$CMAX" req_s)")" "" ""
	ratio "POST /transaction c=$CMAX errors (ours-pg, all repeats)" "$(errs ours-pg transaction)" "==" 0
fi
if [[ "$WITH_GO" == 1 ]]; then
	for s in "${SYSTEMS[@]}"; do
		is_ours "$s" || continue
		ratio "RSS under /transaction c=$CMAX, worst function $s/go-seed" "$(worst rss "$s" go)" "" ""
	done
	for s in "${SYSTEMS[@]}"; do
		is_ours "$s" || continue
		for fn in $COLD_FNS; do
			ratio "cold start ${BINNAME[$fn]} $s/go (median)" "$(div "$(cold_med "$s" "$fn")" "$(cold_med go "$fn")")" "" ""
		done
	done
fi
# Issue 16: a handler that waits holds no thread.
ISSUE=16
if [[ "$WITH_GO" == 1 ]]; then
	for s in ours ours-sqlite; do
		inlist "$s" "${SYSTEMS[*]}" || continue
		ratio "POST /transaction c=64 req/s $s/go-tuned" "$(div "$(get "$s" transaction 64 req_s)" "$(get go-tuned transaction 64 req_s)")" ">=" 2.5
		ratio "POST /transaction c=64 p99 $s/go-tuned" "$(div "$(get "$s" transaction 64 p99_ms)" "$(get go-tuned transaction 64 p99_ms)")" "<=" 0.33
	done
fi
ratio "POST /transaction req/s c=256 / c=16 (ours)" "$(div "$(get ours transaction 256 req_s)" "$(get ours transaction 16 req_s)")" ">=" 0.9
[[ "$WITH_GO" == 1 ]] &&
	ratio "POST /transaction req/s c=256 / c=16 (go-tuned, for scale)" "$(div "$(get go-tuned transaction 256 req_s)" "$(get go-tuned transaction 16 req_s)")" "" ""
ratio "POST /transaction +${DELAY_MS:-50} ms injected, c=${LAT_CONNS:-256}: transactions/s (ours)" "$(lat_med ours 5)" ">=" 4000
[[ "$WITH_GO" == 1 ]] &&
	ratio "POST /transaction +${DELAY_MS:-50} ms injected, c=${LAT_CONNS:-256}: transactions/s (go-tuned, for scale)" "$(lat_med go-tuned 5)" "" ""
for c in 64 256; do
	ratio "POST /log c=$c req/s ours/ceiling" "$(div "$(get ours log "$c" req_s)" "$(get ceiling log "$c" req_s)")" ">=" 0.85
done
if [[ "$WITH_GO" == 1 ]]; then
	for s in ours ours-sqlite; do
		inlist "$s" "${SYSTEMS[*]}" || continue
		ratio "RSS under /transaction c=$CMAX, worst function $s/go-tuned" "$(worst rss "$s" go-tuned)" "<=" 1
		ratio "private dirty under /transaction c=$CMAX, worst function $s/go-tuned" "$(worst pd "$s" go-tuned)" "<=" 0.5
	done
	for fn in $COLD_FNS; do
		ratio "cold start ${BINNAME[$fn]} ours/go (median)" "$(div "$(cold_med ours "$fn")" "$(cold_med go "$fn")")" "<" 0.5
	done
fi
{
	for issue in 7 13 16; do
		grep -q "^$issue"$'\t' "$RATIOS" || continue
		say ""
		if [[ "$issue" == 7 ]]; then
			say "Targets of issue 7 (ratios from this run; $CMAX connections; ours = the memory: store):"
		elif [[ "$issue" == 16 ]]; then
			say "Targets of issue 16, a handler that waits holds no thread (ratios from this run; ours = the memory: store, ours-sqlite = the default; memory at $CMAX connections):"
		else
			say "Targets of issue 13, the durable chain (ratios from this run; $CMAX connections; ours-sqlite = the default store):"
		fi
		say ""
		say "| ratio | value | target | verdict |"
		say "|---|---:|---|---|"
		awk -F'\t' -v i="$issue" 'NR > 1 && $1 == i' "$RATIOS" |
			while IFS=$'\t' read -r _ l v w verdict; do say "| $l | $v | $w | $verdict |"; done
	done
} >>"$MD"

# --- profile report ------------------------------------------------------------

# Threads that wait for work whatever the load: not worth a row.
idle_thread() { # name what
	case "$2" in accept4 | rt_sigtimedwait) return 0 ;; esac
	[[ "$1" == zc-watchdog && "$2" == clock_nanosleep ]] && return 0
	case "$1" in
	checkpointer | "background writer" | walwriter | "autovacuum launcher" | "logical replication launcher" | postgres)
		[[ "$2" == epoll_wait || "$2" == pselect6 ]] && return 0 ;;
	esac
	return 1
}
perf_top() { # perf.txt section-prefix -> "dso 12%, dso 5%, ..." (top 6)
	awk -v sec="$2" '
		/^== / { on = index($0, "== " sec " (") == 1 && index($0, "by shared object"); next }
		on && $1 ~ /%$/ { n++; if (n <= 6) { d = $2; sub(/^\[kernel\.kallsyms\]$/, "kernel", d); sub(/\.so.*/, "", d)
			out = out (out == "" ? "" : ", ") d " " int($1 + 0.5) "%" } }
		END { print out }' "$1"
}
render_profile() {
	local s f rps secs req label v rest wrk_req p99
	ls "$PROF"/*.states.tsv >/dev/null 2>&1 || return 0
	say ""
	say "Profile of POST /transaction at $CMAX connections: one more ${DURATION}s run per chain, with bench/threadstates sampling every thread every 20 ms$([[ "${PERF_OK:-0}" == 1 ]] && echo " and perf record -a -e cpu-clock") (not in the medians above: the probes slow it a little)."
	say ""
	say "CPU per transaction, µs (utime + stime from /proc over the run; 'rest' = the machine's busy CPU not in these processes: other tenants, the probes):"
	say ""
	say "| chain | req/s (p99 ms) | transaction-processor | balance-manager | audit-logger | PostgreSQL | wrk | rest | machine busy |"
	say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for s in ours ours-sqlite ours-pg; do
		f="$PROF/$s.states.tsv"
		[[ -s "$f" ]] || continue
		rps="$(sed -n 's/^Requests\/sec: *//p' "$PROF/$s.wrk.txt")"
		secs="$(awk -F'\t' '$1 == "samples" {print $4}' "$f")"
		req="$(awk -v r="${rps:-0}" -v s="${secs:-0}" 'BEGIN {print r * s}')"
		cpu_us() { awk -F'\t' -v l="$1" -v r="$req" '$1 == "cpu" && $2 == l {if (r > 0) printf "%.0f", $3 * 1e6 / r; f = 1} END {if (!f) print "-"}' "$f"; }
		rest="$(awk -F'\t' -v r="$req" '$1 == "cpu" {if ($2 == "machine-busy") b = $3; else t += $3} END {if (r > 0) printf "%.0f", (b - t) * 1e6 / r; else print "-"}' "$f")"
		p99="$(awk '/^ +99%/ {print $2}' "$PROF/$s.wrk.txt")"
		say "| $s | ${rps%.*} (${p99:-?}) | $(cpu_us tx) | $(cpu_us balance) | $(cpu_us audit) | $(cpu_us postgres) | $(cpu_us wrk) | $rest | $(awk -F'\t' -v s="$secs" '$1 == "cpu" && $2 == "machine-busy" {printf "%.0f %% of %d CPUs", 100 * $3 / s / n, n}' n="$(nproc)" "$f") |"
	done
	say ""
	say "Where the threads are (mean number of threads in each state over the run; cpu = running or runnable, otherwise the system call it sleeps in; threads that only wait for work left out). MHD-single is a server thread of ours (an event loop running handlers), zc-async a fire-and-forget delivery thread; poll in a server thread is a wait for the answer of a downstream function (libcurl) or of PostgreSQL (libpq), futex a lock, clock_nanosleep SQLite's busy wait, epoll_wait an idle loop. For PostgreSQL, the backend's database and its process title: the statement it runs, 'idle in transaction' between statements, 'waiting' for a lock:"
	say ""
	say "| chain | process | thread | state | threads |"
	say "|---|---|---|---|---:|"
	for s in ours ours-sqlite ours-pg; do
		f="$PROF/$s.states.tsv"
		[[ -s "$f" ]] || continue
		awk -F'\t' '$1 == "state" && $2 != "wrk" && $5 >= 0.05 {print $2 "\t" $3 "\t" $4 "\t" $5}' "$f" |
			while IFS=$'\t' read -r label name what v; do
				idle_thread "$name" "$what" && continue
				say "| $s | $label | $name | $what | $v |"
			done
	done
	if [[ -n "$(ls "$PROF"/*.perf.txt 2>/dev/null)" ]]; then
		say ""
		say "perf (cpu-clock, all CPUs, 499 Hz): each process's CPU by shared object (share of its own samples):"
		say ""
		say "| chain | process | top shared objects |"
		say "|---|---|---|"
		for s in ours ours-sqlite ours-pg; do
			f="$PROF/$s.perf.txt"
			[[ -s "$f" ]] || continue
			for label in tx balance audit postgres; do
				v="$(perf_top "$f" "$label")"
				[[ -n "$v" ]] && say "| $s | $label | $v |"
			done
		done
	fi
	if [[ -s "$PROF/ours-pg.pg-after.txt" && -s "$PROF/ours-pg.pg-before.txt" ]]; then
		wrk_req="$(sed -n 's/.*WRKRESULT requests=\([0-9]*\).*/\1/p' "$PROF/ours-pg.wrk.txt")"
		say ""
		say "PostgreSQL's counters over the ours-pg run, per HTTP transaction (${wrk_req:-?} of them; pg_stat_database, pg_stat_wal): $(
			awk -v r="${wrk_req:-0}" 'NR == FNR {a[$1] = $2; next} {d = $2 - a[$1]; if (r > 0) printf "%s%s %.2f", (n++ ? ", " : ""), $1, d / r}' \
				"$PROF/ours-pg.pg-before.txt" "$PROF/ours-pg.pg-after.txt")."
	fi
	[[ -s "$PROF/ours-sqlite.sqlite-files.txt" ]] && say "" &&
		say "ours-sqlite's files after the profile run (bytes; the -wal files are the write-ahead logs, which checkpoints copy into the database and restart): $(awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}' "$PROF/ours-sqlite.sqlite-files.txt")."
	[[ -n "${DSYNC_US:-}" ]] && say "" && say "The disk under the stores (${STORE_FS:-?}): one 8 KiB write with O_DSYNC over an allocated file (about what a commit's WAL flush costs) takes ${DSYNC_US} µs (200 in a row)."
	return 0
}
render_profile >>"$MD"

# --- plot --------------------------------------------------------------------

PNG="$OUT/bench.png"
if command -v gnuplot >/dev/null; then
	mkdir -p "$OUT/plot"
	rm -f "$OUT"/plot/*.dat
	tail -n +2 "$RES" | while IFS=$'\t' read -r s t c _ rps _ _ _ p99 _; do
		printf '%s %s %s\n' "$c" "$rps" "$p99" >>"$OUT/plot/$s.$t.dat"
	done
	{
		# libgd's png: a palette image a quarter the size of pngcairo's.
		echo "set terminal png size 1200,720 font 'DejaVuSans,9'"
		echo "set output '$PNG'"
		echo "set multiplot layout 2,3 title 'Zenith C (ours: memory:, ours-sqlite, ours-pg) vs the seed Go chain: wrk -t1, median of $REPEAT x ${DURATION}s, $(nproc) CPUs, ${RUN_DATE%%T*}'"
		tics="$(for c in $CONNS; do printf '"%s" %s, ' "$c" "$c"; done)"
		echo "set logscale x 2; set xrange [0.8:$((CMAX * 5 / 4))]; set xtics (${tics%, }); set grid; set key top left"
		echo "set offsets 0, 0, graph 0.3, 0 # headroom for the key"
		echo "set xlabel 'connections'"
		for metric in rps p99; do
			for t in "${TARGETS[@]}"; do
				if [[ "$metric" == rps ]]; then
					echo "set ylabel 'req/s'; set yrange [0:*]; set title 'POST ${TPATH[$t]}: throughput'"
					ycol=2
				else
					echo "set ylabel 'p99 latency, ms'; set yrange [0:*]; set title 'POST ${TPATH[$t]}: p99 latency'"
					ycol=3
				fi
				plot="plot"
				for s in $(systems_for "$t"); do
					[[ -s "$OUT/plot/$s.$t.dat" ]] || continue
					# One colour per system in every panel.
					case "$s" in
					ours) lc='#7b2fbf' ;; ours-sqlite) lc='#1a9850' ;; ours-pg) lc='#2166ac' ;;
					go) lc='#e08214' ;; go-tuned) lc='#d4b000' ;; *) lc='#8c510a' ;;
					esac
					plot+=" '$OUT/plot/$s.$t.dat' using 1:$ycol with linespoints lw 2 pt 7 lc rgb '$lc' title '$s',"
				done
				[[ "$plot" == plot ]] && plot="plot 0 notitle,"
				echo "${plot%,}"
			done
		done
		echo "unset multiplot"
	} >"$OUT/plot/bench.gp"
	gnuplot "$OUT/plot/bench.gp" 2>"$OUT/plot/gnuplot.err" || say "bench: gnuplot failed (see $OUT/plot/gnuplot.err)"
fi

# --- report ------------------------------------------------------------------

say ""
cat "$MD"
say ""
say "results: $RES (medians), $RUNS (every run), $COLD, $RATIOS, $MD${PNG:+, $PNG}"
say "bench: load ${T_LOAD}s, profile ${T_PROFILE:-0}s, total ${T_ALL}s; load average at start $LOAD_START, at end $LOAD_END"

rc=0
# 128 + 11 is SIGSEGV: a crash while draining, not a clean stop.
[[ -n "${BAD_EXIT:-}" ]] && { say "bench: FAIL: not a clean exit (0) after SIGTERM: $BAD_EXIT"; rc=1; }
for s in "${!DEAD[@]}"; do
	is_ours "$s" || [[ "$s" == ceiling || "$SMOKE" == 1 ]] && { say "bench: FAIL: $s died (${DEAD[$s]})"; rc=1; }
done
for s in ${COLD_FAIL:-}; do
	is_ours "${s%%/*}" && { say "bench: FAIL: cold start of $s failed"; rc=1; }
done
if [[ "$SMOKE" == 1 ]]; then
	errs="$(awk -F'\t' 'NR > 1 {e += $8 + $9} END {print e + 0}' "$RUNS")"
	((errs == 0)) || { say "bench: FAIL: $errs request(s) erred (non-2xx or socket errors)"; rc=1; }
	runs="$(awk 'END {print NR - 1}' "$RUNS")"
	want=0
	for t in "${TARGETS[@]}"; do
		for c in $CONNS; do want=$((want + $(wc -w <<<"$(systems_for "$t" "$c")"))); done
	done
	want=$((want * REPEAT))
	((runs == want)) || { say "bench: FAIL: $runs of $want runs completed"; rc=1; }
	((rc == 0)) && say "bench-smoke: ok ($runs runs, no errors, every server alive)"
elif [[ "$STRICT" == 1 ]] && grep -q 'NOT MET' "$RATIOS"; then
	say "bench: targets not met (BENCH_STRICT=1)"
	rc=1
fi
exit $rc
