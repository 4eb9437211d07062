/*
 * apply_pipe.c — the applier's transport: one libpq connection in pipeline
 * mode, nonblocking, and the queue of statements sent and not yet answered.
 *
 * Every statement sent is queued with the description its sender gave
 * (apply_pending) and answered in order: each answer goes up to the applier
 * through apply_answer (apply_answer.c), which alone knows what an answer
 * means. The transport itself reads only two tags of its own: a sync
 * (AP_SYNC, consumed here) and a mark (AP_ADVANCE: no statement, handed up
 * once everything before it is answered). Outside pipeline mode it runs
 * single statements (session set-up, catalog queries).
 *
 * Owns: the queue (a ring of pending_cap entries, and each entry's diag and
 * stmt buffers). Never: looks inside a decoded change, or decides whether an
 * answer is a failure.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "apply.h"
#include "apply_internal.h"

#define APPLY_FLUSH_BYTES (256 * 1024) /* flush libpq's buffer after this much */
#define APPLY_MAX_PENDING 65536        /* statements in flight before we wait */

static bool apply_pipe_take(applier *a);

/* Free what a queue entry (or a description never queued) owns. */
static void
apply_pipe_forget(apply_pending *p)
{
	free(p->diag);
	p->diag = NULL;
	free(p->stmt);
	p->stmt = NULL;
}

/* Queue a copy of d (its buffers become the queue's, queued or not). */
static bool
apply_pipe_queue(applier *a, apply_pending *d)
{
	if (a->pending_count == a->pending_cap)
	{
		size_t cap = a->pending_cap ? a->pending_cap * 2 : 1024;
		apply_pending *grown = malloc(cap * sizeof(*grown));

		if (grown == NULL)
		{
			apply_pipe_forget(d);
			return apply_fail(a, "out of memory for the statement queue", NULL);
		}
		/* unroll the ring into the new array */
		for (size_t i = 0; i < a->pending_count; i++)
			grown[i] = a->pending[(a->pending_head + i) % a->pending_cap];
		free(a->pending);
		a->pending = grown;
		a->pending_cap = cap;
		a->pending_head = 0;
	}
	a->pending[(a->pending_head + a->pending_count) % a->pending_cap] = *d;
	a->pending_count++;
	if (d->what == AP_COMMIT)
		a->commits_pending++;
	if (d->what != AP_ADVANCE)
		a->stats.statements++;
	return true;
}

/* Wait for the socket to be readable (and writable when want_write). */
static bool
apply_pipe_wait_socket(applier *a, bool want_write, int timeout_ms)
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
bool
apply_pipe_flush(applier *a)
{
	for (;;)
	{
		int f = PQflush(a->conn);

		if (f < 0)
			return apply_fail_conn(a, "lost the connection to the target");
		if (!apply_pipe_take(a))
			return false;
		if (f == 0)
			break;
		if (!apply_pipe_wait_socket(a, true, 1000))
			return false;
	}
	a->unflushed = 0;
	return true;
}

/* After queueing a statement: keep libpq's buffer and the queue bounded. */
static bool
apply_pipe_after_send(applier *a, size_t bytes)
{
	a->unflushed += bytes + 32;
	if (a->unflushed >= APPLY_FLUSH_BYTES && !apply_pipe_flush(a))
		return false;
	if (a->pending_count >= APPLY_MAX_PENDING && !apply_wait(a, -1))
		return false;
	return true;
}

