/*
 * migopts.c — the migrate command's flags, defaults and conflicts, its usage
 * text, the config hash a resume checks, and a whole-server child's argv.
 *
 * Owns: nothing (see migopts.h). Never: prints but the usage, connects,
 * exits. A bad-usage message goes back in errbuf; the caller prints it after
 * "pg_dbmigrator: " and exits 2.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "apply.h"
#include "cli.h"
#include "migopts.h"
#include "replconn.h"

/* ------------------------------------------- the other tools' names (issue 19) */

/*
 * --compress SPEC into o->compress_arg, pg_dump's own argument. A level, none
 * and gzip[:LEVEL] become --compress=LEVEL, which every pg_dump takes (15
 * knows only gzip levels); lz4 and zstd go through as given and need pg_dump
 * 16 (o->compress_min_major, checked by migopts_compress_check).
 */
static bool
migopts_compress_parse(migopts *o, const char *spec, char *errbuf, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	size_t mlen = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *detail = colon ? colon + 1 : NULL;
	int level;

	o->compress = spec;
	o->compress_min_major = 0;
	if (cli_parse_int(spec, 0, 9, &level))
		;
	else if (strcmp(spec, "none") == 0)
		level = 0;
	else if (mlen == 4 && strncmp(spec, "gzip", 4) == 0)
	{
		if (detail && strncmp(detail, "level=", 6) == 0)
			detail += 6;
		if (detail == NULL)
			level = 6; /* zlib's default level, as pg_dump's plain gzip */
		else if (!cli_parse_int(detail, 0, 9, &level))
		{
			snprintf(errbuf, errlen,
			         "invalid --compress \"%s\": gzip takes a level from 0 to 9, "
			         "like gzip:5",
			         spec);
			return false;
		}
	}
	else if ((mlen == 3 && strncmp(spec, "lz4", 3) == 0) ||
	         (mlen == 4 && strncmp(spec, "zstd", 4) == 0))
	{
		/* pg_dump 16+ checks the detail itself (levels, long, workers) */
		if ((detail && (*detail == '\0' || strspn(detail, "abcdefghijklmnopqrstuvwxyz"
		                                                  "0123456789=,-") != strlen(detail))) ||
		    strlen(spec) + sizeof("--compress=") > sizeof(o->compress_arg))
		{
			snprintf(errbuf, errlen, "invalid --compress \"%s\": use %.*s or %.*s:LEVEL", spec,
			         (int)mlen, spec, (int)mlen, spec);
			return false;
		}
		snprintf(o->compress_arg, sizeof(o->compress_arg), "--compress=%s", spec);
		o->compress_min_major = 16;
		return true;
	}
	else
	{
		snprintf(errbuf, errlen,
		         "invalid --compress \"%s\": use a level from 0 to 9, none, gzip[:LEVEL], "
		         "lz4[:LEVEL] or zstd[:LEVEL] (lz4 and zstd need pg_dump 16 or newer)",
		         spec);
		return false;
	}
	snprintf(o->compress_arg, sizeof(o->compress_arg), "--compress=%d", level);
	return true;
}

/* Whether the installed pg_dump (major; 0: unknown) takes o's --compress; else why not. */
bool
migopts_compress_check(const migopts *o, int pg_dump_major, char *errbuf, size_t errlen)
{
	if (o->compress_min_major == 0 || pg_dump_major == 0 || pg_dump_major >= o->compress_min_major)
		return true;
	snprintf(errbuf, errlen,
	         "--compress %s needs pg_dump %d or newer, and the installed pg_dump is %d (it "
	         "compresses with gzip only): use --compress gzip:LEVEL (or a level 0-9, or none), "
	         "or install PostgreSQL %d+ client tools and set PG_BINDIR",
	         o->compress, o->compress_min_major, pg_dump_major, o->compress_min_major);
	return false;
}

/* Append " key='value'" to buf (libpq quoting); false when it does not fit. */
static bool
migopts_conninfo_add(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
	int w = snprintf(buf + *len, size - *len, "%s%s='", *len ? " " : "", key);

	if (w < 0 || (size_t)w >= size - *len)
		return false;
	*len += (size_t)w;
	for (const char *p = value; *p; p++)
	{
		if (*len + 3 >= size)
			return false;
		if (*p == '\'' || *p == '\\')
			buf[(*len)++] = '\\';
		buf[(*len)++] = *p;
	}
	if (*len + 2 >= size)
		return false;
	buf[(*len)++] = '\'';
	buf[*len] = '\0';
	return true;
}

/*
 * pg-migrate's --from-host/-port/-user/-pass/-db (or --to-*), parts[] in that
 * order, as a conninfo in buf for *conn. Conflicts with the URI flag
 * (flag_given); the environment's is replaced. Parts not given: libpq's
 * defaults (PG* variables, ~/.pgpass).
 */
static bool
migopts_build_conninfo(const char *const parts[MIGOPTS_PARTS], const char *prefix,
                       const char *uri_flag, bool flag_given, char *buf, size_t size,
                       const char **conn, char *errbuf, size_t errlen)
{
	static const char *const keys[MIGOPTS_PARTS] = {"host", "port", "user", "password", "dbname"};
	static const char *const names[MIGOPTS_PARTS] = {"host", "port", "user", "pass", "db"};
	size_t len = 0;
	bool any = false;
	int port;

	for (int i = 0; i < MIGOPTS_PARTS; i++)
		any |= parts[i] != NULL;
	if (!any)
		return true;
	if (flag_given)
	{
		snprintf(errbuf, errlen, "give %s or the %s-host/%s-port/... options, not both", uri_flag,
		         prefix, prefix);
		return false;
	}
	if (parts[MIGOPTS_PART_PORT] && !cli_parse_int(parts[MIGOPTS_PART_PORT], 1, 65535, &port))
	{
		snprintf(errbuf, errlen, "invalid %s-port \"%s\": use a number from 1 to 65535", prefix,
		         parts[MIGOPTS_PART_PORT]);
		return false;
	}
	buf[0] = '\0';
	for (int i = 0; i < MIGOPTS_PARTS; i++)
		if (parts[i] && !migopts_conninfo_add(buf, size, &len, keys[i], parts[i]))
		{
			snprintf(errbuf, errlen, "%s-%s is too long", prefix, names[i]);
			return false;
		}
	*conn = buf;
	return true;
}

