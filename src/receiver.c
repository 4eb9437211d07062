/*
 * receiver.c — the receiver thread (see receiver.h).
 *
 * The loop reads like pg_recvlogical's: PQgetCopyData(conn, &buf, 1), and
 * select() on the socket with a timeout taken from the next status update
 * when nothing is buffered. CopyData headers go through pgo_copy_parse.
 *
 * Parked (a light stream, see receiver.h), the same reading is done by the
 * consumer in receiver_pump, under the same conn_lock, never waiting for
 * room in the ring.
 *
 * Owns: the thread, the libpq buffer of the message in hand (and held_buf,
 * a message the consumer had no room for). Never: touches the decoded
 * stream (the apply side does), reports a flush position the consumer did
 * not publish, or blocks longer than a status interval.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "receiver.h"

/* While data flows: wait this long for this many bytes before reading. */
#define RECEIVER_BATCH_WAIT_MS 5
#define RECEIVER_BATCH_LOWAT   (64 * 1024)
/*
 * ...but only after a burst of at least this many bytes (several small
 * transactions): a light stream (a transaction now and then, its messages
 * in separate segments) is read as it comes, or each of its transactions
 * would wait for the batch. A backlog still batches: reading it message by
 * message costs more than twice the CPU on single-row transactions.
 */
#define RECEIVER_BATCH_MIN_BURST (2 * 1024)

/* Published bytes after which the consumer is woken even within a burst. */
#define RECEIVER_NOTIFY_BYTES (256 * 1024)

/* While the ring is full, status updates go out at least this often. */
#define RECEIVER_STALLED_STATUS_MS 1000
/* The longest single wait, so a stop request is seen promptly. */
#define RECEIVER_MAX_WAIT_MS 100
/*
 * Parked (the consumer reads), the thread looks every RECEIVER_PARK_CHECK_MS
 * whether the consumer has read within RECEIVER_PARK_STALE_MS; if not (it
 * is busy with the target), the thread takes the connection back.
 */
#define RECEIVER_PARK_CHECK_MS 20
#define RECEIVER_PARK_STALE_MS 50
/* How long the end of the stream may take after CopyDone. */
#define RECEIVER_END_TIMEOUT_MS 10000

/*
 * Record the thread's failure (the first one wins): what, libpq's detail, and
 * the positions. Before anything arrives or is acknowledged in this stream,
 * the position it started from stands for both (everything before it is on
 * the consumer's side already), so no message says 0/0.
 */
static void
receiver_fail_as(receiver *r, bool fatal, const char *what, const char *detail)
{
	char recv[PGO_LSN_STRLEN], flush[PGO_LSN_STRLEN], where[96];
	size_t n = detail ? strlen(detail) : 0;
	pgo_lsn received = atomic_load(&r->received_lsn), acked = atomic_load(&r->flush_lsn);
	pgo_lsn start = r->rc->start_lsn;

	if (r->failed)
		return;
	while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
		n--;
	if (acked == 0)
		acked = start;
	if (received != 0)
		snprintf(where, sizeof(where), "last received %s, last acknowledged %s",
		         pgo_lsn_format(received, recv), pgo_lsn_format(acked, flush));
	else if (start != 0)
		snprintf(where, sizeof(where), "nothing received since streaming started at %s",
		         pgo_lsn_format(start, recv));
	else
		snprintf(where, sizeof(where), "nothing received from the slot's confirmed position");
	snprintf(r->errmsg, sizeof(r->errmsg), "%s%s%.*s (%s)", what, n ? ": " : "", (int)n,
	         n ? detail : "", where);
	r->fatal = fatal;
	r->failed = true;
}

/* A failure a new connection may heal (a lost connection, a restarted server). */
static void
receiver_fail(receiver *r, const char *what, const char *detail)
{
	receiver_fail_as(r, false, what, detail);
}

