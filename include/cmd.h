/*
 * cmd.h — the commands of pg_dbmigrator and the process exit codes.
 *
 * Each command parses its own arguments (argv[0] is the command word) and
 * returns an exit code; only main() calls exit.
 */
#ifndef CMD_H
#define CMD_H

#include "pgdbm_attr.h"

/* Exit codes (docs/ARCHITECTURE.md, man page EXIT STATUS). */
enum
{
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_ABORTED = 3, /* aborted, resumable */
	/*
	 * Done, but the comparison of source and target found differences or could
	 * not be made: a migration cut over (with --verify warn), or `verify`.
	 */
	EXIT_DIFFERS = 4
};

/* pg_dbmigrator decode: print the decoded stream of a slot. */
PGDBM_MUST_CHECK int cmd_decode(int argc, char **argv);

/* pg_dbmigrator bench: apply a slot's backlog to a target and report throughput. */
PGDBM_MUST_CHECK int cmd_bench(int argc, char **argv);

/* pg_dbmigrator verify: compare source and target. */
PGDBM_MUST_CHECK int cmd_verify(int argc, char **argv);

/* pg_dbmigrator status: where a migration is. */
PGDBM_MUST_CHECK int cmd_status(int argc, char **argv);

/* pg_dbmigrator shadow VERB: refresh a live target through shadow tables and a swap. */
PGDBM_MUST_CHECK int cmd_shadow(int argc, char **argv);

/* pg_dbmigrator --mode offline|online: the migration (argv[0] is the program). */
PGDBM_MUST_CHECK int cmd_migrate(int argc, char **argv);

#endif /* CMD_H */
