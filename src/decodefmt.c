/*
 * decodefmt.c — text and JSON lines for decoded pgoutput messages (see
 * decodefmt.h for both formats).
 *
 * Layout: decodefmt_handle() observes the message into the relcache, then
 * dispatches on the format and the message type to one function per
 * message kind; values, names and timestamps go through a few shared
 * appenders. Every appender returns false on failure and the failure runs
 * straight back up, where the strbuf is cut back to its length on entry.
 *
 * Owns: nothing. Never: allocates (only the strbuf grows), prints a change
 * for a relation it cannot name, or writes half a line.
 */
/* gmtime_r is POSIX, not C11; the autotools build gets it from config.h's _GNU_SOURCE */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "decodefmt.h"

/* Type oids printed without quotes (pg_type.dat). */
#define DECODEFMT_BOOLOID    16
#define DECODEFMT_INT8OID    20
#define DECODEFMT_INT2OID    21
#define DECODEFMT_INT4OID    23
#define DECODEFMT_OIDOID     26
#define DECODEFMT_FLOAT4OID  700
#define DECODEFMT_FLOAT8OID  701
#define DECODEFMT_NUMERICOID 1700

/* Everything one message's formatting needs. */
typedef struct decodefmt_ctx
{
	strbuf *out;            /* borrowed: the caller's buffer */
	const pgo_message *msg; /* borrowed: the message being printed */
	pgo_lsn lsn;            /* where the message is in the WAL */
	relcache *rc;           /* borrowed: already updated with msg */
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

/* ---- timestamps ---- */

/* Format ts in UTC, test_decoding style or ISO 8601. */
char *
decodefmt_timestamp(pgo_timestamp ts, bool iso, char buf[DECODEFMT_TIMESTAMP_STRLEN])
{
	int64_t secs;
	int64_t usecs;
	time_t unix_secs;
	struct tm tm;
	int year;

	if (ts == INT64_MIN || ts == INT64_MAX)
	{
		snprintf(buf, DECODEFMT_TIMESTAMP_STRLEN, "%s", ts == INT64_MIN ? "-infinity" : "infinity");
		return buf;
	}
	/* floor division: -1 us is 1999-12-31 23:59:59.999999 */
	secs = ts / 1000000;
	usecs = ts % 1000000;
	if (usecs < 0)
	{
		usecs += 1000000;
		secs -= 1;
	}
	secs += PGO_EPOCH_OFFSET_SECS;
	unix_secs = (time_t)secs;
	if ((int64_t)unix_secs != secs || gmtime_r(&unix_secs, &tm) == NULL)
	{
		/* beyond what the C library can convert: still say what it is */
		snprintf(buf, DECODEFMT_TIMESTAMP_STRLEN, "%" PRId64 " us after 2000-01-01", ts);
		return buf;
	}
	year = tm.tm_year + 1900;
	if (iso)
		snprintf(buf, DECODEFMT_TIMESTAMP_STRLEN, "%s%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		         year < 0 ? "-" : "", year < 0 ? -year : year, tm.tm_mon + 1, tm.tm_mday,
		         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)usecs);
	else
		/* PostgreSQL's style: no year 0, years before 1 AD counted backwards with BC */
		snprintf(buf, DECODEFMT_TIMESTAMP_STRLEN, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00%s",
		         year > 0 ? year : 1 - year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		         tm.tm_sec, (int)usecs, year > 0 ? "" : " BC");
	return buf;
}

/* ---- shared appenders ---- */

