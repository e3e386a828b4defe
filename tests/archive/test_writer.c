/*
 * test_writer.c -- the archive writer (imp_archive_*) against a real
 * PostgreSQL 15, run through tests/archive/with-pg.sh, which provides
 * IMP_TEST_DSN (writer role), IMP_TEST_ADMIN_DSN (superuser, for the
 * assertions), IMP_TEST_PGCTL_STOP/START and IMP_TEST_TMP.
 *
 * Covers: a round trip of real judged stanzas (byte-identical raw XML
 * including NUL bytes and invalid UTF-8 from a malformed parse, verdicts,
 * rule ids, retention classes, flag rows, a chain that verifies); the
 * writer role's missing privileges; an outage mid-stream with a producer
 * thread in strict mode (every seq exactly once, spooled and replayed);
 * a restart while PostgreSQL is down (sequence numbers continue); and
 * fail-closed / fail-open with the spool unwritable (RLIMIT_FSIZE: root
 * ignores directory permissions) and PostgreSQL down; asynchronous
 * submit (imp_archive_submit_async) in both durability modes with
 * PostgreSQL up, down, and down with the spool unwritable (each callback
 * exactly once, in seq order, on the writer thread); the status file.
 * Also checks that the DSN's password never reaches the log.
 */
#include "../unit/check.h"
#include "impolicy.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET "sekrit-k9zq"

static imp_ctx_t *g_ctx;
static imp_eval_t *g_ev;
static imp_policy_t *g_pol;
static const char *g_dsn, *g_admin, *g_stop, *g_start, *g_tmp;
static char g_writer_dsn[1024];
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_secret_logged;

static void test_log(void *ud, imp_log_level_t lvl, const char *msg)
{
	(void)ud;
	pthread_mutex_lock(&g_log_mu);
	if (strstr(msg, SECRET))
		g_secret_logged = 1;
	if (lvl <= IMP_LOG_WARN && getenv("IMP_TEST_VERBOSE"))
		fprintf(stderr, "log: %s\n", msg);
	pthread_mutex_unlock(&g_log_mu);
}

static const char policy_yaml[] =
	"policy: { name: archive-test, local_domains: [acme.example] }\n"
	"settings: { retention: 3y }\n"
	"lists:\n"
	"  flagw: { words: [flagword] }\n"
	"  rejw:  { words: [rejword] }\n"
	"  poisw: { words: [poisonword] }\n"
	"rules:\n"
	"  - { id: r.flag, when: { words: flagw }, action: flag,\n"
	"      section: 'S-flag', severity: high }\n"
	"  - { id: r.rej, when: { words: rejw }, action: reject,\n"
	"      section: 'S-rej', severity: critical, retention: 7y }\n"
	/* A class the database does not know: its rows violate the
	 * retention_class foreign key (SQLSTATE 23503), the poison row. */
	"  - { id: r.poison, when: { words: poisw }, action: flag,\n"
	"      severity: low, retention: zz-unknown }\n";

static imp_policy_t *load_policy(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/policy.yaml", g_tmp);
	FILE *f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs(policy_yaml, f);
	fclose(f);
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	if (imp_policy_load(g_ctx, path, NULL, &p, &errs) != IMP_OK) {
		for (size_t i = 0; i < imp_errors_count(errs); i++) {
			char buf[512];
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof(buf));
			fprintf(stderr, "policy: %s\n", buf);
		}
		imp_errors_free(errs);
	}
	return p;
}

/* ---- admin queries ---------------------------------------------------------- */

static PGresult *admin_query(const char *sql, const char *p1, int binary)
{
	PGconn *c = PQconnectdb(g_admin);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "admin connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	const char *v[1] = {p1};
	PGresult *r =
		PQexecParams(c, sql, p1 ? 1 : 0, NULL, v, NULL, NULL, binary);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "admin query failed: %s\n  %s", sql,
			PQerrorMessage(c));
		PQclear(r);
		r = NULL;
	}
	PQfinish(c);
	return r;
}

/* The first value of a one-row text query as a number; -1 on failure. */
static long long admin_num(const char *sql, const char *node)
{
	PGresult *r = admin_query(sql, node, 0);
	long long v = -1;
	if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static long long chain_problems(const char *node)
{
	return admin_num("SELECT count(*) FROM impolicy.verify_chain($1)",
			 node);
}

/* Every seq 1..n present exactly once, nothing else. */
static void check_seqs(const char *node, long long n)
{
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.stanza "
			    "WHERE node = $1",
			    node),
		  n);
	CHECK_INT(admin_num("SELECT count(DISTINCT seq) FROM impolicy.stanza "
			    "WHERE node = $1",
			    node),
		  n);
	CHECK_INT(admin_num("SELECT max(seq) FROM impolicy.stanza "
			    "WHERE node = $1",
			    node),
		  n);
	CHECK_INT(admin_num("SELECT min(seq) FROM impolicy.stanza "
			    "WHERE node = $1",
			    node),
		  1);
	CHECK_INT(chain_problems(node), 0);
}

static void pg_stop(void)
{
	CHECK_INT(system(g_stop), 0);
}

static void pg_start(void)
{
	CHECK_INT(system(g_start), 0);
}

/* ---- archive helpers ------------------------------------------------------------ */

static int open_archive_rc(const char *node, imp_durability_t d,
			   imp_failmode_t fm, int new_node, imp_archive_t **ar)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/spool-%s", g_tmp, node);
	imp_archive_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.dsn = g_writer_dsn;
	cfg.node = node;
	cfg.spool_dir = dir;
	cfg.durability = d;
	cfg.on_failure = fm;
	cfg.batch_max = 500;
	cfg.batch_ms = 5;
	cfg.retention_default = "6y";
	cfg.new_node = new_node;
	*ar = NULL;
	return imp_archive_open(g_ctx, &cfg, ar);
}

static imp_archive_t *open_archive_new(const char *node, imp_durability_t d,
				       imp_failmode_t fm, int new_node)
{
	imp_archive_t *ar = NULL;
	CHECK_INT(open_archive_rc(node, d, fm, new_node, &ar), IMP_OK);
	return ar;
}

static imp_archive_t *open_archive(const char *node, imp_durability_t d,
				   imp_failmode_t fm)
{
	return open_archive_new(node, d, fm, 0);
}

static void make_msg(char *buf, size_t size, int i, const char *word)
{
	snprintf(buf, size,
		 "<message from='u%d@acme.example/pc' to='peer%d@acme.example' "
		 "type='chat' id='m%d'><body>hello %d %s &amp; '); DROP TABLE "
		 "x; --</body></message>",
		 i % 7, i % 3, i, i, word);
}

