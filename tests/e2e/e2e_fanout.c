/* tests/e2e/e2e_fanout.c -- 5. Personal Use, mass mailings: the same text
 * to 10 people within 10 minutes is refused from the 10th recipient on
 * (personal-use.fanout); an XEP-0033 multicast with 10 addresses is
 * refused outright (personal-use.mass-mailing). */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT "Reply now for a free team lunch voucher!"

int main(void)
{
	e2e_init("fanout");
	e2e_pg_start();
	e2e_adduser("paula");
	e2e_adduser("quinn");
	char node[32];
	for (int k = 1; k <= 11; k++) {
		snprintf(node, sizeof node, "user%02d", k);
		e2e_adduser(node);
	}
	e2e_stack_start(NULL, NULL);
	e2e_client_t *paula = e2e_connect("paula", "e2e");
	e2e_client_t *quinn = e2e_connect("quinn", "e2e");
	e2e_client_t *u[12];
	for (int k = 1; k <= 11; k++) {
		snprintf(node, sizeof node, "user%02d", k);
		u[k] = e2e_connect(node, "e2e");
	}

	int before[12];
	for (int k = 1; k <= 11; k++)
		before[k] = u[k]->n;
	int p0 = paula->n;
	for (int k = 1; k <= 11; k++) {
		e2e_send(paula,
			 "<message to='%s' type='chat' id='fo%d'><body>" TEXT
			 "</body></message>",
			 u[k]->bare, k);
		e2e_pump(50);
	}
	e2e_pump(1000);
	int delivered = 0;
	for (int k = 1; k <= 9; k++)
		delivered += e2e_count(u[k], before[k], TEXT, NULL) == 1;
	e2e_check(delivered == 9,
		  "fan-out: recipients 1-9 get the message "
		  "(%d)",
		  delivered);
	for (int k = 10; k <= 11; k++) {
		e2e_check(e2e_count(u[k], before[k], TEXT, NULL) == 0,
			  "fan-out: recipient %d gets nothing", k);
		char idattr[32];
		snprintf(idattr, sizeof idattr, "id=\"fo%d\"", k);
		e2e_check(e2e_wait_for(paula, p0, 3000, idattr,
				       "<policy-violation",
				       "Sending the same message to many "
				       "people",
				       NULL) >= 0,
			  "fan-out: paula gets policy-violation for recipient "
			  "%d",
			  k);
	}
	long n = e2e_sql_wait(11, 8000,
			      "SELECT count(*) FROM impolicy.stanza WHERE "
			      "from_bare = $1 AND body = $2",
			      "paula@acme.example", TEXT, NULL);
	e2e_check(n == 11, "fan-out: all 11 attempts archived (%ld)", n);
	n = e2e_sql_long("SELECT count(*) FROM impolicy.stanza WHERE "
			 "from_bare = $1 AND body = $2 AND verdict = 'reject' "
			 "AND 'personal-use.fanout' = ANY (rule_ids)",
			 "paula@acme.example", TEXT, NULL);
	e2e_check(n == 2,
		  "fan-out: 2 archived as reject, personal-use.fanout "
		  "(%ld)",
		  n);
	n = e2e_sql_long("SELECT count(*) FROM impolicy.stanza WHERE "
			 "from_bare = $1 AND body = $2 AND verdict = 'allow'",
			 "paula@acme.example", TEXT, NULL);
	e2e_check(n == 9, "fan-out: 9 archived as allow (%ld)", n);

	/* XEP-0033 multicast to 10 addresses. */
	char msg[4096] = "<message to='acme.example' id='mc1'><addresses "
			 "xmlns='http://jabber.org/protocol/address'>";
	for (int k = 1; k <= 10; k++) {
		char a[400];
		snprintf(a, sizeof a, "<address type='to' jid='%s'/>",
			 u[k]->bare);
		strcat(msg, a);
	}
	strcat(msg, "</addresses><body>Team update for everyone</body>"
		    "</message>");
	int q0 = quinn->n;
	e2e_send(quinn, "%s", msg);
	e2e_check(e2e_wait_for(
			  quinn, q0, 5000, "id=\"mc1\"", "<policy-violation",
			  "Mass mailings over IM are not allowed", NULL) >= 0,
		  "multicast: quinn gets policy-violation");
	n = e2e_sql_wait(1, 8000,
			 "SELECT count(*) FROM impolicy.stanza WHERE from_bare "
			 "= $1 AND verdict = 'reject' AND "
			 "'personal-use.mass-mailing' = ANY (rule_ids)",
			 "quinn@acme.example", NULL);
	e2e_check(n == 1,
		  "multicast: archived as reject, "
		  "personal-use.mass-mailing (%ld)",
		  n);
	int any = 0;
	for (int k = 1; k <= 10; k++)
		any += e2e_count(u[k], 0, "Team update", NULL);
	e2e_check(any == 0, "multicast: no recipient got it (%d)", any);
	return e2e_finish();
}
