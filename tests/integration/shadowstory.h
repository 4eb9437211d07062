/*
 * shadowstory.h — what the shadow-table stories (issue 17: check_shadow,
 * check_shadow_objects, check_shadow_online) do again and again, said once:
 * make a database on both sides as the role "app" with the application's
 * rows, run `pg_dbmigrator shadow VERB`, read the migration's timestamp from
 * its log, and say that nothing of ours is left on the source or the target.
 *
 * Owns: nothing past the calls. Never: decides what a story checks beyond
 * "nothing is left" (the stories assert the rest).
 */
#ifndef SHADOWSTORY_H
#define SHADOWSTORY_H

#include <stddef.h>

#include "pgtest.h"
#include "story.h"

/* A story's schema and rows on one side: customers, orders and users rows, tagged with tag. */
typedef void (*shst_build_fn)(PGconn *c, int customers, int orders, int users, const char *tag);

/*
 * The rows of the application's tables customers (name tag || n), orders
 * (spread over the customers, total n) and users (name tag-user || n), into
 * the tables a story's build made.
 */
void shst_app_rows(PGconn *c, int customers, int orders, int users, const char *tag);

/*
 * A database named db on both servers of sv, owned by app, with build's
 * schema on each and different rows (the source 300/3000/5 tagged "src", the
 * target 50/400/100 tagged "tgt"); both connection strings into src and tgt
 * (size each), app's sessions on each into *s and *t (the caller finishes).
 */
void shst_two_sides(story_servers *sv, const char *db, shst_build_fn build, char *src, char *tgt,
                    size_t size, PGconn **s, PGconn **t);

/* Run `pg_dbmigrator shadow verb` with the words of more; its exit code, out and err kept. */
int shst_shadow(const char *verb, const char *const more[], char **out, char **err);

/* The timestamp of the migration named right after the first `after` in log, into ts. */
void shst_ts_of(const char *log, const char *after, char ts[15]);

/* The source has no slot and no publication of ours. */
void shst_source_clean(PGconn *s);

/* The target has no schema of ours (shadow or backup). */
void shst_target_clean(PGconn *t);

#endif
