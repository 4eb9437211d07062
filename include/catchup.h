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
 * How: the backlog is read in chunks: the transactions that commit in the
 * next CATCHUP_DEFAULT_CHUNK_BYTES of WAL (upto_lsn), each decoded by the
 * same decoder and applied by the same applier as the stream's. When a
 * chunk is applied, its last commit is made durable on the target and only
 * then is the slot advanced to it (pg_replication_slot_advance): the slot
 * never moves past what the target keeps, so a crash at any point repeats
 * the chunk, and the applier's progress row skips what it already has. The
 * chunk that reaches the WAL the source had flushed when it began ends the
 * catch-up (bounding chunks by WAL, not by a count of changes, says so
 * without asking again: every peek decodes again from the slot's
 * restart_lsn, a large transaction included). So does a chunk in which
 * nothing committed: a transaction longer than a chunk is under way, and
 * the stream reads it as it comes. Streaming takes over from there.
 *
 * Pipelined (12 and later): peeking is serial, since the source decodes a
 * chunk in full before it sends its first change, and the slot cannot be
 * read past what is applied. So the catch-up makes a temporary copy of the
 * slot (pg_copy_logical_replication_slot: it goes with the session) and
 * consumes that one (pg_logical_slot_get_binary_changes): the next chunk is
 * asked for before the one just received is applied, and the source
 * decodes it meanwhile, and its rows are read while the one before is
 * applied. Chunks start at 1 MB and double up to the chunk size, and
 * taper towards the end (catchup_taper: the last is applied alone); a
 * received chunk is kept in an arena of up to 64 MB, and the rest of a
 * larger one is applied as it comes. The slot itself is still only
 * advanced to what the sink keeps (between chunks once that is a chunk
 * size ahead, and at the end). Without a free replication slot for the
 * copy the serial mode runs.
 *
 * Who consumes the messages is a sink: the applier (catchup_run) or any
 * other consumer that can say what it keeps for good, such as `decode`
 * writing and fsyncing its output (catchup_run_sink).
 *
 * Owns: its connection to the source (opened and closed by catchup_run)
 * and the temporary slot, the results and the arena it holds while the
 * sink points into them. Borrows: the
 * decoder, and the sink with what it consumes into (the pipeline's relation
 * cache and applier). Never: runs while the slot is streaming (the slot is
 * in use then), or advances the slot beyond what the sink says it keeps.
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

/*
 * WAL read per chunk: the source materializes a chunk's changes (in
 * work_mem, then a temporary file) before it sends the first one.
 */
#define CATCHUP_DEFAULT_CHUNK_BYTES ((pgo_lsn)256 * 1024 * 1024)

/*
 * The pipelined mode's first chunk of WAL; each next one is twice as large,
 * up to the chunk size: the source decodes the next chunk while this one is
 * applied, and the first one is all the apply waits for.
 */
#define CATCHUP_FIRST_CHUNK_BYTES ((pgo_lsn)1 * 1024 * 1024)

/*
 * The pipelined mode's chunks taper towards the end of the WAL to read:
 * none is cut below this share of the WAL read so far (1 / this), nor below
 * the first chunk (see catchup_taper).
 */
#define CATCHUP_TAPER_FLOOR_DIV 8

struct catchup_stats;

typedef struct catchup_opts
{
	const char *source;              /* borrowed: the source's connection string */
	const char *slot;                /* borrowed */
	const char *const *publications; /* borrowed, NULL-terminated */
	int proto_version;               /* pgoutput's protocol version, as the decoder's */
	bool messages;                   /* ask for logical decoding messages (the DDL capture) */
	const char *client_encoding;     /* borrowed; NULL: the server's default */
	uint64_t chunk_bytes;            /* WAL per chunk; 0: CATCHUP_DEFAULT_CHUNK_BYTES */
	pgo_lsn endpos;                  /* 0: none; else stop before a transaction past it */
	volatile sig_atomic_t *stop;     /* borrowed, may be NULL: stop at the next commit */
	/*
	 * May be NULL: called between chunks, after one is handed to the sink,
	 * with where it ended (applied), the source's flushed WAL when the last
	 * chunk was asked for (target), and the statistics so far (a long
	 * backlog is read for minutes: the caller says how far it has come)
	 */
	void (*progress)(void *arg, pgo_lsn applied, pgo_lsn target, const struct catchup_stats *st);
	void *progress_arg; /* borrowed: passed to progress */
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
	uint64_t early;    /* of them, read while the chunk before was applied (pipelined) */
	uint64_t bytes;    /* their bytes */
	pgo_lsn advanced;  /* where the slot was last advanced to (0: not moved) */
	bool pipelined;    /* read from a temporary copy of the slot, the next chunk decoded
	                    * while one is applied (12 and later) */
} catchup_stats;