/* Judges xml with the test policy and submits it. */
static int judge_submit(imp_archive_t *ar, const char *xml, size_t len,
			imp_verdict_t *v, uint64_t *seq)
{
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = IMP_ORIGIN_LOCAL;
	view.xml = xml;
	view.xml_len = len;
	view.session_jid = "u0@acme.example/pc";
	int rc = imp_eval_run(g_ev, g_pol, &view, 0, v);
	if (rc != IMP_OK)
		return rc;
	return imp_archive_submit(ar, &view, v, seq);
}

/* ---- round trip -------------------------------------------------------------------- */

#define RT_N 2000

static const char malformed[] =
	"<message from='m@acme.example' to='n@acme.example'><body>nul\0"
	"byte \xff\xfe\xc0\x80 flagword</bod";

static void test_round_trip(void)
{
	imp_archive_t *ar =
		open_archive("rt", IMP_DURABILITY_BATCHED, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	static char *xmls[RT_N + 1];
	static size_t lens[RT_N + 1];
	static imp_action_t actions[RT_N + 1];
	long long flagged = 0, malformed_seq = 0;
	int ok = 0;
	for (int i = 1; i <= RT_N; i++) {
		char buf[512];
		const char *word = i % 10 == 0   ? "flagword"
				   : i % 10 == 5 ? "rejword"
						 : "plain";
		size_t len;
		if (i == 777) {
			len = sizeof(malformed) - 1;
			memcpy(buf, malformed, len);
		} else {
			make_msg(buf, sizeof(buf), i, word);
			len = strlen(buf);
		}
		imp_verdict_t v;
		uint64_t seq = 0;
		int rc = judge_submit(ar, buf, len, &v, &seq);
		if (rc == IMP_OK && seq == (uint64_t)i)
			ok++;
		if (i == 777) {
			CHECK(v.flags & IMP_VF_MALFORMED);
			malformed_seq = i;
		}
		actions[i] = v.action;
		if (v.action != IMP_ALLOW)
			flagged++;
		xmls[i] = malloc(len);
		memcpy(xmls[i], buf, len);
		lens[i] = len;
		imp_verdict_clear(&v);
	}
	CHECK_INT(ok, RT_N);
	CHECK_INT(imp_archive_flush(ar, 30000), IMP_OK);
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK_INT(st.submitted, RT_N);
	CHECK_INT(st.written, RT_N);
	CHECK_INT(st.queued, 0);
	CHECK_INT(st.last_seq, RT_N);
	CHECK_INT(st.refused + st.lost, 0);
	CHECK_INT(st.connected, 1);
	CHECK_INT(st.oldest_unwritten_us, 0);
	check_seqs("rt", RT_N);

	/* Every row, byte for byte, with its verdict and rules. */
	PGresult *r = admin_query(
		"SELECT seq, raw_xml, verdict, array_to_string(rule_ids, ','), "
		"retention_class, coalesce(body, '') FROM impolicy.stanza "
		"WHERE node = $1 ORDER BY seq",
		"rt", 1);
	CHECK(r != NULL);
	int same_xml = 0, same_verdict = 0, same_rules = 0, same_ret = 0;
	for (int row = 0; r && row < PQntuples(r); row++) {
		const unsigned char *p =
			(const unsigned char *)PQgetvalue(r, row, 0);
		uint64_t seq = 0;
		for (int k = 0; k < 8; k++)
			seq = seq << 8 | p[k];
		if (seq < 1 || seq > RT_N)
			continue;
		int i = (int)seq;
		if ((size_t)PQgetlength(r, row, 1) == lens[i] &&
		    memcmp(PQgetvalue(r, row, 1), xmls[i], lens[i]) == 0)
			same_xml++;
		const char *want_v = imp_action_name(actions[i]);
		if (strcmp(PQgetvalue(r, row, 2), want_v) == 0)
			same_verdict++;
		const char *rules = PQgetvalue(r, row, 3);
		const char *want_r = i == 777      ? NULL
				     : i % 10 == 0 ? "r.flag"
				     : i % 10 == 5 ? "r.rej"
						   : "";
		if (!want_r || strcmp(rules, want_r) == 0)
			same_rules++;
		const char *want_ret = i != 777 && i % 10 == 5 ? "7y" : "3y";
		if (i == 777 || strcmp(PQgetvalue(r, row, 4), want_ret) == 0)
			same_ret++;
		else if (same_ret + 5 > row)
			fprintf(stderr, "seq %d: retention %s, expected %s\n",
				i, PQgetvalue(r, row, 4), want_ret);
	}
	CHECK_INT(r ? PQntuples(r) : 0, RT_N);
	CHECK_INT(same_xml, RT_N);
	CHECK_INT(same_verdict, RT_N);
	CHECK_INT(same_rules, RT_N);
	CHECK_INT(same_ret, RT_N);
	PQclear(r);
	CHECK_INT(actions[10], IMP_FLAG);
	CHECK_INT(actions[15], IMP_REJECT);
	CHECK_INT(actions[1], IMP_ALLOW);
	CHECK(malformed_seq == 777);

	/* Flag rows: one per flagged/rejected stanza (one flagging rule
	 * each), with the rule's section and severity. */
	long long rule_flags = 0;
	for (int i = 1; i <= RT_N; i++)
		if (i != 777 && (i % 10 == 0 || i % 10 == 5))
			rule_flags++;
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.flag WHERE node = "
			    "$1 AND rule_id IN ('r.flag', 'r.rej')",
			    "rt"),
		  rule_flags);
	CHECK_INT(
		admin_num("SELECT count(DISTINCT seq) FROM impolicy.flag "
			  "WHERE node = $1",
			  "rt"),
		admin_num(
			"SELECT count(*) FROM impolicy.stanza WHERE node = $1 "
			"AND verdict <> 'allow' AND rule_ids <> '{}'",
			"rt"));
	CHECK_INT(
		admin_num("SELECT count(*) FROM impolicy.flag WHERE node = $1 "
			  "AND rule_id = 'r.rej' AND severity = 'critical' "
			  "AND section = 'S-rej' AND state = 'open'",
			  "rt"),
		RT_N / 10);
	CHECK(flagged >= rule_flags);
	/* Flags of one stanza share its ts (they join on it). */
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.flag f LEFT JOIN "
			    "impolicy.stanza s ON s.node = f.node AND s.seq = "
			    "f.seq AND s.ts = f.ts WHERE f.node = $1 AND "
			    "s.seq IS NULL",
			    "rt"),
		  0);
	/* Seq order and ts order agree (verify's 'reordered'). */
	CHECK_INT(admin_num("SELECT count(*) FROM (SELECT ts < lag(ts) OVER "
			    "(ORDER BY seq) AS back FROM impolicy.stanza WHERE "
			    "node = $1) x WHERE back",
			    "rt"),
		  0);
	for (int i = 1; i <= RT_N; i++)
		free(xmls[i]);
	imp_archive_close(ar, 5000);

	/* Reopening continues the chain from the spool's head file. */
	ar = open_archive("rt", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	char buf[512];
	make_msg(buf, sizeof(buf), 1, "again");
	imp_verdict_t v;
	uint64_t seq = 0;
	CHECK_INT(judge_submit(ar, buf, strlen(buf), &v, &seq), IMP_OK);
	imp_verdict_clear(&v);
	CHECK_INT(seq, RT_N + 1);
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	imp_archive_close(ar, 5000);
	check_seqs("rt", RT_N + 1);
}

