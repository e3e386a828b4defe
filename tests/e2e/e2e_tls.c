/* tests/e2e/e2e_tls.c -- the quick start's promise that any client can log
 * in by trusting the local self-signed certificate: a stack started with
 * IMP_J2_TLS=1 (as contrib/quickstart.sh does) offers STARTTLS, clients
 * that require TLS and verify the certificate against etc/c2s.crt log in,
 * and what they send is judged and archived as over plain TCP. */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strophe.h>

int main(void)
{
	e2e_init("tls");
	e2e_pg_start();
	setenv("IMP_J2_TLS", "1", 1);
	e2e_adduser("alice");
	e2e_adduser("bob");
	e2e_stack_start(NULL, NULL);

	char crt[512];
	snprintf(crt, sizeof crt, "%s/j2/etc/c2s.crt", e2e_tmp);
	char *pem = e2e_read_file(crt);
	e2e_check(pem && strstr(pem, "BEGIN CERTIFICATE"),
		  "the stack wrote its certificate to etc/c2s.crt");
	free(pem);

	e2e_client_t *a = e2e_connect_tls("alice", "tls", crt);
	e2e_client_t *b = e2e_connect_tls("bob", "tls", crt);
	e2e_check(xmpp_conn_is_secured(a->conn) &&
			  xmpp_conn_is_secured(b->conn),
		  "both sessions run over verified TLS");

	const char *uid = e2e_uid("tls");
	e2e_send(a,
		 "<message to='bob@" E2E_DOMAIN "' type='chat' id='%s'>"
		 "<body>quarterly numbers attached %s</body></message>",
		 uid, uid);
	e2e_check(e2e_wait_for(b, 0, 5000, uid, NULL) >= 0,
		  "bob receives alice's message over TLS");
	e2e_check(e2e_sql_wait(1, 8000,
			       "SELECT count(*) FROM impolicy.stanza WHERE "
			       "verdict = 'allow' AND strpos(body, $1) > 0",
			       uid, NULL) == 1,
		  "the message is archived once, allowed");
	return e2e_finish();
}
