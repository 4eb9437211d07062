/*
 * decodefmt_text.c — the text line of each decoded message, modelled on
 * contrib/test_decoding (see decodefmt.h for examples of each).
 *
 * Owns: nothing. Never: allocates (only the strbuf grows), or breaks a line:
 * names and content are escaped, values with control bytes use the E'' form.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ddl.h"
#include "decodefmt_internal.h"

/* Type oids printed without quotes (pg_type.dat). */
#define DECODEFMT_BOOLOID    16
#define DECODEFMT_INT8OID    20
#define DECODEFMT_INT2OID    21
#define DECODEFMT_INT4OID    23
#define DECODEFMT_OIDOID     26
#define DECODEFMT_FLOAT4OID  700
#define DECODEFMT_FLOAT8OID  701
#define DECODEFMT_NUMERICOID 1700

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

		if (!decodefmt__wanted(e, tup, i, which))
			continue;
		if (!strbuf_append_char(c->out, ' ') ||
		    !strbuf_append_escaped(c->out, col->name, col->name_len) ||
		    !strbuf_append_char(c->out, '[') || !decodefmt__type(c, col->type_oid) ||
		    !strbuf_append_cstr(c->out, "]:") ||
		    !decodefmt_text_value(c->out, col->type_oid, &tup->cols[i]))
			return false;
	}
	return true;
}

/*
 * "table nsp.rel: VERB:" and the tuples; an Update with both tuples labels
 * them "old-key:"/"old-tuple:" and "new-tuple:".
 */
static bool
decodefmt_text_change(decodefmt_ctx *c, const char *verb)
{
	decodefmt_change ch;
	bool both;

	if (!decodefmt__change(c, &ch))
		return false;
	both = ch.oldtup != NULL && ch.newtup != NULL;
	if (!strbuf_append_cstr(c->out, "table ") || !decodefmt__relname(c, ch.e) ||
	    !strbuf_append_cstr(c->out, ": ") || !strbuf_append_cstr(c->out, verb) ||
	    !strbuf_append_char(c->out, ':'))
		return false;
	if (ch.oldtup != NULL &&
	    ((both && !strbuf_append_cstr(c->out, ch.old_is_key ? " old-key:" : " old-tuple:")) ||
	     !decodefmt_text_tuple(c, ch.e, ch.oldtup, ch.old_cols) ||
	     (both && !strbuf_append_cstr(c->out, " new-tuple:"))))
		return false;
	return ch.newtup == NULL || decodefmt_text_tuple(c, ch.e, ch.newtup, DECODEFMT_ALL_COLS);
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
		const relcache_entry *e = decodefmt__relation(c, pgo_truncate_relid(t, i));

		if (e == NULL || (i > 0 && !strbuf_append_cstr(c->out, ", ")) || !decodefmt__relname(c, e))
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
	if (!strbuf_append_cstr(c->out, "RELATION ") || !decodefmt__relname(c, e) ||
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
		    !strbuf_append_char(c->out, '[') || !decodefmt__type(c, col->type_oid) ||
		    (col->typmod != -1 && !strbuf_appendf(c->out, ",typmod=%" PRId32, col->typmod)) ||
		    (col->key && !strbuf_append_cstr(c->out, ",key")) || !strbuf_append_char(c->out, ']'))
			return false;
	}
	return true;
}

/*
 * A captured DDL command (ddl.h), readable: "ddl: ALTER TABLE (replay: its
 * text) search_path: public query: ALTER TABLE t ADD c int"; how the applier
 * would replay it, and why not when it would stop.
 */
