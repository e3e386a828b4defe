/*
 * test_policy.c -- the policy loader (policy_load.c): compiled structures,
 * defaults, includes, digest, error reporting, refcounts and the slot
 * under concurrent acquire/swap (also run under TSan).
 *
 * Policies are written to a fresh temporary directory per run.
 */
#include "check.h"
#include "policy.h"
#include "stanza.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char tdir[256];

static void put(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static int load(imp_ctx_t *ctx, const char *name, size_t max_errors,
		imp_policy_t **p, imp_errors_t **errs)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	imp_load_options_t o = {.version = IMP_LOAD_OPTIONS_VERSION,
				.max_errors = max_errors};
	return imp_policy_load(ctx, path, &o, p, errs);
}

static void dump_errors(const imp_errors_t *errs)
{
	for (size_t i = 0; errs && i < imp_errors_count(errs); i++) {
		char buf[1024];
		imp_error_format(imp_errors_get(errs, i), buf, sizeof(buf));
		fprintf(stderr, "  error: %s\n", buf);
	}
}

static long sched_index(const imp_policy_t *p, const char *name)
{
	for (size_t i = 0; i < p->n_scheds; i++)
		if (!strcmp(p->scheds[i].name, name))
			return (long)i;
	return -1;
}

static const imp_rule_t *rule(const imp_policy_t *p, const char *id)
{
	for (size_t i = 0; i < p->n_rules; i++)
		if (!strcmp(p->rules[i].id, id))
			return &p->rules[i];
	return NULL;
}

static const char *const full_policy =
	"policy:\n"
	"  name: Acme\n"
	"  version: \"2026-11\"\n"
	"  timezone: America/New_York\n"
	"  local_domains: [acme.example]\n"
	"settings: { notify: [compliance@acme.example] }\n"
	"schedules:\n"
	"  holidays: { dates: [\"2026-12-25\"] }\n"
	"  work_hours: { days: mon-fri, hours: [\"08:30-17:30\"], except: "
	"[holidays] }\n"
	"  breaks: { days: mon-fri, hours: [\"10:30-10:45\", "
	"\"12:00-13:00\"] }\n"
	"groups:\n"
	"  legal: { jids: [\"*@legal.acme.example\"] }\n"
	"  berlin: { jids: [\"*@berlin.acme.example\"], timezone: "
	"Europe/Berlin }\n"
	"users:\n"
	"  \"zed@acme.example\": { timezone: Asia/Tokyo }\n"
	"  \"Dana@Acme.example/phone\": { timezone: Europe/Berlin }\n"
	"lists:\n"
	"  profanity: { file: prof.txt, categories: [profanity] }\n"
	"  fun: { words: [football, movies], categories: [personal] }\n"
	"  shop: { phrases: [\"online shopping\"], categories: [personal, "
	"commercial] }\n"
	"detectors:\n"
	"  employee_id: { pattern: 'EMP-\\d{6}', confidence: 60 }\n"
	"rules:\n"
	"  - id: card\n"
	"    section: \"3. Confidentiality\"\n"
	"    when: { kind: message, detect: [payment_card] }\n"
	"    action: reject\n"
	"    notify: true\n"
	"  - id: personal\n"
	"    when: { category: personal, during: work_hours, outside: "
	"breaks, fields: [body] }\n"
	"    action: flag\n"
	"  - id: lang\n"
	"    when: { any: [ { words: profanity }, { detect: { any: "
	"[employee_id], confidence: 80 } } ] }\n"
	"    action: redact\n"
	"    escalate: false\n"
	"  - id: legal\n"
	"    when: { between: [legal, local], correction: false, kind: [iq, "
	"presence] }\n"
	"    action: allow\n"
	"  - id: fan\n"
	"    when: { fanout: { recipients: 10, within: 10m }, direction: "
	"outgoing }\n"
	"    action: flag\n"
	"escalation: { violations: 3, within: 1h, suspend: 30m }\n";

