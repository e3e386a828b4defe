/* tests/e2e/e2e_malformed.c -- hostile client input through c2s: a raw
 * TCP session (SASL PLAIN, no TLS, bind, session) sends odd but
 * well-formed stanzas, then broken XML, and a second one sends garbage
 * before authenticating.  The sm must keep running and keep judging the
 * other (libstrophe) clients. */
#include "e2e.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char inbuf[1 << 20];
static size_t inlen;

static int raw_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)e2e_c2s_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		e2e_fatal("raw connect to c2s failed");
	inlen = 0;
	return fd;
}

static void raw_send(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* closed by the server: fine */
		off += (size_t)w;
	}
}

/* Read until `want` appears in what was read since `from` (or ms pass,
 * or EOF); returns 1 when found, 0 on timeout, -1 on EOF. */
static int raw_wait(int fd, size_t from, const char *want, int ms)
{
	for (int waited = 0; waited <= ms; waited += 50) {
		inbuf[inlen] = 0;
		if (want && strstr(inbuf + from, want))
			return 1;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) > 0) {
			ssize_t r = recv(fd, inbuf + inlen,
					 sizeof inbuf - 1 - inlen, 0);
			if (r <= 0) {
				inbuf[inlen] = 0;
				return want && strstr(inbuf + from, want) ? 1
									  : -1;
			}
			inlen += (size_t)r;
		}
		if (ms > 0)
			e2e_pump(1);
	}
	inbuf[inlen] = 0;
	return want && strstr(inbuf + from, want) ? 1 : 0;
}

#define HDR                                                             \
	"<?xml version='1.0'?><stream:stream to='acme.example' "        \
	"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/" \
	"streams' version='1.0'>"

static int raw_login(void)
{
	int fd = raw_connect();
	raw_send(fd, HDR);
	if (raw_wait(fd, 0, "</stream:features>", 5000) != 1)
		e2e_fatal("raw: no stream features: %s", inbuf);
	/* base64("\0mal\0mal") */
	raw_send(fd, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
		     "mechanism='PLAIN'>AG1hbABtYWw=</auth>");
	if (raw_wait(fd, 0, "<success", 5000) != 1)
		e2e_fatal("raw: SASL PLAIN failed: %s", inbuf);
	size_t m = inlen;
	raw_send(fd, HDR);
	if (raw_wait(fd, m, "</stream:features>", 5000) != 1)
		e2e_fatal("raw: no features after auth: %s", inbuf + m);
	m = inlen;
	raw_send(fd, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:"
		     "xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>");
	if (raw_wait(fd, m, "</iq>", 5000) != 1 ||
	    !strstr(inbuf + m, "type='result'"))
		e2e_fatal("raw: bind failed: %s", inbuf + m);
	m = inlen;
	raw_send(fd, "<iq type='set' id='s1'><session xmlns='urn:ietf:"
		     "params:xml:ns:xmpp-session'/></iq>");
	raw_wait(fd, m, "s1", 3000);
	raw_send(fd, "<presence/>");
	return fd;
}

static void still_judging(e2e_client_t *a, e2e_client_t *b, const char *when)
{
	e2e_check(e2e_sm_alive(), "%s: the sm is running", when);
	const char *u = e2e_uid("ok");
	int b0 = b->n;
	e2e_send(a,
		 "<message to='bob@acme.example' type='chat' id='%s'><body>"
		 "fine %s</body></message>",
		 u, u);
	e2e_check(e2e_wait_for(b, b0, 5000, u, NULL) >= 0,
		  "%s: a clean message is delivered", when);
	u = e2e_uid("card");
	int a0 = a->n;
	b0 = b->n;
	e2e_send(a,
		 "<message to='bob@acme.example' type='chat' id='%s'><body>"
		 "card 4556 7375 8689 9855 %s</body></message>",
		 u, u);
	e2e_check(e2e_wait_for(a, a0, 5000, u, "<policy-violation", NULL) >= 0,
		  "%s: a card number is still refused", when);
	e2e_check(e2e_count(b, b0, u, NULL) == 0, "%s: bob got nothing of it",
		  when);
}

