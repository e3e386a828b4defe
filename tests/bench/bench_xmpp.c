/*
 * bench_xmpp.c -- the end-to-end XMPP load benchmark of mod_impolicy.
 *
 * Purpose: measure what the module costs a real jabberd2 2.7.0 server on
 * loopback.  Many libstrophe clients (--pairs sender/receiver pairs) log in
 * to acme.example; each sender sends chat messages to its receiver, with
 * the send time (CLOCK_MONOTONIC, same machine) in the body, and the
 * receivers record the delivery latency.  The same run measures the
 * variants and prints them side by side, with ratios against (a):
 *   a  jabberd2 without the module (the baseline);
 *   b  the module with the sample policy (contrib/policies/acme.yaml) and
 *      the archive on, batched durability;
 *   c  the same with strict durability (a message is held on the sm until
 *      its record is durable in PostgreSQL).
 * All stacks run side by side and the variants take turns in --rounds
 * rounds (a b c, b c a, ...), so that a change in the load of the shared
 * machine hits each alike.  A round runs, per variant, a throughput phase
 * (every sender keeps --window messages in flight; messages/s, median over
 * the rounds) and a paced phase (one fixed total rate for every variant:
 * latency at moderate load).  The CPU time of the sm's main thread, the
 * whole sm, c2s, the router and the clients is read from
 * /proc/PID/schedstat around the phases (per message, so (b) - (a) is the
 * module's cost on the sm thread measured from outside).  After the stack
 * is stopped the module's "impolicy: stats: ... handler_us p50=X p99=Y
 * max=Z" line is read from the sm log: its own measure of the time in its
 * handlers on the sm thread per stanza.
 *
 * Environment per variant: scripts/j2-stack.sh start|adduser|stop (the
 * stack script; IMP_J2_STACK overrides its path) with IMP_J2_DIR in a
 * temporary directory and ports in 35000-35099; one private PostgreSQL
 * cluster (scripts/pg-cluster.sh, IMP_PG_DIR/IMP_PG_PORT) for the whole
 * run, schema applied with `impolicyctl db init`, and a login role that is
 * only a member of impolicy_writer, which the module uses.  Every variant
 * archives under its own node.  All of it is stopped and removed at exit,
 * also on error or signal, and by a guardian child if this process dies
 * (--keep keeps the directory).
 *
 * Invariants: the message bodies are generated from a fixed seed and are
 * clean business English, so the policy delivers every one of them; the
 * run checks that each receiver got each of its messages exactly once,
 * that no error stanza came back, and (b, c) that the archive holds one
 * message row per message sent.  Figures are informational: goals are
 * printed as met / not met and never fail the run.  Exit status: 0 when
 * everything was delivered and checked, 1 when something is broken, 2 on
 * a bad command line or missing prerequisites.
 *
 * Threading: per variant, one thread drives all sender connections (one
 * libstrophe context), one all receiver connections (another context);
 * the main thread orchestrates.  Counters shared between them are atomics; a
 * receiver wakes the sender through an eventfd when a window slot frees.
 *
 * Reports: a readable table on stdout, then one line per figure in the
 * form "bench: NAME VALUE UNIT" (grep '^bench:').  Problems go to stderr.
 * See tests/bench/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BX_SEED 0x5eed4a11b0b5ULL
#define BX_DOMAIN "acme.example"
#ifndef BX_PORT_BASE
#define BX_PORT_BASE 35000 /* our range: 35000-35099 */
#endif
#define BX_MAX_PAIRS 500
#define BX_WARMUP 20 /* messages per sender before any timing */
#define BX_LOGIN_TIMEOUT_S 30.0
#define BX_STALL_TIMEOUT_S 15.0 /* no delivery progress for this long */
#define BX_NVAR 3

#define BENCH_PROG "bench_xmpp"
#include "bench_util.h"

#ifndef IMP_BENCH_MODULE
#define IMP_BENCH_MODULE ""
#endif
#ifndef IMP_BENCH_CTL
#define IMP_BENCH_CTL ""
#endif

/* ---- small helpers ------------------------------------------------------- */

static int bx_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of sorted v[n]; 0 when empty. */
static double bx_quantile(const uint64_t *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)ceil(q * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1];
}

/* ---- options ------------------------------------------------------------- */

typedef struct bx_opts_s {
	bool quick, keep;
	unsigned pairs;
	unsigned messages; /* per sender, throughput phase */
	unsigned window;   /* per sender, messages in flight */
	double paced_s;    /* duration of a paced phase */
	double max_s;      /* cap on the sending time of a throughput phase */
	unsigned rounds;   /* interleaved rounds of both phases */
	double rate;       /* paced phase, total msgs/s; 0: automatic */
	char variants[BX_NVAR + 1];
	const char *module, *ctl, *dir;
} bx_opts_t;

/* ---- processes, the temporary directory, cleanup ------------------------- */

static char bx_src[4096];   /* source tree */
static char bx_stack[4200]; /* the stack script */
static char bx_tmp[4096];   /* our temporary directory, "" when none */
static char bx_pgdir[4200];
static int bx_pgport;
static bool bx_pg_started, bx_keep;

/* The child bx_run() waits for; the signal handler terminates its process
 * group, so that a script cut short does not go on starting servers after
 * the guardian has cleaned up. */
static volatile sig_atomic_t bx_child;

/* Runs argv (NULL-terminated) in its own process group and returns its
 * exit status or -1.  Its stdout goes to /dev/null, and its stderr too
 * when quiet. */
static int bx_run(char *const argv[], bool quiet)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			if (quiet)
				dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid);
	bx_child = pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			bx_child = 0;
			return -1;
		}
	bx_child = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int bx_pg_ctl(const char *cmd)
{
	char script[4200];
	char *argv[] = {"/bin/sh", script, (char *)cmd, NULL};

	snprintf(script, sizeof script, "%s/scripts/pg-cluster.sh", bx_src);
	return bx_run(argv, true);
}

/* The stack script with IMP_J2_DIR=dir (the rest of its environment is
 * set by the caller). */
static int bx_stack_ctl(const char *dir, char *const args[], bool quiet)
{
	size_t n = 0;
	char **argv;
	int rc;

	while (args[n])
		n++;
	argv = bench_xcalloc(n + 3, sizeof *argv);
	argv[0] = "/bin/sh";
	argv[1] = bx_stack;
	memcpy(argv + 2, args, n * sizeof *argv);
	setenv("IMP_J2_DIR", dir, 1);
	rc = bx_run(argv, quiet);
	free(argv);
	return rc;
}

static const char bx_var_names[BX_NVAR] = {'a', 'b', 'c'};

static void bx_var_dir(char *buf, size_t n, char var)
{
	snprintf(buf, n, "%s/j2-%c", bx_tmp, var);
}

/* Stops every stack we may have started and the cluster, and removes the
 * temporary directory (unless --keep).  Idempotent; used at exit and by
 * the guardian.  `stop` works by the PIDs in the stack's run/ directory. */
static void bx_cleanup_now(void)
{
	if (bx_tmp[0]) {
		for (size_t i = 0; i < BX_NVAR; i++) {
			char dir[4300], run[4400];
			char *args[] = {"stop", NULL};

			bx_var_dir(dir, sizeof dir, bx_var_names[i]);
			snprintf(run, sizeof run, "%s/run", dir);
			if (access(run, F_OK) == 0)
				(void)bx_stack_ctl(dir, args, true);
		}
	}
	/* Never without IMP_PG_DIR: the script would pick its default. */
	if (bx_pgdir[0] && access(bx_pgdir, F_OK) == 0)
		(void)bx_pg_ctl("stop");
	bx_pg_started = false;
	if (bx_tmp[0] && !bx_keep) {
		char *argv[] = {"/bin/rm", "-rf", bx_tmp, NULL};

		(void)bx_run(argv, true);
	}
}

static void bx_atexit(void)
{
	bx_cleanup_now();
	bench_guardian_done();
}

/* Run by the guardian when we died: stops the stacks and the cluster. */
static void bx_guardian_cleanup(void)
{
	bx_pg_started = true;
	bx_cleanup_now();
}

