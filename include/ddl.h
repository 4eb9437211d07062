/*
 * ddl.h — schema changes replicated in stream order (--ddl replicate).
 *
 * On the source, three event triggers of ours (ddl_command_end, sql_drop,
 * table_rewrite) call
 * one function that emits a transactional logical decoding message, prefix
 * DDL_MSG_PREFIX, for every DDL command: a JSON object with the command tag,
 * the top-level query text, the search_path and role in force, the objects
 * touched, and statements rebuilt from the catalog for them ("defs"), in
 * UTF-8 whatever the source database's encoding (the message's bytes reach
 * the tool unconverted, unlike the rows' values). The message sits in the
 * source transaction at the command's place, so the applier replays it
 * between the rows before and after it.
 *
 * This module is pure: the SQL that installs and removes the capture, the
 * parser of the message, the SQL lexer that tells whether the query text is
 * exactly one statement of the command's kind, and the replay decision. The
 * applier (apply.c) executes, snapshot.c installs, finish.c removes.
 *
 * Owns: what ddl_msg_parse allocates (freed by ddl_msg_free). Never: talks to
 * a server, or prints.
 */
#ifndef DDL_H
#define DDL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

/* The logical decoding message prefix of a captured DDL command. */
#define DDL_MSG_PREFIX "pg_dbmigrator.ddl"

/* The source's objects of the capture: a schema, a function, three event triggers. */
#define DDL_SCHEMA          "_pg_dbmigrator"
#define DDL_FUNCTION        DDL_SCHEMA ".ddl_capture"
#define DDL_TRIGGER_END     "pg_dbmigrator_ddl_end"
#define DDL_TRIGGER_DROP    "pg_dbmigrator_ddl_drop"
#define DDL_TRIGGER_REWRITE "pg_dbmigrator_ddl_rewrite"

/*
 * With a list publication, the capture calls this function of the source
 * (when it exists) for each new table: see ddl_publish_hook_sql.
 */
#define DDL_PUBLISH_HOOK DDL_SCHEMA ".ddl_publish_new"

/*
 * The statements that install the capture on the source, to run in one
 * transaction before the slot exists. The objects are made members of the
 * plpgsql extension so that pg_dump (and so the target) never sees them.
 */
extern const char ddl_install_sql[];

/*
 * Into sql (reset first): the statements that create the publish hook, for a
 * list publication (its name as a quoted literal lpub): a new table for
 * which in_scope (an SQL condition on s.nspname and c.relname: see
 * scope_predicate) holds, and that has a replica identity key or a full
 * one, joins the publication in the transaction that created it (SECURITY
 * DEFINER: the application's role need not own the publication). A keyless
 * one is left out: publishing its updates would make the application's
 * UPDATE and DELETE fail. The capture calls it inside its protected block:
 * an error there never fails the application's DDL, it reaches the tool.
 * False when out of memory.
 */
PGDBM_MUST_CHECK bool ddl_publish_hook_sql(strbuf *sql, const char *lpub, const char *in_scope);

/*
 * The comment on the capture's schema names the migration that installed it
 * (and drops it): this prefix, then its slot. Two migrations of one database
 * cannot share the capture's fixed names: the second is refused (or falls
 * back to --ddl stop), and neither drops the other's.
 */
#define DDL_OWNER_PREFIX "pg_dbmigrator DDL capture of slot "

/*
 * One row when the capture's schema exists: its comment ("" when it has none,
 * as an older version of the tool left it).
 */
extern const char ddl_owner_sql[];

/* Remove the capture (idempotent: nothing happens when it is not there). */
extern const char ddl_remove_sql[];

/* One row: how many of the capture's event triggers the source has (0, 1 or 2). */
extern const char ddl_present_sql[];

/*
 * One row: the tables ("schema.table", ", "-separated; NULL for none) that the
 * publication named by $1 publishes updates or deletes of although they have
 * no replica identity: the application's UPDATE and DELETE on them fail on
 * the source. A FOR ALL TABLES publication without the capture (--ddl stop)
 * gets them when the application creates a keyless table.
 */
extern const char ddl_unkeyed_sql[];

/*
 * One row, two columns: may the connected role install the capture ("t" or
 * "f"), and if not, why (text for the operator).
 */
extern const char ddl_allowed_sql[];

/* A captured command, as parsed from its message. Every string is owned (malloc'd). */
typedef struct ddl_msg
{
	char *tag;             /* the command tag, e.g. "ALTER TABLE" */
	char *query;           /* current_query() on the source: the top-level text; or NULL */
	char *search_path;     /* the schemas in force, quoted and comma-separated; or NULL */
	char *role;            /* current_user on the source; or NULL */
	char *commands;        /* the objects touched, "; "-separated; or NULL */
	char *nodef;           /* objects that no statement could be rebuilt for; or NULL */
	char *error;           /* the capture failed on the source with this message; or NULL */
	char *volatile_tables; /* tables with rows rewritten by a volatile default; or NULL */
	char **defs;           /* ndefs statements rebuilt from the catalog (each owned) */
	int ndefs;
	char **after; /* nafter statements run after the replay, whichever way (each owned) */
	int nafter;
	char **schemas; /* the schema of each object touched ("" for none; each owned) */
	int nschemas;
} ddl_msg;

/*
 * Parse a message's content (len bytes, not NUL-terminated). False with a
 * reason in errbuf when it is not a capture message; m is then empty and
 * ddl_msg_free is still safe.
 */
PGDBM_MUST_CHECK bool ddl_msg_parse(const char *content, size_t len, ddl_msg *m, char *errbuf,
                                    size_t errlen);

/* Free what ddl_msg_parse allocated; m is left empty. */
void ddl_msg_free(ddl_msg *m);

/*
 * The SQL lexer: the number of statements in sql (separated by ';' outside
 * quotes, E'' strings, quoted identifiers, dollar quotes and comments; empty
 * statements not counted), or -1 when a quote or comment is not closed.
 */
int ddl_count_statements(const char *sql);

/*
 * Is sql exactly one statement whose leading words are those of the command
 * tag (the first word equal, the others in order among the next few words,
 * as "CREATE UNIQUE INDEX" is a "CREATE INDEX")? When *concurrently is given
 * it says whether CONCURRENTLY is among the leading words.
 */
bool ddl_text_is_command(const char *sql, const char *tag, bool *concurrently);

/* How a captured command is replayed on the target. */
typedef enum ddl_replay
{
	DDL_REPLAY_TEXT, /* the query text itself: it is exactly this one command */
	DDL_REPLAY_DEFS, /* the statements rebuilt from the catalog */
	DDL_REPLAY_NONE  /* no safe replay: stop (why says which and why) */
} ddl_replay;

/*
 * Decide how to replay m: none when it computed a volatile default for rows
 * already there (the stream does not carry those values); the text when it is one statement of the command's
 * kind (a CONCURRENTLY index is rebuilt from its definition instead: it cannot
 * run inside the apply's transaction); else the rebuilt statements when every
 * object touched has one; else none, with the reason in why.
 */
ddl_replay ddl_decide(const ddl_msg *m, char *why, size_t whylen);

/*
 * Does m touch anything in the migration's scope: a schema of schemas (all
 * when nschemas is 0) that ex_schemas does not exclude, or an object of no
 * schema? True when the message names no schema (an older capture).
 */
bool ddl_in_scope(const ddl_msg *m, const char *const *schemas, int nschemas,
                  const char *const *ex_schemas, int nex_schemas);

#endif /* DDL_H */
