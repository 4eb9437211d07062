/*
 * shadow.c — the work of `pg_dbmigrator shadow` (see shadow.h): prepare the
 * shadow tables, swap them in, roll back, list, status, cleanup, verify.
 *
 * Never: writes to the source (it reads it in one repeatable-read, read-only
 * transaction); changes a live table outside the swap's transaction, but to
 * add the sync triggers of preserved tables (and their removal with the
 * shadow schema); leaves a swap half done (one transaction, or nothing).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cli.h"
#include "cmd.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadowsql.h"
#include "shadowstream.h"
#include "strbuf.h"

#define SH_ERR 1024

/* ---- small helpers ---- */

/* Print one error line. */
static void
sh_error(const char *what, const char *why)
{
	fprintf(stderr, "pg_dbmigrator shadow: %s%s%s\n", what, why ? ": " : "", why ? why : "");
}

/* A session on conninfo; NULL after saying why. */
static PGconn *
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

/* Run sql; false after printing the server's message with what. */
static bool
sh_exec(PGconn *c, const char *sql, const char *what)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;

	if (!ok && what)
	{
		char msg[SH_ERR];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		sh_error(what, msg);
	}
	PQclear(r);
	return ok;
}

/* A query with text parameters; NULL (and printed) on failure. */
static PGresult *
sh_query(PGconn *c, const char *sql, int n, const char *const *params, const char *what)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		char msg[SH_ERR];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		sh_error(what, msg);
		PQclear(r);
		return NULL;
	}
	return r;
}

static bool
in_list(const char *const *list, const char *name)
{
	for (int i = 0; list && list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* The current UTC time as YYYYMMDDHHMMSS. */
static void
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
static void
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
static bool
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
static bool
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
static int
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
static bool
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

/* ---- prepare ---- */

#define SH_TABLES_SQL                                                                   \
	"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "   \
	"WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition "                \
	"AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass " \
	"AND d.objid = c.oid AND d.deptype = 'e') ORDER BY c.relname"

/* The columns COPY carries for live.table on the target, quoted and comma-separated. */
static bool
sh_columns(PGconn *t, const char *schema, const char *table, strbuf *cols)
{
	const char *p[2] = {schema, table};
	PGresult *r = sh_query(t,
	                       "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) "
	                       "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
	                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
	                       "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
	                       "AND NOT a.attisdropped AND a.attgenerated = ''",
	                       2, p, "cannot read the target's columns");
	bool ok = r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
	          strbuf_append_cstr(cols, PQgetvalue(r, 0, 0));

	PQclear(r);
	return ok;
}

/* Copy one table's rows from the source (in its open transaction) into shadow.table. */
static bool
sh_copy_table(PGconn *s, PGconn *t, const char *schema, const char *shadow, const char *table,
              long long *bytes)
{
	strbuf cols, q;
	PGresult *r;
	char *buf;
	int n;
	bool ok;
	char what[256];

	strbuf_init(&cols);
	strbuf_init(&q);
	snprintf(what, sizeof(what), "cannot copy table %s.%s", schema, table);
	ok = sh_columns(t, schema, table, &cols) && strbuf_append_cstr(&q, "COPY (SELECT ") &&
	     strbuf_append_cstr(&q, strbuf_data(&cols)) && strbuf_append_cstr(&q, " FROM ") &&
	     shadowsql_ident(&q, schema) && strbuf_append_char(&q, '.') && shadowsql_ident(&q, table) &&
	     strbuf_append_cstr(&q, ") TO STDOUT");
	if (!ok)
		goto error;
	r = PQexec(s, strbuf_data(&q));
	if (PQresultStatus(r) != PGRES_COPY_OUT)
	{
		PQclear(r);
		sh_error(what, PQerrorMessage(s));
		ok = false;
		goto error;
	}
	PQclear(r);
	strbuf_reset(&q);
	ok = strbuf_append_cstr(&q, "COPY ") && shadowsql_ident(&q, shadow) &&
	     strbuf_append_char(&q, '.') && shadowsql_ident(&q, table) &&
	     strbuf_appendf(&q, " (%s) FROM STDIN", strbuf_data(&cols));
	r = PQexec(t, strbuf_data(&q));
	if (PQresultStatus(r) != PGRES_COPY_IN)
	{
		sh_error(what, PQerrorMessage(t));
		ok = false;
	}
	PQclear(r);
	/* drain the source to the end either way, so its session stays usable */
	while ((n = PQgetCopyData(s, &buf, 0)) > 0)
	{
		if (ok && PQputCopyData(t, buf, n) != 1)
			ok = false;
		*bytes += n;
		PQfreemem(buf);
	}
	if (n == -2)
		ok = false;
	while ((r = PQgetResult(s)) != NULL)
	{
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			sh_error(what, PQerrorMessage(s));
			ok = false;
		}
		PQclear(r);
	}
	if (PQputCopyEnd(t, ok ? NULL : "the source's copy failed") != 1)
		ok = false;
	while ((r = PQgetResult(t)) != NULL)
	{
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_COPY_IN)
		{
			if (ok)
				sh_error(what, PQerrorMessage(t));
			ok = false;
		}
		PQclear(r);
	}
error:
	strbuf_free(&cols);
	strbuf_free(&q);
	return ok;
}

