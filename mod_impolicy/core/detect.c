/*
 * detect.c -- validated detectors for confidential data (see detect.h).
 *
 * Purpose: find card numbers, IBANs, SSNs, addresses, phone numbers and
 * secrets in the PLAIN view of a field, with few false positives: every
 * candidate a regex extracts must pass a validator (Luhn and brand table,
 * ISO 13616 length and mod-97, SSA structure rules, entropy, JWT header
 * decoding ...) before it becomes a hit.
 *
 * Mechanism: one prefilter pattern set (imp_mpat_t, ids = detector index)
 * is compiled per detector set.  Its patterns are cheap, bounded and may
 * over-match; a scan only tells which detectors may have something.  Those
 * detectors then run their PCRE2 (JIT) extraction pattern over the text,
 * with the match and depth limits of the thread's match context, and every
 * candidate goes through the detector's validator.  A custom detector's own
 * pattern doubles as its prefilter when Vectorscan accepts it; otherwise
 * (backreferences, lookaround, or the PCRE2 engine, where a prefilter would
 * cost as much as the extraction) the detector always runs.
 *
 * Confidence: each validator gives a base (0..100); a context word found
 * (case-insensitively, as a whole word) within the detector's window of
 * characters before the hit adds DET_CONTEXT_BONUS, capped at 100.
 *
 * Deliberate exclusions: well-known test card numbers (the processors'
 * published sandbox numbers) and advertising SSNs are not hits: they are
 * test data, not leaks, and developers paste them all day; flagging them
 * would train users to ignore the policy.  AWS's documented example key
 * (ending in EXAMPLE) is excluded for the same reason.
 *
 * Invariants: built-ins always occupy indexes 0..DET_N_BUILTIN-1 in the
 * order of det_builtins[], so masks computed from names are stable; at
 * most 64 detectors per set.
 *
 * Threading: a detector set is immutable after build and shared; scans use
 * the caller's imp_detscratch_t (mpat scratch, PCRE2 match context with
 * limits, match data, JIT stack) and the caller's scratch arena.
 *
 * Reports: build errors (bad custom pattern, unknown validator, duplicate
 * or reserved name, too many detectors) to the error list at the spec's
 * FILE:LINE:COL; a scan that hits a PCRE2 limit sets *limited.  Never logs
 * the scanned text.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "detect.h"

#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#define DET_MAX 64
#define DET_MATCH_LIMIT 100000u
#define DET_DEPTH_LIMIT 10000u
#define DET_CONTEXT_BONUS 25u
#define DET_DEFAULT_WINDOW 40u
#define DET_DEFAULT_CONFIDENCE 70u
#define DET_OVECTOR_PAIRS 16u

enum { DET_VAL_NONE = 0, DET_VAL_LUHN, DET_VAL_MOD97 };

/* Validates the candidate [*start, *end) of text (the span of the
 * extraction's `group`, ov holding all groups) and may narrow it.  Returns
 * the base confidence, or -1 to drop the candidate. */
typedef int (*det_check_fn)(const char *text, size_t len, const PCRE2_SIZE *ov,
			    int nov, size_t *start, size_t *end);

typedef struct det_pf_s {
	const char *expr;
	unsigned flags; /* IMP_MPAT_* */
} det_pf_t;

typedef struct det_builtin_s {
	const char *name;
	const char *pattern; /* PCRE2 extraction */
	int group;           /* capture group giving the span */
	det_check_fn check;
	det_pf_t pf[3]; /* prefilters, NULL-terminated */
	const char *const *context;
	bool credential;
} det_builtin_t;

typedef struct det_s {
	const char *name;
	pcre2_code *re;
	int group;
	det_check_fn check; /* built-ins */
	int validator;      /* customs: DET_VAL_* */
	unsigned base;      /* customs */
	const char *const *context;
	size_t n_context;
	unsigned window;
	bool always; /* no prefilter: always runs when wanted */
} det_t;

struct imp_detset_s {
	det_t dets[DET_MAX];
	size_t n;
	imp_mpat_t *pf;        /* prefilters of every detector */
	imp_mpat_t *pf_custom; /* only the custom ones; NULL when none */
	uint64_t credential;
	uint64_t always; /* detectors without a prefilter (det_t.always) */
};

struct imp_detscratch_s {
	const imp_ctx_t *ctx;
	imp_mpat_scratch_t *ms;
	pcre2_general_context *gctx;
	pcre2_match_context *mctx;
	pcre2_match_data *md;
	pcre2_jit_stack *jit;
};

/* ---- small helpers --------------------------------------------------------- */

static bool det_isdigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool det_isalpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool det_isalnum(unsigned char c)
{
	return det_isdigit(c) || det_isalpha(c);
}

static unsigned char det_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
}

static bool det_issep(unsigned char c)
{
	return c == ' ' || c == '-' || c == '.';
}

/* Copies the digits of s into out (at most max), skipping separators.
 * Returns the digit count, or -1 when another character appears or there
 * are more than max digits. */
static int det_digits(const char *s, size_t n, char *out, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (det_isdigit(c)) {
			if (k == max)
				return -1;
			out[k++] = (char)c;
		} else if (!det_issep(c)) {
			return -1;
		}
	}
	return (int)k;
}

/* ---- exported validators ---------------------------------------------------- */

bool imp_luhn_valid(const char *s, size_t n)
{
	char d[64];
	int k = det_digits(s, n, d, sizeof(d));
	if (k < 2)
		return false;
	unsigned sum = 0;
	bool dbl = false;
	for (int i = k - 1; i >= 0; i--) {
		unsigned v = (unsigned)(d[i] - '0');
		if (dbl) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
		dbl = !dbl;
	}
	return sum % 10 == 0;
}

typedef struct det_iban_len_s {
	char cc[3];
	unsigned char len;
} det_iban_len_t;