int main(void)
{
	e2e_init("malformed");
	e2e_pg_start();
	e2e_adduser("alice");
	e2e_adduser("bob");
	e2e_adduser("mal");
	e2e_stack_start(NULL, NULL);
	e2e_client_t *alice = e2e_connect("alice", "e2e");
	e2e_client_t *bob = e2e_connect("bob", "e2e");
	still_judging(alice, bob, "before");

	int fd = raw_login();
	static const char *hostile[] = {
		"<message/>",
		"<message to=''><body>empty to</body></message>",
		"<message to='@@@'><body>bad jid</body></message>",
		"<message to='bob@acme.example' from='bob@acme.example/x'>"
		"<body>spoofed sender</body></message>",
		"<message to='bob@acme.example' type='bogus'><body>odd type"
		"</body></message>",
		"<message to='bob@acme.example' type='error'><body>error "
		"without error</body></message>",
		"<message to='bob@acme.example'><body/><body/><body xml:lang="
		"'x'>two bodies</body><subject/><thread/></message>",
		"<message to='bob@acme.example'><body>&lt;script&gt;&amp;"
		"&#x1F600;&#233;\xe2\x80\x8b\xef\xbb\xbf</body></message>",
		"<message to='bob@acme.example'><html xmlns='http://jabber.org/"
		"protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/"
		"xhtml'><p><script>x</script><b><i><u>deep</u></i></b></p>"
		"</body></html></message>",
		"<message to='bob@acme.example'><x xmlns='jabber:x:oob'/>"
		"<request xmlns='urn:xmpp:http:upload:0'/></message>",
		"<iq type='set' id='n1'/>",
		"<iq type='get' id='n2' "
		"to='bob@acme.example/e2e'><a/><b/></iq>",
		"<iq type='result' id='n3' to='bob@acme.example/e2e'/>",
		"<iq type='error' id='n4' to='acme.example'/>",
		"<presence type='bogus' to='bob@acme.example'/>",
		"<presence to='nobody@acme.example' type='subscribe'/>",
		"<presence><priority>999999999999</priority></presence>",
		"<message to='bob@acme.example'><p:x xmlns:p='urn:x' p:a='1' "
		"a='2'><p:y/></p:x></message>",
		"<message "
		"to='bob@remote.example'><body>remote</body></message>",
		"<message to='acme.example'><body>to the server</body>"
		"</message>",
	};
	for (size_t k = 0; k < sizeof hostile / sizeof *hostile; k++)
		raw_send(fd, hostile[k]);
	/* Deep nesting and a large body. */
	{
		char *s = malloc(200000);
		strcpy(s, "<message to='bob@acme.example'>");
		for (int d = 0; d < 200; d++)
			strcat(s, "<x xmlns='urn:deep'>");
		for (int d = 0; d < 200; d++)
			strcat(s, "</x>");
		strcat(s, "<body>");
		size_t l = strlen(s);
		for (int k = 0; k < 60000; k++)
			s[l++] = "ab "[k % 3];
		s[l] = 0;
		strcat(s, "</body></message>");
		raw_send(fd, s);
		free(s);
	}
	raw_wait(fd, 0, NULL, 1500);
	still_judging(alice, bob, "after hostile well-formed stanzas");
	long n = e2e_sql_wait(
		1, 8000,
		"SELECT count(*) FROM impolicy.stanza WHERE from_bare = $1",
		"mal@acme.example", NULL);
	e2e_check(n >= 1, "the hostile session's stanzas were archived (%ld)",
		  n);
	n = e2e_sql_long("SELECT count(*) FROM impolicy.stanza WHERE "
			 "from_bare = $1 AND strpos(convert_from(raw_xml, "
			 "'UTF8'), 'spoofed sender') > 0 AND verdict = "
			 "'reject'",
			 "mal@acme.example", NULL);
	e2e_check(n == 1, "spoofed from: archived as reject (%ld)", n);
	n = e2e_sql_long("SELECT count(*) FROM impolicy.stanza WHERE "
			 "strpos(convert_from(raw_xml, 'UTF8'), 'spoofed "
			 "sender') > 0 AND 'unacceptable-use.impersonation' = "
			 "ANY (rule_ids)",
			 NULL);
	e2e_check(n == 1,
		  "spoofed from: rule unacceptable-use.impersonation "
		  "(%ld)",
		  n);

	/* Broken XML: the c2s ends the stream; nothing reaches the sm. */
	raw_send(fd, "<message to='bob@acme.example'><body>unclosed</message>"
		     "<<<&bogus;\x01\xff\xfe</stream:stream>");
	int r = raw_wait(fd, 0, "</stream:stream>", 3000);
	printf("# broken XML: server closed the stream: %s\n",
	       r != 0 ? "yes" : "no (timeout)");
	close(fd);

	/* Garbage before authentication, and a stream cut mid-stanza. */
	fd = raw_connect();
	raw_send(fd, "\x16\x03\x01\x02\x00GET / HTTP/1.1\r\n\r\n<<>>");
	raw_wait(fd, 0, NULL, 500);
	close(fd);
	fd = raw_login();
	raw_send(fd, "<message to='bob@acme.example'><body>cut off");
	close(fd);
	fd = raw_connect();
	raw_send(fd, HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
			 "mechanism='PLAIN'>!!!notbase64</auth>");
	raw_wait(fd, 0, NULL, 500);
	close(fd);
	e2e_pump(1000);
	still_judging(alice, bob, "after broken XML and garbage");
	e2e_stack_stop();
	char *log = e2e_sm_log();
	e2e_check(log && strstr(log, "impolicy: stats: judged="),
		  "the sm shut down cleanly (module stats logged)");
	free(log);
	return e2e_finish();
}
