/*
 * tablecopy.h — the initial copy without a dump file: every table's rows
 * streamed from the source to the target by COPY, inside one exported
 * snapshot, by N workers that share one queue, largest first, with large
 * tables split into ranges of pages so that one huge table keeps every
 * worker busy.
 *
 * Three steps, each usable alone:
 *   tablecopy_describe  reads, on the source, what each table's copy needs
 *                       (its leaf tables, the columns COPY carries, its size);
 *   tablecopy_plan      splits the tables into work items (pure);
 *   tablecopy_run       copies the items with N worker threads, each with one
 *                       source session in the snapshot and one target
 *                       session; the COPY data passes through, never parsed.
 *
 * Owns: the worker threads and their connections for the length of
 * tablecopy_run. Never: creates or drops anything on either server, reports
 * events (progress goes to the caller's callback), or prints.
 */
#ifndef TABLECOPY_H
#define TABLECOPY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

/* One table whose rows are copied (a leaf: partitioned tables are copied by their leaves). */
typedef struct tablecopy_table
{
	char *qname;    /* owned: "schema"."table", quoted */
	char *name;     /* owned: the name it was described by (itself, or its partitioned root) */
	char *columns;  /* owned: the quoted columns COPY carries, comma-separated (no generated
	                  columns); "" when the table has none */
	bool binary_ok; /* every column's type reads back in binary on another server: built in
	                   (OID below 16384), an enum, or a domain over a built-in type (a user
	                   composite or array carries its type's OID, which differs), but no OID
	                   alias (regclass, regtype...: binary carries the source's OID) */
	int64_t pages;  /* the source's size in pages when described */
	int64_t bytes;  /* the source's size in bytes when described */
} tablecopy_table;

/* One unit of work: a table, or a range of its pages. */
typedef struct tablecopy_item
{
	int table;          /* index into the tables */
	int64_t first_page; /* the range's first page; 0 for a whole table */
	int64_t end_page;   /* one past its last page; 0: to the end of the table */
	int64_t bytes;      /* the expected size, for the order and the progress */
} tablecopy_item;

/*
 * The described tables, in the order given: the leaves of each name in
 * names (quoted "schema"."table" as scope_list_tables gives them), with
 * their columns and sizes. *tables is malloc'd (tablecopy_free_tables).
 */
PGDBM_MUST_CHECK bool tablecopy_describe(PGconn *src, const char *const *names, int nnames,
                                         tablecopy_table **tables, int *ntables, char *errbuf,
                                         size_t errlen);
void tablecopy_free_tables(tablecopy_table *tables, int ntables);

/*
 * The work items, largest first: a table of more than range_pages pages is
 * split into ranges of range_pages pages (the last one open-ended, so rows
 * past the size read when described are copied too); range_pages 0 never
 * splits. *items is malloc'd (free). Pure.
 */
PGDBM_MUST_CHECK bool tablecopy_plan(const tablecopy_table *tables, int ntables,
                                     int64_t range_pages, tablecopy_item **items, int *nitems);

/*
 * The range size to plan with: range_pages, or smaller when a table holds
 * more than its workers' share of the whole (all pages / jobs, when that is
 * at least TABLECOPY_MIN_RANGE_PAGES): one table that dominates is then split
 * in at least jobs ranges, so every worker copies it. 0 stays 0 (never
 * split). Pure.
 */
#define TABLECOPY_MIN_RANGE_PAGES 1024 /* 8 MB of 8 kB pages */
int64_t tablecopy_range_pages(const tablecopy_table *tables, int ntables, int64_t range_pages,
                              int jobs);

/*
 * The statements of an item: the source's COPY ... TO STDOUT (a range reads
 * through a TID range condition, which PostgreSQL 14+ scans in place) and
 * the target's COPY ... FROM STDIN; binary only when asked and the table's
 * types allow it (binary_ok). Pure.
 */
