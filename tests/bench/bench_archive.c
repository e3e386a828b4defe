/*
 * bench_archive.c -- the compliance-archive benchmark of libimpolicy.
 *
 * Purpose: print how the archive writer (imp_archive_*) performs against a
 * real local PostgreSQL 15: sustained rows/s with synchronous_commit on and
 * off, stanza-to-durable latency (strict: the time imp_archive_submit()
 * takes; batched: from submit until the row is committed), the host
 * thread's cost per submit (record build + enqueue, and build alone so that
 * the enqueue can be read off), spool throughput and fdatasync batch size
 * with PostgreSQL away, replay speed when it comes back, and disk bytes per
 * stored stanza.  Variants are compared in the same run as ratios, and
 * the writer against a server-side ceiling (the same rows inserted by one
 * INSERT ... SELECT), which tells whether the writer or the schema limits.
 *
 * By default it starts a private cluster with scripts/pg-cluster.sh in a
 * temporary directory on a free port, applies mod_impolicy/sql/NNN_*.sql,
 * creates a writer login role (member of impolicy_writer only: the module
 * never needs more) and stops the cluster and removes the directory at exit
 * -- also on error, on SIGINT/SIGTERM/SIGHUP, and (through a guardian child
 * that waits for this process to go away) on a crash or kill -9.  With
 * --dsn it uses an existing database instead (schema already applied);
 * --admin-dsn then enables the row checks and the disk figures.
 *
 * Invariants: the corpus is generated from a fixed seed and judged once
 * with the sample policy (contrib/policies/acme.yaml) before any timing, so
 * every variant records the same stanzas and verdicts.  Figures are
 * informational: goals are printed as met / not met and never fail the
 * run.  The exit status is non-zero only when something is broken: the
 * cluster or schema could not be set up, a submit or flush failed, or the
 * rows found in PostgreSQL differ from the records submitted.
 *
 * Threading: the main thread produces; a poller thread samples
 * imp_archive_stats() to time batched records to durability; the strict
 * variants run several producer threads, as a multi-threaded host would.
 *
 * fdatasync()/fsync() are interposed by this executable (counted, then
 * passed to the kernel with syscall(2)) so that the spool's group-commit
 * batch size can be reported through the public API alone.
 *
 * Reports: a readable table on stdout, then one line per figure in the form
 * "bench: NAME VALUE UNIT" (grep '^bench:').  Problems go to stderr.  See
 * tests/bench/README.md for what each figure means.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "impolicy.h"
/* Core header (reached with -iquote): the record build is timed on its own
 * so that the enqueue part of a submit can be read off. */
#include "record.h"

#define BENCH_PROG "bench_archive"
#define BENCH_GOAL_W1 36
#define BENCH_GOAL_W2 18
#define BENCH_GOAL_W3 18
#include "bench_util.h"

#define BENCH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BENCH_SEED 0xa5c41fe2026ULL
/* Simulated judging time of the corpus (Wed 2026-11-25 13:00 UTC, 08:00 in
 * New York): deterministic verdicts.  Records are archived with the real
 * time (view time_us 0) so that they land in the current month partition. */
#define BENCH_T0_US 1795611600000000LL
#define BENCH_QUEUE_MAX 65536
/* The producers of the throughput runs wait while more than this many
 * records are queued (--quick: half): enough batches in hand to keep the
 * writer busy, few enough that the final flush is short and nothing
 * overflows to the spool. */
#define BENCH_BACKLOG 8192
static size_t bench_backlog = BENCH_BACKLOG;
#define BENCH_NODE_PREFIX "bench"

/* ---- small helpers ------------------------------------------------------- */

static uint32_t bench_rng_below(bench_rng_t *r, uint32_t n)
{
	return (uint32_t)(bench_rng_next(r) % n);
}

typedef struct bench_buf_s {
	char *p;
	size_t len, cap;
} bench_buf_t;

