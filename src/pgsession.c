/*
 * pgsession.c — regular connections with their role's session settings.
 */
#include <stdio.h>

#include "pgsession.h"

#define PGSESSION_QUIET_SQL "SET client_min_messages TO warning"
/*
 * our own source transactions (publications, the cutover position) never
 * wait for a synchronous standby, which may be this very migration
 */
#define PGSESSION_SOURCE_SQL "SET synchronous_commit = local"

PGconn *
pgsession_open(const pgsession_opts *o, char *errbuf, size_t errlen)
{
	const char *keys[4], *vals[4];
	int n = 0;
	PGconn *c;

	keys[n] = "dbname";
	vals[n++] = o->conninfo;
	if (o->client_encoding)
	{
		keys[n] = "client_encoding";
		vals[n++] = o->client_encoding;
	}
	if (o->connect_timeout)
	{
		keys[n] = "connect_timeout";
		vals[n++] = o->connect_timeout;
	}
	keys[n] = vals[n] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK)
	{
		snprintf(errbuf, errlen, "%s", c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	if (o->role != PGSESSION_PLAIN)
		PQclear(PQexec(c, PGSESSION_QUIET_SQL));
	if (o->role == PGSESSION_SOURCE)
		PQclear(PQexec(c, PGSESSION_SOURCE_SQL));
	return c;
}

void
pgsession_refresh(PGconn *c, pgsession_role role)
{
	PGresult *res;

	if (c == NULL)
		return;
	res = PQexec(c, "SELECT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		PQreset(c);
		if (PQstatus(c) == CONNECTION_OK && role != PGSESSION_PLAIN)
			PQclear(PQexec(c, role == PGSESSION_SOURCE ? PGSESSION_QUIET_SQL
			                      "; " PGSESSION_SOURCE_SQL
			                                           : PGSESSION_QUIET_SQL));
	}
	PQclear(res);
}
