/*
 * apply.h — applies decoded pgoutput changes to the target over one libpq
 * connection: prepared statements per (relation, operation, column set),
 * multi-row INSERTs, libpq pipeline mode, several source transactions per
 * target transaction, and the source position recorded in
 * _pg_dbmigrator.apply_progress in the same target transaction (exactly once).
 * (The schema is not "pg_dbmigrator": PostgreSQL reserves the pg_ prefix for
 * system schemas.)
 *
 * Values are bound as text parameters (each typed with the target column's
 * type, read from the target's catalog) pointing into the ring record they
 * came in: the applier NUL-terminates each value in place (the byte after a
 * value is the next column's kind byte, already decoded, or the NUL the
 * receiver appends to each record). Rows of a pending multi-row INSERT keep
 * pointing into their records until apply_send_pending: the caller holds
 * those records (ring_hold) while apply_has_pending is true.
 *
 * Target commits are asynchronous unless apply_opts.synchronous_commit, as a
 * subscription's are by default: a commit does not wait for the target's
 * disk. At most every APPLY_SYNC_EVERY_MS one commit is synchronous, which
 * flushes the target's WAL up to it and so makes every group before it
 * durable; only durable source transactions count as flushed.
 *
 * Owns: the target connection, the statement cache (through relcache user
 * pointers) and the in-flight result queue. Never: acknowledges anything
 * itself: apply_flushed_lsn says what the caller may report as flushed.
 */
#ifndef APPLY_H
#define APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "relcache.h"
#include "strbuf.h"

/*
 * Source transactions per target transaction, at most: on the stream, and
 * while the SQL catch-up applies a backlog. Nothing waits for a catch-up
 * commit, and a page a group changes many times is pruned once per group,
 * not once per change: on a table of 200k rows the target's CPU for 200k
 * single-row updates fell by a quarter from 1000 to 10000 (and rose again
 * at 50000: a group's own dead row versions fill the pages).
 */
#define APPLY_DEFAULT_GROUP_TXNS  1000
#define APPLY_CATCHUP_GROUP_TXNS  10000
#define APPLY_DEFAULT_GROUP_BYTES (8 * 1024 * 1024)
#define APPLY_MAX_BATCH_ROWS      256 /* rows per multi-row INSERT (a power of two) */
#define APPLY_SYNC_EVERY_MS       200 /* asynchronous commits: a synchronous one this often */

typedef struct apply_opts
{
	const char *target;     /* borrowed: libpq connection string or URI */
	const char *slot_name;  /* borrowed: the progress row's key */
	int group_txns;         /* source transactions per target transaction (>= 1) */
	int catchup_group_txns; /* the same during the SQL catch-up (0: APPLY_CATCHUP_GROUP_TXNS) */
	size_t group_bytes;     /* ...or this many bytes of changes, whichever first */
	bool skip_missing;      /* --on-missing-row skip: count, warn once, go on */
	pgo_lsn skip_lsn;       /* --skip-lsn: the commit LSN of one transaction to skip (0: none) */
	bool quiet;             /* no notices on stderr (tests) */
	bool guarded;           /* the caller holds the target's triggers and foreign keys (guard.h) */
	/*
	 * Whose progress row this run may trust: the row records the source's
	 * system identifier and the run (the slot's consistent point when it was
	 * created). A row of another source or run (or of a version that did not
	 * record them) is a stranger's: resuming refuses it, a fresh run resets
	 * it (apply_open says so in progress_note).
	 */
	const char *source_system; /* borrowed: IDENTIFY_SYSTEM's systemid */
	pgo_lsn run_lsn; /* the slot's consistent point at creation (0: any run of the slot) */
	bool resuming;   /* a stranger's row is an error (else: reset, with a note) */
	/*
	 * the target backend of this process's previous applier of the slot (a
	 * reconnect: that session is lost to us, whatever the server thinks), or
	 * 0; if it still holds the slot's lock, apply_open ends it at once
	 */
	int previous_backend_pid;
	bool no_copy;         /* long runs of inserts as multi-row INSERTs, not COPY */
	bool ddl;             /* replay the source's captured DDL (--ddl replicate, ddl.h) */
	pgo_lsn skip_ddl_lsn; /* --skip-ddl: the LSN of one captured command not to replay (0: none) */
	/* the DDL in scope: the --schema and --exclude-schema lists (borrowed) */
	const char *const *schemas, *const *ex_schemas;
	int nschemas, nex_schemas;
	/*
	 * borrowed; NULL: each change goes to the table of the source's schema and
	 * name. Else every relation is applied to the table of the source's name in
	 * this schema (the shadow refresh streams into _pgdbm_shadow_<ts>, see
	 * shadowstream.h); messages still name the source's relation.
	 */
	const char *target_schema;
	/*
	 * Every target commit waits for the target's disk (synchronous_commit
	 * on). Else (the default) they do not, and what is reported flushed
	 * waits for the next synchronous one (see above).
	 */
	bool synchronous_commit;
} apply_opts;

