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
# (single-row, by key, pgbench -c 4), tpcb (pgbench's tpcb-like script), and
# latency: a steady pgbench -R RATE load of one-row insert transactions for
# SECS seconds, applied live by native, then the same load by ours (each
# alone: at the same time each would take the other's CPU); for each
# transaction, the time from its source commit (track_commit_timestamp) to
# the target commit that carries it (a trigger deferred to that commit; the
# clusters share one clock), p50 and p99 for each side. RATE defaults to half
# of what native sustained on the update workload of this run (else 500/s),
# and the load is run again at a quarter of that ("latency light": on a small
# machine the first rate may be more than it can carry with the load, and
# then both sides queue: the light row measures the apply, not the queue);
# the row says the rate pgbench reached for each side (on a small machine
# the load itself may take every CPU, and the rate asked is not reached),
# and how the source's walsender spent the load: the share of it on a CPU
# and the share waiting in a run queue for one (/proc/PID/schedstat). A
# walsender waiting for a CPU much of the time says the machine is full,
# and the figures then measure its scheduler as much as either apply; when
# either side's pgbench fell more than 5 % short of the rate asked, the
# row's label says so (the load was no steady one below the apply's
# capacity, which is what the latency goal is about).
#
# "stream alone" is the same backlog read from a third slot by
# `pg_dbmigrator decode --catch-up stream` into /dev/null, nothing applied, with the share of
# that time the source's walsender was on a CPU: how fast the walsender
# streams it here to a reader that only reads, and "native / alone" the ratio
# that pace would give. The walsender makes a recv() for every WAL record it
# reads and a send() for every message, and that is most of its time on small
# changes: native is bound by it. Ours reads such a backlog through SQL
# first (--catch-up sql, its default), which the walsender does not pace;
# --args "--catch-up stream" times ours on the stream alone.
#
# Each side is timed until the marker is visible on its target (native; the
# target's own session polls every 2 ms) or until `bench --endpos` exits
# (ours): nothing is started while a side runs.
#
# --profile adds a table: CPU seconds per million row changes of the
# walsender, of the source cluster as a whole (every process, ended ones
# too: the walsender, or ours' catch-up backend), the client (ours) or the
# apply worker (native) and the target backend, read from /proc/PID/stat
# while each is alive (ours is then stopped by SIGINT once the marker is on
# the target, like native, instead of --endpos). --syscalls runs ours under strace -f and adds, per socket
# (source, target), the syscalls and MiB through it and the syscalls per MiB,
# plus the client's syscalls by name (strace slows the client: its times and
# CPU in that run are not comparable).
#
# --target-role ROLE: ours connects to its target as ROLE, a NOSUPERUSER role
# that owns the target database and its tables, as on a managed service: it
# may not set session_replication_role = replica (native's subscription stays
# a superuser's, as it must).
#
# Both clusters run with fsync = off unless --fsync on (then every commit that
# waits for the disk waits for this machine's disk, as in production: native
# commits asynchronously, as a subscription does by default, and so does ours
# unless --args "--synchronous-commit on"). --flush-delay US (with --fsync on)
# makes each WAL flush of the target wait US microseconds more (commit_delay
# with commit_siblings = 0), as on a network volume whose flush takes that long.
#
# Usage: bench/apply-vs-native.sh [--rows N] [--updates N] [--tpcb N]
#                                 [--only insert,update,delete,tpcb,latency] [--binary PATH]
#                                 [--rate TPS] [--latency-secs SECS]
#                                 [--profile] [--syscalls] [--fsync on|off] [--flush-delay US]
#                                 [--args "extra pg_dbmigrator bench options"] [--ours-first]
#                                 [--target-role ROLE]
# Needs: initdb, pg_ctl, pgbench, psql (scripts/setup installs them); strace for --syscalls.
set -euo pipefail

