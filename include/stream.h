/*
 * stream.h — the apply thread's loop: ring records → decoder → relation
 * cache → applier, with the flush position handed back to the receiver.
 *
 * Owns: nothing; it drives the receiver's ring, the decoder, the cache and
 * the applier it is given. Never: reports a flush position beyond the
 * applier's apply_flushed_lsn (committed, and on the target's disk), except
 * the WAL end of an idle keepalive when nothing received is uncommitted or
 * waits for the target's disk.
 */
#ifndef STREAM_H
#define STREAM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "apply.h"
#include "pgoutput.h"
#include "receiver.h"
#include "relcache.h"
#include "ring.h"

#define STREAM_MAX_COLUMNS 1664 /* more than any PostgreSQL table can have */

/* A decoder with its storage: big (about 100 kB), so callers allocate it. */
typedef struct stream_decoder
{
	pgo_decoder dec;
	pgo_config cfg;
	pgo_value old_cols[STREAM_MAX_COLUMNS];
	pgo_value new_cols[STREAM_MAX_COLUMNS];
	pgo_relcol rel_cols[STREAM_MAX_COLUMNS];
} stream_decoder;

/* Set up sd for protocol version proto, checking column counts against cache. */
PGDBM_MUST_CHECK bool stream_decoder_init(stream_decoder *sd, int proto, relcache *cache,
                                          char *errbuf, size_t errlen);

/*
 * Is the stream behind the source? Told from the delay between a source
 * commit and the moment its transaction is looked at, against the least
 * such delay seen lately: the clocks' skew plus the path's own delay. The
 * least is taken over windows of STREAM_LAG_WINDOW_MS, and the floor is
 * the last window's, so a drift of either clock passes. The caller owns it;
 * zeroed: nothing seen yet.
 */
#define STREAM_BEHIND_US     2000 /* this far above the floor: behind */
#define STREAM_LAG_WINDOW_MS 5000

typedef struct stream_lag
{
	int64_t floor_us;        /* the least delay of the last window (or less, seen since) */
	int64_t window_min_us;   /* the least delay of the window under way */
	int64_t window_start_ms; /* 0: nothing seen yet */
} stream_lag;

/* Note delay_us seen at now_ms; true when it is STREAM_BEHIND_US or more above the floor. */
bool stream_lag_behind(stream_lag *l, int64_t delay_us, int64_t now_ms);

/* What the loop does after a tick (see stream_tick_fn). */
typedef enum stream_action
{
	STREAM_GO_ON,      /* nothing: keep streaming */
	STREAM_SET_ENDPOS, /* from now on, stop after the last transaction at or before *endpos */
	STREAM_STOP        /* stop cleanly now: STREAM_STOPPED */
} stream_action;

/*
 * Called by the loop about every 100 ms, between messages, on the apply
 * thread; it must not block for long (the applier waits meanwhile). It sets
 * *endpos when it returns STREAM_SET_ENDPOS, and nothing else of the loop's.
 */
typedef stream_action (*stream_tick_fn)(void *arg, pgo_lsn *endpos);

/* What a run of the loop is asked to do; the loop never writes into it. */
typedef struct stream_opts
{
	pgo_lsn endpos;              /* 0: none; else stop after the last transaction at or before it */
	volatile sig_atomic_t *stop; /* optional (a signal handler's flag): stop once *stop is set */
	stream_tick_fn tick;         /* optional: lag events, the cutover, limits */
	void *tick_arg;              /* borrowed: tick's argument */
} stream_opts;

typedef enum stream_end
{
	STREAM_ENDPOS,  /* the end position reached */
	STREAM_STOPPED, /* *stop was set, or the tick said STREAM_STOP */
	STREAM_CLOSED,  /* the receiver ended (its error, if any, is in errbuf) */
	STREAM_FAILED   /* decoding or applying failed: errbuf */
} stream_end;

/*
 * Run until endpos (o's, or one a tick set), *stop or a tick's STREAM_STOP,
 * the end of the stream, or a failure. Whatever
 * ends it, every group that can be committed is, and the receiver is told
 * the final flush position.
 */
PGDBM_MUST_CHECK stream_end stream_apply(const stream_opts *o, receiver *rcv, ring *rg,
                                         pgo_decoder *dec, relcache *rels, applier *a, char *errbuf,
                                         size_t errlen);

#endif /* STREAM_H */