/* The primary key columns of live.table, into keys[] (strdup'd; the caller frees). */
static int
sh_keys(PGconn *t, const char *schema, const char *table, char *keys[], int max)
{
	const char *p[2] = {schema, table};
	PGresult *r = sh_query(t,
	                       "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
	                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
	                       "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
	                       "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary "
	                       "ORDER BY array_position(i.indkey, a.attnum)",
	                       2, p, "cannot read a primary key");
	int n = 0;

	for (int i = 0; r && i < PQntuples(r) && n < max; i++)
		keys[n++] = strdup(PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* The names of the sequences a preserved table uses (owned or identity): not set from the source. */
static bool
sh_seq_of_preserved(PGconn *t, const char *schema, const char *seq, const shadow_opts *o)
{
	const char *p[2] = {schema, seq};
	PGresult *r =
	    sh_query(t,
	             "SELECT tc.relname FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid "
	             "JOIN pg_namespace n ON n.oid = sc.relnamespace "
	             "JOIN pg_class tc ON tc.oid = d.refobjid "
	             "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = "
	             "'pg_class'::regclass AND d.deptype IN ('a', 'i') AND sc.relkind = 'S' "
	             "AND n.nspname = $1 AND sc.relname = $2",
	             2, p, "cannot read the sequences' owners");
	bool yes = false;

	for (int i = 0; r && i < PQntuples(r); i++)
		yes = yes || in_list(o->preserved, PQgetvalue(r, i, 0));
	PQclear(r);
	return yes;
}

/* What the copy workers share: the next table to take, the first failure, the bytes. */
typedef struct sh_copy_work
{
	const shadow_opts *o;
	shadowsql_state *st;   /* borrowed */
	const char *shadow;    /* borrowed */
	const char *snapshot;  /* borrowed: the source's exported snapshot */
	pthread_mutex_t mutex; /* guards next, failed, bytes */
	int next;
	bool failed;
	long long bytes;
} sh_copy_work;

/* The next table a worker copies (not preserved), or -1. */
static int
sh_copy_take(sh_copy_work *w)
{
	int i = -1;

	pthread_mutex_lock(&w->mutex);
	while (!w->failed && w->next < w->st->ntables && w->st->tables[w->next].preserved)
		w->next++;
	if (!w->failed && w->next < w->st->ntables)
		i = w->next++;
	pthread_mutex_unlock(&w->mutex);
	return i;
}

/* One worker: its own source session in the snapshot and its own target session. */
static void *
sh_copy_worker(void *arg)
{
	sh_copy_work *w = arg;
	PGconn *s = sh_connect(w->o->source, PGSESSION_SOURCE, "source");
	PGconn *t = sh_connect(w->o->dest, PGSESSION_TARGET, "target");
	strbuf q;
	bool ok = s && t;
	long long bytes = 0;
	int i;

	strbuf_init(&q);
	ok = ok &&
	     strbuf_append_cstr(&q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
	                            "SET TRANSACTION SNAPSHOT ") &&
	     strbuf_append_sql_literal(&q, w->snapshot, strlen(w->snapshot)) &&
	     sh_exec(s, strbuf_data(&q), "cannot share the source's snapshot");
	while (ok && (i = sh_copy_take(w)) >= 0)
		ok = sh_copy_table(s, t, w->o->schema, w->shadow, w->st->tables[i].name, &bytes);
	pthread_mutex_lock(&w->mutex);
	w->failed = w->failed || !ok;
	w->bytes += bytes;
	pthread_mutex_unlock(&w->mutex);
	strbuf_free(&q);
	if (s)
		PQfinish(s);
	if (t)
		PQfinish(t);
	return NULL;
}

/*
 * Every table but the preserved ones copied from the source (its transaction
 * open on s) into the shadow: on s and t with --jobs 1, else by --jobs
 * workers sharing s's snapshot (one source and one target session each: the
 * load on both servers is bounded by --jobs).
 */
static bool
sh_copy_all(const shadow_opts *o, PGconn *s, PGconn *t, shadowsql_state *st, const char *shadow,
            long long *bytes)
{
	sh_copy_work w = {o, st, shadow, NULL, PTHREAD_MUTEX_INITIALIZER, 0, false, 0};
	pthread_t th[SHADOW_MAX_JOBS];
	PGresult *r;
	int started = 0;

	if (o->jobs <= 1)
	{
		for (int i = 0; i < st->ntables; i++)
			if (!st->tables[i].preserved &&
			    !sh_copy_table(s, t, o->schema, shadow, st->tables[i].name, bytes))
				return false;
		return true;
	}
	r = sh_query(s, "SELECT pg_export_snapshot()", 0, NULL, "cannot export the source's snapshot");
	if (r == NULL)
		return false;
	w.snapshot = PQgetvalue(r, 0, 0);
	for (int j = 0; j < o->jobs; j++)
		if (pthread_create(&th[j], NULL, sh_copy_worker, &w) == 0)
			started++;
	for (int j = 0; j < started; j++)
		pthread_join(th[j], NULL);
	PQclear(r);
	*bytes += w.bytes;
	if (started == 0)
		sh_error("cannot start the copy workers", NULL);
	return started > 0 && !w.failed;
}

/* Print a statement for a dry run. */
static void
sh_show(const char *sql)
{
	printf("%s%s", sql, sql[0] && sql[strlen(sql) - 1] == '\n' ? "" : "\n");
}

/* ---- --online: the stream into the shadow (shadowstream.h) ---- */

static volatile sig_atomic_t sh_stop_streaming = 0;

static void
sh_on_stop_signal(int sig)
{
	(void)sig;
	sh_stop_streaming = 1;
}

/*
 * prepare --online, once the source's rows are in: stream into the shadow
 * until Ctrl+C (or SIGTERM, the swap's word). The state names this process
 * while it streams, so the swap can stop it; rc is shstream_create's (or
 * closed: resuming a stream stopped before, from the slot).
 */
static int
sh_online_stream(const shadow_opts *o, shadowsql_state *st, replconn *rc, bool resuming)
{
	struct sigaction sa = {0}, old_int, old_term;
	shstream_opts so = {0};
	shstream_result res;
	pgo_lsn best;
	shadowsql_state *now = calloc(1, sizeof(*now));
	char shadow[SHADOWSQL_NAME + 32], err[2048], lsn[PGO_LSN_STRLEN];
	bool ok;

	shadowsql_shadow_schema(st->ts, shadow, sizeof(shadow));
	if (now == NULL)
	{
		sh_error("out of memory", NULL);
		replconn_close(rc);
		return EXIT_ERROR;
	}
	st->pid = (long long)getpid();
	if (!sh_state_save(o->state_dir, st))
	{
		free(now);
		replconn_close(rc);
		return EXIT_ERROR;
	}
	sa.sa_handler = sh_on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	so.source = o->source;
	so.dest = o->dest;
	so.name = st->slot;
	so.shadow_schema = shadow;
	so.source_system = st->source_system;
	if (!pgo_lsn_parse(st->consistent_lsn, &so.run_lsn))
		so.run_lsn = 0;
	so.resuming = resuming;
	so.stop = &sh_stop_streaming;
	ok = shstream_run(&so, rc, &res, err, sizeof(err));
	/* a server away: streaming again from the slot, while it makes progress within 5 min */
	best = res.applied_lsn;
	for (int64_t since = cli_now_ms(), wait = 1000;
	     !ok && res.retryable && !sh_stop_streaming && cli_now_ms() - since < 300 * 1000;)
	{
		fprintf(stderr, "pg_dbmigrator shadow: %s; streaming again in %lld s\n", err,
		        (long long)wait / 1000);
		for (int64_t t0 = cli_now_ms(); cli_now_ms() - t0 < wait && !sh_stop_streaming;)
			usleep(100 * 1000);
		if (sh_stop_streaming)
		{
			/* what was applied is confirmed already: a clean stop */
			ok = true;
			res.applied_lsn = best;
			break;
		}
		so.resuming = true;
		ok = shstream_run(&so, rc, &res, err, sizeof(err));
		if (res.applied_lsn > best)
			best = res.applied_lsn, since = cli_now_ms(), wait = 1000;
		else
			wait = wait * 2 > 10000 ? 10000 : wait * 2;
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	/* this process no longer streams; a swap that took over meanwhile owns the state */
	if (sh_state_load(o->state_dir, st->ts, now) && now->pid == st->pid &&
	    strcmp(now->phase, "prepared") == 0)
	{
		now->pid = 0;
		(void)sh_state_save(o->state_dir, now);
	}
	free(now);
	if (!ok)
	{
		sh_error("the stream into the shadow stopped", err);
		fprintf(stderr,
		        "pg_dbmigrator shadow: migration %s stays prepared and its slot %s keeps the "
		        "source's changes: prepare --online again streams on from it, shadow swap "
		        "--source URI --timestamp %s drains it and swaps\n",
		        st->ts, st->slot, st->ts);
		return EXIT_ERROR;
	}
	fprintf(stderr,
	        "pg_dbmigrator shadow: stopped streaming migration %s: applied up to %s (%llu "
	        "transactions); the slot %s keeps the source's later changes for the swap\n",
	        st->ts, pgo_lsn_format(res.applied_lsn, lsn), res.txns, st->slot);
	return EXIT_OK;
}

/*
 * Is pid a live (not a zombie) `pg_dbmigrator shadow ... --online`, not this
 * process? Linux's /proc; elsewhere: assume not (the swap then waits for the
 * slot to be free, and says what to stop).
 */
static bool
sh_pid_is_ours(long long pid)
{
	char path[64], buf[4096];
	FILE *f;
	size_t n;
	bool ours = false, shadow = false, online = false;

	if (pid <= 0 || pid == (long long)getpid() || kill((pid_t)pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%lld/cmdline", pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/*
	 * the words, NUL-separated (a zombie has none): a reused PID must not be
	 * signalled, so it must be a pg_dbmigrator shadow ... --online
	 */
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
	{
		if (i == 0)
			ours = strstr(buf, "pg_dbmigrator") != NULL;
		shadow = shadow || strcmp(buf + i, "shadow") == 0;
		online = online || strcmp(buf + i, "--online") == 0;
	}
	return ours && shadow && online;
}

/*
 * The swap of an online migration, before the exchange: stop the streaming
 * prepare (SIGTERM: it commits what it has and confirms it), then drain the
 * slot up to the source's current position into the shadow and take the
 * source's sequence values of that moment. Nothing live is touched.
 */
static bool
sh_online_drain(const shadow_opts *o, shadowsql_state *st, const char *shadow)
{
	shstream_opts so = {0};
	shstream_result res;
	replconn rc = {0};
	char err[2048], lsn[PGO_LSN_STRLEN], end[PGO_LSN_STRLEN];
	bool active;
	PGconn *s;
	PGresult *r;
	const char *p1[1] = {st->schema};

	if (o->dry_run)
	{
		printf("-- drain: stop the streaming prepare%s, stream slot %s up to the source's "
		       "pg_current_wal_lsn() into schema %s, read the source's sequences\n",
		       st->pid ? "" : " (none runs)", st->slot, shadow);
		return true;
	}
	if (sh_pid_is_ours(st->pid))
	{
		fprintf(stderr, "pg_dbmigrator shadow: stopping the streaming prepare (pid %lld)\n",
		        st->pid);
		if (kill((pid_t)st->pid, SIGTERM) == 0)
			for (int i = 0; i < 600 && sh_pid_is_ours(st->pid); i++)
				usleep(100 * 1000);
	}
	if (!shstream_wait_free(o->source, st->slot, 30, &active, err, sizeof(err)))
	{
		sh_error("cannot check the slot", err);
		return false;
	}
	if (active)
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: the slot %s is still streaming (a prepare --online runs "
		        "elsewhere?): stop it with Ctrl+C, then swap again\n",
		        st->slot);
		return false;
	}
	so.source = o->source;
	so.dest = o->dest;
	so.name = st->slot;
	so.shadow_schema = shadow;
	so.source_system = st->source_system;
	if (!pgo_lsn_parse(st->consistent_lsn, &so.run_lsn))
		so.run_lsn = 0;
	so.resuming = true;
	so.drain = true;
	if (!shstream_run(&so, &rc, &res, err, sizeof(err)))
	{
		sh_error("the drain of the stream failed", err);
		return false;
	}
	fprintf(stderr,
	        "pg_dbmigrator shadow: drained the stream: applied up to %s (the source was at %s "
	        "when the drain began; %llu transactions now)\n",
	        pgo_lsn_format(res.applied_lsn, lsn), pgo_lsn_format(res.endpos, end), res.txns);
	/* the sequences as the source has them now (the ones read at the snapshot are behind) */
	if ((s = sh_connect(o->source, PGSESSION_SOURCE, "source")) == NULL)
		return false;
	r = sh_query(s,
	             "SELECT sequencename, coalesce(last_value, start_value), last_value IS NOT NULL "
	             "FROM pg_sequences WHERE schemaname = $1",
	             1, p1, "cannot read the source's sequences");
	for (int i = 0; r && i < PQntuples(r); i++)
		for (int j = 0; j < st->nseqs; j++)
			if (strcmp(st->seqs[j].name, PQgetvalue(r, i, 0)) == 0)
			{
				st->seqs[j].value = atoll(PQgetvalue(r, i, 1));
				st->seqs[j].called = PQgetvalue(r, i, 2)[0] == 't';
			}
	PQfinish(s);
	if (r == NULL)
		return false;
	PQclear(r);
	st->pid = 0;
	return sh_state_save(o->state_dir, st);
}

/* After the swap: the slot and publication go (a kept slot would hold the source's WAL). */
static bool
sh_online_forget(const shadow_opts *o, PGconn *t, const shadowsql_state *st)
{
	char err[1024];
	char *lit;
	strbuf q;

	if (!shstream_drop(o->source, st->slot, err, sizeof(err)))
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: the swap is done, but %s; drop them on the source now "
		        "(SELECT pg_drop_replication_slot('%s'); DROP PUBLICATION %s;): the slot holds "
		        "the source's WAL\n",
		        err, st->slot, st->slot);
		return false;
	}
	/*
	 * its progress row (if a swap run before has not dropped it); the schema
	 * too when nothing else is in it (no other run uses it)
	 */
	strbuf_init(&q);
	lit = PQescapeLiteral(t, st->slot, strlen(st->slot));
	if (lit &&
	    strbuf_appendf(
	        &q,
	        "DO $$BEGIN IF to_regclass('_pg_dbmigrator.apply_progress') IS NULL THEN RETURN; "
	        "END IF; DELETE FROM _pg_dbmigrator.apply_progress WHERE slot_name = %s; "
	        "IF NOT EXISTS (SELECT FROM _pg_dbmigrator.apply_progress) AND (SELECT count(*) "
	        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
	        "'_pg_dbmigrator' AND c.relkind <> 'i') = 1 THEN DROP SCHEMA _pg_dbmigrator "
	        "CASCADE; END IF; END$$",
	        lit))
		(void)sh_exec(t, strbuf_data(&q), "cannot drop the stream's progress row on the target");
	PQfreemem(lit);
	strbuf_free(&q);
	fprintf(stderr, "pg_dbmigrator shadow: dropped the slot and the publication %s\n", st->slot);
	return true;
}

int
shadow_online_release(const shadow_opts *o)
{
	static char ts[1024][SHADOWSQL_TS];
	shadowsql_state *st = calloc(1, sizeof(*st));
	char key[SHADOWSQL_TS], err[1024];
	int n, rc = EXIT_OK;

	if (st == NULL)
		return EXIT_ERROR;
	if (strcmp(o->before, "now") == 0)
	{
		sh_now_ts(key);
		key[13]++; /* this very second too, as cleanup */
	}
	else if (!shadowsql_date_key(o->before, key))
	{
		free(st);
		return EXIT_OK; /* cleanup says what is wrong with the date */
	}
	n = sh_state_all(o->state_dir, ts, 1024);
	for (int i = 0; i < n && rc == EXIT_OK; i++)
	{
		if (strcmp(ts[i], key) >= 0 || !sh_state_load(o->state_dir, ts[i], st) ||
		    st->slot[0] == '\0' ||
		    (strcmp(st->phase, "preparing") != 0 && strcmp(st->phase, "prepared") != 0))
			continue;
		if (!replconn_valid_slot_name(st->slot, NULL, 0))
			continue;
		if (o->source == NULL || o->source[0] == '\0')
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: migration %s streams from the source (prepare "
			        "--online): give --source URI, to drop its slot %s with it\n",
			        st->ts, st->slot);
			rc = EXIT_USAGE;
			break;
		}
		if (o->dry_run)
		{
			printf("-- on the source: stop the streaming prepare, if one runs;\nSELECT "
			       "pg_drop_replication_slot('%s');\nDROP PUBLICATION IF EXISTS %s;\n",
			       st->slot, st->slot);
			continue;
		}
		if (sh_pid_is_ours(st->pid) && kill((pid_t)st->pid, SIGTERM) == 0)
			for (int w = 0; w < 600 && sh_pid_is_ours(st->pid); w++)
				usleep(100 * 1000);
		if (!shstream_drop(o->source, st->slot, err, sizeof(err)))
		{
			sh_error("cannot drop the migration's slot on the source (nothing dropped)", err);
			rc = EXIT_ERROR;
			break;
		}
		fprintf(stderr, "pg_dbmigrator shadow: dropped the slot and the publication %s\n",
		        st->slot);
	}
	free(st);
	return rc;
}

/* prepare: the shadow schema, its tables, the source's rows, the preserved tables in step. */
int
shadow_prepare(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st));
	PGconn *t = NULL, *s = NULL;
	PGresult *r = NULL, *rs = NULL;
	char shadow[SHADOWSQL_NAME + 32];
	const char *p1[1] = {o->schema};
	strbuf q;
	int rc = EXIT_ERROR;
	long long bytes = 0;
	int64_t t0 = cli_now_ms();
	replconn rcn = {0};   /* --online: the slot's replication connection */
	bool created = false; /* --online: the slot and publication are ours to drop on failure */

	strbuf_init(&q);
	if (st == NULL)
		return EXIT_ERROR;
	/* a prepare killed before its end is done again under its own timestamp */
	if (sh_state_find(o, "preparing", st))
		fprintf(stderr,
		        "pg_dbmigrator shadow: migration %s was not fully prepared: preparing it "
		        "again\n",
		        st->ts);
	else
	{
		shadowsql_state other;

		if (sh_state_find(o, "prepared swapping", &other))
		{
			/* prepare --online again: a prepared online migration streams on from its slot */
			if (o->online && !o->then_swap && !o->dry_run && other.slot[0] &&
			    strcmp(other.phase, "prepared") == 0)
			{
				replconn rcs = {0};

				*st = other;
				fprintf(stderr,
				        "pg_dbmigrator shadow: migration %s is prepared: streaming into its "
				        "shadow again from its slot %s\n",
				        st->ts, st->slot);
				rc = sh_online_stream(o, st, &rcs, true);
				free(st);
				return rc;
			}
			fprintf(stderr,
			        "pg_dbmigrator shadow: migration %s is prepared and not swapped yet: swap it "
			        "(shadow swap --timestamp %s) or drop it (shadow cleanup --before now)\n",
			        other.ts, other.ts);
			free(st);
			return EXIT_ERROR;
		}
		memset(st, 0, sizeof(*st));
		sh_new_ts(o->state_dir, NULL, st->ts);
	}
	snprintf(st->schema, sizeof(st->schema), "%s", o->schema);
	snprintf(st->origin, sizeof(st->origin), "prepare");
	snprintf(st->phase, sizeof(st->phase), "preparing");
	shadowsql_shadow_schema(st->ts, shadow, sizeof(shadow));

	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL ||
	    (s = sh_connect(o->source, PGSESSION_SOURCE, "source")) == NULL)
		goto error;
	/* the source read in one snapshot, read only (--online: the slot's, once it exists) */
	if (!o->online &&
	    !sh_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "cannot read the source"))
		goto error;
	if ((r = sh_query(t, SH_TABLES_SQL, 1, p1, "cannot list the target's tables")) == NULL ||
	    (rs = sh_query(s, SH_TABLES_SQL, 1, p1, "cannot list the source's tables")) == NULL)
		goto error;
	st->ntables = 0;
	for (int i = 0; i < PQntuples(r); i++)
	{
		const char *name = PQgetvalue(r, i, 0);
		bool on_source = false;
		shadowsql_table *tb;

		for (int j = 0; j < PQntuples(rs) && !on_source; j++)
			on_source = strcmp(PQgetvalue(rs, j, 0), name) == 0;
		if (!on_source && !in_list(o->preserved, name))
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: table %s.%s is on the target only: name it in "
			        "--preserved-tables to keep its rows, or drop it first\n",
			        o->schema, name);
			goto error;
		}
		if (st->ntables == SHADOWSQL_MAX_TABLES)
		{
			sh_error("too many tables in the schema", NULL);
			goto error;
		}
		tb = &st->tables[st->ntables++];
		memset(tb, 0, sizeof(*tb));
		snprintf(tb->name, sizeof(tb->name), "%s", name);
		tb->preserved = in_list(o->preserved, name);
		tb->rows = -1;
	}
	for (int j = 0; j < PQntuples(rs); j++)
		if (shadowsql_state_table(st, PQgetvalue(rs, j, 0)) == NULL)
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: table %s.%s is on the source only: create it on the "
			        "target first (the shadow tables take the target's definitions)\n",
			        o->schema, PQgetvalue(rs, j, 0));
			goto error;
		}
	for (int i = 0; o->preserved[i]; i++)
	{
		char *keys[32];
		int nk;

		if (shadowsql_state_table(st, o->preserved[i]) == NULL)
		{
			fprintf(stderr, "pg_dbmigrator shadow: preserved table %s.%s is not on the target\n",
			        o->schema, o->preserved[i]);
			goto error;
		}
		nk = sh_keys(t, o->schema, o->preserved[i], keys, 32);
		for (int k = 0; k < nk; k++)
			free(keys[k]);
		if (nk == 0)
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: preserved table %s.%s has no primary key: its writes "
			        "cannot be carried into the shadow; add one first\n",
			        o->schema, o->preserved[i]);
			goto error;
		}
	}
	PQclear(rs);
	rs = NULL;

	if (o->dry_run)
	{
		printf("Plan (dry run, nothing changed): migration %s, %d tables of schema %s into "
		       "shadow schema %s\n",
		       st->ts, st->ntables, o->schema, shadow);
		printf("CREATE SCHEMA \"%s\";\n", shadow);
		for (int i = 0; i < st->ntables; i++)
			printf("CREATE TABLE \"%s\".\"%s\" (LIKE \"%s\".\"%s\" INCLUDING ALL);  -- rows from "
			       "the %s\n",
			       shadow, st->tables[i].name, o->schema, st->tables[i].name,
			       st->tables[i].preserved ? "target, kept in step by triggers" : "source");
		if (o->online)
		{
			char name[SHSTREAM_NAME];

			shstream_name(st->ts, name, sizeof(name));
			printf("-- on the source:\nCREATE PUBLICATION %s FOR TABLE ...;  -- the tables "
			       "not preserved\nCREATE_REPLICATION_SLOT %s LOGICAL pgoutput (EXPORT_SNAPSHOT)"
			       ";  -- the copy reads at its snapshot\n-- then the source's changes stream "
			       "into %s until Ctrl+C or the swap\n",
			       name, name, shadow);
		}
		rc = EXIT_OK;
		goto error;
	}

	if (o->online)
		shstream_name(st->ts, st->slot, sizeof(st->slot));
	if (!sh_state_save(o->state_dir, st))
		goto error;
	if (o->online)
	{
		/* the publication and the slot; the copy reads at the slot's exported snapshot */
		const char *names[SHADOWSQL_MAX_TABLES];
		replslot slot;
		char err[2048], set[128];
		int n = 0;

		for (int i = 0; i < st->ntables; i++)
			if (!st->tables[i].preserved)
				names[n++] = st->tables[i].name;
		if (!shstream_create(o->source, s, st->slot, o->schema, names, n, &rcn, &slot, err,
		                     sizeof(err)))
		{
			sh_error("cannot set up the stream on the source", err);
			goto error;
		}
		created = true;
		snprintf(st->source_system, sizeof(st->source_system), "%s", rcn.system_id);
		pgo_lsn_format(slot.consistent_point, st->consistent_lsn);
		snprintf(set, sizeof(set), "SET TRANSACTION SNAPSHOT '%s'", slot.snapshot);
		if (!sh_state_save(o->state_dir, st) ||
		    !sh_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		             "cannot read the source") ||
		    !sh_exec(s, set, "cannot read the source at the slot's snapshot"))
			goto error;
	}
	/* the shadow schema from scratch (a killed prepare's remains go with it) */
	strbuf_reset(&q);
	if (!strbuf_appendf(
	        &q,
	        "BEGIN; SET LOCAL lock_timeout = '5s'; DROP SCHEMA IF EXISTS \"%s\" CASCADE; "
	        "CREATE SCHEMA \"%s\";\n",
	        shadow, shadow))
		goto error;
	for (int i = 0; i < st->ntables; i++)
		if (!strbuf_append_cstr(&q, "CREATE TABLE ") || !shadowsql_ident(&q, shadow) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, st->tables[i].name) ||
		    !strbuf_append_cstr(&q, " (LIKE ") || !shadowsql_ident(&q, o->schema) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, st->tables[i].name) ||
		    !strbuf_append_cstr(&q, " INCLUDING ALL);\n"))
			goto error;
	if (!strbuf_append_cstr(&q, "CREATE TABLE ") || !shadowsql_ident(&q, shadow) ||
	    !strbuf_append_cstr(&q, "." SHADOWSQL_SYNC_ERRORS " (at timestamptz NOT NULL DEFAULT "
	                            "now(), tbl text, op text, message text);\n") ||
	    !strbuf_append_cstr(&q, "COMMIT") ||
	    !sh_exec(t, strbuf_data(&q), "cannot create the shadow tables"))
		goto error;

	/* the sequences at the snapshot, but those of preserved tables (the target's own) */
	PQclear(r);
	if ((r = sh_query(s,
	                  "SELECT sequencename, coalesce(last_value, start_value), last_value IS NOT "
	                  "NULL FROM pg_sequences WHERE schemaname = $1 ORDER BY 1",
	                  1, p1, "cannot read the source's sequences")) == NULL)
		goto error;
	st->nseqs = 0;
	for (int i = 0; i < PQntuples(r) && st->nseqs < SHADOWSQL_MAX_SEQS; i++)
	{
		shadowsql_seq *sq = &st->seqs[st->nseqs];

		if (sh_seq_of_preserved(t, o->schema, PQgetvalue(r, i, 0), o))
			continue;
		snprintf(sq->name, sizeof(sq->name), "%s", PQgetvalue(r, i, 0));
		sq->value = atoll(PQgetvalue(r, i, 1));
		sq->called = PQgetvalue(r, i, 2)[0] == 't';
		st->nseqs++;
	}

	if (!sh_copy_all(o, s, t, st, shadow, &bytes))
		goto error;
	if (!sh_exec(s, "COMMIT", "cannot end the source's transaction"))
		goto error;

	/* preserved tables: the target's rows and every later write, from one instant on */
	for (int i = 0; i < st->ntables; i++)
	{
		char *keys[32];
		int nk;
		bool ok;

		if (!st->tables[i].preserved)
			continue;
		nk = sh_keys(t, o->schema, st->tables[i].name, keys, 32);
		strbuf_reset(&q);
		ok = strbuf_append_cstr(&q, "BEGIN; SET LOCAL lock_timeout = '5s'; LOCK TABLE ") &&
		     shadowsql_ident(&q, o->schema) && strbuf_append_char(&q, '.') &&
		     shadowsql_ident(&q, st->tables[i].name) &&
		     strbuf_append_cstr(&q, " IN SHARE ROW EXCLUSIVE MODE;\n") &&
		     shadowsql_sync_sql(&q, o->schema, shadow, st->tables[i].name,
		                        (const char *const *)keys, nk, st->ts) &&
		     strbuf_append_cstr(&q, "INSERT INTO ") && shadowsql_ident(&q, shadow) &&
		     strbuf_append_char(&q, '.') && shadowsql_ident(&q, st->tables[i].name) &&
		     strbuf_append_cstr(&q, " OVERRIDING SYSTEM VALUE SELECT * FROM ") &&
		     shadowsql_ident(&q, o->schema) && strbuf_append_char(&q, '.') &&
		     shadowsql_ident(&q, st->tables[i].name) && strbuf_append_cstr(&q, ";\nCOMMIT");
		for (int k = 0; k < nk; k++)
			free(keys[k]);
		if (!ok || !sh_exec(t, strbuf_data(&q), "cannot set up a preserved table's sync"))
		{
			sh_exec(t, "ROLLBACK", NULL);
			goto error;
		}
	}
	strbuf_reset(&q);
	for (int i = 0; i < st->ntables; i++)
		if (!strbuf_append_cstr(&q, "ANALYZE ") || !shadowsql_ident(&q, shadow) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, st->tables[i].name) ||
		    !strbuf_append_cstr(&q, ";"))
			goto error;
	if (!sh_exec(t, strbuf_data(&q), "cannot analyze the shadow tables"))
		goto error;
	snprintf(st->phase, sizeof(st->phase), "prepared");
	if (!sh_state_save(o->state_dir, st))
		goto error;
	if (o->json)
		printf("{\"event\": \"ShadowPrepared\", \"timestamp\": \"%s\", \"tables\": %d, "
		       "\"bytes\": %lld, \"seconds\": %.1f}\n",
		       st->ts, st->ntables, bytes, (double)(cli_now_ms() - t0) / 1000.0);
	fprintf(stderr,
	        "pg_dbmigrator shadow: prepared migration %s: %d tables in schema %s (%lld bytes "
	        "copied in %.1f s); swap with: shadow swap --timestamp %s%s\n",
	        st->ts, st->ntables, shadow, bytes, (double)(cli_now_ms() - t0) / 1000.0, st->ts,
	        o->online ? " --source URI" : "");
	rc = EXIT_OK;
	if (o->online && !o->then_swap)
	{
		/* the copy is done: the target's sessions go, the stream takes over */
		PQfinish(s);
		PQfinish(t);
		s = t = NULL;
		rc = sh_online_stream(o, st, &rcn, false);
	}