ROWS=1000000
UPDATES=200000
TPCB=100000
ONLY=insert,update,delete,tpcb,latency
RATE=
LATSECS=30
PROFILE=
SYSCALLS=
FSYNC=off
FLUSH_DELAY=0
TROLE=
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
		--rate) RATE=$2; shift 2 ;;
		--latency-secs) LATSECS=$2; shift 2 ;;
		--profile) PROFILE=1; shift ;;
		--syscalls) SYSCALLS=1; shift ;;
		--fsync) FSYNC=$2; shift 2 ;;
		--flush-delay) FLUSH_DELAY=$2; shift 2 ;;
		--target-role) TROLE=$2; shift 2 ;;
		-h|--help) sed -n '2,74p' "$0"; exit 0 ;;
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
fsync = $FSYNC
synchronous_commit = off
# room for both targets' tables (tpcb's are 150 MB each): with less, the side
# timed second wrote the first side's dirty pages out as it evicted them
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
# no vacuum started in the background: after one side's run it would work on
# that side's tables (or the source's) while the other side is timed
autovacuum = off
CONF
done
if [ "$FLUSH_DELAY" -gt 0 ]; then
	printf 'commit_delay = %d\ncommit_siblings = 0\n' "$FLUSH_DELAY" >>"$dir/tgt/postgresql.conf"
	"${RUNAS[@]}" pg_ctl -D "$dir/tgt" -l "$dir/tgt.log" -w restart >/dev/null
fi
SRC="host=127.0.0.1 port=$sport user=postgres dbname=postgres"
tgt() { echo "host=127.0.0.1 port=$tport user=postgres dbname=$1"; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
sql "$(tgt postgres)" "CREATE DATABASE native" >/dev/null
sql "$(tgt postgres)" "CREATE DATABASE ours" >/dev/null
if [ -n "$TROLE" ]; then
	sql "$(tgt postgres)" "CREATE ROLE \"$TROLE\" LOGIN NOSUPERUSER" >/dev/null
	sql "$(tgt postgres)" "ALTER DATABASE ours OWNER TO \"$TROLE\"" >/dev/null
fi
# ours' --target: postgres, or --target-role's role
ours_target() { echo "host=127.0.0.1 port=$tport user=${TROLE:-postgres} dbname=ours"; }
# with --target-role, ours' tables are that role's (set up as postgres, then handed over)
hand_over() {
	[ -n "$TROLE" ] || return 0
	sql "$(tgt ours)" "DO \$\$ DECLARE t text; BEGIN
		FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE format('ALTER TABLE public.%I OWNER TO %I', t, '$TROLE'); END LOOP; END \$\$"
}
sql "$SRC" "CREATE TABLE marker (id int PRIMARY KEY)"
for db in native ours; do sql "$(tgt $db)" "CREATE TABLE marker (id int PRIMARY KEY)"; done

# on the source and both targets
everywhere() { sql "$SRC" "$1"; sql "$(tgt native)" "$1"; sql "$(tgt ours)" "$1"; }

checksum() { # conninfo tables...
	local conn=$1; shift
	for t in "$@"; do sql "$conn" "SELECT '$t', count(*), coalesce(sum(hashtext(x::text)::bigint), 0) FROM $t x"; done
}

now() { date +%s.%N; }
FAR_LSN=FFFFFFFF/FFFFFFFF
slot_pid() { sql "$SRC" "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$1'"; }
ours_backend() {
	sql "$(tgt ours)" "SELECT pid FROM pg_stat_activity WHERE datname = 'ours'
		AND application_name = 'pg_dbmigrator apply' ORDER BY backend_start DESC LIMIT 1"
}
# The target waits for the marker itself: one session polls every 2 ms (a
# psql started per poll took a third of a CPU from the side it timed), and
# commits each time (a snapshot held meanwhile would keep the rows the apply
# updates from being pruned).
wait_marker() { # database id [pid of ours, which must stay alive meanwhile]
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$(tgt "$1")" -c "SET statement_timeout = '15min'" \
		-c "DO \$\$ BEGIN WHILE NOT EXISTS (SELECT FROM marker WHERE id = $2) LOOP
			COMMIT; PERFORM pg_sleep(0.002); END LOOP; END \$\$" >/dev/null 2>"$dir/wait.err" &
	local waiter=$!
	while kill -0 "$waiter" 2>/dev/null; do
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			kill "$waiter" 2>/dev/null || true
			echo "apply-vs-native.sh: pg_dbmigrator bench ended before the marker arrived:" >&2
			cat "$dir/$name.json" >&2
			exit 1
		fi
		nap 0.05
	done
	if ! wait "$waiter"; then
		echo "apply-vs-native.sh: the marker did not reach database $1 in 15 minutes ($(cat "$dir/wait.err")); the target's log says:" >&2
		grep -E 'ERROR|FATAL' "$dir/tgt.log" | tail -5 >&2
		exit 1
	fi
}
json_field() { sed -E "s/.*\"$2\":\"?([0-9.]+).*/\1/" "$1"; }

echo "| workload | side | row changes | walsender CPU s | source CPU s (all processes) | client or apply worker CPU s | target backend CPU s | walsender s/M rows | source s/M rows | client s/M rows | target backend s/M rows | source + client + target s/M rows |" >"$dir/profile.md"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|" >>"$dir/profile.md"
profile_row() { # workload side rows walsender source client target
	awk -v n="$1" -v s="$2" -v r="$3" -v w="$4" -v sc="$5" -v c="$6" -v t="$7" 'BEGIN {
		m = r / 1e6; if (m <= 0) m = 1e-9
		printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
		       n, s, r, w, sc, c, t, w / m, sc / m, c / m, t / m, (sc + c + t) / m }' >>"$dir/profile.md"
}

