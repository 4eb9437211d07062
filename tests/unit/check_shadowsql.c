/*
 * check_shadowsql.c — the pure half of `shadow`: the state written as JSON
 * reads back the same, every truncated prefix and every foreign field of it
 * is refused rather than guessed at; the sync trigger's SQL with names that
 * need quoting; the move statement; dates for --before; array literals.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "shadowsql.h"

static shadowsql_state *
sample(void)
{
	shadowsql_state *st = calloc(1, sizeof(*st));

	strcpy(st->ts, "20261202113000");
	strcpy(st->phase, "swapped");
	strcpy(st->schema, "public");
	strcpy(st->origin, "prepare");
	st->ntables = 3;
	strcpy(st->tables[0].name, "customers");
	st->tables[0].rows = 300;
	strcpy(st->tables[0].sum, "0123456789abcdef0123456789abcdef");
	strcpy(st->tables[1].name, "we\"ird\\name");
	st->tables[1].rows = -1;
	strcpy(st->tables[2].name, "users");
	st->tables[2].preserved = true;
	st->tables[2].rows = 0;
	st->nseqs = 1;
	strcpy(st->seqs[0].name, "customers_id_seq");
	st->seqs[0].value = 9000000000LL;
	st->seqs[0].called = true;
	return st;
}

START_TEST(a_state_reads_back_as_it_was_written)
{
	shadowsql_state *st = sample(), *back = calloc(1, sizeof(*back));
	strbuf sb;
	char err[256];

	strbuf_init(&sb);
	ck_assert(shadowsql_state_json(&sb, st));
	ck_assert_msg(shadowsql_state_parse(strbuf_data(&sb), back, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(back->ts, st->ts);
	ck_assert_str_eq(back->phase, "swapped");
	ck_assert_str_eq(back->origin, "prepare");
	ck_assert_int_eq(back->ntables, 3);
	ck_assert_str_eq(back->tables[1].name, "we\"ird\\name");
	ck_assert_int_eq(back->tables[0].rows, 300);
	ck_assert_str_eq(back->tables[0].sum, st->tables[0].sum);
	ck_assert(back->tables[2].preserved && !back->tables[0].preserved);
	ck_assert_int_eq(back->nseqs, 1);
	ck_assert(back->seqs[0].value == 9000000000LL && back->seqs[0].called);
	ck_assert_ptr_eq(shadowsql_state_table(back, "users"), &back->tables[2]);
	ck_assert_ptr_null(shadowsql_state_table(back, "nope"));
	strbuf_free(&sb);
	free(st);
	free(back);
}
END_TEST

START_TEST(every_truncated_state_is_refused)
{
	shadowsql_state *st = sample(), *back = calloc(1, sizeof(*back));
	strbuf sb;
	char err[256];
	size_t len;

	strbuf_init(&sb);
	ck_assert(shadowsql_state_json(&sb, st));
	len = strbuf_len(&sb);
	/* the last byte is the newline after the object: a prefix without it is still whole */
	for (size_t n = 0; n < len - 1; n++)
	{
		char *cut = strndup(strbuf_data(&sb), n);

		ck_assert_msg(!shadowsql_state_parse(cut, back, err, sizeof(err)),
		              "a state cut at %zu read as whole", n);
		free(cut);
	}
	strbuf_free(&sb);
	free(st);
	free(back);
}
END_TEST

START_TEST(a_state_this_version_never_writes_is_refused)
{
	static const char *const bad[] = {
	    "[]",
	    "{\"timestamp\": \"2026\", \"phase\": \"x\", \"schema\": \"public\", \"origin\": \"\", "
	    "\"tables\": [], \"sequences\": []}",
	    "{\"timestamp\": \"20261202113000\", \"phase\": \"x\", \"schema\": \"public\", "
	    "\"origin\": \"\", \"tables\": [], \"sequences\": [], \"more\": 1}",
	    "{\"timestamp\": \"20261202113000\", \"phase\": \"x\", \"schema\": \"public\", "
	    "\"tables\": [], \"sequences\": []}",
	    "{\"timestamp\": \"20261202113000\", \"phase\": \"x\", \"schema\": \"public\", "
	    "\"origin\": \"\", \"tables\": [{\"rows\": 1}], \"sequences\": []}",
	    "{\"timestamp\": \"20261202113000\", \"phase\": \"x\", \"schema\": \"public\", "
	    "\"origin\": \"\", \"tables\": [], \"sequences\": []} trailing",
	    "{\"timestamp\": \"20261202113000\", \"phase\": \"x\\u0000\", \"schema\": \"public\", "
	    "\"origin\": \"\", \"tables\": [], \"sequences\": []}",
	    NULL};
	shadowsql_state *back = calloc(1, sizeof(*back));
	char err[256];

	for (int i = 0; bad[i]; i++)
		ck_assert_msg(!shadowsql_state_parse(bad[i], back, err, sizeof(err)), "read: %s", bad[i]);
	free(back);
}
END_TEST

