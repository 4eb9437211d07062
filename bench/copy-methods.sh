#!/usr/bin/env bash
# copy-methods.sh — how long does the initial copy of a whole database take,
# by each method, on the same source, into fresh targets, in the same run?
#
# Starts two throwaway clusters. The source gets pgbench at --scale (its
# pgbench_accounts holds most of the data: one big table) and a table of
# --rows rows of text, jsonb, bytea, timestamptz and numeric with a
# secondary index. Then, each into a fresh target database, timed as a whole
# command:
#   pg_dump|pg_restore  pg_dump -Fc | pg_restore (one stream, no file)
#   pg_dump|psql        pg_dump | psql
#   by hand             the floor a script reaches: pg_dump --section=pre-data | psql,
#                       then per table COPY TO STDOUT | COPY FROM STDIN, --jobs at a
#                       time, then pg_restore --section=post-data --jobs
#   ours dump           pg_dbmigrator --mode offline --copy-method dump --verify off
#   ours direct         pg_dbmigrator --mode offline --copy-method direct --verify off
#                       (with --jobs 1, and with --jobs)
#   ours direct+verify  the same with --verify warn (the default)
#   default before 15   --copy-method dump with the tool's default --jobs, --compress
#                       and --verify: what users got before issue 15
#   ours, all defaults  no option at all (direct copy, default --jobs, verify on)
# ours run with --jobs (default 2) unless the row says defaults. Every target
# is then compared with the source by `pg_dbmigrator verify` (not timed).
# Prints seconds, the ratio against pg_dump|pg_restore, the client CPU seconds
# of each command, the servers' CPU seconds (every process of the source and
# the target cluster, from /proc), and for the direct copy the split: the
# tables copied in more than one part and each copy worker's busy seconds;
# for a run with --verify, the verify's seconds (read_on_target_only: the
# tables it read on the target only, against the copy's digest of the source).
#
# --skew sizes the wide table so that pgbench_accounts holds about 80% of the
# data (one table dominates: does --jobs 2 still use both workers?).
#
# Usage: bench/copy-methods.sh [--scale N] [--rows N] [--skew] [--jobs N]
#                              [--repeat N] [--binary PATH]
# Needs: initdb, pg_ctl, pgbench, pg_dump, pg_restore, psql (scripts/setup
# installs them).
set -euo pipefail

SCALE=20
ROWS=200000
JOBS=2
REPEAT=1
SKEW=0
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PGDBM_BIN:-$here/../build/pg_dbmigrator}
while [ $# -gt 0 ]; do
	case "$1" in
		--scale) SCALE=$2; shift 2 ;;
		--rows) ROWS=$2; shift 2 ;;
		--skew) SKEW=1; shift ;;
		--jobs) JOBS=$2; shift 2 ;;
		--repeat) REPEAT=$2; shift 2 ;;
		--binary) BIN=$2; shift 2 ;;
		-h|--help) sed -n '2,38p' "$0"; exit 0 ;;
		*) echo "copy-methods.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "copy-methods.sh: no pg_dbmigrator at $BIN (build first, or --binary PATH)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_init copybench
chmod 755 "$dir" # the tool, run as this user, writes its dump here
sport=$(( 20000 + RANDOM % 20000 )); tport=$(( sport + 1 ))
for c in src:$sport tgt:$tport; do
	bench_cluster "${c%%:*}" "${c##*:}" <<CONF
wal_level = logical
max_wal_size = 8GB
checkpoint_timeout = 30min
shared_buffers = 256MB
maintenance_work_mem = 256MB
CONF
done
SRC="host=127.0.0.1 port=$sport user=postgres dbname=postgres"
tgt() { echo "host=127.0.0.1 port=$tport user=postgres dbname=$1"; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# about 13.6 MB of pgbench_accounts per scale unit, 230 bytes a wide row: a quarter of it
if [ "$SKEW" = 1 ]; then ROWS=$(( SCALE * 14800 )); fi
echo "building the source: pgbench scale $SCALE, $ROWS wide rows ..." >&2
pgbench -i -q -s "$SCALE" "$SRC" >/dev/null 2>&1
sql "$SRC" "CREATE TABLE wide (id bigint PRIMARY KEY, note text, doc jsonb, blob bytea,
	at timestamptz, amount numeric(14,4));
	INSERT INTO wide SELECT g, md5(g::text) || repeat(' lorem', 8),
	  jsonb_build_object('id', g, 'tags', jsonb_build_array('a', 'b', g % 7), 'ok', g % 2 = 0),
	  decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 second',
	  g * 1.2345 FROM generate_series(1, $ROWS) g;
	CREATE INDEX wide_at ON wide (at)"
