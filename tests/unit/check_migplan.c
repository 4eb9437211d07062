/*
 * check_migplan.c — the plan of a migration as an operator meets it: what a
 * fresh offline or online run walks and which token stages it saves, where a
 * run killed at each stage resumes (every stage in both modes), what a dry
 * run lists, what a failed run cleans up and tells the operator for every
 * way it can fail, and whether a token found next to the dump lets a run
 * start.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "migplan.h"

/* The names of the phases a plan runs, space-separated. */
static const char *
ran(const migplan *p)
{
	static char buf[1024];

	buf[0] = '\0';
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
		if (p->steps[i].action == MIGPLAN_RUN)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
			         p->steps[i].name);
	return buf;
}

/* The token stages a plan saves, in order, space-separated. */
static const char *
saves(const migplan *p)
{
	static char buf[256];

	buf[0] = '\0';
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
	{
		const migplan_step *s = &p->steps[i];

		if (s->save_before != RESUME_NONE)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
			         resume_stage_name(s->save_before));
		if (s->save_after != RESUME_NONE)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", buf[0] ? " " : "",
			         resume_stage_name(s->save_after));
	}
	return buf;
}

/* The notes a plan gives, "Stage: text", separated by " | ". */
static const char *
notes(const migplan *p)
{
	static char buf[1024];

	buf[0] = '\0';
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
		if (p->steps[i].note)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s: %s", buf[0] ? " | " : "",
			         p->steps[i].name, p->steps[i].note);
	return buf;
}

static void
plan_of(migplan *p, bool online, bool resume, resume_stage stage)
{
	migplan_input in = {.online = online,
	                    .large_objects = true,
	                    .sequence_sync = true,
	                    .verify = true,
	                    .resume = resume,
	                    .token_stage = stage};

	migplan_build(&in, p);
}

#define ONLINE_FINISH \
	"LargeObjects GuardUndo SequenceSync Cleanup GuardValidate DropProgress Verify Complete"
#define OFFLINE_FINISH "Cleanup DropProgress Verify Complete"

START_TEST(a_fresh_offline_run_dumps_restores_and_saves_each_stage)
{
	migplan p;

	plan_of(&p, false, false, RESUME_NONE);
	ck_assert(!p.resumed);
	ck_assert_str_eq(ran(&p), "Validate Recover Dump Restore " OFFLINE_FINISH);
	ck_assert_str_eq(saves(&p), "Validate PrepareSnapshot Dump Restore Complete");
	ck_assert_str_eq(notes(&p), "");
	ck_assert_int_eq(p.steps[MIGPLAN_STREAM_APPLY].action, MIGPLAN_LEFT_OUT);
	ck_assert_int_eq(p.steps[MIGPLAN_PREPARE_SNAPSHOT].action, MIGPLAN_LEFT_OUT);
	/* the token says the dump is under way before pg_dump starts, done after it ends */
	ck_assert_int_eq(p.steps[MIGPLAN_DUMP].save_before, RESUME_SNAPSHOT);
	ck_assert_int_eq(p.steps[MIGPLAN_DUMP].save_after, RESUME_DUMPED);
	/* Complete is in the token before the Complete event */
	ck_assert_int_eq(p.steps[MIGPLAN_COMPLETE].save_before, RESUME_COMPLETE);
}
END_TEST

START_TEST(a_fresh_online_run_takes_a_snapshot_streams_and_cuts_over)
{
	migplan p;

	plan_of(&p, true, false, RESUME_NONE);
	ck_assert_str_eq(ran(&p), "Validate Recover PrepareSnapshot Dump Restore Guard StreamApply "
	                          "" ONLINE_FINISH);
	ck_assert_str_eq(saves(&p), "Validate PrepareSnapshot Dump Restore Cutover Complete");
	/* a kill while the slot is being made leaves a token naming it */
	ck_assert_int_eq(p.steps[MIGPLAN_RECOVER].save_after, RESUME_STARTED);
	ck_assert_int_eq(p.steps[MIGPLAN_STREAM_APPLY].save_after, RESUME_CUTOVER);
	ck_assert_int_eq(p.steps[MIGPLAN_REATTACH].action, MIGPLAN_LEFT_OUT);
	ck_assert_int_eq(p.steps[MIGPLAN_REATTACH_AFTER_CUTOVER].action, MIGPLAN_LEFT_OUT);
}
END_TEST