/* prepare --online's fields: written only when there is a slot, read back, all or none */
START_TEST(an_online_state_reads_back_and_needs_all_its_fields)
{
	shadowsql_state *st = sample(), *back = calloc(1, sizeof(*back));
	strbuf sb;
	char err[256], *text, *cut;

	strbuf_init(&sb);
	ck_assert(shadowsql_state_json(&sb, st));
	ck_assert_ptr_null(strstr(strbuf_data(&sb), "slot"));
	strbuf_reset(&sb);
	strcpy(st->slot, "pgdbm_shadow_20261202113000");
	strcpy(st->source_system, "7441234567890123456");
	strcpy(st->consistent_lsn, "0/1A2B3C8");
	st->pid = 4242;
	ck_assert(shadowsql_state_json(&sb, st));
	ck_assert_msg(shadowsql_state_parse(strbuf_data(&sb), back, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(back->slot, st->slot);
	ck_assert_str_eq(back->source_system, st->source_system);
	ck_assert_str_eq(back->consistent_lsn, "0/1A2B3C8");
	ck_assert(back->pid == 4242 && back->nseqs == 1);
	/* one of the four left out: refused */
	text = strdup(strbuf_data(&sb));
	cut = strstr(text, ",\n  \"pid\"");
	ck_assert_ptr_nonnull(cut);
	strcpy(cut, "\n}\n");
	ck_assert(!shadowsql_state_parse(text, back, err, sizeof(err)));
	free(text);
	strbuf_free(&sb);
	free(st);
	free(back);
}
END_TEST

START_TEST(the_sync_trigger_quotes_every_name_and_keys_by_the_primary_key)
{
	const char *keys[] = {"tenant", "Id"};
	strbuf sb;

	strbuf_init(&sb);
	ck_assert(shadowsql_sync_sql(&sb, "public", "_pgdbm_shadow_20261202113000", "Us\"ers", keys, 2,
	                             "20261202113000"));
	ck_assert_msg(strstr(strbuf_data(&sb),
	                     "DELETE FROM \"_pgdbm_shadow_20261202113000\".\"Us\"\"ers\" WHERE "
	                     "(\"tenant\", \"Id\") IS NOT DISTINCT FROM (OLD.\"tenant\", OLD.\"Id\")"),
	              "%s", strbuf_data(&sb));
	ck_assert(strstr(strbuf_data(&sb), "SECURITY DEFINER SET search_path = pg_catalog"));
	ck_assert(strstr(strbuf_data(&sb), "CREATE TRIGGER \"_pgdbm_sync_20261202113000\" AFTER "
	                                   "INSERT OR UPDATE OR DELETE ON \"public\".\"Us\"\"ers\""));
	ck_assert(strstr(strbuf_data(&sb), "CREATE TRIGGER \"_pgdbm_sync_20261202113000_t\" AFTER "
	                                   "TRUNCATE ON \"public\".\"Us\"\"ers\""));
	strbuf_reset(&sb);
	ck_assert(!shadowsql_sync_sql(&sb, "public", "s", "t", keys, 0, "20261202113000"));
	strbuf_reset(&sb);
	ck_assert(shadowsql_move_sql(&sb, "public", "a\"b", "_pgdbm_backup_1"));
	ck_assert_str_eq(strbuf_data(&sb),
	                 "ALTER TABLE \"public\".\"a\"\"b\" SET SCHEMA \"_pgdbm_backup_1\";\n");
	strbuf_free(&sb);
}
END_TEST

START_TEST(dates_names_and_arrays)
{
	char key[SHADOWSQL_TS], buf[64];
	const char *names[] = {"a", "b\"c", "d\\e"};
	strbuf sb;

	ck_assert(shadowsql_date_key("2026-12-02", key));
	ck_assert_str_eq(key, "20261202000000");
	ck_assert(shadowsql_date_key("2026-12-02T10:30", key));
	ck_assert_str_eq(key, "20261202103000");
	ck_assert(shadowsql_date_key("2026-12-02 10:30:15", key));
	ck_assert_str_eq(key, "20261202103015");
	ck_assert(!shadowsql_date_key("yesterday", key));
	ck_assert(!shadowsql_date_key("2026-12", key));
	ck_assert(!shadowsql_date_key("2026-12-02 10:30:15:99", key));
	ck_assert(shadowsql_ts_valid("20261202103015"));
	ck_assert(!shadowsql_ts_valid("2026120210301"));
	ck_assert(!shadowsql_ts_valid("2026120210301x"));
	shadowsql_shadow_schema("20261202103015", buf, sizeof(buf));
	ck_assert_str_eq(buf, "_pgdbm_shadow_20261202103015");
	shadowsql_backup_schema("20261202103015", buf, sizeof(buf));
	ck_assert_str_eq(buf, "_pgdbm_backup_20261202103015");
	strbuf_init(&sb);
	ck_assert(shadowsql_array_literal(&sb, names, 3));
	ck_assert_str_eq(strbuf_data(&sb), "{\"a\",\"b\\\"c\",\"d\\\\e\"}");
	strbuf_reset(&sb);
	ck_assert(shadowsql_array_literal(&sb, names, 0));
	ck_assert_str_eq(strbuf_data(&sb), "{}");
	strbuf_free(&sb);
}
END_TEST

/*
 * The catalog read of an exchange: every part is a SELECT of one phase
 * (1, 3 or 4) that names only the four parameters, and the kinds of objects
 * an operator expects after a swap each have their part.
 */
START_TEST(the_exchange_carries_every_kind_of_object)
{
	const char *kinds[] = {"DROP TRIGGER",
	                       "DROP POLICY",
	                       "DROP CONSTRAINT",
	                       "ADD CONSTRAINT",
	                       "pg_get_triggerdef",
	                       "TRIGGER %I",
	                       "OWNED BY NONE",
	                       "setval",
	                       "CREATE OR REPLACE VIEW",
	                       "MATERIALIZED VIEW",
	                       "pg_get_indexdef",
	                       "a.attacl",
	                       "c.relacl",
	                       "ROW LEVEL SECURITY",
	                       "CREATE POLICY",
	                       "WITH GRANT OPTION",
	                       "relforcerowsecurity",
	                       "WITH NO DATA"};
	strbuf sb;
	size_t n = shadowsql_around_count();

	ck_assert_uint_ge(n, 15);
	ck_assert_ptr_null(shadowsql_around_part(n));
	for (size_t i = 0; i < n; i++)
	{
		const shadowsql_around *p = shadowsql_around_part(i);

		ck_assert_ptr_nonnull(p);
		ck_assert(p->what[0] != '\0');
		ck_assert_msg(strncmp(p->sql, "SELECT 1", 8) == 0 ||
		                  strncmp(p->sql, "SELECT 3, ", 10) == 0 ||
		                  strncmp(p->sql, "SELECT 4, ", 10) == 0,
		              "part %zu has no phase: %.60s", i, p->sql);
		ck_assert_msg(strstr(p->sql, "$5") == NULL, "part %zu names $5", i);
	}
	strbuf_init(&sb);
	ck_assert(shadowsql_around_sql(&sb));
	ck_assert(strncmp(strbuf_data(&sb), "WITH outs AS", 12) == 0);
	ck_assert(strstr(strbuf_data(&sb), "ORDER BY 1") != NULL);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		ck_assert_msg(strstr(strbuf_data(&sb), kinds[k]) != NULL, "nothing carries %s", kinds[k]);
	/* the first part names the phase column; the rest follow it */
	ck_assert(strstr(shadowsql_around_part(0)->sql, "AS ph") != NULL);
	strbuf_free(&sb);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("shadowsql");
	TCase *tc = tcase_create("shadowsql");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, a_state_reads_back_as_it_was_written);
	tcase_add_test(tc, every_truncated_state_is_refused);
	tcase_add_test(tc, a_state_this_version_never_writes_is_refused);
	tcase_add_test(tc, the_sync_trigger_quotes_every_name_and_keys_by_the_primary_key);
	tcase_add_test(tc, dates_names_and_arrays);
	tcase_add_test(tc, the_exchange_carries_every_kind_of_object);
	tcase_add_test(tc, an_online_state_reads_back_and_needs_all_its_fields);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
