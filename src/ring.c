/*
 * ring.c — the ring buffer, one producer at a time and one consumer (see ring.h).
 *
 * head and tail are byte counters that only grow; a position in the data
 * area is counter % capacity. The producer alone writes head and the record
 * it reserved; the consumer alone writes tail. Publication is a release
 * store of head (or tail) paired with an acquire load on the other side.
 *
 * Sleeping never loses a wakeup: a side that must wait sets its waiting flag
 * and re-checks under the mutex before it sleeps; the other side, after its
 * release store, issues a full fence and signals if the flag is set. Every
 * wait is also bounded by the caller's timeout.
 *
 * Owns: the data area. Never: copies a record, or lets a record wrap.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring.h"

#define RING_KIND_PAD 0xFF /* internal: skip to the start of the area */
#define RING_SPIN     64   /* readiness checks before a thread sleeps */

/* The on-ring record header. */
typedef struct ring_header
{
	uint32_t len;
	uint8_t kind;
	uint8_t unused[3];
	uint64_t tag;
} ring_header;

_Static_assert(sizeof(ring_header) == RING_HEADER_SIZE, "ring header is 16 bytes");

/* Bytes a record of len payload bytes occupies. */
static size_t
ring_record_size(size_t len)
{
	return (RING_HEADER_SIZE + len + RING_ALIGN - 1) & ~(size_t)(RING_ALIGN - 1);
}

/* Allocate the data area. */
bool
ring_init(ring *r, size_t size, char *errbuf, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	size &= ~(size_t)(RING_ALIGN - 1);
	if (size < RING_MIN_SIZE || size > UINT32_MAX)
	{
		snprintf(errbuf, errlen, "ring size %zu is out of range (%d bytes to 4GB)", size,
		         RING_MIN_SIZE);
		return false;
	}
	if (posix_memalign((void **)&r->base, 64, size) != 0)
	{
		snprintf(errbuf, errlen, "could not allocate a %zu-byte ring buffer", size);
		return false;
	}
	r->capacity = size;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->read = 0;
	atomic_init(&r->closed, false);
	atomic_init(&r->aborted, false);
	atomic_init(&r->producer_waiting, false);
	atomic_init(&r->producer_need, 0);
	atomic_init(&r->consumer_waiting, false);
	atomic_init(&r->kicked, false);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->producer_cv, NULL);
	pthread_cond_init(&r->consumer_cv, NULL);
	return true;
}

/* Free the data area. */
void
ring_free(ring *r)
{
	if (r->base == NULL)
		return;
	free(r->base);
	r->base = NULL;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->producer_cv);
	pthread_cond_destroy(&r->consumer_cv);
}

/* Largest payload one record can carry. */
size_t
ring_max_record(const ring *r)
{
	return r->capacity - RING_HEADER_SIZE;
}

/* Absolute deadline timeout_ms from now, for pthread_cond_timedwait. */
static struct timespec
ring_deadline(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L)
	{
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* A hint to the CPU that we spin (no yield: on a small machine it starves the server). */
static inline void
ring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Wake the other side if it sleeps (after a release store of head or tail). */
static void
ring_wake(ring *r, atomic_bool *waiting, pthread_cond_t *cv)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(waiting))
	{
		pthread_mutex_lock(&r->lock);
		pthread_cond_broadcast(cv);
		pthread_mutex_unlock(&r->lock);
	}
}

/*
 * Sleep until ready(r, arg) or the deadline; the flag is set before the
 * re-check so a concurrent ring_wake cannot be missed. False on timeout.
 */
static bool
ring_sleep(ring *r, atomic_bool *waiting, pthread_cond_t *cv, const struct timespec *deadline,
           bool (*ready)(ring *, size_t), size_t arg)
{
	bool ok = true;

	/* the other side is usually busy for a moment only: spin before sleeping */
	for (int i = 0; i < RING_SPIN; i++)
	{
		if (ready(r, arg))
			return true;
		ring_cpu_relax();
	}
	pthread_mutex_lock(&r->lock);
	atomic_store(waiting, true);
	atomic_thread_fence(memory_order_seq_cst);
	while (!ready(r, arg))
	{
		if (pthread_cond_timedwait(cv, &r->lock, deadline) == ETIMEDOUT)
		{
			ok = ready(r, arg);
			break;
		}
	}
	atomic_store(waiting, false);
	pthread_mutex_unlock(&r->lock);
	return ok;
}

/* Producer's view: can need bytes be written at head (or has the consumer gone)? */
static bool
ring_space_ready(ring *r, size_t need)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

	return atomic_load(&r->aborted) || r->capacity - (size_t)(head - tail) >= need;
}

