/* tests/e2e/e2e_policy.c -- the sample policy (contrib/policies/acme.yaml)
 * through real jabberd2: clean, card number, profanity, counsel, every
 * file-transfer path, OMEMO, presence and iq.  Each scenario checks what
 * the recipient got, what the sender got and what the archive holds.
 * Every violating scenario has its own sender: reject and redact count
 * towards escalation (3 within an hour suspend the sender). */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIKE_RAW "strpos(convert_from(raw_xml, 'UTF8'), $1) > 0"

static long rows(const char *uid, const char *extra_where)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM impolicy.stanza WHERE " LIKE_RAW " %s",
		 extra_where ? extra_where : "");
	return e2e_sql_wait(1, 8000, sql, uid, NULL);
}

static char *col(const char *uid, const char *column)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM impolicy.stanza WHERE " LIKE_RAW
		 " ORDER BY seq LIMIT 1",
		 column);
	return e2e_sql(sql, uid, NULL);
}

/* A refusal as the sender sees it: the error stanza with id, the
 * policy-violation condition and the notice, plus the server's chat. */
static void expect_refused(e2e_client_t *s, int from, const char *what,
			   const char *id, const char *notice,
			   const char *section)
{
	char idattr[128];
	snprintf(idattr, sizeof idattr, "id=\"%s\"", id);
	int e = e2e_wait_for(s, from, 5000, idattr, "type=\"error\"",
			     "<policy-violation", notice, NULL);
	e2e_check(e >= 0, "%s: sender gets policy-violation with the notice",
		  what);
	if (e >= 0)
		e2e_check(strstr(e2e_got(s, e), section) != NULL,
			  "%s: the error text names section '%s'", what,
			  section);
	else
		printf("#   last stanza: %s\n", e2e_got(s, s->n - 1));
	int n = e2e_wait_for(s, from, 3000, "from=\"" E2E_DOMAIN "\"",
			     "type=\"chat\"", "<body>", NULL);
	e2e_check(n >= 0, "%s: sender gets a chat notice from the server",
		  what);
}

static void expect_archived(const char *what, const char *uid,
			    const char *verdict, const char *rule)
{
	char where[256];
	if (*rule)
		snprintf(where, sizeof where,
			 "AND verdict = '%s' AND '%s' = ANY (rule_ids)",
			 verdict, rule);
	else
		snprintf(where, sizeof where,
			 "AND verdict = '%s' AND cardinality(rule_ids) = 0",
			 verdict);
	long n = rows(uid, where);
	if (!e2e_check(n == 1,
		       "%s: archived once, verdict %s, rule %s (rows %ld)",
		       what, verdict, rule, n)) {
		char *v = col(uid, "verdict || ' ' || rule_ids::text");
		printf("#   archived: %s\n", v ? v : "(no row)");
		free(v);
	}
}

