/*
 * check_shadow_objects.c — what an operator expects around the tables after
 * a shadow swap (issue 17): the objects the application relies on follow the
 * new tables, and what is not ours is left alone. The target is reached as
 * the NOSUPERUSER role "app" that owns its database; the application reads
 * and writes as "webuser", a role that owns nothing.
 *
 * The stories:
 *  - a swap carries the materialized view (rebuilt on the new rows, its
 *    index and grant with it), row-level security (ENABLE, FORCE and the
 *    policies), column-level grants, foreign keys that cross schemas both
 *    ways, the target's own cascading foreign keys and its audit trigger;
 *    an extension's objects in the same schema (hstore, and a table that
 *    belongs to it, as PostGIS's spatial_ref_sys does) are left alone and
 *    keep working; a rollback brings the same back around the old rows;
 *    with --json, start and rollback report their phases as events, the
 *    swap's with how long it locked the tables;
 *  - dry runs of prepare, swap, rollback and cleanup change nothing in the
 *    catalog, and neither does a swap that cannot get its locks: neither
 *    those of the swapped tables (its --json events say why, at level
 *    error) nor that of another schema's table whose foreign key it makes
 *    again (that one used to fail the swap at once instead of trying again).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "shadowstory.h"
#include "story.h"

static story_servers sv;

/*
 * The application's schema, the same on both sides; rows differ (tag). crm
 * is a schema the swap does not touch: its notes point at public.accounts,
 * public.accounts points at its regions. sessions and audit_log are the
 * target's own (preserved).
 */
static void
build(PGconn *c, const char *tag, int accounts)
{
	char sql[4096];

	pgt_exec(
	    c, "CREATE EXTENSION hstore;"
	       /* a table that belongs to the extension, as spatial_ref_sys to PostGIS */
	       "CREATE TABLE spatial_ref_sys (srid int PRIMARY KEY, def hstore);"
	       "ALTER EXTENSION hstore ADD TABLE spatial_ref_sys;"
	       "CREATE SCHEMA crm;"
	       "CREATE TABLE crm.regions (id int PRIMARY KEY, name text);"
	       "INSERT INTO crm.regions SELECT g, 'region' || g FROM generate_series(1, 5) g;"
	       "CREATE TABLE accounts (id serial PRIMARY KEY, tenant text NOT NULL, name text, "
	       "balance numeric, attrs hstore, region int REFERENCES crm.regions);"
	       "CREATE TABLE sessions (id serial PRIMARY KEY, account int NOT NULL "
	       "REFERENCES accounts ON DELETE CASCADE, token text);"
	       "CREATE TABLE audit_log (id bigserial PRIMARY KEY, account int, op text);"
	       "CREATE TABLE crm.notes (id serial PRIMARY KEY, account int REFERENCES "
	       "public.accounts ON DELETE CASCADE, note text);"
	       "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
	       "SET search_path = public AS $$BEGIN INSERT INTO audit_log (account, op) "
	       "VALUES (coalesce(NEW.id, OLD.id), TG_OP); RETURN NULL; END$$;"
	       "CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts "
	       "FOR EACH ROW EXECUTE FUNCTION audit();"
	       "CREATE MATERIALIZED VIEW account_summary AS SELECT tenant, count(*) AS n, "
	       "sum(balance) AS balance FROM accounts GROUP BY tenant;"
	       "CREATE UNIQUE INDEX account_summary_tenant ON account_summary (tenant);"
	       "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;"
	       "ALTER TABLE accounts FORCE ROW LEVEL SECURITY;"
	       "CREATE POLICY owner_all ON accounts TO app USING (true) WITH CHECK (true);"
	       "CREATE POLICY web_reads ON accounts FOR SELECT TO webuser USING (tenant = 'web');"
	       "CREATE POLICY web_writes ON accounts FOR INSERT TO webuser "
	       "WITH CHECK (tenant = 'web');"
	       "GRANT SELECT (id, tenant, name), INSERT (tenant, name, region) ON accounts TO webuser;"
	       "GRANT USAGE ON SEQUENCE accounts_id_seq TO webuser;"
	       "GRANT SELECT ON account_summary TO webuser;"
	       "GRANT USAGE ON SCHEMA crm TO webuser");
	snprintf(sql, sizeof(sql),
	         "INSERT INTO spatial_ref_sys SELECT g, ('name=>%s' || g)::hstore FROM "
	         "generate_series(1, 3) g;"
	         "INSERT INTO accounts (tenant, name, balance, attrs, region) SELECT CASE WHEN g %% 3 "
	         "= 0 THEN 'other' ELSE 'web' END, '%s' || g, g, ('k=>' || g)::hstore, 1 + g %% 5 "
	         "FROM generate_series(1, %d) g;"
	         "INSERT INTO sessions (account, token) SELECT g, '%s' || g FROM "
	         "generate_series(1, 10) g;"
	         "INSERT INTO crm.notes (account, note) SELECT g, '%s' || g FROM "
	         "generate_series(1, 10) g;"
	         "REFRESH MATERIALIZED VIEW account_summary",
	         tag, tag, accounts, tag, tag);
	pgt_exec(c, sql);
}

