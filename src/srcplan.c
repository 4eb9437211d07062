/*
 * srcplan.c — the source side of an online migration, decided before
 * anything is created (see srcplan.h).
 *
 * Owns: the plan's tables. Never: logs (the caller reports), or changes the
 * source outside srcplan_set_identity and the publication functions.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "srcplan.h"
#include "strbuf.h"

/* Append name to the text[] literal being built in out (unquoted: for a query parameter). */
static bool
srcplan_array_add(strbuf *out, const char *name)
{
	bool ok =
	    strbuf_append_char(out, strbuf_len(out) == 0 ? '{' : ',') && strbuf_append_char(out, '"');

	for (const char *c = name; ok && *c; c++)
		ok = (*c == '"' || *c == '\\' ? strbuf_append_char(out, '\\') : true) &&
		     strbuf_append_char(out, *c);
	return ok && strbuf_append_char(out, '"');
}

/* Close the text[] literal in out ("{}" when nothing was added). */
static bool
srcplan_array_end(strbuf *out)
{
	return (strbuf_len(out) > 0 || strbuf_append_char(out, '{')) && strbuf_append_char(out, '}');
}

/*
 * The plan's tables from res, which it clears; a row per table: name,
 * keyless, owned, updates, deletes, covered. False when out of memory.
 */
static bool
srcplan_take_tables(srcplan *p, PGresult *res, char *errbuf, size_t errlen)
{
	bool ok;

	p->ntables = PQntuples(res);
	p->tables = calloc((size_t)(p->ntables ? p->ntables : 1), sizeof(srcplan_table));
	ok = p->tables != NULL;
	for (int i = 0; ok && i < p->ntables; i++)
	{
		srcplan_table *t = &p->tables[i];

		t->name = strdup(PQgetvalue(res, i, 0));
		ok = t->name != NULL;
		t->keyless = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		t->owned = strcmp(PQgetvalue(res, i, 2), "t") == 0;
		t->updates = atoll(PQgetvalue(res, i, 3));
		t->deletes = atoll(PQgetvalue(res, i, 4));
		t->changes = t->updates + t->deletes;
		t->covered = strcmp(PQgetvalue(res, i, 5), "t") == 0;
	}
	PQclear(res);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
	return ok;
}

/* The leaves in scope with what the plan needs to know of each. */
static bool
srcplan_read_tables(srcplan *p, PGconn *src, const char *scope_array, char *errbuf, size_t errlen)
{
	bool modern = PQserverVersion(src) >= 120000;
	strbuf sql;
	PGresult *res;
	const char *params[2] = {scope_array, p->publication};
	bool ok;

	strbuf_init(&sql);
	ok = strbuf_appendf(
	    &sql,
	    "WITH pub AS MATERIALIZED (SELECT pc.oid FROM pg_catalog.pg_publication_tables pt "
	    "JOIN pg_catalog.pg_namespace pn ON pn.nspname = pt.schemaname "
	    "JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.oid AND pc.relname = pt.tablename "
	    "WHERE pt.pubname = $2) "
	    "SELECT format('%%I.%%I', n.nspname, c.relname), %s, "
	    "pg_catalog.pg_has_role(c.relowner, 'USAGE'), "
	    "coalesce(st.n_tup_upd, 0), coalesce(st.n_tup_del, 0), "
	    "EXISTS (SELECT FROM pub WHERE pub.oid = c.oid OR pub.oid IN (%s)) "
	    "FROM (SELECT DISTINCT t.relid FROM unnest($1::text[]) s(name), %s) l "
	    "JOIN pg_catalog.pg_class c ON c.oid = l.relid "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	    "LEFT JOIN pg_catalog.pg_stat_user_tables st ON st.relid = c.oid "
	    "WHERE c.relkind = 'r' AND c.relpersistence = 'p' ORDER BY 1",
	    SRCPLAN_KEYLESS_SQL,
	    modern ? "SELECT a.relid FROM pg_catalog.pg_partition_ancestors(c.oid) a" : "c.oid",
	    /* pg_partition_tree lists nothing for a table that is not partitioned */
	    modern ? "LATERAL (SELECT s.name::regclass::oid AS relid UNION SELECT p.relid FROM "
	             "pg_catalog.pg_partition_tree(s.name::regclass) p) t"
	           : "LATERAL (SELECT s.name::regclass::oid AS relid) t");
	if (!ok)
	{
		strbuf_free(&sql);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	if (PQserverVersion(src) < 120000)
	{
		/* no MATERIALIZED before 12 */
		char *m = strstr(sql.data, " MATERIALIZED");

		if (m)
			memmove(m, m + 13, strlen(m + 13) + 1);
	}
	res = PQexecParams(src, strbuf_data(&sql), 2, NULL, params, NULL, NULL, 0);
	strbuf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not read the tables in scope on the source: %s",
		         PQerrorMessage(src));
		PQclear(res);
		return false;
	}
	return srcplan_take_tables(p, res, errbuf, errlen);
}