/* Append v in decimal (the hot path of every JSON line: no printf). */
static bool
decodefmt_uint(strbuf *out, uint64_t v)
{
	char buf[20];
	size_t n = sizeof(buf);

	do
	{
		buf[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return strbuf_append(out, buf + n, sizeof(buf) - n);
}

/* Write v in uppercase hex without leading zeros at the end of buf; returns the start. */
static char *
decodefmt_hex32(char *end, uint32_t v)
{
	do
	{
		*--end = "0123456789ABCDEF"[v & 0xf];
		v >>= 4;
	} while (v != 0);
	return end;
}

/* Append an LSN as X/X (as pgo_lsn_format), quoted as a JSON string when json. */
static bool
decodefmt_lsn(strbuf *out, pgo_lsn lsn, bool json)
{
	char buf[PGO_LSN_STRLEN + 2];
	char *end = buf + sizeof(buf);
	char *start;

	if (json)
		*--end = '"';
	start = decodefmt_hex32(end, (uint32_t)lsn);
	*--start = '/';
	start = decodefmt_hex32(start, (uint32_t)(lsn >> 32));
	if (json)
		*--start = '"';
	return strbuf_append(out, start, (size_t)(buf + sizeof(buf) - start));
}

/* Append a timestamp, quoted ISO 8601 when json. */
static bool
decodefmt_ts(strbuf *out, pgo_timestamp ts, bool json)
{
	char buf[DECODEFMT_TIMESTAMP_STRLEN];

	decodefmt_timestamp(ts, json, buf);
	if (!json)
		return strbuf_append_cstr(out, buf);
	return strbuf_append_char(out, '"') && strbuf_append_cstr(out, buf) &&
	       strbuf_append_char(out, '"');
}

/* Append a name: escaped text, or a JSON string. */
static bool
decodefmt_name(strbuf *out, const char *s, size_t len, bool json)
{
	return json ? strbuf_append_json_string(out, s, len) : strbuf_append_escaped(out, s, len);
}

/* Append a type's name (relcache, then Type message, then the oid itself). */
static bool
decodefmt_type(decodefmt_ctx *c, pgo_oid oid, bool json)
{
	size_t len;
	const char *name = relcache_type_name_len(c->rc, oid, &len);
	char num[16];

	if (name != NULL)
		return decodefmt_name(c->out, name, len, json);
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu32, oid);
	return decodefmt_name(c->out, num, len, json);
}

/* Append "nsp.rel" in text, or "schema":..,"table":.. in JSON. */
static bool
decodefmt_relname(strbuf *out, const relcache_entry *e, bool json)
{
	if (json)
		return strbuf_append_cstr(out, "\"schema\":") &&
		       strbuf_append_json_string(out, e->nspname, e->nspname_len) &&
		       strbuf_append_cstr(out, ",\"table\":") &&
		       strbuf_append_json_string(out, e->relname, e->relname_len);
	return strbuf_append_escaped(out, e->nspname, e->nspname_len) && strbuf_append_char(out, '.') &&
	       strbuf_append_escaped(out, e->relname, e->relname_len);
}

/* The relation of a change, or NULL with the error set. */
static relcache_entry *
decodefmt_relation(decodefmt_ctx *c, pgo_oid relid)
{
	relcache_entry *e = relcache_get(c->rc, relid);

	if (e == NULL)
		snprintf(c->errbuf, c->errlen,
		         "change for unknown relation %" PRIu32 ": no Relation message received before it",
		         relid);
	return e;
}

/* Check a tuple has as many columns as its relation. */
static bool
decodefmt_check_ncols(decodefmt_ctx *c, const relcache_entry *e, const pgo_tuple *tup)
{
	if (tup->ncols == e->ncols)
		return true;
	snprintf(
	    c->errbuf, c->errlen,
	    "%s for relation %.64s.%.64s (%" PRIu32 ") has %u columns, but its Relation message has %u",
	    pgo_msgtype_name(c->msg->type), e->nspname, e->relname, e->relid, tup->ncols, e->ncols);
	return false;
}

/* Whether column i of an old key is printed: a key column (or, with no key known, non-null). */
static bool
decodefmt_wanted(const relcache_entry *e, const pgo_tuple *tup, uint16_t i, decodefmt_cols which)
{
	if (which == DECODEFMT_ALL_COLS)
		return true;
	return e->nkeys > 0 ? e->cols[i].key : tup->cols[i].kind != PGO_COL_NULL;
}

/* Whether a numeric value's text is safe to print bare (digits, signs, NaN, Infinity). */
static bool
decodefmt_bare_number(const char *s, uint32_t len)
{
	if (len == 0)
		return false;
	for (uint32_t i = 0; i < len; i++)
	{
		char ch = s[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      ch == '.' || ch == '-' || ch == '+'))
			return false;
	}
	return true;
}

/* ---- text ---- */

/* Append one text-format value as test_decoding would print it. */
static bool
decodefmt_text_value(strbuf *out, pgo_oid type_oid, const pgo_value *v)
{
	switch (v->kind)
	{
		case PGO_COL_NULL:
			return strbuf_append_cstr(out, "null");
		case PGO_COL_UNCHANGED:
			return strbuf_append_cstr(out, "unchanged-toast-datum");
		case PGO_COL_BINARY:
			return strbuf_append_cstr(out, "'\\x") && strbuf_append_hex(out, v->data, v->len) &&
			       strbuf_append_char(out, '\'');
		default:
			break;
	}
	switch (type_oid)
	{
		case DECODEFMT_INT2OID:
		case DECODEFMT_INT4OID:
		case DECODEFMT_INT8OID:
		case DECODEFMT_OIDOID:
		case DECODEFMT_FLOAT4OID:
		case DECODEFMT_FLOAT8OID:
		case DECODEFMT_NUMERICOID:
			if (decodefmt_bare_number(v->data, v->len))
				return strbuf_append(out, v->data, v->len);
			break;
		case DECODEFMT_BOOLOID:
			if (v->len == 1 && (v->data[0] == 't' || v->data[0] == 'f'))
				return strbuf_append_cstr(out, v->data[0] == 't' ? "true" : "false");
			break;
		default:
			break;
	}
	return strbuf_append_sql_literal(out, v->data, v->len);
}

