/*
 * check_lobsync.c — large objects through an online migration. Logical
 * decoding does not carry them: the dump copies them at the snapshot, and
 * the LargeObjects phase carries over, at the cutover, what the application
 * did to them meanwhile. The target is reached as the NOSUPERUSER role "app"
 * that owns its database; the application on the source is "app" too.
 *
 * The stories:
 *  - while the migration streams, the application creates large objects
 *    (small and of several 1 MB chunks), rewrites some in place (lo_put, in
 *    the first chunk and in a later one), grows one, truncates one, unlinks
 *    one, and leaves others untouched; after the cutover both sides hold the
 *    same objects with the same bytes (compared directly, and --verify
 *    strict finds no difference), and the grants given and taken away
 *    meanwhile are those of the source, exit 0;
 *  - an object the target role may not write (its owner changed on the
 *    target behind the tool's back) and that the source changed: the run is
 *    not a clean success (exit 1, naming the object and how to go on);
 *    the operator fixes the target, --resume carries it, equal, exit 0;
 *  - kill -9 while streaming, --resume, and then kill -9 again while the
 *    large objects are being written at its cutover (some committed, not
 *    all), then --resume: every object ends equal, exit 0.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

#define EXIT_DIFFERS_OR_ERROR(rc) ((rc) == 1 || (rc) == 4)

static story_servers sv;

/* One story's database, its connections and the tool's run. */
typedef struct lob_run
{
	char db[64], src[256], tgt[256], dump[512];
	PGconn *s; /* the application on the source (app) */
	PGconn *t; /* the target as postgres: the test's eyes */
	pgt_proc tool;
} lob_run;

static void
lob_begin(lob_run *r, const char *db)
{
	char name[128];

	memset(r, 0, sizeof(*r));
	snprintf(r->db, sizeof(r->db), "%s", db);
	story_drop_slots(&sv.src);
	story_app_databases(&sv, db);
	story_connstrs(&sv, db, r->src, r->tgt, sizeof(r->src));
	r->s = pgt_connect_as(&sv.src, db, "app");
	r->t = pgt_connect(&sv.tgt, db);
	snprintf(name, sizeof(name), "%s-dump", db);
	pgt_scratch(name, r->dump, sizeof(r->dump));
	/* the application keeps its documents in large objects, named in a table */
	pgt_exec(r->s, "CREATE TABLE docs (name text PRIMARY KEY, body oid)");
}

static void
lob_end(lob_run *r)
{
	PQfinish(r->s);
	PQfinish(r->t);
}

/* A document of the application: a large object of the bytes expr, named name. */
static void
doc_new(lob_run *r, const char *name, const char *expr)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO docs VALUES ('%s', lo_from_bytea(0, %s)) ON CONFLICT (name) DO UPDATE "
	         "SET body = excluded.body",
	         name, expr);
	pgt_exec(r->s, sql);
}

/* The application's statement sql on the document name ($1 stands for its OID). */
static void
doc_do(lob_run *r, const char *name, const char *sql)
{
	char q[512], oid[32], with[1024];
	const char *at;

	snprintf(q, sizeof(q), "SELECT body FROM docs WHERE name = '%s'", name);
	pgt_value(r->s, q, oid, sizeof(oid));
	at = strstr(sql, "$1");
	ck_assert(at != NULL);
	snprintf(with, sizeof(with), "%.*s%s%s", (int)(at - sql), sql, oid, at + 2);
	pgt_exec(r->s, with);
}

/* Every large object of a side: their count and one MD5 over OIDs and contents. */
static const char *
lob_digest(PGconn *c, char *buf, size_t size)
{
	return pgt_value(c,
	                 "SELECT count(*) || ' ' || coalesce(md5(string_agg(oid::text || ':' || "
	                 "md5(lo_get(oid)), ',' ORDER BY oid)), '-') FROM pg_largeobject_metadata",
	                 buf, size);
}

/* Every grant on a large object (its owner's aside): OID, grantee, privilege; one MD5. */
static const char *
lob_grants(PGconn *c, char *buf, size_t size)
{
	return pgt_value(c,
	                 "SELECT count(*) || ' ' || coalesce(md5(string_agg(x, ',' ORDER BY x)), '-') "
	                 "FROM (SELECT m.oid::text || ':' || CASE WHEN e.grantee = 0 THEN 'PUBLIC' "
	                 "ELSE pg_get_userbyid(e.grantee) END || ':' || e.privilege_type AS x "
	                 "FROM pg_largeobject_metadata m, aclexplode(m.lomacl) e "
	                 "WHERE e.grantee <> m.lomowner) q",
	                 buf, size);
}

