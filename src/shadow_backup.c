/*
 * shadow_backup.c — the backups a swap leaves (see shadow.h): roll back to
 * one, list them, the status of every migration, drop old ones, verify one
 * against its manifest.
 *
 * Never: drops a table with CASCADE (an application object that still uses a
 * backup table stops the drop); changes a live table outside the exchange.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cli.h"
#include "cmd.h"
#include "events.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadow_internal.h"
#include "shadowstream.h"
#include "shadowsql.h"
#include "strbuf.h"

/* Row count and content sum of schema.table: md5 over the sorted md5s of the rows' text. */
bool
sh_table_sum(PGconn *t, const char *schema, const char *table, long long *rows, char sum[33])
{
	strbuf q;
	PGresult *r;
	bool ok;

	strbuf_init(&q);
	ok = strbuf_append_cstr(&q, "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), "
	                            "'') FROM (SELECT md5(x::text) AS h FROM ") &&
	     shadowsql_ident(&q, schema) && strbuf_append_char(&q, '.') && shadowsql_ident(&q, table) &&
	     strbuf_append_cstr(&q, " x) s");
	r = ok ? sh_query(t, strbuf_data(&q), 0, NULL, "cannot sum a backup table") : NULL;
	ok = r != NULL;
	if (ok)
	{
		*rows = atoll(PQgetvalue(r, 0, 0));
		snprintf(sum, 33, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	strbuf_free(&q);
	return ok;
}

bool
sh_manifest(PGconn *t, const char *bk, shadowsql_state *st)
{
	for (int i = 0; i < st->ntables; i++)
		if (!sh_table_sum(t, bk, st->tables[i].name, &st->tables[i].rows, st->tables[i].sum))
			return false;
	return true;
}

int
shadow_rollback(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st)), *now = calloc(1, sizeof(*now));
	const char *tables[SHADOWSQL_MAX_TABLES];
	char bk[SHADOWSQL_NAME + 32], nbk[SHADOWSQL_NAME + 32];
	PGconn *t = NULL;
	int rc = EXIT_ERROR, n = 0, tries = 0;
	int64_t held = 0;

	sh_events_init(o, "ShadowRollback");
	if (st == NULL || now == NULL)
		goto error;
	if (!sh_state_pick(o, "swapped", "no backup to roll back to in the state directory", st))
		goto error;
	if (strcmp(st->phase, "swapped") != 0)
	{
		sh_say("error",
		       "migration %s is %s: it has no backup to roll "
		       "back to",
		       st->ts, st->phase);
		goto error;
	}
	for (int i = 0; i < st->ntables; i++)
		if (!in_list(o->keep, st->tables[i].name))
			tables[n++] = st->tables[i].name;
	for (int i = 0; o->keep[i]; i++)
		if (shadowsql_state_table(st, o->keep[i]) == NULL)
		{
			sh_say("error",
			       "--keep-tables names %s, not a table of "
			       "migration %s",
			       o->keep[i], st->ts);
			goto error;
		}
	shadowsql_backup_schema(st->ts, bk, sizeof(bk));
	/* the tables rolled back over are kept as a new backup */
	sh_new_ts(o->state_dir, st->ts, now->ts);
	if (strcmp(now->ts, st->ts) <= 0)
	{
		sh_error("the clock says it is not later than the backup's time; is it right?", NULL);
		goto error;
	}
	shadowsql_backup_schema(now->ts, nbk, sizeof(nbk));
	snprintf(now->schema, sizeof(now->schema), "%s", st->schema);
	snprintf(now->origin, sizeof(now->origin), "rollback");
	snprintf(now->phase, sizeof(now->phase), "swapped");
	for (int i = 0; i < n; i++)
	{
		shadowsql_table *tb = &now->tables[now->ntables++];

		snprintf(tb->name, sizeof(tb->name), "%s", tables[i]);
		tb->rows = -1;
	}
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	if (o->dry_run)
		sh_plan("Plan (dry run, nothing changed): roll back to migration %s: %d tables from %s, "
		        "the live ones to %s:",
		        st->ts, n, bk, nbk);
	if (!sh_exchange(t, o, st->schema, bk, nbk, st, tables, n, false, o->keep[0] == NULL, &held,
	                 &tries))
		goto error;
	if (o->dry_run)
	{
		rc = EXIT_OK;
		goto error;
	}
	snprintf(st->phase, sizeof(st->phase), o->keep[0] ? "swapped" : "rolled-back");
	if (o->keep[0])
	{
		/* only the kept tables' backups stay in the old schema */
		int k = 0;

		for (int i = 0; i < st->ntables; i++)
			if (in_list(o->keep, st->tables[i].name))
				st->tables[k++] = st->tables[i];
		st->ntables = k;
	}
	if (!sh_state_save(o->state_dir, st))
		goto error;
	sh_validate_fks(t, st->schema);
	if (!sh_manifest(t, nbk, now) || !sh_state_save(o->state_dir, now))
		goto error;
	{
		event e;

		event_begin(&e, "ShadowRolledBack");
		event_str(&e, "timestamp", st->ts);
		event_int(&e, "tables", n);
		event_int(&e, "locked_ms", held);
		event_int(&e, "tries", tries);
		event_str(&e, "new_backup", now->ts);
		sh_event_end(&e,
		             "rolled back to migration %s: %d tables; the tables were locked for %lld ms "
		             "(try %d); the replaced tables are backup %s",
		             st->ts, n, (long long)held, tries, now->ts);
	}
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	free(now);
	return rc;
}

