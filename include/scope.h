/*
 * scope.h — which tables a migration (or a verification) covers: every
 * ordinary and partitioned table outside the system schemas, narrowed by
 * --schema / --table and their --exclude-... counterparts. Names match
 * exactly: a schema name, "schema.table", or a bare table name.
 *
 * Owns: the names it returns (scope_free). Never: matches system schemas or
 * the tool's own _pg_dbmigrator.
 */
#ifndef SCOPE_H
#define SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

typedef struct scope_filters
{
	const char *const *schemas; /* borrowed; each list NULL-terminated, or NULL */
	const char *const *tables;
	const char *const *exclude_schemas;
	const char *const *exclude_tables;
} scope_filters;

/*
 * The tables in scope on conn, as quoted "schema"."table", sorted; *names is
 * malloc'd (scope_free). Partitions are left out when their root is in (they
 * are reached through it).
 */
PGDBM_MUST_CHECK bool scope_list_tables(PGconn *conn, const scope_filters *f, char ***names, int *n,
                                        char *errbuf, size_t errlen);

/*
 * Append to out an SQL boolean expression, for conn, that is true when the
 * table whose schema name is the SQL expression nsp and whose name is rel
 * is in f's scope (the system schemas and the tool's own never are): the
 * rule scope_list_tables applies, for a table that does not exist yet. False
 * when out of memory.
 */
PGDBM_MUST_CHECK bool scope_predicate(PGconn *conn, const scope_filters *f, const char *nsp,
                                      const char *rel, strbuf *out);

/*
 * A schema name (matched exactly) as a pg_dump --schema / --exclude-schema
 * pattern that matches only it: in double quotes with quotes doubled, so
 * case, '*', '?' and '.' are literal. malloc'd; NULL when out of memory.
 * (For tables, the quoted names scope_list_tables returns are such patterns.)
 */
PGDBM_MUST_CHECK char *scope_schema_pattern(const char *name);

/* Does f narrow anything? */
bool scope_filtered(const scope_filters *f);

void scope_free(char **names, int n);

#endif /* SCOPE_H */
