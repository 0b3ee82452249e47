#!/usr/bin/env bash
# bench.sh - Zenith C's benchmark (`make bench`, issue 7): our three-function
# chain, a bare libmicrohttpd ceiling server and, when ../shared/peers/go-chain
# is present, the seed's Go chain as written and --tuned, loaded side by side
# with wrk on loopback; prints a table and the issue's ratios (met / not met),
# writes TSV + markdown + a gnuplot PNG under build/bench/.  See bench/README.md.
#
# BENCH_SMOKE=1 (`make bench-smoke`): 1 repeat of 2 s at 16 connections, ours
# only, no warm-up, no Go; exits non-zero if a server died or a request erred.
# BENCH_REPORT=1: draw the tables and plot again from the last run's TSVs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

SMOKE="${BENCH_SMOKE:-0}"
if [[ "$SMOKE" == 1 ]]; then
	REPEAT="${REPEAT:-1}" DURATION="${DURATION:-2}" CONNS="${CONNS:-16}"
	WARMUP="${WARMUP:-0}" COLD_RUNS="${COLD_RUNS:-5}" COLD_SETS="${COLD_SETS:-1}"
	OUT="${OUT:-$ROOT/build/bench/smoke}" WITH_GO="${WITH_GO:-0}"
else
	REPEAT="${REPEAT:-3}" DURATION="${DURATION:-10}" CONNS="${CONNS:-1 16 64}"
	WARMUP="${WARMUP:-2}" COLD_RUNS="${COLD_RUNS:-10}" COLD_SETS="${COLD_SETS:-3}"
	OUT="${OUT:-$ROOT/build/bench}" WITH_GO="${WITH_GO:-auto}"
