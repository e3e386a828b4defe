/* tests/e2e/e2e_ops.c -- operations: the policy replaced under traffic
 * (atomic rename; every stanza judged by exactly one of the two policies,
 * none lost), a broken replacement (old policy kept, every error in the
 * sm's log), and PostgreSQL stopped mid-conversation and restarted (no
 * record lost, the hash chain verifies). */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char v1[] = "policy:\n"
			 "  name: \"e2e-reload\"\n"
			 "  version: \"1\"\n"
			 "  timezone: UTC\n"
			 "  local_domains: [acme.example]\n"
			 "lists:\n"
			 "  fruit: { words: [bananas], categories: [fruit] }\n"
			 "rules:\n"
			 "  - id: fruit.no-bananas\n"
			 "    section: \"F. Fruit\"\n"
			 "    when: { category: fruit }\n"
			 "    action: reject\n"
			 "    escalate: false\n"
			 "    notice: \"No bananas (v1).\"\n";

static char *policy_v(const char *ver, const char *action)
{
	char *s = strdup(v1);
	char *p = strstr(s, "\"1\"");
	p[1] = ver[0];
	if (!strcmp(action, "flag")) {
		p = strstr(s, "action: reject");
		memcpy(p, "action: flag  ", 14);
	}
	return s;
}

#define PREFIX_COUNT                                                       \
	"SELECT count(*) FROM impolicy.stanza WHERE kind = 'message' AND " \
	"starts_with(body, $1)"

