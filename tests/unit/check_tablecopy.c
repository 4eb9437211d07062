/*
 * check_tablecopy.c — the plan and the statements of the direct copy,
 * without a server: which work items a set of tables becomes (largest first,
 * big tables split into page ranges, the last range open-ended), and the
 * COPY statements each side runs.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migopts.h"
#include "postdata.h"
#include "tablecopy.h"

static tablecopy_table
table(const char *name, const char *cols, int64_t pages)
{
	tablecopy_table t = {.qname = (char *)name,
	                     .columns = (char *)cols,
	                     .binary_ok = true,
	                     .pages = pages,
	                     .bytes = pages * 8192};

	return t;
}

START_TEST(small_tables_are_copied_whole_largest_first)
{
	tablecopy_table t[3] = {table("a", "x", 10), table("b", "x", 30), table("c", "x", 20)};
	tablecopy_item *items;
	int n;

	ck_assert(tablecopy_plan(t, 3, 1000, &items, &n));
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(items[0].table, 1);
	ck_assert_int_eq(items[1].table, 2);
	ck_assert_int_eq(items[2].table, 0);
	for (int i = 0; i < n; i++)
		ck_assert(items[i].first_page == 0 && items[i].end_page == 0);
	free(items);
}
END_TEST

START_TEST(one_huge_table_is_split_so_every_worker_has_a_range)
{
	tablecopy_table t[2] = {table("small", "x", 5), table("huge", "x", 250)};
	tablecopy_item *items;
	int n, ranges = 0;
	bool saw_open_end = false;
	int64_t covered = 0;

	ck_assert(tablecopy_plan(t, 2, 100, &items, &n));
	ck_assert_int_eq(n, 4); /* 3 ranges of the huge table, the small one whole */
	for (int i = 0; i < n; i++)
	{
		if (items[i].table != 1)
			continue;
		ranges++;
		if (items[i].end_page == 0)
		{
			/* the last range reads to the end: rows past the size read are not lost */
			ck_assert_int_eq(items[i].first_page, 200);
			saw_open_end = true;
			covered += 250 - items[i].first_page;
		}
		else
			covered += items[i].end_page - items[i].first_page;
	}
	ck_assert_int_eq(ranges, 3);
	ck_assert(saw_open_end);
	ck_assert_int_eq(covered, 250);
	/* the small table comes last */
	ck_assert_int_eq(items[n - 1].table, 0);
	free(items);
}
END_TEST

START_TEST(range_size_zero_never_splits)
{
	tablecopy_table t[1] = {table("huge", "x", 1000000)};
	tablecopy_item *items;
	int n;

	ck_assert(tablecopy_plan(t, 1, 0, &items, &n));
	ck_assert_int_eq(n, 1);
	ck_assert(items[0].first_page == 0 && items[0].end_page == 0);
	free(items);
}
END_TEST

START_TEST(no_tables_make_no_items)
{
	tablecopy_item *items;
	int n = -1;

	ck_assert(tablecopy_plan(NULL, 0, 100, &items, &n));
	ck_assert_int_eq(n, 0);
	free(items);
}
END_TEST