/* The total size of schema's tables on the target (-1 if unknown). */
static long long
sh_schema_size(PGconn *t, const char *schema)
{
	const char *p[1] = {schema};
	PGresult *r = t ? sh_query(t,
	                           "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM "
	                           "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
	                           "n.nspname = $1 AND c.relkind = 'r'",
	                           1, p, "cannot size a backup")
	                : NULL;
	long long v = r ? atoll(PQgetvalue(r, 0, 0)) : -1;

	PQclear(r);
	return v;
}

/* list (backups) or status (every migration not cleaned up). */
static int
sh_report(const shadow_opts *o, bool backups_only)
{
	static char ts[1024][SHADOWSQL_TS];
	shadowsql_state *st = calloc(1, sizeof(*st));
	PGconn *t = o->dest ? sh_connect(o->dest, PGSESSION_TARGET, "target") : NULL;
	PGconn *s = NULL; /* the source, for an online migration's lag (status --source) */
	int n = sh_state_all(o->state_dir, ts, 1024), shown = 0;

	if (st == NULL || (o->dest && t == NULL))
	{
		free(st);
		return EXIT_ERROR;
	}
	if (o->json)
		printf("[");
	for (int i = n - 1; i >= 0; i--)
	{
		char sch[SHADOWSQL_NAME + 32];
		long long size, sync_errors, lag;
		bool streaming;
		int preserved = 0;

		if (!sh_state_load(o->state_dir, ts[i], st) || strcmp(st->phase, "cleaned") == 0 ||
		    (o->timestamp && strcmp(o->timestamp, st->ts) != 0))
			continue;
		if (backups_only && strcmp(st->phase, "swapped") != 0)
			continue;
		for (int k = 0; k < st->ntables; k++)
			preserved += st->tables[k].preserved;
		if (strcmp(st->phase, "swapped") == 0)
			shadowsql_backup_schema(st->ts, sch, sizeof(sch));
		else
			shadowsql_shadow_schema(st->ts, sch, sizeof(sch));
		size = sh_schema_size(t, sch);
		{
			char first[256];

			sync_errors =
			    t && (strcmp(st->phase, "prepared") == 0 || strcmp(st->phase, "swapping") == 0)
			        ? sh_sync_errors(t, sch, first, sizeof(first))
			        : -1;
			if (sync_errors < 0)
				PQclear(PQexec(t, "SELECT 1")); /* the session goes on */
		}
		/* an online migration not swapped yet: how far its shadow is behind the source */
		lag = -1;
		streaming = false;
		if (!backups_only && st->slot[0] && strcmp(st->phase, "prepared") == 0 && o->source)
		{
			char err[1024];

			if (s == NULL)
				s = sh_connect(o->source, PGSESSION_SOURCE, "source");
			if (s == NULL || !shstream_lag(s, st->slot, &lag, err, sizeof(err)) ||
			    !shstream_wait_free(o->source, st->slot, 0, &streaming, err, sizeof(err)))
			{
				sh_say("warning", "migration %s: cannot read its slot's lag: %s", st->ts,
				       s ? err : "no source session");
				lag = -1;
			}
		}
		if (o->json)
		{
			printf("%s{\"timestamp\": \"%s\", \"phase\": \"%s\", \"origin\": \"%s\", "
			       "\"schema\": \"%s\", \"tables\": %d, \"preserved_tables\": %d, \"bytes\": "
			       "%lld, \"sync_errors\": %lld, \"online\": %s, \"streaming\": %s, "
			       "\"lag_bytes\": %lld}",
			       shown ? ", " : "", st->ts, st->phase, st->origin, sch, st->ntables, preserved,
			       size, sync_errors, st->slot[0] ? "true" : "false", streaming ? "true" : "false",
			       lag);
		}
		else
		{
			if (shown == 0)
				printf("%-15s %-12s %-9s %6s %9s %12s  %s\n", "TIMESTAMP", "PHASE", "ORIGIN",
				       "TABLES", "PRESERVED", "BYTES", "SCHEMA");
			printf("%-15s %-12s %-9s %6d %9d %12lld  %s", st->ts, st->phase, st->origin,
			       st->ntables, preserved, size, sch);
			if (sync_errors > 0)
				printf("  (%lld writes not carried into the shadow: prepare again)", sync_errors);
			if (lag >= 0)
				printf("  (online: %s, %lld bytes of the source's WAL not applied yet)",
				       streaming ? "streaming" : "not streaming: prepare --online again, or swap",
				       lag);
			else if (st->slot[0] && strcmp(st->phase, "prepared") == 0 && o->source == NULL)
				printf("  (online: give --source URI for its lag)");
			printf("\n");
		}
		shown++;
	}
	if (o->json)
		printf("]\n");
	else if (shown == 0)
		printf(backups_only ? "no backups\n" : "no migrations\n");
	if (t)
		PQfinish(t);
	if (s)
		PQfinish(s);
	free(st);
	return EXIT_OK;
}