static void bx_on_signal(int sig)
{
	pid_t child = bx_child;

	if (child > 0)
		kill(-child, SIGTERM);
	/* The guardian sees the pipe close and cleans up. */
	_exit(128 + sig);
}

/* ---- PostgreSQL -------------------------------------------------------------- */

static char bx_admin_dsn[4400], bx_writer_dsn[4400];

/* Starts the private cluster in bx_tmp/pg on a free port of our range,
 * creates the database, applies the schema with `impolicyctl db init` and
 * creates the writer role.  false (after a message) on failure. */
static bool bx_pg_setup(const bx_opts_t *o)
{
	char buf[4400];
	PGconn *c;

	for (int port = BX_PORT_BASE + 90;
	     port < BX_PORT_BASE + 100 && !bx_pg_started; port++) {
		char p[16];

		if (!bench_port_free(port, true))
			continue;
		snprintf(p, sizeof p, "%d", port);
		setenv("IMP_PG_PORT", p, 1);
		bx_pgport = port;
		if (bx_pg_ctl("start") == 0)
			bx_pg_started = true;
	}
	if (!bx_pg_started) {
		bench_fail("could not start PostgreSQL (see %s/server.log)",
			   bx_pgdir);
		return false;
	}
	snprintf(buf, sizeof buf,
		 "host=%s port=%d user=postgres dbname=postgres", bx_pgdir,
		 bx_pgport);
	c = bench_pq_connect(buf);
	if (!c || !bench_pq_exec(c, "CREATE DATABASE imp_bench")) {
		PQfinish(c);
		bench_fail("could not create the database");
		return false;
	}
	PQfinish(c);
	snprintf(bx_admin_dsn, sizeof bx_admin_dsn,
		 "host=%s port=%d user=postgres dbname=imp_bench", bx_pgdir,
		 bx_pgport);
	{
		char *argv[] = {(char *)o->ctl, "db",         "init",
				"--dsn",        bx_admin_dsn, NULL};

		if (bx_run(argv, false) != 0) {
			bench_fail("impolicyctl db init failed");
			return false;
		}
	}
	c = bench_pq_connect(bx_admin_dsn);
	if (!c || !bench_pq_exec(c, "CREATE ROLE bench_writer LOGIN;"
				    "GRANT impolicy_writer TO bench_writer;")) {
		PQfinish(c);
		bench_fail("could not create the writer role");
		return false;
	}
	PQfinish(c);
	snprintf(bx_writer_dsn, sizeof bx_writer_dsn,
		 "host=%s port=%d user=bench_writer dbname=imp_bench", bx_pgdir,
		 bx_pgport);
	return true;
}

/* Message rows archived under node: NAN when the query failed. */
static double bx_pg_messages(const char *node)
{
	PGconn *c = bench_pq_connect(bx_admin_dsn);
	double v;

	if (!c)
		return NAN;
	v = bench_pq_num(c,
			 "SELECT count(*) FROM impolicy.stanza "
			 "WHERE node = $1 AND kind = 'message'",
			 node);
	PQfinish(c);
	return v;
}

/* ---- message bodies ------------------------------------------------------- */

static const char *const bx_vocab[] = {
	"the",      "report",   "meeting",   "project",  "deadline", "review",
	"numbers",  "quarter",  "budget",    "team",     "update",   "please",
	"check",    "draft",    "slides",    "customer", "schedule", "call",
	"tomorrow", "morning",  "afternoon", "we",       "should",   "could",
	"send",     "shared",   "folder",    "version",  "final",    "agenda",
	"notes",    "minutes",  "planning",  "release",  "testing",  "server",
	"deploy",   "ticket",   "issue",     "fixed",    "thanks",   "for",
	"and",      "with",     "about",     "from",     "this",     "that",
	"next",     "week",     "status",    "figures",  "forecast", "invoice",
	"contract", "approval", "pending",   "signed",   "office",   "room",
	"booked",   "confirm",  "question",  "answer",   "latest",   "changes",
	"comments", "feedback", "summary",   "details",
};

/* The token after "ref " carries phase, sequence and send time as letters
 * from a vowel-free alphabet (one per nibble): no digits for the number
 * detectors (cards, phones) to look at, and no word from any list. */
static const char bx_alpha[17] = "bcdgjklmnpqrtvwz";
#define BX_TOKEN_LEN (1 + 8 + 16)

static void bx_token_put(char *out, unsigned phase, uint32_t seq, uint64_t ts)
{
	out[0] = bx_alpha[phase & 15];
	for (int i = 0; i < 8; i++)
		out[1 + i] = bx_alpha[(seq >> (28 - 4 * i)) & 15];
	for (int i = 0; i < 16; i++)
		out[9 + i] = bx_alpha[(ts >> (60 - 4 * i)) & 15];
}

static int bx_nibble(char ch)
{
	const char *p = ch ? memchr(bx_alpha, ch, 16) : NULL;

	return p ? (int)(p - bx_alpha) : -1;
}

static bool bx_token_get(const char *s, unsigned *phase, uint32_t *seq,
			 uint64_t *ts)
{
	int d;

	if ((d = bx_nibble(s[0])) < 0)
		return false;
	*phase = (unsigned)d;
	*seq = 0;
	*ts = 0;
	for (int i = 0; i < 8; i++) {
		if ((d = bx_nibble(s[1 + i])) < 0)
			return false;
		*seq = *seq << 4 | (uint32_t)d;
	}
	for (int i = 0; i < 16; i++) {
		if ((d = bx_nibble(s[9 + i])) < 0)
			return false;
		*ts = *ts << 4 | (uint64_t)d;
	}
	return true;
}

/* A clean business sentence of 8-20 words, fixed by (pair, phase, seq). */
static size_t bx_body_text(char *out, size_t cap, unsigned pair, unsigned phase,
			   uint32_t seq)
{
	bench_rng_t s = {BX_SEED ^ ((uint64_t)pair << 40) ^
			 ((uint64_t)phase << 32) ^ seq};
	unsigned words = 8 + (unsigned)(bench_rng_next(&s) % 13);
	size_t n = 0;

	for (unsigned i = 0; i < words; i++) {
		const char *w =
			bx_vocab[bench_rng_next(&s) % BX_ARRAY_LEN(bx_vocab)];
		size_t l = strlen(w);

		if (n + l + 2 >= cap)
			break;
		if (i)
			out[n++] = ' ';
		memcpy(out + n, w, l);
		if (i == 0)
			out[n] = (char)(out[n] - 'a' + 'A');
		n += l;
	}
	if (n + 1 < cap)
		out[n++] = '.';
	out[n] = '\0';
	return n;
}

/* ---- clients -------------------------------------------------------------- */

enum { BX_CONNECTING = 0, BX_READY = 1, BX_FAILED = -1, BX_CLOSED = 2 };

struct bx_pair_s;

typedef struct bx_client_s {
	xmpp_conn_t *conn;
	struct bx_pair_s *pair;
	bool receiver;
	atomic_int state;
	char jid[96];
} bx_client_t;

typedef struct bx_pair_s {
	struct bx_run_s *R;
	unsigned idx;
	char pw[32];
	bx_client_t snd, rcv;
	uint32_t sent;          /* sender thread only */
	atomic_uint delivered;  /* in the current phase */
	atomic_uint errors;     /* error stanzas, either side */
	atomic_uint unexpected; /* other messages (notices, duplicates) */
	uint8_t *seen;          /* receiver thread: bitmap of seqs */
} bx_pair_t;

enum { BX_IDLE = 0, BX_WINDOWED = 1, BX_PACED = 2 };

/* Processes of a stack, and the CPU figures taken over the timed phases:
 * the sm's main thread (its event loop, where the module's handlers run),
 * the whole sm (with the archive writer thread), c2s, the router, and
 * this benchmark (the clients). */
enum { BX_ROUTER, BX_SM, BX_C2S, BX_NPROC };
enum {
	BX_CPU_SM_MAIN,
	BX_CPU_SM_ALL,
	BX_CPU_C2S,
	BX_CPU_ROUTER,
	BX_CPU_CLIENT,
	BX_NCPU
};
static const char *const bx_proc_names[BX_NPROC] = {"router", "sm", "c2s"};
static const char *const bx_cpu_names[BX_NCPU] = {"sm_thread", "sm_process",
						  "c2s", "router", "clients"};

