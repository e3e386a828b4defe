/*
 * state.c -- the in-memory implementation of state.h: escalation
 * (violations and suspensions per user) and fan-out fingerprints.
 *
 * Invariants:
 *  - Two chained hash tables (users; (user, fingerprint) pairs), each entry
 *    also on an LRU list (most recently touched first).  Tables grow by
 *    doubling; they never shrink.
 *  - Entries expire lazily: an entry whose data all lie outside its window
 *    (and, for users, whose suspension has ended) is dropped when it is
 *    looked up, and the least recently used entry is dropped when it has
 *    expired or when the table is at its bound (IMP_STATE_MAX_USERS /
 *    IMP_STATE_MAX_FANOUT).  Memory is therefore bounded whatever the
 *    traffic: at most the bound of entries, each with a capped number of
 *    timestamps (STATE_MAX_TIMES) or recipients (STATE_MAX_RCPTS).
 *  - Eviction past the bound forgets the oldest users first; for
 *    compliance that errs towards not suspending, which the bound's size
 *    makes a theoretical case.
 *
 * Threading: one mutex guards everything; every public function takes it
 * once, so callers need no locking.  The critical sections are short and
 * allocation happens inside them only for new entries.
 *
 * Reports: nothing is logged here (user JIDs would otherwise appear in
 * logs at every level); the evaluator reports what it decides.
 */
#include "state.h"

#include <pthread.h>
#include <string.h>

/* Caps per entry, so that one noisy user cannot take unbounded memory: at
 * most STATE_MAX_TIMES violation times are kept (a threshold above it is
 * treated as STATE_MAX_TIMES, i.e. the user is suspended sooner, never
 * later), and at most STATE_MAX_RCPTS recipients per fingerprint (fan-out
 * counts saturate there). */
#define STATE_MAX_TIMES 1024
#define STATE_MAX_RCPTS 4096

/* A recipient of fan-out content: the salted hash of its bare JID (two
 * recipients colliding in 64 bits would count once; the per-process salt
 * keeps anyone from arranging that) and when it got the content. */
typedef struct state_rcpt_s {
	uint64_t h;
	int64_t t;
} state_rcpt_t;

/* Recipients an entry holds without an allocation of its own: most
 * content goes to one or two. */
#define STATE_INLINE_RCPTS 2

typedef struct state_ent_s state_ent_t;
struct state_ent_s {
	state_ent_t *hnext;         /* bucket chain */
	state_ent_t *lprev, *lnext; /* LRU list, most recent first */
	uint64_t hash;
	uint64_t fp;     /* fan-out entries only */
	int64_t last;    /* last touch (seconds) */
	int64_t expires; /* nothing of interest left after this */
	/* users: violation times (ascending) and the suspension */
	int64_t *times;
	uint32_t n_times, cap_times;
	int64_t suspended_until;
	/* fan-out: recipients (inl until they outgrow it) */
	state_rcpt_t *rcpt;
	uint32_t n_rcpt, cap_rcpt;
	state_rcpt_t inl[STATE_INLINE_RCPTS];
	char user[]; /* the key, in the same allocation */
};

typedef struct state_tab_s {
	state_ent_t **buckets;
	size_t n_buckets; /* power of two */
	size_t count, max;
	state_ent_t *lru_head, *lru_tail;
} state_tab_t;

struct imp_state_s {
	const imp_ctx_t *ctx;
	uint64_t salt; /* keys the hashes: JIDs are chosen by senders */
	pthread_mutex_t lock;
	state_tab_t users;
	state_tab_t fanout;
};

