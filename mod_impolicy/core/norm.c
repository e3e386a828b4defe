/*
 * norm.c -- text normalisation before matching (implements norm.h).
 *
 * Purpose: turn a field's text into the two views the matchers work on,
 * each with a byte map back to the source so that hits can be reported and
 * redacted in the original text.
 *
 * IMP_NORM_PLAIN (detectors):
 *  P1. Invalid UTF-8 (bad lead or continuation bytes, overlongs, UTF-16
 *      surrogates, values above U+10FFFF, truncated sequences): every bad
 *      byte becomes one U+FFFD that maps to that byte.
 *  P2. Format characters (category Cf: zero-width space/joiners, word
 *      joiner, soft hyphen, bidi marks, tag characters) and the other
 *      Unicode "default ignorable" code points (variation selectors,
 *      Hangul fillers, ...) are removed: they are invisible, so a sender
 *      can hide them inside a card number or a word.
 *  P3. NFKC: compatibility decomposition, canonical reordering, canonical
 *      composition, so full-width "１２３" becomes "123" and "ﬁ" becomes
 *      "fi".  Case is kept.  Control characters are kept.
 *
 * IMP_NORM_WORDS (word lists), applied in this order:
 *  W1. P1 and P2 as above.
 *  W2. Unicode case folding and NFKD; then every combining mark (Mn, Mc,
 *      Me) is dropped, so "é" -> "e", "ñ" -> "n" (this also drops vowel
 *      signs of Indic scripts; list entries go through the same function,
 *      so matching stays consistent).  Hangul is recomposed.
 *  W3. Word characters are ASCII letters and digits, '@' and '$' (leet
 *      symbols, see W5) and every non-ASCII letter or number (L*, N*):
 *      Cyrillic, Greek, CJK ... survive, case-folded.  Everything else
 *      (punctuation, symbols, emoji, U+FFFD, spaces, controls) is a
 *      separator.  A token is a maximal run of word characters.
 *  W4. Spelled-out words: a chain of three or more single-character
 *      tokens (a letter, or a leetspeak character), each pair separated by
 *      exactly one separator character, the same one throughout and one of
 *      '.', ' ', '-', '_', '*', joins into one token when at least two of
 *      its members are letters: "f.u.c.k" and "f u c k" -> "fuck", while
 *      "I am a b" (only two single letters in a row) is left alone.  The
 *      two-letter minimum keeps "1.2.3" and "5 5 5" (numbers, versions)
 *      apart while still catching "s.h.1.t".
 *  W5. Leetspeak, only inside tokens that contain at least one letter:
 *      0->o 1->i 3->e 4->a 5->s 7->t 8->b @->a $->s.  So "sh1t" -> "shit",
 *      "@ss" and "a55" -> "ass", "$hit" -> "shit", but "2026" and
 *      "555-1234" keep their digits.  In a token without letters '@' and
 *      '$' are separators.  Other digits (2, 6, 9) stay digits.
 *      '!' is leetspeak for 'i' when a letter is directly on both sides
 *      ("sh!t" -> "shit"); everywhere else ("hello!", "wow!!", "! no")
 *      it stays a separator.  The price: a missing space after '!' joins
 *      two words ("Hi!How" -> "hiihow").  '|' is deliberately not mapped
 *      (to 'l' or 'i'): pipes join words in shell pipelines and tables
 *      ("grep x|sort", "name|shit"), where merging the tokens would hide
 *      listed words rather than reveal them.
 *  W6. Stretched letters: a run of three or more equal letters (after
 *      leetspeak) inside a token becomes one letter: "fuuuuck" -> "fuck",
 *      "shiiiit" -> "shit"; doubled letters stay ("ass", "committee").
 *  W7. Every run of separators between tokens becomes one ASCII space;
 *      leading and trailing separators are dropped.  The WORDS view thus
 *      holds only [a-z0-9], non-ASCII letters/numbers and single spaces,
 *      which is what imp_norm_wordbyte() and the lexicon rely on.
 *
 * Map: out->map[i] is the source offset of the character that produced
 * output byte i (all bytes of an expansion map to the same character; a
 * collapsed separator space maps to the first separator of its run; a
 * squeezed letter maps to the first letter of its run; a composed
 * character maps to its base); out->map[len] is the source length.  The
 * map never decreases (canonical reordering moves code points, not their
 * offsets), so [map[b], map[e]) is always a valid source span.
 *
 * Fast path: when every byte is below 0x80 no utf8proc call is made; PLAIN
 * is a copy, WORDS is one pass of the token machine over the source --
 * or, for text of plain letter and digit tokens (most chat), a quicker
 * pass with sixteen-byte blocks (norm_words_simple) that gives up, and
 * leaves the text to the machine, at the first thing it does not cover.  The
 * non-ASCII path decodes into a code point array, then feeds the same
 * token machine with an intermediate UTF-8 string.
 *
 * Limits: the canonical reordering and composition of non-starters work
 * on runs of at most NORM_MAX_RUN code points (UAX #15 "stream-safe"), so
 * "zalgo" text with thousands of marks stays linear.  Known gaps, by
 * design of the rules above: look-alike letters of other scripts
 * (Cyrillic "а" for Latin "a") are not mapped; W6 also squeezes honest
 * words ("xxx" -> "x", "hellllo" -> "helo"); non-ASCII digits count as
 * letters in W4 and W6; W4 needs single separators, so "f. u. c. k" stays
 * apart; and a second pass can join what the first left apart (the view
 * is not idempotent: "a  b  c" -> "a b c" -> "abc").
 *
 * Threading: pure functions; all memory comes from the caller's arena;
 * no global mutable state.  Reports IMP_OK, IMP_ERR_NOMEM, IMP_ERR_LIMIT
 * (source longer than 1 GiB) or IMP_ERR_INVALID (bad arguments).
 */
