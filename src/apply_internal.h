/*
 * apply_internal.h — what the applier's parts share, kept out of the public
 * apply.h (as libuv keeps src/unix/internal.h apart from uv.h):
 *
 *   apply.c         dispatch of decoded changes, transaction grouping, COMMIT
 *   apply_session.c the target session: connect, settings, the progress row
 *   apply_pipe.c    the transport: pipeline mode and the queue of statements
 *   apply_answer.c  what an answer means: counts, missing rows, errors
 *   apply_map.c     the target's description of a relation, statement cache
 *   apply_sql.c     statement text and column masks (pure)
 *   apply_batch.c   batches of rows, one row per key in an UPDATE batch
 *   apply_copy.c    long runs of inserts as COPY
 *   apply_diag.c    the diagnostic records of batched rows (pure)
 *
 * Owns: nothing itself. Never: included outside src/apply*.c and their unit
 * tests; apply.h is the applier's contract.
 */
#ifndef APPLY_INTERNAL_H
#define APPLY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "apply.h"
#include "pgdbm_attr.h"
#include "pgoutput.h"
#include "relcache.h"
#include "strbuf.h"

/* One prepared statement of a relation. */
typedef struct apply_stmt
{
	struct apply_stmt *next; /* owned by the relation's list */
	char kind;               /* 'I', 'U', 'D' */
	int rows;                /* rows per statement (0 for a single-row UPDATE/DELETE) */
	uint8_t *mask;           /* 'U'/'D': per column bits (owned); NULL for 'I' */
	char name[40];
} apply_stmt;

#define APPLY_KEY_TEXT 160 /* key summary kept for error messages */

/* Bits of a column mask: one byte per published column. */
#define MASK_SET   1 /* column is in SET */
#define MASK_WHERE 2 /* column is matched in WHERE */

/*
 * The applier's state for one relation (relcache_entry.user): the target's
 * description of it, which is all the statement text is made of, and its
 * prepared statements. apply_map fills it from the target's catalog.
 */
typedef struct apply_rel
{
	pgo_oid relid; /* the source's, for messages */
	char *qname;   /* owned: "nsp"."rel", quoted */
	char relkind;  /* on the target: 'r' or 'p' */
	char **qcols;  /* owned: quoted name of each published column */
	bool *text_eq; /* owned: compare this column as text (its type has no '=') */
	char **qtypes; /* owned: the target column's type, for casts in VALUES lists */
	Oid *types;    /* owned: the target column's type OID, for every parameter */
	int touch;     /* a column "SET c = c" may name (not GENERATED ALWAYS), or -1 */
	/*
	 * a unique or exclusion index on the target not on key columns alone: its
	 * UPDATEs go one at a time, in the source's order (a batch would merge a
	 * key's updates and run the rest in any order: a swap of unique values
	 * through a third one would collide)
	 */
	bool order_updates;
	uint16_t ncols;
	apply_stmt *stmts; /* owned list */
} apply_rel;

/* Why apply_sql_mask found no columns to match a change by. */
typedef enum apply_mask_status
{
	APPLY_MASK_OK = 0,
	APPLY_MASK_NO_OLD_ROW, /* REPLICA IDENTITY FULL, yet no old row came */
	APPLY_MASK_NO_KEY,     /* no replica identity key (identity NOTHING, or DEFAULT without one) */
	APPLY_MASK_UNCHANGED_KEY /* a key column came as unchanged TOAST */
} apply_mask_status;

/*
 * The column mask of an UPDATE (kind 'U') or DELETE ('D') of e: SET holds
 * the new row's sent columns (unchanged TOAST left out); WHERE the key
 * columns, or with REPLICA IDENTITY FULL every sent column of the old row.
 * Without an old key, an UPDATE's key did not change and stays out of SET.
 * mask (e->ncols bytes) is zeroed first; *match is the tuple the WHERE
 * values come from; on APPLY_MASK_UNCHANGED_KEY *bad_col names the column.
 */
PGO_MUSTCHECK apply_mask_status apply_sql_mask(const relcache_entry *e, char kind, char old_kind,
                                               const pgo_tuple *oldtup, const pgo_tuple *newtup,
                                               uint8_t *mask, const pgo_tuple **match,
                                               uint16_t *bad_col);

/*
 * Statement text, appended to sql (the caller resets it). *nparams is the
 * number of $n parameters written. False only when out of memory.
 */

