/*
 * dryrun.c — --dry-run: after Validate, prints the plan (the phases from the
 * run's phase table, what is created and dropped on each side, the exact
 * pg_dump and pg_restore commands from the argv builders the run uses,
 * tables, guard, sequences) and changes nothing.
 *
 * Owns: nothing. Never: writes to either server, runs a child, or prints a
 * password.
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
#include "ddl.h"
#include "migplan.h"
#include "migrate_internal.h"

/* One command as a shell would take it; the password would be in the child's environment only. */
static void
dryrun_print_argv(const char *const *argv, const char *password)
{
	printf("  %s", password ? "PGPASSWORD=******** " : "");
	for (int i = 0; argv[i]; i++)
	{
		bool plain = argv[i][strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                                     "0123456789-_=./:,")] == '\0';

		if (plain)
			printf("%s%s", i ? " " : "", argv[i]);
		else
		{
			printf("%s'", i ? " " : "");
			for (const char *c = argv[i]; *c; c++)
				if (*c == '\'')
					fputs("'\\''", stdout);
				else
					putchar(*c);
			putchar('\'');
		}
	}
	putchar('\n');
}

/* The pg_dump and pg_restore commands the run would start (the filters as given). */
static bool
dryrun_print_commands(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_source src;
	dumprestore_dump d;
	dumprestore_restore r;
	bool ok;

	dumprun_source(m, &src);
	printf("dump (%s):\n", m->o.dump_path);
	ok = dumprestore_dump_argv(&d, &m->o, &src, errbuf, errlen);
	if (ok)
		dryrun_print_argv(d.argv, m->src_ci.password);
	dumprestore_dump_free(&d);
	if (!ok)
		return false;
	if (m->o.copy_direct)
	{
		printf("copy (--copy-method direct):\n");
		dumprestore_restore_direct(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m), true,
		                           m->o.drop_target_first);
		dryrun_print_argv(r.argv[0], m->tgt_ci.password);
		printf("  COPY every table from the source to the target in the dump's snapshot, %d "
		       "job%s, tables larger than %zu MB in ranges\n",
		       migopts_copy_jobs(&m->o), migopts_copy_jobs(&m->o) == 1 ? "" : "s",
		       m->o.split_bytes / 1048576);
		printf("restore:\n");
		dumprestore_restore_direct(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m), false,
		                           false);
	}
	else
	{
		printf("restore:\n");
		dumprestore_restore_argv(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m));
	}
	for (int s = 0; s < r.npasses; s++)
		dryrun_print_argv(r.argv[s], m->tgt_ci.password);
	if (m->o.analyze && strcmp(m->o.scope, "schema-only") != 0)
		printf("  ANALYZE (on the target)\n");
	return true;
}

/* Validated already: print the plan, change nothing. */
int
dryrun_print(mig *m, const migplan *plan, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	int n;
	char buf[64], *lit;
	bool pub_exists = false;
	PGresult *res;
	char phases[512];

	if (!migplan_phases_line(plan, phases, sizeof(phases)))
	{
		snprintf(errbuf, errlen, "the plan's phases do not fit in %zu bytes", sizeof(phases));
		return EXIT_ERROR;
	}
	printf("Plan (--dry-run: nothing is changed):\n");
	printf("phases: %s\n", phases);
	if (plan->steps[MIGPLAN_VERIFY].action != MIGPLAN_LEFT_OUT)
		printf("then: Verify (%s)\n", m->o.verify == 2 ? "strict" : "warn");
	if (m->o.online)
	{
		lit = PQescapeLiteral(m->src, m->o.publication, strlen(m->o.publication));
		if (lit)
		{
			char sql[512];

			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
			PQfreemem(lit);
			pub_exists =
			    mig_value(m->src, sql, buf, sizeof(buf), errbuf, errlen) && strcmp(buf, "0") != 0;
		}
		printf("on the source: %s publication %s; create logical slot %s (pgoutput) exporting a "
		       "snapshot\n",
		       pub_exists              ? "use the existing"
		       : m->o.auto_publication ? "create"
		                               : "MISSING",
		       m->o.publication, m->o.slot);
		if (m->plan.nkeyless > 0)
			printf("on the source: create publication %s WITH (publish = 'insert, truncate') "
			       "for the %d table%s without a replica identity (watched for updates and "
			       "deletes)\n",
			       m->plan.keyless_publication, m->plan.nkeyless, m->plan.nkeyless == 1 ? "" : "s");
		for (int i = 0; i < m->plan.ntables; i++)
			if (m->plan.tables[i].set_full)
				printf("on the source: ALTER TABLE %s REPLICA IDENTITY FULL\n",
				       m->plan.tables[i].name);
		if (m->ddl)
			printf("on the source: install the DDL capture before the slot (schema " DDL_SCHEMA
			       ", function " DDL_FUNCTION ", event triggers " DDL_TRIGGER_END
			       ", " DDL_TRIGGER_DROP ", " DDL_TRIGGER_REWRITE
			       ", owned by slot %s); dropped with the slot\n",
			       m->o.slot);
		else
			printf("on the source: no DDL capture (--ddl stop%s%s): a schema change on the source "
			       "stops the apply\n",
			       m->ddl_why[0] ? ": " : "", m->ddl_why);
		printf("at cutover: drop slot %s%s%s; drop " PGDBM_SCHEMA " on the target\n",
		       m->o.keep_slot ? "(no: --keep-slot)" : m->o.slot,
		       pub_exists ? "" : ", drop publication ", pub_exists ? "" : m->o.publication);
	}
	if (!dryrun_print_commands(m, errbuf, errlen))
		return EXIT_ERROR;
	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return EXIT_ERROR;
	printf("tables (%d):\n", n);
	for (int i = 0; i < n; i++)
		printf("  %s\n", names[i]);
	if (m->o.online)
	{
		guard_counts p;

		if (!guard_plan(m->src, (const char *const *)names, n, m->guard_full, &p, errbuf, errlen))
		{
			scope_free(names, n);
			return EXIT_ERROR;
		}
		if (m->guard_full)
			printf("guard on the target (its role may not SET session_replication_role): while "
			       "streaming, disable %d trigger%s, drop %d foreign key%s, set %d identity "
			       "column%s to BY DEFAULT; at cutover put them back (foreign keys NOT VALID, "
			       "validated after the cutover)\n",
			       p.triggers, p.triggers == 1 ? "" : "s", p.foreign_keys,
			       p.foreign_keys == 1 ? "" : "s", p.identities, p.identities == 1 ? "" : "s");
		else
			printf("guard on the target: while streaming, set %d identity column%s to BY "
			       "DEFAULT and disable %d ENABLE ALWAYS/REPLICA trigger%s; put back at "
			       "cutover\n",
			       p.identities, p.identities == 1 ? "" : "s", p.triggers,
			       p.triggers == 1 ? "" : "s");
	}
	scope_free(names, n);
	res = PQexec(m->src, "SELECT format('%I.%I', schemaname, sequencename) FROM "
	                     "pg_catalog.pg_sequences ORDER BY 1");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		printf("sequences (%d)%s:\n", PQntuples(res),
		       m->o.online && m->o.sequence_sync ? ", set to the source's values at cutover" : "");
		for (int i = 0; i < PQntuples(res); i++)
			printf("  %s\n", PQgetvalue(res, i, 0));
	}
	PQclear(res);
	fflush(stdout);
	return EXIT_OK;
}