/* Send a standby status update with the consumer's flush position. */
static bool
receiver_send_status(receiver *r, bool reply_requested)
{
	uint8_t msg[PGO_STATUS_UPDATE_SIZE];
	pgo_lsn flush = atomic_load(&r->flush_lsn);
	pgo_lsn received = atomic_load(&r->received_lsn);
	PGconn *conn = r->rc->conn;

	/* write: what is in the ring; flush and apply: only what the consumer finished */
	pgo_copy_build_status(msg, received > flush ? received : flush, flush, flush, replconn_now(),
	                      reply_requested);
	if (PQputCopyData(conn, (const char *)msg, sizeof(msg)) <= 0 || PQflush(conn) != 0)
	{
		receiver_fail(r, "could not send a status update to the source", PQerrorMessage(conn));
		return false;
	}
	r->sent_flush = flush;
	atomic_fetch_add(&r->status_sent, 1);
	return true;
}

/* Has the consumer finished more since the last status update? */
static bool
receiver_flush_moved(receiver *r)
{
	return atomic_load(&r->flush_lsn) != r->sent_flush;
}

/* Wait up to ms for the socket to be readable, then let libpq read it. */
static bool
receiver_wait_socket(receiver *r, int64_t ms, int lowat)
{
	PGconn *conn = r->rc->conn;
	int fd = PQsocket(conn);
	fd_set rfds;
	struct timeval tv;
	bool woken = true; /* without a select() that says otherwise, the pipe may hold bytes */

	if (fd < 0)
	{
		receiver_fail(r, "lost the replication connection", PQerrorMessage(conn));
		return false;
	}
	if (lowat != r->lowat)
	{
		/* best effort: without it we only read in smaller pieces */
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
		r->lowat = lowat;
	}
	FD_ZERO(&rfds);
	FD_SET(fd, &rfds);
	FD_SET(r->wake_fd[0], &rfds);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	/* a flush position published after this store wakes us (receiver_set_flush) */
	atomic_store(&r->sleeping, true);
	if (!receiver_flush_moved(r))
	{
		int n = select((fd > r->wake_fd[0] ? fd : r->wake_fd[0]) + 1, &rfds, NULL, NULL, &tv);

		if (n < 0 && errno != EINTR)
		{
			atomic_store(&r->sleeping, false);
			receiver_fail(r, "select() on the replication connection failed", strerror(errno));
			return false;
		}
		if (n >= 0)
			woken = FD_ISSET(r->wake_fd[0], &rfds);
	}
	atomic_store(&r->sleeping, false);
	if (woken)
	{
		/* a read that finds the pipe empty is a syscall per wait: only when woken */
		char drain[64];

		while (read(r->wake_fd[0], drain, sizeof(drain)) > 0)
			;
	}
	if (PQconsumeInput(conn) == 0)
	{
		receiver_fail(r, "lost the replication connection", PQerrorMessage(conn));
		return false;
	}
	return true;
}

/*
 * Wait for a batch? Only after a burst (a backlog, or a busy stream), and not
 * while the consumer waits for records: it would wait with them. When true,
 * batch_waiting is set, and a consumer going idle wakes the batch wait.
 */
static bool
receiver_batch_due(receiver *r)
{
	if (r->got_since_wait < RECEIVER_BATCH_MIN_BURST)
		return false;
	atomic_store(&r->batch_waiting, true);
	/* after the store: either we see the consumer idle or it sees us batching */
	if (atomic_load(&r->consumer_idle))
	{
		atomic_store(&r->batch_waiting, false);
		return false;
	}
	return true;
}

/* Report why the server ended the COPY (an error, or a clean end). */
static void
receiver_fail_copy_end(receiver *r)
{
	PGconn *conn = r->rc->conn;
	PGresult *res = PQgetResult(conn);

	if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/*
		 * What the walsender would say again on a new connection: a
		 * publication missing (42704) or not permitted (42501), a value it
		 * cannot convert (class 22), something unsupported (0A000). A
		 * terminated walsender, a restart or a busy slot heals.
		 */
		bool fatal = state && (strcmp(state, "42704") == 0 || strcmp(state, "42501") == 0 ||
		                       strncmp(state, "22", 2) == 0 || strcmp(state, "0A000") == 0);

		receiver_fail_as(r, fatal, "the source ended replication with an error",
		                 PQresultErrorMessage(res));
	}
	else
		receiver_fail(r, "the source ended replication unexpectedly", NULL);
	PQclear(res);
}

