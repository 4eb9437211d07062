/*
 * apply_session.c — the applier's target session: connect (named "pg_dbmigrator
 * apply" in pg_stat_activity unless the connection string names it), set
 * the session up, hold this slot's advisory lock (one applier a slot), make
 * and read this slot's row of the progress table, and close it all again.
 *
 * Owns: the connection (a->conn) and what apply_open allocates. Never:
 * trusts a progress row of another source or run (apply_opts).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "apply_internal.h"
#include "cli.h"
#include "events.h"
#include "pgdbm_schema.h"
#include "pgsession.h"
#include "replconn.h"

/*
 * One row per slot: how far this slot's changes are applied, and whose they
 * are (the source system and the run, see apply_opts). A table of an older
 * version gets the new columns, NULL: its rows are strangers'.
 */
static const char progress_ddl[] = PGDBM_PROGRESS_DDL;

/*
 * Read this slot's row (made if missing): trust it only if it is this
 * source's and this run's; else refuse (resuming) or start it over.
 */
static bool
apply_read_progress(applier *a)
{
	char run[PGO_LSN_STRLEN], row_run[PGO_LSN_STRLEN], msg[1024];
	const char *params[3] = {a->opts.slot_name, a->opts.source_system,
	                         a->opts.run_lsn ? pgo_lsn_format(a->opts.run_lsn, run) : NULL};
	PGresult *res = NULL;
	const char *sys;
	bool mine;

	if (!apply_pipe_exec(a,
	                     "INSERT INTO " PGDBM_PROGRESS " VALUES ($1, '0/0', now(), $2, $3) "
	                     "ON CONFLICT (slot_name) DO NOTHING",
	                     3, params, NULL) ||
	    !apply_pipe_exec(a,
	                     "SELECT lsn, source_system, run_lsn FROM " PGDBM_PROGRESS " "
	                     "WHERE slot_name = $1",
	                     1, params, &res))
		return false;
	if (PQntuples(res) != 1 || !pgo_lsn_parse(PQgetvalue(res, 0, 0), &a->progress_lsn))
	{
		PQclear(res);
		return apply_fail(a, "could not read " PGDBM_PROGRESS " on the target", NULL);
	}
	sys = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
	snprintf(row_run, sizeof(row_run), "%s", PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2));
	mine = sys && (a->opts.source_system == NULL || strcmp(sys, a->opts.source_system) == 0) &&
	       (a->opts.run_lsn == 0 || strcmp(row_run, run) == 0);
	if (!mine)
	{
		char lsn[PGO_LSN_STRLEN];

		snprintf(msg, sizeof(msg),
		         "the progress row of slot \"%s\" in " PGDBM_PROGRESS " on the target "
		         "(applied up to %s) belongs to %s%s%s%s%s",
		         a->opts.slot_name, pgo_lsn_format(a->progress_lsn, lsn),
		         sys == NULL ? "an earlier run of an older version"
		         : a->opts.source_system && strcmp(sys, a->opts.source_system) != 0
		             ? "another source (system identifier "
		             : "another run of this slot name (slot created at ",
		         sys == NULL                                                        ? ""
		         : a->opts.source_system && strcmp(sys, a->opts.source_system) != 0 ? sys
		         : row_run[0]                                                       ? row_run
		                                                                            : "unknown",
		         sys == NULL ? "" : ", not ",
		         sys == NULL ? ""
		         : a->opts.source_system && strcmp(sys, a->opts.source_system) != 0
		             ? (a->opts.source_system ? a->opts.source_system : "?")
		             : run,
		         sys == NULL ? "" : ")");
		PQclear(res);
		if (a->opts.resuming)
		{
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
			         ": its position means nothing for this slot, so this run cannot continue from "
			         "it. Start over with --force-clean --drop-target-first, or, if the target "
			         "really holds this slot's changes up to there, record that with "
			         "UPDATE " PGDBM_PROGRESS " SET source_system = '%s'%s%s%s WHERE "
			         "slot_name = '%s'",
			         a->opts.source_system ? a->opts.source_system : "",
			         a->opts.run_lsn ? ", run_lsn = '" : "", a->opts.run_lsn ? run : "",
			         a->opts.run_lsn ? "'" : "", a->opts.slot_name);
			return apply_fail(a, msg, NULL);
		}
		if (!apply_pipe_exec(a,
		                     "UPDATE " PGDBM_PROGRESS " SET lsn = '0/0', applied_at = now(), "
		                     "source_system = $2, run_lsn = $3 WHERE slot_name = $1",
		                     3, params, NULL))
			return false;
		snprintf(a->progress_note, sizeof(a->progress_note),
		         "%.400s: not trusted, reset to this run", msg);
		a->progress_lsn = 0;
		return true;
	}
	PQclear(res);
	return true;
}

