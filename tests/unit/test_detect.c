/*
 * test_detect.c -- validators (Luhn, card brands, IBAN, SSN, entropy), the
 * built-in detectors on valid, invalid and edge inputs with both engines,
 * context words raising confidence, custom detectors (validator, errors
 * with FILE:LINE:COL) and the PCRE2 match limit on hostile input.
 *
 * Every token, key and number below is synthetic: made up for this file
 * (Luhn/mod-97 completed where needed), or a published example.
 */
#include "check.h"
#include "detect.h"

#include <stdlib.h>

static imp_ctx_t *ctx;

/* ---- validators ------------------------------------------------------- */

static void test_luhn_brand(void)
{
	static const struct {
		const char *s;
		bool luhn;
		const char *brand; /* NULL: none */
	} t[] = {
		{"4307418529630747", true, "visa"},
		{"4307 4185 2963 0747", true, "visa"},
		{"4307-4185-2963-0747", true, "visa"},
		{"4307418529630748", false, "visa"},   /* brand ignores Luhn */
		{"4307418529637", true, "visa"},       /* 13 digits */
		{"4307418529630741857", true, "visa"}, /* 19 digits */
		{"5130741852963074", true, "mastercard"},
		{"2221307418529630", true, "mastercard"},
		{"373074185296302", true, "amex"},
		{"6011307418529635", true, "discover"},
		{"3530307418529634", true, "jcb"},
		{"36307418529639", true, "diners"},
		{"6230741852963071", true, "unionpay"},
		{"6759307418529631", true, "maestro"},
		{"373074185296302 1", false, NULL}, /* amex must be 15 */
		{"9307418529630747", false, NULL},  /* no brand starts 9 */
		{"430741852963", false, NULL},      /* 12 digits: too short */
		{"4307x18529630747", false, NULL},  /* not a number */
		{"0", false, NULL},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(t); i++) {
		size_t n = strlen(t[i].s);
		CHECK_MSG(imp_luhn_valid(t[i].s, n) == t[i].luhn, "luhn %s",
			  t[i].s);
		const char *b = imp_card_brand(t[i].s, n);
		if (t[i].brand)
			CHECK_STR(b, t[i].brand);
		else
			CHECK_MSG(b == NULL, "brand of %s = %s", t[i].s, b);
	}
}

static void test_iban(void)
{
	static const struct {
		const char *s;
		bool ok;
	} t[] = {
		{"GB82 WEST 1234 5698 7654 32", true},
		{"GB82WEST12345698765432", true},
		{"gb82 west 1234 5698 7654 32", true},
		{"DE89 3704 0044 0532 0130 00", true},
		{"FR14 2004 1010 0505 0001 3M02 606", true},
		{"NL91 ABNA 0417 1643 00", true},
		{"CH93 0076 2011 6238 5295 7", true},
		{"GB82 WEST 1234 5698 7654 33", false},  /* check fails */
		{"GB82 WEST 1234 5698 7654 3", false},   /* GB is 22 */
		{"DE89 3704 0044 0532 0130 001", false}, /* DE is 22 */
		{"ZZ82 WEST 1234 5698 7654 32", false},  /* no such country */
		{"NL91 ABNA 0417 1643 01", false},
		{"CH93 0076 2011 6238 5295 8", false},
		{"", false},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(t); i++)
		CHECK_MSG(imp_iban_valid(t[i].s, strlen(t[i].s)) == t[i].ok,
			  "iban %s", t[i].s);
}

static void test_ssn(void)
{
	static const struct {
		const char *s;
		bool ok;
	} t[] = {
		{"123-45-6789", true},  {"123 45 6789", true},
		{"123456789", true},    {"772-31-4098", true},
		{"000-12-3456", false}, {"666-12-3456", false},
		{"900-12-3456", false}, {"999-12-3456", false},
		{"123-00-4567", false}, {"123-45-0000", false},
		{"078-05-1120", false}, {"219-09-9999", false},
		{"123-45 6789", false}, {"12-345-6789", false},
		{"1234-5-6789", false}, {"12345678", false},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(t); i++)
		CHECK_MSG(imp_ssn_valid(t[i].s, strlen(t[i].s)) == t[i].ok,
			  "ssn %s", t[i].s);
}