static void test_full(imp_ctx_t *ctx)
{
	put("prof.txt", "# comment\n\ndamn\n  heck  \r\n");
	put("full.yaml", full_policy);
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	int rc = load(ctx, "full.yaml", 0, &p, &errs);
	CHECK_INT(rc, IMP_OK);
	dump_errors(errs);
	CHECK(errs == NULL);
	if (!p)
		return;
	CHECK_STR(p->name, "Acme");
	CHECK_STR(p->version, "2026-11");
	CHECK_STR(imp_tz_name(p->tz), "America/New_York");
	CHECK_INT(p->n_local_domains, 1);
	CHECK_STR(p->local_domains[0], "acme.example");
	/* defaults */
	CHECK_INT(p->on_uninspectable, IMP_OUTCOME_FLAG);
	CHECK_INT(p->on_malformed, IMP_REJECT);
	CHECK_STR(p->mask, "*");
	CHECK_INT(p->max_scan_bytes, 1048576);
	CHECK(p->default_notice && strlen(p->default_notice) > 0);
	CHECK_INT(p->n_notify, 1);
	/* schedules and except indexes */
	CHECK_INT(p->n_scheds, 3);
	long wh = sched_index(p, "work_hours"),
	     hol = sched_index(p, "holidays"), br = sched_index(p, "breaks");
	CHECK(wh >= 0 && hol >= 0 && br >= 0);
	if (wh >= 0) {
		CHECK_INT(p->scheds[wh].n_except, 1);
		CHECK_INT(p->scheds[wh].except[0], hol);
		CHECK_INT(p->scheds[wh].days, 0x3e);
		CHECK_INT(p->scheds[wh].n_windows, 1);
		CHECK_INT(p->scheds[wh].windows[0].start, 8 * 60 + 30);
	}
	if (br >= 0)
		CHECK_INT(p->scheds[br].n_windows, 2);
	/* groups and zones */
	CHECK_INT(p->n_groups, 2);
	CHECK(p->groups[0].tz == NULL);
	CHECK(p->groups[1].tz &&
	      !strcmp(imp_tz_name(p->groups[1].tz), "Europe/Berlin"));
	/* users sorted by lowercase bare JID */
	CHECK_INT(p->n_user_tz, 2);
	CHECK_STR(p->user_tz[0].bare, "dana@acme.example");
	CHECK_STR(p->user_tz[1].bare, "zed@acme.example");
	/* the zone cache shares one zone object per name */
	CHECK(p->user_tz[0].tz == p->groups[1].tz);
	/* lists */
	CHECK_INT(p->n_lists, 3);
	CHECK_INT(p->lists[0].n_entries, 2);
	CHECK_INT(p->lists[1].n_entries, 2);
	CHECK(p->lexicon != NULL);
	CHECK(p->detectors != NULL);
	/* rules */
	CHECK_INT(p->n_rules, 5);
	const imp_rule_t *r = rule(p, "card");
	CHECK(r != NULL);
	if (r && p->detectors) {
		uint64_t m = 0;
		CHECK(imp_detset_mask(p->detectors, "payment_card", &m));
		CHECK(m != 0);
		CHECK(r->det_mask == m);
		CHECK_INT(r->kinds, IMP_KIND_MESSAGE);
		CHECK_INT(r->action, IMP_REJECT);
		CHECK(r->escalate);
		CHECK_INT(r->n_notify, 1);
		CHECK_STR(r->section, "3. Confidentiality");
		CHECK_INT(r->line, 24);
		CHECK(!r->needs_words);
	}
	r = rule(p, "personal");
	CHECK(r != NULL);
	if (r) {
		CHECK(r->needs_words);
		CHECK(!r->escalate);
		CHECK_INT(r->when->op, IMP_C_ALL);
		CHECK_INT(r->when->u.kids.n, 3);
		const imp_cond_t *cat = r->when->u.kids.v[0];
		CHECK_INT(cat->op, IMP_C_WORDS);
		CHECK_INT(cat->u.lists.n_words, 1);
		/* personal is in lists 1 and 2 */
		CHECK_INT(cat->u.lists.bits[0], 6);
		CHECK_INT(cat->fields, 1u << IMP_FIELD_BODY);
		const imp_cond_t *dur = r->when->u.kids.v[1];
		CHECK_INT(dur->op, IMP_C_DURING);
		CHECK_INT(dur->u.scheds.v[0], wh);
		const imp_cond_t *out = r->when->u.kids.v[2];
		CHECK_INT(out->op, IMP_C_NOT);
		CHECK_INT(out->u.kids.v[0]->op, IMP_C_DURING);
		CHECK_INT(out->u.kids.v[0]->u.scheds.v[0], br);
		CHECK_STR(out->key, "outside");
	}
	r = rule(p, "lang");
	CHECK(r != NULL);
	if (r && p->detectors) {
		CHECK(!r->escalate);
		CHECK(r->needs_words);
		int ix = imp_detset_index(p->detectors, "employee_id");
		CHECK(ix >= 0);
		CHECK(r->det_mask == ((uint64_t)1 << ix));
		const imp_cond_t *any = r->when->u.kids.v[0];
		CHECK_INT(any->op, IMP_C_ANY);
		CHECK_INT(any->u.kids.n, 2);
		const imp_cond_t *det = any->u.kids.v[1]->u.kids.v[0];
		CHECK_INT(det->op, IMP_C_DETECT);
		CHECK_INT(det->u.detect.min_confidence, 80);
		CHECK_INT(r->kinds, IMP_KIND_MESSAGE | IMP_KIND_PRESENCE |
					    IMP_KIND_IQ | IMP_KIND_OTHER);
	}
	r = rule(p, "legal");
	CHECK(r != NULL);
	if (r) {
		CHECK_INT(r->kinds, IMP_KIND_IQ | IMP_KIND_PRESENCE);
		const imp_cond_t *b = r->when->u.kids.v[0];
		CHECK_INT(b->op, IMP_C_BETWEEN);
		CHECK_INT(b->u.pair.a.n_groups, 1);
		CHECK_INT(b->u.pair.a.groups[0], 0);
		CHECK(b->u.pair.b.local);
		const imp_cond_t *c = r->when->u.kids.v[1];
		CHECK_INT(c->op, IMP_C_NOT);
		CHECK_INT(c->u.kids.v[0]->op, IMP_C_CORRECTION);
	}
	r = rule(p, "fan");
	CHECK(r != NULL);
	if (r) {
		CHECK(r->needs_state);
		const imp_cond_t *f = r->when->u.kids.v[0];
		CHECK_INT(f->op, IMP_C_FANOUT);
		CHECK_INT(f->u.fanout.recipients, 10);
		CHECK_INT(f->u.fanout.window_s, 600);
		CHECK_INT(r->when->u.kids.v[1]->u.mask,
			  IMP_DIR_OUTBOUND | IMP_DIR_INTERNAL);
	}
	CHECK(p->any_words);
	if (p->n_rules == 5)
		CHECK(p->det_mask_all ==
		      (p->rules[0].det_mask | p->rules[2].det_mask));
	/* escalation */
	CHECK(p->escalation.enabled);
	CHECK_INT(p->escalation.violations, 3);
	CHECK_INT(p->escalation.within_s, 3600);
	CHECK_INT(p->escalation.suspend_s, 1800);
	CHECK_INT(p->escalation.kinds, IMP_KIND_MESSAGE);

	imp_policy_info_t info;
	imp_policy_info(p, &info);
	CHECK_INT(info.n_files, 2);
	CHECK_INT(info.n_rules, 5);
	CHECK_INT(info.n_schedules, 3);
	CHECK_INT(info.n_groups, 2);
	CHECK_INT(strlen(info.digest), 64);
	CHECK(info.memory > 0);
	CHECK(info.n_words >= 5);
	CHECK(info.n_detectors >= 13);
	CHECK_STR(info.timezone, "America/New_York");

	/* the same sources give the same digest; changing a list file
	 * changes it */
	char d1[65];
	memcpy(d1, p->digest, 65);
	imp_policy_t *p2 = NULL;
	CHECK_INT(load(ctx, "full.yaml", 0, &p2, NULL), IMP_OK);
	CHECK(p2 && !strcmp(p2->digest, d1));
	imp_policy_unref(p2);
	put("prof.txt", "damn\nheck\ncrap\n");
	p2 = NULL;
	CHECK_INT(load(ctx, "full.yaml", 0, &p2, NULL), IMP_OK);
	CHECK(p2 && strcmp(p2->digest, d1) != 0);
	if (p2)
		CHECK_INT(p2->lists[0].n_entries, 3);
	imp_policy_unref(p2);

	/* refs */
	CHECK(imp_policy_ref(p) == p);
	CHECK_INT(atomic_load(&p->refs), 2);
	imp_policy_unref(p);
	CHECK_INT(atomic_load(&p->refs), 1);
	imp_policy_unref(p);
}

