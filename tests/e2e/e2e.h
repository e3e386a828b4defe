/* tests/e2e/e2e.h -- harness of the end-to-end tests: a private PostgreSQL
 * cluster, the jabberd2 stack (scripts/j2-stack.sh) with mod_impolicy.so,
 * libstrophe clients that record every stanza they receive, and archive
 * queries through libpq.
 *
 * Contract: every test program calls e2e_init() first.  Whatever the harness
 * starts (PostgreSQL, router/sm/c2s) is stopped at exit, on SIGINT/TERM/HUP
 * and when a check aborts.  A service that does not come up fails the test
 * (exit 1) with its log; nothing is skipped silently.  Each check prints one
 * line ("ok ..." or "FAIL ..."); e2e_finish() returns the exit status.
 * Ports: chosen at random in 34000-34999 (retried on collision).
 * Inputs from CMake (environment): IMP_E2E_SRC (checkout), IMP_E2E_CTL
 * (impolicyctl), IMP_E2E_MODULE (mod_impolicy.so), IMP_E2E_MODULE_OLD (the
 * module built for another jabberd2 version; optional).
 */
#ifndef IMP_E2E_H
#define IMP_E2E_H

#include <stdarg.h>
#include <stddef.h>
#include <strophe.h>

#define E2E_MAX_STANZAS 4096
#define E2E_DOMAIN "acme.example"

typedef struct e2e_client {
	char jid[600];  /* full JID used to log in */
	char bare[256]; /* bare JID */
	xmpp_conn_t *conn;
	int connected; /* 1 ready (roster result seen), -1 failed */
	int n;         /* received stanzas */
	char *got[E2E_MAX_STANZAS]; /* each serialised */
	int seen;                   /* cursor for e2e_next() */
} e2e_client_t;

extern const char *e2e_src; /* checkout */
extern const char *e2e_ctl; /* impolicyctl */
extern char e2e_tmp[256];   /* this test's scratch directory */
extern int e2e_c2s_port;
extern char e2e_pg_dsn[1024];     /* superuser */
extern char e2e_writer_dsn[1024]; /* the module's role */

void e2e_init(const char *name);
int e2e_finish(void);

/* A check: prints ok/FAIL and counts failures. */
int e2e_check(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A failure that makes going on pointless: message, cleanup, exit 1. */
void e2e_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Run a shell command line; returns its exit status (-1 on error). */
int e2e_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write a file (atomically: tmp + rename). */
void e2e_write_file(const char *path, const char *text);
char *e2e_read_file(const char *path); /* malloc'd, NULL if absent */
void e2e_sleep_ms(int ms);

/* PostgreSQL: start a private cluster, init the schema, make a writer
 * role (DSN file e2e_tmp/writer.dsn, 0600). */
void e2e_pg_start(void);
void e2e_pg_stop(void);
int e2e_pg_restart(void); /* start again after e2e_pg_stop(): 0 ok */
/* First column of the first row of SQL with text parameters (NULL-ended
 * list), malloc'd; NULL when no row or on error (printed). */
char *e2e_sql(const char *sql, ...) __attribute__((sentinel));
long e2e_sql_long(const char *sql, ...)
	__attribute__((sentinel)); /* -1 when no row / error */
/* Poll until SQL (with params) gives a count >= want, up to ms. */
long e2e_sql_wait(long want, int ms, const char *sql, ...)
	__attribute__((sentinel));

/* The jabberd2 stack with the module.  impolicy_xml: inner XML of the
 * <impolicy> section (NULL: the default built by e2e_default_xml());
 * sm_env: extra environment of the sm (NULL: none). */
void e2e_stack_start(const char *impolicy_xml, const char *sm_env);
void e2e_stack_stop(void);
/* Start with a module expected to refuse: returns the script's stdout. */
char *e2e_stack_expect_fail(const char *module, const char *impolicy_xml);
int e2e_sm_alive(void);
char *e2e_sm_log(void); /* malloc'd */
/* <impolicy> inner XML: policy, local domain, reload 1 s, notify, archive
 * with the writer's DSN file and a spool in e2e_tmp; extra is appended. */
char *e2e_default_xml(const char *policy, const char *extra);
void e2e_adduser(const char *node); /* password = node */

/* Clients: all in one libstrophe context. */
e2e_client_t *e2e_connect(const char *node, const char *resource);
/* The same over STARTTLS (required), verifying the server's certificate
 * against cafile; start the stack with IMP_J2_TLS=1 in the environment. */
e2e_client_t *e2e_connect_tls(const char *node, const char *resource,
			      const char *cafile);
void e2e_disconnect(e2e_client_t *c);
void e2e_send(e2e_client_t *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Run the event loop for ms milliseconds. */
void e2e_pump(int ms);
/* Wait up to ms for a received stanza (index >= from) containing every
 * one of the NULL-ended substrings; its index or -1. */
int e2e_wait_for(e2e_client_t *c, int from, int ms, ...)
	__attribute__((sentinel));
/* Count received stanzas (index >= from) containing all substrings. */
int e2e_count(e2e_client_t *c, int from, ...) __attribute__((sentinel));
const char *e2e_got(e2e_client_t *c, int i);

/* A fake clock for the sm only (libfaketime): e2e_clock_env() is the
 * IMP_J2_SM_ENV value; e2e_set_clock("2026-11-30 15:00:00") (UTC) moves it
 * (the sm re-reads the file on every clock call; the clock then runs on). */
const char *e2e_clock_env(void);
void e2e_set_clock(const char *utc);

/* A fresh unique id "tag-N" for stanza ids / bodies (static buffer ring). */
const char *e2e_uid(const char *tag);

#endif