START_TEST(a_direct_copy_is_resumable_only_once_its_rows_are_on_the_target)
{
	migplan_input in = {.online = true,
	                    .sequence_sync = true,
	                    .verify = true,
	                    .copy_direct = true,
	                    .large_objects = true};
	migplan p;

	migplan_build(&in, &p);
	ck_assert_str_eq(ran(&p), "Validate Recover PrepareSnapshot Dump Copy Restore Guard "
	                          "StreamApply " ONLINE_FINISH);
	/* the dump holds no rows: Dumped is saved after the Copy phase, not after pg_dump */
	ck_assert_int_eq(p.steps[MIGPLAN_DUMP].save_after, RESUME_NONE);
	ck_assert_int_eq(p.steps[MIGPLAN_COPY].save_after, RESUME_DUMPED);
	/* killed during the post-data restore: the copy is not done again */
	in.resume = true;
	in.token_stage = RESUME_DUMPED;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_COPY].action, MIGPLAN_RESUMED);
	ck_assert_int_eq(p.steps[MIGPLAN_RESTORE].action, MIGPLAN_RUN);
	/* the dump method has no Copy phase */
	in.copy_direct = false;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_COPY].action, MIGPLAN_LEFT_OUT);
}
END_TEST

START_TEST(an_online_run_killed_after_its_dump_resumes_at_restore)
{
	migplan p;

	plan_of(&p, true, true, RESUME_DUMPED);
	ck_assert(p.resumed);
	ck_assert_str_eq(ran(&p), "Validate Recover Reattach Restore Guard StreamApply " ONLINE_FINISH);
	ck_assert_int_eq(p.steps[MIGPLAN_DUMP].action, MIGPLAN_RESUMED);
	ck_assert_int_eq(p.steps[MIGPLAN_PREPARE_SNAPSHOT].action, MIGPLAN_RESUMED);
	/* the restore starts again from the dump, silently */
	ck_assert_str_eq(notes(&p), "");
	ck_assert_str_eq(saves(&p), "Restore Cutover Complete");
}
END_TEST

START_TEST(an_offline_run_killed_after_its_dump_restores_again_from_it)
{
	migplan p;

	plan_of(&p, false, true, RESUME_DUMPED);
	ck_assert_str_eq(ran(&p), "Validate Recover Restore " OFFLINE_FINISH);
	ck_assert_str_eq(saves(&p), "Restore Complete");
}
END_TEST

START_TEST(a_run_killed_while_streaming_streams_again_without_restoring)
{
	migplan p;

	plan_of(&p, true, true, RESUME_RESTORED);
	ck_assert_str_eq(ran(&p), "Validate Recover Reattach Guard StreamApply " ONLINE_FINISH);
	ck_assert_int_eq(p.steps[MIGPLAN_RESTORE].action, MIGPLAN_RESUMED);
	ck_assert_str_eq(notes(&p),
	                 "Restore: resuming: dump and restore were done by the interrupted run");
	ck_assert_str_eq(saves(&p), "Cutover Complete");
}
END_TEST

START_TEST(an_offline_run_killed_after_its_restore_only_finishes)
{
	migplan p;

	plan_of(&p, false, true, RESUME_RESTORED);
	ck_assert_str_eq(ran(&p), "Validate Recover " OFFLINE_FINISH);
	ck_assert_str_eq(notes(&p),
	                 "Restore: resuming: dump and restore were done by the interrupted run");
	ck_assert_str_eq(saves(&p), "Complete");
}
END_TEST

