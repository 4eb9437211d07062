/*
 * receiver.h — the receiver thread: owns the replication connection once
 * START_REPLICATION succeeded, copies each XLogData payload once into the
 * ring, answers keepalives, and sends standby status updates.
 *
 * While the stream is light and the consumer waits for it, the thread
 * hands the connection to the consumer (it parks): the consumer then reads
 * in its own thread (receiver_pump), one wakeup and one thread handoff less
 * per transaction. The thread takes the connection back as soon as the
 * consumer stops reading for RECEIVER_PARK_STALE_MS (busy with the target)
 * or cannot keep what came (a full ring).
 *
 * Owns: the thread. Borrows the replconn and the ring. Never: reports a
 * flush position the consumer did not publish, or lets a full ring or a
 * busy consumer stop the status updates (the walsender must not time out).
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
	/*
	 * Held by whoever reads the connection and fills the ring: the thread,
	 * except while it is parked (then the consumer, in receiver_pump).
	 */
	pthread_mutex_t conn_lock;
	atomic_bool hand_over;            /* the consumer pumps when handed the connection */
	atomic_bool parked;               /* the thread has handed it over */
	atomic_bool take_back;            /* the consumer asks the thread to take it back */
	_Atomic int64_t consumer_read_ms; /* when the consumer last read (parked) */
	_Atomic uint64_t handovers;       /* times the thread parked */
	/* a message the consumer read but had no room for: the thread pushes it first */
	char *held_buf;        /* owned (libpq's buffer) */
	pgo_xlogdata held_msg; /* points into held_buf */
	/* whoever holds conn_lock */
	int64_t last_status_ms;    /* when the last status update went out */
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

/*
 * The consumer (one thread) will read the connection itself when the thread
 * hands it over (receiver_pump); without this call the thread never does.
 */
void receiver_allow_hand_over(receiver *r);

/*
 * The consumer's turn to read, its ring empty: when the thread has handed
 * the connection over, read what has come into the ring, or wait up to
 * wait_ms for it on the socket. Returns RECEIVER_PUMP_NOT_HANDED when the
 * thread has the connection (wait on the ring instead), else the number of
 * records put into the ring (0: nothing came); -1 when the connection
 * failed (the ring is closed, the error is the thread's, as from
 * receiver_stop).
 */
#define RECEIVER_PUMP_NOT_HANDED (-2)
int receiver_pump(receiver *r, int wait_ms);

/* The flush position the consumer last set (what the source is told). */
pgo_lsn receiver_flush_lsn(receiver *r);

#endif /* RECEIVER_H */
