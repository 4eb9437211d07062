/*
 * apply_map.c — the target's description of each published relation
 * (apply_rel, read from the target's catalog at first use) and its cache of
 * prepared statements, one per (operation, rows, column set).
 *
 * Owns: each relation's apply_rel (relcache_entry.user, freed by
 * apply_rel_free) and its statements. Never: writes statement text itself
 * (apply_sql.c does), or sends a change.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"
#include "guard.h"

void
apply_rel_free(relcache_entry *entry)
{
	apply_rel *ar = entry->user;

	if (ar == NULL)
		return;
	for (apply_stmt *s = ar->stmts, *next; s; s = next)
	{
		next = s->next;
		free(s->mask);
		free(s);
	}
	for (uint16_t i = 0; ar->qcols && i < ar->ncols; i++)
		free(ar->qcols[i]);
	for (uint16_t i = 0; ar->qtypes && i < ar->ncols; i++)
		free(ar->qtypes[i]);
	free(ar->qcols);
	free(ar->qtypes);
	free(ar->types);
	free(ar->text_eq);
	free(ar->qname);
	free(ar);
	entry->user = NULL;
}

/* A quoted identifier, malloc'd. */
static char *
apply_quote(applier *a, const char *name)
{
	char *q = PQescapeIdentifier(a->conn, name, strlen(name));
	char *copy;

	if (q == NULL)
		return NULL;
	copy = strdup(q);
	PQfreemem(q);
	return copy;
}

/*
 * The target's columns: name, type (as text for casts, and its OID to type
 * every parameter: the source's OIDs of user types mean nothing here),
 * whether it has an '=' operator, and whether it is GENERATED ALWAYS AS
 * IDENTITY. A table with no columns gives one row with a NULL name.
 */
static const char map_sql[] =
    "SELECT c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
    "  NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator o "
    "              WHERE o.oprname = '=' AND o.oprleft = b.t AND o.oprright = b.t), "
    "  a.atttypid, a.attidentity = 'a', "
    /* a unique or exclusion index not on key columns alone: see apply_rel.order_updates */
    "  EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid "
    "    AND (i.indisunique OR i.indisexclusion) AND (i.indexprs IS NOT NULL "
    "    OR EXISTS (SELECT FROM pg_catalog.pg_attribute k WHERE k.attrelid = c.oid "
    "      AND k.attnum = ANY (i.indkey) AND k.attname <> ALL ($3::text[])))) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a "
    "  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid "
    "LEFT JOIN LATERAL (SELECT CASE WHEN ty.typcategory = 'A' AND ty.typelem <> 0 THEN ty.typelem "
    "  WHEN ty.typbasetype <> 0 THEN ty.typbasetype ELSE ty.oid END AS t) b ON true "
    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