#include "norm.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <utf8proc.h>

#define NORM_MAX_LEN ((size_t)1 << 30)
/* Longest non-starter run reordered or composed as a unit (stream-safe
 * text has at most 30 non-starters in a row). */
#define NORM_MAX_RUN 32
/* utf8proc_decompose_char() output buffer; the longest full compatibility
 * decomposition (U+FDFA) has 18 code points. */
#define NORM_DECOMP_BUF 64
/* Separator marker used in the intermediate WORDS text for non-ASCII
 * separators; an ASCII control character, never a joining separator. */
#define NORM_SEP_MARK 0x01

/* ---- ASCII helpers ------------------------------------------------------- */

static bool norm_is_ascii(const unsigned char *s, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	/* Sixteen bytes at a time, the high bits gathered at the end: this
	 * check runs on every field. */
	if (n >= 16) {
		__m128i acc = _mm_setzero_si128();
		for (; i + 16 <= n; i += 16)
			acc = _mm_or_si128(
				acc, _mm_loadu_si128((const __m128i *)(s + i)));
		/* the last (overlapping) sixteen cover the tail */
		acc = _mm_or_si128(
			acc, _mm_loadu_si128((const __m128i *)(s + n - 16)));
		return _mm_movemask_epi8(acc) == 0;
	}
#endif
	/* Eight bytes at a time. */
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (w & UINT64_C(0x8080808080808080))
			return false;
	}
	for (; i < n; i++)
		if (s[i] & 0x80)
			return false;
	return true;
}

/* ---- the WORDS token machine ---------------------------------------------- */

enum { NORM_W_SEP = 0, NORM_W_ALPHA, NORM_W_DIGIT, NORM_W_SYM, NORM_W_HIGH };

/* Byte classes of the token machine: one load per byte on the hot path.
 * Every byte >= 0x80 is part of a non-ASCII word character (the
 * intermediate text holds no other non-ASCII characters). */
#define S NORM_W_SEP
#define A NORM_W_ALPHA
#define D NORM_W_DIGIT
#define Y NORM_W_SYM
#define H NORM_W_HIGH
/* clang-format off */
static const unsigned char norm_wtab[256] = {
	S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
	S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
	S, S, S, S, Y, S, S, S, S, S, S, S, S, S, S, S,
	D, D, D, D, D, D, D, D, D, D, S, S, S, S, S, S,
	Y, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
	A, A, A, A, A, A, A, A, A, A, A, S, S, S, S, S,
	S, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
	A, A, A, A, A, A, A, A, A, A, A, S, S, S, S, S,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
	H, H, H, H, H, H, H, H, H, H, H, H, H, H, H, H,
};
/* clang-format on */
#undef S
#undef A
#undef D
#undef Y
#undef H

static inline int norm_wclass(unsigned c)
{
	return norm_wtab[c & 0xFF];
}

/* Leetspeak letters (W5); 0 means "not a leet character". */
static const char norm_leet[128] = {
	['0'] = 'o', ['1'] = 'i', ['3'] = 'e', ['4'] = 'a', ['5'] = 's',
	['7'] = 't', ['8'] = 'b', ['@'] = 'a', ['$'] = 's',
};

static inline size_t norm_u8len(unsigned c)
{
	return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0x80 ? 2 : 1;
}

/* W5: a '!' at p with a letter (ASCII, or any non-ASCII word byte) right
 * before and after it is the letter 'i'. */
static inline bool norm_bang_letter(const unsigned char *in, size_t n, size_t p)
{
	if (in[p] != '!' || p == 0 || p + 1 >= n)
		return false;
	int b = norm_wtab[in[p - 1]], a = norm_wtab[in[p + 1]];
	return (b == NORM_W_ALPHA || b == NORM_W_HIGH) &&
	       (a == NORM_W_ALPHA || a == NORM_W_HIGH);
}

static inline bool norm_join_sep(unsigned c)
{
	return c == '.' || c == ' ' || c == '-' || c == '_' || c == '*';
}

typedef struct norm_words_s {
	const unsigned char *in;
	const uint32_t *imap; /* NULL: identity (ASCII fast path) */
	size_t n;
	char *o;
	uint32_t *om;
	size_t olen;
	bool pending;    /* a separator run awaits its space */
	size_t pend_pos; /* input position of the run's first separator */
	unsigned run;    /* equal letters seen in a row (W6) */
	uint32_t last;   /* that letter, packed as in norm_w_char() */
} norm_words_t;

static inline uint32_t norm_w_map(const norm_words_t *w, size_t p)
{
	return w->imap ? w->imap[p] : (uint32_t)p;
}

static inline void norm_w_sep(norm_words_t *w, size_t p)
{
	if (!w->pending) {
		w->pending = true;
		w->pend_pos = p;
	}
	w->run = 0;
}

