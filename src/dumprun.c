/*
 * dumprun.c — the Dump and Restore phases: runs pg_dump and pg_restore
 * (argv from dumprestore.c) as children, progress on a terminal, --force-
 * clean's removal of a dump directory, ANALYZE.
 *
 * Owns: nothing past a call. Never: builds an argv itself (dumprestore.c
 * does).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"
#include "termline.h"

/* Progress lines on a terminal (from the children's --verbose output). */
bool
dumprun_progress(const mig *m)
{
	/* not in a whole-server child: its siblings share the terminal (issue 19) */
	return !m->o.verbose && !m->o.json && m->o.event_tag == NULL && isatty(STDERR_FILENO) &&
	       m->ntables > 0;
}

/*
 * The bar of a Dump or Restore on a terminal (issue 19): the tables begun
 * (pg_dump's and pg_restore's --verbose lines) of those in scope, the bytes
 * in the dump directory while pg_dump writes it, the rate and an ETA from the
 * share of tables begun. Drawn from the first table on, so a schema-only
 * dump draws none.
 */
typedef struct dumprun_meter
{
	const char *stage; /* borrowed: "Dump" or "Restore" */
	const char *dir;   /* borrowed: the dump directory, measured during Dump (NULL: not) */
	int total;         /* tables in scope */
	int begun;         /* tables begun at the last call */
	int64_t start_ms, drawn_ms;
	bool drawn;
} dumprun_meter;

#define DUMPRUN_BAR 30

/* The bytes of the files in dir (a directory-format dump is one level deep). */
static int64_t
dumprun_dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t sum = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
	{
		char path[1200];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			sum += (int64_t)st.st_size;
	}
	closedir(d);
	return sum;
}

/* child_spec.on_progress: redraw the bar (at most about twice a second, and at each table). */
static void
dumprun_meter_tick(void *arg, int begun)
{
	dumprun_meter *mt = arg;
	int64_t now = cli_now_ms();
	int total = mt->total > begun ? mt->total : begun;
	double secs = (double)(now - mt->start_ms) / 1000.0;
	int filled = total > 0 ? DUMPRUN_BAR * begun / total : 0;
	char bytes[64] = "", eta[32] = "";

	mt->begun = begun;
	if (begun == 0 || (mt->drawn && now - mt->drawn_ms < 200))
		return;
	if (mt->dir)
	{
		double mb = (double)dumprun_dir_bytes(mt->dir) / 1048576.0;

		snprintf(bytes, sizeof(bytes), ", %.1f MB written, %.1f MB/s", mb,
		         secs > 0 ? mb / secs : 0);
	}
	else
		snprintf(bytes, sizeof(bytes), ", %.1f tables/s", secs > 0 ? begun / secs : 0);
	if (begun < total && secs > 0)
		snprintf(eta, sizeof(eta), ", ETA %.0f s", secs * (total - begun) / begun);
	termline_draw("%s [%.*s%*s] %d/%d tables begun%s%s, %.0f s elapsed", mt->stage, filled,
	              "##############################", DUMPRUN_BAR - filled, "", begun, total, bytes,
	              eta, secs);
	mt->drawn = true;
	mt->drawn_ms = now;
}

