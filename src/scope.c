/*
 * scope.c — the tables a run covers (see scope.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scope.h"
#include "strbuf.h"
#include "pgdbm_schema.h"

/* A text[] literal of list (NULL-terminated), quoted for conn; PQfreemem it. */
static char *
scope_array(PGconn *conn, const char *const *list)
{
	strbuf sb;
	char *lit = NULL;
	bool ok;

	strbuf_init(&sb);
	ok = strbuf_append_char(&sb, '{');
	for (int i = 0; ok && list && list[i]; i++)
	{
		ok = (i == 0 || strbuf_append_char(&sb, ',')) && strbuf_append_char(&sb, '"');
		for (const char *p = list[i]; ok && *p; p++)
			ok = (*p == '"' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
			     strbuf_append_char(&sb, *p);
		ok = ok && strbuf_append_char(&sb, '"');
	}
	ok = ok && strbuf_append_char(&sb, '}');
	if (ok)
		lit = PQescapeLiteral(conn, strbuf_data(&sb), strbuf_len(&sb));
	strbuf_free(&sb);
	return lit;
}

char *
scope_schema_pattern(const char *name)
{
	size_t len = 2;
	char *out, *q;

	for (const char *p = name; *p; p++)
		len += *p == '"' ? 2 : 1;
	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	q = out;
	*q++ = '"';
	for (const char *p = name; *p; p++)
	{
		if (*p == '"')
			*q++ = '"';
		*q++ = *p;
	}
	*q++ = '"';
	*q = '\0';
	return out;
}

bool
scope_filtered(const scope_filters *f)
{
	return (f->schemas && f->schemas[0]) || (f->tables && f->tables[0]) ||
	       (f->exclude_schemas && f->exclude_schemas[0]) ||
	       (f->exclude_tables && f->exclude_tables[0]);
}

bool
scope_predicate(PGconn *conn, const scope_filters *f, const char *nsp, const char *rel, strbuf *out)
{
	char *s = scope_array(conn, f->schemas), *t = scope_array(conn, f->tables);
	char *xs = scope_array(conn, f->exclude_schemas), *xt = scope_array(conn, f->exclude_tables);
	bool ok =
	    s && t && xs && xt &&
	    strbuf_appendf(out,
	                   "(%s NOT IN ('pg_catalog', 'information_schema', '" PGDBM_SCHEMA "') "
	                   "AND %s NOT LIKE 'pg\\_%%' "
	                   "AND (cardinality(%s::text[]) = 0 OR %s = ANY (%s::text[])) "
	                   "AND (cardinality(%s::text[]) = 0 OR %s = ANY (%s::text[]) "
	                   "     OR %s || '.' || %s = ANY (%s::text[])) "
	                   "AND NOT %s = ANY (%s::text[]) "
	                   "AND NOT (%s = ANY (%s::text[]) OR %s || '.' || %s = ANY (%s::text[])))",
	                   nsp, nsp, s, nsp, s, t, rel, t, nsp, rel, t, nsp, xs, rel, xt, nsp, rel, xt);

	PQfreemem(s);
	PQfreemem(t);
	PQfreemem(xs);
	PQfreemem(xt);
	return ok;
}

bool
scope_list_tables(PGconn *conn, const scope_filters *f, char ***names, int *n, char *errbuf,
                  size_t errlen)
{
	strbuf sql;
	PGresult *res = NULL;
	bool ok;

	*names = NULL;
	*n = 0;
	strbuf_init(&sql);
	ok = strbuf_append_cstr(
	         &sql, "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
	               "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	               "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ") &&
	     scope_predicate(conn, f, "n.nspname", "c.relname", &sql) &&
	     strbuf_append_cstr(&sql, " ORDER BY 1");
	if (ok)
	{
		res = PQexec(conn, strbuf_data(&sql));
		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		if (!ok)
			snprintf(errbuf, errlen, "could not list the tables in scope: %s",
			         PQerrorMessage(conn));
	}
	else
		snprintf(errbuf, errlen, "out of memory");
	if (ok && PQntuples(res) > 0)
	{
		*names = calloc((size_t)PQntuples(res), sizeof(char *));
		ok = *names != NULL;
		for (int i = 0; ok && i < PQntuples(res); i++)
		{
			(*names)[i] = strdup(PQgetvalue(res, i, 0));
			ok = (*names)[i] != NULL;
			*n = i + 1;
		}
		if (!ok)
			snprintf(errbuf, errlen, "out of memory");
	}
	PQclear(res);
	strbuf_free(&sql);
	if (!ok)
	{
		scope_free(*names, *n);
		*names = NULL;
		*n = 0;
	}
	return ok;
}

void
scope_free(char **names, int n)
{
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}
