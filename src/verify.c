/*
 * verify.c — compare source and target (see verify.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <xxhash.h>

#include "cli.h"
#include "pgsession.h"
#include "replconn.h"
#include "rowhash.h"
#include "scope.h"
#include "strbuf.h"
#include "verify.h"
#include "pgdbm_schema.h"

typedef struct verify_shared
{
	const verify_opts *o;
	char src_snapshot[64], tgt_snapshot[64];
	verify_result *r;
	char **columns;  /* per table: the source's column list, quoted */
	bool *one_sided; /* per table: its leaves' digests are in o->copied */
	atomic_int next;
	_Atomic int64_t bytes;
} verify_shared;

/*
 * Connect (a plain session, in UTF8: both sides' names and rows as the same
 * bytes, whatever each database's encoding), fix the text formats, and enter
 * a read-only repeatable-read snapshot.
 */
static PGconn *
verify_connect(const char *connstr, const char *snapshot, char *errbuf, size_t errlen)
{
	const pgsession_opts so = {
	    .conninfo = connstr, .role = PGSESSION_PLAIN, .client_encoding = "UTF8"};
	char why[512];
	PGconn *c = pgsession_open(&so, why, sizeof(why));
	char sql[256];
	PGresult *res;

	if (c == NULL)
	{
		snprintf(errbuf, errlen, "cannot connect: %s", why);
		return NULL;
	}
	/* the rules a direct copy's digest of the source was taken by, too */
	res = PQexec(c, ROWHASH_TEXT_SETTINGS);
	PQclear(res);
	res = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
	PQclear(res);
	if (snapshot)
	{
		snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", snapshot);
		res = PQexec(c, sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			snprintf(errbuf, errlen, "cannot import snapshot %s: %s", snapshot, PQerrorMessage(c));
			PQclear(res);
			PQfinish(c);
			return NULL;
		}
		PQclear(res);
	}
	return c;
}

/*
 * Start a COPY ... TO STDOUT. A table is read through a SELECT: a plain
 * "COPY table" refuses partitioned tables ("cannot copy from partitioned
 * table"), and the SELECT reads a root with all its partitions.
 */
static bool
verify_copy_start(PGconn *c, const char *sql, char **err)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COPY_OUT;

	if (!ok && *err == NULL)
	{
		char buf[512];

		snprintf(buf, sizeof(buf), "%s", PQerrorMessage(c));
		*err = strdup(buf);
	}
	PQclear(res);
	return ok;
}

/* One side of one table (or one leaf of it): COPY it out, counting and hashing the rows. */
typedef struct verify_side
{
	PGconn *conn;
	char *sql;   /* owned: the COPY ... TO STDOUT (NULL: out of memory) */
	bool binary; /* it reads binary COPY data */
	int64_t rows, bytes;
	uint64_t sum;
	char *error; /* malloc'd, or NULL */
} verify_side;

/* The statement reading a whole table (and its partitions) as text; NULL when out of memory. */
static char *
verify_table_sql(const char *table, const char *cols)
{
	strbuf sql;
	char *out = NULL;

	strbuf_init(&sql);
	if (strbuf_appendf(&sql, "COPY (SELECT %s FROM %s) TO STDOUT", cols, table))
		out = strdup(strbuf_data(&sql));
	strbuf_free(&sql);
	return out;
}