/* Milliseconds until the next status update is due (never negative). */
static int64_t
receiver_until_status(int64_t last, int64_t interval)
{
	int64_t left = last + interval - cli_now_ms();

	return left < 0 ? 0 : left;
}

static void receiver_put(receiver *r, const pgo_xlogdata *x, void *dst);
static void receiver_wake(receiver *r);

/* Put one XLogData payload into the ring, waiting for space; false to end the loop. */
static bool
receiver_push_xlogdata(receiver *r, const pgo_xlogdata *x)
{
	int64_t *last_status = &r->last_status_ms;
	void *dst;

	for (;;)
	{
		int64_t interval = r->status_interval_ms < RECEIVER_STALLED_STATUS_MS
		                       ? r->status_interval_ms
		                       : RECEIVER_STALLED_STATUS_MS;
		int64_t wait = receiver_until_status(*last_status, interval);
		ring_status st;

		if (wait > RECEIVER_MAX_WAIT_MS)
			wait = RECEIVER_MAX_WAIT_MS;
		st = ring_reserve(r->ring, x->len + 1, (int)wait, &dst);
		if (st == RING_OK)
			break;
		if (st == RING_CLOSED)
			return false; /* the consumer is gone */
		if (st == RING_TOO_BIG)
		{
			/* it comes again after every reconnect: only a larger ring gets past it */
			char lsn[PGO_LSN_STRLEN], what[320];
			size_t mb = (x->len + 1 + RING_HEADER_SIZE + (1u << 20) - 1) >> 20;

			snprintf(what, sizeof(what),
			         "a %zu-byte message at %s does not fit in the %zu-byte ring: raise "
			         "--ring-size to at least %zuMB and run again",
			         x->len, pgo_lsn_format(x->data_start, lsn), r->ring->capacity, mb);
			receiver_fail_as(r, true, what, NULL);
			return false;
		}
		/* RING_TIMEOUT: the consumer is slow; keep the walsender content */
		if (atomic_load(&r->stop))
			return false;
		if (receiver_until_status(*last_status, interval) == 0 || receiver_flush_moved(r))
		{
			if (!receiver_send_status(r, false))
				return false;
			*last_status = cli_now_ms();
		}
	}
	/* time spent waiting for the consumer is not the server's silence */
	r->last_heard_ms = cli_now_ms();
	receiver_put(r, x, dst);
	return true;
}

/* Copy a reserved XLogData record into the ring and publish it (quietly: see ring_notify). */
static void
receiver_put(receiver *r, const pgo_xlogdata *x, void *dst)
{
	memcpy(dst, x->data, x->len);
	((char *)dst)[x->len] = '\0';
	ring_commit_quiet(r->ring, RECEIVER_REC_XLOGDATA, x->data_start);
	/* pgoutput's messages before a transaction's Commit: the consumer cannot end it yet */
	r->mid_txn = x->len > 0 && x->data[0] != 0 && strchr("BIUDRYTO", x->data[0]) != NULL;
	r->unnotified += x->len + 16;
	if (r->unnotified >= RECEIVER_NOTIFY_BYTES)
	{
		ring_notify(r->ring);
		r->unnotified = 0;
	}
	atomic_store(&r->received_lsn, x->data_start);
	atomic_fetch_add(&r->bytes, x->len);
	atomic_fetch_add(&r->messages, 1);
}

/* End the stream politely: final status, CopyDone, drain what is in flight. */
static void
receiver_finish(receiver *r)
{
	PGconn *conn = r->rc->conn;
	int64_t deadline = cli_now_ms() + RECEIVER_END_TIMEOUT_MS;
	PGresult *res;

	if (!receiver_send_status(r, false))
		return;
	if (PQputCopyEnd(conn, NULL) <= 0 || PQflush(conn) != 0)
	{
		receiver_fail(r, "could not end the replication stream", PQerrorMessage(conn));
		return;
	}
	/* discard what the server sent before it saw CopyDone: none of it is acknowledged */
	for (;;)
	{
		char *buf = NULL;
		int n = PQgetCopyData(conn, &buf, 1);

		if (buf)
			PQfreemem(buf);
		if (n > 0)
			continue;
		if (n == -1)
			break;
		if (n == -2 || cli_now_ms() > deadline || !receiver_wait_socket(r, RECEIVER_MAX_WAIT_MS, 1))
			return; /* the connection is closed by replconn_close anyway */
	}
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
}

