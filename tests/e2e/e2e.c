/* tests/e2e/e2e.c -- the end-to-end harness (see e2e.h). */
#define _GNU_SOURCE
#include "e2e.h"

#include "../guardian.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *e2e_src;
const char *e2e_ctl;
char e2e_tmp[256];
int e2e_c2s_port;
char e2e_pg_dsn[1024];
char e2e_writer_dsn[1024];

static const char *test_name;
static int failures, checks;
static int pg_port, router_port;
static int pg_running, stack_running;
static xmpp_ctx_t *ctx;
static xmpp_log_t *xlog;
static PGconn *pg;
static e2e_client_t *clients[64];
static int n_clients;
static pid_t owner_pid;

/* Stops the daemons of the scratch directory, whichever were started
 * (both scripts' stop is a no-op for what is not running), and removes
 * it.  Used by the guardian, which knows nothing of what ran. */
static void cleanup_scratch(void)
{
	e2e_sh("IMP_J2_DIR='%s/j2' sh '%s/scripts/j2-stack.sh' stop "
	       ">/dev/null 2>&1",
	       e2e_tmp, e2e_src);
	e2e_sh("IMP_PG_DIR='%s/pg' sh '%s/scripts/pg-cluster.sh' stop "
	       ">/dev/null 2>&1",
	       e2e_tmp, e2e_src);
	if (!getenv("IMP_E2E_KEEP"))
		e2e_sh("rm -rf '%s'", e2e_tmp);
}

/* The guardian's job if this process dies, even by SIGKILL (ctest's
 * timeout), which the atexit hook and signal handlers never see. */
static void guardian_cleanup(void)
{
	printf("# %s: test process died; guardian cleans up\n", test_name);
	cleanup_scratch();
}

static void cleanup(void)
{
	if (getpid() != owner_pid)
		return;
	if (stack_running) {
		stack_running = 0;
		e2e_sh("IMP_J2_DIR='%s/j2' sh '%s/scripts/j2-stack.sh' stop",
		       e2e_tmp, e2e_src);
	}
	if (pg) {
		PQfinish(pg);
		pg = NULL;
	}
	if (pg_running) {
		pg_running = 0;
		e2e_sh("IMP_PG_DIR='%s/pg' IMP_PG_PORT=%d sh "
		       "'%s/scripts/pg-cluster.sh' stop >/dev/null",
		       e2e_tmp, pg_port, e2e_src);
	}
	if (e2e_tmp[0] && !getenv("IMP_E2E_KEEP"))
		e2e_sh("rm -rf '%s'", e2e_tmp);
	test_guardian_done(); /* all done: the guardian may go */
}

static void on_signal(int sig)
{
	(void)sig;
	/* Not async-signal-safe, but the alternative is leaking daemons. */
	cleanup();
	_exit(2);
}

void e2e_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FATAL %s: ", test_name ? test_name : "e2e");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (stack_running) {
		char *log = e2e_sm_log();
		if (log) {
			size_t n = strlen(log);
			printf("== sm log (tail)\n%s\n",
			       n > 4000 ? log + n - 4000 : log);
			free(log);
		}
	}
	exit(1);
}

int e2e_check(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	checks++;
	printf("%s ", cond ? "ok  " : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (!cond)
		failures++;
	return cond;
}

int e2e_finish(void)
{
	for (int i = 0; i < n_clients; i++)
		e2e_disconnect(clients[i]);
	if (stack_running) {
		char *log = e2e_sm_log();
		if (log && failures) {
			size_t n = strlen(log);
			printf("== sm log (tail)\n%s\n",
			       n > 6000 ? log + n - 6000 : log);
		}
		free(log);
	}
	/* Sanitizer reports of the sm (sanitizer builds only). */
	if (getenv("IMP_E2E_SM_PRELOAD") && *getenv("IMP_E2E_SM_PRELOAD")) {
		int rc = e2e_sh("ls '%s'/sanitizer.* >/dev/null 2>&1", e2e_tmp);
		if (!e2e_check(rc != 0, "no sanitizer report from the sm"))
			e2e_sh("cat '%s'/sanitizer.*", e2e_tmp);
	}
	printf("%s: %d checks, %d failed\n", test_name, checks, failures);
	return failures || !checks ? 1 : 0;
}

int e2e_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	fflush(stdout);
	int rc = system(cmd);
	free(cmd);
	if (rc == -1)
		return -1;
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

void e2e_write_file(const char *path, const char *text)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		e2e_fatal("cannot write %s: %s", tmp, strerror(errno));
	if (rename(tmp, path) != 0)
		e2e_fatal("cannot rename to %s: %s", path, strerror(errno));
}

