/*
 * shadowsql.c — the pure half of `pg_dbmigrator shadow` (see shadowsql.h):
 * schema names, the sync trigger's SQL, the move statement, and the state's
 * JSON writer and reader.
 *
 * Never: talks to a server, touches a file, prints.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadowsql.h"

/* _pgdbm_shadow_<ts> */
void
shadowsql_shadow_schema(const char *ts, char *buf, size_t size)
{
	snprintf(buf, size, "_pgdbm_shadow_%s", ts);
}

/* _pgdbm_backup_<ts> */
void
shadowsql_backup_schema(const char *ts, char *buf, size_t size)
{
	snprintf(buf, size, "_pgdbm_backup_%s", ts);
}

/* 14 digits. */
bool
shadowsql_ts_valid(const char *ts)
{
	if (ts == NULL || strlen(ts) != SHADOWSQL_TS - 1)
		return false;
	for (int i = 0; ts[i]; i++)
		if (!isdigit((unsigned char)ts[i]))
			return false;
	return true;
}

/* Digits of the date taken in order, separators (- : T space) skipped, zeros after. */
bool
shadowsql_date_key(const char *date, char out[SHADOWSQL_TS])
{
	int n = 0;

	for (const char *p = date; *p; p++)
	{
		if (isdigit((unsigned char)*p))
		{
			if (n == SHADOWSQL_TS - 1)
				return false;
			out[n++] = *p;
		}
		else if (*p != '-' && *p != ':' && *p != 'T' && *p != ' ')
			return false;
	}
	if (n < 8) /* at least a day */
		return false;
	while (n < SHADOWSQL_TS - 1)
		out[n++] = '0';
	out[n] = '\0';
	return true;
}

/* "name" with inner quotes doubled. */
bool
shadowsql_ident(strbuf *sb, const char *name)
{
	if (!strbuf_append_char(sb, '"'))
		return false;
	for (const char *p = name; *p; p++)
		if ((*p == '"' && !strbuf_append_char(sb, '"')) || !strbuf_append_char(sb, *p))
			return false;
	return strbuf_append_char(sb, '"');
}

/* _pgdbm_sync_<ts> */
void
shadowsql_trigger_name(const char *ts, char *buf, size_t size)
{
	snprintf(buf, size, "_pgdbm_sync_%s", ts);
}

/* schema.name, both quoted. */
static bool
qualified(strbuf *sb, const char *schema, const char *name)
{
	return shadowsql_ident(sb, schema) && strbuf_append_char(sb, '.') && shadowsql_ident(sb, name);
}

/*
 * CREATE FUNCTION shadow."sync_<table>"() ... SECURITY DEFINER: a DELETE of
 * the old key for UPDATE and DELETE, an INSERT of the new row for INSERT and
 * UPDATE; one for TRUNCATE; then the two triggers on live.table.
 */