static void test_entropy(void)
{
	CHECK(imp_entropy("aaaaaa", 6) < 0.001);
	CHECK(imp_entropy("abab", 4) > 0.999 && imp_entropy("abab", 4) < 1.001);
	CHECK(imp_entropy("abcd", 4) > 1.999 && imp_entropy("abcd", 4) < 2.001);
	CHECK(imp_entropy("", 0) == 0.0);
	CHECK(imp_entropy("Tr0ub4dor&3", 11) > 2.5);
}

/* ---- built-in detectors ------------------------------------------------- */

typedef struct dcase_s {
	const char *det;
	const char *text;
	int n;            /* expected hits of det */
	const char *span; /* expected text of the first hit, or NULL */
	int min_conf;     /* first hit's confidence >= this (0: skip) */
	int max_conf;     /* first hit's confidence <= this (0: skip) */
} dcase_t;

static const dcase_t dcases[] = {
	/* payment_card */
	{"payment_card", "card 4307418529630747 thanks", 1, "4307418529630747",
	 90, 0},
	{"payment_card", "ref 4307 4185 2963 0747.", 1, "4307 4185 2963 0747",
	 70, 80},
	{"payment_card", "4307-4185-2963-0747", 1, "4307-4185-2963-0747", 0, 0},
	{"payment_card", "amex 3730 741852 96302", 1, "3730 741852 96302", 0,
	 0},
	{"payment_card", "4307418529630748", 0, NULL, 0, 0},  /* Luhn */
	{"payment_card", "94307418529630747", 0, NULL, 0, 0}, /* longer run */
	{"payment_card", "43074185296307471", 0, NULL, 0, 0},
	{"payment_card", "1 4307 4185 2963 0747", 0, NULL, 0, 0},
	{"payment_card", "order 12345678901234567890123", 0, NULL, 0, 0},
	{"payment_card", "4111111111111111", 0, NULL, 0, 0}, /* test cards */
	{"payment_card", "4242 4242 4242 4242", 0, NULL, 0, 0},
	{"payment_card", "5555-5555-5555-4444", 0, NULL, 0, 0},
	{"payment_card", "378282246310005", 0, NULL, 0, 0},
	{"payment_card", "6011111111111117", 0, NULL, 0, 0},
	{"payment_card", "3530111333300000", 0, NULL, 0, 0},
	{"payment_card", "30569309025904", 0, NULL, 0, 0},
	{"payment_card", "a 5130741852963074 b 6011307418529635", 2,
	 "5130741852963074", 0, 0},
	/* iban */
	{"iban", "IBAN: GB82 WEST 1234 5698 7654 32 please", 1,
	 "GB82 WEST 1234 5698 7654 32", 100, 0},
	{"iban", "pay DE89370400440532013000 today", 1,
	 "DE89370400440532013000", 80, 90},
	{"iban", "DE89 3704 0044 0532 0130 00 12 more", 1,
	 "DE89 3704 0044 0532 0130 00", 0, 0},
	{"iban", "FR14 2004 1010 0505 0001 3M02 606", 1,
	 "FR14 2004 1010 0505 0001 3M02 606", 0, 0},
	{"iban", "nl91abna0417164300", 1, "nl91abna0417164300", 0, 0},
	{"iban", "CH93 0076 2011 6238 5295 7", 1, "CH93 0076 2011 6238 5295 7",
	 0, 0},
	{"iban", "GB82 WEST 1234 5698 7654 33", 0, NULL, 0, 0},
	{"iban", "XGB82WEST12345698765432", 0, NULL, 0, 0},
	/* us_ssn */
	{"us_ssn", "my ssn is 123-45-6789", 1, "123-45-6789", 85, 0},
	{"us_ssn", "code 772-31-4098 ok", 1, "772-31-4098", 55, 65},
	{"us_ssn", "id 772314098", 1, "772314098", 0, 40},
	{"us_ssn", "social security number 772314098", 1, "772314098", 50, 0},
	{"us_ssn", "000-12-3456 666-12-3456 912-12-3456", 0, NULL, 0, 0},
	{"us_ssn", "123-00-6789 123-45-0000 078-05-1120", 0, NULL, 0, 0},
	{"us_ssn", "1772-31-4098 772-31-40981 5772314098", 0, NULL, 0, 0},
	{"us_ssn", "123-45 6789", 0, NULL, 0, 0},
	/* email */
	{"email", "mail me at jane.doe+hr@corp.example.com.", 1,
	 "jane.doe+hr@corp.example.com", 95, 0},
	{"email", "x a_b@sub.example.org y", 1, "a_b@sub.example.org", 85, 95},
	{"email", "logo@2x.png and icon@3x.jpg", 0, NULL, 0, 0},
	{"email", "user@1.2.3.4 root@localhost", 0, NULL, 0, 0},
	{"email", "@mention and a@b", 0, NULL, 0, 0},
	/* phone */
	{"phone", "call (555) 234-5678 now", 1, "(555) 234-5678", 80, 0},
	{"phone", "it is 555-234-5678", 1, "555-234-5678", 55, 65},
	{"phone", "+44 20 7946 0958", 1, "+44 20 7946 0958", 60, 70},
	{"phone", "1-555-234-5678", 1, "1-555-234-5678", 0, 0},
	{"phone", "version 1.2.3.4 released", 0, NULL, 0, 0},
	{"phone", "on 2026-11-25 at 12:30", 0, NULL, 0, 0},
	{"phone", "ip 192.168.100.200", 0, NULL, 0, 0},
	{"phone", "555-134-5678", 0, NULL, 0, 0}, /* exchange 1xx */
	{"phone", "155-234-5678", 0, NULL, 0, 0}, /* area 1xx */
	{"phone", "5552345678", 1, "5552345678", 0, 40},
	/* private_key */
	{"private_key",
	 "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n"
	 "-----END RSA PRIVATE KEY-----",
	 1, NULL, 100, 0},
	{"private_key", "-----BEGIN OPENSSH PRIVATE KEY----- truncated", 1,
	 "-----BEGIN OPENSSH PRIVATE KEY-----", 90, 0},
	{"private_key", "-----BEGIN PRIVATE KEY-----", 1, NULL, 0, 0},
	{"private_key", "-----BEGIN PUBLIC KEY-----", 0, NULL, 0, 0},
	{"private_key", "-----BEGIN CERTIFICATE-----", 0, NULL, 0, 0},
	/* aws_key */
	{"aws_key", "key AKIA2QJ7ZX4MWV6TKB3R", 1, "AKIA2QJ7ZX4MWV6TKB3R", 90,
	 0},
	{"aws_key", "ASIAQ7R2M4ZKX3VBT6WJ!", 1, "ASIAQ7R2M4ZKX3VBT6WJ", 0, 0},
	{"aws_key", "AKIAIOSFODNN7EXAMPLE", 0, NULL, 0, 0}, /* AWS docs */
	{"aws_key", "XAKIA2QJ7ZX4MWV6TKB3R", 0, NULL, 0, 0},
	{"aws_key", "AKIA2QJ7ZX4MWV6TKB3", 0, NULL, 0, 0},
	/* github_token */
	{"github_token", "ghp_q8ZtR2vLk3Wm9XyB7nPc4Hs6Df1Ja0Ge5TuV", 1, NULL,
	 90, 0},
	{"github_token", "gho_q8ZtR2vLk3Wm9XyB7nPc4Hs6Df1Ja0Ge5TuV", 1, NULL, 0,
	 0},
	{"github_token",
	 "github_pat_11ABCDEFG0q8ZtR2vLk3Wm_9XyB7nPc4Hs6Df1Ja0Ge5TuVw8Yr3Kx"
	 "Q2mN7bL4pZ9cH6sD1fJ0gE5tUvW8",
	 1, NULL, 0, 0},
	{"github_token", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0, NULL, 0,
	 0},
	{"github_token", "ghp_q8ZtR2vLk3Wm9XyB7nPc4Hs6Df1Ja0Ge5Tu", 0, NULL, 0,
	 0}, /* 35 */
	/* gitlab_token */
	{"gitlab_token", "token glpat-Zq8tR2vLk3Wm9XyB7nPc", 1,
	 "glpat-Zq8tR2vLk3Wm9XyB7nPc", 0, 0},
	{"gitlab_token", "glpat-aaaaaaaaaaaaaaaaaaaa", 0, NULL, 0, 0},
	{"gitlab_token", "glpat-short", 0, NULL, 0, 0},
	/* slack_token */
	{"slack_token", "xoxb-2048613571-9137264851-Zq8tR2vLk3Wm9XyB", 1, NULL,
	 0, 0},
	{"slack_token",
	 "https://hooks.slack.com/services/T0A1B2C3D/B9Z8Y7X6W/q8ZtR2vLk3Wm9X",
	 1, NULL, 0, 0},
	{"slack_token", "xoxb-", 0, NULL, 0, 0},
	/* jwt */
	{"jwt",
	 "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	 "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IlRlc3QgVXNlciJ9."
	 "c2lnbmF0dXJlLW5vdC1yZWFs",
	 1, NULL, 90, 0},
	{"jwt",
	 "eyJ0eXAiOiJKV1QiLCJ4IjoieSJ9."
	 "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IlRlc3QgVXNlciJ9.abc",
	 0, NULL, 0, 0}, /* header without "alg" */
	{"jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", 0, NULL, 0, 0},
	/* password */
	{"password", "the password is Tr0ub4dor&3", 1, "Tr0ub4dor&3", 80, 0},
	{"password", "password: hunter2", 1, "hunter2", 80, 0},
	{"password", "pw: S3cure!x", 1, "S3cure!x", 0, 0},
	{"password", "pwd=Qx7#mP2v.", 1, "Qx7#mP2v", 0, 0},
	{"password", "passwd Zk29vQ4m", 1, "Zk29vQ4m", 55, 65},
	{"password", "passcode is 7391aq", 1, "7391aq", 0, 0},
	{"password", "my password for the vpn is Blue42Sky!", 1, "Blue42Sky!",
	 100, 0},
	{"password", "the pass is R4nd0mP4ss", 1, "R4nd0mP4ss", 0, 0},
	{"password", "\"password\": \"gH7kLm29\"", 1, "gH7kLm29", 0, 0},
	{"password", "password: ******", 0, NULL, 0, 0},
	{"password", "password: xxxxxx", 0, NULL, 0, 0},
	{"password", "password is <password>", 0, NULL, 0, 0},
	{"password", "password: aaaaaa1", 0, NULL, 0, 0}, /* entropy */
	{"password", "pw: ab12", 0, NULL, 0, 0},          /* too short */
	{"password", "the password is required", 0, NULL, 0, 0},
	{"password", "passwords are rotated monthly", 0, NULL, 0, 0},
	{"password", "password reset done", 0, NULL, 0, 0},
	{"password", "compass: n0rth3rly", 0, NULL, 0, 0},
};

