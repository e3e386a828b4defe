/*
 * bench_eval.c -- the evaluation benchmark of libimpolicy.
 *
 * Purpose: print how fast the host-facing path (imp_eval_run() with a
 * borrowed verdict on a view holding the raw stanza XML, then
 * imp_verdict_clear()) is on
 *  (a) the sample policy contrib/policies/acme.yaml and
 *  (b) a reference large policy of 2,000 words + 50 custom detectors that
 *      this program generates into a temporary directory at start,
 * over a corpus of chat stanzas generated from a fixed seed.  Alongside it
 * measures a naive baseline (one PCRE2-JIT regex per word and per detector
 * pattern, every regex run over every body), the Vectorscan engine against
 * the PCRE2 engine, and evaluation latency while another thread reloads and
 * swaps the policy through an imp_slot_t.
 *
 * Invariants: everything generated (words, detectors, corpus) depends only
 * on the fixed seed and --messages, so two runs judge the same bytes.  The
 * figures are informational: goals are printed as met / not met, and the
 * exit status is non-zero only when a policy failed to load, an evaluation
 * returned an error, or a well-formed stanza was judged malformed.
 *
 * Threading: the main thread does everything except the reload experiment,
 * where one extra thread evaluates continuously with its own imp_eval_t
 * while the main thread loads policies and swaps them into the slot.
 *
 * Reports: a readable table on stdout, then one line per figure in the form
 * "bench: NAME VALUE UNIT" for scripts (grep '^bench:').  Problems go to
 * stderr.  See tests/bench/README.md for what each figure means.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "impolicy.h"

#define BENCH_PROG "bench_eval"
#define BENCH_FAIL_TAG "FAILED: "
#define BENCH_GOAL_W1 34
#define BENCH_GOAL_W2 18
#define BENCH_GOAL_W3 16
#include "bench_util.h"

/* ---- sizes and fixed parameters ------------------------------------- */

#define BENCH_SEED 0x1d5c0ffee2026ULL
#define BENCH_N_WORDS 2000
#define BENCH_N_LISTS 4 /* the words are split evenly over these */
#define BENCH_N_DETECTORS 50
#define BENCH_DEFAULT_MESSAGES 100000
#define BENCH_QUICK_MESSAGES 20000
/* Simulated time of the first message (Wed 2026-11-25 13:00 UTC, 08:00 in
 * New York) and the spacing of messages: deterministic schedules. */
#define BENCH_T0_US 1795611600000000LL
#define BENCH_STEP_US 10000LL

/* ---- small helpers ------------------------------------------------------- */

static char *bench_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(bench_xmalloc(n), s, n);
}

#define BENCH_NOW() bench_ns(CLOCK_MONOTONIC)
#define BENCH_CPU() bench_ns(CLOCK_THREAD_CPUTIME_ID)

