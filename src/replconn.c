/*
 * replconn.c — the logical replication connection to the source.
 *
 * Owns: the replication PGconn. Never: logs, retries by itself, or sends a
 * name to the server without validating or quoting it. libpq's error texts
 * never carry the password, so they are passed on as they are.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "conninfo.h"
#include "replconn.h"

/* Copy libpq's error for conn, without its trailing newline, after a prefix. */
static bool
replconn_fail_pq(PGconn *conn, char *errbuf, size_t errlen, const char *what)
{
	const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	snprintf(errbuf, errlen, "%s: %.*s", what, (int)n, msg);
	return false;
}

/* Check a connection string parses, without connecting. */
bool
replconn_check_conninfo(const char *connstr, char *errbuf, size_t errlen)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(connstr ? connstr : "", &err);

	if (opts == NULL)
	{
		size_t n = err ? strlen(err) : 0;

		while (n > 0 && err[n - 1] == '\n')
			n--;
		snprintf(errbuf, errlen, "invalid connection string: %.*s", (int)n,
		         err ? err : "out of memory");
		PQfreemem(err);
		/* libpq quotes pieces of the string, sometimes all of it */
		conninfo_redact(connstr, errbuf, errlen);
		return false;
	}
	PQconninfoFree(opts);
	return true;
}

/* The highest pgoutput protocol version a server version supports. */
int
replconn_max_proto_version(int server_version)
{
	if (server_version >= 160000)
		return 4;
	if (server_version >= 150000)
		return 3;
	if (server_version >= 140000)
		return 2;
	return 1;
}

/* Check a slot name is one PostgreSQL accepts. */
bool
replconn_valid_slot_name(const char *name, char *errbuf, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= REPLCONN_NAME_MAX)
	{
		snprintf(errbuf, errlen, "slot name \"%s\" must be 1 to %d characters long",
		         name ? name : "", REPLCONN_NAME_MAX - 1);
		return false;
	}
	for (size_t i = 0; i < n; i++)
	{
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
		{
			snprintf(errbuf, errlen,
			         "slot name \"%s\" contains '%c': PostgreSQL allows only lower-case letters, "
			         "digits and underscores",
			         name, ch);
			return false;
		}
	}
	return true;
}

/* Copy a result field into a fixed buffer; empty when NULL. */
static void
replconn_copy_field(char *dst, size_t size, const PGresult *res, int row, int col)
{
	const char *v = PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);

	snprintf(dst, size, "%s", v);
}

/* Run IDENTIFY_SYSTEM and keep its answer. */
static bool
replconn_identify(replconn *rc, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(rc->conn, "IDENTIFY_SYSTEM");
	char lsn[64];
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		replconn_fail_pq(rc->conn, errbuf, errlen, "IDENTIFY_SYSTEM failed");
		goto error;
	}
	if (PQntuples(res) != 1 || PQnfields(res) < 4)
	{
		snprintf(errbuf, errlen,
		         "IDENTIFY_SYSTEM returned %d rows and %d fields, expected 1 row and 4 fields",
		         PQntuples(res), PQnfields(res));
		goto error;
	}
	replconn_copy_field(rc->system_id, sizeof(rc->system_id), res, 0, 0);
	rc->timeline = (unsigned)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	replconn_copy_field(lsn, sizeof(lsn), res, 0, 2);
	if (!pgo_lsn_parse(lsn, &rc->xlogpos))
	{
		snprintf(errbuf, errlen, "IDENTIFY_SYSTEM returned an invalid position \"%s\"", lsn);
		goto error;
	}
	replconn_copy_field(rc->dbname, sizeof(rc->dbname), res, 0, 3);
	if (rc->dbname[0] == '\0')
	{
		snprintf(errbuf, errlen,
		         "the replication connection is not bound to a database: logical decoding needs "
		         "replication=database");
		goto error;
	}
	ok = true;
error:
	PQclear(res);
	return ok;
}

