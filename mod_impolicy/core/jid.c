/*
 * jid.c -- splitting JIDs and matching them against policy patterns.
 *
 * Purpose: group membership ("*@legal.acme.example"), local-domain checks
 * ("*.acme.example") and per-user settings all reduce to comparing bare
 * JIDs.  We do no stringprep: the server has already applied nodeprep and
 * nameprep to what it hands us, so ASCII case folding is all that is left.
 *
 * Invariants: a parsed JID follows RFC 7622's split (resource = everything
 * after the first '/', local = before the first '@' ahead of it), has a
 * non-empty domain without '@', and parts of at most 1023 bytes (3071 in
 * all).  Bytes that can never occur in a prepared local part or domain
 * (NUL, ASCII controls, space) are refused there, so a crafted JID cannot
 * look like another one once it is turned into a C string.  Globs are
 * matched without recursion (linear backtracking), so hostile patterns
 * cannot blow up.
 *
 * Threading: pure functions; imp_jid_bare allocates from the caller's
 * arena.
 *
 * Reports: false / NULL only; callers decide what a bad JID means.
 */
#include "jid.h"

#include <stdint.h>
#include <string.h>

#define JID_PART_MAX 1023
#define JID_MAX 3071

static char jid_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Both parties' JIDs are checked, lowered and compared on every stanza,
 * so the byte loops below take eight bytes at a time (SWAR).  The classic
 * "has a byte below n" test is exact about whether such a byte exists,
 * which is all these loops need; the tail goes byte by byte. */
#define JID_ONES UINT64_C(0x0101010101010101)
#define JID_HIGH UINT64_C(0x8080808080808080)

static inline uint64_t jid_load8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

/* Nonzero when some byte of w is zero. */
static inline uint64_t jid_haszero(uint64_t w)
{
	return (w - JID_ONES) & ~w & JID_HIGH;
}

/* w with its ASCII capitals lowered; other bytes unchanged. */
static inline uint64_t jid_lower8(uint64_t w)
{
	uint64_t h = w & ~JID_HIGH;
	uint64_t ge_a = h + JID_ONES * (0x80 - 'A');
	uint64_t gt_z = h + JID_ONES * (0x80 - 'Z' - 1);
	uint64_t upper = ge_a & ~gt_z & ~w & JID_HIGH;
	return w | (upper >> 2);
}

static inline uint64_t jid_load4(const char *p)
{
	uint32_t w;
	memcpy(&w, p, 4);
	return w;
}

/* The bytes of p[0..n), n >= 4, as words whose bytes all come from p:
 * whole words, then one that overlaps the previous (or two overlapping
 * halves when n < 8).  Existence tests and equal-length comparisons may
 * look at a byte twice. */
#define JID_WORDS(p, n, i, w, body)                                        \
	do {                                                               \
		if ((n) >= 8) {                                            \
			for ((i) = 0; (i) + 8 <= (n); (i) += 8) {          \
				(w) = jid_load8((p) + (i));                \
				body                                       \
			}                                                  \
			if ((i) < (n)) {                                   \
				(i) = (n)-8;                               \
				(w) = jid_load8((p) + (i));                \
				body                                       \
			}                                                  \
		} else {                                                   \
			(i) = 0;                                           \
			(w) = jid_load4(p) | jid_load4((p) + (n)-4) << 32; \
			body                                               \
		}                                                          \
	} while (0)

/* Nonzero when some byte of w is below lim (lim <= 0x80), is DEL, or
 * (with at) is '@'. */
static inline uint64_t jid_word_bad(uint64_t w, unsigned lim, bool at)
{
	uint64_t bad = (w - JID_ONES * lim) & ~w & JID_HIGH;
	bad |= jid_haszero(w ^ (JID_ONES * 0x7f));
	if (at)
		bad |= jid_haszero(w ^ (JID_ONES * '@'));
	return bad;
}

/* True when p[0..n) holds no byte below lim, no DEL and (with at) no
 * '@'. */
static bool jid_bytes_ok(const char *p, size_t n, unsigned lim, bool at)
{
	size_t i;
	uint64_t w;

	if (n < 4) {
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c < lim || c == 0x7f || (at && c == '@'))
				return false;
		}
		return true;
	}
	JID_WORDS(p, n, i, w, {
		if (jid_word_bad(w, lim, at))
			return false;
	});
	return true;
}

/* Local parts and domains never contain these after nodeprep/nameprep. */
static bool jid_part_ok(const char *p, size_t n, bool domain)
{
	if (n == 0 || n > JID_PART_MAX)
		return false;
	return jid_bytes_ok(p, n, 0x21, domain);
}