/* Look the relation up on the target (once per Relation message). */
apply_rel *
apply_map(applier *a, relcache_entry *e)
{
	/* the schema the change goes to: the source's, or the one apply_opts maps every relation to */
	const char *nspname = a->opts.target_schema ? a->opts.target_schema : e->nspname;
	const char *params[3] = {nspname, e->relname, NULL};
	const char **keys;
	PGresult *res = NULL;
	apply_rel *ar;
	char msg[1024];
	strbuf keylist = {0};
	int nkeys = 0;
	bool ok;

	if (e->user)
		return e->user;
	if (!apply_send_pending(a) || !apply_pipe_leave(a))
		return NULL;
	/* the key columns' names, as a text[] literal */
	keys = calloc(e->ncols ? e->ncols : 1, sizeof(*keys));
	if (keys == NULL)
	{
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	for (uint16_t i = 0; i < e->ncols; i++)
		if (e->cols[i].key)
			keys[nkeys++] = e->cols[i].name;
	ok = guard_array_literal(keys, nkeys, &keylist);
	free(keys);
	if (!ok)
	{
		strbuf_free(&keylist);
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	params[2] = strbuf_data(&keylist);
	ok = apply_pipe_exec(a, map_sql, 3, params, &res);
	strbuf_free(&keylist);
	if (!ok)
		return NULL;
	ar = calloc(1, sizeof(*ar));
	if (ar == NULL || (e->ncols && ((ar->qcols = calloc(e->ncols, sizeof(char *))) == NULL ||
	                                (ar->qtypes = calloc(e->ncols, sizeof(char *))) == NULL ||
	                                (ar->types = calloc(e->ncols, sizeof(Oid))) == NULL ||
	                                (ar->text_eq = calloc(e->ncols, sizeof(bool))) == NULL)))
	{
		e->user = ar;
		apply_rel_free(e);
		PQclear(res);
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	e->user = ar; /* freed with the entry from here on */
	ar->ncols = e->ncols;
	ar->relid = e->relid;
	ar->touch = -1;
	if (PQntuples(res) == 0)
	{
		snprintf(msg, sizeof(msg),
		         "table %s.%s is published on the source but does not exist on the target: "
		         "create it there (a schema restore does), or remove it from the publication",
		         nspname, e->relname);
		PQclear(res);
		apply_fail(a, msg, NULL);
		return NULL;
	}
	ar->relkind = PQgetvalue(res, 0, 0)[0];
	ar->order_updates = PQgetvalue(res, 0, 6)[0] == 't';
	for (uint16_t i = 0; i < e->ncols; i++)
	{
		int row = -1;

		for (int t = 0; t < PQntuples(res); t++)
			if (!PQgetisnull(res, t, 1) && strcmp(PQgetvalue(res, t, 1), e->cols[i].name) == 0)
				row = t;
		if (row < 0)
		{
			/* usually a DDL change on the source: name the statement that fixes it */
			char oid[16], typmod[16];
			const char *tparams[2] = {oid, typmod};
			PGresult *tr;
			char *qt = apply_quote(a, e->nspname), *qr = apply_quote(a, e->relname),
			     *qc = apply_quote(a, e->cols[i].name);

			snprintf(oid, sizeof(oid), "%u", e->cols[i].type_oid);
			snprintf(typmod, sizeof(typmod), "%d", (int)e->cols[i].typmod);
			tr = PQexecParams(a->conn, "SELECT pg_catalog.format_type($1::oid, $2::int)", 2, NULL,
			                  tparams, NULL, NULL, 0);
			snprintf(msg, sizeof(msg),
			         "column \"%s\" of table %s.%s is published on the source but missing on the "
			         "target (a column added on the source during the migration?): add it on the "
			         "target (ALTER TABLE %s.%s ADD COLUMN %s %s), then run again with --resume",
			         e->cols[i].name, e->nspname, e->relname, qt ? qt : "?", qr ? qr : "?",
			         qc ? qc : "?",
			         PQresultStatus(tr) == PGRES_TUPLES_OK && PQntuples(tr) == 1 &&
			                 !PQgetisnull(tr, 0, 0)
			             ? PQgetvalue(tr, 0, 0)
			             : "<its type on the source>");
			PQclear(tr);
			free(qt);
			free(qr);
			free(qc);
			PQclear(res);
			apply_fail(a, msg, NULL);
			return NULL;
		}
		ar->text_eq[i] = PQgetvalue(res, row, 3)[0] == 't';
		ar->types[i] = (Oid)strtoul(PQgetvalue(res, row, 4), NULL, 10);
		if (ar->touch < 0 && PQgetvalue(res, row, 5)[0] != 't')
			ar->touch = i;
		ar->qcols[i] = apply_quote(a, e->cols[i].name);
		ar->qtypes[i] = strdup(PQgetvalue(res, row, 2)); /* format_type quotes as needed */
		if (ar->qcols[i] == NULL || ar->qtypes[i] == NULL)
		{
			PQclear(res);
			apply_fail(a, "out of memory", NULL);
			return NULL;
		}
	}
	PQclear(res);
	{
		char *nsp = apply_quote(a, nspname), *rel = apply_quote(a, e->relname);

		if (nsp && rel && (ar->qname = malloc(strlen(nsp) + strlen(rel) + 2)) != NULL)
			sprintf(ar->qname, "%s.%s", nsp, rel);
		free(nsp);
		free(rel);
		if (ar->qname == NULL)
		{
			apply_fail(a, "out of memory", NULL);
			return NULL;
		}
	}
	if (!apply_pipe_enter(a))
		return NULL;
	return ar;
}

/* -------------------------------------------------------------- statements */

/* Find or prepare a statement; the SQL is built by the caller into a->sql. */
static apply_stmt *
apply_find_stmt(apply_rel *ar, char kind, int rows, const uint8_t *mask, uint16_t ncols)
{
	for (apply_stmt *s = ar->stmts; s; s = s->next)
		if (s->kind == kind && s->rows == rows &&
		    (mask == NULL || ncols == 0 || memcmp(s->mask, mask, ncols) == 0))
			return s;
	return NULL;
}

/* The target type of each of a statement's parameters into a->ptypes (see apply_sql_param_types). */
static bool
apply_param_types(applier *a, const apply_rel *ar, char kind, int rows, const uint8_t *mask,
                  int nparams)
{
	size_t n;

	if ((size_t)nparams > a->ptypes_cap)
	{
		free(a->ptypes);
		a->ptypes = malloc((size_t)nparams * sizeof(*a->ptypes));
		a->ptypes_cap = a->ptypes ? (size_t)nparams : 0;
		if (a->ptypes == NULL)
			return apply_fail(a, "out of memory", NULL);
	}
	n = apply_sql_param_types(ar, kind, rows, mask, a->ptypes, (size_t)nparams);
	if (n > (size_t)nparams)
		return apply_fail(a, "internal error: more parameters than numbered", NULL);
	return n == (size_t)nparams
	           ? true
	           : apply_fail(a, "internal error: fewer parameters than numbered", NULL);
}

/* Prepare a relation's statement with typed parameters; its text kept for an error. */
static bool
apply_send_prepare(applier *a, const apply_rel *ar, const char *name, const char *sql, int nparams,
                   const Oid *types)
{
	apply_pending d;

	apply_describe(a, &d, AP_PREPARE, NULL, 0, NULL);
	d.relid = ar->relid;
	d.stmt = strndup(sql, 300); /* only a message is lost without it */
	return apply_pipe_send_prepare(a, &d, name, sql, nparams, types);
}

/* Prepare the statement built into a->sql and add it to ar's cache. */
static apply_stmt *
apply_add_stmt(applier *a, apply_rel *ar, char kind, int rows, const uint8_t *mask, uint16_t ncols,
               int nparams)
{
	apply_stmt *s;

	if (!apply_param_types(a, ar, kind, rows, mask, nparams))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (mask && ncols && (s->mask = malloc(ncols)) == NULL))
	{
		free(s);
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	if (mask && ncols)
		memcpy(s->mask, mask, ncols);
	s->kind = kind;
	s->rows = rows;
	snprintf(s->name, sizeof(s->name), "pgdbm_%c%" PRIu64, kind, ++a->stmt_seq);
	if (!apply_send_prepare(a, ar, s->name, strbuf_data(&a->sql), nparams, a->ptypes))
	{
		free(s->mask);
		free(s);
		return NULL;
	}
	s->next = ar->stmts;
	ar->stmts = s;
	return s;
}

/* The cached or newly prepared multi-row INSERT of rows rows. */
apply_stmt *
apply_insert_stmt(applier *a, apply_rel *ar, int rows)
{
	apply_stmt *s = apply_find_stmt(ar, 'I', rows, NULL, 0);
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!apply_sql_insert(&a->sql, ar, rows, &n))
		return NULL;
	return apply_add_stmt(a, ar, 'I', rows, NULL, 0, n);
}

/* The cached or newly prepared single-row UPDATE ('U') or DELETE ('D') for mask. */
apply_stmt *
apply_row_stmt(applier *a, const relcache_entry *e, apply_rel *ar, char kind, const uint8_t *mask)
{
	apply_stmt *s = apply_find_stmt(ar, kind, 0, mask, ar->ncols);
	bool full = e->replident == PGO_REPLIDENT_FULL;
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!(kind == 'U' ? apply_sql_update(&a->sql, ar, full, mask, &n)
	                  : apply_sql_delete(&a->sql, ar, full, mask, &n)))
		return NULL;
	return apply_add_stmt(a, ar, kind, 0, mask, ar->ncols, n);
}

/* The cached or newly prepared UPDATE/DELETE of rows rows by distinct keys. */
apply_stmt *
apply_multi_stmt(applier *a, apply_rel *ar, char kind, const uint8_t *mask, int rows)
{
	apply_stmt *s = apply_find_stmt(ar, kind, rows, mask, ar->ncols);
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!apply_sql_multi(&a->sql, ar, kind, mask, rows, &n))
		return NULL;
	return apply_add_stmt(a, ar, kind, rows, mask, ar->ncols, n);
}

/* ------------------------------------------------------------------ values */

/* NUL-terminate a text value in place and return it (NULL for SQL NULL). */
