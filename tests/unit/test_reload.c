/*
 * test_reload.c -- policy reload under load: 4 threads evaluate
 * continuously, each with its own evaluator and a policy taken from the
 * slot per stanza, while the main thread loads and swaps policies 50
 * times.  Every verdict must come from one whole valid policy: its digest
 * is one of the known ones and its deciding rule is the one that policy
 * names.  Run under TSan (data races) and ASan (leaks, use after free).
 */
#include "check.h"
#include "impolicy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_POLICIES 3
#define N_THREADS 4
#define N_SWAPS 50

static imp_ctx_t *g_ctx;
static imp_slot_t *g_slot;
static char g_paths[N_POLICIES][64];
static char g_digests[N_POLICIES][65];
static atomic_bool g_stop;
static atomic_ulong g_evals, g_bad, g_errors;

/* Policy k rejects "wordK" with rule "rule.K"; the stanza contains all
 * three words, so the deciding rule tells which policy judged it.  The
 * fan-out rule (one recipient, never reached) and the escalation gate
 * (nothing escalates) make every evaluation read and write the shared
 * state, which the first one creates lazily. */
static int write_policy(int k)
{
	snprintf(g_paths[k], sizeof(g_paths[k]), "/tmp/test_reload_%d_%d.yaml",
		 (int)getpid(), k);
	FILE *f = fopen(g_paths[k], "w");
	if (!f)
		return -1;
	fprintf(f,
		"policy: { name: reload-%d, version: v%d,\n"
		"          local_domains: [acme.example] }\n"
		"lists:\n"
		"  w: { words: [word%d] }\n"
		"  other: { words: [never%d] }\n"
		"rules:\n"
		"  - { id: rule.other, when: { words: other }, action: flag }\n"
		"  - { id: rule.%d, when: { kind: message, words: w },\n"
		"      action: reject, notice: 'policy %d', escalate: false }\n"
		"  - { id: rule.fanout, when: { fanout: { recipients: 2,\n"
		"      within: 1h } }, action: flag }\n"
		"escalation: { violations: 3, within: 1h, suspend: 1m "
		"}\n",
		k, k, k, k, k, k);
	return fclose(f);
}

static int digest_index(const char *d)
{
	for (int k = 0; k < N_POLICIES; k++)
		if (strcmp(d, g_digests[k]) == 0)
			return k;
	return -1;
}

static void *worker(void *arg)
{
	(void)arg;
	imp_eval_t *ev = NULL;
	if (imp_eval_new(g_ctx, &ev) != IMP_OK) {
		atomic_fetch_add(&g_errors, 1);
		return NULL;
	}
	static const char xml[] =
		"<message from='alice@acme.example/r' to='bob@acme.example' "
		"type='chat'><body>word0 word1 word2</body></message>";
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = IMP_ORIGIN_LOCAL;
	view.xml = xml;
	view.xml_len = sizeof(xml) - 1;
	while (!atomic_load(&g_stop)) {
		imp_policy_t *p = imp_slot_acquire(g_slot);
		if (!p) {
			atomic_fetch_add(&g_errors, 1);
			break;
		}
		imp_verdict_t v;
		int rc = imp_eval_run(ev, p, &view, 0, &v);
		imp_policy_unref(p);
		if (rc != IMP_OK) {
			atomic_fetch_add(&g_errors, 1);
			imp_verdict_clear(&v);
			continue;
		}
		/* the verdict must be whole: digest, rule and notice of one
		 * and the same policy */
		int k = digest_index(v.policy_digest);
		char want_rule[16], want_notice[16];
		snprintf(want_rule, sizeof(want_rule), "rule.%d", k);
		snprintf(want_notice, sizeof(want_notice), "policy %d", k);
		if (k < 0 || v.action != IMP_REJECT || !v.rule_id ||
		    strcmp(v.rule_id, want_rule) != 0 || !v.notice ||
		    strcmp(v.notice, want_notice) != 0 || v.n_rules != 1)
			atomic_fetch_add(&g_bad, 1);
		atomic_fetch_add(&g_evals, 1);
		imp_verdict_clear(&v);
	}
	imp_eval_free(ev);
	return NULL;
}