/* ISO 13616 registry lengths: every SEPA country and the common others. */
static const det_iban_len_t det_iban_lens[] = {
	{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20},
	{"BE", 16}, {"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21},
	{"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28},
	{"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
	{"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28},
	{"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
	{"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
	{"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
	{"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18},
	{"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29},
	{"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31}, {"SE", 24}, {"SI", 19},
	{"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
	{"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

static unsigned det_iban_country_len(const char *cc)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(det_iban_lens); i++)
		if (det_iban_lens[i].cc[0] == cc[0] &&
		    det_iban_lens[i].cc[1] == cc[1])
			return det_iban_lens[i].len;
	return 0;
}

/* ISO 7064 MOD 97-10 over alphanumerics (A=10 ... Z=35), processed from
 * position `rot` onwards and then wrapping around (IBAN: rot = 4). */
static unsigned det_mod97(const char *a, size_t n, size_t rot)
{
	unsigned r = 0;
	for (size_t j = 0; j < n; j++) {
		unsigned char c = (unsigned char)a[(j + rot) % n];
		if (det_isdigit(c))
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		else
			r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
	}
	return r;
}

/* Upper-cased alphanumerics of s, separators skipped; -1 on anything
 * else or overflow. */
static int det_alnums(const char *s, size_t n, char *out, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (det_isalnum(c)) {
			if (k == max)
				return -1;
			out[k++] = (char)det_upper(c);
		} else if (!det_issep(c)) {
			return -1;
		}
	}
	return (int)k;
}

bool imp_iban_valid(const char *s, size_t n)
{
	char a[40];
	int k = det_alnums(s, n, a, sizeof(a));
	if (k < 15 || !det_isalpha((unsigned char)a[0]) ||
	    !det_isalpha((unsigned char)a[1]) ||
	    !det_isdigit((unsigned char)a[2]) ||
	    !det_isdigit((unsigned char)a[3]))
		return false;
	if (det_iban_country_len(a) != (unsigned)k)
		return false;
	return det_mod97(a, (size_t)k, 4) == 1;
}

typedef struct det_brand_s {
	unsigned lo, hi;      /* prefix range, inclusive */
	unsigned char plen;   /* digits of the prefix */
	unsigned char minlen; /* card length range */
	unsigned char maxlen;
	const char *brand;
} det_brand_t;

/* First match wins: narrower ranges come before the wider ones they sit
 * in (Discover's 622126-622925 inside UnionPay's 62). */
static const det_brand_t det_brands[] = {
	{34, 34, 2, 15, 15, "amex"},
	{37, 37, 2, 15, 15, "amex"},
	{300, 305, 3, 14, 19, "diners"},
	{3095, 3095, 4, 14, 19, "diners"},
	{36, 36, 2, 14, 19, "diners"},
	{38, 39, 2, 16, 19, "diners"},
	{3528, 3589, 4, 16, 19, "jcb"},
	{6011, 6011, 4, 16, 19, "discover"},
	{644, 649, 3, 16, 19, "discover"},
	{65, 65, 2, 16, 19, "discover"},
	{622126, 622925, 6, 16, 19, "discover"},
	{62, 62, 2, 16, 19, "unionpay"},
	{51, 55, 2, 16, 16, "mastercard"},
	{2221, 2720, 4, 16, 16, "mastercard"},
	{5018, 5018, 4, 13, 19, "maestro"},
	{5020, 5020, 4, 13, 19, "maestro"},
	{5038, 5038, 4, 13, 19, "maestro"},
	{5893, 5893, 4, 13, 19, "maestro"},
	{6304, 6304, 4, 13, 19, "maestro"},
	{6759, 6759, 4, 13, 19, "maestro"},
	{6761, 6763, 4, 13, 19, "maestro"},
	{56, 58, 2, 13, 19, "maestro"},
	{4, 4, 1, 13, 19, "visa"},
};

const char *imp_card_brand(const char *s, size_t n)
{
	char d[20];
	int k = det_digits(s, n, d, sizeof(d));
	if (k < 13 || k > 19)
		return NULL;
	for (size_t i = 0; i < IMP_ARRAY_LEN(det_brands); i++) {
		const det_brand_t *b = &det_brands[i];
		unsigned p = 0;
		for (unsigned j = 0; j < b->plen; j++)
			p = p * 10 + (unsigned)(d[j] - '0');
		if (p >= b->lo && p <= b->hi)
			return k >= b->minlen && k <= b->maxlen ? b->brand
								: NULL;
	}
	return NULL;
}

bool imp_ssn_valid(const char *s, size_t n)
{
	char d[9];
	/* Exactly AAA GG SSSS with one separator style, or none. */
	if (n == 11) {
		if (s[3] != s[6] || (s[3] != '-' && s[3] != ' '))
			return false;
	} else if (n != 9) {
		return false;
	}
	if (det_digits(s, n, d, sizeof(d)) != 9)
		return false;
	if (n == 11 && (!det_isdigit((unsigned char)s[2]) ||
			!det_isdigit((unsigned char)s[5])))
		return false;
	if (memcmp(d, "000", 3) == 0 || memcmp(d, "666", 3) == 0 || d[0] == '9')
		return false;
	if (memcmp(d + 3, "00", 2) == 0 || memcmp(d + 5, "0000", 4) == 0)
		return false;
	/* Advertising numbers printed on sample cards (Woolworth wallet,
	 * Social Security Administration pamphlet). */
	if (memcmp(d, "078051120", 9) == 0 || memcmp(d, "219099999", 9) == 0)
		return false;
	return true;
}

double imp_entropy(const char *s, size_t n)
{
	if (n == 0)
		return 0.0;
	size_t cnt[256] = {0};
	for (size_t i = 0; i < n; i++)
		cnt[(unsigned char)s[i]]++;
	double h = 0.0;
	for (size_t i = 0; i < 256; i++) {
		if (!cnt[i])
			continue;
		double p = (double)cnt[i] / (double)n;
		h -= p * log2(p);
	}
	return h;
}

/* ---- built-in checks ---------------------------------------------------------- */

/* Processor sandbox numbers (Stripe, Braintree, Adyen, PayPal docs). */
static const char *const det_test_cards[] = {
	"4111111111111111", "4242424242424242", "4012888888881881",
	"4222222222222",    "4000056655665556", "4000000000000002",
	"4000000000000077", "4000000000009995", "4917610000000000",
	"5555555555554444", "5105105105105100", "5200828282828210",
	"5454545454545454", "2223003122003222", "2222400070000005",
	"378282246310005",  "371449635398431",  "378734493671000",
	"6011111111111117", "6011000990139424", "6011000000000004",
	"30569309025904",   "38520000023237",   "36227206271667",
	"3056930009020004", "3530111333300000", "3566002020360505",
	"6200000000000005", "6759649826438453", "5019717010103742",
};

static int det_check_card(const char *text, size_t len, const PCRE2_SIZE *ov,
			  int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	char d[20];
	int k = det_digits(s, n, d, sizeof(d) - 1);
	if (k < 13 || k > 19 || !imp_luhn_valid(s, n) || !imp_card_brand(s, n))
		return -1;
	d[k] = '\0';
	for (size_t i = 0; i < IMP_ARRAY_LEN(det_test_cards); i++)
		if (strcmp(d, det_test_cards[i]) == 0)
			return -1;
	return 75;
}

static int det_check_iban(const char *text, size_t len, const PCRE2_SIZE *ov,
			  int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	char cc[2] = {(char)det_upper((unsigned char)s[0]),
		      (char)det_upper((unsigned char)s[1])};
	unsigned want = det_iban_country_len(cc);
	if (!want)
		return -1;
	/* The extraction may run on into following groups ("... 00 12");
	 * cut at the country's length when that falls on a boundary. */
	size_t k = 0, i = 0;
	for (; i < n && k < want; i++)
		if (det_isalnum((unsigned char)s[i]))
			k++;
	if (k != want || (i < n && det_isalnum((unsigned char)s[i])))
		return -1;
	if (!imp_iban_valid(s, i))
		return -1;
	*end = *start + i;
	return 85;
}

static int det_check_ssn(const char *text, size_t len, const PCRE2_SIZE *ov,
			 int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	if (!imp_ssn_valid(s, n))
		return -1;
	/* Nine bare digits are weak evidence on their own; context (a word
	 * like "ssn" nearby) is what lifts them over the default minimum. */
	if (n == 9)
		return 30;
	return s[3] == '-' ? 60 : 45;
}

/* File extensions that follow an '@' in asset names (logo@2x.png). */
static const char *const det_not_tlds[] = {
	"png", "jpg", "jpeg", "gif",  "svg", "webp", "bmp", "ico", "js",
	"css", "ts",  "map",  "json", "xml", "txt",  "pdf", "log", "tmp",
};

static int det_check_email(const char *text, size_t len, const PCRE2_SIZE *ov,
			   int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	const char *at = memchr(s, '@', n);
	if (!at || at == s)
		return -1;
	size_t local = (size_t)(at - s);
	if (s[0] == '.' || s[local - 1] == '.')
		return -1;
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return -1;
	const char *tld = s + n;
	while (tld > at && tld[-1] != '.')
		tld--;
	size_t tn = (size_t)(s + n - tld);
	if (tn < 2)
		return -1;
	for (size_t i = 0; i < IMP_ARRAY_LEN(det_not_tlds); i++)
		if (imp_strcaseeq_n(tld, tn, det_not_tlds[i],
				    strlen(det_not_tlds[i])))
			return -1;
	return 90;
}

/* The digits of s in order, whatever else surrounds them. */
static size_t det_digits_any(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (det_isdigit((unsigned char)s[i]))
			out[k++] = s[i];
	return k;
}

static int det_check_phone(const char *text, size_t len, const PCRE2_SIZE *ov,
			   int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	size_t digits = 0, groups = 0, glen[8] = {0};
	bool in = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (det_isdigit(c)) {
			digits++;
			if (!in) {
				if (groups == 8)
					return -1;
				groups++;
				in = true;
			}
			glen[groups - 1]++;
		} else {
			in = false;
			/* Doubled separators are not how numbers are
			 * written. */
			if (i + 1 < n && (c == '.' || c == '-') &&
			    (s[i + 1] == '.' || s[i + 1] == '-'))
				return -1;
		}
	}
	if (s[0] == '+') {
		/* E.164: country code and number, 7..15 digits. */
		if (digits < 7 || digits > 15 || s[1] == '0')
			return -1;
		return 65;
	}
	/* NANP: optional leading 1, then NXX NXX XXXX. */
	char dd[16];
	if (digits > sizeof(dd) || det_digits_any(s, n, dd) != digits)
		return -1;
	size_t g = 0;
	if (digits == 11 && dd[0] == '1' && groups == 4 && glen[0] == 1)
		g = 1;
	else if (digits != 10)
		return -1;
	/* Area code and exchange start with 2-9. */
	if (dd[g] < '2' || dd[g + 3] < '2')
		return -1;
	if (groups - g == 1)
		return 35; /* bare ten digits: weak without context */
	if (groups - g != 3 || glen[g] != 3 || glen[g + 1] != 3 ||
	    glen[g + 2] != 4)
		return -1;
	return 60;
}

static int det_check_pem(const char *text, size_t len, const PCRE2_SIZE *ov,
			 int nov, size_t *start, size_t *end)
{
	/* With the END marker and a body it is a whole key. */
	return nov > 1 && ov[2] != PCRE2_UNSET ? 100 : 90;
}

static int det_check_aws(const char *text, size_t len, const PCRE2_SIZE *ov,
			 int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	if (n >= 7 && memcmp(s + n - 7, "EXAMPLE", 7) == 0)
		return -1;
	return imp_entropy(s + 4, n - 4) >= 2.5 ? 90 : -1;
}

/* Vendor tokens are random: a low-entropy body is a placeholder
 * ("ghp_xxxx..."). */
static int det_check_token(const char *text, size_t len, const PCRE2_SIZE *ov,
			   int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	const char *body = memchr(s, '_', n);
	if (!body || (size_t)(body - s) > 10)
		body = memchr(s, '-', n);
	if (!body)
		body = s;
	size_t bn = n - (size_t)(body - s);
	return imp_entropy(body, bn) >= 3.0 ? 95 : -1;
}

static int det_b64url(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static int det_check_jwt(const char *text, size_t len, const PCRE2_SIZE *ov,
			 int nov, size_t *start, size_t *end)
{
	const char *s = text + *start;
	size_t n = *end - *start;
	const char *dot = memchr(s, '.', n);
	if (!dot)
		return -1;
	/* Decode (a bounded prefix of) the header segment. */
	char out[768];
	size_t on = 0, hn = (size_t)(dot - s);
	unsigned acc = 0, bits = 0;
	for (size_t i = 0; i < hn && on < sizeof(out) - 1; i++) {
		int v = det_b64url((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[on++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[on] = '\0';
	size_t i = 0;
	while (i < on && (out[i] == ' ' || out[i] == '\t' || out[i] == '\n'))
		i++;
	if (i >= on || out[i] != '{' || !strstr(out + i, "\"alg\""))
		return -1;
	return 90;
}

/* Placeholders people type instead of a password. */
static const char *const det_pw_placeholders[] = {
	"password", "changeme", "redacted", "example", "hidden",
	"xxxxxxxx", "secret",   "unknown",  "notset",
};

static int det_check_password(const char *text, size_t len,
			      const PCRE2_SIZE *ov, int nov, size_t *start,
			      size_t *end)
{
	size_t b = *start, e = *end;
	/* Trailing sentence punctuation and closing quotes are not part of
	 * the value; '!' and '?' are kept, passwords often end with them. */
	while (e > b && strchr(".,;:)\"'`]}", text[e - 1]))
		e--;
	size_t n = e - b;
	const char *s = text + b;
	if (n < 6)
		return -1;
	if (s[0] == '<' || s[0] == '{' || s[0] == '$' || s[0] == '[')
		return -1; /* <password>, {{pw}}, ${PW}, [redacted] */
	for (size_t i = 0; i < IMP_ARRAY_LEN(det_pw_placeholders); i++)
		if (imp_strcaseeq_n(s, n, det_pw_placeholders[i],
				    strlen(det_pw_placeholders[i])))
			return -1;
	if (imp_entropy(s, n) < 2.5)
		return -1;
	/* An ordinary word after "password is" ("required", "incorrect")
	 * is prose, not a disclosure: one character class needs length. */
	bool lo = false, up = false, dg = false, sy = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'a' && c <= 'z')
			lo = true;
		else if (c >= 'A' && c <= 'Z')
			up = true;
		else if (det_isdigit(c))
			dg = true;
		else
			sy = true;
	}
	int classes = lo + up + dg + sy;
	if (classes < 2 && n < 12)
		return -1;
	if (classes == 2 && up && lo && !dg && !sy && n < 12 &&
	    det_upper((unsigned char)s[0]) == (unsigned char)s[0]) {
		/* "Welcome" -- a capitalised word; "hUnTeR" passes. */
		bool rest_lower = true;
		for (size_t i = 1; i < n; i++)
			if (s[i] >= 'A' && s[i] <= 'Z')
				rest_lower = false;
		if (rest_lower)
			return -1;
	}
	*end = e;
	/* Group 1 is the separator: ':' '=' or "is" is an explicit
	 * disclosure, bare whitespace is weaker. */
	bool explicit_sep = false;
	if (nov > 1 && ov[2] != PCRE2_UNSET)
		for (size_t i = ov[2]; i < ov[3]; i++)
			if (text[i] != ' ' && text[i] != '\t')
				explicit_sep = true;
	return explicit_sep ? 80 : 60;
}

/* ---- the built-in table ------------------------------------------------- */

static const char *const det_ctx_card[] = {
	"card",    "credit", "debit", "visa",   "mastercard", "amex", "cc",
	"payment", "cvv",    "cvc",   "expiry", "exp",        NULL};
static const char *const det_ctx_iban[] = {
	"iban", "account", "bank", "transfer", "sepa", "wire", "bic", NULL};
static const char *const det_ctx_ssn[] = {
	"ssn", "social security", "social", "ss#", "tax id", "tin", NULL};
static const char *const det_ctx_email[] = {"email", "e-mail", "mail",
					    "contact", NULL};
static const char *const det_ctx_phone[] = {"phone",    "tel",    "call",
					    "mobile",   "cell",   "fax",
					    "whatsapp", "number", NULL};
static const char *const det_ctx_secret[] = {
	"token", "key", "secret", "api", "credentials", "access", NULL};
static const char *const det_ctx_password[] = {"login", "account",  "vpn",
					       "wifi",  "server",   "admin",
					       "user",  "username", NULL};

#define DET_NUM_LB "(?<!\\d)(?<!\\d[ -])"
#define DET_NUM_LA "(?![ -]?\\d)"
#define DET_PEM_KIND "(?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?"

static const det_builtin_t det_builtins[] = {
	{"payment_card",
	 DET_NUM_LB "\\d(?:[ -]?\\d){12,18}" DET_NUM_LA,
	 0,
	 det_check_card,
	 {{"\\d(?:[ -]?\\d){12}", 0}},
	 det_ctx_card,
	 false},
	{"iban",
	 "(?i)(?<![a-z0-9])[a-z]{2}\\d{2}(?: ?[a-z0-9]{4}){2,7}"
	 "(?: ?[a-z0-9]{1,3})?(?![a-z0-9])",
	 0,
	 det_check_iban,
	 {{"[a-z]{2}\\d{2} ?[a-z0-9]{4}", IMP_MPAT_CASELESS}},
	 det_ctx_iban,
	 false},
	{"us_ssn",
	 DET_NUM_LB "\\d{3}([ -]?)\\d{2}\\1\\d{4}" DET_NUM_LA,
	 0,
	 det_check_ssn,
	 {{"\\d{3}[ -]?\\d{2}[ -]?\\d{4}", 0}},
	 det_ctx_ssn,
	 false},
	{"email",
	 "(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
	 "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+"
	 "[A-Za-z]{2,24}(?![A-Za-z0-9-])",
	 0,
	 det_check_email,
	 {{"@", IMP_MPAT_LITERAL}},
	 det_ctx_email,
	 false},
	{"phone",
	 "(?<![\\w+])(?<!\\d[ .-])"
	 "(?:\\+\\d[\\d ().-]{5,22}\\d|1[ .-]\\d{3}[ .-]\\d{3}[ .-]\\d{4}"
	 "|\\(\\d{3}\\) ?\\d{3}[ .-]?\\d{4}|\\d{3}[ .-]?\\d{3}[ .-]?\\d{4})"
	 "(?![ .-]?\\d)",
	 0,
	 det_check_phone,
	 {{"\\d{3}[ .)-]{0,2}\\d{3}", 0}, {"\\+\\d", 0}},
	 det_ctx_phone,
	 false},
	{"private_key",
	 "-----BEGIN " DET_PEM_KIND "PRIVATE KEY(?: BLOCK)?-----"
	 "(?:[A-Za-z0-9+/=:,\\s-]{0,16384}?(-----END " DET_PEM_KIND
	 "PRIVATE KEY(?: BLOCK)?-----))?",
	 0,
	 det_check_pem,
	 {{"PRIVATE KEY", IMP_MPAT_LITERAL}},
	 det_ctx_secret,
	 true},
	{"aws_key",
	 "(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])",
	 0,
	 det_check_aws,
	 {{"A[KS]IA[A-Z2-7]{16}", 0}},
	 det_ctx_secret,
	 true},
	{"github_token",
	 "(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|"
	 "github_pat_[A-Za-z0-9_]{82})(?![A-Za-z0-9_])",
	 0,
	 det_check_token,
	 {{"gh[pousr]_[A-Za-z0-9]{36}", 0}, {"github_pat_", IMP_MPAT_LITERAL}},
	 det_ctx_secret,
	 true},
	{"gitlab_token",
	 "(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,255}",
	 0,
	 det_check_token,
	 {{"glpat-", IMP_MPAT_LITERAL}},
	 det_ctx_secret,
	 true},
	{"slack_token",
	 "(?<![A-Za-z0-9])xox[bpars]-[0-9A-Za-z-]{10,255}"
	 "|https?://hooks\\.slack\\.com/(?:services|workflows)/"
	 "[A-Za-z0-9_/-]{10,255}",
	 0,
	 det_check_token,
	 {{"xox[bpars]-", 0}, {"hooks.slack.com/", IMP_MPAT_LITERAL}},
	 det_ctx_secret,
	 true},
	{"jwt",
	 "(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,4096}\\.[A-Za-z0-9_-]{2,8192}"
	 "\\.[A-Za-z0-9_-]{0,4096}(?![A-Za-z0-9_-])",
	 0,
	 det_check_jwt,
	 {{"eyJ", IMP_MPAT_LITERAL}},
	 det_ctx_secret,
	 true},
	{"password",
	 "(?i)(?<![a-z0-9])(?:pass(?:word|wd|code|phrase)?|pwd|pw)"
	 "(?![a-z0-9])[\"']?"
	 "(?:\\s+(?:for|to|on|of)\\s+(?:the\\s+|my\\s+|our\\s+)?"
	 "[^\\s:=]{1,40})?"
	 "(\\s*[:=]\\s*|\\s+is:?\\s+|\\s+)[\"'`]?([^\\s\"'`]{1,128})",
	 2,
	 det_check_password,
	 {{"pass", IMP_MPAT_LITERAL | IMP_MPAT_CASELESS},
	  {"pw", IMP_MPAT_LITERAL | IMP_MPAT_CASELESS}},
	 det_ctx_password,
	 true},
};

#define DET_N_BUILTIN IMP_ARRAY_LEN(det_builtins)

static const char *const det_builtin_names[] = {
	"payment_card", "iban",        "us_ssn",  "email",
	"phone",        "private_key", "aws_key", "github_token",
	"gitlab_token", "slack_token", "jwt",     "password",
	"credential",   NULL,
};

bool imp_detect_builtin_exists(const char *name)
{
	for (size_t i = 0; det_builtin_names[i]; i++)
		if (strcmp(name, det_builtin_names[i]) == 0)
			return true;
	return false;
}

const char *const *imp_detect_builtin_names(void)
{
	return det_builtin_names;
}

/* ---- build --------------------------------------------------------------- */

static void *det_pcre2_malloc(PCRE2_SIZE n, void *ud)
{
	return imp_malloc((const imp_ctx_t *)ud, n);
}

static void det_pcre2_free(void *p, void *ud)
{
	imp_mfree((const imp_ctx_t *)ud, p);
}

static void det_code_cleanup(void *p)
{
	pcre2_code_free(p);
}

static void det_gctx_cleanup(void *p)
{
	pcre2_general_context_free(p);
}

static void det_cctx_cleanup(void *p)
{
	pcre2_compile_context_free(p);
}

static int det_compile(imp_arena_t *a, pcre2_compile_context *cctx,
		       const char *pat, pcre2_code **out, char *why,
		       size_t whylen)
{
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
				      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
				      &ecode, &eoff, cctx);
	if (!c) {
		PCRE2_UCHAR msg[200];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		snprintf(why, whylen, "%s at offset %zu", (char *)msg,
			 (size_t)eoff);
		return ecode == PCRE2_ERROR_HEAPLIMIT ? IMP_ERR_NOMEM
						      : IMP_ERR_POLICY;
	}
	if (imp_arena_cleanup(a, det_code_cleanup, c) != IMP_OK)
		return IMP_ERR_NOMEM;
	uint32_t minlen = 1;
	pcre2_pattern_info(c, PCRE2_INFO_MINLENGTH, &minlen);
	if (minlen == 0) {
		snprintf(why, whylen, "pattern can match the empty string");
		return IMP_ERR_POLICY;
	}
	/* JIT is an optimisation; the interpreter gives the same results. */
	(void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
	*out = c;
	return IMP_OK;
}

static size_t det_count_ctx(const char *const *c)
{
	size_t n = 0;
	while (c && c[n])
		n++;
	return n;
}

/* True when Vectorscan accepts pat as it is, so it can serve as the
 * detector's prefilter. */
static bool det_vs_accepts(const imp_ctx_t *ctx, const char *pat)
{
	imp_arena_t *t = imp_arena_new(ctx, 4096);
	if (!t)
		return false;
	imp_mpat_pattern_t p = {pat, strlen(pat), 0, IMP_MPAT_UTF8};
	imp_mpat_t *m = NULL;
	int rc = imp_mpat_compile(t, &p, 1, IMP_ENGINE_VECTORSCAN, &m, NULL,
				  NULL, 0);
	imp_arena_free(t);
	return rc == IMP_OK;
}

static int det_validator(const char *v)
{
	if (!v || strcmp(v, "none") == 0)
		return DET_VAL_NONE;
	if (strcmp(v, "luhn") == 0)
		return DET_VAL_LUHN;
	if (strcmp(v, "mod97") == 0)
		return DET_VAL_MOD97;
	return -1;
}

int imp_detset_build(imp_arena_t *a, const imp_detector_spec_t *custom,
		     size_t n, imp_engine_t engine, imp_errors_t *errs,
		     imp_detset_t **out)
{
	if (!a || !out || (n && !custom))
		return IMP_ERR_INVALID;
	*out = NULL;
	const imp_ctx_t *ctx = imp_arena_ctx(a);
	imp_detset_t *d = imp_arena_calloc(a, 1, sizeof(*d));
	if (!d)
		return IMP_ERR_NOMEM;
	if (engine == IMP_ENGINE_AUTO)
		engine = imp_mpat_vectorscan_available() ? IMP_ENGINE_VECTORSCAN
							 : IMP_ENGINE_PCRE2;

	pcre2_general_context *g = pcre2_general_context_create(
		det_pcre2_malloc, det_pcre2_free, (void *)ctx);
	if (!g || imp_arena_cleanup(a, det_gctx_cleanup, g) != IMP_OK)
		return IMP_ERR_NOMEM;
	pcre2_compile_context *cctx = pcre2_compile_context_create(g);
	if (!cctx || imp_arena_cleanup(a, det_cctx_cleanup, cctx) != IMP_OK)
		return IMP_ERR_NOMEM;

	imp_mpat_pattern_t pf[DET_MAX * 3];
	size_t npf = 0;
	char why[256];
	int rc;
	bool bad = false;

	for (size_t i = 0; i < DET_N_BUILTIN; i++) {
		const det_builtin_t *b = &det_builtins[i];
		det_t *t = &d->dets[d->n++];
		t->name = b->name;
		t->group = b->group;
		t->check = b->check;
		t->context = b->context;
		t->n_context = det_count_ctx(b->context);
		t->window = DET_DEFAULT_WINDOW;
		rc = det_compile(a, cctx, b->pattern, &t->re, why, sizeof(why));
		if (rc != IMP_OK) {
			/* A bug in this file, not in the policy. */
			imp_errors_add(errs, IMP_ERR_INTERNAL, NULL, 0, 0,
				       "built-in detector %s: %s", b->name,
				       why);
			return rc == IMP_ERR_NOMEM ? rc : IMP_ERR_INTERNAL;
		}
		for (size_t j = 0; j < IMP_ARRAY_LEN(b->pf) && b->pf[j].expr;
		     j++)
			pf[npf++] = (imp_mpat_pattern_t){
				b->pf[j].expr, strlen(b->pf[j].expr),
				(unsigned)i, b->pf[j].flags};
		if (b->credential)
			d->credential |= 1ULL << i;
	}

	for (size_t i = 0; i < n; i++) {
		const imp_detector_spec_t *sp = &custom[i];
		const char *name = sp->name ? sp->name : "";
		if (d->n >= DET_MAX) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL,
					"merge similar detectors into one "
					"pattern",
					"detector '%s': too many detectors "
					"(at most %u including the %zu "
					"built-ins)",
					name, (unsigned)DET_MAX, DET_N_BUILTIN);
			bad = true;
			break;
		}
		if (imp_detect_builtin_exists(name)) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL,
					"choose another name",
					"detector '%s' has the name of a "
					"built-in detector",
					name);
			bad = true;
			continue;
		}
		bool dup = false;
		for (size_t j = DET_N_BUILTIN; j < d->n; j++)
			if (strcmp(d->dets[j].name, name) == 0)
				dup = true;
		if (dup) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL, NULL,
					"detector '%s' is defined twice", name);
			bad = true;
			continue;
		}
		int val = det_validator(sp->validator);
		if (val < 0) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL,
					"use luhn, mod97 or none",
					"detector '%s': unknown validator "
					"'%s'",
					name, sp->validator);
			bad = true;
		}
		if (sp->confidence > 100) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL, NULL,
					"detector '%s': confidence %u is "
					"above 100",
					name, sp->confidence);
			bad = true;
		}
		det_t *t = &d->dets[d->n];
		if (!sp->pattern || !*sp->pattern) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, NULL, NULL,
					"detector '%s': no pattern", name);
			bad = true;
			continue;
		}
		rc = det_compile(a, cctx, sp->pattern, &t->re, why,
				 sizeof(why));
		if (rc == IMP_ERR_NOMEM)
			return rc;
		if (rc != IMP_OK) {
			imp_errors_addx(errs, IMP_ERR_POLICY, sp->file,
					sp->line, sp->col, NULL, why,
					"patterns are PCRE2 syntax in UTF "
					"mode",
					"detector '%s': invalid pattern", name);
			bad = true;
			continue;
		}
		if (bad)
			continue;
		t->name = imp_arena_strdup(a, name);
		t->validator = val;
		t->base = sp->confidence ? sp->confidence
					 : DET_DEFAULT_CONFIDENCE;
		t->window = sp->window ? sp->window : DET_DEFAULT_WINDOW;
		if (sp->n_context) {
			const char **c = imp_arena_calloc(a, sp->n_context + 1,
							  sizeof(*c));
			if (!c || !t->name)
				return IMP_ERR_NOMEM;
			for (size_t j = 0; j < sp->n_context; j++) {
				c[j] = imp_arena_strdup(a, sp->context[j]);
				if (!c[j])
					return IMP_ERR_NOMEM;
			}
			t->context = c;
			t->n_context = sp->n_context;
		}
		/* On the PCRE2 engine a prefilter would cost as much as the
		 * extraction itself. */
		if (engine == IMP_ENGINE_VECTORSCAN &&
		    det_vs_accepts(ctx, sp->pattern))
			pf[npf++] = (imp_mpat_pattern_t){
				sp->pattern, strlen(sp->pattern),
				(unsigned)d->n, IMP_MPAT_UTF8};
		else
			t->always = true;
		d->n++;
	}
	if (bad)
		return IMP_ERR_POLICY;
	for (size_t i = 0; i < d->n; i++)
		if (d->dets[i].always)
			d->always |= 1ULL << i;

	size_t badi = 0;
	char err[256];
	rc = imp_mpat_compile(a, pf, npf, engine, &d->pf, &badi, err,
			      sizeof(err));
	if (rc != IMP_OK) {
		imp_errors_add(errs,
			       rc == IMP_ERR_NOMEM ? IMP_ERR_NOMEM
						   : IMP_ERR_INTERNAL,
			       NULL, 0, 0, "detector prefilter: %s", err);
		return rc == IMP_ERR_NOMEM ? rc : IMP_ERR_INTERNAL;
	}
	/* Policies that use only their own detectors (the common large
	 * case) would otherwise pay for the built-ins' digit and e-mail
	 * prefilters on every field: a second set holds only the custom
	 * prefilters, and a scan still makes one pass, over one set. */
	size_t nb = npf;
	for (size_t i = 0; i < npf; i++)
		if (pf[i].id >= DET_N_BUILTIN) {
			nb = i;
			break;
		}
	if (nb < npf && nb > 0) {
		rc = imp_mpat_compile(a, pf + nb, npf - nb, engine,
				      &d->pf_custom, &badi, err, sizeof(err));
		if (rc != IMP_OK) {
			imp_errors_add(errs,
				       rc == IMP_ERR_NOMEM ? IMP_ERR_NOMEM
							   : IMP_ERR_INTERNAL,
				       NULL, 0, 0, "detector prefilter: %s",
				       err);
			return rc == IMP_ERR_NOMEM ? rc : IMP_ERR_INTERNAL;
		}
	}
	*out = d;
	return IMP_OK;
}