/* On-CPU nanoseconds of a thread from /proc/.../schedstat (first field;
 * nanosecond resolution, unlike the clock ticks of /proc/PID/stat). */
static bool bx_schedstat(const char *path, uint64_t *ns)
{
	FILE *f = fopen(path, "r");
	unsigned long long v;
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	if (ok)
		*ns = v;
	return ok;
}

/* pid's main thread, or the sum over all its threads. */
static bool bx_pid_cpu(int pid, bool all_threads, uint64_t *ns)
{
	char path[128];

	if (pid <= 0)
		return false;
	if (!all_threads) {
		snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
		return bx_schedstat(path, ns);
	}
	{
		char dpath[64];
		DIR *d;
		struct dirent *e;
		uint64_t sum = 0, one;

		snprintf(dpath, sizeof dpath, "/proc/%d/task", pid);
		d = opendir(dpath);
		if (!d)
			return false;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%.20s/schedstat", dpath,
				 e->d_name);
			if (bx_schedstat(path, &one))
				sum += one;
		}
		closedir(d);
		*ns = sum;
		return true;
	}
}

typedef struct bx_run_s {
	const bx_opts_t *o;
	unsigned npairs;
	bx_pair_t *pairs;
	xmpp_ctx_t *sctx, *rctx;
	int efd; /* receiver -> sender: a window slot is free */
	atomic_bool quit;
	/* Set by main while both loops are quiet (no phase running). */
	atomic_int mode;
	atomic_int mode_ack; /* the mode the sender thread acts on */
	atomic_uint phase;
	uint32_t per_sender; /* messages per sender in the phase */
	uint32_t window;
	double rate;           /* paced: total msgs/s */
	double max_s;          /* sending time allowed in the phase */
	uint64_t t0;           /* phase start (set by the sender) */
	uint64_t deadline;     /* no new messages after this */
	atomic_bool send_done; /* the sender stopped sending in this phase */
	atomic_uint_fast64_t sent_total; /* then: messages it sent */
	atomic_uint_fast64_t last_ns;
	/* latencies of the phase, receiver thread appends */
	uint64_t *lat;
	size_t lat_cap;
	atomic_size_t nlat;
	atomic_uint stale; /* messages of an earlier phase */
	/* the variant: its stack, threads and pooled results */
	char var;
	char dir[4300];
	int c2s, rtr;
	bool stack_up, threads, ok;
	pthread_t st, rt;
	unsigned phases; /* phases run so far */
	double start_s, login_s;
	double *round_mps; /* throughput per round */
	unsigned rounds;
	uint64_t *pool_tp, *pool_paced; /* latencies of all rounds */
	size_t n_tp, n_paced, cap_tp, cap_paced;
	double tp_seconds;
	/* CPU time of the server processes over the timed phases */
	int pid[BX_NPROC];
	uint64_t cpu_ns[BX_NCPU];
	uint64_t cpu_msgs;
	bool cpu_ok;
	uint64_t msgs_total; /* delivered in all phases */
} bx_run_t;

static int bx_on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	bx_client_t *c = ud;
	bx_pair_t *p = c->pair;
	bx_run_t *R = p->R;
	uint64_t now = bench_now(), ts;
	const char *type = xmpp_stanza_get_type(st);
	xmpp_stanza_t *body;
	char *text, *ref;
	unsigned phase;
	uint32_t seq;

	(void)conn;
	if (type && strcmp(type, "error") == 0) {
		atomic_fetch_add(&p->errors, 1);
		return 1;
	}
	body = xmpp_stanza_get_child_by_name(st, "body");
	if (!body)
		return 1; /* chat states and the like */
	if (!c->receiver) {
		/* A sender only gets messages from the server: notices. */
		atomic_fetch_add(&p->unexpected, 1);
		return 1;
	}
	text = xmpp_stanza_get_text(body);
	ref = text ? strstr(text, " ref ") : NULL;
	if (!ref || strlen(ref + 5) < BX_TOKEN_LEN ||
	    !bx_token_get(ref + 5, &phase, &seq, &ts)) {
		atomic_fetch_add(&p->unexpected, 1);
	} else if (phase != atomic_load(&R->phase)) {
		atomic_fetch_add(&R->stale, 1);
	} else if (seq >= R->per_sender ||
		   (p->seen[seq >> 3] & (1u << (seq & 7)))) {
		atomic_fetch_add(&p->unexpected, 1);
	} else {
		size_t k = atomic_fetch_add(&R->nlat, 1);

		p->seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
		if (k < R->lat_cap)
			R->lat[k] = now > ts ? now - ts : 0;
		atomic_store(&R->last_ns, now);
		atomic_fetch_add(&p->delivered, 1);
		if (atomic_load(&R->mode) == BX_WINDOWED) {
			uint64_t one = 1;
			ssize_t w = write(R->efd, &one, sizeof one);

			(void)w;
		}
	}
	if (text)
		xmpp_free(R->rctx, text);
	return 1;
}

static int bx_on_roster(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	bx_client_t *c = ud;
	const char *type = xmpp_stanza_get_type(st);

	(void)conn;
	atomic_store(&c->state, type && strcmp(type, "result") == 0
					? BX_READY
					: BX_FAILED);
	return 0;
}

static void bx_on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
		       xmpp_stream_error_t *serr, void *ud)
{
	bx_client_t *c = ud;

	(void)serr;
	if (ev == XMPP_CONN_CONNECT) {
		xmpp_handler_add(conn, bx_on_message, NULL, "message", NULL, c);
		if (c->receiver) {
			char id[32];

			/* Initial presence, then a roster get: its result
			 * means the sm has processed the presence. */
			snprintf(id, sizeof id, "roster%u", c->pair->idx);
			xmpp_id_handler_add(conn, bx_on_roster, id, c);
			xmpp_send_raw_string(
				conn,
				"<presence/><iq type='get' id='%s'>"
				"<query xmlns='jabber:iq:roster'/></iq>",
				id);
		} else {
			atomic_store(&c->state, BX_READY);
		}
		return;
	}
	if (atomic_load(&c->state) == BX_CONNECTING) {
		bench_note("%s: connection failed (error %d)", c->jid, error);
		atomic_store(&c->state, BX_FAILED);
	} else {
		atomic_store(&c->state, BX_CLOSED);
	}
}

/* Sends message seq of pair p in the current phase, stamped ts. */
static void bx_send(bx_run_t *R, bx_pair_t *p, uint32_t seq, uint64_t ts)
{
	char body[256], tok[BX_TOKEN_LEN + 1];
	unsigned phase = atomic_load(&R->phase);

	bx_body_text(body, sizeof body, p->idx, phase, seq);
	bx_token_put(tok, phase, seq, ts);
	tok[BX_TOKEN_LEN] = '\0';
	xmpp_send_raw_string(p->snd.conn,
			     "<message to='%s/bench' type='chat' id='m%u'>"
			     "<body>%s ref %s</body></message>",
			     p->rcv.jid, seq, body, tok);
}

/* The sender stops a phase: all sent, or the phase's time is up. */
static void bx_send_done(bx_run_t *R)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < R->npairs; i++)
		sum += R->pairs[i].sent;
	atomic_store(&R->sent_total, sum);
	atomic_store(&R->send_done, true);
}

