/*
 * apply.c — the apply engine (see apply.h).
 *
 * The target connection runs in libpq pipeline mode, nonblocking. One target
 * transaction (a "group") carries one or more source transactions:
 *
 *   BEGIN; <changes>; <progress>; COMMIT; Sync
 *
 * and groups follow each other without waiting. <progress> moves this slot's
 * row of _pg_dbmigrator.apply_progress from the LSN the previous group wrote
 * to this group's last end LSN, and fails (rolling the group back) if the row
 * does not hold the previous value: so a group never commits after one that
 * failed, even when the failure was at COMMIT itself. Every statement sent is
 * queued as an apply_pending entry and its answer checked in order; the end
 * LSN of a group becomes committed_lsn only when its COMMIT answered OK.
 *
 * Owns: the connection, per-relation statement state (relcache_entry.user),
 * the pending queue, the INSERT batch pointer array. Never: copies a value
 * (they are bound from the ring), or reports a position it has not seen
 * committed.
 *
 * Its parts (apply_internal.h): apply_sql.c writes the statement text and
 * column masks from a relation's target description, with no connection;
 * apply_diag.c encodes and reads the diagnostic records of batched rows.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "apply.h"
#include "apply_internal.h"
#include "replconn.h"
#include "pgdbm_schema.h"

#define APPLY_FLUSH_BYTES (256 * 1024) /* flush libpq's buffer after this much */
#define APPLY_MAX_PENDING 65536        /* statements in flight before we wait */
#define MIG_COPY_MAX_COLS 1664         /* columns a COPY row is converted with */

/* What a pending entry waits for. */
typedef enum apply_what
{
	AP_OTHER = 'X',   /* SET ...: must succeed */
	AP_PREPARE = 'R', /* a relation's statement: stmt holds its text */
	AP_BEGIN = 'B',
	AP_INSERT = 'I',
	AP_UPDATE = 'U',
	AP_DELETE = 'D',
	AP_TRUNCATE = 'T',
	AP_PROGRESS = 'P',
	AP_COMMIT = 'C', /* lsn: the group's last end LSN */
	AP_SYNC = 'S',   /* the pipeline sync after COMMIT */
	AP_ADVANCE = 'A' /* no statement: committed_lsn = lsn once everything before is answered */
} apply_what;

struct apply_pending
{
	char what;
	int rows;        /* INSERT: rows sent */
	pgo_oid relid;   /* changes: the relation */
	pgo_lsn lsn;     /* changes: WAL start of the change; COMMIT/ADVANCE: end LSN */
	pgo_lsn txn_lsn; /* changes: commit LSN of the source transaction */
	char key[APPLY_KEY_TEXT];
	char *diag; /* owned: a batched UPDATE/DELETE's rows (see apply_diag_append), or NULL */
	size_t diag_len;
	char *stmt; /* owned: the start of a PREPARE's statement, for its error; or NULL */
};

static bool apply_take_results(applier *a);
bool apply_has_pending(const applier *a);

/* ---------------------------------------------------------------- errors */

static bool
apply_fail(applier *a, const char *fmt, const char *detail)
{
	if (!a->failed)
	{
		a->failed = true;
		snprintf(a->errmsg, sizeof(a->errmsg), "%s%s%s", fmt, detail ? ": " : "",
		         detail ? detail : "");
		/* libpq messages end with a newline */
		for (size_t n = strlen(a->errmsg); n > 0 && a->errmsg[n - 1] == '\n'; n--)
			a->errmsg[n - 1] = '\0';
	}
	return false;
}

static bool
apply_fail_conn(applier *a, const char *what)
{
	return apply_fail(a, what, PQerrorMessage(a->conn));
}

/* ---------------------------------------------------------- relation state */

void
apply_rel_free(relcache_entry *entry)
{
	apply_rel *ar = entry->user;

	if (ar == NULL)
		return;
	for (apply_stmt *s = ar->stmts, *next; s; s = next)
	{
		next = s->next;
		free(s->mask);
		free(s);
	}
	for (uint16_t i = 0; ar->qcols && i < ar->ncols; i++)
		free(ar->qcols[i]);
	for (uint16_t i = 0; ar->qtypes && i < ar->ncols; i++)
		free(ar->qtypes[i]);
	free(ar->qcols);
	free(ar->qtypes);
	free(ar->types);
	free(ar->text_eq);
	free(ar->qname);
	free(ar);
	entry->user = NULL;
}

/* A quoted identifier, malloc'd. */
static char *
apply_quote(applier *a, const char *name)
{
	char *q = PQescapeIdentifier(a->conn, name, strlen(name));
	char *copy;

	if (q == NULL)
		return NULL;
	copy = strdup(q);
	PQfreemem(q);
	return copy;
}

/* ------------------------------------------------------------ the pipeline */

static bool
apply_push(applier *a, char what, const relcache_entry *rel, int rows, const char *key)
{
	apply_pending *p;

	if (a->pending_count == a->pending_cap)
	{
		size_t cap = a->pending_cap ? a->pending_cap * 2 : 1024;
		apply_pending *grown = malloc(cap * sizeof(*grown));

		if (grown == NULL)
			return apply_fail(a, "out of memory for the statement queue", NULL);
		/* unroll the ring into the new array */
		for (size_t i = 0; i < a->pending_count; i++)
			grown[i] = a->pending[(a->pending_head + i) % a->pending_cap];
		free(a->pending);
		a->pending = grown;
		a->pending_cap = cap;
		a->pending_head = 0;
	}
	p = &a->pending[(a->pending_head + a->pending_count) % a->pending_cap];
	p->what = what;
	p->rows = rows;
	p->relid = rel ? rel->relid : 0;
	p->lsn = what == AP_COMMIT || what == AP_ADVANCE ? a->group_end_lsn
	         : a->sending && a->sending->change_lsn  ? a->sending->change_lsn
	                                                 : a->change_lsn;
	p->txn_lsn = a->txn_lsn;
	p->diag = NULL;
	p->diag_len = 0;
	p->stmt = NULL;
	if (key)
		snprintf(p->key, sizeof(p->key), "%s", key);
	else
		p->key[0] = '\0';
	a->pending_count++;
	if (what != AP_ADVANCE)
		a->stats.statements++;
	return true;
}

/* Wait for the socket to be readable (and writable when want_write). */
static bool
apply_wait_socket(applier *a, bool want_write, int timeout_ms)
{
	int fd = PQsocket(a->conn);
	fd_set rfds, wfds;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	if (fd < 0)
		return apply_fail_conn(a, "lost the connection to the target");
	FD_ZERO(&rfds);
	FD_ZERO(&wfds);
	FD_SET(fd, &rfds);
	if (want_write)
		FD_SET(fd, &wfds);
	if (select(fd + 1, &rfds, want_write ? &wfds : NULL, NULL, timeout_ms < 0 ? NULL : &tv) < 0 &&
	    errno != EINTR)
		return apply_fail(a, "select() on the target connection failed", strerror(errno));
	return true;
}

/* Send everything libpq has buffered, reading answers meanwhile (no deadlock). */
static bool
apply_flush(applier *a)
{
	for (;;)
	{
		int f = PQflush(a->conn);

		if (f < 0)
			return apply_fail_conn(a, "lost the connection to the target");
		if (!apply_take_results(a))
			return false;
		if (f == 0)
			break;
		if (!apply_wait_socket(a, true, 1000))
			return false;
	}
	a->unflushed = 0;
	return true;
}

/* After queueing a statement: keep libpq's buffer and the queue bounded. */
static bool
apply_after_send(applier *a, size_t bytes)
{
	a->unflushed += bytes + 32;
	if (a->unflushed >= APPLY_FLUSH_BYTES && !apply_flush(a))
		return false;
	if (a->pending_count >= APPLY_MAX_PENDING && !apply_wait(a, -1))
		return false;
	return true;
}

