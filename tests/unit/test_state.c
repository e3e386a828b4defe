/*
 * test_state.c -- escalation and fan-out state (state.h): windows,
 * thresholds, suspension expiry, dry runs, isolation between users and
 * fingerprints, clearing, and the memory bound.
 */
#include "check.h"
#include "state.h"

#include <stdio.h>

/* Violations: (time, expected count, expected suspended) in sequence for
 * one user with within = 60 s, threshold 3, suspend 100 s. */
static const struct {
	int64_t t;
	uint32_t count;
	bool suspended;
	int64_t left_after; /* imp_state_suspended at t */
} viol_steps[] = {
	{1000, 1, false, 0},
	{1030, 2, false, 0},
	/* 1000 left the window (1070 - 1000 >= 60), 1030 is still in */
	{1070, 2, false, 0},
	{1080, 3, true, 100},
	/* counter reset by the suspension */
	{1100, 1, false, 80},
};

static void test_violations(const imp_ctx_t *ctx)
{
	imp_state_t *st = imp_state_new(ctx);
	CHECK(st != NULL);
	for (size_t i = 0; i < IMP_ARRAY_LEN(viol_steps); i++) {
		bool susp = true;
		uint32_t n =
			imp_state_violation(st, "alice@acme.example",
					    viol_steps[i].t, 60, 3, 100, &susp);
		CHECK_MSG(n == viol_steps[i].count, "step %zu: count %u", i, n);
		CHECK_MSG(susp == viol_steps[i].suspended, "step %zu", i);
		CHECK_INT(imp_state_suspended(st, "alice@acme.example",
					      viol_steps[i].t),
			  viol_steps[i].left_after);
	}
	/* Other users are unaffected. */
	CHECK_INT(imp_state_suspended(st, "bob@acme.example", 1100), 0);
	/* The suspension lifts at 1180. */
	CHECK_INT(imp_state_suspended(st, "alice@acme.example", 1179), 1);
	CHECK_INT(imp_state_suspended(st, "alice@acme.example", 1180), 0);
	CHECK_INT(imp_state_suspended(st, "alice@acme.example", 5000), 0);
	/* Threshold 0 never suspends. */
	bool susp = true;
	for (int i = 0; i < 10; i++)
		imp_state_violation(st, "carol@acme.example", 2000 + i, 3600, 0,
				    60, &susp);
	CHECK(!susp);
	CHECK_INT(imp_state_suspended(st, "carol@acme.example", 2010), 0);
	/* Clear forgets suspensions. */
	imp_state_violation(st, "dave@acme.example", 3000, 60, 1, 600, &susp);
	CHECK(susp);
	CHECK(imp_state_suspended(st, "dave@acme.example", 3001) > 0);
	imp_state_clear(st);
	CHECK_INT(imp_state_suspended(st, "dave@acme.example", 3001), 0);
	/* A threshold above the kept history is reached at the cap (1024),
	 * sooner rather than never. */
	uint32_t n = 0;
	susp = false;
	for (int i = 0; i < 2000 && !susp; i++)
		n = imp_state_violation(st, "erin@acme.example", 4000, 3600,
					1000000, 60, &susp);
	CHECK(susp);
	CHECK_INT(n, 1024);
	/* NULL arguments are harmless. */
	CHECK_INT(imp_state_suspended(st, NULL, 1), 0);
	CHECK_INT(imp_state_violation(NULL, "x", 1, 1, 1, 1, &susp), 0);
	imp_state_free(st);
}

