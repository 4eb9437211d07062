/*
 * migplan.c — the phase table of a migration and the decisions read from
 * it: which phases a run (or a resumed run) walks, which token stages it
 * saves, what a failed run cleans up and says, and whether a token found
 * next to the dump lets a run start.
 *
 * A phase runs when the run's mode and options include it and the token's
 * stage lies in [from, until): a fresh run is at RESUME_NONE; a phase whose
 * work the token says is done (stage >= until) is skipped as resumed; one
 * that only a resume needs (stage < from) is left out. A stage is saved only
 * when it moves the token forward, so a resumed run never takes it back.
 *
 * Owns: nothing. Never: does I/O or allocates.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "migplan.h"

/* Which runs a phase belongs to: a mode, and the options it needs. */
#define W_OFFLINE 0x01u
#define W_ONLINE  0x02u
#define W_ANY     (W_OFFLINE | W_ONLINE)
#define W_DRY_RUN 0x04u /* only in a dry run */
#define W_SEQSYNC 0x08u /* only with the sequence sync */
#define W_VERIFY  0x10u /* only with --verify */
#define W_DIRECT  0x20u /* only with --copy-method direct */
#define W_LOBS    0x40u /* only when the dump copies large objects */

typedef struct migplan_def
{
	migplan_phase phase;
	const char *name;
	const char *listed; /* in a dry run's "phases:" line, or NULL */
	unsigned when;
	resume_stage from, until;             /* runs while from <= the token's stage < until */
	resume_stage save_before, save_after; /* the token's stage around it */
} migplan_def;

#define N         RESUME_NONE
#define STREAMING "StreamApply -> (Lag ...) -> CaughtUp -> Cutover on Ctrl+C"
/* clang-format off */
static const migplan_def migplan_table[MIGPLAN_NPHASES] = {
	/* phase                          name                    listed             when                  from            until            save before      save after */
	{MIGPLAN_VALIDATE,               "Validate",             "Validate",        W_ANY,                N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_PLAN,                   "Plan",                 NULL,              W_ANY | W_DRY_RUN,    N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_RECOVER,                "Recover",              NULL,              W_ANY,                N,              RESUME_COMPLETE, N,               RESUME_STARTED},
	{MIGPLAN_PREPARE_SNAPSHOT,       "PrepareSnapshot",      "PrepareSnapshot", W_ONLINE,             N,              RESUME_SNAPSHOT, N,               N},
	{MIGPLAN_REATTACH,               "Reattach",             NULL,              W_ONLINE,             RESUME_DUMPED,  RESUME_CUTOVER,  N,               N},
	{MIGPLAN_REATTACH_AFTER_CUTOVER, "ReattachAfterCutover", NULL,              W_ONLINE,             RESUME_CUTOVER, RESUME_COMPLETE, N,               N},
	{MIGPLAN_DUMP,                   "Dump",                 "Dump",            W_ANY,                N,              RESUME_DUMPED,   RESUME_SNAPSHOT, RESUME_DUMPED},
	{MIGPLAN_COPY,                   "Copy",                 "Copy",            W_ANY | W_DIRECT,     N,              RESUME_DUMPED,   N,               RESUME_DUMPED},
	{MIGPLAN_RESTORE,                "Restore",              "Restore",         W_ANY,                N,              RESUME_RESTORED, N,               RESUME_RESTORED},
	{MIGPLAN_GUARD,                  "Guard",                NULL,              W_ONLINE,             N,              RESUME_CUTOVER,  N,               N},
	{MIGPLAN_STREAM_APPLY,           "StreamApply",          STREAMING,         W_ONLINE,             N,              RESUME_CUTOVER,  N,               RESUME_CUTOVER},
	{MIGPLAN_LARGE_OBJECTS,          "LargeObjects",         "LargeObjects",    W_ONLINE | W_LOBS,    N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_GUARD_UNDO,             "GuardUndo",            NULL,              W_ONLINE,             N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_SEQUENCE_SYNC,          "SequenceSync",         "SequenceSync",    W_ONLINE | W_SEQSYNC, N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_CLEANUP,                "Cleanup",              NULL,              W_ANY,                N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_GUARD_VALIDATE,         "GuardValidate",        NULL,              W_ONLINE,             N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_DROP_PROGRESS,          "DropProgress",         NULL,              W_ANY,                N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_VERIFY,                 "Verify",               NULL,              W_ANY | W_VERIFY,     N,              RESUME_COMPLETE, N,               N},
	{MIGPLAN_COMPLETE,               "Complete",             "Complete",        W_ANY,                N,              RESUME_COMPLETE, RESUME_COMPLETE, N},
};
/* clang-format on */
#undef STREAMING
#undef N

bool
migplan_resumable(resume_stage stage)
{
	return stage >= RESUME_DUMPED;
}

/* Does the run in belong to a phase that wants when? */
static bool
migplan_wanted(const migplan_input *in, unsigned when)
{
	return (when & (in->online ? W_ONLINE : W_OFFLINE)) != 0 &&
	       (!(when & W_DRY_RUN) || in->dry_run) && (!(when & W_SEQSYNC) || in->sequence_sync) &&
	       (!(when & W_VERIFY) || in->verify) && (!(when & W_DIRECT) || in->copy_direct) &&
	       (!(when & W_LOBS) || in->large_objects);
}

/* The info a resumed run gives when it reaches phase, skipped at stage. */
static const char *
migplan_note(migplan_phase phase, resume_stage stage)
{
	if (phase == MIGPLAN_RESTORE && stage >= RESUME_CUTOVER && stage < RESUME_COMPLETE)
		return "resuming: the interrupted run had cut over already";
	if (phase == MIGPLAN_RESTORE && stage == RESUME_RESTORED)
		return "resuming: dump and restore were done by the interrupted run";
	if (phase == MIGPLAN_COMPLETE && stage >= RESUME_COMPLETE)
		return "the interrupted run had completed: nothing to resume";
	return NULL;
}