static uint32_t bench_rng_below(bench_rng_t *r, uint32_t n)
{
	return (uint32_t)(((bench_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* A growable byte buffer; offsets into it stay valid across growth. */
typedef struct bench_buf_s {
	char *p;
	size_t len, cap;
} bench_buf_t;

static void bench_buf_grow(bench_buf_t *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->p = bench_xrealloc(b->p, cap);
	b->cap = cap;
}

static void bench_buf_add(bench_buf_t *b, const char *s, size_t n)
{
	bench_buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void bench_buf_puts(bench_buf_t *b, const char *s)
{
	bench_buf_add(b, s, strlen(s));
}

static void bench_buf_printf(bench_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		bench_die("vsnprintf failed");
	bench_buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void bench_write_file(const char *path, const bench_buf_t *b)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0)
		bench_die("cannot write %s: %s", path, strerror(errno));
}

static int bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile of n samples (sorted in place). */
static double bench_quantile(uint32_t *v, size_t n, double q)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, bench_cmp_u32);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* ---- vocabulary: the English the corpus is made of --------------------- */

/* Plain chat English.  No entry may be a generated pseudo-word, a phrase
 * word below, or look like a detector hit; bench_words_make() checks the
 * first, the others hold by construction (lower case, no digits). */
static const char *const bench_vocab[] = {
	"hi",       "hey",       "thanks",   "ok",        "sure",
	"yes",      "no",        "maybe",    "the",       "a",
	"an",       "and",       "or",       "but",       "to",
	"of",       "in",        "on",       "for",       "with",
	"at",       "by",        "from",     "about",     "is",
	"are",      "was",       "be",       "will",      "can",
	"could",    "would",     "should",   "do",        "did",
	"have",     "has",       "had",      "get",       "got",
	"send",     "sent",      "check",    "checked",   "look",
	"see",      "think",     "know",     "need",      "want",
	"let",      "me",        "you",      "we",        "they",
	"it",       "this",      "that",     "these",     "those",
	"my",       "your",      "our",      "their",     "i",
	"he",       "she",       "meeting",  "call",      "today",
	"tomorrow", "yesterday", "later",    "now",       "soon",
	"morning",  "afternoon", "week",     "friday",    "monday",
	"report",   "draft",     "review",   "slides",    "deck",
	"numbers",  "budget",    "team",     "project",   "update",
	"status",   "deadline",  "customer", "order",     "account",
	"invoice",  "ticket",    "case",     "reference", "employee",
	"badge",    "build",     "release",  "server",    "test",
	"fix",      "bug",       "issue",    "branch",    "merge",
	"deploy",   "doc",       "notes",    "agenda",    "room",
	"floor",    "office",    "remote",   "home",      "coffee",
	"quick",    "question",  "answer",   "good",      "great",
	"fine",     "late",      "early",    "busy",      "free",
	"done",     "ready",     "again",    "please",    "just",
	"still",    "already",   "also",     "very",      "really",
	"all",      "some",      "any",      "more",      "less",
	"next",     "last",      "first",    "new",       "old",
	"same",     "other",     "before",   "after",     "when",
	"where",    "what",      "why",      "how",       "who",
	"here",     "there",     "up",       "down",      "out",
	"over",     "back",      "R&D",      "Q&A",       "it's",
	"don't",    "can't",     "I'll",     "we're",     "let's",
};

/* Context words for the custom detectors (all in the vocabulary, so the
 * corpus also holds them without a hit nearby). */
static const char *const bench_context_words[] = {
	"account",  "invoice", "ticket", "case",     "reference",
	"employee", "badge",   "order",  "customer", "project",
};

/* A few real-looking phrases for the phrase list; none of their words are
 * in the vocabulary, so they only occur where the generator plants them. */
static const char *const bench_phrases[] = {
	"donate now",         "sponsor me",       "raffle tickets",
	"crypto giveaway",    "project nightjar", "bluebird launch",
	"wire the funds",     "vote for mayor",   "join my church",
	"limited time offer",
};
#define BENCH_N_PHRASES (sizeof bench_phrases / sizeof bench_phrases[0])

/* ---- generated pseudo-words -------------------------------------------- */

/* Pronounceable fake words: 2-3 syllables of onset + vowel + optional coda.
 * No doubled letters, so normalisation that squeezes stretched letters
 * cannot make two distinct entries equal. */
static const char *const bench_onsets[] = {
	"b",  "br", "d", "dr", "f",  "fl", "g",  "gr", "k",
	"kr", "l",  "m", "n",  "p",  "pl", "r",  "s",  "st",
	"t",  "tr", "v", "z",  "sh", "ch", "th", "j",
};
static const char *const bench_vowels[] = {"a", "e",  "i",  "o",
					   "u", "ai", "ou", "ei"};
static const char *const bench_codas[] = {"",  "",  "",  "n", "r",
					  "l", "k", "s", "x", "m"};

#define BENCH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool bench_has_double(const char *w)
{
	for (; w[0] && w[1]; w++)
		if (w[0] == w[1])
			return true;
	return false;
}

static uint64_t bench_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Open-addressing string set, only for de-duplication at start. */
typedef struct bench_set_s {
	const char **slot;
	size_t cap;
} bench_set_t;

static bool bench_set_add(bench_set_t *s, const char *w)
{
	size_t i = (size_t)bench_hash(w) & (s->cap - 1);

	while (s->slot[i]) {
		if (strcmp(s->slot[i], w) == 0)
			return false;
		i = (i + 1) & (s->cap - 1);
	}
	s->slot[i] = w;
	return true;
}

static char **bench_words_make(bench_rng_t *r, size_t n)
{
	bench_set_t set = {.cap = 8192};
	char **words = bench_xmalloc(n * sizeof *words);
	size_t have = 0;

	set.slot = calloc(set.cap, sizeof *set.slot);
	if (!set.slot)
		bench_die("out of memory");
	/* Every vocabulary and phrase word is taken first, so no generated
	 * word can equal one. */
	for (size_t i = 0; i < BENCH_ARRAY_LEN(bench_vocab); i++)
		bench_set_add(&set, bench_vocab[i]);
	while (have < n) {
		char w[32] = "";
		unsigned syl = 2 + bench_rng_below(r, 2);

		for (unsigned k = 0; k < syl; k++) {
			strcat(w, bench_onsets[bench_rng_below(
					  r, BENCH_ARRAY_LEN(bench_onsets))]);
			strcat(w, bench_vowels[bench_rng_below(
					  r, BENCH_ARRAY_LEN(bench_vowels))]);
			if (k + 1 == syl || bench_rng_below(r, 3) == 0)
				strcat(w, bench_codas[bench_rng_below(
						  r, BENCH_ARRAY_LEN(
							     bench_codas))]);
		}
		if (strlen(w) < 5 || bench_has_double(w))
			continue;
		char *dup = bench_xstrdup(w);
		if (!bench_set_add(&set, dup)) {
			free(dup);
			continue;
		}
		words[have++] = dup;
	}
	free(set.slot);
	return words;
}

/* ---- generated detectors -------------------------------------------------- */

/* Shapes of custom identifiers.  Each has the pattern written into the
 * policy (PCRE2 syntax, single-quoted YAML) and a generator of matching
 * text for the corpus. */
enum {
	BENCH_SHAPE_AA6,   /* PFX-[A-Z]{2}\d{6}   */
	BENCH_SHAPE_6,     /* PFX-\d{6}           */
	BENCH_SHAPE_4AAA,  /* PFX\d{4}-[A-Z]{3}   */
	BENCH_SHAPE_HEX8,  /* PFX-[0-9A-F]{8}     */
	BENCH_SHAPE_SLASH, /* PFX/\d{3}-\d{4}     */
	BENCH_N_SHAPES
};

typedef struct bench_det_s {
	char name[16];
	char prefix[8];
	int shape;
	char pattern[64];
	const char *ctx[2];
} bench_det_t;

static void bench_dets_make(bench_rng_t *r, bench_det_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(d[i].name, sizeof d[i].name, "det_%02zu", i);
		d[i].shape = (int)(i % BENCH_N_SHAPES);
		if (i == 0) {
			strcpy(d[i].prefix, "ACME");
		} else {
			bool dup;
			do {
				unsigned len = 3 + bench_rng_below(r, 2);
				for (unsigned k = 0; k < len; k++)
					d[i].prefix[k] =
						(char)('A' +
						       bench_rng_below(r, 26));
				d[i].prefix[len] = '\0';
				dup = false;
				for (size_t j = 0; j < i; j++)
					dup |= strcmp(d[j].prefix,
						      d[i].prefix) == 0;
			} while (dup);
		}
		static const char *const fmt[BENCH_N_SHAPES] = {
			"%s-[A-Z]{2}\\d{6}", "%s-\\d{6}",
			"%s\\d{4}-[A-Z]{3}", "%s-[0-9A-F]{8}",
			"%s/\\d{3}-\\d{4}",
		};
		snprintf(d[i].pattern, sizeof d[i].pattern, fmt[d[i].shape],
			 d[i].prefix);
		size_t nc = BENCH_ARRAY_LEN(bench_context_words);
		d[i].ctx[0] = bench_context_words[i % nc];
		d[i].ctx[1] = bench_context_words[(i * 7 + 3) % nc];
		if (d[i].ctx[1] == d[i].ctx[0])
			d[i].ctx[1] = bench_context_words[(i + 1) % nc];
	}
}

static void bench_det_instance(bench_rng_t *r, const bench_det_t *d,
			       bench_buf_t *out)
{
	char tail[32];
	unsigned k;

	switch (d->shape) {
	case BENCH_SHAPE_AA6:
		snprintf(tail, sizeof tail, "-%c%c%06u",
			 'A' + bench_rng_below(r, 26),
			 'A' + bench_rng_below(r, 26),
			 bench_rng_below(r, 1000000));
		break;
	case BENCH_SHAPE_6:
		snprintf(tail, sizeof tail, "-%06u",
			 bench_rng_below(r, 1000000));
		break;
	case BENCH_SHAPE_4AAA:
		snprintf(tail, sizeof tail, "%04u-%c%c%c",
			 bench_rng_below(r, 10000),
			 'A' + bench_rng_below(r, 26),
			 'A' + bench_rng_below(r, 26),
			 'A' + bench_rng_below(r, 26));
		break;
	case BENCH_SHAPE_HEX8:
		tail[0] = '-';
		for (k = 0; k < 8; k++)
			tail[1 + k] =
				"0123456789ABCDEF"[bench_rng_below(r, 16)];
		tail[9] = '\0';
		break;
	default:
		snprintf(tail, sizeof tail, "/%03u-%04u",
			 bench_rng_below(r, 1000), bench_rng_below(r, 10000));
		break;
	}
	bench_buf_puts(out, d->prefix);
	bench_buf_puts(out, tail);
}

/* ---- the generated large policy -------------------------------------- */

typedef struct bench_gen_s {
	char dir[64];
	char path[128];     /* the main policy file */
	char lists[2][128]; /* the list files it references */
	char listdir[96];
	char **words;
	bench_det_t dets[BENCH_N_DETECTORS];
} bench_gen_t;

static void bench_yaml_words(bench_buf_t *y, const char *key, char *const *w,
			     size_t n)
{
	bench_buf_printf(y, "    %s:\n", key);
	for (size_t i = 0; i < n; i++)
		bench_buf_printf(y, "      - \"%s\"\n", w[i]);
}

static void bench_yaml_dets(bench_buf_t *y, const bench_det_t *d, size_t a,
			    size_t b)
{
	bench_buf_puts(y, "[");
	for (size_t i = a; i < b; i++)
		bench_buf_printf(y, "%s%s", i > a ? ", " : "", d[i].name);
	bench_buf_puts(y, "]");
}

/* The generated directory is removed at exit, also when bench_die()
 * ends the run early (atexit handlers cannot take an argument). */
static const bench_gen_t *bench_gen_to_clean;

static void bench_gen_cleanup(void)
{
	const bench_gen_t *g = bench_gen_to_clean;

	if (!g)
		return;
	for (int k = 0; k < 2; k++)
		if (g->lists[k][0])
			unlink(g->lists[k]);
	if (g->listdir[0])
		rmdir(g->listdir);
	if (g->path[0])
		unlink(g->path);
	rmdir(g->dir);
	bench_gen_to_clean = NULL;
}

/* Writes DIR/large.yaml and DIR/lists/bench-{c,d}.txt.  Half the words are
 * inline and half in list files, as real policies mix both. */
static void bench_gen_policy(bench_gen_t *g, bench_rng_t *r, bool keep)
{
	bench_buf_t y = {0}, f = {0};
	const size_t per = BENCH_N_WORDS / BENCH_N_LISTS;

	strcpy(g->dir, "/tmp/bench_eval.XXXXXX");
	if (!mkdtemp(g->dir))
		bench_die("mkdtemp: %s", strerror(errno));
	if (!keep) {
		bench_gen_to_clean = g;
		atexit(bench_gen_cleanup);
	}
	snprintf(g->listdir, sizeof g->listdir, "%s/lists", g->dir);
	if (mkdir(g->listdir, 0700) != 0)
		bench_die("mkdir %s: %s", g->listdir, strerror(errno));
	snprintf(g->path, sizeof g->path, "%s/large.yaml", g->dir);
	g->words = bench_words_make(r, BENCH_N_WORDS);
	bench_dets_make(r, g->dets, BENCH_N_DETECTORS);

	for (int k = 0; k < 2; k++) {
		f.len = 0;
		bench_buf_printf(&f, "# generated by bench_eval: list %c\n",
				 'c' + k);
		for (size_t i = 0; i < per; i++)
			bench_buf_printf(&f, "%s\n",
					 g->words[(size_t)(2 + k) * per + i]);
		snprintf(g->lists[k], sizeof g->lists[k],
			 "%s/lists/bench-%c.txt", g->dir, 'c' + k);
		bench_write_file(g->lists[k], &f);
	}

	bench_buf_puts(&y,
		       "# Generated by tests/bench/bench_eval.c: the reference "
		       "large policy\n"
		       "# (2,000 pseudo-words in 4 lists, 10 phrases, 50 "
		       "custom detectors).\n"
		       "policy:\n"
		       "  name: \"Bench reference policy\"\n"
		       "  version: \"bench-1\"\n"
		       "  timezone: UTC\n"
		       "  local_domains: [acme.example]\n"
		       "lists:\n"
		       "  bench_a:\n"
		       "    categories: [profanity]\n");
	bench_yaml_words(&y, "words", g->words, per);
	bench_buf_puts(&y, "  bench_b:\n"
			   "    categories: [slang]\n");
	bench_yaml_words(&y, "words", g->words + per, per);
	bench_buf_puts(&y, "  bench_c:\n"
			   "    categories: [client_names]\n"
			   "    file: lists/bench-c.txt\n"
			   "  bench_d:\n"
			   "    categories: [codenames]\n"
			   "    file: lists/bench-d.txt\n"
			   "  bench_phrases:\n"
			   "    categories: [solicitation]\n"
			   "    phrases:\n");
	for (size_t i = 0; i < BENCH_N_PHRASES; i++)
		bench_buf_printf(&y, "      - \"%s\"\n", bench_phrases[i]);

	bench_buf_puts(&y, "detectors:\n");
	for (size_t i = 0; i < BENCH_N_DETECTORS; i++)
		bench_buf_printf(&y,
				 "  %s:\n"
				 "    pattern: '%s'\n"
				 "    validator: none\n"
				 "    context: [%s, %s]\n"
				 "    window: 40\n"
				 "    confidence: 60\n",
				 g->dets[i].name, g->dets[i].pattern,
				 g->dets[i].ctx[0], g->dets[i].ctx[1]);

	bench_buf_puts(&y, "rules:\n"
			   "  - id: bench.language\n"
			   "    section: \"2. Acceptable Use\"\n"
			   "    when: { kind: message, words: [bench_a, "
			   "bench_b] }\n"
			   "    action: redact\n"
			   "  - id: bench.client-names\n"
			   "    section: \"3. Confidentiality\"\n"
			   "    when: { words: [bench_c] }\n"
			   "    action: flag\n"
			   "  - id: bench.codenames-outbound\n"
			   "    section: \"3. Confidentiality\"\n"
			   "    when: { direction: outbound, category: "
			   "[codenames] }\n"
			   "    action: reject\n"
			   "  - id: bench.codenames\n"
			   "    when: { category: [codenames] }\n"
			   "    action: flag\n"
			   "  - id: bench.solicitation\n"
			   "    section: \"6. Solicitation\"\n"
			   "    when: { kind: message, category: "
			   "[solicitation] }\n"
			   "    action: flag\n"
			   "  - id: bench.internal-ids\n"
			   "    section: \"3. Confidentiality\"\n"
			   "    when: { kind: message, detect: ");
	bench_yaml_dets(&y, g->dets, 0, BENCH_N_DETECTORS / 2);
	bench_buf_puts(&y, " }\n"
			   "    action: reject\n"
			   "    notice: \"Internal identifiers may not be "
			   "sent over IM.\"\n"
			   "  - id: bench.internal-ids-low\n"
			   "    when: { detect: { any: ");
	bench_yaml_dets(&y, g->dets, BENCH_N_DETECTORS / 2, BENCH_N_DETECTORS);
	bench_buf_puts(&y, ", confidence: 50 } }\n"
			   "    action: flag\n");
	bench_write_file(g->path, &y);
	free(y.p);
	free(f.p);
}

/* ---- the corpus ------------------------------------------------------------ */

enum {
	BENCH_PLANT_WORD = 1, /* a listed word or phrase */
	BENCH_PLANT_DET = 2,  /* a custom-detector identifier */
};

typedef struct bench_msg_s {
	size_t xml_off, body_off, jid_off; /* jid_off: SIZE_MAX for none */
	uint32_t xml_len, body_len;
	uint8_t origin; /* imp_origin_t */
	uint8_t planted;
	uint8_t is_long;
} bench_msg_t;

typedef struct bench_corpus_s {
	bench_buf_t data; /* XML, bodies, JIDs, each NUL-terminated */
	bench_msg_t *msg;
	size_t n;
	uint32_t *shorts, *longs; /* message indexes */
	size_t n_short, n_long;
	uint64_t short_bytes, long_bytes; /* body bytes */
	size_t n_planted_word, n_planted_det, n_planted;
} bench_corpus_t;

static void bench_xml_escape(bench_buf_t *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			bench_buf_puts(b, "&amp;");
			break;
		case '<':
			bench_buf_puts(b, "&lt;");
			break;
		case '>':
			bench_buf_puts(b, "&gt;");
			break;
		default:
			bench_buf_add(b, s + i, 1);
		}
	}
}

