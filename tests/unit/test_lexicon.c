/*
 * test_lexicon.c -- word lists over the WORDS view: whole-word semantics
 * (the Scunthorpe problem), evasions, phrases, prefix and substring
 * entries, duplicates across lists, entry errors, and the same answers
 * from both engines.
 *
 * Each case lists the expected hits as "list:text" items (text is the
 * normalised span), sorted as the lexicon reports them, joined by ",".
 */
#include "check.h"
#include "lexicon.h"

#include <stdlib.h>

static const char *const profanity[] = {"ass",  "cock", "tit",  "hell", "sex",
					"dick", "fuck", "shit", "Hell", "a55"};
static const char *const solicitation[] = {"donate now", "Sponsor me",
					   "raffle ticket*"};
/* "scam" twice in one list, as a word and as a prefix: one hit */
static const char *const fraud[] = {"scam*", "wire transfer", "SCAM"};
static const char *const brands[] = {"acme"};
static const char *const insults[] = {"ass", "idiot"};
static const char *const cyrillic[] = {"\u0434\u0443\u0440\u0430\u043A"};

enum { L_PROF, L_SOLIC, L_FRAUD, L_BRANDS, L_INSULTS, L_CYR, L_COUNT };

static const imp_lexlist_t lists[L_COUNT] = {
	{"profanity", profanity, IMP_ARRAY_LEN(profanity), NULL, NULL, false},
	{"solicitation", solicitation, IMP_ARRAY_LEN(solicitation), NULL, NULL,
	 false},
	{"fraud", fraud, IMP_ARRAY_LEN(fraud), NULL, NULL, false},
	{"brands", brands, IMP_ARRAY_LEN(brands), NULL, NULL, true},
	{"insults", insults, IMP_ARRAY_LEN(insults), NULL, NULL, false},
	{"cyrillic", cyrillic, IMP_ARRAY_LEN(cyrillic), NULL, NULL, false},
};

typedef struct lex_case_s {
	const char *text;
	const char *want;
} lex_case_t;

static const lex_case_t cases[] = {
	/* Scunthorpe: innocent words that contain a listed one */
	{"assessment class bass passive assistant", ""},
	{"a cocktail for the peacock", ""},
	{"the title of the book", ""},
	{"hello from the shell", ""},
	{"Sussex and Essex", ""},
	{"Charles Dickens wrote it", ""},
	/* the listed words themselves */
	{"you ass", "profanity:ass,insults:ass"},
	{"Cock!", "profanity:cock"},
	{"tit for tat", "profanity:tit"},
	{"go to hell", "profanity:hell"},
	{"no sex please", "profanity:sex"},
	{"what a dick", "profanity:dick"},
	{"idiot", "insults:idiot"},
	/* evasions */
	{"F.U.C.K", "profanity:fuck"},
	{"fuuuck this", "profanity:fuck"},
	{"f u c k", "profanity:fuck"},
	{"sh1t", "profanity:shit"},
	{"$hit happens", "profanity:shit"},
	{"\uFF46\uFF55\uFF43\uFF4B", "profanity:fuck"},
	{"f\u200Buck", "profanity:fuck"},
	{"f\u00FCck", "profanity:fuck"},
	{"SHIIIIT", "profanity:shit"},
	{"@ss", "profanity:ass,insults:ass"},
	{"what the f*ck", ""},
	/* phrases across punctuation and extra spaces */
	{"donate   now!", "solicitation:donate now"},
	{"Donate-now", "solicitation:donate now"},
	{"please DONATE\tNOW.", "solicitation:donate now"},
	{"donate nowhere", ""},
	{"sponsor me", "solicitation:sponsor me"},
	{"buy a raffle tickets", "solicitation:raffle tickets"},
	{"send a WIRE  transfer", "fraud:wire transfer"},
	/* prefix entries check only the start; the hit runs to the end of
	 * the word, so redaction masks the whole word */
	{"scammers", "fraud:scammers"},
	{"a scam", "fraud:scam"},
	{"ascam", ""},
	{"Scamming, scams!", "fraud:scamming,fraud:scams"},
	{"sc4mm3rs and a scam", "fraud:scammers,fraud:scam"},
	/* '!' between letters is an 'i' (W5), elsewhere a separator */
	{"sh!t", "profanity:shit"},
	{"SH!T happens", "profanity:shit"},
	{"hello! shit!", "profanity:shit"},
	{"wow!! hell!", "profanity:hell"},
	{"tit!", "profanity:tit"},
	{"!tit", "profanity:tit"},
	{"t!t!", "profanity:tit"},
	{"idiot!!ass", "insults:idiot,profanity:ass,insults:ass"},
	{"sh|t", ""},
	/* substring lists skip both checks */
	{"acmecorp and megaacme", "brands:acme,brands:acme"},
	/* several hits in order */
	{"hell, shit and a scam", "profanity:hell,profanity:shit,fraud:scam"},
	/* non-Latin entries, case folded */
	{"\u0422\u044B \u0414\u0423\u0420\u0410\u041A", "cyrillic:"
							"\u0434\u0443\u0440"
							"\u0430\u043A"},
	{"\u0434\u0443\u0440\u0430\u043A\u0438", ""},
	{"", ""},
};

