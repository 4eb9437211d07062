/*
 * apply_sql.c — the applier's statement text (see apply_internal.h): which
 * columns a change sets and matches by (its column mask), and the INSERT,
 * UPDATE, DELETE, TRUNCATE and COPY statements for a relation's target description,
 * with the target type of every parameter.
 *
 * Owns: nothing; everything is written into the caller's strbuf or arrays.
 * Never: talks to a server, allocates beyond the caller's strbuf, or quotes
 * a name itself (apply_map quotes them with the target connection's rules).
 */
#include "config.h"

#include "apply_internal.h"

/* Append to sql or return false (out of memory). */
#define SQL(...)                               \
	do                                         \
	{                                          \
		if (!strbuf_appendf(sql, __VA_ARGS__)) \
			return false;                      \
	} while (0)

apply_mask_status
apply_sql_mask(const relcache_entry *e, char kind, char old_kind, const pgo_tuple *oldtup,
               const pgo_tuple *newtup, uint8_t *mask, const pgo_tuple **match, uint16_t *bad_col)
{
	/* the key comes from the old key or row when sent, else from the new row */
	const pgo_tuple *m = old_kind ? oldtup : (newtup ? newtup : oldtup);

	for (uint16_t i = 0; i < e->ncols; i++)
		mask[i] = newtup && newtup->cols[i].kind != PGO_COL_UNCHANGED ? MASK_SET : 0;
	if (e->replident == PGO_REPLIDENT_FULL)
	{
		if (old_kind != 'O')
			return APPLY_MASK_NO_OLD_ROW;
		for (uint16_t i = 0; i < e->ncols; i++)
			if (oldtup->cols[i].kind != PGO_COL_UNCHANGED)
				mask[i] |= MASK_WHERE;
		*match = oldtup;
		return APPLY_MASK_OK;
	}
	if (e->nkeys == 0)
		return APPLY_MASK_NO_KEY;
	for (uint16_t i = 0; i < e->ncols; i++)
		if (e->cols[i].key)
		{
			if (m->cols[i].kind == PGO_COL_UNCHANGED)
			{
				*bad_col = i;
				return APPLY_MASK_UNCHANGED_KEY;
			}
			mask[i] |= MASK_WHERE;
		}
	/*
	 * Without an old key the key did not change (pgoutput sends one when any
	 * key column's bytes did): setting it again would be a no-op that a
	 * GENERATED ALWAYS identity key refuses.
	 */
	if (kind == 'U' && old_kind == 0)
		for (uint16_t i = 0; i < e->ncols; i++)
			if (mask[i] & MASK_WHERE)
				mask[i] &= (uint8_t)~MASK_SET;
	*match = m;
	return APPLY_MASK_OK;
}

bool
apply_sql_insert(strbuf *sql, const apply_rel *ar, int rows, int *nparams)
{
	int n = 0;

	*nparams = 0;
	if (ar->ncols == 0)
	{
		/* a table without columns: rows without values */
		SQL("INSERT INTO %s SELECT FROM pg_catalog.generate_series(1, %d)", ar->qname, rows);
		return true;
	}
	/* the source's values for identity columns too, GENERATED ALWAYS or not */
	SQL("INSERT INTO %s (", ar->qname);
	for (uint16_t i = 0; i < ar->ncols; i++)
		SQL("%s%s", i ? ", " : "", ar->qcols[i]);
	SQL(") OVERRIDING SYSTEM VALUE VALUES ");
	for (int r = 0; r < rows; r++)
	{
		SQL("%s(", r ? ", " : "");
		for (uint16_t i = 0; i < ar->ncols; i++)
			SQL("%s$%d", i ? ", " : "", ++n);
		SQL(")");
	}
	*nparams = n;
	return true;
}

/* The WHERE clause for mask; parameters numbered from *n + 1. */
static bool
apply_sql_where(strbuf *sql, const apply_rel *ar, bool full, const uint8_t *mask, int *n)
{
	bool first = true;

	if (full)
	{
		/* one row only, even among duplicates */
		if (ar->relkind == 'p')
			SQL(" WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM %s WHERE ", ar->qname);
		else
			SQL(" WHERE ctid = (SELECT ctid FROM %s WHERE ", ar->qname);
	}
	else
		SQL(" WHERE ");
	for (uint16_t i = 0; i < ar->ncols; i++)
	{
		if (!(mask[i] & MASK_WHERE))
			continue;
		if (!full)
			SQL("%s%s = $%d", first ? "" : " AND ", ar->qcols[i], ++*n);
		else if (ar->text_eq[i])
			SQL("%s%s::text IS NOT DISTINCT FROM $%d::text", first ? "" : " AND ", ar->qcols[i],
			    ++*n);
		else
			SQL("%s%s IS NOT DISTINCT FROM $%d", first ? "" : " AND ", ar->qcols[i], ++*n);
		first = false;
	}
	if (first)
		SQL("true");
	if (full)
		SQL(" LIMIT 1)");
	return true;
}