int main(void)
{
	e2e_init("ops");
	e2e_pg_start();
	e2e_adduser("alice");
	e2e_adduser("bob");
	char pol[600];
	snprintf(pol, sizeof pol, "%s/policy.yaml", e2e_tmp);
	char *p1 = policy_v("1", "reject");
	e2e_write_file(pol, p1);
	free(p1);
	char *xml = e2e_default_xml(pol, NULL);
	e2e_stack_start(xml, NULL);
	free(xml);
	e2e_client_t *alice = e2e_connect("alice", "e2e");
	e2e_client_t *bob = e2e_connect("bob", "e2e");

	/* ---- reload under traffic ----------------------------------- */
	const int total = 150;
	int b0 = bob->n, a0 = alice->n;
	for (int k = 0; k < total; k++) {
		e2e_send(alice,
			 "<message to='bob@acme.example' type='chat' "
			 "id='rl-%d'><body>rl-%03d bananas for lunch</body>"
			 "</message>",
			 k, k);
		if (k == 50) {
			char *p2 = policy_v("2", "flag");
			e2e_write_file(pol, p2);
			free(p2);
			printf("# policy v2 (flag) swapped in after message "
			       "%d\n",
			       k);
		}
		e2e_pump(20);
	}
	e2e_pump(1500);
	int delivered = e2e_count(bob, b0, "bananas for lunch", NULL);
	int refused = e2e_count(alice, a0, "type=\"error\"",
				"<policy-violation", "No bananas (v1)", NULL);
	printf("# delivered %d, refused %d\n", delivered, refused);
	e2e_check(delivered + refused == total,
		  "reload: every message delivered or refused (%d + %d = %d)",
		  delivered, refused, total);
	e2e_check(refused >= 40 && delivered >= 10,
		  "reload: both policies judged traffic (refused %d, "
		  "delivered %d)",
		  refused, delivered);
	long n = e2e_sql_wait(total, 10000, PREFIX_COUNT, "rl-", NULL);
	e2e_check(n == total, "reload: %ld of %d messages archived", n, total);
	n = e2e_sql_long("SELECT count(DISTINCT policy_digest) FROM "
			 "impolicy.stanza WHERE starts_with(body, $1)",
			 "rl-", NULL);
	e2e_check(n == 2, "reload: two policy digests in the archive (%ld)", n);
	n = e2e_sql_long("SELECT count(*) FROM (SELECT policy_digest FROM "
			 "impolicy.stanza WHERE starts_with(body, $1) GROUP BY "
			 "policy_digest HAVING count(DISTINCT verdict) > 1) x",
			 "rl-", NULL);
	e2e_check(n == 0, "reload: one verdict per policy digest (%ld mixed)",
		  n);
	n = e2e_sql_long(
		"SELECT count(*) FROM impolicy.stanza WHERE starts_with(body, "
		"$1) AND ((verdict = 'reject' AND 'fruit.no-bananas' = ANY "
		"(rule_ids)) OR (verdict = 'flag' AND 'fruit.no-bananas' = ANY "
		"(rule_ids)))",
		"rl-", NULL);
	e2e_check(n == total,
		  "reload: each record rejected (v1) or "
		  "flagged (v2) by the rule (%ld)",
		  n);
	n = e2e_sql_long("SELECT (max(seq) FILTER (WHERE verdict = 'reject') "
			 "< min(seq) FILTER (WHERE verdict = 'flag'))::int "
			 "FROM impolicy.stanza WHERE starts_with(body, $1)",
			 "rl-", NULL);
	e2e_check(n == 1, "reload: the switch is atomic (all v1 records "
			  "before all v2 records)");
	n = e2e_sql_long("SELECT count(*) FROM impolicy.stanza WHERE "
			 "starts_with(body, $1) AND verdict = 'flag'",
			 "rl-", NULL);
	e2e_check(n == delivered,
		  "reload: flagged records (%ld) == "
		  "delivered messages (%d)",
		  n, delivered);
	char *log = e2e_sm_log();
	e2e_check(log && strstr(log, "impolicy: policy e2e-reload 2 loaded"),
		  "reload: the sm log names the new policy");
	free(log);

	/* ---- broken replacement ------------------------------------- */
	e2e_write_file(pol, "policy:\n  name: \"e2e-reload\"\n  version: "
			    "\"3\"\nrules:\n  - id: broken\n    when: { "
			    "category: nosuchlist }\n    action: explode\n");
	e2e_pump(2500);
	log = e2e_sm_log();
	e2e_check(log && strstr(log, "impolicy: policy error: "),
		  "broken: errors logged with the policy prefix");
	e2e_check(log && strstr(log, "policy.yaml:"),
		  "broken: the error names the file and line");
	e2e_check(log && strstr(log, "impolicy: keeping the previous policy"),
		  "broken: the previous policy is kept");
	free(log);
	b0 = bob->n;
	e2e_send(alice, "<message to='bob@acme.example' type='chat' "
			"id='after-broken'><body>bananas after the broken "
			"file</body></message>");
	e2e_check(e2e_wait_for(bob, b0, 5000, "after-broken", NULL) >= 0,
		  "broken: v2 still in force (bananas delivered)");
	n = e2e_sql_wait(1, 8000,
			 "SELECT count(*) FROM impolicy.stanza WHERE "
			 "starts_with(body, $1) AND verdict = 'flag'",
			 "bananas after the broken", NULL);
	e2e_check(n == 1, "broken: judged by v2 (flag) (%ld)", n);

	/* ---- PostgreSQL stopped mid-conversation -------------------- */
	const int half = 30;
	b0 = bob->n;
	for (int k = 0; k < half; k++)
		e2e_send(alice,
			 "<message to='bob@acme.example' type='chat' "
			 "id='pg-%d'><body>pg-%03d status update</body>"
			 "</message>",
			 k, k);
	n = e2e_sql_wait(half, 10000, PREFIX_COUNT, "pg-", NULL);
	e2e_check(n == half, "pg: first %d messages archived (%ld)", half, n);
	e2e_pg_stop();
	printf("# PostgreSQL stopped\n");
	for (int k = half; k < 2 * half; k++) {
		e2e_send(alice,
			 "<message to='bob@acme.example' type='chat' "
			 "id='pg-%d'><body>pg-%03d status update</body>"
			 "</message>",
			 k, k);
		e2e_pump(20);
	}
	e2e_pump(3000);
	int got_down = e2e_count(bob, b0, "status update", NULL);
	printf("# bob has %d of %d messages while PostgreSQL is down\n",
	       got_down, 2 * half);
	if (e2e_pg_restart() != 0)
		e2e_fatal("PostgreSQL did not restart");
	printf("# PostgreSQL restarted\n");
	n = e2e_sql_wait(2 * half, 60000, PREFIX_COUNT, "pg-", NULL);
	e2e_check(n == 2 * half,
		  "pg: every message archived after the restart (%ld of %d)", n,
		  2 * half);
	n = e2e_sql_long("SELECT count(DISTINCT body) FROM impolicy.stanza "
			 "WHERE starts_with(body, $1)",
			 "pg-", NULL);
	e2e_check(n == 2 * half, "pg: no duplicates (%ld distinct)", n);
	e2e_pump(2000);
	int got = e2e_count(bob, b0, "status update", NULL);
	e2e_check(got == 2 * half, "pg: bob received all %d messages (%d)",
		  2 * half, got);
	int rc = e2e_sh("'%s' verify --dsn '%s' --node e2e >'%s/verify.out' "
			"2>&1",
			e2e_ctl, e2e_pg_dsn, e2e_tmp);
	if (rc != 0)
		e2e_sh("cat '%s/verify.out'", e2e_tmp);
	e2e_check(rc == 0, "pg: impolicyctl verify exits 0 (%d)", rc);
	e2e_check(e2e_sm_alive(), "the sm is still running");
	return e2e_finish();
}