START_TEST(a_run_killed_after_the_cutover_only_puts_the_target_back_and_cleans_up)
{
	migplan p;

	plan_of(&p, true, true, RESUME_CUTOVER);
	ck_assert_str_eq(ran(&p), "Validate Recover ReattachAfterCutover " ONLINE_FINISH);
	ck_assert_int_eq(p.steps[MIGPLAN_GUARD].action, MIGPLAN_RESUMED);
	ck_assert_int_eq(p.steps[MIGPLAN_STREAM_APPLY].action, MIGPLAN_RESUMED);
	ck_assert_str_eq(notes(&p), "Restore: resuming: the interrupted run had cut over already");
	ck_assert_str_eq(saves(&p), "Complete");
}
END_TEST

START_TEST(a_completed_run_resumed_has_nothing_left_to_do)
{
	for (int online = 0; online <= 1; online++)
	{
		migplan p;

		plan_of(&p, online, true, RESUME_COMPLETE);
		ck_assert_str_eq(ran(&p), "");
		ck_assert_str_eq(saves(&p), "");
		/* said once, at Complete, and the run ends well */
		ck_assert_str_eq(notes(&p),
		                 "Complete: the interrupted run had completed: nothing to resume");
		ck_assert_int_eq(p.steps[MIGPLAN_VALIDATE].action, MIGPLAN_RESUMED);
	}
}
END_TEST

START_TEST(a_run_killed_before_its_dump_finished_cannot_resume_and_begins_again)
{
	const resume_stage early[] = {RESUME_NONE, RESUME_STARTED, RESUME_SNAPSHOT};

	for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++)
	{
		migplan p, fresh;

		ck_assert(!migplan_resumable(early[i]));
		plan_of(&p, true, true, early[i]);
		plan_of(&fresh, true, false, RESUME_NONE);
		ck_assert(!p.resumed);
		ck_assert_str_eq(ran(&p), ran(&fresh));
		ck_assert_str_eq(saves(&p), saves(&fresh));
	}
	ck_assert(migplan_resumable(RESUME_DUMPED));
	ck_assert(migplan_resumable(RESUME_COMPLETE));
}
END_TEST

START_TEST(a_token_left_for_force_clean_does_not_make_a_run_resume)
{
	migplan p;

	/* --force-clean with a token at Restore: without --resume the run is a fresh one */
	plan_of(&p, true, false, RESUME_RESTORED);
	ck_assert(!p.resumed);
	ck_assert_str_eq(saves(&p), "Validate PrepareSnapshot Dump Restore Cutover Complete");
	ck_assert_str_eq(notes(&p), "");
}
END_TEST