static bool
decodefmt_text_ddl(decodefmt_ctx *c, const pgo_logical_message *lm)
{
	ddl_msg d;
	char why[1024];
	ddl_replay how;
	bool ok;

	if (!ddl_msg_parse(lm->content, lm->content_len, &d, why, sizeof(why)))
		return false;
	how = ddl_decide(&d, why, sizeof(why));
	ok =
	    strbuf_append_cstr(c->out, "ddl: ") &&
	    strbuf_append_escaped(c->out, d.tag, strlen(d.tag)) &&
	    strbuf_appendf(c->out, " (replay: %s%s%s)",
	                   how == DDL_REPLAY_TEXT   ? "its text"
	                   : how == DDL_REPLAY_DEFS ? "rebuilt from the catalog"
	                                            : "none, the apply stops",
	                   how == DDL_REPLAY_NONE ? ": " : "", how == DDL_REPLAY_NONE ? why : "") &&
	    (!d.search_path || (strbuf_append_cstr(c->out, " search_path: ") &&
	                        strbuf_append_escaped(c->out, d.search_path, strlen(d.search_path)))) &&
	    (!d.commands || (strbuf_append_cstr(c->out, " objects: ") &&
	                     strbuf_append_escaped(c->out, d.commands, strlen(d.commands)))) &&
	    (!d.query || (strbuf_append_cstr(c->out, " query: ") &&
	                  strbuf_append_escaped(c->out, d.query, strlen(d.query))));
	for (int i = 0; ok && how == DDL_REPLAY_DEFS && i < d.ndefs; i++)
		ok = strbuf_appendf(c->out, " def%d: ", i + 1) &&
		     strbuf_append_escaped(c->out, d.defs[i], strlen(d.defs[i]));
	for (int i = 0; ok && how != DDL_REPLAY_NONE && i < d.nafter; i++)
		ok = strbuf_appendf(c->out, " then%d: ", i + 1) &&
		     strbuf_append_escaped(c->out, d.after[i], strlen(d.after[i]));
	ddl_msg_free(&d);
	return ok;
}

/* "message: transactional: 1 prefix: x, sz: 5 content:hello" */
static bool
decodefmt_text_message(decodefmt_ctx *c)
{
	const pgo_logical_message *m = &c->msg->u.message;
	size_t mark = strbuf_len(c->out);

	/* the tool's DDL capture reads as what it is; anything else, or a bad one, as sent */
	if (m->prefix.len == strlen(DDL_MSG_PREFIX) &&
	    memcmp(m->prefix.ptr, DDL_MSG_PREFIX, m->prefix.len) == 0)
	{
		if (decodefmt_text_ddl(c, m))
			return true;
		strbuf_truncate(c->out, mark);
	}
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

/* The word a transaction-control line starts with (then the xid), or NULL for other messages. */
static const char *
decodefmt_text_control_word(int type)
{
	switch (type)
	{
		case PGO_MSG_BEGIN:
			return "BEGIN";
		case PGO_MSG_COMMIT:
			return "COMMIT";
		case PGO_MSG_STREAM_COMMIT:
			return "STREAM COMMIT";
		case PGO_MSG_STREAM_ABORT:
			return "STREAM ABORT";
		case PGO_MSG_BEGIN_PREPARE:
			return "BEGIN PREPARE";
		case PGO_MSG_PREPARE:
			return "PREPARE";
		case PGO_MSG_STREAM_PREPARE:
			return "STREAM PREPARE";
		case PGO_MSG_COMMIT_PREPARED:
			return "COMMIT PREPARED";
		case PGO_MSG_ROLLBACK_PREPARED:
			return "ROLLBACK PREPARED";
		default:
			return NULL;
	}
}

/* The text line of any message, without the newline. */
bool
decodefmt__text(decodefmt_ctx *c)
{
	const pgo_message *m = c->msg;
	const char *word = decodefmt_text_control_word(m->type);

	if (word != NULL)
		return decodefmt_text_word(c, word) && decodefmt__control_fields(c);
	switch (m->type)
	{
		case PGO_MSG_ORIGIN:
			/* no xid: an Origin names where the transaction came from */
			return strbuf_append_cstr(c->out, "ORIGIN") && decodefmt__control_fields(c);
		case PGO_MSG_RELATION:
			return decodefmt_text_relation(c);
		case PGO_MSG_TYPE:
			return strbuf_appendf(c->out, "TYPE %" PRIu32 " ", m->u.type.oid) &&
			       decodefmt__type(c, m->u.type.oid);
		case PGO_MSG_INSERT:
			return decodefmt_text_change(c, "INSERT");
		case PGO_MSG_UPDATE:
			return decodefmt_text_change(c, "UPDATE");
		case PGO_MSG_DELETE:
			return decodefmt_text_change(c, "DELETE");
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
		default:
			return decodefmt__unknown(c);
	}
}