sql "$SRC" "VACUUM ANALYZE"
size=$(sql "$SRC" "SELECT pg_size_pretty(pg_database_size('postgres'))")
share=$(sql "$SRC" "SELECT round(100.0 * max(pg_total_relation_size(c.oid)) /
	sum(pg_total_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'r' AND n.nspname = 'public'")
echo "source: $size, the largest table ${share}% of it" >&2

# CPU seconds of every process of both clusters: the postmasters, their live
# children, and what their finished children used (cutime, cstime)
CLK_TCK=$(getconf CLK_TCK)
server_cpu() {
	local total=0 pid
	for c in src tgt; do
		pid=$(head -1 "$dir/$c/postmaster.pid" 2>/dev/null) || continue
		for p in "$pid" $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
			# fields 14-17 after the ")" that ends the command name
			t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || t=0
			total=$(( total + ${t:-0} ))
		done
	done
	echo "$total"
}

TIMEFORMAT='%R %U %S'
n=0
results=()
timed() { # name command...
	local name=$1; shift
	n=$((n + 1))
	local db="t$n"
	sql "$(tgt postgres)" "CREATE DATABASE $db" >/dev/null
	local t c0 c1
	c0=$(server_cpu)
	t=$( { time "$@" "$(tgt "$db")" >"$dir/$db.out" 2>"$dir/$db.err" ; } 2>&1 ) || {
		echo "copy-methods.sh: $name failed:" >&2; tail -5 "$dir/$db.err" >&2; exit 1; }
	c1=$(server_cpu)
	local scpu
	scpu=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN { printf "%.1f", (b - a) / h }')
	local ok=equal
	"$BIN" verify --source "$SRC" --target "$(tgt "$db")" >"$dir/$db.verify" 2>&1 || ok="DIFFERS"
	local parts=""
	parts=$(grep -o 'copying [0-9]* tables\? in [0-9]* parts\?' "$dir/$db.err" | head -1 || true)
	local split
	split=$(grep 'copy done' "$dir/$db.err" | grep -o "split=[^ ]* worker_busy_seconds=[^ ]*" |
		head -1 || true)
	[ -n "$parts" ] && parts="$parts; $split"
	# the verify before Complete: its seconds, and the tables read on the target only
	local verify
	verify=$(grep 'stage=Verify' "$dir/$db.err" | grep -o 'read_on_target_only=[0-9]* seconds=[0-9.]*\|differences=[0-9]* seconds=[0-9.]*' |
		tail -1 || true)
	[ -n "$verify" ] && parts="${parts:+$parts; }verify ${verify}"
	results+=("$name;$t;$ok;$scpu;$parts")
	sql "$(tgt postgres)" "DROP DATABASE $db" >/dev/null
}

dump_restore() { pg_dump -Fc "$SRC" | pg_restore --no-owner -d "$1"; }
dump_psql() { pg_dump "$SRC" | psql -X -q -d "$1" >/dev/null; }
by_hand() { # target
	local t=$1
	pg_dump --section=pre-data "$SRC" | psql -X -q -d "$t" >/dev/null
	sql "$SRC" "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" |
		xargs -P "$JOBS" -I{} sh -c "psql -X -q -d \"\$1\" -c 'COPY {} TO STDOUT' |
			psql -X -q -d \"\$2\" -c 'COPY {} FROM STDIN'" sh "$SRC" "$t"
	rm -rf "$dir/post"
	pg_dump -Fd -f "$dir/post" --section=post-data "$SRC"
	pg_restore -j "$JOBS" -d "$t" "$dir/post"
}
ours() { # options... target (the last word)
	rm -rf "$dir/dump" "$dir/dump.resume.json"
	local args=("$@")
	local target=${args[-1]}
	unset 'args[-1]'
	"$BIN" --mode offline --source "$SRC" --target "$target" --dump-path "$dir/dump" "${args[@]}"
}
ours_dump() { ours --copy-method dump --verify off --jobs "$JOBS" "$1"; }
ours_direct() { ours --copy-method direct --verify off --jobs "$JOBS" "$1"; }
ours_direct_verify() { ours --copy-method direct --verify warn --jobs "$JOBS" "$1"; }
ours_default_before() { ours --copy-method dump "$1"; }
ours_defaults() { ours "$1"; }
ours_direct_1() { ours --copy-method direct --verify off --jobs 1 "$1"; }

for r in $(seq 1 "$REPEAT"); do
	timed "pg_dump|pg_restore" dump_restore
	timed "pg_dump|psql" dump_psql
	timed "by hand (--jobs $JOBS)" by_hand
	timed "ours dump (--jobs $JOBS)" ours_dump
	timed "ours direct (--jobs 1)" ours_direct_1
	timed "ours direct (--jobs $JOBS)" ours_direct
	timed "ours direct+verify (--jobs $JOBS)" ours_direct_verify
	timed "default before 15 (dump, defaults)" ours_default_before
	timed "ours, all defaults" ours_defaults
done

echo
echo "source $size (pgbench scale $SCALE + $ROWS wide rows; the largest table ${share}%), $(nproc) CPUs, run of $(date -u +%F)"
printf '%-36s %8s %7s %10s %10s  %-7s %s\n' method seconds ratio client_cpu server_cpu target parts
base=""
for line in "${results[@]}"; do
	IFS=';' read -r name t ok scpu parts <<<"$line"
	read -r real user sys <<<"$t"
	case "$name" in "pg_dump|pg_restore") base=$real ;; esac
	ratio=$(awk -v b="$base" -v r="$real" 'BEGIN { if (b > 0) printf "%.2fx", b / r; else print "-" }')
	cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
	printf '%-36s %8s %7s %10s %10s  %-7s %s\n' "$name" "$real" "$ratio" "$cpu" "$scpu" "$ok" "$parts"
done
echo "(ratio: pg_dump|pg_restore seconds / this method's seconds, in the same repeat; >1 is faster)"
