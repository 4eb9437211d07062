/*
 * shadowstream.h — `shadow prepare --online`: the source's changes streamed
 * into the shadow tables between prepare and swap, through the online
 * migration's pipeline (receiver thread, pgoutput decoder, applier), the
 * applier mapping every relation into the shadow schema
 * (apply_opts.target_schema).
 *
 * One name, pgdbm_shadow_<ts>, is the migration's publication and logical
 * slot on the source and its progress row on the target
 * (_pg_dbmigrator.apply_progress): a flush position is reported to the
 * source only for a source transaction whose target commit succeeded, so a
 * stream stopped (Ctrl+C, the swap's signal) or killed resumes from the slot
 * with nothing lost and nothing applied twice.
 *
 * Owns: the publication and the slot it creates on the source (only those
 * of its own name), and the pipeline for the length of shstream_run.
 * Never: writes to the source but to create and drop them; takes a lock on
 * the source that an application's write would wait for; prints a password.
 */
#ifndef SHADOWSTREAM_H
#define SHADOWSTREAM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "replconn.h"

#define SHSTREAM_NAME 64 /* NAMEDATALEN */

/* The slot's and the publication's name of migration ts: pgdbm_shadow_<ts>. */
void shstream_name(const char *ts, char *buf, size_t size);

/*
 * On the source: drop what an earlier, killed prepare of the same name left,
 * create the publication FOR TABLE schema.tables[0..n) (FOR no table when n
 * is 0), open rc (a replication connection), check the tables' replica
 * identities, and create the slot exporting a snapshot (out->snapshot). The
 * snapshot stays valid while rc stays idle: read the source in it, then hand
 * rc to shstream_run (or close it). On failure nothing of it is left.
 */
PGDBM_MUST_CHECK bool shstream_create(const char *source, PGconn *src, const char *name,
                                      const char *schema, const char *const *tables, int n,
                                      replconn *rc, replslot *out, char *errbuf, size_t errlen);

/* Drop the slot and the publication named name (either may be gone already). */
PGDBM_MUST_CHECK bool shstream_drop(const char *source, const char *name, char *errbuf,
                                    size_t errlen);

/*
 * Wait up to seconds for the slot name to be free (no walsender streams from
 * it): the swap's hand-over from a streaming prepare. *active tells whether
 * it still is; false on a connection error.
 */
PGDBM_MUST_CHECK bool shstream_wait_free(const char *source, const char *name, int seconds,
                                         bool *active, char *errbuf, size_t errlen);

/* The bytes of WAL the slot has not confirmed yet (status). */
PGDBM_MUST_CHECK bool shstream_lag(PGconn *src, const char *name, long long *bytes, char *errbuf,
                                   size_t errlen);

typedef struct shstream_opts
{
	const char *source;        /* borrowed conninfo */
	const char *dest;          /* borrowed conninfo of the target */
	const char *name;          /* borrowed: the slot, the publication, the progress row */
	const char *shadow_schema; /* borrowed: where every streamed change is applied */
	const char *source_system; /* borrowed: the source's system identifier at the slot's creation */
	pgo_lsn run_lsn;           /* the slot's consistent point at creation */
	bool resuming;             /* the target's progress row must be this run's */
	bool drain;                /* stop at the source's WAL position read at the start */
	volatile sig_atomic_t *stop; /* borrowed, optional: stop cleanly once set */
} shstream_opts;

typedef struct shstream_result
{
	pgo_lsn endpos;      /* the drain's end (0: none) */
	pgo_lsn applied_lsn; /* the end of the last source transaction committed on the target */
	unsigned long long txns, changes;
	bool retryable; /* a failure a later call may not meet (a server was away) */
} shstream_result;

/*
 * Stream from the slot into the shadow schema until *o->stop (the flush
 * position of every committed transaction confirmed) or, with o->drain,
 * until everything up to the source's WAL position at the start is applied.
 * rc: an open replication connection (shstream_create's) or a closed one
 * (opened here); closed on return either way. Lag events every few seconds.
 */
PGDBM_MUST_CHECK bool shstream_run(const shstream_opts *o, replconn *rc, shstream_result *res,
                                   char *errbuf, size_t errlen);

#endif /* SHADOWSTREAM_H */