# The client's syscalls from strace -f output: per socket (by the port it
# connected to) the read/write calls and bytes, and every syscall by name.
echo "| workload | socket | read/write syscalls | MiB | syscalls per MiB | all client syscalls (top by count) |" >"$dir/syscalls.md"
echo "|---|---|---|---|---|---|" >>"$dir/syscalls.md"
syscall_rows() { # workload strace-file
	awk -v n="$1" -v sp="$sport" -v tp="$tport" '
	function fdof(args) { sub(/^[^(]*\(/, "", args); sub(/,.*/, "", args); return args + 0 }
	function io(name) { return name ~ /^(recvfrom|sendto|recvmsg|sendmsg|read|write|recv|send)$/ }
	function account(pid, name, fd, ret) {
		if (!io(name) || !(fd in sock) || ret !~ /^[0-9]+$/) return
		calls[sock[fd]]++; bytes[sock[fd]] += ret
	}
	{
		pid = $1; line = $0; sub(/^[0-9]+ +/, "", line)
		if (line ~ /^<\.\.\. /) { # resumed
			name = line; sub(/^<\.\.\. /, "", name); sub(/ resumed.*/, "", name)
			ret = line; sub(/.*= /, "", ret); sub(/ .*/, "", ret)
			account(pid, name, pfd[pid], ret); next
		}
		name = line; sub(/\(.*/, "", name)
		if (name !~ /^[a-z_0-9]+$/) next
		count[name]++; total++
		if (name == "connect" && line ~ /htons\(/) {
			port = line; sub(/.*htons\(/, "", port); sub(/\).*/, "", port)
			fd = fdof(line)
			if (port == sp) sock[fd] = "source"; else if (port == tp) sock[fd] = "target"
		}
		if (name == "close") delete sock[fdof(line)]
		if (line ~ /<unfinished \.\.\.>$/) { pfd[pid] = fdof(line); next }
		ret = line; sub(/.*= /, "", ret); sub(/ .*/, "", ret)
		account(pid, name, fdof(line), ret)
	}
	END {
		top = ""
		for (k = 0; k < 6; k++) {
			best = ""; bc = 0
			for (c in count) if (count[c] > bc && !(c in shown)) { best = c; bc = count[c] }
			if (best == "") break
			shown[best] = 1; top = top (top == "" ? "" : ", ") best " " bc
		}
		for (s = 0; s < 2; s++) {
			k = s ? "target" : "source"; mib = bytes[k] / 1048576
			per = (mib > 0) ? calls[k] / mib : 0
			printf "| %s | %s | %d | %.1f | %.0f | %s |\n", n, k, calls[k], mib, per,
			       (s ? "" : top " (total " total ")")
		}
	}' "$2" >>"$dir/syscalls.md"
}

# ours, live: started now, in the background, until stop_ours (SIGINT: it
# commits what it has and prints its JSON)
start_ours() { # name endpos
	if [ -n "$SYSCALLS" ]; then
		strace -f -qq -s 0 -o "$dir/$1.strace" "$BIN" bench --source "$SRC" --target "$(ours_target)" \
			--slot-name "${1}_ours" --publication "pub_$1" --endpos "$2" --json ${BENCH_ARGS:-} \
			>"$dir/$1.json" &
		ours_job=$!
		ours_pid=
		until [ -n "$ours_pid" ]; do sleep 0.01; ours_pid=$(pgrep -P "$ours_job" || true); done
	else
		"$BIN" bench --source "$SRC" --target "$(ours_target)" --slot-name "${1}_ours" \
			--publication "pub_$1" --endpos "$2" --json ${BENCH_ARGS:-} >"$dir/$1.json" &
		ours_job=$! ours_pid=$!
	fi
}
stop_ours() {
	kill -INT "$ours_pid"
	wait "$ours_job"
}

run() { # name rows tables workload-function
	local name=$1 rows=$2 tables=$3 workload=$4 n
	hand_over
	n=$(( $(date +%s%N) % 1000000 ))
	sql "$SRC" "CREATE PUBLICATION pub_$name FOR TABLE $tables, marker"
	sql "$SRC" "SELECT pg_create_logical_replication_slot('${name}_native', 'pgoutput')" >/dev/null
	sql "$SRC" "SELECT pg_create_logical_replication_slot('${name}_ours', 'pgoutput')" >/dev/null
	sql "$SRC" "SELECT pg_create_logical_replication_slot('${name}_alone', 'pgoutput')" >/dev/null
	"$workload"
	sql "$SRC" "INSERT INTO marker VALUES ($n)"
	local endpos; endpos=$(sql "$SRC" "SELECT pg_current_wal_insert_lsn()")

	local t0 t1 t2 t3 nw=0 nc=0 ow=0 oc=0 ot=0 s0 s1 ns=0 os=0
	run_native() {
		cluster_cpu src s0
		sql "$(tgt native)" "CREATE SUBSCRIPTION sub_$name CONNECTION '$SRC' PUBLICATION pub_$name
			WITH (copy_data = false, create_slot = false, slot_name = '${name}_native', enabled = false)"
		t0=$(now)
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name ENABLE"
		wait_marker native "$n"
		t1=$(now)
		cluster_cpu src s1
		ns=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')
		if [ -n "$PROFILE" ]; then
			nw=$(cpu_of "$(slot_pid "${name}_native")")
			nc=$(cpu_of "$(sql "$(tgt native)" "SELECT pid FROM pg_stat_subscription
				WHERE subname = 'sub_$name' AND relid IS NULL")")
		fi
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name DISABLE"
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_$name SET (slot_name = NONE)"
		sql "$(tgt native)" "DROP SUBSCRIPTION sub_$name"
	}
	run_ours() {
		cluster_cpu src s0
		t2=$(now)
		if [ -n "$PROFILE$SYSCALLS" ]; then
			# stopped like native: once the marker is on the target, its processes still alive
			start_ours "$name" "$FAR_LSN"
			wait_marker ours "$n" "$ours_pid"
			t3=$(now)
			cluster_cpu src s1
			ow=$(cpu_of "$(slot_pid "${name}_ours")")
			ot=$(cpu_of "$(ours_backend)")
			stop_ours
		else
			"$BIN" bench --source "$SRC" --target "$(ours_target)" --slot-name "${name}_ours" \
				--publication "pub_$name" --endpos "$endpos" --json ${BENCH_ARGS:-} >"$dir/$name.json"
			t3=$(now)
			cluster_cpu src s1
		fi
		os=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')
	}
	# each side once first and once second, over the workloads, so neither gains by its turn
	if [ "${ORDER:-native-first}" = ours-first ]; then run_ours; sleep 2; run_native
	else run_native; sleep 2; run_ours; fi
	sleep 2
	stream_alone "$name" "$endpos"
	local rss; rss=$(json_field "$dir/$name.json" peak_rss_kb)
	local cpu; cpu=$(json_field "$dir/$name.json" cpu_seconds)
	if [ -n "$PROFILE" ]; then
		profile_row "$name" native "$rows" "$nw" "$ns" "$nc" 0
		profile_row "$name" ours "$rows" "$ow" "$os" "$cpu" "$ot"
	fi
	[ -z "$SYSCALLS" ] || syscall_rows "$name" "$dir/$name.strace"

	local ok=yes IFS=,
	# shellcheck disable=SC2086
	local src_sum; src_sum=$(checksum "$SRC" $tables)
	[ "$src_sum" = "$(checksum "$(tgt native)" $tables)" ] || ok="NO (native differs)"
	[ "$src_sum" = "$(checksum "$(tgt ours)" $tables)" ] || ok="NO (ours differs)"
	unset IFS
	awk -v n="$name" -v r="$rows" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v ok="$ok" -v rss="$rss" -v cpu="$cpu" \
		-v al="$alone_s" -v aw="$alone_ws" 'BEGIN {
		native = b - a; ours = d - c;
		printf "| %-7s | %9d | %8.2f | %9.0f | %8.2f | %9.0f | %5.2fx | %6.2f (%3.0f%%) | %5.2fx | %6.1f | %5.2f | - | - | %s |\n",
		       n, r, native, r / native, ours, r / ours, native / ours, al, 100 * aw / al, native / al,
		       rss / 1024, cpu, ok }'
	[ "$name" != update ] || NATIVE_UPDATE_RATE=$(awk -v r="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", r / (b - a) }')
	sql "$SRC" "SELECT pg_drop_replication_slot('${name}_native')" >/dev/null
	sql "$SRC" "SELECT pg_drop_replication_slot('${name}_ours')" >/dev/null
	sql "$SRC" "SELECT pg_drop_replication_slot('${name}_alone')" >/dev/null
}

# The same backlog read by `pg_dbmigrator decode` into /dev/null, with nothing
# applied: how fast the source's walsender streams it to a client that only
# reads (see the header).
# Sets alone_s (wall seconds) and alone_ws (the walsender's CPU seconds then).
stream_alone() { # name endpos
	local t0 wp= c job
	alone_ws=0
	t0=$(now)
	"$BIN" decode --source "$SRC" --slot-name "${1}_alone" --publication "pub_$1" \
		--endpos "$2" --output /dev/null --catch-up stream &
	job=$!
	while kill -0 "$job" 2>/dev/null; do
		[ -n "$wp" ] || wp=$(slot_pid "${1}_alone")
		cpu_of "$wp" c
		[ "$c" = 0.000 ] || alone_ws=$c
		nap 0.05
	done
	wait "$job"
	alone_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
}

# when each row of lat was committed, as "id|epoch", sorted by id: on the
# source its commit timestamp (track_commit_timestamp); on a target the time
# its lat_committed trigger ran, which is deferred to the commit of the
# target transaction that carries the row, whoever applies it (a commit
# timestamp cannot serve there: the native worker records the source's
# commit time as its own).
commit_times() { # conninfo
	if [ "$1" = "$SRC" ]; then
		sql "$1" "SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM lat"
	else
		sql "$1" "SELECT id, extract(epoch FROM at) FROM lat_commit"
	fi | LC_ALL=C sort -t'|' -k1,1
}

lat_sum() { # conninfo first-id last-id
	sql "$1" "SELECT count(*), coalesce(sum(hashtext((id, v, pad)::text)::bigint), 0) FROM lat
		WHERE id BETWEEN $2 AND $3"
}
# p50 and p99 (ms) of target - source commit time, joined on id; two decimals: on a
# light load both sides are below a millisecond
latency_pcts() { # source-file target-file
	LC_ALL=C join -t '|' "$1" "$2" | awk -F'|' '{ print ($3 - $2) * 1000 }' | sort -n |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "- / -"; exit }
			i50 = int(NR * 0.50 + 0.5); i99 = int(NR * 0.99 + 0.5)
			if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; if (i99 > NR) i99 = NR
			printf "%.2f / %.2f\n", v[i50], v[i99] }'
}

# latency: each side alone applies the same steady load live, one after the
# other (at the same time, each would take CPU from the other: on a small
# machine that, not the apply, would set both figures). Each side's slot is
# made just before its load, so it sees only its own rows. Sets lat_<side>
# (p50 / p99), lat_ok_<side>, lat_rows_<side>, lat_secs_<side>, and for ours
# its peak RSS and CPU.
latency_side() { # side rate label
	local side=$1 rate=$2 label=$3 slot=latency_$1 first last t0 t1 n
	n=$(( $(date +%s%N) % 1000000 ))
	sql "$SRC" "SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
	if [ "$side" = native ]; then
		sql "$(tgt native)" "CREATE SUBSCRIPTION sub_latency CONNECTION '$SRC' PUBLICATION pub_latency
			WITH (copy_data = false, create_slot = false, slot_name = '$slot')"
	else
		start_ours latency "$FAR_LSN"
	fi
	# streaming before the load starts
	local ws ws0 ws1
	until ws=$(slot_pid "$slot"); [ -n "$ws" ]; do sleep 0.05; done
	first=$(sql "$SRC" "SELECT nextval('lat_seq') + 1")
	sched_of "$ws" ws0
	t0=$(now)
	# the application commits durably (the clusters' default here is off): the
	# walsender sends only flushed WAL, so otherwise wal_writer_delay is in every figure
	PGOPTIONS="-c synchronous_commit=on" pgbench -n -c 4 -j 2 -R "$rate" -T "$LATSECS" \
		-f "$dir/latency.sql" "$SRC" >"$dir/latency.$side.pgbench"
	last=$(sql "$SRC" "SELECT nextval('lat_seq') - 1")
	sql "$SRC" "INSERT INTO marker VALUES ($n)"
	if [ "$side" = native ]; then
		wait_marker native "$n"
	else
		wait_marker ours "$n" "$ours_pid"
	fi
	t1=$(now)
	sched_of "$ws" ws1
	local wp cw=0 cc=0 ct=0
	if [ -n "$PROFILE" ]; then
		wp=$(slot_pid "$slot")
		cw=$(cpu_of "$wp")
		if [ "$side" = native ]; then
			cc=$(cpu_of "$(sql "$(tgt native)" "SELECT pid FROM pg_stat_subscription
				WHERE subname = 'sub_latency' AND relid IS NULL")")
		else
			ct=$(cpu_of "$(ours_backend)")
		fi
	fi
	if [ "$side" = native ]; then
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_latency DISABLE"
		sql "$(tgt native)" "ALTER SUBSCRIPTION sub_latency SET (slot_name = NONE)"
		sql "$(tgt native)" "DROP SUBSCRIPTION sub_latency"
	else
		stop_ours
		lat_rss=$(json_field "$dir/latency.json" peak_rss_kb)
		lat_cpu=$(json_field "$dir/latency.json" cpu_seconds)
		cc=$lat_cpu
	fi
	sql "$SRC" "SELECT pg_drop_replication_slot('$slot')" >/dev/null
	local rows=$(( last - first + 1 ))
	[ -z "$PROFILE" ] || profile_row "$label" "$side" "$rows" "$cw" "$cw" "$cc" "$ct"
	sql "$SRC" "SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM lat
		WHERE id BETWEEN $first AND $last" | LC_ALL=C sort -t'|' -k1,1 >"$dir/lat.src.$side"
	commit_times "$(tgt "$side")" >"$dir/lat.$side"
	printf -v "lat_$side" '%s' "$(latency_pcts "$dir/lat.src.$side" "$dir/lat.$side")"
	printf -v "lat_ws_$side" '%s' "$(awk -v a="$ws0" -v b="$ws1" -v t0="$t0" -v t1="$t1" 'BEGIN {
		# unknown: no schedstat, or not the same walsender at the end
		if (split(a, x, " ") < 2 || split(b, y, " ") < 2 || y[1] < x[1]) { print "- / -"; exit }
		ns = (t1 - t0) * 1e9
		printf "%.0f%% / %.0f%%", (y[1] - x[1]) * 100 / ns, (y[2] - x[2]) * 100 / ns }')"
	printf -v "lat_rows_$side" '%s' "$rows"
	printf -v "lat_secs_$side" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
	if [ "$(lat_sum "$SRC" "$first" "$last")" = "$(lat_sum "$(tgt "$side")" "$first" "$last")" ]; then
		printf -v "lat_ok_$side" yes
	else
		printf -v "lat_ok_$side" 'NO (%s differs)' "$side"
	fi
}

