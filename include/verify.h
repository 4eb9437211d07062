/*
 * verify.h — compare a source and a target database: every table's row
 * count and a content checksum, sequences' values, the names of tables,
 * indexes and constraints, and (when nothing is filtered, as pg_dump then
 * copies them) every large object's content by OID.
 *
 * Each side is read in one repeatable-read snapshot (exported by a
 * coordinating connection and imported by every worker). A table is streamed
 * with COPY ... TO STDOUT on both sides at once; each row (its text line) is
 * hashed with XXH3 and the hashes are summed, so row order does not matter
 * and the server sorts nothing. Tables are checked by --jobs worker threads.
 * Large objects are read in 1 MB pieces (lo_get) and hashed the same way, so
 * neither side's objects are ever held whole in memory.
 *
 * After a direct copy, a table whose rows were digested as the copy passed
 * them from the source (verify_copied) is read on the target only: its
 * leaves, with the copy's columns, in the copy's format (text in
 * ROWHASH_TEXT_SETTINGS, or binary), hashed by the same rules (rowhash.h) and
 * compared with the digest recorded at the copy. Every other table (copied
 * by the dump method, a resumed run, a materialized view) is read on both
 * sides as above.
 *
 * Owns: its connections and result arrays (verify_free). Never: writes to
 * either database.
 */
#ifndef VERIFY_H
#define VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgdbm_attr.h"

/* The source's rows of one leaf table as a direct copy passed them (rowhash.h). */
typedef struct verify_copied
{
	const char *name;    /* borrowed: the table as the scope lists it (the leaf or its root) */
	const char *leaf;    /* borrowed: the leaf table the rows were copied into, quoted */
	const char *columns; /* borrowed: the columns copied, quoted, comma-separated */
	bool binary;         /* the rows passed in binary COPY format (else text) */
	int64_t rows;
	uint64_t sum;
} verify_copied;

typedef struct verify_opts
{
	const char *source, *target; /* borrowed connection strings */
	const char *const *schemas;  /* borrowed, NULL-terminated (may be NULL) */
	const char *const *tables;   /* "schema.table" or "table" */
	const char *const *exclude_schemas;
	const char *const *exclude_tables;
	int jobs;         /* worker threads (>= 1) */
	bool schema_only; /* only what a schema-only copy holds: names, no rows, values, objects */
	/*
	 * optional: the digests of a direct copy; a table the scope names is read
	 * on the target only when these hold every leaf of it (the caller leaves a
	 * table out when any of its leaves was not copied in this run)
	 */
	const verify_copied *copied;
	int ncopied;
} verify_opts;

typedef struct verify_table
{
	char *name; /* malloc'd "schema"."table" */
	int64_t src_rows, tgt_rows;
	uint64_t src_sum, tgt_sum;
	bool missing; /* not on the target */
	bool match;
	bool one_sided; /* the source's side is the digest recorded at the copy */
	char *error;    /* malloc'd, or NULL */
} verify_table;

typedef struct verify_result
{
	verify_table *tables; /* malloc'd array */
	int ntables;
	int differences; /* tables, sequences, objects and large objects that differ */
	int one_sided;   /* tables read on the target only (their source's digest from the copy) */
	/* large objects on each side; -1: not compared (a filtered scope: pg_dump skips them) */
	int64_t src_large_objects, tgt_large_objects;
	int large_object_differences;
	char *details; /* malloc'd lines: sequence and object differences */
	double seconds;
	int64_t bytes; /* COPY bytes read from both sides */
} verify_result;

/* Run the comparison; false with a message if it could not (connections, snapshots). */
PGDBM_MUST_CHECK bool verify_run(const verify_opts *o, verify_result *r, char *errbuf,
                                 size_t errlen);

/* Print the table (and details) to f, or one JSON object when json. */
void verify_print(const verify_result *r, bool json, FILE *f);

void verify_free(verify_result *r);

#endif /* VERIFY_H */