/*
 * Fix the text forms the walsender's output functions produce, whatever the
 * source's defaults: the apply session reads them back with the same
 * settings (REPLCONN_FORMAT_SETTINGS), as the native apply worker does.
 */
static bool
replconn_set_formats(replconn *rc, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(rc->conn, REPLCONN_FORMAT_SETTINGS);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		snprintf(errbuf, errlen, "could not set the output formats on the source: %s",
		         PQerrorMessage(rc->conn));
	PQclear(res);
	return ok;
}

/* Open a replication connection and identify the server. */
bool
replconn_open(replconn *rc, const char *connstr, char *errbuf, size_t errlen)
{
	/* later keywords override what the expanded connection string says */
	const char *const keys[] = {"dbname", "replication", "fallback_application_name", NULL};
	const char *const vals[] = {connstr, "database", "pg_dbmigrator", NULL};

	memset(rc, 0, sizeof(*rc));
	if (!replconn_check_conninfo(connstr, errbuf, errlen))
		return false;
	rc->conn = PQconnectdbParams(keys, vals, 1);
	if (rc->conn == NULL || PQstatus(rc->conn) != CONNECTION_OK)
	{
		replconn_fail_pq(rc->conn, errbuf, errlen,
		                 "could not open a replication connection to the source");
		replconn_close(rc);
		return false;
	}
	rc->server_version = PQserverVersion(rc->conn);
	if (rc->server_version < 100000)
	{
		snprintf(errbuf, errlen,
		         "the source runs PostgreSQL %d.%d: logical replication with pgoutput needs "
		         "PostgreSQL 10 or later",
		         rc->server_version / 10000, rc->server_version / 100 % 100);
		replconn_close(rc);
		return false;
	}
	if (!replconn_identify(rc, errbuf, errlen) || !replconn_set_formats(rc, errbuf, errlen))
	{
		replconn_close(rc);
		return false;
	}
	return true;
}

/* Close the connection. */
void
replconn_close(replconn *rc)
{
	if (rc->conn)
		PQfinish(rc->conn);
	rc->conn = NULL;
}

/* Create a logical slot exporting a snapshot. */
bool
replconn_create_slot(replconn *rc, const char *slot, bool temporary, replslot *out, char *errbuf,
                     size_t errlen)
{
	char cmd[256];
	char lsn[64];
	PGresult *res;
	bool ok = false;

	if (!replconn_valid_slot_name(slot, errbuf, errlen))
		return false;
	/* PostgreSQL 15 takes options in parentheses; 10-14 the bare keyword. */
	snprintf(cmd, sizeof(cmd), "CREATE_REPLICATION_SLOT \"%s\" %sLOGICAL pgoutput %s", slot,
	         temporary ? "TEMPORARY " : "",
	         rc->server_version >= 150000 ? "(SNAPSHOT 'export')" : "EXPORT_SNAPSHOT");
	res = PQexec(rc->conn, cmd);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char what[128];

		snprintf(what, sizeof(what), "could not create replication slot \"%s\"", slot);
		replconn_fail_pq(rc->conn, errbuf, errlen, what);
		goto error;
	}
	if (PQntuples(res) != 1 || PQnfields(res) < 4)
	{
		snprintf(errbuf, errlen, "CREATE_REPLICATION_SLOT returned %d rows and %d fields",
		         PQntuples(res), PQnfields(res));
		goto error;
	}
	memset(out, 0, sizeof(*out));
	replconn_copy_field(out->name, sizeof(out->name), res, 0, 0);
	replconn_copy_field(lsn, sizeof(lsn), res, 0, 1);
	replconn_copy_field(out->snapshot, sizeof(out->snapshot), res, 0, 2);
	replconn_copy_field(out->plugin, sizeof(out->plugin), res, 0, 3);
	if (!pgo_lsn_parse(lsn, &out->consistent_point) || out->snapshot[0] == '\0')
	{
		snprintf(errbuf, errlen,
		         "CREATE_REPLICATION_SLOT returned consistent point \"%s\" and snapshot \"%s\"",
		         lsn, out->snapshot);
		goto error;
	}
	ok = true;