static void scan(const imp_detset_t *d, imp_detscratch_t *s, uint64_t want,
		 const char *text, imp_arena_t *a, imp_dethit_t **hits,
		 size_t *n, bool *limited)
{
	*hits = NULL;
	*n = 0;
	*limited = false;
	int rc = imp_detset_scan(d, s, a, want, text, strlen(text), hits, n,
				 limited);
	CHECK_INT(rc, IMP_OK);
}

static void test_builtins(imp_engine_t engine)
{
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_arena_t *sa = imp_arena_new(ctx, 0);
	imp_errors_t *errs = imp_errors_new(ctx, 10);
	imp_detset_t *d = NULL;
	CHECK_INT(imp_detset_build(a, NULL, 0, engine, errs, &d), IMP_OK);
	CHECK_INT(imp_errors_count(errs), 0);
	if (!d)
		return;
	imp_detscratch_t *s = imp_detscratch_new(ctx);
	CHECK_INT(imp_detscratch_prepare(s, d), IMP_OK);
	for (size_t i = 0; i < IMP_ARRAY_LEN(dcases); i++) {
		const dcase_t *c = &dcases[i];
		int idx = imp_detset_index(d, c->det);
		CHECK_MSG(idx >= 0, "index of %s", c->det);
		if (idx < 0)
			continue;
		imp_dethit_t *h;
		size_t n;
		bool lim;
		/* Ask for everything, count only this detector's hits. */
		scan(d, s, ~0ULL, c->text, sa, &h, &n, &lim);
		CHECK(!lim);
		int got = 0;
		const imp_dethit_t *first = NULL;
		for (size_t j = 0; j < n; j++) {
			CHECK(h[j].end > h[j].start &&
			      h[j].end <= strlen(c->text));
			if (h[j].det == (unsigned)idx) {
				if (!first)
					first = &h[j];
				got++;
			}
		}
		CHECK_MSG(got == c->n, "[%d] %s on \"%s\": %d hits, want %d",
			  engine, c->det, c->text, got, c->n);
		if (first && c->span) {
			size_t l = first->end - first->start;
			CHECK_MSG(strlen(c->span) == l &&
					  memcmp(c->text + first->start,
						 c->span, l) == 0,
				  "%s: span \"%.*s\", want \"%s\"", c->det,
				  (int)l, c->text + first->start, c->span);
		}
		if (first && c->min_conf)
			CHECK_MSG(first->confidence >= c->min_conf,
				  "%s on \"%s\": confidence %u < %d", c->det,
				  c->text, first->confidence, c->min_conf);
		if (first && c->max_conf)
			CHECK_MSG(first->confidence <= c->max_conf,
				  "%s on \"%s\": confidence %u > %d", c->det,
				  c->text, first->confidence, c->max_conf);
		/* Only wanted detectors run. */
		scan(d, s, 1ULL << idx, c->text, sa, &h, &n, &lim);
		for (size_t j = 0; j < n; j++)
			CHECK_INT(h[j].det, idx);
		CHECK_INT(n, c->n);
		imp_arena_reset(sa);
	}

	/* Context raises confidence; the same number without it does not. */
	imp_dethit_t *h;
	size_t n;
	bool lim;
	uint64_t card = 0;
	CHECK(imp_detset_mask(d, "payment_card", &card));
	scan(d, s, card, "my visa is 4307418529630747", sa, &h, &n, &lim);
	unsigned with = n ? h[0].confidence : 0;
	scan(d, s, card, "number 4307418529630747", sa, &h, &n, &lim);
	unsigned without = n ? h[0].confidence : 0;
	CHECK(with > without && without > 0);
	/* ... but not when the word is farther back than the window. */
	scan(d, s, card,
	     "visa ....................................................... "
	     "4307418529630747",
	     sa, &h, &n, &lim);
	CHECK_INT(n ? h[0].confidence : 0, without);
	/* Context words match whole words only ("cc" not in "account"). */
	scan(d, s, card, "account 4307418529630747", sa, &h, &n, &lim);
	CHECK_INT(n ? h[0].confidence : 0, without);

	/* Hits are appended to what the caller already has. */
	scan(d, s, card, "4307418529630747", sa, &h, &n, &lim);
	CHECK_INT(n, 1);
	const char *t2 = "and 5130741852963074";
	CHECK_INT(imp_detset_scan(d, s, sa, card, t2, strlen(t2), &h, &n, &lim),
		  IMP_OK);
	CHECK_INT(n, 2);
	CHECK_INT(n == 2 ? h[0].start : 99, 0);
	CHECK_INT(n == 2 ? h[1].start : 99, 4);

	/* Masks: credential covers the secret detectors, not the PII. */
	uint64_t cred = 0, m = 0;
	CHECK(imp_detset_mask(d, "credential", &cred));
	CHECK(cred & (1ULL << imp_detset_index(d, "password")));
	CHECK(cred & (1ULL << imp_detset_index(d, "private_key")));
	CHECK(cred & (1ULL << imp_detset_index(d, "jwt")));
	CHECK(!(cred & (1ULL << imp_detset_index(d, "email"))));
	CHECK(!imp_detset_mask(d, "no_such", &m));
	CHECK_INT(m, 0);
	CHECK_INT(imp_detset_index(d, "credential"), -1);
	CHECK_INT(imp_detset_count(d), 12);
	CHECK_STR(imp_detset_name(d, 0), "payment_card");
	CHECK(imp_detset_name(d, 99) == NULL);

	imp_detscratch_free(s);
	imp_errors_free(errs);
	imp_arena_free(sa);
	imp_arena_free(a);
}

