/*
 * decodefmt_json.c — the JSON object of each decoded message, one per line
 * (see decodefmt.h): {"kind":..,"lsn":..,"xid":.., then the message's fields}.
 *
 * Owns: nothing. Never: allocates (only the strbuf grows), or writes invalid
 * JSON: names and values go through strbuf_append_json_string, content that
 * is not UTF-8 is written as hex.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ddl.h"
#include "decodefmt_internal.h"

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

/* One column object: {"name":..,"type":..,"value":..} or the null/TOAST/binary variants. */
static bool
decodefmt_json_column(decodefmt_ctx *c, const relcache_column *col, const pgo_value *v)
{
	if (!strbuf_append_cstr(c->out, "{\"name\":") ||
	    !strbuf_append_json_string(c->out, col->name, col->name_len) ||
	    !strbuf_append_cstr(c->out, ",\"type\":") || !decodefmt__type(c, col->type_oid))
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
		if (!decodefmt__wanted(e, tup, i, which))
			continue;
		if ((!first && !strbuf_append_char(c->out, ',')) ||
		    !decodefmt_json_column(c, &e->cols[i], &tup->cols[i]))
			return false;
		first = false;
	}
	return strbuf_append_char(c->out, ']');
}

/* ,"old_key":[...] or ,"old_tuple":[...], then ,"columns":[...] as the change has them. */
static bool
decodefmt_json_change(decodefmt_ctx *c)
{
	decodefmt_change ch;

	return decodefmt__change(c, &ch) && strbuf_append_char(c->out, ',') &&
	       decodefmt__relname(c, ch.e) &&
	       (ch.oldtup == NULL || decodefmt_json_tuple(c, ch.old_is_key ? "old_key" : "old_tuple",
	                                                  ch.e, ch.oldtup, ch.old_cols)) &&
	       (ch.newtup == NULL ||
	        decodefmt_json_tuple(c, "columns", ch.e, ch.newtup, DECODEFMT_ALL_COLS));
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
		const relcache_entry *e = decodefmt__relation(c, pgo_truncate_relid(t, i));

		if (e == NULL || (i > 0 && !strbuf_append_char(c->out, ',')) ||
		    !strbuf_append_char(c->out, '{') || !decodefmt__relname(c, e) ||
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
	if (!strbuf_appendf(c->out, ",\"relid\":%" PRIu32 ",", e->relid) || !decodefmt__relname(c, e) ||
	    !strbuf_appendf(c->out, ",\"replica_identity\":\"%s\",\"columns\":[",
	                    relcache_replident_name(e->replident)))
		return false;
	for (uint16_t i = 0; i < e->ncols; i++)
	{
		const relcache_column *col = &e->cols[i];

		if ((i > 0 && !strbuf_append_char(c->out, ',')) ||
		    !strbuf_append_cstr(c->out, "{\"name\":") ||
		    !strbuf_append_json_string(c->out, col->name, col->name_len) ||
		    !strbuf_append_cstr(c->out, ",\"type\":") || !decodefmt__type(c, col->type_oid) ||
		    !strbuf_appendf(c->out, ",\"type_oid\":%" PRIu32 ",\"typmod\":%" PRId32 ",\"key\":%s}",
		                    col->type_oid, col->typmod, col->key ? "true" : "false"))
			return false;
	}
	return strbuf_append_char(c->out, ']');
}

/*
 * The tool's DDL capture (ddl.h): ,"ddl":{"tag":..,"replay":"text|definitions|none"
 * [,"why":..]} after its content; nothing for other messages or a bad one.
 */
static bool
decodefmt_json_ddl(decodefmt_ctx *c, const pgo_logical_message *m)
{
	ddl_msg d;
	char why[1024];
	ddl_replay how;
	bool ok;

	if (m->prefix.len != strlen(DDL_MSG_PREFIX) ||
	    memcmp(m->prefix.ptr, DDL_MSG_PREFIX, m->prefix.len) != 0 ||
	    !ddl_msg_parse(m->content, m->content_len, &d, why, sizeof(why)))
		return true;
	how = ddl_decide(&d, why, sizeof(why));
	ok = strbuf_append_cstr(c->out, ",\"ddl\":{\"tag\":") &&
	     strbuf_append_json_string(c->out, d.tag, strlen(d.tag)) &&
	     strbuf_appendf(c->out, ",\"replay\":\"%s\"",
	                    how == DDL_REPLAY_TEXT   ? "text"
	                    : how == DDL_REPLAY_DEFS ? "definitions"
	                                             : "none") &&
	     (how != DDL_REPLAY_NONE || (strbuf_append_cstr(c->out, ",\"why\":") &&
	                                 strbuf_append_json_string(c->out, why, strlen(why)))) &&
	     strbuf_append_char(c->out, '}');
	ddl_msg_free(&d);
	return ok;
}

/* ,"transactional":..,"prefix":..,"content":.. (or "content_hex" when not UTF-8) */
static bool
decodefmt_json_message(decodefmt_ctx *c)
{
	const pgo_logical_message *m = &c->msg->u.message;

	if (!strbuf_appendf(c->out, ",\"transactional\":%s",
	                    (m->flags & PGO_MESSAGE_TRANSACTIONAL) ? "true" : "false") ||
	    !decodefmt__field_name(c, "prefix", m->prefix.ptr, m->prefix.len))
		return false;
	if (strbuf_utf8_valid(m->content, m->content_len))
		return decodefmt__field_name(c, "content", m->content, m->content_len) &&
		       decodefmt_json_ddl(c, m);
	return strbuf_append_cstr(c->out, ",\"content_hex\":\"") &&
	       strbuf_append_hex(c->out, m->content, m->content_len) && strbuf_append_char(c->out, '"');
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
bool
decodefmt__json(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;
	const char *kind = decodefmt_json_kind(m->type);
	bool ok;

	if (kind == NULL)
		return decodefmt__unknown(c);
	if (!strbuf_append_cstr(c->out, "{\"kind\":\"") || !strbuf_append_cstr(c->out, kind) ||
	    !strbuf_append_char(c->out, '"') || !decodefmt__field_lsn(c, "lsn", c->lsn) ||
	    (c->has_xid &&
	     (!strbuf_append_cstr(c->out, ",\"xid\":") || !decodefmt_uint(c->out, c->xid))))
		return false;
	switch (m->type)
	{
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
			     decodefmt__field_name(c, "schema", nsp.ptr, nsp.len) &&
			     decodefmt__field_name(c, "name", m->u.type.typname.ptr, m->u.type.typname.len);
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
		default: /* Begin, Commit, Origin, and the stream and two-phase transaction messages */
			ok = decodefmt__control_fields(c);
			break;
	}
	return ok && strbuf_append_char(c->out, '}');
}