int
shadow_list(const shadow_opts *o)
{
	return sh_report(o, true);
}

int
shadow_status(const shadow_opts *o)
{
	return sh_report(o, false);
}

/* cleanup: the backups (and unswapped shadows) older than --before dropped. */
int
shadow_cleanup(const shadow_opts *o)
{
	static char ts[1024][SHADOWSQL_TS];
	shadowsql_state *st = calloc(1, sizeof(*st));
	char key[SHADOWSQL_TS];
	PGconn *t = NULL;
	int n, dropped = 0, rc = EXIT_ERROR;

	sh_events_init(o, "ShadowCleanup");
	if (st == NULL)
		return EXIT_ERROR;
	if (!sh_before_key(o->before, key))
	{
		sh_say("error",
		       "--before \"%s\" is not a date (2026-12-02, "
		       "2026-12-02T10:30 or \"now\")",
		       o->before);
		free(st);
		return EXIT_USAGE;
	}
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	n = sh_state_all(o->state_dir, ts, 1024);
	for (int i = 0; i < n; i++)
	{
		char sch[2][SHADOWSQL_NAME + 32];
		strbuf q;
		bool ok;

		if (strcmp(ts[i], key) >= 0 || !sh_state_load(o->state_dir, ts[i], st) ||
		    strcmp(st->phase, "cleaned") == 0 || strcmp(st->phase, "swapping") == 0)
			continue;
		shadowsql_backup_schema(st->ts, sch[0], sizeof(sch[0]));
		shadowsql_shadow_schema(st->ts, sch[1], sizeof(sch[1]));
		strbuf_init(&q);
		/* tables by name, never CASCADE: an object of the application's that still uses one
		 * stops the drop */
		/* an unswapped shadow's sync triggers go with it: never a long wait on a live table */
		ok = strbuf_append_cstr(&q, "BEGIN; SET LOCAL lock_timeout = '5s';\n");
		for (int s = 0; ok && s < 2; s++)
		{
			/* one statement: the foreign keys between them go with them */
			ok = ok && strbuf_append_cstr(&q, "DROP TABLE IF EXISTS ");
			for (int k = 0; ok && k < st->ntables; k++)
				ok = (k == 0 || strbuf_append_cstr(&q, ", ")) && shadowsql_ident(&q, sch[s]) &&
				     strbuf_append_char(&q, '.') && shadowsql_ident(&q, st->tables[k].name);
			ok = ok && strbuf_append_cstr(&q, ";\n");
			/* the shadow schema holds our sync functions too: they go with their triggers */
			ok = ok && strbuf_appendf(&q, "DROP SCHEMA IF EXISTS \"%s\"%s;\n", sch[s],
			                          s == 1 ? " CASCADE" : "");
		}
		ok = ok && strbuf_append_cstr(&q, "COMMIT;\n");
		if (ok && o->dry_run)
			sh_show(strbuf_data(&q));
		else if (!ok || !sh_exec(t, strbuf_data(&q), "cannot drop a backup"))
		{
			sh_exec(t, "ROLLBACK", NULL);
			strbuf_free(&q);
			goto error;
		}
		strbuf_free(&q);
		if (!o->dry_run)
		{
			snprintf(st->phase, sizeof(st->phase), "cleaned");
			if (!sh_state_save(o->state_dir, st))
				goto error;
			sh_say("info", "dropped migration %s's tables", st->ts);
		}
		dropped++;
	}
	{
		event e;

		event_begin(&e, "ShadowCleanedUp");
		event_int(&e, "migrations", dropped);
		event_str(&e, "dry_run", o->dry_run ? "true" : "false");
		if (dropped == 0)
			sh_event_end(&e, "nothing older than %s", o->before);
		else
			sh_event_end(&e, "%s %d migration%s older than %s",
			             o->dry_run ? "would drop" : "dropped", dropped, dropped == 1 ? "" : "s",
			             o->before);
	}
	rc = EXIT_OK;
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}

