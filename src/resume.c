/*
 * resume.c — the resume token (see resume.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resume.h"
#include "strbuf.h"

static const char *const stage_names[] = {"None",    "Validate", "PrepareSnapshot", "Dump",
                                          "Restore", "Cutover",  "Complete"};

const char *
resume_stage_name(resume_stage s)
{
	return s <= RESUME_COMPLETE ? stage_names[s] : "unknown";
}

void
resume_path(const char *dump_path, char *buf, size_t size)
{
	size_t n = strlen(dump_path);

	while (n > 1 && dump_path[n - 1] == '/')
		n--;
	snprintf(buf, size, "%.*s.resume.json", (int)n, dump_path);
}

bool
resume_save(const char *path, const resume_token *t, char *errbuf, size_t errlen)
{
	char tmp[1100], lsn[PGO_LSN_STRLEN], dir[1100];
	int fd;
	char *slash;
	strbuf sb;
	bool ok;

	strbuf_init(&sb);
	ok = strbuf_appendf(&sb,
	                    "{\"version\":%d,\"stage\":\"%s\",\"config_hash\":\"%016" PRIx64 "\","
	                    "\"mode\":\"%s\",\"slot\":",
	                    t->version, resume_stage_name(t->stage), t->config_hash,
	                    t->online ? "online" : "offline") &&
	     strbuf_append_json_string(&sb, t->slot, strlen(t->slot)) &&
	     strbuf_append_cstr(&sb, ",\"publication\":") &&
	     strbuf_append_json_string(&sb, t->publication, strlen(t->publication)) &&
	     strbuf_appendf(&sb, ",\"created_publication\":%s,\"keyless_publication\":",
	                    t->created_publication ? "true" : "false") &&
	     strbuf_append_json_string(&sb, t->keyless_publication, strlen(t->keyless_publication)) &&
	     strbuf_appendf(&sb,
	                    ",\"created_keyless_publication\":%s,\"consistent_lsn\":\"%s\","
	                    "\"source\":",
	                    t->created_keyless_publication ? "true" : "false",
	                    pgo_lsn_format(t->consistent_lsn, lsn)) &&
	     strbuf_append_json_string(&sb, t->source, strlen(t->source)) &&
	     strbuf_append_cstr(&sb, ",\"target\":") &&
	     strbuf_append_json_string(&sb, t->target, strlen(t->target)) &&
	     strbuf_append_cstr(&sb, "}\n");
	if (!ok)
	{
		strbuf_free(&sb);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, strbuf_data(&sb), strbuf_len(&sb)) != (ssize_t)strbuf_len(&sb) ||
	    fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0)
	{
		snprintf(errbuf, errlen, "could not save the resume token %s: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
		strbuf_free(&sb);
		return false;
	}
	strbuf_free(&sb);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0)
	{
		(void)fsync(fd);
		close(fd);
	}
	return true;
}

/* The string value of "key" in text into buf; false if absent. */
static bool
resume_field(const char *text, const char *key, char *buf, size_t size)
{
	char pattern[64];
	const char *at, *end;

	snprintf(pattern, sizeof(pattern), "\"%s\":", key);
	at = strstr(text, pattern);
	if (at == NULL)
		return false;
	at += strlen(pattern);
	if (*at == '"')
	{
		size_t n = 0;

		/* a JSON string: \" \\ \/ \n \r \t and \u00XX */
		for (at++; *at && *at != '"'; at++)
		{
			char c = *at;

			if (c == '\\')
			{
				at++;
				c = *at == 'n' ? '\n' : *at == 'r' ? '\r' : *at == 't' ? '\t' : *at;
				if (*at == 'u')
				{
					unsigned v;

					if (sscanf(at + 1, "%4x", &v) != 1 || v > 0xff)
						return false;
					c = (char)v;
					at += 4;
				}
				else if (*at == '\0')
					return false;
			}
			if (n + 1 >= size)
				return false;
			buf[n++] = c;
		}
		if (*at != '"')
			return false;
		buf[n] = '\0';
		return true;
	}
	end = at + strcspn(at, ",}");
	if ((size_t)(end - at) >= size)
		return false;
	memcpy(buf, at, (size_t)(end - at));
	buf[end - at] = '\0';
	return true;
}

bool
resume_load(const char *path, resume_token *t, bool *found, char *errbuf, size_t errlen)
{
	char text[8192], v[256];
	FILE *f = fopen(path, "r");
	size_t n;

	memset(t, 0, sizeof(*t));
	*found = false;
	if (f == NULL)
	{
		if (errno == ENOENT)
			return true;
		snprintf(errbuf, errlen, "could not read %s: %s", path, strerror(errno));
		return false;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	*found = true;
	if (!resume_field(text, "version", v, sizeof(v)))
		goto bad;
	t->version = atoi(v);
	if (t->version != RESUME_VERSION)
	{
		snprintf(errbuf, errlen,
		         "%s has token version %d, which this pg_dbmigrator does not know (it writes %d): "
		         "start over with --force-clean",
		         path, t->version, RESUME_VERSION);
		return false;
	}
	if (!resume_field(text, "stage", v, sizeof(v)))
		goto bad;
	for (int s = RESUME_STARTED; s <= RESUME_COMPLETE; s++)
		if (strcmp(v, stage_names[s]) == 0)
			t->stage = (resume_stage)s;
	if (t->stage == RESUME_NONE || !resume_field(text, "config_hash", v, sizeof(v)))
		goto bad;
	t->config_hash = strtoull(v, NULL, 16);
	if (!resume_field(text, "mode", v, sizeof(v)))
		goto bad;
	t->online = strcmp(v, "online") == 0;
	if (!resume_field(text, "slot", t->slot, sizeof(t->slot)) ||
	    !resume_field(text, "publication", t->publication, sizeof(t->publication)) ||
	    !resume_field(text, "created_publication", v, sizeof(v)))
		goto bad;
	t->created_publication = strcmp(v, "true") == 0;
	/* absent from tokens written before keyless tables were migrated */
	if (resume_field(text, "keyless_publication", t->keyless_publication,
	                 sizeof(t->keyless_publication)) &&
	    resume_field(text, "created_keyless_publication", v, sizeof(v)))
		t->created_keyless_publication = strcmp(v, "true") == 0;
	else
		t->keyless_publication[0] = '\0';
	if (!resume_field(text, "consistent_lsn", v, sizeof(v)) ||
	    !pgo_lsn_parse(v, &t->consistent_lsn) ||
	    !resume_field(text, "source", t->source, sizeof(t->source)) ||
	    !resume_field(text, "target", t->target, sizeof(t->target)))
		goto bad;
	return true;
bad:
	snprintf(errbuf, errlen,
	         "%s is not a resume token this pg_dbmigrator can read: start over "
	         "with --force-clean",
	         path);
	return false;
}