error:
	PQclear(res);
	return ok;
}

/* Look up an existing slot through SQL on the replication connection. */
bool
replconn_find_slot(replconn *rc, const char *slot, bool *found, replslot *out, char *errbuf,
                   size_t errlen)
{
	char query[512];
	char *lit;
	char lsn[64];
	PGresult *res = NULL;
	bool ok = false;

	*found = false;
	if (!replconn_valid_slot_name(slot, errbuf, errlen))
		return false;
	lit = PQescapeLiteral(rc->conn, slot, strlen(slot));
	if (lit == NULL)
		return replconn_fail_pq(rc->conn, errbuf, errlen, "could not quote the slot name");
	snprintf(query, sizeof(query),
	         "SELECT plugin, slot_type, database, confirmed_flush_lsn, %s FROM "
	         "pg_catalog.pg_replication_slots "
	         "WHERE slot_name = %s",
	         rc->server_version >= 130000 ? "wal_status" : "NULL", lit);
	PQfreemem(lit);
	res = PQexec(rc->conn, query);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		replconn_fail_pq(rc->conn, errbuf, errlen, "could not look up the replication slot");
		goto error;
	}
	if (PQntuples(res) == 0)
	{
		ok = true;
		goto error;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", slot);
	replconn_copy_field(out->plugin, sizeof(out->plugin), res, 0, 0);
	replconn_copy_field(lsn, sizeof(lsn), res, 0, 3);
	replconn_copy_field(out->wal_status, sizeof(out->wal_status), res, 0, 4);
	if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 || strcmp(out->plugin, "pgoutput") != 0)
	{
		snprintf(errbuf, errlen,
		         "replication slot \"%s\" exists but is a %s slot with plugin \"%s\"; it must be a "
		         "logical slot using pgoutput — drop it or choose another --slot-name",
		         slot, PQgetvalue(res, 0, 1), out->plugin);
		goto error;
	}
	if (strcmp(PQgetvalue(res, 0, 2), rc->dbname) != 0)
	{
		snprintf(errbuf, errlen, "replication slot \"%s\" belongs to database \"%s\", not \"%s\"",
		         slot, PQgetvalue(res, 0, 2), rc->dbname);
		goto error;
	}
	if (strcmp(out->wal_status, "lost") == 0)
	{
		snprintf(errbuf, errlen,
		         "replication slot \"%s\" has been invalidated and lost the WAL it needed "
		         "(wal_status = lost, see max_slot_wal_keep_size): the changes since the dump "
		         "are gone, so the online migration must start over (--force-clean "
		         "--drop-target-first)",
		         slot);
		goto error;
	}
	if (lsn[0] && !pgo_lsn_parse(lsn, &out->consistent_point))
	{
		snprintf(errbuf, errlen, "slot \"%s\" has an invalid confirmed_flush_lsn \"%s\"", slot,
		         lsn);
		goto error;
	}
	*found = true;
	ok = true;
error:
	PQclear(res);
	return ok;
}

/* Drop a replication slot. */
bool
replconn_drop_slot(replconn *rc, const char *slot, char *errbuf, size_t errlen)
{
	char cmd[128];
	PGresult *res;
	bool ok;

	if (!replconn_valid_slot_name(slot, errbuf, errlen))
		return false;
	snprintf(cmd, sizeof(cmd), "DROP_REPLICATION_SLOT \"%s\"", slot);
	res = PQexec(rc->conn, cmd);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
	{
		char what[128];

		snprintf(what, sizeof(what), "could not drop replication slot \"%s\"", slot);
		replconn_fail_pq(rc->conn, errbuf, errlen, what);
	}
	PQclear(res);
	return ok;
}

/* Append s to buf at *pos; false if it does not fit. */
static bool
replconn_append(char *buf, size_t size, size_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (*pos + n >= size)
		return false;
	memcpy(buf + *pos, s, n + 1);
	*pos += n;
	return true;
}