/* Both sides hold the same large objects, byte for byte. */
static void
assert_los_equal(lob_run *r, const char *when)
{
	PGconn *s = pgt_connect(&sv.src, r->db);
	char a[128], b[128];

	lob_digest(s, a, sizeof(a));
	lob_digest(r->t, b, sizeof(b));
	ck_assert_msg(strcmp(a, b) == 0, "%s: large objects differ: source %s, target %s", when, a, b);
	lob_grants(s, a, sizeof(a));
	lob_grants(r->t, b, sizeof(b));
	ck_assert_msg(strcmp(a, b) == 0, "%s: grants differ: source %s, target %s", when, a, b);
	PQfinish(s);
}

/* 2.5 MB: three chunks, the last one short */
#define BIG_BYTES "convert_to(repeat('0123456789', 250000), 'UTF8')"

/* The objects of the snapshot, as the dump copies them. */
static void
lob_initial(lob_run *r)
{
	doc_new(r, "untouched", "'\\x00ff00'::bytea");
	doc_new(r, "untouched_big", BIG_BYTES);
	doc_new(r, "rewritten", "'the first draft'::bytea");
	doc_new(r, "rewritten_big", BIG_BYTES);
	doc_new(r, "grown", "'short'::bytea");
	doc_new(r, "truncated", BIG_BYTES);
	doc_new(r, "unlinked", "'to be removed'::bytea");
	doc_new(r, "emptied", "'soon empty'::bytea");
}

/* What the application does to them while the migration streams. */
static void
lob_changes(lob_run *r)
{
	doc_new(r, "created", "'a new document'::bytea");
	doc_new(r, "created_big", "convert_to(repeat('abcdefghij', 230000), 'UTF8')");
	doc_new(r, "created_empty", "''::bytea");
	doc_do(r, "rewritten", "SELECT lo_put($1, 4, 'FIRST'::bytea)");
	/* a byte in the third chunk only: chunks 0 and 1 stay as they are */
	doc_do(r, "rewritten_big", "SELECT lo_put($1, 2200000, 'X'::bytea)");
	doc_do(r, "grown", "SELECT lo_put($1, 1500000, 'far away'::bytea)");
	pgt_exec(r->s, "BEGIN");
	doc_do(r, "truncated", "SELECT lo_truncate(lo_open($1, 131072), 1048576 + 10)");
	doc_do(r, "emptied", "SELECT lo_truncate(lo_open($1, 131072), 0)");
	pgt_exec(r->s, "COMMIT");
	doc_do(r, "unlinked", "SELECT lo_unlink($1)");
	pgt_exec(r->s, "DELETE FROM docs WHERE name = 'unlinked'");
}

/* The end of the tool's run (story_finish); its log shown with PGDBM_DEBUG set. */
static int
lob_finish(lob_run *r, char **out, char **err)
{
	int rc = story_finish(&r->tool, 120, out, err);

	if (getenv("PGDBM_DEBUG"))
		fprintf(stderr, "---- %s: exit %d\n%s", r->db, rc, *err);
	return rc;
}

/* Start the online migration of the story's database; more (may be NULL) after the usual. */
static void
lob_migrate(lob_run *r, const char *const more[])
{
	const char *const args[] = {"--mode",      "online",   "--source",
	                            r->src,        "--target", r->tgt,
	                            "--dump-path", r->dump,    "--cutover-poll-secs",
	                            "1",           "--verify", "strict",
	                            NULL};

	story_tool_start(&r->tool, args, more, NULL);
}