static void bench_buf_add(bench_buf_t *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = bench_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void bench_buf_printf(bench_buf_t *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bench_buf_printf(bench_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof tmp)
		n = sizeof tmp - 1;
	bench_buf_add(b, tmp, (size_t)n);
}

static int bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v; nearest-rank quantile q of n values; 0 when empty. */
static double bench_quantile(uint32_t *v, size_t n, double q, bool sorted)
{
	size_t k;

	if (!n)
		return 0;
	if (!sorted)
		qsort(v, n, sizeof *v, bench_cmp_u32);
	k = (size_t)ceil(q * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* ---- fdatasync / fsync accounting ------------------------------------------ */

/* The spool's group commit is invisible through the public API; counting the
 * sync calls this process makes is the least invasive way to report how
 * many records share one.  Defined in the executable, these take precedence
 * over libc's for every object linked into it (libimpolicy is static). */
static atomic_ulong bench_n_fdatasync, bench_n_fsync;

int fdatasync(int fd)
{
	atomic_fetch_add(&bench_n_fdatasync, 1);
	return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
	atomic_fetch_add(&bench_n_fsync, 1);
	return (int)syscall(SYS_fsync, fd);
}

static unsigned long bench_syncs(void)
{
	return atomic_load(&bench_n_fdatasync) + atomic_load(&bench_n_fsync);
}

/* ---- options ------------------------------------------------------------- */

typedef struct bench_opts_s {
	bool quick, keep;
	size_t messages; /* records per throughput variant */
	double max_s;    /* cap on one throughput variant's submit phase */
	size_t distinct; /* distinct stanzas in the corpus */
	size_t burst;    /* submits per host-cost burst */
	double lat_rate; /* offered stanzas/s in the batched latency run */
	double lat_s;    /* its duration */
	unsigned strict_threads;
	double strict_s; /* duration of each strict run */
	size_t spool_n;  /* records spooled in the outage run */
	const char *dsn; /* existing database (writer role) */
	const char *admin_dsn;
	const char *policy; /* NULL: find acme.yaml */
	const char *dir;    /* parent of the temporary directory */
} bench_opts_t;

/* ---- the private cluster --------------------------------------------------- */

static char bench_src[4096];   /* source tree (scripts/, mod_impolicy/sql/) */
static char bench_tmp[4096];   /* our temporary directory, "" when none */
static char bench_pgdir[4200]; /* IMP_PG_DIR */
static int bench_port;
static bool bench_cluster_started, bench_keep;

/* Runs argv (NULL-terminated) with stdout/stderr to /dev/null unless
 * verbose; returns its exit status or -1. */
static int bench_run(char *const argv[], bool quiet)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int bench_pg_ctl(const char *cmd)
{
	char script[4200];
	char *argv[] = {"/bin/sh", script, (char *)cmd, NULL};

	snprintf(script, sizeof script, "%s/scripts/pg-cluster.sh", bench_src);
	return bench_run(argv, true);
}

/* Stops the cluster and removes the temporary directory (unless --keep).
 * Idempotent; used at exit and by the guardian. */
static void bench_cleanup_now(void)
{
	if (bench_cluster_started || bench_pgdir[0])
		(void)bench_pg_ctl("stop");
	bench_cluster_started = false;
	if (bench_tmp[0] && !bench_keep) {
		char *argv[] = {"/bin/rm", "-rf", bench_tmp, NULL};

		(void)bench_run(argv, true);
	}
}

static void bench_atexit(void)
{
	bench_cleanup_now();
	bench_guardian_done();
}

/* Run by the guardian when we died: stops the cluster. */
static void bench_guardian_cleanup(void)
{
	bench_cluster_started = true;
	bench_cleanup_now();
}

static void bench_on_signal(int sig)
{
	/* The guardian sees the pipe close and cleans up. */
	_exit(128 + sig);
}

/* ---- libpq helpers ----------------------------------------------------------- */

/* Appends synchronous_commit=VALUE to a conninfo string or URI. */
static char *bench_dsn_with(const char *dsn, const char *value)
{
	size_t n = strlen(dsn) + 96;
	char *s = bench_xmalloc(n);

	if (strncmp(dsn, "postgres://", 11) == 0 ||
	    strncmp(dsn, "postgresql://", 13) == 0)
		snprintf(s, n, "%s%soptions=-c%%20synchronous_commit%%3D%s",
			 dsn, strchr(dsn, '?') ? "&" : "?", value);
	else
		snprintf(s, n, "%s options='-c synchronous_commit=%s'", dsn,
			 value);
	return s;
}

/* Starts the private cluster, creates the database, applies the schema and
 * creates the writer role.  Fills *writer_dsn and *admin_dsn (malloc'd). */
static void bench_cluster_setup(const bench_opts_t *o, char **writer_dsn,
				char **admin_dsn)
{
	char script[4200], sqlpat[4200], buf[8400];
	const char *base = o->dir ? o->dir : getenv("TMPDIR");
	bench_rng_t r = {(uint64_t)getpid() ^ bench_ns(CLOCK_REALTIME)};
	glob_t g;
	PGconn *c;

	snprintf(bench_tmp, sizeof bench_tmp, "%s/bench_archive.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(bench_tmp)) {
		bench_tmp[0] = '\0';
		bench_die("mkdtemp: %s", strerror(errno));
	}
	/* When root, the server runs as `postgres`, which must reach it. */
	chmod(bench_tmp, 0755);
	snprintf(bench_pgdir, sizeof bench_pgdir, "%s/pg", bench_tmp);
	setenv("IMP_PG_DIR", bench_pgdir, 1);
	/* The guardian inherits both paths; `stop` needs no port. */
	bench_guardian_start(bench_guardian_cleanup, 0);
	snprintf(script, sizeof script, "%s/scripts/pg-cluster.sh", bench_src);

	for (int attempt = 0; attempt < 8 && !bench_cluster_started;
	     attempt++) {
		char port[16];

		bench_port = 20000 + (int)bench_rng_below(&r, 30000);
		if (!bench_port_free(bench_port, false))
			continue;
		snprintf(port, sizeof port, "%d", bench_port);
		setenv("IMP_PG_PORT", port, 1);
		if (bench_pg_ctl("start") == 0)
			bench_cluster_started = true;
	}
	if (!bench_cluster_started)
		bench_die("could not start PostgreSQL (see %s/server.log)",
			  bench_pgdir);

	snprintf(buf, sizeof buf,
		 "host=%s port=%d user=postgres dbname=postgres", bench_pgdir,
		 bench_port);
	c = bench_pq_connect(buf);
	if (!c || !bench_pq_exec(c, "CREATE DATABASE imp_bench"))
		bench_die("could not create the database");
	PQfinish(c);

	/* The upgrade mechanism of tests/archive/run.sh: every NNN_*.sql in
	 * order, each in one transaction, through psql. */
	snprintf(sqlpat, sizeof sqlpat,
		 "%s/mod_impolicy/sql/[0-9][0-9][0-9]_*.sql", bench_src);
	if (glob(sqlpat, 0, NULL, &g) != 0 || g.gl_pathc == 0)
		bench_die("no schema scripts match %s", sqlpat);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *argv[] = {"/bin/sh",
				script,
				"psql",
				"-X",
				"-q",
				"-v",
				"ON_ERROR_STOP=1",
				"-d",
				"imp_bench",
				"-1",
				"-f",
				g.gl_pathv[i],
				NULL};

		if (bench_run(argv, true) != 0)
			bench_die("applying %s failed", g.gl_pathv[i]);
	}
	globfree(&g);

	snprintf(buf, sizeof buf,
		 "host=%s port=%d user=postgres dbname=imp_bench", bench_pgdir,
		 bench_port);
	*admin_dsn = strdup(buf);
	c = bench_pq_connect(buf);
	if (!c || !bench_pq_exec(c, "CREATE ROLE bench_writer LOGIN;"
				    "GRANT impolicy_writer TO bench_writer;"))
		bench_die("could not create the writer role");
	PQfinish(c);
	snprintf(buf, sizeof buf,
		 "host=%s port=%d user=bench_writer dbname=imp_bench",
		 bench_pgdir, bench_port);
	*writer_dsn = strdup(buf);
	if (!*writer_dsn || !*admin_dsn)
		bench_die("out of memory");
}

/* ---- the corpus ------------------------------------------------------------- */

static const char *const bench_vocab[] = {
	"the",      "report",   "meeting",   "project",  "deadline", "review",
	"numbers",  "quarter",  "budget",    "team",     "update",   "please",
	"check",    "draft",    "slides",    "customer", "schedule", "call",
	"tomorrow", "morning",  "afternoon", "we",       "should",   "could",
	"send",     "shared",   "folder",    "version",  "final",    "agenda",
	"notes",    "minutes",  "planning",  "release",  "testing",  "server",
	"deploy",   "ticket",   "issue",     "fixed",    "thanks",   "for",
	"and",      "with",     "about",     "from",     "this",     "that",
	"next",     "week",     "status",    "figures",  "forecast", "invoice",
	"contract", "approval", "pending",   "signed",   "office",   "travel",
	"lunch",    "room",     "booked",    "confirm",  "question", "answer",
	"latest",   "changes",  "comments",  "feedback", "summary",  "details",
};

/* Appear in the policy's client_names list: internal mentions are flagged
 * (rule confidentiality.client-names-internal), producing flag rows. */
static const char *const bench_clients[] = {"contoso", "fabrikam",
					    "northwind traders"};

typedef struct bench_item_s {
	char *xml;
	size_t len;
	char session[64];
	imp_verdict_t v;
	unsigned n_flags; /* expected flag rows */
} bench_item_t;

typedef struct bench_corpus_s {
	bench_item_t *it;
	size_t n;
	double mean_xml;
	size_t by_action[4];
	size_t flags;
} bench_corpus_t;

static void bench_corpus_make(bench_corpus_t *c, size_t n, imp_ctx_t *ctx,
			      const imp_policy_t *pol)
{
	bench_rng_t r = {BENCH_SEED};
	imp_eval_t *ev;
	size_t total = 0;

	if (imp_eval_new(ctx, &ev) != IMP_OK)
		bench_die("imp_eval_new failed");
	c->it = bench_xcalloc(n, sizeof *c->it);
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		bench_item_t *it = &c->it[i];
		bench_buf_t b = {0}, body = {0};
		unsigned from = bench_rng_below(&r, 1000), to;
		size_t target = 260 + bench_rng_below(&r, 140);
		imp_view_t view;
		int rc;

		do
			to = bench_rng_below(&r, 1000);
		while (to == from);
		while (body.len < target) {
			const char *w = bench_vocab[bench_rng_below(
				&r, BENCH_ARRAY_LEN(bench_vocab))];

			if (body.len)
				bench_buf_add(&body, " ", 1);
			bench_buf_add(&body, w, strlen(w));
		}
		/* ~5% name a client: flagged, with one flag row. */
		if (bench_rng_below(&r, 100) < 5) {
			const char *cl = bench_clients[bench_rng_below(
				&r, BENCH_ARRAY_LEN(bench_clients))];

			bench_buf_printf(&body, " for %s", cl);
		}
		snprintf(it->session, sizeof it->session,
			 "u%03u@acme.example/desk", from);
		bench_buf_printf(&b,
				 "<message xmlns='jabber:client' from='%s' "
				 "to='u%03u@acme.example/phone' type='chat' "
				 "id='b%07zu'>",
				 it->session, to, i);
		if (bench_rng_below(&r, 100) < 30)
			bench_buf_printf(&b, "<thread>t%016" PRIx64 "</thread>",
					 bench_rng_next(&r));
		bench_buf_printf(&b, "<body>%s</body>", body.p);
		bench_buf_printf(&b, "<active xmlns='http://jabber.org/"
				     "protocol/chatstates'/></message>");
		free(body.p);
		it->xml = b.p;
		it->len = b.len;
		total += b.len;

		memset(&view, 0, sizeof view);
		view.version = IMP_VIEW_VERSION;
		view.origin = IMP_ORIGIN_LOCAL;
		view.xml = it->xml;
		view.xml_len = it->len;
		view.session_jid = it->session;
		view.time_us = BENCH_T0_US + (int64_t)i * 10000;
		rc = imp_eval_run(ev, pol, &view, IMP_EVAL_DRY_RUN, &it->v);
		if (rc != IMP_OK)
			bench_die("imp_eval_run: %s", imp_strerror(rc));
		if (it->v.flags & IMP_VF_MALFORMED)
			bench_die("a generated stanza was judged malformed: %s",
				  it->v.error ? it->v.error : "?");
		if ((unsigned)it->v.action < 4)
			c->by_action[it->v.action]++;
		if (it->v.action >= IMP_FLAG)
			for (size_t k = 0; k < it->v.n_rules; k++)
				if (it->v.rules[k].action >= IMP_FLAG)
					it->n_flags++;
		c->flags += it->n_flags;
	}
	c->mean_xml = (double)total / (double)n;
	imp_eval_free(ev);
}

static void bench_corpus_free(bench_corpus_t *c)
{
	for (size_t i = 0; i < c->n; i++) {
		imp_verdict_clear(&c->it[i].v);
		free(c->it[i].xml);
	}
	free(c->it);
}

/* The view a host passes with the verdict: time 0 = the context clock. */
static void bench_view(const bench_corpus_t *c, size_t i, imp_view_t *v)
{
	const bench_item_t *it = &c->it[i % c->n];

	memset(v, 0, sizeof *v);
	v->version = IMP_VIEW_VERSION;
	v->origin = IMP_ORIGIN_LOCAL;
	v->xml = it->xml;
	v->xml_len = it->len;
	v->session_jid = it->session;
}

static uint64_t bench_expected_flags(const bench_corpus_t *c, size_t first,
				     size_t n)
{
	uint64_t f = 0;

	for (size_t i = 0; i < n; i++)
		f += c->it[(first + i) % c->n].n_flags;
	return f;
}

/* ---- archive helpers ----------------------------------------------------------- */

typedef struct bench_env_s {
	imp_ctx_t *ctx;
	const bench_opts_t *o;
	const bench_corpus_t *c;
	char *dsn_on, *dsn_off; /* writer DSN with synchronous_commit */
	char *admin_dsn;        /* NULL: no row checks, no disk figures */
	char run_id[32];        /* node suffix: unique per run */
	char spool_base[4200];
	unsigned n_archives;
} bench_env_t;

static imp_archive_t *bench_open(bench_env_t *e, const char *dsn,
				 const char *name, imp_durability_t dur,
				 char *node, size_t node_len, char *spool,
				 size_t spool_len)
{
	imp_archive_config_t cfg;
	imp_archive_t *ar = NULL;
	int rc;

	snprintf(node, node_len, BENCH_NODE_PREFIX "-%s-%s", e->run_id, name);
	if (spool && !spool[0])
		snprintf(spool, spool_len, "%s/%s", e->spool_base, name);
	memset(&cfg, 0, sizeof cfg);
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.dsn = dsn;
	cfg.node = node;
	cfg.spool_dir = spool;
	cfg.durability = dur;
	cfg.on_failure = IMP_FAIL_CLOSED;
	cfg.queue_max = BENCH_QUEUE_MAX;
	cfg.retention_default = "7y";
	/* Node names carry the run id: every node here is new, and the
	 * outage figures open some while PostgreSQL is down. */
	cfg.new_node = 1;
	rc = imp_archive_open(e->ctx, &cfg, &ar);
	if (rc != IMP_OK) {
		bench_fail("imp_archive_open(%s): %s", name, imp_strerror(rc));
		return NULL;
	}
	e->n_archives++;
	return ar;
}

/* Waits until the writer holds a connection; false after timeout_s. */
static bool bench_wait_connected(imp_archive_t *ar, double timeout_s)
{
	uint64_t end = bench_now() + (uint64_t)(timeout_s * 1e9);
	imp_archive_stats_t st;

	for (;;) {
		imp_archive_stats(ar, &st);
		if (st.connected)
			return true;
		if (bench_now() > end)
			return false;
		bench_sleep_ns(1000000);
	}
}

/* Compares what PostgreSQL holds for node with what was submitted. */
static void bench_check_rows(bench_env_t *e, const char *node, uint64_t want,
			     uint64_t want_flags)
{
	PGconn *c;
	double rows, flags;

	if (!e->admin_dsn)
		return;
	c = bench_pq_connect(e->admin_dsn);
	if (!c) {
		bench_fail("row check: cannot connect");
		return;
	}
	/* -1 when a sequence number is stored twice. */
	rows = bench_pq_num(c,
			    "SELECT CASE WHEN count(*) = count(DISTINCT seq) "
			    "THEN count(*) ELSE -1 END FROM impolicy.stanza "
			    "WHERE node = $1",
			    node);
	flags = bench_pq_num(
		c, "SELECT count(*) FROM impolicy.flag WHERE node = $1", node);
	if (rows != (double)want)
		bench_fail("%s: %.0f stanza rows in PostgreSQL, %" PRIu64
			   " submitted",
			   node, rows, want);
	if (flags != (double)want_flags)
		bench_fail("%s: %.0f flag rows in PostgreSQL, %" PRIu64
			   " expected",
			   node, flags, want_flags);
	PQfinish(c);
}

/* ---- sustained throughput (batched) -------------------------------------------- */

typedef struct bench_tp_s {
	bool ok;
	uint64_t n;
	double secs, rows_s;
	uint64_t spooled;
	double cpu_s; /* process CPU seconds during the run */
} bench_tp_t;

/* Submits as fast as the queue allows (the producer backs off at half the
 * queue so that records reach PostgreSQL, not the spool), then flushes.
 * rows/s = records / (first submit .. flush returned). */
static bench_tp_t bench_throughput(bench_env_t *e, const char *dsn,
				   const char *name)
{
	bench_tp_t t = {0};
	char node[128], spool[4300] = "";
	imp_archive_t *ar = bench_open(e, dsn, name, IMP_DURABILITY_BATCHED,
				       node, sizeof node, spool, sizeof spool);
	imp_archive_stats_t st;
	uint64_t t0, deadline, cpu0;
	size_t i;
	int rc;

	if (!ar)
		return t;
	if (!bench_wait_connected(ar, 15)) {
		bench_fail("%s: the writer did not connect within 15 s", name);
		imp_archive_close(ar, 0);
		return t;
	}
	cpu0 = bench_ns(CLOCK_PROCESS_CPUTIME_ID);
	t0 = bench_now();
	deadline = t0 + (uint64_t)(e->o->max_s * 1e9);
	for (i = 0; i < e->o->messages; i++) {
		imp_view_t v;

		if ((i & 255) == 0) {
			if (bench_now() > deadline)
				break;
			for (;;) {
				imp_archive_stats(ar, &st);
				if (st.queued < bench_backlog)
					break;
				bench_sleep_ns(200000);
			}
		}
		bench_view(e->c, i, &v);
		rc = imp_archive_submit(ar, &v, &e->c->it[i % e->c->n].v, NULL);
		if (rc != IMP_OK) {
			bench_fail("%s: submit: %s", name, imp_strerror(rc));
			break;
		}
	}
	rc = imp_archive_flush(ar, 120000);
	t.secs = (double)(bench_now() - t0) / 1e9;
	t.cpu_s = (double)(bench_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;
	if (rc != IMP_OK)
		bench_fail("%s: flush: %s", name, imp_strerror(rc));
	imp_archive_stats(ar, &st);
	t.n = i;
	t.spooled = st.spooled;
	t.rows_s = t.secs > 0 ? (double)i / t.secs : 0;
	t.ok = rc == IMP_OK && st.written == i;
	if (rc == IMP_OK && st.written != i)
		bench_fail("%s: %" PRIu64 " written, %zu submitted", name,
			   st.written, i);
	imp_archive_close(ar, 10000);
	bench_check_rows(e, node, i, bench_expected_flags(e->c, 0, i));
	return t;
}

/* ---- host-thread cost per submit -------------------------------------------------- */

typedef struct bench_host_s {
	bool ok;
	double submit_ns;     /* mean wall ns per submit, best burst */
	double submit_cpu_ns; /* mean thread CPU ns per submit, best burst */
	double p50_ns, p99_ns, max_ns; /* individually timed submits */
	double clock_ns;               /* cost of one clock read */
	double build_ns, build_cpu_ns; /* imp_record_build() alone, best */
} bench_host_t;

/* imp_record_build() alone, as submit calls it (with the context clock),
 * over k records.  Built in groups of 64 that are freed outside the timing
 * (in the archive the writer thread frees them), so the allocator reuses
 * warm memory as it does under submit.  Stores wall and thread-CPU ns per
 * record in *w and *c; false when a build failed. */
static bool bench_build_pass(bench_env_t *e, const char *node, size_t first,
			     size_t k, double *w, double *c)
{
	imp_record_t *recs[64];
	uint64_t wt = 0, ct = 0;
	size_t i = 0;

	while (i < k) {
		size_t g = 0;
		uint64_t w0 = bench_now(),
			 c0 = bench_ns(CLOCK_THREAD_CPUTIME_ID);
		bool bad = false;

		for (; g < 64 && i + g < k; g++) {
			imp_view_t v;
			size_t j = first + i + g;

			bench_view(e->c, j, &v);
			if (imp_record_build(e->ctx, node, imp_ctx_now(e->ctx),
					     &v, &e->c->it[j % e->c->n].v, "7y",
					     &recs[g]) != IMP_OK) {
				bad = true;
				break;
			}
		}
		ct += bench_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
		wt += bench_now() - w0;
		for (size_t j = 0; j < g; j++)
			imp_record_free(e->ctx, recs[j]);
		if (bad) {
			bench_fail("imp_record_build failed");
			return false;
		}
		i += g;
	}
	*w = (double)wt / (double)k;
	*c = (double)ct / (double)k;
	return true;
}

/* Bursts of k submits into an idle queue, each followed by a flush and a
 * pass of imp_record_build() alone over the same stanzas: interleaved, so
 * that both see the same machine (a busy neighbour on the other core
 * shifts both alike); the best of 3 of each is kept.  A fourth burst is
 * timed submit by submit for the distribution. */
static bench_host_t bench_host_cost(bench_env_t *e, const char *dsn)
{
	bench_host_t h = {0};
	char node[128], spool[4300] = "";
	imp_archive_t *ar = bench_open(e, dsn, "host", IMP_DURABILITY_BATCHED,
				       node, sizeof node, spool, sizeof spool);
	size_t k = e->o->burst;
	uint32_t *lat = bench_xcalloc(k, sizeof *lat);
	uint64_t done = 0;
	int rc;

	if (!ar) {
		free(lat);
		return h;
	}
	(void)bench_wait_connected(ar, 15);
	h.submit_ns = h.submit_cpu_ns = INFINITY;
	h.build_ns = h.build_cpu_ns = INFINITY;
	for (int rep = 0; rep < 4; rep++) {
		uint64_t w0 = bench_now(),
			 c0 = bench_ns(CLOCK_THREAD_CPUTIME_ID);
		size_t i;

		for (i = 0; i < k; i++) {
			imp_view_t v;
			uint64_t a = 0;

			bench_view(e->c, done + i, &v);
			if (rep == 3)
				a = bench_now();
			rc = imp_archive_submit(
				ar, &v, &e->c->it[(done + i) % e->c->n].v,
				NULL);
			if (rep == 3)
				lat[i] = (uint32_t)(bench_now() - a);
			if (rc != IMP_OK) {
				bench_fail("host: submit: %s",
					   imp_strerror(rc));
				break;
			}
		}
		if (rep < 3) {
			double w = (double)(bench_now() - w0) / (double)k;
			double c = (double)(bench_ns(CLOCK_THREAD_CPUTIME_ID) -
					    c0) /
				   (double)k;

			if (w < h.submit_ns)
				h.submit_ns = w;
			if (c < h.submit_cpu_ns)
				h.submit_cpu_ns = c;
		}
		/* Drain so that each burst starts with an empty queue. */
		if (imp_archive_flush(ar, 60000) != IMP_OK)
			bench_fail("host: flush timed out");
		if (i < k) {
			done += i;
			break;
		}
		if (rep < 3) {
			double w, c;

			if (!bench_build_pass(e, node, done, k, &w, &c)) {
				done += i;
				break;
			}
			if (w < h.build_ns)
				h.build_ns = w;
			if (c < h.build_cpu_ns)
				h.build_cpu_ns = c;
		} else {
			h.p50_ns = bench_quantile(lat, k, 0.50, false);
			h.p99_ns = bench_quantile(lat, k, 0.99, true);
			h.max_ns = lat[k - 1];
			h.ok = true;
		}
		done += i;
	}
	{
		uint64_t a = bench_now(), x = 0;

		for (int i = 0; i < 100000; i++)
			x += bench_now();
		h.clock_ns = (double)(bench_now() - a) / 100000.0;
		(void)x;
	}
	imp_archive_close(ar, 10000);
	bench_check_rows(e, node, done, bench_expected_flags(e->c, 0, done));
	free(lat);
	return h;
}

/* ---- batched stanza-to-durable latency ------------------------------------------- */

typedef struct bench_poll_s {
	imp_archive_t *ar;
	uint64_t *t_sub;  /* submit time per record (ns) */
	uint32_t *lat_us; /* submit -> seen committed */
	atomic_size_t submitted;
	atomic_bool stop;
	size_t done;
} bench_poll_t;

/* Records are committed in sequence order, so once stats.written reaches w
 * the first w records are durable in PostgreSQL.  Sampling every 0.5 ms
 * adds at most that much to each latency. */
static void *bench_poller(void *arg)
{
	bench_poll_t *p = arg;
	imp_archive_stats_t st;

	for (;;) {
		bool last = atomic_load(&p->stop);
		size_t sub = atomic_load(&p->submitted);
		uint64_t now;

		imp_archive_stats(p->ar, &st);
		now = bench_now();
		if (st.written < sub)
			sub = (size_t)st.written;
		for (; p->done < sub; p->done++) {
			uint64_t d = now - p->t_sub[p->done];

			p->lat_us[p->done] = (uint32_t)(d / 1000);
		}
		if (last)
			break;
		bench_sleep_ns(500000);
	}
	return NULL;
}

typedef struct bench_lat_s {
	bool ok;
	size_t n;
	double offered, achieved;
	double p50_ms, p99_ms, max_ms;
} bench_lat_t;

static bench_lat_t bench_batched_latency(bench_env_t *e, const char *dsn)
{
	bench_lat_t l = {0};
	char node[128], spool[4300] = "";
	imp_archive_t *ar = bench_open(e, dsn, "lat", IMP_DURABILITY_BATCHED,
				       node, sizeof node, spool, sizeof spool);
	size_t n = (size_t)(e->o->lat_rate * e->o->lat_s);
	bench_poll_t p;
	pthread_t th;
	uint64_t t0;
	size_t i;
	int rc;

	if (!ar)
		return l;
	if (!bench_wait_connected(ar, 15)) {
		bench_fail("lat: the writer did not connect within 15 s");
		imp_archive_close(ar, 0);
		return l;
	}
	memset(&p, 0, sizeof p);
	p.ar = ar;
	p.t_sub = bench_xcalloc(n, sizeof *p.t_sub);
	p.lat_us = bench_xcalloc(n, sizeof *p.lat_us);
	if (pthread_create(&th, NULL, bench_poller, &p) != 0)
		bench_die("pthread_create failed");
	t0 = bench_now();
	for (i = 0; i < n; i++) {
		uint64_t due =
			t0 + (uint64_t)((double)i * 1e9 / e->o->lat_rate);
		imp_view_t v;

		if (bench_now() < due)
			bench_sleep_until(due);
		bench_view(e->c, i, &v);
		p.t_sub[i] = bench_now();
		rc = imp_archive_submit(ar, &v, &e->c->it[i % e->c->n].v, NULL);
		if (rc != IMP_OK) {
			bench_fail("lat: submit: %s", imp_strerror(rc));
			break;
		}
		atomic_store(&p.submitted, i + 1);
	}
	l.achieved = (double)i / ((double)(bench_now() - t0) / 1e9);
	rc = imp_archive_flush(ar, 60000);
	if (rc != IMP_OK)
		bench_fail("lat: flush: %s", imp_strerror(rc));
	/* One more sample after the flush, then stop. */
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	l.n = p.done;
	l.offered = e->o->lat_rate;
	l.p50_ms = bench_quantile(p.lat_us, p.done, 0.50, false) / 1e3;
	l.p99_ms = bench_quantile(p.lat_us, p.done, 0.99, true) / 1e3;
	l.max_ms = p.done ? p.lat_us[p.done - 1] / 1e3 : 0;
	l.ok = rc == IMP_OK && p.done == i;
	imp_archive_close(ar, 10000);
	bench_check_rows(e, node, i, bench_expected_flags(e->c, 0, i));
	free(p.t_sub);
	free(p.lat_us);
	return l;
}

/* ---- strict mode: submit returns when durable ------------------------------------- */

typedef struct bench_sthr_s {
	imp_archive_t *ar;
	const bench_corpus_t *c;
	size_t first; /* corpus offset of this thread */
	uint64_t deadline;
	size_t max; /* stop after this many records */
	uint32_t *lat_us;
	size_t n, cap;
	unsigned fails;
	int last_rc;
} bench_sthr_t;

static void *bench_strict_worker(void *arg)
{
	bench_sthr_t *s = arg;

	while (s->n < s->max && bench_now() < s->deadline) {
		imp_view_t v;
		uint64_t a;
		int rc;

		bench_view(s->c, s->first + s->n, &v);
		a = bench_now();
		rc = imp_archive_submit(
			s->ar, &v, &s->c->it[(s->first + s->n) % s->c->n].v,
			NULL);
		if (rc != IMP_OK) {
			s->fails++;
			s->last_rc = rc;
			break;
		}
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 4096;
			s->lat_us = bench_xrealloc(s->lat_us,
						   s->cap * sizeof *s->lat_us);
		}
		s->lat_us[s->n++] = (uint32_t)((bench_now() - a) / 1000);
	}
	return NULL;
}

typedef struct bench_strict_s {
	bool ok;
	unsigned threads;
	size_t n;
	double rows_s, p50_ms, p99_ms, max_ms;
	uint64_t spooled, syncs;
	uint64_t flags; /* flag rows its records should produce */
} bench_strict_t;

/* T threads submit back to back for secs; with ar NULL a new strict archive
 * is opened (and closed) on dsn. */
static bench_strict_t bench_strict_run(bench_env_t *e, imp_archive_t *ar,
				       const char *dsn, const char *name,
				       unsigned threads, double secs,
				       size_t max_total)
{
	bench_strict_t r = {0};
	char node[128], spool[4300] = "";
	bool own = ar == NULL;
	bench_sthr_t *s = bench_xcalloc(threads, sizeof *s);
	pthread_t *th = bench_xcalloc(threads, sizeof *th);
	uint32_t *all;
	uint64_t t0, spooled0 = 0, syncs0;
	imp_archive_stats_t st;
	size_t total = 0;

	r.threads = threads;
	if (own) {
		ar = bench_open(e, dsn, name, IMP_DURABILITY_STRICT, node,
				sizeof node, spool, sizeof spool);
		if (!ar)
			goto out;
		if (!bench_wait_connected(ar, 15)) {
			bench_fail("%s: the writer did not connect", name);
			imp_archive_close(ar, 0);
			goto out;
		}
	}
	imp_archive_stats(ar, &st);
	spooled0 = st.spooled;
	syncs0 = bench_syncs();
	t0 = bench_now();
	for (unsigned i = 0; i < threads; i++) {
		s[i].ar = ar;
		s[i].c = e->c;
		/* Disjoint slices of the corpus per thread. */
		s[i].first = i * (e->c->n / threads);
		s[i].deadline = t0 + (uint64_t)(secs * 1e9);
		s[i].max = max_total / threads;
		if (pthread_create(&th[i], NULL, bench_strict_worker, &s[i]))
			bench_die("pthread_create failed");
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += s[i].n;
		/* Each thread's records are a contiguous corpus slice. */
		r.flags += bench_expected_flags(e->c, s[i].first, s[i].n);
		if (s[i].fails)
			bench_fail("%s: submit: %s", name,
				   imp_strerror(s[i].last_rc));
	}
	r.rows_s = (double)total / ((double)(bench_now() - t0) / 1e9);
	r.syncs = bench_syncs() - syncs0;
	all = bench_xcalloc(total, sizeof *all);
	total = 0;
	for (unsigned i = 0; i < threads; i++) {
		memcpy(all + total, s[i].lat_us, s[i].n * sizeof *all);
		total += s[i].n;
		free(s[i].lat_us);
	}
	r.threads = threads;
	r.n = total;
	r.p50_ms = bench_quantile(all, total, 0.50, false) / 1e3;
	r.p99_ms = bench_quantile(all, total, 0.99, true) / 1e3;
	r.max_ms = total ? all[total - 1] / 1e3 : 0;
	free(all);
	imp_archive_stats(ar, &st);
	r.spooled = st.spooled - spooled0;
	r.ok = total > 0;
	if (own) {
		if (imp_archive_flush(ar, 60000) != IMP_OK)
			bench_fail("%s: flush timed out", name);
		imp_archive_close(ar, 10000);
		bench_check_rows(e, node, total, r.flags);
	}
out:
	free(s);
	free(th);
	return r;
}

/* ---- outage: spool with PostgreSQL away, replay when it returns ----------------- */

typedef struct bench_outage_s {
	bool ok;
	uint64_t n;         /* records spooled by the batched producer */
	double spool_rec_s; /* records/s into the spool */
	double per_sync;    /* records per fdatasync/fsync */
	double spool_bytes_per_rec;
	bench_strict_t strict; /* strict submits while PG is away */
	uint64_t replay_n;
	double reconnect_s; /* PG ready -> writer connected */
	double replay_s;    /* writer connected -> everything committed */
	double replay_rec_s;
	bool restarted; /* true: the cluster was stopped and started;
	                   false: closed port, then a reopened archive */
} bench_outage_t;

static bool bench_wait_spooled(imp_archive_t *ar, uint64_t want,
			       double timeout_s)
{
	uint64_t end = bench_now() + (uint64_t)(timeout_s * 1e9);
	imp_archive_stats_t st;

	for (;;) {
		imp_archive_stats(ar, &st);
		if (st.spooled >= want && st.queued == 0)
			return true;
		if (bench_now() > end)
			return false;
		bench_sleep_ns(500000);
	}
}

static bench_outage_t bench_outage(bench_env_t *e, const char *dsn,
				   bool private_cluster)
{
	bench_outage_t o = {0};
	char node[128], spool[4300] = "", closed_dsn[128];
	char snode[128], sspool[4300] = "";
	imp_archive_t *ar, *sar;
	imp_archive_stats_t st;
	uint64_t t0, t1, syncs0, syncs;
	size_t i;
	int rc = IMP_ERR_INTERNAL;

	o.restarted = private_cluster;
	if (private_cluster) {
		if (bench_pg_ctl("stop") != 0) {
			bench_fail("outage: could not stop PostgreSQL");
			return o;
		}
	} else {
		/* A closed port: bind one and let it go (a race with another
		 * process only makes the figure meaningless, never wrong
		 * data: the spool still replays to the real DSN below). */
		int port = 0;

		for (int k = 0; k < 50 && !port; k++) {
			int p = 20000 + (int)(bench_now() % 30000);

			if (bench_port_free(p, false))
				port = p;
		}
		snprintf(closed_dsn, sizeof closed_dsn,
			 "host=127.0.0.1 port=%d dbname=none user=none "
			 "connect_timeout=1",
			 port);
		dsn = closed_dsn;
	}

	/* Strict submits while PostgreSQL is away: durable in the spool
	 * before submit returns.  Its own archive (node), closed while the
	 * database is still away: the records wait in its spool and are
	 * replayed by a second open below (a restart during an outage). */
	sar = bench_open(e, dsn, "outage-strict", IMP_DURABILITY_STRICT, snode,
			 sizeof snode, sspool, sizeof sspool);
	if (sar) {
		o.strict = bench_strict_run(
			e, sar, NULL, "outage-strict", e->o->strict_threads,
			e->o->strict_s / 2, e->o->spool_n / 4);
		imp_archive_close(sar, 0);
	}

	/* Batched: spool throughput and group-commit size. */
	ar = bench_open(e, dsn, "outage", IMP_DURABILITY_BATCHED, node,
			sizeof node, spool, sizeof spool);
	if (!ar)
		goto restart;
	syncs0 = bench_syncs();
	t0 = bench_now();
	for (i = 0; i < e->o->spool_n; i++) {
		imp_view_t v;

		if ((i & 255) == 0)
			for (;;) {
				imp_archive_stats(ar, &st);
				if (st.queued < bench_backlog)
					break;
				bench_sleep_ns(200000);
			}
		bench_view(e->c, i, &v);
		rc = imp_archive_submit(ar, &v, &e->c->it[i % e->c->n].v, NULL);
		if (rc != IMP_OK) {
			bench_fail("outage: submit: %s", imp_strerror(rc));
			break;
		}
	}
	o.n = i;
	if (!bench_wait_spooled(ar, i, 60)) {
		bench_fail("outage: records were not spooled within 60 s");
		imp_archive_close(ar, 0);
		goto restart;
	}
	t1 = bench_now();
	syncs = bench_syncs() - syncs0;
	o.spool_rec_s = (double)i / ((double)(t1 - t0) / 1e9);
	o.per_sync = syncs ? (double)i / (double)syncs : 0;
	imp_archive_stats(ar, &st);
	o.spool_bytes_per_rec =
		st.spooled ? (double)st.spool_bytes / (double)st.spooled : 0;
	if (st.written != 0)
		bench_fail("outage: %" PRIu64 " written while PG was away",
			   st.written);

	if (private_cluster) {
		uint64_t ready, conn;

		if (bench_pg_ctl("start") != 0) {
			bench_fail("outage: PostgreSQL did not restart");
			imp_archive_close(ar, 0);
			return o;
		}
		ready = bench_now();
		if (!bench_wait_connected(ar, 60)) {
			bench_fail("outage: no reconnect within 60 s");
			imp_archive_close(ar, 0);
			return o;
		}
		conn = bench_now();
		rc = imp_archive_flush(ar, 120000);
		t1 = bench_now();
		o.reconnect_s = (double)(conn - ready) / 1e9;
		o.replay_s = (double)(t1 - conn) / 1e9;
		imp_archive_stats(ar, &st);
		o.replay_n = st.replayed;
		imp_archive_close(ar, 10000);
	} else {
		/* What is left stays in the spool; a new writer on the real
		 * DSN replays it at open. */
		imp_archive_close(ar, 0);
		ar = bench_open(e, e->dsn_on, "outage", IMP_DURABILITY_BATCHED,
				node, sizeof node, spool, sizeof spool);
		if (!ar)
			return o;
		t0 = bench_now();
		if (!bench_wait_connected(ar, 60)) {
			bench_fail("outage: no connection within 60 s");
			imp_archive_close(ar, 0);
			return o;
		}
		t1 = bench_now();
		o.reconnect_s = (double)(t1 - t0) / 1e9;
		rc = imp_archive_flush(ar, 120000);
		o.replay_s = (double)(bench_now() - t1) / 1e9;
		imp_archive_stats(ar, &st);
		o.replay_n = st.replayed;
		imp_archive_close(ar, 10000);
	}
	if (rc != IMP_OK)
		bench_fail("outage: replay flush: %s", imp_strerror(rc));
	if (o.replay_n != o.n)
		bench_fail("outage: %" PRIu64 " replayed, %" PRIu64 " spooled",
			   o.replay_n, o.n);
	o.replay_rec_s = o.replay_s > 0 ? (double)o.replay_n / o.replay_s : 0;
	o.ok = rc == IMP_OK;
	bench_check_rows(e, node, o.n, bench_expected_flags(e->c, 0, o.n));

	/* The strict writer's spool, replayed by a new open (untimed). */
	if (o.strict.n) {
		sar = bench_open(e, e->dsn_on, "outage-strict",
				 IMP_DURABILITY_STRICT, snode, sizeof snode,
				 sspool, sizeof sspool);
		if (sar) {
			if (imp_archive_flush(sar, 60000) != IMP_OK)
				bench_fail("outage-strict: replay flush "
					   "timed out");
			imp_archive_close(sar, 10000);
			bench_check_rows(e, snode, o.strict.n, o.strict.flags);
		}
	}
	return o;

restart:
	if (private_cluster && bench_pg_ctl("start") != 0)
		bench_die("PostgreSQL did not restart");
	return o;
}

/* ---- server-side ceiling ------------------------------------------------------------ */

typedef struct bench_base_s {
	bool ok;
	double n, secs, rows_s;
} bench_base_t;

/* What the schema costs PostgreSQL alone on this machine: the first rows
 * of the sync-on run copied by one INSERT ... SELECT (same content, same
 * partition and indexes, synchronous_commit on, no client round trips).
 * The writer cannot beat this; the ratio says whether the writer or the
 * schema limits ingest. */
static bench_base_t bench_baseline(bench_env_t *e, size_t limit)
{
	static const char sql[] =
		"INSERT INTO impolicy.stanza (node, seq, ts, direction, kind, "
		"stanza_type, from_bare, from_full, to_bare, to_full, thread, "
		"conv_key, body, raw_xml, verdict, rule_ids, sections, "
		"policy_digest, retention_class, hash_alg, key_id, prev_hash, "
		"rec_hash) SELECT $1, seq, ts, direction, kind, stanza_type, "
		"from_bare, from_full, to_bare, to_full, thread, conv_key, "
		"body, "
		"raw_xml, verdict, rule_ids, sections, policy_digest, "
		"retention_class, hash_alg, key_id, prev_hash, rec_hash FROM "
		"impolicy.stanza WHERE node = $2 AND seq <= $3::bigint";
	bench_base_t b = {0};
	char src[128], dst[128], lim[32];
	const char *params[3] = {dst, src, lim};
	PGconn *c;
	PGresult *r;
	uint64_t t0;

	if (!e->admin_dsn)
		return b;
	snprintf(src, sizeof src, BENCH_NODE_PREFIX "-%s-sync-on", e->run_id);
	snprintf(dst, sizeof dst, BENCH_NODE_PREFIX "-%s-baseline", e->run_id);
	snprintf(lim, sizeof lim, "%zu", limit);
	c = bench_pq_connect(e->admin_dsn);
	if (!c)
		return b;
	if (!bench_pq_exec(c, "SET synchronous_commit = on")) {
		PQfinish(c);
		return b;
	}
	t0 = bench_now();
	r = PQexecParams(c, sql, 3, NULL, params, NULL, NULL, 0);
	b.secs = (double)(bench_now() - t0) / 1e9;
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		b.n = strtod(PQcmdTuples(r), NULL);
		b.ok = b.n > 0;
		b.rows_s = b.secs > 0 ? b.n / b.secs : 0;
	} else {
		fprintf(stderr, "bench_archive: baseline INSERT failed: %s",
			PQerrorMessage(c));
	}
	PQclear(r);
	PQfinish(c);
	return b;
}

