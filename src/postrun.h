/*
 * postrun.h — the post-data runner of a direct copy (src/postrun.c), used by
 * copyrun.c. Internal to the migration.
 */
#ifndef PGDBM_POSTRUN_H
#define PGDBM_POSTRUN_H

#include <pthread.h>
#include <stdbool.h>

#include "migrate_internal.h"
#include "postdata.h"

/*
 * Post-data overlap: a table's own post-data (postdata.h) is restored by a
 * pg_restore --use-list once all its parts are in and a copy worker has
 * nothing left to take (so the index builds use the share of the machine the
 * copy's tail leaves free, never slowing a copy that keeps every worker
 * busy), by one runner thread, one table after the other, with as many
 * pg_restore jobs as there are idle workers. When the copy ends the runner
 * stops after the table it is on, and what is left (what spans tables, and
 * the tables the runner did not reach) goes to the Restore phase as one list
 * (m->postdata_list) run with --jobs.
 */
typedef struct postrun
{
	mig *m;                  /* borrowed: the run */
	postdata_entry *entries; /* owned (postdata_free) */
	int nentries;
	int ntables;
	int *count; /* owned: per table, its entries */
	bool *done; /* owned: per table, its entries restored */
	int *queue; /* owned: tables whose rows are in, in order (ntables at most) */
	int qhead, qlen;
	bool closing; /* the copy is over: stop after the current table */
	int idle;     /* copy workers with no part left to take */
	bool failed;
	bool warned; /* pg_restore reported errors accepted by --allow-restore-errors */
	int tables_done;
	double busy_seconds;
	char errmsg[2048];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started;
	bool inited; /* mu and cv */
} postrun;

/* The dump's post-data entries, each with its table where it has one of the ncopy copied. */
PGDBM_MUST_CHECK bool postrun_prepare(postrun *pp, mig *m, int ncopy, char *errbuf, size_t errlen);
/* Start the runner thread; false: none (all the post-data then goes to the Restore phase). */
bool postrun_start(postrun *pp);
/* tablecopy's table_done: queue the table's post-data; false once the runner failed. */
bool postrun_table_done(void *arg, int table);
/* tablecopy's worker_idle: a worker's share of the machine is free for the post-data. */
void postrun_worker_idle(void *arg);
/* The copy is over (or failed): the runner stops after its table; wait for it. */
void postrun_close(postrun *pp);
/* After the copy: the runner joined, the final pass's list written for the Restore phase. */
PGDBM_MUST_CHECK bool postrun_finish(mig *m, postrun *pp, char *errbuf, size_t errlen);
void postrun_free(postrun *pp);

#endif
