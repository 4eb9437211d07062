/*
 * shadow.c — the work of `pg_dbmigrator shadow` (see shadow.h): prepare the
 * shadow tables and swap them in (the exchange itself is shadow_exchange.c;
 * rollback, list, status, cleanup and verify are shadow_backup.c).
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
#include "events.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadow_internal.h"
#include "shadowsql.h"
#include "shadowstream.h"
#include "strbuf.h"

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
void
sh_show(const char *sql)
{
	if (sh_json())
		event_say("ShadowPlan", "info", "%s", sql);
	else
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

/* The stream's options for migration st, whose shadow schema is shadow (the rest left as is). */
static void
sh_stream_opts_of(const shadow_opts *o, const shadowsql_state *st, const char *shadow,
                  shstream_opts *so)
{
	so->source = o->source;
	so->dest = o->dest;
	so->name = st->slot;
	so->shadow_schema = shadow;
	so->source_system = st->source_system;
	if (!pgo_lsn_parse(st->consistent_lsn, &so->run_lsn))
		so->run_lsn = 0;
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
	sh_stream_opts_of(o, st, shadow, &so);
	so.resuming = resuming;
	so.stop = &sh_stop_streaming;
	ok = shstream_run(&so, rc, &res, err, sizeof(err));
	/* a server away: streaming again from the slot, while it makes progress within 5 min */
	best = res.applied_lsn;
	for (int64_t since = cli_now_ms(), wait = 1000;
	     !ok && res.retryable && !sh_stop_streaming && cli_now_ms() - since < 300 * 1000;)
	{
		sh_say("warning", "%s; streaming again in %lld s", err, (long long)wait / 1000);
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
		sh_say("info",
		       "migration %s stays prepared and its slot %s keeps the "
		       "source's changes: prepare --online again streams on from it, shadow swap "
		       "--source URI --timestamp %s drains it and swaps",
		       st->ts, st->slot, st->ts);
		return EXIT_ERROR;
	}
	sh_say("info",
	       "stopped streaming migration %s: applied up to %s (%llu "
	       "transactions); the slot %s keeps the source's later changes for the swap",
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
		printf(
		    "-- drain: stop the streaming prepare%s, stream slot %s up to the source's "
		    "pg_current_wal_insert_lsn() (flushed) into schema %s, read the source's sequences\n",
		    st->pid ? "" : " (none runs)", st->slot, shadow);
		return true;
	}
	if (sh_pid_is_ours(st->pid))
	{
		sh_say("info", "stopping the streaming prepare (pid %lld)", st->pid);
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
		sh_say("error",
		       "the slot %s is still streaming (a prepare --online runs "
		       "elsewhere?): stop it with Ctrl+C, then swap again",
		       st->slot);
		return false;
	}
	sh_stream_opts_of(o, st, shadow, &so);
	so.resuming = true;
	so.drain = true;
	if (!shstream_run(&so, &rc, &res, err, sizeof(err)))
	{
		sh_error("the drain of the stream failed", err);
		return false;
	}
	sh_say("info",
	       "drained the stream: applied up to %s (the source was at %s "
	       "when the drain began; %llu transactions now)",
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
		sh_say("warning",
		       "the swap is done, but %s; drop them on the source now "
		       "(SELECT pg_drop_replication_slot('%s'); DROP PUBLICATION %s;): the slot holds "
		       "the source's WAL",
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
	sh_say("info", "dropped the slot and the publication %s", st->slot);
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
	if (!sh_before_key(o->before, key))
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
			sh_say("error",
			       "migration %s streams from the source (prepare "
			       "--online): give --source URI, to drop its slot %s with it",
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
		sh_say("info", "dropped the slot and the publication %s", st->slot);
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

	sh_events_init(o, "ShadowPrepare");
	strbuf_init(&q);
	if (st == NULL)
		return EXIT_ERROR;
	/* a prepare killed before its end is done again under its own timestamp */
	if (sh_state_find(o, "preparing", st))
		sh_say("info",
		       "migration %s was not fully prepared: preparing it "
		       "again",
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
				sh_say("info",
				       "migration %s is prepared: streaming into its shadow again from its "
				       "slot %s",
				       st->ts, st->slot);
				rc = sh_online_stream(o, st, &rcs, true);
				free(st);
				return rc;
			}
			sh_say("error",
			       "migration %s is prepared and not swapped yet: swap it "
			       "(shadow swap --timestamp %s) or drop it (shadow cleanup --before now)",
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
			sh_say("error",
			       "table %s.%s is on the target only: name it in "
			       "--preserved-tables to keep its rows, or drop it first",
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
			sh_say("error",
			       "table %s.%s is on the source only: create it on the "
			       "target first (the shadow tables take the target's definitions)",
			       o->schema, PQgetvalue(rs, j, 0));
			goto error;
		}
	for (int i = 0; o->preserved[i]; i++)
	{
		char *keys[32];
		int nk;

		if (shadowsql_state_table(st, o->preserved[i]) == NULL)
		{
			sh_say("error", "preserved table %s.%s is not on the target", o->schema,
			       o->preserved[i]);
			goto error;
		}
		nk = sh_keys(t, o->schema, o->preserved[i], keys, 32);
		for (int k = 0; k < nk; k++)
			free(keys[k]);
		if (nk == 0)
		{
			sh_say("error",
			       "preserved table %s.%s has no primary key: its writes "
			       "cannot be carried into the shadow; add one first",
			       o->schema, o->preserved[i]);
			goto error;
		}
	}
	PQclear(rs);
	rs = NULL;

	if (o->dry_run)
	{
		sh_plan("Plan (dry run, nothing changed): migration %s, %d tables of schema %s into "
		        "shadow schema %s",
		        st->ts, st->ntables, o->schema, shadow);
		sh_plan("CREATE SCHEMA \"%s\";", shadow);
		for (int i = 0; i < st->ntables; i++)
			sh_plan("CREATE TABLE \"%s\".\"%s\" (LIKE \"%s\".\"%s\" INCLUDING ALL);  -- rows from "
			        "the %s",
			        shadow, st->tables[i].name, o->schema, st->tables[i].name,
			        st->tables[i].preserved ? "target, kept in step by triggers" : "source");
		if (o->online)
		{
			char name[SHSTREAM_NAME];

			shstream_name(st->ts, name, sizeof(name));
			sh_plan("-- on the source:");
			sh_plan("CREATE PUBLICATION %s FOR TABLE ...;  -- the tables not preserved", name);
			sh_plan("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (EXPORT_SNAPSHOT);  -- the copy "
			        "reads at its snapshot",
			        name);
			sh_plan("-- then the source's changes stream into %s until Ctrl+C or the swap", shadow);
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
	{
		event e;
		double secs = (double)(cli_now_ms() - t0) / 1000.0;

		event_begin(&e, "ShadowPrepared");
		event_str(&e, "timestamp", st->ts);
		event_int(&e, "tables", st->ntables);
		event_int(&e, "bytes", bytes);
		event_num(&e, "seconds", secs);
		sh_event_end(&e,
		             "prepared migration %s: %d tables in schema %s (%lld bytes copied in %.1f "
		             "s); swap with: shadow swap --timestamp %s%s",
		             st->ts, st->ntables, shadow, bytes, secs, st->ts,
		             o->online ? " --source URI" : "");
	}
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
		sh_say("error", "the live tables are untouched; run the same "
		                "command again to prepare anew");
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

/* The schema exists on the target. */
int
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

	sh_events_init(o, "ShadowSwap");
	if (st == NULL)
		return EXIT_ERROR;
	if (!sh_state_pick(o, "prepared swapping",
	                   "no prepared migration to swap in the state directory", st))
		goto error;
	if (strcmp(st->phase, "prepared") != 0 && strcmp(st->phase, "swapping") != 0)
	{
		sh_say("error", "migration %s is %s, not prepared: nothing to swap", st->ts, st->phase);
		goto error;
	}
	if (st->slot[0] && !replconn_valid_slot_name(st->slot, NULL, 0))
	{
		sh_say("error", "the state of migration %s names no valid slot", st->ts);
		goto error;
	}
	if (st->slot[0] && (o->source == NULL || o->source[0] == '\0'))
	{
		sh_say("error",
		       "migration %s streams from the source (prepare --online): "
		       "give --source URI, to drain its stream and drop its slot %s",
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

		sh_say("info",
		       "migration %s was swapped before the tool "
		       "stopped: finishing its record",
		       st->ts);
		snprintf(drop, sizeof(drop), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", shadow);
		(void)sh_exec(t, drop, NULL);
	}
	else if ((exists = sh_schema_exists(t, shadow)) < 0)
		goto error;
	else if (exists == 0)
	{
		sh_say("error",
		       "the shadow schema %s of migration %s is gone: prepare "
		       "again",
		       shadow, st->ts);
		goto error;
	}
	else
	{
		/* online: the source's changes up to now into the shadow, before any lock */
		if (st->slot[0] && !sh_online_drain(o, st, shadow))
		{
			sh_say("error", "the live tables are untouched; run the same "
			                "swap again");
			goto error;
		}
		if (!o->dry_run)
		{
			snprintf(st->phase, sizeof(st->phase), "swapping");
			if (!sh_state_save(o->state_dir, st))
				goto error;
		}
		else
			sh_plan("Plan (dry run, nothing changed): swap migration %s, %d tables; the live "
			        "tables of %s go to %s:",
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
	{
		event e;

		/* the swap's measured pause: how long the application's tables were locked */
		event_begin(&e, "ShadowSwapped");
		event_str(&e, "timestamp", st->ts);
		event_int(&e, "tables", st->ntables);
		event_int(&e, "locked_ms", held);
		event_int(&e, "tries", tries);
		event_str(&e, "backup_schema", bk);
		sh_event_end(&e,
		             "swapped migration %s: %d tables; the tables were locked for %lld ms (try "
		             "%d); the previous tables are in schema %s",
		             st->ts, st->ntables, (long long)held, tries, bk);
	}
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}

/* rollback: a backup swapped back in; what it replaces becomes a backup of its own. */
