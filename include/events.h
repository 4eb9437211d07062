/*
 * events.h — what a migration reports: one event per phase change and per
 * lag sample. Humans get one line on stderr ("INFO stage=Lag ..."); with
 * --json, one JSON object per event on stdout.
 *
 * Owns: nothing (writes to stdout/stderr). Never: prints a password: callers
 * pass only masked connection strings.
 */
#ifndef EVENTS_H
#define EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "strbuf.h"

typedef struct event
{
	strbuf json;  /* the fields after "stage" */
	strbuf human; /* key=value pairs for the human line */
	const char *stage;
	const char *level; /* "info", "warning", "error" */
} event;

/* Where events go: json on stdout (true) or human lines on stderr only. */
void events_init(bool json);

/* Tag every event with a database name (whole-server runs); NULL: none. */
void events_set_tag(const char *tag);

/* Start an event of stage (and level "info"). */
void event_begin(event *e, const char *stage);
void event_level(event *e, const char *level);
void event_str(event *e, const char *key, const char *value);
void event_int(event *e, const char *key, int64_t value);
void event_num(event *e, const char *key, double value);

/* Emit with a human message (printf-style) and free the event. */
void event_end(event *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shorthand: an event with only a message. */
void event_say(const char *stage, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* EVENTS_H */