int main(void)
{
	e2e_init("policy");
	e2e_pg_start();
	const char *users[] = {"alice", "bob",   "carol",           "dave",
			       "erin",  "frank", "general.counsel", "gina",
			       "hank",  "ivy",   "compliance"};
	for (size_t i = 0; i < sizeof users / sizeof *users; i++)
		e2e_adduser(users[i]);
	e2e_stack_start(NULL, NULL);

	e2e_client_t *alice = e2e_connect("alice", "e2e");
	e2e_client_t *bob = e2e_connect("bob", "e2e");
	e2e_client_t *carol = e2e_connect("carol", "e2e");
	e2e_client_t *dave = e2e_connect("dave", "e2e");
	e2e_client_t *erin = e2e_connect("erin", "e2e");
	e2e_client_t *counsel = e2e_connect("general.counsel", "e2e");
	e2e_client_t *comp = e2e_connect("compliance", "e2e");
	int b0, s0;

	/* -- clean message ---------------------------------------------- */
	const char *u = e2e_uid("clean");
	b0 = bob->n;
	e2e_send(alice,
		 "<message to='bob@acme.example' type='chat' id='%s'>"
		 "<body>The quarterly report %s is ready for review.</body>"
		 "</message>",
		 u, u);
	int i = e2e_wait_for(bob, b0, 5000, u, "<body>", NULL);
	e2e_check(i >= 0, "clean: bob receives the message");
	e2e_check(i >= 0 && strstr(e2e_got(bob, i),
				   "from=\"alice@acme.example/e2e\""),
		  "clean: from is alice's full JID");
	expect_archived("clean", u, "allow", "");
	{
		long n = rows(u, NULL);
		e2e_check(n == 1,
			  "clean: exactly one record (no double "
			  "record for local-to-local), got %ld",
			  n);
		char *v = col(u, "verdict");
		e2e_check(v && !strcmp(v, "allow"), "clean: verdict allow (%s)",
			  v ? v : "none");
		free(v);
		char *fb = col(u, "from_bare || ' ' || to_bare || ' ' || kind");
		e2e_check(fb && !strcmp(fb, "alice@acme.example "
					    "bob@acme.example message"),
			  "clean: from/to/kind recorded (%s)", fb ? fb : "");
		free(fb);
		char *body = col(u, "body");
		e2e_check(body && strstr(body, "quarterly report"),
			  "clean: body archived");
		free(body);
	}

	/* -- card number refused ---------------------------------------- */
	u = e2e_uid("card");
	b0 = bob->n;
	s0 = alice->n;
	int c0 = comp->n;
	e2e_send(alice,
		 "<message to='bob@acme.example' type='chat' id='%s'>"
		 "<body>customer card is 4556 7375 8689 9855, ref %s</body>"
		 "</message>",
		 u, u);
	expect_refused(alice, s0, "card", u,
		       "Card numbers may not be sent over IM",
		       "3. Confidentiality");
	e2e_pump(500);
	e2e_check(e2e_count(bob, b0, u, NULL) == 0 &&
			  e2e_count(bob, b0, "4556", NULL) == 0,
		  "card: bob receives nothing");
	expect_archived("card", u, "reject", "confidentiality.payment-card");
	{
		char *body = col(u, "body");
		e2e_check(body && strstr(body, "4556 7375 8689 9855"),
			  "card: the attempt is archived with its original "
			  "body");
		free(body);
	}
	i = e2e_wait_for(comp, c0, 3000, "confidentiality.payment-card", NULL);
	e2e_check(i >= 0, "card: compliance is notified with the rule id");
	e2e_check(i < 0 || !strstr(e2e_got(comp, i), "4556 7375"),
		  "card: the notification does not carry the card number");

	/* -- profanity redacted ----------------------------------------- */
	u = e2e_uid("prof");
	b0 = bob->n;
	e2e_send(carol,
		 "<message to='bob@acme.example' type='chat' id='%s'>"
		 "<body>this fucking printer %s</body>"
		 "<html xmlns='http://jabber.org/protocol/xhtml-im'>"
		 "<body xmlns='http://www.w3.org/1999/xhtml'><p>this fucking "
		 "printer</p></body></html></message>",
		 u, u);
	i = e2e_wait_for(bob, b0, 5000, u, NULL);
	e2e_check(i >= 0, "profanity: bob receives the message");
	e2e_check(i >= 0 && !strstr(e2e_got(bob, i), "fucking"),
		  "profanity: the word is masked in body and XHTML-IM");
	e2e_check(i >= 0 && strstr(e2e_got(bob, i), "this ******* printer"),
		  "profanity: bob sees the mask");
	if (i >= 0)
		printf("#   bob got: %s\n", e2e_got(bob, i));
	expect_archived("profanity", u, "redact", "acceptable-use.profanity");
	{
		char *body = col(u, "body");
		e2e_check(body && strstr(body, "this fucking printer"),
			  "profanity: the archive has the original body");
		free(body);
		long f = e2e_sql_wait(
			1, 5000,
			"SELECT count(*) FROM impolicy.flag f JOIN "
			"impolicy.stanza s USING (node, seq) WHERE "
			"convert_from(s.raw_xml, 'UTF8') LIKE '%' || $1 || '%' "
			"AND f.rule_id = 'acceptable-use.profanity' AND "
			"f.state = 'open'",
			u, NULL);
		e2e_check(f == 1, "profanity: one open flag row (%ld)", f);
	}

	/* -- privileged talk with counsel ------------------------------- */
	u = e2e_uid("counsel");
	b0 = counsel->n;
	s0 = dave->n;
	e2e_send(dave,
		 "<message to='general.counsel@acme.example' type='chat' "
		 "id='%s'><body>Could you look at the supplier contract "
		 "clause %s?</body></message>",
		 u, u);
	expect_refused(dave, s0, "counsel", u,
		       "Legal questions to Acme counsel", "3. Confidentiality");
	e2e_pump(300);
	e2e_check(e2e_count(counsel, b0, u, NULL) == 0,
		  "counsel: counsel receives nothing");
	expect_archived("counsel", u, "reject",
			"confidentiality.legal-counsel");

	/* -- file transfer: every path refused -------------------------- */
	struct {
		const char *name, *fmt;
	} ft[] = {
		{
			"XEP-0363 upload slot",
			"<iq type='get' to='upload.acme.example' "
			"id='%s'><request "
			"xmlns='urn:xmpp:http:upload:0' filename='plan.pdf' "
			"size='1000' content-type='application/pdf'/></iq>",
		},
		{
			"XEP-0066 OOB",
			"<message to='bob@acme.example' type='chat' "
			"id='%s'><body>"
			"https://files.example/plan.pdf</body><x "
			"xmlns='jabber:x:oob'><url>https://files.example/"
			"plan.pdf"
			"</url></x></message>",
		},
		{
			"XEP-0096 SI",
			"<iq type='set' to='bob@acme.example/e2e' id='%s'><si "
			"xmlns='http://jabber.org/protocol/si' id='si1' "
			"profile='http://jabber.org/protocol/si/profile/"
			"file-transfer'><file "
			"xmlns='http://jabber.org/protocol/si/"
			"profile/file-transfer' name='plan.pdf' size='1000'/>"
			"<feature "
			"xmlns='http://jabber.org/protocol/feature-neg'><x "
			"xmlns='jabber:x:data' type='form'><field var='stream-"
			"method' type='list-single'><option><value>http://"
			"jabber.org/protocol/bytestreams</value></option></"
			"field>"
			"</x></feature></si></iq>",
		},
		{
			"XEP-0234 Jingle FT",
			"<iq type='set' to='bob@acme.example/e2e' "
			"id='%s'><jingle "
			"xmlns='urn:xmpp:jingle:1' action='session-initiate' "
			"sid='j1' initiator='erin@acme.example/e2e'><content "
			"creator='initiator' name='f'><description "
			"xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file><"
			"name>"
			"plan.pdf</name><size>1000</size></file></description>"
			"<transport xmlns='urn:xmpp:jingle:transports:s5b:1' "
			"sid='t1'/></content></jingle></iq>",
		},
	};
	e2e_client_t *ftc[] = {e2e_connect("frank", "e2e"),
			       e2e_connect("gina", "e2e"),
			       e2e_connect("hank", "e2e"), erin};
	for (size_t k = 0; k < sizeof ft / sizeof *ft; k++) {
		/* One sender each: every refusal counts towards escalation. */
		e2e_client_t *s = ftc[k];
		u = e2e_uid("ft");
		b0 = bob->n;
		s0 = s->n;
		char stanza[2048];
		snprintf(stanza, sizeof stanza, ft[k].fmt, u);
		e2e_send(s, "%s", stanza);
		char idattr[128];
		snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
		int e = e2e_wait_for(s, s0, 5000, idattr, "type=\"error\"",
				     "<policy-violation",
				     "File sharing over IM is blocked", NULL);
		e2e_check(e >= 0, "%s: sender gets policy-violation",
			  ft[k].name);
		if (e < 0 && s->n > s0)
			printf("#   got: %s\n", e2e_got(s, s->n - 1));
		e2e_pump(300);
		e2e_check(e2e_count(bob, b0, u, NULL) == 0,
			  "%s: recipient gets nothing", ft[k].name);
		expect_archived(ft[k].name, u, "reject",
				"file-sharing.blocked");
	}

	/* -- OMEMO ------------------------------------------------------ */
	u = e2e_uid("omemo");
	b0 = bob->n;
	e2e_client_t *ivy = e2e_connect("ivy", "e2e");
	s0 = ivy->n;
	e2e_send(ivy,
		 "<message to='bob@acme.example' type='chat' id='%s'>"
		 "<encrypted xmlns='eu.siacs.conversations.axolotl'><header "
		 "sid='1234'><key rid='5678'>AAAAAAAA</key><iv>BBBBBBBB</iv>"
		 "</header><payload>CCCCCCCC</payload></encrypted>"
		 "<encryption xmlns='urn:xmpp:eme:0' "
		 "namespace='eu.siacs.conversations.axolotl' name='OMEMO'/>"
		 "<body>I sent you an OMEMO encrypted message but your "
		 "client doesn't seem to support that.</body></message>",
		 u);
	expect_refused(ivy, s0, "OMEMO", u, "End-to-end encrypted messages",
		       "7. Privacy");
	e2e_pump(300);
	e2e_check(e2e_count(bob, b0, u, NULL) == 0,
		  "OMEMO: bob receives nothing");
	expect_archived("OMEMO", u, "reject", "privacy.end-to-end-encrypted");

	/* -- presence and iq archived ----------------------------------- */
	u = e2e_uid("pres");
	b0 = bob->n;
	e2e_send(alice,
		 "<presence to='bob@acme.example' id='%s'><status>in a "
		 "meeting</status></presence>",
		 u);
	i = e2e_wait_for(bob, b0, 5000, u, NULL);
	e2e_check(i >= 0, "presence: bob receives alice's directed presence");
	{
		long n = rows(u, "AND kind = 'presence' AND verdict = 'allow'");
		e2e_check(n == 1, "presence: archived (kind presence) (%ld)",
			  n);
	}
	u = e2e_uid("iq");
	b0 = bob->n;
	e2e_send(alice,
		 "<iq type='get' to='bob@acme.example/e2e' id='%s'><query "
		 "xmlns='jabber:iq:version'/></iq>",
		 u);
	i = e2e_wait_for(bob, b0, 5000, u, "jabber:iq:version", NULL);
	e2e_check(i >= 0, "iq: bob receives alice's version query");
	{
		long n = rows(u, "AND kind = 'iq' AND verdict = 'allow' AND "
				 "stanza_type = 'get'");
		e2e_check(n == 1, "iq: archived (kind iq, type get) (%ld)", n);
	}
	{
		long n = e2e_sql_long(
			"SELECT count(*) FROM impolicy.stanza WHERE kind = "
			"'presence' AND from_bare = 'bob@acme.example'",
			NULL);
		e2e_check(n >= 1,
			  "presence: bob's initial presence archived "
			  "(%ld)",
			  n);
	}

	e2e_stack_stop();
	{
		char *log = e2e_sm_log();
		e2e_check(log && strstr(log, "impolicy: stats: judged="),
			  "the module logs its stats at shutdown");
		e2e_check(log && !strstr(log, "4556 7375"),
			  "the sm log never contains a message body");
		free(log);
	}
	return e2e_finish();
}
