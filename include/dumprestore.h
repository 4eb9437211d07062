/*
 * dumprestore.h — the pg_dump and pg_restore command lines of a migration,
 * built from the options without running anything: the directory format,
 * --jobs, the snapshot of an online run (or of a direct copy), the scope, compression, the
 * pg_dump switches the operator turned off, the filters as exact names,
 * the restore's sections, --clean, --no-owner and --no-privileges. Also
 * which file names pg_dump's directory format writes (what --force-clean
 * may remove).
 *
 * Owns: the dump argv array and the quoted schema names
 * (dumprestore_dump_free). Never: connects, looks a table up, runs a child,
 * prints or touches the filesystem.
 */
#ifndef DUMPRESTORE_H
#define DUMPRESTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "migopts.h"
#include "pgdbm_attr.h"

/* a dry run's --snapshot: the real one is exported when the run starts */
#define DUMPRESTORE_DRY_SNAPSHOT "<exported-at-run-time>"

#define DUMPRESTORE_MAX_PASSES 3  /* pre-data, data, post-data */
#define DUMPRESTORE_MAX_ARGS   16 /* of one pg_restore, the NULL included */

/* What the dump reads beyond the options. */
typedef struct dumprestore_source
{
	const char *bindir;   /* borrowed: where pg_dump is */
	const char *conninfo; /* borrowed: the source's, without the password */
	const char *snapshot; /* borrowed: the exported snapshot (online, not a dry run) */
	bool progress;        /* progress lines on a terminal: --verbose */
	/*
	 * borrowed: --table and --exclude-table resolved on the source to the
	 * quoted names they are (a dry run looks nothing up: the names as given)
	 */
	char *const *tables;
	int ntables;
	char *const *ex_tables;
	int nex_tables;
	/*
	 * borrowed: --copy-method direct: the tables whose rows the Copy phase
	 * carries, as quoted names (each an --exclude-table-data)
	 */
	char *const *no_data;
	int nno_data;
} dumprestore_source;

typedef struct dumprestore_dump
{
	char path[600], dbname[2048], jobs[24], compress[24], snapshot[128];
	/*
	 * owned (the array only): NULL-terminated; points into this struct, the
	 * options, the source's table names and patterns
	 */
	const char **argv;
	char **patterns; /* owned: the quoted --schema and --exclude-schema names */
	int npatterns;
} dumprestore_dump;

/*
 * The pg_dump argv for o and src into *d (caller-allocated; free it with
 * dumprestore_dump_free, even after a failure). Fails only out of memory.
 */
PGDBM_MUST_CHECK bool dumprestore_dump_argv(dumprestore_dump *d, const migopts *o,
                                            const dumprestore_source *src, char *errbuf,
                                            size_t errlen);
void dumprestore_dump_free(dumprestore_dump *d);

typedef struct dumprestore_restore
{
	char path[600], dbname[2048], jobs[24];
	int npasses; /* 1, or 3 with --split-sections (and no --clean) */
	/* per pass: the section ("pre-data", "data", "post-data"), or "" for all */
	const char *section[DUMPRESTORE_MAX_PASSES];
	/* per pass: NULL-terminated; points into this struct and the options */
	const char *argv[DUMPRESTORE_MAX_PASSES][DUMPRESTORE_MAX_ARGS];
} dumprestore_restore;

/*
 * The pg_restore argv of each pass into *r (caller-allocated, nothing to
 * free): bindir and conninfo (the target's, without the password) are
 * borrowed; progress asks the (data) pass for --verbose.
 */
void dumprestore_restore_argv(dumprestore_restore *r, const migopts *o, const char *bindir,
                              const char *conninfo, bool progress);

/*
 * --copy-method direct: the one pg_restore pass before the Copy phase
 * (schema: pre-data, and the data section, which then holds only sequence
 * values and large objects; --clean --if-exists with clean) or after it (the
 * post-data: indexes, constraints, triggers; --clean --if-exists when
 * resuming). Into *r as dumprestore_restore_argv does, one pass.
 */
void dumprestore_restore_direct(dumprestore_restore *r, const migopts *o, const char *bindir,
                                const char *conninfo, bool progress, bool schema, bool clean);

/*
 * --copy-method direct: a post-data pass restoring only the entries of the
 * list file (pg_restore --use-list; list borrowed, written by copyrun.c), with
 * jobs parallel jobs; --clean --if-exists with clean. Into *r, one pass.
 */
void dumprestore_restore_listed(dumprestore_restore *r, const migopts *o, const char *bindir,
                                const char *conninfo, const char *list, int jobs, bool clean);

/* Is name a file pg_dump's directory format writes (toc.dat, 1234.dat.gz, blob_5.dat...),
 * or a post-data list of copyrun.c (postdata-*.list)? */
bool dumprestore_is_dump_file(const char *name);

#endif
