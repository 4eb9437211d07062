/*
 * check_termline.c — the status line as a terminal shows it: each draw
 * returns to the start of the line and erases what a longer text left, the
 * text is cut to the terminal's width so it never wraps (a wrapped line
 * cannot be redrawn in place), other output clears it first, and a finished
 * bar keeps its line. stderr is pointed at a pseudo-terminal of 20 columns,
 * or at a file, for each test.
 */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "termline.h"

static int saved_stderr = -1;
static int master = -1;

/* stderr onto a new pseudo-terminal of cols columns, raw (no \n to \r\n). */
static void
stderr_to_pty(int cols)
{
	struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
	struct termios tio;
	int slave;

	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, &ws), 0);
	ck_assert_int_eq(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);
	ck_assert_int_eq(tcsetattr(slave, TCSANOW, &tio), 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(slave, STDERR_FILENO);
	close(slave);
}

/* What the terminal got so far. */
static const char *
shown(void)
{
	static char buf[4096];
	size_t len = 0;
	struct pollfd pfd = {.fd = master, .events = POLLIN};

	fflush(stderr);
	while (len < sizeof(buf) - 1 && poll(&pfd, 1, 200) > 0)
	{
		ssize_t n = read(master, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

static void
restore_stderr(void)
{
	termline_clear();
	fflush(stderr);
	if (saved_stderr >= 0)
	{
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
	if (master >= 0)
		close(master);
	master = -1;
}

START_TEST(a_redraw_returns_to_the_start_and_erases_the_rest)
{
	stderr_to_pty(80);
	ck_assert(termline_wanted());
	termline_draw("Streaming: lag %d B", 4096);
	termline_draw("Streaming: lag %d B", 0);
	ck_assert_str_eq(shown(), "\rStreaming: lag 4096 B\033[K\rStreaming: lag 0 B\033[K");
	restore_stderr();
}
END_TEST

START_TEST(a_long_line_is_cut_to_the_terminal_width_so_it_never_wraps)
{
	stderr_to_pty(20);
	termline_draw("%s", "0123456789abcdefghijklmnopqrstuvwxyz");
	ck_assert_str_eq(shown(), "\r0123456789abcdefghi\033[K"); /* 19: one column to spare */
	restore_stderr();
}
END_TEST

START_TEST(other_output_clears_the_line_once_and_a_done_bar_keeps_it)
{
	stderr_to_pty(80);
	termline_clear(); /* nothing shown: nothing written */
	termline_draw("Dump [##] 1/2");
	termline_clear();
	termline_clear();
	termline_draw("Dump [####] 2/2");
	termline_done();
	termline_done();
	ck_assert_str_eq(shown(), "\rDump [##] 1/2\033[K\r\033[K\rDump [####] 2/2\033[K\n");
	restore_stderr();
}
END_TEST

START_TEST(a_file_is_not_a_terminal)
{
	FILE *f = tmpfile();

	ck_assert_ptr_nonnull(f);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	ck_assert(!termline_wanted());
	restore_stderr();
	fclose(f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("termline");
	TCase *tc = tcase_create("termline");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, a_redraw_returns_to_the_start_and_erases_the_rest);
	tcase_add_test(tc, a_long_line_is_cut_to_the_terminal_width_so_it_never_wraps);
	tcase_add_test(tc, other_output_clears_the_line_once_and_a_done_bar_keeps_it);
	tcase_add_test(tc, a_file_is_not_a_terminal);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