/* ---- privileges ---------------------------------------------------------------------- */

static void test_writer_privileges(void)
{
	static const char *const stmts[] = {
		"UPDATE impolicy.stanza SET verdict = 'allow'",
		"DELETE FROM impolicy.stanza",
		"SELECT body FROM impolicy.stanza",
		"SELECT count(*) FROM impolicy.flag",
		"TRUNCATE impolicy.stanza",
	};
	PGconn *c = PQconnectdb(g_writer_dsn);
	CHECK_INT(PQstatus(c), CONNECTION_OK);
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		PGresult *r = PQexec(c, stmts[i]);
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		CHECK_MSG(PQresultStatus(r) == PGRES_FATAL_ERROR && state &&
				  strcmp(state, "42501") == 0,
			  "%s: %s", stmts[i], state ? state : "succeeded");
		PQclear(r);
	}
	PQfinish(c);
}

/* ---- outage ------------------------------------------------------------------------------ */

#define OUT_N 3000

typedef struct producer_s {
	imp_archive_t *ar;
	imp_eval_t *ev;
	int n;
	int ok;
	int in_order;
	volatile int progress; /* read with __atomic */
} producer_t;

static void *producer_main(void *arg)
{
	producer_t *pr = arg;
	for (int i = 1; i <= pr->n; i++) {
		char buf[512];
		make_msg(buf, sizeof(buf), i, i % 10 == 0 ? "flagword" : "x");
		imp_view_t view;
		memset(&view, 0, sizeof(view));
		view.version = IMP_VIEW_VERSION;
		view.origin = IMP_ORIGIN_LOCAL;
		view.xml = buf;
		view.xml_len = strlen(buf);
		imp_verdict_t v;
		uint64_t seq = 0;
		if (imp_eval_run(pr->ev, g_pol, &view, 0, &v) == IMP_OK &&
		    imp_archive_submit(pr->ar, &view, &v, &seq) == IMP_OK)
			pr->ok++;
		if (seq == (uint64_t)i)
			pr->in_order++;
		imp_verdict_clear(&v);
		__atomic_store_n(&pr->progress, i, __ATOMIC_RELEASE);
		usleep(500);
	}
	return NULL;
}

static void wait_progress(producer_t *pr, int n)
{
	if (n > pr->n)
		n = pr->n;
	while (__atomic_load_n(&pr->progress, __ATOMIC_ACQUIRE) < n)
		usleep(1000);
}

static void test_outage(void)
{
	imp_archive_t *ar =
		open_archive("outage", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	producer_t pr = {ar, NULL, OUT_N, 0, 0, 0};
	CHECK_INT(imp_eval_new(g_ctx, &pr.ev), IMP_OK);
	pthread_t t;
	pthread_create(&t, NULL, producer_main, &pr);
	wait_progress(&pr, 300);
	pg_stop();
	int at_stop = __atomic_load_n(&pr.progress, __ATOMIC_ACQUIRE);
	wait_progress(&pr, at_stop + 800);
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK_INT(st.connected, 0);
	CHECK(st.spooled > 0);
	CHECK(st.spool_bytes > 0);
	CHECK(st.oldest_unwritten_us > 0);
	pg_start();
	pthread_join(t, NULL);
	CHECK_INT(pr.ok, OUT_N);
	CHECK_INT(pr.in_order, OUT_N);
	CHECK_INT(imp_archive_flush(ar, 60000), IMP_OK);
	imp_archive_stats(ar, &st);
	CHECK(st.spooled > 0);
	CHECK(st.replayed > 0);
	CHECK_INT(st.replayed, st.spooled);
	CHECK_INT(st.written, OUT_N);
	CHECK_INT(st.spool_bytes, 0);
	CHECK_INT(st.connected, 1);
	CHECK_INT(st.refused + st.lost, 0);
	imp_archive_close(ar, 5000);
	imp_eval_free(pr.ev);
	check_seqs("outage", OUT_N);
	CHECK_INT(
		admin_num("SELECT count(*) FROM impolicy.flag WHERE node = $1",
			  "outage"),
		OUT_N / 10);
}

/* ---- restart while PostgreSQL is down ------------------------------------------------ */

static int submit_n(imp_archive_t *ar, int n, uint64_t *first, uint64_t *last)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		char buf[512];
		make_msg(buf, sizeof(buf), i, "restart");
		imp_verdict_t v;
		uint64_t seq = 0;
		if (judge_submit(ar, buf, strlen(buf), &v, &seq) == IMP_OK)
			ok++;
		imp_verdict_clear(&v);
		if (i == 0 && first)
			*first = seq;
		if (last)
			*last = seq;
	}
	return ok;
}