/* Every token stage in both modes: what a --resume runs, saves and says. */
static const struct
{
	bool online;
	resume_stage stage;
	const char *ran, *saves, *notes;
} resumes[] = {
    {false, RESUME_NONE, "Validate Recover Dump Restore " OFFLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Complete", ""},
    {false, RESUME_STARTED, "Validate Recover Dump Restore " OFFLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Complete", ""},
    {false, RESUME_SNAPSHOT, "Validate Recover Dump Restore " OFFLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Complete", ""},
    {false, RESUME_DUMPED, "Validate Recover Restore " OFFLINE_FINISH, "Restore Complete", ""},
    {false, RESUME_RESTORED, "Validate Recover " OFFLINE_FINISH, "Complete",
     "Restore: resuming: dump and restore were done by the interrupted run"},
    {false, RESUME_CUTOVER, "Validate Recover " OFFLINE_FINISH, "Complete",
     "Restore: resuming: the interrupted run had cut over already"},
    {false, RESUME_COMPLETE, "", "",
     "Complete: the interrupted run had completed: nothing to resume"},
    {true, RESUME_NONE,
     "Validate Recover PrepareSnapshot Dump Restore Guard StreamApply " ONLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Cutover Complete", ""},
    {true, RESUME_STARTED,
     "Validate Recover PrepareSnapshot Dump Restore Guard StreamApply " ONLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Cutover Complete", ""},
    {true, RESUME_SNAPSHOT,
     "Validate Recover PrepareSnapshot Dump Restore Guard StreamApply " ONLINE_FINISH,
     "Validate PrepareSnapshot Dump Restore Cutover Complete", ""},
    {true, RESUME_DUMPED, "Validate Recover Reattach Restore Guard StreamApply " ONLINE_FINISH,
     "Restore Cutover Complete", ""},
    {true, RESUME_RESTORED, "Validate Recover Reattach Guard StreamApply " ONLINE_FINISH,
     "Cutover Complete", "Restore: resuming: dump and restore were done by the interrupted run"},
    {true, RESUME_CUTOVER, "Validate Recover ReattachAfterCutover " ONLINE_FINISH, "Complete",
     "Restore: resuming: the interrupted run had cut over already"},
    {true, RESUME_COMPLETE, "", "",
     "Complete: the interrupted run had completed: nothing to resume"},
};

START_TEST(every_stage_in_both_modes_resumes_where_its_token_says)
{
	migplan p;

	plan_of(&p, resumes[_i].online, true, resumes[_i].stage);
	ck_assert_msg(strcmp(ran(&p), resumes[_i].ran) == 0, "%s at %s runs %s",
	              resumes[_i].online ? "online" : "offline", resume_stage_name(resumes[_i].stage),
	              ran(&p));
	ck_assert_str_eq(saves(&p), resumes[_i].saves);
	ck_assert_str_eq(notes(&p), resumes[_i].notes);
	/* a resumed run never takes the token back */
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
	{
		const migplan_step *s = &p.steps[i];

		ck_assert_int_eq(s->phase, i);
		if (p.resumed && s->save_before != RESUME_NONE)
			ck_assert_int_gt(s->save_before, resumes[_i].stage);
		if (p.resumed && s->save_after != RESUME_NONE)
			ck_assert_int_gt(s->save_after, resumes[_i].stage);
		if (s->action != MIGPLAN_RUN)
			ck_assert(s->save_before == RESUME_NONE && s->save_after == RESUME_NONE);
	}
}
END_TEST

START_TEST(the_options_add_and_leave_out_their_phases)
{
	migplan_input in = {.online = true};
	migplan p;

	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_SEQUENCE_SYNC].action, MIGPLAN_LEFT_OUT);
	ck_assert_int_eq(p.steps[MIGPLAN_VERIFY].action, MIGPLAN_LEFT_OUT);
	ck_assert_int_eq(p.steps[MIGPLAN_PLAN].action, MIGPLAN_LEFT_OUT);
	in.sequence_sync = in.verify = in.dry_run = true;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_SEQUENCE_SYNC].action, MIGPLAN_RUN);
	ck_assert_int_eq(p.steps[MIGPLAN_VERIFY].action, MIGPLAN_RUN);
	/* the dry run prints the plan right after Validate, and the run ends there */
	ck_assert_int_eq(p.steps[MIGPLAN_PLAN].action, MIGPLAN_RUN);
	ck_assert_int_lt(MIGPLAN_VALIDATE, MIGPLAN_PLAN);
	ck_assert_int_lt(MIGPLAN_PLAN, MIGPLAN_RECOVER);
	/* the sequence sync is of the stream's cutover: never offline */
	in.online = false;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_SEQUENCE_SYNC].action, MIGPLAN_LEFT_OUT);
}
END_TEST

