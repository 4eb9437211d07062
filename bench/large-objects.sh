#!/usr/bin/env bash
# large-objects.sh — how long does the LargeObjects phase (large objects
# carried over at the cutover) add to an online migration's cutover?
#
# Starts two throwaway clusters and runs two online migrations, each cut over
# by SIGINT once caught up, with --verify off (so only the carry-over is
# timed), and prints the LargeObjects event's seconds and the time from the
# SIGINT to the exit:
#   unchanged: SMALL small objects (2 kB) and LARGE large ones (LARGE_MB MB)
#              made before the migration (the dump copies them); meanwhile
#              1% of the small ones are rewritten and one byte of one large
#              one: everything is compared, little is written;
#   created:   the same objects all made while the migration streams:
#              everything is written.
# Then, on the source, how fast the large ones can be read three ways:
# server-side MD5 per 1 MB chunk (what the phase does), the bytes only read
# (length), and the bytes sent to the client (COPY binary to /dev/null).
#
# Usage: bench/large-objects.sh [--small N] [--large N] [--large-mb MB] [--binary PATH]
set -euo pipefail

SMALL=10000
LARGE=10
LARGE_MB=100
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PGDBM_BIN:-$here/../build/pg_dbmigrator}
while [ $# -gt 0 ]; do
	case "$1" in
		--small) SMALL=$2; shift 2 ;;
		--large) LARGE=$2; shift 2 ;;
		--large-mb) LARGE_MB=$2; shift 2 ;;
		--binary) BIN=$2; shift 2 ;;
		-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
		*) echo "large-objects.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "large-objects.sh: no pg_dbmigrator at $BIN (build first, or --binary PATH)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_init lobench
port=$(( 20000 + RANDOM % 20000 ))
bench_cluster src "$port" <<CONF
fsync = off
shared_buffers = 256MB
wal_level = logical
max_wal_size = 4GB
CONF
src_port=$port
port=$(( port + 1 ))
bench_cluster tgt "$port" <<CONF
fsync = off
shared_buffers = 256MB
max_wal_size = 4GB
CONF
tgt_port=$port
conn() { echo "host=127.0.0.1 port=$1 user=postgres dbname=$2"; }

# the objects: SMALL of 2 kB, LARGE of LARGE_MB MB
make_objects() {
	psql -X -q -d "$1" -c "SELECT count(lo_from_bytea(0, convert_to(repeat(md5(g::text), 64),
		'UTF8'))) FROM generate_series(1, $SMALL) g" >/dev/null
	for _ in $(seq 1 "$LARGE"); do
		psql -X -q -d "$1" -c "SELECT lo_from_bytea(0, convert_to(repeat('0123456789abcdef',
			$LARGE_MB * 65536), 'UTF8'))" >/dev/null
	done
}

# one online migration of database $1; $2 runs (in the background of the
# stream, once caught up) what the application does; prints the figures
migrate() {
	local db=$1 what=$2 src tgt pid t0 t1
	src=$(conn "$src_port" "$db")
	tgt=$(conn "$tgt_port" "$db")
	"$BIN" --mode online --source "$src" --target "$tgt" --dump-path "$dir/$db.dump" \
		--cutover-poll-secs 1 --verify off 2>"$dir/$db.log" >/dev/null &
	pid=$!
	until grep -q "stage=CaughtUp" "$dir/$db.log"; do
		kill -0 "$pid" 2>/dev/null || { cat "$dir/$db.log"; exit 1; }
		sleep 0.2
	done
	$what "$src"
	t0=$(date +%s.%N)
	kill -INT "$pid"
	wait "$pid" || { tail -5 "$dir/$db.log"; exit 1; }
	t1=$(date +%s.%N)
	grep "stage=LargeObjects large objects carried" "$dir/$db.log" | sed 's/^INFO stage=LargeObjects //;s/ source_objects=.*//'
	awk -v a="$t0" -v b="$t1" -v s="$(grep -o 'stage=LargeObjects large objects carried.* seconds=[0-9.]*' "$dir/$db.log" | sed 's/.*seconds=//')" \
		'BEGIN { printf "  LargeObjects phase %.2f s; SIGINT to exit %.2f s\n", s, b - a }'
}

nothing() { :; }
touch_some() {
	psql -X -q -d "$1" -c "SELECT count(lo_put(oid, 0, '\\x42'::bytea)) FROM (SELECT oid FROM
		pg_largeobject_metadata ORDER BY oid LIMIT $(( SMALL / 100 ))) o" >/dev/null
	psql -X -q -d "$1" -c "SELECT lo_put(max(oid), 5000000, '\\x42'::bytea) FROM pg_largeobject_metadata" >/dev/null
}
create_all() { make_objects "$1"; }

echo "objects: $SMALL small (2 kB), $LARGE large ($LARGE_MB MB)"
for db in lo_unchanged lo_created; do
	psql -X -q -d "$(conn "$src_port" postgres)" -c "CREATE DATABASE $db"
	psql -X -q -d "$(conn "$tgt_port" postgres)" -c "CREATE DATABASE $db"
	psql -X -q -d "$(conn "$src_port" "$db")" -c "CREATE TABLE t (id int PRIMARY KEY)"
done
make_objects "$(conn "$src_port" lo_unchanged)"
echo "unchanged (1% of the small ones and one byte of one large one rewritten):"
migrate lo_unchanged touch_some
echo "created while streaming (everything written):"
migrate lo_created create_all

echo "reading the large objects on the source ($LARGE x $LARGE_MB MB), per 1 MB chunk:"
src=$(conn "$src_port" lo_created)
chunks="FROM (SELECT oid FROM pg_largeobject_metadata ORDER BY oid DESC LIMIT $LARGE) m, generate_series(0, $LARGE_MB - 1) i"
for way in "md5 on the server|SELECT count(md5(lo_get(m.oid, i * 1048576, 1048576))) $chunks" \
	"read only (length)|SELECT sum(length(lo_get(m.oid, i * 1048576, 1048576))) $chunks" \
	"sent to the client|\\copy (SELECT lo_get(m.oid, i * 1048576, 1048576) $chunks) TO /dev/null WITH (FORMAT binary)"; do
	t0=$(date +%s.%N)
	psql -X -q -d "$src" -c "${way#*|}" >/dev/null
	t1=$(date +%s.%N)
	awk -v w="${way%%|*}" -v a="$t0" -v b="$t1" 'BEGIN { printf "  %-20s %.2f s\n", w, b - a }'
done
