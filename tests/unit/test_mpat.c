/*
 * test_mpat.c -- multi-pattern scanning (mpat.c): both engines report the
 * same (id, from, to) sets for literals and regexes, caseless, UTF-8,
 * overlapping matches, an empty set, early stop, and compile errors with
 * the offending index.
 */
#include "check.h"
#include "mpat.h"

#include <stdlib.h>

#define MAXHITS 64
#define MAXPATS 8

typedef struct hit_s {
	unsigned id;
	size_t from, to;
} hit_t;

typedef struct hits_s {
	hit_t h[MAXHITS];
	size_t n;
	size_t stop_after; /* 0: never stop */
} hits_t;

static int collect(void *ud, unsigned id, size_t from, size_t to)
{
	hits_t *hs = ud;
	if (hs->n < MAXHITS)
		hs->h[hs->n++] = (hit_t){id, from, to};
	return hs->stop_after && hs->n >= hs->stop_after;
}

static int hit_cmp(const void *a, const void *b)
{
	const hit_t *x = a, *y = b;
	if (x->to != y->to)
		return x->to < y->to ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/* Formats sorted hits as "id@from-to id@from-to" (from "?" if unknown). */
static void hits_str(hits_t *hs, char *buf, size_t size)
{
	qsort(hs->h, hs->n, sizeof(hit_t), hit_cmp);
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < hs->n && off < size; i++) {
		const hit_t *h = &hs->h[i];
		if (h->from == (size_t)-1)
			off += (size_t)snprintf(buf + off, size - off,
						"%s%u@?-%zu", i ? " " : "",
						h->id, h->to);
		else
			off += (size_t)snprintf(buf + off, size - off,
						"%s%u@%zu-%zu", i ? " " : "",
						h->id, h->from, h->to);
	}
}

typedef struct pat_s {
	const char *expr;
	unsigned flags;
} pat_t;

typedef struct case_s {
	const char *name;
	pat_t pats[MAXPATS];
	const char *text;
	const char *expect; /* sorted by end, then id */
} case_t;

#define L IMP_MPAT_LITERAL
#define CI IMP_MPAT_CASELESS
#define U8 IMP_MPAT_UTF8

static const case_t cases[] = {
	{"one literal", {{"cat", L}}, "a cat and a cat", "0@2-5 0@12-15"},
	{"overlapping literals",
	 {{"bad word", L}, {"word", L}, {"wor", L}},
	 "a bad word!",
	 "2@6-9 0@2-10 1@6-10"},
	{"self-overlap", {{"aa", L}}, "aaaa", "0@0-2 0@1-3 0@2-4"},
	{"caseless literal",
	 {{"Secret", L | CI}},
	 "SECRET secret sEcReT",
	 "0@0-6 0@7-13 0@14-20"},
	{"case-sensitive literal",
	 {{"Secret", L}},
	 "SECRET secret Secret",
	 "0@14-20"},
	{"metachars are literal",
	 {{"a.b", L}, {"(x)", L}, {"$1*", L}},
	 "axb a.b (x) $1*",
	 "0@4-7 1@8-11 2@12-15"},
	{"utf-8 literal", {{"caf\xc3\xa9", L}}, "un caf\xc3\xa9 cafe", "0@3-8"},
	{"regex ends", {{"ab+", 0}}, "xabbb", "0@?-3 0@?-4 0@?-5"},
	{"regex class",
	 {{"[0-9]{3}-[0-9]{4}", 0}},
	 "call 555-1234 now",
	 "0@?-13"},
	{"regex caseless",
	 {{"sk-[a-z]{3}", CI}},
	 "SK-ABC sk-xyz",
	 "0@?-6 0@?-13"},
	{"regex utf-8 dot", {{"\xc3\xa9.x", U8}}, "\xc3\xa9\xc3\xa9x", "0@?-5"},
	{"mixed literal and regex",
	 {{"card", L | CI}, {"\\d{4}", 0}},
	 "Card 12345",
	 "0@0-4 1@?-9 1@?-10"},
	{"no match", {{"zzz", L}, {"q[0-9]", 0}}, "nothing here", ""},
	{"alternation in regex",
	 {{"(?:foo|foobar)", 0}},
	 "foobar",
	 "0@?-3 0@?-6"},
	{"anchors", {{"^ab", 0}, {"cd$", 0}}, "abcd ab cd", "0@?-2 1@?-10"},
	{"empty text", {{"a", L}}, "", ""},
};

