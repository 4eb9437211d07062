/*
 * postdata.h — the post-data section of a schema dump split by table, so
 * that a table's indexes, its own constraints, triggers, rules, policies
 * and statistics can be built as soon as its rows are in, while other tables
 * still copy; what spans tables (foreign keys, partition attachments,
 * comments, materialized view data, whatever is not known to belong to one
 * table) is left for one final pass.
 *
 * Pure: reads the text `pg_restore --list --section=post-data` writes and
 * writes list files for `pg_restore --use-list`; it never runs anything.
 * copyrun.c asks the source which table each object belongs to.
 */
#ifndef POSTDATA_H
#define POSTDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pgdbm_attr.h"

/* One entry of the dump's table of contents. */
typedef struct postdata_entry
{
	char *line;           /* owned: the whole line as pg_restore --list wrote it */
	unsigned int catalog; /* the catalog its object lives in (pg_class: 1259...), 0 if none */
	unsigned int oid;     /* the source's OID of the object (of the table for ROW SECURITY) */
	bool of_one_table;    /* an index, a constraint other than a foreign key, a trigger, a
	                         rule, a policy, row security or statistics: of one table */
	bool follows;         /* a comment or security label: pg_dump writes it right after its
	                         object, and pg_restore --use-list restores it only with it */
	int table;            /* the table it belongs to (set by the caller), -1: the final pass */
} postdata_entry;

/*
 * The entries of a --list text (comment and blank lines left out), each with
 * table -1. *entries malloc'd (postdata_free). false: out of memory, or a
 * line that is not a TOC entry (with a message).
 */
PGDBM_MUST_CHECK bool postdata_parse(const char *text, postdata_entry **entries, int *nentries,
                                     char *errbuf, size_t errlen);
void postdata_free(postdata_entry *entries, int nentries);

/*
 * Once the caller set each of_one_table entry's table: the comments and
 * security labels go where the entry before them goes.
 */
void postdata_attach(postdata_entry *entries, int nentries);

/*
 * Write to f the entries whose table is table (-1: those of the final pass,
 * and those whose table's own pass was not done: done[t] false; done may be
 * NULL when table >= 0). The number written.
 */
int postdata_write_list(FILE *f, const postdata_entry *entries, int nentries, int table,
                        const bool *done);

#endif /* POSTDATA_H */