/* What the run says once about flags of the other tools that change nothing here. */
bool
migopts_compat_note(const migopts *o, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	if (o->subscription_name || o->keep_subscription)
		n += (size_t)snprintf(buf, size,
		                      "%s ignored: pg_dbmigrator creates no subscription on the target (it "
		                      "decodes the slot's changes itself and applies them over libpq); the "
		                      "slot is --slot-name, kept after cutover with --keep-slot",
		                      o->subscription_name && o->keep_subscription
		                          ? "--subscription-name and --keep-subscription"
		                      : o->subscription_name ? "--subscription-name"
		                                             : "--keep-subscription");
	if ((o->from[MIGOPTS_PART_PASS] || o->to[MIGOPTS_PART_PASS]) && n < size)
		snprintf(buf + n, size - n,
		         "%s--from-pass/--to-pass: other users of this machine can read the password in "
		         "the process list while this runs; put it in ~/.pgpass or PGPASSWORD instead",
		         n ? "; " : "");
	return buf[0] != '\0';
}

/* The --help text, to f. */
void
migopts_usage(FILE *f)
{
	fprintf(
	    f,
	    "pg_dbmigrator moves a PostgreSQL database to another server.\n"
	    "\n"
	    "Usage:\n"
	    "  pg_dbmigrator --mode offline|online --source URI --target URI [options]\n"
	    "\n"
	    "Connections (any libpq connection string or URI; PG* variables and ~/.pgpass apply):\n"
	    "  --source URI                  the database to migrate (or PG_DBMIGRATOR_SOURCE)\n"
	    "  --target URI                  where it goes (or PG_DBMIGRATOR_TARGET)\n"
	    "  --from-host H, --from-port P, --from-user U, --from-db D, --from-pass PW\n"
	    "  --to-host H, --to-port P, --to-user U, --to-db D, --to-pass PW\n"
	    "                                instead of --source and --target (pg-migrate's\n"
	    "                                names); prefer ~/.pgpass to --from-pass/--to-pass,\n"
	    "                                which ps shows\n"
	    "\n"
	    "What to migrate:\n"
	    "  --dump-scope all|schema-only|data-only   default all\n"
	    "  --schema NAME, --exclude-schema NAME     (repeatable)\n"
	    "  --table NAME, --exclude-table NAME       (repeatable; schema.table)\n"
	    "\n"
	    "Dump and restore:\n"
	    "  --copy-method direct|dump     direct (default): the schema by pg_dump and pg_restore,\n"
	    "                                every table's rows by COPY from the source to the\n"
	    "                                target in the same snapshot, no data file; dump (the\n"
	    "                                default with --dump-scope schema-only or data-only or\n"
	    "                                --fast-restore-settings): pg_dump's data into\n"
	    "                                --dump-path, restored by pg_restore\n"
	    "  --split-tables-larger-than SIZE   direct: copy a larger table in ranges of SIZE by\n"
	    "                                several jobs at once (default 256MB; 0: never)\n"
	    "  -j, --jobs N                  parallel pg_dump/pg_restore jobs and copy workers\n"
	    "                                (default 1; the direct copy's workers, post-data\n"
	    "                                and verify: the CPUs, 2 to 4)\n"
	    "  --dump-path PATH              dump directory (default ./pg_dbmigrator_dump;\n"
	    "                                --dump-root is the same)\n"
	    "  --compress SPEC               pg_dump's compression: a level 0-9, none, gzip[:LEVEL],\n"
	    "                                lz4[:LEVEL] or zstd[:LEVEL] (lz4 and zstd: pg_dump 16+)\n"
	    "  --drop-target-first           drop existing objects on the target first\n"
	    "  --allow-restore-errors        pg_restore errors are warnings when data was restored\n"
	    "  --split-sections / --no-split-sections   restore pre-data, data, post-data\n"
	    "                                separately (default on)\n"
	    "  --with-publications, --with-subscriptions, --with-sync, --with-comments,\n"
	    "  --with-security-labels        undo pg_dump's --no-... defaults\n"
	    "  --no-table-access-method      pass --no-table-access-method to pg_dump\n"
	    "  --skip-analyze                do not ANALYZE the target after restore\n"
	    "  --fast-restore-settings       during the restore, run the target with fsync,\n"
	    "                                full_page_writes and synchronous_commit off and a\n"
	    "                                large max_wal_size (ALTER SYSTEM; superuser), and put\n"
	    "                                the previous values back afterwards, also on failure\n"
	    "  --force-clean                 remove a previous run's dump directory first\n"
	    "  --resume                      continue an interrupted run from its resume token\n"
	    "                                (<dump-path>.resume.json): the phases done are\n"
	    "                                skipped; online: streaming goes on from the slot\n"
	    "  --resume-file PATH            the resume token's path\n"
	    "  --no-owner                    restore every object owned by the target role\n"
	    "                                (pg_restore --no-owner; for a target role that cannot\n"
	    "                                become the source's owners, e.g. on a managed service)\n"
	    "  --no-privileges               restore no GRANT/REVOKE (pg_restore --no-privileges)\n"
	    "\n"
	    "Online mode:\n"
	    "  --slot-name NAME              replication slot (default pg_dbmigrator)\n"
	    "  --publication NAME            publication (default pg_dbmigrator_pub); created for\n"
	    "                                the migrated tables when missing and dropped at the end\n"
	    "  --no-auto-create-publication  require an existing publication\n"
	    "  --replica-identity-full TABLE|all-keyless   set REPLICA IDENTITY FULL on these\n"
	    "                                tables without a key (on the source, before the slot\n"
	    "                                exists) so their updates and deletes migrate too\n"
	    "                                (repeatable); else only their inserts and truncates\n"
	    "                                stream, and an UPDATE or DELETE on one stops the run\n"
	    "                                (ALTER TABLE locks each briefly: 2 s at most a try)\n"
	    "  --keep-slot                   keep the slot after cutover\n"
	    "  --subscription-name NAME, --keep-subscription   accepted and ignored (the Rust\n"
	    "                                pg_dbmigrator's): no subscription is created, the\n"
	    "                                slot is streamed and applied by this program\n"
	    "  --lag-threshold-bytes N       CaughtUp when lag is at most N bytes (default 1048576)\n"
	    "  --cutover-poll-secs N         Lag event interval (default 5)\n"
	    "  --cutover-fast-poll-ms N      accepted for compatibility (lag is polled every 100 ms)\n"
	    "  --cutover-timeout SECS        give up draining after SECS (default 300)\n"
	    "  --max-runtime-seconds N       cut over by itself after N seconds of streaming\n"
	    "  --no-sequence-sync            do not copy sequence values at cutover\n"
	    "  --large-objects copy|skip     carry the large objects changed since the snapshot\n"
	    "                                over at cutover (default copy)\n"
	    "  --group-commit N              source transactions per target transaction, at most\n"
	    "                                (default 1000; 10000 while a backlog is read\n"
	    "                                through SQL)\n"
	    "  --synchronous-commit off|on   off (default, as a subscription's): target commits\n"
	    "                                do not wait for its disk, and the source is told a\n"
	    "                                change is applied only once the target has flushed\n"
	    "                                it (within 0.2 s); on: every commit waits\n"
	    "  --catch-up sql|stream         sql (default): the backlog at the start of streaming\n"
	    "                                is read through SQL (several times faster than a\n"
	    "                                walsender), then the stream takes over; stream:\n"
	    "                                the replication stream only\n"
	    "  --ring-size SIZE              replication buffer (default 64MB)\n"
	    "  --reconnect-max-wait SECS     keep reconnecting to a lost source or target for\n"
	    "                                up to SECS after the last progress, resuming from\n"
	    "                                the slot (default 300)\n"
	    "  --wal-receiver-timeout SECS   a source silent this long counts as lost, and is\n"
	    "                                reconnected (default 60; 0: never)\n"
	    "  --skip-lsn LSN                with --resume: do not apply the source transaction\n"
	    "                                committed at LSN (the one an apply error named)\n"
	    "  --on-missing-row error|skip   an UPDATE/DELETE that finds no row on the target\n"
	    "                                stops the run (default), or is counted and skipped\n"
	    "  --ddl replicate|stop          schema changes on the source during the migration:\n"
	    "                                replayed on the target in stream order (default when\n"
	    "                                the source role may create event triggers), or the\n"
	    "                                apply stops at the first changed table\n"
	    "  --skip-ddl LSN                with --resume: do not replay the captured DDL command\n"
	    "                                at LSN (the one a stopped apply named); the rest of its\n"
	    "                                transaction is applied\n"
	    "\n"
	    "Verification:\n"
	    "  --verify off|warn|strict      compare source and target before Complete (default\n"
	    "                                warn: differences, or no comparison possible, exit 4\n"
	    "                                with Complete verified=differences|unverified;\n"
	    "                                strict: exit 1, not Complete)\n"
	    "\n"
	    "Whole server:\n"
	    "  --all-databases               every user database (not templates; postgres only\n"
	    "                                with --include-postgres-db), created on the target as\n"
	    "                                needed, each with its own slot; one Ctrl+C cuts all over\n"
	    "  -m, --max-parallel N          offline: databases at a time (default 2); online: all\n"
	    "                                stream at once\n"
	    "  --migrate-globals[=true|false] / --no-migrate-globals   roles and\n"
	    "                                memberships (pg_dumpall --globals-only; default on\n"
	    "                                with --all-databases)\n"
	    "  --with-role-passwords         copy role passwords too\n"
	    "\n"
	    "Planning:\n"
	    "  --dry-run                     validate, print the plan and the exact commands,\n"
	    "                                change nothing\n"
	    "\n"
	    "Output:\n"
	    "  --json                        one JSON object per event on stdout\n"
	    "  --verbose                     show pg_dump/pg_restore output as it comes\n"
	    "  --help, --version\n"
	    "\n"
	    "Online: Ctrl+C (or SIGTERM) cuts over: everything written on the source before it\n"
	    "is applied, sequences are synced, the slot and publication are dropped, exit 0.\n"
	    "A second Ctrl+C aborts at once and keeps the slot (exit 3).\n"
	    "Exit codes: 0 done, 1 error, 2 bad usage, 3 aborted, 4 done and cut over but\n"
	    "the verification found differences (or could not compare).\n");
}

