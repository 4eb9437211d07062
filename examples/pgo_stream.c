/*
 * pgo_stream.c — an example built on nothing but libpgoutput: prints, one
 * line per message, a replication stream captured to a file.
 *
 *   cc pgo_stream.c $(pkg-config --cflags --libs pgoutput) -o pgo_stream
 *   ./pgo_stream examples/stream.pgocap
 *
 * The capture file (what examples/pgo_capture.c writes): the 8 bytes
 * "PGOCAP1" + the pgoutput protocol version the stream was started with,
 * then each CopyData message of START_REPLICATION as the walsender sent it
 * ('w' XLogData or 'k' keepalive), each after its length as a big-endian
 * 32-bit integer.
 *
 * Owns: the file's bytes (read whole into memory: every string the decoder
 * returns is a view into them) and a small table of the relations seen.
 * Never: links anything but libpgoutput and the C library.
 */
#include <inttypes.h>
#include <pgoutput.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLUMNS   1664
#define MAX_RELATIONS 64
#define MAX_RELCOLS   64

/* A relation the stream described: views into the file's bytes. */
typedef struct relation
{
	pgo_oid relid;
	pgo_str nspname;
	pgo_str relname;
	uint16_t ncols;
	pgo_str colnames[MAX_RELCOLS];
} relation;

static relation relations[MAX_RELATIONS];
static int nrelations;

static relation *
find_relation(pgo_oid relid)
{
	for (int i = 0; i < nrelations; i++)
		if (relations[i].relid == relid)
			return &relations[i];
	return NULL;
}

/* The decoder's column-count check: the count the Relation message gave. */
static int
relation_natts(void *arg, pgo_oid relid)
{
	const relation *r = find_relation(relid);

	(void)arg;
	return r ? r->ncols : -1;
}

/* Remember a Relation message (a relation described again is replaced). */
static int
remember_relation(const pgo_relation *m)
{
	relation *r = find_relation(m->relid);

	if (r == NULL)
	{
		if (nrelations == MAX_RELATIONS)
			return -1;
		r = &relations[nrelations++];
	}
	if (m->ncols > MAX_RELCOLS)
		return -1;
	r->relid = m->relid;
	r->nspname = m->nspname;
	r->relname = m->relname;
	r->ncols = m->ncols;
	for (uint16_t i = 0; i < m->ncols; i++)
		r->colnames[i] = m->cols[i].name;
	return 0;
}

static void
print_relname(pgo_oid relid)
{
	const relation *r = find_relation(relid);

	if (r == NULL)
		printf(" relation %" PRIu32, relid);
	else
		printf(" %s.%s", r->nspname.len ? r->nspname.ptr : "pg_catalog", r->relname.ptr);
}

/* " tag: name[text]:'value' ..." for one tuple. */
static void
print_tuple(const char *tag, pgo_oid relid, const pgo_tuple *t)
{
	const relation *r = find_relation(relid);

	printf(" %s:", tag);
	for (uint16_t i = 0; i < t->ncols; i++)
	{
		const pgo_value *v = &t->cols[i];

		printf(" %s=", r && i < r->ncols ? r->colnames[i].ptr : "?");
		if (v->kind == PGO_COL_NULL)
			printf("null");
		else if (v->kind == PGO_COL_UNCHANGED)
			printf("unchanged-toast");
		else if (v->kind == PGO_COL_BINARY)
			printf("(%" PRIu32 " binary bytes)", v->len);
		else
			printf("'%.*s'", (int)v->len, v->data);
	}
}

static void
print_message(const pgo_message *m)
{
	char a[PGO_LSN_STRLEN];

	printf("%s", pgo_msgtype_name(m->type));
	switch (m->type)
	{
		case PGO_MSG_BEGIN:
			printf(" xid %" PRIu32 " final_lsn %s", m->u.begin.xid,
			       pgo_lsn_format(m->u.begin.final_lsn, a));
			break;
		case PGO_MSG_COMMIT:
			printf(" end_lsn %s", pgo_lsn_format(m->u.commit.end_lsn, a));
			break;
		case PGO_MSG_RELATION:
			printf(" %s.%s", m->u.relation.nspname.len ? m->u.relation.nspname.ptr : "pg_catalog",
			       m->u.relation.relname.ptr);
			printf(" (%u columns, replica identity %c)", m->u.relation.ncols,
			       m->u.relation.replident);
			break;
		case PGO_MSG_TYPE:
			printf(" %s.%s oid %" PRIu32, m->u.type.nspname.ptr, m->u.type.typname.ptr,
			       m->u.type.oid);
			break;
		case PGO_MSG_INSERT:
			print_relname(m->u.insert.relid);
			print_tuple("new", m->u.insert.relid, &m->u.insert.newtup);
			break;
		case PGO_MSG_UPDATE:
			print_relname(m->u.update.relid);
			if (m->u.update.old_kind)
				print_tuple(m->u.update.old_kind == 'K' ? "key" : "old", m->u.update.relid,
				            &m->u.update.oldtup);
			print_tuple("new", m->u.update.relid, &m->u.update.newtup);
			break;
		case PGO_MSG_DELETE:
			print_relname(m->u.del.relid);
			print_tuple(m->u.del.old_kind == 'K' ? "key" : "old", m->u.del.relid, &m->u.del.oldtup);
			break;
		case PGO_MSG_TRUNCATE:
			for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
				print_relname(pgo_truncate_relid(&m->u.truncate, i));
			break;
		case PGO_MSG_MESSAGE:
			printf(" prefix %s: '%.*s'", m->u.message.prefix.ptr, (int)m->u.message.content_len,
			       m->u.message.content);
			break;
		default:
			break;
	}
	printf("\n");
}

