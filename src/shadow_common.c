/*
 * shadow_common.c — what every shadow command shares (see shadow_internal.h):
 * error lines, target and source sessions, statements, the state files.
 *
 * Never: prints a password (errors carry the server's message, never a
 * conninfo); writes a state file but atomically, mode 0600.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cli.h"
#include "cmd.h"
#include "events.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadow_internal.h"
#include "shadowsql.h"
#include "strbuf.h"

/* With --json: the command's events also as JSON lines on stdout (events.h). */
static bool sh_json_on = false;
static const char *sh_stage = "Shadow"; /* static string: the running command's stage */

/* The command's events: its stage name, and JSON or not. */
void
sh_events_init(const shadow_opts *o, const char *stage)
{
	sh_json_on = o->json;
	sh_stage = stage;
	events_init(o->json);
}

bool
sh_json(void)
{
	return sh_json_on;
}

/* One line for the operator: "pg_dbmigrator shadow: msg", or with --json an event. */
void
sh_say(const char *level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sh_json_on)
		event_say(sh_stage, level, "%s", msg);
	else
		fprintf(stderr, "pg_dbmigrator shadow: %s%s\n",
		        strcmp(level, "warning") == 0 ? "warning: " : "", msg);
}

/* A plan line of a dry run: on stdout, or with --json an event. */
void
sh_plan(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sh_json_on)
		event_say("ShadowPlan", "info", "%s", msg);
	else
		printf("%s\n", msg);
}

/* Emit a phase event e with its fields (--json), or only its line on stderr; frees e. */
void
sh_event_end(event *e, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sh_json_on)
		event_end(e, "%s", msg);
	else
	{
		fprintf(stderr, "pg_dbmigrator shadow: %s\n", msg);
		strbuf_free(&e->json);
		strbuf_free(&e->human);
	}
}

/* Print one error line (an error event with --json). */
void
sh_error(const char *what, const char *why)
{
	sh_say("error", "%s%s%s", what, why ? ": " : "", why ? why : "");
}

/* A session on conninfo; NULL after saying why. */
PGconn *
sh_connect(const char *uri, pgsession_role role, const char *side)
{
	pgsession_opts so = {uri, role, NULL, "10"};
	char err[SH_ERR], what[64];
	PGconn *c = pgsession_open(&so, err, sizeof(err));

	if (c == NULL)
	{
		snprintf(what, sizeof(what), "cannot connect to the %s", side);
		sh_error(what, err);
	}
	return c;
}

/* The first line of c's last error message, into msg (size bytes); msg. */
const char *
sh_server_message(PGconn *c, char *msg, size_t size)
{
	snprintf(msg, size, "%s", PQerrorMessage(c));
	msg[strcspn(msg, "\n")] = '\0';
	return msg;
}

/* Run sql; false after printing the server's message with what. */
bool
sh_exec(PGconn *c, const char *sql, const char *what)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;

	if (!ok && what)
	{
		char msg[SH_ERR];

		sh_error(what, sh_server_message(c, msg, sizeof(msg)));
	}
	PQclear(r);
	return ok;
}

/* A query with text parameters; NULL (and printed) on failure. */
PGresult *
sh_query(PGconn *c, const char *sql, int n, const char *const *params, const char *what)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		char msg[SH_ERR];

		sh_error(what, sh_server_message(c, msg, sizeof(msg)));
		PQclear(r);
		return NULL;
	}
	return r;
}

bool
in_list(const char *const *list, const char *name)
{
	for (int i = 0; list && list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* The current UTC time as YYYYMMDDHHMMSS. */
void
sh_now_ts(char out[SHADOWSQL_TS])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, SHADOWSQL_TS, "%Y%m%d%H%M%S", &tm);
}

/* ---- the state files ---- */

static void sh_state_path(const char *dir, const char *ts, char *buf, size_t size);

/*
 * A new migration's timestamp: now, but later than every state in dir (two
 * runs within one second wait for the next one, so no two share a name).
 */
void
sh_new_ts(const char *dir, const char *after, char out[SHADOWSQL_TS])
{
	for (int i = 0; i < 30; i++)
	{
		char path[4096];

		sh_now_ts(out);
		sh_state_path(dir, out, path, sizeof(path));
		if ((after == NULL || strcmp(out, after) > 0) && access(path, F_OK) != 0)
			return;
		usleep(100000);
	}
}