/* Append " name[type]:value" for each wanted column of a tuple. */
static bool
decodefmt_text_tuple(decodefmt_ctx *c, const relcache_entry *e, const pgo_tuple *tup,
                     decodefmt_cols which)
{
	for (uint16_t i = 0; i < tup->ncols; i++)
	{
		const relcache_column *col = &e->cols[i];

		if (!decodefmt_wanted(e, tup, i, which))
			continue;
		if (!strbuf_append_char(c->out, ' ') ||
		    !strbuf_append_escaped(c->out, col->name, col->name_len) ||
		    !strbuf_append_char(c->out, '[') || !decodefmt_type(c, col->type_oid, false) ||
		    !strbuf_append_cstr(c->out, "]:") ||
		    !decodefmt_text_value(c->out, col->type_oid, &tup->cols[i]))
			return false;
	}
	return true;
}

/* "table nsp.rel: VERB:" */
static bool
decodefmt_text_change_head(decodefmt_ctx *c, const relcache_entry *e, const char *verb)
{
	return strbuf_append_cstr(c->out, "table ") && decodefmt_relname(c->out, e, false) &&
	       strbuf_append_cstr(c->out, ": ") && strbuf_append_cstr(c->out, verb) &&
	       strbuf_append_char(c->out, ':');
}

/* INSERT, UPDATE, DELETE in text. */
static bool
decodefmt_text_change(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;
	const relcache_entry *e;

	switch (m->type)
	{
		case PGO_MSG_INSERT:
			if ((e = decodefmt_relation(c, m->u.insert.relid)) == NULL)
				return false;
			return decodefmt_check_ncols(c, e, &m->u.insert.newtup) &&
			       decodefmt_text_change_head(c, e, "INSERT") &&
			       decodefmt_text_tuple(c, e, &m->u.insert.newtup, DECODEFMT_ALL_COLS);
		case PGO_MSG_UPDATE:
		{
			const pgo_update *u = &m->u.update;

			if ((e = decodefmt_relation(c, u->relid)) == NULL)
				return false;
			if (!decodefmt_check_ncols(c, e, &u->newtup) ||
			    (u->old_kind != 0 && !decodefmt_check_ncols(c, e, &u->oldtup)) ||
			    !decodefmt_text_change_head(c, e, "UPDATE"))
				return false;
			if (u->old_kind != 0)
			{
				bool key = u->old_kind == 'K';

				if (!strbuf_append_cstr(c->out, key ? " old-key:" : " old-tuple:") ||
				    !decodefmt_text_tuple(c, e, &u->oldtup,
				                          key ? DECODEFMT_KEY_COLS : DECODEFMT_ALL_COLS) ||
				    !strbuf_append_cstr(c->out, " new-tuple:"))
					return false;
			}
			return decodefmt_text_tuple(c, e, &u->newtup, DECODEFMT_ALL_COLS);
		}
		default: /* PGO_MSG_DELETE */
		{
			const pgo_delete *d = &m->u.del;

			if ((e = decodefmt_relation(c, d->relid)) == NULL)
				return false;
			return decodefmt_check_ncols(c, e, &d->oldtup) &&
			       decodefmt_text_change_head(c, e, "DELETE") &&
			       decodefmt_text_tuple(c, e, &d->oldtup,
			                            d->old_kind == 'K' ? DECODEFMT_KEY_COLS
			                                               : DECODEFMT_ALL_COLS);
		}
	}
}

/* "table public.a, public.b: TRUNCATE: cascade restart_seqs" */
static bool
decodefmt_text_truncate(decodefmt_ctx *c)
{
	const pgo_truncate *t = &c->msg->u.truncate;

	if (!strbuf_append_cstr(c->out, "table "))
		return false;
	for (uint32_t i = 0; i < t->nrelids; i++)
	{
		const relcache_entry *e = decodefmt_relation(c, pgo_truncate_relid(t, i));

		if (e == NULL || (i > 0 && !strbuf_append_cstr(c->out, ", ")) ||
		    !decodefmt_relname(c->out, e, false))
			return false;
	}
	if (!strbuf_append_cstr(c->out, ": TRUNCATE:"))
		return false;
	if (t->options == 0)
		return strbuf_append_cstr(c->out, " (no-flags)");
	return ((t->options & PGO_TRUNCATE_CASCADE) == 0 || strbuf_append_cstr(c->out, " cascade")) &&
	       ((t->options & PGO_TRUNCATE_RESTART_IDENTITY) == 0 ||
	        strbuf_append_cstr(c->out, " restart_seqs"));
}

/* "RELATION public.t (16384) replica_identity=default columns=id[integer,key] name[text]" */
static bool
decodefmt_text_relation(decodefmt_ctx *c)
{
	const relcache_entry *e = relcache_get(c->rc, c->msg->u.relation.relid);

	if (e == NULL)
		return false; /* not reached: relcache_observe just stored it */
	if (!strbuf_append_cstr(c->out, "RELATION ") || !decodefmt_relname(c->out, e, false) ||
	    !strbuf_appendf(c->out, " (%" PRIu32 ") replica_identity=%s columns=", e->relid,
	                    relcache_replident_name(e->replident)))
		return false;
	if (e->ncols == 0)
		return strbuf_append_cstr(c->out, "(none)");
	for (uint16_t i = 0; i < e->ncols; i++)
	{
		const relcache_column *col = &e->cols[i];

		if ((i > 0 && !strbuf_append_char(c->out, ' ')) ||
		    !strbuf_append_escaped(c->out, col->name, col->name_len) ||
		    !strbuf_append_char(c->out, '[') || !decodefmt_type(c, col->type_oid, false) ||
		    (col->typmod != -1 && !strbuf_appendf(c->out, ",typmod=%" PRId32, col->typmod)) ||
		    (col->key && !strbuf_append_cstr(c->out, ",key")) || !strbuf_append_char(c->out, ']'))
			return false;
	}
	return true;
}