static void test_names(void)
{
	const char *const *names = imp_detect_builtin_names();
	size_t n = 0;
	for (; names[n]; n++)
		CHECK(imp_detect_builtin_exists(names[n]));
	CHECK_INT(n, 13);
	CHECK(imp_detect_builtin_exists("credential"));
	CHECK(imp_detect_builtin_exists("payment_card"));
	CHECK(!imp_detect_builtin_exists("employee_id"));
}

/* ---- custom detectors ---------------------------------------------------- */

static void test_custom(imp_engine_t engine)
{
	static const char *const ctxw[] = {"account", "acct"};
	imp_detector_spec_t spec[] = {
		{"employee_id", "EMP-\\d{6}", "none", NULL, 0, 0, 60, "p.yaml",
		 10, 14},
		{"loyalty_card", "(?<!\\d)LC\\d{10}(?!\\d)", "luhn", ctxw, 2,
		 20, 50, "p.yaml", 14, 14},
		{"ref_code", "RF\\d{2}[A-Z0-9]{4,20}", "mod97", NULL, 0, 0, 0,
		 "p.yaml", 18, 14},
	};
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_arena_t *sa = imp_arena_new(ctx, 0);
	imp_errors_t *errs = imp_errors_new(ctx, 10);
	imp_detset_t *d = NULL;
	CHECK_INT(imp_detset_build(a, spec, 3, engine, errs, &d), IMP_OK);
	CHECK_INT(imp_errors_count(errs), 0);
	if (!d)
		return;
	CHECK_INT(imp_detset_count(d), 15);
	CHECK_INT(imp_detset_index(d, "employee_id"), 12);
	imp_detscratch_t *s = imp_detscratch_new(ctx);
	CHECK_INT(imp_detscratch_prepare(s, d), IMP_OK);
	uint64_t want = 0;
	CHECK(imp_detset_mask(d, "employee_id", &want));
	CHECK(imp_detset_mask(d, "loyalty_card", &want));
	CHECK(imp_detset_mask(d, "ref_code", &want));

	static const struct {
		const char *text;
		const char *det;
		int n;
		int conf; /* expected confidence of the first hit */
	} t[] = {
		{"staff EMP-123456 here", "employee_id", 1, 60},
		{"EMP-12345 short", "employee_id", 0, 0},
		/* 4307418529 + Luhn digit: LC4307418527 (checked below) */
		{"card LC4307418529", "loyalty_card", 0, 0}, /* Luhn fails */
		{"acct LC4307418527 ok", "loyalty_card", 1, 75},
		{"then LC4307418527", "loyalty_card", 1, 50},
		{"ref RF18539007547034", "ref_code", 1, 70}, /* ISO 11649 */
		{"ref RF18539007547035", "ref_code", 0, 0},
	};
	CHECK(imp_luhn_valid("4307418527", 10));
	CHECK(!imp_luhn_valid("4307418529", 10));
	for (size_t i = 0; i < IMP_ARRAY_LEN(t); i++) {
		imp_dethit_t *h;
		size_t n;
		bool lim;
		scan(d, s, want, t[i].text, sa, &h, &n, &lim);
		int idx = imp_detset_index(d, t[i].det);
		int got = 0;
		for (size_t j = 0; j < n; j++)
			got += h[j].det == (unsigned)idx;
		CHECK_MSG(got == t[i].n, "custom %s on \"%s\": %d hits",
			  t[i].det, t[i].text, got);
		if (got && n)
			CHECK_INT(h[0].confidence, t[i].conf);
		imp_arena_reset(sa);
	}
	/* A want of customs only scans the custom prefilter set, one with a
	 * built-in the full set: both find what they should, and a built-in
	 * that is not wanted is never reported. */
	static const char mixed[] = "mail bob.smith@example.org EMP-123456";
	int email = imp_detset_index(d, "email");
	int emp = imp_detset_index(d, "employee_id");
	CHECK(email >= 0 && emp >= 0);
	for (int k = 0; k < 2; k++) {
		uint64_t w = 1ULL << emp;
		if (k)
			w |= 1ULL << email;
		imp_dethit_t *h;
		size_t n;
		bool lim;
		scan(d, s, w, mixed, sa, &h, &n, &lim);
		int got_email = 0, got_emp = 0;
		for (size_t j = 0; j < n; j++) {
			got_email += h[j].det == (unsigned)email;
			got_emp += h[j].det == (unsigned)emp;
		}
		CHECK_INT(got_emp, 1);
		CHECK_INT(got_email, k);
		imp_arena_reset(sa);
	}
	imp_detscratch_free(s);
	imp_errors_free(errs);
	imp_arena_free(sa);
	imp_arena_free(a);
}