bool imp_jid_parse(const char *s, size_t n, imp_jid_t *out)
{
	const char *slash, *at;
	size_t head;

	memset(out, 0, sizeof(*out));
	if (!s || n == 0 || n > JID_MAX)
		return false;
	slash = memchr(s, '/', n);
	head = slash ? (size_t)(slash - s) : n;
	if (slash) {
		/* The resource may hold '@' and '/', but not be empty or
		 * carry NUL/controls (RFC 7622 3.4). */
		size_t rn = n - head - 1;
		if (rn == 0 || rn > JID_PART_MAX)
			return false;
		if (!jid_bytes_ok(slash + 1, rn, 0x20, false))
			return false;
		out->resource = slash + 1;
		out->resource_len = rn;
	}
	at = memchr(s, '@', head);
	if (at) {
		size_t ln = (size_t)(at - s);
		if (!jid_part_ok(s, ln, false))
			return false;
		out->local = s;
		out->local_len = ln;
		out->domain = at + 1;
		out->domain_len = head - ln - 1;
	} else {
		out->domain = s;
		out->domain_len = head;
	}
	if (!jid_part_ok(out->domain, out->domain_len, true)) {
		memset(out, 0, sizeof(*out));
		return false;
	}
	return true;
}

/* Copies s[0..n) lowered to d; returns the end of the copy. */
static char *jid_lower_copy(char *d, const char *s, size_t n)
{
	size_t i;
	uint64_t w;

	if (n < 4) {
		for (i = 0; i < n; i++)
			d[i] = jid_lower(s[i]);
		return d + n;
	}
	if (n < 8) {
		/* two overlapping halves */
		uint64_t lo = jid_lower8(jid_load4(s));
		uint64_t hi = jid_lower8(jid_load4(s + n - 4));
		uint32_t l32 = (uint32_t)lo, h32 = (uint32_t)hi;
		memcpy(d, &l32, 4);
		memcpy(d + n - 4, &h32, 4);
		return d + n;
	}
	JID_WORDS(s, n, i, w, {
		w = jid_lower8(w);
		memcpy(d + i, &w, 8);
	});
	return d + n;
}

/* ASCII-case-insensitive equality of a[0..n) and b[0..n): words that are
 * equal as they stand (the usual case) skip the lowering. */
static bool jid_caseeq(const char *a, const char *b, size_t n)
{
	size_t i;
	uint64_t x;

	if (n < 4) {
		for (i = 0; i < n; i++)
			if (jid_lower(a[i]) != jid_lower(b[i]))
				return false;
		return true;
	}
	JID_WORDS(a, n, i, x, {
		uint64_t y = n >= 8 ? jid_load8(b + i)
				    : jid_load4(b) | jid_load4(b + n - 4) << 32;
		if (x != y && jid_lower8(x) != jid_lower8(y))
			return false;
	});
	return true;
}

char *imp_jid_bare(imp_arena_t *a, const imp_jid_t *j)
{
	size_t n = j->domain_len + (j->local ? j->local_len + 1 : 0);
	char *b = imp_arena_alloc(a, n + 1), *p;

	if (!b)
		return NULL;
	p = b;
	if (j->local) {
		p = jid_lower_copy(p, j->local, j->local_len);
		*p++ = '@';
	}
	p = jid_lower_copy(p, j->domain, j->domain_len);
	*p = '\0';
	return b;
}

/* Glob over s[0..n): '*' any run, '?' one character (one UTF-8 sequence),
 * other bytes compare ASCII-case-insensitively.  Neither wildcard matches
 * '@', so "*@legal.acme.example" only ranges over local parts.  Classic
 * two-pointer backtracking to the last star: O(|p| * |s|), no recursion. */
static bool jid_glob_n(const char *p, const char *s, size_t n)
{
	const char *star = NULL;
	size_t i = 0, star_i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (*p == '?' && c != '@') {
			p++;
			i++;
			while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)
				i++;
			continue;
		}
		if (*p == '*') {
			star = ++p;
			star_i = i;
			continue;
		}
		if (*p && *p != '?' && jid_lower(*p) == jid_lower((char)c)) {
			p++;
			i++;
			continue;
		}
		/* Mismatch: let the last star swallow one more byte, but
		 * never an '@'. */
		if (star && s[star_i] != '@') {
			star_i++;
			p = star;
			i = star_i;
			continue;
		}
		return false;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

bool imp_jid_glob(const char *pattern, const char *bare)
{
	const char *at;

	if (!pattern || !bare)
		return false;
	if (strchr(pattern, '@'))
		return jid_glob_n(pattern, bare, strlen(bare));
	/* A pattern without '@' is about the domain part. */
	at = strchr(bare, '@');
	if (at)
		bare = at + 1;
	return jid_glob_n(pattern, bare, strlen(bare));
}

bool imp_domain_match(const char *d, const char *domain, size_t domain_len)
{
	size_t dn;

	if (!d || !domain)
		return false;
	dn = strlen(d);
	if (dn >= 2 && d[0] == '*' && d[1] == '.') {
		/* "*.example": strictly below example, like a TLS
		 * wildcard; list "example" too to include it. */
		const char *base = d + 1; /* ".example" */
		size_t bn = dn - 1;
		return domain_len > bn &&
		       jid_caseeq(domain + domain_len - bn, base, bn);
	}
	return domain_len == dn && jid_caseeq(domain, d, dn);
}