/* "message: transactional: 1 prefix: x, sz: 5 content:hello" */
static bool
decodefmt_text_message(decodefmt_ctx *c)
{
	const pgo_logical_message *m = &c->msg->u.message;

	return strbuf_appendf(c->out, "message: transactional: %d prefix: ",
	                      (m->flags & PGO_MESSAGE_TRANSACTIONAL) ? 1 : 0) &&
	       strbuf_append_escaped(c->out, m->prefix.ptr, m->prefix.len) &&
	       strbuf_appendf(c->out, ", sz: %" PRIu32 " content:", m->content_len) &&
	       strbuf_append_escaped(c->out, m->content, m->content_len);
}

/* "WORD[ xid]" at the start of a transaction-control line. */
static bool
decodefmt_text_word(decodefmt_ctx *c, const char *word)
{
	return strbuf_append_cstr(c->out, word) &&
	       (!c->has_xid || strbuf_appendf(c->out, " %" PRIu32, c->xid));
}

/* " name=lsn" */
static bool
decodefmt_text_lsn(decodefmt_ctx *c, const char *name, pgo_lsn lsn)
{
	return strbuf_appendf(c->out, " %s=", name) && decodefmt_lsn(c->out, lsn, false);
}

/* " name=timestamp" */
static bool
decodefmt_text_time(decodefmt_ctx *c, const char *name, pgo_timestamp ts)
{
	return strbuf_appendf(c->out, " %s=", name) && decodefmt_ts(c->out, ts, false);
}

/* " gid='...'" */
static bool
decodefmt_text_gid(decodefmt_ctx *c, pgo_str gid)
{
	return strbuf_append_cstr(c->out, " gid=") &&
	       strbuf_append_sql_literal(c->out, gid.ptr, gid.len);
}

/* Begin Prepare, Prepare, Stream Prepare in text. */
static bool
decodefmt_text_prepare(decodefmt_ctx *c, const char *word, const pgo_prepare *p)
{
	return decodefmt_text_word(c, word) && decodefmt_text_gid(c, p->gid) &&
	       decodefmt_text_lsn(c, "lsn", p->prepare_lsn) &&
	       decodefmt_text_lsn(c, "end_lsn", p->end_lsn) &&
	       decodefmt_text_time(c, "prepare_time", p->prepare_time);
}

