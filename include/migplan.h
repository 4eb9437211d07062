/*
 * migplan.h — the plan of one migration as data. The phase table names each
 * phase in the order a run walks them, the modes and options it belongs to,
 * the resume-token stages between which it still has work to do, and the
 * stages saved before and after it. From the run's mode, options and the
 * token of an interrupted run, migplan_build says for every phase: run it,
 * skip it (the interrupted run did it), or leave it out (not in this kind of
 * run), with the "resuming: ..." note to give. When a run fails,
 * migplan_outcome says what to clean up and what to tell the operator; when
 * a run starts, migplan_check_token says whether a token found next to the
 * dump lets it go on.
 *
 * Owns: nothing (the table and the messages are static). Never: connects,
 * prints, touches a file or allocates: every function here is pure.
 */
#ifndef MIGPLAN_H
#define MIGPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "resume.h"

/* The phases, in the order a run walks them. */
typedef enum migplan_phase
{
	MIGPLAN_VALIDATE,               /* the checks (both servers connected) */
	MIGPLAN_PLAN,                   /* --dry-run: print the plan; the run ends there */
	MIGPLAN_RECOVER,                /* a crashed run's settings put back; --force-clean */
	MIGPLAN_PREPARE_SNAPSHOT,       /* online: publications, slot, exported snapshot */
	MIGPLAN_REATTACH,               /* online --resume before the cutover: the slot again */
	MIGPLAN_REATTACH_AFTER_CUTOVER, /* online --resume after it: what finishing needs */
	MIGPLAN_DUMP,                   /* pg_dump into the dump directory */
	MIGPLAN_COPY,           /* --copy-method direct: the schema restored, the rows copied by COPY */
	MIGPLAN_RESTORE,        /* pg_restore (and ANALYZE) on the target */
	MIGPLAN_GUARD,          /* online: triggers, keys, identities held back */
	MIGPLAN_STREAM_APPLY,   /* online: stream and apply until the cutover */
	MIGPLAN_LARGE_OBJECTS,  /* online: large objects changed since the snapshot carried over */
	MIGPLAN_GUARD_UNDO,     /* online: what the guard held back put back */
	MIGPLAN_SEQUENCE_SYNC,  /* online: the sequences set to the source's values */
	MIGPLAN_CLEANUP,        /* the slot (but --keep-slot) and publications dropped */
	MIGPLAN_GUARD_VALIDATE, /* online: the re-added foreign keys validated */
	MIGPLAN_DROP_PROGRESS,  /* an online run's progress schema dropped */
	MIGPLAN_VERIFY,         /* --verify: source and target compared */
	MIGPLAN_COMPLETE,       /* the token says Complete; the Complete event */
	MIGPLAN_NPHASES
} migplan_phase;

/* What a run does with a phase. */
typedef enum migplan_action
{
	MIGPLAN_RUN,      /* run it */
	MIGPLAN_RESUMED,  /* skip it: the interrupted run had done it */
	MIGPLAN_LEFT_OUT, /* not part of this run: its mode, its options, or resume-only */
} migplan_action;

/* What the plan depends on. */
typedef struct migplan_input
{
	bool online;
	bool dry_run;
	bool sequence_sync;
	bool verify;      /* --verify warn or strict */
	bool copy_direct; /* --copy-method direct: the Copy phase, the dump holds no rows */
	bool resume;      /* --resume, with a token found */
	/*
	 * the token's stage when resuming (ignored otherwise); a token before
	 * RESUME_DUMPED cannot be resumed: the run starts from the beginning
	 */
	resume_stage token_stage;
	/* the dump copies large objects (nothing filtered, not schema-only): LargeObjects runs */
	bool large_objects;
} migplan_input;

typedef struct migplan_step
{
	migplan_phase phase;
	const char *name; /* static: the phase's name, the stage of its note */
	migplan_action action;
	/* the token's stage to save before and after it runs; RESUME_NONE: none */
	resume_stage save_before, save_after;
	const char *note; /* static: an info to give when the run reaches it, or NULL */
} migplan_step;