START_TEST(large_objects_are_carried_at_the_cutover_when_the_dump_copied_them)
{
	migplan_input in = {.online = true, .sequence_sync = true, .large_objects = true};
	migplan p;

	migplan_build(&in, &p);
	/* after the final drain, before the sequences: the source is quiet by then */
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].action, MIGPLAN_RUN);
	ck_assert_int_lt(MIGPLAN_STREAM_APPLY, MIGPLAN_LARGE_OBJECTS);
	ck_assert_int_lt(MIGPLAN_LARGE_OBJECTS, MIGPLAN_SEQUENCE_SYNC);
	/* it saves no stage: a run killed during it resumes at Cutover and carries them again */
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].save_before, RESUME_NONE);
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].save_after, RESUME_NONE);
	in.resume = true;
	in.token_stage = RESUME_CUTOVER;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].action, MIGPLAN_RUN);
	/* a completed run does not touch them again */
	in.token_stage = RESUME_COMPLETE;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].action, MIGPLAN_RESUMED);
	/* filtered or schema-only, the dump copied none: there are none to carry */
	in.resume = false;
	in.large_objects = false;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].action, MIGPLAN_LEFT_OUT);
	/* offline, the dump copies them at the end state: nothing to carry */
	in.large_objects = true;
	in.online = false;
	migplan_build(&in, &p);
	ck_assert_int_eq(p.steps[MIGPLAN_LARGE_OBJECTS].action, MIGPLAN_LEFT_OUT);
}
END_TEST

START_TEST(a_dry_run_lists_the_phases_of_its_mode)
{
	migplan_input in = {.dry_run = true, .sequence_sync = true, .large_objects = true};
	migplan p;
	char line[512];

	migplan_build(&in, &p);
	ck_assert(migplan_phases_line(&p, line, sizeof(line)));
	ck_assert_str_eq(line, "Validate -> Dump -> Restore -> Complete");
	in.online = true;
	migplan_build(&in, &p);
	ck_assert(migplan_phases_line(&p, line, sizeof(line)));
	ck_assert_str_eq(line, "Validate -> PrepareSnapshot -> Dump -> Restore -> StreamApply -> "
	                       "(Lag ...) -> CaughtUp -> Cutover on Ctrl+C -> LargeObjects -> "
	                       "SequenceSync -> Complete");
	in.sequence_sync = false;
	migplan_build(&in, &p);
	ck_assert(migplan_phases_line(&p, line, sizeof(line)));
	ck_assert_str_eq(line,
	                 "Validate -> PrepareSnapshot -> Dump -> Restore -> StreamApply -> "
	                 "(Lag ...) -> CaughtUp -> Cutover on Ctrl+C -> LargeObjects -> Complete");
	/* a dry run of a resume lists the whole migration, as one of a fresh run does */
	in.resume = true;
	in.token_stage = RESUME_CUTOVER;
	migplan_build(&in, &p);
	ck_assert(migplan_phases_line(&p, line, sizeof(line)));
	ck_assert_str_eq(line,
	                 "Validate -> PrepareSnapshot -> Dump -> Restore -> StreamApply -> "
	                 "(Lag ...) -> CaughtUp -> Cutover on Ctrl+C -> LargeObjects -> Complete");
	/* too small a buffer is said, not a cut line passed on */
	ck_assert(!migplan_phases_line(&p, line, 20));
	ck_assert_uint_lt(strlen(line), 20);
}
END_TEST

/* ---- the outcome of a failed run */

#define HINT_RESTART                                                                              \
	"nothing was cut over; the slot and publications are dropped and the target holds a partial " \
	"copy: start over with --force-clean --drop-target-first"
#define HINT_SLOT_GONE                                                                      \
	"nothing was cut over; the target holds a partial copy: start over with --force-clean " \
	"--drop-target-first"
#define HINT_VERIFY_ONLINE                                                                 \
	"the migration is done and cut over, but the target is not known to equal the source " \
	"(--verify strict): fix the target, then run again with --resume to verify and complete"
#define HINT_VERIFY_OFFLINE                                                                      \
	"the migration is done, but the target is not known to equal the source (--verify strict): " \
	"fix the target, then run again with --resume to verify and complete"