/* The text line of any message, without the newline. */
static bool
decodefmt_text(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;

	switch (m->type)
	{
		case PGO_MSG_BEGIN:
			return decodefmt_text_word(c, "BEGIN") &&
			       decodefmt_text_lsn(c, "lsn", m->u.begin.final_lsn) &&
			       decodefmt_text_time(c, "commit_time", m->u.begin.commit_time);
		case PGO_MSG_COMMIT:
			return decodefmt_text_word(c, "COMMIT") &&
			       decodefmt_text_lsn(c, "lsn", m->u.commit.commit_lsn) &&
			       decodefmt_text_lsn(c, "end_lsn", m->u.commit.end_lsn) &&
			       decodefmt_text_time(c, "commit_time", m->u.commit.commit_time);
		case PGO_MSG_ORIGIN:
			return strbuf_append_cstr(c->out, "ORIGIN") &&
			       decodefmt_text_lsn(c, "lsn", m->u.origin.origin_lsn) &&
			       strbuf_append_cstr(c->out, " name=") &&
			       strbuf_append_escaped(c->out, m->u.origin.name.ptr, m->u.origin.name.len);
		case PGO_MSG_RELATION:
			return decodefmt_text_relation(c);
		case PGO_MSG_TYPE:
			return strbuf_appendf(c->out, "TYPE %" PRIu32 " ", m->u.type.oid) &&
			       decodefmt_type(c, m->u.type.oid, false);
		case PGO_MSG_INSERT:
		case PGO_MSG_UPDATE:
		case PGO_MSG_DELETE:
			return decodefmt_text_change(c);
		case PGO_MSG_TRUNCATE:
			return decodefmt_text_truncate(c);
		case PGO_MSG_MESSAGE:
			return decodefmt_text_message(c);
		case PGO_MSG_STREAM_START:
			return decodefmt_text_word(c, "STREAM START") &&
			       (!m->u.stream_start.first_segment ||
			        strbuf_append_cstr(c->out, " first_segment"));
		case PGO_MSG_STREAM_STOP:
			return strbuf_append_cstr(c->out, "STREAM STOP");
		case PGO_MSG_STREAM_COMMIT:
			return decodefmt_text_word(c, "STREAM COMMIT") &&
			       decodefmt_text_lsn(c, "lsn", m->u.stream_commit.commit_lsn) &&
			       decodefmt_text_lsn(c, "end_lsn", m->u.stream_commit.end_lsn) &&
			       decodefmt_text_time(c, "commit_time", m->u.stream_commit.commit_time);
		case PGO_MSG_STREAM_ABORT:
		{
			const pgo_stream_abort *a = &m->u.stream_abort;

			return decodefmt_text_word(c, "STREAM ABORT") &&
			       strbuf_appendf(c->out, " subxid=%" PRIu32, a->subxid) &&
			       (!a->has_abort_info || (decodefmt_text_lsn(c, "abort_lsn", a->abort_lsn) &&
			                               decodefmt_text_time(c, "abort_time", a->abort_time)));
		}
		case PGO_MSG_BEGIN_PREPARE:
			return decodefmt_text_prepare(c, "BEGIN PREPARE", &m->u.begin_prepare);
		case PGO_MSG_PREPARE:
			return decodefmt_text_prepare(c, "PREPARE", &m->u.prepare);
		case PGO_MSG_STREAM_PREPARE:
			return decodefmt_text_prepare(c, "STREAM PREPARE", &m->u.stream_prepare);
		case PGO_MSG_COMMIT_PREPARED:
		{
			const pgo_commit_prepared *k = &m->u.commit_prepared;

			return decodefmt_text_word(c, "COMMIT PREPARED") && decodefmt_text_gid(c, k->gid) &&
			       decodefmt_text_lsn(c, "lsn", k->commit_lsn) &&
			       decodefmt_text_lsn(c, "end_lsn", k->end_lsn) &&
			       decodefmt_text_time(c, "commit_time", k->commit_time);
		}
		case PGO_MSG_ROLLBACK_PREPARED:
		{
			const pgo_rollback_prepared *r = &m->u.rollback_prepared;

			return decodefmt_text_word(c, "ROLLBACK PREPARED") && decodefmt_text_gid(c, r->gid) &&
			       decodefmt_text_lsn(c, "prepare_end_lsn", r->prepare_end_lsn) &&
			       decodefmt_text_lsn(c, "rollback_end_lsn", r->rollback_end_lsn) &&
			       decodefmt_text_time(c, "prepare_time", r->prepare_time) &&
			       decodefmt_text_time(c, "rollback_time", r->rollback_time);
		}
	}
	snprintf(c->errbuf, c->errlen, "cannot format message type 0x%02x",
	         (unsigned)(unsigned char)m->type);
	return false;
}

/* ---- JSON ---- */

/* ,"name":"X/X" */
static bool
decodefmt_json_lsn(decodefmt_ctx *c, const char *name, pgo_lsn lsn)
{
	return strbuf_appendf(c->out, ",\"%s\":", name) && decodefmt_lsn(c->out, lsn, true);
}

/* ,"name":"2026-11-24T14:00:00.123456Z" */
static bool
decodefmt_json_time(decodefmt_ctx *c, const char *name, pgo_timestamp ts)
{
	return strbuf_appendf(c->out, ",\"%s\":", name) && decodefmt_ts(c->out, ts, true);
}

/* ,"name":"string" */
static bool
decodefmt_json_str(decodefmt_ctx *c, const char *name, const char *s, size_t len)
{
	return strbuf_appendf(c->out, ",\"%s\":", name) && strbuf_append_json_string(c->out, s, len);
}

/* One column object: {"name":..,"type":..,"value":..} or the null/TOAST/binary variants. */
static bool
decodefmt_json_column(decodefmt_ctx *c, const relcache_column *col, const pgo_value *v)
{
	if (!strbuf_append_cstr(c->out, "{\"name\":") ||
	    !strbuf_append_json_string(c->out, col->name, col->name_len) ||
	    !strbuf_append_cstr(c->out, ",\"type\":") || !decodefmt_type(c, col->type_oid, true))
		return false;
	switch (v->kind)
	{
		case PGO_COL_NULL:
			return strbuf_append_cstr(c->out, ",\"value\":null}");
		case PGO_COL_UNCHANGED:
			return strbuf_append_cstr(c->out, ",\"unchanged_toast\":true}");
		case PGO_COL_BINARY:
			return strbuf_append_cstr(c->out, ",\"value_hex\":\"") &&
			       strbuf_append_hex(c->out, v->data, v->len) && strbuf_append_cstr(c->out, "\"}");
		default:
			return strbuf_append_cstr(c->out, ",\"value\":") &&
			       strbuf_append_json_string(c->out, v->data, v->len) &&
			       strbuf_append_char(c->out, '}');
	}
}

