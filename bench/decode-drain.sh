#!/usr/bin/env bash
# decode-drain.sh — how fast does `pg_dbmigrator decode` drain a slot's backlog,
# next to PostgreSQL's own pg_recvlogical, in the same run on the same backlog?
#
# Starts a throwaway cluster, creates two pgoutput slots at the same point per
# scenario, builds the backlog, then drains one slot with each tool up to the
# same --endpos and writes to /dev/null. Scenarios:
#   insert  ROWS rows inserted in one transaction         (default 1,000,000)
#   update  UPDATES single-row updates by pgbench -c 4     (default 300,000)
# Prints seconds, rows/s and the ratio (pg_recvlogical time / ours), and for
# each the CPU seconds of the source's walsender and the share of the time it
# was busy: near 100% the walsender sets the pace, and no reader of the stream
# can drain faster than it streams. Ours reads such a backlog through SQL
# (decode's --catch-up sql, its default), and its "walsender" column is then
# the backend that serves that catch-up (the slot's active process);
# DECODE_ARGS="--catch-up stream" times ours on the stream alone.
#
# Usage: bench/decode-drain.sh [--rows N] [--updates N] [--binary PATH]
# Needs: initdb, pg_ctl, pg_recvlogical, pgbench, psql (scripts/setup installs them).
set -euo pipefail

ROWS=1000000
UPDATES=300000
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PGDBM_BIN:-$here/../build/pg_dbmigrator}
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) ROWS=$2; shift 2 ;;
		--updates) UPDATES=$2; shift 2 ;;
		--binary) BIN=$2; shift 2 ;;
		-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
		*) echo "decode-drain.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "decode-drain.sh: no pg_dbmigrator at $BIN (build first, or --binary PATH)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_init bench
port=$(( 20000 + RANDOM % 20000 ))
bench_cluster data "$port" <<CONF
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
fsync = off
synchronous_commit = off
shared_buffers = 256MB
max_wal_size = 4GB
CONF
CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" -c "$1"; }

sql "CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL, pad text NOT NULL)"
sql "CREATE PUBLICATION pub FOR ALL TABLES"

# Run a client in the background until it ends; print its wall seconds, its
# CPU seconds and the CPU seconds of the walsender serving slot $1 (sampled
# every 50 ms while both live: the share of the time the source was busy).
drain() { # slot command...
	local slot=$1 t0 job wp= c cc=0 wc=0
	shift
	t0=$(date +%s.%N)
	"$@" &
	job=$!
	while kill -0 "$job" 2>/dev/null; do
		[ -n "$wp" ] || wp=$(sql "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$slot'")
		cpu_of "$wp" c; [ "$c" = 0.000 ] || wc=$c
		cpu_of "$job" c; [ "$c" = 0.000 ] || cc=$c
		nap 0.05
	done
	wait "$job"
	awk -v a="$t0" -v b="$(date +%s.%N)" -v cc="$cc" -v wc="$wc" 'BEGIN { printf "%.3f %.2f %.2f\n", b - a, cc, wc }'
}

# one scenario: make two slots, run the workload, drain each slot, print a row
run() {
	local name=$1 rows=$2 workload=$3
	sql "SELECT pg_create_logical_replication_slot('${name}_recv', 'pgoutput')" >/dev/null
	sql "SELECT pg_create_logical_replication_slot('${name}_ours', 'pgoutput')" >/dev/null
	eval "$workload"
	# the insert position: with synchronous_commit = off the write position lags the last commits
	local endpos; endpos=$(sql "SELECT pg_current_wal_insert_lsn()")
	local theirs ours
	theirs=$(drain "${name}_recv" pg_recvlogical -d "$CONN" --slot "${name}_recv" --start \
		--endpos "$endpos" -f /dev/null -o proto_version=1 -o publication_names=pub --no-loop)
	ours=$(drain "${name}_ours" "$BIN" decode --source "$CONN" --slot-name "${name}_ours" \
		--publication pub --endpos "$endpos" --output /dev/null --proto-version 1 ${DECODE_ARGS:-})
	echo "$theirs $ours" | awk -v n="$name" -v r="$rows" '{
		printf "| %-7s | %9d | %8.2f | %9.0f | %6.2f | %6.2f (%3.0f%%) | %8.2f | %9.0f | %6.2f | %6.2f (%3.0f%%) | %5.2fx |\n",
		       n, r, $1, r / $1, $2, $3, 100 * $3 / $1, $4, r / $4, $5, $6, 100 * $6 / $4, $1 / $4 }'
}

echo "| backlog | rows | pg_recvlogical s | rows/s | client CPU s | walsender CPU s (busy) | pg_dbmigrator s | rows/s | client CPU s | walsender CPU s (busy) | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
run insert "$ROWS" 'sql "INSERT INTO t SELECT g, 0, md5(g::text) FROM generate_series(1, $ROWS) g"'
per_client=$(( UPDATES / 4 ))
cat >"$dir/update.sql" <<SQL
\set id random(1, $ROWS)
UPDATE t SET v = v + 1 WHERE id = :id;
SQL
run update "$(( per_client * 4 ))" 'pgbench -n -c 4 -j 2 -t $per_client -f "$dir/update.sql" "$CONN" >/dev/null'