static void test_restart_while_down(void)
{
	imp_archive_t *ar =
		open_archive("restart", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	uint64_t first = 0, last = 0;
	CHECK_INT(submit_n(ar, 10, &first, &last), 10);
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	pg_stop();
	CHECK_INT(submit_n(ar, 10, &first, &last), 10);
	CHECK_INT(first, 11);
	CHECK_INT(last, 20);
	CHECK_INT(imp_archive_flush(ar, 200), IMP_ERR_LIMIT);
	imp_archive_close(ar, 500);

	ar = open_archive("restart", IMP_DURABILITY_BATCHED, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK_INT(st.connected, 0);
	CHECK_INT(st.last_seq, 20);
	CHECK(st.spool_bytes > 0);
	CHECK_INT(submit_n(ar, 10, &first, &last), 10);
	CHECK_INT(first, 21);
	CHECK_INT(last, 30);
	pg_start();
	CHECK_INT(imp_archive_flush(ar, 60000), IMP_OK);
	imp_archive_stats(ar, &st);
	CHECK_INT(st.replayed, 20);
	CHECK_INT(st.spool_bytes, 0);
	imp_archive_close(ar, 5000);
	check_seqs("restart", 30);
}

/* ---- the spool directory removed during an outage -------------------------------------- */

/* Records acknowledged into the spool while PostgreSQL is down, then the
 * spool directory deleted under the running writer (say, by an operator
 * freeing disk): the writer restores the files from its open descriptors
 * at the next sync, and every record reaches PostgreSQL once, chain
 * intact. */
static void test_spool_removed(void)
{
	imp_archive_t *ar =
		open_archive("rmspool", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	CHECK_INT(submit_n(ar, 5, NULL, NULL), 5);
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	pg_stop();
	CHECK_INT(submit_n(ar, 20, NULL, NULL), 20); /* durable in the spool */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/spool-rmspool'", g_tmp);
	CHECK_INT(system(cmd), 0);
	CHECK_INT(submit_n(ar, 20, NULL, NULL), 20);
	snprintf(cmd, sizeof(cmd),
		 "ls '%s/spool-rmspool'/rmspool.*.spool >/dev/null 2>&1",
		 g_tmp);
	CHECK_MSG(system(cmd) == 0, "spool segment restored");
	pg_start();
	CHECK_INT(imp_archive_flush(ar, 60000), IMP_OK);
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK_INT(st.replayed, 40);
	CHECK_INT(st.lost + st.refused, 0);
	imp_archive_close(ar, 5000);
	check_seqs("rmspool", 45);
}

/* ---- no chain head anywhere: refuse, never restart at 1 ------------------------------ */

/* A node with rows in PostgreSQL loses its spool directory and restarts
 * while PostgreSQL is down: it must not start over at seq 1 (duplicate
 * (node, seq) rows with another ts); open fails closed.  Once PostgreSQL
 * is back the numbering continues after the existing rows. */
static void test_seq_restart(void)
{
	imp_archive_t *ar =
		open_archive("seqr", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	uint64_t first = 0, last = 0;
	CHECK_INT(submit_n(ar, 5, &first, &last), 5);
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	imp_archive_close(ar, 5000);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/spool-seqr'", g_tmp);
	CHECK_INT(system(cmd), 0);

	pg_stop();
	CHECK_INT(open_archive_rc("seqr", IMP_DURABILITY_STRICT,
				  IMP_FAIL_CLOSED, 0, &ar),
		  IMP_ERR_IO);
	CHECK(ar == NULL);
	CHECK_INT(open_archive_rc("seqr", IMP_DURABILITY_BATCHED, IMP_FAIL_OPEN,
				  0, &ar),
		  IMP_ERR_IO);
	pg_start();

	ar = open_archive("seqr", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	CHECK_INT(submit_n(ar, 3, &first, &last), 3);
	CHECK_INT(first, 6);
	CHECK_INT(last, 8);
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	imp_archive_close(ar, 5000);
	check_seqs("seqr", 8);
}

/* ---- poison rows: a data error quarantines the row, not the stream ------------------ */

/* Frames in a quarantine file (magic "IMPS" | u32 len | u32 crc | payload,
 * little-endian), counted independently of spool.c; -1 when damaged. */
static long long quarantine_frames(const char *node)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/spool-%s/%s.quarantine", g_tmp, node,
		 node);
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	long long n = 0;
	unsigned char h[12];
	size_t k;
	while ((k = fread(h, 1, sizeof(h), f)) == sizeof(h)) {
		unsigned long len =
			(unsigned long)h[4] | (unsigned long)h[5] << 8 |
			(unsigned long)h[6] << 16 | (unsigned long)h[7] << 24;
		if (memcmp(h, "IMPS", 4) != 0 || fseek(f, (long)len, SEEK_CUR))
			break;
		n++;
	}
	if (k != 0 || ferror(f))
		n = -1;
	fclose(f);
	return n;
}

/* Submits n stanzas; those whose index is in bad[] carry the poison word. */
static int submit_mixed(imp_archive_t *ar, int n, const int *bad, int nbad,
			int base)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		bool p = false;
		for (int j = 0; j < nbad; j++)
			p = p || bad[j] == i;
		char buf[512];
		make_msg(buf, sizeof(buf), base + i, p ? "poisonword" : "fine");
		imp_verdict_t v;
		if (judge_submit(ar, buf, strlen(buf), &v, NULL) == IMP_OK)
			ok++;
		imp_verdict_clear(&v);
	}
	return ok;
}

static void test_poison(void)
{
	static const int bad1[] = {4, 11};
	static const int bad2[] = {0, 6};
	imp_archive_t *ar =
		open_archive("poison", IMP_DURABILITY_BATCHED, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	/* Live path: one batch with two bad rows among good ones. */
	CHECK_INT(submit_mixed(ar, 20, bad1, 2, 0), 20);
	CHECK_INT(imp_archive_flush(ar, 20000), IMP_OK);
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK_INT(st.quarantined, 2);
	CHECK_INT(st.written, 18);
	CHECK_INT(st.connected, 1);

	/* Replay path: spooled while PostgreSQL is down, then replayed. */
	pg_stop();
	CHECK_INT(submit_mixed(ar, 10, bad2, 2, 100), 10);
	pg_start();
	CHECK_INT(imp_archive_flush(ar, 60000), IMP_OK);
	imp_archive_stats(ar, &st);
	CHECK_INT(st.quarantined, 4);
	CHECK_INT(st.replayed, 8);
	CHECK_INT(st.written, 26);
	CHECK_INT(st.spool_bytes, 0);
	/* Still writing normally afterwards. */
	CHECK_INT(submit_mixed(ar, 5, NULL, 0, 200), 5);
	CHECK_INT(imp_archive_flush(ar, 20000), IMP_OK);
	imp_archive_close(ar, 5000);

	CHECK_INT(quarantine_frames("poison"), 4);
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.stanza "
			    "WHERE node = $1",
			    "poison"),
		  31);
	CHECK_INT(admin_num("SELECT max(seq) FROM impolicy.stanza "
			    "WHERE node = $1",
			    "poison"),
		  35);
	/* The quarantined seqs are exactly the gaps. */
	CHECK_INT(
		admin_num("SELECT string_agg(g::text, ',' ORDER BY g) "
			  "FROM generate_series(1, 35) g WHERE NOT EXISTS "
			  "(SELECT 1 FROM impolicy.stanza s WHERE s.node = $1 "
			  "AND s.seq = g) AND g <> 5 AND g <> 12 AND g <> 21 "
			  "AND g <> 27",
			  "poison"),
		-1);
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.stanza WHERE "
			    "node = $1 AND seq IN (5, 12, 21, 27)",
			    "poison"),
		  0);

	/* The documented fix: create the missing class, rename the
	 * quarantine file to a spool segment named after its first seq,
	 * restart: the gaps fill and the chain verifies. */
	CHECK_INT(admin_num("SELECT count(*) FROM (SELECT "
			    "impolicy.retention_class_set($1, '1 year', "
			    "'test')) x",
			    "zz-unknown"),
		  1);
	char from[1024], to[1024];
	snprintf(from, sizeof(from), "%s/spool-poison/poison.quarantine",
		 g_tmp);
	snprintf(to, sizeof(to), "%s/spool-poison/poison.%016llx.spool", g_tmp,
		 5ULL);
	CHECK_INT(rename(from, to), 0);
	ar = open_archive("poison", IMP_DURABILITY_BATCHED, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	CHECK_INT(imp_archive_flush(ar, 20000), IMP_OK);
	imp_archive_stats(ar, &st);
	CHECK_INT(st.replayed, 4);
	CHECK_INT(st.quarantined, 0);
	CHECK_INT(st.last_seq, 35);
	imp_archive_close(ar, 5000);
	check_seqs("poison", 35);
}