bool
shadowsql_sync_sql(strbuf *sb, const char *live, const char *shadow, const char *table,
                   const char *const keys[], int nkeys, const char *ts)
{
	char trig[SHADOWSQL_NAME + 16], trig_t[SHADOWSQL_NAME + 20], fn[SHADOWSQL_NAME + 16];
	bool ok = true;

	if (nkeys < 1)
		return false;
	shadowsql_trigger_name(ts, trig, sizeof(trig));
	snprintf(trig_t, sizeof(trig_t), "%s_t", trig);
	snprintf(fn, sizeof(fn), "sync_%s", table);
	ok = ok && strbuf_append_cstr(sb, "CREATE FUNCTION ") && qualified(sb, shadow, fn) &&
	     strbuf_append_cstr(sb, "() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
	                            "SET search_path = pg_catalog AS $pgdbm$\nBEGIN\n"
	                            "  IF TG_OP = 'TRUNCATE' THEN\n    TRUNCATE ") &&
	     qualified(sb, shadow, table) &&
	     strbuf_append_cstr(sb, ";\n    RETURN NULL;\n  END IF;\n"
	                            "  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n    DELETE FROM ") &&
	     qualified(sb, shadow, table) && strbuf_append_cstr(sb, " WHERE (");
	for (int i = 0; ok && i < nkeys; i++)
		ok = (i == 0 || strbuf_append_cstr(sb, ", ")) && shadowsql_ident(sb, keys[i]);
	ok = ok && strbuf_append_cstr(sb, ") IS NOT DISTINCT FROM (");
	for (int i = 0; ok && i < nkeys; i++)
		ok = (i == 0 || strbuf_append_cstr(sb, ", ")) && strbuf_append_cstr(sb, "OLD.") &&
		     shadowsql_ident(sb, keys[i]);
	ok = ok &&
	     strbuf_append_cstr(sb, ");\n  END IF;\n"
	                            "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n    INSERT INTO ") &&
	     qualified(sb, shadow, table) &&
	     strbuf_append_cstr(sb, " OVERRIDING SYSTEM VALUE SELECT (NEW).*;\n  END IF;\n"
	                            "  RETURN NULL;\n"
	                            "EXCEPTION WHEN OTHERS THEN\n    INSERT INTO ") &&
	     qualified(sb, shadow, SHADOWSQL_SYNC_ERRORS) &&
	     strbuf_append_cstr(sb, " (tbl, op, message) VALUES (TG_TABLE_NAME, TG_OP, SQLERRM);\n"
	                            "    RETURN NULL;\nEND\n$pgdbm$;\n") &&
	     strbuf_append_cstr(sb, "CREATE TRIGGER ") && shadowsql_ident(sb, trig) &&
	     strbuf_append_cstr(sb, " AFTER INSERT OR UPDATE OR DELETE ON ") &&
	     qualified(sb, live, table) && strbuf_append_cstr(sb, " FOR EACH ROW EXECUTE FUNCTION ") &&
	     qualified(sb, shadow, fn) && strbuf_append_cstr(sb, "();\nCREATE TRIGGER ") &&
	     shadowsql_ident(sb, trig_t) && strbuf_append_cstr(sb, " AFTER TRUNCATE ON ") &&
	     qualified(sb, live, table) &&
	     strbuf_append_cstr(sb, " FOR EACH STATEMENT EXECUTE FUNCTION ") &&
	     qualified(sb, shadow, fn) && strbuf_append_cstr(sb, "();\n");
	return ok;
}

/* ALTER TABLE from.table SET SCHEMA to; */
bool
shadowsql_move_sql(strbuf *sb, const char *from, const char *table, const char *to)
{
	return strbuf_append_cstr(sb, "ALTER TABLE ") && qualified(sb, from, table) &&
	       strbuf_append_cstr(sb, " SET SCHEMA ") && shadowsql_ident(sb, to) &&
	       strbuf_append_cstr(sb, ";\n");
}

/* {"a","b"}: each element in double quotes, " and \\ escaped with a backslash. */
bool
shadowsql_array_literal(strbuf *sb, const char *const names[], int n)
{
	if (!strbuf_append_char(sb, '{'))
		return false;
	for (int i = 0; i < n; i++)
	{
		if ((i && !strbuf_append_char(sb, ',')) || !strbuf_append_char(sb, '"'))
			return false;
		for (const char *p = names[i]; *p; p++)
			if (((*p == '"' || *p == '\\') && !strbuf_append_char(sb, '\\')) ||
			    !strbuf_append_char(sb, *p))
				return false;
		if (!strbuf_append_char(sb, '"'))
			return false;
	}
	return strbuf_append_char(sb, '}');
}

/* "key": "value" */
static bool
json_field(strbuf *sb, const char *key, const char *value, bool comma)
{
	return strbuf_appendf(sb, "%s\"%s\": ", comma ? ",\n  " : "  ", key) &&
	       strbuf_append_json_string(sb, value, strlen(value));
}

/* The state, one field a line. */
bool
shadowsql_state_json(strbuf *sb, const shadowsql_state *st)
{
	bool ok =
	    strbuf_append_cstr(sb, "{\n") && json_field(sb, "timestamp", st->ts, false) &&
	    json_field(sb, "phase", st->phase, true) && json_field(sb, "schema", st->schema, true) &&
	    json_field(sb, "origin", st->origin, true) && strbuf_append_cstr(sb, ",\n  \"tables\": [");

	for (int i = 0; ok && i < st->ntables; i++)
	{
		const shadowsql_table *t = &st->tables[i];

		ok = strbuf_append_cstr(sb, i ? ",\n    {\"name\": " : "\n    {\"name\": ") &&
		     strbuf_append_json_string(sb, t->name, strlen(t->name)) &&
		     strbuf_appendf(sb, ", \"preserved\": %s, \"rows\": %lld, \"sum\": \"%s\"}",
		                    t->preserved ? "true" : "false", t->rows, t->sum);
	}
	ok = ok && strbuf_append_cstr(sb, "],\n  \"sequences\": [");
	for (int i = 0; ok && i < st->nseqs; i++)
		ok = strbuf_append_cstr(sb, i ? ",\n    {\"name\": " : "\n    {\"name\": ") &&
		     strbuf_append_json_string(sb, st->seqs[i].name, strlen(st->seqs[i].name)) &&
		     strbuf_appendf(sb, ", \"value\": %lld, \"called\": %s}", st->seqs[i].value,
		                    st->seqs[i].called ? "true" : "false");
	ok = ok && strbuf_append_char(sb, ']');
	if (st->slot[0])
		ok = ok && json_field(sb, "slot", st->slot, true) &&
		     json_field(sb, "source_system", st->source_system, true) &&
		     json_field(sb, "consistent_lsn", st->consistent_lsn, true) &&
		     strbuf_appendf(sb, ",\n  \"pid\": %lld", st->pid);
	return ok && strbuf_append_cstr(sb, "\n}\n");
}