run_latency() { # label rate
	local label=$1 rate=$2
	latency_side native "$rate" "$label"
	sleep 2
	latency_side ours "$rate" "$label"
	local ok=yes
	[ "$lat_ok_native" = yes ] || ok=$lat_ok_native
	[ "$lat_ok_ours" = yes ] || ok=$lat_ok_ours
	# the load pgbench reached (a machine too small for the rate asked runs
	# below it, every process short of CPU: the figures then say so, and the
	# row says it is no steady load when either side fell 5 % short)
	awk -v label="$label" -v r="$lat_rows_native/$lat_rows_ours" -v rate="$rate" -v a="$lat_secs_native" -v b="$lat_secs_ours" \
		-v rn="$lat_rows_native" -v ro="$lat_rows_ours" -v secs="$LATSECS" \
		-v rss="$lat_rss" -v cpu="$lat_cpu" -v pn="$lat_native" -v po="$lat_ours" -v ok="$ok" \
		-v wn="$lat_ws_native" -v wo="$lat_ws_ours" 'BEGIN {
		if (rn / secs < 0.95 * rate || ro / secs < 0.95 * rate)
			label = label " (rate not reached: the machine is full, no steady load)"
		printf "| %s | %s | %d/s asked, %d/s / %d/s reached | | %s s / %s s live, one side at a time | | | walsender on a CPU / waiting for one: %s native, %s ours | - | %6.1f | %5.2f | %s | %s | %s |\n",
		       label, r, rate, rn / secs, ro / secs, a, b, wn, wo, rss / 1024, cpu, pn, po, ok }'
}

