/*
 * test_jid.c -- JID splitting, bare JIDs, globs and domain matches.
 */
#include "check.h"
#include "jid.h"

#include <stdlib.h>

static imp_ctx_t *ctx;
static imp_arena_t *arena;

/* Expected parts; "-" stands for an absent part (NULL). */
static void check_part(const char *what, const char *jid, const char *p,
		       size_t n, const char *want)
{
	if (strcmp(want, "-") == 0) {
		CHECK_MSG(p == NULL, "%s of '%s' present", what, jid);
		return;
	}
	CHECK_MSG(p && n == strlen(want) && memcmp(p, want, n) == 0,
		  "%s of '%s' = '%.*s', want '%s'", what, jid, p ? (int)n : 6,
		  p ? p : "(null)", want);
}

static void test_parse(void)
{
	static const struct {
		const char *s;
		bool ok;
		const char *local, *domain, *resource, *bare;
	} cases[] = {
		{"alice@acme.example", true, "alice", "acme.example", "-",
		 "alice@acme.example"},
		{"Alice@ACME.Example/Phone", true, "Alice", "ACME.Example",
		 "Phone", "alice@acme.example"},
		{"acme.example", true, "-", "acme.example", "-",
		 "acme.example"},
		{"acme.example/service", true, "-", "acme.example", "service",
		 "acme.example"},
		/* Resource holds '@' and '/'; the local part is split off
		 * only before the first '/'. */
		{"bob@acme.example/a@b/c", true, "bob", "acme.example", "a@b/c",
		 "bob@acme.example"},
		{"acme.example/bob@evil.example", true, "-", "acme.example",
		 "bob@evil.example", "acme.example"},
		{"room@conf.example/Nick Name", true, "room", "conf.example",
		 "Nick Name", "room@conf.example"},
		{"@acme.example", false, NULL, NULL, NULL, NULL},
		{"alice@", false, NULL, NULL, NULL, NULL},
		{"alice@/res", false, NULL, NULL, NULL, NULL},
		{"/res", false, NULL, NULL, NULL, NULL},
		{"", false, NULL, NULL, NULL, NULL},
		{"alice@acme.example/", false, NULL, NULL, NULL, NULL},
		{"a@b@acme.example", false, NULL, NULL, NULL, NULL},
		{"al ice@acme.example", false, NULL, NULL, NULL, NULL},
		{"alice@acme example", false, NULL, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_jid_t j;
		bool ok = imp_jid_parse(cases[i].s, strlen(cases[i].s), &j);
		CHECK_MSG(ok == cases[i].ok, "'%s' parse = %d", cases[i].s, ok);
		if (!ok || !cases[i].ok)
			continue;
		check_part("local", cases[i].s, j.local, j.local_len,
			   cases[i].local);
		check_part("domain", cases[i].s, j.domain, j.domain_len,
			   cases[i].domain);
		check_part("resource", cases[i].s, j.resource, j.resource_len,
			   cases[i].resource);
		CHECK_STR(imp_jid_bare(arena, &j), cases[i].bare);
	}

	/* Embedded NUL: the length counts, and the JID is refused. */
	imp_jid_t j;
	CHECK(!imp_jid_parse("bob\0x@acme.example", 18, &j));
	CHECK(!imp_jid_parse("bob@acme.example\0.evil", 22, &j));
	/* Only n bytes are read. */
	CHECK(imp_jid_parse("bob@acme.example/res", 16, &j));
	CHECK(j.resource == NULL && j.domain_len == 12);

	/* Length limits: 1023 per part, 3071 in all. */
	char *big = malloc(4000);
	CHECK(big != NULL);
	if (!big)
		return;
	memset(big, 'a', 1023);
	memcpy(big + 1023, "@", 1);
	memset(big + 1024, 'b', 1023);
	big[2047] = '/';
	memset(big + 2048, 'c', 1023);
	CHECK(imp_jid_parse(big, 3071, &j)); /* exactly at the limits */
	CHECK_INT(j.local_len, 1023);
	CHECK_INT(j.resource_len, 1023);
	big[3071] = 'c';
	CHECK(!imp_jid_parse(big, 3072, &j)); /* resource too long */
	memset(big, 'a', 1024);
	big[1024] = '@';
	memcpy(big + 1025, "acme.example", 12);
	CHECK(!imp_jid_parse(big, 1037, &j)); /* local part too long */
	CHECK(imp_jid_parse(big + 1, 1036, &j));
	memset(big, 'd', 1024);
	CHECK(!imp_jid_parse(big, 1024, &j)); /* domain too long */
	CHECK(imp_jid_parse(big, 1023, &j));
	free(big);
}

static void test_glob(void)
{
	static const struct {
		const char *pattern, *bare;
		bool want;
	} cases[] = {
		{"*@legal.acme.example", "bob@legal.acme.example", true},
		{"*@legal.acme.example", "bob@acme.example", false},
		{"*@legal.acme.example", "bob@notlegal.acme.example", false},
		{"*@legal.acme.example", "legal.acme.example", false},
		{"*@LEGAL.Acme.Example", "bob@legal.acme.example", true},
		{"alice@*", "alice@acme.example", true},
		{"alice@*", "alice@x", true},
		{"alice@*", "malice@acme.example", false},
		{"alice@*", "alice", false},
		{"Alice@*", "alice@acme.example", true},
		{"?ob@acme.example", "bob@acme.example", true},
		{"?ob@acme.example", "rob@acme.example", true},
		{"?ob@acme.example", "ob@acme.example", false},
		{"?ob@acme.example", "blob@acme.example", false},
		{"b?b@*.example", "bob@acme.example", true},
		{"*.counsel@acme.example", "general.counsel@acme.example",
		 true},
		{"*.counsel@acme.example", "counsel@acme.example", false},
		/* '?' is one character, also a multi-byte one. */
		{"j?rg@acme.example", "j\xc3\xb6rg@acme.example", true},
		{"j??rg@acme.example", "j\xc3\xb6rg@acme.example", false},
		/* Wildcards never swallow the '@'. */
		{"*", "bob@acme.example", true},
		{"*@*", "bob@acme.example", true},
		{"*@*", "acme.example", false},
		{"b*@acme.example", "bob@x@acme.example", false},
		{"b*@acme.example", "bob@acme.example", true},
		{"a*e", "alice@acme.example", true}, /* the domain, see below */
		{"*example", "bob@acme.example", true},
		{"bob?acme.example", "bob@acme.example", false},
		/* Without '@': a domain pattern, matched on the domain. */
		{"acme.example", "bob@acme.example", true},
		{"acme.example", "acme.example", true},
		{"acme.example", "bob@legal.acme.example", false},
		{"*.acme.example", "bob@legal.acme.example", true},
		{"*.acme.example", "bob@acme.example", false},
		{"ACME.example", "acme.example", true},
		{"acme.example", "bob@acme.example.evil", false},
		/* Backtracking over several stars. */
		{"*a*b*c*@x", "zzazzbzzc@x", true},
		{"*a*b*c*@x", "zzazzczzb@x", false},
		{"a*a*a*a*a*a*a*b@x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x",
		 false},
		{"", "", true},
		{"", "x", false},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
		CHECK_MSG(imp_jid_glob(cases[i].pattern, cases[i].bare) ==
				  cases[i].want,
			  "glob '%s' vs '%s' should be %d", cases[i].pattern,
			  cases[i].bare, cases[i].want);
}

static void test_domain(void)
{
	static const struct {
		const char *d, *domain;
		bool want;
	} cases[] = {
		{"acme.example", "acme.example", true},
		{"acme.example", "ACME.Example", true},
		{"acme.example", "legal.acme.example", false},
		{"acme.example", "acme.example.org", false},
		{"*.example", "acme.example", true},
		{"*.example", "a.b.example", true},
		{"*.example", "ACME.EXAMPLE", true},
		{"*.example", "example", false},
		{"*.example", "notexample", false},
		{"*.example", "acme.example.org", false},
		{"*.partner.example", "x.partner.example", true},
		{"*.partner.example", "xpartner.example", false},
		{"*.partner.example", "partner.example", false},
		{"*.Partner.Example", "x.partner.example", true},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
		CHECK_MSG(imp_domain_match(cases[i].d, cases[i].domain,
					   strlen(cases[i].domain)) ==
				  cases[i].want,
			  "domain '%s' vs '%s' should be %d", cases[i].d,
			  cases[i].domain, cases[i].want);
	/* domain_len bounds the comparison. */
	CHECK(imp_domain_match("acme.example", "acme.example/res", 12));
	CHECK(!imp_domain_match("acme.example", "acme.example", 11));
}

/* Random JIDs and patterns: no crash (ASan/UBSan watch); parsed parts
 * stay inside the input and satisfy the documented invariants; a bare JID
 * always matches itself as a pattern when it contains no wildcard. */
static void test_random(void)
{
	static const char alpha[] = "ab@/.*?AB\xc3\xb6 -";
	unsigned seed = 99, bad = 0, parsed = 0;

	for (int i = 0; i < 100000; i++) {
		char s[24], p[12];
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 22, pn = (seed >> 8) % 11;
		for (size_t k = 0; k < n; k++) {
			seed = seed * 1103515245u + 12345u;
			s[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		s[n] = '\0';
		for (size_t k = 0; k < pn; k++) {
			seed = seed * 1103515245u + 12345u;
			p[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		p[pn] = '\0';
		imp_jid_t j;
		if (imp_jid_parse(s, n, &j)) {
			parsed++;
			if (!j.domain || j.domain_len == 0 || j.domain < s ||
			    j.domain + j.domain_len > s + n ||
			    memchr(j.domain, '@', j.domain_len) ||
			    (j.local && j.local_len == 0))
				bad++;
			char *b = imp_jid_bare(arena, &j);
			if (!b || (!strpbrk(b, "*?") && !imp_jid_glob(b, b)))
				bad++;
		}
		(void)imp_jid_glob(p, s);
		(void)imp_domain_match(p, s, n);
	}
	CHECK_INT(bad, 0);
	CHECK(parsed > 100);
}

int main(void)
{
	CHECK(imp_ctx_new(NULL, &ctx) == IMP_OK);
	arena = imp_arena_new(ctx, 0);
	CHECK(arena != NULL);
	if (!arena)
		return CHECK_DONE();
	test_parse();
	test_glob();
	test_domain();
	test_random();
	imp_arena_free(arena);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