/* ---- disk per stanza -------------------------------------------------------------- */

typedef struct bench_disk_s {
	bool ok;
	double rows, bytes, per_row, mean_xml, flag_rows, gin_s;
	double table_per_row, flag_per_row; /* heap+TOAST; flag table */
	char parts[16][64];                 /* index name of each part */
	double part_per_row[16];
	int n_parts;
} bench_disk_t;

static bench_disk_t bench_disk(bench_env_t *e)
{
	bench_disk_t d = {0};
	PGconn *c;
	uint64_t t0;

	if (!e->admin_dsn)
		return d;
	c = bench_pq_connect(e->admin_dsn);
	if (!c)
		return d;
	/* Steady state: merge the GIN pending lists (fastupdate) the way
	 * autovacuum eventually would, so their pages are not counted twice
	 * or missed. */
	t0 = bench_now();
	(void)bench_pq_num(c,
			   "SELECT count(gin_clean_pending_list(i.indexrelid)) "
			   "FROM pg_index i JOIN pg_class c ON c.oid = "
			   "i.indexrelid JOIN pg_am a ON a.oid = c.relam "
			   "WHERE a.amname = 'gin' AND i.indrelid IN (SELECT "
			   "relid FROM pg_partition_tree('impolicy.stanza') "
			   "WHERE isleaf)",
			   NULL);
	d.gin_s = (double)(bench_now() - t0) / 1e9;
	(void)bench_pq_exec(c, "CHECKPOINT");
	d.rows = bench_pq_num(c, "SELECT count(*) FROM impolicy.stanza", NULL);
	d.flag_rows =
		bench_pq_num(c, "SELECT count(*) FROM impolicy.flag", NULL);
	d.mean_xml = bench_pq_num(
		c, "SELECT avg(octet_length(raw_xml)) FROM impolicy.stanza",
		NULL);
	d.bytes = bench_pq_num(
		c,
		"SELECT (SELECT sum(pg_total_relation_size(relid)) FROM "
		"pg_partition_tree('impolicy.stanza') WHERE isleaf) + "
		"pg_total_relation_size('impolicy.flag')",
		NULL);
	d.table_per_row = bench_pq_num(
		c,
		"SELECT sum(pg_table_size(relid)) FROM "
		"pg_partition_tree('impolicy.stanza') WHERE isleaf",
		NULL);
	d.flag_per_row = bench_pq_num(
		c, "SELECT pg_total_relation_size('impolicy.flag')", NULL);
	{
		/* Each index of the partitions, summed under its parent
		 * index's name: what each review query costs on disk. */
		PGresult *r = PQexec(
			c,
			"SELECT coalesce(pi.relname, ic.relname), "
			"sum(pg_relation_size(ic.oid)) FROM "
			"pg_partition_tree('impolicy.stanza') t JOIN pg_index "
			"i ON i.indrelid = t.relid JOIN pg_class ic ON ic.oid "
			"= i.indexrelid LEFT JOIN pg_inherits h ON h.inhrelid "
			"= ic.oid LEFT JOIN pg_class pi ON pi.oid = "
			"h.inhparent WHERE t.isleaf GROUP BY 1 ORDER BY 1");

		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			for (int k = 0; k < PQntuples(r) && k < 16; k++) {
				snprintf(d.parts[k], sizeof d.parts[k], "%s",
					 PQgetvalue(r, k, 0));
				d.part_per_row[k] =
					strtod(PQgetvalue(r, k, 1), NULL);
				d.n_parts = k + 1;
			}
		PQclear(r);
	}
	PQfinish(c);
	d.ok = d.rows > 0 && !isnan(d.bytes);
	d.per_row = d.ok ? d.bytes / d.rows : 0;
	if (d.ok) {
		d.table_per_row /= d.rows;
		d.flag_per_row /= d.rows;
		for (int k = 0; k < d.n_parts; k++)
			d.part_per_row[k] /= d.rows;
	}
	return d;
}