/* One body of about target bytes of chat English, with the planted
 * evidence at a random word position. */
static void bench_body(bench_rng_t *r, const bench_gen_t *g, size_t target,
		       unsigned plant, bench_buf_t *out)
{
	size_t start = out->len, words = 0;
	size_t plant_at = 1 + bench_rng_below(r, (uint32_t)(target / 6 + 1));
	bool cap = true;

	while (out->len - start < target || plant) {
		/* The planted evidence must land even when the text is
		 * already long enough: it becomes the next word. */
		if (out->len - start >= target)
			plant_at = words;
		if (words)
			bench_buf_puts(out, " ");
		if (words == plant_at && (plant & BENCH_PLANT_WORD)) {
			if (bench_rng_below(r, 10) == 0)
				bench_buf_puts(out,
					       bench_phrases[bench_rng_below(
						       r, BENCH_N_PHRASES)]);
			else
				bench_buf_puts(out, g->words[bench_rng_below(
							    r, BENCH_N_WORDS)]);
			plant &= ~(unsigned)BENCH_PLANT_WORD;
		} else if (words == plant_at && (plant & BENCH_PLANT_DET)) {
			const bench_det_t *d =
				&g->dets[bench_rng_below(r, BENCH_N_DETECTORS)];
			if (bench_rng_below(r, 2))
				bench_buf_printf(out, "%s ", d->ctx[0]);
			bench_det_instance(r, d, out);
			plant &= ~(unsigned)BENCH_PLANT_DET;
		} else {
			const char *w = bench_vocab[bench_rng_below(
				r, BENCH_ARRAY_LEN(bench_vocab))];
			bench_buf_puts(out, w);
			if (cap && out->p[out->len - strlen(w)] >= 'a' &&
			    out->p[out->len - strlen(w)] <= 'z')
				out->p[out->len - strlen(w)] -= 'a' - 'A';
		}
		cap = false;
		words++;
		/* Some punctuation, sentence breaks in long bodies. */
		unsigned p = bench_rng_below(r, 40);
		if (p == 0) {
			bench_buf_puts(out, ",");
		} else if (p == 1 || (p < 4 && target > 1000)) {
			bench_buf_puts(out, ".");
			cap = true;
		} else if (p == 4) {
			bench_buf_puts(out, "?");
			cap = true;
		}
	}
}

static void bench_corpus_make(bench_corpus_t *c, const bench_gen_t *g, size_t n)
{
	bench_rng_t r = {BENCH_SEED ^ 0xc0a95ULL};
	bench_buf_t body = {0};
	char from[64], to[64];

	memset(c, 0, sizeof *c);
	c->n = n;
	c->msg = bench_xmalloc(n * sizeof *c->msg);
	c->shorts = bench_xmalloc(n * sizeof *c->shorts);
	c->longs = bench_xmalloc(n * sizeof *c->longs);
	for (size_t i = 0; i < n; i++) {
		bench_msg_t *m = &c->msg[i];
		bool is_long = bench_rng_below(&r, 1000) < 20; /* 2% */
		unsigned plant = 0;

		if (bench_rng_below(&r, 1000) < 10) /* 1% */
			plant |= BENCH_PLANT_WORD;
		if (bench_rng_below(&r, 1000) < 5) /* 0.5% */
			plant |= BENCH_PLANT_DET;
		size_t target = is_long ? 4096 + bench_rng_below(&r, 12289)
					: 20 + bench_rng_below(&r, 181);
		body.len = 0;
		bench_body(&r, g, target, plant, &body);

		/* 80% internal, 10% outbound, 10% inbound; 1,000 local users
		 * so per-sender state stays realistic. */
		unsigned dir = bench_rng_below(&r, 10);
		unsigned a = bench_rng_below(&r, 1000);
		unsigned b = bench_rng_below(&r, 1000);
		if (dir == 9) {
			snprintf(from, sizeof from, "ext%u@partner.example/im",
				 a % 50);
			snprintf(to, sizeof to, "user%u@acme.example", b);
			m->origin = IMP_ORIGIN_REMOTE;
			m->jid_off = SIZE_MAX;
		} else {
			snprintf(from, sizeof from, "user%u@acme.example/desk",
				 a);
			if (dir == 8)
				snprintf(to, sizeof to, "ext%u@partner.example",
					 b % 50);
			else
				snprintf(to, sizeof to, "user%u@acme.example",
					 b);
			m->origin = IMP_ORIGIN_LOCAL;
			m->jid_off = c->data.len;
			bench_buf_add(&c->data, from, strlen(from) + 1);
		}
		m->body_off = c->data.len;
		m->body_len = (uint32_t)body.len;
		bench_buf_add(&c->data, body.p, body.len + 1);
		m->xml_off = c->data.len;
		bench_buf_printf(&c->data,
				 "<message xmlns='jabber:client' from='%s' "
				 "to='%s' type='chat' id='b%zu'><body>",
				 from, to, i);
		bench_xml_escape(&c->data, body.p, body.len);
		bench_buf_puts(&c->data, "</body></message>");
		m->xml_len = (uint32_t)(c->data.len - m->xml_off);
		bench_buf_add(&c->data, "", 1);
		m->planted = (uint8_t)plant;
		m->is_long = is_long;
		if (is_long) {
			c->longs[c->n_long++] = (uint32_t)i;
			c->long_bytes += body.len;
		} else {
			c->shorts[c->n_short++] = (uint32_t)i;
			c->short_bytes += body.len;
		}
		c->n_planted_word += (plant & BENCH_PLANT_WORD) != 0;
		c->n_planted_det += (plant & BENCH_PLANT_DET) != 0;
		c->n_planted += plant != 0;
	}
	free(body.p);
}

