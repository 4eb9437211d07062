/*
 * resume.h — the resume token: a small JSON file next to the dump
 * (<dump_path>.resume.json) saying which stages of a migration are done, with
 * a hash of the migration-defining configuration (never a password). Saved
 * atomically (write .tmp, fsync, rename, fsync the directory), mode 0600.
 *
 * Owns: nothing beyond the file it writes. Never: stores a password.
 */
#ifndef RESUME_H
#define RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgdbm_attr.h"
#include "pgoutput.h"

#define RESUME_VERSION 1

typedef enum resume_stage
{
	RESUME_NONE = 0,
	RESUME_STARTED,  /* validated; the slot may be being created (named in the token) */
	RESUME_SNAPSHOT, /* slot created; the dump has not finished */
	RESUME_DUMPED,   /* the dump is complete */
	RESUME_RESTORED, /* the restore is complete: streaming */
	RESUME_CUTOVER,  /* every change is applied and the stream closed: finishing up */
	RESUME_COMPLETE, /* done: kept so that a late --resume and status can say so */
} resume_stage;

typedef struct resume_token
{
	int version;
	resume_stage stage;
	uint64_t config_hash;
	bool online;
	char slot[64];
	char publication[128];
	bool created_publication;
	/* the insert-only publication of the tables without a replica identity ("" if none) */
	char keyless_publication[128];
	bool created_keyless_publication;
	pgo_lsn consistent_lsn;
	char source[1024]; /* connection strings without their passwords (for status) */
	char target[1024];
} resume_token;

/* <dump_path>.resume.json into buf. */
void resume_path(const char *dump_path, char *buf, size_t size);

/* Save atomically; false with a message. */
PGDBM_MUST_CHECK bool resume_save(const char *path, const resume_token *t, char *errbuf,
                                  size_t errlen);

/* Load; *found false (and true returned) when there is no token. */
PGDBM_MUST_CHECK bool resume_load(const char *path, resume_token *t, bool *found, char *errbuf,
                                  size_t errlen);

/* The stage's name ("Dump" ...). */
const char *resume_stage_name(resume_stage s);

#endif /* RESUME_H */