/* Run one statement whose result does not matter beyond success. */
static bool
verify_command(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

/* COPY the table out, counting and hashing its rows (rowhash.h: the copy's digest too). */
static void
verify_side_copy(verify_side *v)
{
	rowhash h;

	if (v->sql == NULL || !rowhash_init(&h, v->binary))
	{
		if (v->sql != NULL)
			rowhash_free(&h);
		v->error = strdup("out of memory");
		return;
	}
	if (!verify_copy_start(v->conn, v->sql, &v->error))
	{
		rowhash_free(&h);
		return;
	}
	for (;;)
	{
		char *buf = NULL;
		int n = PQgetCopyData(v->conn, &buf, 0);

		if (n > 0)
		{
			if (!rowhash_feed(&h, buf, (size_t)n) && v->error == NULL)
				v->error = strdup(h.error);
			v->bytes += n;
			PQfreemem(buf);
			continue;
		}
		if (n == -2 && v->error == NULL)
		{
			char msg[512];

			snprintf(msg, sizeof(msg), "%s", PQerrorMessage(v->conn));
			v->error = strdup(msg);
		}
		/* the COPY's own result says whether it ended well */
		{
			PGresult *res;

			while ((res = PQgetResult(v->conn)) != NULL)
			{
				if (PQresultStatus(res) != PGRES_COMMAND_OK && v->error == NULL)
				{
					char msg[512];

					snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
					v->error = strdup(msg);
				}
				PQclear(res);
			}
		}
		break;
	}
	if (v->error == NULL && !rowhash_finish(&h))
		v->error = strdup(h.error);
	v->rows = h.rows;
	v->sum = h.sum;
	rowhash_free(&h);
}

/*
 * One side of one table inside a savepoint: a table that fails (a type
 * without text output, a permission) must not abort the snapshot's
 * transaction, and with it the comparison of every later table.
 */
static void *
verify_side_run(void *arg)
{
	verify_side *v = arg;

	if (!verify_command(v->conn, "SAVEPOINT pg_dbmigrator_verify"))
	{
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(v->conn));
		v->error = strdup(msg);
		return NULL;
	}
	verify_side_copy(v);
	(void)verify_command(v->conn, v->error ? "ROLLBACK TO SAVEPOINT pg_dbmigrator_verify"
	                                       : "RELEASE SAVEPOINT pg_dbmigrator_verify");
	return NULL;
}

/*
 * A table whose rows a direct copy digested: its leaves read on the target
 * only, each as the copy carried it, against the digests recorded then.
 */
static void
verify_table_one_sided(verify_shared *sh, PGconn *tgt, int i)
{
	verify_table *t = &sh->r->tables[i];

	t->one_sided = true;
	for (int k = 0; k < sh->o->ncopied; k++)
	{
		const verify_copied *c = &sh->o->copied[k];
		verify_side b = {.conn = tgt, .binary = c->binary};
		strbuf sql;

		if (strcmp(c->name, t->name) != 0)
			continue;
		t->src_rows += c->rows;
		t->src_sum += c->sum;
		if (t->error)
			continue;
		strbuf_init(&sql);
		if (strbuf_appendf(&sql, "COPY (SELECT %s FROM ONLY %s) TO STDOUT%s", c->columns, c->leaf,
		                   c->binary ? " (FORMAT binary)" : ""))
			b.sql = strdup(strbuf_data(&sql));
		strbuf_free(&sql);
		verify_side_run(&b);
		free(b.sql);
		t->tgt_rows += b.rows;
		t->tgt_sum += b.sum;
		t->error = b.error;
		atomic_fetch_add(&sh->bytes, b.bytes);
	}
	t->match =
	    t->error == NULL && !t->missing && t->src_rows == t->tgt_rows && t->src_sum == t->tgt_sum;
}

/* Both sides of one table at once, each on its own thread (two cores, as two COPYs). */
static void
verify_table_run(verify_shared *sh, PGconn *src, PGconn *tgt, int i)
{
	verify_table *t = &sh->r->tables[i];
	verify_side a = {.conn = src, .sql = verify_table_sql(t->name, sh->columns[i])};
	verify_side b = {.conn = tgt, .sql = verify_table_sql(t->name, sh->columns[i])};
	pthread_t other;
	bool threaded;

	if (sh->one_sided[i])
	{
		free(a.sql);
		free(b.sql);
		verify_table_one_sided(sh, tgt, i);
		return;
	}
	threaded = pthread_create(&other, NULL, verify_side_run, &b) == 0;
	verify_side_run(&a);
	if (threaded)
		pthread_join(other, NULL);
	else
		verify_side_run(&b);
	free(a.sql);
	free(b.sql);
	t->src_rows = a.rows;
	t->src_sum = a.sum;
	t->tgt_rows = b.rows;
	t->tgt_sum = b.sum;
	t->error = a.error ? a.error : b.error;
	if (a.error && b.error)
		free(b.error);
	atomic_fetch_add(&sh->bytes, a.bytes + b.bytes);
	t->match =
	    t->error == NULL && !t->missing && t->src_rows == t->tgt_rows && t->src_sum == t->tgt_sum;
}