/* ---- fail-closed / fail-open ------------------------------------------------------------ */

static void test_fail_modes(void)
{
	pg_stop();
	imp_archive_t *closed = open_archive_new(
		"closed", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED, 1);
	imp_archive_t *open_ = open_archive_new("open", IMP_DURABILITY_STRICT,
						IMP_FAIL_OPEN, 1);
	imp_archive_t *bopen = open_archive_new("bopen", IMP_DURABILITY_BATCHED,
						IMP_FAIL_OPEN, 1);
	if (!closed || !open_ || !bopen)
		return;
	char buf[512];
	make_msg(buf, sizeof(buf), 1, "closed");
	imp_verdict_t v;

	/* The spool becomes unwritable: no file of this process may grow
	 * (root ignores directory permissions, so chmod would prove
	 * nothing).  Nothing is printed until the limit is lifted: our own
	 * stderr may be a file too. */
	struct rlimit old, tiny;
	getrlimit(RLIMIT_FSIZE, &old);
	tiny = old;
	tiny.rlim_cur = 1;
	signal(SIGXFSZ, SIG_IGN);
	int lim_rc = setrlimit(RLIMIT_FSIZE, &tiny);

	int rc[6];
	uint64_t seq[2] = {99, 99};
	imp_archive_stats_t st_closed, st_open, st_bopen;
	rc[0] = judge_submit(closed, buf, strlen(buf), &v, &seq[0]);
	imp_verdict_clear(&v);
	/* Refused at once now that the writer flagged it unrecordable. */
	rc[1] = judge_submit(closed, buf, strlen(buf), &v, &seq[1]);
	imp_verdict_clear(&v);
	imp_archive_stats(closed, &st_closed);
	rc[2] = judge_submit(open_, buf, strlen(buf), &v, NULL);
	imp_verdict_clear(&v);
	rc[3] = judge_submit(open_, buf, strlen(buf), &v, NULL);
	imp_verdict_clear(&v);
	imp_archive_stats(open_, &st_open);
	/* Batched fail-open: accepted, then dropped and counted. */
	int bok = 0;
	for (int i = 0; i < 5; i++) {
		if (judge_submit(bopen, buf, strlen(buf), &v, NULL) == IMP_OK)
			bok++;
		imp_verdict_clear(&v);
	}
	for (int i = 0; i < 300; i++) {
		imp_archive_stats(bopen, &st_bopen);
		if (st_bopen.lost == 5)
			break;
		usleep(10000);
	}
	rc[4] = setrlimit(RLIMIT_FSIZE, &old);

	CHECK_INT(lim_rc, 0);
	CHECK_INT(rc[4], 0);
	CHECK_INT(rc[0], IMP_ERR_IO);
	CHECK_INT(seq[0], 0);
	CHECK_INT(rc[1], IMP_ERR_IO);
	CHECK_INT(seq[1], 0);
	CHECK_INT(st_closed.refused, 2);
	CHECK_INT(st_closed.lost, 0);
	CHECK_INT(st_closed.connected, 0);
	CHECK_INT(rc[2], IMP_OK);
	CHECK_INT(rc[3], IMP_OK);
	CHECK_INT(st_open.lost, 2);
	CHECK_INT(st_open.refused, 0);
	CHECK_INT(bok, 5);
	CHECK_INT(st_bopen.lost, 5);
	CHECK_INT(st_bopen.refused, 0);

	imp_archive_close(closed, 500);
	imp_archive_close(open_, 500);
	imp_archive_close(bopen, 500);

	/* Nothing half-written: after recovery the chain starts at 1. */
	pg_start();
	closed = open_archive("closed", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!closed)
		return;
	uint64_t s1 = 0;
	CHECK_INT(judge_submit(closed, buf, strlen(buf), &v, &s1), IMP_OK);
	imp_verdict_clear(&v);
	CHECK_INT(s1, 1);
	CHECK_INT(imp_archive_flush(closed, 10000), IMP_OK);
	imp_archive_close(closed, 5000);
	check_seqs("closed", 1);
}

/* ---- kill -9 mid-stream in strict mode ------------------------------------------------ */

/* The child submits with PostgreSQL down (every record goes through the
 * spool) and reports each sequence number whose submit returned; the
 * parent kills it mid-stream.  After a restart every reported record must
 * reach PostgreSQL. */
static void test_crash(void)
{
	pg_stop();
	int fds[2];
	CHECK_INT(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		imp_archive_t *ar = open_archive_new(
			"crash", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED, 1);
		for (int i = 0; ar && i < 1000000; i++) {
			char buf[512];
			make_msg(buf, sizeof(buf), i, "crash");
			imp_verdict_t v;
			uint64_t seq = 0;
			if (judge_submit(ar, buf, strlen(buf), &v, &seq) ==
			    IMP_OK) {
				if (write(fds[1], &seq, sizeof(seq)) !=
				    sizeof(seq))
					_exit(3);
			}
			imp_verdict_clear(&v);
		}
		_exit(2);
	}
	close(fds[1]);
	uint64_t seq = 0, max_acked = 0, n_acked = 0;
	while (read(fds[0], &seq, sizeof(seq)) == sizeof(seq)) {
		if (seq != n_acked + 1)
			break;
		n_acked++;
		max_acked = seq;
		if (n_acked == 3000)
			kill(pid, SIGKILL);
	}
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(n_acked >= 3000);
	CHECK_INT(max_acked, n_acked);

	pg_start();
	imp_archive_t *ar =
		open_archive("crash", IMP_DURABILITY_STRICT, IMP_FAIL_CLOSED);
	if (!ar)
		return;
	CHECK_INT(imp_archive_flush(ar, 60000), IMP_OK);
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	CHECK(st.replayed >= n_acked);
	CHECK(st.last_seq >= max_acked);
	imp_archive_close(ar, 5000);
	char q[160];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM impolicy.stanza WHERE node = $1 "
		 "AND seq <= %llu",
		 (unsigned long long)max_acked);
	CHECK_INT(admin_num(q, "crash"), (long long)max_acked);
	check_seqs("crash", (long long)st.last_seq);
}

/* ---- DSN file, HMAC chain, 1 MiB stanza --------------------------------------------- */

