/*
 * shadowstory.c — the shadow-table stories' shared steps (see shadowstory.h).
 */
#include "config.h"

#include "shadowstory.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

void
shst_app_rows(PGconn *c, int customers, int orders, int users, const char *tag)
{
	char sql[2048];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO customers (name) SELECT '%s' || g FROM generate_series(1, %d) g;"
	         "INSERT INTO orders (customer, total) SELECT 1 + g %% %d, g FROM "
	         "generate_series(1, %d) g;"
	         "INSERT INTO users (name) SELECT '%s-user' || g FROM generate_series(1, %d) g",
	         tag, customers, customers, orders, tag, users);
	pgt_exec(c, sql);
}

void
shst_two_sides(story_servers *sv, const char *db, shst_build_fn build, char *src, char *tgt,
               size_t size, PGconn **s, PGconn **t)
{
	story_app_databases(sv, db);
	story_connstrs(sv, db, src, tgt, size);
	*s = pgt_connect_as(&sv->src, db, "app");
	*t = pgt_connect_as(&sv->tgt, db, "app");
	build(*s, 300, 3000, 5, "src");
	build(*t, 50, 400, 100, "tgt");
}

int
shst_shadow(const char *verb, const char *const more[], char **out, char **err)
{
	const char *args[] = {"shadow", verb, NULL};
	pgt_proc p;

	story_tool_start(&p, args, more, NULL);
	return story_finish(&p, 120, out, err);
}

void
shst_ts_of(const char *log, const char *after, char ts[15])
{
	const char *p = strstr(log, after);

	ck_assert_msg(p != NULL, "no migration named: %s", story_tail(log));
	memcpy(ts, p + strlen(after), 14);
	ts[14] = '\0';
}

void
shst_source_clean(PGconn *s)
{
	char v[64];

	ck_assert_str_eq(pgt_value(s,
	                           "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT "
	                           "count(*) FROM pg_publication)",
	                           v, sizeof(v)),
	                 "0");
}

void
shst_target_clean(PGconn *t)
{
	char v[64];

	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '\\_pgdbm%'",
	                           v, sizeof(v)),
	                 "0");
}