static bool
apply_send_sql(applier *a, char what, const char *sql, const relcache_entry *rel)
{
	if (!PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
		return apply_fail_conn(a, "could not send a statement to the target");
	return apply_push(a, what, rel, 0, NULL) && apply_after_send(a, strlen(sql));
}

static bool
apply_send_prepared(applier *a, char what, const char *name, int nparams, const char *const *values,
                    const relcache_entry *rel, int rows, const char *key, size_t bytes)
{
	if (!PQsendQueryPrepared(a->conn, name, nparams, values, NULL, NULL, 0))
		return apply_fail_conn(a, "could not send a statement to the target");
	return apply_push(a, what, rel, rows, key) && apply_after_send(a, bytes);
}

/* Prepare a relation's statement with typed parameters; its text kept for an error. */
static bool
apply_send_prepare(applier *a, const apply_rel *ar, const char *name, const char *sql, int nparams,
                   const Oid *types)
{
	apply_pending *p;

	if (!PQsendPrepare(a->conn, name, sql, nparams, types))
		return apply_fail_conn(a, "could not prepare a statement on the target");
	if (!apply_push(a, AP_PREPARE, NULL, 0, NULL))
		return false;
	p = &a->pending[(a->pending_head + a->pending_count - 1) % a->pending_cap];
	p->relid = ar->relid;
	p->stmt = strndup(sql, 300); /* only a message is lost without it */
	return apply_after_send(a, strlen(sql));
}

/* The relation's "schema.table" for messages. */
static void
apply_relname(applier *a, pgo_oid relid, char *buf, size_t size)
{
	relcache_entry *e = relcache_get(a->rels, relid);

	if (e)
		snprintf(buf, size, "%s.%s", e->nspname, e->relname);
	else
		snprintf(buf, size, "relation %u", relid);
}

/* A failed answer: say what, where, and what to do. */
static void
apply_fail_answer(applier *a, const apply_pending *p, PGresult *res)
{
	char rel[256], lsn[PGO_LSN_STRLEN], txn[PGO_LSN_STRLEN], msg[2048];
	const char *server = PQresultErrorMessage(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	char hint[800];

	if (state && !a->failed)
		snprintf(a->sqlstate, sizeof(a->sqlstate), "%s", state);
	apply_relname(a, p->relid, rel, sizeof(rel));
	pgo_lsn_format(p->lsn, lsn);
	pgo_lsn_format(p->txn_lsn, txn);
	/* 428C9: a value for a GENERATED ALWAYS column; the target must accept the source's */
	snprintf(hint, sizeof(hint),
	         "%s%s%sfix the cause on the target and run again (it resumes after the last "
	         "committed transaction), or skip this source transaction with --skip-lsn %s",
	         state && strcmp(state, "428C9") == 0 ? "the target's column is GENERATED ALWAYS: let "
	                                                "it take the source's values while migrating "
	                                                "(ALTER TABLE "
	                                              : "",
	         state && strcmp(state, "428C9") == 0 ? rel : "",
	         state && strcmp(state, "428C9") == 0 ? " ALTER COLUMN ... SET GENERATED BY DEFAULT); "
	                                              : "",
	         txn);
	switch (p->what)
	{
		case AP_INSERT:
		case AP_UPDATE:
		case AP_DELETE:
		case AP_TRUNCATE:
			snprintf(msg, sizeof(msg), "the target rejected %s on %s%s%s (source change at %s, %s",
			         p->what == AP_INSERT   ? "an INSERT"
			         : p->what == AP_UPDATE ? "an UPDATE"
			         : p->what == AP_DELETE ? "a DELETE"
			                                : "a TRUNCATE",
			         rel, p->key[0] ? " " : "", p->key, lsn, "");
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
			         "transaction committed at %s); %s", txn, hint);
			break;
		case AP_PREPARE:
			snprintf(msg, sizeof(msg),
			         "the target could not prepare the %s statement for %s (source change at %s, "
			         "transaction committed at %s; statement: %.200s%s); %s",
			         p->stmt && p->stmt[0] == 'I'   ? "INSERT"
			         : p->stmt && p->stmt[0] == 'U' ? "UPDATE"
			         : p->stmt && p->stmt[0] == 'D' ? "DELETE"
			                                        : "apply",
			         rel, lsn, txn, p->stmt ? p->stmt : "?",
			         p->stmt && strlen(p->stmt) > 200 ? " ..." : "", hint);
			break;
		case AP_PROGRESS:
			snprintf(msg, sizeof(msg),
			         "the progress row of this slot in " PGDBM_PROGRESS " is not where "
			         "this run left it: another pg_dbmigrator applies the same slot, or the "
			         "previous target transaction did not commit");
			break;
		case AP_COMMIT:
			snprintf(msg, sizeof(msg),
			         "the target could not commit the transaction ending at source LSN %s "
			         "(committed at %s); %s",
			         pgo_lsn_format(p->lsn, lsn), txn, hint);
			break;
		default:
			snprintf(msg, sizeof(msg), "a statement failed on the target");
			break;
	}
	apply_fail(a, msg, server && server[0] ? server : NULL);
}

/*
 * Rows of a batched statement are kept in p->diag as diagnostic records (see
 * apply_diag_append), and the statement RETURNs the keys it found: the first
 * row whose keys are not among them is the missing one, with its own source
 * transaction.
 */
static bool
apply_diag_find(const apply_pending *p, PGresult *res, pgo_lsn *txn_lsn, char *key, size_t keysize)
{
	size_t off = 0;
	apply_diag_row row;

	while (apply_diag_next(p->diag, p->diag_len, &off, &row))
	{
		bool seen = false;

		for (int t = 0; t < PQntuples(res) && !seen; t++)
		{
			size_t koff = 0;

			seen = PQnfields(res) == row.nkeys;
			for (uint16_t k = 0; k < row.nkeys && seen; k++)
			{
				const char *value;
				uint32_t len;

				seen = apply_diag_key(&row, &koff, &value, &len) &&
				       (size_t)PQgetlength(res, t, k) == len &&
				       memcmp(PQgetvalue(res, t, k), value, len) == 0;
			}
		}
		if (!seen)
		{
			size_t n = 0, koff = 0;
			const char *value;
			uint32_t len;

			*txn_lsn = row.txn_lsn;
			key[0] = '\0';
			for (uint16_t k = 0; k < row.nkeys && apply_diag_key(&row, &koff, &value, &len); k++)
			{
				if (n + 8 < keysize)
					n += (size_t)snprintf(key + n, keysize - n, "%s%s=%.*s", k ? ", " : "with ",
					                      PQfname(res, k), (int)(len > 40 ? 40 : len), value);
				if (n >= keysize)
					n = keysize - 1;
			}
			return true;
		}
	}
	return false;
}

/* Rows the change was meant for are not on the target. */
static bool
apply_missing_row(applier *a, const apply_pending *p, PGresult *res, int missing)
{
	char rel[256], lsn[PGO_LSN_STRLEN], txn[PGO_LSN_STRLEN], msg[1024], key[APPLY_KEY_TEXT];
	pgo_lsn txn_lsn = p->txn_lsn;

	snprintf(key, sizeof(key), "%s", p->key);
	if (p->diag)
		(void)apply_diag_find(p, res, &txn_lsn, key, sizeof(key));
	if (a->opts.skip_missing)
	{
		if (a->stats.missing_rows == 0 && !a->opts.quiet)
		{
			apply_relname(a, p->relid, rel, sizeof(rel));
			fprintf(stderr,
			        "pg_dbmigrator: WARNING: %s on %s found no row %s; skipped "
			        "(--on-missing-row skip; further ones are counted)\n",
			        p->what == AP_UPDATE ? "an UPDATE" : "a DELETE", rel, key);
		}
		a->stats.missing_rows += (uint64_t)missing;
		return true;
	}
	apply_relname(a, p->relid, rel, sizeof(rel));
	snprintf(msg, sizeof(msg),
	         "%s on %s found no row %s on the target (source changes from %s, transaction "
	         "committed at %s): the target differs from the source. Re-copy the table, or run with "
	         "--on-missing-row skip, or skip this transaction with --skip-lsn %s",
	         p->what == AP_UPDATE ? "an UPDATE" : "a DELETE", rel, key, pgo_lsn_format(p->lsn, lsn),
	         pgo_lsn_format(txn_lsn, txn), txn);
	return apply_fail(a, msg, NULL);
}

/* Check one answer against what it answers. */
static bool
apply_check_answer(applier *a, const apply_pending *p, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_PIPELINE_ABORTED)
	{
		if (!a->failed)
			apply_fail(a, "the target skipped statements after an error", NULL);
		return false;
	}
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		apply_fail_answer(a, p, res);
		return false;
	}
	switch (p->what)
	{
		case AP_UPDATE:
		case AP_DELETE:
		{
			int found = atoi(PQcmdTuples(res));

			if (found < p->rows && !apply_missing_row(a, p, res, p->rows - found))
				return false;
			break;
		}
		case AP_INSERT:
			a->stats.inserts += (uint64_t)p->rows;
			break;
		case AP_COMMIT:
			/* a transaction that failed answers COMMIT with ROLLBACK */
			if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
			{
				apply_fail_answer(a, p, res);
				return false;
			}
			if (!a->failed)
				a->committed_lsn = p->lsn;
			a->stats.groups++;
			break;
		default:
			break;
	}
	return true;
}