echo "| workload | row changes | native s | native rows/s | pg_dbmigrator s | rows/s | ratio | stream alone s (walsender busy) | native / alone | peak RSS MiB | client CPU s | native latency p50 / p99 ms | ours latency p50 / p99 ms | checksums equal |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

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

case ",$ONLY," in *,latency,*)
	# the source's commit timestamps
	sql "$SRC" "ALTER SYSTEM SET track_commit_timestamp = on"
	"${RUNAS[@]}" pg_ctl -D "$dir/src" -l "$dir/src.log" -w restart >/dev/null
	everywhere "CREATE TABLE lat (id bigint PRIMARY KEY, v int NOT NULL, pad text NOT NULL)"
	# when each row's target transaction commits: a trigger deferred to the
	# commit, fired for either apply (ALWAYS: the native worker runs as a replica)
	for db in native ours; do
		sql "$(tgt $db)" "CREATE TABLE lat_commit (id bigint PRIMARY KEY, at timestamptz NOT NULL)"
		sql "$(tgt $db)" "CREATE FUNCTION lat_committed() RETURNS trigger LANGUAGE plpgsql AS
			\$\$ BEGIN INSERT INTO public.lat_commit VALUES (NEW.id, clock_timestamp()); RETURN NULL; END \$\$"
		sql "$(tgt $db)" "CREATE CONSTRAINT TRIGGER lat_committed AFTER INSERT ON lat
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lat_committed()"
		sql "$(tgt $db)" "ALTER TABLE lat ENABLE ALWAYS TRIGGER lat_committed"
	done
	hand_over
	sql "$SRC" "CREATE SEQUENCE lat_seq"
	# one small transaction: one row
	printf "INSERT INTO lat VALUES (nextval('lat_seq'), :client_id, md5(random()::text));\n" \
		>"$dir/latency.sql"
	sql "$SRC" "CREATE PUBLICATION pub_latency FOR TABLE lat, marker"
	if [ -n "$RATE" ]; then
		run_latency latency "$RATE"
	else
		rate=${NATIVE_UPDATE_RATE:+$(( NATIVE_UPDATE_RATE / 2 ))}
		run_latency latency "${rate:-500}"
		sleep 2
		run_latency "latency light" "$(( ${rate:-500} / 4 ))"
	fi
	;;
esac

if [ -n "$PROFILE" ]; then echo; cat "$dir/profile.md"; fi
if [ -n "$SYSCALLS" ]; then echo; cat "$dir/syscalls.md"; fi
