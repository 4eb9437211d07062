#!/usr/bin/env bash
# apply-vs-native.sh — how fast does `pg_dbmigrator bench` apply a backlog,
# next to PostgreSQL's native apply worker (CREATE SUBSCRIPTION), on the same
# backlog, in the same run, on the same machine?
#
# Starts two throwaway clusters (source, target). For each workload it
# prepares identical tables on the source and in two target databases, creates
# two pgoutput slots at the same point, generates the backlog on the source,
# then
#   native: CREATE SUBSCRIPTION ... WITH (copy_data = false, create_slot = false)
#           on one slot, timed from ENABLE until a marker row written after the
#           backlog is visible on the target;
#   ours:   pg_dbmigrator bench --endpos <after the marker> on the other slot.
# After each run it compares a checksum of every table on the source and on
# both targets, and prints a table with the ratio (native seconds / ours).
#
# Workloads: insert (ROWS rows, 1000 per transaction), update and delete
# (single-row, by key, pgbench -c 4), tpcb (pgbench's tpcb-like script).
#
# Usage: bench/apply-vs-native.sh [--rows N] [--updates N] [--tpcb N]
#                                 [--only insert,update,delete,tpcb] [--binary PATH]
#                                 [--args "extra pg_dbmigrator bench options"] [--ours-first]
# Needs: initdb, pg_ctl, pgbench, psql (scripts/setup installs them).
set -euo pipefail

ROWS=1000000
UPDATES=200000
TPCB=100000
ONLY=insert,update,delete,tpcb
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PGDBM_BIN:-$here/../build/pg_dbmigrator}
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) ROWS=$2; shift 2 ;;
		--updates) UPDATES=$2; shift 2 ;;
		--tpcb) TPCB=$2; shift 2 ;;
		--only) ONLY=$2; shift 2 ;;
		--binary) BIN=$2; shift 2 ;;
		--args) BENCH_ARGS=$2; shift 2 ;;
		--ours-first) ORDER=ours-first; shift ;;
		-h|--help) sed -n '2,26p' "$0"; exit 0 ;;
		*) echo "apply-vs-native.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "apply-vs-native.sh: no pg_dbmigrator at $BIN (build first, or --binary PATH)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_init applybench
sport=$(( 20000 + RANDOM % 20000 )); tport=$(( sport + 1 ))
for c in src:$sport tgt:$tport; do
	bench_cluster "${c%%:*}" "${c##*:}" <<CONF
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_logical_replication_workers = 8
fsync = off
synchronous_commit = off
shared_buffers = 256MB
max_wal_size = 8GB
checkpoint_timeout = 30min
CONF
done
SRC="host=127.0.0.1 port=$sport user=postgres dbname=postgres"
tgt() { echo "host=127.0.0.1 port=$tport user=postgres dbname=$1"; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
sql "$(tgt postgres)" "CREATE DATABASE native" >/dev/null
sql "$(tgt postgres)" "CREATE DATABASE ours" >/dev/null
sql "$SRC" "CREATE TABLE marker (id int PRIMARY KEY)"
for db in native ours; do sql "$(tgt $db)" "CREATE TABLE marker (id int PRIMARY KEY)"; done

# on the source and both targets
everywhere() { sql "$SRC" "$1"; sql "$(tgt native)" "$1"; sql "$(tgt ours)" "$1"; }

checksum() { # conninfo tables...
	local conn=$1; shift
	for t in "$@"; do sql "$conn" "SELECT '$t', count(*), coalesce(sum(hashtext(x::text)::bigint), 0) FROM $t x"; done
}

now() { date +%s.%N; }

run() { # name rows tables workload-function
	local name=$1 rows=$2 tables=$3 workload=$4 n
	n=$(( $(date +%s%N) % 1000000 ))
	sql "$SRC" "CREATE PUBLICATION pub_$name FOR TABLE $tables, marker"
	sql "$SRC" "SELECT pg_create_logical_replication_slot('${name}_native', 'pgoutput')" >/dev/null
	sql "$SRC" "SELECT pg_create_logical_replication_slot('${name}_ours', 'pgoutput')" >/dev/null
	"$workload"
	sql "$SRC" "INSERT INTO marker VALUES ($n)"
	local endpos; endpos=$(sql "$SRC" "SELECT pg_current_wal_insert_lsn()")

	local t0 t1 t2 t3
	run_native() {
		sql "$(tgt native)" "CREATE SUBSCRIPTION sub_$name CONNECTION '$SRC' PUBLICATION pub_$name
			WITH (copy_data = false, create_slot = false, slot_name = '${name}_native', enabled = false)"
		t0=$(now)
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name ENABLE"
		until [ "$(sql "$(tgt native)" "SELECT count(*) FROM marker WHERE id = $n")" = 1 ]; do sleep 0.02; done
		t1=$(now)
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name DISABLE"
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name SET (slot_name = NONE)"
		sql "$(tgt native)" "DROP SUBSCRIPTION sub_$name"
	}
	run_ours() {
		t2=$(now)
		"$BIN" bench --source "$SRC" --target "$(tgt ours)" --slot-name "${name}_ours" \
			--publication "pub_$name" --endpos "$endpos" --json ${BENCH_ARGS:-} >"$dir/$name.json"
		t3=$(now)
	}
	# each side once first and once second, over the workloads, so neither gains by its turn
	if [ "${ORDER:-native-first}" = ours-first ]; then run_ours; sleep 2; run_native
	else run_native; sleep 2; run_ours; fi
	local rss; rss=$(sed -E 's/.*"peak_rss_kb":([0-9]+).*/\1/' "$dir/$name.json")
	local cpu; cpu=$(sed -E 's/.*"cpu_seconds":([0-9.]+).*/\1/' "$dir/$name.json")

	local ok=yes IFS=,
	# shellcheck disable=SC2086
	local src_sum; src_sum=$(checksum "$SRC" $tables)
	[ "$src_sum" = "$(checksum "$(tgt native)" $tables)" ] || ok="NO (native differs)"
	[ "$src_sum" = "$(checksum "$(tgt ours)" $tables)" ] || ok="NO (ours differs)"
	unset IFS
	awk -v n="$name" -v r="$rows" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v ok="$ok" -v rss="$rss" -v cpu="$cpu" 'BEGIN {
		native = b - a; ours = d - c;
		printf "| %-7s | %9d | %8.2f | %9.0f | %8.2f | %9.0f | %5.2fx | %6.1f | %5.2f | %s |\n",
		       n, r, native, r / native, ours, r / ours, native / ours, rss / 1024, cpu, ok }'
	sql "$SRC" "SELECT pg_drop_replication_slot('${name}_native')" >/dev/null
	sql "$SRC" "SELECT pg_drop_replication_slot('${name}_ours')" >/dev/null
}

