/*
 * ring.h — the ring buffer between the receiver thread and the
 * decode/apply thread: one producer at a time, one consumer.
 *
 * Records are contiguous and never wrap: when a record does not fit before
 * the end, the producer writes a pad record and starts again at offset 0, so
 * the consumer decodes every record in place (and may write into it, e.g. to
 * NUL-terminate values). Each record has a 16-byte header (length, kind,
 * 64-bit tag) and starts on a 16-byte boundary.
 *
 * Owns: the data area (malloc'd by ring_init, freed by ring_free). Never:
 * allocates per record, copies a record, or blocks without a timeout.
 * One thread may consume; one thread at a time may produce (producers hand
 * over through a mutex of theirs, which orders their writes: the receiver's
 * conn_lock; the consumer itself may be the producer meanwhile).
 */
#ifndef RING_H
#define RING_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgdbm_attr.h"

#define RING_HEADER_SIZE 16
#define RING_ALIGN       16
#define RING_MIN_SIZE    (4 * RING_ALIGN)

typedef enum ring_status
{
	RING_OK = 0,
	RING_TIMEOUT, /* nothing (consumer) or no space (producer) within the timeout */
	RING_CLOSED,  /* consumer: producer closed and all read; producer: consumer aborted */
	RING_TOO_BIG  /* producer: the record can never fit */
} ring_status;

/* A record handed to the consumer; valid until ring_release. */
typedef struct ring_record
{
	uint8_t *data; /* borrowed from the ring: writable by the consumer */
	size_t len;
	uint8_t kind; /* set by the producer in ring_commit */
	uint64_t tag; /* set by the producer in ring_commit */
	size_t size;  /* bytes it occupies, header and padding included */
} ring_record;

typedef struct ring
{
	uint8_t *base;   /* owned: capacity bytes, freed by ring_free */
	size_t capacity; /* a multiple of RING_ALIGN */

	/* producer side */
	alignas(64) _Atomic uint64_t head; /* bytes ever published */
	size_t pending;                    /* size of the reserved, uncommitted record */
	size_t pending_len;                /* its payload length */
	atomic_bool closed;

	/* consumer side */
	alignas(64) _Atomic uint64_t tail; /* bytes ever released */
	uint64_t read;                     /* consumer only: bytes ever read (held or released) */
	atomic_bool aborted;

	/* sleeping: only when a side must wait */
	alignas(64) pthread_mutex_t lock;
	pthread_cond_t producer_cv;
	pthread_cond_t consumer_cv;
	atomic_bool producer_waiting;
	_Atomic size_t producer_need; /* bytes the sleeping producer waits for */
	atomic_bool consumer_waiting;
	atomic_bool kicked; /* ring_kick: the consumer's wait ends without a record */
} ring;

/* Allocate a ring of about size bytes (rounded down to RING_ALIGN). */
PGDBM_MUST_CHECK bool ring_init(ring *r, size_t size, char *errbuf, size_t errlen);

/* Free the data area; no thread may use the ring any more. */
void ring_free(ring *r);

/* Largest payload a single record can carry. */
size_t ring_max_record(const ring *r);

/* Producer: reserve len bytes, waiting up to timeout_ms (0: do not wait). */
PGDBM_MUST_CHECK ring_status ring_reserve(ring *r, size_t len, int timeout_ms, void **dst);

/* Producer: reserve without waiting. */
PGDBM_MUST_CHECK ring_status ring_try_reserve(ring *r, size_t len, void **dst);

/* Producer: publish the reserved record with its kind and tag. */
void ring_commit(ring *r, uint8_t kind, uint64_t tag);

/*
 * Producer: publish the reserved record without waking a sleeping consumer.
 * The producer must call ring_notify before it blocks for any other reason
 * (ring_reserve does so itself before it sleeps): one wakeup per burst of
 * records instead of one per record.
 */
void ring_commit_quiet(ring *r, uint8_t kind, uint64_t tag);

/* Producer: wake the consumer if it sleeps (after ring_commit_quiet). */
void ring_notify(ring *r);

/*
 * End the consumer's wait now, without a record: its ring_peek returns
 * RING_TIMEOUT (once). For a producer that hands its work to the consumer.
 */
void ring_kick(ring *r);

/* Producer: no more records; the consumer reads what is left, then RING_CLOSED. */
void ring_close(ring *r);

/* Consumer: the next record, waiting up to timeout_ms (0: do not wait). */
PGDBM_MUST_CHECK ring_status ring_peek(ring *r, int timeout_ms, ring_record *rec);

/* Consumer: give the record's space back, with every record held before it. */
void ring_release(ring *r, const ring_record *rec);

/*
 * Consumer: keep the record (its data stays valid and writable) and move on;
 * the next ring_peek returns the record after it. Held records are given
 * back together by ring_release or ring_release_held. A consumer that holds
 * records must release them before it waits on an empty ring, or the
 * producer may wait for that space forever.
 */
void ring_hold(ring *r, const ring_record *rec);

/* Consumer: give back every held record. */
void ring_release_held(ring *r);

/* Consumer: bytes held (read but not released). */
size_t ring_held(const ring *r);

/* Consumer: stop; a waiting or later reserve returns RING_CLOSED. */
void ring_abort(ring *r);

/* Bytes published and not yet released (either thread; a snapshot). */
size_t ring_used(ring *r);

#endif /* RING_H */