#define HINT_KEPT_ONLINE                                                                        \
	"the slot and the dump are kept: fix the cause and run again with --resume, or start over " \
	"with --force-clean"
#define HINT_KEPT_OFFLINE                                                                         \
	"the dump is kept: fix the cause and run again with --resume (the restore starts again from " \
	"the dump), or start over with --force-clean"
#define HINT_COPY_STOPPED                                                                     \
	"the copy was interrupted (its snapshot is gone): run again with --resume to start over " \
	"(the partial copy on the target is dropped first), or with --force-clean "               \
	"--drop-target-first"
#define HINT_NOTHING_KEPT                                                                  \
	"nothing could be kept (the dump had not finished): fix the cause and run again with " \
	"--resume to start over, or with --force-clean"

/* Each way a run ends: what the runner cleans up and says. */
static const struct
{
	const char *story;
	migplan_failure f;
	migplan_outcome o; /* stage compared as a string, hint too (or NULL) */
} outcomes[] = {
    {"a run that completed has nothing to handle",
     {.exit_code = EXIT_OK, .online = true, .wrote_token = true, .created_slot = true},
     {.failed = false, .stage = "Error"}},
    {"a run that found differences has nothing to handle",
     {.exit_code = EXIT_DIFFERS, .have_token = true, .token_stage = RESUME_COMPLETE},
     {.failed = false, .stage = "Error"}},
    {"a stream that lost a change puts the target back and drops the slot and publications",
     {.exit_code = EXIT_ERROR,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_RESTORED,
      .wrote_token = true,
      .restart = true,
      .created_slot = true,
      .guard_applied = true},
     {.failed = true,
      .stage = "Error",
      .undo_guard = true,
      .drop_created = true,
      .hint = HINT_RESTART,
      .guard_note = true}},
    {"a slot dropped under the run puts the target back and says start over",
     {.exit_code = EXIT_ERROR,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_RESTORED,
      .slot_gone = true,
      .created_slot = true,
      .guard_applied = true},
     {.failed = true, .stage = "Error", .undo_guard = true, .hint = HINT_SLOT_GONE}},
    {"a strict verify that failed online says fix the target and resume",
     {.exit_code = EXIT_ERROR,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_CUTOVER,
      .verify_failed = true},
     {.failed = true, .stage = "Error", .hint = HINT_VERIFY_ONLINE}},
    {"a strict verify that failed offline says fix the target and resume",
     {.exit_code = EXIT_ERROR,
      .have_token = true,
      .token_stage = RESUME_RESTORED,
      .wrote_token = true,
      .verify_failed = true},
     {.failed = true, .stage = "Error", .hint = HINT_VERIFY_OFFLINE}},
    {"an online error after the dump keeps the slot, the dump and the guard",
     {.exit_code = EXIT_ERROR,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_DUMPED,
      .wrote_token = true,
      .created_slot = true,
      .created_publication = true,
      .guard_applied = true},
     {.failed = true, .stage = "Error", .hint = HINT_KEPT_ONLINE, .guard_note = true}},
    {"an offline error after the restore keeps the dump",
     {.exit_code = EXIT_ERROR, .have_token = true, .token_stage = RESUME_RESTORED},
     {.failed = true, .stage = "Error", .hint = HINT_KEPT_OFFLINE}},
    {"an error before the dump finished drops the slot and says a resume starts over",
     {.exit_code = EXIT_ERROR,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_SNAPSHOT,
      .wrote_token = true,
      .created_slot = true},
     {.failed = true, .stage = "Error", .drop_created = true, .hint = HINT_NOTHING_KEPT}},
    {"an error before any token drops the publication the run created",
     {.exit_code = EXIT_ERROR, .online = true, .created_publication = true},
     {.failed = true, .stage = "Error", .drop_created = true}},
    {"a failed Validate created nothing and only says its error",
     {.exit_code = EXIT_ERROR, .online = true},
     {.failed = true, .stage = "Error"}},
    {"an earlier run's token (found, not written) before its dump is left alone",
     {.exit_code = EXIT_ERROR, .have_token = true, .token_stage = RESUME_SNAPSHOT},
     {.failed = true, .stage = "Error"}},
    {"Ctrl+C during the dump drops the slot and the token",
     {.exit_code = EXIT_ABORTED,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_SNAPSHOT,
      .wrote_token = true,
      .created_slot = true},
     {.failed = true, .stage = "Aborted", .drop_created = true, .remove_token = true}},
    {"Ctrl+C during a direct copy drops the slot, keeps the token and says --resume starts over",
     {.exit_code = EXIT_ABORTED,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_SNAPSHOT,
      .wrote_token = true,
      .created_slot = true,
      .copy_direct = true},
     {.failed = true, .stage = "Aborted", .drop_created = true, .hint = HINT_COPY_STOPPED}},
    {"Ctrl+C while streaming keeps everything and says the guard stays",
     {.exit_code = EXIT_ABORTED,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_RESTORED,
      .wrote_token = true,
      .created_slot = true,
      .guard_applied = true},
     {.failed = true, .stage = "Aborted", .guard_note = true}},
    {"Ctrl+C before anything was saved leaves nothing to remove",
     {.exit_code = EXIT_ABORTED, .online = true, .created_slot = true},
     {.failed = true, .stage = "Aborted"}},
    {"another exit code only says its error and the guard",
     {.exit_code = EXIT_USAGE,
      .online = true,
      .have_token = true,
      .token_stage = RESUME_SNAPSHOT,
      .wrote_token = true,
      .created_slot = true,
      .guard_applied = true},
     {.failed = true, .stage = "Error", .guard_note = true}},
};

