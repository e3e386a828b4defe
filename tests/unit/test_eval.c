/*
 * test_eval.c -- evaluation (imp_eval_run) end to end through the public
 * API: small YAML policies written to temp files, stanzas as XML, verdicts
 * checked field by field.  Covers precedence, every condition, direction,
 * groups, schedules (injected clock, DST, per-user zones), redaction,
 * escalation, fan-out, uninspectable and malformed outcomes, hostile input,
 * verdict JSON and verdict lifetime, and imp_time_parse.
 */
#include "check.h"
#include "impolicy.h"
#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t g_now_us;

static int64_t test_clock(void *ud)
{
	(void)ud;
	return g_now_us;
}

static imp_ctx_t *g_ctx;
static imp_eval_t *g_ev;

/* Writes text to a temp file and loads it; NULL (with the errors
 * printed) when the policy is refused. */
static imp_policy_t *load_policy(const char *text)
{
	char path[] = "/tmp/test_eval_XXXXXX.yaml";
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
		fprintf(stderr, "policy refused (%s):\n", imp_strerror(rc));
		for (size_t i = 0; i < imp_errors_count(errs); i++) {
			char buf[512];
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof(buf));
			fprintf(stderr, "  %s\n", buf);
		}
		imp_errors_free(errs);
	}
	unlink(path);
	return p;
}

static int run_full(const imp_policy_t *p, const char *xml, size_t len,
		    imp_origin_t origin, const char *session, unsigned flags,
		    imp_verdict_t *v)
{
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = origin;
	view.xml = xml;
	view.xml_len = len;
	view.session_jid = session;
	return imp_eval_run(g_ev, p, &view, flags, v);
}

static int run(const imp_policy_t *p, const char *xml, imp_verdict_t *v)
{
	return run_full(p, xml, strlen(xml), IMP_ORIGIN_UNKNOWN, NULL, 0, v);
}

static bool has_rule(const imp_verdict_t *v, const char *id)
{
	for (size_t i = 0; i < v->n_rules; i++)
		if (strcmp(v->rules[i].rule_id, id) == 0)
			return true;
	return false;
}

static char g_msg[8192];

/* A chat message from -> to with body (XML-safe text). */
static const char *msg(const char *from, const char *to, const char *body)
{
	snprintf(g_msg, sizeof(g_msg),
		 "<message from='%s/res' to='%s' type='chat' id='m1'>"
		 "<body>%s</body></message>",
		 from, to, body);
	return g_msg;
}

/* ---- precedence ---------------------------------------------------------- */

static const char precedence_yaml[] =
	"policy: { name: prec, local_domains: [acme.example] }\n"
	"settings: { default_notice: 'DEFAULT NOTICE' }\n"
	"lists:\n"
	"  greet: { words: [hello] }\n"
	"  flagw: { words: [flagword] }\n"
	"  redw:  { words: [redword] }\n"
	"  rejw:  { words: [rejword] }\n"
	"  rej2:  { words: [otherrej] }\n"
	"rules:\n"
	"  - { id: r.allow, when: { words: greet }, action: allow }\n"
	"  - { id: r.flag1, when: { words: flagw }, action: flag }\n"
	"  - { id: r.flag2, when: { words: flagw }, action: flag }\n"
	"  - { id: r.redact, when: { words: redw }, action: redact,\n"
	"      section: 'S-redact' }\n"
	"  - { id: r.rejA, when: { words: rejw }, action: reject,\n"
	"      section: 'S-A' }\n"
	"  - { id: r.rejB, when: { words: [rejw, rej2] }, action: reject,\n"
	"      section: 'S-B', notice: 'B notice', severity: critical }\n";

static const struct {
	const char *body;
	imp_action_t action;
	const char *rule;    /* deciding rule or NULL */
	const char *notice;  /* expected notice or NULL */
	const char *section; /* expected section or NULL */
	size_t n_rules;
} prec_cases[] = {
	{"nothing to see", IMP_ALLOW, NULL, NULL, NULL, 0},
	/* allow rules only document */
	{"hello there", IMP_ALLOW, NULL, NULL, NULL, 1},
	/* first flag rule decides */
	{"a flagword", IMP_FLAG, "r.flag1", NULL, NULL, 2},
	{"hello flagword", IMP_FLAG, "r.flag1", NULL, NULL, 3},
	/* redact beats flag and allow */
	{"flagword redword hello", IMP_REDACT, "r.redact", NULL, "S-redact", 4},
	/* reject beats everything; the first reject rule decides, with the
	 * default notice because it has none */
	{"rejword redword flagword hello", IMP_REJECT, "r.rejA",
	 "DEFAULT NOTICE", "S-A", 6},
	/* only the second reject rule matches: its notice */
	{"otherrej flagword", IMP_REJECT, "r.rejB", "B notice", "S-B", 3},
};

static void test_precedence(void)
{
	imp_policy_t *p = load_policy(precedence_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(prec_cases); i++) {
		imp_verdict_t v;
		int rc = run(p,
			     msg("alice@acme.example", "bob@acme.example",
				 prec_cases[i].body),
			     &v);
		CHECK_INT(rc, IMP_OK);
		CHECK_MSG(v.action == prec_cases[i].action,
			  "case %zu: action %s", i, imp_action_name(v.action));
		if (prec_cases[i].rule)
			CHECK_STR(v.rule_id, prec_cases[i].rule);
		else
			CHECK(v.rule_id == NULL);
		if (prec_cases[i].notice)
			CHECK_STR(v.notice, prec_cases[i].notice);
		if (prec_cases[i].section)
			CHECK_STR(v.section, prec_cases[i].section);
		CHECK_MSG(v.n_rules == prec_cases[i].n_rules,
			  "case %zu: %zu rules", i, v.n_rules);
		/* matches are in policy order */
		for (size_t k = 1; k < v.n_rules; k++)
			CHECK(strcmp(v.rules[k - 1].rule_id,
				     v.rules[k].rule_id) != 0);
		imp_verdict_clear(&v);
		CHECK(v.priv_ == NULL && v.n_rules == 0);
	}
	/* severity and per-match action */
	imp_verdict_t v;
	run(p, msg("a@acme.example", "b@acme.example", "otherrej redword"), &v);
	CHECK_INT(v.n_rules, 2);
	if (v.n_rules == 2) {
		CHECK_STR(v.rules[0].rule_id, "r.redact");
		CHECK_INT(v.rules[0].action, IMP_REDACT);
		CHECK_STR(v.rules[1].rule_id, "r.rejB");
		CHECK_INT(v.rules[1].severity, 3);
	}
	imp_verdict_clear(&v);
	imp_policy_unref(p);
}

/* ---- every condition ------------------------------------------------------ */

static const char conds_yaml[] =
	"policy: { name: conds, local_domains: [acme.example] }\n"
	"lists:\n"
	"  prof: { words: [darn], categories: [profanity] }\n"
	"  sol:  { phrases: ['donate now'], categories: [solicitation] }\n"
	"rules:\n"
	"  - { id: c.kind, when: { kind: presence }, action: flag }\n"
	"  - { id: c.type, when: { type: groupchat }, action: flag }\n"
	"  - { id: c.type_normal, when: { kind: message, type: normal },\n"
	"      action: flag }\n"
	"  - { id: c.detect, when: { detect: [email] }, action: flag }\n"
	"  - { id: c.detect_conf, when: { detect: { any: [email],\n"
	"      confidence: 100 } }, action: flag }\n"
	"  - { id: c.words, when: { words: prof }, action: flag }\n"
	"  - { id: c.category, when: { category: solicitation },\n"
	"      action: flag }\n"
	"  - { id: c.fields, when: { words: prof, fields: [subject] },\n"
	"      action: flag }\n"
	"  - { id: c.ft, when: { file_transfer: true }, action: flag }\n"
	"  - { id: c.ft_oob, when: { file_transfer: oob }, action: flag }\n"
	"  - { id: c.ft_jingle, when: { file_transfer: jingle },\n"
	"      action: flag }\n"
	"  - { id: c.enc, when: { encrypted: true }, action: flag }\n"
	"  - { id: c.enc_omemo, when: { encrypted: omemo }, action: flag }\n"
	"  - { id: c.hints, when: { hints: no-store }, action: flag }\n"
	"  - { id: c.corr, when: { correction: true }, action: flag }\n"
	"  - { id: c.nobody, when: { kind: message, has_body: false },\n"
	"      action: flag }\n"
	"  - { id: c.recipients, when: { recipients: 2 }, action: flag }\n"
	"  - { id: c.spoofed, when: { spoofed_from: true }, action: flag }\n"
	"  - { id: c.bodybytes, when: { body_bytes: 20 }, action: flag }\n"
	"  - { id: c.any, when: { any: [ { words: prof }, { type: headline }"
	" ] },\n"
	"      action: flag }\n"
	"  - { id: c.not, when: { kind: message, not: { type: chat } },\n"
	"      action: flag }\n";