static void test_dsn_file_hmac_big(void)
{
	char path[512], dir[512];
	snprintf(path, sizeof(path), "%s/dsn.conf", g_tmp);
	snprintf(dir, sizeof(dir), "%s/spool-keyed", g_tmp);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "%s\n", g_writer_dsn);
	fclose(f);
	static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
	imp_archive_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.dsn_file = path;
	cfg.node = "keyed";
	cfg.spool_dir = dir;
	cfg.durability = IMP_DURABILITY_STRICT;
	cfg.hmac_key = key;
	cfg.hmac_key_len = sizeof(key) - 1;
	cfg.hmac_key_id = "k1";
	imp_archive_t *ar = NULL;
	CHECK_INT(imp_archive_open(g_ctx, &cfg, &ar), IMP_OK);
	if (!ar)
		return;
	size_t big_len = (1u << 20) + 100;
	char *big = malloc(big_len + 1);
	int head = snprintf(big, big_len,
			    "<message from='a@acme.example/x' "
			    "to='b@acme.example'><body>");
	memset(big + head, 'z', big_len - (size_t)head);
	memcpy(big + big_len - 17, "</body></message>", 17);
	imp_verdict_t v;
	uint64_t seq = 0;
	CHECK_INT(judge_submit(ar, big, big_len, &v, &seq), IMP_OK);
	imp_verdict_clear(&v);
	CHECK_INT(seq, 1);
	char buf[512];
	make_msg(buf, sizeof(buf), 2, "flagword");
	CHECK_INT(judge_submit(ar, buf, strlen(buf), &v, &seq), IMP_OK);
	imp_verdict_clear(&v);
	CHECK_INT(seq, 2);
	CHECK_INT(imp_archive_flush(ar, 20000), IMP_OK);
	imp_archive_close(ar, 5000);
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.stanza WHERE node = "
			    "$1 AND hash_alg = 'hmac-sha256' AND key_id = 'k1'",
			    "keyed"),
		  2);
	char q[256];
	snprintf(q, sizeof(q),
		 "SELECT octet_length(raw_xml) FROM impolicy.stanza "
		 "WHERE node = $1 AND seq = 1");
	CHECK_INT(admin_num(q, "keyed"), (long long)big_len);
	/* The database cannot check keyed hashes, only the links. */
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.verify_chain($1) "
			    "WHERE problem = 'unverifiable-hmac'",
			    "keyed"),
		  2);
	CHECK_INT(admin_num("SELECT count(*) FROM impolicy.verify_chain($1) "
			    "WHERE problem <> 'unverifiable-hmac'",
			    "keyed"),
		  0);
	free(big);
}

/* ---- asynchronous submit ------------------------------------------------------------ */

#define AS_MAX 512

/* What the callbacks saw: for each submit (ud = its index) how often it
 * was completed, with which seq and rc, in which order, on which thread. */
typedef struct as_log_s {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls[AS_MAX];
	uint64_t seq[AS_MAX];
	int rc[AS_MAX];
	int order[AS_MAX * 2]; /* ud indices in completion order */
	int n;                 /* completions so far */
	int on_submitter;      /* completions run on the submitting thread */
	pthread_t submitter;
} as_log_t;

static as_log_t g_as;

static void as_reset(void)
{
	pthread_mutex_lock(&g_as.mu);
	memset(g_as.calls, 0, sizeof(g_as.calls));
	memset(g_as.seq, 0, sizeof(g_as.seq));
	memset(g_as.rc, 0, sizeof(g_as.rc));
	g_as.n = 0;
	g_as.on_submitter = 0;
	g_as.submitter = pthread_self();
	pthread_mutex_unlock(&g_as.mu);
}

static void as_done(void *ud, uint64_t seq, int rc)
{
	int i = (int)(intptr_t)ud;
	pthread_mutex_lock(&g_as.mu);
	if (i >= 0 && i < AS_MAX) {
		g_as.calls[i]++;
		g_as.seq[i] = seq;
		g_as.rc[i] = rc;
	}
	if (g_as.n < AS_MAX * 2)
		g_as.order[g_as.n] = i;
	g_as.n++;
	if (pthread_equal(pthread_self(), g_as.submitter))
		g_as.on_submitter++;
	pthread_cond_broadcast(&g_as.cv);
	pthread_mutex_unlock(&g_as.mu);
}

/* Waits until n completions arrived (or timeout_ms); returns how many. */
static int as_wait(int n, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g_as.mu);
	while (g_as.n < n)
		if (pthread_cond_timedwait(&g_as.cv, &g_as.mu, &dl) != 0)
			break;
	int got = g_as.n;
	pthread_mutex_unlock(&g_as.mu);
	return got;
}

static int judge_submit_async(imp_archive_t *ar, const char *xml, size_t len,
			      int idx, uint64_t *seq)
{
	imp_view_t view;
	memset(&view, 0, sizeof(view));
	view.version = IMP_VIEW_VERSION;
	view.origin = IMP_ORIGIN_LOCAL;
	view.xml = xml;
	view.xml_len = len;
	view.session_jid = "u0@acme.example/pc";
	imp_verdict_t v;
	int rc = imp_eval_run(g_ev, g_pol, &view, 0, &v);
	if (rc == IMP_OK)
		rc = imp_archive_submit_async(ar, &view, &v, as_done,
					      (void *)(intptr_t)idx, seq);
	imp_verdict_clear(&v);
	return rc;
}

/* Submits n records asynchronously; every one must be queued with seq
 * first_seq + i, and complete exactly once, in seq order, with rc. */
static void as_run(imp_archive_t *ar, int n, uint64_t first_seq, int want_rc)
{
	as_reset();
	int queued = 0, seq_ok = 0;
	for (int i = 0; i < n; i++) {
		char buf[512];
		make_msg(buf, sizeof(buf), i, i % 10 == 0 ? "flagword" : "a");
		uint64_t seq = 0;
		if (judge_submit_async(ar, buf, strlen(buf), i, &seq) == IMP_OK)
			queued++;
		if (seq == first_seq + (uint64_t)i)
			seq_ok++;
	}
	CHECK_INT(queued, n);
	CHECK_INT(seq_ok, n);
	CHECK_INT(as_wait(n, 20000), n);
	usleep(20000); /* a duplicate completion would show up now */
	pthread_mutex_lock(&g_as.mu);
	int once = 0, rc_ok = 0, seq_match = 0, in_order = 0;
	for (int i = 0; i < n; i++) {
		once += g_as.calls[i] == 1;
		rc_ok += g_as.rc[i] == want_rc;
		seq_match += g_as.seq[i] == first_seq + (uint64_t)i;
		in_order += i < g_as.n && g_as.order[i] == i;
	}
	CHECK_INT(g_as.n, n);
	CHECK_INT(g_as.on_submitter, 0);
	pthread_mutex_unlock(&g_as.mu);
	CHECK_INT(once, n);
	CHECK_INT(rc_ok, n);
	CHECK_INT(seq_match, n);
	CHECK_INT(in_order, n);
}

