/*
 * termline.c — one status line on the terminal, redrawn in place (see
 * termline.h). The line starts with \r and ends with "erase to the end of
 * the line" (ESC [ K), so a shorter text leaves nothing of a longer one; it
 * is cut to the terminal's width less one, so it never wraps.
 *
 * Owns: whether a line is shown (file-static: stderr is one). Never: writes
 * anything but to stderr, or draws where stderr is not a terminal.
 */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "termline.h"

/* a line is on the screen, its cursor at its end (atomic: events may come from any thread) */
static atomic_bool termline_shown;

/* Whether stderr is a terminal, where a line may be redrawn in place. */
bool
termline_wanted(void)
{
	return isatty(STDERR_FILENO) == 1;
}

/* The width a line may take: the terminal's less one (80 when unknown). */
static int
termline_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col - 1;
	return 79;
}

/* Draw the line (printf-style), replacing what it showed. */
void
termline_draw(const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int width = termline_width();

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (width > (int)sizeof(text) - 1)
		width = (int)sizeof(text) - 1;
	fprintf(stderr, "\r%.*s\033[K", width, text);
	fflush(stderr);
	atomic_store(&termline_shown, true);
}

/* Erase the line if one is shown; the next draw shows it again. */
void
termline_clear(void)
{
	if (!atomic_exchange(&termline_shown, false))
		return;
	fputs("\r\033[K", stderr);
}

/* Keep the line and end it with a newline. */
void
termline_done(void)
{
	if (!atomic_exchange(&termline_shown, false))
		return;
	fputc('\n', stderr);
	fflush(stderr);
}