static void
apply_pop(applier *a)
{
	free(a->pending[a->pending_head].diag);
	a->pending[a->pending_head].diag = NULL;
	free(a->pending[a->pending_head].stmt);
	a->pending[a->pending_head].stmt = NULL;
	a->pending_head = (a->pending_head + 1) % a->pending_cap;
	a->pending_count--;
	a->awaiting_null = false;
}

/* Read every answer that has arrived; never waits. */
static bool
apply_take_results(applier *a)
{
	if (!PQconsumeInput(a->conn))
		return apply_fail_conn(a, "lost the connection to the target");
	int nulls = 0;

	while (a->pending_count > 0)
	{
		apply_pending *p = &a->pending[a->pending_head];
		PGresult *res;

		if (p->what == AP_ADVANCE)
		{
			if (!a->failed)
				a->committed_lsn = p->lsn;
			apply_pop(a);
			continue;
		}
		if (PQisBusy(a->conn))
			break;
		res = PQgetResult(a->conn);
		if (res == NULL)
		{
			if (a->awaiting_null)
			{
				apply_pop(a);
				nulls = 0;
				continue;
			}
			if (++nulls > 1)
				break; /* nothing more to read now */
			continue;  /* a NULL after a sync, before the next answer */
		}
		nulls = 0;
		if (p->what == AP_SYNC)
		{
			/* a sync's answer; nothing follows it */
			PQclear(res);
			apply_pop(a);
			continue;
		}
		if (!apply_check_answer(a, p, res) && !a->failed)
			a->failed = true;
		PQclear(res);
		a->awaiting_null = true;
	}
	return !a->failed;
}

bool
apply_poll(applier *a)
{
	if (a->failed)
		return false;
	if (a->unflushed > 0 && !apply_flush(a))
		return false;
	return apply_take_results(a);
}

bool
apply_wait(applier *a, int timeout_ms)
{
	int waited = 0;

	/* answers of statements not followed by a sync come only on request */
	if (a->pending_count > 0 && !PQsendFlushRequest(a->conn))
		return apply_fail_conn(a, "could not send a flush request to the target");
	if (!apply_flush(a))
		return false;
	while (a->pending_count > 0)
	{
		if (!apply_take_results(a))
			return false;
		if (a->pending_count == 0)
			break;
		if (timeout_ms >= 0 && waited >= timeout_ms)
			return apply_fail(a, "the target did not answer in time", NULL);
		if (!apply_wait_socket(a, false, 100))
			return false;
		waited += 100;
	}
	return !a->failed;
}

int
apply_socket(const applier *a)
{
	return a->conn ? PQsocket(a->conn) : -1;
}

