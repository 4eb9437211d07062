/*
 * receiver.h — the receiver thread: owns the replication connection once
 * START_REPLICATION succeeded, copies each XLogData payload once into the
 * ring, answers keepalives, and sends standby status updates.
 *
 * Owns: the thread. Borrows the replconn and the ring. Never: reports a
 * flush position the consumer did not publish, or lets a full ring stop the
 * status updates (a slow consumer must not make the walsender time out).
 */
#ifndef RECEIVER_H
#define RECEIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "replconn.h"
#include "ring.h"

/* Record kinds the receiver puts into the ring (first payload byte is the pgoutput tag). */
/*
 * payload: a pgoutput message followed by one NUL byte (len = message + 1),
 * so a consumer may NUL-terminate the last value in place; tag: its WAL start
 */
#define RECEIVER_REC_XLOGDATA  1
#define RECEIVER_REC_KEEPALIVE 2 /* payload: none; tag: the server's WAL end */

typedef struct receiver
{
	replconn *rc; /* borrowed: in COPY BOTH mode, used only by the thread */
	ring *ring;   /* borrowed: the thread is its producer */
	int status_interval_ms;
	int timeout_ms; /* silence after which the connection counts as lost (0: never) */
	pthread_t thread;
	bool started;

	/* consumer → receiver */
	_Atomic pgo_lsn flush_lsn; /* end LSN of the last transaction fully handled */
	atomic_bool stop;          /* finish: final status update, CopyDone */
	atomic_bool want_reply;    /* send a status update asking for a keepalive */

	/* receiver → anyone (monitoring) */
	_Atomic pgo_lsn received_lsn; /* WAL start of the last XLogData received */
	_Atomic pgo_lsn server_wal_end;
	/* the thread waits in select() on the socket and wake_fd[0]; set_flush writes to wake_fd[1] */
	int wake_fd[2];
	atomic_bool sleeping;      /* the thread is (about to be) in select() */
	atomic_bool batch_waiting; /* ...for a batch (SO_RCVLOWAT): the idle consumer pokes it */
	atomic_bool consumer_idle; /* the consumer waits for records (receiver_consumer_idle) */
	/* receiver thread only */
	pgo_lsn sent_flush;        /* the flush position of the last status update sent */
	size_t unnotified;         /* bytes published since the last ring_notify */
	size_t got_since_wait;     /* bytes of messages since the last socket wait */
	bool mid_txn;              /* the last message pushed opens or continues a transaction */
	int64_t last_heard_ms;     /* when the server last sent anything */
	bool pinged;               /* a reply was requested since then */
	int lowat;                 /* the SO_RCVLOWAT set on the socket (0: never set) */
	_Atomic uint64_t bytes;    /* payload bytes received */
	_Atomic uint64_t messages; /* XLogData messages received */
	_Atomic uint64_t status_sent;

	/* set by the thread before it closes the ring; read after receiver_stop */
	bool failed;
	bool fatal; /* the failure would come again on a new connection: no point retrying */
	char errmsg[1024];
} receiver;

/*
 * Start the thread; rc must be streaming, ring initialised. timeout_ms: when
 * the server has sent nothing for half of it, a reply is requested; for all of
 * it, the connection counts as lost (the thread fails; 0: wait forever), like
 * the walreceiver's wal_receiver_timeout.
 */
PGDBM_MUST_CHECK bool receiver_start(receiver *r, replconn *rc, ring *ring, int status_interval_ms,
                                     int timeout_ms, char *errbuf, size_t errlen);

/*
 * Publish the flush position (end LSN of a finished transaction). Never moves
 * back. The thread reports it to the source at once (as PostgreSQL's apply
 * worker does after each commit): a source waiting for a synchronous standby
 * that is us releases its committers only then.
 */
void receiver_set_flush(receiver *r, pgo_lsn lsn);

/* Ask the thread to send a final status update, end the stream and exit; then join it. */
PGDBM_MUST_CHECK bool receiver_stop(receiver *r, char *errbuf, size_t errlen);

/*
 * receiver_stop on a path that has already failed: the thread's own error, if
 * it had one, stays in r->errmsg (r->failed) for the caller to report.
 */
void receiver_abandon(receiver *r);

/* Ask the server to send a keepalive (with its WAL position) as soon as possible. */
void receiver_request_reply(receiver *r);

/*
 * The consumer is about to wait for records (idle true), or has work again.
 * While it waits, what arrives is handed over at once, not batched: a batch
 * saves wakeups only while the consumer is busy anyway.
 */
void receiver_consumer_idle(receiver *r, bool idle);

/* The flush position the consumer last set (what the source is told). */
pgo_lsn receiver_flush_lsn(receiver *r);

#endif /* RECEIVER_H */