/* Writes the pending space (never at the start: W7 trims). */
static inline void norm_w_flush(norm_words_t *w)
{
	if (w->pending) {
		if (w->olen > 0) {
			w->om[w->olen] = norm_w_map(w, w->pend_pos);
			w->o[w->olen++] = ' ';
		}
		w->pending = false;
	}
}

/* Emits the character at input position p (clen bytes, class cl) of a
 * token; has_letter says whether leetspeak applies (W5).  The character
 * is handled as its bytes packed into a uint32_t (first byte lowest), so
 * the W6 comparison is one integer compare on this hot path. */
static inline void norm_w_char(norm_words_t *w, size_t p, size_t clen, int cl,
			       bool has_letter)
{
	unsigned c = w->in[p];
	uint32_t key;
	bool letter = true;

	switch (cl) {
	case NORM_W_ALPHA:
		key = c | 0x20;
		break;
	case NORM_W_DIGIT:
		if (has_letter && norm_leet[c]) {
			key = (unsigned char)norm_leet[c];
		} else {
			key = c;
			letter = false;
		}
		break;
	case NORM_W_SYM:
		if (!has_letter) {
			norm_w_sep(w, p);
			return;
		}
		key = (unsigned char)norm_leet[c];
		break;
	case NORM_W_SEP: /* a '!' between letters (norm_bang_letter) */
		key = 'i';
		break;
	default: /* NORM_W_HIGH */
		key = 0;
		for (size_t k = 0; k < clen; k++)
			key |= (uint32_t)w->in[p + k] << (8 * k);
		break;
	}
	norm_w_flush(w);
	if (letter) {
		/* W6: keep two equal letters; on the third, take the second
		 * back, then drop the rest of the run. */
		if (w->run > 0 && key == w->last) {
			if (++w->run == 3)
				w->olen -= clen;
			if (w->run >= 3)
				return;
		} else {
			w->run = 1;
			w->last = key;
		}
	} else {
		w->run = 0;
	}
	if (clen == 1) {
		w->om[w->olen] = norm_w_map(w, p);
		w->o[w->olen++] = (char)key;
		return;
	}
	for (size_t k = 0; k < clen; k++) {
		w->om[w->olen] = norm_w_map(w, p + k);
		w->o[w->olen++] = (char)(key >> (8 * k));
	}
}

/* W4: measures the chain of single-character tokens starting at p.
 * Returns the number of members; *end gets the end of the last member,
 * *last_start its start and *letters how many members are letters. */
static size_t norm_w_chain(const norm_words_t *w, size_t p, size_t *end,
			   size_t *last_start, size_t *letters)
{
	const unsigned char *in = w->in;
	size_t n = w->n, q = p, members = 0;
	unsigned sepc = 0;

	*letters = 0;
	*end = *last_start = p;
	for (;;) {
		unsigned c = in[q];
		int cl = norm_wclass(c);
		size_t clen = cl == NORM_W_HIGH ? norm_u8len(c) : 1;
		if (cl == NORM_W_SEP || (cl == NORM_W_DIGIT && !norm_leet[c]))
			break;
		size_t e = q + clen;
		if (e < n && norm_wclass(in[e]) != NORM_W_SEP)
			break; /* not a single-character token */
		members++;
		if (cl == NORM_W_ALPHA || cl == NORM_W_HIGH)
			(*letters)++;
		*last_start = q;
		*end = e;
		if (e + 1 >= n || !norm_join_sep(in[e]) ||
		    (sepc && in[e] != sepc) ||
		    norm_wclass(in[e + 1]) == NORM_W_SEP)
			break;
		sepc = in[e];
		q = e + 1;
	}
	return members;
}

#if defined(__SSE2__)
/* The letter loop of norm_words_run() sixteen bytes at a time, for text
 * without a map (output offsets are input offsets).  Takes the leading run
 * of ASCII letters of in[0..16): writes them lowered to o and their offsets
 * base.. to om, and returns how many it took.  It stops before the third
 * letter of three equal ones (W6 squeezes it) and takes nothing when the
 * first letter continues the caller's run (run, last), so the scalar loop
 * makes every squeeze decision.  o and om need room for 16 entries (the
 * output never runs ahead of the input); only the first k are meaningful. */
static inline size_t norm_alpha_block(const unsigned char *in, char *o,
				      uint32_t *om, uint32_t base, unsigned run,
				      uint32_t last)
{
	__m128i v = _mm_loadu_si128((const __m128i *)in);
	__m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
	/* (c | 0x20) is in 'a'..'z' exactly for ASCII letters; bytes >= 0x80
	 * are negative in this signed compare and fall out. */
	__m128i al = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
				   _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1)));
	unsigned am = (unsigned)_mm_movemask_epi8(al);
	size_t k = am == 0xFFFF ? 16 : (size_t)__builtin_ctz(~am);
	if (k == 0)
		return 0;
	if (run > 0 && (uint32_t)(in[0] | 0x20) == last)
		return 0;
	if (k >= 3) {
		/* bit i: l[i] == l[i+1]; a triple starts where two such
		 * bits are adjacent */
		unsigned e = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(l, _mm_srli_si128(l, 1)));
		unsigned t = e & (e >> 1) & ((1u << (k - 2)) - 1);
		if (t)
			k = (size_t)__builtin_ctz(t) + 2;
	}
	_mm_storeu_si128((__m128i *)o, l);
	__m128i idx = _mm_add_epi32(_mm_set1_epi32((int)base),
				    _mm_setr_epi32(0, 1, 2, 3));
	const __m128i four = _mm_set1_epi32(4);
	for (int i = 0; i < 4; i++) {
		_mm_storeu_si128((__m128i *)(om + 4 * i), idx);
		idx = _mm_add_epi32(idx, four);
	}
	return k;
}
#endif

