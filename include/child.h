/*
 * child.h — pg_dump, pg_restore and friends as child processes: each in its
 * own process group (an interrupt stops the whole group, workers included),
 * the password only in the child's environment (PGPASSWORD), never in argv,
 * umask 077 (the files it writes are ours alone), stderr shown live and its
 * error lines summarised by kind.
 *
 * Owns: the child while it runs. Never: leaves a child behind: on interrupt
 * the group gets SIGTERM, then SIGKILL after a grace period.
 */
#ifndef CHILD_H
#define CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

typedef struct child_spec
{
	const char *const *argv;            /* argv[0]: the program's path; borrowed */
	const char *password;               /* put in PGPASSWORD, or NULL; borrowed */
	volatile sig_atomic_t *interrupted; /* stop the group once set (may be NULL) */
	bool show_stderr;                   /* copy its stderr lines to ours as they come */
	const char *stdout_path;            /* its stdout into this new file (0600), or NULL */
	/* progress on a terminal: count stderr lines containing this, out of total */
	const char *progress_match; /* NULL: none */
	const char *progress_label;
	int progress_total;
	/* or, when set, called with the lines counted so far at each one and about every
	 * 500 ms (the caller draws; child_run then prints no progress itself) */
	void (*on_progress)(void *arg, int counted);
	void *progress_arg; /* borrowed: on_progress's */
} child_spec;

typedef struct child_result
{
	int exit_code;    /* its exit status, or 128 + signal */
	bool interrupted; /* stopped because *interrupted was set */
	int error_lines;  /* stderr lines with "error:" */
	strbuf summary;   /* "N x <kind>" lines of those errors; caller frees */
} child_result;

/* Run the child to its end (or interrupt). False only if it could not start. */
PGDBM_MUST_CHECK bool child_run(const child_spec *spec, child_result *res, char *errbuf,
                                size_t errlen);

#endif /* CHILD_H */