static void test_fanout(const imp_ctx_t *ctx)
{
	imp_state_t *st = imp_state_new(ctx);
	const uint64_t fp = 0x1234, fp2 = 0x9999;
	const char *u = "alice@acme.example";
	CHECK_INT(imp_state_fanout(st, u, fp, "r1@x", 100, 60, false), 1);
	CHECK_INT(imp_state_fanout(st, u, fp, "r2@x", 110, 60, false), 2);
	/* the same recipient again does not count twice */
	CHECK_INT(imp_state_fanout(st, u, fp, "r2@x", 111, 60, false), 2);
	/* dry run counts a new recipient without recording it */
	CHECK_INT(imp_state_fanout(st, u, fp, "r3@x", 112, 60, true), 3);
	CHECK_INT(imp_state_fanout(st, u, fp, "r3@x", 112, 60, true), 3);
	CHECK_INT(imp_state_fanout(st, u, fp, "r2@x", 112, 60, true), 2);
	/* other content and other senders are separate */
	CHECK_INT(imp_state_fanout(st, u, fp2, "r9@x", 113, 60, false), 1);
	CHECK_INT(imp_state_fanout(st, "bob@acme.example", fp, "r9@x", 113, 60,
				   false),
		  1);
	CHECK_INT(imp_state_fanout(st, u, fp, "r3@x", 115, 60, false), 3);
	/* r1 (t=100) leaves the window at 160 */
	CHECK_INT(imp_state_fanout(st, u, fp, "r4@x", 159, 60, false), 4);
	CHECK_INT(imp_state_fanout(st, u, fp, "r5@x", 160, 60, false), 4);
	/* long after, everything expired */
	CHECK_INT(imp_state_fanout(st, u, fp, "r6@x", 10000, 60, false), 1);
	/* dry run on unknown content */
	CHECK_INT(imp_state_fanout(st, "zed@x", 7, "r@x", 1, 60, true), 1);
	/* mass mailing: every distinct recipient counts, past the two an
	 * entry holds inline, up to the per-entry cap of 4096 kept */
	uint32_t n = 0, at100 = 0;
	for (int i = 0; i < 5000; i++) {
		char r[32];
		snprintf(r, sizeof(r), "rcpt%d@x", i);
		n = imp_state_fanout(st, "mass@x", 9, r, 500, 600, false);
		if (i == 99)
			at100 = n;
	}
	CHECK_INT(at100, 100);
	CHECK_INT(n, 4097);
	/* a repeat recipient is not counted twice */
	CHECK_INT(imp_state_fanout(st, "mass@x", 9, "rcpt7@x", 501, 600, false),
		  4096);
	imp_state_free(st);
}

/* Past IMP_STATE_MAX_USERS users the least recently used are evicted, and
 * expired entries go first. */
static void test_bounds(const imp_ctx_t *ctx)
{
	imp_state_t *st = imp_state_new(ctx);
	char name[64];
	bool susp;
	/* user0 suspended for a long time, then many more users */
	imp_state_violation(st, "user0@x", 1, 60, 1, 1000000, &susp);
	CHECK(susp);
	for (int i = 1; i < IMP_STATE_MAX_USERS; i++) {
		snprintf(name, sizeof(name), "user%d@x", i);
		imp_state_violation(st, name, 2, 60, 1, 1000000, &susp);
	}
	/* all of them are still known */
	CHECK(imp_state_suspended(st, "user0@x", 3) > 0);
	snprintf(name, sizeof(name), "user%d@x", IMP_STATE_MAX_USERS - 1);
	CHECK(imp_state_suspended(st, name, 3) > 0);
	/* user0 was just touched: user1 is now the oldest and goes when one
	 * more user arrives */
	imp_state_violation(st, "newcomer@x", 4, 60, 1, 1000000, &susp);
	CHECK(imp_state_suspended(st, "newcomer@x", 5) > 0);
	CHECK(imp_state_suspended(st, "user0@x", 5) > 0);
	CHECK_INT(imp_state_suspended(st, "user1@x", 5), 0);
	CHECK(imp_state_suspended(st, "user2@x", 5) > 0);

	/* Fan-out fingerprints are bounded the same way. */
	for (int i = 0; i <= IMP_STATE_MAX_FANOUT; i++)
		imp_state_fanout(st, "spammer@x", (uint64_t)i + 1, "r@x", 10,
				 3600, false);
	/* fingerprint 1 (the oldest) was evicted: r2 is the only one */
	CHECK_INT(imp_state_fanout(st, "spammer@x", 1, "r2@x", 11, 3600, true),
		  1);
	/* the newest one is still there: r@x + r2 */
	CHECK_INT(imp_state_fanout(st, "spammer@x",
				   (uint64_t)IMP_STATE_MAX_FANOUT + 1, "r2@x",
				   11, 3600, true),
		  2);
	imp_state_free(st);
}

int main(void)
{
	imp_ctx_t *ctx = NULL;
	CHECK_INT(imp_ctx_new(NULL, &ctx), IMP_OK);
	test_violations(ctx);
	test_fanout(ctx);
	test_bounds(ctx);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