/* INSERT INTO t (c, ...) OVERRIDING SYSTEM VALUE VALUES ($1, ...), ... for rows rows. */
PGO_MUSTCHECK bool apply_sql_insert(strbuf *sql, const apply_rel *ar, int rows, int *nparams);

/* One row's UPDATE t SET ... WHERE ... (full: REPLICA IDENTITY FULL, one row of duplicates). */
PGO_MUSTCHECK bool apply_sql_update(strbuf *sql, const apply_rel *ar, bool full,
                                    const uint8_t *mask, int *nparams);

/* One row's DELETE FROM t WHERE ... */
PGO_MUSTCHECK bool apply_sql_delete(strbuf *sql, const apply_rel *ar, bool full,
                                    const uint8_t *mask, int *nparams);

/* rows rows' UPDATE ('U') or DELETE ('D') by distinct keys, through a typed VALUES list. */
PGO_MUSTCHECK bool apply_sql_multi(strbuf *sql, const apply_rel *ar, char kind, const uint8_t *mask,
                                   int rows, int *nparams);

/* TRUNCATE ONLY t1, t2 ... [RESTART IDENTITY] [CASCADE] (a partitioned table without ONLY). */
PGO_MUSTCHECK bool apply_sql_truncate(strbuf *sql, const apply_rel *const *rels, uint32_t nrels,
                                      bool restart_identity, bool cascade);

/* COPY t (c, ...) FROM STDIN */
PGO_MUSTCHECK bool apply_sql_copy(strbuf *sql, const apply_rel *ar);

/*
 * The target type of each parameter of the statement above for (kind, rows,
 * mask), in the order they are numbered: per row, every column (INSERT) or
 * the SET columns then the WHERE columns (UPDATE, DELETE). Writes at most
 * cap types; returns how many the statement has.
 */
size_t apply_sql_param_types(const apply_rel *ar, char kind, int rows, const uint8_t *mask,
                             Oid *types, size_t cap);

/*
 * The diagnostic record of a batched UPDATE/DELETE row, kept until its
 * statement is answered so that a missing row can be named with its own key
 * and source transaction. Records follow each other in a byte buffer:
 *
 *   commit LSN (8 bytes) | key count (2) | per key: length (4) and its bytes
 *
 * in host byte order (they never leave the process).
 */
typedef struct apply_diag_row
{
	pgo_lsn txn_lsn;  /* commit LSN of the row's source transaction */
	uint16_t nkeys;   /* key values in the record */
	const char *keys; /* borrowed from the buffer: the key area */
	size_t keys_len;  /* bytes in the key area */
} apply_diag_row;

/* Append the record of a row: txn_lsn and the values of m's WHERE columns in mask. */
PGO_MUSTCHECK bool apply_diag_append(strbuf *diag, pgo_lsn txn_lsn, const pgo_tuple *m,
                                     const uint8_t *mask, uint16_t ncols);

/*
 * Read the record at *off of buf (len bytes) into *row and move *off past
 * it. False, *off unchanged, at the end or when the record is cut short.
 */
PGO_MUSTCHECK bool apply_diag_next(const char *buf, size_t len, size_t *off, apply_diag_row *row);

/*
 * The next key value of row from *koff (0 for the first): *value borrows
 * from the buffer, *vlen bytes. False, *koff unchanged, past the last key
 * or when it is cut short.
 */
PGO_MUSTCHECK bool apply_diag_key(const apply_diag_row *row, size_t *koff, const char **value,
                                  uint32_t *vlen);

/*
 * The key of a row for messages, "with id=3, region=eu" (values cut at 40
 * bytes): the WHERE columns of mask in t, named as in e; "" when none.
 */
void apply_diag_key_text(const relcache_entry *e, const pgo_tuple *t, const uint8_t *mask,
                         char *buf, size_t size);

/*
 * Add a batched row's key to the batch's summary, "with id=3; id=7", while
 * it is shorter than APPLY_KEY_TEXT; on failure the summary is emptied (only
 * a message is lost).
 */
void apply_diag_keys_add(strbuf *keys, const relcache_entry *e, const pgo_tuple *m,
                         const uint8_t *mask);

/* ------------------------------------------------------------ failures (apply.c) */

/* Record the first failure (fmt, then ": detail"); always false. */
bool apply_fail(applier *a, const char *fmt, const char *detail);

