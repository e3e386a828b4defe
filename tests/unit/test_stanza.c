/*
 * test_stanza.c -- stanza parsing, facts, limits, masking, serialisation
 * (stanza.h) and imp_xml_split (impolicy.h).
 *
 * Table-driven: each fact case is one stanza with the facts it must give;
 * fixture files under data/stanzas/ add whole stanzas as clients send them.
 */
#include "check.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

static imp_ctx_t *ctx;

/* Joins a string vector with "|" for compact comparisons. */
static const char *join(imp_arena_t *a, const char *const *v, size_t n)
{
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	imp_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++) {
		if (i)
			imp_buf_putc(&b, '|');
		imp_buf_puts(&b, v[i]);
	}
	return b.data ? b.data : "";
}

/* ---- facts --------------------------------------------------------------- */

typedef struct fact_case_s {
	const char *name;
	const char *xml;
	unsigned kind;
	unsigned ft, e2ee, hints;
	bool correction;
	const char *body, *subject, *xhtml, *status, *other;
	const char *addresses, *urls, *filenames;
	const char *thread, *lang;
} fact_case_t;

#define M(x)                                                             \
	"<message xmlns='jabber:client' to='b@x.example' type='chat'>" x \
	"</message>"

static const fact_case_t fact_cases[] = {
	{"plain body", M("<body>hello</body>"), IMP_KIND_MESSAGE, 0, 0, 0,
	 false, "hello", "", "", "", "", NULL, NULL, NULL, NULL, NULL},
	{"multi-lang bodies",
	 M("<body>hello</body><body xml:lang='de'>hallo</body>"
	   "<body xml:lang='fr'>salut</body>"),
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "hello\nhallo\nsalut", "", "", "",
	 "", NULL, NULL, NULL, NULL, NULL},
	{"subject and thread",
	 "<message xmlns='jabber:client' xml:lang='en'><subject>Q3 plan"
	 "</subject><thread>t-42</thread><body>x</body></message>",
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "x", "Q3 plan", "", "", "", NULL,
	 NULL, NULL, "t-42", "en"},
	{"xhtml-im",
	 M("<body>Card 4111</body><html "
	   "xmlns='http://jabber.org/protocol/xhtml-im'><body "
	   "xmlns='http://www.w3.org/1999/xhtml'><p>Card <span "
	   "style='color:red'>4111</span> 1111</p><p>next</p></body></html>"),
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "Card 4111", "",
	 "Card 4111 1111\nnext", "", "", NULL, NULL, NULL, NULL, NULL},
	{"presence status",
	 "<presence><show>away</show><status>at lunch</status>"
	 "<priority>5</priority></presence>",
	 IMP_KIND_PRESENCE, 0, 0, 0, false, "", "", "", "at lunch", "", NULL,
	 NULL, NULL, NULL, NULL},
	{"iq payload text",
	 "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Jane Doe</FN>"
	 "<NOTE>call me</NOTE></vCard></iq>",
	 IMP_KIND_IQ, 0, 0, 0, false, "", "", "", "", "Jane Doe\ncall me", NULL,
	 NULL, NULL, NULL, NULL},
	/* file transfer: one stanza per path */
	{"http upload",
	 "<iq type='get' id='u1' to='upload.x.example'><request "
	 "xmlns='urn:xmpp:http:upload:0' filename='plan.pdf' size='23456' "
	 "content-type='application/pdf'/></iq>",
	 IMP_KIND_IQ, IMP_FT_UPLOAD, 0, 0, false, "", "", "", "", "", NULL,
	 NULL, "plan.pdf", NULL, NULL},
	{"http upload (conversations)",
	 "<iq type='get' id='u2'><request "
	 "xmlns='eu:siacs:conversations:http:upload'><filename>cv.doc"
	 "</filename><size>10</size></request></iq>",
	 IMP_KIND_IQ, IMP_FT_UPLOAD, 0, 0, false, "", "", "", "", "cv.doc\n10",
	 NULL, NULL, "cv.doc", NULL, NULL},
	{"oob in message",
	 M("<body>https://up.example/f.png</body><x xmlns='jabber:x:oob'>"
	   "<url>https://up.example/f.png</url><desc>holiday</desc></x>"),
	 IMP_KIND_MESSAGE, IMP_FT_OOB, 0, 0, false, "https://up.example/f.png",
	 "", "", "", "https://up.example/f.png\nholiday", NULL,
	 "https://up.example/f.png", NULL, NULL, NULL},
	{"oob in iq",
	 "<iq type='set' id='o1'><query xmlns='jabber:iq:oob'><url>"
	 "http://a.example/x.zip</url></query></iq>",
	 IMP_KIND_IQ, IMP_FT_OOB, 0, 0, false, "", "", "", "",
	 "http://a.example/x.zip", NULL, "http://a.example/x.zip", NULL, NULL,
	 NULL},
	{"si file transfer",
	 "<iq type='set' id='s1'><si xmlns='http://jabber.org/protocol/si' "
	 "id='a0' profile='http://jabber.org/protocol/si/profile/"
	 "file-transfer'><file "
	 "xmlns='http://jabber.org/protocol/si/profile/file-transfer' "
	 "name='secret.xls' size='1022'><desc>numbers</desc></file></si></iq>",
	 IMP_KIND_IQ, IMP_FT_SI, 0, 0, false, "", "", "", "", "numbers", NULL,
	 NULL, "secret.xls", NULL, NULL},
	{"socks5 bytestreams",
	 "<iq type='set' id='b1'><query "
	 "xmlns='http://jabber.org/protocol/bytestreams' sid='s'><streamhost "
	 "jid='p.example' host='1.2.3.4' port='7777'/></query></iq>",
	 IMP_KIND_IQ, IMP_FT_SOCKS5, 0, 0, false, "", "", "", "", "", NULL,
	 NULL, NULL, NULL, NULL},
	{"ibb open",
	 "<iq type='set' id='i1'><open xmlns='http://jabber.org/protocol/ibb' "
	 "block-size='4096' sid='s'/></iq>",
	 IMP_KIND_IQ, IMP_FT_IBB, 0, 0, false, "", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"ibb data (base64 not text)",
	 "<iq type='set' id='i2'><data xmlns='http://jabber.org/protocol/ibb' "
	 "seq='0' sid='s'>cGFzc3dvcmQ=</data></iq>",
	 IMP_KIND_IQ, IMP_FT_IBB, 0, 0, false, "", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"jingle file transfer",
	 "<iq type='set' id='j1'><jingle xmlns='urn:xmpp:jingle:1' "
	 "action='session-initiate' sid='x'><content creator='initiator' "
	 "name='a'><description "
	 "xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file><name>q.txt"
	 "</name><size>3</size></file></description></content></jingle></iq>",
	 IMP_KIND_IQ, IMP_FT_JINGLE, 0, 0, false, "", "", "", "", "q.txt\n3",
	 NULL, NULL, "q.txt", NULL, NULL},
	{"jingle ft:4",
	 "<iq type='set' id='j2'><jingle xmlns='urn:xmpp:jingle:1' sid='y'>"
	 "<content name='a'><description "
	 "xmlns='urn:xmpp:jingle:apps:file-transfer:4'/></content></jingle>"
	 "</iq>",
	 IMP_KIND_IQ, IMP_FT_JINGLE, 0, 0, false, "", "", "", "", "", NULL,
	 NULL, NULL, NULL, NULL},
	{"jingle rtp is not a file",
	 "<iq type='set' id='j3'><jingle xmlns='urn:xmpp:jingle:1' sid='z'>"
	 "<content name='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' "
	 "media='audio'/></content></jingle></iq>",
	 IMP_KIND_IQ, 0, 0, 0, false, "", "", "", "", "", NULL, NULL, NULL,
	 NULL, NULL},
	{"sims",
	 M("<reference xmlns='urn:xmpp:reference:0' type='data' begin='0' "
	   "end='5'><media-sharing xmlns='urn:xmpp:sims:1'><file "
	   "xmlns='urn:xmpp:jingle:apps:file-transfer:5'><name>pic.jpg</name>"
	   "</file><sources><reference xmlns='urn:xmpp:reference:0' "
	   "type='data' uri='https://h.example/pic.jpg'/></sources>"
	   "</media-sharing></reference>"),
	 IMP_KIND_MESSAGE, IMP_FT_SIMS, 0, 0, false, "", "", "", "", "pic.jpg",
	 NULL, "https://h.example/pic.jpg", "pic.jpg", NULL, NULL},
	{"sfs",
	 M("<file-sharing xmlns='urn:xmpp:sfs:0' disposition='inline'><file "
	   "xmlns='urn:xmpp:file:metadata:0'><name>a.mp4</name><desc>clip"
	   "</desc></file><sources><url-data "
	   "xmlns='http://jabber.org/protocol/url-data' "
	   "target='https://h.example/a.mp4'/></sources></file-sharing>"),
	 IMP_KIND_MESSAGE, IMP_FT_SFS, 0, 0, false, "", "", "", "",
	 "a.mp4\nclip", NULL, "https://h.example/a.mp4", "a.mp4", NULL, NULL},
	/* end-to-end encryption */
	{"omemo legacy",
	 M("<encrypted xmlns='eu.siacs.conversations.axolotl'><header "
	   "sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header><payload>"
	   "cGF5</payload></encrypted><body>I sent you an OMEMO encrypted "
	   "message</body>"),
	 IMP_KIND_MESSAGE, 0, IMP_E2E_OMEMO, 0, false,
	 "I sent you an OMEMO encrypted message", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"omemo 2",
	 M("<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>"
	   "AAAA</payload></encrypted>"),
	 IMP_KIND_MESSAGE, 0, IMP_E2E_OMEMO2, 0, false, "", "", "", "", "",
	 NULL, NULL, NULL, NULL, NULL},
	{"openpgp", M("<openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp>"),
	 IMP_KIND_MESSAGE, 0, IMP_E2E_OPENPGP, 0, false, "", "", "", "", "",
	 NULL, NULL, NULL, NULL, NULL},
	{"legacy pgp",
	 M("<body>This message is encrypted.</body><x "
	   "xmlns='jabber:x:encrypted'>qANQR1DBwU4DX7jm</x>"),
	 IMP_KIND_MESSAGE, 0, IMP_E2E_LEGACY_PGP, 0, false,
	 "This message is encrypted.", "", "", "", "", NULL, NULL, NULL, NULL,
	 NULL},
	{"otr data", M("<body>?OTR:AAMDJ+MVmSfjFZ==.</body>"), IMP_KIND_MESSAGE,
	 0, IMP_E2E_OTR, 0, false, "?OTR:AAMDJ+MVmSfjFZ==.", "", "", "", "",
	 NULL, NULL, NULL, NULL, NULL},
	{"otr query", M("<body>?OTRv23?</body>"), IMP_KIND_MESSAGE, 0,
	 IMP_E2E_OTR, 0, false, "?OTRv23?", "", "", "", "", NULL, NULL, NULL,
	 NULL, NULL},
	{"otr only at start", M("<body>what is ?OTR</body>"), IMP_KIND_MESSAGE,
	 0, 0, 0, false, "what is ?OTR", "", "", "", "", NULL, NULL, NULL, NULL,
	 NULL},
	{"eme hint",
	 M("<encryption xmlns='urn:xmpp:eme:0' "
	   "namespace='eu.siacs.conversations.axolotl'/>"),
	 IMP_KIND_MESSAGE, 0, IMP_E2E_HINT, 0, false, "", "", "", "", "", NULL,
	 NULL, NULL, NULL, NULL},
	/* hints */
	{"no-store", M("<body>a</body><no-store xmlns='urn:xmpp:hints'/>"),
	 IMP_KIND_MESSAGE, 0, 0, IMP_HINT_NO_STORE, false, "a", "", "", "", "",
	 NULL, NULL, NULL, NULL, NULL},
	{"no-permanent-store",
	 M("<no-permanent-store xmlns='urn:xmpp:hints'/>"), IMP_KIND_MESSAGE, 0,
	 0, IMP_HINT_NO_PERMANENT_STORE, false, "", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"no-copy + store",
	 M("<no-copy xmlns='urn:xmpp:hints'/><store xmlns='urn:xmpp:hints'/>"),
	 IMP_KIND_MESSAGE, 0, 0, IMP_HINT_NO_COPY | IMP_HINT_STORE, false, "",
	 "", "", "", "", NULL, NULL, NULL, NULL, NULL},
	{"carbons private", M("<private xmlns='urn:xmpp:carbons:2'/>"),
	 IMP_KIND_MESSAGE, 0, 0, IMP_HINT_PRIVATE, false, "", "", "", "", "",
	 NULL, NULL, NULL, NULL, NULL},
	/* multicast, correction */
	{"multicast",
	 M("<addresses xmlns='http://jabber.org/protocol/address'><address "
	   "type='to' jid='a@x.example'/><address type='cc' "
	   "jid='b@x.example'/><address type='bcc' jid='c@y.example'/>"
	   "<address type='replyto' jid='d@x.example'/></addresses>"
	   "<body>all</body>"),
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "all", "", "", "", "",
	 "a@x.example|b@x.example|c@y.example", NULL, NULL, NULL, NULL},
	{"correction",
	 M("<body>fixed</body><replace id='m1' "
	   "xmlns='urn:xmpp:message-correct:0'/>"),
	 IMP_KIND_MESSAGE, 0, 0, 0, true, "fixed", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	/* default namespaces */
	{"no xmlns", "<message><body>n</body></message>", IMP_KIND_MESSAGE, 0,
	 0, 0, false, "n", "", "", "", "", NULL, NULL, NULL, NULL, NULL},
	{"jabber:server",
	 "<message xmlns='jabber:server' from='a@x' to='b@y'><body>s</body>"
	 "</message>",
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "s", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"prefixed stanza",
	 "<c:message xmlns:c='jabber:client'><c:body>p</c:body></c:message>",
	 IMP_KIND_MESSAGE, 0, 0, 0, false, "p", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
	{"foreign body is other",
	 M("<body xmlns='urn:example'>not a body</body>"), IMP_KIND_MESSAGE, 0,
	 0, 0, false, "", "", "", "", "not a body", NULL, NULL, NULL, NULL,
	 NULL},
	{"other element",
	 "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>",
	 IMP_KIND_OTHER, 0, 0, 0, false, "", "", "", "", "", NULL, NULL, NULL,
	 NULL, NULL},
	{"entities and cdata",
	 M("<body>a &amp; b <![CDATA[<c>]]> &#x263A;</body>"), IMP_KIND_MESSAGE,
	 0, 0, 0, false, "a & b <c> \xE2\x98\xBA", "", "", "", "", NULL, NULL,
	 NULL, NULL, NULL},
};

static void test_facts(imp_arena_t *a)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(fact_cases); i++) {
		const fact_case_t *c = &fact_cases[i];
		imp_stanza_t *st = NULL;
		char err[256];
		int rc = imp_stanza_parse(a, c->xml, strlen(c->xml), NULL, &st,
					  err, sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: rc %d: %s", c->name, rc, err);
		if (rc != IMP_OK)
			continue;
		CHECK_MSG(st->kind == c->kind, "%s: kind %u", c->name,
			  st->kind);
		CHECK_MSG(st->ft == c->ft, "%s: ft %#x", c->name, st->ft);
		CHECK_MSG(st->e2ee == c->e2ee, "%s: e2ee %#x", c->name,
			  st->e2ee);
		CHECK_MSG(st->hints == c->hints, "%s: hints %#x", c->name,
			  st->hints);
		CHECK_MSG(st->correction == c->correction, "%s: correction",
			  c->name);
		const char *want[IMP_FIELD_COUNT] = {
			c->body, c->subject, c->xhtml, c->status, c->other};
		for (int f = 0; f < IMP_FIELD_COUNT; f++) {
			const imp_ftext_t *ft = &st->fields[f];
			CHECK_MSG(strcmp(ft->text, want[f]) == 0 &&
					  ft->len == strlen(want[f]),
				  "%s: field %d = \"%s\", expected \"%s\"",
				  c->name, f, ft->text, want[f]);
			/* segments must tile the text they claim */
			for (size_t s = 0; s < ft->n_segs; s++) {
				const imp_fseg_t *sg = &ft->segs[s];
				CHECK(sg->field_off + sg->len <= ft->len);
				CHECK(memcmp(ft->text + sg->field_off,
					     sg->node->text + sg->node_off,
					     sg->len) == 0);
			}
		}
		const char *ad = join(a, st->addresses, st->n_addresses);
		const char *ur = join(a, st->urls, st->n_urls);
		const char *fn = join(a, st->filenames, st->n_filenames);
		CHECK_MSG(strcmp(ad, c->addresses ? c->addresses : "") == 0,
			  "%s: addresses %s", c->name, ad);
		CHECK_MSG(strcmp(ur, c->urls ? c->urls : "") == 0,
			  "%s: urls %s", c->name, ur);
		CHECK_MSG(strcmp(fn, c->filenames ? c->filenames : "") == 0,
			  "%s: filenames %s", c->name, fn);
		if (c->thread)
			CHECK_STR(st->thread, c->thread);
		if (c->lang)
			CHECK_STR(st->lang, c->lang);
	}
}

static void test_attrs_and_ns(imp_arena_t *a)
{
	const char *x = "<message from='a@x.example/r' to='b@x.example' "
			"type='chat' id='m-1'><body>hi</body></message>";
	imp_stanza_t *st;
	char err[128];
	CHECK_INT(
		imp_stanza_parse(a, x, strlen(x), NULL, &st, err, sizeof(err)),
		IMP_OK);
	CHECK_STR(st->from, "a@x.example/r");
	CHECK_STR(st->to, "b@x.example");
	CHECK_STR(st->type, "chat");
	CHECK_STR(st->id, "m-1");
	CHECK_STR(st->name, "message");
	CHECK(st->thread == NULL);
	CHECK(st->fields[IMP_FIELD_BODY].present);
	CHECK(!st->fields[IMP_FIELD_SUBJECT].present);
	/* implied namespace, inherited by the children */
	CHECK_STR(st->root->ns, "jabber:client");
	CHECK_STR(st->root->first->ns, "jabber:client");

	/* xmlns="" really undeclares: <body/> is then not a stanza body */
	x = "<message><x xmlns=''><body>u</body></x></message>";
	CHECK_INT(
		imp_stanza_parse(a, x, strlen(x), NULL, &st, err, sizeof(err)),
		IMP_OK);
	CHECK(st->root->first->ns == NULL);
	CHECK(st->root->first->first->ns == NULL);
	CHECK_STR(st->fields[IMP_FIELD_OTHER].text, "u");
}

/* ---- malformed and hostile input ---------------------------------------- */

typedef struct bad_case_s {
	const char *name;
	const char *xml;
	size_t len; /* 0: strlen */
	imp_stanza_limits_t lim;
	const char *reason; /* substring of the error */
} bad_case_t;

static char *deep_xml(unsigned depth)
{
	size_t n = depth * 7 + 1;
	char *s = malloc(n);
	size_t o = 0;
	for (unsigned i = 0; i < depth; i++)
		o += (size_t)sprintf(s + o, "<a>");
	for (unsigned i = 0; i < depth; i++)
		o += (size_t)sprintf(s + o, "</a>");
	return s;
}

static void test_malformed(imp_arena_t *a)
{
	char *deep = deep_xml(1000);
	static const char nul[] = "<message><body>a\0b</body></message>";
	const bad_case_t cases[] = {
		{"mismatched",
		 "<message><body>x</message>",
		 0,
		 {0},
		 "line 1, column 19: mismatched tag"},
		{"unclosed", "<message><body>x", 0, {0}, "line 1, column 17"},
		{"invalid utf-8",
		 "<message><body>\xC3\x28</body></message>",
		 0,
		 {0},
		 "not well-formed"},
		{"overlong utf-8",
		 "<message><body>\xC0\xAF</body></message>",
		 0,
		 {0},
		 "line 1, column 16"},
		{"NUL byte", nul, sizeof(nul) - 1, {0}, "line 1"},
		{"doctype",
		 "<?xml version='1.0'?>\n<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
		 "<!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>\n"
		 "<message><body>&lol2;</body></message>",
		 0,
		 {0},
		 "DTD not allowed"},
		{"deep", deep, 0, {0}, "nested deeper than 64"},
		{"too big",
		 "<message><body>0123456789</body></message>",
		 0,
		 {.max_bytes = 20},
		 "exceeds the limit of 20 bytes"},
		{"attrs",
		 "<message a='1' b='2' c='3'/>",
		 0,
		 {.max_attrs = 2},
		 "more than 2 attributes"},
		{"nodes",
		 "<m><a/><b/><c/></m>",
		 0,
		 {.max_nodes = 3},
		 "more than 3 XML nodes"},
		{"two roots",
		 "<a/><b/>",
		 0,
		 {0},
		 "junk after document element"},
		{"empty", "", 0, {0}, "line 1"},
		{"text only", "hello", 0, {0}, "line 1"},
		{"undefined entity",
		 "<message><body>&nbsp;</body></message>",
		 0,
		 {0},
		 "undefined entity"},
		{"unbound prefix",
		 "<message><x:body/></message>",
		 0,
		 {0},
		 "unbound prefix"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		const bad_case_t *c = &cases[i];
		imp_stanza_t *st = (imp_stanza_t *)&st;
		char err[256];
		size_t len = c->len ? c->len : strlen(c->xml);
		int rc = imp_stanza_parse(a, c->xml, len, &c->lim, &st, err,
					  sizeof(err));
		CHECK_MSG(rc == IMP_ERR_PARSE, "%s: rc %d", c->name, rc);
		CHECK_MSG(st == NULL, "%s: out not cleared", c->name);
		CHECK_MSG(strstr(err, c->reason) != NULL,
			  "%s: err \"%s\", expected \"%s\"", c->name, err,
			  c->reason);
	}
	/* the limit is inclusive and depth 64 passes by default */
	free(deep);
	deep = deep_xml(64);
	imp_stanza_t *st;
	char err[128];
	CHECK_INT(imp_stanza_parse(a, deep, strlen(deep), NULL, &st, err,
				   sizeof(err)),
		  IMP_OK);
	free(deep);
	/* an encoding declaration does not switch away from UTF-8 */
	const char *x = "<?xml version='1.0' encoding='ISO-8859-1'?>"
			"<message><body>\xC3\xA9</body></message>";
	CHECK_INT(
		imp_stanza_parse(a, x, strlen(x), NULL, &st, err, sizeof(err)),
		IMP_OK);
	CHECK_STR(st->fields[IMP_FIELD_BODY].text, "\xC3\xA9");
}

/* ---- masking ------------------------------------------------------------- */

static const char *reserialize(imp_arena_t *a, const imp_stanza_t *st)
{
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	imp_stanza_serialize(st, &b);
	CHECK(!b.oom);
	return b.data ? b.data : "";
}

typedef struct mask_case_s {
	const char *name;
	const char *xml;
	imp_field_t field;
	const char *find; /* span to mask: first occurrence in the field */
	const char *want_field;
	const char *want_xml_part; /* must appear in the serialised XML */
	const char *not_in_xml;    /* must not appear */
} mask_case_t;

static const mask_case_t mask_cases[] = {
	{"split by entity", M("<body>pin 12&amp;34 ok</body>"), IMP_FIELD_BODY,
	 "12&34", "pin ***** ok", "<body>pin ***** ok</body>", "&amp;"},
	{"split by cdata", M("<body>pin 12<![CDATA[34]]>56 ok</body>"),
	 IMP_FIELD_BODY, "23", "pin 1**456 ok", "pin 1**456 ok", "CDATA"},
	{"across bodies", M("<body>abc</body><body xml:lang='de'>def</body>"),
	 IMP_FIELD_BODY, "c\nd", "ab***ef", "<body>ab*</body>", "abc"},
	{"xhtml spans",
	 M("<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
	   "xmlns='http://www.w3.org/1999/xhtml'><p>card <b>4111</b> 1111 "
	   "<i>x</i></p></body></html>"),
	 IMP_FIELD_XHTML, "4111 1111", "card ********* x",
	 "<p>card <b>****</b>***** <i>x</i></p>", "4111"},
	{"utf-8 snapped", M("<body>caf\xC3\xA9s</body>"), IMP_FIELD_BODY,
	 "\xA9", "caf**s", "<body>caf**s</body>", "\xC3"},
	{"status", "<presence><status>pw hunter2</status></presence>",
	 IMP_FIELD_STATUS, "hunter2", "pw *******", "<status>pw *******",
	 "hunter2"},
	{"other",
	 "<iq type='set' id='1'><q xmlns='urn:x'>ssn 078-05-1120</q></iq>",
	 IMP_FIELD_OTHER, "078-05-1120", "ssn ***********", "ssn ***********",
	 "1120"},
};

static void test_mask(imp_arena_t *a)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(mask_cases); i++) {
		const mask_case_t *c = &mask_cases[i];
		imp_stanza_t *st;
		char err[128];
		int rc = imp_stanza_parse(a, c->xml, strlen(c->xml), NULL, &st,
					  err, sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: %s", c->name, err);
		if (rc)
			continue;
		const char *t = st->fields[c->field].text;
		const char *p = strstr(t, c->find);
		CHECK_MSG(p != NULL, "%s: span not in \"%s\"", c->name, t);
		if (!p)
			continue;
		size_t s = (size_t)(p - t);
		size_t len_before = st->fields[c->field].len;
		CHECK_INT(imp_stanza_mask(st, c->field, s, s + strlen(c->find),
					  '*'),
			  IMP_OK);
		CHECK_INT(st->fields[c->field].len, len_before);
		CHECK_MSG(strcmp(t, c->want_field) == 0, "%s: field \"%s\"",
			  c->name, t);
		const char *x = reserialize(a, st);
		CHECK_MSG(strstr(x, c->want_xml_part) != NULL, "%s: xml %s",
			  c->name, x);
		CHECK_MSG(strstr(x, c->not_in_xml) == NULL, "%s: xml %s",
			  c->name, x);
		/* the masked stanza still parses, and to the masked text */
		imp_stanza_t *st2;
		rc = imp_stanza_parse(a, x, strlen(x), NULL, &st2, err,
				      sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: reparse: %s", c->name, err);
		/* separators ("\n" between bodies) are not in the DOM, so
		 * they come back; every other byte must be as masked */
		if (rc == IMP_OK) {
			const imp_ftext_t *f2 = &st2->fields[c->field];
			bool same = f2->len == strlen(c->want_field);
			for (size_t k = 0; same && k < f2->len; k++)
				same = f2->text[k] == c->want_field[k] ||
				       (f2->text[k] == '\n' &&
					c->want_field[k] == '*');
			CHECK_MSG(same, "%s: reparsed \"%s\"", c->name,
				  f2->text);
		}
	}
	/* out-of-range and empty spans are harmless */
	const char *x = M("<body>abc</body>");
	imp_stanza_t *st;
	char err[64];
	CHECK_INT(
		imp_stanza_parse(a, x, strlen(x), NULL, &st, err, sizeof(err)),
		IMP_OK);
	CHECK_INT(imp_stanza_mask(st, IMP_FIELD_BODY, 2, 100, '#'), IMP_OK);
	CHECK_STR(st->fields[IMP_FIELD_BODY].text, "ab#");
	CHECK_INT(imp_stanza_mask(st, IMP_FIELD_BODY, 5, 9, '#'), IMP_OK);
	CHECK_INT(imp_stanza_mask(st, IMP_FIELD_SUBJECT, 0, 3, '#'), IMP_OK);
	CHECK_INT(imp_stanza_mask(st, (imp_field_t)9, 0, 3, '#'),
		  IMP_ERR_INVALID);
}

/* ---- serialisation round trip ---------------------------------------------- */

static bool same_facts(imp_arena_t *a, const imp_stanza_t *x,
		       const imp_stanza_t *y)
{
	bool ok = x->kind == y->kind && x->ft == y->ft && x->e2ee == y->e2ee &&
		  x->hints == y->hints && x->correction == y->correction;
	for (int f = 0; f < IMP_FIELD_COUNT; f++)
		ok = ok && strcmp(x->fields[f].text, y->fields[f].text) == 0 &&
		     x->fields[f].present == y->fields[f].present;
	ok = ok && strcmp(join(a, x->addresses, x->n_addresses),
			  join(a, y->addresses, y->n_addresses)) == 0;
	ok = ok && strcmp(join(a, x->urls, x->n_urls),
			  join(a, y->urls, y->n_urls)) == 0;
	ok = ok && strcmp(join(a, x->filenames, x->n_filenames),
			  join(a, y->filenames, y->n_filenames)) == 0;
#define SAME(s) ((!x->s && !y->s) || (x->s && y->s && !strcmp(x->s, y->s)))
	ok = ok && SAME(type) && SAME(id) && SAME(from) && SAME(to) &&
	     SAME(lang) && SAME(thread) && SAME(name);
#undef SAME
	return ok;
}

static void test_roundtrip(imp_arena_t *a)
{
	for (size_t i = 0; i < IMP_ARRAY_LEN(fact_cases); i++) {
		const fact_case_t *c = &fact_cases[i];
		imp_stanza_t *st, *st2, *st3;
		char err[256];
		if (imp_stanza_parse(a, c->xml, strlen(c->xml), NULL, &st, err,
				     sizeof(err)) != IMP_OK)
			continue;
		const char *x1 = reserialize(a, st);
		int rc = imp_stanza_parse(a, x1, strlen(x1), NULL, &st2, err,
					  sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: %s in %s", c->name, err, x1);
		if (rc)
			continue;
		CHECK_MSG(same_facts(a, st, st2), "%s: facts differ: %s",
			  c->name, x1);
		/* a fixed point after one round */
		const char *x2 = reserialize(a, st2);
		CHECK_MSG(strcmp(x1, x2) == 0, "%s: %s != %s", c->name, x1, x2);
		(void)st3;
	}
	/* namespaces: implied stays implied, undeclaration and prefixes
	 * survive, attribute namespaces get a prefix, escaping is right */
	static const struct {
		const char *in, *out;
	} exact[] = {
		{"<message><body>a</body></message>",
		 "<message><body>a</body></message>"},
		{"<message xmlns='jabber:server'><body>a</body></message>",
		 "<message xmlns=\"jabber:server\"><body>a</body></message>"},
		{"<iq xmlns=''/>", "<iq xmlns=\"\"/>"},
		{"<ns0:x xmlns:ns0='urn:a' xmlns:q='urn:b' q:z='1'/>",
		 "<ns0:x xmlns:ns0=\"urn:a\" xmlns:ns1=\"urn:b\" "
		 "ns1:z=\"1\"/>"},
		{"<message><x xmlns=''><y/></x></message>",
		 "<message><x xmlns=\"\"><y/></x></message>"},
		{"<message xml:lang='en'><q:x xmlns:q='urn:q' q:a='1' "
		 "xmlns:r='urn:r' r:b='&quot;&lt;'/></message>",
		 "<message xml:lang=\"en\"><q:x xmlns:q=\"urn:q\" "
		 "xmlns:ns0=\"urn:r\" q:a=\"1\" ns0:b=\"&quot;&lt;\"/>"
		 "</message>"},
		{"<message><body>&lt;b&gt; &amp; \"q\"\r\n</body></message>",
		 "<message><body>&lt;b&gt; &amp; \"q\"\n</body></message>"},
		{"<iq xmlns='jabber:client' type='get'><query "
		 "xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>",
		 "<iq xmlns=\"jabber:client\" type=\"get\"><query "
		 "xmlns=\"jabber:iq:roster\"><item jid=\"a@b\"/></query></iq>"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(exact); i++) {
		imp_stanza_t *st;
		char err[128];
		int rc = imp_stanza_parse(a, exact[i].in, strlen(exact[i].in),
					  NULL, &st, err, sizeof(err));
		CHECK_MSG(rc == IMP_OK, "exact %zu: %s", i, err);
		if (rc)
			continue;
		CHECK_STR(reserialize(a, st), exact[i].out);
	}
}

/* ---- fixture files --------------------------------------------------------- */

typedef struct fixture_s {
	const char *file;
	unsigned kind, ft, e2ee;
	const char *body_part;
} fixture_t;

static void test_fixtures(imp_arena_t *a)
{
	static const fixture_t fx[] = {
		{"conversations-upload.xml", IMP_KIND_IQ, IMP_FT_UPLOAD, 0,
		 NULL},
		{"conversations-omemo.xml", IMP_KIND_MESSAGE, 0,
		 IMP_E2E_OMEMO | IMP_E2E_HINT, "OMEMO"},
		{"gajim-xhtml.xml", IMP_KIND_MESSAGE, 0, 0, "quarterly"},
		{"dino-jingle-ft.xml", IMP_KIND_IQ, IMP_FT_JINGLE, 0, NULL},
	};
	const char *src = getenv("IMP_SOURCE_DIR");
	for (size_t i = 0; i < IMP_ARRAY_LEN(fx); i++) {
		char path[1024];
		/* ctest runs us in tests/unit with IMP_SOURCE_DIR set */
		snprintf(path, sizeof(path), "%s%sdata/stanzas/%s",
			 src ? src : "", src ? "/tests/unit/" : "", fx[i].file);
		char *buf;
		size_t len;
		char err[256];
		int rc = imp_read_file(ctx, path, 1 << 20, &buf, &len, err,
				       sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: %s", path, err);
		if (rc)
			continue;
		imp_stanza_t *st;
		rc = imp_stanza_parse(a, buf, len, NULL, &st, err, sizeof(err));
		CHECK_MSG(rc == IMP_OK, "%s: %s", fx[i].file, err);
		if (rc == IMP_OK) {
			CHECK_INT(st->kind, fx[i].kind);
			CHECK_INT(st->ft, fx[i].ft);
			CHECK_INT(st->e2ee, fx[i].e2ee);
			if (fx[i].body_part)
				CHECK(strstr(st->fields[IMP_FIELD_BODY].text,
					     fx[i].body_part) != NULL);
		}
		imp_mfree(ctx, buf);
	}
}

/* ---- imp_xml_split ----------------------------------------------------------- */

typedef struct split_rec_s {
	size_t n;
	size_t off[8], len[8];
	unsigned line[8];
	const char *base;
	char err[256];
	unsigned err_line;
	int stop_after; /* return non-zero after this many; 0: never */
} split_rec_t;

static int split_cb(void *ud, const char *xml, size_t len, unsigned line,
		    const char *err)
{
	split_rec_t *r = ud;
	if (!xml) {
		snprintf(r->err, sizeof(r->err), "%s", err ? err : "?");
		r->err_line = line;
		return 0;
	}
	if (r->n < 8) {
		r->off[r->n] = (size_t)(xml - r->base);
		r->len[r->n] = len;
		r->line[r->n] = line;
	}
	r->n++;
	return r->stop_after && (int)r->n >= r->stop_after ? 1 : 0;
}

typedef struct split_case_s {
	const char *name;
	const char *buf;
	int rc;
	const char *stanzas[4]; /* each must be found in order, exactly */
	unsigned lines[4];
	const char *err; /* substring when rc != OK */
} split_case_t;

static void test_split(void)
{
	static const split_case_t cases[] = {
		{"empty", "", IMP_OK, {NULL}, {0}, NULL},
		{"whitespace", " \n\t ", IMP_OK, {NULL}, {0}, NULL},
		{"one",
		 "<message><body>a</body></message>",
		 IMP_OK,
		 {"<message><body>a</body></message>"},
		 {1},
		 NULL},
		{"three with decl, comments, empty element",
		 "<?xml version='1.0' encoding='UTF-8'?>\n"
		 "<!-- capture -->\n"
		 "<message to='a'><body>x &amp; y</body></message>\n"
		 "  <presence/><!-- c -->\n"
		 "<iq type='get'\n id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		 IMP_OK,
		 {"<message to='a'><body>x &amp; y</body></message>",
		  "<presence/>",
		  "<iq type='get'\n id='1'><ping xmlns='urn:xmpp:ping'/></iq>"},
		 {3, 4, 5},
		 NULL},
		{"decl on same line",
		 "<?xml version='1.0'?><a/><b>\n</b>",
		 IMP_OK,
		 {"<a/>", "<b>\n</b>"},
		 {1, 1},
		 NULL},
		{"stream prefix unbound",
		 "<stream:error><x/></stream:error>",
		 IMP_OK,
		 {"<stream:error><x/></stream:error>"},
		 {1},
		 NULL},
		{"malformed tail",
		 "<message><body>ok</body></message>\n<message><body>bad"
		 "</message>",
		 IMP_ERR_PARSE,
		 {"<message><body>ok</body></message>"},
		 {1},
		 "line 2, column 21: mismatched tag"},
		{"unclosed tail",
		 "<a/>\n<b><c>",
		 IMP_ERR_PARSE,
		 {"<a/>"},
		 {1},
		 "unclosed element"},
		/* Found by fuzz_stanza: an element named like the
		 * splitter's own wrapper, left open, was closed by the
		 * wrapper's end tag and reported past the buffer. */
		{"open element named like the wrapper",
		 "<w>]",
		 IMP_ERR_PARSE,
		 {NULL},
		 {0},
		 "not closed at end of input"},
		{"stanza, then open wrapper-named element",
		 "<a/><w><x/>",
		 IMP_ERR_PARSE,
		 {"<a/>"},
		 {1},
		 "not closed at end of input"},
		{"text between",
		 "<a/> junk <b/>",
		 IMP_ERR_PARSE,
		 {"<a/>"},
		 {1},
		 "line 1, column 5: text outside a stanza"},
		{"doctype",
		 "<!DOCTYPE x><a/>",
		 IMP_ERR_PARSE,
		 {NULL},
		 {0},
		 "line 1"},
		{"bad utf-8",
		 "<a/>\n<b>\xFF</b>",
		 IMP_ERR_PARSE,
		 {"<a/>"},
		 {1},
		 "line 2, column 4"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		const split_case_t *c = &cases[i];
		split_rec_t r;
		memset(&r, 0, sizeof(r));
		r.base = c->buf;
		int rc = imp_xml_split(ctx, c->buf, strlen(c->buf), split_cb,
				       &r);
		CHECK_MSG(rc == c->rc, "%s: rc %d (%s)", c->name, rc, r.err);
		size_t want = 0;
		while (want < 4 && c->stanzas[want])
			want++;
		CHECK_MSG(r.n == want, "%s: %zu stanzas", c->name, r.n);
		for (size_t k = 0; k < want && k < r.n; k++) {
			const char *exp = c->stanzas[k];
			const char *at = strstr(c->buf, exp);
			CHECK_MSG(at && r.off[k] == (size_t)(at - c->buf) &&
					  r.len[k] == strlen(exp),
				  "%s: stanza %zu at %zu+%zu", c->name, k,
				  r.off[k], r.len[k]);
			CHECK_MSG(r.line[k] == c->lines[k], "%s: line %u",
				  c->name, r.line[k]);
		}
		if (c->err)
			CHECK_MSG(strstr(r.err, c->err) != NULL,
				  "%s: err \"%s\"", c->name, r.err);
		else
			CHECK_MSG(r.err[0] == '\0', "%s: err \"%s\"", c->name,
				  r.err);
	}
	/* a callback can stop the split */
	split_rec_t r;
	memset(&r, 0, sizeof(r));
	r.base = "<a/><b/><c/>";
	r.stop_after = 2;
	CHECK_INT(imp_xml_split(ctx, r.base, strlen(r.base), split_cb, &r),
		  IMP_OK);
	CHECK_INT(r.n, 2);
	/* deep nesting is fine for the splitter (iterative parser) */
	char *deep = deep_xml(20000);
	memset(&r, 0, sizeof(r));
	r.base = deep;
	CHECK_INT(imp_xml_split(ctx, deep, strlen(deep), split_cb, &r), IMP_OK);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.len[0], strlen(deep));
	free(deep);
	CHECK_INT(imp_xml_split(ctx, "x", 1, NULL, NULL), IMP_ERR_INVALID);
}

/* ---- the reusable parser and the fast path ---------------------------------- */

/* A canonical dump of everything a parse gives: the re-serialised DOM,
 * the facts, every field with its segments, and every node's namespace,
 * name, prefix and attributes (namespaces by value). */
static const char *dump(imp_arena_t *a, int rc, const char *err,
			const imp_stanza_t *st)
{
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	imp_buf_printf(&b, "rc=%d", rc);
	if (rc != IMP_OK || !st) {
		imp_buf_printf(&b, " err=%s", err);
		return b.data;
	}
	imp_stanza_serialize(st, &b);
	imp_buf_printf(&b, "|k=%u ft=%u e=%u h=%u c=%d|%s|%s|%s|%s|%s|%s",
		       st->kind, st->ft, st->e2ee, st->hints, st->correction,
		       st->type ? st->type : "-", st->id ? st->id : "-",
		       st->from ? st->from : "-", st->to ? st->to : "-",
		       st->lang ? st->lang : "-",
		       st->thread ? st->thread : "-");
	for (int f = 0; f < IMP_FIELD_COUNT; f++) {
		const imp_ftext_t *t = &st->fields[f];
		imp_buf_printf(&b, "|f%d %d [%s]", f, t->present, t->text);
		for (size_t i = 0; i < t->n_segs; i++)
			imp_buf_printf(&b, "(%u,%u,%u)", t->segs[i].field_off,
				       t->segs[i].node_off, t->segs[i].len);
	}
	imp_buf_printf(&b, "|%s|%s|%s", join(a, st->addresses, st->n_addresses),
		       join(a, st->urls, st->n_urls),
		       join(a, st->filenames, st->n_filenames));
	const imp_xnode_t *n = st->root;
	while (n) {
		if (n->type == IMP_XNODE_ELEM) {
			imp_buf_printf(&b, "|E %s %s %s", n->ns ? n->ns : "-",
				       n->name, n->prefix ? n->prefix : "-");
			for (size_t i = 0; i < n->n_attrs; i++)
				imp_buf_printf(
					&b, " %s:%s=%s",
					n->attrs[i].ns ? n->attrs[i].ns : "-",
					n->attrs[i].name, n->attrs[i].value);
		} else {
			imp_buf_printf(&b, "|T %zu [%s]", n->text_len, n->text);
		}
		if (n->first) {
			n = n->first;
			continue;
		}
		while (n && !n->next)
			n = n->parent;
		if (n)
			n = n->next;
	}
	return b.oom ? "(oom)" : b.data;
}

/* Pairs of stanzas with the same meaning: the first is in the subset the
 * fast path reads itself, the second has something only expat handles (a
 * comment, a CDATA section, a processing instruction, a carriage return,
 * an XML declaration), which is dropped or resolved to the same DOM.  Both must
 * give the same dump, so the fast path builds exactly what expat builds. */
static const struct {
	const char *fast, *expat;
} same_dom[] = {
	{"<message to='a@b' type='chat'><body>hi &amp; bye</body></message>",
	 "<message to='a@b' type='chat'><body>hi &amp; bye</body><!-- c -->"
	 "</message>"},
	{"<message xmlns='jabber:client' to='a@b'><body>a &lt;b&gt; "
	 "&#233;&#x1F600; \xC3\xA9</body></message>",
	 "<?xml version='1.0'?><message xmlns='jabber:client' to='a@b'>"
	 "<body>a <![CDATA[<b>]]> \xC3\xA9\xF0\x9F\x98\x80 \xC3\xA9</body>"
	 "</message>"},
	{"<message to='a@b'><body>x</body><request "
	 "xmlns='urn:xmpp:http:upload:0' filename='f.txt'/></message>",
	 "<message to='a@b'><body>x</body><request "
	 "xmlns='urn:xmpp:http:upload:0' filename='f.txt'><!-- -->"
	 "</request></message>"},
	{"<message to='a b'><body>l1\nl2</body></message>",
	 "<message to='a\tb'><body>l1\r\nl2</body></message>"},
	{"<message to=\"q'uote\" id='a\"b'><body xmlns=''>t</body>"
	 "<x xmlns='jabber:x:oob'><url>http://u/</url></x></message>",
	 "<message to=\"q'uote\" id='a&quot;b'><body xmlns=''>t</body>"
	 "<x xmlns='jabber:x:oob'><url><![CDATA[http://u/]]></url></x>"
	 "</message>"},
	{"<presence><status>away</status><show>dnd</show></presence>",
	 "<presence><status>away</status><show>dnd</show><?pi x?>"
	 "</presence>"},
	{"<message to='a@b'><html xmlns='http://jabber.org/protocol/xhtml-im'>"
	 "<body xmlns='http://www.w3.org/1999/xhtml'><p>hi <b>you</b></p>"
	 "</body></html></message>",
	 "<message to='a@b'><html "
	 "xmlns='http://jabber.org/protocol/xhtml-im'><body "
	 "xmlns='http://www.w3.org/1999/xhtml'><p><![CDATA[hi ]]><b>you</b>"
	 "</p></body></html></message>"},
};

static void test_parser_reuse(imp_arena_t *a)
{
	imp_stanza_parser_t *sp = imp_stanza_parser_new(ctx);
	CHECK(sp != NULL);
	if (!sp)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(same_dom); i++) {
		imp_stanza_t *s1 = NULL, *s2 = NULL;
		char e1[256], e2[256];
		int r1 = imp_stanza_parse(a, same_dom[i].fast,
					  strlen(same_dom[i].fast), NULL, &s1,
					  e1, sizeof(e1));
		int r2 = imp_stanza_parse(a, same_dom[i].expat,
					  strlen(same_dom[i].expat), NULL, &s2,
					  e2, sizeof(e2));
		CHECK_INT(r1, IMP_OK);
		CHECK_INT(r2, IMP_OK);
		const char *d1 = dump(a, r1, e1, s1);
		const char *d2 = dump(a, r2, e2, s2);
		CHECK_MSG(strcmp(d1, d2) == 0, "same_dom %zu:\n  %s\n  %s", i,
			  d1, d2);
	}
	/* One parser over a sequence that mixes good, malformed and
	 * namespace-heavy stanzas gives what a fresh parse gives for each:
	 * nothing (namespaces, errors, limits) leaks from one stanza into
	 * the next across resets. */
	static const char *const seq[] = {
		"<message to='a@b'><body>one</body></message>",
		"<m:x xmlns:m='jabber:client'><m:body>2</m:body></m:x>",
		"<message to='a@b'><body>three</message>",
		"<message to='a@b'><body>four</body></message>",
		"<!DOCTYPE x [<!ENTITY e 'x'>]><message/>",
		"<message xmlns='jabber:server'><body>five</body></message>",
		"<message><body>six</body></message>",
		"<message to='a@b'><body>a</body></message><junk/>",
		"",
		"<presence><status>seven</status></presence>",
	};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < IMP_ARRAY_LEN(seq); i++) {
			imp_stanza_t *s1 = NULL, *s2 = NULL;
			char e1[256], e2[256];
			int r1 = imp_stanza_parser_parse(sp, a, seq[i],
							 strlen(seq[i]), NULL,
							 &s1, e1, sizeof(e1));
			int r2 = imp_stanza_parse(a, seq[i], strlen(seq[i]),
						  NULL, &s2, e2, sizeof(e2));
			CHECK_INT(r1, r2);
			const char *d1 = dump(a, r1, e1, s1);
			const char *d2 = dump(a, r2, e2, s2);
			CHECK_MSG(strcmp(d1, d2) == 0,
				  "reuse %d/%zu:\n  %s\n  %s", round, i, d1,
				  d2);
		}
	}
	/* The limits apply on the fast path too (the handlers report them,
	 * then expat gives the reason). */
	imp_stanza_limits_t lim = {0, 2, 0, 0};
	imp_stanza_t *st = NULL;
	char err[256];
	const char *deep = "<message><x><y/></x></message>";
	CHECK_INT(imp_stanza_parser_parse(sp, a, deep, strlen(deep), &lim, &st,
					  err, sizeof(err)),
		  IMP_ERR_PARSE);
	CHECK(strstr(err, "nested deeper") != NULL);
	CHECK_INT(imp_stanza_parser_parse(NULL, a, deep, strlen(deep), NULL,
					  &st, err, sizeof(err)),
		  IMP_ERR_INVALID);
	imp_stanza_parser_free(sp);
	imp_stanza_parser_free(NULL);
}

int main(void)
{
	CHECK_INT(imp_ctx_new(NULL, &ctx), IMP_OK);
	imp_arena_t *a = imp_arena_new(ctx, 0);
	CHECK(a != NULL);
	test_facts(a);
	test_attrs_and_ns(a);
	test_malformed(a);
	imp_arena_reset(a);
	test_mask(a);
	test_roundtrip(a);
	test_fixtures(a);
	test_split();
	imp_arena_reset(a);
	test_parser_reuse(a);
	imp_arena_free(a);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
