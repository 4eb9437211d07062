/*
 * guard.c — the target's triggers, foreign keys and identity columns held
 * back while the apply runs, and put back from a ledger (see guard.h).
 *
 * Each change is one target transaction: the ledger row, then the ALTER
 * TABLE, then COMMIT; so the ledger never lacks a change that was made, and
 * a change rolled back leaves no row. The undo works the same way from the
 * other side: the ALTER TABLE, the ledger row deleted (or marked re-added),
 * COMMIT. What the catalog already shows as done is not done twice.
 *
 * Owns: nothing past a call. Never: looks at a table it was not given.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "pgdbm_schema.h"

static const char guard_ledger_ddl[] = PGDBM_LEDGER_DDL;

/*
 * What the guard changes for the tables in $1 (quoted names; partitions of
 * partitioned ones too): enabled user triggers and foreign keys from or to
 * them when $2; always identity ALWAYS columns, and the triggers that fire
 * in replica mode too (ENABLE ALWAYS, ENABLE REPLICA). One row per change:
 * kind, rel, name, detail, validated.
 */
static const char guard_list_sql[] =
    "WITH named AS (SELECT to_regclass(x) AS oid FROM unnest($1::text[]) x), "
    "rels AS (SELECT oid FROM named WHERE oid IS NOT NULL UNION "
    "  SELECT t.relid FROM named, pg_catalog.pg_partition_tree(named.oid) t "
    "  WHERE named.oid IS NOT NULL) "
    "SELECT 'trigger', format('%I.%I', n.nspname, c.relname), t.tgname, t.tgenabled::text, false "
    "FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE ($2 OR t.tgenabled IN ('A', 'R')) AND NOT t.tgisinternal AND t.tgenabled <> 'D' "
    "AND t.tgrelid IN (SELECT oid FROM rels) "
    "UNION ALL "
    "SELECT 'foreign_key', format('%I.%I', n.nspname, c.relname), k.conname, "
    "regexp_replace(pg_catalog.pg_get_constraintdef(k.oid), ' NOT VALID$', ''), k.convalidated "
    "FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE $2 AND k.contype = 'f' AND k.conparentid = 0 AND (k.conrelid IN (SELECT oid FROM rels) "
    "OR k.confrelid IN (SELECT oid FROM rels)) "
    "UNION ALL "
    "SELECT 'identity', format('%I.%I', n.nspname, c.relname), a.attname, 'a', false "
    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE a.attidentity = 'a' AND NOT a.attisdropped AND a.attrelid IN (SELECT oid FROM rels) "
    "ORDER BY 1, 2, 3";

/* Append name as a quoted identifier ("a""b"). */
static bool
guard_quote(strbuf *sb, const char *name)
{
	bool ok = strbuf_append_char(sb, '"');

	for (const char *p = name; ok && *p; p++)
		ok = (*p == '"' ? strbuf_append_char(sb, '"') : true) && strbuf_append_char(sb, *p);
	return ok && strbuf_append_char(sb, '"');
}

bool
guard_array_literal(const char *const *items, int n, strbuf *out)
{
	bool ok = strbuf_append_char(out, '{');

	for (int i = 0; ok && i < n; i++)
	{
		ok = (i == 0 || strbuf_append_char(out, ',')) && strbuf_append_char(out, '"');
		for (const char *p = items[i]; ok && *p; p++)
			ok = (*p == '"' || *p == '\\' ? strbuf_append_char(out, '\\') : true) &&
			     strbuf_append_char(out, *p);
		ok = ok && strbuf_append_char(out, '"');
	}
	return ok && strbuf_append_char(out, '}');
}

