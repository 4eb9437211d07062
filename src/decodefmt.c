/*
 * decodefmt.c — the entry point of the decode formatter, and what its text
 * and JSON forms share (see decodefmt.h for both formats, and
 * decodefmt_internal.h for how the parts divide the work).
 *
 * Layout: decodefmt_handle() observes the message into the relcache, then
 * hands it to the text or the JSON form (decodefmt_text.c,
 * decodefmt_json.c); both print positions, times, names, types and the
 * relation of a change through the appenders here, and the fields of a
 * transaction-control message through one function. Every appender returns
 * false on failure and the failure runs straight back up, where the strbuf is
 * cut back to its length on entry.
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

#include "decodefmt_internal.h"

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

/* ---- appenders both forms use ---- */

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
bool
decodefmt__type(decodefmt_ctx *c, pgo_oid oid)
{
	size_t len;
	const char *name = relcache_type_name_len(c->rc, oid, &len);
	char num[16];

	if (name != NULL)
		return decodefmt_name(c->out, name, len, c->json);
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu32, oid);
	return decodefmt_name(c->out, num, len, c->json);
}

/* Append "nsp.rel" in text, or "schema":..,"table":.. in JSON. */
bool
decodefmt__relname(const decodefmt_ctx *c, const relcache_entry *e)
{
	if (c->json)
		return strbuf_append_cstr(c->out, "\"schema\":") &&
		       strbuf_append_json_string(c->out, e->nspname, e->nspname_len) &&
		       strbuf_append_cstr(c->out, ",\"table\":") &&
		       strbuf_append_json_string(c->out, e->relname, e->relname_len);
	return strbuf_append_escaped(c->out, e->nspname, e->nspname_len) &&
	       strbuf_append_char(c->out, '.') &&
	       strbuf_append_escaped(c->out, e->relname, e->relname_len);
}

/* ---- the relation and tuples of a change ---- */