void
migplan_build(const migplan_input *in, migplan *out)
{
	bool resumed = in->resume && migplan_resumable(in->token_stage);
	resume_stage at = resumed ? in->token_stage : RESUME_NONE;

	memset(out, 0, sizeof(*out));
	out->resumed = resumed;
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
	{
		const migplan_def *d = &migplan_table[i];
		migplan_step *s = &out->steps[i];

		s->phase = d->phase;
		s->name = d->name;
		if (!migplan_wanted(in, d->when) || at < d->from)
			s->action = MIGPLAN_LEFT_OUT;
		else if (at >= d->until)
			s->action = MIGPLAN_RESUMED;
		else
			s->action = MIGPLAN_RUN;
		if (s->action == MIGPLAN_RUN)
		{
			s->save_before = d->save_before > at ? d->save_before : RESUME_NONE;
			s->save_after = d->save_after > at ? d->save_after : RESUME_NONE;
			/*
			 * a direct copy's dump holds no rows: the run is resumable (Dumped)
			 * only once the Copy phase has put them on the target
			 */
			if (in->copy_direct && d->phase == MIGPLAN_DUMP)
				s->save_after = RESUME_NONE;
		}
		if (s->action == MIGPLAN_RESUMED)
			s->note = migplan_note(d->phase, at);
	}
}

bool
migplan_phases_line(const migplan *p, char *buf, size_t size)
{
	size_t len = 0;

	if (size > 0)
		buf[0] = '\0';
	for (int i = 0; i < MIGPLAN_NPHASES; i++)
	{
		const char *listed = migplan_table[p->steps[i].phase].listed;
		int n;

		if (listed == NULL || p->steps[i].action == MIGPLAN_LEFT_OUT)
			continue;
		n = snprintf(buf + len, size - len, "%s%s", len ? " -> " : "", listed);
		if (n < 0 || (size_t)n >= size - len)
			return false;
		len += (size_t)n;
	}
	return true;
}

/* The hints of a failed run. */
#define HINT_RESTART                                                                              \
	"nothing was cut over; the slot and publications are dropped and the target holds a partial " \
	"copy: start over with --force-clean --drop-target-first"
#define HINT_SLOT_GONE                                                                      \
	"nothing was cut over; the target holds a partial copy: start over with --force-clean " \
	"--drop-target-first"
#define HINT_VERIFY(cut)                                                                       \
	"the migration is done" cut ", but the target is not known to equal the source (--verify " \
	"strict): fix the target, then run again with --resume to verify and complete"
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

void
migplan_outcome_of(const migplan_failure *f, migplan_outcome *out)
{
	bool dumped = f->have_token && f->token_stage >= RESUME_DUMPED;

	memset(out, 0, sizeof(*out));
	out->stage = f->exit_code == EXIT_ABORTED ? "Aborted" : "Error";
	out->failed = f->exit_code != EXIT_OK && f->exit_code != EXIT_DIFFERS;
	if (!out->failed)
		return;
	if (f->restart || f->slot_gone)
	{
		/* this migration cannot go on: the target's triggers and keys come back */
		out->undo_guard = true;
		/* the stream lacks a change: resuming cannot help, so nothing is kept */
		out->drop_created = f->restart;
		out->hint = f->restart ? HINT_RESTART : HINT_SLOT_GONE;
	}
	else if (f->verify_failed)
		out->hint = f->online ? HINT_VERIFY(" and cut over") : HINT_VERIFY("");
	else if (f->exit_code == EXIT_ERROR && dumped)
		out->hint = f->online ? HINT_KEPT_ONLINE : HINT_KEPT_OFFLINE;
	else if (f->exit_code == EXIT_ERROR && f->wrote_token)
	{
		/* nothing to resume from: leave no slot holding WAL; --resume starts over */
		out->drop_created = true;
		out->hint = HINT_NOTHING_KEPT;
	}
	else if (f->exit_code == EXIT_ERROR && (f->created_slot || f->created_publication))
		out->drop_created = true;
	else if (f->exit_code == EXIT_ABORTED && f->have_token && !dumped && f->copy_direct)
	{
		/* the target may hold rows of the copy: the token stays so --resume cleans them */
		out->drop_created = true;
		out->hint = HINT_COPY_STOPPED;
	}
	else if (f->exit_code == EXIT_ABORTED && f->have_token && !dumped)
	{
		/* aborted before the dump finished: its snapshot is gone, nothing to resume */
		out->drop_created = true;
		out->remove_token = true;
	}
	out->guard_note = !f->slot_gone && f->guard_applied;
}

migplan_token_verdict
migplan_check_token(const migplan_token_input *in)
{
	if (in->force_clean)
		return MIGPLAN_TOKEN_CLEAN;
	if (!in->found && in->resume)
		/* killed before it had validated anything: nothing was created, so begin */
		return in->dump_exists ? MIGPLAN_TOKEN_DUMP_EXISTS : MIGPLAN_TOKEN_BEGIN;
	if (!in->found)
		return MIGPLAN_TOKEN_GO;
	if (!in->resume)
		return in->token_stage == RESUME_COMPLETE ? MIGPLAN_TOKEN_COMPLETED : MIGPLAN_TOKEN_LEFT;
	if (!in->same_config)
		return MIGPLAN_TOKEN_DIFFERS;
	/* its snapshot died with it: the only way on is from the beginning */
	return migplan_resumable(in->token_stage) ? MIGPLAN_TOKEN_GO : MIGPLAN_TOKEN_START_OVER;
}