START_TEST(each_way_a_run_ends_gets_its_cleanup_and_hint)
{
	const migplan_outcome *want = &outcomes[_i].o;
	migplan_outcome o;

	migplan_outcome_of(&outcomes[_i].f, &o);
	ck_assert_msg(o.failed == want->failed && o.undo_guard == want->undo_guard &&
	                  o.drop_created == want->drop_created &&
	                  o.remove_token == want->remove_token && o.guard_note == want->guard_note,
	              "%s: failed %d undo_guard %d drop_created %d remove_token %d guard_note %d",
	              outcomes[_i].story, o.failed, o.undo_guard, o.drop_created, o.remove_token,
	              o.guard_note);
	ck_assert_msg(strcmp(o.stage, want->stage) == 0, "%s: %s", outcomes[_i].story, o.stage);
	if (want->hint)
		ck_assert_msg(o.hint && strcmp(o.hint, want->hint) == 0, "%s: %s", outcomes[_i].story,
		              o.hint ? o.hint : "(no hint)");
	else
		ck_assert_msg(o.hint == NULL, "%s: %s", outcomes[_i].story, o.hint);
}
END_TEST

/* ---- the token found when a run starts */

static const struct
{
	const char *story;
	migplan_token_input in;
	migplan_token_verdict verdict;
} tokens[] = {
    {"a first run finds nothing and goes", {0}, MIGPLAN_TOKEN_GO},
    {"--force-clean goes whatever it finds",
     {.found = true, .token_stage = RESUME_COMPLETE, .force_clean = true, .dump_exists = true},
     MIGPLAN_TOKEN_CLEAN},
    {"--force-clean with --resume still cleans",
     {.found = true, .token_stage = RESUME_DUMPED, .resume = true, .force_clean = true},
     MIGPLAN_TOKEN_CLEAN},
    {"--resume of a run killed before it validated begins", {.resume = true}, MIGPLAN_TOKEN_BEGIN},
    {"--resume without a token but with a dump is refused",
     {.resume = true, .dump_exists = true},
     MIGPLAN_TOKEN_DUMP_EXISTS},
    {"a completed run's token without --resume is refused",
     {.found = true, .token_stage = RESUME_COMPLETE, .same_config = true},
     MIGPLAN_TOKEN_COMPLETED},
    {"an interrupted run's token without --resume is refused",
     {.found = true, .token_stage = RESUME_DUMPED, .same_config = true, .dump_exists = true},
     MIGPLAN_TOKEN_LEFT},
    {"--resume with other options is refused",
     {.found = true, .token_stage = RESUME_RESTORED, .resume = true},
     MIGPLAN_TOKEN_DIFFERS},
    {"--resume before the dump finished starts over",
     {.found = true, .token_stage = RESUME_SNAPSHOT, .same_config = true, .resume = true},
     MIGPLAN_TOKEN_START_OVER},
    {"--resume of a run killed while the slot was made starts over",
     {.found = true, .token_stage = RESUME_STARTED, .same_config = true, .resume = true},
     MIGPLAN_TOKEN_START_OVER},
    {"--resume after the dump goes on",
     {.found = true, .token_stage = RESUME_DUMPED, .same_config = true, .resume = true},
     MIGPLAN_TOKEN_GO},
    {"--resume of a completed run goes on (to say so)",
     {.found = true, .token_stage = RESUME_COMPLETE, .same_config = true, .resume = true},
     MIGPLAN_TOKEN_GO},
};

