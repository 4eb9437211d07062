#!/bin/sh
# check-installed.sh — make installcheck: the example compiled against the
# installed libpgoutput with nothing but `pkg-config --cflags --libs pgoutput`,
# once against the shared library and once fully static (libpgoutput.a), and
# both decode the captured stream into examples/stream.expected.
# Arguments (from the makefile): CC PKG_CONFIG DESTDIR PKGCONFIGDIR LIBDIR EXAMPLES-DIR
set -eu
cc=$1 pkgconfig=$2 destdir=$3 pcdir=$4 libdir=$5 ex=$6
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgo-installed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
PKG_CONFIG_PATH=$destdir$pcdir
PKG_CONFIG_SYSROOT_DIR=$destdir
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$($pkgconfig --cflags pgoutput)
# shellcheck disable=SC2086 # flags are lists of words
$cc -o "$tmp/shared" "$ex/pgo_stream.c" $cflags $($pkgconfig --libs pgoutput)
# shellcheck disable=SC2086
$cc -static -o "$tmp/static" "$ex/pgo_stream.c" $cflags $($pkgconfig --static --libs pgoutput)
LD_LIBRARY_PATH=$libdir "$tmp/shared" "$ex/stream.pgocap" >"$tmp/shared.out"
"$tmp/static" "$ex/stream.pgocap" >"$tmp/static.out"
diff -u "$ex/stream.expected" "$tmp/shared.out"
diff -u "$ex/stream.expected" "$tmp/static.out"
echo "installcheck: the example builds against the installed libpgoutput (shared and static) and decodes the captured stream"