static void test_custom_errors(void)
{
	imp_detector_spec_t spec[] = {
		{"good", "OK-\\d+", NULL, NULL, 0, 0, 0, "pol.yaml", 3, 14},
		{"broken", "EMP-(\\d{6", NULL, NULL, 0, 0, 0, "pol.yaml", 7,
		 14},
		{"email", "x+y", NULL, NULL, 0, 0, 0, "pol.yaml", 9, 5},
		{"badval", "Z\\d", "crc32", NULL, 0, 0, 0, "pol.yaml", 11, 16},
		{"empty", "a*", NULL, NULL, 0, 0, 0, "pol.yaml", 13, 14},
		{"good", "OK2-\\d+", NULL, NULL, 0, 0, 0, "pol.yaml", 15, 14},
	};
	static const unsigned lines[] = {7, 9, 11, 13, 15};
	static const unsigned cols[] = {14, 5, 16, 14, 14};
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_errors_t *errs = imp_errors_new(ctx, 20);
	imp_detset_t *d = (imp_detset_t *)&d;
	CHECK_INT(imp_detset_build(a, spec, IMP_ARRAY_LEN(spec),
				   IMP_ENGINE_AUTO, errs, &d),
		  IMP_ERR_POLICY);
	CHECK(d == NULL);
	CHECK_INT(imp_errors_count(errs), IMP_ARRAY_LEN(lines));
	for (size_t i = 0;
	     i < imp_errors_count(errs) && i < IMP_ARRAY_LEN(lines); i++) {
		const imp_error_t *e = imp_errors_get(errs, i);
		CHECK_INT(e->code, IMP_ERR_POLICY);
		CHECK_STR(e->file, "pol.yaml");
		CHECK_INT(e->line, lines[i]);
		CHECK_INT(e->column, cols[i]);
	}
	const imp_error_t *e = imp_errors_get(errs, 0);
	CHECK(e && strstr(e->message, "broken") && e->detail &&
	      strstr(e->detail, "offset"));
	char buf[256];
	imp_error_format(e, buf, sizeof(buf));
	CHECK_MSG(strncmp(buf, "pol.yaml:7:14: ", 15) == 0, "%s", buf);
	imp_errors_free(errs);
	imp_arena_free(a);

	/* 64 detectors at most: 12 built-ins + 52 customs fit, 53 do not. */
	enum { NC = 53 };
	imp_detector_spec_t many[NC];
	char names[NC][16];
	for (size_t i = 0; i < NC; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		many[i] = (imp_detector_spec_t){
			names[i], "Q\\d{3}",       NULL, NULL, 0, 0, 0,
			"m.yaml", (unsigned)i + 1, 3};
	}
	for (size_t k = NC - 1; k <= NC; k++) {
		a = imp_arena_new(ctx, 0);
		errs = imp_errors_new(ctx, 20);
		d = NULL;
		int rc =
			imp_detset_build(a, many, k, IMP_ENGINE_AUTO, errs, &d);
		CHECK_INT(rc, k == NC ? IMP_ERR_POLICY : IMP_OK);
		CHECK_INT(imp_errors_count(errs), k == NC ? 1 : 0);
		if (k == NC && imp_errors_count(errs))
			CHECK_INT(imp_errors_get(errs, 0)->line, NC);
		imp_errors_free(errs);
		imp_arena_free(a);
	}
}

