/*
 * pipeline.c — assembles and tears down the streaming pipeline (relation
 * cache, applier, ring, decoder, receiver) for bench, decode and migrate.
 *
 * Owns: the parts inside struct pipeline. Never: uses the replication
 * connection but to start streaming on it, hand it to the receiver and close
 * it; never reports events. The SQL catch-up (catchup.h) opens its own
 * connection to the source.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "pipeline.h"

/* Start from nothing and set up the relation cache. */
bool
pipeline_init(pipeline *p, relcache_user_free_fn user_free, char *errbuf, size_t errlen)
{
	p->cache_ready = false;
	p->app_open = false;
	p->ring_ready = false;
	memset(&p->rcv, 0, sizeof(p->rcv));
	if (!relcache_init(&p->cache, user_free, errbuf, errlen))
		return false;
	p->cache_ready = true;
	return true;
}

/* Open the applier; it borrows the relation cache. */
bool
pipeline_open_applier(pipeline *p, const apply_opts *o, char *errbuf, size_t errlen)
{
	if (!apply_open(&p->app, o, &p->cache, errbuf, errlen))
		return false;
	p->app_open = true;
	return true;
}

/* Set up the ring and the decoder. */
bool
pipeline_prepare(pipeline *p, size_t ring_size, int proto, char *errbuf, size_t errlen)
{
	if (!ring_init(&p->ring, ring_size, errbuf, errlen))
		return false;
	p->ring_ready = true;
	return stream_decoder_init(&p->sd, proto, &p->cache, errbuf, errlen);
}

/* The protocol version the decoder was set up for. */
int
pipeline_proto_version(const pipeline *p)
{
	return p->sd.cfg.proto_version;
}

/* Start the receiver thread on a streaming connection. */
bool
pipeline_start(pipeline *p, replconn *rc, int status_interval_ms, int timeout_ms, char *errbuf,
               size_t errlen)
{
	return receiver_start(&p->rcv, rc, &p->ring, status_interval_ms, timeout_ms, errbuf, errlen);
}

/* START_REPLICATION with what the pipeline was set up for, then the receiver. */
bool
pipeline_stream(pipeline *p, replconn *rc, const replstart *start, int status_interval_ms,
                int timeout_ms, char *errbuf, size_t errlen)
{
	replstart s = *start;

	s.proto_version = pipeline_proto_version(p);
	s.client_encoding = p->app_open && p->app.encoding[0] ? p->app.encoding : NULL;
	return replconn_start(rc, &s, errbuf, errlen) &&
	       pipeline_start(p, rc, status_interval_ms, timeout_ms, errbuf, errlen);
}

/* Apply the slot's backlog through SQL, as streaming would decode and apply it. */
catchup_end
pipeline_catch_up(pipeline *p, const catchup_opts *o, catchup_stats *st, char *errbuf,
                  size_t errlen)
{
	catchup_opts c = *o;
	int stream_group = p->app.opts.group_txns;
	catchup_end end;

	c.proto_version = pipeline_proto_version(p);
	c.client_encoding = p->app.encoding[0] ? p->app.encoding : NULL;
	/* a backlog is grouped larger than a live stream (APPLY_CATCHUP_GROUP_TXNS) */
	p->app.opts.group_txns = p->app.opts.catchup_group_txns;
	end = catchup_run(&c, &p->sd.dec, &p->cache, &p->app, st, errbuf, errlen);
	p->app.opts.group_txns = stream_group;
	return end;
}

/* Run the applier on the stream. */
stream_end
pipeline_apply(pipeline *p, const stream_opts *o, char *errbuf, size_t errlen)
{
	return stream_apply(o, &p->rcv, &p->ring, &p->sd.dec, &p->cache, &p->app, errbuf, errlen);
}

/* Stop the receiver cleanly. */
bool
pipeline_stop(pipeline *p, char *errbuf, size_t errlen)
{
	return receiver_stop(&p->rcv, errbuf, errlen);
}

/* Stop the receiver on a failed path, keeping its own error if errbuf has none. */
void
pipeline_abandon(pipeline *p, char *errbuf, size_t errlen)
{
	if (!p->rcv.started)
		return;
	receiver_abandon(&p->rcv);
	if (errbuf != NULL && p->rcv.failed && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "%s", p->rcv.errmsg);
}

/* Free whatever was set up, in the reverse order of the set-up. */
void
pipeline_free(pipeline *p)
{
	pipeline_abandon(p, NULL, 0);
	memset(&p->rcv, 0, sizeof(p->rcv));
	if (p->app_open)
		apply_close(&p->app);
	p->app_open = false;
	if (p->ring_ready)
		ring_free(&p->ring);
	p->ring_ready = false;
	if (p->cache_ready)
		relcache_free(&p->cache);
	p->cache_ready = false;
}

/* Stop, close the replication connection, free: the end of streaming on any path. */
void
pipeline_close(pipeline *p, replconn *rc, char *errbuf, size_t errlen)
{
	pipeline_abandon(p, errbuf, errlen);
	replconn_close(rc);
	pipeline_free(p);
}
