#!/usr/bin/env bash
# run-unit.sh BUILD_DIR - run every Check test binary in BUILD_DIR/tests.
#
# The store's tests need a PostgreSQL: unless ZC_TEST_PG_URL is already set
# (a server of your own) or ZC_TEST_NO_PG=1, a private one is started first
# with tests/pg/pg.sh (its own data directory and port, never the system's
# cluster) and stopped at the end, also on failure or Ctrl-C.  Its URL and
# directory are exported as ZC_TEST_PG_URL and ZC_TEST_PG_DIR.
set -uo pipefail
build="${1:-build}"
root=$(cd "$(dirname "$0")/.." && pwd)
pass=0 fail=0
pgdir=

stop_pg() {
	if [[ -n $pgdir ]]; then
		"$root/tests/pg/pg.sh" stop "$pgdir" || echo "unit: could not stop PostgreSQL in $pgdir" >&2
		pgdir=
	fi
}
trap stop_pg EXIT
trap 'stop_pg; trap - INT; kill -INT $$' INT
trap 'stop_pg; exit 143' TERM

if [[ -z ${ZC_TEST_PG_URL:-} && ${ZC_TEST_NO_PG:-} != 1 ]]; then
	# under /tmp: the postgres user must reach it when we run as root
	pgdir=$(mktemp -d /tmp/zc-unit-pg.XXXXXX)
	if url=$("$root/tests/pg/pg.sh" start "$pgdir"); then
		export ZC_TEST_PG_URL=$url ZC_TEST_PG_DIR=$pgdir
		export ZC_TEST_PG_SH=$root/tests/pg/pg.sh
		echo "unit: PostgreSQL for the store tests at $url (pid $(cat "$pgdir/pid"))"
	else
		# the store tests then fail, saying why
		echo "unit: could not start PostgreSQL with tests/pg/pg.sh" >&2
		rm -rf "$pgdir"
		pgdir=
	fi
fi

# Sanitizer builds run several times slower (the e2e suite's --slow factor
# says the same): their tests get proportionally longer timeouts.
case "$build" in
*asan*) mult=3 ;;
*tsan*) mult=4 ;;
*) mult=1 ;;
esac
for t in "$build"/tests/test_*; do
	[[ -x "$t" ]] || continue
	if CK_DEFAULT_TIMEOUT=60 CK_TIMEOUT_MULTIPLIER="$mult" "$t"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "unit: FAILED $t" >&2
	fi
done
stop_pg
echo "unit ($build): $pass passed, $fail failed"
((fail == 0 && pass > 0))