/* Append value to a --schema-like list, refusing the one past the limit. */
static bool
migopts_list_add(const char **list, int *n, const char *value, const char *flag, char *errbuf,
                 size_t errlen)
{
	if (*n == MIGOPTS_MAX_LIST)
	{
		snprintf(errbuf, errlen, "at most %d %s", MIGOPTS_MAX_LIST, flag);
		return false;
	}
	list[(*n)++] = value;
	return true;
}

/* An integer flag's value, refused outside lo..hi. */
static bool
migopts_int_arg(const char *flag, const char *text, int lo, int hi, int *out, char *errbuf,
                size_t errlen)
{
	if (!cli_parse_int(text, lo, hi, out))
	{
		snprintf(errbuf, errlen, "invalid %s \"%s\": use a number from %d to %d", flag, text, lo,
		         hi);
		return false;
	}
	return true;
}

/* Parse argv into *o (see migopts.h); false with one message in errbuf. */
bool
migopts_parse(int argc, char **argv, migopts *o, bool *help, char *errbuf, size_t errlen)
{
	enum
	{
		O_MODE = 256,
		/* the other tools' names (issue 19) */
		O_SUBNAME,
		O_KEEPSUB,
		O_FROM_HOST,
		O_FROM_PORT,
		O_FROM_USER,
		O_FROM_PASS,
		O_FROM_DB,
		O_TO_HOST,
		O_TO_PORT,
		O_TO_USER,
		O_TO_PASS,
		O_TO_DB,
		O_DUMPROOT,
		O_SOURCE,
		O_TARGET,
		O_JOBS,
		O_DROP,
		O_SLOT,
		O_PUB,
		O_LAG,
		O_POLL,
		O_SCHEMA,
		O_TABLE,
		O_XSCHEMA,
		O_XTABLE,
		O_ALLOWERR,
		O_NOSEQ,
		O_RESUME,
		O_FORCE,
		O_DUMPPATH,
		O_COMPRESS,
		O_JSON,
		O_SCOPE,
		O_SPLIT,
		O_NOSPLIT,
		O_KEEPSLOT,
		O_NOAUTOPUB,
		O_MAXRUN,
		O_FASTPOLL,
		O_SKIPANALYZE,
		O_RESUMEFILE,
		O_VERBOSE,
		O_TIMEOUT,
		O_WITHPUB,
		O_WITHSUB,
		O_WITHSYNC,
		O_WITHCOMMENTS,
		O_WITHSECLABELS,
		O_NOTAM,
		O_GROUP,
		O_SYNCCOMMIT,
		O_CATCHUP,
		O_RING,
		O_VERIFY,
		O_DRYRUN,
		O_ALLDB,
		O_MAXPAR,
		O_GLOBALS,
		O_NOGLOBALS,
		O_ROLEPW,
		O_INCLPG,
		O_TAG,
		O_FAST,
		O_RECONNECT,
		O_RCVTIMEOUT,
		O_SKIPLSN,
		O_MISSING,
		O_RIFULL,
		O_NOOWNER,
		O_NOPRIV,
		O_COPYMETHOD,
		O_SPLITSIZE,
		O_LARGEOBJ,
		O_DDL,
		O_SKIPDDL,
		O_HELP
	};
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, O_MODE},
	    /* the other tools' names (issue 19) */
	    {"subscription-name", required_argument, NULL, O_SUBNAME},
	    {"keep-subscription", no_argument, NULL, O_KEEPSUB},
	    {"from-host", required_argument, NULL, O_FROM_HOST},
	    {"from-port", required_argument, NULL, O_FROM_PORT},
	    {"from-user", required_argument, NULL, O_FROM_USER},
	    {"from-pass", required_argument, NULL, O_FROM_PASS},
	    {"from-db", required_argument, NULL, O_FROM_DB},
	    {"to-host", required_argument, NULL, O_TO_HOST},
	    {"to-port", required_argument, NULL, O_TO_PORT},
	    {"to-user", required_argument, NULL, O_TO_USER},
	    {"to-pass", required_argument, NULL, O_TO_PASS},
	    {"to-db", required_argument, NULL, O_TO_DB},
	    {"dump-root", required_argument, NULL, O_DUMPROOT},
	    {"source", required_argument, NULL, O_SOURCE},
	    {"target", required_argument, NULL, O_TARGET},
	    {"jobs", required_argument, NULL, O_JOBS},
	    {"drop-target-first", no_argument, NULL, O_DROP},
	    {"slot-name", required_argument, NULL, O_SLOT},
	    {"publication", required_argument, NULL, O_PUB},
	    {"lag-threshold-bytes", required_argument, NULL, O_LAG},
	    {"cutover-poll-secs", required_argument, NULL, O_POLL},
	    {"schema", required_argument, NULL, O_SCHEMA},
	    {"table", required_argument, NULL, O_TABLE},
	    {"exclude-schema", required_argument, NULL, O_XSCHEMA},
	    {"exclude-table", required_argument, NULL, O_XTABLE},
	    {"allow-restore-errors", no_argument, NULL, O_ALLOWERR},
	    {"no-sequence-sync", no_argument, NULL, O_NOSEQ},
	    {"large-objects", required_argument, NULL, O_LARGEOBJ},
	    {"resume", no_argument, NULL, O_RESUME},
	    {"force-clean", no_argument, NULL, O_FORCE},
	    {"dump-path", required_argument, NULL, O_DUMPPATH},
	    {"compress", required_argument, NULL, O_COMPRESS},
	    {"json", no_argument, NULL, O_JSON},
	    {"dump-scope", required_argument, NULL, O_SCOPE},
	    {"split-sections", no_argument, NULL, O_SPLIT},
	    {"no-split-sections", no_argument, NULL, O_NOSPLIT},
	    {"keep-slot", no_argument, NULL, O_KEEPSLOT},
	    {"no-auto-create-publication", no_argument, NULL, O_NOAUTOPUB},
	    {"max-runtime-seconds", required_argument, NULL, O_MAXRUN},
	    {"cutover-fast-poll-ms", required_argument, NULL, O_FASTPOLL},
	    {"skip-analyze", no_argument, NULL, O_SKIPANALYZE},
	    {"resume-file", required_argument, NULL, O_RESUMEFILE},
	    {"verbose", no_argument, NULL, O_VERBOSE},
	    {"cutover-timeout", required_argument, NULL, O_TIMEOUT},
	    {"with-publications", no_argument, NULL, O_WITHPUB},
	    {"with-subscriptions", no_argument, NULL, O_WITHSUB},
	    {"with-sync", no_argument, NULL, O_WITHSYNC},
	    {"with-comments", no_argument, NULL, O_WITHCOMMENTS},
	    {"with-security-labels", no_argument, NULL, O_WITHSECLABELS},
	    {"no-table-access-method", no_argument, NULL, O_NOTAM},
	    {"group-commit", required_argument, NULL, O_GROUP},
	    {"synchronous-commit", required_argument, NULL, O_SYNCCOMMIT},
	    {"catch-up", required_argument, NULL, O_CATCHUP},
	    {"ring-size", required_argument, NULL, O_RING},
	    {"verify", required_argument, NULL, O_VERIFY},
	    {"dry-run", no_argument, NULL, O_DRYRUN},
	    {"all-databases", no_argument, NULL, O_ALLDB},
	    {"max-parallel", required_argument, NULL, O_MAXPAR},
	    {"migrate-globals", optional_argument, NULL, O_GLOBALS},
	    {"no-migrate-globals", no_argument, NULL, O_NOGLOBALS},
	    {"with-role-passwords", no_argument, NULL, O_ROLEPW},
	    {"include-postgres-db", no_argument, NULL, O_INCLPG},
	    {"event-tag", required_argument, NULL, O_TAG},
	    {"fast-restore-settings", no_argument, NULL, O_FAST},
	    {"reconnect-max-wait", required_argument, NULL, O_RECONNECT},
	    {"skip-lsn", required_argument, NULL, O_SKIPLSN},
	    {"on-missing-row", required_argument, NULL, O_MISSING},
	    {"wal-receiver-timeout", required_argument, NULL, O_RCVTIMEOUT},
	    {"replica-identity-full", required_argument, NULL, O_RIFULL},
	    {"no-owner", no_argument, NULL, O_NOOWNER},
	    {"no-privileges", no_argument, NULL, O_NOPRIV},
	    {"copy-method", required_argument, NULL, O_COPYMETHOD},
	    {"split-tables-larger-than", required_argument, NULL, O_SPLITSIZE},
	    {"ddl", required_argument, NULL, O_DDL},
	    {"skip-ddl", required_argument, NULL, O_SKIPDDL},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0}};
	const char *mode = NULL;
	const char *env_source, *env_target; /* issue 19: --from-* replace these, not --source */
	bool method_given = false;
	int c, v;

	memset(o, 0, sizeof(*o));
	*help = false;
	o->source = getenv("PG_DBMIGRATOR_SOURCE");
	o->target = getenv("PG_DBMIGRATOR_TARGET");
	o->jobs = 1;
	o->slot = "pg_dbmigrator";
	o->publication = "pg_dbmigrator_pub";
	o->lag_threshold = 1024 * 1024;
	o->poll_secs = 5;
	o->sequence_sync = true;
	o->dump_path = "pg_dbmigrator_dump";
	o->scope = "all";
	o->split_sections = true;
	o->split_bytes = (size_t)256 * 1024 * 1024;
	o->auto_publication = true;
	o->cutover_timeout = 300;
	o->analyze = true;
	o->no_publications = o->no_subscriptions = o->no_sync = o->no_comments = o->no_security_labels =
	    true;
	o->group_commit = APPLY_DEFAULT_GROUP_TXNS;
	o->synchronous_commit = -1;
	o->ring_size = 64 * 1024 * 1024;
	o->verify = 1;
	o->max_parallel = 2;
	o->reconnect_max_wait = 300;
	o->ddl = -1;
	o->receiver_timeout = 60;
	o->migrate_globals = -1;
	env_source = o->source;
	env_target = o->target;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "j:m:", longopts, NULL)) != -1)
	{
		/* pg-migrate's -j and -m (issue 19) */
		if (c == 'j' || c == 'm')
			c = c == 'j' ? O_JOBS : O_MAXPAR;
		switch (c)
		{
			case O_MODE:
				mode = optarg;
				break;
			/* the other tools' names (issue 19) */
			case O_SUBNAME:
				o->subscription_name = optarg;
				break;
			case O_KEEPSUB:
				o->keep_subscription = true;
				break;
			case O_FROM_HOST:
			case O_FROM_PORT:
			case O_FROM_USER:
			case O_FROM_PASS:
			case O_FROM_DB:
				o->from[c - O_FROM_HOST] = optarg;
				break;
			case O_TO_HOST:
			case O_TO_PORT:
			case O_TO_USER:
			case O_TO_PASS:
			case O_TO_DB:
				o->to[c - O_TO_HOST] = optarg;
				break;
			case O_DUMPROOT:
				o->dump_path = optarg;
				break;
			case O_SOURCE:
				o->source = optarg;
				break;
			case O_TARGET:
				o->target = optarg;
				break;
			case O_JOBS:
				if (!migopts_int_arg("--jobs", optarg, 1, 128, &o->jobs, errbuf, errlen))
					return false;
				o->jobs_given = true;
				break;
			case O_DROP:
				o->drop_target_first = true;
				break;
			case O_SLOT:
			{
				char err[256];

				if (!replconn_valid_slot_name(optarg, err, sizeof(err)))
				{
					snprintf(errbuf, errlen, "invalid --slot-name: %s", err);
					return false;
				}
				o->slot = optarg;
				break;
			}
			case O_PUB:
				o->publication = optarg;
				break;
			case O_LAG:
			{
				char *end;

				errno = 0;
				o->lag_threshold = strtoll(optarg, &end, 10);
				if (errno || *end || o->lag_threshold < 0)
				{
					snprintf(errbuf, errlen, "invalid --lag-threshold-bytes \"%s\"", optarg);
					return false;
				}
				break;
			}
			case O_POLL:
				if (!migopts_int_arg("--cutover-poll-secs", optarg, 1, 3600, &o->poll_secs, errbuf,
				                     errlen))
					return false;
				break;
			case O_SCHEMA:
				if (!migopts_list_add(o->schemas, &o->nschemas, optarg, "--schema", errbuf, errlen))
					return false;
				break;
			case O_TABLE:
				if (!migopts_list_add(o->tables, &o->ntables, optarg, "--table", errbuf, errlen))
					return false;
				break;
			case O_XSCHEMA:
				if (!migopts_list_add(o->ex_schemas, &o->nex_schemas, optarg, "--exclude-schema",
				                      errbuf, errlen))
					return false;
				break;
			case O_XTABLE:
				if (!migopts_list_add(o->ex_tables, &o->nex_tables, optarg, "--exclude-table",
				                      errbuf, errlen))
					return false;
				break;
			case O_ALLOWERR:
				o->allow_restore_errors = true;
				break;
			case O_NOSEQ:
				o->sequence_sync = false;
				break;
			case O_RESUME:
				o->resume = true;
				break;
			case O_FORCE:
				o->force_clean = true;
				break;
			case O_DUMPPATH:
				o->dump_path = optarg;
				break;
			case O_COMPRESS:
				if (!migopts_compress_parse(o, optarg, errbuf, errlen))
					return false;
				break;
			case O_JSON:
				o->json = true;
				break;
			case O_SCOPE:
				if (strcmp(optarg, "all") && strcmp(optarg, "schema-only") &&
				    strcmp(optarg, "data-only"))
				{
					snprintf(errbuf, errlen,
					         "invalid --dump-scope \"%s\": use all, "
					         "schema-only or data-only",
					         optarg);
					return false;
				}
				o->scope = optarg;
				break;
			case O_SPLIT:
				o->split_sections = true;
				break;
			case O_NOSPLIT:
				o->split_sections = false;
				break;
			case O_KEEPSLOT:
				o->keep_slot = true;
				break;
			case O_NOAUTOPUB:
				o->auto_publication = false;
				break;
			case O_MAXRUN:
				if (!migopts_int_arg("--max-runtime-seconds", optarg, 1, 100000000, &o->max_runtime,
				                     errbuf, errlen))
					return false;
				break;
			case O_FASTPOLL:
				if (!migopts_int_arg("--cutover-fast-poll-ms", optarg, 1, 60000, &v, errbuf,
				                     errlen))
					return false;
				break;
			case O_SKIPANALYZE:
				o->analyze = false;
				break;
			case O_RESUMEFILE:
				o->resume_file = optarg;
				break;
			case O_VERBOSE:
				o->verbose = true;
				break;
			case O_TIMEOUT:
				if (!migopts_int_arg("--cutover-timeout", optarg, 1, 86400 * 7, &o->cutover_timeout,
				                     errbuf, errlen))
					return false;
				break;
			case O_WITHPUB:
				o->no_publications = false;
				break;
			case O_WITHSUB:
				o->no_subscriptions = false;
				break;
			case O_WITHSYNC:
				o->no_sync = false;
				break;
			case O_WITHCOMMENTS:
				o->no_comments = false;
				break;
			case O_WITHSECLABELS:
				o->no_security_labels = false;
				break;
			case O_NOTAM:
				o->no_table_access_method = true;
				break;
			case O_GROUP:
				if (!migopts_int_arg("--group-commit", optarg, 1, 1000000, &o->group_commit, errbuf,
				                     errlen))
					return false;
				o->group_commit_given = true;
				break;
			case O_RING:
				if (!cli_parse_size(optarg, &o->ring_size) || o->ring_size < 1024 * 1024)
				{
					snprintf(errbuf, errlen, "invalid --ring-size \"%s\": use at least 1MB",
					         optarg);
					return false;
				}
				break;
			case O_VERIFY:
				if (strcmp(optarg, "off") == 0)
					o->verify = 0;
				else if (strcmp(optarg, "warn") == 0)
					o->verify = 1;
				else if (strcmp(optarg, "strict") == 0)
					o->verify = 2;
				else
				{
					snprintf(errbuf, errlen,
					         "invalid --verify \"%s\": use off, warn or "
					         "strict",
					         optarg);
					return false;
				}
				break;
			case O_DRYRUN:
				o->dry_run = true;
				break;
			case O_ALLDB:
				o->all_databases = true;
				break;
			case O_MAXPAR:
				if (!migopts_int_arg("--max-parallel", optarg, 1, 64, &o->max_parallel, errbuf,
				                     errlen))
					return false;
				break;
			case O_GLOBALS:
				/* pg-migrate's --migrate-globals=true|false too */
				if (optarg && strcmp(optarg, "true") && strcmp(optarg, "false"))
				{
					snprintf(errbuf, errlen,
					         "invalid --migrate-globals=%s: use --migrate-globals or "
					         "--no-migrate-globals",
					         optarg);
					return false;
				}
				o->migrate_globals = optarg == NULL || strcmp(optarg, "true") == 0;
				break;
			case O_NOGLOBALS:
				o->migrate_globals = 0;
				break;
			case O_ROLEPW:
				o->with_role_passwords = true;
				break;
			case O_INCLPG:
				o->include_postgres = true;
				break;
			case O_TAG:
				o->event_tag = optarg;
				break;
			case O_FAST:
				o->fast_restore = true;
				break;
			case O_RECONNECT:
				if (!migopts_int_arg("--reconnect-max-wait", optarg, 0, 86400 * 7,
				                     &o->reconnect_max_wait, errbuf, errlen))
					return false;
				break;
			case O_RCVTIMEOUT:
				if (!migopts_int_arg("--wal-receiver-timeout", optarg, 0, 86400,
				                     &o->receiver_timeout, errbuf, errlen))
					return false;
				break;
			case O_SKIPLSN:
				if (!pgo_lsn_parse(optarg, &o->skip_lsn) || o->skip_lsn == 0)
				{
					snprintf(errbuf, errlen,
					         "invalid --skip-lsn \"%s\": give the commit LSN an "
					         "apply error named, like 0/1A2B3C4",
					         optarg);
					return false;
				}
				break;
			case O_CATCHUP:
				if (strcmp(optarg, "sql") != 0 && strcmp(optarg, "stream") != 0)
				{
					snprintf(errbuf, errlen, "invalid --catch-up \"%s\": use sql or stream",
					         optarg);
					return false;
				}
				o->catch_up_stream = strcmp(optarg, "stream") == 0;
				break;
			case O_SYNCCOMMIT:
				if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
				{
					snprintf(errbuf, errlen, "invalid --synchronous-commit \"%s\": use on or off",
					         optarg);
					return false;
				}
				o->synchronous_commit = strcmp(optarg, "on") == 0 ? 1 : 0;
				break;
			case O_MISSING:
				if (strcmp(optarg, "error") != 0 && strcmp(optarg, "skip") != 0)
				{
					snprintf(errbuf, errlen, "invalid --on-missing-row \"%s\": use error or skip",
					         optarg);
					return false;
				}
				o->skip_missing = strcmp(optarg, "skip") == 0;
				break;
			case O_RIFULL:
				if (!migopts_list_add(o->ri_full, &o->nri_full, optarg, "--replica-identity-full",
				                      errbuf, errlen))
					return false;
				break;
			case O_NOOWNER:
				o->no_owner = true;
				break;
			case O_LARGEOBJ:
				if (strcmp(optarg, "copy") != 0 && strcmp(optarg, "skip") != 0)
				{
					snprintf(errbuf, errlen, "invalid --large-objects \"%s\": use copy or skip",
					         optarg);
					return false;
				}
				o->skip_large_objects = strcmp(optarg, "skip") == 0;
				break;
			case O_NOPRIV:
				o->no_privileges = true;
				break;
			case O_COPYMETHOD:
				if (strcmp(optarg, "direct") != 0 && strcmp(optarg, "dump") != 0)
				{
					snprintf(errbuf, errlen, "invalid --copy-method \"%s\": use dump or direct",
					         optarg);
					return false;
				}
				o->copy_direct = strcmp(optarg, "direct") == 0;
				method_given = true;
				break;
			case O_SPLITSIZE:
				if (strcmp(optarg, "0") == 0)
					o->split_bytes = 0;
				else if (!cli_parse_size(optarg, &o->split_bytes) || o->split_bytes < 1024 * 1024)
				{
					snprintf(errbuf, errlen,
					         "invalid --split-tables-larger-than \"%s\": use a size of at least "
					         "1MB (such as 256MB or 2GB), or 0 to never split",
					         optarg);
					return false;
				}
				break;
			case O_DDL:
				if (strcmp(optarg, "replicate") != 0 && strcmp(optarg, "stop") != 0)
				{
					snprintf(errbuf, errlen, "invalid --ddl \"%s\": use replicate or stop", optarg);
					return false;
				}
				o->ddl = strcmp(optarg, "replicate") == 0;
				break;
			case O_SKIPDDL:
				if (!pgo_lsn_parse(optarg, &o->skip_ddl_lsn) || o->skip_ddl_lsn == 0)
				{
					snprintf(errbuf, errlen,
					         "invalid --skip-ddl \"%s\": give the LSN a stopped DDL command named, "
					         "like 0/1A2B3C4",
					         optarg);
					return false;
				}
				break;
			case O_HELP:
				*help = true;
				return true;
			default:
				snprintf(errbuf, errlen,
				         "unknown or incomplete option \"%s\"\nTry "
				         "\"pg_dbmigrator --help\".",
				         argv[optind - 1]);
				return false;
		}
	}
	if (optind < argc)
	{
		snprintf(errbuf, errlen, "unexpected argument \"%s\"", argv[optind]);
		return false;
	}
	if (mode == NULL || (strcmp(mode, "online") && strcmp(mode, "offline")))
	{
		snprintf(errbuf, errlen, "--mode offline or --mode online is required");
		return false;
	}
	o->online = strcmp(mode, "online") == 0;
	if (!o->online && o->skip_ddl_lsn)
	{
		snprintf(errbuf, errlen, "--skip-ddl applies to the DDL streamed by --mode online");
		return false;
	}
	if (!o->online && o->ddl == 1)
	{
		snprintf(errbuf, errlen,
		         "--ddl replicate is for --mode online (an offline copy has no stream to "
		         "replay schema changes in)");
		return false;
	}
	if (!o->online && (o->skip_lsn || o->skip_missing))
	{
		snprintf(errbuf, errlen,
		         "--skip-lsn and --on-missing-row skip apply to the changes "
		         "streamed by --mode online");
		return false;
	}
	if (o->resume && o->force_clean)
	{
		snprintf(errbuf, errlen,
		         "--resume and --force-clean conflict: continue the previous "
		         "run, or start over");
		return false;
	}

	/* the whole-server migrator's --from-* and --to-* (issue 19) */
	if (!migopts_build_conninfo(o->from, "--from", "--source", o->source != env_source,
	                            o->source_built, sizeof(o->source_built), &o->source, errbuf,
	                            errlen) ||
	    !migopts_build_conninfo(o->to, "--to", "--target", o->target != env_target, o->target_built,
	                            sizeof(o->target_built), &o->target, errbuf, errlen))
		return false;
	if (!o->source || !o->target)
	{
		snprintf(errbuf, errlen,
		         "--source and --target are required (or "
		         "PG_DBMIGRATOR_SOURCE / PG_DBMIGRATOR_TARGET)");
		return false;
	}
	if (!o->online && o->nri_full > 0)
	{
		snprintf(errbuf, errlen,
		         "--replica-identity-full is for --mode online (an offline "
		         "copy needs no replica identity)");
		return false;
	}
	/* direct by default, where it can do the whole job; the dump where it cannot */
	if (!method_given)
		o->copy_direct = strcmp(o->scope, "all") == 0 && !o->fast_restore;
	if (o->copy_direct && strcmp(o->scope, "all") != 0)
	{
		snprintf(errbuf, errlen,
		         "--copy-method direct copies the schema and the rows: use it with --dump-scope "
		         "all, or --copy-method dump for --dump-scope %s",
		         o->scope);
		return false;
	}
	if (o->copy_direct && o->fast_restore)
	{
		snprintf(errbuf, errlen,
		         "--fast-restore-settings is for --copy-method dump (the direct copy already "
		         "writes with synchronous_commit off)");
		return false;
	}
	if (o->online && strcmp(o->scope, "schema-only") == 0)
	{
		snprintf(errbuf, errlen,
		         "--dump-scope schema-only conflicts with --mode online "
		         "(changes need the data)");
		return false;
	}
	return true;
}