/*
 * One applier a slot on the target: a session-level advisory lock, taken
 * before the progress row is read. A run killed with kill -9 leaves its
 * target session behind, and that session goes on with the statements
 * already sent (whole groups, with their commits) until it reads the end of
 * the connection; a progress row read meanwhile is about to move, and the
 * changes after it would come twice. So the lock is waited for while its
 * holder may still commit (APPLY_LOCK_WAIT_MS at most, then an error that
 * names it: another run of the same slot is not fought over). Two holders
 * are ended at once instead: this process's own previous session (a
 * reconnect after the target's connection was lost: it will never hear from
 * us again), and a session idle in a transaction for APPLY_LOCK_IDLE_S (an
 * open group whose client is gone: a killed run's session would have read
 * the end of its connection, a live one sends its group in one go); what
 * they hold was never committed and rolls back.
 */
#define APPLY_LOCK_CLASS   0x70676462 /* "pgdb": the first key of our advisory locks */
#define APPLY_LOCK_WAIT_MS 60000
#define APPLY_LOCK_SAY_MS  2000 /* a wait this long is said */
#define APPLY_LOCK_IDLE_S  5

/* The second key: FNV-1a of the slot name, as a signed 32-bit value. */
static int32_t
apply_lock_key(const char *slot)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)slot; *p; p++)
		h = (h ^ *p) * 16777619u;
	return (int32_t)h;
}

/* The lock's holder: who (for the messages), and its pid if it is to be ended. */
typedef struct apply_lock_holder
{
	char who[256];
	char end_pid[16]; /* "" unless ours from before, or idle in a transaction long */
} apply_lock_holder;

