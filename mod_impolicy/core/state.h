/*
 * state.h -- the stateful parts of the policy: escalation (violation
 * counts and suspensions per user) and fan-out detection (same content to
 * many recipients within a window).
 *
 * The evaluator talks to this interface only, so that a later version can
 * share state between processes or nodes (e.g. through PostgreSQL) without
 * touching evaluation.  The built-in implementation keeps everything in
 * memory, per process, in hash tables protected by one mutex, with entries
 * expiring lazily; memory is bounded (oldest entries are evicted past
 * IMP_STATE_MAX_USERS users / IMP_STATE_MAX_FANOUT fingerprints).
 *
 * Threading: all functions are thread-safe.
 */
#ifndef IMP_STATE_H
#define IMP_STATE_H

#include "base.h"

#define IMP_STATE_MAX_USERS 100000
#define IMP_STATE_MAX_FANOUT 100000

typedef struct imp_state_s imp_state_t;

imp_state_t *imp_state_new(const imp_ctx_t *ctx);
void imp_state_free(imp_state_t *st);

/* Seconds left in user's suspension at now_s (0 when not suspended). */
int64_t imp_state_suspended(imp_state_t *st, const char *user, int64_t now_s);

/* Records one violation by user at now_s and returns how many fall within
 * the last within_s seconds (including this one).  When that reaches
 * threshold (> 0), the user is suspended until now_s + suspend_s, the
 * count is reset, and *suspended is set. */
uint32_t imp_state_violation(imp_state_t *st, const char *user, int64_t now_s,
			     uint32_t within_s, uint32_t threshold,
			     uint32_t suspend_s, bool *suspended);

/* Records that user sent content with fingerprint fp (a 64-bit hash of the
 * normalised body) to recipient at now_s and returns the number of distinct
 * recipients of that content from that user within window_s.  With
 * dry_run, nothing is recorded (the count includes recipient only if it
 * would be new). */
uint32_t imp_state_fanout(imp_state_t *st, const char *user, uint64_t fp,
			  const char *recipient, int64_t now_s,
			  uint32_t window_s, bool dry_run);

/* Forgets everything (tests). */
void imp_state_clear(imp_state_t *st);

#endif /* IMP_STATE_H */