int imp_detset_index(const imp_detset_t *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->dets[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool imp_detset_mask(const imp_detset_t *d, const char *name, uint64_t *mask)
{
	if (strcmp(name, "credential") == 0) {
		*mask |= d->credential;
		return true;
	}
	int i = imp_detset_index(d, name);
	if (i < 0)
		return false;
	*mask |= 1ULL << i;
	return true;
}

size_t imp_detset_count(const imp_detset_t *d)
{
	return d->n;
}

const char *imp_detset_name(const imp_detset_t *d, unsigned index)
{
	return index < d->n ? d->dets[index].name : NULL;
}

/* ---- scratch ------------------------------------------------------------------- */

imp_detscratch_t *imp_detscratch_new(const imp_ctx_t *ctx)
{
	imp_detscratch_t *s = imp_calloc(ctx, 1, sizeof(*s));
	if (!s)
		return NULL;
	s->ctx = ctx;
	s->ms = imp_mpat_scratch_new(ctx);
	s->gctx = pcre2_general_context_create(det_pcre2_malloc, det_pcre2_free,
					       (void *)ctx);
	if (s->gctx) {
		s->mctx = pcre2_match_context_create(s->gctx);
		s->md = pcre2_match_data_create(DET_OVECTOR_PAIRS, s->gctx);
		s->jit =
			pcre2_jit_stack_create(32 * 1024, 1024 * 1024, s->gctx);
	}
	if (!s->ms || !s->mctx || !s->md || !s->jit) {
		imp_detscratch_free(s);
		return NULL;
	}
	/* Hostile input must not stall a thread: the limits bound every
	 * match attempt; hitting one makes the text uninspectable. */
	pcre2_set_match_limit(s->mctx, DET_MATCH_LIMIT);
	pcre2_set_depth_limit(s->mctx, DET_DEPTH_LIMIT);
	pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
	return s;
}

int imp_detscratch_prepare(imp_detscratch_t *s, const imp_detset_t *d)
{
	if (!s || !d)
		return IMP_ERR_INVALID;
	int rc = imp_mpat_scratch_prepare(s->ms, d->pf);
	if (rc == IMP_OK && d->pf_custom)
		rc = imp_mpat_scratch_prepare(s->ms, d->pf_custom);
	return rc;
}

void imp_detscratch_free(imp_detscratch_t *s)
{
	if (!s)
		return;
	imp_mpat_scratch_free(s->ms);
	pcre2_match_data_free(s->md);
	pcre2_match_context_free(s->mctx);
	pcre2_jit_stack_free(s->jit);
	pcre2_general_context_free(s->gctx);
	imp_mfree(s->ctx, s);
}

/* ---- scan ------------------------------------------------------------------------ */

typedef struct det_pfstate_s {
	uint64_t want, seen;
} det_pfstate_t;

static int det_pf_cb(void *ud, unsigned id, size_t from, size_t to)
{
	det_pfstate_t *st = ud;
	if (id < 64)
		st->seen |= 1ULL << id;
	/* Stop once every wanted detector has a reason to run. */
	return (st->seen & st->want) == st->want;
}

/* True when context word w occurs as a whole word in text[b, e). */
static bool det_find_word(const char *text, size_t b, size_t e, const char *w)
{
	size_t wn = strlen(w);
	if (!wn || e - b < wn)
		return false;
	for (size_t i = b; i + wn <= e; i++) {
		if (!imp_strcaseeq_n(text + i, wn, w, wn))
			continue;
		bool lb = i == 0 || !det_isalnum((unsigned char)text[i - 1]) ||
			  !det_isalnum((unsigned char)w[0]);
		bool rb = i + wn >= e ||
			  !det_isalnum((unsigned char)text[i + wn]) ||
			  !det_isalnum((unsigned char)w[wn - 1]);
		if (lb && rb)
			return true;
	}
	return false;
}

static bool det_context(const det_t *t, const char *text, size_t start)
{
	if (!t->n_context)
		return false;
	/* Walk back `window` characters (UTF-8 aware). */
	size_t b = start;
	for (unsigned c = 0; c < t->window && b > 0; c++) {
		b--;
		while (b > 0 && ((unsigned char)text[b] & 0xc0) == 0x80)
			b--;
	}
	for (size_t i = 0; i < t->n_context; i++)
		if (det_find_word(text, b, start, t->context[i]))
			return true;
	return false;
}

static bool det_mod97_valid(const char *s, size_t n)
{
	char a[128];
	int k = det_alnums(s, n, a, sizeof(a));
	if (k < 3)
		return false;
	/* IBAN-shaped values (two letters, two digits) rotate their first
	 * four characters to the end; plain digit strings are checked as
	 * they stand (ISO 7064 MOD 97-10). */
	bool ibanish = k > 4 && det_isalpha((unsigned char)a[0]) &&
		       det_isalpha((unsigned char)a[1]) &&
		       det_isdigit((unsigned char)a[2]) &&
		       det_isdigit((unsigned char)a[3]);
	return det_mod97(a, (size_t)k, ibanish ? 4 : 0) == 1;
}

/* Custom Luhn: the digits of the match, whatever surrounds them (a
 * pattern like "LC\d{10}" carries a prefix). */
static bool det_luhn_custom(const char *s, size_t n)
{
	char d[64];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!det_isdigit((unsigned char)s[i]))
			continue;
		if (k == sizeof(d))
			return false;
		d[k++] = s[i];
	}
	return imp_luhn_valid(d, k);
}