static void test_include(imp_ctx_t *ctx)
{
	put("inc_a.yaml", "schedules:\n  night: { hours: [\"22:00-06:00\"] }\n"
			  "rules:\n  - { id: a1, when: { during: night }, "
			  "action: flag }\n");
	put("inc_main.yaml", "rules:\n  - { id: m1, when: {}, action: allow }\n"
			     "include: [inc_a.yaml]\n"
			     "policy: { name: inc }\n");
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	CHECK_INT(load(ctx, "inc_main.yaml", 0, &p, &errs), IMP_OK);
	dump_errors(errs);
	if (!p)
		return;
	CHECK_INT(p->n_rules, 2);
	CHECK_STR(p->rules[0].id, "a1"); /* included rules come first */
	CHECK_STR(p->rules[1].id, "m1");
	CHECK_INT(p->n_scheds, 1);
	CHECK_INT(p->n_files, 2);
	CHECK(strstr(p->rules[0].file, "inc_a.yaml") != NULL);
	CHECK_INT(p->rules[1].kinds, IMP_KIND_MESSAGE | IMP_KIND_PRESENCE |
					     IMP_KIND_IQ | IMP_KIND_OTHER);
	CHECK(p->lexicon == NULL);
	CHECK(!p->any_words);
	CHECK(!p->escalation.enabled);
	char d[65];
	memcpy(d, p->digest, 65);
	imp_policy_unref(p);
	/* the digest covers the included file */
	put("inc_a.yaml", "schedules:\n  night: { hours: [\"22:00-07:00\"] }\n"
			  "rules:\n  - { id: a1, when: { during: night }, "
			  "action: flag }\n");
	p = NULL;
	CHECK_INT(load(ctx, "inc_main.yaml", 0, &p, NULL), IMP_OK);
	CHECK(p && strcmp(p->digest, d) != 0);
	imp_policy_unref(p);
}