static void bench_view(const bench_corpus_t *c, size_t i, imp_view_t *v)
{
	const bench_msg_t *m = &c->msg[i];

	memset(v, 0, sizeof *v);
	v->version = IMP_VIEW_VERSION;
	v->origin = (imp_origin_t)m->origin;
	v->xml = c->data.p + m->xml_off;
	v->xml_len = m->xml_len;
	v->session_jid = m->jid_off == SIZE_MAX ? NULL : c->data.p + m->jid_off;
	v->time_us = BENCH_T0_US + (int64_t)i * BENCH_STEP_US;
}

/* ---- running the library --------------------------------------------------- */

static const char *bench_engine_name(imp_engine_t e)
{
	switch (e) {
	case IMP_ENGINE_VECTORSCAN:
		return "vectorscan";
	case IMP_ENGINE_PCRE2:
		return "pcre2";
	default:
		return "auto";
	}
}

static imp_policy_t *bench_load(imp_ctx_t *ctx, const char *path,
				imp_engine_t engine, double *ms, bool quiet)
{
	imp_load_options_t opt = {.version = IMP_LOAD_OPTIONS_VERSION,
				  .engine = engine};
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	uint64_t t0 = BENCH_NOW();
	int rc = imp_policy_load(ctx, path, &opt, &p, &errs);

	if (ms)
		*ms = (double)(BENCH_NOW() - t0) / 1e6;
	if (rc == IMP_OK && p)
		return p;
	if (!quiet) {
		bench_fail("loading %s (engine %s): %s", path,
			   bench_engine_name(engine), imp_strerror(rc));
		for (size_t i = 0; errs && i < imp_errors_count(errs); i++) {
			char line[512];
			imp_error_format(imp_errors_get(errs, i), line,
					 sizeof line);
			fprintf(stderr, "  %s\n", line);
		}
	}
	if (errs)
		imp_errors_free(errs);
	return NULL;
}

typedef struct bench_pass_s {
	size_t n;
	uint64_t wall_ns, cpu_ns, bytes;
	size_t n_judged;  /* verdicts other than allow */
	size_t n_planted; /* messages with planted evidence */
	size_t n_caught;  /* ... of which judged other than allow */
	size_t n_false;   /* judged without planted evidence */
	uint64_t lat_sum; /* with per-message timing */
} bench_pass_t;

/* The connectors act on each verdict at once and ask for a borrowed one
 * (no copy, no allocation); main() also measures owned verdicts. */
static unsigned bench_eval_flags = IMP_EVAL_BORROW;

/* Judges messages idx[0..n) as the host would: imp_eval_run() on the raw
 * XML, then imp_verdict_clear().  With lat, each evaluation is timed on its
 * own (that adds one clock read per message); otherwise only the batch. */
static void bench_run(const bench_corpus_t *c, imp_eval_t *ev,
		      const imp_policy_t *p, const uint32_t *idx, size_t n,
		      uint32_t *lat, bench_pass_t *res)
{
	imp_view_t v;
	imp_verdict_t vd;
	uint64_t w0, c0, t, prev;

	memset(res, 0, sizeof *res);
	res->n = n;
	c0 = BENCH_CPU();
	w0 = prev = BENCH_NOW();
	for (size_t k = 0; k < n; k++) {
		size_t i = idx[k];
		bench_view(c, i, &v);
		memset(&vd, 0, sizeof vd);
		int rc = imp_eval_run(ev, p, &v, bench_eval_flags, &vd);
		if (rc != IMP_OK) {
			bench_fail("imp_eval_run on message %zu: %s", i,
				   imp_strerror(rc));
		} else if (vd.flags & IMP_VF_MALFORMED) {
			bench_fail("message %zu judged malformed: %s", i,
				   vd.error ? vd.error : "?");
		}
		bool judged = vd.action != IMP_ALLOW;
		imp_verdict_clear(&vd);
		if (lat) {
			t = BENCH_NOW();
			uint64_t d = t - prev;
			lat[k] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			res->lat_sum += d;
			prev = t;
		}
		res->bytes += c->msg[i].body_len;
		res->n_judged += judged;
		if (c->msg[i].planted) {
			res->n_planted++;
			res->n_caught += judged;
		} else {
			res->n_false += judged;
		}
		if (bench_failures > 20)
			bench_die("too many failures");
	}
	res->wall_ns = BENCH_NOW() - w0;
	res->cpu_ns = BENCH_CPU() - c0;
}

/* A few passes over idx; the one with the least CPU time is kept, the
 * fairest figure on a machine shared with other work.  Passes longer than BENCH_PASS_BUDGET_NS are not
 * repeated, so that a slow build still finishes the default run in about a
 * minute. */
#define BENCH_PASS_BUDGET_NS 1500000000ULL

static void bench_run_best(const bench_corpus_t *c, imp_eval_t *ev,
			   const imp_policy_t *p, const uint32_t *idx, size_t n,
			   int reps, bench_pass_t *best)
{
	bench_pass_t r;

	for (int k = 0; k < reps; k++) {
		bench_run(c, ev, p, idx, n, NULL, &r);
		if (k == 0 || r.cpu_ns < best->cpu_ns)
			*best = r;
		if (r.wall_ns > BENCH_PASS_BUDGET_NS)
			break;
	}
}

/* Figures of one policy over the corpus. */
typedef struct bench_fig_s {
	bool ok;
	double load_ms;
	imp_policy_info_t info;
	double p50_ns, p99_ns, p999_ns, max_ns; /* short, per message */
	double short_mean_ns;                   /* short, batch */
	double msgs_per_s, msgs_per_s_core;     /* short, batch */
	double long_mb_s, long_mb_s_core;       /* long, batch */
	bench_pass_t short_pass, long_pass;
} bench_fig_t;

/* Which rules decided, over the first n messages (untimed): helps read
 * the figures (a policy that rejects most stanzas early is not measuring
 * the same work as one that inspects everything). */
static void bench_census(const bench_corpus_t *c, imp_eval_t *ev,
			 const imp_policy_t *p, size_t n, const char *tag)
{
	struct {
		char *id;
		size_t count;
	} top[64];
	size_t n_top = 0, other = 0, allow = 0;

	for (size_t i = 0; i < n && i < c->n; i++) {
		imp_view_t v;
		imp_verdict_t vd;
		memset(&vd, 0, sizeof vd);
		bench_view(c, i, &v);
		if (imp_eval_run(ev, p, &v, 0, &vd) != IMP_OK) {
			imp_verdict_clear(&vd);
			continue; /* counted as a failure by the timed passes */
		}
		if (vd.action == IMP_ALLOW || !vd.rule_id) {
			allow++;
		} else {
			size_t k = 0;
			while (k < n_top && strcmp(top[k].id, vd.rule_id) != 0)
				k++;
			if (k < n_top) {
				top[k].count++;
			} else if (n_top < 64) {
				top[n_top].id = bench_xstrdup(vd.rule_id);
				top[n_top++].count = 1;
			} else {
				other++;
			}
		}
		imp_verdict_clear(&vd);
	}
	printf("  %s deciding rules over the first %zu stanzas: allow %zu", tag,
	       n < c->n ? n : c->n, allow);
	/* The five most frequent, by selection. */
	for (int shown = 0; shown < 5; shown++) {
		size_t best = n_top;
		for (size_t k = 0; k < n_top; k++)
			if (top[k].count &&
			    (best == n_top || top[k].count > top[best].count))
				best = k;
		if (best == n_top)
			break;
		printf(", %s %zu", top[best].id, top[best].count);
		top[best].count = 0;
	}
	if (other)
		printf(", other %zu", other);
	printf("\n");
	for (size_t k = 0; k < n_top; k++)
		free(top[k].id);
}

