/*
 * migopts.h — `pg_dbmigrator --mode offline|online`'s command line, apart
 * from the work: every flag parsed into one options struct with its default,
 * every invalid value and conflicting pair refused with a message the
 * operator can act on, the usage text, the hash of what defines a migration
 * (a resume must continue the same one), and what a whole-server child gets:
 * its slot, its dump directory and its argv.
 *
 * Owns: nothing; every string the options hold is borrowed from argv or the
 * environment. Never: prints (but migopts_usage to the stream it is given),
 * connects, exits, or reads anything but argv and two environment variables.
 */
#ifndef MIGOPTS_H
#define MIGOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"

#define MIGOPTS_MAX_LIST 64 /* one more slot holds the NULL of a scope list */

/* pg-migrate's connection parts, in the order of migopts.from and migopts.to */
enum
{
	MIGOPTS_PART_HOST,
	MIGOPTS_PART_PORT,
	MIGOPTS_PART_USER,
	MIGOPTS_PART_PASS,
	MIGOPTS_PART_DB,
	MIGOPTS_PARTS
};

typedef struct migopts
{
	bool online;
	const char *source, *target; /* borrowed from argv or the environment */
	int jobs;
	bool
	    jobs_given; /* --jobs was given (else the direct copy picks its workers: migopts_copy_jobs) */
	bool drop_target_first;
	const char *slot, *publication; /* borrowed from argv, or static defaults */
	long long lag_threshold;
	int poll_secs;
	/* borrowed from argv; NULL after the last (the arrays start zeroed) */
	const char *schemas[MIGOPTS_MAX_LIST + 1], *tables[MIGOPTS_MAX_LIST + 1];
	const char *ex_schemas[MIGOPTS_MAX_LIST + 1], *ex_tables[MIGOPTS_MAX_LIST + 1];
	int nschemas, ntables, nex_schemas, nex_tables;
	bool allow_restore_errors;
	bool sequence_sync;
	const char *dump_path; /* borrowed from argv, or a static default */
	const char *compress;  /* --compress as given (borrowed); NULL: pg_dump's default */
	bool json;
	const char *scope; /* all, schema-only, data-only (borrowed) */
	bool split_sections;
	bool keep_slot;
	bool auto_publication;
	int max_runtime;
	int cutover_timeout;
	bool analyze;
	bool verbose;
	bool force_clean;
	/* pg_dump defaults, each with a switch */
	bool no_publications, no_subscriptions, no_sync, no_comments, no_security_labels;
	bool no_table_access_method;
	int group_commit;
	bool group_commit_given; /* else the SQL catch-up groups APPLY_CATCHUP_GROUP_TXNS */
	size_t ring_size;
	bool resume;
	const char *resume_file; /* borrowed; NULL: <dump_path>.resume.json */
	int verify;              /* 0 off, 1 warn, 2 strict */
	bool dry_run;
	/* whole server */
	bool all_databases;
	int max_parallel;
	int migrate_globals; /* -1: default (on with --all-databases) */
	bool with_role_passwords;
	bool include_postgres;
	const char *event_tag; /* borrowed from argv */
	bool fast_restore;
	int reconnect_max_wait;
	int receiver_timeout; /* seconds of silence from the source before reconnecting (0: never) */
	bool skip_missing;    /* --on-missing-row skip */
	/* --synchronous-commit: 1 on (every target commit waits for its disk), 0 off, -1 not given */
	int synchronous_commit;
	bool catch_up_stream; /* --catch-up stream: no SQL catch-up of the backlog (catchup.h) */
	pgo_lsn skip_lsn;     /* --skip-lsn: one source transaction not to apply (0: none) */
	const char *ri_full[MIGOPTS_MAX_LIST + 1]; /* --replica-identity-full TABLE|all-keyless */
	int nri_full;
	bool no_owner;      /* pg_restore --no-owner: every object owned by the target role */
	bool no_privileges; /* pg_restore --no-privileges: no GRANT/REVOKE */
	bool copy_direct; /* --copy-method direct: rows by COPY between the servers, no dump of them */
	size_t split_bytes; /* --split-tables-larger-than: direct copy ranges (0: never split) */
	/* issue 19: the other tools' names */
	char compress_arg[80];         /* pg_dump's --compress=... for o->compress; "" with none */
	int compress_min_major;        /* the oldest pg_dump that takes compress_arg (0: any) */
	const char *subscription_name; /* --subscription-name (borrowed): accepted, no effect */
	bool keep_subscription;        /* --keep-subscription: accepted, no effect */
	/* pg-migrate's --from-host/port/user/pass/db and --to-*, borrowed from argv (NULL: not
	 * given); given, they build source_built / target_built, which source / target then
	 * point into (so a migopts is parsed in place and never copied) */
	const char *from[MIGOPTS_PARTS], *to[MIGOPTS_PARTS];
	char source_built[1200], target_built[1200];
	/* --large-objects skip: not carried at the cutover (the Validate warning instead) */
	bool skip_large_objects;
	int ddl; /* --ddl: 1 replicate, 0 stop, -1 not given (replicate where the source role may) */
	pgo_lsn skip_ddl_lsn; /* --skip-ddl: the LSN of one captured DDL command not to replay */
} migopts;