bool
dumprun_child(mig *m, const char *stage, const char *const *argv, const char *password,
              bool *warned, char *errbuf, size_t errlen)
{
	child_spec spec = {.argv = argv,
	                   .password = password,
	                   .interrupted = &mig_signals,
	                   .show_stderr = m->o.verbose};
	dumprun_meter meter = {.stage = stage, .total = m->ntables, .start_ms = cli_now_ms()};

	if (dumprun_progress(m))
	{
		spec.progress_match =
		    strcmp(stage, "Dump") == 0 ? "dumping contents of table" : "processing data for table";
		spec.progress_label = stage;
		spec.progress_total = m->ntables;
		/* issue 19: a bar, with the bytes pg_dump has written */
		meter.dir = strcmp(stage, "Dump") == 0 ? m->o.dump_path : NULL;
		spec.on_progress = dumprun_meter_tick;
		spec.progress_arg = &meter;
	}
	child_result res;
	bool ok;

	*warned = false;
	if (!child_run(&spec, &res, errbuf, errlen))
		return false;
	if (meter.drawn)
	{
		meter.drawn_ms = 0; /* the last state, kept on its line */
		dumprun_meter_tick(&meter, res.exit_code == 0 && meter.total > meter.begun ? meter.total
		                                                                           : meter.begun);
		termline_done();
	}
	if (res.interrupted)
	{
		snprintf(errbuf, errlen, "interrupted during %s", stage);
		strbuf_free(&res.summary);
		return false;
	}
	ok = res.exit_code == 0;
	if (!ok && strcmp(stage, "Restore") == 0 && res.exit_code == 1 && m->o.allow_restore_errors)
	{
		event e;

		event_begin(&e, stage);
		event_level(&e, "warning");
		event_int(&e, "errors", res.error_lines);
		event_end(&e, "pg_restore reported %d errors (--allow-restore-errors):\n%s",
		          res.error_lines, strbuf_data(&res.summary));
		*warned = true;
		ok = true;
	}
	else if (!ok)
		snprintf(errbuf, errlen, "%s exited with %d%s%s%s", argv[0], res.exit_code,
		         res.error_lines ? "; its errors by kind:\n" : "", strbuf_data(&res.summary),
		         strcmp(stage, "Restore") == 0 && res.exit_code == 1
		             ? "(--allow-restore-errors accepts them when the data was restored)"
		             : "");
	strbuf_free(&res.summary);
	return ok;
}

/* What pg_dump reads beyond the options (the same for the run and its dry run). */
void
dumprun_source(const mig *m, dumprestore_source *src)
{
	memset(src, 0, sizeof(*src));
	src->bindir = m->bindir;
	src->conninfo = m->src_ci.safe;
	src->snapshot = m->slot.snapshot;
	src->progress = dumprun_progress(m);
}

/*
 * --force-clean: remove a previous run's dump directory, but only when all it
 * holds is what pg_dump writes there (a wrong --dump-path must not cost the
 * operator a directory).
 */
bool
dumprun_remove_dump(const char *path, bool check_only, char *errbuf, size_t errlen)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char file[1400];

	if (d == NULL)
	{
		snprintf(errbuf, errlen, "cannot read the dump path \"%s\": %s", path, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    !dumprestore_is_dump_file(de->d_name))
		{
			snprintf(errbuf, errlen,
			         "--force-clean: \"%s\" holds \"%s\", which pg_dump does not write: it does "
			         "not look like a dump directory, so it is left alone; remove it yourself or "
			         "choose another --dump-path",
			         path, de->d_name);
			closedir(d);
			return false;
		}
	if (check_only)
	{
		closedir(d);
		return true;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (unlink(file) != 0)
		{
			snprintf(errbuf, errlen, "could not remove \"%s\": %s", file, strerror(errno));
			closedir(d);
			return false;
		}
	}
	closedir(d);
	if (rmdir(path) != 0)
	{
		snprintf(errbuf, errlen, "could not remove \"%s\": %s", path, strerror(errno));
		return false;
	}
	return true;
}

/*
 * --table and --exclude-table as the quoted names they resolve to on the
 * source: *inc and *exc are malloc'd (scope_free), also after a failure.
 */
static bool
dumprun_dump_tables(mig *m, char ***inc, int *ninc, char ***exc, int *nexc, char *errbuf,
                    size_t errlen)
{
	scope_filters f = mig_scope(m);

	*inc = *exc = NULL;
	*ninc = *nexc = 0;
	if (m->o.ntables)
	{
		scope_filters t = {.tables = f.tables};

		if (!scope_list_tables(m->src, &t, inc, ninc, errbuf, errlen))
			return false;
		if (*ninc == 0)
		{
			snprintf(errbuf, errlen, "no table on the source matches --table %s", m->o.tables[0]);
			return false;
		}
	}
	if (m->o.nex_tables)
	{
		scope_filters t = {.tables = f.exclude_tables};

		if (!scope_list_tables(m->src, &t, exc, nexc, errbuf, errlen))
			return false;
	}
	return true;
}