/*
 * Append the publication list as pgoutput parses it: a SQL string literal
 * holding comma-separated double-quoted identifiers ('"a","b ""c"""').
 */
static bool
replconn_append_publications(char *buf, size_t size, size_t *pos, const char *const *pubs)
{
	if (!replconn_append(buf, size, pos, "'"))
		return false;
	for (int i = 0; pubs[i]; i++)
	{
		char ch[2] = {0, 0};

		if ((i > 0 && !replconn_append(buf, size, pos, ",")) ||
		    !replconn_append(buf, size, pos, "\""))
			return false;
		for (const char *p = pubs[i]; *p; p++)
		{
			ch[0] = *p;
			/* double quotes doubled for the identifier, single quotes for the literal */
			if ((*p == '"' && !replconn_append(buf, size, pos, "\"")) ||
			    (*p == '\'' && !replconn_append(buf, size, pos, "'")) ||
			    !replconn_append(buf, size, pos, ch))
				return false;
		}
		if (!replconn_append(buf, size, pos, "\""))
			return false;
	}
	return replconn_append(buf, size, pos, "'");
}

/* Build the START_REPLICATION command. */
bool
replconn_build_start(const replstart *opts, int server_version, char *buf, size_t size,
                     char *errbuf, size_t errlen)
{
	int max = replconn_max_proto_version(server_version);
	int proto = opts->proto_version ? opts->proto_version : max;
	char lsn[PGO_LSN_STRLEN];
	char head[256];
	size_t pos = 0;

	if (!replconn_valid_slot_name(opts->slot, errbuf, errlen))
		return false;
	if (proto < PGO_PROTO_VERSION_MIN || proto > max)
	{
		snprintf(errbuf, errlen,
		         "protocol version %d is not available: this server (%d) supports pgoutput "
		         "protocol versions 1 to %d",
		         proto, server_version, max);
		return false;
	}
	if (opts->publications == NULL || opts->publications[0] == NULL)
	{
		snprintf(errbuf, errlen, "no publication given: pgoutput needs at least one");
		return false;
	}
	for (int i = 0; opts->publications[i]; i++)
	{
		if (opts->publications[i][0] == '\0')
		{
			snprintf(errbuf, errlen, "empty publication name");
			return false;
		}
	}
	snprintf(head, sizeof(head),
	         "START_REPLICATION SLOT \"%s\" LOGICAL %s (proto_version '%d', publication_names ",
	         opts->slot, pgo_lsn_format(opts->start_lsn, lsn), proto);
	if (!replconn_append(buf, size, &pos, head) ||
	    !replconn_append_publications(buf, size, &pos, opts->publications) ||
	    (opts->messages && !replconn_append(buf, size, &pos, ", messages 'true'")) ||
	    (opts->binary && !replconn_append(buf, size, &pos, ", binary 'true'")) ||
	    /* ask for whole transactions at commit: no streaming, no two-phase */
	    (proto >= 2 && !replconn_append(buf, size, &pos, ", streaming 'off'")) ||
	    !replconn_append(buf, size, &pos, ")"))
	{
		snprintf(errbuf, errlen, "START_REPLICATION command longer than %zu bytes", size);
		return false;
	}
	return true;
}

/* Send START_REPLICATION; the connection enters COPY BOTH. */
bool
replconn_start(replconn *rc, const replstart *opts, char *errbuf, size_t errlen)
{
	char cmd[8192];
	PGresult *res;
	bool ok;

	if (!replconn_build_start(opts, rc->server_version, cmd, sizeof(cmd), errbuf, errlen))
		return false;
	/* the walsender converts what pgoutput sends (names, text values) to this encoding */
	if (opts->client_encoding && PQsetClientEncoding(rc->conn, opts->client_encoding) != 0)
	{
		char what[160];

		snprintf(what, sizeof(what),
		         "the source cannot send its changes in the target's encoding %s (create the "
		         "target database in an encoding that the source's encoding converts to)",
		         opts->client_encoding);
		replconn_fail_pq(rc->conn, errbuf, errlen, what);
		return false;
	}
	res = PQexec(rc->conn, cmd);
	ok = PQresultStatus(res) == PGRES_COPY_BOTH;
	rc->slot_busy = false;
	rc->start_lsn = opts->start_lsn;
	if (!ok)
	{
		char what[128];
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* e.g. the walsender of a killed run has not noticed yet: worth a retry */
		rc->slot_busy = state && strcmp(state, "55006") == 0;
		snprintf(what, sizeof(what), "could not start replication from slot \"%s\"", opts->slot);
		replconn_fail_pq(rc->conn, errbuf, errlen, what);
	}
	PQclear(res);
	return ok;
}