/*
 * Parse argv (argv[0] is the program) into *o, defaults first. True with
 * *help set on --help (the rest of *o is then not checked). False on bad
 * usage, with one message in errbuf to print after "pg_dbmigrator: " (exit
 * EXIT_USAGE). Uses getopt_long: not reentrant.
 */
PGDBM_MUST_CHECK bool migopts_parse(int argc, char **argv, migopts *o, bool *help, char *errbuf,
                                    size_t errlen);

/* The --help text, to f. */
void migopts_usage(FILE *f);

/*
 * Whether the installed pg_dump (its major version; 0: unknown, then pg_dump
 * itself judges) takes o->compress: lz4 and zstd need 16. False with the
 * reason and what to use instead in errbuf.
 */
PGDBM_MUST_CHECK bool migopts_compress_check(const migopts *o, int pg_dump_major, char *errbuf,
                                             size_t errlen);

/*
 * What a run says once about the other tools' flags that change nothing here
 * (--subscription-name, --keep-subscription) or are risky (--from-pass): true
 * with the note in buf.
 */
bool migopts_compat_note(const migopts *o, char *buf, size_t size);

/*
 * The direct copy's workers (and its post-data passes and the verification
 * after it): --jobs when given, else as many as the machine
 * has CPUs, at least 2 (the servers do most of the work, and a copy's ranges
 * keep two busy even with one big table) and at most 4.
 */
int migopts_copy_jobs(const migopts *o);

/* Whether any --schema/--table/--exclude-* narrows the migration. */
bool migopts_has_filters(const migopts *o);

/*
 * A hash of what defines the migration: the mode, both connections (as
 * conninfo's password-free `safe` strings, passed in), slot, publication,
 * scope and the filters; never a tuning knob or the password.
 */
uint64_t migopts_config_hash(const migopts *o, const char *source_safe, const char *target_safe);

#define MIGOPTS_CHILD_MAX_ARGS 150 /* argv[0] and the parent's arguments kept; more are dropped */

/*
 * What one database's child gets under --all-databases: the parent's argv
 * without the connections and the whole-server flags, and its own dump
 * directory, slot and event tag. Connection strings go in its environment,
 * never in argv.
 */
typedef struct migopts_child
{
	char slot[80];       /* pg_dbmigrator_<safe name>_<hash> */
	char dump_path[700]; /* <--dump-path>/<slot> */
	/* "/proc/self/exe", then strings borrowed from the parent's argv, from this
	 * struct, and db; NULL-terminated */
	const char *argv[MIGOPTS_CHILD_MAX_ARGS + 10];
} migopts_child;

/* Fill *c for database db (borrowed, as the event tag) from the parent's argv. */
void migopts_child_init(migopts_child *c, const migopts *o, int argc, char **argv, const char *db);

/* A slot name for database db: pg_dbmigrator_, the name's safe characters, a hash. */
void migopts_slot_for(const char *db, char *buf, size_t size);

#endif
