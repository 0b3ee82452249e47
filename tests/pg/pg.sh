#!/usr/bin/env bash
# pg.sh - a private, throwaway PostgreSQL 15 for the tests: its own data
# directory, a free port on 127.0.0.1 and a socket directory inside DIR, so
# it never touches Debian's cluster on 5432 or /etc/postgresql.
#
#   pg.sh start DIR    initdb + start; prints the URL, writes DIR/pid
#   pg.sh pause DIR    stop it (fast), keeping data and port
#   pg.sh resume DIR   start it again on the same data and port
#   pg.sh stop DIR     stop it (fast; then SIGKILL by PID) and remove DIR
#
# As root the server runs as the postgres user (postgres and initdb refuse
# root), with runuser.  Installs nothing: postgresql-15 must be there
# (scripts/install-deps.sh).  fsync=off: the data is thrown away, and a
# killed server or client still loses nothing; only an OS crash would.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
MARK=.zc-test-pg

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: pg.sh start|pause|resume|stop DIR" >&2
	exit 2
}

# Runs a server binary as the user that owns the cluster.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The pid in DIR/pid, if that process still runs.
live_pid() {
	local pid
	[[ -s "$1/pid" ]] || return 1
	pid=$(<"$1/pid")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# A port nothing listens on: random in 20000-59999, checked by connecting.
free_port() {
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# pg_ctl start on DIR's data; records the postmaster's pid.
start_server() {
	local dir=$1
	as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
		>/dev/null || return 1
	head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
	as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(<"$dir/port")" -t 10
}

cmd_start() {
	local dir=$1 port try
	[[ -x $BIN/initdb ]] || die "$BIN/initdb missing: apt-get install postgresql-15 (scripts/install-deps.sh)"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "no postgres user (the postgresql-15 package creates it)"
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[[ -e $dir/data ]] && die "$dir/data exists: stop the server there first"
	: >"$dir/$MARK"
	mkdir -p "$dir/sock"
	if [[ $(id -u) -eq 0 ]]; then
		chown -R postgres: "$dir"
		runuser -u postgres -- test -w "$dir" ||
			die "the postgres user cannot write $dir (is a parent directory private to root?)"
	fi
	if ! as_pg "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 -N \
		--no-instructions >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		die "initdb failed"
	fi
	for ((try = 0; try < 5; try++)); do
		port=$(free_port) || die "no free port found"
		echo "$port" >"$dir/port"
		# In postgresql.auto.conf, so pause/resume restarts it the same.
		as_pg tee "$dir/data/postgresql.auto.conf" >/dev/null <<-CONF
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$dir/sock'
			fsync = off
			full_page_writes = off
			max_connections = 200
			logging_collector = off
		CONF
		if start_server "$dir"; then
			echo "postgresql://postgres@127.0.0.1:$port/postgres?connect_timeout=5"
			return 0
		fi
		# Lost a race for the port?  Try another; else say why.
		grep -q "could not bind\|Address already in use" "$dir/log" 2>/dev/null ||
			break
	done
	cat "$dir/log" >&2 2>/dev/null || true
	die "postgres did not start (log above)"
}

cmd_pause() {
	local dir=$1
	[[ -e $dir/$MARK ]] || die "$dir is not a pg.sh directory"
	as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

cmd_resume() {
	local dir=$1
	[[ -e $dir/$MARK ]] || die "$dir is not a pg.sh directory"
	start_server "$dir" || {
		tail -n 20 "$dir/log" >&2
		die "postgres did not start again"
	}
}

cmd_stop() {
	local dir=$1 pid i
	[[ -d $dir ]] || return 0
	[[ -e $dir/$MARK ]] || die "$dir is not a pg.sh directory: not removing it"
	if [[ -e $dir/data/postmaster.pid ]]; then
		as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop \
			>/dev/null 2>&1 || true
	fi
	if pid=$(live_pid "$dir"); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}

(($# == 2)) || usage
case $1 in
start) cmd_start "$2" ;;
pause) cmd_pause "$2" ;;
resume) cmd_resume "$2" ;;
stop) cmd_stop "$2" ;;
*) usage ;;
esac