/* Renders hits as "list:text,..." in the scratch arena. */
static const char *render(imp_arena_t *a, const imp_ntext_t *w,
			  const imp_lexhit_t *h, size_t n,
			  const imp_lexlist_t *ls)
{
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	imp_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++) {
		if (i)
			imp_buf_putc(&b, ',');
		imp_buf_printf(&b, "%s:%.*s", ls[h[i].list].name,
			       (int)(h[i].end - h[i].start), w->s + h[i].start);
	}
	return b.oom ? "(oom)" : b.data;
}

/* Normalises text, scans it and renders the hits. */
static const char *scan(const imp_lexicon_t *lx, imp_mpat_scratch_t *s,
			imp_arena_t *a, const char *text)
{
	imp_ntext_t w;
	if (imp_norm(a, text, strlen(text), IMP_NORM_WORDS, &w) != IMP_OK)
		return "(norm failed)";
	imp_lexhit_t *hits = NULL;
	size_t n = 0;
	int rc = imp_lexicon_scan(lx, s, a, &w, &hits, &n);
	if (rc != IMP_OK)
		return imp_arena_printf(a, "(scan rc %d)", rc);
	return render(a, &w, hits, n, lists);
}

static imp_lexicon_t *build(imp_arena_t *a, imp_engine_t engine,
			    imp_mpat_scratch_t *s)
{
	imp_lexicon_t *lx = NULL;
	imp_errors_t *errs = imp_errors_new(imp_arena_ctx(a), 10);
	CHECK_INT(imp_lexicon_build(a, lists, L_COUNT, engine, errs, &lx),
		  IMP_OK);
	CHECK_INT(imp_errors_count(errs), 0);
	imp_errors_free(errs);
	if (lx) {
		CHECK_INT(imp_mpat_engine(imp_lexicon_mpat(lx)), engine);
		CHECK_INT(imp_mpat_scratch_prepare(s, imp_lexicon_mpat(lx)),
			  IMP_OK);
	}
	return lx;
}

static void test_cases(imp_arena_t *pa, imp_arena_t *scratch,
		       imp_mpat_scratch_t *s)
{
	imp_lexicon_t *pc = build(pa, IMP_ENGINE_PCRE2, s);
	imp_lexicon_t *vs = NULL;
	bool have_vs = imp_mpat_vectorscan_available();
	if (have_vs)
		vs = build(pa, IMP_ENGINE_VECTORSCAN, s);
	else
		fprintf(stderr, "note: vectorscan unavailable, PCRE2 only\n");
	if (!pc || (have_vs && !vs))
		return;

	/* "ass", "a55" and "Ass" in two lists are one pattern; "Hell" and
	 * "hell" too: 8 + 3 + 2 + 1 + 1 (idiot) + 1 distinct entries. */
	CHECK_INT(imp_lexicon_words(pc), 16);

	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		const char *got = scan(pc, s, scratch, cases[i].text);
		CHECK_MSG(strcmp(got, cases[i].want) == 0,
			  "PCRE2 \"%s\": got \"%s\", want \"%s\"",
			  cases[i].text, got, cases[i].want);
		if (vs) {
			const char *got2 = scan(vs, s, scratch, cases[i].text);
			CHECK_MSG(strcmp(got2, got) == 0,
				  "engines differ on \"%s\": \"%s\" vs \"%s\"",
				  cases[i].text, got2, got);
		}
		imp_arena_reset(scratch);
	}

	/* Hits are appended to what the caller already has. */
	imp_ntext_t w;
	const char *t = "shit and more shit";
	CHECK_INT(imp_norm(scratch, t, strlen(t), IMP_NORM_WORDS, &w), IMP_OK);
	imp_lexhit_t *hits = NULL;
	size_t n = 0;
	CHECK_INT(imp_lexicon_scan(pc, s, scratch, &w, &hits, &n), IMP_OK);
	CHECK_INT(n, 2);
	CHECK_INT(imp_lexicon_scan(vs ? vs : pc, s, scratch, &w, &hits, &n),
		  IMP_OK);
	CHECK_INT(n, 4);
	if (n == 4) {
		CHECK(hits[0].start == 0 && hits[0].end == 4);
		CHECK(hits[1].start == 14 && hits[1].end == 18);
		CHECK(memcmp(&hits[0], &hits[2], 2 * sizeof(*hits)) == 0);
		CHECK_INT(hits[0].list, L_PROF);
	}
	imp_arena_reset(scratch);
}