static void *bx_sender_main(void *arg)
{
	bx_run_t *R = arg;
	uint64_t k_next = 0; /* paced: next message of the schedule */
	int seen_mode = BX_IDLE;
	bool done = false;

	while (!atomic_load(&R->quit)) {
		int mode = atomic_load(&R->mode);
		struct pollfd pf = {R->efd, POLLIN, 0};
		uint64_t buf;

		if (mode != seen_mode) {
			seen_mode = mode;
			k_next = 0;
			done = false;
			/* The phase starts when the sender sees it. */
			if (mode != BX_IDLE) {
				R->t0 = bench_now();
				R->deadline =
					R->t0 + (uint64_t)(R->max_s * 1e9);
				atomic_store(&R->last_ns, R->t0);
			}
			atomic_store(&R->mode_ack, mode);
		}
		if (mode == BX_WINDOWED) {
			bool all = true;

			if (!done && bench_now() >= R->deadline)
				done = true;
			for (unsigned i = 0; !done && i < R->npairs; i++) {
				bx_pair_t *p = &R->pairs[i];

				while (p->sent < R->per_sender &&
				       p->sent - atomic_load(&p->delivered) <
					       R->window) {
					bx_send(R, p, p->sent, bench_now());
					p->sent++;
				}
				all = all && p->sent == R->per_sender;
			}
			xmpp_run_once(R->sctx, 0);
			if (!done && all)
				done = true;
			if (done && !atomic_load(&R->send_done))
				bx_send_done(R);
			if (poll(&pf, 1, 2) > 0) {
				ssize_t r = read(R->efd, &buf, sizeof buf);

				(void)r;
			}
		} else if (mode == BX_PACED) {
			uint64_t total = (uint64_t)R->per_sender * R->npairs;
			uint64_t now = bench_now(), next;

			if (!done && now >= R->deadline)
				done = true;
			while (!done && k_next < total) {
				uint64_t at =
					R->t0 + (uint64_t)((double)k_next *
							   1e9 / R->rate);
				bx_pair_t *p;

				if (at > now)
					break;
				p = &R->pairs[k_next % R->npairs];
				bx_send(R, p, p->sent, bench_now());
				p->sent++;
				k_next++;
			}
			xmpp_run_once(R->sctx, 0);
			if (k_next == total)
				done = true;
			if (done && !atomic_load(&R->send_done))
				bx_send_done(R);
			next = !done ? R->t0 + (uint64_t)((double)k_next * 1e9 /
							  R->rate)
				     : now + 2000000u;
			if (next > now + 2000000u)
				next = now + 2000000u;
			bench_sleep_until(next);
		} else {
			/* Idle: nothing to send, only a mode change to see. */
			xmpp_run_once(R->sctx, 1);
			bench_sleep_ms(20);
		}
	}
	return NULL;
}

static void *bx_receiver_main(void *arg)
{
	bx_run_t *R = arg;

	/* Waits in select(2): a message is handled when it arrives; the
	 * timeout only bounds how late the quit flag is seen. */
	while (!atomic_load(&R->quit))
		xmpp_run_once(R->rctx, 50);
	return NULL;
}

/* ---- one variant ----------------------------------------------------------- */

typedef struct bx_phase_res_s {
	bool ok;
	uint64_t n;
	double seconds, msgs_per_s;
	double p50_us, p90_us, p99_us, max_us;
} bx_phase_res_t;

typedef struct bx_var_res_s {
	bool ran, ok;
	bx_phase_res_t tp, paced; /* pooled over the rounds */
	double mps_median, mps_min, mps_max;
	double paced_rate;
	bool have_cpu;
	double cpu_us[BX_NCPU]; /* per message, over the timed phases */
	bool have_stats;
	double h_p50, h_p99, h_max, judged;
	double archived, expect_archived;
	double start_s, login_s;
} bx_var_res_t;

/* Resets per-phase state; both loops must be quiet (mode idle). */
static void bx_phase_reset(bx_run_t *R, unsigned phase, uint32_t per_sender)
{
	for (unsigned i = 0; i < R->npairs; i++) {
		bx_pair_t *p = &R->pairs[i];

		p->sent = 0;
		atomic_store(&p->delivered, 0);
		memset(p->seen, 0, (per_sender + 7) / 8);
	}
	R->per_sender = per_sender;
	atomic_store(&R->nlat, 0);
	atomic_store(&R->phase, phase);
}

/* Runs a phase and waits until every message arrived or progress stalls. */
/* Runs a phase: per_sender messages from every sender, or fewer when
 * max_s runs out first (the sender stops sending then; what it sent is
 * still awaited).  Waits until every message sent arrived or progress
 * stalls.  Leaves the latencies sorted in R->lat. */
static bx_phase_res_t bx_phase(bx_run_t *R, unsigned phase, int mode,
			       uint32_t per_sender, double rate, double max_s)
{
	bx_phase_res_t res;
	uint64_t last_n = 0, total = 0;
	uint64_t last_progress, end;
	size_t n;

	memset(&res, 0, sizeof res);
	bx_phase_reset(R, phase, per_sender);
	R->rate = rate;
	R->max_s = max_s;
	atomic_store(&R->send_done, false);
	last_progress = bench_now();
	atomic_store(&R->mode, mode);
	for (;;) {
		uint64_t got = atomic_load(&R->nlat);

		if (atomic_load(&R->send_done)) {
			total = atomic_load(&R->sent_total);
			if (got >= total)
				break;
		}
		if (got != last_n) {
			last_n = got;
			last_progress = bench_now();
		} else if (bench_now() - last_progress >
			   (uint64_t)(BX_STALL_TIMEOUT_S * 1e9)) {
			break;
		}
		bench_sleep_ms(5); /* the times come from the other threads */
	}
	atomic_store(&R->mode, BX_IDLE);
	/* The sender must have left the phase before the next reset. */
	while (atomic_load(&R->mode_ack) != BX_IDLE)
		bench_sleep_ms(1);
	if (!atomic_load(&R->send_done))
		total = (uint64_t)per_sender * R->npairs; /* stalled early */
	end = atomic_load(&R->last_ns);
	n = atomic_load(&R->nlat);
	if (n > R->lat_cap)
		n = R->lat_cap;
	res.n = n;
	res.ok = total > 0 && n == total;
	if (!res.ok)
		bench_fail("variant %c phase %u: %zu of %" PRIu64 " messages "
			   "delivered (no progress for %.0f s)",
			   R->var, phase, n, total, BX_STALL_TIMEOUT_S);
	res.seconds = (double)(end - R->t0) / 1e9;
	res.msgs_per_s = res.seconds > 0 ? (double)n / res.seconds : 0;
	/* The receiver thread is done with these (nothing is in flight). */
	qsort(R->lat, n, sizeof *R->lat, bx_cmp_u64);
	res.p50_us = bx_quantile(R->lat, n, 0.50) / 1e3;
	res.p90_us = bx_quantile(R->lat, n, 0.90) / 1e3;
	res.p99_us = bx_quantile(R->lat, n, 0.99) / 1e3;
	res.max_us = n ? (double)R->lat[n - 1] / 1e3 : 0;
	return res;
}

static bool bx_wait_clients(bx_run_t *R, int want, double timeout_s)
{
	uint64_t until = bench_now() + (uint64_t)(timeout_s * 1e9);

	for (;;) {
		unsigned done = 0, failed = 0;

		for (unsigned i = 0; i < R->npairs; i++) {
			int s1 = atomic_load(&R->pairs[i].snd.state);
			int s2 = atomic_load(&R->pairs[i].rcv.state);

			done += (s1 == want || s1 == BX_FAILED) +
				(s2 == want || s2 == BX_FAILED);
			failed += (s1 == BX_FAILED) + (s2 == BX_FAILED);
		}
		if (done == 2 * R->npairs)
			return failed == 0;
		if (bench_now() > until)
			return false;
		bench_sleep_ms(5);
	}
}

/* Reads the module's last "impolicy: stats:" line from the sm log. */
static bool bx_read_stats(const char *dir, bx_var_res_t *vr)
{
	char path[4400], line[2048], last[2048] = "";
	FILE *f;
	const char *h, *j;

	snprintf(path, sizeof path, "%s/log/sm.log", dir);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "impolicy: stats:"))
			memcpy(last, line, sizeof last);
	fclose(f);
	h = strstr(last, "handler_us p50=");
	j = strstr(last, "judged=");
	if (!h || !j ||
	    sscanf(h, "handler_us p50=%lf p99=%lf max=%lf", &vr->h_p50,
		   &vr->h_p99, &vr->h_max) != 3 ||
	    sscanf(j, "judged=%lf", &vr->judged) != 1)
		return false;
	return true;
}

static void bx_log_tail(const char *dir, const char *name)
{
	char path[4400];
	char *argv[] = {"/usr/bin/tail", "-n", "15", path, NULL};

	snprintf(path, sizeof path, "%s/log/%s.log", dir, name);
	fprintf(stderr, "---- %s\n", path);
	fflush(stderr);
	{
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			dup2(2, 1);
			execv(argv[0], argv);
			_exit(127);
		}
		if (pid > 0)
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
	}
}