/* apply_fail with libpq's message for the connection. */
bool apply_fail_conn(applier *a, const char *what);

/* ------------------------------------------------ the transport (apply_pipe.c) */

/* What a queued entry answers for (the transport reads only AP_SYNC and AP_ADVANCE). */
typedef enum apply_what
{
	AP_OTHER = 'X',   /* SET ...: must succeed */
	AP_PREPARE = 'R', /* a relation's statement: stmt holds its text */
	AP_BEGIN = 'B',
	AP_INSERT = 'I',
	AP_UPDATE = 'U',
	AP_DELETE = 'D',
	AP_TRUNCATE = 'T',
	AP_PROGRESS = 'P',
	AP_COMMIT = 'C', /* lsn: the group's last end LSN */
	AP_SYNC = 'S',   /* the pipeline sync after COMMIT: the transport's own */
	AP_ADVANCE = 'A' /* a mark, no statement: handed up once everything before is answered */
} apply_what;

/* One statement sent and not yet answered, as its sender described it. */
struct apply_pending
{
	char what;
	int rows;        /* INSERT: rows sent; COMMIT: 1 when synchronous (moves durable_lsn) */
	pgo_oid relid;   /* changes: the relation */
	pgo_lsn lsn;     /* changes: WAL start of the change; COMMIT/ADVANCE: end LSN */
	pgo_lsn txn_lsn; /* changes: commit LSN of the source transaction */
	char key[APPLY_KEY_TEXT];
	char *diag; /* owned: a batched UPDATE/DELETE's rows (see apply_diag_append), or NULL */
	size_t diag_len;
	char *stmt; /* owned: the start of a PREPARE's statement, for its error; or NULL */
};

/*
 * The applier's side of the transport (apply_answer.c): each answer, in the
 * order the statements were sent, with the entry that describes it; res is
 * NULL for a mark. False when the answer is a failure (recorded in a).
 */
bool apply_answer(applier *a, const apply_pending *p, PGresult *res);

/*
 * Send a statement (simple text, an execution of a prepared statement, or a
 * PREPARE) and queue d, its description, to be answered in order. The queue
 * takes d's diag and stmt buffers, whether the statement could be sent or
 * not. bytes: roughly what was sent, to flush libpq's buffer in time.
 */
PGDBM_MUST_CHECK bool apply_pipe_send_sql(applier *a, apply_pending *d, const char *sql);
PGDBM_MUST_CHECK bool apply_pipe_send_prepared(applier *a, apply_pending *d, const char *name,
                                               int nparams, const char *const *values,
                                               size_t bytes);
PGDBM_MUST_CHECK bool apply_pipe_send_prepare(applier *a, apply_pending *d, const char *name,
                                              const char *sql, int nparams, const Oid *types);

/* A pipeline sync: the server ends its implicit transaction block and answers. */
PGDBM_MUST_CHECK bool apply_pipe_sync(applier *a);

/* Queue d as a mark (AP_ADVANCE): no statement, answered once everything before it is. */
PGDBM_MUST_CHECK bool apply_pipe_mark(applier *a, apply_pending *d);

/* Send everything libpq has buffered, taking the answers that arrive meanwhile. */
PGDBM_MUST_CHECK bool apply_pipe_flush(applier *a);

/* Is an entry tagged what still waiting for its answer? */
bool apply_pipe_holds(const applier *a, char what);

/* Forget every queued entry and free the queue (apply_close). */
void apply_pipe_free(applier *a);

/* Run one statement outside pipeline mode (*out, if given, is the caller's to PQclear). */
PGDBM_MUST_CHECK bool apply_pipe_exec(applier *a, const char *sql, int nparams,
                                      const char *const *values, PGresult **out);

/* Leave pipeline mode with nothing in flight (for catalog queries and COPY). */
PGDBM_MUST_CHECK bool apply_pipe_leave(applier *a);

/* Enter pipeline mode, nonblocking. */
PGDBM_MUST_CHECK bool apply_pipe_enter(applier *a);

/* ---------------------------------------------- answers (apply_answer.c) */

/* A failed answer to p: say what, where, and what to do (the first failure wins). */
void apply_fail_answer(applier *a, const apply_pending *p, PGresult *res);

/* ---------------------------------------------------- statements (apply.c) */