/* ---- main -------------------------------------------------------------------------- */

static void bench_usage(void)
{
	fputs("usage: bench_archive [--quick] [--messages N] [--seconds S]\n"
	      "                     [--dsn WRITER_DSN [--admin-dsn DSN]]\n"
	      "                     [--dir DIR] [--keep] [POLICY]\n"
	      "Without --dsn a private PostgreSQL 15 cluster is started with\n"
	      "scripts/pg-cluster.sh (found via $IMP_SOURCE_DIR or the cwd).\n"
	      "POLICY defaults to contrib/policies/acme.yaml.\n",
	      stderr);
}

static unsigned long bench_arg_num(int argc, char **argv, int *i)
{
	char *end;
	unsigned long v;

	if (*i + 1 >= argc)
		bench_die("%s needs a number", argv[*i]);
	errno = 0;
	v = strtoul(argv[++*i], &end, 10);
	if (errno || *end || !v)
		bench_die("%s: bad number '%s'", argv[*i - 1], argv[*i]);
	return v;
}

static const char *bench_arg_str(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		bench_die("%s needs a value", argv[*i]);
	return argv[++*i];
}

static void bench_log(void *ud, imp_log_level_t level, const char *msg)
{
	(void)ud;
	/* Connection failures during the outage are expected; only errors
	 * are shown, and only when IMP_BENCH_LOG is set do we see more. */
	if (level <= IMP_LOG_ERROR || getenv("IMP_BENCH_LOG"))
		fprintf(stderr, "  [archive %s] %s\n",
			level == IMP_LOG_ERROR  ? "error"
			: level == IMP_LOG_WARN ? "warn"
						: "info",
			msg);
}

