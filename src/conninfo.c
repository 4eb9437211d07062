/*
 * conninfo.c — split a connection string into safe text and password
 * (see conninfo.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conninfo.h"
#include "strbuf.h"

bool
conninfo_parse(const char *in, conninfo *out, char *errbuf, size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(in, &perr);
	strbuf sb;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	if (opts == NULL)
	{
		size_t n;

		snprintf(errbuf, errlen, "invalid connection string: %s", perr ? perr : "out of memory");
		n = strlen(errbuf);
		while (n > 0 && errbuf[n - 1] == '\n')
			errbuf[--n] = '\0';
		PQfreemem(perr);
		return false;
	}
	strbuf_init(&sb);
	for (PQconninfoOption *o = opts; o->keyword && ok; o++)
	{
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "password") == 0)
		{
			out->password = strdup(o->val);
			ok = out->password != NULL;
			continue;
		}
		ok = strbuf_appendf(&sb, "%s%s='", strbuf_len(&sb) ? " " : "", o->keyword);
		for (const char *p = o->val; ok && *p; p++)
			ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
			     strbuf_append_char(&sb, *p);
		ok = ok && strbuf_append_char(&sb, '\'');
	}
	PQconninfoFree(opts);
	if (ok)
		out->safe = strdup(strbuf_data(&sb));
	strbuf_free(&sb);
	if (!ok || out->safe == NULL)
	{
		conninfo_free(out);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	return true;
}

void
conninfo_free(conninfo *ci)
{
	free(ci->safe);
	if (ci->password)
	{
		memset(ci->password, 0, strlen(ci->password));
		free(ci->password);
	}
	ci->safe = NULL;
	ci->password = NULL;
}