fi
WRK_TIMEOUT="${WRK_TIMEOUT:-2s}"
BIN="${BIN:-$ROOT/build/bin}"
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
systems_for() { # target: who serves it (the ceiling stands in for /log)
	local s out=()
	for s in "${SYSTEMS[@]}"; do
		[[ "$s" == ceiling && "$1" != log ]] && continue
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
pkgs=(wrk curl iproute2 procps gcc pkg-config libmicrohttpd-dev)
[[ "$SMOKE" == 1 ]] || pkgs+=(gnuplot-nox)
[[ "$WITH_GO" == 1 ]] && pkgs+=(golang-go)
ensure_pkgs "${pkgs[@]}"

# --- build (release flags: the project's default -O2 build) ----------------

mkdir -p "$OUT/bin" "$OUT/logs" "$OUT/raw"
rm -f "$OUT"/raw/* "$OUT"/logs/*
say "bench: building (make all, ceiling, coldstart)"
make --no-print-directory -s -C "$ROOT" all || die "make all failed"
for r in "${ROLES[@]}"; do [[ -x "$BIN/${BINNAME[$r]}" ]] || die "missing $BIN/${BINNAME[$r]}"; done
# The ceiling gets the same optimisation and hardening flags as the runtime.
CFLAGS_BENCH=(-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2
	-fstack-protector-strong -fPIE -pthread)
# shellcheck disable=SC2046  # pkg-config output is a word list
cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/ceiling" bench/ceiling.c -pie -Wl,-z,relro,-z,now \
	$(pkg-config --cflags --libs libmicrohttpd) || die "building bench/ceiling.c failed"
cc "${CFLAGS_BENCH[@]}" -o "$OUT/bin/coldstart" bench/coldstart.c || die "building bench/coldstart.c failed"

SYSTEMS=(ours)
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
		"$k" == LOG_LEVEL || "$k" == K_SERVICE || "$k" == *_URL ]] && CLEAN_ENV+=(-u "$k")
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
	ours)
		start ours audit "$BIN/audit-logger" ZC_LISTEN_ADDRESS=$HOST && wait_up ours audit &&
			start ours balance "$BIN/balance-manager" ZC_LISTEN_ADDRESS=$HOST \
				AUDIT_LOGGER_URL="http://$HOST:${PORT[ours/audit]}" && wait_up ours balance &&
			start ours tx "$BIN/transaction-processor" ZC_LISTEN_ADDRESS=$HOST \
				BALANCE_MANAGER_URL="http://$HOST:${PORT[ours/balance]}" && wait_up ours tx
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
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

declare -A DEAD # system -> "role role" that died
RUNS="$OUT/runs.tsv"
printf 'system\ttarget\tconns\trep\treq_s\tp50_ms\tp99_ms\tnon2xx\tsock_err\ttime_wait\tcpu_us_per_req\trss_kib\thwm_kib\trss_audit_kib\trss_balance_kib\trss_tx_kib\thwm_audit_kib\thwm_balance_kib\thwm_tx_kib\tlog_warn_err\tlog_bytes_per_req\tdead\n' >"$RUNS"

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
	local cpu0 cpu1 tw res req dur rps p50 p99 st sock cpu rss hwm d="" lb=0 lw=0 half w
	declare -A mid hw
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
	cpu0="$(cpu_ticks "${pids[@]}")"
	timeout $((DURATION + 15)) wrk -t1 -c"$c" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$OUT/raw/$t.lua" "$url" >"$out" 2>&1 &
	w=$!
	WRK_PID=$w
	# Resident memory under load: sampled half way through the run.
	half="$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
	sleep "$half"
	for r in $(roles_of "$sys"); do mid[$r]="$(mem_kib VmRSS "${PID[$sys/$r]}")"; done
	wait "$w"
	WRK_PID=
	cpu1="$(cpu_ticks "${pids[@]}")"
	tw="$(timewait "${ports[@]}")"
	for r in $(roles_of "$sys"); do
		# VmHWM is only brought up to date on some kernel paths and can read
		# below an earlier VmRSS: the peak is the larger of the two.
		hw[$r]="$(mem_kib VmHWM "${PID[$sys/$r]}")"
		[[ "${hw[$r]}" != - && "${mid[$r]}" != - ]] && ((mid[$r] > hw[$r])) && hw[$r]=${mid[$r]}
		alive "$sys/$r" || d+="$r,"
		lb=$((lb + $(stat -c %s "${LOG[$sys/$r]}")))
		[[ "$sys" == ours ]] && lw=$((lw + $(grep -c -E '^[^ ]+ (WARN|ERROR)' "${LOG[$sys/$r]}")))
	done
	res="$(grep -m1 '^WRKRESULT' "$out")"
	[[ -n "$res" ]] || { say "  $sys $t c=$c rep=$rep: wrk gave no result ($out)"; res="WRKRESULT requests=0 duration_us=1"; }
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
	cpu="$(awk -v a="$cpu0" -v b="$cpu1" -v r="$req" -v hz="$CLK_TCK" 'BEGIN {if (r > 0) printf "%.1f", (b - a) / hz * 1e6 / r; else print "-"}')"
	rss="${mid[$entry]}"
	hwm="${hw[$entry]}"
	local lbpr
	lbpr="$(awk -v b="$lb" -v r="$req" 'BEGIN {if (r > 0) printf "%.0f", b / r; else print "-"}')"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$sys" "$t" "$c" "$rep" "$rps" "$p50" "$p99" "$st" "$sock" "$tw" "$cpu" "$rss" "$hwm" \
		"${mid[audit]:--}" "${mid[balance]:--}" "${mid[tx]:--}" "${hw[audit]:--}" "${hw[balance]:--}" "${hw[tx]:--}" \
		"$([[ "$sys" == ours ]] && echo "$lw" || echo -)" "$lbpr" "${d%,}" >>"$RUNS"
	printf '  %-8s %-12s c=%-3s rep=%s  %8s req/s  p50 %7s ms  p99 %7s ms  err %s/%s  cpu %6s us/req  rss %s KiB  tw %s%s\n' \
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
			for s in $(systems_for "$t"); do
				[[ -z "${DEAD[$s]:-}" ]] && run_one "$s" "$t" "$c" "$rep"
			done
		done
	done
done
T_LOAD=$((SECONDS - T_START))

# --- cold start: exec to first 2xx, our audit-logger vs the Go one -----------

COLD="$OUT/cold.tsv"
printf 'system\tset\trun\tms\n' >"$COLD"
cold_systems=(ours)
[[ "$WITH_GO" == 1 ]] && cold_systems+=(go)
say ""
say "== cold start: exec to first 2xx of POST /log, polled every 100 us, ${COLD_SETS} x ${COLD_RUNS} runs each"
for ((set = 1; set <= COLD_SETS; set++)); do
	for s in "${cold_systems[@]}"; do
		next_port
		if [[ "$s" == ours ]]; then
			cmd=("$BIN/audit-logger") cenv=("ZC_LISTEN_ADDRESS=$HOST")
		else
			cmd=("$GO_DIR/bin/audit-logger") cenv=("LISTEN_HOST=$HOST")
		fi
		# One unrecorded run first, so every recorded one finds the binary in the page cache.
		env "${CLEAN_ENV[@]}" PORT="$REPLY" "${cenv[@]}" "$OUT/bin/coldstart" -p "$REPLY" -P /log \
			-b "$AUDIT_BODY" -n 1 -o "$OUT/logs/cold.$s.log" -- "${cmd[@]}" >/dev/null || die "cold start of $s failed"
		env "${CLEAN_ENV[@]}" PORT="$REPLY" "${cenv[@]}" "$OUT/bin/coldstart" -p "$REPLY" -P /log \
			-b "$AUDIT_BODY" -n "$COLD_RUNS" -o "$OUT/logs/cold.$s.log" -- "${cmd[@]}" >"$OUT/raw/cold.$s.$set.txt" ||
			die "cold start of $s failed"
		sed -n 's/^run \([0-9]*\): \([0-9.]*\) ms$/\1 \2/p' "$OUT/raw/cold.$s.$set.txt" |
			while read -r i ms; do printf '%s\t%s\t%s\t%s\n' "$s" "$set" "$i" "$ms"; done >>"$COLD"
		say "  $s set $set: $(grep '^COLDSTART' "$OUT/raw/cold.$s.$set.txt")"
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
for s in ours ceiling; do
	line="  $s exit statuses after SIGTERM:"
	for r in $(roles_of "$s"); do
		line+=" $r=${EXIT_STATUS[$s/$r]}"
		[[ "${EXIT_STATUS[$s/$r]}" == 0 ]] || BAD_EXIT+="$s/$r=${EXIT_STATUS[$s/$r]} "
	done
	say "$line"
done
ALL_PIDS=()

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
T_ALL=$((SECONDS - T_START))
RUN_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# What the report needs to be drawn again later from the TSVs (BENCH_REPORT=1).
{
	printf 'RUN_DATE=%q\nRUN_START=%q\nDURATION=%q\nREPEAT=%q\nCONNS=%q\nWARMUP=%q\n' \
		"$RUN_DATE" "$RUN_START" "$DURATION" "$REPEAT" "$CONNS" "$WARMUP"
	printf 'COLD_SETS=%q\nCOLD_RUNS=%q\nWITH_GO=%q\nSYSTEMS_LIST=%q\nSMOKE=%q\n' \
		"$COLD_SETS" "$COLD_RUNS" "$WITH_GO" "${SYSTEMS[*]}" "$SMOKE"
	printf 'IDLE_START=%q\nLOAD_START=%q\nLOAD_END=%q\nT_LOAD=%q\nT_ALL=%q\nMACHINE=%q\n' \
		"$idle" "$LOAD_START" "$LOAD_END" "$T_LOAD" "$T_ALL" "$MACHINE"
	printf 'BAD_EXIT=%q\n' "$BAD_EXIT"
} >"$OUT/meta.env"

else # BENCH_REPORT=1
	[[ -r "$OUT/meta.env" && -r "$OUT/runs.tsv" && -r "$OUT/cold.tsv" ]] ||
		die "BENCH_REPORT=1: no earlier run in $OUT (meta.env, runs.tsv, cold.tsv)"
	# shellcheck disable=SC1091
	. "$OUT/meta.env"
	read -r -a SYSTEMS <<<"$SYSTEMS_LIST"
	RUNS="$OUT/runs.tsv" COLD="$OUT/cold.tsv"
	cold_systems=(ours)
	[[ "$WITH_GO" == 1 ]] && cold_systems+=(go)
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
	st[k] += $8; so[k] += $9; if ($20 != "-") lw[k] += $20; if ($22 != "") dead[k] = dead[k] $22 " " }
END {
	print "system", "target", "conns", "reps", "req_s", "req_s_min", "req_s_max", "p50_ms", "p99_ms", "p99_min", "p99_max",
		"non2xx", "sock_err", "time_wait", "cpu_us_per_req", "rss_mib", "hwm_mib",
		"rss_audit_mib", "rss_balance_mib", "rss_tx_mib", "hwm_audit_mib", "hwm_balance_mib", "hwm_tx_mib", "log_warn_err", "dead"
	for (i = 1; i <= n; i++) { k = order[i]
		printf "%s\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.0f\t%s", k, reps[k], med(L[k, "rps"]),
			lo(L[k, "rps"]), hi(L[k, "rps"]), med(L[k, "p50"]), med(L[k, "p99"]), lo(L[k, "p99"]), hi(L[k, "p99"]),
			st[k], so[k], med(L[k, "tw"]), (L[k, "cpu"] == "" ? "-" : sprintf("%.1f", med(L[k, "cpu"])))
		split("rss:L hwm:M ra:L rb:L rt:L ha:M hb:M ht:M", f, " ")
		for (j = 1; j <= 8; j++) { split(f[j], g, ":")
			if (g[2] == "L") printf "\t%s", (L[k, g[1]] == "" ? "-" : sprintf("%.1f", med(L[k, g[1]]) / 1024))
			else printf "\t%s", (M[k, g[1]] == "" ? "-" : sprintf("%.1f", M[k, g[1]] / 1024)) }
		printf "\t%s\t%s\n", (k ~ /^ours/ ? lw[k] + 0 : "-"), (dead[k] == "" ? "-" : dead[k]) }
}' "$RUNS" >"$RES"

# col NAME: the field number of NAME in results.tsv
col() { head -1 "$RES" | tr '\t' '\n' | grep -nx "$1" | cut -d: -f1; }
get() { # system target conns column -> value ("" if absent)
	awk -F'\t' -v s="$1" -v t="$2" -v c="$3" -v f="$(col "$4")" '$1 == s && $2 == t && $3 == c {print $f}' "$RES"
}
cold_med() { # system -> median ms over all recorded runs
	awk -F'\t' -v s="$1" 'NR > 1 && $1 == s {print $4}' "$COLD" | sort -g |
		awk '{a[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
cold_range() { awk -F'\t' -v s="$1" 'NR > 1 && $1 == s {print $4}' "$COLD" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {if (NR) printf "%s..%s", a, b}'; }

MD="$OUT/results.md"
{
	say "Run $RUN_START to $RUN_DATE on $MACHINE; CPUs ${IDLE_START:-$idle}% idle before it, load average $LOAD_START at start and $LOAD_END at end."
	say "wrk -t1 --timeout 2s, connections [$CONNS], $REPEAT x ${DURATION}s per (system, target, connections), systems alternating; ${WARMUP}s warm-up per system and target."
	say ""
	say "| system | target | conns | req/s (median) | req/s min..max | p50 ms | p99 ms (min..max) | non-2xx / socket errors | server CPU µs/req | RSS MiB (entry fn, under load) | HWM MiB | TIME_WAIT after |"
	say "|---|---|---|---:|---|---:|---|---|---:|---:|---:|---:|"
	tail -n +2 "$RES" | while IFS=$'\t' read -r s t c _ rps rmin rmax p50 p99 p99l p99h st so tw cpu rss hwm _; do
		say "| $s | POST ${TPATH[$t]} | $c | $rps | $rmin..$rmax | $p50 | $p99 ($p99l..$p99h) | $st / $so | $cpu | $rss | $hwm | $tw |"
	done
} >"$MD"

# Memory per function under the heaviest load (POST /transaction, most connections).
CMAX="$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1)"
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
	say "Cold start of audit-logger (posix_spawn to first 2xx of POST /log, polled every 100 µs; $COLD_SETS sets of $COLD_RUNS runs, alternating):"
	say ""
	say "| system | median ms | min..max ms |"
	say "|---|---:|---|"
	for s in "${cold_systems[@]}"; do say "| $s | $(cold_med "$s") | $(cold_range "$s") |"; done
} >>"$MD"

# The issue's targets, as ratios from this run.
RATIOS="$OUT/ratios.tsv"
printf 'ratio\tvalue\ttarget\tverdict\n' >"$RATIOS"
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
	printf '%s\t%s\t%s\t%s\n' "$label" "${v:--}" "$([[ -n "$op" ]] && echo "$op $want" || echo -)" "$verdict" >>"$RATIOS"
}
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b}'; }
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
	ratio "cold start ours/go (audit-logger, median)" "$(div "$(cold_med ours)" "$(cold_med go)")" "<" 1
fi
{
	say ""
	say "Targets of issue 7 (ratios from this run; $CMAX connections):"
	say ""
	say "| ratio | value | target | verdict |"
	say "|---|---:|---|---|"
	tail -n +2 "$RATIOS" | while IFS=$'\t' read -r l v w verdict; do say "| $l | $v | $w | $verdict |"; done
} >>"$MD"

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
		echo "set multiplot layout 2,3 title 'Zenith C vs the seed Go chain: wrk -t1, median of $REPEAT x ${DURATION}s, $(nproc) CPUs, ${RUN_DATE%%T*}'"
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
					plot+=" '$OUT/plot/$s.$t.dat' using 1:$ycol with linespoints lw 2 title '$s',"
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
say "bench: load ${T_LOAD}s, total ${T_ALL}s; load average at start $LOAD_START, at end $LOAD_END"

rc=0
# 128 + 11 is SIGSEGV: a crash while draining, not a clean stop.
[[ -n "${BAD_EXIT:-}" ]] && { say "bench: FAIL: not a clean exit (0) after SIGTERM: $BAD_EXIT"; rc=1; }
for s in "${!DEAD[@]}"; do
	[[ "$s" == ours || "$s" == ceiling || "$SMOKE" == 1 ]] && { say "bench: FAIL: $s died (${DEAD[$s]})"; rc=1; }
done
if [[ "$SMOKE" == 1 ]]; then
	errs="$(awk -F'\t' 'NR > 1 {e += $8 + $9} END {print e + 0}' "$RUNS")"
	((errs == 0)) || { say "bench: FAIL: $errs request(s) erred (non-2xx or socket errors)"; rc=1; }
	runs="$(awk 'END {print NR - 1}' "$RUNS")"
	want=0
	for t in "${TARGETS[@]}"; do want=$((want + $(wc -w <<<"$(systems_for "$t")"))); done
	want=$((want * REPEAT * $(wc -w <<<"$CONNS")))
	((runs == want)) || { say "bench: FAIL: $runs of $want runs completed"; rc=1; }
	((rc == 0)) && say "bench-smoke: ok ($runs runs, no errors, every server alive)"
elif [[ "$STRICT" == 1 ]] && grep -q 'NOT MET' "$RATIOS"; then
	say "bench: targets not met (BENCH_STRICT=1)"
	rc=1
fi
exit $rc