error:
	if (rc != EXIT_OK && !o->dry_run)
		fprintf(stderr, "pg_dbmigrator shadow: the live tables are untouched; run the same "
		                "command again to prepare anew\n");
	if (rc != EXIT_OK && created && (rcn.conn != NULL || strcmp(st->phase, "preparing") == 0))
	{
		char err[1024];

		/* a prepare that failed before its end keeps no slot (the next one makes its own) */
		replconn_close(&rcn);
		if (!shstream_drop(o->source, st->slot, err, sizeof(err)))
			sh_error("cannot drop the slot and the publication on the source", err);
	}
	replconn_close(&rcn);
	PQclear(r);
	PQclear(rs);
	strbuf_free(&q);
	if (s)
		PQfinish(s);
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}

/* ---- the exchange: the swap and the rollback ---- */

/*
 * What the catalog says must be done around the moves, as statements: phase
 * 1 before them (sync triggers, the in-tables' own foreign keys, foreign keys
 * pointing at the out-tables from other tables, owned sequences let go),
 * phase 3 after them (foreign keys and triggers of the out-tables on the
 * in-tables, views re-pointed, grants, owned sequences taken back, the
 * preserved tables' identity values). $1 the tables, $2 the live schema, $3
 * the schema the in-tables come from, $4 the preserved tables. Read with
 * search_path = the live schema, so definitions name live tables unqualified.
 */
