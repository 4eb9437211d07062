/*
 * cmd_status.c — `pg_dbmigrator status`: where a migration is, from its
 * resume token and, when they answer, the source's slot and the target's
 * progress row. Works while the migration runs and after it crashed.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cmd.h"
#include "ddl.h"
#include "guard.h"
#include "resume.h"
#include "strbuf.h"
#include "pgdbm_schema.h"
#include "pgsession.h"

static void
status_usage(FILE *f)
{
	fprintf(f, "pg_dbmigrator status shows where a migration is: its stage (from the resume\n"
	           "token next to the dump) and, when reachable, the source's slot (present, active,\n"
	           "confirmed LSN, lag) and the target's last applied LSN and time.\n"
	           "\n"
	           "Usage:\n"
	           "  pg_dbmigrator status --dump-path PATH [--resume-file FILE] [--json]\n"
	           "\n"
	           "Passwords come from PGPASSWORD or ~/.pgpass: the token never holds one.\n");
}

/* Connect with a short timeout; NULL (and a reason in err) if it does not answer. */
static PGconn *
status_connect(const char *connstr, char *err, size_t errlen)
{
	const pgsession_opts o = {.conninfo = connstr, .connect_timeout = "5"};
	PGconn *c = pgsession_open(&o, err, errlen);

	if (c == NULL)
	{
		for (size_t n = strlen(err); n > 0 && err[n - 1] == '\n'; n--)
			err[n - 1] = '\0';
		return NULL;
	}
	return c;
}

