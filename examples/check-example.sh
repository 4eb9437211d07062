#!/bin/sh
# check-example.sh — make check's run of the example: examples/pgo_stream,
# linked with nothing but libpgoutput, decodes the captured stream
# examples/stream.pgocap into exactly examples/stream.expected.
# Prints a summary line shaped like Check's, which run-test.sh shows.
top=${PGDBM_TOP_SRCDIR:?PGDBM_TOP_SRCDIR is not set: run this through make check}
build=${PGDBM_TOP_BUILDDIR:?PGDBM_TOP_BUILDDIR is not set: run this through make check}
out=$(mktemp "${TMPDIR:-/tmp}/pgo-example.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT
if "$build/examples/pgo_stream" "$top/examples/stream.pgocap" >"$out" &&
	diff -u "$top/examples/stream.expected" "$out"; then
	echo "ok: pgo_stream decodes the captured stream as expected"
	echo "100%: Checks: 1, Failures: 0, Errors: 0"
	exit 0
fi
echo "FAILED: pgo_stream's output differs from examples/stream.expected (or it failed)"
echo "0%: Checks: 1, Failures: 1, Errors: 0"
exit 1