typedef struct apply_stats
{
	uint64_t inserts, updates, deletes, truncates; /* row changes applied */
	uint64_t messages;                             /* logical messages (ignored) */
	uint64_t origins;                              /* Origin messages seen */
	uint64_t txns;                                 /* source transactions applied */
	uint64_t skipped_txns;                         /* at or below the progress LSN, or --skip-lsn */
	uint64_t missing_rows;                         /* with skip_missing */
	uint64_t groups;                               /* target transactions committed */
	uint64_t statements;                           /* statements sent */
	uint64_t copies;                               /* of them, COPY runs (long runs of inserts) */
	uint64_t ddl;                                  /* DDL commands replayed */
} apply_stats;

/* One statement sent and not yet answered (see apply_internal.h). */
typedef struct apply_pending apply_pending;

#define APPLY_MAX_BATCHES 16

/*
 * Rows of one relation, one kind ('I', 'U', 'D') and one column set, to go
 * as one statement. An UPDATE batch holds one row per key: a later update of
 * the same key with the same columns replaces the earlier row's values.
 */
typedef struct apply_batch
{
	relcache_entry *rel; /* NULL: free */
	char kind;
	size_t width; /* parameters per row */
	int rows;
	const char **values; /* owned: APPLY_MAX_BATCH_ROWS * width value pointers (into the ring) */
	size_t cap;          /* entries in values */
	uint8_t *mask;       /* owned: the column set of an UPDATE/DELETE batch */
	size_t mask_cap;
	pgo_lsn change_lsn;    /* WAL start of its first change */
	uint64_t seq;          /* opening order */
	uint64_t first_change; /* applier.change_seq of its first row */
	strbuf keys;           /* the first keys, for messages */
	strbuf diag;           /* per row: commit LSN and key values, to name a missing row */
	uint64_t hashes[1024]; /* keys of the rows (0: free) */
	int16_t hash_row[1024];
} apply_batch;

typedef struct applier
{
	apply_opts opts;
	PGconn *conn;      /* owned: PQfinish in apply_close */
	relcache *rels;    /* borrowed: the caller's relation cache (user pointers are ours) */
	bool replica_role; /* session_replication_role = replica could be set */
	/*
	 * changes to different tables may be sent in any order, one batch per
	 * table open: replica mode, or nothing enabled on the target that fires
	 * for a table's rows (no trigger, foreign key or rule; asked at open and
	 * after each replayed DDL command: APPLY_NOTHING_FIRES_SQL)
	 */
	bool any_order;

	/* where the target is */
	pgo_lsn progress_lsn; /* from apply_progress at open: skip transactions below it */
	pgo_lsn
	    committed_lsn; /* end LSN of the last source transaction whose target commit succeeded */
	pgo_lsn progress_written; /* what the last group sent writes into the progress row */
	/*
	 * end LSN of the last source transaction whose target commit is on the
	 * target's disk: committed_lsn itself with synchronous commits
	 */
	pgo_lsn durable_lsn;
	int64_t sync_commit_ms; /* when the last synchronous commit was sent (asynchronous commits) */
	/*
	 * set by the caller: the source waits for this stream's flush position
	 * (its synchronous standby), so every commit is synchronous meanwhile
	 */
	bool source_waits;
	char last_origin[64];
	pgo_timestamp last_commit_time; /* commit time of the last source transaction received */
	/* the target database's encoding: the apply session's, and replstart.client_encoding */
	char encoding[64];
	char progress_note[512]; /* set when apply_open reset a stranger's progress row */

	/* the source transaction being applied */
	bool in_txn;     /* between Begin and Commit */
	bool skipping;   /* this transaction is not applied */
	pgo_lsn txn_lsn; /* its commit LSN (Begin's final_lsn) */
	pgo_xid txn_xid;
	pgo_lsn change_lsn; /* WAL start of the change being applied, for errors */
	bool ddl_in_txn;    /* it replayed a DDL command: its group ends with it */

	/* the target transaction (group) being built */
	bool group_open;       /* BEGIN sent */
	int group_txns;        /* source transactions in it */
	size_t group_bytes;    /* change bytes in it */
	pgo_lsn group_end_lsn; /* end LSN of its last source transaction */

	/* batches being collected (see apply_batch); with session_replication_role
	 * = replica, one open batch per relation, sent in any order between them */
	apply_batch batches[APPLY_MAX_BATCHES];
	apply_batch *sending; /* the batch whose rows are being sent, or NULL */
	uint64_t batch_seq;
	uint64_t change_seq; /* row changes and truncates seen, counting the one in hand */

	/* statements in flight, answered in order */
	apply_pending *pending; /* owned: a ring of pending_cap entries */
	size_t pending_cap, pending_head, pending_count;
	size_t commits_pending; /* COMMITs among them (apply_commit_in_flight) */
	bool awaiting_null;     /* the head entry got its result; NULL comes next */
	size_t unflushed;       /* bytes queued since the last full flush */
	uint64_t stmt_seq;      /* for unique statement names */
	const char **params;    /* owned: scratch parameter array */
	size_t params_cap;
	Oid *ptypes; /* owned: scratch parameter types for PREPARE */
	size_t ptypes_cap;

	/* a failure: the first one wins */
	bool failed;
	char errmsg[2048];
	char sqlstate[6]; /* of the server error behind it, or "" */

	/* a COPY in progress (long runs of inserts into one table): outside pipeline mode */
	relcache_entry *copy_rel; /* NULL: none */
	strbuf copy_buf;          /* rows not yet handed to libpq */
	uint64_t copy_rows;
	pgo_lsn copy_lsn; /* WAL start of its first row */
	pgo_lsn copy_txn_lsn;

	apply_stats stats;
	strbuf sql; /* scratch for statement text */
} applier;