char *e2e_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
	}
	fclose(f);
	buf[n] = 0;
	return buf;
}

void e2e_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int rand_port(void)
{
	return 34000 + (int)(((unsigned)rand()) % 1000);
}

void e2e_init(const char *name)
{
	test_name = name;
	owner_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	e2e_src = getenv("IMP_E2E_SRC");
	e2e_ctl = getenv("IMP_E2E_CTL");
	if (!e2e_src || !e2e_ctl || !getenv("IMP_E2E_MODULE"))
		e2e_fatal("IMP_E2E_SRC, IMP_E2E_CTL and IMP_E2E_MODULE must be "
			  "set (run through ctest)");
	srand((unsigned)(time(NULL) ^ (getpid() << 8)));
	snprintf(e2e_tmp, sizeof e2e_tmp, "/tmp/imp-e2e-%s.XXXXXX", name);
	if (!mkdtemp(e2e_tmp))
		e2e_fatal("mkdtemp: %s", strerror(errno));
	/* The postgres OS user must reach its directory inside. */
	chmod(e2e_tmp, 0755);
	if (test_guardian_start(guardian_cleanup, 0) != 0)
		e2e_fatal("guardian: %s", strerror(errno));
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	xmpp_initialize();
	xlog = xmpp_get_default_logger(XMPP_LEVEL_ERROR);
	ctx = xmpp_ctx_new(NULL,
			   getenv("IMP_E2E_XMPP_DEBUG")
				   ? xmpp_get_default_logger(XMPP_LEVEL_DEBUG)
				   : xlog);
	printf("# %s: scratch %s\n", name, e2e_tmp);
}

/* ---- PostgreSQL ---------------------------------------------------------- */

static int pg_start_on(int port)
{
	return e2e_sh("IMP_PG_DIR='%s/pg' IMP_PG_PORT=%d sh "
		      "'%s/scripts/pg-cluster.sh' start >'%s/pg-start.out' "
		      "2>&1",
		      e2e_tmp, port, e2e_src, e2e_tmp);
}