/* YAML merge keys fill in what a mapping leaves unset. */
static void test_merge(imp_ctx_t *ctx)
{
	put("merge.yaml",
	    "policy: { name: m }\n"
	    "schedules:\n"
	    "  base: &sb { days: mon-fri, hours: [\"09:00-17:00\"] }\n"
	    "  late: { <<: *sb, hours: [\"17:00-20:00\"] }\n"
	    "rules:\n"
	    "  - &r { id: a, severity: high, when: &w { kind: message },"
	    " action: flag }\n"
	    "  - { <<: *r, id: b, action: reject,"
	    " when: { <<: *w, has_body: true } }\n");
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	CHECK_INT(load(ctx, "merge.yaml", 0, &p, &errs), IMP_OK);
	dump_errors(errs);
	if (!p)
		return;
	CHECK_INT(p->n_scheds, 2);
	CHECK_INT(p->scheds[1].days, 0x3e);
	CHECK_INT(p->scheds[1].windows[0].start, 17 * 60);
	CHECK_INT(p->n_rules, 2);
	CHECK_STR(p->rules[1].id, "b");
	CHECK_INT(p->rules[1].severity, 2);
	CHECK_INT(p->rules[1].action, IMP_REJECT);
	CHECK_INT(p->rules[1].kinds, IMP_KIND_MESSAGE);
	CHECK_INT(p->rules[1].when->u.kids.n, 2);
	imp_policy_unref(p);
}

/* Table of broken policies: how many errors, and the first one's line. */
static const struct {
	const char *yaml;
	size_t n_errors;
	unsigned first_line;
	const char *needle; /* in the first message */
} bad[] = {
	{"policy: { name: x }\nrules:\n  - { id: a, when: {}, action: "
	 "nuke }\n",
	 1, 3, "unknown value 'nuke'"},
	{"policy: { name: x }\nrules:\n  - { id: a, when: {}, action: flag "
	 "}\n  - { id: a, when: {}, action: flag }\n",
	 1, 4, "duplicate rule id 'a'"},
	{"policy: { name: x }\nschedules:\n  s: { days: moonday }\n"
	 "  t: { hours: [\"10:00-10:00\"] }\nrules:\n"
	 "  - { id: a, when: { during: work }, action: flag }\n",
	 3, 3, "invalid days"},
	{"policy: { name: x, timezone: Mars/Olympus }\n", 1, 1, "Mars/Olympus"},
	{"policy: [x]\n", 1, 1, "expected a mapping, got a sequence"},
	{"policy: { name: x }\nrules: [ { id: a, when: { betwen: [a, b] }, "
	 "action: flag } ]\n",
	 1, 2, "unknown key 'betwen'"},
	{"policy: { name: x\n", 1, 2, "YAML syntax error"},
	{"rules: []\n", 1, 1, "missing required section 'policy'"},
	{"policy: { name: x }\nschedules:\n  a: { except: [b] }\n"
	 "  b: { except: [a] }\n",
	 1, 4, "cycle"},
};

