/*
 * prodfix.h — a source database shaped like production, for the online
 * stories: LATIN1 encoding; objects owned by a role the target does not
 * have; user triggers that write audit rows (keyed and keyless); cascading
 * foreign keys; identity columns (ALWAYS and BY DEFAULT); composite and
 * domain types in a primary key and in a REPLICA IDENTITY FULL table; a
 * zero-column table; a keyless append-only table; an unlogged table and a
 * large object. Its writers touch every kind of table with
 * synchronous_commit = off.
 *
 * Owns: nothing past the calls; the caller owns the clusters.
 */
#ifndef PRODFIX_H
#define PRODFIX_H

#include <libpq-fe.h>

#include "pgtest.h"

/* The tables the stories compare, NULL-terminated. */
extern const char *const prodfix_tables[];

/*
 * Create database name on the source (LATIN1, dropped first if there) with
 * the fixture's roles, schema and initial rows; src_admin is a superuser
 * connection to the source cluster's postgres database.
 */
void prodfix_source(PGconn *src_admin, const pgt_cluster *src, const char *name);

/* Write the writers' pgbench script (one transaction touching every kind of table) to path. */
void prodfix_writers_script(const char *path);

/*
 * Start pgbench on the source database with clients for seconds at rate
 * transactions per second (0: as fast as they go), every commit
 * asynchronous (PGOPTIONS=-c synchronous_commit=off).
 */
void prodfix_start_writers(pgt_proc *writers, const pgt_cluster *src, const char *db, int clients,
                           int seconds, int rate, const char *script);

/* Fail the test unless every fixture table is the same on both sides. */
void prodfix_assert_same(PGconn *src, PGconn *tgt);

/*
 * Fail the test unless the target's guard is fully undone: every user
 * trigger enabled as on the source, every foreign key present and
 * validated, identity columns ALWAYS again.
 */
void prodfix_assert_target_intact(PGconn *src, PGconn *tgt);

#endif /* PRODFIX_H */