bool
apply_pipe_send_sql(applier *a, apply_pending *d, const char *sql)
{
	if (!PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
	{
		apply_pipe_forget(d);
		return apply_fail_conn(a, "could not send a statement to the target");
	}
	return apply_pipe_queue(a, d) && apply_pipe_after_send(a, strlen(sql));
}

bool
apply_pipe_send_prepared(applier *a, apply_pending *d, const char *name, int nparams,
                         const char *const *values, size_t bytes)
{
	if (!PQsendQueryPrepared(a->conn, name, nparams, values, NULL, NULL, 0))
	{
		apply_pipe_forget(d);
		return apply_fail_conn(a, "could not send a statement to the target");
	}
	return apply_pipe_queue(a, d) && apply_pipe_after_send(a, bytes);
}

bool
apply_pipe_send_prepare(applier *a, apply_pending *d, const char *name, const char *sql,
                        int nparams, const Oid *types)
{
	if (!PQsendPrepare(a->conn, name, sql, nparams, types))
	{
		apply_pipe_forget(d);
		return apply_fail_conn(a, "could not prepare a statement on the target");
	}
	return apply_pipe_queue(a, d) && apply_pipe_after_send(a, strlen(sql));
}

bool
apply_pipe_sync(applier *a)
{
	apply_pending d = {.what = AP_SYNC};

	if (!PQpipelineSync(a->conn) || !apply_pipe_queue(a, &d))
		return apply_fail_conn(a, "could not sync with the target");
	return true;
}

bool
apply_pipe_mark(applier *a, apply_pending *d)
{
	d->what = AP_ADVANCE;
	return apply_pipe_queue(a, d);
}

/* Take the head entry off the queue. */
static void
apply_pipe_pop(applier *a)
{
	if (a->pending[a->pending_head].what == AP_COMMIT)
		a->commits_pending--;
	apply_pipe_forget(&a->pending[a->pending_head]);
	a->pending_head = (a->pending_head + 1) % a->pending_cap;
	a->pending_count--;
	a->awaiting_null = false;
}

/* Read every answer that has arrived and hand it up; never waits. */
static bool
apply_pipe_take(applier *a)
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
			(void)apply_answer(a, p, NULL);
			apply_pipe_pop(a);
			continue;
		}
		if (PQisBusy(a->conn))
			break;
		res = PQgetResult(a->conn);
		if (res == NULL)
		{
			if (a->awaiting_null)
			{
				apply_pipe_pop(a);
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
			apply_pipe_pop(a);
			continue;
		}
		if (!apply_answer(a, p, res) && !a->failed)
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
	if (a->unflushed > 0 && !apply_pipe_flush(a))
		return false;
	return apply_pipe_take(a);
}

bool
apply_wait(applier *a, int timeout_ms)
{
	int waited = 0;

	/* answers of statements not followed by a sync come only on request */
	if (a->pending_count > 0 && !PQsendFlushRequest(a->conn))
		return apply_fail_conn(a, "could not send a flush request to the target");
	if (!apply_pipe_flush(a))
		return false;
	while (a->pending_count > 0)
	{
		if (!apply_pipe_take(a))
			return false;
		if (a->pending_count == 0)
			break;
		if (timeout_ms >= 0 && waited >= timeout_ms)
			return apply_fail(a, "the target did not answer in time", NULL);
		if (!apply_pipe_wait_socket(a, false, 100))
			return false;
		waited += 100;
	}
	return !a->failed;
}

bool
apply_await_commit(applier *a, int timeout_ms)
{
	if (!apply_poll(a))
		return false;
	if (a->commits_pending == 0)
		return true;
	return apply_pipe_wait_socket(a, false, timeout_ms) && apply_pipe_take(a);
}

int
apply_socket(const applier *a)
{
	return a->conn ? PQsocket(a->conn) : -1;
}

bool
apply_pipe_holds(const applier *a, char what)
{
	for (size_t i = 0; i < a->pending_count; i++)
		if (a->pending[(a->pending_head + i) % a->pending_cap].what == what)
			return true;
	return false;
}

void
apply_pipe_free(applier *a)
{
	while (a->pending_count > 0)
		apply_pipe_pop(a);
	free(a->pending);
	a->pending = NULL;
	a->pending_cap = a->pending_count = 0;
}

/* ------------------------------------------------------ outside the pipeline */

bool
apply_pipe_exec(applier *a, const char *sql, int nparams, const char *const *values, PGresult **out)
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

bool
apply_pipe_leave(applier *a)
{
	if (PQpipelineStatus(a->conn) == PQ_PIPELINE_OFF)
		return true;
	if (!apply_pipe_sync(a))
		return false;
	if (!apply_wait(a, -1))
		return false;
	if (PQsetnonblocking(a->conn, 0) != 0 || !PQexitPipelineMode(a->conn))
		return apply_fail_conn(a, "could not leave pipeline mode on the target");
	return true;
}

bool
apply_pipe_enter(applier *a)
{
	if (!PQenterPipelineMode(a->conn) || PQsetnonblocking(a->conn, 1) != 0)
		return apply_fail_conn(a, "could not enter pipeline mode on the target");
	return true;
}