static uint64_t state_hash(const char *s, uint64_t seed)
{
	/* FNV-1a, then a final mix so that low bits select buckets well. */
	uint64_t h = 1469598103934665603ULL ^ seed;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static void state_ent_free(const imp_ctx_t *ctx, state_ent_t *e)
{
	if (e->rcpt != e->inl)
		imp_mfree(ctx, e->rcpt);
	imp_mfree(ctx, e->times);
	imp_mfree(ctx, e);
}

static void state_lru_unlink(state_tab_t *t, state_ent_t *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		t->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		t->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void state_lru_front(state_tab_t *t, state_ent_t *e)
{
	e->lprev = NULL;
	e->lnext = t->lru_head;
	if (t->lru_head)
		t->lru_head->lprev = e;
	t->lru_head = e;
	if (!t->lru_tail)
		t->lru_tail = e;
}

static void state_remove(const imp_ctx_t *ctx, state_tab_t *t, state_ent_t *e)
{
	state_ent_t **pp = &t->buckets[e->hash & (t->n_buckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	state_lru_unlink(t, e);
	t->count--;
	state_ent_free(ctx, e);
}

static void state_tab_clear(const imp_ctx_t *ctx, state_tab_t *t)
{
	state_ent_t *e = t->lru_head;
	while (e) {
		state_ent_t *next = e->lnext;
		state_ent_free(ctx, e);
		e = next;
	}
	if (t->buckets)
		memset(t->buckets, 0, t->n_buckets * sizeof(*t->buckets));
	t->count = 0;
	t->lru_head = t->lru_tail = NULL;
}

static bool state_tab_grow(const imp_ctx_t *ctx, state_tab_t *t)
{
	size_t nb = t->n_buckets ? t->n_buckets * 2 : 256;
	state_ent_t **b = imp_calloc(ctx, nb, sizeof(*b));
	if (!b)
		return false;
	for (state_ent_t *e = t->lru_head; e; e = e->lnext) {
		size_t i = e->hash & (nb - 1);
		e->hnext = b[i];
		b[i] = e;
	}
	imp_mfree(ctx, t->buckets);
	t->buckets = b;
	t->n_buckets = nb;
	return true;
}

/* Drops expired entries from the cold end of the LRU list (a few per call,
 * so that the cost stays constant) and, at the bound, the oldest one. */
static void state_tab_trim(const imp_ctx_t *ctx, state_tab_t *t, int64_t now)
{
	for (int i = 0; i < 4 && t->lru_tail && t->lru_tail->expires < now; i++)
		state_remove(ctx, t, t->lru_tail);
	while (t->count >= t->max && t->lru_tail)
		state_remove(ctx, t, t->lru_tail);
}

/* Finds the entry for (user, fp); creates it when create is set.  An entry
 * found expired is dropped first, so stale data never leaks into a new
 * window. */
static state_ent_t *state_find(imp_state_t *st, state_tab_t *t,
			       const char *user, uint64_t fp, int64_t now,
			       bool create)
{
	uint64_t h = state_hash(user, fp ^ st->salt);
	state_ent_t *e = NULL;
	if (t->n_buckets) {
		for (e = t->buckets[h & (t->n_buckets - 1)]; e; e = e->hnext)
			if (e->hash == h && e->fp == fp &&
			    strcmp(e->user, user) == 0)
				break;
	}
	if (e && e->expires < now) {
		state_remove(st->ctx, t, e);
		e = NULL;
	}
	if (e) {
		state_lru_unlink(t, e);
		state_lru_front(t, e);
		e->last = now;
		return e;
	}
	if (!create)
		return NULL;
	state_tab_trim(st->ctx, t, now);
	if (t->count + 1 > t->n_buckets && !state_tab_grow(st->ctx, t) &&
	    !t->n_buckets)
		return NULL;
	size_t ulen = strlen(user);
	e = imp_calloc(st->ctx, 1, sizeof(*e) + ulen + 1);
	if (!e)
		return NULL;
	memcpy(e->user, user, ulen + 1);
	e->rcpt = e->inl;
	e->cap_rcpt = STATE_INLINE_RCPTS;
	e->hash = h;
	e->fp = fp;
	e->last = now;
	e->expires = now;
	size_t i = h & (t->n_buckets - 1);
	e->hnext = t->buckets[i];
	t->buckets[i] = e;
	state_lru_front(t, e);
	t->count++;
	return e;
}

imp_state_t *imp_state_new(const imp_ctx_t *ctx)
{
	imp_state_t *st = imp_calloc(ctx, 1, sizeof(*st));
	if (!st)
		return NULL;
	st->ctx = ctx;
	st->salt = imp_hash_salt();
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		imp_mfree(ctx, st);
		return NULL;
	}
	st->users.max = IMP_STATE_MAX_USERS;
	st->fanout.max = IMP_STATE_MAX_FANOUT;
	return st;
}

void imp_state_free(imp_state_t *st)
{
	if (!st)
		return;
	state_tab_clear(st->ctx, &st->users);
	state_tab_clear(st->ctx, &st->fanout);
	imp_mfree(st->ctx, st->users.buckets);
	imp_mfree(st->ctx, st->fanout.buckets);
	pthread_mutex_destroy(&st->lock);
	imp_mfree(st->ctx, st);
}

void imp_state_clear(imp_state_t *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	state_tab_clear(st->ctx, &st->users);
	state_tab_clear(st->ctx, &st->fanout);
	pthread_mutex_unlock(&st->lock);
}

int64_t imp_state_suspended(imp_state_t *st, const char *user, int64_t now_s)
{
	if (!st || !user)
		return 0;
	int64_t left = 0;
	pthread_mutex_lock(&st->lock);
	state_ent_t *e = state_find(st, &st->users, user, 0, now_s, false);
	if (e && e->suspended_until > now_s)
		left = e->suspended_until - now_s;
	pthread_mutex_unlock(&st->lock);
	return left;
}

uint32_t imp_state_violation(imp_state_t *st, const char *user, int64_t now_s,
			     uint32_t within_s, uint32_t threshold,
			     uint32_t suspend_s, bool *suspended)
{
	if (suspended)
		*suspended = false;
	if (!st || !user)
		return 0;
	uint32_t count = 0;
	pthread_mutex_lock(&st->lock);
	state_ent_t *e = state_find(st, &st->users, user, 0, now_s, true);
	if (!e)
		goto out;
	/* Forget violations that left the window: a time t counts while
	 * now - t < within. */
	uint32_t keep = 0;
	for (uint32_t i = 0; i < e->n_times; i++)
		if (now_s - e->times[i] < (int64_t)within_s)
			e->times[keep++] = e->times[i];
	e->n_times = keep;
	if (e->n_times == STATE_MAX_TIMES) {
		memmove(e->times, e->times + 1,
			(e->n_times - 1) * sizeof(*e->times));
		e->n_times--;
	}
	if (e->n_times == e->cap_times) {
		uint32_t cap = e->cap_times ? e->cap_times * 2 : 4;
		int64_t *nt = imp_realloc(st->ctx, e->times, cap * sizeof(*nt));
		if (!nt) {
			count = e->n_times;
			goto out;
		}
		e->times = nt;
		e->cap_times = cap;
	}
	e->times[e->n_times++] = now_s;
	count = e->n_times;
	if (threshold > STATE_MAX_TIMES)
		threshold = STATE_MAX_TIMES;
	if (threshold > 0 && count >= threshold) {
		e->suspended_until = now_s + (int64_t)suspend_s;
		e->n_times = 0;
		if (suspended)
			*suspended = true;
	}
	{
		int64_t exp = now_s + (int64_t)within_s;
		if (e->suspended_until > exp)
			exp = e->suspended_until;
		e->expires = e->n_times ? exp : e->suspended_until;
	}
out:
	pthread_mutex_unlock(&st->lock);
	return count;
}

uint32_t imp_state_fanout(imp_state_t *st, const char *user, uint64_t fp,
			  const char *recipient, int64_t now_s,
			  uint32_t window_s, bool dry_run)
{
	if (!st || !user || !recipient)
		return 0;
	uint32_t count = 0;
	pthread_mutex_lock(&st->lock);
	state_ent_t *e = state_find(st, &st->fanout, user, fp, now_s, !dry_run);
	if (!e) {
		/* Nothing recorded (or dry run): only this recipient. */
		count = 1;
		goto out;
	}
	/* Drop recipients outside the window, find this one. */
	uint64_t rh = state_hash(recipient, st->salt);
	uint32_t keep = 0;
	int found = -1;
	for (uint32_t i = 0; i < e->n_rcpt; i++) {
		if (now_s - e->rcpt[i].t >= (int64_t)window_s)
			continue;
		e->rcpt[keep] = e->rcpt[i];
		if (e->rcpt[keep].h == rh)
			found = (int)keep;
		keep++;
	}
	e->n_rcpt = keep;
	count = e->n_rcpt + (found < 0 ? 1 : 0);
	if (dry_run)
		goto out;
	if (found >= 0) {
		e->rcpt[found].t = now_s;
	} else if (e->n_rcpt < STATE_MAX_RCPTS) {
		if (e->n_rcpt == e->cap_rcpt) {
			uint32_t cap = e->cap_rcpt * 2;
			state_rcpt_t *nr =
				e->rcpt == e->inl
					? imp_malloc(st->ctx, cap * sizeof(*nr))
					: imp_realloc(st->ctx, e->rcpt,
						      cap * sizeof(*nr));
			if (!nr)
				goto out;
			if (e->rcpt == e->inl)
				memcpy(nr, e->inl, sizeof(e->inl));
			e->rcpt = nr;
			e->cap_rcpt = cap;
		}
		e->rcpt[e->n_rcpt].h = rh;
		e->rcpt[e->n_rcpt].t = now_s;
		e->n_rcpt++;
	}
	/* The entry is of interest while its newest recipient is in the
	 * window. */
	e->expires = now_s + (int64_t)window_s;
out:
	pthread_mutex_unlock(&st->lock);
	return count;
}