static double bx_ms_since(uint64_t t)
{
	return (double)(bench_now() - t) / 1e6;
}

static void bx_set_impolicy_xml(char var, const char *dir)
{
	char xml[16384], policy[4300];

	snprintf(policy, sizeof policy, "%s/contrib/policies/acme.yaml",
		 bx_src);
	snprintf(xml, sizeof xml,
		 "<policy>%s</policy>"
		 "<local-domain>" BX_DOMAIN "</local-domain>"
		 "<archive>"
		 "<dsn>%s</dsn>"
		 "<node>bench-%c</node>"
		 "<spool-dir>%s/spool</spool-dir>"
		 "<durability>%s</durability>"
		 "<new-node/>"
		 "</archive>",
		 policy, bx_writer_dsn, var, dir,
		 var == 'c' ? "strict" : "batched");
	setenv("IMP_J2_IMPOLICY_XML", xml, 1);
}

/* Reads the PIDs the stack wrote to run/NAME.pid. */
static void bx_read_pids(bx_run_t *R)
{
	for (int i = 0; i < BX_NPROC; i++) {
		char path[4400];
		FILE *f;
		int pid = 0;

		snprintf(path, sizeof path, "%s/run/%s.pid", R->dir,
			 bx_proc_names[i]);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		R->pid[i] = pid;
	}
}

static bool bx_cpu_snap(const bx_run_t *R, uint64_t v[BX_NCPU])
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return false;
	v[BX_CPU_CLIENT] =
		(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return bx_pid_cpu(R->pid[BX_SM], false, &v[BX_CPU_SM_MAIN]) &&
	       bx_pid_cpu(R->pid[BX_SM], true, &v[BX_CPU_SM_ALL]) &&
	       bx_pid_cpu(R->pid[BX_C2S], false, &v[BX_CPU_C2S]) &&
	       bx_pid_cpu(R->pid[BX_ROUTER], false, &v[BX_CPU_ROUTER]);
}

/* Starts the variant's stack, creates its users, logs every client in
 * and warms up.  false (after a message) when anything failed. */
static bool bx_up(const bx_opts_t *o, char var, bx_run_t *R)
{
	char port[16], rport[16];
	unsigned slot = (unsigned)(var - 'a');
	uint64_t t;

	R->o = o;
	R->var = var;
	R->c2s = R->rtr = -1;
	R->efd = -1;
	bx_var_dir(R->dir, sizeof R->dir, var);
	if (mkdir(R->dir, 0755) != 0) {
		bench_fail("mkdir %s: %s", R->dir, strerror(errno));
		return false;
	}
	/* Ports: the first free pair in the variant's block of 20. */
	for (int p = BX_PORT_BASE + 20 * (int)slot;
	     p < BX_PORT_BASE + 20 * (int)slot + 20; p += 2)
		if (bench_port_free(p, true) && bench_port_free(p + 1, true)) {
			R->c2s = p;
			R->rtr = p + 1;
			break;
		}
	if (R->c2s < 0) {
		bench_fail("variant %c: no free ports", var);
		return false;
	}
	snprintf(port, sizeof port, "%d", R->c2s);
	snprintf(rport, sizeof rport, "%d", R->rtr);
	setenv("IMP_J2_DOMAIN", BX_DOMAIN, 1);
	setenv("IMP_J2_C2S_PORT", port, 1);
	setenv("IMP_J2_ROUTER_PORT", rport, 1);
	if (var == 'a') {
		setenv("IMP_J2_MODULE", "", 1);
		unsetenv("IMP_J2_IMPOLICY_XML");
	} else {
		setenv("IMP_J2_MODULE", o->module, 1);
		bx_set_impolicy_xml(var, R->dir);
	}

	t = bench_now();
	{
		char *args[] = {"start", NULL};

		R->stack_up = true; /* stop it even if start half worked */
		if (bx_stack_ctl(R->dir, args, false) != 0) {
			bench_fail("variant %c: the stack did not start", var);
			return false;
		}
	}
	R->start_s = bx_ms_since(t) / 1e3;
	bx_read_pids(R);

	/* Users: loadsendNNN sends to loadrecvNNN; in no policy group.  One
	 * adduser call for all of them. */
	R->npairs = o->pairs;
	R->pairs = bench_xcalloc(R->npairs, sizeof *R->pairs);
	{
		char **args =
			bench_xcalloc(4 * (size_t)R->npairs + 2, sizeof *args);
		size_t n = 0;
		int rc;

		args[n++] = "adduser";
		for (unsigned i = 0; i < R->npairs; i++) {
			bx_pair_t *p = &R->pairs[i];

			p->R = R;
			p->idx = i;
			p->snd.pair = p->rcv.pair = p;
			p->rcv.receiver = true;
			snprintf(p->snd.jid, sizeof p->snd.jid,
				 "loadsend%03u@" BX_DOMAIN, i);
			snprintf(p->rcv.jid, sizeof p->rcv.jid,
				 "loadrecv%03u@" BX_DOMAIN, i);
			snprintf(p->pw, sizeof p->pw, "bench-pw-%u", i);
			args[n++] = p->snd.jid;
			args[n++] = p->pw;
			args[n++] = p->rcv.jid;
			args[n++] = p->pw;
		}
		rc = bx_stack_ctl(R->dir, args, false);
		free(args);
		if (rc != 0) {
			bench_fail("variant %c: adduser failed", var);
			return false;
		}
	}

	{
		uint32_t maxn = o->messages;

		if (maxn < BX_WARMUP)
			maxn = BX_WARMUP;
		R->lat_cap = (size_t)maxn * R->npairs;
		R->lat = bench_xcalloc(R->lat_cap, sizeof *R->lat);
		for (unsigned i = 0; i < R->npairs; i++)
			R->pairs[i].seen = bench_xcalloc((maxn + 7) / 8, 1);
		R->cap_tp = (size_t)o->messages * R->npairs * o->rounds;
		R->pool_tp = bench_xcalloc(R->cap_tp, sizeof *R->pool_tp);
		R->round_mps = bench_xcalloc(o->rounds, sizeof *R->round_mps);
	}
	R->window = o->window;
	R->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (R->efd < 0)
		bench_die("eventfd: %s", strerror(errno));
	R->sctx = xmpp_ctx_new(NULL, NULL);
	R->rctx = xmpp_ctx_new(NULL, NULL);
	if (!R->sctx || !R->rctx)
		bench_die("xmpp_ctx_new failed");

	t = bench_now();
	for (unsigned i = 0; i < R->npairs; i++) {
		bx_client_t *cl[2] = {&R->pairs[i].snd, &R->pairs[i].rcv};

		for (int k = 0; k < 2; k++) {
			char full[128];

			cl[k]->conn = xmpp_conn_new(k ? R->rctx : R->sctx);
			if (!cl[k]->conn)
				bench_die("xmpp_conn_new failed");
			snprintf(full, sizeof full, "%s/bench", cl[k]->jid);
			xmpp_conn_set_flags(cl[k]->conn,
					    XMPP_CONN_FLAG_DISABLE_TLS);
			xmpp_conn_set_jid(cl[k]->conn, full);
			xmpp_conn_set_pass(cl[k]->conn, R->pairs[i].pw);
			if (xmpp_connect_client(cl[k]->conn, "127.0.0.1",
						(unsigned short)R->c2s,
						bx_on_conn,
						cl[k]) != XMPP_EOK) {
				bench_fail("%s: connect failed", cl[k]->jid);
				atomic_store(&cl[k]->state, BX_FAILED);
			}
		}
	}
	if (pthread_create(&R->st, NULL, bx_sender_main, R) != 0)
		bench_die("pthread_create failed");
	if (pthread_create(&R->rt, NULL, bx_receiver_main, R) != 0) {
		atomic_store(&R->quit, true);
		pthread_join(R->st, NULL);
		bench_die("pthread_create failed");
	}
	R->threads = true;
	if (!bx_wait_clients(R, BX_READY, BX_LOGIN_TIMEOUT_S)) {
		bench_fail("variant %c: not every client logged in", var);
		return false;
	}
	R->login_s = bx_ms_since(t) / 1e3;

	/* Warm-up: not reported. */
	if (!bx_phase(R, 1 + R->phases++ % 15, BX_WINDOWED, BX_WARMUP, 0,
		      BX_STALL_TIMEOUT_S)
		     .ok)
		return false;
	R->msgs_total += (uint64_t)BX_WARMUP * R->npairs;
	R->ok = true;
	R->cpu_ok = true;
	return true;
}

