/*
 * sequences.c — the SequenceSync phase: every sequence on the target set to
 * the source's value at cutover, never backwards.
 *
 * Owns: nothing. Never: fails the run (warnings only).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"

void
sequences_sync(mig *m)
{
	PGresult *res = PQexec(m->src, "SELECT format('%I.%I', schemaname, sequencename), last_value "
	                               "FROM pg_catalog.pg_sequences WHERE last_value IS NOT NULL");
	int done = 0, failed = 0;
	event e;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		event_say("SequenceSync", "warning", "cannot read the source's sequences: %s",
		          PQerrorMessage(m->src));
		PQclear(res);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *params[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
		/*
		 * never backwards: a run resumed after its cutover may find the
		 * application already drawing values on the target
		 */
		PGresult *r = PQexecParams(
		    m->tgt,
		    "SELECT pg_catalog.setval(s.seqrelid, CASE WHEN s.seqincrement > 0 "
		    "THEN greatest($2::bigint, coalesce(pg_catalog.pg_sequence_last_value(s.seqrelid), "
		    "$2::bigint)) ELSE least($2::bigint, "
		    "coalesce(pg_catalog.pg_sequence_last_value(s.seqrelid), $2::bigint)) END) "
		    "FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1::regclass",
		    2, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			done++;
		else
		{
			failed++;
			event_say("SequenceSync", "warning", "setval(%s, %s) failed on the target: %s",
			          params[0], params[1], PQerrorMessage(m->tgt));
		}
		PQclear(r);
	}
	PQclear(res);
	event_begin(&e, "SequenceSync");
	event_int(&e, "sequences", done);
	event_int(&e, "failed", failed);
	event_end(&e, "sequences set to the source's values");
}