/* ----------------------------------------------------------------- helpers */

/* Whether any --schema/--table/--exclude-* narrows the migration. */
bool
migopts_has_filters(const migopts *o)
{
	return o->nschemas || o->ntables || o->nex_schemas || o->nex_tables;
}

/* A hash of what defines the migration (never the password). */
uint64_t
migopts_config_hash(const migopts *o, const char *source_safe, const char *target_safe)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t h;

#define H(str) XXH3_64bits_update(st, (str), strlen(str) + 1)
	XXH3_64bits_reset(st);
	H(o->online ? "online" : "offline");
	H(source_safe);
	H(target_safe);
	H(o->slot);
	H(o->publication);
	H(o->scope);
	if (o->copy_direct) /* only then: a token of an older version still resumes */
		H("direct");
	for (int i = 0; i < o->nschemas; i++)
		H(o->schemas[i]);
	H("|");
	for (int i = 0; i < o->ntables; i++)
		H(o->tables[i]);
	H("|");
	for (int i = 0; i < o->nex_schemas; i++)
		H(o->ex_schemas[i]);
	H("|");
	for (int i = 0; i < o->nex_tables; i++)
		H(o->ex_tables[i]);
#undef H
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/* A slot name for database db: pg_dbmigrator_ and the name's safe characters. */
void
migopts_slot_for(const char *db, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "pg_dbmigrator_");

	for (const char *p = db; *p && n + 1 < size && n < 50; p++)
		buf[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p
		           : (*p >= 'A' && *p <= 'Z')                           ? (char)(*p + 32)
		                                                                : '_';
	buf[n] = '\0';
	/* different databases may map to one name: add a hash of the real one */
	snprintf(buf + n, size - n, "_%08x", (unsigned)XXH3_64bits(db, strlen(db)));
}