/* verify: a backup's tables against the manifest made when it was made. */
int
shadow_verify(const shadow_opts *o)
{
	shadowsql_state *st = calloc(1, sizeof(*st));
	char bk[SHADOWSQL_NAME + 32];
	PGconn *t = NULL;
	int rc = EXIT_ERROR, bad = 0;

	sh_events_init(o, "ShadowVerify");
	if (st == NULL)
		return EXIT_ERROR;
	if (!sh_state_load(o->state_dir, o->timestamp, st))
		goto error;
	if (strcmp(st->phase, "swapped") != 0)
	{
		sh_say("error", "migration %s is %s: it has no backup to verify", st->ts, st->phase);
		goto error;
	}
	shadowsql_backup_schema(st->ts, bk, sizeof(bk));
	if ((t = sh_connect(o->dest, PGSESSION_TARGET, "target")) == NULL)
		goto error;
	for (int i = 0; i < st->ntables; i++)
	{
		long long rows;
		char sum[33];
		const shadowsql_table *tb = &st->tables[i];

		if (!sh_table_sum(t, bk, tb->name, &rows, sum))
		{
			bad++;
			continue;
		}
		if (rows != tb->rows || strcmp(sum, tb->sum) != 0)
		{
			sh_say("error",
			       "backup table %s.%s differs from its manifest: %lld "
			       "rows (manifest %lld), sum %s (manifest %s)",
			       bk, tb->name, rows, tb->rows, sum, tb->sum);
			bad++;
		}
		if (o->json)
		{
			event e;

			event_begin(&e, "ShadowVerifyTable");
			if (rows != tb->rows || strcmp(sum, tb->sum) != 0)
				event_level(&e, "error");
			event_str(&e, "table", tb->name);
			event_int(&e, "rows", rows);
			event_int(&e, "manifest_rows", tb->rows);
			event_str(&e, "ok", rows == tb->rows && strcmp(sum, tb->sum) == 0 ? "true" : "false");
			sh_event_end(&e, "backup table %s.%s: %lld rows", bk, tb->name, rows);
		}
	}
	if (bad)
	{
		sh_say("error",
		       "backup %s: %d of %d tables differ from the "
		       "manifest",
		       st->ts, bad, st->ntables);
		rc = EXIT_DIFFERS;
	}
	else
	{
		sh_say("info", "backup %s: %d tables match the manifest", st->ts, st->ntables);
		rc = EXIT_OK;
	}
error:
	if (t)
		PQfinish(t);
	free(st);
	return rc;
}
