/*
 * decodefmt.h — prints decoded pgoutput messages for `pg_dbmigrator decode`,
 * one line per message, as text (modelled on contrib/test_decoding) or as
 * one JSON object per line.
 *
 * decodefmt_handle() is the only way in: it first feeds the message to the
 * relcache (relcache_observe: Relation and Type messages are copied in, the
 * open transaction is tracked), then formats it, so the cache can never be
 * forgotten or updated twice. Call it exactly once for every decoded
 * message, in stream order, and nothing else needs to touch the relcache.
 *
 * Text, one line each:
 *   BEGIN 750 lsn=16/B374D848 commit_time=2026-11-24 14:00:00.123456+00
 *   table public.t: INSERT: id[integer]:1 name[text]:'it''s' n[integer]:null
 *   table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2
 *   table public.t: DELETE: id[integer]:1
 *   table public.a, public.b: TRUNCATE: cascade restart_seqs
 *   message: transactional: 1 prefix: x, sz: 5 content:hello
 *   COMMIT 750 lsn=16/B374D848 end_lsn=16/B374D880 commit_time=...
 *   RELATION public.t (16384) replica_identity=default columns=id[integer,key] name[text]
 * Values: numeric types and bool bare, other text values as SQL literals
 * (E'' form when they hold control characters, so a line never breaks),
 * binary values as '\x<hex>', null, unchanged-toast-datum. Names and the
 * message content are printed with control bytes escaped (\n, \xHH).
 *
 * JSON: {"kind":"insert","lsn":"16/B374D848","xid":750,"schema":"public",
 * "table":"t","columns":[{"name":"id","type":"integer","value":"1"}, ...]};
 * "xid" is left out when unknown. Output is always valid JSON, whatever the
 * bytes of names and values.
 *
 * Owns: nothing. Never: allocates per value (everything is appended to the
 * caller's strbuf), leaves a partial line in the strbuf after a failure, or
 * keeps a pointer into the message.
 */
#ifndef DECODEFMT_H
#define DECODEFMT_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "relcache.h"
#include "strbuf.h"

typedef enum decodefmt_format
{
	DECODEFMT_TEXT = 0,
	DECODEFMT_JSON
} decodefmt_format;

/* Room for any timestamp decodefmt_timestamp writes, NUL included. */
#define DECODEFMT_TIMESTAMP_STRLEN 48

/*
 * Update rc from msg (relcache_observe), then append msg's line to out.
 * lsn is where the message is in the WAL (XLogData data_start), printed as
 * "lsn" in JSON. False with a message in errbuf when the cache update fails,
 * a change names a relation no Relation message described, a tuple's column
 * count disagrees with its relation, or memory runs out; out is then as it
 * was before the call.
 */
PGDBM_MUST_CHECK bool decodefmt_handle(strbuf *out, decodefmt_format fmt, const pgo_message *msg,
                                       pgo_lsn lsn, relcache *rc, char *errbuf, size_t errlen);

/*
 * Format a pgoutput timestamp (microseconds since 2000-01-01 UTC) in UTC:
 * "2026-11-24 14:00:00.123456+00", or with iso "2026-11-24T14:00:00.123456Z".
 * PostgreSQL's -infinity and infinity (INT64_MIN, INT64_MAX) print as such.
 * Returns buf.
 */
char *decodefmt_timestamp(pgo_timestamp ts, bool iso, char buf[DECODEFMT_TIMESTAMP_STRLEN]);

#endif /* DECODEFMT_H */