/* One value of a query with one parameter (NULL: none) into buf; false with the server's error. */
static bool
srcplan_value(PGconn *src, const char *sql, const char *param, char *buf, size_t size, char *errbuf,
              size_t errlen)
{
	const char *params[1] = {param};
	PGresult *res =
	    PQexecParams(src, sql, param ? 1 : 0, NULL, param ? params : NULL, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "\"%.120s\" failed on the source: %s", sql, PQerrorMessage(src));
	else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
		buf[0] = '\0';
	else
		snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/* Mark the tables --replica-identity-full names (each must be a migrated table). */
static bool
srcplan_choose_full(srcplan *p, PGconn *src, const char *const *ri_full, char *errbuf,
                    size_t errlen)
{
	for (int i = 0; ri_full && ri_full[i]; i++)
	{
		PGresult *res;
		const char *params[1] = {ri_full[i]};
		int matched = 0;

		if (strcmp(ri_full[i], SRCPLAN_ALL_KEYLESS) == 0)
		{
			for (int j = 0; j < p->ntables; j++)
				p->tables[j].set_full = p->tables[j].set_full || p->tables[j].keyless;
			continue;
		}
		/* a partitioned table stands for its partitions */
		res = PQexecParams(src,
		                   PQserverVersion(src) >= 120000
		                       ? "SELECT format('%I.%I', n.nspname, c.relname) FROM (SELECT "
		                         "pg_catalog.to_regclass($1)::oid AS relid UNION SELECT p.relid "
		                         "FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) p) "
		                         "t JOIN pg_catalog.pg_class c ON c.oid = t.relid "
		                         "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
		                       : "SELECT format('%I.%I', n.nspname, c.relname) FROM "
		                         "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
		                         "c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)",
		                   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			snprintf(errbuf, errlen, "--replica-identity-full %s: %s", ri_full[i],
			         PQerrorMessage(src));
			PQclear(res);
			return false;
		}
		for (int r = 0; r < PQntuples(res); r++)
			for (int j = 0; j < p->ntables; j++)
				if (strcmp(p->tables[j].name, PQgetvalue(res, r, 0)) == 0)
				{
					matched++;
					/* a table with a key keeps it: FULL would only cost WAL */
					p->tables[j].set_full = p->tables[j].set_full || p->tables[j].keyless;
				}
		PQclear(res);
		if (matched == 0)
		{
			snprintf(errbuf, errlen,
			         "--replica-identity-full %s: no such table among those migrated (use "
			         "schema.table, or all-keyless)",
			         ri_full[i]);
			return false;
		}
	}
	return true;
}

/* Which of the plan's tables a message or a publication names. */
typedef enum srcplan_pick
{
	SRCPLAN_UNCOVERED,      /* not in the operator's publication */
	SRCPLAN_WATCHED,        /* no replica identity and not set FULL: only inserts published */
	SRCPLAN_PUBLISHED,      /* all the others: every change published */
	SRCPLAN_NOT_OWNED,      /* the source role does not own it */
	SRCPLAN_FULL_NOT_OWNED, /* to be set FULL, but the source role does not own it */
} srcplan_pick;

/* Whether pick selects t. */
static bool
srcplan_picks(const srcplan_table *t, srcplan_pick pick)
{
	switch (pick)
	{
		case SRCPLAN_UNCOVERED:
			return !t->covered;
		case SRCPLAN_WATCHED:
			return t->keyless && !t->set_full;
		case SRCPLAN_PUBLISHED:
			return !(t->keyless && !t->set_full);
		case SRCPLAN_NOT_OWNED:
			return !t->owned;
		case SRCPLAN_FULL_NOT_OWNED:
			return t->set_full && !t->owned;
	}
	return false;
}

/* How many of the plan's tables pick selects. */
static int
srcplan_count(const srcplan *p, srcplan_pick pick)
{
	int n = 0;

	for (int i = 0; i < p->ntables; i++)
		n += srcplan_picks(&p->tables[i], pick);
	return n;
}

/* Append ", name" for each table where pick says so (at most 20, then "and N more"). */
static bool
srcplan_names(strbuf *sb, const srcplan *p, srcplan_pick pick, int *count)
{
	bool ok = true;

	*count = 0;
	for (int i = 0; ok && i < p->ntables; i++)
		if (srcplan_picks(&p->tables[i], pick) && ++*count <= 20)
			ok = strbuf_appendf(sb, "%s%s", *count > 1 ? ", " : "", p->tables[i].name);
	if (ok && *count > 20)
		ok = strbuf_appendf(sb, " and %d more", *count - 20);
	return ok;
}

/* Refuse with "<what>: <names><after>" (names of the tables pick selects). */
static bool
srcplan_refuse(const srcplan *p, srcplan_pick pick, const char *what, const char *after,
               char *errbuf, size_t errlen)
{
	strbuf sb;
	int n;

	strbuf_init(&sb);
	if (!srcplan_names(&sb, p, pick, &n))
		snprintf(errbuf, errlen, "out of memory");
	else
		snprintf(errbuf, errlen, "%s: %s%s", what, strbuf_data(&sb), after);
	strbuf_free(&sb);
	return false;
}

/* Run sql with the publication name as $1 into *res (to PQclear); false with the error. */
static bool
srcplan_query_pub(PGconn *src, const char *sql, const char *name, bool one_row, PGresult **res,
                  char *errbuf, size_t errlen)
{
	const char *params[1] = {name};

	*res = PQexecParams(src, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(*res) == PGRES_TUPLES_OK && (!one_row || PQntuples(*res) == 1))
		return true;
	snprintf(errbuf, errlen, "could not read publication \"%s\": %s", name, PQerrorMessage(src));
	PQclear(*res);
	*res = NULL;
	return false;
}

/* The operator's publication: everything the dump copies, every change, no filter. */
static bool
srcplan_check_publication(srcplan *p, PGconn *src, const char **check, char *errbuf, size_t errlen)
{
	int v = PQserverVersion(src);
	char sql[512], actions[128] = "";
	PGresult *res;
	static const char *const names[] = {"insert", "update", "delete", "truncate"};

	*check = "publication";
	snprintf(sql, sizeof(sql),
	         "SELECT pubinsert, pubupdate, pubdelete, %s FROM pg_catalog.pg_publication WHERE "
	         "pubname = $1",
	         v >= 110000 ? "pubtruncate" : "true");
	if (!srcplan_query_pub(src, sql, p->publication, true, &res, errbuf, errlen))
		return false;
	for (int i = 0; i < 4; i++)
		if (strcmp(PQgetvalue(res, 0, i), "t") != 0)
			snprintf(actions + strlen(actions), sizeof(actions) - strlen(actions), "%s%s",
			         actions[0] ? ", " : "", names[i]);
	PQclear(res);
	if (actions[0])
	{
		snprintf(errbuf, errlen,
		         "publication \"%s\" does not publish %s, so the target would miss those "
		         "changes: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, "
		         "truncate'), or leave out --publication/--no-auto-create-publication so that the "
		         "tool creates its own",
		         p->publication, actions, p->publication);
		return false;
	}
	if (v >= 150000)
	{
		/* a row filter or a column list copies only part of a table */
		if (!srcplan_query_pub(
		        src,
		        "SELECT format('%I.%I', n.nspname, c.relname), pr.prqual IS NOT NULL FROM "
		        "pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = "
		        "pr.prpubid JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid JOIN "
		        "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1 AND "
		        "(pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL) ORDER BY 1",
		        p->publication, false, &res, errbuf, errlen))
			return false;
		if (PQntuples(res) > 0)
		{
			bool filter = strcmp(PQgetvalue(res, 0, 1), "t") == 0;

			snprintf(errbuf, errlen,
			         "publication \"%s\" has a %s on %s%s, so the target would get only part of "
			         "it: drop the %s (ALTER PUBLICATION ... SET TABLE), or leave out "
			         "--publication/--no-auto-create-publication so that the tool creates its own",
			         p->publication, filter ? "row filter" : "column list", PQgetvalue(res, 0, 0),
			         PQntuples(res) > 1 ? " (and more tables)" : "",
			         filter ? "WHERE clause" : "column list");
			PQclear(res);
			return false;
		}
		PQclear(res);
	}
	if (srcplan_count(p, SRCPLAN_UNCOVERED) > 0)
	{
		char what[600];

		snprintf(what, sizeof(what),
		         "publication \"%s\" does not cover every table the dump copies, so their "
		         "later changes would be lost; add them (ALTER PUBLICATION %s ADD TABLE ...), "
		         "narrow the migration (--table, --exclude-table), or let the tool create its "
		         "own publication. Missing",
		         p->publication, p->publication);
		return srcplan_refuse(p, SRCPLAN_UNCOVERED, what, "", errbuf, errlen);
	}
	if (srcplan_count(p, SRCPLAN_WATCHED) > 0)
	{
		*check = "replica_identity";
		return srcplan_refuse(
		    p, SRCPLAN_WATCHED,
		    "publication publishes updates and deletes of tables without a replica identity "
		    "(the source refuses their UPDATE and DELETE)",
		    ". Give them a primary key or REPLICA IDENTITY FULL (--replica-identity-full "
		    "TABLE or all-keyless does that), or let the tool create its own publications",
		    errbuf, errlen);
	}
	return true;
}

void
srcplan_init(srcplan *p, bool stale_main, bool stale_keyless)
{
	memset(p, 0, sizeof(*p));
	p->stale_main = stale_main;
	p->stale_keyless = stale_keyless;
}

bool
srcplan_build(srcplan *p, PGconn *src, char *const *scope, int nscope, const char *publication,
              const char *const *ri_full, bool filtered, const char **check, char *errbuf,
              size_t errlen)
{
	strbuf arr;
	char buf[64];
	bool ok, superuser;

	*check = "source_tables";
	snprintf(p->publication, sizeof(p->publication), "%s", publication);
	if (!srcplan_value(src, "SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname = $1",
	                   publication, buf, sizeof(buf), errbuf, errlen))
		return false;
	p->pub_exists = strcmp(buf, "0") != 0 && !p->stale_main;
	if (!srcplan_value(src, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
	                   NULL, buf, sizeof(buf), errbuf, errlen))
		return false;
	superuser = strcmp(buf, "t") == 0;
	if (!srcplan_value(src, "SELECT current_setting('track_counts')::bool", NULL, buf, sizeof(buf),
	                   errbuf, errlen))
		return false;
	p->track_counts = strcmp(buf, "t") == 0;
	strbuf_init(&arr);
	ok = true;
	for (int i = 0; ok && i < nscope; i++)
		ok = srcplan_array_add(&arr, scope[i]);
	if (!ok || !srcplan_array_end(&arr))
	{
		strbuf_free(&arr);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	ok = srcplan_read_tables(p, src, strbuf_data(&arr), errbuf, errlen) &&
	     srcplan_choose_full(p, src, ri_full, errbuf, errlen);
	strbuf_free(&arr);
	if (!ok)
		return false;
	p->nkeyless = srcplan_count(p, SRCPLAN_WATCHED);
	if (filtered && nscope == 0)
	{
		snprintf(errbuf, errlen, "the filters match no table on the source");
		return false;
	}
	if (srcplan_count(p, SRCPLAN_FULL_NOT_OWNED) > 0)
	{
		*check = "replica_identity";
		return srcplan_refuse(p, SRCPLAN_FULL_NOT_OWNED,
		                      "--replica-identity-full needs the source role to own the "
		                      "tables (ALTER TABLE), and it does not own",
		                      ": connect as their owner or a superuser", errbuf, errlen);
	}
	if (p->pub_exists)
		return srcplan_check_publication(p, src, check, errbuf, errlen);

	*check = "publication";
	if (!srcplan_value(src, "SELECT has_database_privilege(current_database(), 'CREATE')", NULL,
	                   buf, sizeof(buf), errbuf, errlen))
		return false;
	if (strcmp(buf, "t") != 0)
	{
		snprintf(errbuf, errlen,
		         "the source role may not create the publication: GRANT CREATE ON DATABASE ... to "
		         "it, or create the publication yourself and pass --publication NAME "
		         "--no-auto-create-publication");
		return false;
	}
	p->all_tables = superuser && !filtered && p->nkeyless == 0;
	if (!p->all_tables)
	{
		/* FOR TABLE needs ownership of each table */
		if (srcplan_count(p, SRCPLAN_NOT_OWNED) > 0)
			return srcplan_refuse(
			    p, SRCPLAN_NOT_OWNED,
			    "the source role must own the tables it publishes (or be a superuser), and it "
			    "does not own",
			    ": connect as their owner or a superuser, or create the publication yourself "
			    "and pass --publication NAME --no-auto-create-publication",
			    errbuf, errlen);
	}
	if (p->nkeyless > 0)
	{
		/* NAMEDATALEN: 63 bytes */
		snprintf(p->keyless_publication, sizeof(p->keyless_publication), "%.*s_keyless",
		         (int)(strlen(publication) > 55 ? 55 : strlen(publication)), publication);
		if (!srcplan_value(src, "SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname = $1",
		                   p->keyless_publication, buf, sizeof(buf), errbuf, errlen))
			return false;
		if (strcmp(buf, "0") != 0 && !p->stale_keyless)
		{
			snprintf(errbuf, errlen,
			         "publication \"%s\" (for the tables without a replica identity) already "
			         "exists on the source: a previous run left it; drop it (DROP PUBLICATION "
			         "%s) or choose another --publication",
			         p->keyless_publication, p->keyless_publication);
			return false;
		}
	}
	return true;
}

bool
srcplan_resume(srcplan *p, PGconn *src, const char *publication, const char *keyless_pub,
               char *errbuf, size_t errlen)
{
	PGresult *res;

	memset(p, 0, sizeof(*p));
	p->pub_exists = true;
	p->track_counts = true;
	snprintf(p->publication, sizeof(p->publication), "%s", publication);
	snprintf(p->keyless_publication, sizeof(p->keyless_publication), "%s", keyless_pub);
	/* every table of the keyless publication is keyless, owned and covered */
	if (!srcplan_query_pub(src,
	                       "SELECT format('%I.%I', pt.schemaname, pt.tablename), true, true, "
	                       "coalesce(st.n_tup_upd, 0), coalesce(st.n_tup_del, 0), true FROM "
	                       "pg_catalog.pg_publication_tables pt LEFT JOIN "
	                       "pg_catalog.pg_stat_user_tables st ON st.schemaname = pt.schemaname "
	                       "AND st.relname = pt.tablename WHERE pt.pubname = $1 ORDER BY 1",
	                       keyless_pub, false, &res, errbuf, errlen) ||
	    !srcplan_take_tables(p, res, errbuf, errlen))
		return false;
	p->nkeyless = p->ntables;
	return true;
}

char *
srcplan_keyless_list(const srcplan *p, bool set_full)
{
	strbuf sb;
	bool ok = true;
	int n = 0;
	char *out;

	strbuf_init(&sb);
	for (int i = 0; ok && i < p->ntables; i++)
	{
		const srcplan_table *t = &p->tables[i];

		if (!t->keyless || t->set_full != set_full || ++n > 50)
			continue;
		ok = strbuf_appendf(&sb, "%s%s (%lld update%s, %lld delete%s so far)", n > 1 ? ", " : "",
		                    t->name, t->updates, t->updates == 1 ? "" : "s", t->deletes,
		                    t->deletes == 1 ? "" : "s");
	}
	if (ok && n > 50)
		ok = strbuf_appendf(&sb, " and %d more", n - 50);
	out = ok ? strdup(strbuf_data(&sb) ? strbuf_data(&sb) : "") : NULL;
	strbuf_free(&sb);
	return out;
}

static bool
srcplan_exec(PGconn *src, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(src, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		snprintf(errbuf, errlen, "\"%.200s\" failed on the source: %s", sql, PQerrorMessage(src));
	PQclear(res);
	return ok;
}

/* Run "<head><name quoted as an identifier><tail>". */
static bool
srcplan_exec_named(PGconn *src, const char *head, const char *name, const char *tail, char *errbuf,
                   size_t errlen)
{
	char *q = PQescapeIdentifier(src, name, strlen(name));
	char sql[300];

	if (q == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	snprintf(sql, sizeof(sql), "%s%s%s", head, q, tail);
	PQfreemem(q);
	return srcplan_exec(src, sql, errbuf, errlen);
}

bool
srcplan_set_identity(const srcplan *p, PGconn *src, char *errbuf, size_t errlen)
{
	bool ok = true;

	/*
	 * ALTER TABLE takes an ACCESS EXCLUSIVE lock: the application's queries on
	 * the table queue behind it while it waits, so it waits briefly, and again
	 */
	if (!srcplan_exec(src, "SET lock_timeout = '2s'", errbuf, errlen))
		return false;
	for (int i = 0; ok && i < p->ntables; i++)
	{
		char sql[512];

		if (!p->tables[i].set_full)
			continue;
		snprintf(sql, sizeof(sql), "ALTER TABLE %s REPLICA IDENTITY FULL", p->tables[i].name);
		for (int attempt = 0; attempt < 5; attempt++)
		{
			PGresult *res = PQexec(src, sql);
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			bool busy = state && strcmp(state, "55P03") == 0; /* lock_not_available */

			ok = PQresultStatus(res) == PGRES_COMMAND_OK;
			if (!ok)
				snprintf(errbuf, errlen, "%s failed on the source: %s%s", sql, PQerrorMessage(src),
				         busy ? "(the application holds the table: try again at a quieter "
				                "moment)"
				              : "");
			PQclear(res);
			if (ok || !busy)
				break;
			usleep(500 * 1000);
		}
	}
	PQclear(PQexec(src, "RESET lock_timeout"));
	return ok;
}

/* "CREATE PUBLICATION q FOR TABLE <tables pick selects>" (no FOR clause when none) + tail. */
static bool
srcplan_create_one(const srcplan *p, PGconn *src, const char *name, srcplan_pick pick,
                   const char *tail, char *errbuf, size_t errlen)
{
	char *q = PQescapeIdentifier(src, name, strlen(name));
	strbuf sql;
	bool ok;
	int n = 0;

	strbuf_init(&sql);
	ok = q != NULL && strbuf_appendf(&sql, "CREATE PUBLICATION %s", q);
	for (int i = 0; ok && i < p->ntables; i++)
		if (srcplan_picks(&p->tables[i], pick))
			ok = strbuf_appendf(&sql, "%s%s", n++ ? ", " : " FOR TABLE ", p->tables[i].name);
	ok = ok && strbuf_append_cstr(&sql, tail);
	PQfreemem(q);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
	else
		ok = srcplan_exec(src, strbuf_data(&sql), errbuf, errlen);
	strbuf_free(&sql);
	return ok;
}

bool
srcplan_create_publications(const srcplan *p, PGconn *src, bool *created_main,
                            bool *created_keyless, char *errbuf, size_t errlen)
{
	*created_main = *created_keyless = false;
	if (!p->pub_exists)
	{
		if (!(p->all_tables ? srcplan_exec_named(src, "CREATE PUBLICATION ", p->publication,
		                                         " FOR ALL TABLES", errbuf, errlen)
		                    : srcplan_create_one(p, src, p->publication, SRCPLAN_PUBLISHED, "",
		                                         errbuf, errlen)))
			return false;
		*created_main = true;
	}
	if (p->nkeyless > 0)
	{
		/* their updates and deletes are not published: the source never refuses them */
		if (!srcplan_create_one(p, src, p->keyless_publication, SRCPLAN_WATCHED,
		                        PQserverVersion(src) >= 110000
		                            ? " WITH (publish = 'insert, truncate')"
		                            : " WITH (publish = 'insert')",
		                        errbuf, errlen))
			return false;
		*created_keyless = true;
	}
	return true;
}

bool
srcplan_drop_publication(PGconn *src, const char *name, char *errbuf, size_t errlen)
{
	return srcplan_exec_named(src, "DROP PUBLICATION IF EXISTS ", name, "", errbuf, errlen);
}

int
srcplan_watch(const srcplan *p, PGconn *src, char *errbuf, size_t errlen)
{
	strbuf arr, names;
	int changed = 0;
	PGresult *res;
	const char *params[1];
	bool ok = true;

	if (p->nkeyless == 0)
		return 0;
	strbuf_init(&arr);
	for (int i = 0; ok && i < p->ntables; i++)
		if (srcplan_picks(&p->tables[i], SRCPLAN_WATCHED))
			ok = srcplan_array_add(&arr, p->tables[i].name);
	if (!ok || !srcplan_array_end(&arr))
	{
		strbuf_free(&arr);
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	params[0] = strbuf_data(&arr);
	res = PQexecParams(src,
	                   "SELECT format('%I.%I', schemaname, relname), n_tup_upd + n_tup_del FROM "
	                   "pg_catalog.pg_stat_user_tables WHERE format('%I.%I', schemaname, relname) "
	                   "= ANY ($1::text[])",
	                   1, NULL, params, NULL, NULL, 0);
	strbuf_free(&arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen,
		         "could not read the update and delete counters of the tables without a replica "
		         "identity: %s",
		         PQerrorMessage(src));
		PQclear(res);
		return -1;
	}
	strbuf_init(&names);
	for (int r = 0; r < PQntuples(res); r++)
		for (int i = 0; i < p->ntables; i++)
		{
			const srcplan_table *t = &p->tables[i];
			long long now = atoll(PQgetvalue(res, r, 1));

			if (!srcplan_picks(t, SRCPLAN_WATCHED) || strcmp(t->name, PQgetvalue(res, r, 0)) != 0 ||
			    now == t->changes)
				continue;
			if (changed++ < 10 &&
			    !strbuf_appendf(&names, "%s%s (%s)", changed > 1 ? ", " : "", t->name,
			                    now > t->changes ? "updated or deleted from" : "counters reset"))
				break;
		}
	PQclear(res);
	if (changed)
		snprintf(errbuf, errlen,
		         "UPDATE or DELETE on the source in a table without a replica identity: %s. Such "
		         "changes cannot be replicated, so the target would differ: nothing was cut over. "
		         "Start over with --replica-identity-full TABLE (or all-keyless), a primary key, "
		         "or --exclude-table for such tables, with --force-clean --drop-target-first",
		         strbuf_data(&names) ? strbuf_data(&names) : "");
	strbuf_free(&names);
	return changed ? 1 : 0;
}

/* Next comma-separated standby name of list at *pos into name (unquoted); false at the end. */
static bool
srcplan_next_name(const char *list, size_t *pos, char *name, size_t size)
{
	size_t i = *pos, n = 0;

	while (list[i] == ' ' || list[i] == '\t' || list[i] == ',')
		i++;
	if (list[i] == '\0')
		return false;
	if (list[i] == '"')
	{
		for (i++; list[i] && !(list[i] == '"' && list[i + 1] != '"'); i++)
		{
			if (list[i] == '"')
				i++; /* a doubled quote */
			if (n + 1 < size)
				name[n++] = list[i];
		}
		if (list[i] == '"')
			i++;
	}
	else
		for (; list[i] && list[i] != ',' && list[i] != ' ' && list[i] != '\t'; i++)
			if (n + 1 < size)
				name[n++] = list[i];
	name[n] = '\0';
	while (list[i] && list[i] != ',')
		i++;
	*pos = i;
	return true;
}

bool
srcplan_sync_standby_matches(const char *ssn, const char *appname)
{
	char list[1024], name[256];
	const char *open = strchr(ssn, '('), *close = strrchr(ssn, ')');
	size_t pos = 0;

	/* FIRST n (a, b), ANY n (a, b), n (a, b): the names are inside the parentheses */
	if (open && close && close > open)
		snprintf(list, sizeof(list), "%.*s", (int)(close - open - 1), open + 1);
	else
		snprintf(list, sizeof(list), "%s", ssn);
	while (srcplan_next_name(list, &pos, name, sizeof(name)))
		if (strcmp(name, "*") == 0 || strcasecmp(name, appname) == 0)
			return true;
	return false;
}

void
srcplan_free(srcplan *p)
{
	for (int i = 0; p->tables && i < p->ntables; i++)
		free(p->tables[i].name);
	free(p->tables);
	p->tables = NULL;
	p->ntables = 0;
}