bool
apply_busy(const applier *a)
{
	if (a->in_txn || a->group_open || apply_has_pending(a) || a->copy_rel)
		return true;
	for (size_t i = 0; i < a->pending_count; i++)
	{
		char w = a->pending[(a->pending_head + i) % a->pending_cap].what;

		if (w == AP_COMMIT || w == AP_ADVANCE)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------- session set-up */

/* Run one statement outside pipeline mode. */
static bool
apply_exec(applier *a, const char *sql, int nparams, const char *const *values, PGresult **out)
{
	/* without parameters, the simple protocol (it allows several statements) */
	PGresult *res = nparams == 0 ? PQexec(a->conn, sql)
	                             : PQexecParams(a->conn, sql, nparams, NULL, values, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		char what[512];

		snprintf(what, sizeof(what), "the target refused \"%.200s\"", sql);
		apply_fail(a, what, PQresultErrorMessage(res));
		PQclear(res);
		return false;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return true;
}

/* Leave pipeline mode with nothing in flight (for catalog queries). */
static bool
apply_leave_pipeline(applier *a)
{
	if (PQpipelineStatus(a->conn) == PQ_PIPELINE_OFF)
		return true;
	if (!PQpipelineSync(a->conn) || !apply_push(a, AP_SYNC, NULL, 0, NULL))
		return apply_fail_conn(a, "could not sync with the target");
	if (!apply_wait(a, -1))
		return false;
	if (PQsetnonblocking(a->conn, 0) != 0 || !PQexitPipelineMode(a->conn))
		return apply_fail_conn(a, "could not leave pipeline mode on the target");
	return true;
}

static bool
apply_enter_pipeline(applier *a)
{
	if (!PQenterPipelineMode(a->conn) || PQsetnonblocking(a->conn, 1) != 0)
		return apply_fail_conn(a, "could not enter pipeline mode on the target");
	return true;
}

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

	if (!apply_exec(a,
	                "INSERT INTO " PGDBM_PROGRESS " VALUES ($1, '0/0', now(), $2, $3) "
	                "ON CONFLICT (slot_name) DO NOTHING",
	                3, params, NULL) ||
	    !apply_exec(a,
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
		if (!apply_exec(a,
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
	const char *enc;

	memset(a, 0, sizeof(*a));
	a->opts = *opts;
	if (a->opts.group_txns < 1)
		a->opts.group_txns = APPLY_DEFAULT_GROUP_TXNS;
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
		/* named in pg_stat_activity unless the connection string names it */
		const char *const keys[] = {"dbname", "fallback_application_name", NULL};
		const char *const vals[] = {opts->target, "pg_dbmigrator apply", NULL};

		a->conn = PQconnectdbParams(keys, vals, 1);
	}
	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK)
	{
		snprintf(errbuf, errlen, "could not connect to the target: %s",
		         a->conn ? PQerrorMessage(a->conn) : "out of memory");
		apply_close(a);
		return false;
	}
	/* values arrive in the database's encoding (replstart.client_encoding): take them as such */
	enc = PQparameterStatus(a->conn, "server_encoding");
	snprintf(a->encoding, sizeof(a->encoding), "%s", enc ? enc : "");
	if (a->encoding[0] && PQsetClientEncoding(a->conn, a->encoding) != 0)
	{
		apply_fail_conn(a, "could not set the target's client_encoding");
		goto error;
	}
	if (!apply_exec(a, REPLCONN_FORMAT_SETTINGS, 0, NULL, NULL) ||
	    !apply_exec(a, "SET client_min_messages TO warning", 0, NULL, NULL) ||
	    /* a commit reported to the source must be durable on the target, whatever its default */
	    !apply_exec(a, "SET synchronous_commit TO on", 0, NULL, NULL))
		goto error;
	/* as the native apply worker: no triggers, no FK checks for replicated rows */
	res = PQexec(a->conn, "SET session_replication_role TO replica");
	a->replica_role = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	res = NULL;
	if (!a->replica_role && !opts->quiet && !opts->guarded)
		fprintf(stderr,
		        "pg_dbmigrator: NOTICE: the target role may not set session_replication_role "
		        "(it needs superuser): triggers and foreign keys on the target fire for every "
		        "applied change, which is slower and may reject rows\n");
	if (!apply_exec(a, progress_ddl, 0, NULL, NULL) || !apply_read_progress(a))
		goto error;
	a->progress_written = a->progress_lsn;
	a->committed_lsn = a->progress_lsn;
	res = PQprepare(a->conn, "pgdbm_progress", progress_sql, 3, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		apply_fail(a, "could not prepare the progress statement on the target",
		           PQresultErrorMessage(res));
		goto error;
	}
	PQclear(res);
	res = NULL;
	if (!apply_enter_pipeline(a))
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
	while (a->pending_count > 0)
		apply_pop(a);
	free(a->pending);
	a->pending = NULL;
	a->pending_cap = a->pending_count = 0;
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

/* --------------------------------------------------------- relation mapping */

/*
 * The target's columns: name, type (as text for casts, and its OID to type
 * every parameter: the source's OIDs of user types mean nothing here),
 * whether it has an '=' operator, and whether it is GENERATED ALWAYS AS
 * IDENTITY. A table with no columns gives one row with a NULL name.
 */
static const char map_sql[] =
    "SELECT c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
    "  NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator o "
    "              WHERE o.oprname = '=' AND o.oprleft = b.t AND o.oprright = b.t), "
    "  a.atttypid, a.attidentity = 'a' "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a "
    "  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid "
    "LEFT JOIN LATERAL (SELECT CASE WHEN ty.typcategory = 'A' AND ty.typelem <> 0 THEN ty.typelem "
    "  WHEN ty.typbasetype <> 0 THEN ty.typbasetype ELSE ty.oid END AS t) b ON true "
    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

/* Look the relation up on the target (once per Relation message). */
static apply_rel *
apply_map(applier *a, relcache_entry *e)
{
	const char *params[2] = {e->nspname, e->relname};
	PGresult *res = NULL;
	apply_rel *ar;
	char msg[1024];

	if (e->user)
		return e->user;
	if (!apply_send_pending(a) || !apply_leave_pipeline(a))
		return NULL;
	if (!apply_exec(a, map_sql, 2, params, &res))
		return NULL;
	ar = calloc(1, sizeof(*ar));
	if (ar == NULL || (e->ncols && ((ar->qcols = calloc(e->ncols, sizeof(char *))) == NULL ||
	                                (ar->qtypes = calloc(e->ncols, sizeof(char *))) == NULL ||
	                                (ar->types = calloc(e->ncols, sizeof(Oid))) == NULL ||
	                                (ar->text_eq = calloc(e->ncols, sizeof(bool))) == NULL)))
	{
		e->user = ar;
		apply_rel_free(e);
		PQclear(res);
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	e->user = ar; /* freed with the entry from here on */
	ar->ncols = e->ncols;
	ar->relid = e->relid;
	ar->touch = -1;
	if (PQntuples(res) == 0)
	{
		snprintf(msg, sizeof(msg),
		         "table %s.%s is published on the source but does not exist on the target: "
		         "create it there (a schema restore does), or remove it from the publication",
		         e->nspname, e->relname);
		PQclear(res);
		apply_fail(a, msg, NULL);
		return NULL;
	}
	ar->relkind = PQgetvalue(res, 0, 0)[0];
	for (uint16_t i = 0; i < e->ncols; i++)
	{
		int row = -1;

		for (int t = 0; t < PQntuples(res); t++)
			if (!PQgetisnull(res, t, 1) && strcmp(PQgetvalue(res, t, 1), e->cols[i].name) == 0)
				row = t;
		if (row < 0)
		{
			/* usually a DDL change on the source: name the statement that fixes it */
			char oid[16], typmod[16];
			const char *tparams[2] = {oid, typmod};
			PGresult *tr;
			char *qt = apply_quote(a, e->nspname), *qr = apply_quote(a, e->relname),
			     *qc = apply_quote(a, e->cols[i].name);

			snprintf(oid, sizeof(oid), "%u", e->cols[i].type_oid);
			snprintf(typmod, sizeof(typmod), "%d", (int)e->cols[i].typmod);
			tr = PQexecParams(a->conn, "SELECT pg_catalog.format_type($1::oid, $2::int)", 2, NULL,
			                  tparams, NULL, NULL, 0);
			snprintf(msg, sizeof(msg),
			         "column \"%s\" of table %s.%s is published on the source but missing on the "
			         "target (a column added on the source during the migration?): add it on the "
			         "target (ALTER TABLE %s.%s ADD COLUMN %s %s), then run again with --resume",
			         e->cols[i].name, e->nspname, e->relname, qt ? qt : "?", qr ? qr : "?",
			         qc ? qc : "?",
			         PQresultStatus(tr) == PGRES_TUPLES_OK && PQntuples(tr) == 1 &&
			                 !PQgetisnull(tr, 0, 0)
			             ? PQgetvalue(tr, 0, 0)
			             : "<its type on the source>");
			PQclear(tr);
			free(qt);
			free(qr);
			free(qc);
			PQclear(res);
			apply_fail(a, msg, NULL);
			return NULL;
		}
		ar->text_eq[i] = PQgetvalue(res, row, 3)[0] == 't';
		ar->types[i] = (Oid)strtoul(PQgetvalue(res, row, 4), NULL, 10);
		if (ar->touch < 0 && PQgetvalue(res, row, 5)[0] != 't')
			ar->touch = i;
		ar->qcols[i] = apply_quote(a, e->cols[i].name);
		ar->qtypes[i] = strdup(PQgetvalue(res, row, 2)); /* format_type quotes as needed */
		if (ar->qcols[i] == NULL || ar->qtypes[i] == NULL)
		{
			PQclear(res);
			apply_fail(a, "out of memory", NULL);
			return NULL;
		}
	}
	PQclear(res);
	{
		char *nsp = apply_quote(a, e->nspname), *rel = apply_quote(a, e->relname);

		if (nsp && rel && (ar->qname = malloc(strlen(nsp) + strlen(rel) + 2)) != NULL)
			sprintf(ar->qname, "%s.%s", nsp, rel);
		free(nsp);
		free(rel);
		if (ar->qname == NULL)
		{
			apply_fail(a, "out of memory", NULL);
			return NULL;
		}
	}
	if (!apply_enter_pipeline(a))
		return NULL;
	return ar;
}

/* -------------------------------------------------------------- statements */

/* Find or prepare a statement; the SQL is built by the caller into a->sql. */
static apply_stmt *
apply_find_stmt(apply_rel *ar, char kind, int rows, const uint8_t *mask, uint16_t ncols)
{
	for (apply_stmt *s = ar->stmts; s; s = s->next)
		if (s->kind == kind && s->rows == rows &&
		    (mask == NULL || ncols == 0 || memcmp(s->mask, mask, ncols) == 0))
			return s;
	return NULL;
}

/* The target type of each of a statement's parameters into a->ptypes (see apply_sql_param_types). */
static bool
apply_param_types(applier *a, const apply_rel *ar, char kind, int rows, const uint8_t *mask,
                  int nparams)
{
	size_t n;

	if ((size_t)nparams > a->ptypes_cap)
	{
		free(a->ptypes);
		a->ptypes = malloc((size_t)nparams * sizeof(*a->ptypes));
		a->ptypes_cap = a->ptypes ? (size_t)nparams : 0;
		if (a->ptypes == NULL)
			return apply_fail(a, "out of memory", NULL);
	}
	n = apply_sql_param_types(ar, kind, rows, mask, a->ptypes, (size_t)nparams);
	if (n > (size_t)nparams)
		return apply_fail(a, "internal error: more parameters than numbered", NULL);
	return n == (size_t)nparams
	           ? true
	           : apply_fail(a, "internal error: fewer parameters than numbered", NULL);
}

/* Prepare the statement built into a->sql and add it to ar's cache. */
static apply_stmt *
apply_add_stmt(applier *a, apply_rel *ar, char kind, int rows, const uint8_t *mask, uint16_t ncols,
               int nparams)
{
	apply_stmt *s;

	if (!apply_param_types(a, ar, kind, rows, mask, nparams))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (mask && ncols && (s->mask = malloc(ncols)) == NULL))
	{
		free(s);
		apply_fail(a, "out of memory", NULL);
		return NULL;
	}
	if (mask && ncols)
		memcpy(s->mask, mask, ncols);
	s->kind = kind;
	s->rows = rows;
	snprintf(s->name, sizeof(s->name), "pgdbm_%c%" PRIu64, kind, ++a->stmt_seq);
	if (!apply_send_prepare(a, ar, s->name, strbuf_data(&a->sql), nparams, a->ptypes))
	{
		free(s->mask);
		free(s);
		return NULL;
	}
	s->next = ar->stmts;
	ar->stmts = s;
	return s;
}

/* The cached or newly prepared multi-row INSERT of rows rows. */
static apply_stmt *
apply_insert_stmt(applier *a, apply_rel *ar, int rows)
{
	apply_stmt *s = apply_find_stmt(ar, 'I', rows, NULL, 0);
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!apply_sql_insert(&a->sql, ar, rows, &n))
		return NULL;
	return apply_add_stmt(a, ar, 'I', rows, NULL, 0, n);
}

/* The cached or newly prepared single-row UPDATE ('U') or DELETE ('D') for mask. */
static apply_stmt *
apply_row_stmt(applier *a, const relcache_entry *e, apply_rel *ar, char kind, const uint8_t *mask)
{
	apply_stmt *s = apply_find_stmt(ar, kind, 0, mask, ar->ncols);
	bool full = e->replident == PGO_REPLIDENT_FULL;
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!(kind == 'U' ? apply_sql_update(&a->sql, ar, full, mask, &n)
	                  : apply_sql_delete(&a->sql, ar, full, mask, &n)))
		return NULL;
	return apply_add_stmt(a, ar, kind, 0, mask, ar->ncols, n);
}

/* The cached or newly prepared UPDATE/DELETE of rows rows by distinct keys. */
static apply_stmt *
apply_multi_stmt(applier *a, apply_rel *ar, char kind, const uint8_t *mask, int rows)
{
	apply_stmt *s = apply_find_stmt(ar, kind, rows, mask, ar->ncols);
	int n;

	if (s)
		return s;
	strbuf_reset(&a->sql);
	if (!apply_sql_multi(&a->sql, ar, kind, mask, rows, &n))
		return NULL;
	return apply_add_stmt(a, ar, kind, rows, mask, ar->ncols, n);
}

/* ------------------------------------------------------------------ values */

/* NUL-terminate a text value in place and return it (NULL for SQL NULL). */
static const char *
apply_value(const pgo_value *v)
{
	if (v->kind != PGO_COL_TEXT)
		return NULL;
	((char *)v->data)[v->len] = '\0';
	return v->data;
}

/* Check a tuple carries only what we can bind (text, NULL, and 'u' where allowed). */
static bool
apply_check_tuple(applier *a, const relcache_entry *e, const pgo_tuple *t, bool allow_unchanged)
{
	char msg[512];

	if (t->ncols != e->ncols)
	{
		snprintf(msg, sizeof(msg),
		         "a change for %s.%s has %u columns but its Relation message announced %u",
		         e->nspname, e->relname, t->ncols, e->ncols);
		return apply_fail(a, msg, NULL);
	}
	for (uint16_t i = 0; i < t->ncols; i++)
	{
		if (t->cols[i].kind == PGO_COL_BINARY)
			return apply_fail(a,
			                  "the source sent a binary column value, but the apply asks for "
			                  "text (binary off)",
			                  NULL);
		if (t->cols[i].kind == PGO_COL_UNCHANGED && !allow_unchanged)
		{
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s carries an unchanged TOASTed value in column \"%s\", "
			         "which is needed to find the row",
			         e->nspname, e->relname, e->cols[i].name);
			return apply_fail(a, msg, NULL);
		}
	}
	return true;
}

static bool
apply_params_room(applier *a, size_t n)
{
	if (n <= a->params_cap)
		return true;
	free(a->params);
	a->params = malloc(n * sizeof(*a->params));
	a->params_cap = a->params ? n : 0;
	return a->params ? true : apply_fail(a, "out of memory", NULL);
}

/* ---------------------------------------------------------------- changes */

static bool
apply_open_group(applier *a)
{
	if (a->group_open)
		return true;
	a->group_open = true;
	return apply_send_sql(a, AP_BEGIN, "BEGIN", NULL);
}

bool
apply_has_pending(const applier *a)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
		if (a->batches[i].rel)
			return true;
	return false;
}

/* Send rows [first, first + n) of batch b with one statement. */
static bool
apply_send_rows(applier *a, apply_batch *b, apply_rel *ar, int first, int n)
{
	char kind = b->kind;
	relcache_entry *e = b->rel;
	apply_stmt *s;
	size_t bytes = 0, width = b->width;
	const char *const *values = b->values + (size_t)first * width;

	if (kind == 'I')
		s = apply_insert_stmt(a, ar, n);
	else if (n == 1)
		s = apply_row_stmt(a, e, ar, kind, b->mask);
	else
		s = apply_multi_stmt(a, ar, kind, b->mask, n);
	if (s == NULL)
		return false;
	for (size_t i = 0; i < (size_t)n * width; i++)
		if (values[i])
			bytes += strlen(values[i]) + 4;
	if (!apply_send_prepared(a,
	                         kind == 'I'   ? AP_INSERT
	                         : kind == 'U' ? AP_UPDATE
	                                       : AP_DELETE,
	                         s->name, (int)((size_t)n * width), values, e, n,
	                         kind == 'I' ? NULL : strbuf_data(&b->keys), bytes))
		return false;
	if (kind != 'I' && n > 1)
	{
		/* this statement's rows of the diagnostic records */
		apply_pending *p = &a->pending[(a->pending_head + a->pending_count - 1) % a->pending_cap];
		const char *d = strbuf_data(&b->diag);
		size_t off = 0, from = 0, to;
		apply_diag_row row;

		for (int r = 0; r < first + n; r++)
		{
			if (r == first)
				from = off;
			if (!apply_diag_next(d, strbuf_len(&b->diag), &off, &row))
				break; /* every batched row has its record */
		}
		to = off;
		p->diag = malloc(to - from);
		if (p->diag)
		{
			memcpy(p->diag, d + from, to - from);
			p->diag_len = to - from;
		}
	}
	return true;
}

/* Send one batch and free its slot. */
static bool
apply_send_batch(applier *a, apply_batch *b)
{
	apply_rel *ar;
	int done = 0;

	if (b->rel == NULL)
		return true;
	ar = b->rel->user;
	a->sending = b;
	/* as few statements as the binary digits of the row count: 256, 128, ... 1 */
	for (int size = APPLY_MAX_BATCH_ROWS; size >= 1; size /= 2)
		while (b->rows - done >= size)
		{
			if (!apply_send_rows(a, b, ar, done, size))
			{
				a->sending = NULL;
				return false;
			}
			done += size;
		}
	a->sending = NULL;
	b->rel = NULL;
	b->rows = 0;
	b->change_lsn = 0;
	strbuf_reset(&b->keys);
	strbuf_reset(&b->diag);
	memset(b->hashes, 0, sizeof(b->hashes));
	return true;
}

/* ------------------------------------------------------------------- COPY */

#define APPLY_COPY_CHUNK (256 * 1024)

/* Hand the buffered COPY rows to libpq (blocking: we are outside pipeline mode). */
static bool
apply_copy_flush(applier *a)
{
	if (strbuf_len(&a->copy_buf) == 0)
		return true;
	if (PQputCopyData(a->conn, strbuf_data(&a->copy_buf), (int)strbuf_len(&a->copy_buf)) != 1)
		return apply_fail_conn(a, "could not send COPY data to the target");
	strbuf_reset(&a->copy_buf);
	return true;
}

/* One row in COPY's text format: tabs between columns, \N for NULL, escapes. */
static bool
apply_copy_row(applier *a, const pgo_tuple *t)
{
	strbuf *b = &a->copy_buf;

	for (uint16_t i = 0; i < t->ncols; i++)
	{
		const pgo_value *v = &t->cols[i];

		if (i > 0 && !strbuf_append_char(b, '\t'))
			return apply_fail(a, "out of memory", NULL);
		if (v->kind != PGO_COL_TEXT)
		{
			if (!strbuf_append(b, "\\N", 2))
				return apply_fail(a, "out of memory", NULL);
			continue;
		}
		if (!strbuf_reserve(b, (size_t)v->len * 2))
			return apply_fail(a, "out of memory", NULL);
		for (uint32_t j = 0, run = 0; j <= v->len; j++)
		{
			char c = j < v->len ? v->data[j] : '\0';
			const char *esc = c == '\\'   ? "\\\\"
			                  : c == '\n' ? "\\n"
			                  : c == '\r' ? "\\r"
			                  : c == '\t' ? "\\t"
			                              : NULL;

			if (esc || j == v->len)
			{
				/* plain bytes since the last escape, then the escape */
				if (!strbuf_append(b, v->data + run, j - run) || (esc && !strbuf_append(b, esc, 2)))
					return apply_fail(a, "out of memory", NULL);
				run = j + 1;
			}
		}
	}
	if (!strbuf_append_char(b, '\n'))
		return apply_fail(a, "out of memory", NULL);
	a->copy_rows++;
	a->stats.inserts++;
	return strbuf_len(b) < APPLY_COPY_CHUNK || apply_copy_flush(a);
}

/* Leave pipeline mode and start COPY into e. */
static bool
apply_copy_begin(applier *a, relcache_entry *e, apply_rel *ar)
{
	PGresult *res;

	if (!apply_leave_pipeline(a))
		return false;
	strbuf_reset(&a->sql);
	if (!apply_sql_copy(&a->sql, ar))
		return apply_fail(a, "out of memory", NULL);
	res = PQexec(a->conn, strbuf_data(&a->sql));
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		apply_fail(a, "the target refused COPY", PQresultErrorMessage(res));
		PQclear(res);
		return false;
	}
	PQclear(res);
	a->copy_rel = e;
	a->copy_rows = 0;
	a->copy_lsn = a->change_lsn;
	a->copy_txn_lsn = a->txn_lsn;
	a->stats.statements++;
	return true;
}