static void
apply_lock_find_holder(applier *a, const char *const *keys, apply_lock_holder *h)
{
	char idle[16], mine[16];
	const char *params[4] = {keys[0], keys[1], idle, mine};
	PGresult *res;

	snprintf(idle, sizeof(idle), "%d", APPLY_LOCK_IDLE_S);
	snprintf(mine, sizeof(mine), "%d", a->opts.previous_backend_pid);
	res = PQexecParams(
	    a->conn,
	    "SELECT l.pid, coalesce(nullif(s.application_name, ''), '?'), "
	    "coalesce(s.state, '?'), l.pid = $4::int OR (s.state LIKE 'idle in transaction%' "
	    "AND s.state_change < now() - make_interval(secs => $3::int)) "
	    "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity s USING (pid) "
	    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
	    "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
	    "AND l.classid::int = $1::int AND l.objid::int = $2::int AND l.objsubid = 2",
	    4, NULL, params, NULL, NULL, 0);

	h->end_pid[0] = '\0';
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
	{
		snprintf(h->who, sizeof(h->who), "pid %s, application_name \"%s\", %s",
		         PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		if (PQgetvalue(res, 0, 3)[0] == 't')
			snprintf(h->end_pid, sizeof(h->end_pid), "%s", PQgetvalue(res, 0, 0));
	}
	else
		snprintf(h->who, sizeof(h->who), "a session that has just ended");
	PQclear(res);
}

/* Try the lock once: 1 taken, 0 held by another, -1 failed (a->errmsg). */
static int
apply_lock_try(applier *a, const char *const *keys)
{
	PGresult *res = NULL;
	bool got;

	if (!apply_pipe_exec(a, "SELECT pg_catalog.pg_try_advisory_lock($1::int, $2::int)", 2, keys,
	                     &res))
		return -1;
	got = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return got ? 1 : 0;
}

/* End a holder that will never commit (once); false with why when the target refuses. */
static bool
apply_lock_end_holder(applier *a, const apply_lock_holder *h, char *why, size_t size)
{
	const char *pid[1] = {h->end_pid};
	PGresult *res;
	bool ok;

	if (!a->opts.quiet)
		event_say("StreamApply", "warning",
		          "ending the target session that holds slot \"%s\" (%s): %s, it has "
		          "nothing left to commit",
		          a->opts.slot_name, h->who,
		          atoi(h->end_pid) == a->opts.previous_backend_pid
		              ? "this run's session before the reconnect"
		              : "its client gone with a transaction open");
	res = PQexecParams(a->conn, "SELECT pg_catalog.pg_terminate_backend($1::int)", 1, NULL, pid,
	                   NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(why, size, "; it could not be ended: %s", PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static bool
apply_lock_slot(applier *a)
{
	char k1[16], k2[16], msg[1024], ended[16] = "", why[512] = "";
	const char *keys[2] = {k1, k2};
	int64_t start = cli_now_ms();
	bool said = false;
	apply_lock_holder h;

	snprintf(k1, sizeof(k1), "%d", (int)APPLY_LOCK_CLASS);
	snprintf(k2, sizeof(k2), "%d", (int)apply_lock_key(a->opts.slot_name));
	for (;;)
	{
		int got = apply_lock_try(a, keys);
		int64_t waited = cli_now_ms() - start;

		if (got != 0)
			return got == 1;
		apply_lock_find_holder(a, keys, &h);
		if (h.end_pid[0] && strcmp(h.end_pid, ended) != 0)
		{
			snprintf(ended, sizeof(ended), "%s", h.end_pid);
			if (apply_lock_end_holder(a, &h, why, sizeof(why)))
				continue;
		}
		if (waited >= APPLY_LOCK_WAIT_MS)
		{
			for (size_t n = strlen(why); n > 0 && why[n - 1] == '\n'; n--)
				why[n - 1] = '\0';
			snprintf(msg, sizeof(msg),
			         "another session applies the changes of slot \"%s\" to the target (%s) "
			         "and has not ended in %d s%s: if it is another pg_dbmigrator, stop it; if "
			         "it is left from a run that was killed, it ends when its last statements "
			         "are done (or pg_terminate_backend it); then run again",
			         a->opts.slot_name, h.who, APPLY_LOCK_WAIT_MS / 1000, why);
			return apply_fail(a, msg, NULL);
		}
		if (!said && waited >= APPLY_LOCK_SAY_MS && !a->opts.quiet)
		{
			event_say("StreamApply", "info",
			          "waiting for the target session that applied slot \"%s\" before (%s) to "
			          "end: it finishes what it was sent first",
			          a->opts.slot_name, h.who);
			said = true;
		}
		usleep(50 * 1000);
	}
}

/*
 * Move the progress row from $3 to $2; a division by zero (rolling the group
 * back) when the row is not at $3.
 */
static const char progress_sql[] =
    "WITH moved AS (UPDATE " PGDBM_PROGRESS " SET lsn = $2::pg_lsn, applied_at = now() "
    "WHERE slot_name = $1 AND lsn = $3::pg_lsn RETURNING 1) "
    "SELECT 1 / (SELECT count(*)::int FROM moved)";

bool
apply_open(applier *a, const apply_opts *opts, relcache *rels, char *errbuf, size_t errlen)
{
	PGresult *res = NULL;
	const char *enc, *app;

	memset(a, 0, sizeof(*a));
	a->opts = *opts;
	if (a->opts.group_txns < 1)
		a->opts.group_txns = APPLY_DEFAULT_GROUP_TXNS;
	if (a->opts.catchup_group_txns < 1)
		a->opts.catchup_group_txns = APPLY_CATCHUP_GROUP_TXNS;
	if (a->opts.group_bytes == 0)
		a->opts.group_bytes = APPLY_DEFAULT_GROUP_BYTES;
	a->rels = rels;
	strbuf_init(&a->sql);
	strbuf_init(&a->copy_buf);
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		strbuf_init(&a->batches[i].keys);
		strbuf_init(&a->batches[i].diag);
	}
	if (!replconn_check_conninfo(opts->target, errbuf, errlen))
		return false;
	{
		/* the target's session settings (client_min_messages), as every target session */
		pgsession_opts so = {.conninfo = opts->target, .role = PGSESSION_TARGET};
		char why[1024];

		a->conn = pgsession_open(&so, why, sizeof(why));
		if (a->conn == NULL)
		{
			snprintf(errbuf, errlen, "could not connect to the target: %s", why);
			apply_close(a);
			return false;
		}
	}
	/* named in pg_stat_activity unless the connection string (or PGAPPNAME) names it */
	app = PQparameterStatus(a->conn, "application_name");
	if ((app == NULL || app[0] == '\0') &&
	    !apply_pipe_exec(a, "SET application_name TO 'pg_dbmigrator apply'", 0, NULL, NULL))
		goto error;
	/* values arrive in the database's encoding (replstart.client_encoding): take them as such */
	enc = PQparameterStatus(a->conn, "server_encoding");
	snprintf(a->encoding, sizeof(a->encoding), "%s", enc ? enc : "");
	if (a->encoding[0] && PQsetClientEncoding(a->conn, a->encoding) != 0)
	{
		apply_fail_conn(a, "could not set the target's client_encoding");
		goto error;
	}
	/*
	 * whatever the target's default: a commit reported to the source must be
	 * durable on the target, which asynchronous commits become at the next
	 * synchronous one (apply.h)
	 */
	if (!apply_pipe_exec(a, REPLCONN_FORMAT_SETTINGS, 0, NULL, NULL) ||
	    !apply_pipe_exec(a,
	                     a->opts.synchronous_commit ? "SET synchronous_commit TO on"
	                                                : "SET synchronous_commit TO off",
	                     0, NULL, NULL))
		goto error;
	/* as the native apply worker: no triggers, no FK checks for replicated rows */
	res = PQexec(a->conn, "SET session_replication_role TO replica");
	a->replica_role = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	res = NULL;
	/* batches of different tables may then go in any order (apply.h) */
	a->any_order = a->replica_role;
	if (!a->replica_role)
	{
		if (!apply_pipe_exec(a, APPLY_NOTHING_FIRES_SQL, 0, NULL, &res))
			goto error;
		a->any_order = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		res = NULL;
	}
	if (!a->any_order && !opts->quiet && !opts->guarded)
		event_say("StreamApply", "info",
		          "the target role may not set session_replication_role "
		          "(it needs superuser): triggers and foreign keys on the target fire for every "
		          "applied change, which is slower and may reject rows");
	if (!apply_lock_slot(a) || !apply_pipe_exec(a, progress_ddl, 0, NULL, NULL) ||
	    !apply_read_progress(a))
		goto error;
	a->progress_written = a->progress_lsn;
	a->committed_lsn = a->progress_lsn;
	{
		/* name, text (the progress statement's parameter types come from its casts) */
		static const char *const stmts[][2] = {{APPLY_PROGRESS_STMT, progress_sql},
		                                       {APPLY_BEGIN_STMT, "BEGIN"},
		                                       {APPLY_COMMIT_STMT, "COMMIT"}};

		for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
		{
			res = PQprepare(a->conn, stmts[i][0], stmts[i][1], 0, NULL);
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				apply_fail(a, "could not prepare the apply's statements on the target",
				           PQresultErrorMessage(res));
				goto error;
			}
			PQclear(res);
			res = NULL;
		}
	}
	/*
	 * the row read may be an asynchronous commit of an earlier run not yet on
	 * the target's disk: nothing is reported flushed before it is
	 */
	if (!apply_pipe_enter(a) || !apply_make_durable(a))
		goto error;
	return true;
error:
	PQclear(res);
	snprintf(errbuf, errlen, "%s", a->errmsg);
	apply_close(a);
	return false;
}

void
apply_close(applier *a)
{
	if (a->conn)
		PQfinish(a->conn);
	a->conn = NULL;
	apply_pipe_free(a);
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		apply_batch *b = &a->batches[i];

		free(b->values);
		free(b->mask);
		b->values = NULL;
		b->mask = NULL;
		b->rel = NULL;
		strbuf_free(&b->keys);
		strbuf_free(&b->diag);
	}
	free(a->params);
	a->params = NULL;
	free(a->ptypes);
	a->ptypes = NULL;
	a->ptypes_cap = 0;
	strbuf_free(&a->sql);
	strbuf_free(&a->copy_buf);
}
