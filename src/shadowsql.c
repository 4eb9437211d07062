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

/*
 * ---- what follows the tables in an exchange ----
 *
 * Each part is one SELECT of (phase, statement) over the catalog. outs are
 * the tables moving out of the live schema $2, ins those moving in from $3
 * (same names, $1); $4 the preserved tables. Read with search_path = $2, so
 * the definitions read back (views, policies, constraints) name the live
 * tables unqualified and, run after the moves, resolve to the new ones.
 */
static const shadowsql_around around_parts[] = {
    {"our sync triggers on the out-tables", /* they go with the old tables' role */
     "SELECT 1 AS ph, format('DROP TRIGGER %I ON %I.%I;', t.tgname, $2, o.relname) FROM "
     "pg_trigger t JOIN outs o ON o.oid = t.tgrelid WHERE t.tgname LIKE '\\_pgdbm\\_sync\\_%'"},
    {"the in-tables' foreign keys (they get the live tables' ones)",
     "SELECT 1, format('ALTER TABLE %I.%I DROP CONSTRAINT %I;', $3, i.relname, con.conname) "
     "FROM pg_constraint con JOIN ins i ON i.oid = con.conrelid WHERE con.contype = 'f'"},
    {"the in-tables' triggers",
     "SELECT 1, format('DROP TRIGGER %I ON %I.%I;', t.tgname, $3, i.relname) FROM pg_trigger t "
     "JOIN ins i ON i.oid = t.tgrelid WHERE NOT t.tgisinternal"},
    {"the in-tables' row-level security policies",
     "SELECT 1, format('DROP POLICY %I ON %I.%I;', p.polname, $3, i.relname) FROM pg_policy p "
     "JOIN ins i ON i.oid = p.polrelid"},
    {"foreign keys of other tables (any schema) pointing at out-tables: dropped",
     "SELECT 1, format('ALTER TABLE %s DROP CONSTRAINT %I;', con.conrelid::regclass, "
     "con.conname) FROM pg_constraint con JOIN outs o ON o.oid = con.confrelid WHERE "
     "con.contype = 'f' AND con.conrelid NOT IN (SELECT oid FROM outs)"},
    {"... and added back, on the in-tables",
     "SELECT 3, format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID;', con.conrelid::regclass, "
     "con.conname, pg_get_constraintdef(con.oid)) FROM pg_constraint con JOIN outs o ON o.oid = "
     "con.confrelid WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT oid FROM outs)"},
    {"the out-tables' foreign keys (to any schema), on the in-tables",
     "SELECT 3, format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s NOT VALID;', $2, o.relname, "
     "con.conname, pg_get_constraintdef(con.oid)) FROM pg_constraint con JOIN outs o ON o.oid = "
     "con.conrelid WHERE con.contype = 'f'"},
    {"the out-tables' own triggers (not ours), on the in-tables",
     "SELECT 3, pg_get_triggerdef(t.oid) || ';' FROM pg_trigger t JOIN outs o ON o.oid = "
     "t.tgrelid WHERE NOT t.tgisinternal AND t.tgname NOT LIKE '\\_pgdbm\\_sync\\_%'"},
    {"... disabled or replica-only as they were (after they are made)",
     "SELECT 4, format('ALTER TABLE %I.%I %s TRIGGER %I;', $2, o.relname, CASE t.tgenabled WHEN "
     "'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END, t.tgname) FROM "
     "pg_trigger t JOIN outs o ON o.oid = t.tgrelid WHERE NOT t.tgisinternal AND t.tgenabled <> "
     "'O' AND t.tgname NOT LIKE '\\_pgdbm\\_sync\\_%'"},
    {"sequences owned by out-table columns (serial) stay live: let go",
     "SELECT 1, format('ALTER SEQUENCE %I.%I OWNED BY NONE;', $2, s.relname) FROM pg_depend d "
     "JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = d.objid WHERE d.classid = "
     "'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' AND "
     "s.relkind = 'S'"},
    {"... then taken back by the in-tables' columns",
     "SELECT 3, format('ALTER SEQUENCE %I.%I OWNED BY %I.%I.%I;', $2, s.relname, $2, o.relname, "
     "a.attname) FROM pg_depend d JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = "
     "d.objid JOIN pg_attribute a ON a.attrelid = o.oid AND a.attnum = d.refobjsubid WHERE "
     "d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = "
     "'a' AND s.relkind = 'S'"},
    {"the preserved tables' identity sequences keep counting where the live ones are",
     "SELECT 3, format('SELECT setval(pg_get_serial_sequence(%L, %L), %s);', "
     "quote_ident($2) || '.' || quote_ident(o.relname), a.attname, ps.last_value) FROM pg_depend "
     "d JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = d.objid JOIN pg_attribute a "
     "ON a.attrelid = o.oid AND a.attnum = d.refobjsubid JOIN pg_namespace sn ON sn.oid = "
     "s.relnamespace JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = "
     "s.relname WHERE d.deptype = 'i' AND s.relkind = 'S' AND ps.last_value IS NOT NULL AND "
     "o.relname = ANY($4::text[])"},
    {"views on out-tables: the same text, now naming the in-tables",
     "SELECT 3, format('CREATE OR REPLACE VIEW %s AS %s', v.oid::regclass, pg_get_viewdef(v.oid)) "
     "FROM (SELECT DISTINCT r.ev_class AS oid FROM pg_depend d JOIN pg_rewrite r ON r.oid = "
     "d.objid JOIN outs o ON o.oid = d.refobjid WHERE d.classid = 'pg_rewrite'::regclass AND "
     "d.refclassid = 'pg_class'::regclass) v JOIN pg_class vc ON vc.oid = v.oid WHERE "
     "vc.relkind = 'v'"},
    {"materialized views on out-tables: rebuilt on the in-tables (their rows computed anew), "
     "with their indexes, grants and owner, in one row so that they run in this order",
     "SELECT 3, format('DROP MATERIALIZED VIEW %s; CREATE MATERIALIZED VIEW %s AS %s%s;', "
     "vc.oid::regclass, vc.oid::regclass, rtrim(pg_get_viewdef(vc.oid), E'; \\n'), CASE WHEN "
     "vc.relispopulated THEN '' ELSE ' WITH NO DATA' END) || coalesce((SELECT string_agg(' ' || "
     "pg_get_indexdef(x.indexrelid) || ';', '' ORDER BY x.indexrelid) FROM pg_index x WHERE "
     "x.indrelid = vc.oid), '') || coalesce((SELECT string_agg(format(' GRANT %s ON %s TO "
     "%s%s;', g.privilege_type, vc.oid::regclass, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE "
     "quote_ident(pg_get_userbyid(g.grantee)) END, CASE WHEN g.is_grantable THEN ' WITH GRANT "
     "OPTION' ELSE '' END), '') FROM aclexplode(vc.relacl) g WHERE g.grantee <> vc.relowner), "
     "'') || CASE WHEN pg_get_userbyid(vc.relowner) <> current_user THEN format(' ALTER "
     "MATERIALIZED VIEW %s OWNER TO %I;', vc.oid::regclass, pg_get_userbyid(vc.relowner)) ELSE "
     "'' END FROM (SELECT DISTINCT r.ev_class AS oid FROM pg_depend d JOIN pg_rewrite r ON r.oid "
     "= d.objid JOIN outs o ON o.oid = d.refobjid WHERE d.classid = 'pg_rewrite'::regclass AND "
     "d.refclassid = 'pg_class'::regclass) v JOIN pg_class vc ON vc.oid = v.oid WHERE "
     "vc.relkind = 'm'"},
    {"grants of the out-tables, on the in-tables (one statement per grantee)",
     "SELECT 3, format('GRANT %s ON %I.%I TO %s%s;', string_agg(g.privilege_type, ', '), $2, "
     "o.relname, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE "
     "quote_ident(pg_get_userbyid(g.grantee)) END, CASE WHEN g.is_grantable THEN ' WITH GRANT "
     "OPTION' ELSE '' END) FROM outs o JOIN pg_class c ON c.oid = o.oid, aclexplode(c.relacl) g "
     "WHERE g.grantee <> c.relowner GROUP BY o.relname, g.grantee, g.is_grantable"},
    {"column-level grants of the out-tables, on the in-tables' columns",
     "SELECT 3, format('GRANT %s ON %I.%I TO %s%s;', string_agg(format('%s (%I)', "
     "g.privilege_type, a.attname), ', '), $2, o.relname, CASE WHEN g.grantee = 0 THEN 'PUBLIC' "
     "ELSE quote_ident(pg_get_userbyid(g.grantee)) END, CASE WHEN g.is_grantable THEN ' WITH "
     "GRANT OPTION' ELSE '' END) FROM outs o JOIN pg_class c ON c.oid = o.oid JOIN pg_attribute "
     "a ON a.attrelid = o.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL, "
     "aclexplode(a.attacl) g WHERE g.grantee <> c.relowner GROUP BY o.relname, g.grantee, "
     "g.is_grantable"},
    {"row-level security switched as on the out-tables (ENABLE, FORCE), where it differs",
     "SELECT 3, format('ALTER TABLE %I.%I %s ROW LEVEL SECURITY, %s ROW LEVEL SECURITY;', $2, "
     "o.relname, CASE WHEN oc.relrowsecurity THEN 'ENABLE' ELSE 'DISABLE' END, CASE WHEN "
     "oc.relforcerowsecurity THEN 'FORCE' ELSE 'NO FORCE' END) FROM outs o JOIN pg_class oc ON "
     "oc.oid = o.oid JOIN ins i ON i.relname = o.relname JOIN pg_class ic ON ic.oid = i.oid "
     "WHERE oc.relrowsecurity <> ic.relrowsecurity OR oc.relforcerowsecurity <> "
     "ic.relforcerowsecurity"},
    {"the out-tables' policies, on the in-tables",
     "SELECT 3, format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s;', p.policyname, $2, "
     "o.relname, p.permissive, p.cmd, (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' "
     "ELSE quote_ident(r) END, ', ') FROM unnest(p.roles) r), ' USING (' || p.qual || ')', ' "
     "WITH CHECK (' || p.with_check || ')') FROM pg_policies p JOIN outs o ON p.schemaname = $2 "
     "AND p.tablename = o.relname"},
};

size_t
shadowsql_around_count(void)
{
	return sizeof(around_parts) / sizeof(around_parts[0]);
}

const shadowsql_around *
shadowsql_around_part(size_t i)
{
	return i < shadowsql_around_count() ? &around_parts[i] : NULL;
}

/* The whole catalog read: outs and ins, then every part, ordered by phase. */
bool
shadowsql_around_sql(strbuf *sb)
{
	if (!strbuf_append_cstr(sb, "WITH outs AS (SELECT c.oid, c.relname FROM pg_class c JOIN "
	                            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $2 "
	                            "AND c.relname = ANY($1::text[])), ins AS (SELECT c.oid, "
	                            "c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
	                            "c.relnamespace WHERE n.nspname = $3 AND c.relname = "
	                            "ANY($1::text[]))\n"))
		return false;
	for (size_t i = 0; i < shadowsql_around_count(); i++)
		if ((i > 0 && !strbuf_append_cstr(sb, "\nUNION ALL\n")) ||
		    !strbuf_append_cstr(sb, around_parts[i].sql))
			return false;
	return strbuf_append_cstr(sb, "\nORDER BY 1");
}