/* End the COPY, check it, and go back to pipeline mode. */
static bool
apply_copy_end(applier *a)
{
	PGresult *res;
	bool ok = true;

	if (a->copy_rel == NULL)
		return true;
	if (!apply_copy_flush(a) || PQputCopyEnd(a->conn, NULL) != 1)
		ok = apply_fail_conn(a, "could not end COPY on the target");
	while ((res = PQgetResult(a->conn)) != NULL)
	{
		if (ok && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			apply_pending p = {.what = AP_INSERT,
			                   .rows = (int)a->copy_rows,
			                   .relid = a->copy_rel->relid,
			                   .lsn = a->copy_lsn,
			                   .txn_lsn = a->copy_txn_lsn};

			apply_fail_answer(a, &p, res);
			ok = false;
		}
		PQclear(res);
	}
	a->copy_rel = NULL;
	strbuf_reset(&a->copy_buf);
	return ok && apply_enter_pipeline(a);
}

/* Send every open batch, oldest first. */
bool
apply_send_pending(applier *a)
{
	if (a->copy_rel && !apply_copy_end(a))
		return false;
	for (;;)
	{
		apply_batch *oldest = NULL;

		for (int i = 0; i < APPLY_MAX_BATCHES; i++)
			if (a->batches[i].rel && (oldest == NULL || a->batches[i].seq < oldest->seq))
				oldest = &a->batches[i];
		if (oldest == NULL)
			return !a->failed;
		if (!apply_send_batch(a, oldest))
			return false;
	}
}