#define SH_AROUND_SQL                                                                                                 \
	"WITH outs AS (SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "                           \
	"c.relnamespace WHERE n.nspname = $2 AND c.relname = ANY($1::text[])), "                                          \
	"ins AS (SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "                                 \
	"c.relnamespace WHERE n.nspname = $3 AND c.relname = ANY($1::text[])) " /* our sync triggers on the out-tables */ \
	"SELECT 1 AS ph, format('DROP TRIGGER %I ON %I.%I;', t.tgname, $2, o.relname) FROM "                              \
	"pg_trigger t JOIN outs o ON o.oid = t.tgrelid WHERE t.tgname LIKE '\\_pgdbm\\_sync\\_%' "                        \
	"UNION ALL " /* the in-tables' foreign keys and triggers (they get the live tables' ones) */                      \
	"SELECT 1, format('ALTER TABLE %I.%I DROP CONSTRAINT %I;', $3, i.relname, con.conname) FROM "                     \
	"pg_constraint con JOIN ins i ON i.oid = con.conrelid WHERE con.contype = 'f' "                                   \
	"UNION ALL "                                                                                                      \
	"SELECT 1, format('DROP TRIGGER %I ON %I.%I;', t.tgname, $3, i.relname) FROM pg_trigger t "                       \
	"JOIN ins i ON i.oid = t.tgrelid WHERE NOT t.tgisinternal "                                                       \
	"UNION ALL " /* foreign keys of other tables pointing at out-tables: dropped, then added back */                  \
	"SELECT 1, format('ALTER TABLE %s DROP CONSTRAINT %I;', con.conrelid::regclass, con.conname) "                    \
	"FROM pg_constraint con JOIN outs o ON o.oid = con.confrelid WHERE con.contype = 'f' AND "                        \
	"con.conrelid NOT IN (SELECT oid FROM outs) "                                                                     \
	"UNION ALL "                                                                                                      \
	"SELECT 3, format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID;', con.conrelid::regclass, "                     \
	"con.conname, pg_get_constraintdef(con.oid)) FROM pg_constraint con JOIN outs o ON o.oid = "                      \
	"con.confrelid WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT oid FROM outs) "                           \
	"UNION ALL " /* the out-tables' foreign keys, on the in-tables */                                                 \
	"SELECT 3, format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s NOT VALID;', $2, o.relname, "                           \
	"con.conname, pg_get_constraintdef(con.oid)) FROM pg_constraint con JOIN outs o ON o.oid = "                      \
	"con.conrelid WHERE con.contype = 'f' "                                                                           \
	"UNION ALL " /* the out-tables' own triggers (not ours), on the in-tables */                                      \
	"SELECT 3, pg_get_triggerdef(t.oid) || ';' FROM pg_trigger t JOIN outs o ON o.oid = "                             \
	"t.tgrelid WHERE NOT t.tgisinternal AND t.tgname NOT LIKE '\\_pgdbm\\_sync\\_%' "                                 \
	"UNION ALL " /* sequences owned by out-table columns (serial) stay live: let go, then taken back */               \
	"SELECT 1, format('ALTER SEQUENCE %I.%I OWNED BY NONE;', $2, s.relname) FROM pg_depend d "                        \
	"JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = d.objid WHERE d.classid = "                         \
	"'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' AND "                           \
	"s.relkind = 'S' "                                                                                                \
	"UNION ALL "                                                                                                      \
	"SELECT 3, format('ALTER SEQUENCE %I.%I OWNED BY %I.%I.%I;', $2, s.relname, $2, o.relname, "                      \
	"a.attname) FROM pg_depend d JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = "                       \
	"d.objid JOIN pg_attribute a ON a.attrelid = o.oid AND a.attnum = d.refobjsubid WHERE "                           \
	"d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = "                       \
	"'a' AND s.relkind = 'S' "                                                                                        \
	"UNION ALL " /* the preserved tables' identity sequences keep counting where the live ones are */                 \
	"SELECT 3, format('SELECT setval(pg_get_serial_sequence(%L, %L), %s);', "                                         \
	"quote_ident($2) || '.' || quote_ident(o.relname), a.attname, ps.last_value) FROM pg_depend "                     \
	"d "                                                                                                              \
	"JOIN outs o ON o.oid = d.refobjid JOIN pg_class s ON s.oid = d.objid JOIN pg_attribute a ON "                    \
	"a.attrelid = o.oid AND a.attnum = d.refobjsubid JOIN pg_namespace sn ON sn.oid = "                               \
	"s.relnamespace JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = "                        \
	"s.relname WHERE d.deptype = 'i' AND s.relkind = 'S' AND ps.last_value IS NOT NULL AND "                          \
	"o.relname = ANY($4::text[]) "                                                                                    \
	"UNION ALL " /* views on out-tables: the same text, now naming the in-tables */                                   \
	"SELECT 3, format('CREATE OR REPLACE VIEW %s AS %s', v.oid::regclass, "                                           \
	"pg_get_viewdef(v.oid)) FROM (SELECT DISTINCT r.ev_class AS oid FROM pg_depend d JOIN "                           \
	"pg_rewrite r ON r.oid = d.objid JOIN outs o ON o.oid = d.refobjid WHERE d.classid = "                            \
	"'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass) v JOIN pg_class vc ON "                          \
	"vc.oid = v.oid WHERE vc.relkind = 'v' "                                                                          \
	"UNION ALL " /* grants of the out-tables, on the in-tables */                                                     \
	"SELECT 3, format('GRANT %s ON %I.%I TO %s;', g.privilege_type, $2, o.relname, CASE WHEN "                        \
	"g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END) FROM outs o "                      \
	"JOIN pg_class c ON c.oid = o.oid, aclexplode(c.relacl) g WHERE g.grantee <> c.relowner "                         \
	"ORDER BY 1"