/* ,"name":[column, ...] for each wanted column of a tuple. */
static bool
decodefmt_json_tuple(decodefmt_ctx *c, const char *name, const relcache_entry *e,
                     const pgo_tuple *tup, decodefmt_cols which)
{
	bool first = true;

	if (!strbuf_append_cstr(c->out, ",\"") || !strbuf_append_cstr(c->out, name) ||
	    !strbuf_append_cstr(c->out, "\":["))
		return false;
	for (uint16_t i = 0; i < tup->ncols; i++)
	{
		if (!decodefmt_wanted(e, tup, i, which))
			continue;
		if ((!first && !strbuf_append_char(c->out, ',')) ||
		    !decodefmt_json_column(c, &e->cols[i], &tup->cols[i]))
			return false;
		first = false;
	}
	return strbuf_append_char(c->out, ']');
}

/* ,"old_key":[...] or ,"old_tuple":[...] */
static bool
decodefmt_json_old(decodefmt_ctx *c, const relcache_entry *e, char old_kind, const pgo_tuple *tup)
{
	bool key = old_kind == 'K';

	return decodefmt_json_tuple(c, key ? "old_key" : "old_tuple", e, tup,
	                            key ? DECODEFMT_KEY_COLS : DECODEFMT_ALL_COLS);
}

/* The body of an insert, update or delete object. */
static bool
decodefmt_json_change(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;
	const relcache_entry *e;

	switch (m->type)
	{
		case PGO_MSG_INSERT:
			if ((e = decodefmt_relation(c, m->u.insert.relid)) == NULL)
				return false;
			return decodefmt_check_ncols(c, e, &m->u.insert.newtup) &&
			       strbuf_append_char(c->out, ',') && decodefmt_relname(c->out, e, true) &&
			       decodefmt_json_tuple(c, "columns", e, &m->u.insert.newtup, DECODEFMT_ALL_COLS);
		case PGO_MSG_UPDATE:
		{
			const pgo_update *u = &m->u.update;

			if ((e = decodefmt_relation(c, u->relid)) == NULL)
				return false;
			return decodefmt_check_ncols(c, e, &u->newtup) &&
			       (u->old_kind == 0 || decodefmt_check_ncols(c, e, &u->oldtup)) &&
			       strbuf_append_char(c->out, ',') && decodefmt_relname(c->out, e, true) &&
			       (u->old_kind == 0 || decodefmt_json_old(c, e, u->old_kind, &u->oldtup)) &&
			       decodefmt_json_tuple(c, "columns", e, &u->newtup, DECODEFMT_ALL_COLS);
		}
		default: /* PGO_MSG_DELETE */
		{
			const pgo_delete *d = &m->u.del;

			if ((e = decodefmt_relation(c, d->relid)) == NULL)
				return false;
			return decodefmt_check_ncols(c, e, &d->oldtup) && strbuf_append_char(c->out, ',') &&
			       decodefmt_relname(c->out, e, true) &&
			       decodefmt_json_old(c, e, d->old_kind, &d->oldtup);
		}
	}
}

/* ,"tables":[{"schema":..,"table":..}],"cascade":..,"restart_identity":.. */
static bool
decodefmt_json_truncate(decodefmt_ctx *c)
{
	const pgo_truncate *t = &c->msg->u.truncate;

	if (!strbuf_append_cstr(c->out, ",\"tables\":["))
		return false;
	for (uint32_t i = 0; i < t->nrelids; i++)
	{
		const relcache_entry *e = decodefmt_relation(c, pgo_truncate_relid(t, i));

		if (e == NULL || (i > 0 && !strbuf_append_char(c->out, ',')) ||
		    !strbuf_append_char(c->out, '{') || !decodefmt_relname(c->out, e, true) ||
		    !strbuf_append_char(c->out, '}'))
			return false;
	}
	return strbuf_appendf(c->out, "],\"cascade\":%s,\"restart_identity\":%s",
	                      (t->options & PGO_TRUNCATE_CASCADE) ? "true" : "false",
	                      (t->options & PGO_TRUNCATE_RESTART_IDENTITY) ? "true" : "false");
}

/* ,"relid":..,"schema":..,"table":..,"replica_identity":..,"columns":[...] */
static bool
decodefmt_json_relation(decodefmt_ctx *c)
{
	const relcache_entry *e = relcache_get(c->rc, c->msg->u.relation.relid);

	if (e == NULL)
		return false; /* not reached: relcache_observe just stored it */
	if (!strbuf_appendf(c->out, ",\"relid\":%" PRIu32 ",", e->relid) ||
	    !decodefmt_relname(c->out, e, true) ||
	    !strbuf_appendf(c->out, ",\"replica_identity\":\"%s\",\"columns\":[",
	                    relcache_replident_name(e->replident)))
		return false;
	for (uint16_t i = 0; i < e->ncols; i++)
	{
		const relcache_column *col = &e->cols[i];

		if ((i > 0 && !strbuf_append_char(c->out, ',')) ||
		    !strbuf_append_cstr(c->out, "{\"name\":") ||
		    !strbuf_append_json_string(c->out, col->name, col->name_len) ||
		    !strbuf_append_cstr(c->out, ",\"type\":") || !decodefmt_type(c, col->type_oid, true) ||
		    !strbuf_appendf(c->out, ",\"type_oid\":%" PRIu32 ",\"typmod\":%" PRId32 ",\"key\":%s}",
		                    col->type_oid, col->typmod, col->key ? "true" : "false"))
			return false;
	}
	return strbuf_append_char(c->out, ']');
}