#define A "alice@acme.example"
#define B "bob@acme.example"

static const struct {
	const char *xml;
	const char *session; /* NULL: none */
	const char *rule;
	bool match;
} cond_cases[] = {
	{"<presence from='" A "/r'/>", NULL, "c.kind", true},
	{"<message from='" A "/r' to='" B "'><body>x</body></message>", NULL,
	 "c.kind", false},
	{"<message from='" A "/r' to='" B
	 "' type='groupchat'><body>x</body></message>",
	 NULL, "c.type", true},
	{"<message from='" A "/r' to='" B
	 "' type='chat'><body>x</body></message>",
	 NULL, "c.type", false},
	/* a message without type is "normal" */
	{"<message from='" A "/r' to='" B "'><body>x</body></message>", NULL,
	 "c.type_normal", true},
	{"<message from='" A "/r' to='" B
	 "' type='chat'><body>x</body></message>",
	 NULL, "c.type_normal", false},
	{"<message from='" A "/r' to='" B
	 "'><body>write to carol@example.com today</body></message>",
	 NULL, "c.detect", true},
	{"<message from='" A "/r' to='" B
	 "'><body>write to carol at example</body></message>",
	 NULL, "c.detect", false},
	{"<message from='" A "/r' to='" B
	 "'><body>write to carol@example.com today</body></message>",
	 NULL, "c.detect_conf", false},
	{"<message from='" A "/r' to='" B "'><body>oh D4RN it</body></message>",
	 NULL, "c.words", true},
	{"<message from='" A "/r' to='" B "'><body>darnedest</body></message>",
	 NULL, "c.words", false},
	{"<message from='" A "/r' to='" B
	 "'><body>please donate   now!</body></message>",
	 NULL, "c.category", true},
	{"<message from='" A "/r' to='" B
	 "'><body>please donate later</body></message>",
	 NULL, "c.category", false},
	{"<message from='" A "/r' to='" B
	 "'><subject>darn</subject><body>x</body></message>",
	 NULL, "c.fields", true},
	{"<message from='" A "/r' to='" B "'><body>darn</body></message>", NULL,
	 "c.fields", false},
	{"<message from='" A "/r' to='" B
	 "'><body>f</body><x xmlns='jabber:x:oob'><url>http://h/f.pdf</url>"
	 "</x></message>",
	 NULL, "c.ft", true},
	{"<message from='" A "/r' to='" B
	 "'><body>f</body><x xmlns='jabber:x:oob'><url>http://h/f.pdf</url>"
	 "</x></message>",
	 NULL, "c.ft_oob", true},
	{"<message from='" A "/r' to='" B
	 "'><body>f</body><x xmlns='jabber:x:oob'><url>http://h/f.pdf</url>"
	 "</x></message>",
	 NULL, "c.ft_jingle", false},
	{"<message from='" A "/r' to='" B "'><body>f</body></message>", NULL,
	 "c.ft", false},
	{"<message from='" A "/r' to='" B
	 "'><encrypted xmlns='eu.siacs.conversations.axolotl'><header "
	 "sid='1'><iv>AAAA</iv></header><payload>QUJD</payload></encrypted>"
	 "</message>",
	 NULL, "c.enc_omemo", true},
	{"<message from='" A "/r' to='" B
	 "'><encrypted xmlns='eu.siacs.conversations.axolotl'><header "
	 "sid='1'><iv>AAAA</iv></header><payload>QUJD</payload></encrypted>"
	 "</message>",
	 NULL, "c.enc", true},
	{"<message from='" A "/r' to='" B "'><body>plain</body></message>",
	 NULL, "c.enc", false},
	{"<message from='" A "/r' to='" B
	 "'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
	 NULL, "c.hints", true},
	{"<message from='" A "/r' to='" B
	 "'><body>x</body><store xmlns='urn:xmpp:hints'/></message>",
	 NULL, "c.hints", false},
	{"<message from='" A "/r' to='" B
	 "'><body>fixed</body><replace id='m0' "
	 "xmlns='urn:xmpp:message-correct:0'/></message>",
	 NULL, "c.corr", true},
	{"<message from='" A "/r' to='" B "'><body>x</body></message>", NULL,
	 "c.corr", false},
	{"<message from='" A "/r' to='" B "'><active "
	 "xmlns='http://jabber.org/protocol/chatstates'/></message>",
	 NULL, "c.nobody", true},
	{"<message from='" A "/r' to='" B "'><body>x</body></message>", NULL,
	 "c.nobody", false},
	{"<message from='" A "/r' to='acme.example'><body>x</body><addresses "
	 "xmlns='http://jabber.org/protocol/address'><address type='to' "
	 "jid='r1@acme.example'/><address type='cc' "
	 "jid='r2@acme.example'/></addresses></message>",
	 NULL, "c.recipients", true},
	{"<message from='" A "/r' to='" B "'><body>x</body></message>", NULL,
	 "c.recipients", false},
	{"<message from='mallory@acme.example/r' to='" B
	 "'><body>x</body></message>",
	 A "/laptop", "c.spoofed", true},
	{"<message from='" A "/phone' to='" B "'><body>x</body></message>",
	 A "/laptop", "c.spoofed", false},
	{"<message from='" A "/r' to='" B
	 "'><body>0123456789012345678901</body></message>",
	 NULL, "c.bodybytes", true},
	{"<message from='" A "/r' to='" B
	 "'><body>01234567890123456789</body></message>",
	 NULL, "c.bodybytes", false},
	{"<message from='" A "/r' to='" B
	 "' type='headline'><body>x</body></message>",
	 NULL, "c.any", true},
	{"<message from='" A "/r' to='" B
	 "' type='chat'><body>darn</body></message>",
	 NULL, "c.any", true},
	{"<message from='" A "/r' to='" B
	 "' type='chat'><body>x</body></message>",
	 NULL, "c.any", false},
	{"<message from='" A "/r' to='" B
	 "' type='normal'><body>x</body></message>",
	 NULL, "c.not", true},
	{"<message from='" A "/r' to='" B
	 "' type='chat'><body>x</body></message>",
	 NULL, "c.not", false},
};

