#!/usr/bin/env bash
# make-capture.sh — remakes examples/stream.pgocap and examples/stream.expected:
# a throwaway cluster, a few transactions of every kind pgoutput sends
# (inserts, updates with key and FULL identity, deletes, truncate, a custom
# type, a logical message), captured by pgo_capture and read back by pgo_stream.
# Run from a configured build directory: ../examples/make-capture.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$PWD
make examples/pgo_stream >/dev/null
cc -I"$top/include" -I"$(pg_config --includedir)" -o "$build/examples/pgo_capture" \
	"$top/examples/pgo_capture.c" "$build/decoder/libpgoutput.a" -lpq
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export PATH="$PGBIN:$PATH"
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
dir=$(mktemp -d /tmp/pgo-capture.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
trap '"${RUNAS[@]}" pg_ctl -D "$dir/db" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"${RUNAS[@]}" initdb -D "$dir/db" -U postgres -A trust --no-sync >/dev/null
port=$((20000 + RANDOM % 20000))
printf "listen_addresses=''\nport=%d\nunix_socket_directories='%s'\nwal_level=logical\n" \
	"$port" "$dir" >>"$dir/db/postgresql.conf"
"${RUNAS[@]}" pg_ctl -D "$dir/db" -l "$dir/log" -w start >/dev/null
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres -c "$1"; }
sql "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"
sql "CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(8,2), feel mood)"
sql "CREATE TABLE note (body text, seen boolean)"
sql "ALTER TABLE note REPLICA IDENTITY FULL"
sql "CREATE PUBLICATION shop FOR TABLE item, note"
sql "SELECT 1 FROM pg_create_logical_replication_slot('capture', 'pgoutput')" >/dev/null
sql "INSERT INTO item VALUES (1, 'tea', 3.50, 'happy'), (2, 'cake', 4.25, NULL)"
sql "BEGIN; UPDATE item SET price = 3.75 WHERE id = 1; UPDATE item SET id = 3 WHERE id = 2;
	INSERT INTO note VALUES ('it''s \"quoted\"', true); COMMIT"
sql "UPDATE note SET seen = false"
sql "SELECT 1 FROM pg_logical_emit_message(true, 'shop', 'price list changed')" >/dev/null
sql "DELETE FROM item WHERE id = 3"
sql "DELETE FROM note"
sql "TRUNCATE item"
end=$(sql "SELECT pg_current_wal_insert_lsn()")
"$build/examples/pgo_capture" "host=$dir port=$port user=postgres dbname=postgres replication=database" \
	capture shop 1 "$end" "$top/examples/stream.pgocap"
"$build/examples/pgo_stream" "$top/examples/stream.pgocap" >"$top/examples/stream.expected"
cat "$top/examples/stream.expected"