/* Read all of path into a malloc'd buffer. */
static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0;
	size_t n = 0;

	if (f == NULL)
		return NULL;
	for (;;)
	{
		if (n == cap)
		{
			unsigned char *more = realloc(buf, cap ? cap * 2 : 65536);

			if (more == NULL)
				break;
			buf = more;
			cap = cap ? cap * 2 : 65536;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

int
main(int argc, char **argv)
{
	static pgo_value old_cols[MAX_COLUMNS];
	static pgo_value new_cols[MAX_COLUMNS];
	static pgo_relcol rel_cols[MAX_COLUMNS];
	pgo_decoder dec;
	pgo_config cfg = {0};
	unsigned char *buf;
	size_t len;
	size_t pos = 8;
	int nmessages = 0;
	char line[256];

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s CAPTURE-FILE\n", argv[0]);
		return 2;
	}
	buf = read_file(argv[1], &len);
	if (buf == NULL)
	{
		fprintf(stderr, "%s: could not read \"%s\"\n", argv[0], argv[1]);
		return 1;
	}
	if (len < 8 || memcmp(buf, "PGOCAP1", 7) != 0)
	{
		fprintf(stderr, "%s: \"%s\" is not a capture file (no PGOCAP1 header)\n", argv[0], argv[1]);
		free(buf);
		return 1;
	}

	cfg.proto_version = buf[7];
	cfg.max_columns = MAX_COLUMNS;
	cfg.old_cols = old_cols;
	cfg.new_cols = new_cols;
	cfg.rel_cols = rel_cols;
	cfg.natts = relation_natts;
	if (pgo_decoder_init(&dec, &cfg) != PGO_ERR_OK)
	{
		fprintf(stderr, "%s: protocol version %d is not one libpgoutput decodes\n", argv[0],
		        buf[7]);
		free(buf);
		return 1;
	}

	while (pos < len)
	{
		pgo_copymsg copy;
		pgo_message msg;
		pgo_error err;
		char lsn[PGO_LSN_STRLEN];
		uint32_t n;

		if (len - pos < 4)
			break;
		n = (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 | (uint32_t)buf[pos + 2] << 8 |
		    buf[pos + 3];
		pos += 4;
		if (n > len - pos)
			break;
		if (pgo_copy_parse(buf + pos, n, &copy, &err) != PGO_ERR_OK)
		{
			pgo_error_format(&err, line, sizeof(line));
			fprintf(stderr, "%s: byte %zu: %s\n", argv[0], pos, line);
			free(buf);
			return 1;
		}
		pos += n;
		if (copy.type == PGO_COPY_KEEPALIVE)
		{
			printf("%s keepalive\n", pgo_lsn_format(copy.u.keepalive.wal_end, lsn));
			continue;
		}
		if (pgo_decode(&dec, copy.u.xlog.data, copy.u.xlog.len, &msg) != PGO_ERR_OK)
		{
			pgo_error_format(&dec.error, line, sizeof(line));
			fprintf(stderr, "%s: message at %s: %s\n", argv[0],
			        pgo_lsn_format(copy.u.xlog.data_start, lsn), line);
			free(buf);
			return 1;
		}
		printf("%s ", pgo_lsn_format(copy.u.xlog.data_start, lsn));
		print_message(&msg);
		if (msg.type == PGO_MSG_RELATION && remember_relation(&msg.u.relation) != 0)
		{
			fprintf(stderr, "%s: more relations or columns than this example keeps\n", argv[0]);
			free(buf);
			return 1;
		}
		nmessages++;
	}
	if (pos != len)
	{
		fprintf(stderr, "%s: \"%s\" ends inside a message (byte %zu)\n", argv[0], argv[1], pos);
		free(buf);
		return 1;
	}
	printf("%d messages decoded\n", nmessages);
	free(buf);
	return 0;
}