typedef struct migplan
{
	bool resumed;                        /* the run continues an interrupted one */
	migplan_step steps[MIGPLAN_NPHASES]; /* indexed by migplan_phase */
} migplan;

/* The plan of a run with in into *out (caller-allocated). */
void migplan_build(const migplan_input *in, migplan *out);

/* Can a token at this stage be resumed (its dump finished)? */
bool migplan_resumable(resume_stage stage);

/*
 * A dry run's "phases:" line ("Validate -> ... -> Complete", without the
 * prefix) into buf: the listed phases not left out of the plan. False if buf
 * is too small (the line truncated).
 */
PGDBM_MUST_CHECK bool migplan_phases_line(const migplan *p, char *buf, size_t size);

/* A failed (or finished) run, as the runner saw it at the end. */
typedef struct migplan_failure
{
	int exit_code; /* cmd.h: EXIT_OK, EXIT_ERROR, EXIT_ABORTED, EXIT_DIFFERS ... */
	bool online;
	bool have_token;          /* a token exists (loaded or saved) */
	resume_stage token_stage; /* its stage now */
	bool wrote_token;         /* this run saved it */
	bool restart;             /* the stream lacks a change: nothing can be resumed */
	bool slot_gone;           /* the slot was dropped or invalidated under the run */
	bool created_slot, created_publication;
	bool verify_failed; /* --verify strict found the target not equal */
	bool guard_applied; /* the guard was (found) in force on the target */
	bool copy_direct;   /* --copy-method direct: the target may hold a partial copy */
} migplan_failure;

/* What the runner does at the end of a failed run, in this order. */
typedef struct migplan_outcome
{
	bool failed;       /* an exit code but EXIT_OK or EXIT_DIFFERS: the rest applies */
	const char *stage; /* static: "Aborted" or "Error", the stage of the error and the guard note */
	bool undo_guard;   /* put back what the guard holds, and validate (a warning if it fails) */
	bool drop_created; /* drop the slot and the publications this run created */
	bool remove_token; /* remove the token: nothing to resume from */
	const char *hint;  /* static: how to go on, an info at stage "Error"; or NULL */
	bool guard_note;   /* say the guard stays in force, if the ledger records changes */
} migplan_outcome;

/* The outcome of the run f describes into *out (caller-allocated). */
void migplan_outcome_of(const migplan_failure *f, migplan_outcome *out);

/* May a run start, given the token found (or not) next to the dump? */
typedef enum migplan_token_verdict
{
	MIGPLAN_TOKEN_GO,          /* go on: fresh, or resuming a token whose dump finished */
	MIGPLAN_TOKEN_CLEAN,       /* --force-clean: go on if the dump path holds only a dump */
	MIGPLAN_TOKEN_BEGIN,       /* --resume without a token or a dump: begin, with a warning */
	MIGPLAN_TOKEN_START_OVER,  /* --resume before the dump had finished: clean, then begin */
	MIGPLAN_TOKEN_DUMP_EXISTS, /* refuse: --resume, no token, but the dump path exists */
	MIGPLAN_TOKEN_COMPLETED,   /* refuse: a completed run's token, no --resume */
	MIGPLAN_TOKEN_LEFT,        /* refuse: an interrupted run's token, no --resume */
	MIGPLAN_TOKEN_DIFFERS,     /* refuse: the token is of another configuration */
} migplan_token_verdict;

typedef struct migplan_token_input
{
	bool found;               /* a token next to the dump */
	resume_stage token_stage; /* its stage (found) */
	bool same_config;         /* its config hash and mode are this run's (found) */
	bool resume, force_clean;
	bool dump_exists; /* the dump path exists */
} migplan_token_input;

migplan_token_verdict migplan_check_token(const migplan_token_input *in);

#endif /* MIGPLAN_H */