static void pg_connect(void)
{
	if (pg)
		PQfinish(pg);
	pg = PQconnectdb(e2e_pg_dsn);
	if (PQstatus(pg) != CONNECTION_OK) {
		printf("# pg connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		pg = NULL;
	}
}

void e2e_pg_start(void)
{
	int ok = 0;
	for (int i = 0; i < 6 && !ok; i++) {
		pg_port = rand_port();
		ok = pg_start_on(pg_port) == 0;
	}
	if (!ok) {
		e2e_sh("cat '%s/pg-start.out' '%s/pg/server.log' 2>/dev/null",
		       e2e_tmp, e2e_tmp);
		e2e_fatal("PostgreSQL did not start");
	}
	pg_running = 1;
	snprintf(e2e_pg_dsn, sizeof e2e_pg_dsn,
		 "host=%s/pg port=%d user=postgres dbname=postgres", e2e_tmp,
		 pg_port);
	snprintf(e2e_writer_dsn, sizeof e2e_writer_dsn,
		 "host=%s/pg port=%d user=e2e_writer dbname=postgres", e2e_tmp,
		 pg_port);
	if (e2e_sh("'%s' db init --dsn '%s' >'%s/dbinit.out' 2>&1", e2e_ctl,
		   e2e_pg_dsn, e2e_tmp) != 0) {
		e2e_sh("cat '%s/dbinit.out'", e2e_tmp);
		e2e_fatal("impolicyctl db init failed");
	}
	pg_connect();
	if (!pg)
		e2e_fatal("cannot connect to PostgreSQL");
	PGresult *r = PQexec(pg, "CREATE ROLE e2e_writer LOGIN; "
				 "GRANT impolicy_writer TO e2e_writer");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		e2e_fatal("create writer role: %s", PQerrorMessage(pg));
	PQclear(r);
	char path[600];
	snprintf(path, sizeof path, "%s/writer.dsn", e2e_tmp);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", e2e_writer_dsn) < 0 || close(fd))
		e2e_fatal("cannot write %s", path);
	printf("# PostgreSQL on port %d, schema initialised\n", pg_port);
}

void e2e_pg_stop(void)
{
	if (pg) {
		PQfinish(pg);
		pg = NULL;
	}
	if (e2e_sh("IMP_PG_DIR='%s/pg' IMP_PG_PORT=%d sh "
		   "'%s/scripts/pg-cluster.sh' stop >/dev/null",
		   e2e_tmp, pg_port, e2e_src) != 0)
		e2e_fatal("PostgreSQL did not stop");
	pg_running = 0;
}

int e2e_pg_restart(void)
{
	if (pg_start_on(pg_port) != 0)
		return -1;
	pg_running = 1;
	pg_connect();
	return pg ? 0 : -1;
}

static PGresult *vsql(const char *sql, va_list ap)
{
	const char *params[16];
	int n = 0;
	const char *p;
	while ((p = va_arg(ap, const char *)) != NULL && n < 16)
		params[n++] = p;
	if (!pg)
		pg_connect();
	if (!pg)
		return NULL;
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		printf("# sql error: %s# in: %s\n", PQerrorMessage(pg), sql);
		PQclear(r);
		if (PQstatus(pg) != CONNECTION_OK) {
			PQfinish(pg);
			pg = NULL;
		}
		return NULL;
	}
	return r;
}