/* PostgreSQL up: strict and batched; the rows are there once the
 * callbacks have fired (no flush needed in the strict case: durable means
 * committed here). */
static void test_async_up(void)
{
	imp_archive_t *ar = open_archive_new("as_strict", IMP_DURABILITY_STRICT,
					     IMP_FAIL_CLOSED, 1);
	if (ar) {
		as_run(ar, 300, 1, IMP_OK);
		check_seqs("as_strict", 300);
		imp_archive_stats_t st;
		imp_archive_stats(ar, &st);
		CHECK_INT(st.written, 300);
		CHECK_INT(st.spooled, 0);
		imp_archive_close(ar, 5000);
	}
	ar = open_archive_new("as_batch", IMP_DURABILITY_BATCHED,
			      IMP_FAIL_CLOSED, 1);
	if (ar) {
		as_run(ar, 400, 1, IMP_OK);
		check_seqs("as_batch", 400);
		imp_archive_close(ar, 5000);
	}
	/* No callback: invalid, nothing queued. */
	ar = open_archive("as_batch", IMP_DURABILITY_BATCHED, IMP_FAIL_CLOSED);
	if (ar) {
		imp_view_t view;
		memset(&view, 0, sizeof(view));
		view.version = IMP_VIEW_VERSION;
		view.xml = "<message/>";
		view.xml_len = 10;
		imp_verdict_t v;
		memset(&v, 0, sizeof(v));
		uint64_t seq = 7;
		CHECK_INT(imp_archive_submit_async(ar, &view, &v, NULL, NULL,
						   &seq),
			  IMP_ERR_INVALID);
		CHECK_INT(seq, 0);
		/* Queued then closed at once: still completed once. */
		as_run(ar, 50, 401, IMP_OK);
		imp_archive_close(ar, 5000);
		check_seqs("as_batch", 450);
	}
}

/* PostgreSQL down: the records are durable in the spool (callbacks OK),
 * then replayed when it is back. */
static void test_async_down(void)
{
	pg_stop();
	imp_archive_t *s = open_archive_new("asd_strict", IMP_DURABILITY_STRICT,
					    IMP_FAIL_CLOSED, 1);
	imp_archive_t *b = open_archive_new("asd_batch", IMP_DURABILITY_BATCHED,
					    IMP_FAIL_CLOSED, 1);
	if (s) {
		as_run(s, 200, 1, IMP_OK);
		imp_archive_stats_t st;
		imp_archive_stats(s, &st);
		CHECK_INT(st.spooled, 200);
		CHECK_INT(st.written, 0);
	}
	if (b) {
		as_run(b, 200, 1, IMP_OK);
		imp_archive_stats_t st;
		imp_archive_stats(b, &st);
		CHECK_INT(st.spooled, 200);
	}
	pg_start();
	if (s) {
		CHECK_INT(imp_archive_flush(s, 30000), IMP_OK);
		imp_archive_close(s, 5000);
		check_seqs("asd_strict", 200);
	}
	if (b) {
		CHECK_INT(imp_archive_flush(b, 30000), IMP_OK);
		imp_archive_close(b, 5000);
		check_seqs("asd_batch", 200);
	}
}

/* PostgreSQL down and the spool unwritable: fail-closed, each queued
 * record is completed exactly once with IMP_ERR_IO (strict and batched);
 * submits refused at once return the error and get no callback.
 * Fail-open: callbacks with IMP_OK, the records counted lost. */
static void test_async_fail(void)
{
	pg_stop();
	imp_archive_t *ar[3];
	ar[0] = open_archive_new("asf_strict", IMP_DURABILITY_STRICT,
				 IMP_FAIL_CLOSED, 1);
	ar[1] = open_archive_new("asf_batch", IMP_DURABILITY_BATCHED,
				 IMP_FAIL_CLOSED, 1);
	ar[2] = open_archive_new("asf_open", IMP_DURABILITY_STRICT,
				 IMP_FAIL_OPEN, 1);
	if (!ar[0] || !ar[1] || !ar[2]) {
		pg_start();
		return;
	}
	char buf[512];
	make_msg(buf, sizeof(buf), 1, "x");
	int queued[3] = {0}, refused_now[3] = {0}, got[3] = {0};
	int once[3] = {0}, io[3] = {0}, okrc[3] = {0}, bad_ud[3] = {0};
	imp_archive_stats_t st[3];

	/* As in test_fail_modes: nothing printed while the limit is on. */
	struct rlimit old, tiny;
	getrlimit(RLIMIT_FSIZE, &old);
	tiny = old;
	tiny.rlim_cur = 1;
	signal(SIGXFSZ, SIG_IGN);
	int lim_rc = setrlimit(RLIMIT_FSIZE, &tiny);
	for (int a = 0; a < 3; a++) {
		as_reset();
		for (int i = 0; i < 20; i++) {
			uint64_t seq = 0;
			int rc = judge_submit_async(ar[a], buf, strlen(buf), i,
						    &seq);
			if (rc == IMP_OK)
				queued[a]++;
			else if (rc == IMP_ERR_IO)
				refused_now[a]++;
			if (i == 4)
				usleep(50000); /* let the writer fail */
		}
		/* Fail-open refusals at once are completed in the call. */
		got[a] = as_wait(queued[a], 10000);
		usleep(20000);
		pthread_mutex_lock(&g_as.mu);
		got[a] = g_as.n;
		for (int i = 0; i < 20; i++) {
			once[a] += g_as.calls[i] == 1;
			if (g_as.calls[i] == 1) {
				io[a] += g_as.rc[i] == IMP_ERR_IO;
				okrc[a] += g_as.rc[i] == IMP_OK;
			}
			if (g_as.calls[i] > 1)
				bad_ud[a]++;
		}
		pthread_mutex_unlock(&g_as.mu);
		imp_archive_stats(ar[a], &st[a]);
	}
	int lim_back = setrlimit(RLIMIT_FSIZE, &old);
	CHECK_INT(lim_rc, 0);
	CHECK_INT(lim_back, 0);
	for (int a = 0; a < 2; a++) {
		/* Some queued (the first), the rest refused at once. */
		CHECK(queued[a] >= 1);
		CHECK_INT(queued[a] + refused_now[a], 20);
		CHECK_INT(got[a], queued[a]);
		CHECK_INT(once[a], queued[a]);
		CHECK_INT(io[a], queued[a]);
		CHECK_INT(bad_ud[a], 0);
		CHECK_INT(st[a].refused, 20);
		CHECK_INT(st[a].lost, 0);
	}
	CHECK_INT(queued[2], 20);
	CHECK_INT(got[2], 20);
	CHECK_INT(once[2], 20);
	CHECK_INT(okrc[2], 20);
	CHECK_INT(st[2].lost, 20);
	CHECK_INT(st[2].refused, 0);
	for (int a = 0; a < 3; a++)
		imp_archive_close(ar[a], 500);
	pg_start();
}

