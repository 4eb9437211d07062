/*
 * proxy.h — a loopback TCP proxy between the tool and a test server, which
 * the test can stall and which can damage one pgoutput message on its way.
 *
 * One thread forwards every accepted connection to 127.0.0.1:server_port.
 * The server's bytes are followed as PostgreSQL backend protocol messages
 * (connect through it with sslmode=disable gssencmode=disable: encrypted
 * bytes cannot be read), so the proxy can find the logical replication
 * messages inside the CopyData of a connection in CopyBoth mode.
 *
 * Owns: its listening socket, the sockets of every connection through it and
 * its thread. Never: changes a byte unless asked to, or outlives
 * pgt_proxy_stop().
 */
#ifndef PGT_PROXY_H
#define PGT_PROXY_H

#include <stdbool.h>

typedef struct pgt_proxy pgt_proxy;

/* Listen on a free 127.0.0.1 port and forward to server_port; fails the test on error. */
pgt_proxy *pgt_proxy_start(int server_port);

/* The port clients connect to. */
int pgt_proxy_port(const pgt_proxy *p);

/* Stop (on) or resume (off) forwarding in both directions; the sockets stay open. */
void pgt_proxy_stall(pgt_proxy *p, bool on);

/*
 * After n more pgoutput COMMIT messages from the server, damage the next
 * pgoutput INSERT: its first column's kind byte becomes '?', which no
 * protocol version defines. Once; n < 0 disarms.
 */
void pgt_proxy_corrupt_after_commits(pgt_proxy *p, int n);

/* True once the damage was done. */
bool pgt_proxy_corrupted(pgt_proxy *p);

/* Close every connection and the listener, join the thread, free p (NULL is fine). */
void pgt_proxy_stop(pgt_proxy *p);

#endif /* PGT_PROXY_H */