static void bench_policy_figures(const bench_corpus_t *c, imp_eval_t *ev,
				 imp_policy_t *p, uint32_t *lat, int reps,
				 bench_fig_t *f)
{
	bench_pass_t t;
	size_t warm = c->n_short < 2000 ? c->n_short : 2000;

	imp_policy_info(p, &f->info);
	bench_run(c, ev, p, c->shorts, warm, NULL, &t); /* warm caches */
	bench_run(c, ev, p, c->shorts, c->n_short, lat, &t);
	f->p99_ns = bench_quantile(lat, c->n_short, 0.99);
	f->p50_ns = bench_quantile(lat, c->n_short, 0.50);
	f->p999_ns = bench_quantile(lat, c->n_short, 0.999);
	f->max_ns = c->n_short ? lat[c->n_short - 1] : 0;
	bench_run_best(c, ev, p, c->shorts, c->n_short, reps, &f->short_pass);
	t = f->short_pass;
	f->short_mean_ns = t.n ? (double)t.wall_ns / (double)t.n : 0;
	f->msgs_per_s = t.wall_ns ? (double)t.n * 1e9 / (double)t.wall_ns : 0;
	f->msgs_per_s_core =
		t.cpu_ns ? (double)t.n * 1e9 / (double)t.cpu_ns : 0;
	bench_run_best(c, ev, p, c->longs, c->n_long, reps, &f->long_pass);
	t = f->long_pass;
	f->long_mb_s =
		t.wall_ns ? (double)t.bytes * 1e3 / (double)t.wall_ns : 0;
	f->long_mb_s_core =
		t.cpu_ns ? (double)t.bytes * 1e3 / (double)t.cpu_ns : 0;
	f->ok = true;
}

/* ---- the naive baseline ----------------------------------------------------- */

/* What a straightforward implementation does: one PCRE2-JIT regex per list
 * entry (\bword\b, caseless) and per detector pattern, each run over each
 * body.  It is given the body text directly (no XML parsing), which favours
 * it. */
typedef struct bench_naive_s {
	pcre2_code **re;
	size_t n;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
} bench_naive_t;

static pcre2_code *bench_naive_compile(const char *pat, uint32_t opts)
{
	int err;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
				       opts | PCRE2_UTF | PCRE2_NO_UTF_CHECK,
				       &err, &off, NULL);

	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		bench_die("naive baseline: cannot compile '%s': %s", pat,
			  (const char *)msg);
	}
	if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0)
		bench_die("naive baseline: no PCRE2 JIT for '%s'", pat);
	return re;
}

static double bench_naive_build(bench_naive_t *nv, const bench_gen_t *g)
{
	bench_buf_t pat = {0};
	uint64_t t0 = BENCH_NOW();

	nv->n = 0;
	nv->re = bench_xmalloc(
		(BENCH_N_WORDS + BENCH_N_PHRASES + BENCH_N_DETECTORS) *
		sizeof *nv->re);
	for (size_t i = 0; i < BENCH_N_WORDS; i++) {
		pat.len = 0;
		bench_buf_printf(&pat, "\\b%s\\b", g->words[i]);
		nv->re[nv->n++] = bench_naive_compile(pat.p, PCRE2_CASELESS);
	}
	for (size_t i = 0; i < BENCH_N_PHRASES; i++) {
		pat.len = 0;
		bench_buf_puts(&pat, "\\b");
		for (const char *s = bench_phrases[i]; *s; s++)
			if (*s == ' ')
				bench_buf_puts(&pat, "\\s+");
			else
				bench_buf_add(&pat, s, 1);
		bench_buf_puts(&pat, "\\b");
		nv->re[nv->n++] = bench_naive_compile(pat.p, PCRE2_CASELESS);
	}
	for (size_t i = 0; i < BENCH_N_DETECTORS; i++)
		nv->re[nv->n++] = bench_naive_compile(g->dets[i].pattern, 0);
	nv->md = pcre2_match_data_create(4, NULL);
	nv->mc = pcre2_match_context_create(NULL);
	nv->js = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
	if (!nv->md || !nv->mc || !nv->js)
		bench_die("naive baseline: out of memory");
	pcre2_jit_stack_assign(nv->mc, NULL, nv->js);
	free(pat.p);
	return (double)(BENCH_NOW() - t0) / 1e6;
}

static void bench_naive_free(bench_naive_t *nv)
{
	for (size_t i = 0; i < nv->n; i++)
		pcre2_code_free(nv->re[i]);
	free(nv->re);
	pcre2_match_data_free(nv->md);
	pcre2_match_context_free(nv->mc);
	pcre2_jit_stack_free(nv->js);
}

static void bench_naive_run(const bench_corpus_t *c, bench_naive_t *nv,
			    const uint32_t *idx, size_t n, bench_pass_t *res)
{
	uint64_t w0 = BENCH_NOW(), c0 = BENCH_CPU();

	memset(res, 0, sizeof *res);
	res->n = n;
	for (size_t k = 0; k < n; k++) {
		const bench_msg_t *m = &c->msg[idx[k]];
		PCRE2_SPTR s = (PCRE2_SPTR)(c->data.p + m->body_off);
		bool hit = false;

		/* Every regex, as a policy engine needs all the evidence. */
		for (size_t j = 0; j < nv->n; j++) {
			int rc = pcre2_jit_match(nv->re[j], s, m->body_len, 0,
						 PCRE2_NO_UTF_CHECK, nv->md,
						 nv->mc);
			hit |= rc > 0;
		}
		res->bytes += m->body_len;
		res->n_judged += hit;
		if (m->planted) {
			res->n_planted++;
			res->n_caught += hit;
		} else {
			res->n_false += hit;
		}
	}
	res->wall_ns = BENCH_NOW() - w0;
	res->cpu_ns = BENCH_CPU() - c0;
}

/* ---- reload while evaluating ------------------------------------------------ */

enum { BENCH_PH_WARM, BENCH_PH_QUIET, BENCH_PH_RELOAD, BENCH_PH_STOP };

typedef struct bench_phase_s {
	uint64_t n, max_ns, max_run_ns;
	uint32_t *lat;
	size_t n_lat, cap_lat;
	uint64_t policies_seen;
} bench_phase_t;

typedef struct bench_reload_s {
	const bench_corpus_t *c;
	imp_ctx_t *ctx;
	imp_slot_t *slot;
	atomic_int phase;
	bench_phase_t ph[3];
	unsigned errors;
} bench_reload_t;

static void *bench_reload_worker(void *arg)
{
	bench_reload_t *rl = arg;
	const bench_corpus_t *c = rl->c;
	imp_eval_t *ev = NULL;
	const imp_policy_t *last = NULL;
	size_t k = 0;

	if (imp_eval_new(rl->ctx, &ev) != IMP_OK) {
		rl->errors++;
		return NULL;
	}
	for (;;) {
		int ph = atomic_load_explicit(&rl->phase, memory_order_acquire);
		if (ph == BENCH_PH_STOP)
			break;
		size_t i = c->shorts[k];
		imp_view_t v;
		imp_verdict_t vd;
		memset(&vd, 0, sizeof vd);
		bench_view(c, i, &v);
		/* The host's path on every stanza: take the current policy,
		 * judge, clear, release (the release may free an old policy
		 * after a swap, and that cost is counted here). */
		uint64_t t0 = BENCH_NOW();
		imp_policy_t *p = imp_slot_acquire(rl->slot);
		uint64_t t1 = BENCH_NOW();
		int rc = p ? imp_eval_run(ev, p, &v, 0, &vd) : IMP_ERR_INVALID;
		uint64_t t2 = BENCH_NOW();
		imp_verdict_clear(&vd);
		bool changed = p != last;
		last = p; /* only compared, never dereferenced later */
		if (p)
			imp_policy_unref(p);
		uint64_t t3 = BENCH_NOW();
		if (rc != IMP_OK)
			rl->errors++;
		bench_phase_t *s = &rl->ph[ph];
		s->n++;
		s->policies_seen += changed;
		if (t3 - t0 > s->max_ns)
			s->max_ns = t3 - t0;
		if (t2 - t1 > s->max_run_ns)
			s->max_run_ns = t2 - t1;
		if (s->n_lat < s->cap_lat)
			s->lat[s->n_lat++] =
				(uint32_t)(t3 - t0 > UINT32_MAX ? UINT32_MAX
								: t3 - t0);
		if (++k == c->n_short)
			k = 0;
	}
	imp_eval_free(ev);
	return NULL;
}

typedef struct bench_reload_fig_s {
	bool ok;
	unsigned swaps;
	double load_ms_mean;
	double phase_s;
	double quiet_max_us, reload_max_us, ratio;
	double quiet_max_run_us, reload_max_run_us;
	double quiet_p999_us, reload_p999_us;
	uint64_t quiet_n, reload_n, policies_seen;
} bench_reload_fig_t;