bool
dumprun_dump(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_source src;
	dumprestore_dump d;
	char **inc, **exc, **no_data = NULL;
	int ninc, nexc;
	bool warned, ok;
	struct stat st;
	event e;
	int64_t t0 = cli_now_ms();

	if (m->o.copy_direct && !copyrun_prepare(m, errbuf, errlen))
		return false;
	dumprun_source(m, &src);
	if (m->o.copy_direct)
	{
		no_data = calloc((size_t)m->ncopy_tables + 1, sizeof(char *));
		if (no_data == NULL)
		{
			snprintf(errbuf, errlen, "out of memory");
			return false;
		}
		for (int i = 0; i < m->ncopy_tables; i++)
			no_data[i] = m->copy_tables[i].qname;
		src.no_data = no_data;
		src.nno_data = m->ncopy_tables;
	}
	if (stat(m->o.dump_path, &st) == 0)
	{
		if (!m->o.force_clean)
		{
			snprintf(errbuf, errlen,
			         "the dump path \"%s\" exists (a previous run's?): remove it or pass "
			         "--force-clean",
			         m->o.dump_path);
			free(no_data);
			return false;
		}
		if (!dumprun_remove_dump(m->o.dump_path, false, errbuf, errlen))
		{
			free(no_data);
			return false;
		}
	}
	ok = dumprun_dump_tables(m, &inc, &ninc, &exc, &nexc, errbuf, errlen);
	if (ok)
	{
		src.tables = inc;
		src.ntables = ninc;
		src.ex_tables = exc;
		src.nex_tables = nexc;
		ok = dumprestore_dump_argv(&d, &m->o, &src, errbuf, errlen);
		if (ok)
		{
			event_say("Dump", "info", "pg_dump to %s with %d job%s", m->o.dump_path, m->o.jobs,
			          m->o.jobs > 1 ? "s" : "");
			ok = dumprun_child(m, "Dump", d.argv, m->src_ci.password, &warned, errbuf, errlen);
		}
		dumprestore_dump_free(&d);
	}
	scope_free(inc, ninc);
	scope_free(exc, nexc);
	free(no_data);
	if (!ok)
		return false;
	event_begin(&e, "Dump");
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "dump done");
	return true;
}

static bool
dumprun_restore_sections(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_restore r;
	bool any_warning = false;
	int64_t t0 = cli_now_ms();
	event e;

	if (m->o.copy_direct && m->postdata_list[0]) /* what the Copy phase left */
		dumprestore_restore_listed(&r, &m->o, m->bindir, m->tgt_ci.safe, m->postdata_list,
		                           migopts_copy_jobs(&m->o), m->o.resume);
	else if (m->o.copy_direct) /* the rows are in: the post-data is what is left */
		dumprestore_restore_direct(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m), false,
		                           false);
	else
		dumprestore_restore_argv(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m));
	for (int s = 0; s < r.npasses; s++)
	{
		bool warned;

		event_say("Restore", "info", "pg_restore %s", r.section[s]);
		if (!dumprun_child(m, "Restore", r.argv[s], m->tgt_ci.password, &warned, errbuf, errlen))
			return false;
		any_warning |= warned;
	}
	if (m->o.analyze && strcmp(m->o.scope, "schema-only") != 0)
	{
		event_say("Restore", "info", "ANALYZE on the target");
		/* a role that is not a superuser gets one warning per shared catalog it skips */
		if (!mig_exec(m->tgt, "SET client_min_messages TO error", errbuf, errlen) ||
		    !mig_exec(m->tgt, "ANALYZE", errbuf, errlen) ||
		    !mig_exec(m->tgt, "SET client_min_messages TO warning", errbuf, errlen))
			return false;
	}
	event_begin(&e, "Restore");
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "restore done%s", any_warning ? " with errors (see above)" : "");
	return true;
}

bool
dumprun_restore(mig *m, char *errbuf, size_t errlen)
{
	bool ok;
	char err2[512];

	if (!m->o.fast_restore)
		return dumprun_restore_sections(m, errbuf, errlen);
	if (!fastrestore_set(m, errbuf, errlen))
		return false;
	ok = dumprun_restore_sections(m, errbuf, errlen);
	/* whatever happened, the previous values go back */
	if (!fastrestore_put_back(m, err2, sizeof(err2)))
	{
		event_say("Restore", "error", "could not put the target's settings back: %s", err2);
		if (ok)
			snprintf(errbuf, errlen, "could not put the target's settings back: %s", err2);
		return false;
	}
	if (ok && !mig_exec(m->tgt, "CHECKPOINT", err2, sizeof(err2)))
		event_say("Restore", "warning", "CHECKPOINT after the restore failed: %s", err2);
	return ok;
}
