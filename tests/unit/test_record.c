/*
 * test_record.c -- archive records (record.h): building from a real
 * verdict, the canonical encoding against golden bytes, NULL versus empty
 * strings, hash chain links, HMAC, spool serialisation round trips and a
 * decoder that refuses every truncation and survives bit flips.
 */
#include "check.h"
#include "impolicy.h"
#include "record.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static imp_ctx_t *g_ctx;

static imp_policy_t *load_policy(const char *text)
{
	char path[] = "/tmp/test_record_XXXXXX.yaml";
	int fd = mkstemps(path, 5);
	if (fd < 0)
		return NULL;
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		unlink(path);
		return NULL;
	}
	close(fd);
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	int rc = imp_policy_load(g_ctx, path, NULL, &p, &errs);
	if (rc != IMP_OK) {
		for (size_t i = 0; i < imp_errors_count(errs); i++) {
			char buf[512];
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof(buf));
			fprintf(stderr, "policy: %s\n", buf);
		}
		imp_errors_free(errs);
	}
	unlink(path);
	return p;
}

static void to_hex(const void *p, size_t n, char *out)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Field-by-field equality of two records (everything serialised). */
static bool rec_equal(const imp_record_t *a, const imp_record_t *b)
{
	if (a->seq != b->seq || a->ts_us != b->ts_us ||
	    a->raw_len != b->raw_len || a->n_rules != b->n_rules ||
	    a->n_flags != b->n_flags || a->has_digest != b->has_digest)
		return false;
	if (!str_eq(a->node, b->node) || !str_eq(a->direction, b->direction) ||
	    !str_eq(a->kind, b->kind) ||
	    !str_eq(a->stanza_type, b->stanza_type) ||
	    !str_eq(a->from_bare, b->from_bare) ||
	    !str_eq(a->from_full, b->from_full) ||
	    !str_eq(a->to_bare, b->to_bare) ||
	    !str_eq(a->to_full, b->to_full) || !str_eq(a->thread, b->thread) ||
	    !str_eq(a->conv_key, b->conv_key) || !str_eq(a->body, b->body) ||
	    !str_eq(a->verdict, b->verdict) ||
	    !str_eq(a->retention_class, b->retention_class) ||
	    !str_eq(a->hash_alg, b->hash_alg) || !str_eq(a->key_id, b->key_id))
		return false;
	if (memcmp(a->raw_xml, b->raw_xml, a->raw_len) != 0 ||
	    memcmp(a->prev_hash, b->prev_hash, IMP_HASH_LEN) != 0 ||
	    memcmp(a->rec_hash, b->rec_hash, IMP_HASH_LEN) != 0 ||
	    (a->has_digest &&
	     memcmp(a->policy_digest, b->policy_digest, IMP_HASH_LEN) != 0))
		return false;
	for (size_t i = 0; i < a->n_rules; i++)
		if (!str_eq(a->rule_ids[i], b->rule_ids[i]) ||
		    !str_eq(a->sections[i], b->sections[i]))
			return false;
	for (size_t i = 0; i < a->n_flags; i++)
		if (!str_eq(a->flags[i].rule_id, b->flags[i].rule_id) ||
		    !str_eq(a->flags[i].section, b->flags[i].section) ||
		    !str_eq(a->flags[i].severity, b->flags[i].severity))
			return false;
	return true;
}

/* ---- build from a real verdict ------------------------------------------- */

static const char policy_yaml[] =
	"policy: { name: rec, local_domains: [acme.example] }\n"
	"settings: { retention: 6y }\n"
	"lists:\n"
	"  greet: { words: [hello] }\n"
	"  flagw: { words: [flagword] }\n"
	"  rejw:  { words: [rejword] }\n"
	"rules:\n"
	"  - { id: r.allow, when: { words: greet }, action: allow }\n"
	"  - { id: r.flag, when: { words: flagw }, action: flag,\n"
	"      section: 'S-F', severity: high }\n"
	"  - { id: r.rej, when: { words: rejw }, action: reject,\n"
	"      severity: critical, retention: 7y }\n";