/* A hash of the row's key values, to keep one row per key in an UPDATE batch. */
static uint64_t
apply_key_hash(const pgo_tuple *m, const uint8_t *mask, uint16_t ncols)
{
	uint64_t h = 1469598103934665603ULL;

	for (uint16_t i = 0; i < ncols; i++)
		if (mask[i] & MASK_WHERE)
		{
			for (uint32_t j = 0; j < m->cols[i].len; j++)
				h = (h ^ (uint8_t)m->cols[i].data[j]) * 1099511628211ULL;
			h = (h ^ 0xff) * 1099511628211ULL;
		}
	return h ? h : 1;
}

/* Do the key values of row r of b equal m's (both NUL-terminated in place)? */
static bool
apply_same_key(const apply_batch *b, int r, const pgo_tuple *m, const uint16_t ncols)
{
	const char *const *row = b->values + (size_t)r * b->width;
	size_t k = 0;

	for (uint16_t i = 0; i < ncols; i++)
		if (b->mask[i] & MASK_SET)
			k++;
	for (uint16_t i = 0; i < ncols; i++)
		if (b->mask[i] & MASK_WHERE)
		{
			const char *v = row[k++];

			if (v == NULL || m->cols[i].kind != PGO_COL_TEXT || strlen(v) != m->cols[i].len ||
			    memcmp(v, m->cols[i].data, m->cols[i].len) != 0)
				return false;
		}
	return true;
}

/*
 * Find room for a row of kind for e: *row_out points at its width value
 * slots. For an UPDATE whose key is already in the batch, *replaced is set
 * and *row_out is that row: the newer values replace the older ones. False
 * on failure.
 */
static bool
apply_batch_row(applier *a, relcache_entry *e, apply_rel *ar, char kind, const uint8_t *mask,
                size_t width, const pgo_tuple *key, const char **row_out[], bool *replaced)
{
	size_t need = (size_t)APPLY_MAX_BATCH_ROWS * (width ? width : 1);
	const size_t nslots = sizeof(((apply_batch *)0)->hashes) / sizeof(uint64_t);
	apply_batch *b = NULL, *free_slot = NULL;
	uint64_t keyhash = 0;
	size_t slot = 0;

	*replaced = false;
	if (a->copy_rel && !apply_copy_end(a))
		return false;
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		if (a->batches[i].rel == e)
			b = &a->batches[i];
		else if (a->batches[i].rel == NULL && free_slot == NULL)
			free_slot = &a->batches[i];
		else if (a->batches[i].rel && !a->replica_role && !apply_send_batch(a, &a->batches[i]))
			return false; /* triggers may look at other tables: keep the source's order */
	}
	/* one relation's changes stay in order: a different kind or column set sends the batch */
	if (b && (b->kind != kind || (mask && memcmp(b->mask, mask, ar->ncols) != 0) ||
	          (size_t)(b->rows + 1) * width > 65535))
	{
		if (!apply_send_batch(a, b))
			return false;
		free_slot = b;
		b = NULL;
	}
	if (b && key)
	{
		keyhash = apply_key_hash(key, mask, ar->ncols);
		slot = keyhash % nslots;
		while (b->hashes[slot])
		{
			if (b->hashes[slot] == keyhash && apply_same_key(b, b->hash_row[slot], key, ar->ncols))
			{
				*replaced = true;
				*row_out = b->values + (size_t)b->hash_row[slot] * width;
				return true;
			}
			slot = (slot + 1) % nslots;
		}
	}
	if (b == NULL)
	{
		if (free_slot == NULL)
		{
			if (!apply_send_pending(a))
				return false;
			free_slot = &a->batches[0];
		}
		b = free_slot;
		if (need > b->cap)
		{
			free(b->values);
			b->values = malloc(need * sizeof(*b->values));
			b->cap = b->values ? need : 0;
			if (b->values == NULL)
				return apply_fail(a, "out of memory", NULL);
		}
		if (mask && ar->ncols > b->mask_cap)
		{
			free(b->mask);
			b->mask = malloc(ar->ncols);
			b->mask_cap = b->mask ? ar->ncols : 0;
			if (b->mask == NULL)
				return apply_fail(a, "out of memory", NULL);
		}
		b->rel = e;
		b->kind = kind;
		b->width = width;
		b->rows = 0;
		b->change_lsn = a->change_lsn;
		b->seq = ++a->batch_seq;
		if (mask)
			memcpy(b->mask, mask, ar->ncols);
		if (key)
		{
			keyhash = apply_key_hash(key, mask, ar->ncols);
			slot = keyhash % nslots;
			while (b->hashes[slot])
				slot = (slot + 1) % nslots;
		}
	}
	if (key)
	{
		b->hashes[slot] = keyhash;
		b->hash_row[slot] = (int16_t)b->rows;
	}
	*row_out = b->values + (size_t)b->rows * width;
	b->rows++;
	return true;
}

/* After a row was added to e's batch: send it when full. */
static bool
apply_batch_done(applier *a, relcache_entry *e)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		apply_batch *b = &a->batches[i];

		if (b->rel == e &&
		    (b->rows == APPLY_MAX_BATCH_ROWS || (size_t)(b->rows + 1) * b->width > 65535))
			return apply_send_batch(a, b);
	}
	return true;
}

