/*
 * dumprestore.c — the pg_dump and pg_restore argv of a migration (see
 * dumprestore.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumprestore.h"
#include "scope.h"

#define DUMP_FIXED_ARGS 32 /* every argv entry but the filters, the NULL included */

/*
 * The filters. pg_dump reads --schema and --table as patterns (unquoted
 * names folded to lower case; '*', '?' and '.' special) while ours are exact
 * names: schemas go quoted, tables as the quoted names they resolve to on the
 * source.
 */
static bool
dump_filters(dumprestore_dump *d, const migopts *o, const dumprestore_source *src, int *n)
{
	for (int i = 0; i < o->nschemas + o->nex_schemas; i++)
	{
		bool ex = i >= o->nschemas;
		char *pat = scope_schema_pattern(ex ? o->ex_schemas[i - o->nschemas] : o->schemas[i]);

		if (pat == NULL)
			return false;
		d->patterns[d->npatterns++] = pat;
		d->argv[(*n)++] = ex ? "--exclude-schema" : "--schema";
		d->argv[(*n)++] = pat;
	}
	for (int i = 0; o->dry_run && i < o->ntables + o->nex_tables; i++)
	{
		bool ex = i >= o->ntables;

		d->argv[(*n)++] = ex ? "--exclude-table" : "--table";
		d->argv[(*n)++] = ex ? o->ex_tables[i - o->ntables] : o->tables[i];
	}
	for (int i = 0; i < src->ntables + src->nex_tables; i++)
	{
		bool ex = i >= src->ntables;

		d->argv[(*n)++] = ex ? "--exclude-table" : "--table";
		d->argv[(*n)++] = ex ? src->ex_tables[i - src->ntables] : src->tables[i];
	}
	/* the rows the Copy phase carries (a dry run looks nothing up: one placeholder) */
	if (o->copy_direct && o->dry_run)
	{
		d->argv[(*n)++] = "--exclude-table-data";
		d->argv[(*n)++] = "<each-table-copied-directly>";
	}
	for (int i = 0; i < src->nno_data; i++)
	{
		d->argv[(*n)++] = "--exclude-table-data";
		d->argv[(*n)++] = src->no_data[i];
	}
	return true;
}

bool
dumprestore_dump_argv(dumprestore_dump *d, const migopts *o, const dumprestore_source *src,
                      char *errbuf, size_t errlen)
{
	size_t nfilters = (size_t)o->nschemas + (size_t)o->nex_schemas + (size_t)src->ntables +
	                  (size_t)src->nex_tables + (size_t)src->nno_data + 1 +
	                  (o->dry_run ? (size_t)o->ntables + (size_t)o->nex_tables : 0);
	int n = 0;

	memset(d, 0, sizeof(*d));
	d->argv = calloc(DUMP_FIXED_ARGS + 2 * nfilters, sizeof(char *));
	d->patterns = calloc((size_t)o->nschemas + (size_t)o->nex_schemas + 1, sizeof(char *));
	if (d->argv == NULL || d->patterns == NULL)
		goto oom;
	snprintf(d->path, sizeof(d->path), "%s/pg_dump", src->bindir);
	snprintf(d->dbname, sizeof(d->dbname), "--dbname=%s", src->conninfo);
	snprintf(d->jobs, sizeof(d->jobs), "--jobs=%d", o->jobs);
	d->argv[n++] = d->path;
	d->argv[n++] = d->dbname;
	d->argv[n++] = "--format=directory";
	d->argv[n++] = d->jobs;
	d->argv[n++] = "--file";
	d->argv[n++] = o->dump_path;
	if (o->online || o->copy_direct)
	{
		/* a direct copy reads the rows in the snapshot the schema is dumped in */
		snprintf(d->snapshot, sizeof(d->snapshot), "--snapshot=%s",
		         o->dry_run ? DUMPRESTORE_DRY_SNAPSHOT : src->snapshot);
		d->argv[n++] = d->snapshot;
	}
	if (strcmp(o->scope, "schema-only") == 0)
		d->argv[n++] = "--schema-only";
	else if (strcmp(o->scope, "data-only") == 0)
		d->argv[n++] = "--data-only";
	if (o->compress_arg[0]) /* pg_dump's own spec, from migopts */
		d->argv[n++] = o->compress_arg;
	if (o->no_publications)
		d->argv[n++] = "--no-publications";
	if (o->no_subscriptions)
		d->argv[n++] = "--no-subscriptions";
	if (o->no_sync)
		d->argv[n++] = "--no-sync";
	if (o->no_comments)
		d->argv[n++] = "--no-comments";
	if (o->no_security_labels)
		d->argv[n++] = "--no-security-labels";
	if (o->no_table_access_method)
		d->argv[n++] = "--no-table-access-method";
	if (o->verbose || src->progress)
		d->argv[n++] = "--verbose";
	/*
	 * the names below were read as UTF-8 (or typed so): pg_dump must match
	 * them in UTF-8 too, not in the source database's encoding (a LATIN1
	 * source's "größe" would match nothing); the dump is then UTF-8 and
	 * pg_restore converts it to the target's encoding
	 */
	if (o->nschemas + o->nex_schemas + src->ntables + src->nex_tables + src->nno_data > 0 ||
	    (o->dry_run && (o->ntables + o->nex_tables > 0 || o->copy_direct)))
		d->argv[n++] = "--encoding=UTF8";
	if (!dump_filters(d, o, src, &n))
		goto oom;
	d->argv[n] = NULL;
	return true;
oom:
	snprintf(errbuf, errlen, "out of memory");
	return false;
}

