/*
 * fastrestore.c — --fast-restore-settings: fsync, full_page_writes,
 * synchronous_commit and max_wal_size relaxed on the target around the
 * restore, the previous values saved next to the dump first so that any
 * later run puts them back.
 *
 * Owns: the settings file <dump-path>.settings. Never: leaves the target
 * relaxed past a successful call of fastrestore_put_back.
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

/*
 * --fast-restore-settings. The previous values are saved next to the dump
 * before anything changes, so that even after a crash the next run (any run
 * with the same --dump-path) puts them back first.
 */
static const char *const fast_settings[][2] = {{"fsync", "off"},
                                               {"full_page_writes", "off"},
                                               {"synchronous_commit", "off"},
                                               {"max_wal_size", "16GB"}};
#define N_FAST_SETTINGS (sizeof(fast_settings) / sizeof(fast_settings[0]))

static void
fastrestore_path(const mig *m, char *buf, size_t size)
{
	snprintf(buf, size, "%s.settings", m->o.dump_path);
}

/* Put back what a settings file records (one "name\tauto|default\tvalue" line each). */
bool
fastrestore_put_back(mig *m, char *errbuf, size_t errlen)
{
	char path[1100], line[512];
	FILE *f;
	bool ok = true;

	fastrestore_path(m, path, sizeof(path));
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	while (ok && fgets(line, sizeof(line), f))
	{
		char *name = strtok(line, "\t\n"), *how = strtok(NULL, "\t\n"), *value = strtok(NULL, "\n");
		char *qv, sql[600];

		if (name == NULL || how == NULL)
			continue;
		if (strcmp(how, "auto") == 0 && value)
		{
			qv = PQescapeLiteral(m->tgt, value, strlen(value));
			snprintf(sql, sizeof(sql), "ALTER SYSTEM SET %s = %s", name, qv ? qv : "''");
			PQfreemem(qv);
		}
		else
			snprintf(sql, sizeof(sql), "ALTER SYSTEM RESET %s", name);
		ok = mig_exec(m->tgt, sql, errbuf, errlen);
	}
	fclose(f);
	if (ok && (ok = mig_exec(m->tgt, "SELECT pg_reload_conf()", errbuf, errlen)))
	{
		unlink(path);
		event_say("Restore", "info",
		          "target settings put back (fsync, full_page_writes, "
		          "synchronous_commit, max_wal_size)");
	}
	return ok;
}

bool
fastrestore_set(mig *m, char *errbuf, size_t errlen)
{
	char path[1100];
	FILE *f;
	int fd;

	fastrestore_path(m, path, sizeof(path));
	/* for our user only, whatever the umask (and a file left by an older run too) */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 && fchmod(fd, 0600) == 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	for (size_t i = 0; i < N_FAST_SETTINGS; i++)
	{
		const char *params[1] = {fast_settings[i][0]};
		/* from the files themselves (a session sees a reload only later) */
		PGresult *res =
		    PQexecParams(m->tgt,
		                 "SELECT setting FROM pg_catalog.pg_file_settings WHERE name = $1 "
		                 "AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC "
		                 "LIMIT 1",
		                 1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			fprintf(f, "%s\tauto\t%s\n", fast_settings[i][0], PQgetvalue(res, 0, 0));
		else
			fprintf(f, "%s\tdefault\n", fast_settings[i][0]);
		PQclear(res);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
	{
		snprintf(errbuf, errlen, "could not write %s", path);
		return false;
	}
	for (size_t i = 0; i < N_FAST_SETTINGS; i++)
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "ALTER SYSTEM SET %s = '%s'", fast_settings[i][0],
		         fast_settings[i][1]);
		if (!mig_exec(m->tgt, sql, errbuf, errlen))
		{
			char ignored[256];

			if (!fastrestore_put_back(m, ignored, sizeof(ignored)))
				event_say("Restore", "warning", "could not put the target's settings back: %s",
				          ignored);
			return false;
		}
	}
	if (!mig_exec(m->tgt, "SELECT pg_reload_conf()", errbuf, errlen))
		return false;
	event_say("Restore", "warning",
	          "target running with fsync = off and full_page_writes = off for the restore: do not "
	          "use it for anything else until this says they are back");
	return true;
}