/* The open batch of e (NULL if none). */
static apply_batch *
apply_batch_of(applier *a, const relcache_entry *e)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
		if (a->batches[i].rel == e)
			return &a->batches[i];
	return NULL;
}

static bool
apply_insert(applier *a, relcache_entry *e, const pgo_tuple *t)
{
	apply_rel *ar = apply_map(a, e);
	const char **row;
	bool replaced;

	if (ar == NULL || !apply_check_tuple(a, e, t, false))
		return false;
	if (a->copy_rel == e)
		return apply_copy_row(a, t);
	if (!apply_batch_row(a, e, ar, 'I', NULL, ar->ncols, NULL, &row, &replaced))
		return false;
	for (uint16_t i = 0; i < ar->ncols; i++)
		row[i] = apply_value(&t->cols[i]);
	{
		apply_batch *b = apply_batch_of(a, e);

		/*
		 * A full batch of inserts into one table: a long run is likely, and COPY
		 * loads it faster than INSERT (the other batches go first: COPY leaves
		 * pipeline mode).
		 */
		if (b && b->rows == APPLY_MAX_BATCH_ROWS && !a->opts.no_copy && ar->ncols > 0)
		{
			apply_batch keep = *b;
			pgo_tuple tup;
			bool ok = true;

			b->rel = NULL; /* not sent as INSERT */
			if (!apply_send_pending(a) || !apply_copy_begin(a, e, ar))
				return false;
			a->copy_lsn = keep.change_lsn;
			/* the batch's rows, already NUL-terminated in the ring */
			for (int r = 0; ok && r < keep.rows; r++)
			{
				pgo_value cols[MIG_COPY_MAX_COLS];
				uint16_t n = ar->ncols;

				if (n > MIG_COPY_MAX_COLS)
					return apply_fail(a, "too many columns for COPY", NULL);
				for (uint16_t i = 0; i < n; i++)
				{
					const char *v = keep.values[(size_t)r * keep.width + i];

					cols[i].kind = v ? PGO_COL_TEXT : PGO_COL_NULL;
					cols[i].data = v;
					cols[i].len = v ? (uint32_t)strlen(v) : 0;
				}
				tup.ncols = n;
				tup.cols = cols;
				ok = apply_copy_row(a, &tup);
			}
			b->rows = 0;
			strbuf_reset(&b->keys);
			strbuf_reset(&b->diag);
			memset(b->hashes, 0, sizeof(b->hashes));
			return ok;
		}
	}
	return apply_batch_done(a, e);
}

/*
 * The column mask of a change (see apply_sql_mask) and the tuple its key
 * values come from; NULL, with the reason in a->errmsg, when it has none.
 */
static const pgo_tuple *
apply_match_columns(applier *a, const relcache_entry *e, char kind, char old_kind,
                    const pgo_tuple *oldtup, const pgo_tuple *newtup, uint8_t *mask)
{
	const pgo_tuple *m = NULL;
	uint16_t bad = 0;
	char msg[512];

	switch (apply_sql_mask(e, kind, old_kind, oldtup, newtup, mask, &m, &bad))
	{
		case APPLY_MASK_OK:
			return m;
		case APPLY_MASK_NO_OLD_ROW:
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s (REPLICA IDENTITY FULL) came without the old row",
			         e->nspname, e->relname);
			break;
		case APPLY_MASK_NO_KEY:
			snprintf(msg, sizeof(msg),
			         "%s.%s has no replica identity key: give it a primary key, or ALTER TABLE ... "
			         "REPLICA IDENTITY FULL / USING INDEX on the source",
			         e->nspname, e->relname);
			break;
		case APPLY_MASK_UNCHANGED_KEY:
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s carries an unchanged TOASTed key column \"%s\"",
			         e->nspname, e->relname, e->cols[bad].name);
			break;
		default:
			snprintf(msg, sizeof(msg), "internal error: no column mask for %s.%s", e->nspname,
			         e->relname);
			break;
	}
	apply_fail(a, msg, NULL);
	return NULL;
}

/* UPDATE and DELETE: match by key (batched) or by the whole old row (one at a time). */
static bool
apply_change_row(applier *a, relcache_entry *e, char kind, char old_kind, const pgo_tuple *oldtup,
                 const pgo_tuple *newtup)
{
	apply_rel *ar = apply_map(a, e);
	uint8_t stackmask[256];
	uint8_t *mask;
	const pgo_tuple *m;
	const char **row;
	size_t width = 0, n = 0;
	bool ok = false, replaced;

	if (ar == NULL || (newtup && !apply_check_tuple(a, e, newtup, true)) ||
	    (old_kind && !apply_check_tuple(a, e, oldtup, true)))
		return false;
	if (kind == 'U' && ar->ncols == 0)
	{
		/* a row without columns cannot change */
		a->stats.updates++;
		return true;
	}
	mask = ar->ncols <= sizeof(stackmask) ? stackmask : calloc(ar->ncols, 1);
	if (mask == NULL)
		return apply_fail(a, "out of memory", NULL);
	m = apply_match_columns(a, e, kind, old_kind, oldtup, newtup, mask);
	if (m == NULL)
		goto done;
	for (uint16_t i = 0; i < ar->ncols; i++)
		width += (mask[i] & MASK_SET ? 1 : 0) + (mask[i] & MASK_WHERE ? 1 : 0);
	if (e->replident == PGO_REPLIDENT_FULL || old_kind == 'K')
	{
		/*
		 * One at a time: a row among duplicates, found by a subquery; or a
		 * key that changes (batched, one row's new key could be another's old).
		 */
		char key[APPLY_KEY_TEXT];
		apply_stmt *s;

		if (!apply_send_pending(a) || !apply_params_room(a, width))
			goto done;
		s = apply_row_stmt(a, e, ar, kind, mask);
		if (s == NULL)
			goto done;
		apply_diag_key_text(e, m, mask, key, sizeof(key));
		row = a->params;
		for (int pass = 0; pass < 2; pass++)
			for (uint16_t i = 0; i < ar->ncols; i++)
				if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
					row[n++] = apply_value(pass == 0 ? &newtup->cols[i] : &m->cols[i]);
		ok = apply_send_prepared(a, kind == 'U' ? AP_UPDATE : AP_DELETE, s->name, (int)n, a->params,
		                         e, 1, key, 0);
		if (kind == 'U')
			a->stats.updates++;
		else
			a->stats.deletes++;
		goto done;
	}
	/* the key values are compared in place: terminate them first */
	for (uint16_t i = 0; i < ar->ncols; i++)
		if (mask[i] & MASK_WHERE)
			(void)apply_value(&m->cols[i]);
	if (!apply_batch_row(a, e, ar, kind, mask, width, kind == 'U' ? m : NULL, &row, &replaced))
		goto done;
	if (!replaced)
	{
		apply_batch *b = apply_batch_of(a, e);

		apply_diag_keys_add(&b->keys, e, m, mask);
		if (!apply_diag_append(&b->diag, a->txn_lsn, m, mask, ar->ncols))
		{
			apply_fail(a, "out of memory", NULL);
			goto done;
		}
	}
	/* a replaced row keeps its key; its new values supersede the old ones */
	for (int pass = 0; pass < 2; pass++)
		for (uint16_t i = 0; i < ar->ncols; i++)
			if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
				row[n++] = apply_value(pass == 0 ? &newtup->cols[i] : &m->cols[i]);
	if (kind == 'U')
		a->stats.updates++;
	else
		a->stats.deletes++;
	ok = apply_batch_done(a, e);
done:
	if (mask != stackmask)
		free(mask);
	return ok;
}

static bool
apply_update(applier *a, relcache_entry *e, const pgo_update *u)
{
	return apply_change_row(a, e, 'U', u->old_kind, &u->oldtup, &u->newtup);
}

static bool
apply_delete(applier *a, relcache_entry *e, const pgo_delete *d)
{
	return apply_change_row(a, e, 'D', d->old_kind, &d->oldtup, NULL);
}

