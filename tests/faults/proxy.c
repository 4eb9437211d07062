/*
 * proxy.c — the fault-injecting loopback proxy of the hostile-input tests
 * (see proxy.h).
 *
 * One thread, one poll() loop: every connection is a pair of sockets and a
 * buffer per direction. The server's bytes are followed as backend protocol
 * messages while they sit in our buffer, before they are forwarded, so one
 * of them can be changed in place:
 *
 *   message   := type (1 byte) | length (int32, counts itself) | body
 *   'W'          CopyBothResponse: from now on the connection streams
 *   'd' body  := CopyData; in CopyBoth, XLogData is
 *                'w' | dataStart (int64) | walEnd (int64) | sendTime (int64)
 *                | one pgoutput message, from body offset 25:
 *   'C' ...      COMMIT
 *   'I' ...      INSERT (outside a streamed transaction):
 *                'I' | relid (int32) | 'N' | ncols (int16) | kind (1 byte) ...
 *
 * So the first column's kind byte of an INSERT is body offset 33.
 *
 * Owns: the listener, every connection's sockets and buffers, the thread.
 * Never: blocks on a socket (all non-blocking but the loopback connect),
 * raises SIGPIPE, or changes a byte it was not asked to.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

#define PROXY_MAX_CONNS 32
#define PROXY_BUF       65536
#define PROXY_HEAD      40 /* message body bytes kept for inspection */

/* Body offsets inside an XLogData CopyData message. */
#define XLOG_PAYLOAD    25                 /* the pgoutput message starts here */
#define INSERT_NEWTUPLE (XLOG_PAYLOAD + 5) /* 'N' after the tag and the relid */
#define INSERT_NCOLS    (XLOG_PAYLOAD + 6)
#define INSERT_KIND0    (XLOG_PAYLOAD + 8) /* the first column's kind byte */

/* Bytes read from one socket, waiting to be written to the other. */
typedef struct proxy_dir
{
	unsigned char buf[PROXY_BUF];
	size_t len;
	bool eof; /* the reading side closed */
} proxy_dir;

/* Where we are in the server's message stream. */
typedef struct proxy_follow
{
	unsigned char hdr[5];
	int hdr_have;                   /* header bytes seen of the current message */
	uint32_t left;                  /* body bytes still to come */
	uint32_t pos;                   /* body bytes seen */
	unsigned char head[PROXY_HEAD]; /* the body's first bytes */
	bool copyboth;                  /* a CopyBothResponse was seen */
	bool lost;                      /* not a message stream we understand: just forward */
} proxy_follow;

typedef struct proxy_conn
{
	bool used;
	int client, server;
	proxy_dir up;   /* client to server */
	proxy_dir down; /* server to client */
	proxy_follow follow;
} proxy_conn;

struct pgt_proxy
{
	int listen_fd;
	int port, server_port;
	int wake[2]; /* a byte here makes the loop look at the settings again */
	pthread_t thread;
	pthread_mutex_t lock; /* guards the settings below */
	bool stall;
	bool stopping;
	bool armed;       /* an INSERT is to be damaged */
	int commits_left; /* COMMITs to let through first */
	bool corrupted;
	proxy_conn conns[PROXY_MAX_CONNS]; /* the thread's own */
};

/* Make the loop re-read the settings. */
static void
proxy_wake(pgt_proxy *p)
{
	char b = 1;

	if (write(p->wake[1], &b, 1) < 0 && errno != EAGAIN)
		ck_abort_msg("proxy: wake: %s", strerror(errno));
}

static void
proxy_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Close one connection's sockets and free its slot. */
static void
proxy_close(proxy_conn *c)
{
	close(c->client);
	close(c->server);
	memset(c, 0, sizeof(*c));
}

