/*
 * mig.c — the run context of a migration (migrate_internal.h): its signal
 * flags and the small SQL helpers every phase uses (one value, one
 * statement, a failed check as an event, the scope filters).
 *
 * Owns: the signal flags. Never: holds state of its own beyond them.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"

volatile sig_atomic_t mig_signals = 0; /* SIGINT/SIGTERM received */
volatile sig_atomic_t mig_abort = 0;   /* a second one: stop now */

/* Fail a check: one event, one message saying what to change. */
bool __attribute__((format(printf, 2, 0)))
mig_check_failed(const char *check, const char *fmt, const char *arg)
{
	event e;
	char msg[4096];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
#pragma GCC diagnostic pop
	event_begin(&e, "Validate");
	event_level(&e, "error");
	event_str(&e, "check", check);
	event_end(&e, "%s", msg);
	return false;
}

PGconn *
mig_connect(const char *connstr, const char *which, char *errbuf, size_t errlen)
{
	/*
	 * UTF-8 on both sides (kept by PQreset): names read from a LATIN1 source
	 * are sent to a UTF8 target (guard, sequences) and back to the source
	 */
	const pgsession_opts o = {.conninfo = connstr,
	                          .role = strcmp(which, "source") == 0 ? PGSESSION_SOURCE
	                                                               : PGSESSION_TARGET,
	                          .client_encoding = "UTF8"};
	char why[4096];
	PGconn *c = pgsession_open(&o, why, sizeof(why));

	/* a long reason is cut to errbuf (the result says so, and is not needed) */
	if (c == NULL && snprintf(errbuf, errlen, "cannot connect to the %s: %s", which, why) < 0)
		errbuf[0] = '\0';
	return c;
}

/* One value of a query (copied into buf); false (with the server's message) on error. */
bool
mig_value(PGconn *c, const char *sql, char *buf, size_t size, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	else
		snprintf(errbuf, errlen, "\"%s\" failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

bool
mig_exec(PGconn *c, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "\"%.200s\" failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

/* The filters as scope lists (NULL-terminated copies of the option arrays). */
scope_filters
mig_scope(mig *m)
{
	scope_filters f;

	m->o.schemas[m->o.nschemas] = NULL;
	m->o.tables[m->o.ntables] = NULL;
	m->o.ex_schemas[m->o.nex_schemas] = NULL;
	m->o.ex_tables[m->o.nex_tables] = NULL;
	f.schemas = m->o.schemas;
	f.tables = m->o.tables;
	f.exclude_schemas = m->o.ex_schemas;
	f.exclude_tables = m->o.ex_tables;
	return f;
}

/* The migrated tables as "schema"."table", comma-separated, and their count. */
bool
mig_tables(mig *m, strbuf *out, int *count, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	bool ok;

	if (!scope_list_tables(m->src, &f, &names, count, errbuf, errlen))
		return false;
	ok = true;
	for (int i = 0; ok && i < *count; i++)
		ok = strbuf_appendf(out, "%s%s", i ? ", " : "", names[i]);
	scope_free(names, *count);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
	return ok;
}