static const struct {
	const char *xml;
	const char *verdict;
	const char *rules;    /* space-separated rule ids */
	const char *sections; /* '|'-separated, policy order */
	size_t n_flags;
	const char *retention;
	const char *conv_key;
	const char *from_bare, *to_bare, *thread, *body, *kind;
} build_cases[] = {
	{"<message from='Alice@ACME.example/Laptop' to='bob@acme.example' "
	 "type='chat'><body>hello flagword</body></message>",
	 "flag", "r.allow r.flag", "|S-F", 1, "6y",
	 "alice@acme.example bob@acme.example", "alice@acme.example",
	 "bob@acme.example", NULL, "hello flagword", "message"},
	{"<message from='zed@acme.example/x' to='Bob@Acme.Example/y' "
	 "type='chat'><thread>T-1</thread><body>rejword flagword</body>"
	 "</message>",
	 "reject", "r.flag r.rej", "S-F|", 2, "7y", "T-1", "zed@acme.example",
	 "bob@acme.example", "T-1", "rejword flagword", "message"},
	{"<message from='a@acme.example' to='b@acme.example'><body>nothing"
	 "</body></message>",
	 "allow", "", "", 0, "6y", "a@acme.example b@acme.example",
	 "a@acme.example", "b@acme.example", NULL, "nothing", "message"},
	{"<presence from='c@acme.example/r'/>", "allow", "", "", 0, "6y",
	 "c@acme.example", "c@acme.example", NULL, NULL, NULL, "presence"},
};