/* Runs W3..W7 over in[0..n) (valid UTF-8 whose non-ASCII characters are
 * all word characters) into o/om, which have room for n + 1 entries.
 * Returns the output length. */
#if defined(__GNUC__)
#define NORM_INLINE inline __attribute__((always_inline))
#else
#define NORM_INLINE inline
#endif

static NORM_INLINE size_t norm_words_run(const unsigned char *in,
					 const uint32_t *imap, size_t n,
					 uint32_t src_len, char *o,
					 uint32_t *om)
{
	norm_words_t w = {.in = in, .imap = imap, .n = n, .o = o, .om = om};
	size_t p = 0;
	/* Chains starting before this position are known not to join (a
	 * failed chain's suffixes fail too), which keeps the pass linear. */
	size_t nochain_until = 0;

	while (p < n) {
		int cl = norm_wclass(in[p]);
		if (cl == NORM_W_SEP) {
			norm_w_sep(&w, p);
			p++;
			continue;
		}
		/* A chain needs a single-character token, so most tokens
		 * skip the look-ahead after one byte. */
		if (p >= nochain_until &&
		    (cl == NORM_W_HIGH || p + 1 >= n ||
		     norm_wclass(in[p + 1]) == NORM_W_SEP)) {
			size_t end, last_start, letters;
			size_t m = norm_w_chain(&w, p, &end, &last_start,
						&letters);
			if (m >= 3 && letters >= 2) {
				/* Emit the members only, skipping their
				 * single separators. */
				while (p < end) {
					int mc = norm_wclass(in[p]);
					size_t ml = mc == NORM_W_HIGH
							    ? norm_u8len(in[p])
							    : 1;
					norm_w_char(&w, p, ml, mc, true);
					p += ml + 1;
				}
				p = end;
				continue;
			}
			if (m > 1)
				nochain_until = last_start;
		}
		if (cl == NORM_W_ALPHA) {
			/* The common case, in one pass: a token that starts
			 * with an ASCII letter holds a letter, so leetspeak
			 * applies to all of it (W5).  Lower-case and squeeze
			 * (W6) the letters in a tight loop; whatever else
			 * the token holds goes through norm_w_char. */
			norm_w_flush(&w);
			/* The state lives in locals here (w escapes into
			 * norm_w_char, which would force it to memory). */
			size_t olen = w.olen;
			unsigned run = w.run;
			uint32_t last = w.last;
			for (;;) {
#if defined(__SSE2__)
				/* ASCII text (no map): a whole run of
				 * letters at once, which also spares the
				 * mispredicted branch at each word's end. */
				if (!imap && n - p >= 16) {
					size_t k = norm_alpha_block(
						in + p, o + olen, om + olen,
						(uint32_t)p, run, last);
					if (k) {
						unsigned char l1 =
							(unsigned char)
								o[olen + k - 1];
						bool pair =
							k >= 2 &&
							(unsigned char)o[olen +
									 k -
									 2] ==
								l1;
						olen += k;
						p += k;
						run = pair ? 2 : 1;
						last = l1;
						if (p >= n)
							break;
						continue;
					}
				}
#endif
				unsigned c = in[p];
				int c2 = norm_wtab[c];
				if (c2 == NORM_W_ALPHA) {
					uint32_t key = c | 0x20;
					if (run > 0 && key == last) {
						if (++run == 3)
							olen--;
						if (run >= 3) {
							if (++p >= n)
								break;
							continue;
						}
					} else {
						run = 1;
						last = key;
					}
					om[olen] = imap ? imap[p] : (uint32_t)p;
					o[olen++] = (char)key;
					p++;
				} else if (c2 == NORM_W_SEP &&
					   !norm_bang_letter(in, n, p)) {
					break;
				} else {
					size_t l2 = c2 == NORM_W_HIGH
							    ? norm_u8len(c)
							    : 1;
					w.olen = olen;
					w.run = run;
					w.last = last;
					norm_w_char(&w, p, l2, c2, true);
					olen = w.olen;
					run = w.run;
					last = w.last;
					p += l2;
				}
				if (p >= n)
					break;
			}
			w.olen = olen;
			w.run = 0;
			continue;
		}
		/* A token that starts with a digit, a leet symbol or a
		 * non-ASCII character: find its end and whether it holds a
		 * letter, then emit it. */
		size_t q = p;
		unsigned seen = 0;
		while (q < n) {
			int c2 = norm_wclass(in[q]);
			if (c2 == NORM_W_SEP) {
				if (!norm_bang_letter(in, n, q))
					break;
				c2 = NORM_W_SYM; /* leaves the fast path */
			}
			seen |= 1u << c2;
			q++;
		}
		{
			bool has_letter = (seen & (1u << NORM_W_ALPHA |
						   1u << NORM_W_HIGH)) != 0;
			while (p < q) {
				int c2 = norm_wclass(in[p]);
				size_t l2 = c2 == NORM_W_HIGH
						    ? norm_u8len(in[p])
						    : 1;
				norm_w_char(&w, p, l2, c2, has_letter);
				p += l2;
			}
		}
		w.run = 0;
	}
	o[w.olen] = '\0';
	om[w.olen] = src_len;
	return w.olen;
}

