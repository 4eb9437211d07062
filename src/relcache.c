/*
 * relcache.c — the relation and type cache built from the replication
 * stream (see relcache.h).
 *
 * Two open-addressing tables with linear probing, power-of-two sized and
 * kept at most half full: relid -> entry pointer (entries are malloc'd one
 * by one so their addresses survive a resize), and type oid -> names. Nothing
 * is ever removed from either, so probing needs no tombstones.
 *
 * Owns: both tables, every entry and every string in them. Never: keeps a
 * view into a decoded message, leaves an entry half replaced after a failed
 * allocation, or calls user_free on a NULL user pointer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relcache.h"

#define RELCACHE_INITIAL_RELS  64
#define RELCACHE_INITIAL_TYPES 1024

/* Spread the bits of an Oid over the whole word (a 32-bit finaliser). */
static size_t
relcache_hash(pgo_oid oid)
{
	uint32_t h = oid;

	h ^= h >> 16;
	h *= UINT32_C(0x7feb352d);
	h ^= h >> 15;
	h *= UINT32_C(0x846ca68b);
	h ^= h >> 16;
	return h;
}

/* Copy len bytes into a new NUL-terminated string, or NULL when out of memory. */
static char *
relcache_strndup(const char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return NULL;
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

/* The namespace as stored: the wire's empty string means pg_catalog. */
static pgo_str
relcache_nsp(pgo_str nsp)
{
	if (nsp.len == 0)
	{
		nsp.ptr = "pg_catalog";
		nsp.len = strlen("pg_catalog");
	}
	return nsp;
}

/* Whether a wire string equals a stored one. */
static bool
relcache_str_eq(pgo_str wire, const char *stored, size_t stored_len)
{
	return wire.len == stored_len && (wire.len == 0 || memcmp(wire.ptr, stored, wire.len) == 0);
}

/* Set up an empty cache with its initial tables. */
bool
relcache_init(relcache *rc, relcache_user_free_fn user_free, char *errbuf, size_t errlen)
{
	memset(rc, 0, sizeof(*rc));
	rc->rels = calloc(RELCACHE_INITIAL_RELS, sizeof(*rc->rels));
	rc->types = calloc(RELCACHE_INITIAL_TYPES, sizeof(*rc->types));
	if (rc->rels == NULL || rc->types == NULL)
	{
		free(rc->rels);
		free(rc->types);
		memset(rc, 0, sizeof(*rc));
		snprintf(errbuf, errlen, "out of memory setting up the relation cache");
		return false;
	}
	rc->rel_cap = RELCACHE_INITIAL_RELS;
	rc->type_cap = RELCACHE_INITIAL_TYPES;
	rc->user_free = user_free;
	return true;
}

/* Hand an entry's user pointer to user_free (if both are set) and clear it. */
static void
relcache_release_user(relcache *rc, relcache_entry *e)
{
	if (e->user != NULL && rc->user_free != NULL)
		rc->user_free(e);
	e->user = NULL;
}

/* Free the strings and column array of an entry's contents. */
static void
relcache_free_contents(char *nspname, char *relname, relcache_column *cols, uint16_t ncols)
{
	free(nspname);
	free(relname);
	for (uint16_t i = 0; cols != NULL && i < ncols; i++)
		free(cols[i].name);
	free(cols);
}

/* Free every entry, type and table. */
void
relcache_free(relcache *rc)
{
	for (size_t i = 0; i < rc->rel_cap; i++)
	{
		relcache_entry *e = rc->rels[i];

		if (e == NULL)
			continue;
		relcache_release_user(rc, e);
		relcache_free_contents(e->nspname, e->relname, e->cols, e->ncols);
		free(e);
	}
	for (size_t i = 0; i < rc->type_cap; i++)
	{
		free(rc->types[i].name);
		free(rc->types[i].wire_name);
	}
	free(rc->rels);
	free(rc->types);
	memset(rc, 0, sizeof(*rc));
}

/* The slot of relid in the relation table: its entry, or the free slot it would take. */
static size_t
relcache_rel_slot(relcache_entry *const *rels, size_t cap, pgo_oid relid)
{
	size_t mask = cap - 1;
	size_t i = relcache_hash(relid) & mask;

	while (rels[i] != NULL && rels[i]->relid != relid)
		i = (i + 1) & mask;
	return i;
}

/* The entry for relid, or NULL. */
relcache_entry *
relcache_get(const relcache *rc, pgo_oid relid)
{
	if (rc->rel_cap == 0)
		return NULL;
	return rc->rels[relcache_rel_slot(rc->rels, rc->rel_cap, relid)];
}

/* Number of cached relations. */
size_t
relcache_count(const relcache *rc)
{
	return rc->nrels;
}

/* Column count of relid, or -1 when unknown (a pgo_natts_fn). */
int
relcache_natts(void *arg, pgo_oid relid)
{
	const relcache_entry *e = relcache_get(arg, relid);

	return e ? (int)e->ncols : -1;
}

/* Make sure one more relation fits while the table stays at most half full. */
static bool
relcache_rels_room(relcache *rc)
{
	size_t cap;
	relcache_entry **rels;

	if ((rc->nrels + 1) * 2 <= rc->rel_cap)
		return true;
	cap = rc->rel_cap ? rc->rel_cap * 2 : RELCACHE_INITIAL_RELS;
	rels = calloc(cap, sizeof(*rels));
	if (rels == NULL)
		return false;
	for (size_t i = 0; i < rc->rel_cap; i++)
		if (rc->rels[i] != NULL)
			rels[relcache_rel_slot(rels, cap, rc->rels[i]->relid)] = rc->rels[i];
	free(rc->rels);
	rc->rels = rels;
	rc->rel_cap = cap;
	return true;
}

/* Whether a Relation message says exactly what the entry already holds. */
static bool
relcache_same_relation(const relcache_entry *e, const pgo_relation *rel)
{
	if (e->replident != rel->replident || e->ncols != rel->ncols ||
	    !relcache_str_eq(relcache_nsp(rel->nspname), e->nspname, e->nspname_len) ||
	    !relcache_str_eq(rel->relname, e->relname, e->relname_len))
		return false;
	for (uint16_t i = 0; i < rel->ncols; i++)
	{
		const pgo_relcol *w = &rel->cols[i];
		const relcache_column *c = &e->cols[i];

		if (c->type_oid != w->type_oid || c->typmod != w->typmod ||
		    c->key != ((w->flags & PGO_RELCOL_KEY) != 0) ||
		    !relcache_str_eq(w->name, c->name, c->name_len))
			return false;
	}
	return true;
}

/* Store a Relation message: new entry, replacement, or nothing for a re-send. */
bool
relcache_update_relation(relcache *rc, const pgo_relation *rel, char *errbuf, size_t errlen)
{
	relcache_entry *e;
	pgo_str nsp = relcache_nsp(rel->nspname);
	char *nspname = NULL;
	char *relname = NULL;
	relcache_column *cols = NULL;
	uint16_t nkeys = 0;

	if (rc->rel_cap == 0)
	{
		snprintf(errbuf, errlen, "relation cache used before relcache_init or after relcache_free");
		return false;
	}
	if (rel->ncols > 0 && rel->cols == NULL)
	{
		snprintf(errbuf, errlen, "Relation message for relation %u has %u columns but no array",
		         rel->relid, rel->ncols);
		return false;
	}
	e = relcache_get(rc, rel->relid);
	if (e != NULL && relcache_same_relation(e, rel))
		return true;

	/* build the new contents completely before touching the entry */
	nspname = relcache_strndup(nsp.ptr, nsp.len);
	relname = relcache_strndup(rel->relname.ptr, rel->relname.len);
	if (rel->ncols > 0)
		cols = calloc(rel->ncols, sizeof(*cols));
	if (nspname == NULL || relname == NULL || (rel->ncols > 0 && cols == NULL))
		goto oom;
	for (uint16_t i = 0; i < rel->ncols; i++)
	{
		const pgo_relcol *w = &rel->cols[i];

		cols[i].name = relcache_strndup(w->name.ptr, w->name.len);
		if (cols[i].name == NULL)
			goto oom;
		cols[i].name_len = w->name.len;
		cols[i].type_oid = w->type_oid;
		cols[i].typmod = w->typmod;
		cols[i].key = (w->flags & PGO_RELCOL_KEY) != 0;
		if (cols[i].key)
			nkeys++;
	}

	if (e == NULL)
	{
		e = calloc(1, sizeof(*e));
		if (e == NULL || !relcache_rels_room(rc))
		{
			free(e);
			goto oom;
		}
		e->relid = rel->relid;
		rc->rels[relcache_rel_slot(rc->rels, rc->rel_cap, rel->relid)] = e;
		rc->nrels++;
	}
	else
	{
		/* a changed relation (ALTER TABLE ...): the caller's derived state goes */
		relcache_release_user(rc, e);
		relcache_free_contents(e->nspname, e->relname, e->cols, e->ncols);
	}
	e->nspname = nspname;
	e->nspname_len = nsp.len;
	e->relname = relname;
	e->relname_len = rel->relname.len;
	e->replident = rel->replident;
	e->ncols = rel->ncols;
	e->nkeys = nkeys;
	e->cols = cols;
	if (++e->generation == 0)
		e->generation = 1;
	return true;

oom:
	relcache_free_contents(nspname, relname, cols, rel->ncols);
	snprintf(errbuf, errlen, "out of memory caching relation %u (%.*s.%.*s, %u columns)",
	         rel->relid, (int)(nsp.len > 200 ? 200 : nsp.len), nsp.ptr,
	         (int)(rel->relname.len > 200 ? 200 : rel->relname.len), rel->relname.ptr, rel->ncols);
	return false;
}

/* The slot of oid in the type table: its entry, or the free slot it would take. */
static size_t
relcache_type_slot(const relcache_type *types, size_t cap, pgo_oid oid)
{
	size_t mask = cap - 1;
	size_t i = relcache_hash(oid) & mask;

	while (types[i].oid != 0 && types[i].oid != oid)
		i = (i + 1) & mask;
	return i;
}

/* The type entry of oid, or NULL. */
static const relcache_type *
relcache_find_type(const relcache *rc, pgo_oid oid)
{
	const relcache_type *t;

	if (rc->type_cap == 0 || oid == 0)
		return NULL;
	t = &rc->types[relcache_type_slot(rc->types, rc->type_cap, oid)];
	return t->oid == oid ? t : NULL;
}

/* The type entry of oid, created empty if needed; NULL when out of memory. */
static relcache_type *
relcache_type_entry(relcache *rc, pgo_oid oid)
{
	relcache_type *t = &rc->types[relcache_type_slot(rc->types, rc->type_cap, oid)];

	if (t->oid == oid)
		return t;
	if ((rc->ntypes + 1) * 2 > rc->type_cap)
	{
		size_t cap = rc->type_cap * 2;
		relcache_type *types = calloc(cap, sizeof(*types));

		if (types == NULL)
			return NULL;
		for (size_t i = 0; i < rc->type_cap; i++)
			if (rc->types[i].oid != 0)
				types[relcache_type_slot(types, cap, rc->types[i].oid)] = rc->types[i];
		free(rc->types);
		rc->types = types;
		rc->type_cap = cap;
		t = &rc->types[relcache_type_slot(rc->types, rc->type_cap, oid)];
	}
	t->oid = oid;
	rc->ntypes++;
	return t;
}

/* Check the cache is set up and the oid valid before storing a type name. */
static bool
relcache_check_type_oid(const relcache *rc, pgo_oid oid, const char *what, char *errbuf,
                        size_t errlen)
{
	if (rc->type_cap == 0)
	{
		snprintf(errbuf, errlen, "relation cache used before relcache_init or after relcache_free");
		return false;
	}
	if (oid == 0)
	{
		snprintf(errbuf, errlen, "%s for type oid 0 (InvalidOid)", what);
		return false;
	}
	return true;
}

/* Set the preloaded display name of a type. */
bool
relcache_set_type_name(relcache *rc, pgo_oid oid, const char *name, char *errbuf, size_t errlen)
{
	size_t len;
	char *copy;
	relcache_type *t;

	if (!relcache_check_type_oid(rc, oid, "type name", errbuf, errlen))
		return false;
	if (name == NULL)
	{
		snprintf(errbuf, errlen, "type name for type %u is NULL", oid);
		return false;
	}
	len = strlen(name);
	copy = relcache_strndup(name, len);
	t = copy ? relcache_type_entry(rc, oid) : NULL;
	if (t == NULL)
	{
		free(copy);
		snprintf(errbuf, errlen, "out of memory caching the name of type %u", oid);
		return false;
	}
	free(t->name);
	t->name = copy;
	t->name_len = len;
	return true;
}

/* Store a Type message's "nsp.name". */
bool
relcache_update_type(relcache *rc, const pgo_type *typ, char *errbuf, size_t errlen)
{
	pgo_str nsp = relcache_nsp(typ->nspname);
	size_t len = nsp.len + 1 + typ->typname.len;
	char *copy;
	relcache_type *t;

	if (!relcache_check_type_oid(rc, typ->oid, "Type message", errbuf, errlen))
		return false;
	copy = malloc(len + 1);
	t = copy ? relcache_type_entry(rc, typ->oid) : NULL;
	if (t == NULL)
	{
		free(copy);
		snprintf(errbuf, errlen, "out of memory caching type %u", typ->oid);
		return false;
	}
	memcpy(copy, nsp.ptr, nsp.len);
	copy[nsp.len] = '.';
	if (typ->typname.len > 0)
		memcpy(copy + nsp.len + 1, typ->typname.ptr, typ->typname.len);
	copy[len] = '\0';
	free(t->wire_name);
	t->wire_name = copy;
	t->wire_name_len = len;
	return true;
}

/* The best name of a type and its length, or NULL. */
const char *
relcache_type_name_len(const relcache *rc, pgo_oid oid, size_t *len)
{
	const relcache_type *t = relcache_find_type(rc, oid);

	if (t == NULL)
		return NULL;
	if (t->name != NULL)
	{
		*len = t->name_len;
		return t->name;
	}
	if (t->wire_name != NULL)
	{
		*len = t->wire_name_len;
		return t->wire_name;
	}
	return NULL;
}

/* The best name of a type, or NULL. */
const char *
relcache_type_name(const relcache *rc, pgo_oid oid)
{
	size_t len;

	return relcache_type_name_len(rc, oid, &len);
}

/* Update the cache and the transaction state from one decoded message. */
bool
relcache_observe(relcache *rc, const pgo_message *msg, char *errbuf, size_t errlen)
{
	switch (msg->type)
	{
		case PGO_MSG_RELATION:
			return relcache_update_relation(rc, &msg->u.relation, errbuf, errlen);
		case PGO_MSG_TYPE:
			return relcache_update_type(rc, &msg->u.type, errbuf, errlen);
		case PGO_MSG_BEGIN:
			rc->in_txn = true;
			rc->txn_xid = msg->u.begin.xid;
			return true;
		case PGO_MSG_BEGIN_PREPARE:
			rc->in_txn = true;
			rc->txn_xid = msg->u.begin_prepare.xid;
			return true;
		case PGO_MSG_COMMIT:
		case PGO_MSG_PREPARE:
			rc->in_txn = false;
			rc->txn_xid = 0;
			return true;
		default:
			return true;
	}
}

/* The xid a message belongs to, from the message or the open transaction. */
bool
relcache_message_xid(const relcache *rc, const pgo_message *msg, pgo_xid *xid)
{
	if (msg->has_xid)
	{
		*xid = msg->xid;
		return true;
	}
	switch (msg->type)
	{
		case PGO_MSG_BEGIN:
			*xid = msg->u.begin.xid;
			return true;
		case PGO_MSG_BEGIN_PREPARE:
			*xid = msg->u.begin_prepare.xid;
			return true;
		case PGO_MSG_PREPARE:
			*xid = msg->u.prepare.xid;
			return true;
		case PGO_MSG_STREAM_PREPARE:
			*xid = msg->u.stream_prepare.xid;
			return true;
		case PGO_MSG_COMMIT_PREPARED:
			*xid = msg->u.commit_prepared.xid;
			return true;
		case PGO_MSG_ROLLBACK_PREPARED:
			*xid = msg->u.rollback_prepared.xid;
			return true;
		case PGO_MSG_STREAM_START:
			*xid = msg->u.stream_start.xid;
			return true;
		case PGO_MSG_STREAM_COMMIT:
			*xid = msg->u.stream_commit.xid;
			return true;
		case PGO_MSG_STREAM_ABORT:
			*xid = msg->u.stream_abort.xid;
			return true;
		case PGO_MSG_STREAM_STOP:
			return false;
		default:
			if (!rc->in_txn)
				return false;
			*xid = rc->txn_xid;
			return true;
	}
}

/* Human name of a replica identity. */
const char *
relcache_replident_name(char replident)
{
	switch (replident)
	{
		case PGO_REPLIDENT_DEFAULT:
			return "default";
		case PGO_REPLIDENT_NOTHING:
			return "nothing";
		case PGO_REPLIDENT_FULL:
			return "full";
		case PGO_REPLIDENT_INDEX:
			return "index";
		default:
			return "unknown";
	}
}