/* A catastrophic-backtracking custom pattern on hostile input stops at the
 * PCRE2 match limit and reports the text as not fully inspected. */
static void test_limit(imp_engine_t engine)
{
	imp_detector_spec_t spec[] = {
		{"bomb", "(a+)+$", NULL, NULL, 0, 0, 0, "p.yaml", 1, 1},
	};
	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_arena_t *sa = imp_arena_new(ctx, 0);
	imp_errors_t *errs = imp_errors_new(ctx, 10);
	imp_detset_t *d = NULL;
	CHECK_INT(imp_detset_build(a, spec, 1, engine, errs, &d), IMP_OK);
	if (!d)
		return;
	imp_detscratch_t *s = imp_detscratch_new(ctx);
	CHECK_INT(imp_detscratch_prepare(s, d), IMP_OK);
	uint64_t want = 0;
	CHECK(imp_detset_mask(d, "bomb", &want));
	/* A run of a's that cannot end the text, then a short run that
	 * does (so a prefilter, if any, lets the detector run). */
	char text[128];
	memset(text, 'a', 100);
	memcpy(text + 100, "b aa", 5);
	imp_dethit_t *h;
	size_t n;
	bool lim;
	scan(d, s, want, text, sa, &h, &n, &lim);
	CHECK(lim);
	/* A harmless text is inspected completely. */
	scan(d, s, want, "b aa", sa, &h, &n, &lim);
	CHECK(!lim);
	CHECK_INT(n, 1);
	imp_detscratch_free(s);
	imp_errors_free(errs);
	imp_arena_free(sa);
	imp_arena_free(a);
}

int main(void)
{
	if (imp_ctx_new(NULL, &ctx) != IMP_OK)
		return 2;
	test_luhn_brand();
	test_iban();
	test_ssn();
	test_entropy();
	test_names();
	test_builtins(IMP_ENGINE_PCRE2);
	if (imp_mpat_vectorscan_available())
		test_builtins(IMP_ENGINE_VECTORSCAN);
	test_custom(IMP_ENGINE_PCRE2);
	if (imp_mpat_vectorscan_available())
		test_custom(IMP_ENGINE_VECTORSCAN);
	test_custom_errors();
	test_limit(IMP_ENGINE_PCRE2);
	if (imp_mpat_vectorscan_available())
		test_limit(IMP_ENGINE_VECTORSCAN);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
