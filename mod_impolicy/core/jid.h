/*
 * jid.h -- just enough JID handling for policy decisions.
 *
 * A JID is split into local@domain/resource without stringprep; local part
 * and domain compare case-insensitively (ASCII), which is what XMPP servers
 * deliver to us after their own nodeprep/nameprep.  Patterns are globs over
 * the bare JID: '*' matches any run of characters ("*@legal.acme.example",
 * "alice@*"), '?' one character; a pattern without '@' matches a domain.
 */
#ifndef IMP_JID_H
#define IMP_JID_H

#include "base.h"

typedef struct imp_jid_s {
	const char *local; /* NULL when absent */
	size_t local_len;
	const char *domain; /* never NULL after a successful parse */
	size_t domain_len;
	const char *resource; /* NULL when absent */
	size_t resource_len;
} imp_jid_t;

/* Splits s[0..n); pointers point into s.  False for an empty domain, an
 * empty local part before '@', or a JID longer than 3071 bytes. */
bool imp_jid_parse(const char *s, size_t n, imp_jid_t *out);

/* Writes the lowercase bare JID (local@domain or domain) into arena a. */
char *imp_jid_bare(imp_arena_t *a, const imp_jid_t *j);

/* True when bare (lowercase bare JID) matches glob pattern (any case). */
bool imp_jid_glob(const char *pattern, const char *bare);

/* True when domain (any case) equals d or is a subdomain of d when d starts
 * with "*." */
bool imp_domain_match(const char *d, const char *domain, size_t domain_len);

#endif /* IMP_JID_H */