START_TEST(large_objects_changed_while_streaming_are_equal_after_the_cutover)
{
	lob_run r;
	char *out, *err;
	int rc;

	lob_begin(&r, "lob_stream");
	lob_initial(&r);
	/* a reader may see one document; the role is on both servers */
	pgt_exec(sv.src_admin, "DO $$BEGIN CREATE ROLE lob_reader NOLOGIN; EXCEPTION WHEN "
	                       "duplicate_object THEN NULL; END$$");
	pgt_exec(sv.tgt_admin, "DO $$BEGIN CREATE ROLE lob_reader NOLOGIN; EXCEPTION WHEN "
	                       "duplicate_object THEN NULL; END$$");
	doc_do(&r, "untouched", "GRANT SELECT ON LARGE OBJECT $1 TO lob_reader");
	lob_migrate(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	lob_changes(&r);
	/* and then another one instead, and everyone may read a third */
	doc_do(&r, "untouched", "REVOKE SELECT ON LARGE OBJECT $1 FROM lob_reader");
	doc_do(&r, "created", "GRANT SELECT, UPDATE ON LARGE OBJECT $1 TO lob_reader");
	doc_do(&r, "rewritten_big", "GRANT SELECT ON LARGE OBJECT $1 TO PUBLIC");
	kill(r.tool.pid, SIGINT);
	rc = lob_finish(&r, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, story_tail(err));
	/* Validate says they are carried; the phase says what it did */
	ck_assert_msg(strstr(err, "carried over at the cutover"), "%s", story_tail(err));
	ck_assert_msg(strstr(err, "stage=LargeObjects") && strstr(err, "created=3") &&
	                  strstr(err, "rewritten=5") && strstr(err, "unlinked=1") &&
	                  strstr(err, "grants_set=3"),
	              "%s", story_tail(err));
	/* only what differed was written: 1 + 1 + 2.5 MB, not the untouched 2 x 2.5 MB */
	ck_assert_msg(strstr(err, "verified=equal") || strstr(err, "migration complete"), "%s",
	              story_tail(err));
	assert_los_equal(&r, "after the cutover");
	pgt_assert_same(r.s, r.t, "docs");
	free(out);
	free(err);
	lob_end(&r);
}
END_TEST

START_TEST(an_object_the_target_role_may_not_write_stops_the_run_and_resume_finishes)
{
	lob_run r;
	char *out, *err, oid[32], sql[256];
	int rc;

	lob_begin(&r, "lob_denied");
	lob_initial(&r);
	lob_migrate(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	/* someone hands one document to another role on the target meanwhile */
	pgt_value(r.s, "SELECT body FROM docs WHERE name = 'rewritten'", oid, sizeof(oid));
	pgt_exec(r.t, "DO $$BEGIN CREATE ROLE lob_other NOLOGIN; EXCEPTION WHEN duplicate_object "
	              "THEN NULL; END$$");
	snprintf(sql, sizeof(sql), "ALTER LARGE OBJECT %s OWNER TO lob_other", oid);
	pgt_exec(r.t, sql);
	lob_changes(&r);
	kill(r.tool.pid, SIGINT);
	rc = lob_finish(&r, &out, &err);
	/* the target is known to differ: not a clean success, and the object is named */
	ck_assert_msg(EXIT_DIFFERS_OR_ERROR(rc), "exit %d: %s", rc, story_tail(err));
	snprintf(sql, sizeof(sql), "large object %s", oid);
	ck_assert_msg(strstr(err, sql) && strstr(err, "--resume"), "%s", story_tail(err));
	ck_assert_msg(!strstr(err, "migration complete"), "%s", story_tail(err));
	free(out);
	free(err);
	/* the operator gives it back, and resumes */
	snprintf(sql, sizeof(sql), "ALTER LARGE OBJECT %s OWNER TO app", oid);
	pgt_exec(r.t, sql);
	lob_migrate(&r, (const char *const[]){"--resume", NULL});
	rc = lob_finish(&r, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "stage=LargeObjects"), "%s", story_tail(err));
	assert_los_equal(&r, "after the resume");
	free(out);
	free(err);
	lob_end(&r);
}
END_TEST

START_TEST(killed_while_writing_large_objects_the_resume_ends_equal)
{
	lob_run r;
	char *out, *err, n[32];
	int rc, seen = 0;

	lob_begin(&r, "lob_kill");
	lob_initial(&r);
	lob_migrate(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	lob_changes(&r);
	/* a crash while streaming: the resumed run streams on, and cuts over */
	story_kill_9(&r.tool);
	lob_migrate(&r, (const char *const[]){"--resume", NULL});
	story_expect(&r.tool, "stage=CaughtUp", 120);
	/* 24 new scans of 2.5 MB: enough writing to be caught in the middle of it */
	for (int i = 0; i < 24; i++)
	{
		char name[32];

		snprintf(name, sizeof(name), "scan%02d", i);
		doc_new(&r, name, BIG_BYTES);
	}
	kill(r.tool.pid, SIGINT);
	story_expect(&r.tool, "stage=Cutover", 60);
	/* the phase commits every 32 MB: wait for a commit with scans in it, then crash */
	for (int i = 0; i < 6000 && !seen; i++)
	{
		pgt_value(r.t, "SELECT count(*) FROM pg_largeobject_metadata", n, sizeof(n));
		seen = atoi(n) > 11;
		if (!seen)
			usleep(5 * 1000);
	}
	ck_assert_msg(seen, "the large objects were never seen being written");
	story_kill_9(&r.tool);
	/* some are on the target, not all */
	ck_assert_int_lt(
	    atoi(pgt_value(r.t, "SELECT count(*) FROM pg_largeobject_metadata", n, sizeof(n))), 34);
	lob_migrate(&r, (const char *const[]){"--resume", NULL});
	rc = lob_finish(&r, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "stage=LargeObjects"), "%s", story_tail(err));
	assert_los_equal(&r, "after the resume");
	pgt_assert_same(r.s, r.t, "docs");
	free(out);
	free(err);
	lob_end(&r);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"lobsync", "stories", 200, &sv, STORY_SOURCE_CONF};
	const TTest *const stories[] = {
	    large_objects_changed_while_streaming_are_equal_after_the_cutover,
	    an_object_the_target_role_may_not_write_stops_the_run_and_resume_finishes,
	    killed_while_writing_large_objects_the_resume_ends_equal, NULL};

	return story_run_suite(story_suite(&plan, stories));
}
