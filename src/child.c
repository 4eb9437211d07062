/*
 * child.c — child processes in their own process group (see child.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "child.h"

#define CHILD_GRACE_MS 5000
#define CHILD_KINDS    16

extern char **environ;

typedef struct child_kinds
{
	char kind[CHILD_KINDS][160];
	int count[CHILD_KINDS];
	int n;
} child_kinds;

/*
 * In the forked child, before or instead of execve: say what failed on the
 * pipe (stderr) and exit 127. The tool has threads (the direct copy's), so
 * only async-signal-safe calls here: write(2), no stdio, no strerror's locale.
 */
static void
child_fail(const char *what, const char *name, int err)
{
	const char *desc = strerrordesc_np(err);
	const char *parts[] = {"error: ", what, name, ": ", desc ? desc : "unknown error", "\n"};

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0)
			break;
	_exit(127);
}

/* Count an error line under its kind: the text after "error: ", up to a quote or digit. */
static void
child_count_error(child_kinds *k, const char *line)
{
	const char *at = strstr(line, "error: ");
	char kind[160];
	size_t n = 0;

	if (at == NULL)
		return;
	at += 7;
	/* "could not execute query: ERROR:  relation "x" already exists" -> up to the quote */
	while (at[n] && at[n] != '"' && at[n] != '\n' && n < sizeof(kind) - 1)
		n++;
	memcpy(kind, at, n);
	while (n > 0 && (kind[n - 1] == ' ' || kind[n - 1] == ':'))
		n--;
	kind[n] = '\0';
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->kind[i], kind) == 0)
		{
			k->count[i]++;
			return;
		}
	if (k->n < CHILD_KINDS)
	{
		snprintf(k->kind[k->n], sizeof(k->kind[0]), "%s", kind);
		k->count[k->n++] = 1;
	}
}

/* The environment plus PGPASSWORD (replacing any), malloc'd array of borrowed strings. */
static char **
child_environ(const char *password, char **pwvar)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(char *));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(password && strncmp(environ[i], "PGPASSWORD=", 11) == 0))
			env[j++] = environ[i];
	if (password)
	{
		*pwvar = malloc(strlen(password) + 12);
		if (*pwvar == NULL)
		{
			free(env);
			return NULL;
		}
		sprintf(*pwvar, "PGPASSWORD=%s", password);
		env[j++] = *pwvar;
	}
	env[j] = NULL;
	return env;
}

bool
child_run(const child_spec *spec, child_result *res, char *errbuf, size_t errlen)
{
	int pipefd[2];
	pid_t pid, parent;
	char *pwvar = NULL;
	char **env;
	child_kinds kinds = {.n = 0};
	char line[4096];
	size_t linelen = 0;
	int64_t term_at = 0;
	int status = 0;
	bool eof = false, reaped = false, group_killed = false;
	int progress = 0;
	int64_t progress_ms = 0; /* when on_progress was last called by the clock */

	memset(res, 0, sizeof(*res));
	strbuf_init(&res->summary);
	env = child_environ(spec->password, &pwvar);
	if (env == NULL || pipe(pipefd) != 0)
	{
		snprintf(errbuf, errlen, "could not start %s: out of resources", spec->argv[0]);
		free(env);
		free(pwvar);
		return false;
	}
	fflush(NULL);
	parent = getpid();
	pid = fork();
	if (pid < 0)
	{
		snprintf(errbuf, errlen, "could not start %s: %s", spec->argv[0], strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		free(env);
		free(pwvar);
		return false;
	}
	if (pid == 0)
	{
		/* its own group: our terminal's Ctrl+C is ours to pass on */
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		/*
		 * a kill -9 of the tool takes the child with it: an orphaned pg_restore
		 * would go on writing into the target while a --resume run restores again
		 */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		/* what it writes (the dump's files: table data) is for our user alone, whatever
		 * umask we were started under */
		umask(077);
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		if (spec->stdout_path)
		{
			int out = open(spec->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (out < 0)
			{
				child_fail("could not create ", spec->stdout_path, errno);
			}
			dup2(out, STDOUT_FILENO);
			close(out);
		}
		execve(spec->argv[0], (char *const *)spec->argv, env);
		child_fail("could not run ", spec->argv[0], errno);
	}
	setpgid(pid, pid); /* also here: no race with the child's own call */
	close(pipefd[1]);
	free(env);
	free(pwvar);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	while (!reaped || !eof)
	{
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};

		if (spec->interrupted && *spec->interrupted && term_at == 0)
		{
			kill(-pid, SIGTERM);
			term_at = cli_now_ms();
			res->interrupted = true;
		}
		if (term_at && cli_now_ms() - term_at > CHILD_GRACE_MS)
			kill(-pid, SIGKILL);
		if (!eof && poll(&pfd, 1, 100) > 0)
		{
			ssize_t n = read(pipefd[0], line + linelen, sizeof(line) - 1 - linelen);

			if (n == 0)
				eof = true;
			else if (n > 0)
			{
				char *nl;

				linelen += (size_t)n;
				line[linelen] = '\0';
				while ((nl = strchr(line, '\n')) != NULL || linelen == sizeof(line) - 1)
				{
					size_t len = nl ? (size_t)(nl - line) + 1 : linelen;
					char saved = line[len];

					line[len] = '\0';
					if (spec->show_stderr)
						fputs(line, stderr);
					if (spec->progress_match && strstr(line, spec->progress_match))
					{
						progress++;
						if (spec->on_progress)
							spec->on_progress(spec->progress_arg, progress);
						else
						{
							fprintf(stderr, "\r%s: %d of %d tables", spec->progress_label, progress,
							        spec->progress_total > progress ? spec->progress_total
							                                        : progress);
							fflush(stderr);
						}
					}
					if (strstr(line, "error: "))
					{
						res->error_lines++;
						child_count_error(&kinds, line);
					}
					line[len] = saved;
					memmove(line, line + len, linelen - len + 1);
					linelen -= len;
				}
			}
		}
		else if (eof)
			usleep(20000); /* EOF before exit: wait for it */
		if (spec->on_progress && cli_now_ms() - progress_ms >= 500)
		{
			progress_ms = cli_now_ms();
			spec->on_progress(spec->progress_arg, progress);
		}
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
			reaped = true;
		if (reaped && !group_killed)
		{
			/* the group may still hold workers of a killed leader */
			kill(-pid, SIGKILL);
			group_killed = true;
		}
	}
	close(pipefd[0]);
	if (progress > 0 && !spec->on_progress)
		fputc('\n', stderr);
	res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	for (int i = 0; i < kinds.n; i++)
		if (!strbuf_appendf(&res->summary, "  %d x %s\n", kinds.count[i], kinds.kind[i]))
			break;
	return true;
}