int
cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {{"dump-path", required_argument, NULL, 'd'},
	                                         {"resume-file", required_argument, NULL, 'r'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	const char *dump_path = "pg_dbmigrator_dump", *file = NULL;
	char path[1100], err[1024], src_err[512] = "", tgt_err[512] = "";
	bool json = false, found;
	resume_token t;
	int c;
	PGconn *src = NULL, *tgt = NULL;
	int guard_rows = 0;
	/* what the servers say */
	bool slot_present = false, slot_active = false, have_progress = false;
	int ddl_triggers = 0;   /* the DDL capture's event triggers on the source (ddl.h) */
	char unkeyed[512] = ""; /* published tables whose updates fail on the source (ddl.h) */
	char confirmed[32] = "", lag[32] = "", wal_status[32] = "", applied[32] = "",
	     applied_at[64] = "";

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				dump_path = optarg;
				break;
			case 'r':
				file = optarg;
				break;
			case 'j':
				json = true;
				break;
			case 'h':
				status_usage(stdout);
				return EXIT_OK;
			default:
				fprintf(stderr, "pg_dbmigrator status: unknown or incomplete option \"%s\"\n",
				        argv[optind - 1]);
				return EXIT_USAGE;
		}
	}
	if (file)
		snprintf(path, sizeof(path), "%s", file);
	else
		resume_path(dump_path, path, sizeof(path));
	if (!resume_load(path, &t, &found, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator status: %s\n", err);
		return EXIT_ERROR;
	}
	if (!found)
	{
		fprintf(stderr,
		        "pg_dbmigrator status: no migration state at %s (none ran with this --dump-path, "
		        "or it completed)\n",
		        path);
		return EXIT_ERROR;
	}
	if (t.online && (src = status_connect(t.source, src_err, sizeof(src_err))) != NULL)
	{
		const char *params[1] = {t.slot};
		PGresult *res = PQexecParams(
		    src,
		    "SELECT active, confirmed_flush_lsn, pg_current_wal_lsn() - confirmed_flush_lsn, "
		    "coalesce(to_jsonb(s) ->> 'wal_status', '') FROM pg_catalog.pg_replication_slots s "
		    "WHERE slot_name = $1",
		    1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			slot_present = true;
			slot_active = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
			snprintf(confirmed, sizeof(confirmed), "%s", PQgetvalue(res, 0, 1));
			snprintf(lag, sizeof(lag), "%s", PQgetvalue(res, 0, 2));
			snprintf(wal_status, sizeof(wal_status), "%s", PQgetvalue(res, 0, 3));
		}
		else if (PQresultStatus(res) != PGRES_TUPLES_OK)
			snprintf(src_err, sizeof(src_err), "%s", PQerrorMessage(src));
		PQclear(res);
		res = PQexec(src, ddl_present_sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			ddl_triggers = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		params[0] = t.publication;
		res = PQexecParams(src, ddl_unkeyed_sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			snprintf(unkeyed, sizeof(unkeyed), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	if ((tgt = status_connect(t.target, tgt_err, sizeof(tgt_err))) != NULL)
	{
		const char *params[1] = {t.slot};
		PGresult *res =
		    PQexecParams(tgt,
		                 "SELECT lsn, applied_at FROM " PGDBM_PROGRESS " "
		                 "WHERE slot_name = $1 AND to_regclass('" PGDBM_PROGRESS "') IS NOT NULL",
		                 1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			have_progress = true;
			snprintf(applied, sizeof(applied), "%s", PQgetvalue(res, 0, 0));
			snprintf(applied_at, sizeof(applied_at), "%s", PQgetvalue(res, 0, 1));
		}
		PQclear(res);
		if (!guard_pending(tgt, &guard_rows, tgt_err, sizeof(tgt_err)))
			guard_rows = 0;
	}
	if (json)
	{
		strbuf sb;

		strbuf_init(&sb);
		if (strbuf_appendf(&sb, "{\"mode\":\"%s\",\"stage\":\"%s\",\"slot\":",
		                   t.online ? "online" : "offline", resume_stage_name(t.stage)) &&
		    strbuf_append_json_string(&sb, t.slot, strlen(t.slot)) &&
		    strbuf_appendf(&sb, ",\"source_reachable\":%s,\"slot_present\":%s,\"slot_active\":%s",
		                   src ? "true" : "false", slot_present ? "true" : "false",
		                   slot_active ? "true" : "false") &&
		    (!slot_present ||
		     strbuf_appendf(&sb, ",\"confirmed_lsn\":\"%s\",\"lag_bytes\":%s,\"wal_status\":\"%s\"",
		                    confirmed, lag[0] ? lag : "null", wal_status)) &&
		    (!src || strbuf_appendf(&sb, ",\"ddl_capture\":%s", ddl_triggers ? "true" : "false")) &&
		    (!unkeyed[0] || (strbuf_append_cstr(&sb, ",\"unkeyed_published\":") &&
		                     strbuf_append_json_string(&sb, unkeyed, strlen(unkeyed)))) &&
		    strbuf_appendf(&sb, ",\"target_reachable\":%s", tgt ? "true" : "false") &&
		    (!have_progress || strbuf_appendf(&sb, ",\"applied_lsn\":\"%s\",\"applied_at\":\"%s\"",
		                                      applied, applied_at)) &&
		    strbuf_appendf(&sb, ",\"guard_changes\":%d", guard_rows) &&
		    strbuf_append_cstr(&sb, "}\n"))
			fputs(strbuf_data(&sb), stdout);
		strbuf_free(&sb);
	}
	else
	{
		printf("migration:    %s, last completed stage %s\n", t.online ? "online" : "offline",
		       resume_stage_name(t.stage));
		if (t.online)
		{
			if (src == NULL)
				printf("source:       unreachable (%s)\n", src_err);
			else if (!slot_present)
				printf("slot:         %s is GONE from the source: the online migration must start "
				       "over (--force-clean)\n",
				       t.slot);
			else
				printf("slot:         %s present, %s, confirmed up to %s, %s bytes behind the "
				       "source%s%s\n",
				       t.slot, slot_active ? "streaming" : "not in use", confirmed, lag,
				       wal_status[0] ? ", WAL " : "", wal_status);
			if (src && ddl_triggers)
				printf("ddl capture:  installed on the source (event triggers " DDL_TRIGGER_END
				       ", " DDL_TRIGGER_DROP ", " DDL_TRIGGER_REWRITE
				       "): it stays while the slot does; --resume to the "
				       "end or --force-clean drops it\n");
			if (src && unkeyed[0])
				printf(
				    "WARNING:      publication %s publishes the updates of %s, which have no "
				    "replica identity: the application's UPDATE and DELETE on them FAIL on the "
				    "source. Give them a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL on "
				    "the source\n",
				    t.publication, unkeyed);
		}
		if (tgt == NULL)
			printf("target:       unreachable (%s)\n", tgt_err);
		else if (have_progress)
			printf("applied:      up to %s at %s\n", applied, applied_at);
		else
			printf("applied:      nothing streamed yet\n");
		if (guard_rows > 0)
			printf("guard:        %d changes in force on the target (triggers, foreign keys, "
			       "identity columns; " PGDBM_LEDGER "): --resume or --force-clean "
			       "puts them back\n",
			       guard_rows);
	}
	PQfinish(src);
	PQfinish(tgt);
	return EXIT_OK;
}
