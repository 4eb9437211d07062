/*
 * shadow_exchange.c — the exchange that both the swap and the rollback run
 * (see shadow_internal.h): in one transaction, under short lock waits and
 * bounded retries, the tables of one schema move out and those of another
 * move in, with what the catalog says must follow them.
 *
 * Never: leaves an exchange half done (one transaction, or nothing); waits
 * on a lock longer than the lock timeout the caller gives.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cli.h"
#include "cmd.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadow_internal.h"
#include "shadowsql.h"
#include "strbuf.h"

/* The number of writes the sync triggers could not carry into schema in (-1: unknown). */
long long
sh_sync_errors(PGconn *t, const char *in, char *first, size_t size)
{
	strbuf q;
	PGresult *r;
	long long n = -1;

	strbuf_init(&q);
	if (strbuf_append_cstr(&q, "SELECT count(*), min(tbl || ' (' || op || '): ' || message) "
	                           "FROM ") &&
	    shadowsql_ident(&q, in) && strbuf_append_cstr(&q, "." SHADOWSQL_SYNC_ERRORS))
	{
		r = PQexec(t, strbuf_data(&q));
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
		{
			n = atoll(PQgetvalue(r, 0, 0));
			snprintf(first, size, "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
	}
	strbuf_free(&q);
	return n;
}

/* Whether the preserved tables' shadows hold every write; says why not. */
static bool
sh_sync_clean(PGconn *t, const char *in)
{
	char first[512] = "";
	long long n = sh_sync_errors(t, in, first, sizeof(first));

	if (n == 0)
		return true;
	if (n < 0)
		sh_error("cannot read the sync triggers' errors", PQerrorMessage(t));
	else
		sh_say("error",
		       "%lld writes to preserved tables could not be carried into "
		       "the shadow (the first: %s): the shadow would lose them, so the swap is refused "
		       "and nothing was changed; drop this migration (shadow cleanup --before now) and "
		       "prepare again",
		       n, first);
	return false;
}

/* The catalog read of shadowsql_around_sql, prepared by sh_exchange (a generic plan, made once). */
static PGresult *
sh_around(PGconn *t, const char *arr, const char *schema, const char *in, const char *pres)
{
	const char *p[4] = {arr, schema, in, pres};
	PGresult *r;

	r = PQexecPrepared(t, "pgdbm_shadow_around", 4, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		sh_error("cannot read the catalog for the swap", PQerrorMessage(t));
		PQclear(r);
		return NULL;
	}
	return r;
}

/* One try of the exchange; 1 done, 0 a lock not had in time (retry), -1 failed. */
static int
sh_exchange_try(PGconn *t, const char *schema, const char *in, const char *out,
                const shadowsql_state *st, const char *const *tables, int ntables,
                bool set_sequences, bool drop_in_schema, int lock_ms, bool dry, int64_t *held_ms)
{
	strbuf q, arr, pres;
	PGresult *r = NULL;
	int rc = -1;
	bool in_tx = false; /* the transaction is open: ended by ROLLBACK at done */
	int64_t t0;

	strbuf_init(&q);
	strbuf_init(&arr);
	strbuf_init(&pres);
	{
		const char *pres_names[SHADOWSQL_MAX_TABLES];
		int npres = 0;

		for (int i = 0; i < ntables; i++)
			for (int j = 0; set_sequences && j < st->ntables; j++)
				if (strcmp(st->tables[j].name, tables[i]) == 0 && st->tables[j].preserved)
					pres_names[npres++] = tables[i];
		if (!shadowsql_array_literal(&arr, tables, ntables) ||
		    !shadowsql_array_literal(&pres, pres_names, npres))
			goto done;
	}
	if (!strbuf_appendf(&q,
	                    "BEGIN; SET LOCAL lock_timeout = '%dms'; SET LOCAL plan_cache_mode = "
	                    "force_generic_plan; SET LOCAL search_path = ",
	                    lock_ms) ||
	    !shadowsql_ident(&q, schema))
		goto done;
	if (!sh_exec(t, strbuf_data(&q), "cannot begin the swap"))
		goto done;
	in_tx = true;
	/*
	 * The catalog read once before the locks, its result thrown away: the
	 * plan and the server's catalog caches are warm when it runs again under
	 * the locks, where its answer counts. About half the locked time saved.
	 */
	r = sh_around(t, strbuf_data(&arr), schema, in, strbuf_data(&pres));
	if (r == NULL)
		goto done;
	PQclear(r);
	r = NULL;
	t0 = cli_now_ms();
	/* every table of both sides locked first, out-tables first, as the application meets them */
	strbuf_reset(&q);
	/*
	 * lock_timeout bounds each lock's wait; the statement's timeout bounds
	 * them all together, so the application never waits behind the swap's
	 * queue for more than about lock_ms, however many tables are busy.
	 */
	if (!strbuf_appendf(&q, "SET LOCAL statement_timeout = '%dms'; LOCK TABLE ", lock_ms))
		goto done;
	for (int i = 0; i < ntables; i++)
		if ((i && !strbuf_append_cstr(&q, ", ")) || !shadowsql_ident(&q, schema) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, tables[i]))
			goto done;
	for (int i = 0; i < ntables; i++)
		if (!strbuf_append_cstr(&q, ", ") || !shadowsql_ident(&q, in) ||
		    !strbuf_append_char(&q, '.') || !shadowsql_ident(&q, tables[i]))
			goto done;
	if (!strbuf_append_cstr(&q, " IN ACCESS EXCLUSIVE MODE; SET LOCAL statement_timeout = 0"))
		goto done;
	if (!dry)
	{
		r = PQexec(t, strbuf_data(&q));
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			/* lock_not_available, or query_canceled by the statement's timeout */
			rc = state && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0) ? 0 : -1;
			if (rc < 0)
				sh_error("the swap could not lock the tables", PQerrorMessage(t));
			PQclear(r);
			r = NULL;
			goto done;
		}
		PQclear(r);
		r = NULL;
	}
	/* a swap: every write to a preserved table must be in its shadow (none comes now) */
	if (set_sequences && !sh_sync_clean(t, in))
		goto done;
	r = sh_around(t, strbuf_data(&arr), schema, in, strbuf_data(&pres));
	if (r == NULL)
		goto done;
	strbuf_reset(&q);
	for (int i = 0; i < PQntuples(r); i++)
		if (atoi(PQgetvalue(r, i, 0)) == 1 &&
		    (!strbuf_append_cstr(&q, PQgetvalue(r, i, 1)) || !strbuf_append_char(&q, '\n')))
			goto done;
	if (!strbuf_appendf(&q, "CREATE SCHEMA IF NOT EXISTS \"%s\";\n", out))
		goto done;
	for (int i = 0; i < ntables; i++)
		if (!shadowsql_move_sql(&q, schema, tables[i], out))
			goto done;
	for (int i = 0; i < ntables; i++)
		if (!shadowsql_move_sql(&q, in, tables[i], schema))
			goto done;
	for (int i = 0; i < PQntuples(r); i++)
		if (atoi(PQgetvalue(r, i, 0)) >= 3 &&
		    (!strbuf_append_cstr(&q, PQgetvalue(r, i, 1)) || !strbuf_append_char(&q, '\n')))
			goto done;
	for (int i = 0; set_sequences && i < st->nseqs; i++)
	{
		if (!strbuf_append_cstr(&q, "SELECT setval(c, ") ||
		    !strbuf_appendf(&q, "%lld, %s) FROM to_regclass(", st->seqs[i].value,
		                    st->seqs[i].called ? "true" : "false"))
			goto done;
		{
			strbuf id;
			bool ok;

			strbuf_init(&id);
			ok = shadowsql_ident(&id, schema) && strbuf_append_char(&id, '.') &&
			     shadowsql_ident(&id, st->seqs[i].name) &&
			     strbuf_append_sql_literal(&q, strbuf_data(&id), strbuf_len(&id)) &&
			     strbuf_append_cstr(&q, ") c WHERE c IS NOT NULL;\n");
			strbuf_free(&id);
			if (!ok)
				goto done;
		}
	}
	if (dry)
	{
		sh_show(strbuf_data(&q));
		rc = 1;
		goto done;
	}
	/*
	 * The statements may lock more than the tables (a table of another schema
	 * whose foreign key is made again, a materialized view rebuilt): one of
	 * those busy past lock_timeout is a try to make again, like the tables.
	 */
	PQclear(r);
	r = PQexec(t, strbuf_data(&q));
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		rc = state && strcmp(state, "55P03") == 0 ? 0 : -1;
		if (rc < 0)
		{
			char msg[SH_ERR];

			sh_error("the swap failed, nothing was changed",
			         sh_server_message(t, msg, sizeof(msg)));
		}
		goto done;
	}
	in_tx = false; /* a COMMIT that fails ends the transaction too */
	if (!sh_exec(t, "COMMIT", "the swap's commit failed, nothing was changed"))
		goto done;
	*held_ms = cli_now_ms() - t0;
	rc = 1;
	/*
	 * The emptied schema goes after the commit, out of the locked time (the
	 * swap's own schema, created in its transaction, says it committed). The
	 * swap's shadow schema holds the sync functions still: CASCADE, nothing
	 * else can be in it; a rollback's backup schema must be empty.
	 */
	strbuf_reset(&q);
	if (drop_in_schema &&
	    strbuf_appendf(&q, "DROP SCHEMA IF EXISTS \"%s\"%s", in, set_sequences ? " CASCADE" : ""))
		(void)sh_exec(t, strbuf_data(&q), NULL);