static void bench_reload(imp_ctx_t *ctx, const bench_corpus_t *c,
			 const char *path, unsigned n_swaps,
			 bench_reload_fig_t *f)
{
	bench_reload_t rl;
	pthread_t th;
	imp_policy_t *p;
	double ms, load_sum = 0;

	memset(&rl, 0, sizeof rl);
	memset(f, 0, sizeof *f);
	rl.c = c;
	rl.ctx = ctx;
	atomic_init(&rl.phase, BENCH_PH_WARM);
	p = bench_load(ctx, path, IMP_ENGINE_AUTO, NULL, false);
	if (!p)
		return;
	if (imp_slot_new(ctx, p, &rl.slot) != IMP_OK) {
		bench_fail("imp_slot_new");
		imp_policy_unref(p);
		return;
	}
	imp_policy_unref(p); /* the slot holds its own reference */
	for (int k = BENCH_PH_QUIET; k <= BENCH_PH_RELOAD; k++) {
		rl.ph[k].cap_lat = 4u << 20;
		rl.ph[k].lat =
			bench_xmalloc(rl.ph[k].cap_lat * sizeof(uint32_t));
	}
	if (pthread_create(&th, NULL, bench_reload_worker, &rl) != 0)
		bench_die("pthread_create failed");
	bench_sleep_ns(200000000ULL);

	/* Reload phase: build each new policy off to the side and swap it
	 * in, as a host's reload does, while the worker keeps judging. */
	atomic_store_explicit(&rl.phase, BENCH_PH_RELOAD, memory_order_release);
	uint64_t t0 = BENCH_NOW();
	for (unsigned k = 0; k < n_swaps; k++) {
		p = bench_load(ctx, path, IMP_ENGINE_AUTO, &ms, false);
		if (!p)
			break;
		load_sum += ms;
		imp_slot_swap(rl.slot, p);
		imp_policy_unref(p);
		f->swaps++;
		/* Leave the new policy in service a moment before the next
		 * reload, as real reloads are spaced. */
		bench_sleep_ns(20000000ULL);
	}
	uint64_t d = BENCH_NOW() - t0;

	/* Quiet phase of the same length: the worker alone. */
	atomic_store_explicit(&rl.phase, BENCH_PH_QUIET, memory_order_release);
	bench_sleep_ns(d);
	atomic_store_explicit(&rl.phase, BENCH_PH_STOP, memory_order_release);
	pthread_join(th, NULL);
	imp_slot_free(rl.slot);

	if (rl.errors)
		bench_fail("%u evaluation errors during the reload test",
			   rl.errors);
	f->phase_s = (double)d / 1e9;
	f->load_ms_mean = f->swaps ? load_sum / f->swaps : 0;
	f->quiet_n = rl.ph[BENCH_PH_QUIET].n;
	f->reload_n = rl.ph[BENCH_PH_RELOAD].n;
	f->policies_seen = rl.ph[BENCH_PH_RELOAD].policies_seen;
	f->quiet_max_us = (double)rl.ph[BENCH_PH_QUIET].max_ns / 1e3;
	f->reload_max_us = (double)rl.ph[BENCH_PH_RELOAD].max_ns / 1e3;
	f->quiet_max_run_us = (double)rl.ph[BENCH_PH_QUIET].max_run_ns / 1e3;
	f->reload_max_run_us = (double)rl.ph[BENCH_PH_RELOAD].max_run_ns / 1e3;
	f->quiet_p999_us = bench_quantile(rl.ph[BENCH_PH_QUIET].lat,
					  rl.ph[BENCH_PH_QUIET].n_lat, 0.999) /
			   1e3;
	f->reload_p999_us =
		bench_quantile(rl.ph[BENCH_PH_RELOAD].lat,
			       rl.ph[BENCH_PH_RELOAD].n_lat, 0.999) /
		1e3;
	f->ratio = f->quiet_max_us > 0 ? f->reload_max_us / f->quiet_max_us : 0;
	f->ok = f->swaps == n_swaps && !rl.errors;
	for (int k = BENCH_PH_QUIET; k <= BENCH_PH_RELOAD; k++)
		free(rl.ph[k].lat);
}

/* ---- output ------------------------------------------------------------------ */

static void bench_print_policy(const char *tag, const bench_fig_t *f)
{
	char name[96];

	if (!f->ok)
		return;
	printf("  %-6s %9.1f %10.1f %8.0f %8.0f %8.0f %11.0f %9.1f  %s\n", tag,
	       f->load_ms, (double)f->info.memory / 1024.0, f->p50_ns,
	       f->p99_ns, f->short_mean_ns, f->msgs_per_s_core, f->long_mb_s,
	       bench_engine_name(f->info.engine));
#define FIG(n, v, u)                                          \
	do {                                                  \
		snprintf(name, sizeof name, "%s.%s", tag, n); \
		bench_fig(name, v, u);                        \
	} while (0)
	FIG("load_ms", f->load_ms, "ms");
	FIG("memory", (double)f->info.memory, "bytes");
	FIG("rules", (double)f->info.n_rules, "count");
	FIG("words", (double)f->info.n_words, "count");
	FIG("detectors", (double)f->info.n_detectors, "count");
	FIG("short_p50", f->p50_ns, "ns");
	FIG("short_p99", f->p99_ns, "ns");
	FIG("short_p999", f->p999_ns, "ns");
	FIG("short_max", f->max_ns, "ns");
	FIG("short_mean", f->short_mean_ns, "ns");
	FIG("short_msgs_per_s", f->msgs_per_s, "msg/s");
	FIG("short_msgs_per_s_core", f->msgs_per_s_core, "msg/s");
	FIG("long_mb_per_s", f->long_mb_s, "MB/s");
	FIG("long_mb_per_s_core", f->long_mb_s_core, "MB/s");
	FIG("judged", (double)f->short_pass.n_judged + f->long_pass.n_judged,
	    "msgs");
	FIG("planted_caught",
	    (double)f->short_pass.n_caught + f->long_pass.n_caught, "msgs");
#undef FIG
}

/* ---- main ------------------------------------------------------------------ */

static void bench_usage(void)
{
	fputs("usage: bench_eval [--messages N] [--quick] [--reloads N]\n"
	      "                  [--naive N] [--reps N] [--no-acme] [--keep]\n"
	      "                  [--profile N] [ACME_POLICY]\n"
	      "ACME_POLICY defaults to $IMP_SOURCE_DIR/contrib/policies/"
	      "acme.yaml,\n"
	      "then contrib/policies/acme.yaml and ../contrib/... from the "
	      "cwd.\n",
	      stderr);
}

static char *bench_find_acme(const char *arg)
{
	static const char *const rel[] = {
		"contrib/policies/acme.yaml",
		"../contrib/policies/acme.yaml",
		"../../contrib/policies/acme.yaml",
	};
	const char *src = getenv("IMP_SOURCE_DIR");
	char buf[4096];

	if (arg)
		return bench_xstrdup(arg);
	if (src && *src) {
		snprintf(buf, sizeof buf, "%s/contrib/policies/acme.yaml", src);
		if (access(buf, R_OK) == 0)
			return bench_xstrdup(buf);
	}
	for (size_t i = 0; i < BENCH_ARRAY_LEN(rel); i++)
		if (access(rel[i], R_OK) == 0)
			return bench_xstrdup(rel[i]);
	return NULL;
}

static unsigned long bench_arg_num(int argc, char **argv, int *i)
{
	char *end;
	unsigned long v;

	if (*i + 1 >= argc)
		bench_die("%s needs a number", argv[*i]);
	errno = 0;
	v = strtoul(argv[++*i], &end, 10);
	if (errno || *end || !v)
		bench_die("%s: bad number '%s'", argv[*i - 1], argv[*i]);
	return v;
}