PGDBM_MUST_CHECK bool tablecopy_source_sql(const tablecopy_table *t, const tablecopy_item *it,
                                           bool binary, strbuf *out);
PGDBM_MUST_CHECK bool tablecopy_target_sql(const tablecopy_table *t, bool binary, strbuf *out);

/*
 * What the workers report (called from the worker threads, serialised): at
 * the end of each part, and within a part at most every TABLECOPY_TICK_MS as
 * the bytes pass through. Memory: a few counters per table, whatever the size.
 */
typedef struct tablecopy_progress
{
	const char *table; /* borrowed: the reporting worker's table */
	bool part_done;    /* the end of a part (else a tick within one) */
	int items_done;    /* items finished so far, of items_total */
	int items_total;
	int64_t rows;        /* rows copied so far, all items (counted as parts end) */
	int64_t bytes;       /* COPY data bytes passed through so far, all items */
	int64_t bytes_total; /* the expected total (sizes on the source) */
	int64_t table_rows;  /* the same for the reporting worker's table */
	int64_t table_bytes;
	int64_t table_bytes_total;
	bool table_done; /* every part of that table is in */
	double seconds;  /* since the start */
} tablecopy_progress;

/* At most this often a tick within a part (per copy, not per worker). */
#define TABLECOPY_TICK_MS 250

/* What passed from the source for one table, digested (rowhash.h): for a one-sided verify. */
typedef struct tablecopy_sum
{
	int64_t rows;
	uint64_t sum;
	bool binary; /* the rows passed in binary COPY format (else text) */
} tablecopy_sum;

typedef struct tablecopy_opts
{
	const char *source;   /* borrowed: connection string of the source (with its password) */
	const char *target;   /* borrowed: connection string of the target */
	const char *snapshot; /* borrowed: the exported snapshot every source session imports */
	int jobs;             /* worker threads (>= 1) */
	bool binary;          /* COPY (FORMAT binary): only between the same major versions */
	volatile sig_atomic_t *interrupted; /* optional: stop at the next chunk once set */
	void (*progress)(void *arg, const tablecopy_progress *p); /* optional */
	void *progress_arg;
	/*
	 * optional: every part of tables[table] is in (called from the worker that
	 * finished the last one, serialised, so keep it short); false stops the
	 * copy as a failure whose message is the caller's to give
	 */
	bool (*table_done)(void *arg, int table);
	/* optional, with table_done_arg: a worker found no part left to take (its share of the
	   machine is free from now on); called once per worker, serialised */
	void (*worker_idle)(void *arg);
	void *table_done_arg;
	/*
	 * optional, the caller's array of one per table: every part's rows digested
	 * as they pass (rowhash.h), summed per table; both sessions then print
	 * values in ROWHASH_TEXT_SETTINGS
	 */
	tablecopy_sum *sums;
} tablecopy_opts;

#define TABLECOPY_BUSY_REPORTED 16

typedef struct tablecopy_result
{
	int64_t rows;  /* rows copied (the target's COPY counts) */
	int64_t bytes; /* COPY data bytes passed through */
	int items;     /* items copied */
	double seconds;
	bool interrupted; /* stopped by *interrupted */
	int workers;      /* worker threads run */
	/* the seconds each of the first TABLECOPY_BUSY_REPORTED workers spent copying parts
	   (the rest of its time it waited for nothing: it had no part left) */
	double busy_seconds[TABLECOPY_BUSY_REPORTED];
} tablecopy_result;

/*
 * Copy every item. false at the first failure (the other workers stop at
 * their next chunk), with a message naming the table; a table half copied
 * is never reported as done: the caller must start the copy over.
 */
PGDBM_MUST_CHECK bool tablecopy_run(const tablecopy_opts *o, const tablecopy_table *tables,
                                    const tablecopy_item *items, int nitems, tablecopy_result *r,
                                    char *errbuf, size_t errlen);

#endif /* TABLECOPY_H */