/* Microseconds since 2000-01-01 UTC. */
pgo_timestamp
replconn_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return ((pgo_timestamp)tv.tv_sec - PGO_EPOCH_OFFSET_SECS) * 1000000 + tv.tv_usec;
}

/* Tables published for UPDATE/DELETE that have no usable replica identity. */
bool
replconn_check_identity(replconn *rc, const char *const *publications, char *errbuf, size_t errlen)
{
	static const char sql[] =
	    "SELECT DISTINCT format('%I.%I', pt.schemaname, pt.tablename) "
	    "FROM pg_catalog.pg_publication_tables pt "
	    "JOIN pg_catalog.pg_publication p ON p.pubname = pt.pubname "
	    "JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname "
	    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
	    "WHERE pt.pubname = ANY ($1::text[]) AND (p.pubupdate OR p.pubdelete) "
	    "AND c.relkind = 'r' AND (c.relreplident = 'n' "
	    " OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
	    "     WHERE i.indrelid = c.oid AND i.indisprimary)) "
	    " OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
	    "     WHERE i.indrelid = c.oid AND i.indisreplident))) "
	    "ORDER BY 1";
	char array[4096];
	size_t len = 0;
	PGresult *res;
	bool ok;

	/* a text[] literal: {"a","b"} with " and \ escaped */
	array[len++] = '{';
	for (int i = 0; publications[i]; i++)
	{
		if (len + 2 * strlen(publications[i]) + 4 >= sizeof(array))
		{
			snprintf(errbuf, errlen, "too many publications");
			return false;
		}
		if (i > 0)
			array[len++] = ',';
		array[len++] = '"';
		for (const char *p = publications[i]; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				array[len++] = '\\';
			array[len++] = *p;
		}
		array[len++] = '"';
	}
	array[len++] = '}';
	array[len] = '\0';
	/* a replication connection speaks the simple protocol only: quote the literal ourselves */
	{
		char *lit = PQescapeLiteral(rc->conn, array, len);
		char query[sizeof(sql) + sizeof(array) * 2 + 16];
		const char *at = strstr(sql, "$1");

		if (lit == NULL)
		{
			snprintf(errbuf, errlen, "could not quote the publication names");
			return false;
		}
		snprintf(query, sizeof(query), "%.*s%s%s", (int)(at - sql), sql, lit, at + 2);
		PQfreemem(lit);
		res = PQexec(rc->conn, query);
	}
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(errbuf, errlen, "could not check the replica identity of published tables: %s",
		         PQerrorMessage(rc->conn));
	else if (PQntuples(res) > 0)
	{
		size_t n = (size_t)snprintf(errbuf, errlen, "published table%s without a replica identity:",
		                            PQntuples(res) > 1 ? "s" : "");

		for (int i = 0; i < PQntuples(res) && n < errlen; i++)
			n += (size_t)snprintf(errbuf + n, errlen - n, "%s %s", i ? "," : "",
			                      PQgetvalue(res, i, 0));
		if (n < errlen)
			snprintf(errbuf + n, errlen - n,
			         ". Their updates and deletes cannot be applied: add a primary key, or ALTER "
			         "TABLE ... REPLICA IDENTITY FULL (or USING INDEX) on the source, or leave "
			         "them out of the publication");
		ok = false;
	}
	PQclear(res);
	return ok;
}