int main(int argc, char **argv)
{
	size_t n_msgs = 0, n_naive = 0;
	unsigned reloads = 0;
	int reps = 0;
	bool quick = false, no_acme = false, keep = false;
	const char *acme_arg = NULL;
	unsigned long profile = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--messages") == 0)
			n_msgs = bench_arg_num(argc, argv, &i);
		else if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--reloads") == 0)
			reloads = (unsigned)bench_arg_num(argc, argv, &i);
		else if (strcmp(argv[i], "--naive") == 0)
			n_naive = bench_arg_num(argc, argv, &i);
		else if (strcmp(argv[i], "--reps") == 0)
			reps = (int)bench_arg_num(argc, argv, &i);
		else if (strcmp(argv[i], "--no-acme") == 0)
			no_acme = true;
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[i], "--profile") == 0)
			profile = bench_arg_num(argc, argv, &i);
		else if (strcmp(argv[i], "--help") == 0 ||
			 strcmp(argv[i], "-h") == 0) {
			bench_usage();
			return 0;
		} else if (argv[i][0] == '-') {
			bench_usage();
			return 2;
		} else {
			acme_arg = argv[i];
		}
	}
	if (!n_msgs)
		n_msgs = quick ? BENCH_QUICK_MESSAGES : BENCH_DEFAULT_MESSAGES;
	if (!reloads)
		reloads = quick ? 3 : 10;
	if (!n_naive)
		n_naive = quick ? 300 : 1500;
	if (!reps)
		reps = quick ? 1 : 3;
	if (n_msgs > UINT32_MAX / 2)
		bench_die("--messages too large");

	/* Generation ----------------------------------------------------- */
	bench_rng_t rng = {BENCH_SEED};
	static bench_gen_t gen; /* static: seen by the atexit cleanup */
	bench_corpus_t corpus;
	uint64_t g0 = BENCH_NOW();

	memset(&gen, 0, sizeof gen);
	bench_gen_policy(&gen, &rng, keep);
	bench_corpus_make(&corpus, &gen, n_msgs);
	double gen_s = (double)(BENCH_NOW() - g0) / 1e9;
	if (!corpus.n_short || !corpus.n_long)
		bench_die("--messages too small: need short and long messages");

	char *acme = no_acme ? NULL : bench_find_acme(acme_arg);
	if (!no_acme && !acme)
		bench_fail("acme policy not found (pass its path, set "
			   "IMP_SOURCE_DIR, or use --no-acme)");

	/* The clock's own cost, to read per-message figures against. */
	uint64_t clk_min = UINT64_MAX;
	for (int k = 0; k < 100000; k++) {
		uint64_t a = BENCH_NOW(), b = BENCH_NOW();
		if (b - a < clk_min)
			clk_min = b - a;
	}

	printf("mod_impolicy evaluation benchmark (libimpolicy %s)\n",
	       IMP_VERSION_STRING);
	printf("corpus: %zu stanzas from seed %#llx in %.2f s: %zu short "
	       "(mean body %.0f B), %zu long (%.1f MiB of body)\n",
	       corpus.n, (unsigned long long)BENCH_SEED, gen_s, corpus.n_short,
	       (double)corpus.short_bytes / (double)corpus.n_short,
	       corpus.n_long, (double)corpus.long_bytes / 1048576.0);
	printf("planted: %zu with a listed word/phrase (%.2f%%), %zu with a "
	       "detector hit (%.2f%%)\n",
	       corpus.n_planted_word,
	       100.0 * (double)corpus.n_planted_word / (double)corpus.n,
	       corpus.n_planted_det,
	       100.0 * (double)corpus.n_planted_det / (double)corpus.n);
	printf("large policy: %s (%d words in %d lists, %zu phrases, %d "
	       "detectors)%s\n",
	       gen.path, BENCH_N_WORDS, BENCH_N_LISTS, BENCH_N_PHRASES,
	       BENCH_N_DETECTORS, keep ? " [kept]" : "");
	printf("clock_gettime(CLOCK_MONOTONIC) pair: %llu ns (included in "
	       "per-message figures)\n\n",
	       (unsigned long long)clk_min);
	fflush(stdout);
	bench_fig("corpus.messages", (double)corpus.n, "msgs");
	bench_fig("corpus.short", (double)corpus.n_short, "msgs");
	bench_fig("corpus.long", (double)corpus.n_long, "msgs");
	bench_fig("corpus.planted", (double)corpus.n_planted, "msgs");
	bench_fig("clock_overhead", (double)clk_min, "ns");

	imp_ctx_t *ctx = NULL;
	imp_eval_t *ev = NULL;
	int rc = imp_ctx_new(NULL, &ctx);
	if (rc != IMP_OK)
		bench_die("imp_ctx_new: %s", imp_strerror(rc));
	rc = imp_eval_new(ctx, &ev);
	if (rc != IMP_OK)
		bench_die("imp_eval_new: %s", imp_strerror(rc));
	uint32_t *lat = bench_xmalloc(corpus.n_short * sizeof *lat);

	if (profile) {
		/* For profilers: nothing but N passes of the short stanzas
		 * through the large policy, and the best pass's CPU time. */
		imp_policy_t *q =
			bench_load(ctx, gen.path, IMP_ENGINE_AUTO, NULL, false);
		bench_pass_t r;
		uint64_t best = UINT64_MAX;
		for (unsigned long k = 0; q && k < profile; k++) {
			bench_run(&corpus, ev, q, corpus.shorts, corpus.n_short,
				  NULL, &r);
			if (r.cpu_ns < best)
				best = r.cpu_ns;
		}
		if (q)
			printf("profile: %lu passes, best %.1f ns CPU per "
			       "short "
			       "stanza\n",
			       profile, (double)best / (double)corpus.n_short);
		if (q)
			imp_policy_unref(q);
		imp_eval_free(ev);
		imp_ctx_free(ctx);
		free(lat);
		free(acme);
		return bench_failures ? 1 : 0;
	}

	/* Both policies, default engine ----------------------------------- */
	bench_fig_t fa = {0}, fl = {0};
	imp_policy_t *pa = NULL, *pl = NULL;
	double ms;

	if (acme) {
		pa = bench_load(ctx, acme, IMP_ENGINE_AUTO, &fa.load_ms, false);
		if (pa)
			bench_policy_figures(&corpus, ev, pa, lat, reps, &fa);
	}
	/* Load time: the best of a few loads (the first one also pays for
	 * page faults and zoneinfo reads). */
	for (int k = 0; k < (quick ? 1 : 3); k++) {
		imp_policy_t *q =
			bench_load(ctx, gen.path, IMP_ENGINE_AUTO, &ms, false);
		if (!q)
			break;
		if (!pl || ms < fl.load_ms)
			fl.load_ms = ms;
		if (pl)
			imp_policy_unref(q);
		else
			pl = q;
	}
	if (pl)
		bench_policy_figures(&corpus, ev, pl, lat, reps, &fl);

	printf("policy    load ms  mem KiB   p50 ns   p99 ns  mean ns  "
	       "msg/s/core  MB/s long  engine\n");
	if (fa.ok)
		bench_print_policy("acme", &fa);
	if (fl.ok)
		bench_print_policy("large", &fl);
	if (fa.ok)
		printf("  acme:  %zu of %zu short+long judged non-allow\n",
		       fa.short_pass.n_judged + fa.long_pass.n_judged,
		       fa.short_pass.n + fa.long_pass.n);
	if (fl.ok)
		printf("  large: %zu of %zu planted caught, %zu judged "
		       "without planted evidence\n",
		       fl.short_pass.n_caught + fl.long_pass.n_caught,
		       fl.short_pass.n_planted + fl.long_pass.n_planted,
		       fl.short_pass.n_false + fl.long_pass.n_false);
	if (fl.ok) {
		/* What an owned verdict (a copy in one allocation, freed by
		 * imp_verdict_clear) adds per short stanza. */
		bench_pass_t own;
		bench_eval_flags = 0;
		bench_run_best(&corpus, ev, pl, corpus.shorts, corpus.n_short,
			       reps, &own);
		bench_eval_flags = IMP_EVAL_BORROW;
		double own_ns = (double)own.cpu_ns / (double)own.n;
		double lent_ns =
			(double)fl.short_pass.cpu_ns / (double)fl.short_pass.n;
		printf("  large: owned verdicts %.0f ns CPU per short stanza, "
		       "borrowed %.0f ns (owned/borrowed %.2fx)\n",
		       own_ns, lent_ns, own_ns / lent_ns);
		bench_fig("large.short_owned_cpu", own_ns, "ns");
		bench_fig("large.owned_vs_borrowed", own_ns / lent_ns, "x");
	}
	if (fa.ok)
		bench_census(&corpus, ev, pa, 20000, "acme:");
	if (fl.ok)
		bench_census(&corpus, ev, pl, 20000, "large:");
	printf("\n");
	fflush(stdout);

	/* Naive baseline on the same messages.  Comparisons use thread CPU
	 * time: both sides then pay the same for preemption (none). */
	bench_naive_t nv;
	bench_pass_t nsh, nlo, osh, olo;
	double naive_ratio = 0, naive_long_ratio = 0;
	size_t ns_n = n_naive < corpus.n_short ? n_naive : corpus.n_short;
	size_t nl_n =
		n_naive / 50 < corpus.n_long ? n_naive / 50 : corpus.n_long;

	if (!nl_n)
		nl_n = 1;
	double naive_build_ms = bench_naive_build(&nv, &gen);
	bench_naive_run(&corpus, &nv, corpus.shorts, ns_n / 10 + 1, &nsh);
	bench_naive_run(&corpus, &nv, corpus.shorts, ns_n, &nsh);
	bench_naive_run(&corpus, &nv, corpus.longs, nl_n, &nlo);
	double naive_ns = (double)nsh.cpu_ns / (double)nsh.n;
	double naive_long_mb = (double)nlo.bytes * 1e3 / (double)nlo.cpu_ns;
	printf("naive baseline: %zu PCRE2-JIT regexes (compiled in %.0f ms), "
	       "every one over every body; %zu short + %zu long bodies\n",
	       nv.n, naive_build_ms, ns_n, nl_n);
	if (pl) {
		/* Ours over exactly the same messages, repeated for a stable
		 * figure. */
		bench_run_best(&corpus, ev, pl, corpus.shorts, ns_n, reps * 5,
			       &osh);
		bench_run_best(&corpus, ev, pl, corpus.longs, nl_n, reps * 2,
			       &olo);
		double ours_ns = (double)osh.cpu_ns / (double)osh.n;
		double ours_long_mb =
			(double)olo.bytes * 1e3 / (double)olo.cpu_ns;
		naive_ratio = ours_ns > 0 ? naive_ns / ours_ns : 0;
		naive_long_ratio =
			naive_long_mb > 0 ? ours_long_mb / naive_long_mb : 0;
		printf("  short: naive %.0f ns/msg, ours %.0f ns/msg (CPU) -> "
		       "ours "
		       "%.1fx faster\n",
		       naive_ns, ours_ns, naive_ratio);
		printf("  long:  naive %.2f MB/s, ours %.1f MB/s (CPU) -> ours "
		       "%.1fx faster\n",
		       naive_long_mb, ours_long_mb, naive_long_ratio);
		printf("  agreement (short subset): naive hit %zu msgs, ours "
		       "judged %zu; planted %zu\n",
		       nsh.n_judged, osh.n_judged, nsh.n_planted);
		bench_fig("large.ours_subset_short_cpu", ours_ns, "ns");
		bench_fig("large.ours_subset_long_mb_per_s_core", ours_long_mb,
			  "MB/s");
	}
	bench_fig("naive.regexes", (double)nv.n, "count");
	bench_fig("naive.compile_ms", naive_build_ms, "ms");
	bench_fig("naive.short_cpu", naive_ns, "ns");
	bench_fig("naive.long_mb_per_s_core", naive_long_mb, "MB/s");
	bench_fig("naive.short_hits", (double)nsh.n_judged, "msgs");
	if (pl) {
		bench_fig("large.vs_naive_short", naive_ratio, "x");
		bench_fig("large.vs_naive_long", naive_long_ratio, "x");
	}
	bench_naive_free(&nv);
	printf("\n");
	fflush(stdout);

	/* Engines: Vectorscan against PCRE2 on the large policy ------------ */
	static const imp_engine_t engines[2] = {IMP_ENGINE_VECTORSCAN,
						IMP_ENGINE_PCRE2};
	bench_pass_t es[2], el[2];
	double eload[2] = {0, 0};
	bool eok[2] = {false, false};

	/* Both engines on the same prefix of the corpus, capped: the point
	 * is their ratio (thread CPU time), and the portable engine may be
	 * much slower. */
	size_t e_short = corpus.n_short < 50000 ? corpus.n_short : 50000;
	size_t e_long = corpus.n_long < 500 ? corpus.n_long : 500;

	printf("engines on the large policy (%zu short, %zu long stanzas)\n",
	       e_short, e_long);
	printf("engine       load ms  mem KiB   short CPU ns  long "
	       "MB/s/core\n");
	for (int k = 0; k < 2; k++) {
		imp_errors_t *errs = NULL;
		imp_policy_t *q = NULL;
		imp_load_options_t opt = {.version = IMP_LOAD_OPTIONS_VERSION,
					  .engine = engines[k]};
		uint64_t t0 = BENCH_NOW();
		rc = imp_policy_load(ctx, gen.path, &opt, &q, &errs);
		eload[k] = (double)(BENCH_NOW() - t0) / 1e6;
		if (errs)
			imp_errors_free(errs);
		if (rc == IMP_ERR_UNSUPPORTED) {
			/* Not a failure: the build or CPU lacks it. */
			printf("  %-10s  unsupported in this build\n",
			       bench_engine_name(engines[k]));
			continue;
		}
		if (rc != IMP_OK || !q) {
			bench_fail("loading the large policy with engine %s: "
				   "%s",
				   bench_engine_name(engines[k]),
				   imp_strerror(rc));
			continue;
		}
		imp_policy_info_t qi;
		imp_policy_info(q, &qi);
		bench_run(&corpus, ev, q, corpus.shorts,
			  e_short < 2000 ? e_short : 2000, NULL, &es[k]);
		bench_run_best(&corpus, ev, q, corpus.shorts, e_short, reps,
			       &es[k]);
		bench_run_best(&corpus, ev, q, corpus.longs, e_long, reps,
			       &el[k]);
		double mean = (double)es[k].cpu_ns / (double)es[k].n;
		double mbs = (double)el[k].bytes * 1e3 / (double)el[k].cpu_ns;
		printf("  %-10s %8.1f %8.1f %14.0f %10.1f%s\n",
		       bench_engine_name(engines[k]), eload[k],
		       (double)qi.memory / 1024.0, mean, mbs,
		       qi.engine != engines[k] ? "  (engine reported differs!)"
					       : "");
		char name[64];
		snprintf(name, sizeof name, "engine.%s.load_ms",
			 bench_engine_name(engines[k]));
		bench_fig(name, eload[k], "ms");
		snprintf(name, sizeof name, "engine.%s.short_cpu",
			 bench_engine_name(engines[k]));
		bench_fig(name, mean, "ns");
		snprintf(name, sizeof name, "engine.%s.long_mb_per_s_core",
			 bench_engine_name(engines[k]));
		bench_fig(name, mbs, "MB/s");
		eok[k] = true;
		imp_policy_unref(q);
	}
	if (eok[0] && eok[1]) {
		double rs = (double)es[1].cpu_ns / (double)es[1].n /
			    ((double)es[0].cpu_ns / (double)es[0].n);
		double rl = ((double)el[0].bytes / (double)el[0].cpu_ns) /
			    ((double)el[1].bytes / (double)el[1].cpu_ns);
		printf("  vectorscan vs pcre2: %.2fx on short, %.2fx on long "
		       "(>1: vectorscan faster)\n",
		       rs, rl);
		bench_fig("engine.vectorscan_vs_pcre2_short", rs, "x");
		bench_fig("engine.vectorscan_vs_pcre2_long", rl, "x");
	}
	printf("\n");
	fflush(stdout);

	/* Reload while evaluating ---------------------------------------------- */
	bench_reload_fig_t rf = {0};
	if (pl) {
		bench_reload(ctx, &corpus, gen.path, reloads, &rf);
		if (rf.swaps) {
			printf("reload: %u loads+swaps of the large policy "
			       "(mean load %.0f ms) over %.2f s while one "
			       "thread evaluates\n",
			       rf.swaps, rf.load_ms_mean, rf.phase_s);
			printf("  %-22s %12s %12s\n", "", "quiet", "reloading");
			printf("  %-22s %12" PRIu64 " %12" PRIu64 "\n",
			       "evaluations", rf.quiet_n, rf.reload_n);
			printf("  %-22s %12.1f %12.1f\n", "p99.9 latency us",
			       rf.quiet_p999_us, rf.reload_p999_us);
			printf("  %-22s %12.1f %12.1f\n", "max latency us",
			       rf.quiet_max_us, rf.reload_max_us);
			printf("  %-22s %12.1f %12.1f\n", "max imp_eval_run us",
			       rf.quiet_max_run_us, rf.reload_max_run_us);
			printf("  max latency ratio reloading/quiet: %.2f; the "
			       "worker saw %" PRIu64 " policy changes\n\n",
			       rf.ratio, rf.policies_seen);
			bench_fig("reload.swaps", rf.swaps, "count");
			bench_fig("reload.load_ms_mean", rf.load_ms_mean, "ms");
			bench_fig("reload.quiet_evals", (double)rf.quiet_n,
				  "count");
			bench_fig("reload.reloading_evals", (double)rf.reload_n,
				  "count");
			bench_fig("reload.quiet_p999", rf.quiet_p999_us, "us");
			bench_fig("reload.reloading_p999", rf.reload_p999_us,
				  "us");
			bench_fig("reload.quiet_max", rf.quiet_max_us, "us");
			bench_fig("reload.reloading_max", rf.reload_max_us,
				  "us");
			bench_fig("reload.max_ratio", rf.ratio, "x");
			bench_fig("reload.policies_seen",
				  (double)rf.policies_seen, "count");
		}
	}

	/* Goals ----------------------------------------------------------------- */
	printf("goals (informational)              figure             "
	       "target           status\n");
	bench_goal("short p50, large policy", fl.p50_ns / 1e3, "us", false, 1.0,
		   fl.ok, "large_short_p50_le_1us");
	bench_goal("msg/s per core, large policy", fl.msgs_per_s_core / 1e6,
		   "M msg/s", true, 1.0, fl.ok, "large_msgs_per_s_core_ge_1M");
	bench_goal("vs naive, short, large policy", naive_ratio, "x", true,
		   50.0, fl.ok, "large_vs_naive_ge_50x");
	bench_goal("compile, large policy", fl.load_ms / 1e3, "s", false, 1.0,
		   pl != NULL, "large_load_le_1s");
	bench_goal("compile, acme policy", fa.load_ms / 1e3, "s", false, 1.0,
		   pa != NULL, "acme_load_le_1s");
	printf("\n");

	if (pa)
		imp_policy_unref(pa);
	if (pl)
		imp_policy_unref(pl);
	imp_eval_free(ev);
	imp_ctx_free(ctx);

	fputs(bench_figs_text(), stdout);
	printf("bench: failures %u count\n", bench_failures);

	bench_gen_cleanup();
	for (size_t i = 0; i < BENCH_N_WORDS; i++)
		free(gen.words[i]);
	free(gen.words);
	free(corpus.data.p);
	free(corpus.msg);
	free(corpus.shorts);
	free(corpus.longs);
	free(lat);
	free(acme);
	bench_figs_free();
	return bench_failures ? 1 : 0;
}