/* Most reloads use the PCRE2 engine, which compiles in milliseconds, so
 * that 50 swaps stay quick under TSan; every tenth uses the default engine
 * (Vectorscan where available), so that evaluators also re-prepare their
 * scratch across engines. */
static imp_policy_t *load(int k, imp_engine_t engine)
{
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	imp_load_options_t opt;
	memset(&opt, 0, sizeof(opt));
	opt.version = IMP_LOAD_OPTIONS_VERSION;
	opt.engine = engine;
	int rc = imp_policy_load(g_ctx, g_paths[k], &opt, &p, &errs);
	if (rc != IMP_OK) {
		for (size_t i = 0; i < imp_errors_count(errs); i++) {
			char buf[512];
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof(buf));
			fprintf(stderr, "%s\n", buf);
		}
		imp_errors_free(errs);
	}
	return p;
}

int main(void)
{
	CHECK_INT(imp_ctx_new(NULL, &g_ctx), IMP_OK);
	for (int k = 0; k < N_POLICIES; k++) {
		CHECK_INT(write_policy(k), 0);
		imp_policy_t *p = load(k, IMP_ENGINE_PCRE2);
		CHECK(p != NULL);
		if (!p)
			return CHECK_DONE();
		imp_policy_info_t info;
		imp_policy_info(p, &info);
		snprintf(g_digests[k], sizeof(g_digests[k]), "%s", info.digest);
		imp_policy_unref(p);
	}
	/* different contents, different digests */
	CHECK(strcmp(g_digests[0], g_digests[1]) != 0);
	CHECK(strcmp(g_digests[1], g_digests[2]) != 0);

	imp_policy_t *first = load(0, IMP_ENGINE_AUTO);
	CHECK(first != NULL);
	CHECK_INT(imp_slot_new(g_ctx, first, &g_slot), IMP_OK);
	imp_policy_unref(first); /* the slot holds its own reference */

	pthread_t th[N_THREADS];
	for (int i = 0; i < N_THREADS; i++)
		CHECK_INT(pthread_create(&th[i], NULL, worker, NULL), 0);

	unsigned long seen_before = 0;
	int progress = 0;
	for (int i = 1; i <= N_SWAPS; i++) {
		imp_policy_t *p =
			load(i % N_POLICIES,
			     i % 10 ? IMP_ENGINE_PCRE2 : IMP_ENGINE_AUTO);
		CHECK(p != NULL);
		if (p) {
			imp_slot_swap(g_slot, p);
			imp_policy_unref(p);
		}
		/* give the workers time to evaluate against this one */
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
		unsigned long now = atomic_load(&g_evals);
		if (now > seen_before)
			progress++;
		seen_before = now;
	}
	atomic_store(&g_stop, true);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);

	printf("%lu evaluations, %lu bad, %lu errors\n", atomic_load(&g_evals),
	       atomic_load(&g_bad), atomic_load(&g_errors));
	CHECK(atomic_load(&g_evals) > 0);
	CHECK(progress > 0);
	CHECK_INT(atomic_load(&g_bad), 0);
	CHECK_INT(atomic_load(&g_errors), 0);

	/* the slot now holds policy N_SWAPS % N_POLICIES */
	imp_policy_t *cur = imp_slot_acquire(g_slot);
	CHECK(cur != NULL);
	if (cur) {
		imp_policy_info_t info;
		imp_policy_info(cur, &info);
		CHECK_STR(info.digest, g_digests[N_SWAPS % N_POLICIES]);
		imp_policy_unref(cur);
	}
	imp_slot_free(g_slot);
	for (int k = 0; k < N_POLICIES; k++)
		unlink(g_paths[k]);
	imp_ctx_free(g_ctx);
	return CHECK_DONE();
}
