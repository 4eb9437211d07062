#!/bin/sh
# headers.sh — every public header compiles on its own: each header under
# include/, decoder/ and src/ (the internal ones) is the only thing a translation unit includes (twice,
# so its include guard is tested too), built with the project's warning flags.
# A header that leans on something its includer happened to include first
# (FILE without <stdio.h>, a type from a sibling header) fails here.
#
# Run by make check (and by make distcheck, from the tarball): the makefile
# exports PGDBM_TOP_SRCDIR, PGDBM_HEADERS_CC and PGDBM_HEADERS_CFLAGS.
# Prints a summary line shaped like Check's, which run-test.sh shows.
top=${PGDBM_TOP_SRCDIR:?PGDBM_TOP_SRCDIR is not set: run this through make check}
cc=${PGDBM_HEADERS_CC:-cc}
cflags=${PGDBM_HEADERS_CFLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgdbm-headers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

total=0
failed=0
for h in "$top"/include/*.h "$top"/decoder/*.h "$top"/src/*.h; do
	[ -f "$h" ] || continue
	name=${h#"$top"/}
	total=$((total + 1))
	base=$(basename "$h")
	printf '#include "%s"\n#include "%s"\n' "$base" "$base" >"$tmp/alone.c"
	# shellcheck disable=SC2086 # the flags are a list of words
	if $cc $cflags -I"$top/include" -I"$top/decoder" -I"$top/src" -fsyntax-only "$tmp/alone.c" \
		>"$tmp/out" 2>&1; then
		echo "ok: $name compiles on its own"
	else
		failed=$((failed + 1))
		echo "FAILED: $name does not compile on its own:"
		sed 's/^/    /' "$tmp/out"
	fi
done

if [ "$total" -eq 0 ]; then
	echo "no headers found under $top/include or $top/decoder"
	exit 99
fi
echo "$(((total - failed) * 100 / total))%: Checks: $total, Failures: $failed, Errors: 0"
[ "$failed" -eq 0 ]