/* Called with the body's byte at c->follow.pos (kept in head): count or damage. */
static void
proxy_inspect(pgt_proxy *p, proxy_follow *f, unsigned char *byte)
{
	const unsigned char *h = f->head;

	if (f->hdr[0] != 'd' || !f->copyboth || h[0] != 'w')
		return;
	if (f->pos == XLOG_PAYLOAD && *byte == 'C')
	{
		pthread_mutex_lock(&p->lock);
		if (p->armed && p->commits_left > 0)
			p->commits_left--;
		pthread_mutex_unlock(&p->lock);
	}
	else if (f->pos == INSERT_KIND0 && h[XLOG_PAYLOAD] == 'I' && h[INSERT_NEWTUPLE] == 'N' &&
	         ((h[INSERT_NCOLS] << 8) | h[INSERT_NCOLS + 1]) > 0)
	{
		pthread_mutex_lock(&p->lock);
		if (p->armed && p->commits_left == 0)
		{
			*byte = '?';
			f->head[f->pos] = '?';
			p->armed = false;
			p->corrupted = true;
		}
		pthread_mutex_unlock(&p->lock);
	}
}

/* Follow n new bytes from the server (still in our buffer, so changeable). */
static void
proxy_follow_bytes(pgt_proxy *p, proxy_follow *f, unsigned char *bytes, size_t n)
{
	size_t i = 0;

	while (i < n && !f->lost)
	{
		if (f->hdr_have < 5)
		{
			f->hdr[f->hdr_have++] = bytes[i++];
			if (f->hdr_have == 5)
			{
				uint32_t len;

				memcpy(&len, f->hdr + 1, 4);
				len = ntohl(len);
				if (len < 4)
				{
					f->lost = true;
					return;
				}
				f->left = len - 4;
				f->pos = 0;
			}
		}
		else if (f->pos < PROXY_HEAD)
		{
			f->head[f->pos] = bytes[i];
			proxy_inspect(p, f, &bytes[i]);
			f->pos++;
			f->left--;
			i++;
		}
		else
		{
			/* past the part we look at: skip in bulk */
			size_t skip = n - i < f->left ? n - i : f->left;

			f->pos += (uint32_t)skip;
			f->left -= (uint32_t)skip;
			i += skip;
		}
		if (f->hdr_have == 5 && f->left == 0)
		{
			if (f->hdr[0] == 'W')
				f->copyboth = true;
			f->hdr_have = 0;
		}
	}
}

/* Read what fd has into d (room permitting); *got new bytes, d->eof on EOF or error. */
static void
proxy_read(int fd, proxy_dir *d, size_t *got)
{
	ssize_t n;

	*got = 0;
	if (d->eof || d->len == sizeof(d->buf))
		return;
	n = recv(fd, d->buf + d->len, sizeof(d->buf) - d->len, 0);
	if (n > 0)
	{
		*got = (size_t)n;
		d->len += (size_t)n;
	}
	else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		d->eof = true;
}

/* Write what d holds to fd; false on error. */
static bool
proxy_write(int fd, proxy_dir *d)
{
	ssize_t n = send(fd, d->buf, d->len, MSG_NOSIGNAL);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	memmove(d->buf, d->buf + n, d->len - (size_t)n);
	d->len -= (size_t)n;
	return true;
}

/* Accept one client and connect it to the server. */
static void
proxy_accept(pgt_proxy *p)
{
	struct sockaddr_in addr = {0};
	int client = accept(p->listen_fd, NULL, NULL);
	int server;

	if (client < 0)
		return;
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((uint16_t)p->server_port);
	server = socket(AF_INET, SOCK_STREAM, 0);
	if (server < 0 || connect(server, (struct sockaddr *)&addr, sizeof(addr)) != 0)
	{
		if (server >= 0)
			close(server);
		close(client);
		return;
	}
	for (int i = 0; i < PROXY_MAX_CONNS; i++)
		if (!p->conns[i].used)
		{
			proxy_conn *c = &p->conns[i];

			memset(c, 0, sizeof(*c));
			c->used = true;
			c->client = client;
			c->server = server;
			proxy_nonblock(client);
			proxy_nonblock(server);
			return;
		}
	close(server);
	close(client);
}

/* The poll() events one side of a connection waits for. */
static short
proxy_events(const proxy_dir *in, const proxy_dir *out)
{
	short ev = 0;

	if (!in->eof && in->len < sizeof(in->buf))
		ev |= POLLIN;
	if (out->len > 0)
		ev |= POLLOUT;
	return ev;
}