START_TEST(a_whole_table_is_copied_by_its_columns)
{
	tablecopy_table t = table("\"s\".\"My Table\"", "id, \"Name\"", 1);
	tablecopy_item it = {0};
	strbuf sb;

	strbuf_init(&sb);
	ck_assert(tablecopy_source_sql(&t, &it, false, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY \"s\".\"My Table\" (id, \"Name\") TO STDOUT");
	ck_assert(tablecopy_target_sql(&t, false, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY \"s\".\"My Table\" (id, \"Name\") FROM STDIN");
	ck_assert(tablecopy_source_sql(&t, &it, true, &sb));
	ck_assert_str_eq(strbuf_data(&sb),
	                 "COPY \"s\".\"My Table\" (id, \"Name\") TO STDOUT (FORMAT binary)");
	ck_assert(tablecopy_target_sql(&t, true, &sb));
	ck_assert_str_eq(strbuf_data(&sb),
	                 "COPY \"s\".\"My Table\" (id, \"Name\") FROM STDIN (FORMAT binary)");
	strbuf_free(&sb);
}
END_TEST

START_TEST(a_range_reads_its_pages_by_ctid)
{
	tablecopy_table t = table("public.big", "id, v", 300);
	tablecopy_item mid = {.table = 0, .first_page = 100, .end_page = 200};
	tablecopy_item last = {.table = 0, .first_page = 200, .end_page = 0};
	strbuf sb;

	strbuf_init(&sb);
	ck_assert(tablecopy_source_sql(&t, &mid, false, &sb));
	ck_assert_str_eq(strbuf_data(&sb),
	                 "COPY (SELECT id, v FROM ONLY public.big WHERE ctid >= '(100,0)'::tid AND "
	                 "ctid < '(200,0)'::tid) TO STDOUT");
	ck_assert(tablecopy_source_sql(&t, &last, true, &sb));
	ck_assert_str_eq(strbuf_data(&sb),
	                 "COPY (SELECT id, v FROM ONLY public.big WHERE ctid >= '(200,0)'::tid) TO "
	                 "STDOUT (FORMAT binary)");
	strbuf_free(&sb);
}
END_TEST

START_TEST(a_table_of_user_composites_is_copied_as_text_even_when_binary_is_asked)
{
	tablecopy_table t = table("public.p", "id, c", 1);
	tablecopy_item it = {0};
	strbuf sb;

	t.binary_ok = false;
	strbuf_init(&sb);
	ck_assert(tablecopy_source_sql(&t, &it, true, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY public.p (id, c) TO STDOUT");
	ck_assert(tablecopy_target_sql(&t, true, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY public.p (id, c) FROM STDIN");
	strbuf_free(&sb);
}
END_TEST

START_TEST(a_table_without_columns_is_copied_without_a_column_list)
{
	tablecopy_table t = table("public.z", "", 1);
	tablecopy_item it = {0};
	strbuf sb;

	strbuf_init(&sb);
	ck_assert(tablecopy_source_sql(&t, &it, false, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY public.z TO STDOUT");
	ck_assert(tablecopy_target_sql(&t, false, &sb));
	ck_assert_str_eq(strbuf_data(&sb), "COPY public.z FROM STDIN");
	strbuf_free(&sb);
}
END_TEST

/* What pg_restore --list --section=post-data writes for a small schema (PostgreSQL 15). */
static const char toc[] = ";\n; Archive created at 2026-12-02 10:00:00 UTC\n;\n"
                          "3216; 2606 16391 CONSTRAINT public a a_pkey postgres\n"
                          "3219; 1259 16394 INDEX public a_w_idx postgres\n"
                          "3388; 0 0 COMMENT public INDEX a_w_idx postgres\n"
                          "3222; 1259 16413 INDEX public p_id_idx postgres\n"
                          "3228; 0 0 INDEX ATTACH public p1_id_idx postgres\n"
                          "3230; 3381 16425 STATISTICS public s postgres\n"
                          "3232; 2620 16406 TRIGGER public b t postgres\n"
                          "3231; 2606 16400 FK CONSTRAINT public b b_a_id_fkey postgres\n"
                          "3376; 0 16384 ROW SECURITY public a postgres\n"
                          "3377; 3256 16426 POLICY public a pol postgres\n"
                          "3380; 0 16419 MATERIALIZED VIEW DATA public mv postgres\n";

START_TEST(the_post_data_of_one_table_is_told_from_what_spans_tables)
{
	postdata_entry *e;
	int n;
	char err[256];
	/* of one table: the constraint, the indexes, statistics, trigger, row security, policy */
	static const bool one[] = {true, true,  false, true, false, true,
	                           true, false, true,  true, false};

	ck_assert(postdata_parse(toc, &e, &n, err, sizeof(err)));
	ck_assert_int_eq(n, 11);
	for (int i = 0; i < n; i++)
	{
		ck_assert_msg(e[i].of_one_table == one[i], "entry %d: %s", i, e[i].line);
		ck_assert_int_eq(e[i].table, -1);
	}
	ck_assert_uint_eq(e[0].catalog, 2606);
	ck_assert_uint_eq(e[0].oid, 16391);
	ck_assert_uint_eq(e[8].oid, 16384); /* row security: the table's own OID */
	ck_assert(e[2].follows);            /* the comment goes with its index */
	ck_assert(!e[4].follows);
	postdata_free(e, n);
	ck_assert(
	    !postdata_parse("3216 CONSTRAINT public a a_pkey postgres\n", &e, &n, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "table of contents"));
}
END_TEST

/* The lines of a list file written by postdata_write_list. */
static int
lines_of(const postdata_entry *e, int n, int table, const bool *done, char *buf, size_t size)
{
	FILE *f = fmemopen(buf, size, "w");
	int written = postdata_write_list(f, e, n, table, done);

	fclose(f);
	return written;
}

START_TEST(every_entry_is_restored_once_by_its_table_or_by_the_final_pass)
{
	postdata_entry *e;
	int n;
	char err[256], buf[4096];
	bool done[2] = {true, false};
	int total = 0;

	ck_assert(postdata_parse(toc, &e, &n, err, sizeof(err)));
	/* table 0 is "a", table 1 is "b" (as the source would answer) */
	e[0].table = e[1].table = e[8].table = e[9].table = 0;
	e[6].table = 1;
	postdata_attach(e, n);
	ck_assert_int_eq(e[2].table, 0); /* the comment on a_w_idx */
	total += lines_of(e, n, 0, NULL, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "COMMENT public INDEX a_w_idx"));
	ck_assert_ptr_null(strstr(buf, "FK CONSTRAINT"));
	/* table 1's pass was not done: its trigger goes to the final pass */
	total += lines_of(e, n, -1, done, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "TRIGGER public b t"));
	ck_assert_ptr_nonnull(strstr(buf, "FK CONSTRAINT"));
	ck_assert_ptr_null(strstr(buf, "a_pkey"));
	ck_assert_int_eq(total, n);
	/* had it been done, the final pass leaves it out */
	done[1] = true;
	ck_assert_int_eq(lines_of(e, n, 1, NULL, buf, sizeof(buf)) +
	                     lines_of(e, n, -1, done, buf, sizeof(buf)) +
	                     lines_of(e, n, 0, NULL, buf, sizeof(buf)),
	                 n);
	postdata_free(e, n);
}
END_TEST

START_TEST(the_direct_copy_uses_the_machine_unless_jobs_is_given)
{
	migopts o = {.jobs = 1};
	int n = migopts_copy_jobs(&o);

	/* not given: 2 to 4 workers, whatever the CPUs */
	ck_assert_int_ge(n, 2);
	ck_assert_int_le(n, 4);
	/* given: what the operator said, 1 included */
	o.jobs_given = true;
	ck_assert_int_eq(migopts_copy_jobs(&o), 1);
	o.jobs = 16;
	ck_assert_int_eq(migopts_copy_jobs(&o), 16);
}
END_TEST

START_TEST(a_table_that_dominates_is_split_for_every_worker_even_below_the_range_size)
{
	/* 160 MB and 40 MB: the range size of 256 MB would leave the big one whole */
	tablecopy_table t[2] = {table("big", "x", 20480), table("small", "x", 5120)};
	tablecopy_item *items;
	int n, big = 0;

	ck_assert_int_eq(tablecopy_range_pages(t, 2, 32768, 2), 12800);
	ck_assert(tablecopy_plan(t, 2, tablecopy_range_pages(t, 2, 32768, 2), &items, &n));
	for (int i = 0; i < n; i++)
		big += items[i].table == 0;
	ck_assert_int_eq(big, 2);
	free(items);
	/* one job, never split, or a share below 8 MB: the range size as given */
	ck_assert_int_eq(tablecopy_range_pages(t, 2, 32768, 1), 32768);
	ck_assert_int_eq(tablecopy_range_pages(t, 2, 0, 4), 0);
	t[0].pages = 1000;
	t[1].pages = 10;
	ck_assert_int_eq(tablecopy_range_pages(t, 2, 32768, 2), 32768);
}
END_TEST

static Suite *
tablecopy_suite(void)
{
	Suite *s = suite_create("tablecopy");
	TCase *tc = tcase_create("plan and statements");

	tcase_add_test(tc, small_tables_are_copied_whole_largest_first);
	tcase_add_test(tc, one_huge_table_is_split_so_every_worker_has_a_range);
	tcase_add_test(tc, range_size_zero_never_splits);
	tcase_add_test(tc, no_tables_make_no_items);
	tcase_add_test(tc, a_whole_table_is_copied_by_its_columns);
	tcase_add_test(tc, a_range_reads_its_pages_by_ctid);
	tcase_add_test(tc, a_table_of_user_composites_is_copied_as_text_even_when_binary_is_asked);
	tcase_add_test(tc, a_table_without_columns_is_copied_without_a_column_list);
	tcase_add_test(tc, the_post_data_of_one_table_is_told_from_what_spans_tables);
	tcase_add_test(tc, every_entry_is_restored_once_by_its_table_or_by_the_final_pass);
	tcase_add_test(tc, the_direct_copy_uses_the_machine_unless_jobs_is_given);
	tcase_add_test(tc, a_table_that_dominates_is_split_for_every_worker_even_below_the_range_size);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tablecopy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
