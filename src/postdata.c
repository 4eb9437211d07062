/*
 * postdata.c — the post-data section of a dump split by table (see
 * postdata.h). Pure.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdata.h"

/* The TOC entry kinds that belong to one table, with the catalog their OID is in. */
static const struct
{
	const char *type; /* the desc pg_restore --list writes, followed by a space */
	unsigned int catalog;
} postdata_one_table[] = {
    {"INDEX ", 1259},      /* pg_class (an INDEX ATTACH has no OID) */
    {"CONSTRAINT ", 2606}, /* pg_constraint: primary key, unique, exclusion */
    {"TRIGGER ", 2620},    /* pg_trigger */
    {"RULE ", 2618},       /* pg_rewrite */
    {"POLICY ", 3256},     /* pg_policy */
    {"STATISTICS ", 3381}, /* pg_statistic_ext */
    {"ROW SECURITY ", 0},  /* the table's own OID */
};

void
postdata_free(postdata_entry *entries, int nentries)
{
	for (int i = 0; entries && i < nentries; i++)
		free(entries[i].line);
	free(entries);
}

static bool
postdata_parse_line(const char *line, size_t len, postdata_entry *e)
{
	char *end;
	unsigned long id, catalog, oid;
	const char *p = line;

	memset(e, 0, sizeof(*e));
	e->table = -1;
	id = strtoul(p, &end, 10);
	if (end == p || *end != ';')
		return false;
	(void)id;
	p = end + 1;
	catalog = strtoul(p, &end, 10);
	if (end == p)
		return false;
	p = end;
	oid = strtoul(p, &end, 10);
	if (end == p || *end != ' ')
		return false;
	p = end + 1;
	e->catalog = (unsigned int)catalog;
	e->oid = (unsigned int)oid;
	for (size_t k = 0; k < sizeof(postdata_one_table) / sizeof(postdata_one_table[0]); k++)
	{
		size_t tl = strlen(postdata_one_table[k].type);

		if ((size_t)(line + len - p) > tl && strncmp(p, postdata_one_table[k].type, tl) == 0 &&
		    catalog == postdata_one_table[k].catalog && oid != 0)
			e->of_one_table = true;
	}
	e->follows = catalog == 0 && oid == 0 &&
	             (strncmp(p, "COMMENT ", 8) == 0 || strncmp(p, "SECURITY LABEL ", 15) == 0);
	e->line = malloc(len + 1);
	if (e->line == NULL)
		return false;
	memcpy(e->line, line, len);
	e->line[len] = '\0';
	return true;
}

bool
postdata_parse(const char *text, postdata_entry **entries, int *nentries, char *errbuf,
               size_t errlen)
{
	postdata_entry *out = NULL;
	int n = 0, cap = 0;
	const char *p = text;

	*entries = NULL;
	*nentries = 0;
	while (*p)
	{
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len > 0 && p[0] != ';')
		{
			if (n == cap)
			{
				int ncap = cap ? cap * 2 : 64;
				postdata_entry *grown = realloc(out, (size_t)ncap * sizeof(*out));

				if (grown == NULL)
					goto oom;
				out = grown;
				cap = ncap;
			}
			if (!postdata_parse_line(p, len, &out[n]))
			{
				snprintf(errbuf, errlen, "could not read the dump's table of contents at \"%.*s\"",
				         (int)(len > 120 ? 120 : len), p);
				postdata_free(out, n);
				return false;
			}
			n++;
		}
		p = nl ? nl + 1 : p + len;
	}
	*entries = out;
	*nentries = n;
	return true;
oom:
	postdata_free(out, n);
	snprintf(errbuf, errlen, "out of memory");
	return false;
}

void
postdata_attach(postdata_entry *entries, int nentries)
{
	for (int i = 1; i < nentries; i++)
		if (entries[i].follows)
			entries[i].table = entries[i - 1].table;
}

int
postdata_write_list(FILE *f, const postdata_entry *entries, int nentries, int table,
                    const bool *done)
{
	int written = 0;

	for (int i = 0; i < nentries; i++)
	{
		const postdata_entry *e = &entries[i];
		bool take =
		    table >= 0 ? e->table == table : e->table < 0 || done == NULL || !done[e->table];

		if (take && fprintf(f, "%s\n", e->line) > 0)
			written++;
	}
	return written;
}
