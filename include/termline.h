/*
 * termline.h — one status line on the terminal (stderr), redrawn in place:
 * the streaming status, a progress bar. Whatever else is printed to stderr
 * meanwhile clears it first (termline_clear; events.c does), and the next
 * draw brings it back.
 *
 * Owns: the state of the one line stderr shows (the terminal is one, so the
 * state is too: file-static; draws come from one thread at a time). Never: draws
 * when stderr is not a terminal (callers decide, with termline_wanted), or
 * lets the line wrap (it is cut to the terminal's width, so \r returns to its
 * start).
 */
#ifndef TERMLINE_H
#define TERMLINE_H

#include <stdbool.h>

/* Whether stderr is a terminal, where a line may be redrawn in place. */
bool termline_wanted(void);

/* Draw the line (printf-style), replacing what it showed. */
void termline_draw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Erase the line if one is shown (before other output); the next draw shows it again. */
void termline_clear(void);

/* Keep the line as it is and end it with a newline (a finished bar). */
void termline_done(void);

#endif /* TERMLINE_H */
