/*
 * pgo_capture.c — writes a replication stream to a file that pgo_stream.c
 * reads back: the header "PGOCAP1" + the protocol version, then each
 * CopyData message of START_REPLICATION after its length (big-endian 32-bit).
 * Used by examples/make-capture.sh, which made examples/stream.pgocap.
 *
 *   pgo_capture 'dbname=shop replication=database' SLOT PUBLICATION PROTO ENDLSN FILE
 *
 * Streams from the slot's confirmed position and stops at the first
 * keepalive whose WAL end is at or past ENDLSN (the walsender sends one as
 * soon as it has sent everything); gives up after 60 seconds. Acknowledges
 * nothing. Needs libpq (this one is not a libpgoutput-only example).
 *
 * Owns: the connection and the output file.
 */
#include <libpq-fe.h>
#include <pgoutput.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	PGconn *conn;
	PGresult *res;
	FILE *out;
	pgo_lsn endpos;
	char sql[512];
	unsigned char header[8] = {'P', 'G', 'O', 'C', 'A', 'P', '1', 0};
	int rc = 1;

	if (argc != 7 || !pgo_lsn_parse(argv[5], &endpos) || atoi(argv[4]) < 1 || atoi(argv[4]) > 4)
	{
		fprintf(stderr, "usage: %s CONNINFO SLOT PUBLICATION PROTO(1-4) ENDLSN FILE\n", argv[0]);
		return 2;
	}
	alarm(60);
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s: %s", argv[0], PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	snprintf(sql, sizeof(sql),
	         "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '%d', publication_names "
	         "'\"%s\"', messages 'true')",
	         argv[2], atoi(argv[4]), argv[3]);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		fprintf(stderr, "%s: %s", argv[0], PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return 1;
	}
	PQclear(res);
	out = fopen(argv[6], "wb");
	if (out == NULL)
	{
		perror(argv[6]);
		PQfinish(conn);
		return 1;
	}
	header[7] = (unsigned char)atoi(argv[4]);
	fwrite(header, 1, sizeof(header), out);
	for (;;)
	{
		char *data = NULL;
		int n = PQgetCopyData(conn, &data, 0);
		unsigned char len[4];
		pgo_copymsg msg;
		pgo_error err;

		if (n < 0)
		{
			fprintf(stderr, "%s: the stream ended: %s", argv[0], PQerrorMessage(conn));
			break;
		}
		len[0] = (unsigned char)(n >> 24);
		len[1] = (unsigned char)(n >> 16);
		len[2] = (unsigned char)(n >> 8);
		len[3] = (unsigned char)n;
		fwrite(len, 1, 4, out);
		fwrite(data, 1, (size_t)n, out);
		if (pgo_copy_parse(data, (size_t)n, &msg, &err) != PGO_ERR_OK)
		{
			fprintf(stderr, "%s: a CopyData message libpgoutput does not parse\n", argv[0]);
			PQfreemem(data);
			break;
		}
		PQfreemem(data);
		if (msg.type == PGO_COPY_KEEPALIVE && msg.u.keepalive.wal_end >= endpos)
		{
			rc = 0;
			break;
		}
	}
	if (fclose(out) != 0)
	{
		perror(argv[6]);
		rc = 1;
	}
	PQfinish(conn);
	return rc;
}