/* ,"transactional":..,"prefix":..,"content":.. (or "content_hex" when not UTF-8) */
static bool
decodefmt_json_message(decodefmt_ctx *c)
{
	const pgo_logical_message *m = &c->msg->u.message;

	if (!strbuf_appendf(c->out, ",\"transactional\":%s",
	                    (m->flags & PGO_MESSAGE_TRANSACTIONAL) ? "true" : "false") ||
	    !decodefmt_json_str(c, "prefix", m->prefix.ptr, m->prefix.len))
		return false;
	if (strbuf_utf8_valid(m->content, m->content_len))
		return decodefmt_json_str(c, "content", m->content, m->content_len);
	return strbuf_append_cstr(c->out, ",\"content_hex\":\"") &&
	       strbuf_append_hex(c->out, m->content, m->content_len) && strbuf_append_char(c->out, '"');
}

/* ,"gid":..,"prepare_lsn":..,"end_lsn":..,"prepare_time":.. */
static bool
decodefmt_json_prepare(decodefmt_ctx *c, const pgo_prepare *p)
{
	return decodefmt_json_str(c, "gid", p->gid.ptr, p->gid.len) &&
	       decodefmt_json_lsn(c, "prepare_lsn", p->prepare_lsn) &&
	       decodefmt_json_lsn(c, "end_lsn", p->end_lsn) &&
	       decodefmt_json_time(c, "prepare_time", p->prepare_time);
}

/* The kind of a message as JSON names it, or NULL if unknown. */
static const char *
decodefmt_json_kind(int type)
{
	switch (type)
	{
		case PGO_MSG_BEGIN:
			return "begin";
		case PGO_MSG_COMMIT:
			return "commit";
		case PGO_MSG_ORIGIN:
			return "origin";
		case PGO_MSG_RELATION:
			return "relation";
		case PGO_MSG_TYPE:
			return "type";
		case PGO_MSG_INSERT:
			return "insert";
		case PGO_MSG_UPDATE:
			return "update";
		case PGO_MSG_DELETE:
			return "delete";
		case PGO_MSG_TRUNCATE:
			return "truncate";
		case PGO_MSG_MESSAGE:
			return "message";
		case PGO_MSG_STREAM_START:
			return "stream_start";
		case PGO_MSG_STREAM_STOP:
			return "stream_stop";
		case PGO_MSG_STREAM_COMMIT:
			return "stream_commit";
		case PGO_MSG_STREAM_ABORT:
			return "stream_abort";
		case PGO_MSG_BEGIN_PREPARE:
			return "begin_prepare";
		case PGO_MSG_PREPARE:
			return "prepare";
		case PGO_MSG_COMMIT_PREPARED:
			return "commit_prepared";
		case PGO_MSG_ROLLBACK_PREPARED:
			return "rollback_prepared";
		case PGO_MSG_STREAM_PREPARE:
			return "stream_prepare";
		default:
			return NULL;
	}
}

