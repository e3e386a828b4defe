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

#include <string.h>

#define JID_PART_MAX 1023
#define JID_MAX 3071

static char jid_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Local parts and domains never contain these after nodeprep/nameprep. */
static bool jid_part_ok(const char *p, size_t n, bool domain)
{
	if (n == 0 || n > JID_PART_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c == 0x7f || (domain && c == '@'))
			return false;
	}
	return true;
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
		for (size_t i = 0; i < rn; i++) {
			unsigned char c = (unsigned char)slash[1 + i];
			if (c < 0x20 || c == 0x7f)
				return false;
		}
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

char *imp_jid_bare(imp_arena_t *a, const imp_jid_t *j)
{
	size_t n = j->domain_len + (j->local ? j->local_len + 1 : 0);
	char *b = imp_arena_alloc(a, n + 1), *p;

	if (!b)
		return NULL;
	p = b;
	if (j->local) {
		for (size_t i = 0; i < j->local_len; i++)
			*p++ = jid_lower(j->local[i]);
		*p++ = '@';
	}
	for (size_t i = 0; i < j->domain_len; i++)
		*p++ = jid_lower(j->domain[i]);
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
		       imp_strcaseeq_n(domain + domain_len - bn, bn, base, bn);
	}
	return imp_strcaseeq_n(domain, domain_len, d, dn);
}