static void bx_pool(uint64_t *pool, size_t *n, size_t cap, const uint64_t *v,
		    size_t k)
{
	if (k > cap - *n)
		k = cap - *n;
	memcpy(pool + *n, v, k * sizeof *v);
	*n += k;
}

/* A timed phase; the CPU time of the processes is added up around it. */
static bool bx_timed_phase(bx_run_t *R, int mode, uint32_t per_sender,
			   double rate, bx_phase_res_t *r)
{
	uint64_t c0[BX_NCPU], c1[BX_NCPU];
	bool have_c0;

	if (!R->ok)
		return false;
	have_c0 = bx_cpu_snap(R, c0);
	*r = bx_phase(R, 1 + R->phases++ % 15, mode, per_sender, rate,
		      mode == BX_PACED ? 2 * R->o->paced_s + 5 : R->o->max_s);
	if (!r->ok) {
		R->ok = false;
		return false;
	}
	R->msgs_total += r->n;
	if (have_c0 && bx_cpu_snap(R, c1) && R->cpu_ok) {
		for (int i = 0; i < BX_NCPU; i++)
			R->cpu_ns[i] += c1[i] - c0[i];
		R->cpu_msgs += r->n;
	} else {
		R->cpu_ok = false; /* incomplete: no CPU figures */
	}
	return true;
}

/* The throughput phase of a round. */
static void bx_round_tp(bx_run_t *R, unsigned round)
{
	bx_phase_res_t r;

	if (!bx_timed_phase(R, BX_WINDOWED, R->o->messages, 0, &r))
		return;
	R->round_mps[round] = r.msgs_per_s;
	R->rounds = round + 1;
	R->tp_seconds += r.seconds;
	bx_pool(R->pool_tp, &R->n_tp, R->cap_tp, R->lat, r.n);
}

/* The paced phase of a round: per_sender messages from each sender, sent
 * in turn at rate messages/s in total. */
static void bx_round_paced(bx_run_t *R, uint32_t per_sender, double rate)
{
	bx_phase_res_t r;

	if (!R->pool_paced) {
		R->cap_paced = (size_t)per_sender * R->npairs * R->o->rounds;
		R->pool_paced =
			bench_xcalloc(R->cap_paced, sizeof *R->pool_paced);
	}
	if (!bx_timed_phase(R, BX_PACED, per_sender, rate, &r))
		return;
	bx_pool(R->pool_paced, &R->n_paced, R->cap_paced, R->lat, r.n);
}

static void bx_summary(bx_phase_res_t *res, uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, bx_cmp_u64);
	res->n = n;
	res->p50_us = bx_quantile(v, n, 0.50) / 1e3;
	res->p90_us = bx_quantile(v, n, 0.90) / 1e3;
	res->p99_us = bx_quantile(v, n, 0.99) / 1e3;
	res->max_us = n ? (double)v[n - 1] / 1e3 : 0;
}

/* Checks the counters, disconnects, stops the stack, reads the module's
 * figures and (b, c) the archive, and fills vr. */
static void bx_down(bx_run_t *R, double paced_rate, bx_var_res_t *vr)
{
	char var = R->var;

	vr->ran = true;
	vr->start_s = R->start_s;
	vr->login_s = R->login_s;
	vr->paced_rate = paced_rate;
	if (R->ok) {
		/* Late error stanzas or notices would still be on their way. */
		bench_sleep_ms(200);
		for (unsigned i = 0; i < R->npairs; i++) {
			bx_pair_t *p = &R->pairs[i];
			unsigned e = atomic_load(&p->errors),
				 u = atomic_load(&p->unexpected);

			if (e || u) {
				bench_fail(
					"variant %c pair %u: %u error "
					"stanza(s), %u unexpected message(s)",
					var, i, e, u);
				R->ok = false;
			}
		}
		if (atomic_load(&R->stale)) {
			bench_fail("variant %c: %u message(s) arrived after "
				   "their phase",
				   var, atomic_load(&R->stale));
			R->ok = false;
		}
	}
	if (R->threads) {
		/* libstrophe contexts are not thread-safe: the loops stop
		 * first, then the streams are closed from here. */
		atomic_store(&R->quit, true);
		pthread_join(R->st, NULL);
		pthread_join(R->rt, NULL);
		for (unsigned i = 0; i < R->npairs; i++) {
			if (R->pairs[i].snd.conn)
				xmpp_disconnect(R->pairs[i].snd.conn);
			if (R->pairs[i].rcv.conn)
				xmpp_disconnect(R->pairs[i].rcv.conn);
		}
		for (int k = 0; k < 40; k++) {
			xmpp_run_once(R->sctx, 5);
			xmpp_run_once(R->rctx, 5);
		}
	}
	for (unsigned i = 0; R->pairs && i < R->npairs; i++) {
		if (R->pairs[i].snd.conn)
			xmpp_conn_release(R->pairs[i].snd.conn);
		if (R->pairs[i].rcv.conn)
			xmpp_conn_release(R->pairs[i].rcv.conn);
		free(R->pairs[i].seen);
	}
	if (R->sctx)
		xmpp_ctx_free(R->sctx);
	if (R->rctx)
		xmpp_ctx_free(R->rctx);
	if (R->efd >= 0)
		close(R->efd);
	if (R->stack_up) {
		char *args[] = {"stop", NULL};

		if (bx_stack_ctl(R->dir, args, false) != 0)
			bench_fail("variant %c: stack stop failed", var);
	}
	if (R->ok && var != 'a') {
		char node[16];

		vr->have_stats = bx_read_stats(R->dir, vr);
		if (!vr->have_stats) {
			bench_fail("variant %c: no 'impolicy: stats:' line in "
				   "the sm log",
				   var);
			R->ok = false;
		}
		snprintf(node, sizeof node, "bench-%c", var);
		vr->archived = bx_pg_messages(node);
		vr->expect_archived = (double)R->msgs_total;
		if (!(vr->archived >= vr->expect_archived)) {
			bench_fail("variant %c: %.0f message rows archived, "
				   "expected %.0f",
				   var, vr->archived, vr->expect_archived);
			R->ok = false;
		}
	}
	if (!R->ok && R->stack_up) {
		bx_log_tail(R->dir, "sm");
		bx_log_tail(R->dir, "c2s");
	}
	vr->ok = R->ok;
	if (R->rounds) {
		double *m = bench_xcalloc(R->rounds, sizeof *m);

		memcpy(m, R->round_mps, R->rounds * sizeof *m);
		for (unsigned i = 1; i < R->rounds; i++)
			for (unsigned j = i; j > 0 && m[j - 1] > m[j]; j--) {
				double x = m[j];

				m[j] = m[j - 1];
				m[j - 1] = x;
			}
		vr->mps_min = m[0];
		vr->mps_max = m[R->rounds - 1];
		vr->mps_median =
			R->rounds % 2
				? m[R->rounds / 2]
				: (m[R->rounds / 2 - 1] + m[R->rounds / 2]) / 2;
		free(m);
	}
	vr->have_cpu = R->cpu_ok && R->cpu_msgs;
	for (int i = 0; vr->have_cpu && i < BX_NCPU; i++)
		vr->cpu_us[i] =
			(double)R->cpu_ns[i] / 1e3 / (double)R->cpu_msgs;
	vr->tp.seconds = R->tp_seconds;
	vr->tp.msgs_per_s = vr->mps_median;
	bx_summary(&vr->tp, R->pool_tp, R->n_tp);
	bx_summary(&vr->paced, R->pool_paced, R->n_paced);
	free(R->lat);
	free(R->pairs);
	free(R->pool_tp);
	free(R->pool_paced);
	free(R->round_mps);
	R->pairs = NULL;
}

/* ---- main ------------------------------------------------------------------- */