/* ---- the status file ----------------------------------------------------------------- */

static long long json_num(const char *js, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(js, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static int read_small(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return (int)n;
}

static void test_status_file(void)
{
	char dir[512], path[600], tmpp[700];
	snprintf(dir, sizeof(dir), "%s/spool-stat", g_tmp);
	snprintf(path, sizeof(path), "%s/stat.status", dir);
	snprintf(tmpp, sizeof(tmpp), "%s.tmp", path);
	imp_archive_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.dsn = g_writer_dsn;
	cfg.node = "stat";
	cfg.spool_dir = dir;
	cfg.durability = IMP_DURABILITY_BATCHED;
	cfg.on_failure = IMP_FAIL_CLOSED;
	cfg.new_node = 1;
	cfg.status_file = path;
	imp_archive_t *ar = NULL;
	CHECK_INT(imp_archive_open(g_ctx, &cfg, &ar), IMP_OK);
	if (!ar)
		return;
	for (int i = 0; i < 12; i++) {
		char buf[512];
		make_msg(buf, sizeof(buf), i, "s");
		imp_verdict_t v;
		CHECK_INT(judge_submit(ar, buf, strlen(buf), &v, NULL), IMP_OK);
		imp_verdict_clear(&v);
	}
	CHECK_INT(imp_archive_flush(ar, 10000), IMP_OK);
	/* Rewritten about once a second: within 2.5 s it shows the 12. */
	char js[2048] = "";
	for (int t = 0; t < 50; t++) {
		if (read_small(path, js, sizeof(js)) > 0 &&
		    json_num(js, "written") == 12)
			break;
		usleep(50000);
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long now_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
	CHECK_MSG(strstr(js, "\"node\": \"stat\"") != NULL, "%s", js);
	CHECK_INT(json_num(js, "pid"), getpid());
	long long upd = json_num(js, "updated_us");
	CHECK(upd > now_us - 3000000 && upd <= now_us);
	CHECK_INT(json_num(js, "submitted"), 12);
	CHECK_INT(json_num(js, "written"), 12);
	CHECK_INT(json_num(js, "last_seq"), 12);
	CHECK_INT(json_num(js, "queued"), 0);
	CHECK_INT(json_num(js, "connected"), 1);
	static const char *const keys[] = {"spooled",     "replayed",
					   "refused",     "lost",
					   "spool_bytes", "oldest_unwritten_us",
					   "quarantined"};
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		CHECK_MSG(json_num(js, keys[k]) == 0, "%s in %s", keys[k], js);
	CHECK(js[0] == '{' && strstr(js, "}\n") != NULL);
	CHECK(access(tmpp, F_OK) != 0);
	/* It keeps being rewritten while idle (updated_us moves on). */
	usleep(1300000);
	char js2[2048] = "";
	CHECK(read_small(path, js2, sizeof(js2)) > 0);
	CHECK(json_num(js2, "updated_us") > upd);
	/* And once more at close, with the final counters. */
	char buf[512];
	make_msg(buf, sizeof(buf), 99, "s");
	imp_verdict_t v;
	CHECK_INT(judge_submit(ar, buf, strlen(buf), &v, NULL), IMP_OK);
	imp_verdict_clear(&v);
	imp_archive_close(ar, 5000);
	CHECK(read_small(path, js2, sizeof(js2)) > 0);
	CHECK_INT(json_num(js2, "submitted"), 13);
	CHECK_INT(json_num(js2, "written"), 13);
	CHECK_INT(json_num(js2, "last_seq"), 13);
	/* Zero-initialised configs (every other test) write none. */
	char other[600];
	snprintf(other, sizeof(other), "%s/spool-rt/rt.status", g_tmp);
	CHECK(access(other, F_OK) != 0);
}

static void test_invalid(void)
{
	imp_archive_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.dsn = g_writer_dsn;
	imp_archive_t *ar = (imp_archive_t *)&cfg;
	CHECK_INT(imp_archive_open(g_ctx, &cfg, &ar), IMP_ERR_INVALID);
	CHECK(ar == NULL);
	/* A spool "directory" that is a regular file. */
	char path[512];
	snprintf(path, sizeof(path), "%s/not-a-dir", g_tmp);
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
	cfg.node = "bad";
	cfg.spool_dir = path;
	CHECK_INT(imp_archive_open(g_ctx, &cfg, &ar), IMP_ERR_IO);
	CHECK(ar == NULL);
}

int main(void)
{
	g_dsn = getenv("IMP_TEST_DSN");
	g_admin = getenv("IMP_TEST_ADMIN_DSN");
	g_stop = getenv("IMP_TEST_PGCTL_STOP");
	g_start = getenv("IMP_TEST_PGCTL_START");
	g_tmp = getenv("IMP_TEST_TMP");
	if (!g_dsn || !g_admin || !g_stop || !g_start || !g_tmp) {
		fprintf(stderr, "test_writer: run me through with-pg.sh\n");
		return 1;
	}
	/* A password in the DSN (ignored by trust auth) that must never
	 * appear in a log line. */
	snprintf(g_writer_dsn, sizeof(g_writer_dsn), "%s password=%s", g_dsn,
		 SECRET);
	imp_ctx_config_t cc;
	memset(&cc, 0, sizeof(cc));
	cc.version = IMP_CTX_CONFIG_VERSION;
	cc.log = test_log;
	cc.log_level = IMP_LOG_DEBUG;
	CHECK_INT(imp_ctx_new(&cc, &g_ctx), IMP_OK);
	CHECK_INT(imp_eval_new(g_ctx, &g_ev), IMP_OK);
	g_pol = load_policy();
	CHECK(g_pol != NULL);
	if (!g_ctx || !g_ev || !g_pol)
		return CHECK_DONE();

	test_invalid();
	test_round_trip();
	test_writer_privileges();
	test_dsn_file_hmac_big();
	test_outage();
	test_restart_while_down();
	test_spool_removed();
	test_seq_restart();
	test_poison();
	test_crash();
	test_fail_modes();
	pthread_mutex_init(&g_as.mu, NULL);
	pthread_cond_init(&g_as.cv, NULL);
	test_async_up();
	test_status_file();
	test_async_down();
	test_async_fail();
	CHECK(!g_secret_logged);

	imp_policy_unref(g_pol);
	imp_eval_free(g_ev);
	imp_ctx_free(g_ctx);
	return CHECK_DONE();
}