static void *
verify_worker(void *arg)
{
	verify_shared *sh = arg;
	char err[512];
	PGconn *src = verify_connect(sh->o->source, sh->src_snapshot, err, sizeof(err));
	PGconn *tgt = src ? verify_connect(sh->o->target, sh->tgt_snapshot, err, sizeof(err)) : NULL;

	for (;;)
	{
		int i = atomic_fetch_add(&sh->next, 1);

		if (i >= sh->r->ntables)
			break;
		if (sh->r->tables[i].missing)
			continue;
		if (src == NULL || tgt == NULL)
		{
			sh->r->tables[i].error = strdup(err);
			continue;
		}
		verify_table_run(sh, src, tgt, i);
	}
	PQfinish(src);
	PQfinish(tgt);
	return NULL;
}

/* Rows of a one-column-or-two query as "a=b" lines, sorted; param may be $1 (or NULL). */
static bool
verify_lines(PGconn *c, const char *sql, const char *param, strbuf *out)
{
	PGresult *res = PQexecParams(c, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	for (int i = 0; ok && i < PQntuples(res); i++)
		ok = strbuf_appendf(out, "%s%s%s\n", PQgetvalue(res, i, 0), PQnfields(res) > 1 ? "=" : "",
		                    PQnfields(res) > 1 ? PQgetvalue(res, i, 1) : "");
	PQclear(res);
	return ok;
}

/* Compare two sorted line lists; differences go to details. */
static int
verify_compare_lines(const char *what, const char *a, const char *b, strbuf *details)
{
	int diffs = 0;

	/* every line of a not in b, and of b not in a (lists are small) */
	for (int pass = 0; pass < 2; pass++)
	{
		const char *x = pass == 0 ? a : b, *y = pass == 0 ? b : a;

		for (const char *line = x; *line;)
		{
			const char *nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			bool found = false;

			for (const char *l2 = y; *l2 && !found;)
			{
				const char *nl2 = strchr(l2, '\n');
				size_t len2 = nl2 ? (size_t)(nl2 - l2) : strlen(l2);

				found = len == len2 && memcmp(line, l2, len) == 0;
				l2 = nl2 ? nl2 + 1 : l2 + len2;
			}
			if (!found)
			{
				diffs++;
				if (!strbuf_appendf(details, "%s %.*s: only on the %s\n", what, (int)len, line,
				                    pass == 0 ? "source" : "target"))
					return diffs;
			}
			line = nl ? nl + 1 : line + len;
		}
	}
	return diffs;
}

/*
 * With filters: the sequences owned by (serial, identity or OWNED BY) the
 * tables in scope, $1 their quoted names. Others were not migrated.
 */
static const char owned_sequences[] =
    "SELECT format('%I.%I', sn.nspname, s.relname), coalesce(ps.last_value::text, 'unused') "
    "FROM pg_catalog.pg_class s "
    "JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace "
    "JOIN pg_catalog.pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname "
    "JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass "
    "  AND d.objid = s.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass "
    "  AND d.deptype IN ('a', 'i') "
    "JOIN pg_catalog.pg_class t ON t.oid = d.refobjid "
    "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace "
    "WHERE s.relkind = 'S' AND format('%I.%I', tn.nspname, t.relname) = ANY ($1::text[]) "
    "ORDER BY 1";

/* ------------------------------------------------------------ large objects */

#define VERIFY_LO_CHUNK   (1024 * 1024) /* bytes read per lo_get */
#define VERIFY_LO_BATCH   "1000"        /* OIDs fetched at a time */
#define VERIFY_LO_DETAILS 20            /* differences named one by one */

/* One side's large objects: a cursor over their OIDs, in order. */
typedef struct verify_lo_side
{
	PGconn *conn;   /* borrowed: in the side's snapshot */
	PGresult *page; /* owned: the current batch of OIDs */
	int row;        /* next row of page */
	bool done;
	int64_t count;
} verify_lo_side;

/* Open the cursor over the OIDs. */
static bool
verify_lo_open(verify_lo_side *v, PGconn *c)
{
	memset(v, 0, sizeof(*v));
	v->conn = c;
	return verify_command(c, "DECLARE pg_dbmigrator_lo NO SCROLL CURSOR FOR SELECT oid FROM "
	                         "pg_catalog.pg_largeobject_metadata ORDER BY oid");
}

/* The next OID, in *oid; false at the end (or on an error: v->done and v->page NULL). */
static bool
verify_lo_next(verify_lo_side *v, unsigned long *oid)
{
	if (v->done)
		return false;
	if (v->page == NULL || v->row >= PQntuples(v->page))
	{
		PQclear(v->page);
		v->page = PQexec(v->conn, "FETCH " VERIFY_LO_BATCH " FROM pg_dbmigrator_lo");
		v->row = 0;
		if (PQresultStatus(v->page) != PGRES_TUPLES_OK || PQntuples(v->page) == 0)
		{
			v->done = true;
			return false;
		}
	}
	*oid = strtoul(PQgetvalue(v->page, v->row++, 0), NULL, 10);
	v->count++;
	return true;
}

/* Did the cursor end because it failed? */
static bool
verify_lo_failed(const verify_lo_side *v)
{
	return v->page == NULL || PQresultStatus(v->page) != PGRES_TUPLES_OK;
}

/* Size and XXH3 hash of one large object, read in pieces; false with the server's message. */
static bool
verify_lo_hash(PGconn *c, unsigned long oid, int64_t *size, uint64_t *hash, char *err,
               size_t errlen)
{
	XXH3_state_t *st = XXH3_createState();
	char oidtext[24], offtext[24], lentext[24];
	const char *params[3] = {oidtext, offtext, lentext};
	bool ok = st != NULL;

	*size = 0;
	if (!ok)
		snprintf(err, errlen, "out of memory");
	else
		XXH3_64bits_reset(st);
	snprintf(oidtext, sizeof(oidtext), "%lu", oid);
	snprintf(lentext, sizeof(lentext), "%d", VERIFY_LO_CHUNK);
	while (ok)
	{
		PGresult *res;
		int n;

		snprintf(offtext, sizeof(offtext), "%lld", (long long)*size);
		res = PQexecParams(c, "SELECT pg_catalog.lo_get($1::oid, $2::bigint, $3::int)", 3, NULL,
		                   params, NULL, NULL, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		{
			snprintf(err, errlen, "%s", PQerrorMessage(c));
			PQclear(res);
			ok = false;
			break;
		}
		n = PQgetlength(res, 0, 0);
		XXH3_64bits_update(st, PQgetvalue(res, 0, 0), (size_t)n);
		*size += n;
		PQclear(res);
		if (n < VERIFY_LO_CHUNK)
			break;
	}
	if (ok)
		*hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return ok;
}

/* Add a line to details; out of memory only loses the line (the counts stand). */
static void
verify_note(strbuf *details, const char *line)
{
	if (!strbuf_append_cstr(details, line))
		return;
}

/* One large-object difference: named among the first few, counted always. */
static void
verify_lo_differs(verify_result *r, strbuf *details, unsigned long oid, const char *what)
{
	char line[128];

	r->large_object_differences++;
	r->differences++;
	if (r->large_object_differences <= VERIFY_LO_DETAILS)
	{
		snprintf(line, sizeof(line), "large object %lu: %s\n", oid, what);
		verify_note(details, line);
	}
}

/*
 * Compare the large objects of both sides by OID (a merge of two ordered
 * cursors), each present on both by its size and content hash. A side that
 * cannot be read (a role without SELECT on them) is a difference, not a
 * silent pass.
 */
static void
verify_large_objects(PGconn *src, PGconn *tgt, verify_result *r, strbuf *details)
{
	verify_lo_side a = {0}, b = {0};
	unsigned long x = 0, y = 0;
	bool have_x, have_y;
	char err[512] = "";

	if (!verify_lo_open(&a, src) || !verify_lo_open(&b, tgt))
	{
		snprintf(err, sizeof(err), "%s%s", PQerrorMessage(src), PQerrorMessage(tgt));
		goto failed;
	}
	have_x = verify_lo_next(&a, &x);
	have_y = verify_lo_next(&b, &y);
	while (have_x || have_y)
	{
		if (have_x && (!have_y || x < y))
		{
			verify_lo_differs(r, details, x, "only on the source");
			have_x = verify_lo_next(&a, &x);
		}
		else if (have_y && (!have_x || y < x))
		{
			verify_lo_differs(r, details, y, "only on the target");
			have_y = verify_lo_next(&b, &y);
		}
		else
		{
			int64_t sa, sb;
			uint64_t ha = 0, hb = 0;

			if (!verify_lo_hash(src, x, &sa, &ha, err, sizeof(err)) ||
			    !verify_lo_hash(tgt, y, &sb, &hb, err, sizeof(err)))
				goto failed;
			if (sa != sb || ha != hb)
				verify_lo_differs(r, details, x, "content differs");
			have_x = verify_lo_next(&a, &x);
			have_y = verify_lo_next(&b, &y);
		}
	}
	if (verify_lo_failed(&a) || verify_lo_failed(&b))
	{
		snprintf(err, sizeof(err), "%s%s", PQerrorMessage(src), PQerrorMessage(tgt));
		goto failed;
	}
	if (r->large_object_differences > VERIFY_LO_DETAILS)
	{
		char line[128];

		snprintf(line, sizeof(line), "... and %d more large objects differ\n",
		         r->large_object_differences - VERIFY_LO_DETAILS);
		verify_note(details, line);
	}
	r->src_large_objects = a.count;
	r->tgt_large_objects = b.count;
	PQclear(a.page);
	PQclear(b.page);
	return;
failed:
	r->differences++;
	r->large_object_differences++;
	r->src_large_objects = a.count;
	r->tgt_large_objects = b.count;
	{
		size_t n = strlen(err);

		while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = '\0';
	}
	verify_note(details, "large objects: could not compare them: ");
	verify_note(details, err);
	verify_note(details, "\n");
	PQclear(a.page);
	PQclear(b.page);
}

bool
verify_run(const verify_opts *o, verify_result *r, char *errbuf, size_t errlen)
{
	verify_shared sh;
	PGconn *csrc = NULL, *ctgt = NULL;
	scope_filters f = {o->schemas, o->tables, o->exclude_schemas, o->exclude_tables};
	char **names = NULL;
	int n = 0, jobs = o->jobs > 0 ? o->jobs : 1;
	pthread_t threads[64];
	int started = 0;
	strbuf details, a, b, inscope;
	bool ok = false;
	int64_t t0 = cli_now_ms();
	PGresult *res;

	memset(r, 0, sizeof(*r));
	memset(&sh, 0, sizeof(sh));
	strbuf_init(&details);
	strbuf_init(&inscope);
	strbuf_init(&a);
	strbuf_init(&b);
	sh.o = o;
	sh.r = r;
	if ((csrc = verify_connect(o->source, NULL, errbuf, errlen)) == NULL ||
	    (ctgt = verify_connect(o->target, NULL, errbuf, errlen)) == NULL)
		goto done;
	res = PQexec(csrc, "SELECT pg_export_snapshot()");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		snprintf(sh.src_snapshot, sizeof(sh.src_snapshot), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = PQexec(ctgt, "SELECT pg_export_snapshot()");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		snprintf(sh.tgt_snapshot, sizeof(sh.tgt_snapshot), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!sh.src_snapshot[0] || !sh.tgt_snapshot[0])
	{
		snprintf(errbuf, errlen, "could not export a snapshot: %s%s", PQerrorMessage(csrc),
		         PQerrorMessage(ctgt));
		goto done;
	}
	if (!scope_list_tables(csrc, &f, &names, &n, errbuf, errlen))
		goto done;
	r->ntables = n;
	r->tables = calloc((size_t)(n ? n : 1), sizeof(verify_table));
	sh.columns = calloc((size_t)(n ? n : 1), sizeof(char *));
	sh.one_sided = calloc((size_t)(n ? n : 1), sizeof(bool));
	if (r->tables == NULL || sh.columns == NULL || sh.one_sided == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++)
	{
		const char *params[1] = {names[i]};

		r->tables[i].name = strdup(names[i]);
		res = PQexecParams(csrc,
		                   "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM "
		                   "pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
		                   "AND NOT attisdropped",
		                   1, NULL, params, NULL, NULL, 0);
		sh.columns[i] = strdup(PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "");
		PQclear(res);
		res = PQexecParams(ctgt, "SELECT to_regclass($1) IS NULL", 1, NULL, params, NULL, NULL, 0);
		r->tables[i].missing =
		    PQresultStatus(res) != PGRES_TUPLES_OK || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (r->tables[i].missing)
			r->tables[i].tgt_rows = -1;
		for (int k = 0; k < o->ncopied && !sh.one_sided[i]; k++)
			sh.one_sided[i] = strcmp(o->copied[k].name, names[i]) == 0;
		if (sh.one_sided[i] && !o->schema_only)
			r->one_sided++;
	}
	/* the tables, in parallel */
	atomic_init(&sh.next, 0);
	atomic_init(&sh.bytes, 0);
	if (jobs > 64)
		jobs = 64;
	if (jobs > n)
		jobs = n > 0 ? n : 1;
	if (o->schema_only)
	{
		/* no rows to compare: a table matches when it is there */
		for (int i = 0; i < n; i++)
			r->tables[i].match = !r->tables[i].missing;
	}
	for (int j = 0; j < jobs && !o->schema_only; j++)
		if (pthread_create(&threads[j], NULL, verify_worker, &sh) == 0)
			started++;
	if (started == 0 && !o->schema_only)
		verify_worker(&sh);
	for (int j = 0; j < started; j++)
		pthread_join(threads[j], NULL);
	for (int i = 0; i < n; i++)
		if (!r->tables[i].match)
			r->differences++;

	/* the tables in scope as a text[] literal, for the sequences they own */
	ok = strbuf_append_char(&inscope, '{');
	for (int i = 0; ok && i < n; i++)
	{
		ok = (i == 0 || strbuf_append_char(&inscope, ',')) && strbuf_append_char(&inscope, '"');
		for (const char *p = names[i]; ok && *p; p++)
			ok = (*p == '"' || *p == '\\' ? strbuf_append_char(&inscope, '\\') : true) &&
			     strbuf_append_char(&inscope, *p);
		ok = ok && strbuf_append_char(&inscope, '"');
	}
	if (!ok || !strbuf_append_char(&inscope, '}'))
	{
		ok = false;
		snprintf(errbuf, errlen, "out of memory");
		goto done;
	}
	ok = false;
	/* sequences and the names of tables, indexes and constraints */
	{
		static const char *const queries[][2] = {
		    {"sequence", "SELECT format('%I.%I', schemaname, sequencename), "
		                 "coalesce(last_value::text, 'unused') FROM pg_catalog.pg_sequences "
		                 "WHERE schemaname NOT IN ('" PGDBM_SCHEMA "') ORDER BY 1"},
		    {"table", "SELECT format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables "
		              "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', "
		              "'" PGDBM_SCHEMA "') ORDER BY 1"},
		    {"index", "SELECT format('%I.%I', schemaname, indexname) FROM pg_catalog.pg_indexes "
		              "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', "
		              "'" PGDBM_SCHEMA "') ORDER BY 1"},
		    {"constraint", "SELECT format('%I.%I', n.nspname, c.conname) FROM "
		                   "pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid = "
		                   "c.connamespace WHERE n.nspname NOT IN ('pg_catalog', "
		                   "'information_schema', '" PGDBM_SCHEMA "') ORDER BY 1"}};

		for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++)
		{
			const char *sql = queries[q][1], *param = NULL;

			/* with filters, only the sequences of the tables in scope are compared beyond them */
			if (q > 0 && scope_filtered(&f))
				break;
			/* a schema-only copy has no sequence values */
			if (q == 0 && o->schema_only)
				continue;
			if (scope_filtered(&f))
			{
				sql = owned_sequences;
				param = strbuf_data(&inscope);
			}
			strbuf_reset(&a);
			strbuf_reset(&b);
			if (!verify_lines(csrc, sql, param, &a) || !verify_lines(ctgt, sql, param, &b))
			{
				snprintf(errbuf, errlen, "could not list %ss: %s%s", queries[q][0],
				         PQerrorMessage(csrc), PQerrorMessage(ctgt));
				goto done;
			}
			r->differences +=
			    verify_compare_lines(queries[q][0], strbuf_data(&a), strbuf_data(&b), &details);
		}
	}
	/* large objects last: a side that may not read them aborts its snapshot's transaction */
	r->src_large_objects = r->tgt_large_objects = -1;
	if (!scope_filtered(&f) && !o->schema_only)
		verify_large_objects(csrc, ctgt, r, &details);
	r->details = strdup(strbuf_data(&details));
	r->bytes = atomic_load(&sh.bytes);
	r->seconds = (double)(cli_now_ms() - t0) / 1000.0;
	ok = true;
done:
	for (int i = 0; sh.columns && i < n; i++)
		free(sh.columns[i]);
	free(sh.columns);
	free(sh.one_sided);
	scope_free(names, n);
	strbuf_free(&details);
	strbuf_free(&inscope);
	strbuf_free(&a);
	strbuf_free(&b);
	PQfinish(csrc);
	PQfinish(ctgt);
	if (!ok)
		verify_free(r); /* the caller frees only a result it got */
	return ok;
}

void
verify_print(const verify_result *r, bool json, FILE *f)
{
	if (json)
	{
		strbuf sb;

		strbuf_init(&sb);
		if (!strbuf_appendf(&sb, "{\"equal\":%s,\"differences\":%d,\"seconds\":%.3f,\"tables\":[",
		                    r->differences ? "false" : "true", r->differences, r->seconds))
			return;
		for (int i = 0; i < r->ntables; i++)
		{
			const verify_table *t = &r->tables[i];

			if (!strbuf_appendf(&sb, "%s{\"table\":", i ? "," : "") ||
			    !strbuf_append_json_string(&sb, t->name, strlen(t->name)) ||
			    !strbuf_appendf(&sb, ",\"source_rows\":%lld,\"target_rows\":%lld,\"match\":%s",
			                    (long long)t->src_rows, (long long)t->tgt_rows,
			                    t->match ? "true" : "false") ||
			    (t->error && (!strbuf_append_cstr(&sb, ",\"error\":") ||
			                  !strbuf_append_json_string(&sb, t->error, strlen(t->error)))) ||
			    !strbuf_append_char(&sb, '}'))
				break;
		}
		if (strbuf_append_char(&sb, ']') &&
		    (r->src_large_objects < 0 ||
		     strbuf_appendf(&sb,
		                    ",\"large_objects\":{\"source\":%lld,\"target\":%lld,"
		                    "\"differences\":%d}",
		                    (long long)r->src_large_objects, (long long)r->tgt_large_objects,
		                    r->large_object_differences)) &&
		    strbuf_append_cstr(&sb, ",\"details\":") &&
		    strbuf_append_json_string(&sb, r->details ? r->details : "",
		                              r->details ? strlen(r->details) : 0) &&
		    strbuf_append_cstr(&sb, "}\n"))
			fputs(strbuf_data(&sb), f);
		strbuf_free(&sb);
		return;
	}
	fprintf(f, "%-40s %14s %14s  %s\n", "table", "source rows", "target rows", "match");
	for (int i = 0; i < r->ntables; i++)
	{
		const verify_table *t = &r->tables[i];
		char tgt[32];

		if (t->missing)
			snprintf(tgt, sizeof(tgt), "missing");
		else
			snprintf(tgt, sizeof(tgt), "%lld", (long long)t->tgt_rows);
		fprintf(f, "%-40s %14lld %14s  %s%s%s\n", t->name, (long long)t->src_rows, tgt,
		        t->match ? "yes" : "NO", t->error ? ": " : "", t->error ? t->error : "");
	}
	if (r->src_large_objects > 0 || r->tgt_large_objects > 0)
		fprintf(f, "large objects: %lld on the source, %lld on the target, %d differ%s\n",
		        (long long)r->src_large_objects, (long long)r->tgt_large_objects,
		        r->large_object_differences, r->large_object_differences == 1 ? "s" : "");
	if (r->details && r->details[0])
		fputs(r->details, f);
	fprintf(f, "%d difference%s; %d tables, %.1f MB compared in %.2f s\n", r->differences,
	        r->differences == 1 ? "" : "s", r->ntables, (double)r->bytes / 1e6, r->seconds);
}

void
verify_free(verify_result *r)
{
	for (int i = 0; r->tables && i < r->ntables; i++)
	{
		free(r->tables[i].name);
		free(r->tables[i].error);
	}
	free(r->tables);
	free(r->details);
	memset(r, 0, sizeof(*r));
}