/*
 * A silent server: ask for a reply at half the timeout, give the connection
 * up at the whole (a stalled network or a stopped walsender looks like this,
 * and TCP alone may not notice for hours). False once it is given up.
 */
static bool
receiver_check_silence(receiver *r)
{
	int64_t quiet;

	if (r->timeout_ms == 0)
		return true;
	quiet = cli_now_ms() - r->last_heard_ms;
	if (quiet >= r->timeout_ms)
	{
		char what[160];

		snprintf(what, sizeof(what),
		         "no message from the source for %lld s: the replication connection is taken "
		         "as lost",
		         (long long)(quiet / 1000));
		receiver_fail(r, what, NULL);
		return false;
	}
	if (quiet >= r->timeout_ms / 2 && !r->pinged)
	{
		if (!receiver_send_status(r, true))
			return false;
		r->pinged = true;
	}
	return true;
}

/*
 * A status update when one is due: the interval passed, a reply asked for
 * (it comes back as a keepalive with the server's position), or the
 * consumer finished more. False when it could not be sent.
 */
static bool
receiver_status_if_due(receiver *r)
{
	if (receiver_until_status(r->last_status_ms, r->status_interval_ms) > 0 &&
	    !atomic_load(&r->want_reply) && !receiver_flush_moved(r))
		return true;
	if (!receiver_send_status(r, atomic_exchange(&r->want_reply, false)))
		return false;
	r->last_status_ms = cli_now_ms();
	return true;
}

/*
 * One CopyData message (buf, n bytes) from the server: a keepalive noted
 * (and answered when asked), XLogData into the ring. The thread waits for
 * room (receiver_push_xlogdata); the consumer (!wait) does not: a message
 * it has no room for is held for the thread (1, *held set). Frees buf
 * unless held. 1: taken; 0: the loop ends (a stop, the ring closed); -1: a
 * failure (r->failed).
 */
static int
receiver_take(receiver *r, char *buf, int n, bool wait, bool *held)
{
	pgo_copymsg msg;
	pgo_error perr;

	r->got_since_wait += (size_t)n;
	r->last_heard_ms = cli_now_ms();
	r->pinged = false;
	if (pgo_copy_parse(buf, (size_t)n, &msg, &perr) != PGO_ERR_OK)
	{
		char line[256];

		pgo_error_format(&perr, line, sizeof(line));
		/* the same bytes come again after a reconnect */
		receiver_fail_as(r, true, "malformed replication message from the source", line);
		PQfreemem(buf);
		return -1;
	}
	if (msg.type == PGO_COPY_KEEPALIVE)
	{
		void *dst;

		atomic_store(&r->server_wal_end, msg.u.keepalive.wal_end);
		/* in order with the data, so the consumer knows when it is idle; skipped when full */
		if (ring_try_reserve(r->ring, 0, &dst) == RING_OK)
		{
			ring_commit_quiet(r->ring, RECEIVER_REC_KEEPALIVE, msg.u.keepalive.wal_end);
			r->unnotified++;
		}
		PQfreemem(buf);
		if (msg.u.keepalive.reply_requested)
		{
			if (!receiver_send_status(r, false))
				return -1;
			r->last_status_ms = cli_now_ms();
		}
		return 1;
	}
	if (!wait)
	{
		void *dst;

		if (ring_try_reserve(r->ring, msg.u.xlog.len + 1, &dst) != RING_OK)
		{
			/* the thread pushes it, waiting for room (or saying it never fits) */
			r->held_buf = buf;
			r->held_msg = msg.u.xlog;
			*held = true;
			return 1;
		}
		receiver_put(r, &msg.u.xlog, dst);
		PQfreemem(buf);
		return 1;
	}
	if (!receiver_push_xlogdata(r, &msg.u.xlog))
	{
		PQfreemem(buf);
		return r->failed ? -1 : 0;
	}
	PQfreemem(buf);
	return 1;
}
/*
 * Hand the connection to the consumer? Only when it has asked to read
 * (receiver_allow_hand_over), waits for records now, and the stream is
 * light (no burst since the last wait), with nothing left to hand it.
 */