/* The JSON object of any message, without the newline. */
static bool
decodefmt_json(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;
	const char *kind = decodefmt_json_kind(m->type);
	bool ok;

	if (kind == NULL)
	{
		snprintf(c->errbuf, c->errlen, "cannot format message type 0x%02x",
		         (unsigned)(unsigned char)m->type);
		return false;
	}
	if (!strbuf_append_cstr(c->out, "{\"kind\":\"") || !strbuf_append_cstr(c->out, kind) ||
	    !strbuf_append_cstr(c->out, "\",\"lsn\":") || !decodefmt_lsn(c->out, c->lsn, true) ||
	    (c->has_xid &&
	     (!strbuf_append_cstr(c->out, ",\"xid\":") || !decodefmt_uint(c->out, c->xid))))
		return false;
	switch (m->type)
	{
		case PGO_MSG_BEGIN:
			ok = decodefmt_json_lsn(c, "final_lsn", m->u.begin.final_lsn) &&
			     decodefmt_json_time(c, "commit_time", m->u.begin.commit_time);
			break;
		case PGO_MSG_COMMIT:
			ok = decodefmt_json_lsn(c, "commit_lsn", m->u.commit.commit_lsn) &&
			     decodefmt_json_lsn(c, "end_lsn", m->u.commit.end_lsn) &&
			     decodefmt_json_time(c, "commit_time", m->u.commit.commit_time);
			break;
		case PGO_MSG_ORIGIN:
			ok = decodefmt_json_lsn(c, "origin_lsn", m->u.origin.origin_lsn) &&
			     decodefmt_json_str(c, "name", m->u.origin.name.ptr, m->u.origin.name.len);
			break;
		case PGO_MSG_RELATION:
			ok = decodefmt_json_relation(c);
			break;
		case PGO_MSG_TYPE:
		{
			pgo_str nsp = m->u.type.nspname;

			if (nsp.len == 0)
			{
				nsp.ptr = "pg_catalog";
				nsp.len = strlen(nsp.ptr);
			}
			ok = strbuf_appendf(c->out, ",\"oid\":%" PRIu32, m->u.type.oid) &&
			     decodefmt_json_str(c, "schema", nsp.ptr, nsp.len) &&
			     decodefmt_json_str(c, "name", m->u.type.typname.ptr, m->u.type.typname.len);
			break;
		}
		case PGO_MSG_INSERT:
		case PGO_MSG_UPDATE:
		case PGO_MSG_DELETE:
			ok = decodefmt_json_change(c);
			break;
		case PGO_MSG_TRUNCATE:
			ok = decodefmt_json_truncate(c);
			break;
		case PGO_MSG_MESSAGE:
			ok = decodefmt_json_message(c);
			break;
		case PGO_MSG_STREAM_START:
			ok = strbuf_appendf(c->out, ",\"first_segment\":%s",
			                    m->u.stream_start.first_segment ? "true" : "false");
			break;
		case PGO_MSG_STREAM_STOP:
			ok = true;
			break;
		case PGO_MSG_STREAM_COMMIT:
			ok = decodefmt_json_lsn(c, "commit_lsn", m->u.stream_commit.commit_lsn) &&
			     decodefmt_json_lsn(c, "end_lsn", m->u.stream_commit.end_lsn) &&
			     decodefmt_json_time(c, "commit_time", m->u.stream_commit.commit_time);
			break;
		case PGO_MSG_STREAM_ABORT:
		{
			const pgo_stream_abort *a = &m->u.stream_abort;

			ok = strbuf_appendf(c->out, ",\"subxid\":%" PRIu32, a->subxid) &&
			     (!a->has_abort_info || (decodefmt_json_lsn(c, "abort_lsn", a->abort_lsn) &&
			                             decodefmt_json_time(c, "abort_time", a->abort_time)));
			break;
		}
		case PGO_MSG_BEGIN_PREPARE:
			ok = decodefmt_json_prepare(c, &m->u.begin_prepare);
			break;
		case PGO_MSG_PREPARE:
			ok = decodefmt_json_prepare(c, &m->u.prepare);
			break;
		case PGO_MSG_STREAM_PREPARE:
			ok = decodefmt_json_prepare(c, &m->u.stream_prepare);
			break;
		case PGO_MSG_COMMIT_PREPARED:
		{
			const pgo_commit_prepared *k = &m->u.commit_prepared;

			ok = decodefmt_json_str(c, "gid", k->gid.ptr, k->gid.len) &&
			     decodefmt_json_lsn(c, "commit_lsn", k->commit_lsn) &&
			     decodefmt_json_lsn(c, "end_lsn", k->end_lsn) &&
			     decodefmt_json_time(c, "commit_time", k->commit_time);
			break;
		}
		default: /* PGO_MSG_ROLLBACK_PREPARED */
		{
			const pgo_rollback_prepared *r = &m->u.rollback_prepared;

			ok = decodefmt_json_str(c, "gid", r->gid.ptr, r->gid.len) &&
			     decodefmt_json_lsn(c, "prepare_end_lsn", r->prepare_end_lsn) &&
			     decodefmt_json_lsn(c, "rollback_end_lsn", r->rollback_end_lsn) &&
			     decodefmt_json_time(c, "prepare_time", r->prepare_time) &&
			     decodefmt_json_time(c, "rollback_time", r->rollback_time);
			break;
		}
	}
	return ok && strbuf_append_char(c->out, '}');
}

/* ---- entry point ---- */

/* Observe msg into the relcache, then append its line; on failure out is unchanged. */
bool
decodefmt_handle(strbuf *out, decodefmt_format fmt, const pgo_message *msg, pgo_lsn lsn,
                 relcache *rc, char *errbuf, size_t errlen)
{
	size_t start = strbuf_len(out);
	char scratch[1];
	decodefmt_ctx c = {.out = out, .msg = msg, .lsn = lsn, .rc = rc};
	bool ok;

	if (errbuf == NULL || errlen == 0)
	{
		errbuf = scratch; /* keep the error paths simple: always somewhere to write */
		errlen = sizeof(scratch);
	}
	errbuf[0] = '\0';
	c.errbuf = errbuf;
	c.errlen = errlen;
	if (fmt != DECODEFMT_TEXT && fmt != DECODEFMT_JSON)
	{
		snprintf(errbuf, errlen, "unknown output format %d", (int)fmt);
		return false;
	}
	/* the xid as known before the message (a Commit closes the transaction it names) */
	c.has_xid = relcache_message_xid(rc, msg, &c.xid);
	if (!relcache_observe(rc, msg, errbuf, errlen))
		return false;
	ok = (fmt == DECODEFMT_TEXT ? decodefmt_text(&c) : decodefmt_json(&c)) &&
	     strbuf_append_char(out, '\n');
	if (!ok)
	{
		strbuf_truncate(out, start);
		if (errbuf[0] == '\0')
			snprintf(errbuf, errlen, "out of memory formatting a %s message",
			         pgo_msgtype_name(msg->type));
		return false;
	}
	return true;
}