bool
guard_sql(const guard_item *item, bool undo, bool not_valid, strbuf *sql)
{
	bool ok;

	if (strcmp(item->kind, "trigger") == 0)
	{
		const char *verb = "DISABLE";

		if (undo)
		{
			switch (item->detail[0])
			{
				case 'O':
					verb = "ENABLE";
					break;
				case 'A':
					verb = "ENABLE ALWAYS";
					break;
				case 'R':
					verb = "ENABLE REPLICA";
					break;
				default:
					return false;
			}
			if (item->detail[1] != '\0')
				return false;
		}
		/* ONLY: a partition's own (cloned) trigger is a row of its own */
		ok = strbuf_appendf(sql, "ALTER TABLE ONLY %s %s TRIGGER ", item->rel, verb) &&
		     guard_quote(sql, item->name);
	}
	else if (strcmp(item->kind, "foreign_key") == 0)
	{
		if (!undo)
			ok = strbuf_appendf(sql, "ALTER TABLE %s DROP CONSTRAINT ", item->rel) &&
			     guard_quote(sql, item->name);
		else
			ok = strbuf_appendf(sql, "ALTER TABLE %s ADD CONSTRAINT ", item->rel) &&
			     guard_quote(sql, item->name) &&
			     strbuf_appendf(sql, " %s%s", item->detail, not_valid ? " NOT VALID" : "");
	}
	else if (strcmp(item->kind, "identity") == 0)
		ok = strbuf_appendf(sql, "ALTER TABLE %s ALTER COLUMN ", item->rel) &&
		     guard_quote(sql, item->name) &&
		     strbuf_appendf(sql, " SET GENERATED %s", undo ? "ALWAYS" : "BY DEFAULT");
	else
		return false;
	return ok;
}

