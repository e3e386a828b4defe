/*
 * policy.c -- the life of a compiled policy after imp_policy_load():
 * reference counting, imp_policy_info(), and the host's policy slot.
 *
 * Invariants: a policy is immutable; it and everything it points to live in
 * p->arena, freed when the last reference is dropped.  A slot holds exactly
 * one reference to its current policy (or none when empty).
 *
 * Threading: refs are atomic (relaxed increments; the decrement is
 * acq_rel so that every reader's accesses happen before the free).  The
 * slot is a mutex-protected pointer: acquire takes the lock only long
 * enough to add a reference, so a concurrent swap can never drop the last
 * reference between reading the pointer and incrementing; swap drops the
 * old policy's reference outside the lock.  TSan-clean
 * (tests/unit/test_policy.c runs 4 threads of acquire/swap).
 *
 * Reports: imp_slot_new returns IMP_ERR_INVALID, IMP_ERR_NOMEM or
 * IMP_ERR_INTERNAL (mutex creation); everything else cannot fail.
 */
#include "policy.h"

#include <string.h>

imp_policy_t *imp_policy_ref(imp_policy_t *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void imp_policy_unref(imp_policy_t *p)
{
	if (!p)
		return;
	/* acq_rel: every evaluation's reads happen before the free */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		imp_arena_free(p->arena); /* p itself lives in the arena */
}

void imp_policy_info(const imp_policy_t *p, imp_policy_info_t *info)
{
	memset(info, 0, sizeof(*info));
	if (!p)
		return;
	info->name = p->name;
	info->version = p->version;
	info->timezone = imp_tz_name(p->tz);
	info->digest = p->digest;
	info->n_rules = p->n_rules;
	info->n_lists = p->n_lists;
	info->n_words = p->lexicon ? imp_lexicon_words(p->lexicon) : 0;
	info->n_detectors = p->detectors ? imp_detset_count(p->detectors) : 0;
	info->n_schedules = p->n_scheds;
	info->n_groups = p->n_groups;
	info->n_files = p->n_files;
	info->memory = p->memory;
	info->engine = p->engine;
}

/* ---- slot ------------------------------------------------------------------- */

struct imp_slot_s {
	imp_ctx_t *ctx;
	pthread_mutex_t mu;
	imp_policy_t *cur;
};

int imp_slot_new(imp_ctx_t *ctx, imp_policy_t *initial, imp_slot_t **out)
{
	if (!ctx || !out)
		return IMP_ERR_INVALID;
	*out = NULL;
	imp_slot_t *s = imp_calloc(ctx, 1, sizeof(*s));
	if (!s)
		return IMP_ERR_NOMEM;
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		imp_mfree(ctx, s);
		return IMP_ERR_INTERNAL;
	}
	s->ctx = ctx;
	s->cur = imp_policy_ref(initial);
	*out = s;
	return IMP_OK;
}

imp_policy_t *imp_slot_acquire(imp_slot_t *slot)
{
	if (!slot)
		return NULL;
	/* the reference is taken under the lock so that a concurrent swap
	 * cannot drop the last one between the load and the increment */
	pthread_mutex_lock(&slot->mu);
	imp_policy_t *p = imp_policy_ref(slot->cur);
	pthread_mutex_unlock(&slot->mu);
	return p;
}

void imp_slot_swap(imp_slot_t *slot, imp_policy_t *p)
{
	if (!slot)
		return;
	imp_policy_ref(p);
	pthread_mutex_lock(&slot->mu);
	imp_policy_t *old = slot->cur;
	slot->cur = p;
	pthread_mutex_unlock(&slot->mu);
	/* outside the lock: freeing a policy may take a while */
	imp_policy_unref(old);
}

void imp_slot_free(imp_slot_t *slot)
{
	if (!slot)
		return;
	imp_policy_unref(slot->cur);
	pthread_mutex_destroy(&slot->mu);
	imp_mfree(slot->ctx, slot);
}