/* ---- the reader: a cursor over the text; every getter checks what it reads ---- */

typedef struct jcur
{
	const char *p; /* borrowed: the caller's text */
	char *err;     /* borrowed: the caller's message buffer */
	size_t errlen;
} jcur;

static bool
jfail(jcur *c, const char *what)
{
	snprintf(c->err, c->errlen, "%s at \"%.20s\"", what, c->p);
	return false;
}

static void
jws(jcur *c)
{
	while (*c->p == ' ' || *c->p == '\n' || *c->p == '\t' || *c->p == '\r')
		c->p++;
}

static bool
jchar(jcur *c, char ch)
{
	jws(c);
	if (*c->p != ch)
		return false;
	c->p++;
	return true;
}

/* A JSON string into out (size bytes); \uXXXX only below 0x80. */
static bool
jstring(jcur *c, char *out, size_t size)
{
	size_t n = 0;

	if (!jchar(c, '"'))
		return jfail(c, "a string expected");
	while (*c->p != '"')
	{
		char ch = *c->p;

		if (ch == '\0')
			return jfail(c, "an unterminated string");
		if (ch == '\\')
		{
			c->p++;
			switch (*c->p)
			{
				case '"':
				case '\\':
				case '/':
					ch = *c->p;
					break;
				case 'n':
					ch = '\n';
					break;
				case 't':
					ch = '\t';
					break;
				case 'u':
				{
					unsigned v = 0;

					if (sscanf(c->p + 1, "%4x", &v) != 1 || v == 0 || v >= 0x80)
						return jfail(c, "an escape this state never holds");
					ch = (char)v;
					c->p += 4;
					break;
				}
				default:
					return jfail(c, "a bad escape");
			}
		}
		if (n + 1 >= size)
			return jfail(c, "a string too long");
		out[n++] = ch;
		c->p++;
	}
	c->p++;
	out[n] = '\0';
	return true;
}

static bool
jnumber(jcur *c, long long *out)
{
	char *end;

	jws(c);
	errno = 0;
	*out = strtoll(c->p, &end, 10);
	if (errno || end == c->p)
		return jfail(c, "a number expected");
	c->p = end;
	return true;
}

static bool
jbool(jcur *c, bool *out)
{
	jws(c);
	if (strncmp(c->p, "true", 4) == 0)
		*out = true, c->p += 4;
	else if (strncmp(c->p, "false", 5) == 0)
		*out = false, c->p += 5;
	else
		return jfail(c, "true or false expected");
	return true;
}

/* One {"name":..., ...} of the tables array. */
static bool
jtable(jcur *c, shadowsql_table *t)
{
	char key[32];

	t->rows = -1;
	if (!jchar(c, '{'))
		return jfail(c, "a table object expected");
	do
	{
		if (!jstring(c, key, sizeof(key)) || !jchar(c, ':'))
			return jfail(c, "a key expected");
		if (strcmp(key, "name") == 0        ? !jstring(c, t->name, sizeof(t->name))
		    : strcmp(key, "preserved") == 0 ? !jbool(c, &t->preserved)
		    : strcmp(key, "rows") == 0      ? !jnumber(c, &t->rows)
		    : strcmp(key, "sum") == 0       ? !jstring(c, t->sum, sizeof(t->sum))
		                                    : !jfail(c, "an unknown table key"))
			return false;
	} while (jchar(c, ','));
	if (!jchar(c, '}') || t->name[0] == '\0')
		return jfail(c, "a table without a name or an unclosed table");
	return true;
}