static double bench_ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

int main(int argc, char **argv)
{
	bench_opts_t o = {0};
	bench_env_t e;
	bench_corpus_t c = {0};
	imp_ctx_config_t cc;
	imp_policy_t *pol = NULL;
	imp_errors_t *errs = NULL;
	char policy_path[4300], *writer_dsn = NULL, *admin_dsn = NULL;
	bench_tp_t tp_on, tp_off;
	bench_host_t host;
	bench_lat_t lat;
	bench_strict_t st1, stn, stn_off;
	bench_outage_t out;
	bench_disk_t disk;
	bench_base_t base;
	bool have_msgs = false, have_secs = false;
	uint64_t t_start = bench_now();
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			o.quick = true;
		else if (!strcmp(argv[i], "--keep"))
			o.keep = true;
		else if (!strcmp(argv[i], "--messages")) {
			o.messages = bench_arg_num(argc, argv, &i);
			have_msgs = true;
		} else if (!strcmp(argv[i], "--seconds")) {
			o.max_s = (double)bench_arg_num(argc, argv, &i);
			have_secs = true;
		} else if (!strcmp(argv[i], "--dsn"))
			o.dsn = bench_arg_str(argc, argv, &i);
		else if (!strcmp(argv[i], "--admin-dsn"))
			o.admin_dsn = bench_arg_str(argc, argv, &i);
		else if (!strcmp(argv[i], "--dir"))
			o.dir = bench_arg_str(argc, argv, &i);
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			bench_usage();
			return 0;
		} else if (argv[i][0] == '-') {
			bench_usage();
			return 2;
		} else
			o.policy = argv[i];
	}
	if (!have_msgs)
		o.messages = o.quick ? 40000 : 200000;
	if (!have_secs)
		o.max_s = o.quick ? 3 : 10;
	o.distinct = o.quick ? 2048 : 4096;
	o.burst = o.quick ? 2000 : 5000;
	bench_backlog = o.quick ? BENCH_BACKLOG / 2 : BENCH_BACKLOG;
	o.lat_rate = 10000;
	o.lat_s = o.quick ? 2 : 5;
	o.strict_threads = o.quick ? 4 : 8;
	o.strict_s = o.quick ? 1 : 3;
	o.spool_n = o.quick ? 20000 : 100000;
	bench_keep = o.keep;

	if (!bench_find_src(bench_src) && !o.dsn)
		bench_die("cannot find scripts/pg-cluster.sh; set "
			  "IMP_SOURCE_DIR to the source tree");
	if (o.policy)
		snprintf(policy_path, sizeof policy_path, "%s", o.policy);
	else if (bench_src[0])
		snprintf(policy_path, sizeof policy_path,
			 "%s/contrib/policies/acme.yaml", bench_src);
	else
		bench_die("no policy given and no source tree found");

	/* Context, policy and corpus first: nothing here needs PostgreSQL. */
	memset(&cc, 0, sizeof cc);
	cc.version = IMP_CTX_CONFIG_VERSION;
	cc.log = bench_log;
	cc.log_level = getenv("IMP_BENCH_LOG") ? IMP_LOG_INFO : IMP_LOG_ERROR;
	if (imp_ctx_new(&cc, &e.ctx) != IMP_OK)
		bench_die("imp_ctx_new failed");
	rc = imp_policy_load(e.ctx, policy_path, NULL, &pol, &errs);
	if (rc != IMP_OK) {
		char buf[512];

		for (size_t i = 0; errs && i < imp_errors_count(errs); i++) {
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof buf);
			fprintf(stderr, "  %s\n", buf);
		}
		imp_errors_free(errs);
		bench_die("cannot load %s: %s", policy_path, imp_strerror(rc));
	}
	bench_corpus_make(&c, o.distinct, e.ctx, pol);

	signal(SIGINT, bench_on_signal);
	signal(SIGTERM, bench_on_signal);
	signal(SIGHUP, bench_on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (o.dsn) {
		writer_dsn = strdup(o.dsn);
		admin_dsn = o.admin_dsn ? strdup(o.admin_dsn) : NULL;
		snprintf(bench_tmp, sizeof bench_tmp, "%s/bench_archive.XXXXXX",
			 o.dir ? o.dir : "/tmp");
		if (!mkdtemp(bench_tmp)) {
			bench_tmp[0] = '\0';
			bench_die("mkdtemp: %s", strerror(errno));
		}
		atexit(bench_atexit);
	} else {
		atexit(bench_atexit);
		bench_cluster_setup(&o, &writer_dsn, &admin_dsn);
	}
	e.o = &o;
	e.c = &c;
	e.admin_dsn = admin_dsn;
	e.dsn_on = bench_dsn_with(writer_dsn, "on");
	e.dsn_off = bench_dsn_with(writer_dsn, "off");
	e.n_archives = 0;
	snprintf(e.run_id, sizeof e.run_id, "%lx",
		 (unsigned long)(bench_ns(CLOCK_REALTIME) / 1000000u));
	snprintf(e.spool_base, sizeof e.spool_base, "%s/spool", bench_tmp);
	/* The archive creates its own spool directory, not the parents. */
	if (mkdir(e.spool_base, 0700) != 0)
		bench_die("mkdir %s: %s", e.spool_base, strerror(errno));

	printf("bench_archive: %s run, %s, corpus of %zu distinct chat "
	       "stanzas (mean %.0f B of XML),\n"
	       "  judged by %s: %zu allow, %zu flag, %zu redact, %zu reject; "
	       "%zu flag rows\n",
	       o.quick ? "quick" : "full",
	       o.dsn ? "existing database (--dsn)"
		     : "private PostgreSQL 15 cluster",
	       c.n, c.mean_xml, policy_path, c.by_action[0], c.by_action[1],
	       c.by_action[2], c.by_action[3], c.flags);
	if (!o.dsn)
		printf("  cluster: %s, port %d, spool under %s\n", bench_pgdir,
		       bench_port, e.spool_base);
	fflush(stdout);

	/* 1. sustained rows/s, synchronous_commit on and off --------------- */
	tp_on = bench_throughput(&e, e.dsn_on, "sync-on");
	tp_off = bench_throughput(&e, e.dsn_off, "sync-off");
	printf("\nsustained ingest (batched, queue kept below half full)\n"
	       "  variant       records     secs    rows/s  cpu s  spooled\n");
	printf("  sync on   %11" PRIu64 " %8.2f %9.0f %6.2f %8" PRIu64 "\n",
	       tp_on.n, tp_on.secs, tp_on.rows_s, tp_on.cpu_s, tp_on.spooled);
	printf("  sync off  %11" PRIu64 " %8.2f %9.0f %6.2f %8" PRIu64 "\n",
	       tp_off.n, tp_off.secs, tp_off.rows_s, tp_off.cpu_s,
	       tp_off.spooled);
	printf("  sync off / sync on: %.2fx\n",
	       bench_ratio(tp_off.rows_s, tp_on.rows_s));

	fflush(stdout);
	bench_fig("ingest.sync_on.rows_per_s", round(tp_on.rows_s), "rows/s");
	bench_fig("ingest.sync_on.records", (double)tp_on.n, "count");
	bench_fig("ingest.sync_on.spooled", (double)tp_on.spooled, "count");
	bench_fig("ingest.sync_off.rows_per_s", round(tp_off.rows_s), "rows/s");
	bench_fig("ingest.sync_off.records", (double)tp_off.n, "count");
	bench_fig("ingest.sync_off.spooled", (double)tp_off.spooled, "count");
	bench_fig("ingest.off_vs_on", bench_ratio(tp_off.rows_s, tp_on.rows_s),
		  "x");
	base = bench_baseline(&e, o.quick ? 5000 : 20000);
	if (base.ok) {
		printf("  server-side ceiling: one INSERT ... SELECT of %.0f "
		       "sync-on rows, sync on: %.0f rows/s; the writer reaches "
		       "%.0f%% of it\n",
		       base.n, base.rows_s,
		       100 * bench_ratio(tp_on.rows_s, base.rows_s));
		bench_fig("ingest.server_ceiling.rows_per_s",
			  round(base.rows_s), "rows/s");
		bench_fig("ingest.writer_vs_ceiling",
			  bench_ratio(tp_on.rows_s, base.rows_s), "x");
	}
	fflush(stdout);

	/* 2. host-thread cost ---------------------------------------------------- */
	host = bench_host_cost(&e, e.dsn_off);
	{
		/* Build alone is timed through record.h; the rest of a submit
		 * (sequence, queue, wake-up of the writer) is the enqueue. */
		double enq = host.submit_ns - host.build_ns;
		double enq_cpu = host.submit_cpu_ns - host.build_cpu_ns;

		printf("\nhost thread per imp_archive_submit (batched, %zu "
		       "per burst, best of 3)\n",
		       o.burst);
		printf("  build+enqueue: mean wall %.0f ns, thread CPU %.0f "
		       "ns\n"
		       "  build alone (imp_record_build): wall %.0f ns, CPU "
		       "%.0f ns  =>  enqueue alone: wall %.0f ns, CPU %.0f ns\n"
		       "  submits timed one by one: p50 %.0f ns, p99 %.0f ns, "
		       "max %.0f ns (one clock read costs %.0f ns)\n",
		       host.submit_ns, host.submit_cpu_ns, host.build_ns,
		       host.build_cpu_ns, enq, enq_cpu, host.p50_ns,
		       host.p99_ns, host.max_ns, host.clock_ns);
		if (enq_cpu < 0 || enq < 0)
			printf("  (a negative enqueue means it is below the "
			       "noise of two separate measurements)\n");
		fflush(stdout);
		bench_fig("host.build_mean", round(host.build_ns), "ns");
		bench_fig("host.build_cpu_mean", round(host.build_cpu_ns),
			  "ns");
		bench_fig("host.enqueue_mean", round(enq), "ns");
		bench_fig("host.enqueue_cpu_mean", round(enq_cpu), "ns");
		bench_fig("host.submit_mean", round(host.submit_ns), "ns");
		bench_fig("host.submit_cpu_mean", round(host.submit_cpu_ns),
			  "ns");
		bench_fig("host.submit_p50", host.p50_ns, "ns");
		bench_fig("host.submit_p99", host.p99_ns, "ns");
		bench_fig("host.submit_max", host.max_ns, "ns");
	}

	/* 3. latency: batched at an offered load, strict with 1 and T threads.
	 * The offered load stays below what the writer sustains (half the
	 * sync-on rate, at most 10 k/s): above it, latency only measures how
	 * long the queue has grown. */
	if (tp_on.ok && o.lat_rate > tp_on.rows_s / 2)
		o.lat_rate = floor(tp_on.rows_s / 2);
	if (o.lat_rate < 100)
		o.lat_rate = 100;
	lat = bench_batched_latency(&e, e.dsn_on);
	st1 = bench_strict_run(&e, NULL, e.dsn_on, "strict1", 1, o.strict_s,
			       SIZE_MAX);
	stn = bench_strict_run(&e, NULL, e.dsn_on, "strictN", o.strict_threads,
			       o.strict_s, SIZE_MAX);
	stn_off = bench_strict_run(&e, NULL, e.dsn_off, "strictN-off",
				   o.strict_threads, o.strict_s, SIZE_MAX);
	printf("\nstanza-to-durable latency (sync on unless noted)\n"
	       "  variant                         records   rows/s    p50 ms"
	       "    p99 ms    max ms\n");
	printf("  batched, %5.0f/s offered    %11zu %8.0f %9.2f %9.2f %9.2f\n",
	       lat.offered, lat.n, lat.achieved, lat.p50_ms, lat.p99_ms,
	       lat.max_ms);
	printf("  strict, 1 thread            %11zu %8.0f %9.2f %9.2f %9.2f\n",
	       st1.n, st1.rows_s, st1.p50_ms, st1.p99_ms, st1.max_ms);
	printf("  strict, %u threads           %11zu %8.0f %9.2f %9.2f %9.2f\n",
	       stn.threads, stn.n, stn.rows_s, stn.p50_ms, stn.p99_ms,
	       stn.max_ms);
	printf("  strict, %u threads, sync off %11zu %8.0f %9.2f %9.2f %9.2f\n",
	       stn_off.threads, stn_off.n, stn_off.rows_s, stn_off.p50_ms,
	       stn_off.p99_ms, stn_off.max_ms);
	printf("  strict (%u threads) / batched rows/s: %.3fx; "
	       "p99 strict / batched: %.2fx\n",
	       stn.threads, bench_ratio(stn.rows_s, tp_on.rows_s),
	       bench_ratio(stn.p99_ms, lat.p99_ms));
	fflush(stdout);
	bench_fig("latency.batched.offered", lat.offered, "rows/s");
	bench_fig("latency.batched.p50", lat.p50_ms, "ms");
	bench_fig("latency.batched.p99", lat.p99_ms, "ms");
	bench_fig("latency.batched.max", lat.max_ms, "ms");
	bench_fig("latency.strict1.rows_per_s", round(st1.rows_s), "rows/s");
	bench_fig("latency.strict1.p50", st1.p50_ms, "ms");
	bench_fig("latency.strict1.p99", st1.p99_ms, "ms");
	bench_fig("latency.strictN.threads", stn.threads, "count");
	bench_fig("latency.strictN.rows_per_s", round(stn.rows_s), "rows/s");
	bench_fig("latency.strictN.p50", stn.p50_ms, "ms");
	bench_fig("latency.strictN.p99", stn.p99_ms, "ms");
	bench_fig("latency.strictN.spooled", (double)stn.spooled, "count");
	bench_fig("latency.strictN_off.rows_per_s", round(stn_off.rows_s),
		  "rows/s");
	bench_fig("latency.strictN_off.p99", stn_off.p99_ms, "ms");
	bench_fig("latency.strict_vs_batched_rows",
		  bench_ratio(stn.rows_s, tp_on.rows_s), "x");
	bench_fig("latency.strict_vs_batched_p99",
		  bench_ratio(stn.p99_ms, lat.p99_ms), "x");

	/* 4. outage: spool, then replay.  Replay runs at the writer's speed,
	 * so the outage holds at most ~6 s (quick: 2 s) of sustained ingest. */
	if (tp_on.ok) {
		double cap = tp_on.rows_s * (o.quick ? 2 : 6);

		if (cap < 2000)
			cap = 2000;
		if ((double)o.spool_n > cap)
			o.spool_n = (size_t)cap;
	}
	out = bench_outage(&e, e.dsn_on, o.dsn == NULL);
	printf("\noutage (%s)\n",
	       out.restarted ? "PostgreSQL stopped, then started again"
			     : "closed port, then a new writer on the DSN");
	printf("  spool: %" PRIu64 " records at %.0f records/s, %.1f records "
	       "per fdatasync, %.0f B per spooled record\n",
	       out.n, out.spool_rec_s, out.per_sync, out.spool_bytes_per_rec);
	printf("  strict, %u threads, PG away: %zu records, %.0f rows/s, p50 "
	       "%.2f ms, p99 %.2f ms, max %.2f ms, %.1f records per sync\n",
	       out.strict.threads, out.strict.n, out.strict.rows_s,
	       out.strict.p50_ms, out.strict.p99_ms, out.strict.max_ms,
	       out.strict.syncs
		       ? (double)out.strict.n / (double)out.strict.syncs
		       : 0);
	printf("  replay: %" PRIu64 " records in %.2f s = %.0f records/s "
	       "(reconnect took %.2f s)\n",
	       out.replay_n, out.replay_s, out.replay_rec_s, out.reconnect_s);
	fflush(stdout);
	bench_fig("spool.records_per_s", round(out.spool_rec_s), "records/s");
	bench_fig("spool.records_per_fdatasync", out.per_sync, "records");
	bench_fig("spool.bytes_per_record", round(out.spool_bytes_per_rec),
		  "bytes");
	bench_fig("spool.strict.p99", out.strict.p99_ms, "ms");
	bench_fig("spool.strict.rows_per_s", round(out.strict.rows_s),
		  "rows/s");
	bench_fig("spool.strict.records_per_sync",
		  out.strict.syncs
			  ? (double)out.strict.n / (double)out.strict.syncs
			  : 0,
		  "records");
	bench_fig("replay.records", (double)out.replay_n, "count");
	bench_fig("replay.records_per_s", round(out.replay_rec_s), "records/s");
	bench_fig("replay.seconds", out.replay_s, "s");
	bench_fig("replay.reconnect_seconds", out.reconnect_s, "s");

	/* 5. disk --------------------------------------------------------------- */
	disk = bench_disk(&e);
	if (disk.ok) {
		printf("\ndisk: %.0f stanza rows (mean %.0f B of XML), %.0f "
		       "flag "
		       "rows, %.1f MB with indexes = %.0f B per stanza "
		       "(GIN pending lists merged in %.1f s)\n",
		       disk.rows, disk.mean_xml, disk.flag_rows,
		       disk.bytes / 1e6, disk.per_row, disk.gin_s);
		bench_fig("disk.rows", disk.rows, "count");
		bench_fig("disk.mean_xml", round(disk.mean_xml), "bytes");
		bench_fig("disk.bytes_per_stanza", round(disk.per_row),
			  "bytes");
		printf("  per stanza: table (heap + TOAST) %.0f B, flag table "
		       "%.0f B",
		       disk.table_per_row, disk.flag_per_row);
		bench_fig("disk.table_per_stanza", round(disk.table_per_row),
			  "bytes");
		bench_fig("disk.flag_per_stanza", round(disk.flag_per_row),
			  "bytes");
		for (int k = 0; k < disk.n_parts; k++) {
			char name[96];

			printf(", %s %.0f B", disk.parts[k],
			       disk.part_per_row[k]);
			snprintf(name, sizeof name, "disk.index.%s",
				 disk.parts[k]);
			bench_fig(name, round(disk.part_per_row[k]), "bytes");
		}
		printf("\n");
	} else {
		printf("\ndisk: not measured (needs --admin-dsn)\n");
	}

	printf("\ngoals (informational)                figure             "
	       "target             status\n");
	bench_goal("rows/s, synchronous_commit on", tp_on.rows_s / 1e3,
		   "k rows/s", true, 40, tp_on.ok, "ingest_sync_on_ge_40k");
	bench_goal("rows/s, synchronous_commit off", tp_off.rows_s / 1e3,
		   "k rows/s", true, 70, tp_off.ok, "ingest_sync_off_ge_70k");
	bench_goal("p99 durable, batched", lat.p99_ms, "ms", false, 250, lat.ok,
		   "batched_p99_le_250ms");
	bench_goal("p99 durable, strict, N threads", stn.p99_ms, "ms", false,
		   250, stn.ok, "strict_p99_le_250ms");
	/* Judged on the host thread's CPU time: on a shared machine the
	 * wall figure mostly measures preemption (both are printed). */
	bench_goal("host CPU per submit (build+enqueue)",
		   host.submit_cpu_ns / 1e3, "us", false, 1.0, host.ok,
		   "submit_cpu_le_1us");
	bench_goal("disk per ~500 B stanza", disk.per_row, "B", false, 800,
		   disk.ok, "disk_le_800B");
	printf("\n");

	bench_corpus_free(&c);
	imp_policy_unref(pol);
	imp_ctx_free(e.ctx);
	free(e.dsn_on);
	free(e.dsn_off);
	free(writer_dsn);
	free(admin_dsn);

	fputs(bench_figs_text(), stdout);
	printf("bench: total_seconds %.1f s\n",
	       (double)(bench_now() - t_start) / 1e9);
	printf("bench: failures %u count\n", bench_failures);
	bench_figs_free();
	return bench_failures ? 1 : 0;
}
