/*
 * replconn.h — the logical replication connection to the source
 * (replication=database): IDENTIFY_SYSTEM, slot creation with an exported
 * snapshot, re-attaching to an existing slot, START_REPLICATION.
 *
 * Owns: one PGconn. Never: logs (errors go to the caller's buffer), puts a
 * password into a message, or builds a command from an unquoted name.
 */
#ifndef REPLCONN_H
#define REPLCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"

#define REPLCONN_NAME_MAX 64 /* NAMEDATALEN */

typedef struct replconn
{
	PGconn *conn;       /* owned: PQfinish in replconn_close */
	int server_version; /* server_version_num, e.g. 150004 */
	char system_id[32];
	unsigned timeline;
	pgo_lsn xlogpos; /* server's flush position at IDENTIFY_SYSTEM */
	char dbname[REPLCONN_NAME_MAX];
	bool slot_busy;    /* the last replconn_start failed: the slot is active elsewhere (55006) */
	pgo_lsn start_lsn; /* where the last replconn_start asked to begin (0: the slot's position) */
} replconn;

/*
 * Session settings that fix how values are written as text: set on the
 * replication connection (the walsender's output functions) and on the
 * apply session (the input functions), so values round-trip exactly.
 */
#define REPLCONN_FORMAT_SETTINGS                                                                  \
	"SET datestyle TO 'ISO, YMD'; SET intervalstyle TO 'postgres'; SET extra_float_digits TO 3; " \
	"SET timezone TO 'UTC'"

/* A logical slot as created or found. */
typedef struct replslot
{
	char name[REPLCONN_NAME_MAX];
	pgo_lsn consistent_point; /* created: where the snapshot is; found: confirmed_flush_lsn */
	char snapshot[REPLCONN_NAME_MAX]; /* exported snapshot name; empty when found */
	char plugin[REPLCONN_NAME_MAX];
	char wal_status[16]; /* found on PG13+: reserved/extended/unreserved/lost */
} replslot;

/* What START_REPLICATION asks of pgoutput. */
typedef struct replstart
{
	const char *slot;                /* borrowed */
	pgo_lsn start_lsn;               /* 0: from the slot's confirmed position */
	int proto_version;               /* 0: the highest the server supports */
	const char *const *publications; /* borrowed: NULL-terminated list */
	bool messages;                   /* logical decoding messages ('M') */
	bool binary;                     /* binary column values ('b') */
	/*
	 * borrowed, NULL: the server's default. The encoding pgoutput converts
	 * names and text values to: the target database's server encoding, as
	 * PostgreSQL's own apply worker asks for the subscriber's.
	 */
	const char *client_encoding;
} replstart;

/*
 * Open a replication connection from any libpq connection string or URI
 * (PG* variables and ~/.pgpass apply), then IDENTIFY_SYSTEM. Errors below
 * PostgreSQL 10. On failure *rc holds no connection.
 */
PGDBM_MUST_CHECK bool replconn_open(replconn *rc, const char *connstr, char *errbuf, size_t errlen);

/* Close the connection (safe on a closed or never-opened replconn). */
void replconn_close(replconn *rc);

/* Check a connection string parses, without connecting. */
PGDBM_MUST_CHECK bool replconn_check_conninfo(const char *connstr, char *errbuf, size_t errlen);

/* The highest pgoutput protocol version a server version supports. */
int replconn_max_proto_version(int server_version);

/* Check a slot name is one PostgreSQL accepts ([a-z0-9_], 1-63 chars). */
PGDBM_MUST_CHECK bool replconn_valid_slot_name(const char *name, char *errbuf, size_t errlen);

/*
 * CREATE_REPLICATION_SLOT ... LOGICAL pgoutput exporting a snapshot, in the
 * syntax the server accepts. The snapshot stays valid until the next command
 * on this connection: keep it idle until the dump has its snapshot.
 */
PGDBM_MUST_CHECK bool replconn_create_slot(replconn *rc, const char *slot, bool temporary,
                                           replslot *out, char *errbuf, size_t errlen);

/* Look up an existing slot; *found false (and true returned) if absent. */
PGDBM_MUST_CHECK bool replconn_find_slot(replconn *rc, const char *slot, bool *found, replslot *out,
                                         char *errbuf, size_t errlen);

/* DROP_REPLICATION_SLOT. */
PGDBM_MUST_CHECK bool replconn_drop_slot(replconn *rc, const char *slot, char *errbuf,
                                         size_t errlen);

/*
 * Build the START_REPLICATION command text into buf (for tests and logs).
 * Returns false if it does not fit or an argument is invalid.
 */
PGDBM_MUST_CHECK bool replconn_build_start(const replstart *opts, int server_version, char *buf,
                                           size_t size, char *errbuf, size_t errlen);

/*
 * START_REPLICATION (after SET client_encoding when opts asks for one): on
 * success the connection is in COPY BOTH mode.
 */
PGDBM_MUST_CHECK bool replconn_start(replconn *rc, const replstart *opts, char *errbuf,
                                     size_t errlen);

/*
 * Check that every table the publications publish updates or deletes of has
 * a usable replica identity (a primary key, a valid REPLICA IDENTITY USING
 * INDEX, or FULL); the error names each table that has none and what to do.
 * Runs SQL on the replication connection (before START_REPLICATION).
 */
PGDBM_MUST_CHECK bool replconn_check_identity(replconn *rc, const char *const *publications,
                                              char *errbuf, size_t errlen);

/* Microseconds since the PostgreSQL epoch, from the system clock. */
pgo_timestamp replconn_now(void);

#endif /* REPLCONN_H */