static bool
jseq(jcur *c, shadowsql_seq *s)
{
	char key[32];

	if (!jchar(c, '{'))
		return jfail(c, "a sequence object expected");
	do
	{
		if (!jstring(c, key, sizeof(key)) || !jchar(c, ':'))
			return jfail(c, "a key expected");
		if (strcmp(key, "name") == 0     ? !jstring(c, s->name, sizeof(s->name))
		    : strcmp(key, "value") == 0  ? !jnumber(c, &s->value)
		    : strcmp(key, "called") == 0 ? !jbool(c, &s->called)
		                                 : !jfail(c, "an unknown sequence key"))
			return false;
	} while (jchar(c, ','));
	if (!jchar(c, '}') || s->name[0] == '\0')
		return jfail(c, "a sequence without a name or an unclosed sequence");
	return true;
}

/* The state object; every field this version writes must be there. */
bool
shadowsql_state_parse(const char *text, shadowsql_state *st, char *err, size_t errlen)
{
	jcur c = {text, err, errlen};
	char key[32];
	int seen = 0, online = 0;

	memset(st, 0, sizeof(*st));
	if (!jchar(&c, '{'))
		return jfail(&c, "not a JSON object");
	do
	{
		if (!jstring(&c, key, sizeof(key)) || !jchar(&c, ':'))
			return jfail(&c, "a key expected");
		seen++;
		if (strcmp(key, "timestamp") == 0)
		{
			if (!jstring(&c, st->ts, sizeof(st->ts)))
				return false;
		}
		else if (strcmp(key, "phase") == 0)
		{
			if (!jstring(&c, st->phase, sizeof(st->phase)))
				return false;
		}
		else if (strcmp(key, "schema") == 0)
		{
			if (!jstring(&c, st->schema, sizeof(st->schema)))
				return false;
		}
		else if (strcmp(key, "origin") == 0)
		{
			if (!jstring(&c, st->origin, sizeof(st->origin)))
				return false;
		}
		/* the optional fields of an online migration (not counted) */
		else if (strcmp(key, "slot") == 0 || strcmp(key, "source_system") == 0 ||
		         strcmp(key, "consistent_lsn") == 0)
		{
			bool slot = strcmp(key, "slot") == 0;
			char *to = slot                                ? st->slot
			           : strcmp(key, "source_system") == 0 ? st->source_system
			                                               : st->consistent_lsn;

			seen--;
			online++;
			if (!jstring(&c, to, slot ? sizeof(st->slot) : sizeof(st->source_system)))
				return false;
		}
		else if (strcmp(key, "pid") == 0)
		{
			seen--;
			online++;
			if (!jnumber(&c, &st->pid))
				return false;
		}
		else if (strcmp(key, "tables") == 0 || strcmp(key, "sequences") == 0)
		{
			bool tables = key[0] == 't';

			if (!jchar(&c, '['))
				return jfail(&c, "an array expected");
			if (!jchar(&c, ']'))
			{
				do
				{
					if (tables ? st->ntables == SHADOWSQL_MAX_TABLES
					           : st->nseqs == SHADOWSQL_MAX_SEQS)
						return jfail(&c, "too many entries");
					if (tables ? !jtable(&c, &st->tables[st->ntables++])
					           : !jseq(&c, &st->seqs[st->nseqs++]))
						return false;
				} while (jchar(&c, ','));
				if (!jchar(&c, ']'))
					return jfail(&c, "an unclosed array");
			}
		}
		else
			return jfail(&c, "an unknown key");
	} while (jchar(&c, ','));
	if (!jchar(&c, '}'))
		return jfail(&c, "an unclosed object");
	jws(&c);
	if (*c.p != '\0')
		return jfail(&c, "text after the object");
	/* an online migration's four fields come together */
	if (seen != 6 || (online != 0 && (online != 4 || st->slot[0] == '\0')) ||
	    !shadowsql_ts_valid(st->ts) || st->phase[0] == '\0' || st->schema[0] == '\0')
	{
		snprintf(err, errlen, "a field is missing or the timestamp is not 14 digits");
		return false;
	}
	return true;
}

/* Linear search: a migration has at most a few hundred tables. */
shadowsql_table *
shadowsql_state_table(shadowsql_state *st, const char *name)
{
	for (int i = 0; i < st->ntables; i++)
		if (strcmp(st->tables[i].name, name) == 0)
			return &st->tables[i];
	return NULL;
}