/* The number of writes the sync triggers could not carry into schema in (-1: unknown). */
static long long
sh_sync_errors(PGconn *t, const char *in, char *first, size_t size)
{
	strbuf q;
	PGresult *r;
	long long n = -1;

	strbuf_init(&q);
	if (strbuf_append_cstr(&q, "SELECT count(*), min(tbl || ' (' || op || '): ' || message) "
	                           "FROM ") &&
	    shadowsql_ident(&q, in) && strbuf_append_cstr(&q, "." SHADOWSQL_SYNC_ERRORS))
	{
		r = PQexec(t, strbuf_data(&q));
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
		{
			n = atoll(PQgetvalue(r, 0, 0));
			snprintf(first, size, "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
	}
	strbuf_free(&q);
	return n;
}

/* Whether the preserved tables' shadows hold every write; says why not. */
static bool
sh_sync_clean(PGconn *t, const char *in)
{
	char first[512] = "";
	long long n = sh_sync_errors(t, in, first, sizeof(first));

	if (n == 0)
		return true;
	if (n < 0)
		sh_error("cannot read the sync triggers' errors", PQerrorMessage(t));
	else
		fprintf(stderr,
		        "pg_dbmigrator shadow: %lld writes to preserved tables could not be carried into "
		        "the shadow (the first: %s): the shadow would lose them, so the swap is refused "
		        "and nothing was changed; drop this migration (shadow cleanup --before now) and "
		        "prepare again\n",
		        n, first);
	return false;
}

/* The catalog read of SH_AROUND_SQL, prepared by sh_exchange (a generic plan, made once). */
static PGresult *
sh_around(PGconn *t, const char *arr, const char *schema, const char *in, const char *pres)
{
	const char *p[4] = {arr, schema, in, pres};
	PGresult *r;

	r = PQexecPrepared(t, "pgdbm_shadow_around", 4, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		sh_error("cannot read the catalog for the swap", PQerrorMessage(t));
		PQclear(r);
		return NULL;
	}
	return r;
}

/* One try of the exchange; 1 done, 0 a lock not had in time (retry), -1 failed. */
static int
sh_exchange_try(PGconn *t, const char *schema, const char *in, const char *out,
                const shadowsql_state *st, const char *const *tables, int ntables,
                bool set_sequences, bool drop_in_schema, int lock_ms, bool dry, int64_t *held_ms)
{
	strbuf q, arr, pres;
	PGresult *r = NULL;
	int rc = -1;
	int64_t t0;

	strbuf_init(&q);
	strbuf_init(&arr);
	strbuf_init(&pres);
	{
		const char *pres_names[SHADOWSQL_MAX_TABLES];
		int npres = 0;

		for (int i = 0; i < ntables; i++)
			for (int j = 0; set_sequences && j < st->ntables; j++)
				if (strcmp(st->tables[j].name, tables[i]) == 0 && st->tables[j].preserved)
					pres_names[npres++] = tables[i];
		if (!shadowsql_array_literal(&arr, tables, ntables) ||
		    !shadowsql_array_literal(&pres, pres_names, npres))
			goto done;
	}
	if (!strbuf_appendf(&q,
	                    "BEGIN; SET LOCAL lock_timeout = '%dms'; SET LOCAL plan_cache_mode = "
	                    "force_generic_plan; SET LOCAL search_path = ",
	                    lock_ms) ||
	    !shadowsql_ident(&q, schema))
		goto done;
	if (!sh_exec(t, strbuf_data(&q), "cannot begin the swap"))
		goto done;
	/*
	 * The catalog read once before the locks, its result thrown away: the
	 * plan and the server's catalog caches are warm when it runs again under
	 * the locks, where its answer counts. About half the locked time saved.
	 */
	r = sh_around(t, strbuf_data(&arr), schema, in, strbuf_data(&pres));
	if (r == NULL)
	{
		sh_exec(t, "ROLLBACK", NULL);
		goto done;
	}
	PQclear(r);
	r = NULL;
	t0 = cli_now_ms();
	/* every table of both sides locked first, out-tables first, as the application meets them */
	strbuf_reset(&q);
	/*
	 * lock_timeout bounds each lock's wait; the statement's timeout bounds
	 * them all together, so the application never waits behind the swap's
	 * queue for more than about lock_ms, however many tables are busy.
	 */
	if (!strbuf_appendf(&q, "SET LOCAL statement_timeout = '%dms'; LOCK TABLE ", lock_ms))
		goto done;
	for (int i = 0; i < ntables; i++)
		if ((i && !strbuf_append_cstr(&q, ", ")) || !shadowsql_ident(&q, schema) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, tables[i]))
			goto done;
	for (int i = 0; i < ntables; i++)
		if (!strbuf_append_cstr(&q, ", ") || !shadowsql_ident(&q, in) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, tables[i]))
			goto done;
	if (!strbuf_append_cstr(&q, " IN ACCESS EXCLUSIVE MODE; SET LOCAL statement_timeout = 0"))
		goto done;
	if (!dry)
	{
		r = PQexec(t, strbuf_data(&q));
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			/* lock_not_available, or query_canceled by the statement's timeout */
			rc = state && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0) ? 0 : -1;
			if (rc < 0)
				sh_error("the swap could not lock the tables", PQerrorMessage(t));
			PQclear(r);
			r = NULL;
			sh_exec(t, "ROLLBACK", NULL);
			goto done;
		}
		PQclear(r);
		r = NULL;
	}
	/* a swap: every write to a preserved table must be in its shadow (none comes now) */
	if (set_sequences && !sh_sync_clean(t, in))
	{
		sh_exec(t, "ROLLBACK", NULL);
		goto done;
	}
	r = sh_around(t, strbuf_data(&arr), schema, in, strbuf_data(&pres));
	if (r == NULL)
	{
		sh_exec(t, "ROLLBACK", NULL);
		goto done;
	}
	strbuf_reset(&q);
	for (int i = 0; i < PQntuples(r); i++)
		if (atoi(PQgetvalue(r, i, 0)) == 1 &&
		    (!strbuf_append_cstr(&q, PQgetvalue(r, i, 1)) || !strbuf_append_char(&q, '\n')))
			goto done;
	if (!strbuf_appendf(&q, "CREATE SCHEMA IF NOT EXISTS \"%s\";\n", out))
		goto done;
	for (int i = 0; i < ntables; i++)
		if (!shadowsql_move_sql(&q, schema, tables[i], out))
			goto done;
	for (int i = 0; i < ntables; i++)
		if (!shadowsql_move_sql(&q, in, tables[i], schema))
			goto done;
	for (int i = 0; i < PQntuples(r); i++)
		if (atoi(PQgetvalue(r, i, 0)) == 3 &&
		    (!strbuf_append_cstr(&q, PQgetvalue(r, i, 1)) || !strbuf_append_char(&q, '\n')))
			goto done;
	for (int i = 0; set_sequences && i < st->nseqs; i++)
	{
		if (!strbuf_append_cstr(&q, "SELECT setval(c, ") ||
		    !strbuf_appendf(&q, "%lld, %s) FROM to_regclass(", st->seqs[i].value,
		                    st->seqs[i].called ? "true" : "false"))
			goto done;
		{
			strbuf id;
			bool ok;

			strbuf_init(&id);
			ok = shadowsql_ident(&id, schema) && strbuf_append_char(&id, '.') &&
			     shadowsql_ident(&id, st->seqs[i].name) &&
			     strbuf_append_sql_literal(&q, strbuf_data(&id), strbuf_len(&id)) &&
			     strbuf_append_cstr(&q, ") c WHERE c IS NOT NULL;\n");
			strbuf_free(&id);
			if (!ok)
				goto done;
		}
	}
	if (dry)
	{
		sh_show(strbuf_data(&q));
		sh_exec(t, "ROLLBACK", NULL);
		rc = 1;
		goto done;
	}
	if (!sh_exec(t, strbuf_data(&q), "the swap failed, nothing was changed") ||
	    !sh_exec(t, "COMMIT", "the swap's commit failed, nothing was changed"))
	{
		sh_exec(t, "ROLLBACK", NULL);
		goto done;
	}
	*held_ms = cli_now_ms() - t0;
	rc = 1;
	/*
	 * The emptied schema goes after the commit, out of the locked time (the
	 * swap's own schema, created in its transaction, says it committed). The
	 * swap's shadow schema holds the sync functions still: CASCADE, nothing
	 * else can be in it; a rollback's backup schema must be empty.
	 */
	strbuf_reset(&q);
	if (drop_in_schema &&
	    strbuf_appendf(&q, "DROP SCHEMA IF EXISTS \"%s\"%s", in, set_sequences ? " CASCADE" : ""))
		(void)sh_exec(t, strbuf_data(&q), NULL);