/* Reserve len bytes; see ring.h. */
ring_status
ring_reserve(ring *r, size_t len, int timeout_ms, void **dst)
{
	size_t need = ring_record_size(len);
	struct timespec deadline;
	bool have_deadline = false;

	if (len > ring_max_record(r))
		return RING_TOO_BIG;
	for (;;)
	{
		uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
		size_t pos = (size_t)(head % r->capacity);
		size_t contig = r->capacity - pos;
		/* a record that does not fit before the end needs a pad up to it first */
		size_t want = contig < need ? contig : need;

		if (atomic_load(&r->aborted))
			return RING_CLOSED;
		if (ring_space_ready(r, want))
		{
			if (contig >= need)
			{
				r->pending = need;
				r->pending_len = len;
				*dst = r->base + pos + RING_HEADER_SIZE;
				return RING_OK;
			}
			{
				ring_header pad = {.len = (uint32_t)(contig - RING_HEADER_SIZE),
				                   .kind = RING_KIND_PAD};

				memcpy(r->base + pos, &pad, sizeof(pad));
				atomic_store_explicit(&r->head, head + contig, memory_order_release);
				ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
				continue;
			}
		}
		if (timeout_ms <= 0)
			return RING_TIMEOUT;
		if (!have_deadline)
		{
			deadline = ring_deadline(timeout_ms);
			have_deadline = true;
		}
		{
			/* sleep until a quarter of the ring is free: one wakeup per batch, not per record */
			size_t batch = r->capacity / 4 > want ? r->capacity / 4 : want;

			atomic_store(&r->producer_need, batch);
			/* records published quietly must reach the consumer before we wait on it */
			ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
			if (!ring_sleep(r, &r->producer_waiting, &r->producer_cv, &deadline, ring_space_ready,
			                batch))
				return RING_TIMEOUT;
		}
	}
}

/* Reserve without waiting. */
ring_status
ring_try_reserve(ring *r, size_t len, void **dst)
{
	return ring_reserve(r, len, 0, dst);
}

/* Publish the reserved record. */
void
ring_commit(ring *r, uint8_t kind, uint64_t tag)
{
	ring_commit_quiet(r, kind, tag);
	ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
}

/* Publish quietly. */
void
ring_commit_quiet(ring *r, uint8_t kind, uint64_t tag)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	ring_header h = {.len = (uint32_t)r->pending_len, .kind = kind, .tag = tag};

	memcpy(r->base + head % r->capacity, &h, sizeof(h));
	atomic_store_explicit(&r->head, head + r->pending, memory_order_release);
	r->pending = 0;
}

/* Wake a sleeping consumer. */
void
ring_notify(ring *r)
{
	ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
}

void
ring_kick(ring *r)
{
	atomic_store(&r->kicked, true);
	ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
}

/* Producer is done. */
void
ring_close(ring *r)
{
	atomic_store(&r->closed, true);
	ring_wake(r, &r->consumer_waiting, &r->consumer_cv);
}

/* Consumer's view: is there a record, or the end? */
static bool
ring_data_ready(ring *r, size_t unused)
{
	(void)unused;
	return atomic_load(&r->closed) || atomic_load(&r->kicked) ||
	       atomic_load_explicit(&r->head, memory_order_acquire) != r->read;
}

/* The next record; see ring.h. */
ring_status
ring_peek(ring *r, int timeout_ms, ring_record *rec)
{
	struct timespec deadline;
	bool have_deadline = false;

	for (;;)
	{
		/* closed first: a producer closes only after its last commit */
		bool closed = atomic_load(&r->closed);
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		uint64_t tail = r->read;

		if (head != tail)
		{
			size_t pos = (size_t)(tail % r->capacity);
			ring_header h;

			memcpy(&h, r->base + pos, sizeof(h));
			if (h.kind == RING_KIND_PAD)
			{
				r->read = tail + (r->capacity - pos);
				if (atomic_load_explicit(&r->tail, memory_order_relaxed) == tail)
				{
					/* nothing held: give the pad back at once */
					atomic_store_explicit(&r->tail, r->read, memory_order_release);
					ring_wake(r, &r->producer_waiting, &r->producer_cv);
				}
				continue;
			}
			rec->data = r->base + pos + RING_HEADER_SIZE;
			rec->len = h.len;
			rec->kind = h.kind;
			rec->tag = h.tag;
			rec->size = ring_record_size(h.len);
			return RING_OK;
		}
		if (closed)
			return RING_CLOSED;
		if (atomic_exchange(&r->kicked, false) || timeout_ms <= 0)
			return RING_TIMEOUT;
		if (!have_deadline)
		{
			deadline = ring_deadline(timeout_ms);
			have_deadline = true;
		}
		if (!ring_sleep(r, &r->consumer_waiting, &r->consumer_cv, &deadline, ring_data_ready, 0))
			return RING_TIMEOUT;
	}
}

/* Give a record's space back; wake the producer once enough is free. */
void
ring_release(ring *r, const ring_record *rec)
{
	ring_hold(r, rec);
	ring_release_held(r);
}

/* Keep a record and move past it. */
void
ring_hold(ring *r, const ring_record *rec)
{
	size_t pos = (size_t)((uint8_t *)rec->data - RING_HEADER_SIZE - r->base);

	/* only the record at the read position may be held or released */
	if (pos == (size_t)(r->read % r->capacity))
		r->read += rec->size;
}

/* Bytes held. */
size_t
ring_held(const ring *r)
{
	return (size_t)(r->read - atomic_load_explicit(&r->tail, memory_order_relaxed));
}

/* Give back everything read. */
void
ring_release_held(ring *r)
{
	uint64_t tail = r->read;

	if (atomic_load_explicit(&r->tail, memory_order_relaxed) == tail)
		return;
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&r->producer_waiting) &&
	    r->capacity - (size_t)(atomic_load(&r->head) - tail) >= atomic_load(&r->producer_need))
		ring_wake(r, &r->producer_waiting, &r->producer_cv);
}

/* Consumer stops: wake and refuse the producer. */
void
ring_abort(ring *r)
{
	atomic_store(&r->aborted, true);
	ring_wake(r, &r->producer_waiting, &r->producer_cv);
}

/* Bytes in use. */
size_t
ring_used(ring *r)
{
	return (size_t)(atomic_load(&r->head) - atomic_load(&r->tail));
}