echo "| workload | row changes | native s | native rows/s | pg_dbmigrator s | rows/s | ratio | peak RSS MiB | client CPU s | checksums equal |"
echo "|---|---|---|---|---|---|---|---|---|---|"

case ",$ONLY," in *,insert,*)
	everywhere "CREATE TABLE bulk (id bigint PRIMARY KEY, v int NOT NULL, pad text NOT NULL)"
	insert_workload() {
		sql "$SRC" "DO \$\$ BEGIN FOR i IN 0..$(( ROWS / 1000 - 1 )) LOOP
			INSERT INTO bulk SELECT g, 0, md5(g::text) FROM generate_series(i * 1000 + 1, i * 1000 + 1000) g;
			COMMIT; END LOOP; END \$\$"
	}
	run insert "$ROWS" bulk insert_workload
	;;
esac

per_client=$(( UPDATES / 4 ))
case ",$ONLY," in *,update,*)
	everywhere "CREATE TABLE upd (id bigint PRIMARY KEY, v int NOT NULL, pad text NOT NULL)"
	everywhere "INSERT INTO upd SELECT g, 0, md5(g::text) FROM generate_series(1, 100000) g"
	printf '\\set id random(1, 100000)\nUPDATE upd SET v = v + 1 WHERE id = :id;\n' >"$dir/update.sql"
	update_workload() { pgbench -n -c 4 -j 2 -t $per_client -f "$dir/update.sql" "$SRC" >/dev/null; }
	run update "$(( per_client * 4 ))" upd update_workload
	;;
esac

case ",$ONLY," in *,delete,*)
	everywhere "CREATE TABLE del (id bigint PRIMARY KEY, v int NOT NULL, pad text NOT NULL)"
	everywhere "INSERT INTO del SELECT g, 0, md5(g::text) FROM generate_series(1, $(( per_client * 4 ))) g"
	# each client deletes its own range, one row per transaction
	printf '\\set id :client_id * %d + random(1, %d)\nDELETE FROM del WHERE id = :id;\n' \
		"$per_client" "$per_client" >"$dir/delete.sql"
	delete_workload() { pgbench -n -c 4 -j 2 -t $per_client -f "$dir/delete.sql" "$SRC" >/dev/null; }
	run delete "$(( per_client * 4 ))" del delete_workload
	;;
esac

case ",$ONLY," in *,tpcb,*)
	pgbench -i -q -s 10 "$SRC" >/dev/null 2>&1
	for db in native ours; do pgbench -i -q -s 10 "$(tgt $db)" >/dev/null 2>&1; done
	# history has no key: FULL identity lets its (insert-only) rows be published safely
	everywhere "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"
	# tpcb-like: 3 updates and 1 insert per transaction
	tpcb_workload() { pgbench -n -c 4 -j 2 -t $(( TPCB / 4 )) "$SRC" >/dev/null; }
	run tpcb "$(( TPCB / 4 * 4 * 4 ))" pgbench_accounts,pgbench_branches,pgbench_tellers,pgbench_history \
		tpcb_workload
	;;
esac