char *e2e_sql(const char *sql, ...)
{
	va_list ap;
	va_start(ap, sql);
	PGresult *r = vsql(sql, ap);
	va_end(ap);
	char *out = NULL;
	if (r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

long e2e_sql_long(const char *sql, ...)
{
	va_list ap;
	va_start(ap, sql);
	PGresult *r = vsql(sql, ap);
	va_end(ap);
	long v = -1;
	if (r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

long e2e_sql_wait(long want, int ms, const char *sql, ...)
{
	long v = -1;
	for (int waited = 0;; waited += 100) {
		va_list ap;
		va_start(ap, sql);
		PGresult *r = vsql(sql, ap);
		va_end(ap);
		v = -1;
		if (r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
			v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (v >= want || waited >= ms)
			return v;
		/* Keep the clients' streams serviced while waiting. */
		if (ctx && n_clients)
			e2e_pump(100);
		else
			e2e_sleep_ms(100);
	}
}

/* ---- the stack ----------------------------------------------------------- */

char *e2e_default_xml(const char *policy, const char *extra)
{
	char *x;
	if (asprintf(&x,
		     "    <policy>%s</policy>\n"
		     "    <local-domain>" E2E_DOMAIN "</local-domain>\n"
		     "    <reload-interval>1</reload-interval>\n"
		     "    <archive>\n"
		     "      <dsn-file>%s/writer.dsn</dsn-file>\n"
		     "      <node>e2e</node>\n"
		     "      <spool-dir>%s/spool</spool-dir>\n"
		     "      <new-node/>\n"
		     "    </archive>\n%s",
		     policy, e2e_tmp, e2e_tmp, extra ? extra : "") < 0)
		abort();
	return x;
}

static void rc_asprintf(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void rc_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(out, fmt, ap) < 0)
		abort();
	va_end(ap);
}

static int stack_cmd(const char *module, const char *xml, const char *env,
		     const char *expect_fail, const char *outfile)
{
	setenv("IMP_J2_DIR", "", 1);
	char dir[600];
	snprintf(dir, sizeof dir, "%s/j2", e2e_tmp);
	setenv("IMP_J2_DIR", dir, 1);
	setenv("IMP_J2_DOMAIN", E2E_DOMAIN, 1);
	setenv("IMP_J2_MODULE", module, 1);
	setenv("IMP_J2_IMPOLICY_XML", xml, 1);
	/* A sanitizer build of the module needs its runtime loaded first in
	 * the sm (IMP_E2E_SM_PRELOAD, set by CMake with IMP_SANITIZE); its
	 * reports go to files that e2e_finish() checks. */
	const char *pre = getenv("IMP_E2E_SM_PRELOAD");
	char *smenv = NULL;
	if (pre && *pre) {
		const char *lp = env ? strstr(env, "LD_PRELOAD=") : NULL;
		if (lp)
			rc_asprintf(&smenv,
				    "%.*sLD_PRELOAD=%s:%s ASAN_OPTIONS=detect_"
				    "leaks=0:abort_on_error=1:log_path=%s/"
				    "sanitizer UBSAN_OPTIONS=print_stacktrace="
				    "1:halt_on_error=1:log_path=%s/sanitizer",
				    (int)(lp - env), env, pre, lp + 11, e2e_tmp,
				    e2e_tmp);
		else
			rc_asprintf(&smenv,
				    "LD_PRELOAD=%s %s ASAN_OPTIONS=detect_"
				    "leaks=0:abort_on_error=1:log_path=%s/"
				    "sanitizer UBSAN_OPTIONS=print_stacktrace="
				    "1:halt_on_error=1:log_path=%s/sanitizer",
				    pre, env ? env : "", e2e_tmp, e2e_tmp);
	}
	setenv("IMP_J2_SM_ENV", smenv ? smenv : env ? env : "", 1);
	free(smenv);
	setenv("IMP_J2_EXPECT_FAIL", expect_fail ? expect_fail : "", 1);
	setenv("IMP_J2_OFFLINE", "drop", 1);
	char port[16];
	snprintf(port, sizeof port, "%d", e2e_c2s_port);
	setenv("IMP_J2_C2S_PORT", port, 1);
	snprintf(port, sizeof port, "%d", router_port);
	setenv("IMP_J2_ROUTER_PORT", port, 1);
	return e2e_sh("sh '%s/scripts/j2-stack.sh' start >'%s' 2>&1", e2e_src,
		      outfile);
}

void e2e_stack_start(const char *impolicy_xml, const char *sm_env)
{
	char out[600];
	snprintf(out, sizeof out, "%s/stack-start.out", e2e_tmp);
	char *def = NULL;
	if (!impolicy_xml) {
		char pol[600];
		snprintf(pol, sizeof pol, "%s/contrib/policies/acme.yaml",
			 e2e_src);
		impolicy_xml = def = e2e_default_xml(pol, NULL);
	}
	int rc = -1;
	for (int i = 0; i < 5 && rc != 0; i++) {
		if (!e2e_c2s_port || i > 0) {
			e2e_c2s_port = rand_port();
			do
				router_port = rand_port();
			while (router_port == e2e_c2s_port);
		}
		rc = stack_cmd(getenv("IMP_E2E_MODULE"), impolicy_xml, sm_env,
			       NULL, out);
		if (rc != 0) {
			char *o = e2e_read_file(out);
			int port_problem =
				o && (strstr(o, "unable to listen") ||
				      strstr(o, "failed to listen") ||
				      strstr(o, "in use"));
			if (!port_problem) {
				printf("%s\n", o ? o : "");
				free(o);
				break;
			}
			free(o);
		}
	}
	free(def);
	if (rc != 0) {
		e2e_sh("cat '%s'", out);
		e2e_fatal("the jabberd2 stack did not start");
	}
	stack_running = 1;
	printf("# jabberd2 up: c2s 127.0.0.1:%d\n", e2e_c2s_port);
}

void e2e_stack_stop(void)
{
	for (int i = 0; i < n_clients; i++)
		e2e_disconnect(clients[i]);
	if (e2e_sh("IMP_J2_DIR='%s/j2' sh '%s/scripts/j2-stack.sh' stop",
		   e2e_tmp, e2e_src) != 0)
		e2e_fatal("the stack did not stop");
	stack_running = 0;
}

char *e2e_stack_expect_fail(const char *module, const char *impolicy_xml)
{
	char out[600];
	snprintf(out, sizeof out, "%s/stack-fail.out", e2e_tmp);
	int rc = -1;
	char *o = NULL;
	/* A port taken by another test makes the router fail: retry. */
	for (int i = 0; i < 5; i++) {
		e2e_c2s_port = rand_port();
		do
			router_port = rand_port();
		while (router_port == e2e_c2s_port);
		rc = stack_cmd(module, impolicy_xml, NULL, "sm", out);
		free(o);
		o = e2e_read_file(out);
		if (o && strstr(o, "sm exit status:"))
			break;
	}
	if (rc != 0) {
		printf("# j2-stack.sh start (expect sm failure) exit %d:\n%s\n",
		       rc, o ? o : "");
	}
	return o;
}

int e2e_sm_alive(void)
{
	return e2e_sh("IMP_J2_DIR='%s/j2' sh '%s/scripts/j2-stack.sh' status "
		      "2>/dev/null | grep -q '^sm: running'",
		      e2e_tmp, e2e_src) == 0;
}

char *e2e_sm_log(void)
{
	char p[600];
	snprintf(p, sizeof p, "%s/j2/log/sm.log", e2e_tmp);
	return e2e_read_file(p);
}

void e2e_adduser(const char *node)
{
	if (e2e_sh("IMP_J2_DIR='%s/j2' IMP_J2_DOMAIN=" E2E_DOMAIN
		   " sh '%s/scripts/j2-stack.sh' adduser '%s@" E2E_DOMAIN
		   "' '%s'",
		   e2e_tmp, e2e_src, node, node) != 0)
		e2e_fatal("adduser %s failed", node);
}

/* ---- clients ------------------------------------------------------------- */

static int on_stanza(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	e2e_client_t *c = ud;
	(void)conn;
	char *buf = NULL;
	size_t len = 0;
	if (xmpp_stanza_to_text(st, &buf, &len) != XMPP_EOK)
		return 1;
	const char *id = xmpp_stanza_get_id(st);
	if (c->connected == 0 && id && strcmp(id, "e2e-roster") == 0)
		c->connected = 1;
	if (c->n < E2E_MAX_STANZAS)
		c->got[c->n++] = strdup(buf);
	xmpp_free(ctx, buf);
	return 1;
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int err,
		    xmpp_stream_error_t *se, void *ud)
{
	e2e_client_t *c = ud;
	(void)err;
	(void)se;
	if (ev == XMPP_CONN_CONNECT) {
		xmpp_handler_add(conn, on_stanza, NULL, NULL, NULL, c);
		xmpp_send_raw_string(conn, "<presence/>");
		xmpp_send_raw_string(conn,
				     "<iq type='get' id='e2e-roster'><query "
				     "xmlns='jabber:iq:roster'/></iq>");
	} else {
		if (c->connected == 0)
			c->connected = -1;
		else if (c->connected == 1)
			c->connected = -2;
	}
}

e2e_client_t *e2e_connect(const char *node, const char *resource)
{
	return e2e_connect_tls(node, resource, NULL);
}

e2e_client_t *e2e_connect_tls(const char *node, const char *resource,
			      const char *cafile)
{
	e2e_client_t *c = calloc(1, sizeof *c);
	snprintf(c->bare, sizeof c->bare, "%s@" E2E_DOMAIN, node);
	snprintf(c->jid, sizeof c->jid, "%s/%s", c->bare, resource);
	c->conn = xmpp_conn_new(ctx);
	if (cafile) {
		/* STARTTLS required; the server's certificate verified
		 * against cafile (a client trusting the local certificate) */
		xmpp_conn_set_flags(c->conn, XMPP_CONN_FLAG_MANDATORY_TLS);
		xmpp_conn_set_cafile(c->conn, cafile);
	} else {
		xmpp_conn_set_flags(c->conn, XMPP_CONN_FLAG_DISABLE_TLS);
	}
	xmpp_conn_set_jid(c->conn, c->jid);
	xmpp_conn_set_pass(c->conn, node);
	if (xmpp_connect_client(c->conn, "127.0.0.1",
				(unsigned short)e2e_c2s_port, on_conn,
				c) != XMPP_EOK)
		e2e_fatal("xmpp_connect_client %s", c->jid);
	for (int t = 0; t < 1000 && c->connected == 0; t++)
		xmpp_run_once(ctx, 10);
	if (c->connected != 1)
		e2e_fatal("client %s could not log in", c->jid);
	clients[n_clients++] = c;
	return c;
}

void e2e_disconnect(e2e_client_t *c)
{
	if (!c || !c->conn)
		return;
	if (c->connected == 1) {
		xmpp_disconnect(c->conn);
		for (int t = 0; t < 100 && c->connected == 1; t++)
			xmpp_run_once(ctx, 10);
	}
	xmpp_conn_release(c->conn);
	c->conn = NULL;
}

void e2e_send(e2e_client_t *c, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	xmpp_send_raw_string(c->conn, "%s", s);
	free(s);
	xmpp_run_once(ctx, 1);
}

void e2e_pump(int ms)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		xmpp_run_once(ctx, 10);
		clock_gettime(CLOCK_MONOTONIC, &b);
		long el = (b.tv_sec - a.tv_sec) * 1000 +
			  (b.tv_nsec - a.tv_nsec) / 1000000;
		if (el >= ms)
			return;
	}
}

static int matches(const char *s, va_list ap)
{
	const char *p;
	while ((p = va_arg(ap, const char *)) != NULL)
		if (!strstr(s, p))
			return 0;
	return 1;
}

int e2e_wait_for(e2e_client_t *c, int from, int ms, ...)
{
	for (int waited = 0;; waited += 10) {
		for (int i = from; i < c->n; i++) {
			va_list ap;
			va_start(ap, ms);
			int m = matches(c->got[i], ap);
			va_end(ap);
			if (m)
				return i;
		}
		if (waited >= ms)
			return -1;
		xmpp_run_once(ctx, 10);
	}
}

int e2e_count(e2e_client_t *c, int from, ...)
{
	int n = 0;
	for (int i = from; i < c->n; i++) {
		va_list ap;
		va_start(ap, from);
		n += matches(c->got[i], ap);
		va_end(ap);
	}
	return n;
}

const char *e2e_got(e2e_client_t *c, int i)
{
	return i >= 0 && i < c->n ? c->got[i] : "(none)";
}

const char *e2e_uid(const char *tag)
{
	static char ring[8][64];
	static int next, counter;
	char *b = ring[next++ % 8];
	snprintf(b, 64, "%s-%d-%d", tag, (int)getpid() % 10000, ++counter);
	return b;
}

/* ---- fake clock ---------------------------------------------------------- */

#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

const char *e2e_clock_env(void)
{
	static char env[1024];
	if (access(FAKETIME_LIB, R_OK) != 0)
		e2e_fatal("no %s (apt-get install faketime)", FAKETIME_LIB);
	snprintf(env, sizeof env,
		 "LD_PRELOAD=" FAKETIME_LIB
		 " FAKETIME_TIMESTAMP_FILE=%s/faketime"
		 " FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1 TZ=UTC",
		 e2e_tmp);
	return env;
}

void e2e_set_clock(const char *utc)
{
	char path[600], text[128];
	snprintf(path, sizeof path, "%s/faketime", e2e_tmp);
	snprintf(text, sizeof text, "@%s\n", utc);
	e2e_write_file(path, text);
	printf("# sm clock set to %s UTC\n", utc);
}