static bool
receiver_may_park(receiver *r)
{
	return atomic_load(&r->hand_over) && atomic_load(&r->consumer_idle) &&
	       r->got_since_wait < RECEIVER_BATCH_MIN_BURST && r->unnotified == 0 &&
	       r->held_buf == NULL && !atomic_load(&r->take_back);
}

/* Wait up to ms on the wake-up pipe alone (parked: the socket is the consumer's). */
static void
receiver_wait_pipe(receiver *r, int64_t ms)
{
	fd_set rfds;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	FD_ZERO(&rfds);
	FD_SET(r->wake_fd[0], &rfds);
	if (select(r->wake_fd[0] + 1, &rfds, NULL, NULL, &tv) > 0)
	{
		char drain[64];

		while (read(r->wake_fd[0], drain, sizeof(drain)) > 0)
			;
	}
}

/*
 * Park: hand the connection to the consumer, and take it back when it
 * stops reading for RECEIVER_PARK_STALE_MS (busy: the status updates must
 * go on), asks for it (a message it had no room for), or at a stop. The
 * consumer ends its ring wait (ring_kick) to read at once.
 */
static void
receiver_park(receiver *r)
{
	atomic_store(&r->consumer_read_ms, cli_now_ms());
	atomic_fetch_add(&r->handovers, 1);
	atomic_store(&r->parked, true);
	pthread_mutex_unlock(&r->conn_lock);
	ring_kick(r->ring);
	for (;;)
	{
		receiver_wait_pipe(r, RECEIVER_PARK_CHECK_MS);
		if (atomic_load(&r->stop) || atomic_load(&r->take_back) ||
		    cli_now_ms() - atomic_load(&r->consumer_read_ms) >= RECEIVER_PARK_STALE_MS)
			break;
	}
	pthread_mutex_lock(&r->conn_lock);
	atomic_store(&r->parked, false);
	atomic_store(&r->take_back, false);
	r->got_since_wait = 0;
}

/* The thread body. */
static void *
receiver_main(void *arg)
{
	receiver *r = arg;
	PGconn *conn = r->rc->conn;

	pthread_mutex_lock(&r->conn_lock);
	while (!atomic_load(&r->stop))
	{
		char *buf = NULL;
		bool held = false;
		int n, took;

		if (r->held_buf)
		{
			/* what the consumer read but had no room for, before anything after it */
			bool ok = receiver_push_xlogdata(r, &r->held_msg);

			PQfreemem(r->held_buf);
			r->held_buf = NULL;
			if (!ok)
				break;
		}
		if (!receiver_status_if_due(r))
			break;
		n = PQgetCopyData(conn, &buf, 1);
		if (n == 0)
		{
			/*
			 * libpq has nothing more buffered: hand the burst to the consumer,
			 * then wait. Not in the middle of a transaction: its other messages
			 * are on their way (the walsender sends a transaction at its commit,
			 * one message at a time), and waking the consumer for each would
			 * cost a wakeup per message; the rest comes with the Commit (a full
			 * ring or RECEIVER_NOTIFY_BYTES wake it sooner, and it looks by
			 * itself every few milliseconds).
			 */
			if (r->unnotified > 0 && !r->mid_txn)
			{
				ring_notify(r->ring);
				r->unnotified = 0;
			}
			if (!receiver_check_silence(r))
				break;
			if (receiver_may_park(r))
			{
				receiver_park(r);
				continue;
			}
			int64_t wait = receiver_until_status(r->last_status_ms, r->status_interval_ms);

			if (wait > RECEIVER_MAX_WAIT_MS)
				wait = RECEIVER_MAX_WAIT_MS;
			/*
			 * The walsender flushes every message on its own. While data flows,
			 * wait briefly for a socket-buffer's worth (SO_RCVLOWAT) so that one
			 * read and one consumer wakeup carry many messages; once a short wait
			 * brings nothing, the stream is idle and we wait normally. A
			 * small burst says the stream is light, and a consumer waiting for
			 * records would wait with them: no batch wait then (see
			 * receiver_batch_due; a consumer going idle ends one under way).
			 */
			if (receiver_batch_due(r))
			{
				bool ok;

				r->got_since_wait = 0;
				ok = receiver_wait_socket(
				    r, wait < RECEIVER_BATCH_WAIT_MS ? wait : RECEIVER_BATCH_WAIT_MS,
				    RECEIVER_BATCH_LOWAT);
				atomic_store(&r->batch_waiting, false);
				if (!ok)
					break;
			}
			else
			{
				r->got_since_wait = 0;
				if (!receiver_wait_socket(r, wait, 1))
					break;
			}
			continue;
		}
		if (n == -1)
		{
			receiver_fail_copy_end(r);
			break;
		}
		if (n < 0)
		{
			receiver_fail(r, "lost the replication connection", PQerrorMessage(conn));
			break;
		}
		took = receiver_take(r, buf, n, true, &held);
		if (took <= 0)
			break;
	}
	if (!r->failed)
		receiver_finish(r);
	ring_close(r->ring);
	pthread_mutex_unlock(&r->conn_lock);
	return NULL;
}

