/*
 * test_norm.c -- the PLAIN and WORDS views of norm.h and their maps.
 *
 * Tables of (input, expected view); every case is also checked for the
 * view invariants (NUL-terminated, valid UTF-8, a map that never goes
 * backwards and ends at the source length, WORDS holding only word bytes
 * and single inner spaces).  ASCII cases are run a second time with a
 * trailing no-break space, which forces the non-ASCII path, to prove both
 * paths agree.
 */
#include "check.h"
#include "norm.h"

#include <stdlib.h>

typedef struct norm_case_s {
	const char *in;
	const char *want;
} norm_case_t;

static const norm_case_t plain_cases[] = {
	{"Hello World", "Hello World"},
	{"", ""},
	{"tab\there\n", "tab\there\n"},
	/* NFKC: full-width letters and digits, ligatures, circled digits */
	{"\uFF21\uFF22\uFF23\uFF11\uFF12\uFF13", "ABC123"},
	{"\uFF46\uFF55\uFF43\uFF4B", "fuck"},
	{"\uFB01le", "file"},
	{"\u2460\u00B2", "12"},
	/* composition: e + combining acute becomes precomposed e-acute */
	{"cafe\u0301", "caf\u00E9"},
	{"caf\u00E9", "caf\u00E9"},
	/* Hangul jamo recompose into a syllable */
	{"\u1112\u1161\u11AB", "\uD55C"},
	/* format characters vanish, case stays */
	{"4111\u200B1111\u200D", "41111111"},
	{"pass\u00ADword", "password"},
	{"\u202Eabc\u200F", "abc"},
	{"\u041F\u0440\u0438\u0432\u0435\u0442",
	 "\u041F\u0440\u0438\u0432\u0435\u0442"},
	{"ok \U0001F44D", "ok \U0001F44D"},
	/* invalid UTF-8: one U+FFFD per bad byte */
	{"a\xFF", "a\uFFFD"},
	{"\xC0\xAF", "\uFFFD\uFFFD"},                     /* overlong */
	{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"},           /* surrogate */
	{"x\xE2\x82", "x\uFFFD\uFFFD"},                   /* truncated */
	{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, /* > U+10FFFF */
};

static const norm_case_t words_cases[] = {
	{"Hello WORLD", "hello world"},
	{"", ""},
	{"  --  ", ""},
	{"hello...world!!!", "hello world"},
	{"don't", "don t"},
	/* '!' is an 'i' only with a letter on both sides (W5) */
	{"sh!t", "shit"},
	{"Sh!T happens!", "shit happens"},
	{"hello!", "hello"},
	{"wow!!", "wow"},
	{"wow!!wow", "wow wow"},
	{"no ! here", "no here"},
	{"!bang", "bang"},
	{"3!4", "3 4"},
	{"sh!!t", "sh t"},
	{"\u00E9!t", "eit"},
	{"sh|t", "sh t"}, /* '|' is not leetspeak */
	/* full width (NFKC) */
	{"\uFF46\uFF55\uFF43\uFF4B", "fuck"},
	{"\uFF26\uFF35\uFF23\uFF2B \uFF11\uFF12\uFF13", "fuck 123"},
	{"\uFF53\uFF48\uFF11\uFF54", "shit"},
	{"\u2460", "1"},
	/* zero-width and other format characters inside words */
	{"f\u200Buck", "fuck"},
	{"f\u200Du\u2060c\u00ADk\u200C", "fuck"},
	{"\u202Eshit", "shit"},
	/* diacritics */
	{"caf\u00E9 \u00F1and\u00FA", "cafe nandu"},
	{"f\u00FCck", "fuck"},
	{"fu\u0308ck", "fuck"},
	{"Stra\u00DFe", "strasse"},
	/* leetspeak only inside tokens with a letter */
	{"sh1t", "shit"},
	{"@ss", "ass"},
	{"$hit", "shit"},
	{"a55", "ass"},
	{"2026", "2026"},
	{"555-1234", "555 1234"},
	{"$100", "100"},
	{"f*ck", "f ck"},
	{"4chan", "achan"},
	/* spelled-out words */
	{"f.u.c.k", "fuck"},
	{"F.U.C.K", "fuck"},
	{"f u c k", "fuck"},
	{"f-u-c-k off", "fuck off"},
	{"f_u_c_k", "fuck"},
	{"f*u*c*k", "fuck"},
	{"s.h.1.t", "shit"},
	{"I am a b", "i am a b"},
	{"a.b", "a b"},
	{"f. u. c. k", "f u c k"},
	{"f.u-c.k", "f u c k"},
	{"a.b-c-d", "a bcd"},
	{"1.2.3.4", "1 2 3 4"},
	{"x f.u.u.u.c.k y", "x fuck y"},
	/* stretched letters */
	{"fuuuuck", "fuck"},
	{"shiiiit", "shit"},
	{"FUUUCK", "fuck"},
	{"ass committee", "ass committee"},
	{"heeeello", "hello"},
	{"aaa", "a"},
	{"1000", "1000"},
	/* other scripts stay letters, case folded */
	{"\u041F\u0420\u0418\u0412\u0415\u0422 \u043C\u0438\u0440",
	 "\u043F\u0440\u0438\u0432\u0435\u0442 \u043C\u0438\u0440"},
	{"\u03A3\u038A\u03A3\u03A5\u03A6\u039F\u03A3",
	 "\u03C3\u03B9\u03C3\u03C5\u03C6\u03BF\u03C3"},
	{"\uD55C\uAD6D\uC5B4", "\uD55C\uAD6D\uC5B4"},
	/* emoji are separators */
	{"fuck\U0001F595you", "fuck you"},
	{"\U0001F44D", ""},
	/* invalid UTF-8 */
	{"a\xFF"
	 "b",
	 "a b"},
	{"\xC3", ""},
};

/* Checks the invariants every view must hold. */
static void check_view(const char *src, size_t slen, const imp_ntext_t *t,
		       int mode)
{
	CHECK(t->s != NULL && t->map != NULL);
	if (!t->s || !t->map)
		return;
	CHECK_INT(t->s[t->len], 0);
	CHECK(imp_utf8_valid(t->s, t->len));
	CHECK_INT(t->map[t->len], slen);
	bool mono = true, inside = true;
	for (size_t i = 0; i < t->len; i++) {
		if (t->map[i] >= slen)
			inside = false;
		if (t->map[i] > t->map[i + 1])
			mono = false;
	}
	CHECK_MSG(mono, "map goes backwards for \"%s\"", src);
	CHECK_MSG(inside, "map leaves the source for \"%s\"", src);
	if (mode != IMP_NORM_WORDS)
		return;
	bool shape = t->len == 0 || (t->s[0] != ' ' && t->s[t->len - 1] != ' ');
	for (size_t i = 0; i < t->len; i++) {
		unsigned char c = (unsigned char)t->s[i];
		if (c == ' ') {
			if (i > 0 && t->s[i - 1] == ' ')
				shape = false;
		} else if (!imp_norm_wordbyte(c) || (c >= 'A' && c <= 'Z')) {
			shape = false;
		}
	}
	CHECK_MSG(shape, "WORDS view of \"%s\" is \"%s\"", src, t->s);
}

static void run_table(imp_arena_t *a, const norm_case_t *cases, size_t n,
		      int mode)
{
	for (size_t i = 0; i < n; i++) {
		const char *in = cases[i].in;
		size_t slen = strlen(in);
		imp_ntext_t t;
		CHECK_INT(imp_norm(a, in, slen, mode, &t), IMP_OK);
		CHECK_STR(t.s, cases[i].want);
		CHECK_INT(t.len, strlen(cases[i].want));
		check_view(in, slen, &t, mode);

		/* The same ASCII text through the non-ASCII path: a trailing
		 * U+00A0 is NFKC's U+0020, trimmed in WORDS. */
		bool ascii = true;
		for (size_t k = 0; k < slen; k++)
			if ((unsigned char)in[k] >= 0x80)
				ascii = false;
		if (!ascii || mode != IMP_NORM_WORDS)
			continue;
		char *in2 = imp_arena_printf(a, "%s\u00A0", in);
		imp_ntext_t t2;
		CHECK_INT(imp_norm(a, in2, strlen(in2), mode, &t2), IMP_OK);
		CHECK_STR(t2.s, cases[i].want);
		check_view(in2, strlen(in2), &t2, mode);
		if (t2.len == t.len && t.len > 0)
			CHECK(memcmp(t.map, t2.map, t.len * 4) == 0);
	}
}

/* The source bytes a normalised span covers. */
static char *source_span(imp_arena_t *a, const char *src, const imp_ntext_t *t,
			 size_t b, size_t e)
{
	return imp_arena_strndup(a, src + t->map[b], t->map[e] - t->map[b]);
}

static void test_maps(imp_arena_t *a)
{
	/* A word after multibyte and zero-width characters. */
	const char *src = "\u00E9t\u00E9 \u200B\u200Bf\u00FCck! ok";
	imp_ntext_t t;
	CHECK_INT(imp_norm(a, src, strlen(src), IMP_NORM_WORDS, &t), IMP_OK);
	CHECK_STR(t.s, "ete fuck ok");
	const char *hit = strstr(t.s, "fuck");
	CHECK(hit != NULL);
	if (hit) {
		size_t b = (size_t)(hit - t.s);
		CHECK_STR(source_span(a, src, &t, b, b + 4), "f\u00FCck");
		CHECK_STR(source_span(a, src, &t, 0, 3), "\u00E9t\u00E9");
	}

	/* Squeezed, spelled-out and leet words map to their whole source. */
	static const struct {
		const char *src, *word, *want;
	} spans[] = {
		{"so fuuuuck off", "fuck", "fuuuuck"},
		{"x f.u.c.k y", "fuck", "f.u.c.k"},
		{"a $h1t day", "shit", "$h1t"},
		{"\uFF46\uFF55\uFF43\uFF4B you", "fuck",
		 "\uFF46\uFF55\uFF43\uFF4B"},
		{"the f\u200Bu\u200Bck.", "fuck", "f\u200Bu\u200Bck."},
		{"\u041F\u0420\u0418 wow", "wow", "wow"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(spans); i++) {
		imp_ntext_t v;
		size_t sl = strlen(spans[i].src);
		CHECK_INT(imp_norm(a, spans[i].src, sl, IMP_NORM_WORDS, &v),
			  IMP_OK);
		const char *w = strstr(v.s, spans[i].word);
		CHECK_MSG(w != NULL, "\"%s\" not in \"%s\"", spans[i].word,
			  v.s);
		if (!w)
			continue;
		size_t b = (size_t)(w - v.s);
		CHECK_STR(source_span(a, spans[i].src, &v, b,
				      b + strlen(spans[i].word)),
			  spans[i].want);
	}

	/* PLAIN: full-width digits map to their three-byte sources. */
	const char *fw = "\uFF11\uFF12\uFF13\uFF14";
	CHECK_INT(imp_norm(a, fw, strlen(fw), IMP_NORM_PLAIN, &t), IMP_OK);
	CHECK_STR(t.s, "1234");
	CHECK_INT(t.map[1], 3);
	CHECK_INT(t.map[3], 9);
	CHECK_INT(t.map[4], 12);

	/* An invalid byte becomes three bytes that all map to it. */
	CHECK_INT(imp_norm(a,
			   "a\xFF"
			   "b",
			   3, IMP_NORM_PLAIN, &t),
		  IMP_OK);
	CHECK_INT(t.len, 5);
	CHECK(t.map[1] == 1 && t.map[2] == 1 && t.map[3] == 1);
	CHECK_INT(t.map[4], 2);

	/* A separator run's space maps to its first separator. */
	CHECK_INT(imp_norm(a, "ab \u00A0-- cd", strlen("ab \u00A0-- cd"),
			   IMP_NORM_WORDS, &t),
		  IMP_OK);
	CHECK_STR(t.s, "ab cd");
	CHECK_INT(t.map[2], 2);
	CHECK_INT(t.map[3], 8);
}

static void test_edges(imp_arena_t *a)
{
	imp_ntext_t t;
	CHECK_INT(imp_norm(a, "x", 1, 7, &t), IMP_ERR_INVALID);
	CHECK_INT(imp_norm(a, NULL, 0, IMP_NORM_WORDS, &t), IMP_OK);
	CHECK_INT(t.len, 0);
	/* The length is checked before the text is read. */
	CHECK_INT(imp_norm(a, "x", (size_t)1 << 31, IMP_NORM_PLAIN, &t),
		  IMP_ERR_LIMIT);

	/* Embedded NUL bytes are separators in WORDS and kept in PLAIN. */
	CHECK_INT(imp_norm(a, "ab\0cd", 5, IMP_NORM_WORDS, &t), IMP_OK);
	CHECK_STR(t.s, "ab cd");
	CHECK_INT(imp_norm(a, "ab\0cd", 5, IMP_NORM_PLAIN, &t), IMP_OK);
	CHECK_INT(t.len, 5);

	/* "Zalgo": thousands of marks stay linear and vanish in WORDS. */
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	for (int w = 0; w < 50; w++) {
		imp_buf_puts(&b, "he");
		for (int m = 0; m < 200; m++)
			imp_buf_puts(&b, m % 2 ? "\u0301" : "\u0316");
		imp_buf_puts(&b, "llo ");
	}
	CHECK(!b.oom);
	CHECK_INT(imp_norm(a, b.data, b.len, IMP_NORM_PLAIN, &t), IMP_OK);
	check_view("(zalgo)", b.len, &t, IMP_NORM_PLAIN);
	CHECK_INT(imp_norm(a, b.data, b.len, IMP_NORM_WORDS, &t), IMP_OK);
	check_view("(zalgo)", b.len, &t, IMP_NORM_WORDS);
	CHECK(t.len == 50 * 6 - 1 && strncmp(t.s, "hello hello", 11) == 0);

	/* Random bytes: whatever comes in, the invariants hold. */
	unsigned seed = 12345;
	char junk[97];
	for (int r = 0; r < 300; r++) {
		for (size_t i = 0; i < sizeof(junk); i++) {
			seed = seed * 1103515245u + 12345u;
			junk[i] = (char)(seed >> 16);
		}
		size_t jl = 1 + (size_t)(seed % sizeof(junk));
		CHECK_INT(imp_norm(a, junk, jl, IMP_NORM_PLAIN, &t), IMP_OK);
		check_view("(random)", jl, &t, IMP_NORM_PLAIN);
		CHECK_INT(imp_norm(a, junk, jl, IMP_NORM_WORDS, &t), IMP_OK);
		check_view("(random)", jl, &t, IMP_NORM_WORDS);
		imp_arena_reset(a);
	}
}

/* ASCII text takes a quick WORDS pass for its common shape, and the full
 * token machine otherwise; non-ASCII text always takes the machine.  The
 * two must agree: s and s + "\n\u00e9" (a non-joining separator, then a
 * letter that folds to "e") must give the same view and map up to the
 * added token.  The alphabet leans on what the quick pass must refuse:
 * '!' between letters, leet digits and symbols, triple letters, spelled-
 * out words. */
static void test_ascii_paths(imp_arena_t *a)
{
	static const char alpha[] = "aabbcdeeEfghiIjklmnopqrstuvwxyzZA"
				    "     .,-_*!?;:'\"&@$0123456789\n\t";
	static const char tight[] = "aab !.1 ";
	uint64_t seed = 0x5eed1234abcdULL;
	unsigned bad = 0, n_cases = 40000;
	for (unsigned it = 0; it < n_cases; it++) {
		char s[160];
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t n = (size_t)((seed >> 33) % 60);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			unsigned r = (unsigned)(seed >> 33);
			s[i] = it % 3 == 0   ? tight[r % (sizeof(tight) - 1)]
			       : it % 3 == 1 ? alpha[r % (sizeof(alpha) - 1)]
					     : (char)(1 + r % 127);
		}
		if (it % 4 == 3) {
			/* prose, to reach the sixteen-byte blocks */
			static const char *const w[] = {
				"a",       "I",   "b",    "hello", "the",
				"Meeting", "R&D", "it's", "oo",    "budget",
				"5",       "@",   "x1",   "ooo",   "Hmmm",
				"e!t",     "zZz", "2026"};
			static const char *const sp[] = {" ",  " ",  " ", " ",
							 ", ", ". ", "-", "  "};
			n = 0;
			while (n < 120) {
				seed = seed * 6364136223846793005ULL +
				       1442695040888963407ULL;
				unsigned r = (unsigned)(seed >> 33);
				/* mostly words the quick pass takes, so that
				 * whole texts reach it */
				const char *x = r % 8 ? w[r % 10]
						      : w[r % IMP_ARRAY_LEN(w)];
				const char *y =
					sp[(r >> 8) % IMP_ARRAY_LEN(sp)];
				memcpy(s + n, x, strlen(x));
				n += strlen(x);
				memcpy(s + n, y, strlen(y));
				n += strlen(y);
			}
		}
		memcpy(s + n, "\n\xC3\xA9", 4);
		imp_ntext_t w1, w2;
		if (imp_norm(a, s, n, IMP_NORM_WORDS, &w1) != IMP_OK ||
		    imp_norm(a, s, n + 3, IMP_NORM_WORDS, &w2) != IMP_OK) {
			bad++;
			continue;
		}
		size_t want = w1.len ? w1.len + 2 : 1;
		bool ok = w2.len == want && memcmp(w2.s, w1.s, w1.len) == 0 &&
			  strcmp(w2.s + want - 1, "e") == 0 &&
			  memcmp(w2.map, w1.map, w1.len * sizeof(uint32_t)) ==
				  0 &&
			  w1.map[w1.len] == n;
		if (!ok && bad++ == 0)
			fprintf(stderr,
				"ASCII and machine differ on \"%.*s\": "
				"\"%s\" vs \"%s\"\n",
				(int)n, s, w1.s, w2.s);
		imp_arena_reset(a);
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	imp_ctx_t *ctx = NULL;
	CHECK_INT(imp_ctx_new(NULL, &ctx), IMP_OK);
	if (!ctx)
		return CHECK_DONE();
	imp_arena_t *a = imp_arena_new(ctx, 0);
	CHECK(a != NULL);
	if (a) {
		run_table(a, plain_cases, IMP_ARRAY_LEN(plain_cases),
			  IMP_NORM_PLAIN);
		run_table(a, words_cases, IMP_ARRAY_LEN(words_cases),
			  IMP_NORM_WORDS);
		test_maps(a);
		test_edges(a);
		test_ascii_paths(a);
		imp_arena_free(a);
	}
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
