/*
 * lobsync.h — large objects carried from the source to the target at the
 * cutover. Logical decoding does not carry large objects: pg_dump copies
 * them at the snapshot, and whatever the application created, rewrote,
 * truncated or unlinked afterwards is brought over here, once the source is
 * quiet (after the final drain, before the sequences).
 *
 * Both sides' objects are walked in OID order (a merge of two keyset-paged
 * lists). Each object is compared in 1 MB chunks by length and an MD5
 * computed by the server (lo_get, md5), so only 33 bytes per chunk cross
 * the network when nothing changed; then only what differs is written:
 * objects only on the source are created with the same OID (lo_create),
 * differing chunks are written (lo_put), a longer target object is cut
 * (lo_truncate64), objects only on the target are unlinked; with owners
 * kept (no --no-owner) a differing owner is set (ALTER LARGE OBJECT), with
 * privileges kept (no --no-privileges) differing grants are set (REVOKE,
 * GRANT: compared by an MD5 of each side's GRANT statements). The
 * source is read in one repeatable-read, read-only transaction; the target
 * is written in transactions of whole objects (a batch, cut after 32 MB),
 * so a kill leaves every object either as it was or as the source has it,
 * and running again finishes the job (the comparison is the plan).
 *
 * Memory is bounded: one batch of OIDs, one page of chunk hashes per side,
 * two chunks of data (the one written, the next one read).
 *
 * Owns: nothing past a call. Never: writes to the source, nor makes a write
 * on the source wait (it only reads, in a snapshot); never holds a whole
 * object in memory.
 */
#ifndef LOBSYNC_H
#define LOBSYNC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"

/* Bytes per chunk: what one lo_get reads, one MD5 covers, one lo_put writes. */
#define LOBSYNC_CHUNK (1024 * 1024)

/* ---- the pure parts of the plan (unit-tested) */

/* What the merge of the two ordered OID lists takes next. */
typedef enum lobsync_side
{
	LOBSYNC_DONE,        /* both lists are exhausted */
	LOBSYNC_SOURCE_ONLY, /* the source's next OID is not on the target: create it */
	LOBSYNC_TARGET_ONLY, /* the target's next OID is not on the source: unlink it */
	LOBSYNC_BOTH         /* the same OID on both: compare it */
} lobsync_side;

/* The next step of the merge, given each side's next OID (have_* false: exhausted). */
lobsync_side lobsync_merge_step(bool have_src, uint32_t src, bool have_tgt, uint32_t tgt);

/* One chunk of one object on one side, as the server describes it. */
typedef struct lobsync_chunk
{
	int64_t len;  /* bytes in it: LOBSYNC_CHUNK but in the last chunk; -1: no such chunk */
	char md5[33]; /* its MD5 in hex, NUL-terminated ("" when len is -1) */
} lobsync_chunk;

/* Must the target's chunk t be rewritten from the source's chunk s? */
bool lobsync_chunk_differs(const lobsync_chunk *s, const lobsync_chunk *t);

/* Is a chunk of this length the object's last one (shorter than a whole chunk, or absent)? */
bool lobsync_chunk_is_last(int64_t len);

/* ---- the run */

typedef struct lobsync_opts
{
	bool owners;                 /* compare and set owners (the restore kept them: no --no-owner) */
	bool privileges;             /* compare and set grants (no --no-privileges) */
	int batch;                   /* objects per batch and per target transaction (<= 0: 256) */
	int progress_ms;             /* a progress event at most this often (<= 0: 1000) */
	const char *stage;           /* the events' stage, e.g. "LargeObjects" (borrowed) */
	volatile sig_atomic_t *stop; /* borrowed, may be NULL: nonzero stops at the next object */
} lobsync_opts;

typedef struct lobsync_result
{
	int64_t src_objects, tgt_objects; /* on each side before the run */
	int64_t compared;                 /* on both sides, compared */
	int64_t created, rewritten, unlinked, owners_set, grants_set;
	int64_t chunks_written;
	int64_t bytes_written; /* bytes written to the target */
	int64_t truncated;     /* target objects cut to the source's length */
	double seconds;
} lobsync_result;

/*
 * Make the target's large objects equal the source's: src is a session on
 * the source (not in a transaction; this opens and ends its own
 * read-only one), tgt a session on the target (likewise). Progress events of
 * o->stage at most every o->progress_ms while it works. False with errbuf
 * saying which object and why; what was committed before stays, and running
 * again finishes the job.
 */
PGDBM_MUST_CHECK bool lobsync_run(PGconn *src, PGconn *tgt, const lobsync_opts *o,
                                  lobsync_result *r, char *errbuf, size_t errlen);

#endif /* LOBSYNC_H */