static void test_errors(imp_arena_t *pa)
{
	static const char *const bad[] = {"fine", "!!!", "*", "\U0001F642",
					  "ok*"};
	static const unsigned lines[] = {3, 4, 5, 6, 7};
	imp_lexlist_t l = {"badlist",       bad,  IMP_ARRAY_LEN(bad), lines,
			   "lists/bad.txt", false};
	imp_errors_t *errs = imp_errors_new(imp_arena_ctx(pa), 10);
	imp_lexicon_t *lx = (imp_lexicon_t *)&l; /* must be reset to NULL */
	CHECK_INT(imp_lexicon_build(pa, &l, 1, IMP_ENGINE_PCRE2, errs, &lx),
		  IMP_ERR_POLICY);
	CHECK(lx == NULL);
	CHECK_INT(imp_errors_count(errs), 3);
	static const char *const want_pos[] = {
		"lists/bad.txt:4: ", "lists/bad.txt:5: ", "lists/bad.txt:6: "};
	for (size_t i = 0; i < imp_errors_count(errs) && i < 3; i++) {
		char buf[256];
		const imp_error_t *e = imp_errors_get(errs, i);
		imp_error_format(e, buf, sizeof(buf));
		CHECK_MSG(strncmp(buf, want_pos[i], strlen(want_pos[i])) == 0,
			  "error %zu is \"%s\"", i, buf);
		CHECK(strstr(buf, "badlist") != NULL);
		CHECK_INT(e->code, IMP_ERR_POLICY);
	}
	imp_errors_free(errs);

	/* No entries at all is a valid, silent lexicon. */
	lx = NULL;
	CHECK_INT(imp_lexicon_build(pa, NULL, 0, IMP_ENGINE_PCRE2, NULL, &lx),
		  IMP_OK);
	CHECK(lx != NULL);
	CHECK_INT(imp_lexicon_words(lx), 0);
}

/* 2,500 generated words plus the real ones: the planted words hit, the
 * words around them do not, and both engines agree. */
static void test_large(imp_arena_t *pa, imp_arena_t *scratch,
		       imp_mpat_scratch_t *s)
{
	enum { N = 2500 };
	const char **words = imp_arena_calloc(pa, N, sizeof(*words));
	CHECK(words != NULL);
	if (!words)
		return;
	for (unsigned i = 0; i < N; i++) {
		/* Consonants between fixed vowels: no digits for leetspeak
		 * and never three equal letters to squeeze, so all differ. */
		static const char cons[] = "bcdfghjklmnprstvwz";
		char w[8];
		unsigned v = i;
		for (int k = 0; k < 3; k++) {
			w[2 * k] = cons[v % 18];
			w[2 * k + 1] = "aey"[k];
			v /= 18;
		}
		w[6] = '\0';
		words[i] = imp_arena_strdup(pa, w);
	}
	imp_lexlist_t big = {"big", words, N, NULL, NULL, false};
	imp_engine_t engines[2] = {IMP_ENGINE_PCRE2, IMP_ENGINE_VECTORSCAN};
	const char *first = NULL;
	for (int e = 0; e < 2; e++) {
		if (engines[e] == IMP_ENGINE_VECTORSCAN &&
		    !imp_mpat_vectorscan_available())
			continue;
		imp_lexicon_t *lx = NULL;
		CHECK_INT(imp_lexicon_build(pa, &big, 1, engines[e], NULL, &lx),
			  IMP_OK);
		if (!lx)
			continue;
		CHECK_INT(imp_lexicon_words(lx), N);
		CHECK_INT(imp_mpat_scratch_prepare(s, imp_lexicon_mpat(lx)),
			  IMP_OK);
		char *text =
			imp_arena_printf(scratch, "x %s y %s%s z %s", words[7],
					 words[42], "x", words[N - 1]);
		imp_ntext_t w;
		CHECK_INT(imp_norm(scratch, text, strlen(text), IMP_NORM_WORDS,
				   &w),
			  IMP_OK);
		imp_lexhit_t *hits = NULL;
		size_t n = 0;
		CHECK_INT(imp_lexicon_scan(lx, s, scratch, &w, &hits, &n),
			  IMP_OK);
		/* words[42] is glued to "x": not a whole word */
		CHECK_INT(n, 2);
		const char *got = imp_arena_strdup(
			pa, render(scratch, &w, hits, n, &big));
		const char *want = imp_arena_printf(scratch, "big:%s,big:%s",
						    words[7], words[N - 1]);
		CHECK_STR(got, want);
		if (first)
			CHECK_STR(got, first);
		first = got;
		imp_arena_reset(scratch);
	}
}

int main(void)
{
	imp_ctx_t *ctx = NULL;
	CHECK_INT(imp_ctx_new(NULL, &ctx), IMP_OK);
	if (!ctx)
		return CHECK_DONE();
	imp_arena_t *pa = imp_arena_new(ctx, 0);
	imp_arena_t *scratch = imp_arena_new(ctx, 0);
	imp_mpat_scratch_t *s = imp_mpat_scratch_new(ctx);
	CHECK(pa && scratch && s);
	if (pa && scratch && s) {
		test_cases(pa, scratch, s);
		test_errors(pa);
		test_large(pa, scratch, s);
	}
	imp_mpat_scratch_free(s);
	if (scratch)
		imp_arena_free(scratch);
	if (pa)
		imp_arena_free(pa);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