done:
	if (in_tx)
		(void)sh_exec(t, "ROLLBACK", NULL); /* nothing changed: a failed try, or a dry run */
	PQclear(r);
	strbuf_free(&q);
	strbuf_free(&arr);
	strbuf_free(&pres);
	return rc;
}

/* The exchange with its retries: short lock waits, growing pauses between, a bounded count. */
bool
sh_exchange(PGconn *t, const shadow_opts *o, const char *schema, const char *in, const char *out,
            const shadowsql_state *st, const char *const *tables, int ntables, bool set_sequences,
            bool drop_in_schema, int64_t *held_ms, int *tries)
{
	int pause_ms = 100;
	PGresult *prep;
	strbuf sql;

	/* what follows the tables (shadowsql_around_sql), prepared once: a generic plan */
	strbuf_init(&sql);
	if (!shadowsql_around_sql(&sql))
	{
		strbuf_free(&sql);
		sh_error("out of memory", NULL);
		return false;
	}
	prep = PQprepare(t, "pgdbm_shadow_around", strbuf_data(&sql), 4, NULL);
	strbuf_free(&sql);
	if (PQresultStatus(prep) != PGRES_COMMAND_OK)
	{
		sh_error("cannot prepare the swap's catalog read", PQerrorMessage(t));
		PQclear(prep);
		return false;
	}
	PQclear(prep);
	for (*tries = 1; *tries <= o->lock_tries; (*tries)++)
	{
		int r = sh_exchange_try(t, schema, in, out, st, tables, ntables, set_sequences,
		                        drop_in_schema, o->lock_timeout_ms, o->dry_run, held_ms);

		if (r != 0)
			return r > 0;
		sh_say("warning",
		       "try %d of %d: a table was busy for more than %d ms; "
		       "trying again in %d ms",
		       *tries, o->lock_tries, o->lock_timeout_ms, pause_ms);
		usleep((useconds_t)pause_ms * 1000);
		pause_ms = pause_ms * 2 > 5000 ? 5000 : pause_ms * 2;
	}
	sh_say("error",
	       "gave up after %d tries: the tables were always busy (long "
	       "transactions on them?); nothing was changed, the state is as before: run the same "
	       "command again later, or raise --lock-timeout/--lock-retries",
	       o->lock_tries);
	return false;
}

/* After an exchange: the foreign keys added NOT VALID are validated (warnings only). */
void
sh_validate_fks(PGconn *t, const char *schema)
{
	const char *p[1] = {schema};
	PGresult *r = sh_query(t,
	                       "SELECT format('ALTER TABLE %s VALIDATE CONSTRAINT %I', "
	                       "conrelid::regclass, conname) FROM pg_constraint con WHERE NOT "
	                       "con.convalidated AND con.contype = 'f' AND EXISTS (SELECT 1 FROM "
	                       "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
	                       "c.oid IN (con.conrelid, con.confrelid) AND n.nspname = $1)",
	                       1, p, "cannot list the foreign keys to validate");

	for (int i = 0; r && i < PQntuples(r); i++)
		if (!sh_exec(t, PQgetvalue(r, i, 0), NULL))
		{
			char msg[SH_ERR];

			sh_say("warning", "%s failed (it stays NOT VALID, new rows are checked): %s",
			       PQgetvalue(r, i, 0), sh_server_message(t, msg, sizeof(msg)));
		}
	PQclear(r);
}

/* The manifest of backup schema bk: rows and sums of every table of st. */