void
receiver_allow_hand_over(receiver *r)
{
	atomic_store(&r->hand_over, true);
}

/* A failure while the consumer reads: as the thread's, the ring closed after it. */
static int
receiver_pump_failed(receiver *r)
{
	ring_close(r->ring);
	pthread_mutex_unlock(&r->conn_lock);
	return -1;
}

int
receiver_pump(receiver *r, int wait_ms)
{
	PGconn *conn = r->rc->conn;
	int put = 0;

	if (!atomic_load(&r->parked) || pthread_mutex_trylock(&r->conn_lock) != 0)
		return RECEIVER_PUMP_NOT_HANDED;
	if (!atomic_load(&r->parked) || r->failed || atomic_load(&r->take_back))
	{
		/* taken back meanwhile (or about to be) */
		pthread_mutex_unlock(&r->conn_lock);
		return r->failed ? -1 : RECEIVER_PUMP_NOT_HANDED;
	}
	atomic_store(&r->consumer_read_ms, cli_now_ms());
	r->got_since_wait = 0;
	for (int round = 0; round < 2; round++)
	{
		if (round == 0 && PQconsumeInput(conn) == 0)
		{
			receiver_fail(r, "lost the replication connection", PQerrorMessage(conn));
			return receiver_pump_failed(r);
		}
		if (!receiver_status_if_due(r))
			return receiver_pump_failed(r);
		for (;;)
		{
			char *buf = NULL;
			bool held = false;
			int n = PQgetCopyData(conn, &buf, 1);

			if (n == 0)
				break;
			if (n == -1)
			{
				receiver_fail_copy_end(r);
				return receiver_pump_failed(r);
			}
			if (n < 0)
			{
				receiver_fail(r, "lost the replication connection", PQerrorMessage(conn));
				return receiver_pump_failed(r);
			}
			if (receiver_take(r, buf, n, false, &held) < 0)
				return receiver_pump_failed(r);
			if (held)
			{
				/* no room: the thread takes the connection back and pushes it */
				atomic_store(&r->take_back, true);
				receiver_wake(r);
				pthread_mutex_unlock(&r->conn_lock);
				return put;
			}
			put++;
		}
		if (put > 0 || wait_ms <= 0 || round == 1)
			break;
		/* nothing yet: wait for it here, the status update's due time permitting */
		if (!receiver_check_silence(r))
			return receiver_pump_failed(r);
		int64_t due = receiver_until_status(r->last_status_ms, r->status_interval_ms);

		r->got_since_wait = 0;
		if (!receiver_wait_socket(r, due < wait_ms ? due : wait_ms, 1))
			return receiver_pump_failed(r);
	}
	if (r->got_since_wait >= RECEIVER_BATCH_MIN_BURST)
	{
		/* a burst: the thread reads ahead while the consumer applies it */
		atomic_store(&r->take_back, true);
		receiver_wake(r);
	}
	pthread_mutex_unlock(&r->conn_lock);
	return put;
}