static void test_errors(imp_ctx_t *ctx)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
		put("bad.yaml", bad[i].yaml);
		imp_policy_t *p = (imp_policy_t *)1;
		imp_errors_t *errs = NULL;
		int rc = load(ctx, "bad.yaml", 0, &p, &errs);
		CHECK_MSG(rc == IMP_ERR_POLICY, "case %zu: rc %d", i, rc);
		CHECK(p == NULL);
		CHECK(errs != NULL);
		if (!errs)
			continue;
		CHECK_MSG(imp_errors_count(errs) == bad[i].n_errors,
			  "case %zu: %zu errors", i, imp_errors_count(errs));
		if (imp_errors_count(errs) != bad[i].n_errors)
			dump_errors(errs);
		const imp_error_t *e = imp_errors_get(errs, 0);
		if (e) {
			CHECK_MSG(e->line == bad[i].first_line,
				  "case %zu: line %u", i, e->line);
			CHECK_MSG(strstr(e->message, bad[i].needle) != NULL,
				  "case %zu: message '%s'", i, e->message);
			CHECK(e->file && strstr(e->file, "bad.yaml"));
		}
		imp_errors_free(errs);
	}
	/* the cap: 5 errors, 2 kept */
	put("bad.yaml", "policy: { name: x }\nrules:\n"
			"  - { id: a, when: {}, action: a1 }\n"
			"  - { id: b, when: {}, action: a2 }\n"
			"  - { id: c, when: {}, action: a3 }\n"
			"  - { id: d, when: {}, action: a4 }\n"
			"  - { id: e, when: {}, action: a5 }\n");
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	CHECK_INT(load(ctx, "bad.yaml", 2, &p, &errs), IMP_ERR_POLICY);
	CHECK_INT(imp_errors_count(errs), 2);
	CHECK_INT(imp_errors_dropped(errs), 3);
	imp_errors_free(errs);
	/* a missing main file is an I/O error */
	errs = NULL;
	CHECK_INT(load(ctx, "does-not-exist.yaml", 0, &p, &errs), IMP_ERR_IO);
	CHECK(errs && imp_errors_count(errs) == 1);
	imp_errors_free(errs);
	/* bad arguments */
	CHECK_INT(imp_policy_load(ctx, NULL, NULL, &p, NULL), IMP_ERR_INVALID);
}

/* ---- allocation failures -------------------------------------------------- */

static long oom_budget; /* allocations left; < 0: unlimited */

static void *oom_malloc(size_t n, void *ud)
{
	(void)ud;
	if (oom_budget == 0)
		return NULL;
	if (oom_budget > 0)
		oom_budget--;
	return malloc(n);
}

static void *oom_realloc(void *p, size_t n, void *ud)
{
	(void)ud;
	if (oom_budget == 0)
		return NULL;
	if (oom_budget > 0)
		oom_budget--;
	return realloc(p, n);
}

static void oom_free(void *p, void *ud)
{
	(void)ud;
	free(p);
}

/* Every allocation failure point ends in IMP_ERR_NOMEM with everything
 * freed (ASan/LSan runs check the "freed"), until the load succeeds. */
