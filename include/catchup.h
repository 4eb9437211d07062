/*
 * catchup.h — apply a slot's backlog read through SQL
 * (pg_logical_slot_peek_binary_changes) instead of the replication stream.
 *
 * Why: a walsender makes a system call for every WAL record it reads (it
 * looks for the client's replies) and another for every message it sends.
 * On a backlog of small changes those calls are most of its time, and the
 * walsender, not the apply, sets the pace. Decoding the same WAL inside a
 * backend returns the changes as rows in large network writes: several
 * times faster on the same machine (see bench/apply-vs-native.sh).
 *
 * How: the backlog is read in chunks of whole transactions, each decoded by
 * the same decoder and applied by the same applier as the stream's. When a
 * chunk is applied, its last commit is made durable on the target and only
 * then is the slot advanced to it (pg_replication_slot_advance): the slot
 * never moves past what the target keeps, so a crash at any point repeats
 * the chunk, and the applier's progress row skips what it already has. A
 * chunk that comes back shorter than asked for means the backlog is read:
 * streaming takes over from there.
 *
 * Owns: its connection to the source (opened and closed by catchup_run),
 * the results it holds while the applier points into them. Borrows: the
 * decoder, relation cache and applier of the pipeline. Never: runs while
 * the slot is streaming (the slot is in use then), or advances the slot
 * beyond apply_flushed_lsn.
 */
#ifndef CATCHUP_H
#define CATCHUP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "relcache.h"

/* Changes (messages) asked for per chunk. */
#define CATCHUP_DEFAULT_CHUNK 1000000

typedef struct catchup_opts
{
	const char *source;              /* borrowed: the source's connection string */
	const char *slot;                /* borrowed */
	const char *const *publications; /* borrowed, NULL-terminated */
	int proto_version;               /* pgoutput's protocol version, as the decoder's */
	bool messages;                   /* ask for logical decoding messages (the DDL capture) */
	const char *client_encoding;     /* borrowed; NULL: the server's default */
	long chunk;                      /* changes per chunk; 0: CATCHUP_DEFAULT_CHUNK */
	pgo_lsn endpos;                  /* 0: none; else stop before a transaction past it */
	volatile sig_atomic_t *stop;     /* borrowed, may be NULL: stop at the next commit */
} catchup_opts;

typedef enum catchup_end
{
	CATCHUP_DONE,    /* the backlog is applied: stream from here */
	CATCHUP_STOPPED, /* *stop was set: what is complete is committed */
	CATCHUP_ENDPOS,  /* the next transaction is past endpos */
	CATCHUP_FAILED,  /* errbuf says why; what is durable is acknowledged */
} catchup_end;

typedef struct catchup_stats
{
	uint64_t chunks;   /* peeks run */
	uint64_t messages; /* messages applied */
	uint64_t bytes;    /* their bytes */
	pgo_lsn advanced;  /* where the slot was last advanced to (0: not moved) */
} catchup_stats;

/*
 * Apply the slot's backlog through SQL until a chunk comes back short (or
 * stop, or endpos). The applier must be open on the target; the slot must
 * not be streaming.
 */
PGDBM_MUST_CHECK catchup_end catchup_run(const catchup_opts *o, pgo_decoder *dec, relcache *rels,
                                         applier *a, catchup_stats *st, char *errbuf,
                                         size_t errlen);

/*
 * The publication_names option's value: "a","b" (double quotes doubled).
 * False when it does not fit in size.
 */
PGDBM_MUST_CHECK bool catchup_publication_names(const char *const *pubs, char *buf, size_t size);

#endif /* CATCHUP_H */