#if defined(__SSE2__)
/* norm_words_simple's fast-forward over plain prose: at a token start p
 * (in[p] an ASCII letter, the pending space already written), with
 * p + 18 <= n, takes the bytes up to the last space j of in[p..p+16) when
 * [0, j] holds only ASCII letters and single spaces, no three equal
 * letters in a row, and no single-letter token that could start a W4
 * chain.  Those bytes are whole letter tokens with one space between
 * them, so the view is the bytes lowered (a space stays a space) with
 * the identity map -- what the scalar loop would write.  Returns j (the
 * space at p + j is left for the caller's separator loop), or 0 when the
 * block does not qualify. */
static inline size_t norm_words_block(const unsigned char *in, size_t p,
				      char *o, uint32_t *om)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(in + p));
	__m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
	__m128i al = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
				   _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1)));
	unsigned lm = (unsigned)_mm_movemask_epi8(al);
	unsigned sm = (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
	/* The bytes taken end at a space: the last one before the first
	 * byte that is neither letter nor space, and no later than the first
	 * of two spaces in a row (the caller's loop does the rest). */
	unsigned cut = 0xFFFFu;
	unsigned other = ~(lm | sm) & 0xFFFFu;
	unsigned dbl = sm & (sm >> 1);
	if (other)
		cut &= (1u << __builtin_ctz(other)) - 1;
	if (dbl)
		cut &= (2u << __builtin_ctz(dbl)) - 1;
	unsigned sp = sm & cut;
	if (!sp)
		return 0;
	unsigned j = 31u - (unsigned)__builtin_clz(sp);
	if (j < 2)
		return 0;
	/* W6: three equal letters (bit i: l[i] == l[i+1]) */
	unsigned e = (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(l, _mm_srli_si128(l, 1)));
	if (e & (e >> 1) & ((1u << (j - 2)) - 1) & lm)
		return 0;
	/* W4: a single-letter token at i < j, a joining space after it,
	 * then a word character at i + 2 and a separator (or the end) at
	 * i + 3.  Bits 14 and 15 of "word character at i + 2" come from the
	 * two bytes after the block (any word class counts). */
	unsigned single = lm & ~(lm << 1) & ~(lm >> 1) & ((1u << j) - 1);
	if (single) {
		/* word characters (not NORM_W_SEP): letters, digits, '@',
		 * '$' and bytes >= 0x80 -- bytes after j can be anything */
		__m128i wc = _mm_or_si128(
			al, _mm_and_si128(
				    _mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
				    _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1))));
		wc = _mm_or_si128(wc, _mm_cmpeq_epi8(v, _mm_set1_epi8('@')));
		wc = _mm_or_si128(wc, _mm_cmpeq_epi8(v, _mm_set1_epi8('$')));
		wc = _mm_or_si128(wc, _mm_cmplt_epi8(v, _mm_setzero_si128()));
		unsigned wm = (unsigned)_mm_movemask_epi8(wc);
		unsigned w2 = (wm >> 2) & 0x3FFFu;
		w2 |= (unsigned)(norm_wtab[in[p + 16]] != NORM_W_SEP) << 14;
		w2 |= (unsigned)(norm_wtab[in[p + 17]] != NORM_W_SEP) << 15;
		if (single & w2 & ~(w2 >> 1))
			return 0;
		/* i + 3 == 18 never occurs: i < j <= 15 */
	}
	_mm_storeu_si128((__m128i *)o, l);
	__m128i idx = _mm_add_epi32(_mm_set1_epi32((int)p),
				    _mm_setr_epi32(0, 1, 2, 3));
	const __m128i four = _mm_set1_epi32(4);
	for (int i = 0; i < 4; i++) {
		_mm_storeu_si128((__m128i *)(om + 4 * i), idx);
		idx = _mm_add_epi32(idx, four);
	}
	return j;
}
#endif

/* The common shape of ASCII chat text in one tight pass: tokens of ASCII
 * letters only or of digits only, between runs of separators.  For such
 * tokens W4-W6 reduce to "lower-case the letters, collapse the separator
 * runs" (W7), so the token machine's per-character bookkeeping is not
 * needed.  Anything else -- a token mixing classes, '@' or '$', a '!'
 * between letters (W5), three equal letters in a row (W6), a
 * single-character token followed by a joining separator and another
 * single-character token (a possible W4 chain) -- returns SIZE_MAX, and
 * the caller runs the full machine on the same input, which then decides.
 * The output and map are exactly the full machine's for every input this
 * pass accepts (test_norm compares both over generated text). */