/*
 * How the backlog was read, for a report: "" (serial), or " (pipelined, N %
 * read ahead)": the share of the messages read while the chunk before was
 * applied. Returns buf.
 */
const char *catchup_mode_text(const catchup_stats *st, char *buf, size_t size);

/*
 * A consumer of the backlog's messages. Every function returns false with
 * errbuf set when it fails; the catch-up then stops, and the slot stays
 * where the last settle put it.
 */
typedef struct catchup_sink
{
	void *arg; /* borrowed: passed to each function */
	/* consume one message (the sink may change msg); its data lives until release, or until holds says no */
	bool (*message)(void *arg, pgo_message *msg, pgo_lsn lsn, size_t len, char *errbuf,
	                size_t errlen);
	/* does the sink still point into messages it was given? NULL: never */
	bool (*holds)(void *arg);
	/* stop pointing into them (send what was collected); NULL: nothing to do */
	bool (*release)(void *arg, char *errbuf, size_t errlen);
	/*
	 * Between transactions: keep everything consumed for good, and wait for
	 * it with wait, else without waiting; *kept: the end of what is kept
	 * for good so far
	 */
	bool (*settle)(void *arg, bool wait, pgo_lsn *kept, char *errbuf, size_t errlen);
} catchup_sink;

/*
 * Hand the slot's backlog, read through SQL, to a sink until a chunk comes
 * back short (or stop, or endpos); after each chunk the slot is advanced to
 * what the sink keeps. The slot must not be streaming.
 */
PGDBM_MUST_CHECK catchup_end catchup_run_sink(const catchup_opts *o, pgo_decoder *dec,
                                              const catchup_sink *sink, catchup_stats *st,
                                              char *errbuf, size_t errlen);

/*
 * Apply the slot's backlog through SQL until a chunk comes back short (or
 * stop, or endpos). The applier must be open on the target; the slot must
 * not be streaming.
 */
PGDBM_MUST_CHECK catchup_end catchup_run(const catchup_opts *o, pgo_decoder *dec, relcache *rels,
                                         applier *a, catchup_stats *st, char *errbuf,
                                         size_t errlen);

/*
 * The size of the pipelined mode's next chunk from `from`, when `end` is
 * where the reading stops and `start` where it began: chunk, but at most
 * half of what is left, so that the chunks taper towards the end. Why: the
 * last chunk is applied with nothing decoded meanwhile (the source decodes
 * a chunk whole before it sends its first row), and with chunks that only
 * double it was up to half of the backlog. But each chunk costs the source
 * a decoding of the WAL again from the slot's restart point, which a
 * backlog written faster than running-transaction records are logged never
 * moves: so no chunk is cut below 1 / CATCHUP_TAPER_FLOOR_DIV of what was
 * read already, nor below the first chunk (the one before the end then
 * takes the rest).
 */
PGDBM_MUST_CHECK pgo_lsn catchup_taper(pgo_lsn chunk, pgo_lsn from, pgo_lsn end, pgo_lsn start);

/*
 * The publication_names option's value: "a","b" (double quotes doubled).
 * False when it does not fit in size.
 */
PGDBM_MUST_CHECK bool catchup_publication_names(const char *const *pubs, char *buf, size_t size);

#endif /* CATCHUP_H */