/* Run sql (no parameters unless n); false with the server's message in errbuf. */
static bool
guard_exec(PGconn *c, const char *sql, int n, const char *const *params, char *errbuf,
           size_t errlen)
{
	/* the simple protocol without parameters: the ledger's DDL is two statements */
	PGresult *res = n ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "%.160s%s: %s", sql, strlen(sql) > 160 ? "..." : "",
		         PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* Roll back the open transaction after a failure (errbuf already says why). */
static void
guard_rollback(PGconn *c)
{
	PQclear(PQexec(c, "ROLLBACK"));
}

/* One statement of a guard step: sql NULL is skipped, n parameters unless 0. */
typedef struct guard_stmt
{
	const char *sql;
	int n;
	const char *const *params;
} guard_stmt;

/*
 * One change with its ledger row, in a transaction of its own: BEGIN, first,
 * second, COMMIT. False with a message; the caller rolls back.
 */
static bool
guard_step(PGconn *tgt, guard_stmt first, guard_stmt second, char *errbuf, size_t errlen)
{
	return guard_exec(tgt, "BEGIN", 0, NULL, errbuf, errlen) &&
	       (first.sql == NULL ||
	        guard_exec(tgt, first.sql, first.n, first.params, errbuf, errlen)) &&
	       (second.sql == NULL ||
	        guard_exec(tgt, second.sql, second.n, second.params, errbuf, errlen)) &&
	       guard_exec(tgt, "COMMIT", 0, NULL, errbuf, errlen);
}

/* A change as the guard's list and its ledger give it: kind, rel, name, detail, validated. */
static guard_item
guard_item_of(const PGresult *res, int row)
{
	guard_item it = {.kind = PQgetvalue(res, row, 0),
	                 .rel = PQgetvalue(res, row, 1),
	                 .name = PQgetvalue(res, row, 2),
	                 .detail = PQgetvalue(res, row, 3),
	                 .validated = strcmp(PQgetvalue(res, row, 4), "t") == 0};

	return it;
}

bool
guard_can_replica(PGconn *conn, bool *can, char *errbuf, size_t errlen)
{
	PGresult *res;

	*can = false;
	if (!guard_exec(conn, "BEGIN", 0, NULL, errbuf, errlen))
		return false;
	res = PQexec(conn, "SET LOCAL session_replication_role TO replica");
	*can = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return guard_exec(conn, "ROLLBACK", 0, NULL, errbuf, errlen);
}

/* The text[] parameter of the tables in arr (to strbuf_free); false when out of memory. */
static bool
guard_tables_param(const char *const *tables, int ntables, strbuf *arr, char *errbuf, size_t errlen)
{
	strbuf_init(arr);
	if (guard_array_literal(tables, ntables, arr))
		return true;
	strbuf_free(arr);
	snprintf(errbuf, errlen, "out of memory");
	return false;
}

/* The guard's list for tables on conn (see guard_list_sql); *res to PQclear. */
static bool
guard_list(PGconn *conn, const char *const *tables, int ntables, bool full, PGresult **res,
           char *errbuf, size_t errlen)
{
	strbuf arr;
	const char *params[2];
	bool ok;

	*res = NULL;
	if (!guard_tables_param(tables, ntables, &arr, errbuf, errlen))
		return false;
	params[0] = strbuf_data(&arr);
	params[1] = full ? "true" : "false";
	*res = PQexecParams(conn, guard_list_sql, 2, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(*res) == PGRES_TUPLES_OK;
	if (!ok)
	{
		snprintf(errbuf, errlen,
		         "could not list the triggers, foreign keys and identity columns: %s",
		         PQresultErrorMessage(*res));
		PQclear(*res);
		*res = NULL;
	}
	strbuf_free(&arr);
	return ok;
}

/* The count of kind's changes in c. */
static int *
guard_counter(guard_counts *c, const char *kind)
{
	if (strcmp(kind, "trigger") == 0)
		return &c->triggers;
	if (strcmp(kind, "foreign_key") == 0)
		return &c->foreign_keys;
	return &c->identities;
}

bool
guard_plan(PGconn *conn, const char *const *tables, int ntables, bool full, guard_counts *plan,
           char *errbuf, size_t errlen)
{
	PGresult *res;

	memset(plan, 0, sizeof(*plan));
	if (!guard_list(conn, tables, ntables, full, &res, errbuf, errlen))
		return false;
	for (int i = 0; i < PQntuples(res); i++)
		(*guard_counter(plan, PQgetvalue(res, i, 0)))++;
	PQclear(res);
	return true;
}

bool
guard_apply(PGconn *tgt, const char *const *tables, int ntables, bool full, guard_counts *done,
            char *errbuf, size_t errlen)
{
	PGresult *res;
	strbuf sql;
	bool ok = true;

	memset(done, 0, sizeof(*done));
	if (!guard_exec(tgt, guard_ledger_ddl, 0, NULL, errbuf, errlen))
		return false;
	if (!guard_list(tgt, tables, ntables, full, &res, errbuf, errlen))
		return false;
	strbuf_init(&sql);
	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		guard_item it = guard_item_of(res, i);
		const char *params[5] = {it.kind, it.rel, it.name, it.detail, it.validated ? "t" : "f"};
		const guard_stmt record = {"INSERT INTO " PGDBM_LEDGER " (kind, rel, name, detail, "
		                           "validated) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, "
		                           "rel, name) DO UPDATE SET readded = false",
		                           5, params};

		strbuf_reset(&sql);
		if (!guard_sql(&it, false, false, &sql))
		{
			snprintf(errbuf, errlen, "out of memory");
			ok = false;
			break;
		}
		/* the record first, in the change's own transaction */
		ok = guard_step(tgt, record, (guard_stmt){strbuf_data(&sql), 0, NULL}, errbuf, errlen);
		if (!ok)
			guard_rollback(tgt);
		else
			(*guard_counter(done, it.kind))++;
	}
	strbuf_free(&sql);
	PQclear(res);
	return ok;
}

/* Does the ledger exist on tgt? */
static bool
guard_has_ledger(PGconn *tgt, bool *has, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(tgt, "SELECT to_regclass('" PGDBM_LEDGER "') IS NOT NULL");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		*has = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	else
		snprintf(errbuf, errlen, "could not look for the guard's ledger on the target: %s",
		         PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/*
 * Is the change of item still in force on tgt? *gone when its table,
 * trigger, constraint or column no longer exists (nothing to undo).
 */
static bool
guard_in_force(PGconn *tgt, const guard_item *it, bool *in_force, bool *partitioned, char *errbuf,
               size_t errlen)
{
	const char *params[2] = {it->rel, it->name};
	const char *sql;
	PGresult *res;
	bool ok;

	if (strcmp(it->kind, "trigger") == 0)
		sql = "SELECT t.tgenabled = 'D', false FROM pg_catalog.pg_trigger t "
		      "WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2";
	else if (strcmp(it->kind, "identity") == 0)
		sql = "SELECT a.attidentity = 'd', false FROM pg_catalog.pg_attribute a "
		      "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped";
	else
		/* dropped: in force while no constraint of that name is on the table */
		sql = "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = "
		      "c.oid AND k.conname = $2), c.relkind = 'p' FROM pg_catalog.pg_class c "
		      "WHERE c.oid = to_regclass($1)";
	res = PQexecParams(tgt, sql, 2, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(errbuf, errlen, "could not look up %s on the target: %s", it->rel,
		         PQresultErrorMessage(res));
	*in_force = ok && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*partitioned = ok && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	return ok;
}

/*
 * The ledger rows sql selects into *res (NULL when there is no ledger: the
 * guard never ran or was fully undone); false with a message on error.
 */
static bool
guard_read_ledger(PGconn *tgt, const char *sql, PGresult **res, char *errbuf, size_t errlen)
{
	bool has;

	*res = NULL;
	if (!guard_has_ledger(tgt, &has, errbuf, errlen))
		return false;
	if (!has)
		return true;
	*res = PQexec(tgt, sql);
	if (PQresultStatus(*res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not read the guard's ledger on the target: %s",
		         PQresultErrorMessage(*res));
		PQclear(*res);
		*res = NULL;
		return false;
	}
	return true;
}

bool
guard_pending(PGconn *tgt, int *rows, char *errbuf, size_t errlen)
{
	PGresult *res;

	*rows = 0;
	if (!guard_read_ledger(tgt, "SELECT count(*) FROM " PGDBM_LEDGER, &res, errbuf, errlen))
		return false;
	if (res != NULL)
		*rows = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return true;
}

/* What one ledger row asks for: a change (or none), the ledger statement, what to count. */
typedef struct guard_todo
{
	strbuf *sql;           /* borrowed: the change, built by the row function */
	bool change;           /* sql holds a change to run; else only the ledger is updated */
	guard_stmt ledger;     /* the ledger row deleted or marked, after the change */
	const char *params[3]; /* the ledger statement's parameters, borrowed from the rows */
	int *counter;          /* borrowed from the caller's counts: one more on success, or NULL */
} guard_todo;

/* Decide what row of the ledger rows res asks for; false with a message. */
typedef bool (*guard_row_fn)(PGconn *tgt, const PGresult *res, int row, guard_counts *done,
                             guard_todo *todo, char *errbuf, size_t errlen);

/*
 * Walk the ledger rows select reads, each as one guard_step (its change,
 * then its ledger row); stop at the first failure, rolled back.
 */
static bool
guard_walk_ledger(PGconn *tgt, const char *select, guard_row_fn row_fn, guard_counts *done,
                  char *errbuf, size_t errlen)
{
	PGresult *res;
	strbuf sql;
	bool ok = true;

	memset(done, 0, sizeof(*done));
	if (!guard_read_ledger(tgt, select, &res, errbuf, errlen))
		return false;
	if (res == NULL)
		return true;
	strbuf_init(&sql);
	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		guard_todo todo = {.sql = &sql};

		strbuf_reset(&sql);
		todo.ledger.params = todo.params;
		ok = row_fn(tgt, res, i, done, &todo, errbuf, errlen) &&
		     guard_step(tgt, (guard_stmt){todo.change ? strbuf_data(&sql) : NULL, 0, NULL},
		                todo.ledger, errbuf, errlen);
		if (!ok)
			guard_rollback(tgt);
		else if (todo.counter != NULL)
			(*todo.counter)++;
	}
	strbuf_free(&sql);
	PQclear(res);
	return ok;
}

/* Undo one change still in force; a foreign key stays in the ledger until it is validated. */
static bool
guard_undo_row(PGconn *tgt, const PGresult *res, int row, guard_counts *done, guard_todo *todo,
               char *errbuf, size_t errlen)
{
	guard_item it = guard_item_of(res, row);
	bool in_force, partitioned;

	if (!guard_in_force(tgt, &it, &in_force, &partitioned, errbuf, errlen))
		return false;
	/* a partitioned table takes no NOT VALID foreign key: validated at once */
	if (in_force && !guard_sql(&it, true, !partitioned, todo->sql))
	{
		snprintf(errbuf, errlen, "the guard's ledger holds an unknown change: %s %s %s=%s", it.kind,
		         it.rel, it.name, it.detail);
		return false;
	}
	todo->change = in_force;
	todo->ledger.sql = strcmp(it.kind, "foreign_key") == 0 && !partitioned
	                       ? "UPDATE " PGDBM_LEDGER " SET readded = true "
	                         "WHERE kind = $1 AND rel = $2 AND name = $3"
	                       : "DELETE FROM " PGDBM_LEDGER " "
	                         "WHERE kind = $1 AND rel = $2 AND name = $3";
	todo->ledger.n = 3;
	todo->params[0] = it.kind;
	todo->params[1] = it.rel;
	todo->params[2] = it.name;
	todo->counter = in_force ? guard_counter(done, it.kind) : NULL;
	return true;
}

bool
guard_undo(PGconn *tgt, guard_counts *done, char *errbuf, size_t errlen)
{
	return guard_walk_ledger(tgt,
	                         "SELECT kind, rel, name, detail, validated FROM " PGDBM_LEDGER " "
	                         "WHERE NOT readded ORDER BY kind DESC, rel, name",
	                         guard_undo_row, done, errbuf, errlen);
}

/* Validate one re-added foreign key (unless already valid or gone), then forget it. */
static bool
guard_validate_row(PGconn *tgt, const PGresult *res, int row, guard_counts *done, guard_todo *todo,
                   char *errbuf, size_t errlen)
{
	(void)tgt;
	todo->params[0] = PQgetvalue(res, row, 0);
	todo->params[1] = PQgetvalue(res, row, 1);
	todo->change = strcmp(PQgetvalue(res, row, 2), "t") == 0;
	if (!strbuf_appendf(todo->sql, "ALTER TABLE %s VALIDATE CONSTRAINT ", todo->params[0]) ||
	    !guard_quote(todo->sql, todo->params[1]))
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	todo->ledger.sql = "DELETE FROM " PGDBM_LEDGER " WHERE kind = 'foreign_key' "
	                   "AND rel = $1 AND name = $2";
	todo->ledger.n = 2;
	todo->counter = todo->change ? &done->validated : NULL;
	return true;
}

bool
guard_validate(PGconn *tgt, guard_counts *done, char *errbuf, size_t errlen)
{
	/* only what the undo re-added: whatever is not re-added yet waits for guard_undo */
	return guard_walk_ledger(tgt,
	                         "SELECT l.rel, l.name, l.validated AND k.oid IS NOT NULL AND NOT "
	                         "k.convalidated FROM " PGDBM_LEDGER " l LEFT JOIN "
	                         "pg_catalog.pg_constraint k ON k.conrelid = to_regclass(l.rel) AND "
	                         "k.conname = l.name WHERE l.kind = 'foreign_key' AND l.readded "
	                         "ORDER BY 1, 2",
	                         guard_validate_row, done, errbuf, errlen);
}

/* The distinct owners of what pg_dump writes for the tables in $1 (see guard.h). */
static const char guard_owners_sql[] =
    "WITH rels AS (SELECT to_regclass(x) AS oid FROM unnest($1::text[]) x), "
    "nsp AS (SELECT DISTINCT c.relnamespace AS oid FROM pg_catalog.pg_class c "
    "  WHERE c.oid IN (SELECT oid FROM rels)), "
    "owners AS ("
    " SELECT c.relowner AS o FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT oid FROM rels) "
    " UNION SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.oid IN (SELECT oid FROM nsp) "
    " UNION SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace IN "
    "  (SELECT oid FROM nsp) AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE "
    "  d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') "
    " UNION SELECT t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace IN "
    "  (SELECT oid FROM nsp) AND t.typtype IN ('c', 'd', 'e', 'r', 'm') AND (t.typrelid = 0 OR "
    "  (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c') "
    "  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE "
    "  d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')) "
    "SELECT DISTINCT r.rolname FROM owners JOIN pg_catalog.pg_roles r ON r.oid = owners.o "
    "ORDER BY 1";

bool
guard_foreign_owners(PGconn *src, PGconn *tgt, const char *const *tables, int ntables,
                     bool use_privileges, strbuf *names, int *count, char *errbuf, size_t errlen)
{
	PGresult *res = NULL, *mine = NULL;
	strbuf arr, owners;
	const char *params[2];
	bool ok = false;

	*count = 0;
	strbuf_init(&arr);
	strbuf_init(&owners);
	mine = PQexec(tgt, "SELECT rolsuper, current_user FROM pg_catalog.pg_roles "
	                   "WHERE rolname = current_user");
	if (PQresultStatus(mine) != PGRES_TUPLES_OK || PQntuples(mine) != 1)
	{
		snprintf(errbuf, errlen, "could not read the target role: %s", PQresultErrorMessage(mine));
		goto done;
	}
	if (strcmp(PQgetvalue(mine, 0, 0), "t") == 0)
	{
		ok = true;
		goto done;
	}
	if (!guard_array_literal(tables, ntables, &arr))
	{
		snprintf(errbuf, errlen, "out of memory");
		goto done;
	}
	params[0] = strbuf_data(&arr);
	res = PQexecParams(src, guard_owners_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not list the owners of the source's objects: %s",
		         PQresultErrorMessage(res));
		goto done;
	}
	{
		const char **list = calloc((size_t)PQntuples(res) + 1, sizeof(char *));

		if (list == NULL)
		{
			snprintf(errbuf, errlen, "out of memory");
			goto done;
		}
		for (int i = 0; i < PQntuples(res); i++)
			list[i] = PQgetvalue(res, i, 0);
		ok = guard_array_literal(list, PQntuples(res), &owners);
		free(list);
		if (!ok)
		{
			snprintf(errbuf, errlen, "out of memory");
			goto done;
		}
		ok = false;
	}
	PQclear(res);
	params[0] = strbuf_data(&owners);
	params[1] = use_privileges ? "USAGE" : "MEMBER";
	res = PQexecParams(tgt,
	                   "SELECT o, r.oid IS NULL FROM unnest($1::text[]) o LEFT JOIN "
	                   "pg_catalog.pg_roles r ON r.rolname = o WHERE r.oid IS NULL OR NOT "
	                   "pg_catalog.pg_has_role(current_user, r.oid, $2) ORDER BY 1",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not look up the owners on the target: %s",
		         PQresultErrorMessage(res));
		goto done;
	}
	ok = true;
	for (int i = 0; ok && i < PQntuples(res); i++)
		ok = strbuf_appendf(names, "%s%s (%s)", i ? ", " : "", PQgetvalue(res, i, 0),
		                    strcmp(PQgetvalue(res, i, 1), "t") == 0 ? "missing on the target"
		                    : use_privileges ? "not a member that inherits its privileges"
		                                     : "not a member");
	*count = PQntuples(res);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
done:
	PQclear(res);
	PQclear(mine);
	strbuf_free(&arr);
	strbuf_free(&owners);
	return ok;
}

bool
guard_unowned_tables(PGconn *tgt, const char *const *tables, int ntables, strbuf *names, int *count,
                     char *errbuf, size_t errlen)
{
	strbuf arr;
	const char *params[1];
	PGresult *res;
	bool ok;

	*count = 0;
	if (!guard_tables_param(tables, ntables, &arr, errbuf, errlen))
		return false;
	params[0] = strbuf_data(&arr);
	res = PQexecParams(tgt,
	                   "SELECT DISTINCT pg_catalog.pg_get_userbyid(c.relowner) FROM "
	                   "unnest($1::text[]) x JOIN pg_catalog.pg_class c ON c.oid = to_regclass(x) "
	                   "WHERE NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = "
	                   "current_user) AND NOT pg_catalog.pg_has_role(current_user, c.relowner, "
	                   "'USAGE') ORDER BY 1",
	                   1, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(errbuf, errlen, "could not look up the owners of the target's tables: %s",
		         PQresultErrorMessage(res));
	for (int i = 0; ok && i < PQntuples(res); i++)
		ok = strbuf_appendf(names, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
	if (ok)
		*count = PQntuples(res);
	else if (PQresultStatus(res) == PGRES_TUPLES_OK)
		snprintf(errbuf, errlen, "out of memory");
	PQclear(res);
	strbuf_free(&arr);
	return ok;
}
