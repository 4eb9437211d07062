/*
 * apply_internal.h — what the applier's parts share, kept out of the public
 * apply.h (as libuv keeps src/unix/internal.h apart from uv.h): the
 * per-relation target description and statement cache, the column masks,
 * the pure statement-text generation of apply_sql.c, and the diagnostic
 * records of apply_diag.c.
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

#endif /* APPLY_INTERNAL_H */