/* Start the receiver thread. */
bool
receiver_start(receiver *r, replconn *rc, ring *rg, int status_interval_ms, int timeout_ms,
               char *errbuf, size_t errlen)
{
	int err;

	memset(r, 0, sizeof(*r));
	r->rc = rc;
	r->ring = rg;
	r->status_interval_ms = status_interval_ms > 0 ? status_interval_ms : 10000;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	r->last_heard_ms = cli_now_ms();
	atomic_init(&r->flush_lsn, 0);
	atomic_init(&r->stop, false);
	atomic_init(&r->want_reply, false);
	atomic_init(&r->received_lsn, 0);
	atomic_init(&r->server_wal_end, 0);
	atomic_init(&r->bytes, 0);
	atomic_init(&r->messages, 0);
	atomic_init(&r->status_sent, 0);
	atomic_init(&r->sleeping, false);
	atomic_init(&r->hand_over, false);
	atomic_init(&r->parked, false);
	atomic_init(&r->take_back, false);
	atomic_init(&r->consumer_read_ms, 0);
	atomic_init(&r->handovers, 0);
	pthread_mutex_init(&r->conn_lock, NULL);
	if (pipe(r->wake_fd) != 0)
	{
		snprintf(errbuf, errlen, "could not create the receiver's wake-up pipe: %s",
		         strerror(errno));
		return false;
	}
	for (int i = 0; i < 2; i++)
		(void)fcntl(r->wake_fd[i], F_SETFL, fcntl(r->wake_fd[i], F_GETFL) | O_NONBLOCK);
	err = pthread_create(&r->thread, NULL, receiver_main, r);
	if (err != 0)
	{
		snprintf(errbuf, errlen, "could not start the receiver thread: %s", strerror(err));
		close(r->wake_fd[0]);
		close(r->wake_fd[1]);
		pthread_mutex_destroy(&r->conn_lock);
		return false;
	}
	r->started = true;
	return true;
}

/* Wake the thread from its select() (from another thread). */
static void
receiver_wake(receiver *r)
{
	char one = 1;

	(void)!write(r->wake_fd[1], &one, 1); /* a full pipe wakes it just as well */
}

/* Publish the flush position; it only moves forward. */
void
receiver_set_flush(receiver *r, pgo_lsn lsn)
{
	pgo_lsn cur = atomic_load(&r->flush_lsn);

	while (lsn > cur && !atomic_compare_exchange_weak(&r->flush_lsn, &cur, lsn))
		;
	/* after the store: either the thread sees the new position or we see it sleeping */
	if (lsn > cur && atomic_load(&r->sleeping))
		receiver_wake(r);
}

void
receiver_consumer_idle(receiver *r, bool idle)
{
	atomic_store(&r->consumer_idle, idle);
	/* after the store: either the thread sees us idle or we see it batching */
	if (idle && atomic_load(&r->batch_waiting))
		receiver_wake(r);
}

/* Stop and join the thread; false (with its error) if the thread failed. */
bool
receiver_stop(receiver *r, char *errbuf, size_t errlen)
{
	if (!r->started)
		return true;
	atomic_store(&r->stop, true);
	ring_abort(r->ring); /* wake a producer blocked on a full ring */
	receiver_wake(r);    /* ...or a parked thread */
	pthread_join(r->thread, NULL);
	r->started = false;
	close(r->wake_fd[0]);
	close(r->wake_fd[1]);
	pthread_mutex_destroy(&r->conn_lock);
	if (r->held_buf)
	{
		PQfreemem(r->held_buf);
		r->held_buf = NULL;
	}
	if (r->failed)
	{
		snprintf(errbuf, errlen, "%s", r->errmsg);
		return false;
	}
	return true;
}

/* Stop the thread after a failure elsewhere; its own error stays in r->errmsg. */
void
receiver_abandon(receiver *r)
{
	char ignored[sizeof(r->errmsg)];

	if (!receiver_stop(r, ignored, sizeof(ignored)))
	{
		/* the same message is in r->errmsg, where the failing caller reads it */
	}
}

/* Ask the server for a keepalive now (its current position). */
void
receiver_request_reply(receiver *r)
{
	atomic_store(&r->want_reply, true);
}

/* The flush position last reported. */
pgo_lsn
receiver_flush_lsn(receiver *r)
{
	return atomic_load(&r->flush_lsn);
}