static void bx_usage(void)
{
	fputs("usage: bench_xmpp [--quick] [--pairs N] [--messages N] "
	      "[--paced-seconds S]\n"
	      "                  [--rounds N] [--max-seconds S] [--window N] "
	      "[--rate R]\n"
	      "                  [--variants a,b,c] [--keep] [--dir DIR] "
	      "[MODULE.so]\n"
	      "Needs the source tree ($IMP_SOURCE_DIR or the cwd), the module "
	      "(argument,\n$IMP_MODULE or the build's) for variants b and c, "
	      "and impolicyctl ($IMP_CTL\nor the build's).\n",
	      stderr);
	exit(2);
}

static unsigned long bx_arg_num(int argc, char **argv, int *i)
{
	char *end;
	unsigned long v;

	if (*i + 1 >= argc)
		bx_usage();
	errno = 0;
	v = strtoul(argv[++*i], &end, 10);
	if (errno || *end || end == argv[*i])
		bx_usage();
	return v;
}

static double bx_ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

static void bx_print_variant(char var, const bx_var_res_t *v)
{
	static const char *const what[BX_NVAR] = {
		"no module", "module + acme.yaml, archive batched",
		"module + acme.yaml, archive strict"};
	char k[64];

	printf("(%c) %s%s\n", var, what[var - 'a'],
	       v->ok ? "" : "  -- FAILED (see stderr)");
	printf("    throughput  median %.0f msgs/s (rounds %.0f .. %.0f); "
	       "latency p50 %.0f p90 %.0f p99 %.0f max %.0f us\n",
	       v->mps_median, v->mps_min, v->mps_max, v->tp.p50_us,
	       v->tp.p90_us, v->tp.p99_us, v->tp.max_us);
	printf("    paced %.0f msgs/s: latency p50 %.0f p90 %.0f p99 %.0f "
	       "max %.0f us\n",
	       v->paced_rate, v->paced.p50_us, v->paced.p90_us, v->paced.p99_us,
	       v->paced.max_us);
	if (var != 'a')
		printf("    sm thread   module handlers p50 %.2f p99 %.2f max "
		       "%.0f us per stanza (%.0f judged); archived %.0f of "
		       "%.0f messages\n",
		       v->h_p50, v->h_p99, v->h_max, v->judged, v->archived,
		       v->expect_archived);
	if (v->have_cpu) {
		printf("    CPU per message:");
		for (int i = 0; i < BX_NCPU; i++)
			printf(" %s %.2f", bx_cpu_names[i], v->cpu_us[i]);
		printf(" us\n");
	}
	printf("    stack start %.2f s, logins %.2f s\n", v->start_s,
	       v->login_s);
#define BX_F(name, val, unit)                              \
	do {                                               \
		snprintf(k, sizeof k, "%c.%s", var, name); \
		bench_fig(k, val, unit);                   \
	} while (0)
	BX_F("ok", v->ok ? 1 : 0, "bool");
	BX_F("msgs_per_s", round(v->mps_median), "msgs/s");
	BX_F("msgs_per_s_min", round(v->mps_min), "msgs/s");
	BX_F("msgs_per_s_max", round(v->mps_max), "msgs/s");
	BX_F("p50", round(v->tp.p50_us), "us");
	BX_F("p90", round(v->tp.p90_us), "us");
	BX_F("p99", round(v->tp.p99_us), "us");
	BX_F("max", round(v->tp.max_us), "us");
	BX_F("paced.rate", v->paced_rate, "msgs/s");
	BX_F("paced.p50", round(v->paced.p50_us), "us");
	BX_F("paced.p90", round(v->paced.p90_us), "us");
	BX_F("paced.p99", round(v->paced.p99_us), "us");
	BX_F("paced.max", round(v->paced.max_us), "us");
	for (int i = 0; v->have_cpu && i < BX_NCPU; i++) {
		char n[48];

		snprintf(n, sizeof n, "cpu.%s", bx_cpu_names[i]);
		BX_F(n, round(v->cpu_us[i] * 1000) / 1000, "us/msg");
	}
	if (var != 'a') {
		BX_F("handler_p50", v->h_p50, "us");
		BX_F("handler_p99", v->h_p99, "us");
		BX_F("handler_max", v->h_max, "us");
		BX_F("judged", v->judged, "stanzas");
		BX_F("archived_messages", v->archived, "rows");
	}
#undef BX_F
}