typedef struct det_out_s {
	imp_arena_t *a;
	imp_dethit_t *v;
	size_t n, cap;
} det_out_t;

static int det_push(det_out_t *o, unsigned det, unsigned conf, size_t start,
		    size_t end)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		imp_dethit_t *nv = imp_arena_alloc(o->a, cap * sizeof(*nv));
		if (!nv)
			return IMP_ERR_NOMEM;
		if (o->n)
			memcpy(nv, o->v, o->n * sizeof(*nv));
		o->v = nv;
		o->cap = cap;
	}
	o->v[o->n++] = (imp_dethit_t){(uint16_t)det, (uint8_t)conf,
				      (uint32_t)start, (uint32_t)end};
	return IMP_OK;
}

/* Runs detector i over the text; returns IMP_OK, NOMEM, INTERNAL, or
 * IMP_ERR_LIMIT when a PCRE2 limit stopped it. */
static int det_run(const imp_detset_t *d, imp_detscratch_t *s, unsigned i,
		   const char *text, size_t len, det_out_t *o)
{
	const det_t *t = &d->dets[i];
	size_t off = 0;
	while (off <= len) {
		int r = pcre2_match(t->re, (PCRE2_SPTR)text, len, off, 0, s->md,
				    s->mctx);
		if (r == PCRE2_ERROR_NOMATCH)
			return IMP_OK;
		if (r == PCRE2_ERROR_MATCHLIMIT ||
		    r == PCRE2_ERROR_DEPTHLIMIT || r == PCRE2_ERROR_HEAPLIMIT ||
		    r == PCRE2_ERROR_JIT_STACKLIMIT)
			return IMP_ERR_LIMIT;
		if (r == PCRE2_ERROR_NOMEMORY)
			return IMP_ERR_NOMEM;
		if (r < 0)
			return IMP_ERR_INTERNAL;
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
		int nov = r == 0 ? (int)DET_OVECTOR_PAIRS : r;
		size_t m0 = ov[0], m1 = ov[1];
		/* Resume after the whole match (never loop on an empty
		 * one). */
		off = m1 > m0 ? m1 : m0 + 1;
		if (t->group >= nov || ov[2 * t->group] == PCRE2_UNSET)
			continue;
		size_t start = ov[2 * t->group], end = ov[2 * t->group + 1];
		if (end <= start || end > UINT32_MAX)
			continue;
		int conf;
		if (t->check) {
			conf = t->check(text, len, ov, nov, &start, &end);
		} else {
			conf = (int)t->base;
			if (t->validator == DET_VAL_LUHN &&
			    !det_luhn_custom(text + start, end - start))
				conf = -1;
			if (t->validator == DET_VAL_MOD97 &&
			    !det_mod97_valid(text + start, end - start))
				conf = -1;
		}
		if (conf < 0)
			continue;
		if (det_context(t, text, start))
			conf += (int)DET_CONTEXT_BONUS;
		if (conf > 100)
			conf = 100;
		int rc = det_push(o, i, (unsigned)conf, start, end);
		if (rc != IMP_OK)
			return rc;
	}
	return IMP_OK;
}

