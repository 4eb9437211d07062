#!/bin/sh
# run-test.sh — LOG_COMPILER for make check: runs one test program, keeps its
# whole output for the .log file, and copies Check's summary lines
# ("100%: Checks: 12, Failures: 0, Errors: 0") to fd 9, the terminal, with
# the program's running time (the suite must stay within its time budget).
# PGDBM_SKIP_SERVER_SUITES=1 (scripts/test sets it for distcheck, which would
# run the whole suite a second time): the real-server suites (integration,
# faults, production) already ran in the sanitizer build minutes before;
# distcheck still builds the tarball, runs the unit tests, the example and the
# header check, installs, and runs installcheck. A plain `make distcheck` runs
# everything.
case "$1" in
*/integration/* | */faults/* | */production/*)
	if [ "${PGDBM_SKIP_SERVER_SUITES:-}" = 1 ]; then
		echo "skipped: PGDBM_SKIP_SERVER_SUITES=1"
		exit 77
	fi
	;;
esac
out=$(mktemp "${TMPDIR:-/tmp}/pgdbm-test.XXXXXX") || exit 99
t0=$(date +%s)
"$@" >"$out" 2>&1
rc=$?
secs=$(($(date +%s) - t0))
cat "$out"
if { true >&9; } 2>/dev/null; then
	grep -E '^[0-9]+%: Checks:' "$out" | sed "s|^|  $(basename "$1"): |; s|\$| (${secs} s)|" >&9
fi
rm -f "$out"
exit $rc
