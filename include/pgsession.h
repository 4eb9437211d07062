/*
 * pgsession.h — regular (non-replication) connections: opened for a role
 * with that role's session settings, and made fresh again after a cut.
 *
 * Owns: nothing; the PGconn it returns is the caller's (PQfinish).
 *
 * Never: opens a replication connection (replconn), prints, or decides what
 * a failed connection means (the caller words the message).
 */
#ifndef PGSESSION_H
#define PGSESSION_H

#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"

/* Which side a session talks to: that decides the settings it gets. */
typedef enum pgsession_role
{
	PGSESSION_PLAIN,  /* no settings: the server's defaults */
	PGSESSION_SOURCE, /* client_min_messages warning, synchronous_commit local */
	PGSESSION_TARGET, /* client_min_messages warning */
} pgsession_role;

typedef struct pgsession_opts
{
	const char *conninfo;        /* borrowed: a connection string or a database name */
	pgsession_role role;         /* the settings sent after connecting and after a reset */
	const char *client_encoding; /* borrowed; NULL: libpq's default. Kept by PQreset */
	const char *connect_timeout; /* borrowed, seconds; NULL: libpq's default */
} pgsession_opts;

/*
 * Connect and send the role's settings. NULL when the server cannot be
 * reached, with libpq's reason (or "out of memory") in errbuf.
 */
PGDBM_MUST_CHECK PGconn *pgsession_open(const pgsession_opts *o, char *errbuf, size_t errlen);

/*
 * A session that may have been cut (server restart): reset it if it does not
 * answer, and send the role's settings again. NULL c does nothing.
 */
void pgsession_refresh(PGconn *c, pgsession_role role);

#endif /* PGSESSION_H */