/*
 * Connect to the target, set the session up (session_replication_role =
 * replica when allowed, else a notice; text formats; client_encoding the
 * database's own, kept in a->encoding), create _pg_dbmigrator.apply_progress
 * if needed, read this slot's progress (see apply_opts.resuming), and enter
 * pipeline mode. rels must outlive the applier; its user pointers
 * become the applier's (relcache_init with apply_rel_free).
 */
PGDBM_MUST_CHECK bool apply_open(applier *a, const apply_opts *opts, relcache *rels, char *errbuf,
                                 size_t errlen);

/* The relcache user_free callback for apply_open's cache. */
void apply_rel_free(relcache_entry *entry);

/* Close the connection (an open group is rolled back by the server). */
void apply_close(applier *a);

/*
 * Apply one decoded message. msg's views point into a writable buffer the
 * caller keeps valid while apply_has_pending is true. Relation and Type
 * messages must already be in rels (relcache_update) before this call.
 * False on failure: a->errmsg says what, where and what to do.
 */
PGDBM_MUST_CHECK bool apply_message(applier *a, pgo_message *msg, pgo_lsn wal_start,
                                    size_t msg_len);

/* Is a multi-row INSERT collected and not yet sent (holding record memory)? */
bool apply_has_pending(const applier *a);

/* Send the collected INSERT rows (the caller may then release their records). */
PGDBM_MUST_CHECK bool apply_send_pending(applier *a);

/*
 * End the open target transaction now, if any: record the progress, COMMIT,
 * and ask the server to answer. Then read whatever answers have arrived,
 * without waiting.
 */
PGDBM_MUST_CHECK bool apply_end_group(applier *a);

/* Read answers that have arrived, without waiting. */
PGDBM_MUST_CHECK bool apply_poll(applier *a);

/*
 * Read the answers that have arrived; while a COMMIT is still unanswered,
 * wait up to timeout_ms for the target to answer something more.
 */
PGDBM_MUST_CHECK bool apply_await_commit(applier *a, int timeout_ms);

/* Is a COMMIT sent and not yet answered? */
static inline bool
apply_commit_in_flight(const applier *a)
{
	return a->commits_pending > 0;
}

/* Wait until every statement sent is answered (at most timeout_ms; -1: no limit). */
PGDBM_MUST_CHECK bool apply_wait(applier *a, int timeout_ms);

/* The socket to wait on for answers (select for reading), or -1. */
int apply_socket(const applier *a);

/*
 * Did the applier fail because the target went away (connection lost, server
 * shutting down or restarting), so that reconnecting may help?
 */
bool apply_lost_target(const applier *a);

/* Is anything received from the source not yet committed on the target? */
bool apply_busy(const applier *a);

/*
 * What the caller may report to the source as flushed: the end LSN of the
 * last source transaction whose target commit succeeded and is on the
 * target's disk (durable_lsn).
 */
pgo_lsn apply_flushed_lsn(const applier *a);

/*
 * While idle, with asynchronous commits: when something committed is not
 * yet known durable and no synchronous commit was sent for
 * APPLY_SYNC_EVERY_MS, send one (a transaction that only rewrites the
 * progress row); its answer comes with apply_poll.
 */
PGDBM_MUST_CHECK bool apply_sync_idle(applier *a);

/*
 * Make every committed group durable on the target now (a cutover, the
 * end of a run): with asynchronous commits, a synchronous one as above,
 * then wait for every answer: apply_flushed_lsn is then committed_lsn.
 * Not with a group open in the middle of a source transaction (a stop
 * there): that group is left to roll back with the session, nothing of
 * it committed, and apply_flushed_lsn stays where the disk is.
 */
PGDBM_MUST_CHECK bool apply_make_durable(applier *a);

#endif /* APPLY_H */