static void
sh_state_path(const char *dir, const char *ts, char *buf, size_t size)
{
	snprintf(buf, size, "%s/shadow-%s.json", dir, ts);
}

/* Write the state atomically, mode 0600 (a temporary file, fsync, rename). */
bool
sh_state_save(const char *dir, const shadowsql_state *st)
{
	char path[4096], tmp[4200];
	strbuf sb;
	int fd;
	bool ok;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
	{
		sh_error("cannot create the state directory", strerror(errno));
		return false;
	}
	strbuf_init(&sb);
	if (!shadowsql_state_json(&sb, st))
	{
		strbuf_free(&sb);
		sh_error("out of memory", NULL);
		return false;
	}
	sh_state_path(dir, st->ts, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok = fd >= 0 && write(fd, strbuf_data(&sb), strbuf_len(&sb)) == (ssize_t)strbuf_len(&sb) &&
	     fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	ok = ok && rename(tmp, path) == 0;
	if (!ok)
		sh_error("cannot save the state file", strerror(errno));
	strbuf_free(&sb);
	return ok;
}

/* Read the state of migration ts. */
bool
sh_state_load(const char *dir, const char *ts, shadowsql_state *st)
{
	char path[4096], err[256], msg[4500];
	FILE *f;
	char *text;
	long len;
	bool ok;

	sh_state_path(dir, ts, path, sizeof(path));
	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(msg, sizeof(msg), "no migration %s in %s", ts, dir);
		sh_error(msg, strerror(errno));
		return false;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
	ok = text && len >= 0 && fread(text, 1, (size_t)len, f) == (size_t)len;
	fclose(f);
	if (ok && !shadowsql_state_parse(text, st, err, sizeof(err)))
	{
		snprintf(msg, sizeof(msg), "the state file %s is damaged", path);
		sh_error(msg, err);
		ok = false;
	}
	else if (!ok)
		sh_error("cannot read the state file", path);
	free(text);
	return ok;
}

/* The timestamps of every state in dir, ascending, into ts[] (at most max). */
int
sh_state_all(const char *dir, char ts[][SHADOWSQL_TS], int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max)
	{
		const char *name = e->d_name;

		if (strncmp(name, "shadow-", 7) == 0 && strlen(name) == 7 + 14 + 5 &&
		    strcmp(name + 21, ".json") == 0)
		{
			memcpy(ts[n], name + 7, 14);
			ts[n][14] = '\0';
			if (shadowsql_ts_valid(ts[n]))
				n++;
		}
	}
	closedir(d);
	qsort(ts, (size_t)n, SHADOWSQL_TS, (int (*)(const void *, const void *))strcmp);
	return n;
}

/* The newest state whose phase is one of phases (space-separated); false if none. */
bool
sh_state_find(const shadow_opts *o, const char *phases, shadowsql_state *st)
{
	static char ts[1024][SHADOWSQL_TS];
	int n = sh_state_all(o->state_dir, ts, 1024);

	for (int i = n - 1; i >= 0; i--)
	{
		char want[64];

		if (!sh_state_load(o->state_dir, ts[i], st))
			continue;
		snprintf(want, sizeof(want), " %s ", st->phase);
		{
			char list[128];

			snprintf(list, sizeof(list), " %s ", phases);
			if (strstr(list, want))
				return true;
		}
	}
	return false;
}

/* The migration named by --timestamp, or the newest in one of phases; false after saying why. */
bool
sh_state_pick(const shadow_opts *o, const char *phases, const char *none, shadowsql_state *st)
{
	if (o->timestamp)
		return sh_state_load(o->state_dir, o->timestamp, st);
	if (sh_state_find(o, phases, st))
		return true;
	sh_error(none, o->state_dir);
	return false;
}

/* --before as a timestamp key: "now" is this very second too; false if not a date. */
bool
sh_before_key(const char *before, char key[SHADOWSQL_TS])
{
	if (strcmp(before, "now") == 0)
	{
		sh_now_ts(key);
		key[13]++; /* this very second too */
		return true;
	}
	return shadowsql_date_key(before, key);
}