bool
apply_sql_update(strbuf *sql, const apply_rel *ar, bool full, const uint8_t *mask, int *nparams)
{
	bool first = true;
	int n = 0;

	*nparams = 0;
	SQL("UPDATE %s SET ", ar->qname);
	for (uint16_t i = 0; i < ar->ncols; i++)
		if (mask[i] & MASK_SET)
		{
			SQL("%s%s = $%d", first ? "" : ", ", ar->qcols[i], ++n);
			first = false;
		}
	if (first)
	{
		/* nothing but unchanged TOAST or the key: touch the row so that a missing one is seen */
		SQL("%s = %s", ar->qcols[ar->touch < 0 ? 0 : ar->touch],
		    ar->qcols[ar->touch < 0 ? 0 : ar->touch]);
	}
	if (!apply_sql_where(sql, ar, full, mask, &n))
		return false;
	*nparams = n;
	return true;
}

bool
apply_sql_delete(strbuf *sql, const apply_rel *ar, bool full, const uint8_t *mask, int *nparams)
{
	int n = 0;

	*nparams = 0;
	SQL("DELETE FROM %s", ar->qname);
	if (!apply_sql_where(sql, ar, full, mask, &n))
		return false;
	*nparams = n;
	return true;
}

/*
 * Several rows at once, keys distinct, matched through a typed VALUES list:
 *   UPDATE t AS x SET c = v.s1, ... FROM (VALUES ($1::T, ..), ..) AS v(s1, .., w1, ..)
 *   WHERE x.k = v.w1 ...      (DELETE FROM t AS x USING (VALUES ...) ... likewise)
 */
bool
apply_sql_multi(strbuf *sql, const apply_rel *ar, char kind, const uint8_t *mask, int rows,
                int *nparams)
{
	int n = 0, width = 0;
	bool first = true;

	*nparams = 0;
	if (kind == 'U')
	{
		SQL("UPDATE %s AS pgdbm_x SET ", ar->qname);
		for (uint16_t i = 0; i < ar->ncols; i++)
			if (mask[i] & MASK_SET)
			{
				SQL("%s%s = pgdbm_v.s%u", first ? "" : ", ", ar->qcols[i], i);
				first = false;
			}
		if (first)
			SQL("%s = pgdbm_x.%s", ar->qcols[ar->touch < 0 ? 0 : ar->touch],
			    ar->qcols[ar->touch < 0 ? 0 : ar->touch]);
		SQL(" FROM (VALUES ");
	}
	else
		SQL("DELETE FROM %s AS pgdbm_x USING (VALUES ", ar->qname);
	for (int r = 0; r < rows; r++)
	{
		bool col1 = true;

		SQL("%s(", r ? ", " : "");
		for (int pass = 0; pass < 2; pass++)
			for (uint16_t i = 0; i < ar->ncols; i++)
				if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
				{
					SQL("%s$%d::%s", col1 ? "" : ", ", ++n, ar->qtypes[i]);
					col1 = false;
				}
		SQL(")");
	}
	SQL(") AS pgdbm_v(");
	for (int pass = 0; pass < 2; pass++)
		for (uint16_t i = 0; i < ar->ncols; i++)
			if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
			{
				SQL("%s%c%u", width ? ", " : "", pass == 0 ? 's' : 'w', i);
				width++;
			}
	SQL(") WHERE ");
	first = true;
	for (uint16_t i = 0; i < ar->ncols; i++)
		if (mask[i] & MASK_WHERE)
		{
			SQL("%spgdbm_x.%s = pgdbm_v.w%u", first ? "" : " AND ", ar->qcols[i], i);
			first = false;
		}
	/* the keys found, to name a missing one */
	first = true;
	for (uint16_t i = 0; i < ar->ncols; i++)
		if (mask[i] & MASK_WHERE)
		{
			SQL("%spgdbm_v.w%u AS %s", first ? " RETURNING " : ", ", i, ar->qcols[i]);
			first = false;
		}
	*nparams = n;
	return true;
}

bool
apply_sql_copy(strbuf *sql, const apply_rel *ar)
{
	SQL("COPY %s (", ar->qname);
	for (uint16_t i = 0; i < ar->ncols; i++)
		SQL("%s%s", i ? ", " : "", ar->qcols[i]);
	SQL(") FROM STDIN");
	return true;
}

bool
apply_sql_truncate(strbuf *sql, const apply_rel *const *rels, uint32_t nrels, bool restart_identity,
                   bool cascade)
{
	SQL("TRUNCATE ");
	/* ONLY: the source lists every table it truncated; a partitioned one needs its parts */
	for (uint32_t i = 0; i < nrels; i++)
		SQL("%s%s%s", i ? ", " : "", rels[i]->relkind == 'p' ? "" : "ONLY ", rels[i]->qname);
	if (restart_identity)
		SQL(" RESTART IDENTITY");
	if (cascade)
		SQL(" CASCADE");
	return true;
}

#undef SQL

size_t
apply_sql_param_types(const apply_rel *ar, char kind, int rows, const uint8_t *mask, Oid *types,
                      size_t cap)
{
	size_t n = 0;

	for (int r = 0; r < (rows > 0 ? rows : 1); r++)
		for (int pass = 0; pass < 2; pass++)
			for (uint16_t i = 0; i < ar->ncols; i++)
				if (kind == 'I' ? pass == 0 : (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE)) != 0)
				{
					if (n < cap)
						types[n] = ar->types[i];
					n++;
				}
	return n;
}