static void run_case(imp_ctx_t *ctx, const case_t *c, imp_engine_t engine,
		     char *out, size_t outlen)
{
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_mpat_pattern_t pats[MAXPATS];
	size_t n = 0;
	for (; n < MAXPATS && c->pats[n].expr; n++)
		pats[n] = (imp_mpat_pattern_t){c->pats[n].expr,
					       strlen(c->pats[n].expr),
					       (unsigned)n, c->pats[n].flags};
	imp_mpat_t *m = NULL;
	char err[256];
	size_t bad = 99;
	int rc = imp_mpat_compile(a, pats, n, engine, &m, &bad, err,
				  sizeof(err));
	CHECK_MSG(rc == IMP_OK, "%s: compile rc %d (%s)", c->name, rc, err);
	out[0] = '\0';
	if (rc == IMP_OK) {
		CHECK_INT(imp_mpat_engine(m), engine);
		imp_mpat_scratch_t *s = imp_mpat_scratch_new(ctx);
		CHECK_INT(imp_mpat_scratch_prepare(s, m), IMP_OK);
		hits_t hs = {.n = 0};
		rc = imp_mpat_scan(m, s, c->text, strlen(c->text), collect,
				   &hs);
		CHECK_INT(rc, IMP_OK);
		hits_str(&hs, out, outlen);
		imp_mpat_scratch_free(s);
	}
	imp_arena_free(a);
}

static void test_table(imp_ctx_t *ctx)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		const case_t *c = &cases[i];
		char pc[1024], vs[1024];
		run_case(ctx, c, IMP_ENGINE_PCRE2, pc, sizeof(pc));
		CHECK_MSG(strcmp(pc, c->expect) == 0,
			  "%s [pcre2]: got \"%s\", expected \"%s\"", c->name,
			  pc, c->expect);
		if (!imp_mpat_vectorscan_available())
			continue;
		run_case(ctx, c, IMP_ENGINE_VECTORSCAN, vs, sizeof(vs));
		CHECK_MSG(strcmp(vs, c->expect) == 0,
			  "%s [vectorscan]: got \"%s\", expected \"%s\"",
			  c->name, vs, c->expect);
		CHECK_MSG(strcmp(vs, pc) == 0, "%s: engines differ", c->name);
	}
}

static void test_errors(imp_ctx_t *ctx)
{
	static const struct {
		pat_t pats[3];
		size_t bad;
	} bad[] = {
		{{{"ok", L}, {"fine[0-9]", 0}, {"broken(", 0}}, 2},
		{{{"[z-a]", 0}, {"ok", L}}, 0},
		{{{"ok", L}, {"a*", 0}}, 1}, /* matches the empty string */
		{{{"ok", L}, {"", L}}, 1},   /* empty literal */
		{{{"x(?C{0})y", 0}}, 0},     /* callouts would forge hits */
	};
	imp_engine_t engines[] = {IMP_ENGINE_PCRE2, IMP_ENGINE_VECTORSCAN};
	for (size_t e = 0; e < 2; e++) {
		if (engines[e] == IMP_ENGINE_VECTORSCAN &&
		    !imp_mpat_vectorscan_available())
			continue;
		for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
			imp_arena_t *a = imp_arena_new(ctx, 0);
			imp_mpat_pattern_t pats[3];
			size_t n = 0;
			for (; n < 3 && bad[i].pats[n].expr; n++)
				pats[n] = (imp_mpat_pattern_t){
					bad[i].pats[n].expr,
					strlen(bad[i].pats[n].expr),
					(unsigned)(n + 10),
					bad[i].pats[n].flags};
			imp_mpat_t *m = NULL;
			char err[256] = "";
			size_t bi = 99;
			int rc = imp_mpat_compile(a, pats, n, engines[e], &m,
						  &bi, err, sizeof(err));
			CHECK_INT(rc, IMP_ERR_POLICY);
			CHECK_INT(bi, bad[i].bad);
			CHECK(m == NULL);
			char prefix[32];
			snprintf(prefix, sizeof(prefix),
				 "pattern %zu: ", bad[i].bad);
			CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0,
				  "err \"%s\"", err);
			imp_arena_free(a);
		}
	}
}