/* Run it and require exit code want; out and err freed. */
static void
shadow_ok(const char *verb, const char *const more[], int want)
{
	char *out, *err;
	int rc = shst_shadow(verb, more, &out, &err);

	ck_assert_msg(rc == want, "shadow %s exited %d (want %d): %s %s", verb, rc, want,
	              story_tail(out), story_tail(err));
	free(out);
	free(err);
}

/* Every line of out is one event in the migration's JSON shape; the count of those of stage. */
static int
events_of(const char *out, const char *stage)
{
	char want[128];
	int n = 0;

	snprintf(want, sizeof(want), "\"stage\":\"%s\"", stage);
	for (const char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
	{
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		if (len == 0)
			continue;
		ck_assert_msg(strncmp(l, "{\"ts\":\"", 7) == 0 && l[len - 1] == '}', "not an event: %.*s",
		              (int)len, l);
		if (memmem(l, len, want, strlen(want)) != NULL)
			n++;
	}
	return n;
}

/*
 * The target's catalog as far as the swap could change it: every relation of
 * the application's schemas and ours with its kind, RLS flags and grants,
 * columns' grants, constraints, triggers, policies and schemas, as one md5.
 */
static void
catalog(PGconn *t, char buf[64])
{
	pgt_value(t,
	          "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ("
	          "SELECT format('%s.%s:%s %s %s %s %s %s', n.nspname, c.relname, c.oid, c.relkind, "
	          "c.relrowsecurity, c.relforcerowsecurity, c.relacl, c.relispopulated) AS x FROM "
	          "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN "
	          "('pg_catalog', 'information_schema', 'pg_toast') "
	          "UNION ALL SELECT format('%s.%s %s', attrelid::regclass, attname, attacl) FROM "
	          "pg_attribute WHERE attacl IS NOT NULL "
	          "UNION ALL SELECT format('%s %s %s %s %s', conname, conrelid::regclass, contype, "
	          "confrelid, convalidated) FROM pg_constraint "
	          "UNION ALL SELECT format('%s %s %s', tgname, tgrelid::regclass, tgenabled) FROM "
	          "pg_trigger "
	          "UNION ALL SELECT format('%s %s', polname, polrelid::regclass) FROM pg_policy "
	          "UNION ALL SELECT nspname::text FROM pg_namespace) s",
	          buf, 64);
}

/* What the application sees of the target: its checks as app and as webuser. */
static void
the_application_works(PGconn *t, PGconn *web, PGconn *ref, const char *tag)
{
	char v[512], w[512], sql[512];
	PGresult *r;

	/* RLS and column grants: webuser sees the web tenant's rows, never a balance */
	pgt_value(ref, "SELECT count(*) FROM accounts WHERE tenant = 'web'", w, sizeof(w));
	ck_assert_str_eq(pgt_value(web, "SELECT count(*) FROM accounts", v, sizeof(v)), w);
	snprintf(sql, sizeof(sql), "SELECT min(name) FROM accounts WHERE name LIKE '%s%%'", tag);
	ck_assert_str_ne(pgt_value(web, sql, v, sizeof(v)), "");
	r = PQexec(web, "SELECT balance FROM accounts");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strstr(PQerrorMessage(web), "permission denied"),
	              "webuser reads a balance: %s", PQerrorMessage(web));
	PQclear(r);
	r = PQexec(web, "INSERT INTO accounts (tenant, name) VALUES ('other', 'not mine')");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strstr(PQerrorMessage(web), "row-level security"),
	              "webuser writes another tenant's row: %s", PQerrorMessage(web));
	PQclear(r);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT relrowsecurity::text || relforcerowsecurity::text || "
	                           "(SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) FROM "
	                           "pg_class c WHERE oid = 'public.accounts'::regclass",
	                           v, sizeof(v)),
	                 "truetrue3");

	/* the audit trigger fires for the application's write, into the target's own table */
	pgt_value(t, "SELECT count(*) FROM audit_log", w, sizeof(w));
	pgt_exec(web, "INSERT INTO accounts (tenant, name, region) VALUES ('web', 'by web', 2)");
	pgt_value(t, "SELECT count(*) FROM audit_log", v, sizeof(v));
	ck_assert_int_eq(atoi(v), atoi(w) + 1);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT op FROM audit_log WHERE account = (SELECT id FROM accounts "
	                           "WHERE name = 'by web') ORDER BY id DESC LIMIT 1",
	                           v, sizeof(v)),
	                 "INSERT");

	/* the foreign key out of the schema holds on the new table */
	r = PQexec(t, "INSERT INTO accounts (tenant, region) VALUES ('web', 99)");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strstr(PQerrorMessage(t), "accounts_region_fkey"),
	              "a region that is not there: %s", PQerrorMessage(t));
	PQclear(r);
	/* the cascades into the preserved table and into the other schema's table */
	pgt_exec(t, "DELETE FROM accounts WHERE id = 4");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT (SELECT count(*) FROM sessions WHERE account = 4) + (SELECT "
	                           "count(*) FROM crm.notes WHERE account = 4)",
	                           v, sizeof(v)),
	                 "0");
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM sessions WHERE account <> 4", v, sizeof(v)),
	                 "9");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(confrelid::regclass::text || '/' || "
	                           "conrelid::regclass::text || '/' || convalidated, ',' ORDER BY "
	                           "conname) FROM pg_constraint WHERE contype = 'f' AND 'public."
	                           "accounts'::regclass IN (conrelid, confrelid)",
	                           v, sizeof(v)),
	                 "crm.regions/accounts/true,accounts/crm.notes/true,accounts/sessions/true");

	/* the materialized view: its rows are the new table's, its index and grant are there */
	pgt_exec(t, "REFRESH MATERIALIZED VIEW CONCURRENTLY account_summary");
	ck_assert_str_eq(pgt_value(web, "SELECT count(*) FROM account_summary", v, sizeof(v)), "2");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',') FROM "
	                           "pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class "
	                           "= 'account_summary'::regclass AND d.refclassid = "
	                           "'pg_class'::regclass AND d.refobjid <> r.ev_class",
	                           v, sizeof(v)),
	                 "accounts");

	/* the extension's objects are where they were and work */
	snprintf(sql, sizeof(sql), "SELECT def -> 'name' FROM spatial_ref_sys WHERE srid = 2");
	snprintf(w, sizeof(w), "tgt2");
	ck_assert_str_eq(pgt_value(t, sql, v, sizeof(v)), w);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_depend WHERE objid = "
	                           "'public.spatial_ref_sys'::regclass AND deptype = 'e'",
	                           v, sizeof(v)),
	                 "1");
	ck_assert_str_eq(pgt_value(t, "SELECT attrs -> 'k' FROM accounts WHERE id = 5", v, sizeof(v)),
	                 "5");
}