static void test_conditions(void)
{
	imp_policy_t *p = load_policy(conds_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(cond_cases); i++) {
		imp_verdict_t v;
		int rc = run_full(p, cond_cases[i].xml,
				  strlen(cond_cases[i].xml), IMP_ORIGIN_LOCAL,
				  cond_cases[i].session, 0, &v);
		CHECK_INT(rc, IMP_OK);
		CHECK_MSG(!(v.flags & IMP_VF_MALFORMED), "case %zu: %s", i,
			  v.error ? v.error : "");
		CHECK_MSG(
			has_rule(&v, cond_cases[i].rule) == cond_cases[i].match,
			"case %zu: rule %s expected %s", i, cond_cases[i].rule,
			cond_cases[i].match ? "match" : "no match");
		/* explain walks every rule in policy order; the fast path
		 * (kind index, prefilters) must give the same rules in the
		 * same order */
		imp_verdict_t ve;
		CHECK_INT(run_full(p, cond_cases[i].xml,
				   strlen(cond_cases[i].xml), IMP_ORIGIN_LOCAL,
				   cond_cases[i].session, IMP_EVAL_EXPLAIN,
				   &ve),
			  IMP_OK);
		CHECK_MSG(ve.n_rules == v.n_rules, "case %zu: %zu vs %zu", i,
			  ve.n_rules, v.n_rules);
		for (size_t k = 0; k < v.n_rules && k < ve.n_rules; k++)
			CHECK_STR(ve.rules[k].rule_id, v.rules[k].rule_id);
		CHECK(ve.explain != NULL && v.explain == NULL);
		imp_verdict_clear(&ve);
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
}

/* ---- direction and groups ------------------------------------------------------ */

static const char dir_yaml[] =
	"policy: { name: dir, local_domains: [acme.example, "
	"'*.acme.example'] }\n"
	"groups:\n"
	"  legal: { jids: ['*@legal.acme.example', 'gc@acme.example'] }\n"
	"  partners: { domains: [supplier.example] }\n"
	"rules:\n"
	"  - { id: d.out, when: { direction: outbound }, action: flag }\n"
	"  - { id: d.in, when: { direction: inbound }, action: flag }\n"
	"  - { id: d.int, when: { direction: internal }, action: flag }\n"
	"  - { id: d.ext, when: { direction: external }, action: flag }\n"
	"  - { id: d.outgoing, when: { direction: outgoing }, action: flag }\n"
	"  - { id: d.incoming, when: { direction: incoming }, action: flag }\n"
	"  - { id: g.from, when: { from: legal }, action: flag }\n"
	"  - { id: g.to, when: { to: partners }, action: flag }\n"
	"  - { id: g.party, when: { party: partners }, action: flag }\n"
	"  - { id: g.between, when: { between: [legal, partners] },\n"
	"      action: flag }\n"
	"  - { id: g.glob, when: { to: ['*@supplier.example'] }, action: flag "
	"}\n"
	"  - { id: g.remote, when: { from: remote }, action: flag }\n";

static const struct {
	const char *from, *to;
	imp_origin_t origin;
	const char *direction;
	const char *rules; /* every rule expected, space separated */
} dir_cases[] = {
	{"alice@acme.example", "x@supplier.example", IMP_ORIGIN_UNKNOWN,
	 "outbound", "d.out d.ext d.outgoing g.to g.party g.glob"},
	{"x@supplier.example", "alice@acme.example", IMP_ORIGIN_UNKNOWN,
	 "inbound", "d.in d.ext d.incoming g.party g.remote"},
	{"alice@acme.example", "bob@dev.acme.example", IMP_ORIGIN_UNKNOWN,
	 "internal", "d.int d.outgoing d.incoming"},
	{"x@other.example", "y@supplier.example", IMP_ORIGIN_UNKNOWN,
	 "external", "d.ext g.to g.party g.glob g.remote"},
	/* a local session counts as local even outside the domain list */
	{"carol@newsub.example", "x@other.example", IMP_ORIGIN_LOCAL,
	 "outbound", "d.out d.ext d.outgoing"},
	{"ann@legal.acme.example", "x@supplier.example", IMP_ORIGIN_UNKNOWN,
	 "outbound",
	 "d.out d.ext d.outgoing g.from g.to g.party g.between g.glob"},
	/* between works in either order */
	{"x@supplier.example", "gc@acme.example", IMP_ORIGIN_UNKNOWN, "inbound",
	 "d.in d.ext d.incoming g.party g.between g.remote"},
	{"GC@ACME.example", "bob@acme.example", IMP_ORIGIN_UNKNOWN, "internal",
	 "d.int d.outgoing d.incoming g.from"},
};

static void test_direction_groups(void)
{
	imp_policy_t *p = load_policy(dir_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(dir_cases); i++) {
		const char *xml = msg(dir_cases[i].from, dir_cases[i].to, "hi");
		imp_verdict_t v;
		CHECK_INT(run_full(p, xml, strlen(xml), dir_cases[i].origin,
				   NULL, 0, &v),
			  IMP_OK);
		CHECK_STR(v.stanza.direction, dir_cases[i].direction);
		/* the expected set, exactly */
		char want[256];
		snprintf(want, sizeof(want), "%s", dir_cases[i].rules);
		size_t n_want = 0;
		for (char *t = strtok(want, " "); t; t = strtok(NULL, " ")) {
			n_want++;
			CHECK_MSG(has_rule(&v, t), "case %zu: missing %s", i,
				  t);
		}
		CHECK_MSG(v.n_rules == n_want, "case %zu: %zu rules, want %zu",
			  i, v.n_rules, n_want);
		imp_verdict_clear(&v);
	}
	/* view->from / view->to override the stanza's */
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = IMP_ORIGIN_UNKNOWN;
	view.xml = msg("alice@acme.example", "bob@acme.example", "hi");
	view.xml_len = strlen(view.xml);
	view.to = "x@supplier.example";
	imp_verdict_t v;
	CHECK_INT(imp_eval_run(g_ev, p, &view, 0, &v), IMP_OK);
	CHECK_STR(v.stanza.direction, "outbound");
	CHECK(has_rule(&v, "g.to"));
	imp_verdict_clear(&v);
	imp_policy_unref(p);
}

/* ---- stanzas without to, retention ------------------------------------------ */

static const struct {
	const char *xml;
	imp_origin_t origin;
	const char *session;
	const char *direction;
} noto_cases[] = {
	/* a local user's presence broadcast: to the own server (RFC 6120
	 * 10.3), so internal, never inbound */
	{"<presence from='alice@acme.example/r'/>", IMP_ORIGIN_LOCAL,
	 "alice@acme.example/r", "internal"},
	{"<presence/>", IMP_ORIGIN_LOCAL, "alice@acme.example/r", "internal"},
	{"<presence from='alice@acme.example/r'/>", IMP_ORIGIN_UNKNOWN, NULL,
	 "internal"},
	/* a remote user's stanza to its own server is transit for us */
	{"<presence from='x@supplier.example/r'/>", IMP_ORIGIN_REMOTE, NULL,
	 "external"},
	{"<iq from='x@supplier.example/r' type='get' id='1'><ping "
	 "xmlns='urn:xmpp:ping'/></iq>",
	 IMP_ORIGIN_UNKNOWN, NULL, "external"},
	/* with a to, nothing changes */
	{"<presence from='x@supplier.example/r' to='bob@acme.example'/>",
	 IMP_ORIGIN_REMOTE, NULL, "inbound"},
};

static void test_no_to(void)
{
	imp_policy_t *p = load_policy(dir_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(noto_cases); i++) {
		imp_verdict_t v;
		const char *x = noto_cases[i].xml;
		CHECK_INT(run_full(p, x, strlen(x), noto_cases[i].origin,
				   noto_cases[i].session, 0, &v),
			  IMP_OK);
		CHECK_MSG(v.stanza.direction &&
				  strcmp(v.stanza.direction,
					 noto_cases[i].direction) == 0,
			  "no-to case %zu: direction %s, want %s", i,
			  v.stanza.direction ? v.stanza.direction : "(null)",
			  noto_cases[i].direction);
		CHECK_MSG(has_rule(&v, "d.in") ==
				  (strcmp(noto_cases[i].direction, "inbound") ==
				   0),
			  "no-to case %zu: d.in", i);
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
}

static const char ret_yaml[] =
	"policy: { name: ret, local_domains: [acme.example] }\n"
	"settings: { retention: standard }\n"
	"lists:\n"
	"  a: { words: [alpha] }\n"
	"  b: { words: [beta] }\n"
	"  c: { words: [gamma] }\n"
	"rules:\n"
	"  - { id: r.flag-a, when: { words: [a] }, action: flag,\n"
	"      retention: flagged }\n"
	"  - { id: r.reject-b, when: { words: [b] }, action: reject,\n"
	"      retention: legal-hold }\n"
	"  - { id: r.reject-c, when: { words: [c] }, action: reject }\n";

static const struct {
	const char *body;
	const char *retention; /* NULL: the policy default */
} ret_cases[] = {
	{"nothing here", "standard"}, /* no rule: default */
	{"alpha", "flagged"},         /* the deciding rule's */
	{"alpha beta", "legal-hold"}, /* deciding (reject) wins */
	{"beta alpha", "legal-hold"}, /* order of words irrelevant */
	{"alpha gamma", "flagged"},   /* decider has none: first */
	{"gamma", "standard"},        /* none at all: default */
};

static void test_retention(void)
{
	imp_policy_t *p = load_policy(ret_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(ret_cases); i++) {
		const char *x = msg("alice@acme.example", "bob@acme.example",
				    ret_cases[i].body);
		imp_verdict_t v;
		CHECK_INT(run_full(p, x, strlen(x), IMP_ORIGIN_LOCAL, NULL, 0,
				   &v),
			  IMP_OK);
		CHECK_MSG(v.retention && strcmp(v.retention,
						ret_cases[i].retention) == 0,
			  "retention case %zu: %s, want %s", i,
			  v.retention ? v.retention : "(null)",
			  ret_cases[i].retention);
		char *js = NULL;
		CHECK_INT(imp_verdict_json(g_ctx, &v, 0, &js, NULL), IMP_OK);
		char want[128];
		snprintf(want, sizeof(want), "\"retention\":\"%s\"",
			 ret_cases[i].retention);
		CHECK_MSG(js && strstr(js, want), "retention case %zu: %s", i,
			  js ? js : "(null)");
		imp_free(g_ctx, js);
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
	/* no default anywhere: null */
	p = load_policy(dir_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	const char *x = msg("alice@acme.example", "bob@acme.example", "hi");
	imp_verdict_t v;
	CHECK_INT(run_full(p, x, strlen(x), IMP_ORIGIN_LOCAL, NULL, 0, &v),
		  IMP_OK);
	CHECK(v.retention == NULL);
	char *js = NULL;
	CHECK_INT(imp_verdict_json(g_ctx, &v, 0, &js, NULL), IMP_OK);
	CHECK(js && strstr(js, "\"retention\":null"));
	imp_free(g_ctx, js);
	imp_verdict_clear(&v);
	imp_policy_unref(p);
}

/* ---- prefix entries redact the whole word; '!' leetspeak ------------------- */

static const char prefix_yaml[] =
	"policy: { name: prefix, local_domains: [acme.example] }\n"
	"lists:\n"
	"  prof: { words: ['fuck*', shit] }\n"
	"rules:\n"
	"  - { id: p.redact, when: { words: [prof] }, action: redact }\n";

static const struct {
	const char *body;
	const char *redacted; /* NULL: allowed */
} prefix_cases[] = {
	{"what the fucking hell", "what the ******* hell"},
	{"FUCKERS!", "*******!"},
	{"f.u.c.k.i.n.g no", "************* no"},
	{"fuck", "****"},
	{"this is sh!t", "this is ****"},
	{"sh!t, fucked up", "****, ****** up"},
	{"hello! wow!!", NULL},
};

static void test_prefix_redaction(void)
{
	imp_policy_t *p = load_policy(prefix_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(prefix_cases); i++) {
		const char *x = msg("alice@acme.example", "bob@acme.example",
				    prefix_cases[i].body);
		imp_verdict_t v;
		CHECK_INT(run_full(p, x, strlen(x), IMP_ORIGIN_LOCAL, NULL, 0,
				   &v),
			  IMP_OK);
		if (prefix_cases[i].redacted) {
			CHECK_INT(v.action, IMP_REDACT);
			CHECK_MSG(v.redacted_body &&
					  strcmp(v.redacted_body,
						 prefix_cases[i].redacted) == 0,
				  "prefix case %zu: '%s', want '%s'", i,
				  v.redacted_body ? v.redacted_body : "(null)",
				  prefix_cases[i].redacted);
		} else {
			CHECK_INT(v.action, IMP_ALLOW);
		}
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
}

/* ---- schedules -------------------------------------------------------------- */

static const char sched_yaml[] =
	"policy: { name: sched, timezone: America/New_York,\n"
	"          local_domains: [acme.example, '*.acme.example'] }\n"
	"schedules:\n"
	"  work_hours: { days: mon-fri, hours: ['08:30-17:30'],\n"
	"                except: [holidays] }\n"
	"  breaks: { days: mon-fri, hours: ['10:30-10:45', '12:00-13:00'] }\n"
	"  holidays: { dates: ['2026-12-25'] }\n"
	"  night: { hours: ['22:00-06:00'] }\n"
	"users:\n"
	"  'dana@acme.example': { timezone: Asia/Tokyo }\n"
	"groups:\n"
	"  berlin: { jids: ['*@berlin.acme.example'], timezone: Europe/Berlin "
	"}\n"
	"lists:\n"
	"  personal: { words: [football] }\n"
	"rules:\n"
	"  - id: personal.outside-breaks\n"
	"    when: { words: personal, during: work_hours, outside: breaks }\n"
	"    action: reject\n"
	"  - { id: night.flag, when: { during: night }, action: flag }\n";

static int64_t utc_us(int y, int mo, int d, int h, int mi)
{
	return (imp_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) *
	       1000000;
}

static const struct {
	int y, mo, d, h, mi; /* UTC */
	const char *from;
	bool personal; /* personal.outside-breaks matches */
	bool night;
} sched_cases[] = {
	/* Wed 2026-11-25, EST (UTC-5) */
	{2026, 11, 25, 15, 0, "alice@acme.example", true, false},   /* 10:00 */
	{2026, 11, 25, 15, 35, "alice@acme.example", false, false}, /* break */
	{2026, 11, 25, 15, 45, "alice@acme.example", true, false},  /* 10:45 */
	{2026, 11, 25, 17, 30, "alice@acme.example", false, false}, /* lunch */
	{2026, 11, 25, 23, 0, "alice@acme.example", false, false},  /* 18:00 */
	/* night window across midnight: 22:00 EST Wed .. 06:00 Thu */
	{2026, 11, 26, 3, 30, "alice@acme.example", false, true},
	{2026, 11, 26, 10, 59, "alice@acme.example", false, true},
	{2026, 11, 26, 11, 0, "alice@acme.example", false, false},
	/* Christmas is a holiday */
	{2026, 12, 25, 15, 0, "alice@acme.example", false, false},
	/* DST: Mon 2026-03-02 12:45Z is 07:45 EST (outside) ... */
	{2026, 3, 2, 12, 45, "alice@acme.example", false, false},
	/* ... Mon 2026-03-09 12:45Z is 08:45 EDT (inside) */
	{2026, 3, 9, 12, 45, "alice@acme.example", true, false},
	{2026, 3, 9, 12, 15, "alice@acme.example", false, false},
	/* per-user zone: 01:00Z Wed is 10:00 Wed in Tokyo ... */
	{2026, 11, 25, 1, 0, "dana@acme.example", true, false},
	/* ... and 20:00 Tue in New York */
	{2026, 11, 25, 1, 0, "alice@acme.example", false, false},
	/* group zone: 09:00Z is 10:00 in Berlin, 04:00 in New York */
	{2026, 11, 25, 9, 0, "hans@berlin.acme.example", true, false},
	{2026, 11, 25, 9, 0, "alice@acme.example", false, true},
};

static void test_schedules(void)
{
	imp_policy_t *p = load_policy(sched_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(sched_cases); i++) {
		g_now_us = utc_us(sched_cases[i].y, sched_cases[i].mo,
				  sched_cases[i].d, sched_cases[i].h,
				  sched_cases[i].mi);
		imp_verdict_t v;
		CHECK_INT(run(p,
			      msg(sched_cases[i].from, "x@other.example",
				  "the football match"),
			      &v),
			  IMP_OK);
		CHECK_MSG(has_rule(&v, "personal.outside-breaks") ==
				  sched_cases[i].personal,
			  "case %zu", i);
		CHECK_MSG(has_rule(&v, "night.flag") == sched_cases[i].night,
			  "case %zu (night)", i);
		CHECK_INT(v.action, sched_cases[i].personal ? IMP_REJECT
				    : sched_cases[i].night  ? IMP_FLAG
							    : IMP_ALLOW);
		imp_verdict_clear(&v);
	}
	/* view->time_us overrides the clock */
	g_now_us = utc_us(2026, 11, 25, 23, 0);
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.xml = msg("alice@acme.example", "x@other.example", "football");
	view.xml_len = strlen(view.xml);
	view.time_us = utc_us(2026, 11, 25, 15, 0);
	imp_verdict_t v;
	CHECK_INT(imp_eval_run(g_ev, p, &view, 0, &v), IMP_OK);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	imp_policy_unref(p);
}

/* ---- redaction ------------------------------------------------------------------- */

static const char redact_yaml[] =
	"policy: { name: redact, local_domains: [acme.example] }\n"
	"settings: { mask: '#' }\n"
	"lists:\n"
	"  prof: { words: [darn, heck] }\n"
	"rules:\n"
	"  - { id: lang, when: { words: prof }, action: redact }\n"
	"  - { id: nostore, when: { hints: no-store }, action: redact }\n"
	"  - { id: mail, when: { detect: [email] }, action: flag }\n";

static void test_redaction(void)
{
	imp_policy_t *p = load_policy(redact_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	const char *xml =
		"<message from='alice@acme.example/r' to='bob@acme.example' "
		"type='chat'><body>oh darn it, HECK</body>"
		"<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
		"xmlns='http://www.w3.org/1999/xhtml'><p>oh <b>darn</b> it, "
		"HECK</p></body></html></message>";
	imp_verdict_t v;
	CHECK_INT(run(p, xml, &v), IMP_OK);
	CHECK_INT(v.action, IMP_REDACT);
	CHECK_STR(v.rule_id, "lang");
	CHECK_STR(v.redacted_body, "oh #### it, ####");
	CHECK_STR(v.stanza.body, "oh darn it, HECK");
	CHECK(v.redacted_xml != NULL && v.redacted_xml_len > 0);
	if (v.redacted_xml) {
		CHECK(strstr(v.redacted_xml, "darn") == NULL);
		CHECK(strstr(v.redacted_xml, "HECK") == NULL);
		CHECK(strstr(v.redacted_xml, "<b>####</b>") != NULL);
		CHECK(strlen(v.redacted_xml) == v.redacted_xml_len);
	}
	/* evidence: body [3..7) and [12..16) */
	bool saw_body = false, saw_xhtml = false;
	for (size_t i = 0; i < v.n_hits; i++) {
		CHECK_STR(v.hits[i].rule_id, "lang");
		CHECK_STR(v.hits[i].source, "prof");
		if (v.hits[i].field == IMP_FIELD_BODY && v.hits[i].start == 3 &&
		    v.hits[i].end == 7)
			saw_body = true;
		if (v.hits[i].field == IMP_FIELD_XHTML)
			saw_xhtml = true;
	}
	CHECK(saw_body);
	CHECK(saw_xhtml);
	/* the redacted stanza parses and is clean */
	if (v.redacted_xml) {
		imp_verdict_t v2;
		CHECK_INT(run_full(p, v.redacted_xml, v.redacted_xml_len,
				   IMP_ORIGIN_UNKNOWN, NULL, 0, &v2),
			  IMP_OK);
		CHECK(!(v2.flags & IMP_VF_MALFORMED));
		CHECK_INT(v2.action, IMP_ALLOW);
		CHECK_STR(v2.stanza.body, "oh #### it, ####");
		imp_verdict_clear(&v2);
	}
	imp_verdict_clear(&v);

	/* a redact rule with no spans acts as flag */
	CHECK_INT(run(p,
		      "<message from='a@acme.example/r' to='b@acme.example'>"
		      "<body>fine</body><no-store xmlns='urn:xmpp:hints'/>"
		      "</message>",
		      &v),
		  IMP_OK);
	CHECK_INT(v.action, IMP_FLAG);
	CHECK_STR(v.rule_id, "nostore");
	CHECK(v.redacted_xml == NULL && v.redacted_body == NULL);
	imp_verdict_clear(&v);

	/* only redact rules' spans are masked: the e-mail (flag) stays */
	CHECK_INT(run(p,
		      msg("a@acme.example", "b@acme.example",
			  "darn, mail carol@example.com"),
		      &v),
		  IMP_OK);
	CHECK_INT(v.action, IMP_REDACT);
	CHECK(has_rule(&v, "mail"));
	CHECK_STR(v.redacted_body, "####, mail carol@example.com");
	imp_verdict_clear(&v);
	imp_policy_unref(p);
}

/* ---- escalation ---------------------------------------------------------------- */

static const char esc_yaml[] =
	"policy: { name: esc, local_domains: [acme.example] }\n"
	"settings: { notify: [compliance@acme.example] }\n"
	"lists:\n"
	"  bad: { words: [rejword] }\n"
	"  meh: { words: [flagword] }\n"
	"rules:\n"
	"  - { id: bad, when: { words: bad }, action: reject,\n"
	"      notify: [boss@acme.example] }\n"
	"  - { id: meh, when: { words: meh }, action: flag }\n"
	"escalation: { violations: 3, within: 1h, suspend: 30m,\n"
	"              section: Non-Compliance, notice: 'You are suspended',\n"
	"              notify: true }\n";

static void test_escalation(void)
{
	imp_policy_t *p = load_policy(esc_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	const int64_t t0 = utc_us(2026, 6, 1, 12, 0);
	const char *al = "alice@acme.example";
	imp_verdict_t v;
	/* flag rules do not count; dry runs and remote senders neither */
	for (int i = 0; i < 5; i++) {
		g_now_us = t0 + i * 1000000LL;
		const char *xml = msg(al, "x@other.example", "a flagword");
		run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL, 0, &v);
		CHECK_INT(v.action, IMP_FLAG);
		imp_verdict_clear(&v);
		xml = msg(al, "x@other.example", "rejword");
		run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL,
			 IMP_EVAL_DRY_RUN, &v);
		CHECK_INT(v.action, IMP_REJECT);
		CHECK(!(v.flags & (IMP_VF_ESCALATED | IMP_VF_SUSPENDED)));
		imp_verdict_clear(&v);
		xml = msg("mallory@evil.example", al, "rejword");
		run_full(p, xml, strlen(xml), IMP_ORIGIN_REMOTE, NULL, 0, &v);
		CHECK_INT(v.action, IMP_REJECT);
		imp_verdict_clear(&v);
	}
	/* three real violations within the hour */
	for (int i = 0; i < 3; i++) {
		g_now_us = t0 + (int64_t)(10 + i * 600) * 1000000;
		const char *xml = msg(al, "x@other.example", "rejword");
		CHECK_INT(run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL,
				   0, &v),
			  IMP_OK);
		CHECK_INT(v.action, IMP_REJECT);
		CHECK_STR(v.rule_id, "bad");
		CHECK(v.flags & IMP_VF_NOTIFY);
		CHECK_INT(!!(v.flags & IMP_VF_ESCALATED), i == 2);
		CHECK(!(v.flags & IMP_VF_SUSPENDED));
		if (i == 2) {
			/* rule's notify plus escalation's (settings) */
			CHECK_INT(v.n_notify, 2);
			if (v.n_notify == 2) {
				CHECK_STR(v.notify[0], "boss@acme.example");
				CHECK_STR(v.notify[1],
					  "compliance@acme.example");
			}
		} else {
			CHECK_INT(v.n_notify, 1);
		}
		imp_verdict_clear(&v);
	}
	const int64_t t_susp = t0 + (10 + 2 * 600) * 1000000LL;
	/* now a clean message is refused */
	g_now_us = t_susp + 60 * 1000000LL;
	const char *clean = msg(al, "x@other.example", "hello");
	CHECK_INT(run_full(p, clean, strlen(clean), IMP_ORIGIN_LOCAL, NULL, 0,
			   &v),
		  IMP_OK);
	CHECK_INT(v.action, IMP_REJECT);
	CHECK_STR(v.rule_id, "escalation.suspended");
	CHECK_STR(v.section, "Non-Compliance");
	CHECK_STR(v.notice, "You are suspended");
	CHECK(v.flags & IMP_VF_SUSPENDED);
	imp_verdict_clear(&v);
	/* presence is not refused (kinds default to message) */
	const char *pres = "<presence from='alice@acme.example/r'/>";
	run_full(p, pres, strlen(pres), IMP_ORIGIN_LOCAL, NULL, 0, &v);
	CHECK_INT(v.action, IMP_ALLOW);
	imp_verdict_clear(&v);
	/* other users are not affected */
	const char *other = msg("bob@acme.example", "x@other.example", "hi");
	run_full(p, other, strlen(other), IMP_ORIGIN_LOCAL, NULL, 0, &v);
	CHECK_INT(v.action, IMP_ALLOW);
	imp_verdict_clear(&v);
	/* the suspension lifts after 30 minutes */
	g_now_us = t_susp + 1799 * 1000000LL;
	clean = msg(al, "x@other.example", "hello"); /* msg() reuses g_msg */
	run_full(p, clean, strlen(clean), IMP_ORIGIN_LOCAL, NULL, 0, &v);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	g_now_us = t_susp + 1800 * 1000000LL;
	run_full(p, clean, strlen(clean), IMP_ORIGIN_LOCAL, NULL, 0, &v);
	CHECK_INT(v.action, IMP_ALLOW);
	CHECK(!(v.flags & IMP_VF_SUSPENDED));
	imp_verdict_clear(&v);
	/* violations spread over more than the window do not escalate */
	for (int i = 0; i < 4; i++) {
		g_now_us = t_susp + (int64_t)(4000 + i * 2000) * 1000000;
		const char *xml = msg(al, "x@other.example", "rejword");
		run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL, 0, &v);
		CHECK(!(v.flags & (IMP_VF_ESCALATED | IMP_VF_SUSPENDED)));
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
}

/* ---- fan-out ---------------------------------------------------------------------- */

static const char fanout_yaml[] =
	"policy: { name: fan, local_domains: [acme.example] }\n"
	"rules:\n"
	"  - { id: mass, when: { kind: message, fanout: { recipients: 3,\n"
	"      within: 10m } }, action: flag }\n";

static void test_fanout(void)
{
	imp_policy_t *p = load_policy(fanout_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	const int64_t t0 = utc_us(2026, 7, 1, 9, 0);
	static const struct {
		int dt; /* seconds after t0 */
		const char *from, *to, *body;
		bool dry;
		bool match;
	} steps[] = {
		{0, "spam@acme.example", "r1@x.example", "Buy NOW!", false,
		 false},
		{1, "spam@acme.example", "r2@x.example", "buy now", false,
		 false},
		/* dry run: would be the third, but is not recorded */
		{2, "spam@acme.example", "r3@x.example", "buy now", true, true},
		/* the same recipient again */
		{3, "spam@acme.example", "r2@x.example", "buy now", false,
		 false},
		/* other text */
		{4, "spam@acme.example", "r4@x.example", "hello", false, false},
		/* another sender, same text */
		{5, "ham@acme.example", "r5@x.example", "buy now", false,
		 false},
		{6, "spam@acme.example", "r6@x.example", "buy... now", false,
		 true},
		/* 10 minutes after r1 and r2's last time: r6 and this one */
		{604, "spam@acme.example", "r7@x.example", "buy now", false,
		 false},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(steps); i++) {
		g_now_us = t0 + (int64_t)steps[i].dt * 1000000;
		imp_verdict_t v;
		const char *xml =
			msg(steps[i].from, steps[i].to, steps[i].body);
		CHECK_INT(run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL,
				   steps[i].dry ? IMP_EVAL_DRY_RUN : 0, &v),
			  IMP_OK);
		CHECK_MSG(has_rule(&v, "mass") == steps[i].match, "step %zu",
			  i);
		imp_verdict_clear(&v);
	}
	imp_policy_unref(p);
}

/* ---- uninspectable, malformed, hostile ---------------------------------------- */

static const char limits_yaml[] =
	"policy: { name: limits, local_domains: [acme.example] }\n"
	"settings: { max_scan_bytes: 64, on_malformed: %s,\n"
	"            on_uninspectable: %s }\n"
	"lists:\n"
	"  bad: { words: [rejword] }\n"
	"rules:\n"
	"  - { id: bad, when: { words: bad }, action: reject }\n";

static imp_policy_t *load_limits(const char *malformed, const char *uninsp)
{
	char text[1024];
	snprintf(text, sizeof(text), limits_yaml, malformed, uninsp);
	return load_policy(text);
}

static void test_limits(void)
{
	imp_policy_t *pf = load_limits("flag", "flag");
	imp_policy_t *pr = load_limits("reject", "reject");
	CHECK(pf && pr);
	if (!pf || !pr) {
		imp_policy_unref(pf);
		imp_policy_unref(pr);
		return;
	}
	char body[200];
	memset(body, 'a', sizeof(body));
	memcpy(body + 150, " rejword ", 9);
	body[sizeof(body) - 1] = '\0';
	imp_verdict_t v;
	/* the word lies beyond the inspected 64 bytes */
	CHECK_INT(run(pf, msg("a@acme.example", "b@acme.example", body), &v),
		  IMP_OK);
	CHECK(v.flags & IMP_VF_UNINSPECTABLE);
	CHECK_INT(v.action, IMP_FLAG);
	CHECK_STR(v.rule_id, "policy.uninspectable");
	CHECK(!has_rule(&v, "bad"));
	imp_verdict_clear(&v);
	CHECK_INT(run(pr, msg("a@acme.example", "b@acme.example", body), &v),
		  IMP_OK);
	CHECK(v.flags & IMP_VF_UNINSPECTABLE);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	/* within the limit, the real rule decides first */
	memcpy(body + 10, " rejword ", 9);
	CHECK_INT(run(pr, msg("a@acme.example", "b@acme.example", body), &v),
		  IMP_OK);
	CHECK_INT(v.action, IMP_REJECT);
	CHECK_STR(v.rule_id, "bad");
	CHECK(has_rule(&v, "policy.uninspectable"));
	imp_verdict_clear(&v);
	/* short bodies are fine */
	CHECK_INT(run(pr, msg("a@acme.example", "b@acme.example", "hi"), &v),
		  IMP_OK);
	CHECK_INT(v.action, IMP_ALLOW);
	CHECK_INT(v.flags, 0);
	imp_verdict_clear(&v);

	/* malformed XML */
	const char *bad = "<message from='a@acme.example' to='b@acme.example'>"
			  "<body>oops</message>";
	CHECK_INT(run(pr, bad, &v), IMP_OK);
	CHECK(v.flags & IMP_VF_MALFORMED);
	CHECK_INT(v.action, IMP_REJECT);
	CHECK(v.error != NULL && v.error[0]);
	CHECK(v.notice != NULL);
	imp_verdict_clear(&v);
	CHECK_INT(run(pf, bad, &v), IMP_OK);
	CHECK(v.flags & IMP_VF_MALFORMED);
	CHECK_INT(v.action, IMP_FLAG);
	imp_verdict_clear(&v);

	/* invalid UTF-8 */
	const char *inv = "<message from='a@acme.example' to='b@acme.example'>"
			  "<body>bad \xff\xfe bytes \xc3(</body></message>";
	CHECK_INT(run(pr, inv, &v), IMP_OK);
	CHECK(v.flags & IMP_VF_MALFORMED);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);

	/* 1000-deep nesting */
	size_t cap = 16 * 1024;
	char *deep = malloc(cap);
	size_t n = (size_t)snprintf(deep, cap,
				    "<message from='a@acme.example' "
				    "to='b@acme.example'>");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(deep + n, cap - n, "<x>");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(deep + n, cap - n, "</x>");
	n += (size_t)snprintf(deep + n, cap - n, "</message>");
	CHECK_INT(run_full(pr, deep, n, IMP_ORIGIN_UNKNOWN, NULL, 0, &v),
		  IMP_OK);
	CHECK(v.flags & IMP_VF_MALFORMED);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	free(deep);

	/* empty and garbage input */
	CHECK_INT(run_full(pr, "", 0, IMP_ORIGIN_UNKNOWN, NULL, 0, &v), IMP_OK);
	CHECK(v.flags & IMP_VF_MALFORMED);
	imp_verdict_clear(&v);

	/* bad arguments fail closed */
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = 99;
	view.xml = "<message/>";
	view.xml_len = 10;
	CHECK_INT(imp_eval_run(g_ev, pr, &view, 0, &v), IMP_ERR_INVALID);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	CHECK_INT(imp_eval_run(g_ev, NULL, &view, 0, &v), IMP_ERR_INVALID);
	CHECK_INT(v.action, IMP_REJECT);
	imp_verdict_clear(&v);
	imp_policy_unref(pf);
	imp_policy_unref(pr);
}

/* A 1 MiB body with the default max_scan_bytes (1 MiB): inspected up to
 * the limit, then uninspectable; a hit inside still counts. */
static void test_big_body(void)
{
	imp_policy_t *p = load_policy("policy: { name: big }\n"
				      "lists: { bad: { words: [rejword] } }\n"
				      "rules: [ { id: bad, when: { words: bad "
				      "}, action: reject } ]\n");
	CHECK(p != NULL);
	if (!p)
		return;
	size_t blen = (1u << 20) + 100;
	char *xml = malloc(blen + 200);
	size_t n = (size_t)sprintf(xml, "<message to='b@x.example'><body>");
	for (size_t i = 0; i < blen; i++)
		xml[n + i] = (i % 8 == 7) ? ' ' : 'w';
	memcpy(xml + n + 1000, " rejword ", 9);
	n += blen;
	n += (size_t)sprintf(xml + n, "</body></message>");
	imp_verdict_t v;
	CHECK_INT(run_full(p, xml, n, IMP_ORIGIN_UNKNOWN, NULL, 0, &v), IMP_OK);
	CHECK(!(v.flags & IMP_VF_MALFORMED));
	CHECK(v.flags & IMP_VF_UNINSPECTABLE);
	CHECK_INT(v.action, IMP_REJECT);
	CHECK_STR(v.rule_id, "bad");
	CHECK(v.stanza.body && strlen(v.stanza.body) == blen);
	imp_verdict_clear(&v);
	free(xml);
	imp_policy_unref(p);
}

/* ---- JSON, explain and verdict lifetime -------------------------------------------- */

static void test_json_lifetime(void)
{
	imp_policy_t *p = load_policy(precedence_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	imp_eval_t *ev = NULL;
	CHECK_INT(imp_eval_new(g_ctx, &ev), IMP_OK);
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = IMP_ORIGIN_LOCAL;
	view.xml = "<message from='alice@acme.example/r' to='bob@acme.example' "
		   "type='chat' id='x1'><thread>t-9</thread><body>rejword "
		   "redword \"quoted\"\n</body></message>";
	view.xml_len = strlen(view.xml);
	imp_verdict_t v;
	CHECK_INT(imp_eval_run(ev, p, &view, IMP_EVAL_EXPLAIN, &v), IMP_OK);
	imp_policy_info_t info;
	imp_policy_info(p, &info);
	char digest[65];
	snprintf(digest, sizeof(digest), "%s", info.digest);
	/* everything the verdict points to survives the policy and the
	 * evaluator (ASan checks this) */
	imp_policy_unref(p);
	imp_eval_free(ev);
	CHECK_INT(v.action, IMP_REJECT);
	CHECK_STR(v.rule_id, "r.rejA");
	CHECK_STR(v.section, "S-A");
	CHECK_STR(v.notice, "DEFAULT NOTICE");
	CHECK_STR(v.policy_digest, digest);
	CHECK_STR(v.stanza.kind, "message");
	CHECK_STR(v.stanza.type, "chat");
	CHECK_STR(v.stanza.id, "x1");
	CHECK_STR(v.stanza.thread, "t-9");
	CHECK_STR(v.stanza.from, "alice@acme.example/r");
	CHECK_STR(v.stanza.to, "bob@acme.example");
	CHECK_STR(v.stanza.direction, "internal");
	CHECK(v.explain != NULL);
	if (v.explain) {
		CHECK(strstr(v.explain, "rule r.rejA") != NULL);
		CHECK(strstr(v.explain, "MATCHED") != NULL);
		CHECK(strstr(v.explain, "not matched") != NULL ||
		      strstr(v.explain, "skipped") != NULL);
		CHECK(strstr(v.explain, "rejw body[0..7]") != NULL);
		CHECK(strstr(v.explain, "verdict: reject by r.rejA") != NULL);
	}
	char *json = NULL;
	size_t len = 0;
	CHECK_INT(imp_verdict_json(g_ctx, &v, 1, &json, &len), IMP_OK);
	CHECK(json && strlen(json) == len);
	if (json) {
		static const char *const keys[] = {
			"\"verdict\":\"reject\"",
			"\"rules\":[\"r.redact\","
			"\"r.rejA\",\"r.rejB\"]",
			"\"matches\":[{\"id\":\"r.redact\"",
			"\"severity\":\"critical\"",
			"\"rule\":\"r.rejA\"",
			"\"notice\":\"DEFAULT NOTICE\"",
			"\"section\":\"S-A\"",
			"\"hits\":[{\"source\":\"redw\",\"field\":\"body\","
			"\"start\":8,\"end\":15",
			"\"flags\":[]",
			"\"notify\":[]",
			"\"policy_digest\":\"",
			"\"stanza\":{\"kind\":\"message\",\"type\":\"chat\"",
			"\"direction\":\"internal\"",
			"\"explain\":\"",
			"\"thread\":\"t-9\""};
		for (size_t i = 0; i < IMP_ARRAY_LEN(keys); i++)
			CHECK_MSG(strstr(json, keys[i]) != NULL, "missing %s",
				  keys[i]);
		CHECK(strstr(json, digest) != NULL);
		CHECK(json[0] == '{' && json[len - 1] == '}');
		/* no raw newline or quote breaks the string syntax */
		CHECK(strchr(json, '\n') == NULL);
		/* braces and brackets balance outside strings */
		int depth = 0, min_depth = 0;
		bool in_str = false;
		for (size_t i = 0; i < len; i++) {
			char c = json[i];
			if (in_str) {
				if (c == '\\')
					i++;
				else if (c == '"')
					in_str = false;
				continue;
			}
			if (c == '"')
				in_str = true;
			else if (c == '{' || c == '[')
				depth++;
			else if (c == '}' || c == ']')
				depth--;
			if (depth < min_depth)
				min_depth = depth;
		}
		CHECK_INT(depth, 0);
		CHECK_INT(min_depth, 0);
		CHECK(!in_str);
	}
	imp_free(g_ctx, json);
	/* without explain the trace is left out */
	CHECK_INT(imp_verdict_json(g_ctx, &v, 0, &json, &len), IMP_OK);
	CHECK(json && strstr(json, "\"explain\"") == NULL);
	imp_free(g_ctx, json);
	imp_verdict_clear(&v);
	imp_verdict_clear(&v); /* idempotent */

	/* a malformed verdict carries its error in JSON */
	p = load_policy(precedence_yaml);
	if (p) {
		CHECK_INT(run(p, "<message><body>x</message>", &v), IMP_OK);
		CHECK_INT(imp_verdict_json(g_ctx, &v, 0, &json, &len), IMP_OK);
		CHECK(json && strstr(json, "\"error\":\"") != NULL);
		CHECK(json && strstr(json, "\"malformed\"") != NULL);
		imp_free(g_ctx, json);
		imp_verdict_clear(&v);
		imp_policy_unref(p);
	}
	CHECK_STR(imp_action_name(IMP_REDACT), "redact");
	CHECK_STR(imp_field_name(IMP_FIELD_XHTML), "xhtml");
}

/* ---- borrowed verdicts ---------------------------------------------------------- */

/* IMP_EVAL_BORROW must say exactly what the owned verdict says: the same
 * JSON (explain included), redacted stanza and hits, over every
 * precedence case, a redaction, a malformed stanza and a presence. */
static void test_borrow(void)
{
	imp_policy_t *p = load_policy(precedence_yaml);
	CHECK(p != NULL);
	if (!p)
		return;
	const char *extra[] = {
		"<message><body>x</message>",
		"<presence from='alice@acme.example/r'/>",
		"<message from='alice@acme.example/r' to='bob@example.net' "
		"type='chat' id='x2'><body>redword and redword</body>"
		"<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
		"xmlns='http://www.w3.org/1999/xhtml'><p>redword</p></body>"
		"</html></message>",
	};
	size_t n = IMP_ARRAY_LEN(prec_cases) + IMP_ARRAY_LEN(extra);
	for (size_t i = 0; i < n; i++) {
		const char *x =
			i < IMP_ARRAY_LEN(prec_cases)
				? msg("alice@acme.example/r",
				      "bob@acme.example", prec_cases[i].body)
				: extra[i - IMP_ARRAY_LEN(prec_cases)];
		char *xml = strdup(x);
		imp_verdict_t own, lent;
		char *js_own = NULL, *js_lent = NULL;
		CHECK_INT(run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL,
				   IMP_EVAL_EXPLAIN, &own),
			  IMP_OK);
		CHECK_INT(run_full(p, xml, strlen(xml), IMP_ORIGIN_LOCAL, NULL,
				   IMP_EVAL_EXPLAIN | IMP_EVAL_BORROW, &lent),
			  IMP_OK);
		CHECK(lent.priv_ == NULL);
		CHECK_INT(imp_verdict_json(g_ctx, &own, 1, &js_own, NULL),
			  IMP_OK);
		CHECK_INT(imp_verdict_json(g_ctx, &lent, 1, &js_lent, NULL),
			  IMP_OK);
		CHECK_MSG(js_own && js_lent && strcmp(js_own, js_lent) == 0,
			  "case %zu: owned %s, borrowed %s", i,
			  js_own ? js_own : "(null)",
			  js_lent ? js_lent : "(null)");
		CHECK_INT((int)lent.redacted_xml_len,
			  (int)own.redacted_xml_len);
		CHECK(own.redacted_xml_len == 0 ||
		      (lent.redacted_xml &&
		       memcmp(own.redacted_xml, lent.redacted_xml,
			      own.redacted_xml_len) == 0));
		CHECK_INT((int)lent.n_hits, (int)own.n_hits);
		for (size_t k = 0; k < own.n_hits && k < lent.n_hits; k++)
			CHECK_STR(lent.hits[k].rule_id, own.hits[k].rule_id);
		if (i == n - 1) /* the redaction */
			CHECK(own.redacted_xml_len > 0);
		imp_free(g_ctx, js_own);
		imp_free(g_ctx, js_lent);
		imp_verdict_clear(&lent);
		CHECK(lent.rule_id == NULL && lent.n_rules == 0);
		imp_verdict_clear(&own);
		/* the stanza text is the caller's; a borrowed verdict was
		 * used up before it goes */
		free(xml);
	}
	imp_policy_unref(p);
}

/* ---- imp_time_parse -------------------------------------------------------------- */

static void test_time_parse(void)
{
	static const struct {
		const char *s, *tz;
		int rc;
		int y, mo, d, h, mi, sec; /* UTC when rc == OK */
		int us;
	} cases[] = {
		{"2026-11-25T12:30:00Z", NULL, IMP_OK, 2026, 11, 25, 12, 30, 0,
		 0},
		{"2026-11-25T12:30:00+01:00", NULL, IMP_OK, 2026, 11, 25, 11,
		 30, 0, 0},
		{"2026-11-25T12:30:00-0530", NULL, IMP_OK, 2026, 11, 25, 18, 0,
		 0, 0},
		{"2026-11-25T12:30:00.250Z", NULL, IMP_OK, 2026, 11, 25, 12, 30,
		 0, 250000},
		{"2026-11-25 12:30", NULL, IMP_OK, 2026, 11, 25, 12, 30, 0, 0},
		{"2026-11-25 12:30", "America/New_York", IMP_OK, 2026, 11, 25,
		 17, 30, 0, 0},
		{"2026-07-01T09:00:00", "America/New_York", IMP_OK, 2026, 7, 1,
		 13, 0, 0, 0},
		{"2026-11-25T12:30:00Z", "America/New_York", IMP_OK, 2026, 11,
		 25, 12, 30, 0, 0},
		{"2026-11-25", NULL, IMP_OK, 2026, 11, 25, 0, 0, 0, 0},
		{"2026-02-30T00:00Z", NULL, IMP_ERR_INVALID, 0, 0, 0, 0, 0, 0,
		 0},
		{"2026-11-25T25:00Z", NULL, IMP_ERR_INVALID, 0, 0, 0, 0, 0, 0,
		 0},
		{"yesterday", NULL, IMP_ERR_INVALID, 0, 0, 0, 0, 0, 0, 0},
		{"2026-11-25T12:30Zjunk", NULL, IMP_ERR_INVALID, 0, 0, 0, 0, 0,
		 0, 0},
		{"2026-11-25 12:30", "No/Such_Zone", IMP_ERR_INVALID, 0, 0, 0,
		 0, 0, 0, 0},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		int64_t us = -1;
		int rc = imp_time_parse(g_ctx, cases[i].s, cases[i].tz, &us);
		CHECK_MSG(rc == cases[i].rc, "case %zu (%s): rc %d", i,
			  cases[i].s, rc);
		if (rc == IMP_OK && cases[i].rc == IMP_OK) {
			int64_t want =
				(imp_days_from_civil(cases[i].y, cases[i].mo,
						     cases[i].d) *
					 86400 +
				 cases[i].h * 3600 + cases[i].mi * 60 +
				 cases[i].sec) *
					1000000 +
				cases[i].us;
			CHECK_MSG(us == want, "case %zu: %lld != %lld", i,
				  (long long)us, (long long)want);
		}
	}
}

int main(void)
{
	imp_ctx_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_CTX_CONFIG_VERSION;
	cfg.clock = test_clock;
	g_now_us = utc_us(2026, 11, 25, 12, 0);
	CHECK_INT(imp_ctx_new(&cfg, &g_ctx), IMP_OK);
	CHECK_INT(imp_eval_new(g_ctx, &g_ev), IMP_OK);
	test_precedence();
	test_conditions();
	test_direction_groups();
	test_no_to();
	test_retention();
	test_prefix_redaction();
	test_schedules();
	test_redaction();
	test_escalation();
	test_fanout();
	test_limits();
	test_big_body();
	test_json_lifetime();
	test_borrow();
	test_time_parse();
	imp_eval_free(g_ev);
	imp_ctx_free(g_ctx);
	return CHECK_DONE();
}
