/*
 * events.c — migration events on stderr and, with --json, stdout (see events.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "termline.h"

static bool events_json = false;
static const char *events_tag = NULL; /* borrowed: the database of a whole-server run */

void
events_set_tag(const char *tag)
{
	events_tag = tag;
}

void
events_init(bool json)
{
	events_json = json;
}

void
event_begin(event *e, const char *stage)
{
	strbuf_init(&e->json);
	strbuf_init(&e->human);
	e->stage = stage;
	e->level = "info";
}

void
event_level(event *e, const char *level)
{
	e->level = level;
}

void
event_str(event *e, const char *key, const char *value)
{
	/* a failed append only shortens the event */
	if (!strbuf_appendf(&e->json, ",\"%s\":", key) ||
	    !strbuf_append_json_string(&e->json, value, strlen(value)) ||
	    !strbuf_appendf(&e->human, " %s=%s", key, value))
		return;
}

void
event_int(event *e, const char *key, int64_t value)
{
	if (!strbuf_appendf(&e->json, ",\"%s\":%lld", key, (long long)value) ||
	    !strbuf_appendf(&e->human, " %s=%lld", key, (long long)value))
		return;
}

void
event_num(event *e, const char *key, double value)
{
	if (!strbuf_appendf(&e->json, ",\"%s\":%.3f", key, value) ||
	    !strbuf_appendf(&e->human, " %s=%.3f", key, value))
		return;
}

static void
event_emit(event *e, const char *fmt, va_list ap)
{
	char msg[2048], ts[64];
	struct timespec now;
	struct tm tm;
	char upper[16];
	size_t i;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(now.tv_nsec / 1000000) % 1000);
	for (i = 0; e->level[i] && i < sizeof(upper) - 1; i++)
		upper[i] =
		    (char)(e->level[i] >= 'a' && e->level[i] <= 'z' ? e->level[i] - 32 : e->level[i]);
	upper[i] = '\0';
	termline_clear(); /* a status line on the terminal gives way; the next draw restores it */
	fprintf(stderr, "%s%s%s%s stage=%s %s%s\n", events_tag ? "[" : "", events_tag ? events_tag : "",
	        events_tag ? "] " : "", upper, e->stage, msg,
	        strbuf_len(&e->human) ? strbuf_data(&e->human) : "");
	fflush(stderr);
	if (events_json)
	{
		strbuf line;

		strbuf_init(&line);
		if (strbuf_appendf(&line, "{\"ts\":\"%s\",\"stage\":\"%s\",\"level\":\"%s\",\"message\":",
		                   ts, e->stage, e->level) &&
		    strbuf_append_json_string(&line, msg, strlen(msg)) &&
		    (!events_tag || (strbuf_append_cstr(&line, ",\"database\":") &&
		                     strbuf_append_json_string(&line, events_tag, strlen(events_tag)))) &&
		    strbuf_append(&line, strbuf_data(&e->json), strbuf_len(&e->json)) &&
		    strbuf_append_cstr(&line, "}\n"))
		{
			fwrite(strbuf_data(&line), 1, strbuf_len(&line), stdout);
			fflush(stdout);
		}
		strbuf_free(&line);
	}
	strbuf_free(&e->json);
	strbuf_free(&e->human);
}

void
event_end(event *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_emit(e, fmt, ap);
	va_end(ap);
}

void
event_say(const char *stage, const char *level, const char *fmt, ...)
{
	event e;
	va_list ap;

	event_begin(&e, stage);
	event_level(&e, level);
	va_start(ap, fmt);
	event_emit(&e, fmt, ap);
	va_end(ap);
}