done:
	PQclear(r);
	strbuf_free(&q);
	strbuf_free(&arr);
	strbuf_free(&pres);
	return rc;
}

/* The exchange with its retries: short lock waits, growing pauses between, a bounded count. */
static bool
sh_exchange(PGconn *t, const shadow_opts *o, const char *schema, const char *in, const char *out,
            const shadowsql_state *st, const char *const *tables, int ntables, bool set_sequences,
            bool drop_in_schema, int64_t *held_ms, int *tries)
{
	int pause_ms = 100;
	PGresult *prep = PQprepare(t, "pgdbm_shadow_around", SH_AROUND_SQL, 4, NULL);

	if (PQresultStatus(prep) != PGRES_COMMAND_OK)
	{
		sh_error("cannot prepare the swap's catalog read", PQerrorMessage(t));
		PQclear(prep);
		return false;
	}
	PQclear(prep);
	for (*tries = 1; *tries <= o->lock_tries; (*tries)++)
	{
		int r = sh_exchange_try(t, schema, in, out, st, tables, ntables, set_sequences,
		                        drop_in_schema, o->lock_timeout_ms, o->dry_run, held_ms);

		if (r != 0)
			return r > 0;
		fprintf(stderr,
		        "pg_dbmigrator shadow: try %d of %d: a table was busy for more than %d ms; "
		        "trying again in %d ms\n",
		        *tries, o->lock_tries, o->lock_timeout_ms, pause_ms);
		usleep((useconds_t)pause_ms * 1000);
		pause_ms = pause_ms * 2 > 5000 ? 5000 : pause_ms * 2;
	}
	fprintf(stderr,
	        "pg_dbmigrator shadow: gave up after %d tries: the tables were always busy (long "
	        "transactions on them?); nothing was changed, the state is as before: run the same "
	        "command again later, or raise --lock-timeout/--lock-retries\n",
	        o->lock_tries);
	return false;
}