static void test_oom(void)
{
	imp_allocator_t al = {oom_malloc, oom_realloc, oom_free, NULL};
	imp_ctx_config_t cfg = {.version = IMP_CTX_CONFIG_VERSION,
				.alloc = &al};
	imp_ctx_t *ctx = NULL;
	oom_budget = -1;
	if (imp_ctx_new(&cfg, &ctx) != IMP_OK) {
		CHECK(0);
		return;
	}
	put("oom_list.txt", "alpha\nbeta\n");
	put("oom.yaml",
	    "policy: { name: oom, timezone: Europe/Berlin }\n"
	    "include: [inc_a.yaml]\n"
	    "groups: { g: { jids: [\"*@x.example\"] } }\n"
	    "lists: { l: { file: oom_list.txt, categories: [c] } }\n"
	    "rules:\n"
	    "  - { id: r, when: { category: c, from: g, any: "
	    "[{ detect: email }, { outside: night }] }, action: "
	    "redact }\n");
	int rc = -100;
	long n;
	bool only_nomem = true;
	for (n = 0; n < 20000; n++) {
		imp_policy_t *p = NULL;
		imp_errors_t *errs = NULL;
		char path[512];
		snprintf(path, sizeof(path), "%s/oom.yaml", tdir);
		imp_load_options_t o = {.version = IMP_LOAD_OPTIONS_VERSION,
					.engine = IMP_ENGINE_PCRE2};
		oom_budget = n;
		rc = imp_policy_load(ctx, path, &o, &p, &errs);
		oom_budget = -1;
		if (rc == IMP_OK) {
			CHECK_INT(p->n_rules, 2);
			imp_policy_unref(p);
			imp_errors_free(errs);
			break;
		}
		/* NOMEM, or a refused policy that says why (another unit
		 * may map its dependency's allocation failure to an internal
		 * error, which the loader reports) */
		if (rc != IMP_ERR_NOMEM &&
		    !(rc == IMP_ERR_POLICY && errs &&
		      imp_errors_count(errs) + imp_errors_dropped(errs) > 0)) {
			if (only_nomem)
				fprintf(stderr, "budget %ld: rc %d\n", n, rc);
			only_nomem = false;
		}
		CHECK(p == NULL);
		imp_errors_free(errs);
	}
	CHECK_INT(rc, IMP_OK);
	CHECK(n > 10);
	CHECK(only_nomem);
	imp_ctx_free(ctx);
}

/* ---- the slot under concurrency ---------------------------------------- */

typedef struct slot_arg_s {
	imp_slot_t *slot;
	imp_policy_t *pa, *pb;
	int swapper;
	long seen;
} slot_arg_t;

static void *slot_worker(void *arg)
{
	slot_arg_t *a = arg;
	for (int i = 0; i < 20000; i++) {
		if (a->swapper) {
			imp_slot_swap(a->slot, (i & 1) ? a->pa : a->pb);
		} else {
			imp_policy_t *p = imp_slot_acquire(a->slot);
			if (p) {
				a->seen += (long)p->n_rules;
				imp_policy_unref(p);
			}
		}
	}
	return NULL;
}

static void test_slot(imp_ctx_t *ctx)
{
	put("s1.yaml", "policy: { name: one }\nrules:\n"
		       "  - { id: a, when: {}, action: flag }\n");
	put("s2.yaml", "policy: { name: two }\nrules:\n"
		       "  - { id: a, when: {}, action: flag }\n"
		       "  - { id: b, when: {}, action: flag }\n");
	imp_policy_t *pa = NULL, *pb = NULL;
	CHECK_INT(load(ctx, "s1.yaml", 0, &pa, NULL), IMP_OK);
	CHECK_INT(load(ctx, "s2.yaml", 0, &pb, NULL), IMP_OK);
	if (!pa || !pb)
		return;
	imp_slot_t *slot = NULL;
	CHECK_INT(imp_slot_new(ctx, pa, &slot), IMP_OK);
	CHECK_INT(atomic_load(&pa->refs), 2);
	pthread_t th[4];
	slot_arg_t args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (slot_arg_t){slot, pa, pb, i >= 2, 0};
		pthread_create(&th[i], NULL, slot_worker, &args[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(args[0].seen >= 20000 && args[0].seen <= 40000);
	CHECK(args[1].seen >= 20000 && args[1].seen <= 40000);
	/* the slot holds exactly one reference to its current policy */
	imp_policy_t *cur = imp_slot_acquire(slot);
	CHECK(cur == pa || cur == pb);
	CHECK_INT(atomic_load(&cur->refs), 3);
	imp_policy_unref(cur);
	imp_slot_swap(slot, NULL);
	CHECK(imp_slot_acquire(slot) == NULL);
	CHECK_INT(atomic_load(&pa->refs), 1);
	CHECK_INT(atomic_load(&pb->refs), 1);
	imp_slot_free(slot);
	imp_policy_unref(pa);
	imp_policy_unref(pb);
}

int main(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_policy.XXXXXX");
	if (!mkdtemp(tdir)) {
		perror("mkdtemp");
		return 2;
	}
	imp_ctx_t *ctx = NULL;
	if (imp_ctx_new(NULL, &ctx) != IMP_OK)
		return 2;
	test_full(ctx);
	test_include(ctx);
	test_merge(ctx);
	test_errors(ctx);
	test_slot(ctx);
	test_oom();
	imp_ctx_free(ctx);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tdir);
	return CHECK_DONE();
}