/* Move bytes for one connection after poll(); false when it is finished. */
static bool
proxy_service(pgt_proxy *p, proxy_conn *c, short crev, short srev)
{
	size_t got;

	if (crev & (POLLIN | POLLHUP | POLLERR))
		proxy_read(c->client, &c->up, &got);
	if (srev & (POLLIN | POLLHUP | POLLERR))
	{
		proxy_read(c->server, &c->down, &got);
		proxy_follow_bytes(p, &c->follow, c->down.buf + c->down.len - got, got);
	}
	if ((srev & POLLOUT) && !proxy_write(c->server, &c->up))
		return false;
	if ((crev & POLLOUT) && !proxy_write(c->client, &c->down))
		return false;
	/* one side is gone: done once what it sent is delivered */
	if ((c->up.eof && c->up.len == 0) || (c->down.eof && c->down.len == 0))
		return false;
	if ((crev & POLLERR) || (srev & POLLERR))
		return false;
	return true;
}

/* The thread: forward until stopped. */
static void *
proxy_main(void *arg)
{
	pgt_proxy *p = arg;
	struct pollfd fds[2 + 2 * PROXY_MAX_CONNS];
	int slot[2 + 2 * PROXY_MAX_CONNS];

	for (;;)
	{
		bool stall, stopping;
		int n = 0;

		pthread_mutex_lock(&p->lock);
		stall = p->stall;
		stopping = p->stopping;
		pthread_mutex_unlock(&p->lock);
		if (stopping)
			break;
		fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
		for (int i = 0; i < PROXY_MAX_CONNS && !stall; i++)
		{
			proxy_conn *c = &p->conns[i];

			if (!c->used)
				continue;
			slot[n] = i;
			fds[n++] = (struct pollfd){.fd = c->client, .events = proxy_events(&c->up, &c->down)};
			slot[n] = i;
			fds[n++] = (struct pollfd){.fd = c->server, .events = proxy_events(&c->down, &c->up)};
		}
		if (poll(fds, (nfds_t)n, 1000) < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents & POLLIN)
		{
			char drain[64];

			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		if (fds[1].revents & POLLIN)
			proxy_accept(p);
		for (int k = 2; k + 1 < n; k += 2)
		{
			proxy_conn *c = &p->conns[slot[k]];

			if (c->used && !proxy_service(p, c, fds[k].revents, fds[k + 1].revents))
				proxy_close(c);
		}
	}
	return NULL;
}

pgt_proxy *
pgt_proxy_start(int server_port)
{
	pgt_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in addr = {0};
	socklen_t len = sizeof(addr);

	ck_assert_ptr_nonnull(p);
	p->server_port = server_port;
	p->armed = false;
	pthread_mutex_init(&p->lock, NULL);
	if (pipe(p->wake) != 0)
		ck_abort_msg("proxy: pipe: %s", strerror(errno));
	proxy_nonblock(p->wake[0]);
	proxy_nonblock(p->wake[1]);
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(p->listen_fd, 16) != 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&addr, &len) != 0)
		ck_abort_msg("proxy: cannot listen on 127.0.0.1: %s", strerror(errno));
	proxy_nonblock(p->listen_fd);
	p->port = ntohs(addr.sin_port);
	if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
		ck_abort_msg("proxy: cannot start its thread");
	return p;
}

int
pgt_proxy_port(const pgt_proxy *p)
{
	return p->port;
}

void
pgt_proxy_stall(pgt_proxy *p, bool on)
{
	pthread_mutex_lock(&p->lock);
	p->stall = on;
	pthread_mutex_unlock(&p->lock);
	proxy_wake(p);
}

void
pgt_proxy_corrupt_after_commits(pgt_proxy *p, int n)
{
	pthread_mutex_lock(&p->lock);
	p->armed = n >= 0;
	p->commits_left = n >= 0 ? n : 0;
	p->corrupted = false;
	pthread_mutex_unlock(&p->lock);
}

bool
pgt_proxy_corrupted(pgt_proxy *p)
{
	bool done;

	pthread_mutex_lock(&p->lock);
	done = p->corrupted;
	pthread_mutex_unlock(&p->lock);
	return done;
}

void
pgt_proxy_stop(pgt_proxy *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_mutex_unlock(&p->lock);
	proxy_wake(p);
	pthread_join(p->thread, NULL);
	for (int i = 0; i < PROXY_MAX_CONNS; i++)
		if (p->conns[i].used)
			proxy_close(&p->conns[i]);
	close(p->listen_fd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
