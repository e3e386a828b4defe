/* tests/e2e/e2e_schedule.c -- section 5 (Personal Use) of acme.yaml with
 * the sm's clock faked (libfaketime, sm process only; the policy's zone is
 * America/New_York, EST = UTC-5 in November): personal chat during work
 * hours outside the breaks is refused, during lunch it is delivered and
 * archived with the shorter retention class. */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE_UID "strpos(convert_from(raw_xml, 'UTF8'), $1) > 0"

int main(void)
{
	e2e_init("schedule");
	e2e_pg_start();
	e2e_adduser("alice");
	e2e_adduser("bob");
	/* Monday 2026-11-30 10:00 in New York: work hours, not a break. */
	e2e_set_clock("2026-11-30 15:00:00");
	e2e_stack_start(NULL, e2e_clock_env());
	e2e_client_t *alice = e2e_connect("alice", "e2e");
	e2e_client_t *bob = e2e_connect("bob", "e2e");

	const char *u = e2e_uid("work");
	int b0 = bob->n, s0 = alice->n;
	e2e_send(alice,
		 "<message to='bob@acme.example' type='chat' id='%s'><body>"
		 "how is your fantasy football team doing? %s</body>"
		 "</message>",
		 u, u);
	char idattr[128];
	snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
	int e = e2e_wait_for(alice, s0, 5000, idattr, "<policy-violation",
			     "Personal chat is allowed during breaks", NULL);
	e2e_check(e >= 0, "10:00 EST: personal chat refused with the notice");
	e2e_pump(300);
	e2e_check(e2e_count(bob, b0, u, NULL) == 0,
		  "10:00 EST: bob receives nothing");
	long n = e2e_sql_wait(
		1, 8000,
		"SELECT count(*) FROM impolicy.stanza WHERE " WHERE_UID
		" AND verdict = 'reject' AND "
		"'personal-use.outside-breaks' = ANY (rule_ids)",
		u, NULL);
	e2e_check(n == 1,
		  "10:00 EST: archived as reject, "
		  "personal-use.outside-breaks (%ld)",
		  n);
	char *ts = e2e_sql(
		"SELECT to_char(ts AT TIME ZONE 'America/New_York', "
		"'YYYY-MM-DD HH24') FROM impolicy.stanza WHERE " WHERE_UID,
		u, NULL);
	e2e_check(ts && !strcmp(ts, "2026-11-30 10"),
		  "the record's time is the sm's (faked) clock: %s",
		  ts ? ts : "none");
	free(ts);

	/* 12:15 in New York: lunch. */
	e2e_set_clock("2026-11-30 17:15:00");
	e2e_pump(200);
	u = e2e_uid("lunch");
	b0 = bob->n;
	s0 = alice->n;
	e2e_send(alice,
		 "<message to='bob@acme.example' type='chat' id='%s'><body>"
		 "how is your fantasy football team doing? %s</body>"
		 "</message>",
		 u, u);
	int i = e2e_wait_for(bob, b0, 5000, u, "fantasy football", NULL);
	e2e_check(i >= 0, "12:15 EST: personal chat delivered during lunch");
	e2e_check(e2e_count(alice, s0, "<policy-violation", NULL) == 0,
		  "12:15 EST: no error for alice");
	n = e2e_sql_wait(
		1, 8000,
		"SELECT count(*) FROM impolicy.stanza WHERE " WHERE_UID
		" AND verdict = 'allow' AND retention_class = '3y' AND "
		"'records.personal-in-breaks' = ANY (rule_ids)",
		u, NULL);
	e2e_check(n == 1, "12:15 EST: archived as allow, retention 3y (%ld)",
		  n);

	/* 13:30: back at work. */
	e2e_set_clock("2026-11-30 18:30:00");
	e2e_pump(200);
	u = e2e_uid("after");
	b0 = bob->n;
	s0 = alice->n;
	e2e_send(alice,
		 "<message to='bob@acme.example' type='chat' id='%s'><body>"
		 "fantasy football later? %s</body></message>",
		 u, u);
	snprintf(idattr, sizeof idattr, "id=\"%s\"", u);
	e = e2e_wait_for(alice, s0, 5000, idattr, "<policy-violation", NULL);
	e2e_check(e >= 0, "13:30 EST: personal chat refused again");
	e2e_pump(300);
	e2e_check(e2e_count(bob, b0, u, NULL) == 0,
		  "13:30 EST: bob receives nothing");
	return e2e_finish();
}