static void test_empty_and_stop(imp_ctx_t *ctx)
{
	imp_engine_t engines[] = {IMP_ENGINE_PCRE2, IMP_ENGINE_VECTORSCAN,
				  IMP_ENGINE_AUTO};
	for (size_t e = 0; e < 3; e++) {
		if (engines[e] == IMP_ENGINE_VECTORSCAN &&
		    !imp_mpat_vectorscan_available())
			continue;
		imp_arena_t *a = imp_arena_new(ctx, 0);
		imp_mpat_t *m = NULL;
		CHECK_INT(imp_mpat_compile(a, NULL, 0, engines[e], &m, NULL,
					   NULL, 0),
			  IMP_OK);
		CHECK(m != NULL);
		imp_mpat_scratch_t *s = imp_mpat_scratch_new(ctx);
		CHECK_INT(imp_mpat_scratch_prepare(s, m), IMP_OK);
		hits_t hs = {.n = 0};
		CHECK_INT(imp_mpat_scan(m, s, "anything", 8, collect, &hs),
			  IMP_OK);
		CHECK_INT(hs.n, 0);

		/* Early stop after the first match. */
		imp_mpat_pattern_t p = {"x", 1, 7, L};
		imp_mpat_t *m2 = NULL;
		CHECK_INT(imp_mpat_compile(a, &p, 1, engines[e], &m2, NULL,
					   NULL, 0),
			  IMP_OK);
		CHECK_INT(imp_mpat_scratch_prepare(s, m2), IMP_OK);
		hits_t st = {.n = 0, .stop_after = 1};
		CHECK_INT(imp_mpat_scan(m2, s, "xxxxx", 5, collect, &st),
			  IMP_OK);
		CHECK_INT(st.n, 1);
		CHECK_INT(st.h[0].id, 7);
		CHECK_INT(st.h[0].to, 1);
		imp_mpat_scratch_free(s);
		imp_arena_free(a);
	}
}

/* One scratch prepared for two dbs scans both; many literals split into
 * several PCRE2 alternations still report every one. */
static void test_big_set(imp_ctx_t *ctx)
{
	enum { N = 3000 };
	imp_engine_t engines[] = {IMP_ENGINE_PCRE2, IMP_ENGINE_VECTORSCAN};
	for (size_t e = 0; e < 2; e++) {
		if (engines[e] == IMP_ENGINE_VECTORSCAN &&
		    !imp_mpat_vectorscan_available())
			continue;
		imp_arena_t *a = imp_arena_new(ctx, 0);
		imp_mpat_pattern_t *pats = calloc(N, sizeof(*pats));
		char *words = calloc(N, 16);
		for (size_t i = 0; i < N; i++) {
			snprintf(words + i * 16, 16, "w%zuq", i);
			pats[i] = (imp_mpat_pattern_t){words + i * 16,
						       strlen(words + i * 16),
						       (unsigned)i, L};
		}
		imp_mpat_t *m = NULL, *m2 = NULL;
		CHECK_INT(imp_mpat_compile(a, pats, N, engines[e], &m, NULL,
					   NULL, 0),
			  IMP_OK);
		imp_mpat_pattern_t rx = {"z[0-9]+z", 8, 42, 0};
		CHECK_INT(imp_mpat_compile(a, &rx, 1, engines[e], &m2, NULL,
					   NULL, 0),
			  IMP_OK);
		imp_mpat_scratch_t *s = imp_mpat_scratch_new(ctx);
		CHECK_INT(imp_mpat_scratch_prepare(s, m), IMP_OK);
		CHECK_INT(imp_mpat_scratch_prepare(s, m2), IMP_OK);
		const char *text = "w0q w1500q w2999q z12z w3000q";
		hits_t hs = {.n = 0};
		CHECK_INT(imp_mpat_scan(m, s, text, strlen(text), collect, &hs),
			  IMP_OK);
		char buf[256];
		hits_str(&hs, buf, sizeof(buf));
		CHECK_STR(buf, "0@0-3 1500@4-10 2999@11-17");
		hits_t h2 = {.n = 0};
		CHECK_INT(
			imp_mpat_scan(m2, s, text, strlen(text), collect, &h2),
			IMP_OK);
		hits_str(&h2, buf, sizeof(buf));
		CHECK_STR(buf, "42@?-22");
		imp_mpat_scratch_free(s);
		free(pats);
		free(words);
		imp_arena_free(a);
	}
}

/* A pathological regex over a hostile text hits the PCRE2 match limit and
 * is reported as IMP_ERR_LIMIT, never as a silent pass. */
static void test_limit(imp_ctx_t *ctx)
{
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_mpat_pattern_t p = {"(a+)+$", 6, 1, 0};
	imp_mpat_t *m = NULL;
	CHECK_INT(
		imp_mpat_compile(a, &p, 1, IMP_ENGINE_PCRE2, &m, NULL, NULL, 0),
		IMP_OK);
	imp_mpat_scratch_t *s = imp_mpat_scratch_new(ctx);
	CHECK_INT(imp_mpat_scratch_prepare(s, m), IMP_OK);
	char text[64];
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = 'c';
	hits_t hs = {.n = 0};
	CHECK_INT(imp_mpat_scan(m, s, text, sizeof(text), collect, &hs),
		  IMP_ERR_LIMIT);
	imp_mpat_scratch_free(s);
	imp_arena_free(a);
}

int main(void)
{
	imp_ctx_t *ctx = NULL;
	if (imp_ctx_new(NULL, &ctx) != IMP_OK)
		return 2;
	test_table(ctx);
	test_errors(ctx);
	test_empty_and_stop(ctx);
	test_big_set(ctx);
	test_limit(ctx);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
