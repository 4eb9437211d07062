#!/usr/bin/env bash
# verify-vs-copy.sh — does `pg_dbmigrator verify` of a large table cost more
# than reading that table with COPY on both sides at once?
#
# Starts two throwaway clusters, creates the same table of ROWS rows (about
# 100 bytes each; 8.5M rows is about 0.9 GB) on both, then twice times
#   baseline: psql "\copy big to /dev/null" on both sides in parallel
#   ours:     pg_dbmigrator verify --table big
# and prints both and their ratio (the goal: at most 1.2).
#
# Usage: bench/verify-vs-copy.sh [--rows N] [--binary PATH]
set -euo pipefail

ROWS=8500000
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PGDBM_BIN:-$here/../build/pg_dbmigrator}
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) ROWS=$2; shift 2 ;;
		--binary) BIN=$2; shift 2 ;;
		-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
		*) echo "verify-vs-copy.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "verify-vs-copy.sh: no pg_dbmigrator at $BIN (build first, or --binary PATH)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_init verifybench
port=$(( 20000 + RANDOM % 20000 ))
for c in a b; do
	bench_cluster "$c" "$port" <<CONF
fsync = off
shared_buffers = 256MB
CONF
	eval "conn_$c='host=127.0.0.1 port=$port user=postgres dbname=postgres'"
	port=$(( port + 1 ))
done
for c in "$conn_a" "$conn_b"; do
	psql -X -q -d "$c" -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a,
		md5((g + 1)::text) AS b, timestamptz '2026-11-30 00:00+00' + g * interval '1 s' AS t
		FROM generate_series(1, $ROWS) g" &
done
wait
echo "table size: $(psql -X -At -d "$conn_a" -c "SELECT pg_size_pretty(pg_table_size('big'))") on each side"
for run in 1 2; do
	t0=$(date +%s.%N)
	psql -X -q -d "$conn_a" -c "\\copy big to /dev/null" &
	psql -X -q -d "$conn_b" -c "\\copy big to /dev/null" &
	wait
	t1=$(date +%s.%N)
	"$BIN" verify --source "$conn_a" --target "$conn_b" --table big >"$dir/verify.out" || { cat "$dir/verify.out"; exit 1; }
	t2=$(date +%s.%N)
	awk -v r=$run -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
		printf "run %d: COPY both sides to /dev/null %.2f s; verify %.2f s; ratio %.2f\n",
		       r, b - a, c - b, (c - b) / (b - a) }'
done
cat "$dir/verify.out"
