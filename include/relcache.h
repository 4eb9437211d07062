/*
 * relcache.h — what the replication stream has told us so far: the
 * relations (from Relation 'R' messages), the types (from Type 'Y' messages
 * and, optionally, names preloaded from the server), and which transaction
 * is open. Used by the decode command and by the apply engine.
 *
 * Feed every decoded message to relcache_observe() (decodefmt_handle does
 * it for the decode command); it copies what it keeps, because a decoded
 * message only borrows the ring record it came from.
 *
 * Owns: every entry, column array and string in it (malloc'd, freed on
 * replacement or by relcache_free), and calls the user_free callback for
 * each entry's user pointer when the entry is replaced or freed.
 * Never: keeps a pointer into a decoded message, aborts or exits (errors are
 * false plus a message in the caller's buffer), or does I/O.
 */
#ifndef RELCACHE_H
#define RELCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"

/* One column of a relation, as the last Relation message described it. */
typedef struct relcache_column
{
	char *name;      /* malloc'd, owned by the entry */
	size_t name_len; /* strlen(name) */
	pgo_oid type_oid;
	int32_t typmod;
	bool key; /* part of the replica identity (PGO_RELCOL_KEY) */
} relcache_column;

typedef struct relcache_entry relcache_entry;

/* Called with an entry's old contents before they are replaced or freed. */
typedef void (*relcache_user_free_fn)(relcache_entry *entry);

/*
 * One relation. The entry itself stays at the same address until
 * relcache_free, so a pointer to it may be kept across messages; its
 * contents (strings, cols) change when a Relation message replaces them,
 * and generation then goes up. Everything but user is read-only to callers.
 */
struct relcache_entry
{
	pgo_oid relid;
	char *nspname;         /* malloc'd, owned; "pg_catalog" when the wire said "" */
	size_t nspname_len;    /* strlen(nspname) */
	char *relname;         /* malloc'd, owned */
	size_t relname_len;    /* strlen(relname) */
	char replident;        /* pgo_replident */
	uint16_t ncols;        /* columns published (a column list may leave some out) */
	uint16_t nkeys;        /* columns with key set */
	relcache_column *cols; /* malloc'd array of ncols, owned; NULL when ncols is 0 */
	uint32_t generation;   /* 1 at first sight, +1 on each change of the relation */
	void *user;            /* the caller's (e.g. prepared statements); freed by user_free */
};

/* One type: names from the server (preloaded) and from Type messages. */
typedef struct relcache_type
{
	pgo_oid oid;          /* 0: free slot */
	char *name;           /* malloc'd, owned; from relcache_set_type_name, or NULL */
	size_t name_len;      /* strlen(name) */
	char *wire_name;      /* malloc'd, owned; "nsp.name" from a Type message, or NULL */
	size_t wire_name_len; /* strlen(wire_name) */
} relcache_type;

/* The cache. The caller allocates it; relcache_init sets it up. */
typedef struct relcache
{
	relcache_entry **rels; /* malloc'd open-addressing table of rel_cap slots, owned */
	size_t rel_cap;        /* a power of two */
	size_t nrels;
	relcache_type *types; /* malloc'd open-addressing table of type_cap slots, owned */
	size_t type_cap;      /* a power of two */
	size_t ntypes;
	relcache_user_free_fn user_free; /* optional */

	/* the transaction being received, from the transaction-control messages */
	bool in_txn;     /* between Begin (or Begin Prepare) and Commit (or Prepare) */
	pgo_xid txn_xid; /* its xid, when in_txn */
} relcache;

/*
 * Set up an empty cache. user_free (optional) is called for an entry whose
 * user pointer is set, before the entry is replaced or freed. On failure the
 * cache holds nothing, and relcache_free is still safe.
 */
PGDBM_MUST_CHECK bool relcache_init(relcache *rc, relcache_user_free_fn user_free, char *errbuf,
                                    size_t errlen);

/* Free every entry (calling user_free), type and table; safe to call twice. */
void relcache_free(relcache *rc);

/*
 * Update the cache from one decoded message: Relation and Type messages are
 * copied in, Begin / Commit (and the two-phase counterparts) open and close
 * the current transaction; other messages change nothing. False with a
 * message on allocation failure or an invalid message (type oid 0); the
 * cache is then as it was.
 */
PGDBM_MUST_CHECK bool relcache_observe(relcache *rc, const pgo_message *msg, char *errbuf,
                                       size_t errlen);

/*
 * Store a Relation message. An unknown relid gets a new entry (generation
 * 1). A known one is replaced when anything differs (generation + 1, user
 * freed through user_free and set to NULL); an identical re-send, which
 * pgoutput makes after every relcache invalidation, changes nothing.
 */
PGDBM_MUST_CHECK bool relcache_update_relation(relcache *rc, const pgo_relation *rel, char *errbuf,
                                               size_t errlen);

/* Store a Type message's "nsp.name" for its oid (replacing an earlier one). */
PGDBM_MUST_CHECK bool relcache_update_type(relcache *rc, const pgo_type *typ, char *errbuf,
                                           size_t errlen);

/* The entry for relid, or NULL if no Relation message named it. O(1). */
PGDBM_MUST_CHECK relcache_entry *relcache_get(const relcache *rc, pgo_oid relid);

/* Number of cached relations. */
size_t relcache_count(const relcache *rc);

/*
 * Column count of relid, or -1 when unknown: a pgo_natts_fn for the
 * decoder's column-count check (arg is the relcache).
 */
PGDBM_MUST_CHECK int relcache_natts(void *arg, pgo_oid relid);

/*
 * Set the display name of a type (as format_type(oid, NULL) gives it, e.g.
 * "integer", "character varying"), copied; replaces an earlier one. Meant to
 * be filled from the server at startup.
 */
PGDBM_MUST_CHECK bool relcache_set_type_name(relcache *rc, pgo_oid oid, const char *name,
                                             char *errbuf, size_t errlen);

/*
 * The name of a type: the one set by relcache_set_type_name, else the
 * "nsp.name" of its Type message, else NULL. Valid until that oid's name
 * is set again or the cache is freed.
 */
PGDBM_MUST_CHECK const char *relcache_type_name(const relcache *rc, pgo_oid oid);

/* As relcache_type_name, also giving the length (*len untouched on NULL). */
PGDBM_MUST_CHECK const char *relcache_type_name_len(const relcache *rc, pgo_oid oid, size_t *len);

/*
 * The xid a message belongs to, as known before it is observed: its own
 * xid (Begin, streamed changes, stream and two-phase messages), else the
 * open transaction's for changes and Commit. False when unknown (e.g. a
 * non-transactional logical message outside any transaction).
 */
PGDBM_MUST_CHECK bool relcache_message_xid(const relcache *rc, const pgo_message *msg,
                                           pgo_xid *xid);

/* Human name of a replica identity: "default", "nothing", "full", "index". */
const char *relcache_replident_name(char replident);

#endif /* RELCACHE_H */