void
dumprestore_dump_free(dumprestore_dump *d)
{
	free(d->argv);
	d->argv = NULL;
	for (int i = 0; i < d->npatterns; i++)
		free(d->patterns[i]);
	free(d->patterns);
	d->patterns = NULL;
	d->npatterns = 0;
}

/* The end of one pg_restore argv from its n-th entry: --clean, verbosity, ownership, the dump. */
static void
restore_tail(const char **argv, int n, const migopts *o, bool clean, bool verbose)
{
	if (clean)
	{
		argv[n++] = "--clean";
		argv[n++] = "--if-exists";
	}
	if (o->verbose || verbose)
		argv[n++] = "--verbose";
	if (o->no_owner)
		argv[n++] = "--no-owner";
	if (o->no_privileges)
		argv[n++] = "--no-privileges";
	argv[n++] = o->dump_path;
	argv[n] = NULL;
}

void
dumprestore_restore_argv(dumprestore_restore *r, const migopts *o, const char *bindir,
                         const char *conninfo, bool progress)
{
	static const char *const sections[] = {"--section=pre-data", "--section=data",
	                                       "--section=post-data"};
	/*
	 * pg_restore --clean drops only what the sections it restores hold: the
	 * pre-data pass cannot drop a table that a foreign key or a trigger
	 * (post-data) still depends on. A clean restore is one pass (pg_restore
	 * still loads the data before the post-data).
	 */
	bool clean = o->drop_target_first || o->resume;
	bool split = o->split_sections && !clean;

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s/pg_restore", bindir);
	snprintf(r->dbname, sizeof(r->dbname), "--dbname=%s", conninfo);
	snprintf(r->jobs, sizeof(r->jobs), "--jobs=%d", o->jobs);
	r->npasses = split ? DUMPRESTORE_MAX_PASSES : 1;
	for (int s = 0; s < r->npasses; s++)
	{
		const char **argv = r->argv[s];
		int n = 0;

		r->section[s] = split ? sections[s] + strlen("--section=") : "";
		argv[n++] = r->path;
		argv[n++] = r->dbname;
		argv[n++] = r->jobs;
		if (split)
			argv[n++] = sections[s];
		restore_tail(argv, n, o, clean, progress && s == (split ? 1 : 0));
	}
}

void
dumprestore_restore_direct(dumprestore_restore *r, const migopts *o, const char *bindir,
                           const char *conninfo, bool progress, bool schema, bool clean)
{
	const char **argv = r->argv[0];
	int n = 0;

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s/pg_restore", bindir);
	snprintf(r->dbname, sizeof(r->dbname), "--dbname=%s", conninfo);
	snprintf(r->jobs, sizeof(r->jobs), "--jobs=%d", o->jobs);
	r->npasses = 1;
	r->section[0] = schema ? "pre-data" : "post-data";
	argv[n++] = r->path;
	argv[n++] = r->dbname;
	argv[n++] = r->jobs;
	if (schema)
	{
		argv[n++] = "--section=pre-data";
		argv[n++] = "--section=data";
	}
	else
		argv[n++] = "--section=post-data";
	restore_tail(argv, n, o, schema ? clean : o->resume, progress && !schema);
}

void
dumprestore_restore_listed(dumprestore_restore *r, const migopts *o, const char *bindir,
                           const char *conninfo, const char *list, int jobs, bool clean)
{
	const char **argv = r->argv[0];
	int n = 0;

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s/pg_restore", bindir);
	snprintf(r->dbname, sizeof(r->dbname), "--dbname=%s", conninfo);
	snprintf(r->jobs, sizeof(r->jobs), "--jobs=%d", jobs < 1 ? 1 : jobs);
	r->npasses = 1;
	r->section[0] = "post-data";
	argv[n++] = r->path;
	argv[n++] = r->dbname;
	argv[n++] = r->jobs;
	argv[n++] = "--section=post-data";
	argv[n++] = "--use-list";
	argv[n++] = list;
	restore_tail(argv, n, o, clean, false);
}

bool
dumprestore_is_dump_file(const char *name)
{
	const char *p = name;

	if (strcmp(name, "toc.dat") == 0 || strcmp(name, "blobs.toc") == 0)
		return true;
	/* the post-data lists of --copy-method direct (copyrun.c) */
	if (strncmp(name, "postdata-", 9) == 0 && strlen(name) > 14 &&
	    strcmp(name + strlen(name) - 5, ".list") == 0)
		return true;
	if (strncmp(p, "blob_", 5) == 0)
		p += 5;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, ".dat") == 0 || strcmp(p, ".dat.gz") == 0 || strcmp(p, ".dat.lz4") == 0 ||
	       strcmp(p, ".dat.zst") == 0;
}