/* Row count and content sum of schema.table: md5 over the sorted md5s of the rows' text. */
static bool
sh_table_sum(PGconn *t, const char *schema, const char *table, long long *rows, char sum[33])
{
	strbuf q;
	PGresult *r;
	bool ok;

	strbuf_init(&q);
	ok = strbuf_append_cstr(&q, "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), "
	                            "'') FROM (SELECT md5(x::text) AS h FROM ") &&
	     shadowsql_ident(&q, schema) && strbuf_append_char(&q, '.') && shadowsql_ident(&q, table) &&
	     strbuf_append_cstr(&q, " x) s");
	r = ok ? sh_query(t, strbuf_data(&q), 0, NULL, "cannot sum a backup table") : NULL;
	ok = r != NULL;
	if (ok)
	{
		*rows = atoll(PQgetvalue(r, 0, 0));
		snprintf(sum, 33, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	strbuf_free(&q);
	return ok;
}

/* After an exchange: the foreign keys added NOT VALID are validated (warnings only). */
static void
sh_validate_fks(PGconn *t, const char *schema)
{
	const char *p[1] = {schema};
	PGresult *r = sh_query(t,
	                       "SELECT format('ALTER TABLE %s VALIDATE CONSTRAINT %I', "
	                       "conrelid::regclass, conname) FROM pg_constraint con JOIN pg_class c "
	                       "ON c.oid = con.confrelid JOIN pg_namespace n ON n.oid = "
	                       "c.relnamespace WHERE NOT con.convalidated AND con.contype = 'f' AND "
	                       "n.nspname = $1",
	                       1, p, "cannot list the foreign keys to validate");

	for (int i = 0; r && i < PQntuples(r); i++)
		if (!sh_exec(t, PQgetvalue(r, i, 0), NULL))
			fprintf(stderr,
			        "pg_dbmigrator shadow: warning: %s failed (it stays NOT VALID, new rows are "
			        "checked): %s",
			        PQgetvalue(r, i, 0), PQerrorMessage(t));
	PQclear(r);
}

/* The manifest of backup schema bk: rows and sums of every table of st. */
static bool
sh_manifest(PGconn *t, const char *bk, shadowsql_state *st)
{
	for (int i = 0; i < st->ntables; i++)
		if (!sh_table_sum(t, bk, st->tables[i].name, &st->tables[i].rows, st->tables[i].sum))
			return false;
	return true;
}

/* The schema exists on the target. */
static int
sh_schema_exists(PGconn *t, const char *name)
{
	const char *p[1] = {name};
	PGresult *r = sh_query(t, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, p,
	                       "cannot read the target's schemas");
	int yes = r ? PQntuples(r) > 0 : -1;

	PQclear(r);
	return yes;
}

/* swap: the prepared shadow becomes live, the live tables the backup, in one transaction. */
int
shadow_swap(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st));
	const char *tables[SHADOWSQL_MAX_TABLES];
	char shadow[SHADOWSQL_NAME + 32], bk[SHADOWSQL_NAME + 32];
	PGconn *t = NULL;
	int rc = EXIT_ERROR, tries = 0, exists;
	int64_t held = 0;

	if (st == NULL)
		return EXIT_ERROR;
	if (o->timestamp ? !sh_state_load(o->state_dir, o->timestamp, st)
	                 : !sh_state_find(o, "prepared swapping", st))
	{
		if (!o->timestamp)
			sh_error("no prepared migration to swap in the state directory", o->state_dir);
		goto error;
	}
	if (strcmp(st->phase, "prepared") != 0 && strcmp(st->phase, "swapping") != 0)
	{
		fprintf(stderr, "pg_dbmigrator shadow: migration %s is %s, not prepared: nothing to swap\n",
		        st->ts, st->phase);
		goto error;
	}
	if (st->slot[0] && !replconn_valid_slot_name(st->slot, NULL, 0))
	{
		fprintf(stderr, "pg_dbmigrator shadow: the state of migration %s names no valid slot\n",
		        st->ts);
		goto error;
	}
	if (st->slot[0] && (o->source == NULL || o->source[0] == '\0'))
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: migration %s streams from the source (prepare --online): "
		        "give --source URI, to drain its stream and drop its slot %s\n",
		        st->ts, st->slot);
		goto error;
	}
	shadowsql_shadow_schema(st->ts, shadow, sizeof(shadow));
	shadowsql_backup_schema(st->ts, bk, sizeof(bk));
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	for (int i = 0; i < st->ntables; i++)
		tables[i] = st->tables[i].name;
	/* a swap killed around its commit: its backup schema is made in that same transaction */
	exists = sh_schema_exists(t, bk);
	if (exists < 0)
		goto error;
	if (exists == 1)
	{
		char drop[SHADOWSQL_NAME + 64];

		fprintf(stderr,
		        "pg_dbmigrator shadow: migration %s was swapped before the tool "
		        "stopped: finishing its record\n",
		        st->ts);
		snprintf(drop, sizeof(drop), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", shadow);
		(void)sh_exec(t, drop, NULL);
	}
	else if ((exists = sh_schema_exists(t, shadow)) < 0)
		goto error;
	else if (exists == 0)
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: the shadow schema %s of migration %s is gone: prepare "
		        "again\n",
		        shadow, st->ts);
		goto error;
	}
	else
	{
		/* online: the source's changes up to now into the shadow, before any lock */
		if (st->slot[0] && !sh_online_drain(o, st, shadow))
		{
			fprintf(stderr, "pg_dbmigrator shadow: the live tables are untouched; run the same "
			                "swap again\n");
			goto error;
		}
		if (!o->dry_run)
		{
			snprintf(st->phase, sizeof(st->phase), "swapping");
			if (!sh_state_save(o->state_dir, st))
				goto error;
		}
		else
			printf("Plan (dry run, nothing changed): swap migration %s, %d tables; the live "
			       "tables of %s go to %s:\n",
			       st->ts, st->ntables, st->schema, bk);
		if (!sh_exchange(t, o, st->schema, shadow, bk, st, tables, st->ntables, true, true, &held,
		                 &tries))
		{
			if (!o->dry_run)
			{
				snprintf(st->phase, sizeof(st->phase), "prepared");
				(void)sh_state_save(o->state_dir, st);
			}
			goto error;
		}
		if (o->dry_run)
		{
			rc = EXIT_OK;
			goto error;
		}
		fprintf(stderr,
		        "pg_dbmigrator shadow: swapped migration %s: %d tables; the tables were locked "
		        "for %lld ms (try %d); the previous tables are in schema %s\n",
		        st->ts, st->ntables, (long long)held, tries, bk);
	}
	sh_validate_fks(t, st->schema);
	if (!sh_manifest(t, bk, st))
		goto error;
	/* online: the slot goes before the record says swapped (killed here: the same swap again) */
	if (st->slot[0] && !sh_online_forget(o, t, st))
		goto error;
	snprintf(st->phase, sizeof(st->phase), "swapped");
	if (!sh_state_save(o->state_dir, st))
		goto error;
	if (o->json)
		printf("{\"event\": \"ShadowSwapped\", \"timestamp\": \"%s\", \"tables\": %d, "
		       "\"locked_ms\": %lld, \"tries\": %d, \"backup_schema\": \"%s\"}\n",
		       st->ts, st->ntables, (long long)held, tries, bk);
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}

/* rollback: a backup swapped back in; what it replaces becomes a backup of its own. */
int
shadow_rollback(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st)), *now = calloc(1, sizeof(*now));
	const char *tables[SHADOWSQL_MAX_TABLES];
	char bk[SHADOWSQL_NAME + 32], nbk[SHADOWSQL_NAME + 32];
	PGconn *t = NULL;
	int rc = EXIT_ERROR, n = 0, tries = 0;
	int64_t held = 0;

	if (st == NULL || now == NULL)
		goto error;
	if (o->timestamp ? !sh_state_load(o->state_dir, o->timestamp, st)
	                 : !sh_state_find(o, "swapped", st))
	{
		if (!o->timestamp)
			sh_error("no backup to roll back to in the state directory", o->state_dir);
		goto error;
	}
	if (strcmp(st->phase, "swapped") != 0)
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: migration %s is %s: it has no backup to roll "
		        "back to\n",
		        st->ts, st->phase);
		goto error;
	}
	for (int i = 0; i < st->ntables; i++)
		if (!in_list(o->keep, st->tables[i].name))
			tables[n++] = st->tables[i].name;
	for (int i = 0; o->keep[i]; i++)
		if (shadowsql_state_table(st, o->keep[i]) == NULL)
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: --keep-tables names %s, not a table of "
			        "migration %s\n",
			        o->keep[i], st->ts);
			goto error;
		}
	shadowsql_backup_schema(st->ts, bk, sizeof(bk));
	/* the tables rolled back over are kept as a new backup */
	sh_new_ts(o->state_dir, st->ts, now->ts);
	if (strcmp(now->ts, st->ts) <= 0)
	{
		sh_error("the clock says it is not later than the backup's time; is it right?", NULL);
		goto error;
	}
	shadowsql_backup_schema(now->ts, nbk, sizeof(nbk));
	snprintf(now->schema, sizeof(now->schema), "%s", st->schema);
	snprintf(now->origin, sizeof(now->origin), "rollback");
	snprintf(now->phase, sizeof(now->phase), "swapped");
	for (int i = 0; i < n; i++)
	{
		shadowsql_table *tb = &now->tables[now->ntables++];

		snprintf(tb->name, sizeof(tb->name), "%s", tables[i]);
		tb->rows = -1;
	}
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	if (o->dry_run)
		printf("Plan (dry run, nothing changed): roll back to migration %s: %d tables from %s, "
		       "the live ones to %s:\n",
		       st->ts, n, bk, nbk);
	if (!sh_exchange(t, o, st->schema, bk, nbk, st, tables, n, false, o->keep[0] == NULL, &held,
	                 &tries))
		goto error;
	if (o->dry_run)
	{
		rc = EXIT_OK;
		goto error;
	}
	snprintf(st->phase, sizeof(st->phase), o->keep[0] ? "swapped" : "rolled-back");
	if (o->keep[0])
	{
		/* only the kept tables' backups stay in the old schema */
		int k = 0;

		for (int i = 0; i < st->ntables; i++)
			if (in_list(o->keep, st->tables[i].name))
				st->tables[k++] = st->tables[i];
		st->ntables = k;
	}
	if (!sh_state_save(o->state_dir, st))
		goto error;
	fprintf(stderr,
	        "pg_dbmigrator shadow: rolled back to migration %s: %d tables; the tables were locked "
	        "for %lld ms (try %d); the replaced tables are backup %s\n",
	        st->ts, n, (long long)held, tries, now->ts);
	sh_validate_fks(t, st->schema);
	if (!sh_manifest(t, nbk, now) || !sh_state_save(o->state_dir, now))
		goto error;
	if (o->json)
		printf("{\"event\": \"ShadowRolledBack\", \"timestamp\": \"%s\", \"tables\": %d, "
		       "\"locked_ms\": %lld, \"new_backup\": \"%s\"}\n",
		       st->ts, n, (long long)held, now->ts);
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	free(now);
	return rc;
}