static bool
apply_truncate(applier *a, const pgo_truncate *t)
{
	relcache_entry *first = NULL;
	const apply_rel **rels;
	bool ok;

	if (!apply_send_pending(a))
		return false;
	for (uint32_t i = 0; i < t->nrelids; i++)
	{
		pgo_oid relid = pgo_truncate_relid(t, i);
		relcache_entry *e = relcache_get(a->rels, relid);
		apply_rel *ar;
		char msg[256];

		if (e == NULL)
		{
			snprintf(msg, sizeof(msg),
			         "a TRUNCATE names relation %u, which no Relation message "
			         "described",
			         relid);
			return apply_fail(a, msg, NULL);
		}
		/* mapping may leave and re-enter the pipeline, which reuses a->sql: map first */
		if ((ar = apply_map(a, e)) == NULL)
			return false;
		if (first == NULL)
			first = e;
	}
	rels = malloc((t->nrelids ? t->nrelids : 1) * sizeof(*rels));
	if (rels == NULL)
		return apply_fail(a, "out of memory", NULL);
	for (uint32_t i = 0; i < t->nrelids; i++)
		rels[i] = relcache_get(a->rels, pgo_truncate_relid(t, i))->user;
	strbuf_reset(&a->sql);
	ok = apply_sql_truncate(&a->sql, rels, t->nrelids,
	                        (t->options & PGO_TRUNCATE_RESTART_IDENTITY) != 0,
	                        (t->options & PGO_TRUNCATE_CASCADE) != 0);
	free(rels);
	if (!ok)
		return apply_fail(a, "out of memory", NULL);
	if (!apply_open_group(a))
		return false;
	a->stats.truncates += t->nrelids;
	return apply_send_sql(a, AP_TRUNCATE, strbuf_data(&a->sql), first);
}

/* Write the progress row and COMMIT the open group; ask for the answers. */
bool
apply_end_group(applier *a)
{
	char lsn[PGO_LSN_STRLEN], prev[PGO_LSN_STRLEN];
	const char *params[3];

	if (a->failed || !apply_send_pending(a))
		return false;
	/* a group ends between source transactions only */
	if (!a->group_open || a->in_txn)
		return apply_poll(a);
	/*
	 * An UPDATE or DELETE that found no row is not an error to the server:
	 * see every answer of the group before committing it (one round trip
	 * per group), unless missing rows are to be skipped anyway.
	 */
	if (!a->opts.skip_missing && !apply_wait(a, -1))
		return false;
	params[0] = a->opts.slot_name;
	params[1] = pgo_lsn_format(a->group_end_lsn, lsn);
	params[2] = pgo_lsn_format(a->progress_written, prev);
	if (!apply_send_prepared(a, AP_PROGRESS, "pgdbm_progress", 3, params, NULL, 0, NULL, 64) ||
	    !apply_send_sql(a, AP_COMMIT, "COMMIT", NULL))
		return false;
	if (!PQpipelineSync(a->conn) || !apply_push(a, AP_SYNC, NULL, 0, NULL))
		return apply_fail_conn(a, "could not sync with the target");
	a->progress_written = a->group_end_lsn;
	a->group_open = false;
	a->group_txns = 0;
	a->group_bytes = 0;
	return apply_flush(a);
}

/* A source transaction that changed nothing here: acknowledge it in order. */
static bool
apply_advance(applier *a, pgo_lsn end_lsn)
{
	pgo_lsn saved = a->group_end_lsn;

	if (a->group_open)
	{
		/* the open group's COMMIT covers it */
		a->group_end_lsn = end_lsn;
		return true;
	}
	a->group_end_lsn = end_lsn;
	if (!apply_push(a, AP_ADVANCE, NULL, 0, NULL))
		return false;
	a->group_end_lsn = saved;
	return true;
}

static bool
apply_unsupported(applier *a, const pgo_message *msg)
{
	char text[512];

	snprintf(text, sizeof(text),
	         "the source sent a %s message, but the apply asks for streaming off and no two-phase "
	         "decoding: check that nothing else changed the slot's options",
	         pgo_msgtype_name(msg->type));
	return apply_fail(a, text, NULL);
}

bool
apply_message(applier *a, pgo_message *msg, pgo_lsn wal_start, size_t msg_len)
{
	relcache_entry *e = NULL;

	if (a->failed)
		return false;
	a->change_lsn = wal_start;
	switch (msg->type)
	{
		case PGO_MSG_BEGIN:
			a->in_txn = true;
			a->txn_lsn = msg->u.begin.final_lsn;
			a->txn_xid = msg->u.begin.xid;
			/* already applied before a restart, or skipped by the operator */
			a->skipping = msg->u.begin.final_lsn < a->progress_lsn ||
			              (a->opts.skip_lsn && msg->u.begin.final_lsn == a->opts.skip_lsn);
			if (a->skipping && a->opts.skip_lsn == msg->u.begin.final_lsn && !a->opts.quiet)
			{
				char lsn[PGO_LSN_STRLEN];

				fprintf(stderr,
				        "pg_dbmigrator: NOTICE: skipping the source transaction %u committed at "
				        "%s (--skip-lsn)\n",
				        msg->u.begin.xid, pgo_lsn_format(msg->u.begin.final_lsn, lsn));
			}
			return true;
		case PGO_MSG_COMMIT:
			a->in_txn = false;
			a->last_commit_time = msg->u.commit.commit_time;
			if (a->skipping)
			{
				a->skipping = false;
				a->stats.skipped_txns++;
				return apply_advance(a, msg->u.commit.end_lsn);
			}
			a->stats.txns++;
			a->group_end_lsn = msg->u.commit.end_lsn;
			if (!a->group_open)
				return apply_advance(a, msg->u.commit.end_lsn);
			a->group_txns++;
			if (a->group_txns >= a->opts.group_txns || a->group_bytes >= a->opts.group_bytes)
				return apply_end_group(a);
			return true;
		case PGO_MSG_ORIGIN:
			a->stats.origins++;
			snprintf(a->last_origin, sizeof(a->last_origin), "%.*s", (int)msg->u.origin.name.len,
			         msg->u.origin.name.ptr);
			return true;
		case PGO_MSG_RELATION:
		case PGO_MSG_TYPE:
			return true; /* the caller's relcache has it; mapping happens at first use */
		case PGO_MSG_MESSAGE:
			a->stats.messages++;
			return true;
		case PGO_MSG_INSERT:
		case PGO_MSG_UPDATE:
		case PGO_MSG_DELETE:
		case PGO_MSG_TRUNCATE:
			break;
		default:
			return apply_unsupported(a, msg);
	}
	if (!a->in_txn)
		return apply_fail(a, "the source sent a change outside a transaction", NULL);
	if (a->skipping)
		return true;
	if (msg->type != PGO_MSG_TRUNCATE)
	{
		pgo_oid relid = msg->type == PGO_MSG_INSERT   ? msg->u.insert.relid
		                : msg->type == PGO_MSG_UPDATE ? msg->u.update.relid
		                                              : msg->u.del.relid;

		e = relcache_get(a->rels, relid);
		if (e == NULL)
		{
			char text[128];

			snprintf(text, sizeof(text),
			         "a change for relation %u came before its Relation message", relid);
			return apply_fail(a, text, NULL);
		}
	}
	/* mapping a relation leaves pipeline mode, so do it before BEGIN is queued */
	if (e && apply_map(a, e) == NULL)
		return false;
	if (!apply_open_group(a))
		return false;
	a->group_bytes += msg_len;
	switch (msg->type)
	{
		case PGO_MSG_INSERT:
			return apply_insert(a, e, &msg->u.insert.newtup);
		case PGO_MSG_UPDATE:
			return apply_update(a, e, &msg->u.update);
		case PGO_MSG_DELETE:
			return apply_delete(a, e, &msg->u.del);
		default:
			return apply_truncate(a, &msg->u.truncate);
	}
}

bool
apply_lost_target(const applier *a)
{
	/* 08: connection exception; 57P01-57P03: shutdown, crash, cannot connect now */
	return a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK ||
	       strncmp(a->sqlstate, "08", 2) == 0 || strncmp(a->sqlstate, "57P", 3) == 0 ||
	       strstr(a->errmsg, "lost the connection to the target") != NULL;
}