/* The parent's argv for database db's child, with its own dump path, slot and tag. */
void
migopts_child_init(migopts_child *c, const migopts *o, int argc, char **argv, const char *db)
{
	int n = 0;
	static const char *const drop_with_value[] = {
	    "--source", "--target", "--dump-path", "--slot-name", "--max-parallel", "--event-tag",
	    "--resume-file",
	    /* issue 19: the parent says these once; the connections go in the environment */
	    "--subscription-name", "--from-host", "--from-port", "--from-user", "--from-pass",
	    "--from-db", "-m", "--to-host", "--to-port", "--to-user", "--to-pass", "--to-db",
	    "--dump-root", NULL};
	static const char *const drop_flags[] = {
	    "--all-databases",        "--migrate-globals",       "--no-migrate-globals",
	    "--with-role-passwords",  "--include-postgres-db",   "--keep-subscription",
	    "--migrate-globals=true", "--migrate-globals=false", NULL};

	migopts_slot_for(db, c->slot, sizeof(c->slot));
	snprintf(c->dump_path, sizeof(c->dump_path), "%s/%s", o->dump_path, c->slot);
	c->argv[n++] = "/proc/self/exe";
	for (int i = 1; i < argc && n < MIGOPTS_CHILD_MAX_ARGS; i++)
	{
		bool skip = false;

		for (int k = 0; drop_flags[k]; k++)
			skip |= strcmp(argv[i], drop_flags[k]) == 0;
		for (int k = 0; drop_with_value[k] && !skip; k++)
		{
			size_t l = strlen(drop_with_value[k]);

			if (strcmp(argv[i], drop_with_value[k]) == 0)
			{
				skip = true;
				i++; /* and its value */
			}
			else if (strncmp(argv[i], drop_with_value[k], l) == 0 && argv[i][l] == '=')
				skip = true;
		}
		if (!skip)
			c->argv[n++] = argv[i];
	}
	c->argv[n++] = "--dump-path";
	c->argv[n++] = c->dump_path;
	c->argv[n++] = "--slot-name";
	c->argv[n++] = c->slot;
	c->argv[n++] = "--event-tag";
	c->argv[n++] = db;
	c->argv[n] = NULL;
}

int
migopts_copy_jobs(const migopts *o)
{
	long cpus;

	if (o->jobs_given)
		return o->jobs;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus < 2 ? 2 : cpus > 4 ? 4 : (int)cpus;
}