/* The total size of schema's tables on the target (-1 if unknown). */
static long long
sh_schema_size(PGconn *t, const char *schema)
{
	const char *p[1] = {schema};
	PGresult *r = t ? sh_query(t,
	                           "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM "
	                           "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
	                           "n.nspname = $1 AND c.relkind = 'r'",
	                           1, p, "cannot size a backup")
	                : NULL;
	long long v = r ? atoll(PQgetvalue(r, 0, 0)) : -1;

	PQclear(r);
	return v;
}

/* list (backups) or status (every migration not cleaned up). */
static int
sh_report(const shadow_opts *o, bool backups_only)
{
	static char ts[1024][SHADOWSQL_TS];
	shadowsql_state *st = calloc(1, sizeof(*st));
	PGconn *t = o->dest ? sh_connect(o->dest, PGSESSION_TARGET, "target") : NULL;
	int n = sh_state_all(o->state_dir, ts, 1024), shown = 0;

	if (st == NULL || (o->dest && t == NULL))
	{
		free(st);
		return EXIT_ERROR;
	}
	if (o->json)
		printf("[");
	for (int i = n - 1; i >= 0; i--)
	{
		char sch[SHADOWSQL_NAME + 32];
		long long size, sync_errors;
		int preserved = 0;

		if (!sh_state_load(o->state_dir, ts[i], st) || strcmp(st->phase, "cleaned") == 0 ||
		    (o->timestamp && strcmp(o->timestamp, st->ts) != 0))
			continue;
		if (backups_only && strcmp(st->phase, "swapped") != 0)
			continue;
		for (int k = 0; k < st->ntables; k++)
			preserved += st->tables[k].preserved;
		if (strcmp(st->phase, "swapped") == 0)
			shadowsql_backup_schema(st->ts, sch, sizeof(sch));
		else
			shadowsql_shadow_schema(st->ts, sch, sizeof(sch));
		size = sh_schema_size(t, sch);
		{
			char first[256];

			sync_errors =
			    t && (strcmp(st->phase, "prepared") == 0 || strcmp(st->phase, "swapping") == 0)
			        ? sh_sync_errors(t, sch, first, sizeof(first))
			        : -1;
			if (sync_errors < 0)
				PQclear(PQexec(t, "SELECT 1")); /* the session goes on */
		}
		if (o->json)
		{
			printf("%s{\"timestamp\": \"%s\", \"phase\": \"%s\", \"origin\": \"%s\", "
			       "\"schema\": \"%s\", \"tables\": %d, \"preserved_tables\": %d, \"bytes\": "
			       "%lld, \"sync_errors\": %lld}",
			       shown ? ", " : "", st->ts, st->phase, st->origin, sch, st->ntables, preserved,
			       size, sync_errors);
		}
		else
		{
			if (shown == 0)
				printf("%-15s %-12s %-9s %6s %9s %12s  %s\n", "TIMESTAMP", "PHASE", "ORIGIN",
				       "TABLES", "PRESERVED", "BYTES", "SCHEMA");
			printf("%-15s %-12s %-9s %6d %9d %12lld  %s", st->ts, st->phase, st->origin,
			       st->ntables, preserved, size, sch);
			if (sync_errors > 0)
				printf("  (%lld writes not carried into the shadow: prepare again)", sync_errors);
			printf("\n");
		}
		shown++;
	}
	if (o->json)
		printf("]\n");
	else if (shown == 0)
		printf(backups_only ? "no backups\n" : "no migrations\n");
	if (t)
		PQfinish(t);
	free(st);
	return EXIT_OK;
}

int
shadow_list(const shadow_opts *o)
{
	return sh_report(o, true);
}

int
shadow_status(const shadow_opts *o)
{
	return sh_report(o, false);
}

/* cleanup: the backups (and unswapped shadows) older than --before dropped. */
int
shadow_cleanup(const shadow_opts *o)
{
	static char ts[1024][SHADOWSQL_TS];
	shadowsql_state *st = calloc(1, sizeof(*st));
	char key[SHADOWSQL_TS];
	PGconn *t = NULL;
	int n, dropped = 0, rc = EXIT_ERROR;

	if (st == NULL)
		return EXIT_ERROR;
	if (strcmp(o->before, "now") == 0)
	{
		sh_now_ts(key);
		key[13]++; /* this very second too */
	}
	else if (!shadowsql_date_key(o->before, key))
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: --before \"%s\" is not a date (2026-12-02, "
		        "2026-12-02T10:30 or \"now\")\n",
		        o->before);
		free(st);
		return EXIT_USAGE;
	}
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	n = sh_state_all(o->state_dir, ts, 1024);
	for (int i = 0; i < n; i++)
	{
		char sch[2][SHADOWSQL_NAME + 32];
		strbuf q;
		bool ok;

		if (strcmp(ts[i], key) >= 0 || !sh_state_load(o->state_dir, ts[i], st) ||
		    strcmp(st->phase, "cleaned") == 0 || strcmp(st->phase, "swapping") == 0)
			continue;
		shadowsql_backup_schema(st->ts, sch[0], sizeof(sch[0]));
		shadowsql_shadow_schema(st->ts, sch[1], sizeof(sch[1]));
		strbuf_init(&q);
		/* tables by name, never CASCADE: an object of the application's that still uses one
		 * stops the drop */
		/* an unswapped shadow's sync triggers go with it: never a long wait on a live table */
		ok = strbuf_append_cstr(&q, "BEGIN; SET LOCAL lock_timeout = '5s';\n");
		for (int s = 0; ok && s < 2; s++)
		{
			/* one statement: the foreign keys between them go with them */
			ok = ok && strbuf_append_cstr(&q, "DROP TABLE IF EXISTS ");
			for (int k = 0; ok && k < st->ntables; k++)
				ok = (k == 0 || strbuf_append_cstr(&q, ", ")) && shadowsql_ident(&q, sch[s]) &&
				     strbuf_append_char(&q, '.') && shadowsql_ident(&q, st->tables[k].name);
			ok = ok && strbuf_append_cstr(&q, ";\n");
			/* the shadow schema holds our sync functions too: they go with their triggers */
			ok = ok && strbuf_appendf(&q, "DROP SCHEMA IF EXISTS \"%s\"%s;\n", sch[s],
			                          s == 1 ? " CASCADE" : "");
		}
		ok = ok && strbuf_append_cstr(&q, "COMMIT;\n");
		if (ok && o->dry_run)
			sh_show(strbuf_data(&q));
		else if (!ok || !sh_exec(t, strbuf_data(&q), "cannot drop a backup"))
		{
			sh_exec(t, "ROLLBACK", NULL);
			strbuf_free(&q);
			goto error;
		}
		strbuf_free(&q);
		if (!o->dry_run)
		{
			snprintf(st->phase, sizeof(st->phase), "cleaned");
			if (!sh_state_save(o->state_dir, st))
				goto error;
			fprintf(stderr, "pg_dbmigrator shadow: dropped migration %s's tables\n", st->ts);
		}
		dropped++;
	}
	if (o->json)
		printf("{\"event\": \"ShadowCleanedUp\", \"migrations\": %d, \"dry_run\": %s}\n", dropped,
		       o->dry_run ? "true" : "false");
	else if (dropped == 0)
		fprintf(stderr, "pg_dbmigrator shadow: nothing older than %s\n", o->before);
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}

/* verify: a backup's tables against the manifest made when it was made. */
int
shadow_verify(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st));
	char bk[SHADOWSQL_NAME + 32];
	PGconn *t = NULL;
	int rc = EXIT_ERROR, bad = 0;

	if (st == NULL)
		return EXIT_ERROR;
	if (!sh_state_load(o->state_dir, o->timestamp, st))
		goto error;
	if (strcmp(st->phase, "swapped") != 0)
	{
		fprintf(stderr, "pg_dbmigrator shadow: migration %s is %s: it has no backup to verify\n",
		        st->ts, st->phase);
		goto error;
	}
	shadowsql_backup_schema(st->ts, bk, sizeof(bk));
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	for (int i = 0; i < st->ntables; i++)
	{
		long long rows;
		char sum[33];
		const shadowsql_table *tb = &st->tables[i];

		if (!sh_table_sum(t, bk, tb->name, &rows, sum))
		{
			bad++;
			continue;
		}
		if (rows != tb->rows || strcmp(sum, tb->sum) != 0)
		{
			fprintf(stderr,
			        "pg_dbmigrator shadow: backup table %s.%s differs from its manifest: %lld "
			        "rows (manifest %lld), sum %s (manifest %s)\n",
			        bk, tb->name, rows, tb->rows, sum, tb->sum);
			bad++;
		}
		if (o->json)
			printf("{\"table\": \"%s\", \"rows\": %lld, \"manifest_rows\": %lld, \"ok\": %s}\n",
			       tb->name, rows, tb->rows,
			       rows == tb->rows && strcmp(sum, tb->sum) == 0 ? "true" : "false");
	}
	if (bad)
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow: backup %s: %d of %d tables differ from the "
		        "manifest\n",
		        st->ts, bad, st->ntables);
		rc = EXIT_DIFFERS;
	}
	else
	{
		fprintf(stderr, "pg_dbmigrator shadow: backup %s: %d tables match the manifest\n", st->ts,
		        st->ntables);
		rc = EXIT_OK;
	}
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}