/* Describe a statement sent now: the change being applied, or the batch being sent. */
void apply_describe(applier *a, apply_pending *d, char what, const relcache_entry *rel, int rows,
                    const char *key);

/* ------------------------------------- relation mapping and cache (apply_map.c) */

/* The name of the prepared statement that moves the progress row (apply_session.c). */
#define APPLY_PROGRESS_STMT "pgdbm_progress"
/*
 * BEGIN and COMMIT, prepared once (apply_session.c): a group of one small
 * transaction costs the target a fifth less CPU than with both parsed anew.
 */
#define APPLY_BEGIN_STMT  "pgdbm_begin"
#define APPLY_COMMIT_STMT "pgdbm_commit"

/*
 * "t" when nothing on the target fires for one table's rows that could look
 * at another's: no enabled trigger in the database (a foreign key is a pair
 * of triggers) and no enabled rule on a table, what the guard leaves
 * (guard.h). Asked at open and after each replayed DDL command: then the
 * applier's batches of different tables may go in any order (apply.h).
 */
#define APPLY_NOTHING_FIRES_SQL                                                       \
	"SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgenabled <> 'D') "   \
	"AND NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c " \
	"ON c.oid = r.ev_class WHERE c.relkind IN ('r', 'p') AND r.ev_enabled <> 'D')"

/* The target's description of e, looked up on first use (leaves and re-enters the pipeline). */
apply_rel *apply_map(applier *a, relcache_entry *e);

/* The cached or newly prepared multi-row INSERT of rows rows. */
apply_stmt *apply_insert_stmt(applier *a, apply_rel *ar, int rows);

/* The cached or newly prepared single-row UPDATE ('U') or DELETE ('D') for mask. */
apply_stmt *apply_row_stmt(applier *a, const relcache_entry *e, apply_rel *ar, char kind,
                           const uint8_t *mask);

/* The cached or newly prepared UPDATE/DELETE of rows rows by distinct keys. */
apply_stmt *apply_multi_stmt(applier *a, apply_rel *ar, char kind, const uint8_t *mask, int rows);

/* ------------------------------------------------------ batches (apply_batch.c) */

/*
 * Find room for a row of kind for e: *row_out points at its width value
 * slots. For an UPDATE (key: the tuple its key values come from, already
 * NUL-terminated in place) whose key is already in the batch, *replaced is
 * set and *row_out is that row: the newer values replace the older ones.
 */
PGDBM_MUST_CHECK bool apply_batch_row(applier *a, relcache_entry *e, apply_rel *ar, char kind,
                                      const uint8_t *mask, size_t width, const pgo_tuple *key,
                                      const char **row_out[], bool *replaced);

/* After a row was added to e's batch: send it when full. */
PGDBM_MUST_CHECK bool apply_batch_done(applier *a, relcache_entry *e);

/* The open batch of e (NULL if none). */
apply_batch *apply_batch_of(applier *a, const relcache_entry *e);

/* Empty a batch whose rows went another way (COPY); its slot stays taken until rel is NULL. */
void apply_batch_clear(apply_batch *b);

/* A hash of the WHERE values of m in mask (never 0: 0 marks a free slot). */
uint64_t apply_batch_key_hash(const pgo_tuple *m, const uint8_t *mask, uint16_t ncols);

/* Do the key values of row r of b equal m's (both NUL-terminated in place)? */
bool apply_batch_same_key(const apply_batch *b, int r, const pgo_tuple *m, uint16_t ncols);

/* --------------------------------------------------------- COPY (apply_copy.c) */

/* Append one row in COPY's text format: tabs between columns, \N for NULL, escapes. */
PGDBM_MUST_CHECK bool apply_copy_encode(strbuf *b, const pgo_tuple *t);

/* One more row of the COPY in progress (counted as an insert). */
PGDBM_MUST_CHECK bool apply_copy_row(applier *a, const pgo_tuple *t);

/* End the COPY in progress, if any, check it, and go back to pipeline mode. */
PGDBM_MUST_CHECK bool apply_copy_end(applier *a);

/* Leave pipeline mode and load e's full INSERT batch b with COPY, which stays open. */
PGDBM_MUST_CHECK bool apply_copy_take_batch(applier *a, relcache_entry *e, apply_rel *ar,
                                            apply_batch *b);

#endif /* APPLY_INTERNAL_H */