static size_t norm_words_simple(const unsigned char *in, size_t n, char *o,
				uint32_t *om)
{
	size_t olen = 0, p = 0;
	while (p < n) {
		size_t s = p;
		while (p < n && norm_wtab[in[p]] == NORM_W_SEP) {
			if (in[p] == '!' && norm_bang_letter(in, n, p))
				return SIZE_MAX;
			p++;
		}
		if (p >= n)
			break;
		if (p > s && olen) {
			om[olen] = (uint32_t)s;
			o[olen++] = ' ';
		}
		size_t t = p;
		int cl = norm_wtab[in[p]];
#if defined(__SSE2__)
		if (cl == NORM_W_ALPHA && n - p >= 18) {
			size_t j = norm_words_block(in, p, o + olen, om + olen);
			if (j) {
				olen += j;
				p += j;
				continue;
			}
		}
#endif
		if (cl == NORM_W_ALPHA) {
			unsigned run = 0, last = 0;
#if defined(__SSE2__)
			/* The token's leading letters sixteen at a time (the
			 * output never runs ahead of the input, so o and om
			 * have room); the block stops before the third of
			 * three equal letters, which the loop below then
			 * refuses. */
			if (n - p >= 16) {
				size_t k = norm_alpha_block(in + p, o + olen,
							    om + olen,
							    (uint32_t)p, 0, 0);
				if (k) {
					last = (unsigned char)o[olen + k - 1];
					run = k >= 2 && (unsigned char)o[olen +
									 k -
									 2] ==
								      last
						      ? 2
						      : 1;
					olen += k;
					p += k;
				}
			}
#endif
			for (; p < n; p++) {
				unsigned c = in[p];
				if (norm_wtab[c] != NORM_W_ALPHA)
					break;
				unsigned key = c | 0x20;
				if (key == last) {
					if (++run >= 3)
						return SIZE_MAX;
				} else {
					run = 1;
					last = key;
				}
				om[olen] = (uint32_t)p;
				o[olen++] = (char)key;
			}
		} else if (cl == NORM_W_DIGIT) {
			for (; p < n && norm_wtab[in[p]] == NORM_W_DIGIT; p++) {
				om[olen] = (uint32_t)p;
				o[olen++] = (char)in[p];
			}
		} else {
			return SIZE_MAX;
		}
		if (p < n && norm_wtab[in[p]] != NORM_W_SEP)
			return SIZE_MAX; /* a mixed token */
		if (p - t == 1 && p + 1 < n && norm_join_sep(in[p]) &&
		    norm_wtab[in[p + 1]] != NORM_W_SEP &&
		    (p + 2 >= n || norm_wtab[in[p + 2]] == NORM_W_SEP))
			return SIZE_MAX; /* maybe a spelled-out word */
	}
	o[olen] = '\0';
	om[olen] = (uint32_t)n;
	return olen;
}

/* Two instances of the pass: the ASCII fast path maps identically (no
 * imap look-up per byte), the Unicode path through its map. */
static size_t norm_words_pass_ascii(const unsigned char *in, size_t n, char *o,
				    uint32_t *om)
{
	size_t r = norm_words_simple(in, n, o, om);
	if (r != SIZE_MAX)
		return r;
	return norm_words_run(in, NULL, n, (uint32_t)n, o, om);
}

static size_t norm_words_pass(const unsigned char *in, const uint32_t *imap,
			      size_t n, uint32_t src_len, char *o, uint32_t *om)
{
	return norm_words_run(in, imap, n, src_len, o, om);
}

/* ---- UTF-8 decoding and encoding ------------------------------------------- */

/* Decodes one character at s[0..n), n >= 1.  Invalid input yields U+FFFD
 * and consumes one byte (P1). */
static inline size_t norm_decode(const unsigned char *s, size_t n, int32_t *cp)
{
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = (int32_t)c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		if (n >= 2 && (s[1] & 0xC0) == 0x80) {
			*cp = (int32_t)(((c & 0x1F) << 6) | (s[1] & 0x3F));
			return 2;
		}
	} else if (c >= 0xE0 && c <= 0xEF) {
		if (n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
		    !(c == 0xE0 && s[1] < 0xA0) &&
		    !(c == 0xED && s[1] >= 0xA0)) {
			*cp = (int32_t)(((c & 0x0F) << 12) |
					((s[1] & 0x3Fu) << 6) | (s[2] & 0x3F));
			return 3;
		}
	} else if (c >= 0xF0 && c <= 0xF4) {
		if (n >= 4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
		    (s[3] & 0xC0) == 0x80 && !(c == 0xF0 && s[1] < 0x90) &&
		    !(c == 0xF4 && s[1] >= 0x90)) {
			*cp = (int32_t)(((c & 0x07) << 18) |
					((s[1] & 0x3Fu) << 12) |
					((s[2] & 0x3Fu) << 6) | (s[3] & 0x3F));
			return 4;
		}
	}
	*cp = 0xFFFD;
	return 1;
}