int imp_detset_scan(const imp_detset_t *d, imp_detscratch_t *s,
		    imp_arena_t *scratch, uint64_t want, const char *text,
		    size_t len, imp_dethit_t **hits, size_t *n_hits,
		    bool *limited)
{
	if (!d || !s || !scratch || !hits || !n_hits || !limited ||
	    (len && !text))
		return IMP_ERR_INVALID;
	if (len > UINT32_MAX) {
		*limited = true;
		return IMP_OK;
	}
	if (!text)
		text = "";
	uint64_t all = d->n >= 64 ? ~0ULL : (1ULL << d->n) - 1;
	uint64_t run = want & all;
	if (!run)
		return IMP_OK;
	uint64_t always = d->always;
	det_pfstate_t st = {run & ~always, 0};
	if (st.want) {
		/* One pass over one set: the custom-only set when no
		 * built-in is wanted. */
		const uint64_t builtins = (1ULL << DET_N_BUILTIN) - 1;
		const imp_mpat_t *db = d->pf_custom && !(st.want & builtins)
					       ? d->pf_custom
					       : d->pf;
		int rc = imp_mpat_scan(db, s->ms, text, len, det_pf_cb, &st);
		if (rc == IMP_ERR_LIMIT) {
			/* The prefilter could not finish: run them all. */
			*limited = true;
			st.seen = st.want;
		} else if (rc == IMP_ERR_INVALID) {
			return IMP_ERR_INTERNAL; /* scratch not prepared */
		} else if (rc != IMP_OK) {
			return rc;
		}
	}
	run = (run & always) | (st.seen & st.want);

	det_out_t o = {scratch, *hits, *n_hits, *n_hits};
	int ret = IMP_OK;
	/* Only the detectors left to run, in index order. */
	for (uint64_t m = run; m && ret == IMP_OK; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		int rc = det_run(d, s, i, text, len, &o);
		if (rc == IMP_ERR_LIMIT)
			*limited = true;
		else if (rc != IMP_OK)
			ret = rc;
	}
	*hits = o.v;
	*n_hits = o.n;
	return ret;
}