/* The relation of a change, or NULL with the error set. */
const relcache_entry *
decodefmt__relation(decodefmt_ctx *c, pgo_oid relid)
{
	const relcache_entry *e = relcache_get(c->rc, relid);

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

/* Fill ch from an Insert, Update or Delete: its relation, then its tuples checked against it. */
bool
decodefmt__change(decodefmt_ctx *c, decodefmt_change *ch)
{
	const pgo_message *m = c->msg;
	pgo_oid relid;
	char old_kind = 0;

	memset(ch, 0, sizeof(*ch));
	switch (m->type)
	{
		case PGO_MSG_INSERT:
			relid = m->u.insert.relid;
			ch->newtup = &m->u.insert.newtup;
			break;
		case PGO_MSG_UPDATE:
			relid = m->u.update.relid;
			old_kind = m->u.update.old_kind;
			ch->oldtup = old_kind != 0 ? &m->u.update.oldtup : NULL;
			ch->newtup = &m->u.update.newtup;
			break;
		case PGO_MSG_DELETE:
			relid = m->u.del.relid;
			old_kind = m->u.del.old_kind;
			ch->oldtup = &m->u.del.oldtup;
			break;
		default:
			return decodefmt__unknown(c);
	}
	ch->old_is_key = old_kind == 'K';
	ch->old_cols = ch->old_is_key ? DECODEFMT_KEY_COLS : DECODEFMT_ALL_COLS;
	/* the new tuple is checked first: the error names whichever disagrees first */
	return (ch->e = decodefmt__relation(c, relid)) != NULL &&
	       (ch->newtup == NULL || decodefmt_check_ncols(c, ch->e, ch->newtup)) &&
	       (ch->oldtup == NULL || decodefmt_check_ncols(c, ch->e, ch->oldtup));
}

/* Whether column i of an old key is printed: a key column (or, with no key known, non-null). */
bool
decodefmt__wanted(const relcache_entry *e, const pgo_tuple *tup, uint16_t i, decodefmt_cols which)
{
	if (which == DECODEFMT_ALL_COLS)
		return true;
	return e->nkeys > 0 ? e->cols[i].key : tup->cols[i].kind != PGO_COL_NULL;
}

/* ---- fields ---- */

/* " name=" in text, ,"name": in JSON */
static bool
decodefmt_key(decodefmt_ctx *c, const char *name)
{
	/* no printf: every line has a few */
	if (c->json)
		return strbuf_append_cstr(c->out, ",\"") && strbuf_append_cstr(c->out, name) &&
		       strbuf_append_cstr(c->out, "\":");
	return strbuf_append_char(c->out, ' ') && strbuf_append_cstr(c->out, name) &&
	       strbuf_append_char(c->out, '=');
}

/* " name=16/B374D848" or ,"name":"16/B374D848" */
bool
decodefmt__field_lsn(decodefmt_ctx *c, const char *name, pgo_lsn lsn)
{
	return decodefmt_key(c, name) && decodefmt_lsn(c->out, lsn, c->json);
}

/* " name=2026-11-24 14:00:00.123456+00" or ,"name":"2026-11-24T14:00:00.123456Z" */
bool
decodefmt__field_time(decodefmt_ctx *c, const char *name, pgo_timestamp ts)
{
	return decodefmt_key(c, name) && decodefmt_ts(c->out, ts, c->json);
}

/* " name=escaped" or ,"name":"string" */
bool
decodefmt__field_name(decodefmt_ctx *c, const char *name, const char *s, size_t len)
{
	return decodefmt_key(c, name) && decodefmt_name(c->out, s, len, c->json);
}

/* " gid='...'" (an SQL literal) or ,"gid":"..." */
static bool
decodefmt_field_gid(decodefmt_ctx *c, pgo_str gid)
{
	return decodefmt_key(c, "gid") &&
	       (c->json ? strbuf_append_json_string(c->out, gid.ptr, gid.len)
	                : strbuf_append_sql_literal(c->out, gid.ptr, gid.len));
}

/* The first position of a control message: "lsn" in text, json_name in JSON. */
static bool
decodefmt_field_pos(decodefmt_ctx *c, const char *json_name, pgo_lsn lsn)
{
	return decodefmt__field_lsn(c, c->json ? json_name : "lsn", lsn);
}

/* gid, prepare position, end position, prepare time: the three kinds of Prepare. */
static bool
decodefmt_prepare_fields(decodefmt_ctx *c, const pgo_prepare *p)
{
	return decodefmt_field_gid(c, p->gid) &&
	       decodefmt_field_pos(c, "prepare_lsn", p->prepare_lsn) &&
	       decodefmt__field_lsn(c, "end_lsn", p->end_lsn) &&
	       decodefmt__field_time(c, "prepare_time", p->prepare_time);
}

/* The fields of a transaction-control message, alike in both forms. */
bool
decodefmt__control_fields(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;

	switch (m->type)
	{
		case PGO_MSG_BEGIN:
			return decodefmt_field_pos(c, "final_lsn", m->u.begin.final_lsn) &&
			       decodefmt__field_time(c, "commit_time", m->u.begin.commit_time);
		case PGO_MSG_COMMIT:
			return decodefmt_field_pos(c, "commit_lsn", m->u.commit.commit_lsn) &&
			       decodefmt__field_lsn(c, "end_lsn", m->u.commit.end_lsn) &&
			       decodefmt__field_time(c, "commit_time", m->u.commit.commit_time);
		case PGO_MSG_ORIGIN:
			return decodefmt_field_pos(c, "origin_lsn", m->u.origin.origin_lsn) &&
			       decodefmt__field_name(c, "name", m->u.origin.name.ptr, m->u.origin.name.len);
		case PGO_MSG_STREAM_COMMIT:
			return decodefmt_field_pos(c, "commit_lsn", m->u.stream_commit.commit_lsn) &&
			       decodefmt__field_lsn(c, "end_lsn", m->u.stream_commit.end_lsn) &&
			       decodefmt__field_time(c, "commit_time", m->u.stream_commit.commit_time);
		case PGO_MSG_STREAM_ABORT:
		{
			const pgo_stream_abort *a = &m->u.stream_abort;

			return decodefmt_key(c, "subxid") && strbuf_appendf(c->out, "%" PRIu32, a->subxid) &&
			       (!a->has_abort_info || (decodefmt__field_lsn(c, "abort_lsn", a->abort_lsn) &&
			                               decodefmt__field_time(c, "abort_time", a->abort_time)));
		}
		case PGO_MSG_BEGIN_PREPARE:
			return decodefmt_prepare_fields(c, &m->u.begin_prepare);
		case PGO_MSG_PREPARE:
			return decodefmt_prepare_fields(c, &m->u.prepare);
		case PGO_MSG_STREAM_PREPARE:
			return decodefmt_prepare_fields(c, &m->u.stream_prepare);
		case PGO_MSG_COMMIT_PREPARED:
		{
			const pgo_commit_prepared *k = &m->u.commit_prepared;

			return decodefmt_field_gid(c, k->gid) &&
			       decodefmt_field_pos(c, "commit_lsn", k->commit_lsn) &&
			       decodefmt__field_lsn(c, "end_lsn", k->end_lsn) &&
			       decodefmt__field_time(c, "commit_time", k->commit_time);
		}
		case PGO_MSG_ROLLBACK_PREPARED:
		{
			const pgo_rollback_prepared *r = &m->u.rollback_prepared;

			return decodefmt_field_gid(c, r->gid) &&
			       decodefmt__field_lsn(c, "prepare_end_lsn", r->prepare_end_lsn) &&
			       decodefmt__field_lsn(c, "rollback_end_lsn", r->rollback_end_lsn) &&
			       decodefmt__field_time(c, "prepare_time", r->prepare_time) &&
			       decodefmt__field_time(c, "rollback_time", r->rollback_time);
		}
		default:
			return decodefmt__unknown(c);
	}
}

/* ---- entry point ---- */

bool
decodefmt__unknown(decodefmt_ctx *c)
{
	snprintf(c->errbuf, c->errlen, "cannot format message type 0x%02x",
	         (unsigned)(unsigned char)c->msg->type);
	return false;
}

/* Observe msg into the relcache, then append its line; on failure out is unchanged. */
bool
decodefmt_handle(strbuf *out, decodefmt_format fmt, const pgo_message *msg, pgo_lsn lsn,
                 relcache *rc, char *errbuf, size_t errlen)
{
	size_t start = strbuf_len(out);
	char scratch[1];
	decodefmt_ctx c = {.out = out, .msg = msg, .lsn = lsn, .rc = rc, .json = fmt == DECODEFMT_JSON};
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
	ok = (c.json ? decodefmt__json(&c) : decodefmt__text(&c)) && strbuf_append_char(out, '\n');
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
