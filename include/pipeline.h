/*
 * pipeline.h — the streaming pipeline in one place: the relation cache, the
 * ring, the decoder state, the receiver thread and (for bench and migrate)
 * the applier, set up step by step and torn down in one call.
 *
 * Owns: everything in struct pipeline. Borrows: the replication connection
 * (the caller opens it; pipeline_stream starts streaming on it with what the
 * pipeline was set up for; pipeline_close closes it). Never: opens a
 * connection to the source, or reports an event; the callers keep their own
 * messages, events and retry decisions.
 *
 * Order of use: pipeline_init → [pipeline_open_applier] → pipeline_prepare →
 * pipeline_stream (or the caller's replconn_start, then pipeline_start) →
 * pipeline_apply or the caller's own loop → pipeline_stop; on any path
 * pipeline_close (or pipeline_abandon before the caller closes the
 * replication connection, then pipeline_free).
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "apply.h"
#include "catchup.h"
#include "receiver.h"
#include "relcache.h"
#include "replconn.h"
#include "ring.h"
#include "stream.h"

/*
 * Big (the decoder's column storage): callers keep it in static storage.
 * Zeroed static storage, or a pipeline after pipeline_free, is a valid
 * "nothing set up" state.
 */
typedef struct pipeline
{
	relcache cache;    /* set up by pipeline_init, freed by pipeline_free */
	applier app;       /* opened by pipeline_open_applier, closed by pipeline_free */
	ring ring;         /* set up by pipeline_prepare, freed by pipeline_free */
	stream_decoder sd; /* set up by pipeline_prepare; borrows cache */
	receiver rcv;      /* started by pipeline_start; borrows ring and the caller's replconn */
	bool cache_ready;
	bool app_open;
	bool ring_ready;
} pipeline;

/* Start from nothing and set up the relation cache (user_free: see relcache_init). */
PGDBM_MUST_CHECK bool pipeline_init(pipeline *p, relcache_user_free_fn user_free, char *errbuf,
                                    size_t errlen);

/* Open the applier on the target with o (it borrows the pipeline's relation cache). */
PGDBM_MUST_CHECK bool pipeline_open_applier(pipeline *p, const apply_opts *o, char *errbuf,
                                            size_t errlen);

/* Set up a ring of ring_size bytes and the decoder for protocol version proto. */
PGDBM_MUST_CHECK bool pipeline_prepare(pipeline *p, size_t ring_size, int proto, char *errbuf,
                                       size_t errlen);

/* The protocol version the decoder was set up for (what START_REPLICATION must ask for). */
int pipeline_proto_version(const pipeline *p);

/* Start the receiver thread on rc, which must be streaming (see receiver_start). */
PGDBM_MUST_CHECK bool pipeline_start(pipeline *p, replconn *rc, int status_interval_ms,
                                     int timeout_ms, char *errbuf, size_t errlen);

/*
 * Start streaming on rc: START_REPLICATION for start, with the decoder's
 * protocol version and, when there is an applier, the target's client
 * encoding, then the receiver thread (see pipeline_start).
 */
PGDBM_MUST_CHECK bool pipeline_stream(pipeline *p, replconn *rc, const replstart *start,
                                      int status_interval_ms, int timeout_ms, char *errbuf,
                                      size_t errlen);

/*
 * Apply the slot's backlog through SQL (catchup_run) with the pipeline's
 * decoder, relation cache and applier, before pipeline_stream; the protocol
 * version and encoding are the pipeline's. Needs pipeline_open_applier and
 * pipeline_prepare.
 */
PGDBM_MUST_CHECK catchup_end pipeline_catch_up(pipeline *p, const catchup_opts *o,
                                               catchup_stats *st, char *errbuf, size_t errlen);

/* Run the applier on the stream (see stream_apply); needs pipeline_open_applier. */
PGDBM_MUST_CHECK stream_end pipeline_apply(pipeline *p, const stream_opts *o, char *errbuf,
                                           size_t errlen);

/* Stop the receiver cleanly: final status update, end of the stream (see receiver_stop). */
PGDBM_MUST_CHECK bool pipeline_stop(pipeline *p, char *errbuf, size_t errlen);

/*
 * On a path that has failed: stop the receiver if it runs, and when errbuf is
 * given and still empty, put the receiver thread's own error there.
 */
void pipeline_abandon(pipeline *p, char *errbuf, size_t errlen);

/* Free whatever was set up (safe after any partial init, and twice); p can be set up again. */
void pipeline_free(pipeline *p);

/*
 * The end of a command's (or a connection attempt's) streaming, on any path:
 * pipeline_abandon (with errbuf: see there; NULL on a path that succeeded),
 * close rc, pipeline_free. Safe after any partial set-up.
 */
void pipeline_close(pipeline *p, replconn *rc, char *errbuf, size_t errlen);

#endif /* PIPELINE_H */