static void test_build(void)
{
	imp_policy_t *p = load_policy(policy_yaml);
	imp_eval_t *ev = NULL;
	CHECK(p != NULL);
	CHECK_INT(imp_eval_new(g_ctx, &ev), IMP_OK);
	if (!p || !ev)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(build_cases); i++) {
		imp_view_t view;
		imp_verdict_t v;
		imp_record_t *r = NULL;
		memset(&view, 0, sizeof(view));
		view.version = IMP_VIEW_VERSION;
		view.origin = IMP_ORIGIN_LOCAL;
		view.xml = build_cases[i].xml;
		view.xml_len = strlen(view.xml);
		CHECK_INT(imp_eval_run(ev, p, &view, 0, &v), IMP_OK);
		CHECK_INT(imp_record_build(g_ctx, "node-1", 1234567, &view, &v,
					   "3y", &r),
			  IMP_OK);
		if (!r) {
			imp_verdict_clear(&v);
			continue;
		}
		CHECK_STR(r->node, "node-1");
		CHECK_INT(r->ts_us, 1234567);
		CHECK_INT(r->seq, 0);
		CHECK(r->hash_alg == NULL && r->key_id == NULL);
		CHECK_STR(r->verdict, build_cases[i].verdict);
		CHECK_STR(r->kind, build_cases[i].kind);
		CHECK_STR(r->direction, v.stanza.direction);
		CHECK_MSG(str_eq(r->from_bare, build_cases[i].from_bare),
			  "case %zu from_bare %s", i, r->from_bare);
		CHECK_MSG(str_eq(r->to_bare, build_cases[i].to_bare),
			  "case %zu to_bare %s", i, r->to_bare);
		CHECK(str_eq(r->from_full, v.stanza.from));
		CHECK(str_eq(r->to_full, v.stanza.to));
		CHECK(str_eq(r->stanza_type, v.stanza.type));
		CHECK(str_eq(r->thread, build_cases[i].thread));
		CHECK(str_eq(r->body, build_cases[i].body));
		CHECK_MSG(str_eq(r->conv_key, build_cases[i].conv_key),
			  "case %zu conv_key %s", i, r->conv_key);
		/* the verdict's class (the deciding rule's or the policy
		 * default) when it names one, else the writer's default */
		CHECK_STR(r->retention_class, v.retention ? v.retention : "3y");
		if (v.retention)
			CHECK_STR(v.retention, build_cases[i].retention);
		{
			const char *save = v.retention;
			imp_record_t *r2 = NULL;
			v.retention = "9y";
			CHECK_INT(imp_record_build(g_ctx, "n", 1, &view, &v,
						   "3y", &r2),
				  IMP_OK);
			CHECK(r2 && str_eq(r2->retention_class, "9y"));
			imp_record_free(g_ctx, r2);
			r2 = NULL;
			v.retention = NULL;
			CHECK_INT(imp_record_build(g_ctx, "n", 1, &view, &v,
						   NULL, &r2),
				  IMP_OK);
			CHECK(r2 && str_eq(r2->retention_class, "default"));
			imp_record_free(g_ctx, r2);
			v.retention = save;
		}
		CHECK_INT(r->raw_len, view.xml_len);
		CHECK(memcmp(r->raw_xml, view.xml, view.xml_len) == 0);
		/* rules and sections, policy order, "" for none */
		char ids[256] = "", secs[256] = "";
		for (size_t k = 0; k < r->n_rules; k++) {
			snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids),
				 "%s%s", k ? " " : "", r->rule_ids[k]);
			snprintf(secs + strlen(secs),
				 sizeof(secs) - strlen(secs), "%s%s",
				 k ? "|" : "", r->sections[k]);
		}
		CHECK_STR(ids, build_cases[i].rules);
		CHECK_STR(secs, build_cases[i].sections);
		CHECK_INT(r->n_rules, v.n_rules);
		CHECK_INT(r->n_flags, build_cases[i].n_flags);
		for (size_t k = 0; k < r->n_flags; k++) {
			/* find the rule match and compare */
			const imp_rule_match_t *m = NULL;
			for (size_t j = 0; j < v.n_rules; j++)
				if (strcmp(v.rules[j].rule_id,
					   r->flags[k].rule_id) == 0)
					m = &v.rules[j];
			CHECK(m != NULL && m->action >= IMP_FLAG);
			if (!m)
				continue;
			static const char *sev[] = {"low", "medium", "high",
						    "critical"};
			CHECK_STR(r->flags[k].severity, sev[m->severity]);
			CHECK(str_eq(r->flags[k].section, m->section));
		}
		/* policy digest: hex -> raw */
		char hex[65];
		CHECK(r->has_digest);
		to_hex(r->policy_digest, IMP_HASH_LEN, hex);
		CHECK_STR(hex, v.policy_digest);
		/* the record is independent of the verdict */
		imp_verdict_clear(&v);
		imp_record_t *d = imp_record_dup(g_ctx, r);
		CHECK(d != NULL && d != r && rec_equal(r, d));
		CHECK(d && d->raw_xml != r->raw_xml);
		imp_record_free(g_ctx, d);
		imp_record_free(g_ctx, r);
	}

	/* malformed stanza, JIDs from the view with invalid UTF-8: recorded,
	 * kind "malformed", text made valid, raw byte-exact */
	{
		static const char bad[] = "<message><body>x\xff</bo";
		imp_view_t view;
		imp_verdict_t v;
		imp_record_t *r = NULL;
		memset(&view, 0, sizeof(view));
		view.version = IMP_VIEW_VERSION;
		view.origin = IMP_ORIGIN_LOCAL;
		view.xml = bad;
		view.xml_len = sizeof(bad) - 1;
		view.from = "Eve\xc3@acme.example/r";
		view.to = "bob@acme.example";
		CHECK_INT(imp_eval_run(ev, p, &view, 0, &v), IMP_OK);
		CHECK(v.flags & IMP_VF_MALFORMED);
		CHECK_INT(imp_record_build(g_ctx, "n", 1, &view, &v, NULL, &r),
			  IMP_OK);
		if (r) {
			CHECK(v.stanza.kind ? str_eq(r->kind, v.stanza.kind)
					    : str_eq(r->kind, "malformed"));
			CHECK_INT(r->raw_len, view.xml_len);
			CHECK(memcmp(r->raw_xml, bad, view.xml_len) == 0);
			CHECK_STR(r->verdict, "reject");
			/* the policy default when the verdict names none */
			CHECK(str_eq(r->retention_class,
				     v.retention ? v.retention : "default"));
			if (r->from_full) {
				CHECK(strstr(r->from_full, "\xef\xbf\xbd") !=
				      NULL);
				CHECK(strstr(r->from_full, "\xc3@") == NULL);
			}
			if (r->from_bare)
				CHECK_STR(r->from_bare,
					  "eve\xef\xbf\xbd@acme.example");
			imp_record_free(g_ctx, r);
		}
		imp_verdict_clear(&v);
	}
	imp_eval_free(ev);
	imp_policy_unref(p);
}