START_TEST(a_swap_carries_what_the_application_relies_on_and_leaves_extensions_alone)
{
	char src[256], tgt[256], dir[512], v[256], before_mv[512], rows[512];
	char *out, *err;
	PGconn *s, *t, *web;
	int rc;

	story_app_databases(&sv, "shadow_objects");
	story_connstrs(&sv, "shadow_objects", src, tgt, sizeof(src));
	for (int side = 0; side < 2; side++)
	{
		PGconn *admin = side ? sv.tgt_admin : sv.src_admin;

		pgt_exec(admin, "DO $$BEGIN CREATE ROLE webuser LOGIN; EXCEPTION WHEN duplicate_object "
		                "THEN NULL; END$$");
	}
	s = pgt_connect_as(&sv.src, "shadow_objects", "app");
	t = pgt_connect_as(&sv.tgt, "shadow_objects", "app");
	build(s, "src", 40);
	build(t, "tgt", 20);
	web = pgt_connect_as(&sv.tgt, "shadow_objects", "webuser");
	pgt_value(t, "SELECT string_agg(t::text, ',' ORDER BY tenant) FROM account_summary t",
	          before_mv, sizeof(before_mv));
	pgt_scratch("shadow-objects-state", dir, sizeof(dir));

	/* with --json, each phase is an event on stdout; the swap's says how long it locked */
	rc =
	    shst_shadow("start",
	                (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                      "sessions,audit_log", "--state-dir", dir, "--json", NULL},
	                &out, &err);
	ck_assert_msg(rc == 0, "start exited %d: %s", rc, story_tail(err));
	ck_assert_int_eq(events_of(out, "ShadowPrepared"), 1);
	ck_assert_int_eq(events_of(out, "ShadowSwapped"), 1);
	ck_assert_msg(strstr(out, "\"locked_ms\":") && strstr(out, "\"backup_schema\":"),
	              "no pause in the events: %s", out);
	free(out);
	free(err);
	pgt_assert_same(s, t, "accounts");
	pgt_assert_same(s, t, "account_summary");
	the_application_works(t, web, s, "src");
	/* the extension's table kept the target's rows: the swap did not take it */
	ck_assert_str_eq(
	    pgt_value(t, "SELECT def -> 'name' FROM spatial_ref_sys WHERE srid = 1", v, sizeof(v)),
	    "tgt1");

	/* the rollback: the old rows with the same objects around them */
	rc = shst_shadow(
	    "rollback",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--latest", "--json", NULL}, &out,
	    &err);
	ck_assert_msg(rc == 0 && events_of(out, "ShadowRolledBack") == 1, "rollback --json: %d %s %s",
	              rc, out, story_tail(err));
	free(out);
	free(err);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(t::text, ',' ORDER BY tenant) FROM "
	                           "account_summary t",
	                           rows, sizeof(rows)),
	                 before_mv);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM accounts", v, sizeof(v)), "20");
	the_application_works(t, web, t, "tgt");
	PQfinish(web);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(dry_runs_and_a_swap_that_cannot_lock_change_nothing)
{
	char src[256], tgt[256], dir[512], before[64], after[64];
	PGconn *s, *t, *blocker;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "shadow_dry");
	story_connstrs(&sv, "shadow_dry", src, tgt, sizeof(src));
	pgt_exec(sv.tgt_admin, "DO $$BEGIN CREATE ROLE webuser LOGIN; EXCEPTION WHEN "
	                       "duplicate_object THEN NULL; END$$");
	pgt_exec(sv.src_admin, "DO $$BEGIN CREATE ROLE webuser LOGIN; EXCEPTION WHEN "
	                       "duplicate_object THEN NULL; END$$");
	s = pgt_connect_as(&sv.src, "shadow_dry", "app");
	t = pgt_connect_as(&sv.tgt, "shadow_dry", "app");
	build(s, "src", 40);
	build(t, "tgt", 20);
	pgt_scratch("shadow-dry-state", dir, sizeof(dir));
	/* prepare --dry-run --json: its plan as events, nothing else on stdout, nothing made */
	catalog(t, before);
	rc = shst_shadow("prepare",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "sessions,audit_log", "--state-dir", dir, "--dry-run",
	                                       "--json", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0 && events_of(out, "ShadowPlan") == 5, "prepare --dry-run --json: %d %s",
	              rc, out);
	free(out);
	free(err);
	catalog(t, after);
	ck_assert_str_eq(after, before);
	shadow_ok("prepare",
	          (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                "sessions,audit_log", "--state-dir", dir, NULL},
	          0);

	/* swap --dry-run prints the statements and changes nothing */
	catalog(t, before);
	rc = shst_shadow("swap",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--dry-run", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "SET SCHEMA") && strstr(out, "CREATE POLICY") &&
	                  strstr(out, "MATERIALIZED VIEW"),
	              "swap --dry-run: %d %s %s", rc, out, story_tail(err));
	free(out);
	free(err);
	catalog(t, after);
	ck_assert_str_eq(after, before);

	/* a swap that never gets its locks gives up and changes nothing */
	blocker = pgt_connect_as(&sv.tgt, "shadow_dry", "app");
	pgt_exec(blocker, "BEGIN; SELECT count(*) FROM accounts");
	rc = shst_shadow("swap",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--lock-retries", "2",
	                                       "--lock-timeout", "50", "--json", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 1 && strstr(out, "nothing was changed") &&
	                  strstr(out, "\"stage\":\"ShadowSwap\",\"level\":\"error\"") &&
	                  events_of(out, "ShadowSwap") == 3,
	              "a busy swap with --json: %d %s %s", rc, out, story_tail(err));
	free(out);
	free(err);
	pgt_exec(blocker, "COMMIT");
	/*
	 * a table of another schema, whose foreign key to a swapped table is made
	 * again inside the swap, is being read: its lock is waited for as
	 * briefly, and tried again, as the swapped tables' (it used to fail the
	 * swap at once)
	 */
	pgt_exec(blocker, "BEGIN; SELECT count(*) FROM crm.notes");
	rc = shst_shadow(
	    "swap",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--lock-retries", "2", NULL}, &out,
	    &err);
	ck_assert_msg(rc == 1 && strstr(err, "gave up after 2 tries"), "a busy crm.notes: %d %s", rc,
	              story_tail(err));
	free(out);
	free(err);
	pgt_exec(blocker, "COMMIT");
	PQfinish(blocker);
	catalog(t, after);
	ck_assert_str_eq(after, before);

	/* swapped: the dry runs of rollback and cleanup change nothing either */
	shadow_ok("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL}, 0);
	catalog(t, before);
	shadow_ok(
	    "rollback",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--latest", "--dry-run", NULL}, 0);
	catalog(t, after);
	ck_assert_str_eq(after, before);
	shadow_ok("cleanup",
	          (const char *const[]){"--dest", tgt, "--state-dir", dir, "--before", "now",
	                                "--dry-run", NULL},
	          0);
	catalog(t, after);
	ck_assert_str_eq(after, before);
	pgt_assert_same(s, t, "accounts");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {
	    "shadow_objects",   "shadow_objects", 120, &sv, NULL, NULL, NULL, NULL, NULL,
	    "PGDBM_SHADOW_ONLY"};
	const TTest *const stories[] = {
	    a_swap_carries_what_the_application_relies_on_and_leaves_extensions_alone,
	    dry_runs_and_a_swap_that_cannot_lock_change_nothing, NULL};

	return story_run_suite(story_suite(&plan, stories));
}
