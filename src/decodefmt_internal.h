/*
 * decodefmt_internal.h — what the parts of decodefmt share: the state of one
 * message's formatting, and the appenders both forms use. Not a public
 * header: only src/decodefmt*.c include it.
 *
 *   decodefmt.c       the entry point, timestamps, LSNs, names, types, the
 *                     relation of a change, and the fields both forms print
 *                     alike (transaction control: positions, times, gids)
 *   decodefmt_text.c  the text line of each message kind (test_decoding style)
 *   decodefmt_json.c  the JSON object of each message kind
 *
 * Every appender returns false on failure (out of memory, or an error written
 * into the context's errbuf); decodefmt_handle cuts the strbuf back.
 */
#ifndef DECODEFMT_INTERNAL_H
#define DECODEFMT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "decodefmt.h"

/* Everything one message's formatting needs. */
typedef struct decodefmt_ctx
{
	strbuf *out;            /* borrowed: the caller's buffer */
	const pgo_message *msg; /* borrowed: the message being printed */
	pgo_lsn lsn;            /* where the message is in the WAL */
	relcache *rc;           /* borrowed: already updated with msg */
	bool json;              /* the JSON form, else text */
	bool has_xid;           /* xid below is known */
	pgo_xid xid;            /* the message's transaction */
	char *errbuf;           /* borrowed: the caller's error buffer */
	size_t errlen;
} decodefmt_ctx;

/* Which tuple columns to print. */
typedef enum decodefmt_cols
{
	DECODEFMT_ALL_COLS,
	DECODEFMT_KEY_COLS /* an old key ('K'): only the replica identity columns */
} decodefmt_cols;

/* An Insert, Update or Delete with its relation found and its tuples checked. */
typedef struct decodefmt_change
{
	const relcache_entry *e; /* borrowed from the relcache */
	const pgo_tuple *oldtup; /* borrowed from the message; NULL when it has none */
	decodefmt_cols old_cols; /* what of oldtup to print: the key only for 'K' */
	bool old_is_key;         /* oldtup is an old key ('K'), else the whole old row */
	const pgo_tuple *newtup; /* borrowed from the message; NULL for a Delete */
} decodefmt_change;

/* The text line (decodefmt_text.c) and JSON object (decodefmt_json.c), no newline. */
bool decodefmt__text(decodefmt_ctx *c);
bool decodefmt__json(decodefmt_ctx *c);

/* Append a type's name (relcache, then Type message, then the oid itself). */
bool decodefmt__type(decodefmt_ctx *c, pgo_oid oid);
/* Append "nsp.rel" in text, or "schema":..,"table":.. in JSON. */
bool decodefmt__relname(const decodefmt_ctx *c, const relcache_entry *e);
/* The relation of a change, or NULL with the error set. */
const relcache_entry *decodefmt__relation(decodefmt_ctx *c, pgo_oid relid);
/* Fill ch from an Insert, Update or Delete; false with the error set. */
bool decodefmt__change(decodefmt_ctx *c, decodefmt_change *ch);
/* Whether column i of a tuple is printed (an old key: its key columns only). */
bool decodefmt__wanted(const relcache_entry *e, const pgo_tuple *tup, uint16_t i,
                       decodefmt_cols which);
/* " name=value" in text, ,"name":value in JSON: an LSN, a timestamp, a name. */
bool decodefmt__field_lsn(decodefmt_ctx *c, const char *name, pgo_lsn lsn);
bool decodefmt__field_time(decodefmt_ctx *c, const char *name, pgo_timestamp ts);
bool decodefmt__field_name(decodefmt_ctx *c, const char *name, const char *s, size_t len);
/*
 * The fields of a transaction-control message (Begin, Commit, Origin, the
 * stream and two-phase ones), which both forms print in the same order; only
 * the first position is named "lsn" in text and after its meaning in JSON.
 */
bool decodefmt__control_fields(decodefmt_ctx *c);
/* Write "cannot format message type 0x.." into the error; returns false. */
bool decodefmt__unknown(decodefmt_ctx *c);

#endif /* DECODEFMT_INTERNAL_H */