/* ---- UTF-8 sanitising (ASCII fast path + full check) --------------------- */

/* Reference: a straightforward RFC 3629 decoder, byte by byte; every byte
 * that does not start a valid sequence becomes U+FFFD. */
static size_t ref_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len = c < 0x80                 ? 1
		     : c >= 0xC2 && c <= 0xDF ? 2
		     : c >= 0xE0 && c <= 0xEF ? 3
		     : c >= 0xF0 && c <= 0xF4 ? 4
					      : 0;
	if (len == 0 || len > n)
		return 0;
	uint32_t cp = len == 1   ? c
		      : len == 2 ? c & 0x1F
		      : len == 3 ? c & 0x0F
				 : c & 0x07;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static void ref_clean(const char *s, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;
	while (i < n) {
		size_t l = ref_seq(p + i, n - i);
		if (l) {
			memcpy(out, p + i, l);
			out += l;
			i += l;
		} else {
			memcpy(out, "\xef\xbf\xbd", 3);
			out += 3;
			i++;
		}
	}
	*out = '\0';
}

static void test_sanitise(void)
{
	/* Inserted into ASCII runs at every offset 0..19, so that they
	 * start, straddle and end the 8-byte words of the fast path. */
	static const char *const pieces[] = {
		"",
		"\xc3\xa9",
		"\xe2\x82\xac",
		"\xf0\x9d\x84\x9e",
		"\xff",
		"\xc0\x80",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"\xe2\x82",
		"\xc3",
		"\x80\x80\x80",
		"\xf0\x9d\x84",
		"\xc3\xa9\xff\xe2\x82\xac",
	};
	static const char ascii[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t n_ok = 0, n_cases = 0;
	for (size_t k = 0; k < IMP_ARRAY_LEN(pieces); k++) {
		for (size_t off = 0; off < 20; off++) {
			for (size_t tail = 0; tail < 12; tail += 11) {
				char in[128], want[512];
				snprintf(in, sizeof(in), "%.*s%s%.*s", (int)off,
					 ascii, pieces[k], (int)tail,
					 ascii + 20);
				ref_clean(in, want);
				imp_verdict_t v;
				memset(&v, 0, sizeof(v));
				v.stanza.kind = "message";
				v.stanza.body = in;
				v.stanza.thread = in; /* a second field */
				imp_record_t *r = NULL;
				n_cases++;
				if (imp_record_build(g_ctx, "n", 1, NULL, &v,
						     NULL, &r) != IMP_OK ||
				    !r)
					continue;
				if (str_eq(r->body, want) &&
				    str_eq(r->thread, want))
					n_ok++;
				else
					fprintf(stderr,
						"sanitise: piece %zu off %zu "
						"tail %zu differs\n",
						k, off, tail);
				imp_record_free(g_ctx, r);
			}
		}
	}
	CHECK_INT(n_ok, n_cases);
}

/* ---- canonical encoding: golden bytes ------------------------------------ */

static const char *const hand_ids[] = {"r1", "r2"};
static const char *const hand_secs[] = {"S", ""};

static void hand_record(imp_record_t *r)
{
	memset(r, 0, sizeof(*r));
	r->node = "n0";
	r->seq = 1;
	r->ts_us = 1767225600000002; /* 2026-01-01T00:00:00.000002Z */
	r->direction = "outbound";
	r->kind = "message";
	r->stanza_type = "chat";
	r->from_bare = "a@x";
	r->from_full = "a@x/r";
	r->to_bare = "b@x";
	r->to_full = NULL;
	r->thread = NULL;
	r->conv_key = "a@x b@x";
	r->body = "";
	r->raw_xml = (const unsigned char *)"<m/>";
	r->raw_len = 4;
	r->verdict = "flag";
	r->rule_ids = hand_ids;
	r->sections = hand_secs;
	r->n_rules = 2;
	r->has_digest = false;
	r->retention_class = "3y";
	r->hash_alg = "sha256";
	r->key_id = NULL;
	memset(r->prev_hash, 0x11, IMP_HASH_LEN);
}

/* docs/archive.md's layout spelled out item by item. */
static const char golden_hex[] =
	"494d504152433031" /* IMPARC01 */
	"00000002"
	"6e30" /* node n0 */
	"00000008"
	"0000000000000001" /* seq 1 */
	"00000008"
	"0006474846204002" /* ts */
	"00000008"
	"6f7574626f756e64" /* outbound */
	"00000007"
	"6d657373616765" /* message */
	"00000004"
	"63686174" /* chat */
	"00000003"
	"614078" /* a@x */
	"00000005"
	"6140782f72" /* a@x/r */
	"00000003"
	"624078"   /* b@x */
	"ffffffff" /* to_full NULL */
	"ffffffff" /* thread NULL */
	"00000007"
	"61407820624078" /* a@x b@x */
	"00000000"       /* body "" */
	"00000004"
	"3c6d2f3e" /* <m/> */
	"00000004"
	"666c6167" /* flag */
	"00000002"
	"00000002"
	"7231"
	"00000002"
	"7232" /* rule_ids */
	"00000002"
	"00000001"
	"53"
	"00000000" /* sections */
	"ffffffff" /* policy_digest NULL */
	"00000002"
	"3379" /* 3y */
	"00000006"
	"736861323536" /* sha256 */
	"ffffffff"     /* key_id NULL */
	"00000020"
	"1111111111111111111111111111111111111111111111111111111111111111";

static void test_canonical(void)
{
	imp_record_t r;
	imp_buf_t b;
	char *hex;

	hand_record(&r);
	imp_buf_init(&b, g_ctx, NULL);
	imp_record_canonical(&r, &b);
	CHECK(!b.oom);
	hex = malloc(2 * b.len + 1);
	to_hex(b.data, b.len, hex);
	CHECK_STR(hex, golden_hex);

	/* rec_hash is SHA-256 of exactly these bytes */
	unsigned char h[IMP_HASH_LEN];
	char hh[65], want[65];
	CHECK_INT(imp_record_hash(&r, NULL, 0, h), IMP_OK);
	imp_sha256_t *s = imp_sha256_new();
	imp_sha256_update(s, b.data, b.len);
	imp_sha256_final(s, want);
	to_hex(h, IMP_HASH_LEN, hh);
	CHECK_STR(hh, want);
	free(hex);

	/* NULL and "" differ in bytes and in hash */
	const struct {
		const char **field;
	} nulls[] = {{&r.stanza_type}, {&r.body}, {&r.thread}};
	for (size_t i = 0; i < IMP_ARRAY_LEN(nulls); i++) {
		unsigned char h1[IMP_HASH_LEN], h2[IMP_HASH_LEN];
		imp_buf_t b1, b2;
		const char *save = *nulls[i].field;
		imp_buf_init(&b1, g_ctx, NULL);
		imp_buf_init(&b2, g_ctx, NULL);
		*nulls[i].field = NULL;
		imp_record_canonical(&r, &b1);
		CHECK_INT(imp_record_hash(&r, NULL, 0, h1), IMP_OK);
		*nulls[i].field = "";
		imp_record_canonical(&r, &b2);
		CHECK_INT(imp_record_hash(&r, NULL, 0, h2), IMP_OK);
		CHECK_INT(b1.len, b2.len); /* ffffffff vs 00000000 */
		CHECK(memcmp(b1.data, b2.data, b1.len) != 0);
		CHECK(memcmp(h1, h2, IMP_HASH_LEN) != 0);
		*nulls[i].field = save;
		imp_buf_free(&b1);
		imp_buf_free(&b2);
	}
	/* no field boundary shift: "ab"+"c" vs "a"+"bc" differ */
	{
		unsigned char h1[IMP_HASH_LEN], h2[IMP_HASH_LEN];
		r.from_bare = "ab";
		r.from_full = "c";
		CHECK_INT(imp_record_hash(&r, NULL, 0, h1), IMP_OK);
		r.from_bare = "a";
		r.from_full = "bc";
		CHECK_INT(imp_record_hash(&r, NULL, 0, h2), IMP_OK);
		CHECK(memcmp(h1, h2, IMP_HASH_LEN) != 0);
	}
	imp_buf_free(&b);
}

/* ---- chain and HMAC ------------------------------------------------------ */

static imp_record_t *make_record(const char *body, size_t raw_len)
{
	imp_record_t t;
	unsigned char *raw = malloc(raw_len ? raw_len : 1);
	imp_record_flag_t fl = {"r1", NULL, "high"};

	hand_record(&t);
	for (size_t i = 0; i < raw_len; i++)
		raw[i] = (unsigned char)(i * 7); /* includes NUL bytes */
	t.raw_xml = raw;
	t.raw_len = raw_len;
	t.body = body;
	t.hash_alg = NULL;
	t.has_digest = true;
	for (int i = 0; i < IMP_HASH_LEN; i++)
		t.policy_digest[i] = (unsigned char)(0xA0 + i);
	t.flags = &fl;
	t.n_flags = 1;
	imp_record_t *r = imp_record_dup(g_ctx, &t);
	free(raw);
	return r;
}

static void test_chain(void)
{
	static const unsigned char zero[IMP_HASH_LEN];
	imp_record_t *r[4];
	unsigned char h[IMP_HASH_LEN];

	for (int i = 0; i < 4; i++) {
		char body[32];
		snprintf(body, sizeof(body), "body %d", i);
		r[i] = make_record(body, 10);
		CHECK(r[i] != NULL);
		if (!r[i])
			return;
	}
	CHECK_INT(imp_record_chain(r[0], 1, zero, NULL, 0, NULL), IMP_OK);
	CHECK_STR(r[0]->hash_alg, "sha256");
	CHECK(r[0]->key_id == NULL);
	for (int i = 1; i < 3; i++) {
		CHECK_INT(imp_record_chain(r[i], (uint64_t)i + 1,
					   r[i - 1]->rec_hash, NULL, 0, NULL),
			  IMP_OK);
		CHECK(memcmp(r[i]->prev_hash, r[i - 1]->rec_hash,
			     IMP_HASH_LEN) == 0);
		CHECK_INT(r[i]->seq, i + 1);
	}
	for (int i = 0; i < 3; i++) {
		CHECK_INT(imp_record_hash(r[i], NULL, 0, h), IMP_OK);
		CHECK(memcmp(h, r[i]->rec_hash, IMP_HASH_LEN) == 0);
	}
	/* the hash covers prev_hash: relinking changes it */
	unsigned char before[IMP_HASH_LEN];
	memcpy(before, r[2]->rec_hash, IMP_HASH_LEN);
	CHECK_INT(imp_record_chain(r[2], 3, r[0]->rec_hash, NULL, 0, NULL),
		  IMP_OK);
	CHECK(memcmp(before, r[2]->rec_hash, IMP_HASH_LEN) != 0);
	/* altering a field is detected */
	r[1]->kind = "presence";
	CHECK_INT(imp_record_hash(r[1], NULL, 0, h), IMP_OK);
	CHECK(memcmp(h, r[1]->rec_hash, IMP_HASH_LEN) != 0);

	/* HMAC: differs from plain, depends on the key, equals RFC 2104 */
	static const unsigned char k1[] = "key-one", k2[] = "key-two";
	unsigned char plain[IMP_HASH_LEN], hk1[IMP_HASH_LEN];
	CHECK_INT(imp_record_chain(r[3], 9, zero, NULL, 0, NULL), IMP_OK);
	memcpy(plain, r[3]->rec_hash, IMP_HASH_LEN);
	char long_id[100];
	memset(long_id, 'k', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	CHECK_INT(imp_record_chain(r[3], 9, zero, k1, sizeof(k1) - 1, "k1"),
		  IMP_OK);
	CHECK_STR(r[3]->hash_alg, "hmac-sha256");
	CHECK_STR(r[3]->key_id, "k1");
	memcpy(hk1, r[3]->rec_hash, IMP_HASH_LEN);
	CHECK(memcmp(plain, hk1, IMP_HASH_LEN) != 0);
	{
		imp_buf_t b;
		unsigned char ref[EVP_MAX_MD_SIZE];
		unsigned int rl = 0;
		imp_buf_init(&b, g_ctx, NULL);
		imp_record_canonical(r[3], &b);
		HMAC(EVP_sha256(), k1, (int)sizeof(k1) - 1,
		     (const unsigned char *)b.data, b.len, ref, &rl);
		CHECK_INT(rl, IMP_HASH_LEN);
		CHECK(memcmp(ref, hk1, IMP_HASH_LEN) == 0);
		imp_buf_free(&b);
	}
	CHECK_INT(imp_record_hash(r[3], k1, sizeof(k1) - 1, h), IMP_OK);
	CHECK(memcmp(h, hk1, IMP_HASH_LEN) == 0);
	CHECK_INT(imp_record_hash(r[3], k2, sizeof(k2) - 1, h), IMP_OK);
	CHECK(memcmp(h, hk1, IMP_HASH_LEN) != 0);
	CHECK_INT(imp_record_hash(r[3], NULL, 0, h), IMP_ERR_INVALID);
	CHECK_INT(imp_record_chain(r[3], 9, zero, k2, sizeof(k2) - 1, "k1"),
		  IMP_OK);
	CHECK(memcmp(r[3]->rec_hash, hk1, IMP_HASH_LEN) != 0);
	/* the key id is inside the hash */
	CHECK_INT(imp_record_chain(r[3], 9, zero, k1, sizeof(k1) - 1, "k9"),
		  IMP_OK);
	CHECK(memcmp(r[3]->rec_hash, hk1, IMP_HASH_LEN) != 0);
	/* a long key id survives dup */
	CHECK_INT(imp_record_chain(r[3], 9, zero, k1, sizeof(k1) - 1, long_id),
		  IMP_OK);
	imp_record_t *d = imp_record_dup(g_ctx, r[3]);
	CHECK(d && str_eq(d->key_id, long_id) && d->key_id != long_id);
	imp_record_free(g_ctx, d);
	for (int i = 0; i < 4; i++)
		imp_record_free(g_ctx, r[i]);
}

/* ---- serialisation ------------------------------------------------------- */

static imp_record_t *roundtrip(const imp_record_t *r, imp_buf_t *b)
{
	imp_record_t *o = NULL;
	imp_buf_reset(b);
	imp_record_serialize(r, b);
	CHECK(!b->oom);
	CHECK_INT(imp_record_deserialize(g_ctx, b->data, b->len, &o), IMP_OK);
	return o;
}

static void test_serialize(void)
{
	static const unsigned char zero[IMP_HASH_LEN];
	static const unsigned char key[] = "k";
	imp_buf_t b, b2;
	imp_buf_init(&b, g_ctx, NULL);
	imp_buf_init(&b2, g_ctx, NULL);

	static const size_t sizes[] = {0, 1, 17, 1u << 20};
	for (size_t i = 0; i < IMP_ARRAY_LEN(sizes); i++) {
		imp_record_t *r =
			make_record(i % 2 ? "" : "body\xe2\x82\xac", sizes[i]);
		CHECK(r != NULL);
		if (!r)
			continue;
		if (i == 1) {
			r->has_digest = false;
			r->to_full = NULL;
		}
		if (i == 2)
			CHECK_INT(imp_record_chain(r, 77, zero, key, 1, "kid"),
				  IMP_OK);
		else
			CHECK_INT(
				imp_record_chain(r, 5 + i, zero, NULL, 0, NULL),
				IMP_OK);
		imp_record_t *o = roundtrip(r, &b);
		CHECK_MSG(o && rec_equal(r, o), "round trip %zu", i);
		if (o) {
			unsigned char h[IMP_HASH_LEN];
			CHECK_INT(imp_record_hash(o, key, 1, h), IMP_OK);
			CHECK(memcmp(h, r->rec_hash, IMP_HASH_LEN) == 0);
			/* one serialisation per record */
			imp_buf_reset(&b2);
			imp_record_serialize(o, &b2);
			CHECK(b2.len == b.len &&
			      memcmp(b.data, b2.data, b.len) == 0);
		}
		imp_record_free(g_ctx, o);
		imp_record_free(g_ctx, r);
	}

	/* every truncation refused, trailing garbage refused */
	imp_record_t *r = make_record("short", 40);
	CHECK_INT(imp_record_chain(r, 3, zero, NULL, 0, NULL), IMP_OK);
	imp_buf_reset(&b);
	imp_record_serialize(r, &b);
	size_t refused = 0;
	for (size_t n = 0; n < b.len; n++) {
		imp_record_t *o = (imp_record_t *)&refused; /* poison */
		char *copy = malloc(n ? n : 1);
		memcpy(copy, b.data, n);
		if (imp_record_deserialize(g_ctx, copy, n, &o) ==
			    IMP_ERR_PARSE &&
		    o == NULL)
			refused++;
		free(copy);
	}
	CHECK_INT(refused, b.len);
	{
		imp_record_t *o = NULL;
		char *copy = malloc(b.len + 1);
		memcpy(copy, b.data, b.len);
		copy[b.len] = 0;
		CHECK_INT(imp_record_deserialize(g_ctx, copy, b.len + 1, &o),
			  IMP_ERR_PARSE);
		free(copy);
	}

	/* targeted bit flips: magic, version, a length, a NUL terminator */
	static const size_t flips[] = {0, 4, 22, 25, 28};
	for (size_t i = 0; i < IMP_ARRAY_LEN(flips); i++) {
		imp_record_t *o = NULL;
		char *copy = malloc(b.len);
		memcpy(copy, b.data, b.len);
		copy[flips[i]] ^= 0x40;
		CHECK_MSG(imp_record_deserialize(g_ctx, copy, b.len, &o) ==
				  IMP_ERR_PARSE,
			  "flip at %zu accepted", flips[i]);
		free(copy);
	}
	/* every single bit flip: never a crash; what decodes re-encodes to
	 * exactly the flipped input (nothing silently repaired) */
	size_t accepted = 0;
	for (size_t pos = 0; pos < b.len; pos++) {
		for (int bit = 0; bit < 8; bit++) {
			imp_record_t *o = NULL;
			char *copy = malloc(b.len);
			memcpy(copy, b.data, b.len);
			copy[pos] ^= (char)(1 << bit);
			int rc = imp_record_deserialize(g_ctx, copy, b.len, &o);
			if (rc == IMP_OK) {
				accepted++;
				imp_buf_reset(&b2);
				imp_record_serialize(o, &b2);
				CHECK(b2.len == b.len &&
				      memcmp(b2.data, copy, b.len) == 0);
				imp_record_free(g_ctx, o);
			} else {
				CHECK(rc == IMP_ERR_PARSE && o == NULL);
			}
			free(copy);
		}
	}
	/* some flips land in free-form bytes (raw XML, hashes) and decode */
	CHECK(accepted > 0 && accepted < b.len * 8);
	imp_record_free(g_ctx, r);
	imp_buf_free(&b);
	imp_buf_free(&b2);
}

int main(void)
{
	CHECK_INT(imp_ctx_new(NULL, &g_ctx), IMP_OK);
	if (!g_ctx)
		return CHECK_DONE();
	test_build();
	test_sanitise();
	test_canonical();
	test_chain();
	test_serialize();
	imp_ctx_free(g_ctx);
	return CHECK_DONE();
}
