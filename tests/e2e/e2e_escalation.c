/* tests/e2e/e2e_escalation.c -- Non-Compliance in acme.yaml: three
 * escalating violations within an hour suspend the sender's messages for
 * 30 minutes (compliance is told); the suspension lifts when the sm's
 * (faked) clock has moved past it. */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE_UID "strpos(convert_from(raw_xml, 'UTF8'), $1) > 0"

static void clean(e2e_client_t *from, e2e_client_t *to, const char *u)
{
	e2e_send(from,
		 "<message to='%s' type='chat' id='%s'><body>Status meeting "
		 "moved to Thursday, ref %s.</body></message>",
		 to->bare, u, u);
}

int main(void)
{
	e2e_init("escalation");
	e2e_pg_start();
	e2e_adduser("mallory");
	e2e_adduser("bob");
	e2e_adduser("compliance");
	/* Monday 2026-11-30 09:00 EST */
	e2e_set_clock("2026-11-30 14:00:00");
	e2e_stack_start(NULL, e2e_clock_env());
	e2e_client_t *m = e2e_connect("mallory", "e2e");
	e2e_client_t *bob = e2e_connect("bob", "e2e");
	e2e_client_t *comp = e2e_connect("compliance", "e2e");

	const char *u = e2e_uid("pre");
	int b0 = bob->n;
	clean(m, bob, u);
	e2e_check(e2e_wait_for(bob, b0, 5000, u, NULL) >= 0,
		  "before: mallory's clean message is delivered");

	for (int k = 0; k < 3; k++) {
		u = e2e_uid("viol");
		int s0 = m->n;
		e2e_send(m,
			 "<message to='bob@acme.example' type='chat' id='%s'>"
			 "<body>card 4556 7375 8689 9855 %s</body></message>",
			 u, u);
		char idattr[128];
		snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
		e2e_check(e2e_wait_for(m, s0, 5000, idattr, "<policy-violation",
				       "Card numbers", NULL) >= 0,
			  "violation %d refused", k + 1);
	}
	int c0 = comp->n;
	u = e2e_uid("susp");
	b0 = bob->n;
	int s0 = m->n;
	clean(m, bob, u);
	char idattr[128];
	snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
	e2e_check(e2e_wait_for(m, s0, 5000, idattr, "<policy-violation",
			       "suspended for 30 minutes", NULL) >= 0,
		  "suspended: a clean message is refused with the suspension "
		  "notice");
	e2e_pump(300);
	e2e_check(e2e_count(bob, b0, u, NULL) == 0,
		  "suspended: bob receives nothing");
	long n = e2e_sql_wait(
		1, 8000,
		"SELECT count(*) FROM impolicy.stanza WHERE " WHERE_UID
		" AND verdict = 'reject' AND "
		"'escalation.suspended' = ANY (rule_ids)",
		u, NULL);
	e2e_check(n == 1, "suspended: archived as escalation.suspended (%ld)",
		  n);
	e2e_check(e2e_wait_for(comp, 0, 3000, "mallory@acme.example", NULL) >=
			  0,
		  "compliance is told about mallory");
	(void)c0;
	/* Other users are not affected. */
	u = e2e_uid("bob");
	int a0 = m->n;
	clean(bob, m, u);
	e2e_check(e2e_wait_for(m, a0, 5000, u, "<body>", NULL) >= 0,
		  "bob still talks to mallory");

	/* 20 minutes later: still suspended. */
	e2e_set_clock("2026-11-30 14:20:00");
	e2e_pump(200);
	u = e2e_uid("still");
	s0 = m->n;
	clean(m, bob, u);
	snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
	e2e_check(e2e_wait_for(m, s0, 5000, idattr, "<policy-violation",
			       "suspended", NULL) >= 0,
		  "+20 min: still suspended");

	/* 35 minutes after the suspension: lifted. */
	e2e_set_clock("2026-11-30 14:40:00");
	e2e_pump(200);
	u = e2e_uid("lifted");
	b0 = bob->n;
	s0 = m->n;
	clean(m, bob, u);
	e2e_check(e2e_wait_for(bob, b0, 5000, u, NULL) >= 0,
		  "+40 min: the suspension is lifted, bob receives the "
		  "message");
	e2e_check(e2e_count(m, s0, "<policy-violation", NULL) == 0,
		  "+40 min: no error for mallory");
	n = e2e_sql_wait(1, 8000,
			 "SELECT count(*) FROM impolicy.stanza WHERE " WHERE_UID
			 " AND verdict = 'allow'",
			 u, NULL);
	e2e_check(n == 1, "+40 min: archived as allow (%ld)", n);
	return e2e_finish();
}
