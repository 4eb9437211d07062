/*
 * cmd_shadow.c — `pg_dbmigrator shadow VERB`: the command line of the
 * shadow-table refresh (prepare, swap, start, rollback, list, status,
 * cleanup, verify); the work is in shadow.c.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "events.h"
#include "shadow.h"

static void
shadow_usage(FILE *f)
{
	fprintf(
	    f,
	    "pg_dbmigrator shadow refreshes a live target from a source: the source's tables are\n"
	    "copied into shadow tables on the target while the application goes on, then swapped\n"
	    "in, all at once, in one short transaction; the replaced tables are kept as a backup.\n"
	    "\n"
	    "Usage:\n"
	    "  pg_dbmigrator shadow prepare --source URI --dest URI [--preserved-tables a,b]\n"
	    "                               [--jobs N] [--online]\n"
	    "  pg_dbmigrator shadow swap --dest URI [--timestamp TS] [--source URI]\n"
	    "  pg_dbmigrator shadow start --source URI --dest URI [--preserved-tables a,b]\n"
	    "                             prepare, then swap\n"
	    "  pg_dbmigrator shadow rollback --dest URI --latest|--timestamp TS [--keep-tables a,b]\n"
	    "  pg_dbmigrator shadow list --dest URI [--json]       the backups\n"
	    "  pg_dbmigrator shadow status [--dest URI] [--source URI] [--timestamp TS] [--json]\n"
	    "  pg_dbmigrator shadow cleanup --dest URI --before DATE|now [--source URI]\n"
	    "  pg_dbmigrator shadow verify --dest URI --timestamp TS\n"
	    "\n"
	    "Options:\n"
	    "  --source URI, --dest URI     (or PG_DBMIGRATOR_SOURCE / PG_DBMIGRATOR_TARGET;\n"
	    "                               --target is the same as --dest)\n"
	    "  --schema NAME                the live schema refreshed (default public)\n"
	    "  --preserved-tables a,b       target tables that keep their own rows (and every\n"
	    "                               write until the swap); each needs a primary key\n"
	    "  --keep-tables a,b            rollback: tables that keep their current rows\n"
	    "  --timestamp TS               the migration (YYYYMMDDHHMMSS, UTC)\n"
	    "  --state-dir DIR              where the state files are (default ./pgdbm-shadow)\n"
	    "  --jobs N                     prepare: tables copied at once (default 1), each\n"
	    "                               with one source and one target session\n"
	    "  --lock-timeout MS            the swap's wait for each lock try (default 50)\n"
	    "  --lock-retries N             swap tries before giving up (default 20)\n"
	    "  --online                     prepare: copy at a replication slot's snapshot, then\n"
	    "                               stream the source's changes into the shadow until\n"
	    "                               Ctrl+C or the swap (which drains the slot, needs\n"
	    "                               --source, and drops the slot after)\n"
	    "  --dry-run                    print the plan and statements, change nothing\n"
	    "  --json                       JSON on stdout\n"
	    "\n"
	    "Exit codes: 0 done, 1 failed (the live tables untouched; the message says why),\n"
	    "2 bad usage, 4 verify found a backup that differs from its manifest.\n");
}

/* Split a,b,c (copied into store) into list (NULL-terminated); false if too many or empty. */
static bool
split_list(const char *text, char *store, size_t size, const char **list)
{
	int n = 0;
	char *save = NULL;

	if (strlen(text) >= size)
		return false;
	strcpy(store, text);
	for (char *tok = strtok_r(store, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		while (*tok == ' ')
			tok++;
		if (*tok == '\0')
			continue;
		if (n == SHADOW_MAX_LIST)
			return false;
		list[n++] = tok;
	}
	list[n] = NULL;
	return n > 0;
}

int
cmd_shadow(int argc, char **argv)
{
	enum
	{
		O_SOURCE = 256,
		O_DEST,
		O_SCHEMA,
		O_PRESERVED,
		O_KEEP,
		O_TS,
		O_LATEST,
		O_BEFORE,
		O_STATE,
		O_LOCKTO,
		O_TRIES,
		O_DRY,
		O_JOBS,
		O_JSON,
		O_ONLINE,
		O_HELP
	};
	static const struct option longopts[] = {
	    {"source", required_argument, NULL, O_SOURCE},
	    {"dest", required_argument, NULL, O_DEST},
	    {"target", required_argument, NULL, O_DEST},
	    {"schema", required_argument, NULL, O_SCHEMA},
	    {"preserved-tables", required_argument, NULL, O_PRESERVED},
	    {"keep-tables", required_argument, NULL, O_KEEP},
	    {"timestamp", required_argument, NULL, O_TS},
	    {"latest", no_argument, NULL, O_LATEST},
	    {"before", required_argument, NULL, O_BEFORE},
	    {"state-dir", required_argument, NULL, O_STATE},
	    {"lock-timeout", required_argument, NULL, O_LOCKTO},
	    {"lock-retries", required_argument, NULL, O_TRIES},
	    {"dry-run", no_argument, NULL, O_DRY},
	    {"jobs", required_argument, NULL, O_JOBS},
	    {"json", no_argument, NULL, O_JSON},
	    {"online", no_argument, NULL, O_ONLINE},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0}};
	static char preserved_store[4096], keep_store[4096];
	shadow_opts o = {0};
	const char *verb;
	int c;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		shadow_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	verb = argv[1];
	o.source = getenv("PG_DBMIGRATOR_SOURCE");
	o.dest = getenv("PG_DBMIGRATOR_TARGET");
	o.schema = "public";
	o.state_dir = "pgdbm-shadow";
	o.lock_timeout_ms = 50;
	o.lock_tries = 20;
	o.jobs = 1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case O_SOURCE:
				o.source = optarg;
				break;
			case O_DEST:
				o.dest = optarg;
				break;
			case O_SCHEMA:
				o.schema = optarg;
				break;
			case O_PRESERVED:
				if (!split_list(optarg, preserved_store, sizeof(preserved_store), o.preserved))
				{
					fprintf(stderr,
					        "pg_dbmigrator shadow: --preserved-tables wants a,b (at most %d)\n",
					        SHADOW_MAX_LIST);
					return EXIT_USAGE;
				}
				break;
			case O_KEEP:
				if (!split_list(optarg, keep_store, sizeof(keep_store), o.keep))
				{
					fprintf(stderr, "pg_dbmigrator shadow: --keep-tables wants a,b (at most %d)\n",
					        SHADOW_MAX_LIST);
					return EXIT_USAGE;
				}
				break;
			case O_TS:
				o.timestamp = optarg;
				break;
			case O_LATEST:
				o.latest = true;
				break;
			case O_BEFORE:
				o.before = optarg;
				break;
			case O_STATE:
				o.state_dir = optarg;
				break;
			case O_LOCKTO:
				if (!cli_parse_int(optarg, 1, 60000, &o.lock_timeout_ms))
				{
					fprintf(stderr, "pg_dbmigrator shadow: --lock-timeout wants milliseconds, 1 to "
					                "60000\n");
					return EXIT_USAGE;
				}
				break;
			case O_TRIES:
				if (!cli_parse_int(optarg, 1, 1000, &o.lock_tries))
				{
					fprintf(stderr, "pg_dbmigrator shadow: --lock-retries wants 1 to 1000\n");
					return EXIT_USAGE;
				}
				break;
			case O_DRY:
				o.dry_run = true;
				break;
			case O_JOBS:
				if (!cli_parse_int(optarg, 1, SHADOW_MAX_JOBS, &o.jobs))
				{
					fprintf(stderr, "pg_dbmigrator shadow: --jobs wants 1 to %d\n",
					        SHADOW_MAX_JOBS);
					return EXIT_USAGE;
				}
				break;
			case O_JSON:
				o.json = true;
				break;
			case O_ONLINE:
				o.online = true;
				break;
			case O_HELP:
				shadow_usage(stdout);
				return EXIT_OK;
			default:
				fprintf(stderr, "Try \"pg_dbmigrator shadow --help\".\n");
				return EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pg_dbmigrator shadow: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (o.timestamp && strlen(o.timestamp) != 14)
	{
		fprintf(stderr, "pg_dbmigrator shadow: --timestamp wants the migration's YYYYMMDDHHMMSS "
		                "(shadow list shows them)\n");
		return EXIT_USAGE;
	}
	if (strcmp(verb, "status") != 0 && (o.dest == NULL || o.dest[0] == '\0'))
	{
		fprintf(stderr, "pg_dbmigrator shadow %s: --dest URI is required\n", verb);
		return EXIT_USAGE;
	}
	if ((strcmp(verb, "prepare") == 0 || strcmp(verb, "start") == 0) &&
	    (o.source == NULL || o.source[0] == '\0'))
	{
		fprintf(stderr, "pg_dbmigrator shadow %s: --source URI is required\n", verb);
		return EXIT_USAGE;
	}
	if (o.online && strcmp(verb, "prepare") != 0 && strcmp(verb, "start") != 0)
	{
		fprintf(stderr,
		        "pg_dbmigrator shadow %s: --online is for prepare and start (the swap "
		        "knows from the state)\n",
		        verb);
		return EXIT_USAGE;
	}
	events_init(o.json);
	if (strcmp(verb, "prepare") == 0)
		return shadow_prepare(&o);
	if (strcmp(verb, "swap") == 0)
		return shadow_swap(&o);
	if (strcmp(verb, "start") == 0)
	{
		int rc;

		o.then_swap = true; /* --online: no streaming in between, the swap drains at once */
		rc = shadow_prepare(&o);

		return rc != EXIT_OK || o.dry_run ? rc : shadow_swap(&o);
	}
	if (strcmp(verb, "rollback") == 0)
	{
		if (o.latest == (o.timestamp != NULL))
		{
			fprintf(stderr, "pg_dbmigrator shadow rollback: give --latest or --timestamp TS\n");
			return EXIT_USAGE;
		}
		return shadow_rollback(&o);
	}
	if (strcmp(verb, "list") == 0)
		return shadow_list(&o);
	if (strcmp(verb, "status") == 0)
		return shadow_status(&o);
	if (strcmp(verb, "cleanup") == 0)
	{
		if (o.before == NULL)
		{
			fprintf(stderr, "pg_dbmigrator shadow cleanup: --before DATE is required (2026-12-02, "
			                "or \"now\")\n");
			return EXIT_USAGE;
		}
		{
			/* an unswapped online migration's slot goes first (the source's WAL) */
			int rc = shadow_online_release(&o);

			return rc != EXIT_OK ? rc : shadow_cleanup(&o);
		}
	}
	if (strcmp(verb, "verify") == 0)
	{
		if (o.timestamp == NULL)
		{
			fprintf(stderr, "pg_dbmigrator shadow verify: --timestamp TS is required\n");
			return EXIT_USAGE;
		}
		return shadow_verify(&o);
	}
	fprintf(stderr,
	        "pg_dbmigrator shadow: unknown verb \"%s\" (prepare, swap, start, rollback, list, "
	        "status, cleanup, verify)\nTry \"pg_dbmigrator shadow --help\".\n",
	        verb);
	return EXIT_USAGE;
}