static inline size_t norm_enc_len(int32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static inline size_t norm_encode(int32_t cp, char *d)
{
	uint32_t u = (uint32_t)cp;
	if (u < 0x80) {
		d[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		d[0] = (char)(0xC0 | (u >> 6));
		d[1] = (char)(0x80 | (u & 0x3F));
		return 2;
	}
	if (u < 0x10000) {
		d[0] = (char)(0xE0 | (u >> 12));
		d[1] = (char)(0x80 | ((u >> 6) & 0x3F));
		d[2] = (char)(0x80 | (u & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | (u >> 18));
	d[1] = (char)(0x80 | ((u >> 12) & 0x3F));
	d[2] = (char)(0x80 | ((u >> 6) & 0x3F));
	d[3] = (char)(0x80 | (u & 0x3F));
	return 4;
}

/* ---- the code point array of the non-ASCII path ----------------------------- */

typedef struct norm_units_s {
	imp_arena_t *a;
	int32_t *cp;
	uint32_t *off; /* source offset of the character that produced it */
	size_t n, cap;
} norm_units_t;

static bool norm_units_grow(norm_units_t *u, size_t extra)
{
	if (u->n + extra <= u->cap)
		return true;
	size_t cap = u->cap * 2;
	if (cap < u->n + extra)
		cap = u->n + extra;
	/* The arena cannot realloc; the old arrays stay until the arena is
	 * reset, which only happens on the rare expanding decompositions. */
	int32_t *cp = imp_arena_alloc(u->a, cap * sizeof(*cp));
	uint32_t *off = imp_arena_alloc(u->a, cap * sizeof(*off));
	if (!cp || !off)
		return false;
	if (u->n) {
		memcpy(cp, u->cp, u->n * sizeof(*cp));
		memcpy(off, u->off, u->n * sizeof(*off));
	}
	u->cp = cp;
	u->off = off;
	u->cap = cap;
	return true;
}

static inline int norm_ccc(int32_t cp)
{
	/* Nothing below U+0300 has a non-zero combining class. */
	return cp < 0x300 ? 0 : utf8proc_get_property(cp)->combining_class;
}

/* True when cp may compose with what precedes it, so it must stay in the
 * same composition chunk: non-starters, the few starters that are second
 * in a canonical pair (all Mn/Mc), and Hangul vowel and trailing jamo. */
static bool norm_joins_previous(int32_t cp)
{
	if (cp < 0x300)
		return false;
	if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2))
		return true;
	const utf8proc_property_t *pr = utf8proc_get_property(cp);
	return pr->combining_class != 0 ||
	       pr->category == UTF8PROC_CATEGORY_MN ||
	       pr->category == UTF8PROC_CATEGORY_MC;
}

/* P1-P3 / W1-W2: decode, drop format characters, decompose (and fold). */
static int norm_decompose(norm_units_t *u, const unsigned char *s, size_t len,
			  int mode)
{
	utf8proc_option_t opts =
		UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_IGNORE;
	if (mode == IMP_NORM_WORDS)
		opts |= UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK;
	utf8proc_int32_t buf[NORM_DECOMP_BUF];

	for (size_t p = 0; p < len;) {
		int32_t cp;
		size_t k = norm_decode(s + p, len - p, &cp);
		if (cp < 0x80) {
			if (!norm_units_grow(u, 1))
				return IMP_ERR_NOMEM;
			if (mode == IMP_NORM_WORDS && cp >= 'A' && cp <= 'Z')
				cp |= 0x20;
			u->cp[u->n] = cp;
			u->off[u->n++] = (uint32_t)p;
			p += k;
			continue;
		}
		if (utf8proc_get_property(cp)->category ==
		    UTF8PROC_CATEGORY_CF) {
			p += k;
			continue;
		}
		int bc = UTF8PROC_BOUNDCLASS_START;
		utf8proc_ssize_t r = utf8proc_decompose_char(
			cp, buf, NORM_DECOMP_BUF, opts, &bc);
		if (r < 0 || r > NORM_DECOMP_BUF) {
			/* Cannot happen with Unicode as it is; keep the
			 * character visible rather than lose it. */
			buf[0] = 0xFFFD;
			r = 1;
		}
		if (!norm_units_grow(u, (size_t)r))
			return IMP_ERR_NOMEM;
		for (utf8proc_ssize_t i = 0; i < r; i++) {
			u->cp[u->n] = buf[i];
			u->off[u->n++] = (uint32_t)p;
		}
		p += k;
	}
	return IMP_OK;
}

/* Canonical ordering: a stable sort of each run of non-starters by
 * combining class (insertion sort; a run longer than NORM_MAX_RUN starts
 * a new one, as in UAX #15's stream-safe format). */
static void norm_reorder(norm_units_t *u)
{
	size_t run_start = 0;
	for (size_t i = 0; i < u->n; i++) {
		int c = norm_ccc(u->cp[i]);
		if (c == 0) {
			run_start = i + 1;
			continue;
		}
		if (i - run_start >= NORM_MAX_RUN) {
			run_start = i;
			continue;
		}
		for (size_t j = i; j > run_start && norm_ccc(u->cp[j - 1]) > c;
		     j--) {
			/* Offsets stay where they are, so the map never
			 * goes backwards; they all point into the same
			 * cluster anyway. */
			int32_t tc = u->cp[j];
			u->cp[j] = u->cp[j - 1];
			u->cp[j - 1] = tc;
		}
	}
}

/* Canonical composition, chunk by chunk: a chunk is a code point plus the
 * following ones that may compose with it (at most NORM_MAX_RUN).  The
 * composed chunk is written back in place (it never grows).  Composition
 * only replaces the starter and removes code points, so each output code
 * point after the first is matched to the next equal input code point and
 * takes its offset; the (possibly composed) starter keeps the chunk's. */
static void norm_compose(norm_units_t *u)
{
	size_t w = 0, i = 0;
	while (i < u->n) {
		size_t k = 1;
		while (i + k < u->n && k < NORM_MAX_RUN &&
		       norm_joins_previous(u->cp[i + k]))
			k++;
		if (k == 1) {
			u->cp[w] = u->cp[i];
			u->off[w++] = u->off[i];
			i++;
			continue;
		}
		utf8proc_int32_t tmp[NORM_MAX_RUN], tin[NORM_MAX_RUN];
		uint32_t toff[NORM_MAX_RUN];
		memcpy(tin, u->cp + i, k * sizeof(tin[0]));
		memcpy(tmp, tin, k * sizeof(tmp[0]));
		memcpy(toff, u->off + i, k * sizeof(toff[0]));
		utf8proc_ssize_t m = utf8proc_normalize_utf32(
			tmp, (utf8proc_ssize_t)k, UTF8PROC_COMPOSE);
		if (m <= 0 || (size_t)m > k) {
			/* Cannot happen; leave the chunk decomposed. */
			memcpy(tmp, tin, k * sizeof(tmp[0]));
			m = (utf8proc_ssize_t)k;
		}
		size_t at = 0;
		for (size_t j = 0; j < (size_t)m; j++) {
			if (j > 0) {
				size_t f = at + 1;
				while (f < k && tin[f] != tmp[j])
					f++;
				if (f < k)
					at = f;
			}
			u->cp[w] = tmp[j];
			u->off[w++] = toff[at];
		}
		i += k;
	}
	u->n = w;
}

/* ---- the two views ----------------------------------------------------------- */

static int norm_ascii(imp_arena_t *a, const char *src, size_t len, int mode,
		      imp_ntext_t *out)
{
	char *o = imp_arena_alloc(a, len + 1);
	uint32_t *om = imp_arena_alloc(a, (len + 1) * sizeof(*om));
	if (!o || !om)
		return IMP_ERR_NOMEM;
	if (mode == IMP_NORM_PLAIN) {
		/* ASCII is its own NFKC and has no format characters. */
		if (len)
			memcpy(o, src, len);
		o[len] = '\0';
		size_t i = 0;
#if defined(__SSE2__)
		/* The identity map, four entries per store. */
		__m128i idx = _mm_setr_epi32(0, 1, 2, 3);
		const __m128i four = _mm_set1_epi32(4);
		for (; i + 4 <= len + 1; i += 4) {
			_mm_storeu_si128((__m128i *)(om + i), idx);
			idx = _mm_add_epi32(idx, four);
		}
#endif
		for (; i <= len; i++)
			om[i] = (uint32_t)i;
		out->len = len;
	} else {
		out->len = norm_words_pass_ascii((const unsigned char *)src,
						 len, o, om);
	}
	out->s = o;
	out->map = om;
	return IMP_OK;
}

static bool norm_is_wordchar(int32_t cp)
{
	switch (utf8proc_get_property(cp)->category) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return true;
	default:
		return false;
	}
}

static int norm_unicode(imp_arena_t *a, const char *src, size_t len, int mode,
			imp_ntext_t *out)
{
	norm_units_t u = {.a = a};
	if (!norm_units_grow(&u, len + 16))
		return IMP_ERR_NOMEM;
	int rc = norm_decompose(&u, (const unsigned char *)src, len, mode);
	if (rc != IMP_OK)
		return rc;
	norm_reorder(&u);
	norm_compose(&u);

	size_t blen = 0;
	for (size_t i = 0; i < u.n; i++)
		blen += norm_enc_len(u.cp[i]);
	char *b = imp_arena_alloc(a, blen + 1);
	uint32_t *bm = imp_arena_alloc(a, (blen + 1) * sizeof(*bm));
	if (!b || !bm)
		return IMP_ERR_NOMEM;
	size_t o = 0;
	for (size_t i = 0; i < u.n; i++) {
		int32_t cp = u.cp[i];
		size_t k;
		if (mode == IMP_NORM_WORDS && cp >= 0x80 &&
		    !norm_is_wordchar(cp)) {
			b[o] = NORM_SEP_MARK;
			k = 1;
		} else {
			k = norm_encode(cp, b + o);
		}
		for (size_t j = 0; j < k; j++)
			bm[o + j] = u.off[i];
		o += k;
	}
	b[o] = '\0';
	bm[o] = (uint32_t)len;

	if (mode == IMP_NORM_PLAIN) {
		out->s = b;
		out->len = o;
		out->map = bm;
		return IMP_OK;
	}
	/* WORDS: the intermediate text holds folded, mark-free code points
	 * with non-ASCII separators turned into NORM_SEP_MARK; the token
	 * machine never grows its input. */
	char *w = imp_arena_alloc(a, o + 1);
	uint32_t *wm = imp_arena_alloc(a, (o + 1) * sizeof(*wm));
	if (!w || !wm)
		return IMP_ERR_NOMEM;
	out->len = norm_words_pass((const unsigned char *)b, bm, o,
				   (uint32_t)len, w, wm);
	out->s = w;
	out->map = wm;
	return IMP_OK;
}

bool imp_norm_is_ascii(const char *src, size_t len)
{
	return !len || (src && norm_is_ascii((const unsigned char *)src, len));
}

int imp_norm(imp_arena_t *a, const char *src, size_t len, int mode,
	     imp_ntext_t *out)
{
	if (!a || !out || (!src && len) ||
	    (mode != IMP_NORM_PLAIN && mode != IMP_NORM_WORDS))
		return IMP_ERR_INVALID;
	out->s = NULL;
	out->len = 0;
	out->map = NULL;
	if (len > NORM_MAX_LEN)
		return IMP_ERR_LIMIT;
	if (!src)
		src = "";
	if (norm_is_ascii((const unsigned char *)src, len))
		return norm_ascii(a, src, len, mode, out);
	return norm_unicode(a, src, len, mode, out);
}