int main(int argc, char **argv)
{
	bx_opts_t o;
	bx_var_res_t res[BX_NVAR];
	bx_run_t *runs;
	double paced_rate;
	uint32_t paced_n = 0;
	uint64_t t_all = bench_now();
	bool need_module = false;
	bool explicit_msgs = false, explicit_paced = false;
	bool explicit_rounds = false;
	size_t nv;

	memset(&o, 0, sizeof o);
	memset(res, 0, sizeof res);
	o.pairs = 20;
	o.window = 8;
	strcpy(o.variants, "abc");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--quick") == 0) {
			o.quick = true;
		} else if (strcmp(a, "--keep") == 0) {
			o.keep = true;
		} else if (strcmp(a, "--pairs") == 0) {
			o.pairs = (unsigned)bx_arg_num(argc, argv, &i);
		} else if (strcmp(a, "--messages") == 0) {
			o.messages = (unsigned)bx_arg_num(argc, argv, &i);
			explicit_msgs = true;
		} else if (strcmp(a, "--paced-seconds") == 0) {
			o.paced_s = (double)bx_arg_num(argc, argv, &i);
			explicit_paced = true;
		} else if (strcmp(a, "--rounds") == 0) {
			o.rounds = (unsigned)bx_arg_num(argc, argv, &i);
			explicit_rounds = true;
		} else if (strcmp(a, "--max-seconds") == 0) {
			o.max_s = (double)bx_arg_num(argc, argv, &i);
		} else if (strcmp(a, "--window") == 0) {
			o.window = (unsigned)bx_arg_num(argc, argv, &i);
		} else if (strcmp(a, "--rate") == 0) {
			o.rate = (double)bx_arg_num(argc, argv, &i);
		} else if (strcmp(a, "--dir") == 0 && i + 1 < argc) {
			o.dir = argv[++i];
		} else if (strcmp(a, "--variants") == 0 && i + 1 < argc) {
			const char *s = argv[++i];
			size_t n = 0;

			o.variants[0] = '\0';
			for (; *s; s++) {
				if (*s == ',')
					continue;
				/* a, b or c, each at most once */
				if (*s < 'a' || *s > 'c' ||
				    strchr(o.variants, *s) || n >= BX_NVAR)
					bx_usage();
				o.variants[n++] = *s;
				o.variants[n] = '\0';
			}
			if (!n)
				bx_usage();
		} else if (a[0] == '-') {
			bx_usage();
		} else if (!o.module) {
			o.module = a;
		} else {
			bx_usage();
		}
	}
	if (!explicit_msgs)
		o.messages = o.quick ? 300 : 1500;
	if (!explicit_paced)
		o.paced_s = o.quick ? 1 : 2;
	if (o.max_s <= 0)
		o.max_s = o.quick ? 3 : 10;
	if (!explicit_rounds)
		o.rounds = o.quick ? 3 : 5;
	if (o.pairs < 1 || o.pairs > BX_MAX_PAIRS || o.messages < 1 ||
	    o.paced_s < 1 || o.window < 1 || o.rounds < 1 || o.rounds > 1000)
		bx_usage();
	bx_keep = o.keep;
	nv = strlen(o.variants);

	if (!bench_find_src(bx_src))
		bench_die(
			"cannot find the source tree (scripts/pg-cluster.sh); "
			"set IMP_SOURCE_DIR");
	if (getenv("IMP_J2_STACK") && *getenv("IMP_J2_STACK"))
		snprintf(bx_stack, sizeof bx_stack, "%s",
			 getenv("IMP_J2_STACK"));
	else
		snprintf(bx_stack, sizeof bx_stack, "%s/scripts/j2-stack.sh",
			 bx_src);
	if (access(bx_stack, R_OK) != 0)
		bench_die("no stack script %s", bx_stack);
	need_module = strchr(o.variants, 'b') || strchr(o.variants, 'c');
	if (!o.module)
		o.module = getenv("IMP_MODULE");
	if (!o.module || !*o.module)
		o.module = IMP_BENCH_MODULE;
	o.ctl = getenv("IMP_CTL");
	if (!o.ctl || !*o.ctl)
		o.ctl = IMP_BENCH_CTL;
	if (need_module) {
		static char mod_abs[4096], ctl_abs[4096];

		if (!*o.module || !realpath(o.module, mod_abs))
			bench_die("variants b and c need the module: give its "
				  "path or set IMP_MODULE (have '%s')",
				  o.module);
		o.module = mod_abs;
		if (!*o.ctl || !realpath(o.ctl, ctl_abs) ||
		    access(ctl_abs, X_OK) != 0)
			bench_die("variants b and c need impolicyctl: set "
				  "IMP_CTL (have '%s')",
				  o.ctl);
		o.ctl = ctl_abs;
	}

	{
		const char *base = o.dir ? o.dir : getenv("TMPDIR");

		snprintf(bx_tmp, sizeof bx_tmp, "%s/bench_xmpp.XXXXXX",
			 base && *base ? base : "/tmp");
		if (!mkdtemp(bx_tmp)) {
			bx_tmp[0] = '\0';
			bench_die("mkdtemp: %s", strerror(errno));
		}
		/* When root, PostgreSQL runs as `postgres`, which must
		 * reach its directory. */
		chmod(bx_tmp, 0755);
		/* Both paths go into sm.xml verbatim. */
		if (strpbrk(bx_tmp, "<>&'\"") || strpbrk(bx_src, "<>&'\""))
			bench_die("the source and temporary paths must not "
				  "contain XML special characters");
		/* Known before the guardian starts: it stops this cluster
		 * (and only this one) if we die. */
		snprintf(bx_pgdir, sizeof bx_pgdir, "%s/pg", bx_tmp);
		setenv("IMP_PG_DIR", bx_pgdir, 1);
	}
	bench_guardian_start(bx_guardian_cleanup, 500);
	atexit(bx_atexit);
	signal(SIGINT, bx_on_signal);
	signal(SIGTERM, bx_on_signal);
	signal(SIGHUP, bx_on_signal);
	signal(SIGPIPE, SIG_IGN);
	xmpp_initialize();

	printf("bench_xmpp: %u pairs; %u rounds of %u messages per sender "
	       "(window %u) + %.0f s paced; variants %s\n",
	       o.pairs, o.rounds, o.messages, o.window, o.paced_s, o.variants);
	printf("  directory %s%s\n", bx_tmp, o.keep ? " (kept)" : "");
	if (need_module)
		printf("  module %s\n", o.module);
	fflush(stdout);

	if (need_module && !bx_pg_setup(&o))
		return 1;

	/* All variants' stacks run side by side and the rounds interleave
	 * them (a b c, b c a, c a b, ...), so that a change in the load of
	 * the shared machine hits every variant alike. */
	runs = bench_xcalloc(nv, sizeof *runs);
	for (size_t i = 0; i < nv; i++)
		(void)bx_up(&o, o.variants[i], &runs[i]);
	paced_rate = o.rate;
	for (unsigned r = 0; r < o.rounds; r++) {
		for (size_t k = 0; k < nv; k++)
			bx_round_tp(&runs[(r + k) % nv], r);
		if (paced_rate <= 0) {
			/* Half the slowest variant's first throughput,
			 * rounded down to 100: every variant keeps up. */
			double min = 0;

			for (size_t k = 0; k < nv; k++)
				if (runs[k].ok &&
				    (min <= 0 || runs[k].round_mps[0] < min))
					min = runs[k].round_mps[0];
			paced_rate = floor(min / 2 / 100) * 100;
			if (paced_rate < 100)
				paced_rate = 100;
		}
		paced_n = (uint32_t)(paced_rate * o.paced_s / o.pairs);
		if (paced_n < 1)
			paced_n = 1;
		if (paced_n > o.messages) /* the buffers' size */
			paced_n = o.messages;
		for (size_t k = 0; k < nv; k++)
			bx_round_paced(&runs[(r + k) % nv], paced_n,
				       paced_rate);
	}
	for (size_t i = 0; i < nv; i++) {
		char var = o.variants[i];

		bx_down(&runs[i], paced_rate, &res[var - 'a']);
	}
	free(runs);
	printf("\n");
	for (int v = 0; v < BX_NVAR; v++)
		if (res[v].ran)
			bx_print_variant(bx_var_names[v], &res[v]);

	printf("\nRatios (against (a), same run):\n");
	for (int v = 1; v < BX_NVAR; v++) {
		char k[64], var = bx_var_names[v];
		const bx_var_res_t *a = &res[0], *x = &res[v];

		if (!a->ok || !x->ok)
			continue;
		printf("  (%c)/(a) throughput %.3f  p50 %.2f  p99 %.2f  "
		       "paced p50 %.2f  paced p99 %.2f\n",
		       var, bx_ratio(x->mps_median, a->mps_median),
		       bx_ratio(x->tp.p50_us, a->tp.p50_us),
		       bx_ratio(x->tp.p99_us, a->tp.p99_us),
		       bx_ratio(x->paced.p50_us, a->paced.p50_us),
		       bx_ratio(x->paced.p99_us, a->paced.p99_us));
		if (a->have_cpu && x->have_cpu) {
			double d = x->cpu_us[BX_CPU_SM_MAIN] -
				   a->cpu_us[BX_CPU_SM_MAIN];

			printf("  (%c)-(a) sm thread CPU per message %+.2f us "
			       "(whole sm %+.2f us)\n",
			       var, d,
			       x->cpu_us[BX_CPU_SM_ALL] -
				       a->cpu_us[BX_CPU_SM_ALL]);
			snprintf(k, sizeof k, "%c_minus_a.cpu.sm_thread", var);
			bench_fig(k, round(d * 1000) / 1000, "us/msg");
			snprintf(k, sizeof k, "%c_minus_a.cpu.sm_process", var);
			bench_fig(k,
				  round((x->cpu_us[BX_CPU_SM_ALL] -
					 a->cpu_us[BX_CPU_SM_ALL]) *
					1000) /
					  1000,
				  "us/msg");
		}
		snprintf(k, sizeof k, "%c_vs_a.msgs_per_s", var);
		bench_fig(k, bx_ratio(x->mps_median, a->mps_median), "ratio");
		snprintf(k, sizeof k, "%c_vs_a.p50", var);
		bench_fig(k, bx_ratio(x->tp.p50_us, a->tp.p50_us), "ratio");
		snprintf(k, sizeof k, "%c_vs_a.p99", var);
		bench_fig(k, bx_ratio(x->tp.p99_us, a->tp.p99_us), "ratio");
		snprintf(k, sizeof k, "%c_vs_a.paced_p50", var);
		bench_fig(k, bx_ratio(x->paced.p50_us, a->paced.p50_us),
			  "ratio");
		snprintf(k, sizeof k, "%c_vs_a.paced_p99", var);
		bench_fig(k, bx_ratio(x->paced.p99_us, a->paced.p99_us),
			  "ratio");
	}

	printf("\nGoals (informational):\n");
	bench_goal("(b)/(a) throughput",
		   bx_ratio(res[1].mps_median, res[0].mps_median), "", true,
		   0.95, res[0].ok && res[1].ok, "b_vs_a_throughput");
	bench_goal("(b) sm thread per stanza, p50", res[1].h_p50, "us", false,
		   5, res[1].have_stats, "b_handler_p50");
	bench_goal("(b) sm thread per stanza, p99", res[1].h_p99, "us", false,
		   50, res[1].have_stats, "b_handler_p99");
	bench_goal("(c) sm thread per stanza, p50", res[2].h_p50, "us", false,
		   5, res[2].have_stats, "c_handler_p50");
	bench_goal("(c) sm thread per stanza, p99", res[2].h_p99, "us", false,
		   50, res[2].have_stats, "c_handler_p99");

	bench_fig("total_seconds",
		  round((double)(bench_now() - t_all) / 1e7) / 100, "s");
	bench_fig("failures", bench_failures, "count");
	printf("\n%s", bench_figs_text());
	xmpp_shutdown();
	return bench_failures ? 1 : 0;
}
