#!/usr/bin/env bash
# test-install.sh - what a function author does first: `make install`, copy
# templates/c/http, build it with pkg-config, run its Check test, serve it
# and call it; also that DESTDIR staging puts every file under DESTDIR.
# Everything happens in a temporary directory that is removed at the end;
# every process started here is killed by PID.
#
# Ends with "install: N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/zc-install.XXXXXX")"
fn_pid=""
pass=0
fail=0

cleanup() {
	if [[ -n "$fn_pid" ]] && kill -0 "$fn_pid" 2>/dev/null; then
		kill -KILL "$fn_pid" 2>/dev/null || true
		wait "$fn_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
	pass=$((pass + 1))
	echo "ok   $*"
}

not_ok() {
	fail=$((fail + 1))
	echo "FAIL $*"
}

# check NAME COMMAND...: one test case, whose output goes to the log.
check() {
	local name="$1"
	shift
	if "$@" >>"$tmp/log" 2>&1; then
		ok "$name"
	else
		not_ok "$name (log: see below)"
		tail -n 20 "$tmp/log" | sed 's/^/     | /'
		return 1
	fi
}

# expect NAME WANT GOT: exact comparison.
expect() {
	if [[ "$3" == "$2" ]]; then
		ok "$1"
	else
		not_ok "$1: expected '$2', got '$3'"
	fi
}

summary() {
	echo "install: $pass passed, $fail failed"
	((fail == 0))
}

# call PATH CURL-ARGS...: "<status> <body>" from the function under test.
call() {
	local path="$1" code
	shift
	code="$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "$@" "$base$path" ||
		true)"
	echo "$code $(cat "$tmp/body" 2>/dev/null)"
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

version="$(sed -n 's/^#define ZC_VERSION "\(.*\)"/\1/p' "$root/runtime/include/zenith.h")"
prefix="$tmp/prefix"
# A private build directory: a concurrent build in build/ cannot hand us
# a half-written archive, and the install is tested from a clean build.
build="$tmp/build"

# 1. Install into a prefix and find it with pkg-config.
if ! check "make install PREFIX=<tmp>/prefix" \
	make -C "$root" --no-print-directory -s install \
	BUILD="$build" PREFIX="$prefix" DESTDIR=; then
	summary
	exit 1
fi
for f in lib/libzenithc.a include/zenith.h lib/pkgconfig/zenith-c.pc; do
	check "installed $f" test -s "$prefix/$f" || true
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
expect "pkg-config --modversion zenith-c" "$version" \
	"$(pkg-config --modversion zenith-c 2>&1 || true)"
libs_complete() {
	local libs w
	libs="$(pkg-config --libs zenith-c)"
	for w in -lzenithc -lmicrohttpd -ljansson -lm -pthread; do
		[[ " $libs " == *" $w "* ]] || {
			echo "missing $w in: $libs"
			return 1
		}
	done
	# libcurl is loaded at run time (dlopen), never linked
	[[ " $libs " != *" -lcurl "* ]] || {
		echo "-lcurl should not be linked: $libs"
		return 1
	}
}
check "pkg-config --libs names the archive and its dependencies" \
	libs_complete || true

# 2. The template, copied as an author would, builds and passes its test.
cp -R "$root/templates/c/http" "$tmp/fn"
make -C "$tmp/fn" --no-print-directory -s clean >/dev/null 2>&1 || true
if ! check "template builds (make)" make -C "$tmp/fn" --no-print-directory; then
	summary
	exit 1
fi
check "template Check test passes (make test)" \
	make -C "$tmp/fn" --no-print-directory test || true

# 3. Serve it on a free loopback port and call it.
port="$(free_port)"
base="http://127.0.0.1:$port"
(cd "$tmp/fn" && exec env PORT="$port" ./hello) 2>"$tmp/fn.log" &
fn_pid=$!
ready=no
for _ in $(seq 1 200); do
	if curl -fs -o /dev/null "$base/health/readiness"; then
		ready=yes
		break
	fi
	kill -0 "$fn_pid" 2>/dev/null || break
	sleep 0.05
done
expect "function serves /health/readiness on PORT=$port" yes "$ready"

if [[ "$ready" == yes ]]; then
	expect "GET /hello?name=Ada+Lovelace" \
		'200 {"message":"Hello, Ada Lovelace!"}' \
		"$(call "/hello?name=Ada+Lovelace")"
	expect "POST /echo" '200 {"echo":"hi","bytes":2}' \
		"$(call /echo -H 'Content-Type: application/json' \
			-d '{"message":"hi"}')"
	expect "POST /echo without message" \
		'400 {"error":"missing field \"message\""}' \
		"$(call /echo -H 'Content-Type: application/json' -d '{}')"
fi

# 4. SIGTERM: the function drains and exits 0 by itself.
if kill -0 "$fn_pid" 2>/dev/null; then
	kill -TERM "$fn_pid"
	for _ in $(seq 1 200); do
		kill -0 "$fn_pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$fn_pid" 2>/dev/null; then
		not_ok "function exits within 10 s of SIGTERM"
		kill -KILL "$fn_pid" 2>/dev/null || true
		wait "$fn_pid" 2>/dev/null || true
	else
		rc=0
		wait "$fn_pid" || rc=$?
		expect "exit code after SIGTERM" 0 "$rc"
	fi
else
	not_ok "function was still running before SIGTERM"
	wait "$fn_pid" 2>/dev/null || true
fi
fn_pid=""
if ! grep -q 'INFO  hello: stopped' "$tmp/fn.log"; then
	not_ok "function logged 'stopped'"
	sed 's/^/     | /' "$tmp/fn.log"
else
	ok "function logged 'stopped'"
fi

# 5. Staged install: DESTDIR=<stage> PREFIX=/usr writes only under <stage>/usr.
stage="$tmp/stage"
if check "make install DESTDIR=<tmp>/stage PREFIX=/usr" \
	make -C "$root" --no-print-directory -s install \
	BUILD="$build" DESTDIR="$stage" PREFIX=/usr; then
	for f in lib/libzenithc.a include/zenith.h lib/pkgconfig/zenith-c.pc; do
		check "staged usr/$f" test -s "$stage/usr/$f" || true
	done
	expect "nothing staged outside usr/" usr \
		"$(find "$stage" -mindepth 1 -maxdepth 1 -printf '%f ' | sed 's/ $//')"
	expect "staged zenith-c.pc says prefix=/usr" prefix=/usr \
		"$(grep '^prefix=' "$stage/usr/lib/pkgconfig/zenith-c.pc" || true)"
fi

summary
