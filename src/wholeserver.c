/*
 * wholeserver.c — --all-databases: roles and memberships (pg_dumpall
 * --globals-only), the databases the target lacks, one child migration per
 * database (connection strings in its environment, never argv), one cutover
 * for all.
 *
 * Owns: the child processes until they exit. Never: puts a password in a
 * child's argv.
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

/* Roles and memberships: pg_dumpall --globals-only, applied statement by statement. */
static bool
wholeserver_globals(mig *m, char *errbuf, size_t errlen)
{
	char path[600], dbname[2048], out[1100], me[256];
	const char *argv[8];
	int n = 0, applied = 0, skipped = 0, failed = 0;
	char *text, *line;
	FILE *f;
	size_t len = 0;
	child_spec spec = {0};
	child_result res;

	snprintf(path, sizeof(path), "%s/pg_dumpall", m->bindir);
	snprintf(dbname, sizeof(dbname), "--dbname=%s", m->src_ci.safe);
	snprintf(out, sizeof(out), "%s.globals.sql", m->o.dump_path);
	argv[n++] = path;
	argv[n++] = dbname;
	argv[n++] = "--globals-only";
	argv[n++] = "--no-tablespaces";
	if (!m->o.with_role_passwords)
		argv[n++] = "--no-role-passwords";
	argv[n] = NULL;
	spec.argv = argv;
	spec.password = m->src_ci.password;
	spec.interrupted = &mig_signals;
	spec.stdout_path = out;
	if (!child_run(&spec, &res, errbuf, errlen))
		return false;
	strbuf_free(&res.summary);
	if (res.exit_code != 0)
	{
		snprintf(errbuf, errlen, "pg_dumpall --globals-only exited with %d", res.exit_code);
		return false;
	}
	if (!mig_value(m->tgt, "SELECT current_user", me, sizeof(me), errbuf, errlen))
		return false;
	f = fopen(out, "r");
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not read %s", out);
		return false;
	}
	text = NULL;
	{
		char chunk[65536];
		size_t got;

		while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		{
			char *grown = realloc(text, len + got + 1);

			if (grown == NULL)
				break;
			text = grown;
			memcpy(text + len, chunk, got);
			len += got;
			text[len] = '\0';
		}
	}
	fclose(f);
	unlink(out);
	for (line = text; line && *line;)
	{
		char *nl = strchr(line, '\n');
		char quoted[300];

		if (nl)
			*nl = '\0';
		/* the role we connect as is never created, altered or dropped */
		snprintf(quoted, sizeof(quoted), "ROLE %s", me);
		if (line[0] == '\0' || strncmp(line, "--", 2) == 0 || strncmp(line, "SET ", 4) == 0 ||
		    strncmp(line, "\\", 1) == 0)
			;
		else if (strstr(line, quoted) &&
		         (strncmp(line, "CREATE ROLE", 11) == 0 || strncmp(line, "ALTER ROLE", 10) == 0 ||
		          strncmp(line, "DROP ROLE", 9) == 0))
			skipped++;
		else
		{
			PGresult *r = PQexec(m->tgt, line);

			if (PQresultStatus(r) == PGRES_COMMAND_OK)
				applied++;
			else if (strstr(PQresultErrorMessage(r), "already exists") ||
			         strstr(PQresultErrorMessage(r), "is already a member"))
				skipped++;
			else
			{
				failed++;
				event_say("Globals", "warning", "%s: %s", line, PQresultErrorMessage(r));
			}
			PQclear(r);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	{
		event e;

		event_begin(&e, "Globals");
		event_int(&e, "applied", applied);
		event_int(&e, "skipped", skipped);
		event_int(&e, "failed", failed);
		event_end(&e, "roles and memberships copied%s",
		          m->o.with_role_passwords ? " with their passwords" : " (without passwords)");
	}
	return true;
}

/* A connection string for db, with the password (for a child's environment only). */
static char *
wholeserver_conn_for(const conninfo *ci, const char *db)
{
	strbuf sb;
	char *s = NULL;
	bool ok;

	strbuf_init(&sb);
	ok = strbuf_appendf(&sb, "%s dbname='", ci->safe);
	for (const char *p = db; ok && *p; p++)
		ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
		     strbuf_append_char(&sb, *p);
	ok = ok && strbuf_append_char(&sb, '\'');
	if (ok && ci->password)
	{
		ok = strbuf_append_cstr(&sb, " password='");
		for (const char *p = ci->password; ok && *p; p++)
			ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
			     strbuf_append_char(&sb, *p);
		ok = ok && strbuf_append_char(&sb, '\'');
	}
	if (ok)
		s = strdup(strbuf_data(&sb));
	strbuf_free(&sb);
	return s;
}

typedef struct wholeserver_child
{
	pid_t pid;
	char db[128];
	int status;
	bool done;
} wholeserver_child;

/* Start one child migration of db (connection strings in its environment, never argv). */
static pid_t
wholeserver_spawn(mig *m, int argc, char **argv, const char *db, char *errbuf, size_t errlen)
{
	char *src = wholeserver_conn_for(&m->src_ci, db), *tgt = wholeserver_conn_for(&m->tgt_ci, db);
	migopts_child child;
	pid_t pid;

	if (src == NULL || tgt == NULL)
	{
		free(src);
		free(tgt);
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	migopts_child_init(&child, &m->o, argc, argv, db);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		/* its own group: a terminal's Ctrl+C reaches the parent only, which forwards it once */
		setpgid(0, 0);
		setenv("PG_DBMIGRATOR_SOURCE", src, 1);
		setenv("PG_DBMIGRATOR_TARGET", tgt, 1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv("/proc/self/exe", (char *const *)child.argv);
		fprintf(stderr, "pg_dbmigrator: could not start the migration of %s: %s\n", db,
		        strerror(errno));
		_exit(EXIT_ERROR);
	}
	memset(src, 0, strlen(src));
	memset(tgt, 0, strlen(tgt));
	free(src);
	free(tgt);
	if (pid < 0)
		snprintf(errbuf, errlen, "could not fork: %s", strerror(errno));
	return pid;
}

/* --all-databases: one child migration per database, one cutover for all. */
int
wholeserver_run(mig *m, int argc, char **argv, char *errbuf, size_t errlen)
{
	PGresult *res;
	wholeserver_child kids[256];
	int nkids = 0, running = 0, next = 0, rc = EXIT_OK, forwarded = 0;
	int64_t t0 = cli_now_ms();

	if ((m->src = mig_connect(m->o.source, "source", errbuf, errlen)) == NULL)
	{
		mig_check_failed("source_reachable", "%s", errbuf);
		return EXIT_ERROR;
	}
	if ((m->tgt = mig_connect(m->o.target, "target", errbuf, errlen)) == NULL)
	{
		mig_check_failed("target_reachable", "%s", errbuf);
		return EXIT_ERROR;
	}
	res = PQexec(m->src, m->o.include_postgres
	                         ? "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate "
	                           "AND datallowconn ORDER BY 1"
	                         : "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate "
	                           "AND datallowconn AND datname <> 'postgres' ORDER BY 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not list the source's databases: %s",
		         PQerrorMessage(m->src));
		PQclear(res);
		return EXIT_ERROR;
	}
	for (int i = 0; i < PQntuples(res) && nkids < 256; i++)
	{
		memset(&kids[nkids], 0, sizeof(kids[nkids]));
		snprintf(kids[nkids++].db, sizeof(kids[0].db), "%s", PQgetvalue(res, i, 0));
	}
	PQclear(res);
	{
		event e;

		event_begin(&e, "Validate");
		event_int(&e, "databases", nkids);
		event_end(&e, "whole-server %s migration of %d database%s",
		          m->o.online ? "online" : "offline", nkids, nkids == 1 ? "" : "s");
	}
	if (m->o.dry_run)
	{
		for (int i = 0; i < nkids; i++)
			printf("database %s\n", kids[i].db);
		return EXIT_OK;
	}
	if (m->o.migrate_globals != 0 && !wholeserver_globals(m, errbuf, errlen))
		return EXIT_ERROR;
	mkdir(m->o.dump_path, 0700);
	/* databases the target lacks */
	for (int i = 0; i < nkids; i++)
	{
		const char *params[1] = {kids[i].db};
		PGresult *r =
		    PQexecParams(m->tgt, "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1",
		                 1, NULL, params, NULL, NULL, 0);
		bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;

		PQclear(r);
		if (!exists)
		{
			char *q = PQescapeIdentifier(m->tgt, kids[i].db, strlen(kids[i].db));
			char sql[400];

			snprintf(sql, sizeof(sql), "CREATE DATABASE %s", q ? q : "\"\"");
			PQfreemem(q);
			if (!mig_exec(m->tgt, sql, errbuf, errlen))
				return EXIT_ERROR;
			event_say("Validate", "info", "created database %s on the target", kids[i].db);
		}
	}
	/* online: every database streams at once (one cutover); offline: --max-parallel at a time */
	while (next < nkids || running > 0)
	{
		int status;
		pid_t pid;

		while (next < nkids && (m->o.online || running < m->o.max_parallel) && !mig_signals)
		{
			kids[next].pid = wholeserver_spawn(m, argc, argv, kids[next].db, errbuf, errlen);
			if (kids[next].pid < 0)
				return EXIT_ERROR;
			running++;
			next++;
		}
		if (mig_signals > forwarded)
		{
			/* Ctrl+C: every database cuts over (a second one: every database aborts) */
			for (int i = 0; i < next; i++)
				if (!kids[i].done)
					kill(kids[i].pid, SIGINT);
			forwarded = mig_signals;
		}
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
		{
			usleep(100 * 1000);
			if (next == nkids || !mig_signals)
				continue;
			break; /* interrupted before every database started */
		}
		for (int i = 0; i < next; i++)
			if (kids[i].pid == pid)
			{
				int code = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_ERROR;

				kids[i].done = true;
				kids[i].status = code;
				running--;
				/* the worst wins: failed, then aborted, then done with differences */
				if (code == EXIT_DIFFERS && rc == EXIT_OK)
					rc = EXIT_DIFFERS;
				else if (code == EXIT_ABORTED && (rc == EXIT_OK || rc == EXIT_DIFFERS))
					rc = EXIT_ABORTED;
				else if (code != EXIT_OK && code != EXIT_ABORTED && code != EXIT_DIFFERS)
					rc = EXIT_ERROR;
				event_say("Complete",
				          code == EXIT_OK        ? "info"
				          : code == EXIT_DIFFERS ? "warning"
				                                 : "error",
				          "database %s: %s", kids[i].db,
				          code == EXIT_OK        ? "done"
				          : code == EXIT_DIFFERS ? "done, but verification found differences"
				          : code == EXIT_ABORTED ? "aborted"
				                                 : "failed");
			}
	}
	if (rc == EXIT_OK || rc == EXIT_DIFFERS)
	{
		event e;

		event_begin(&e, "Complete");
		if (rc == EXIT_DIFFERS)
			event_level(&e, "warning");
		if (rc == EXIT_DIFFERS)
			event_str(&e, "verified", "differences");
		event_int(&e, "databases", nkids);
		event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
		event_end(&e, "whole-server migration complete%s",
		          rc == EXIT_OK ? "" : ", but verification found differences (see above)");
	}
	else
		snprintf(errbuf, errlen, "not every database migrated (see above)");
	return rc;
}