START_TEST(each_token_found_at_the_start_gets_its_verdict)
{
	ck_assert_msg(migplan_check_token(&tokens[_i].in) == tokens[_i].verdict, "%s",
	              tokens[_i].story);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("migplan");
	TCase *plan = tcase_create("plan"), *outcome = tcase_create("outcome");
	TCase *token = tcase_create("token");
	SRunner *sr;
	int failed;

	tcase_add_test(plan, a_fresh_offline_run_dumps_restores_and_saves_each_stage);
	tcase_add_test(plan, a_fresh_online_run_takes_a_snapshot_streams_and_cuts_over);
	tcase_add_test(plan, a_direct_copy_is_resumable_only_once_its_rows_are_on_the_target);
	tcase_add_test(plan, an_online_run_killed_after_its_dump_resumes_at_restore);
	tcase_add_test(plan, an_offline_run_killed_after_its_dump_restores_again_from_it);
	tcase_add_test(plan, a_run_killed_while_streaming_streams_again_without_restoring);
	tcase_add_test(plan, an_offline_run_killed_after_its_restore_only_finishes);
	tcase_add_test(plan, a_run_killed_after_the_cutover_only_puts_the_target_back_and_cleans_up);
	tcase_add_test(plan, a_completed_run_resumed_has_nothing_left_to_do);
	tcase_add_test(plan, a_run_killed_before_its_dump_finished_cannot_resume_and_begins_again);
	tcase_add_test(plan, a_token_left_for_force_clean_does_not_make_a_run_resume);
	tcase_add_loop_test(plan, every_stage_in_both_modes_resumes_where_its_token_says, 0,
	                    (int)(sizeof(resumes) / sizeof(resumes[0])));
	tcase_add_test(plan, the_options_add_and_leave_out_their_phases);
	tcase_add_test(plan, large_objects_are_carried_at_the_cutover_when_the_dump_copied_them);
	tcase_add_test(plan, a_dry_run_lists_the_phases_of_its_mode);
	tcase_add_loop_test(outcome, each_way_a_run_ends_gets_its_cleanup_and_hint, 0,
	                    (int)(sizeof(outcomes) / sizeof(outcomes[0])));
	tcase_add_loop_test(token, each_token_found_at_the_start_gets_its_verdict, 0,
	                    (int)(sizeof(tokens) / sizeof(tokens[0])));
	suite_add_tcase(s, plan);
	suite_add_tcase(s, outcome);
	suite_add_tcase(s, token);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
