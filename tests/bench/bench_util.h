/*
 * bench_util.h -- helpers shared by the benchmark programs (bench_*.c).
 *
 * Header only (static functions), so that the bench_*.c glob of
 * tests/CMakeLists.txt keeps building one program per file.  Include it
 * after the system headers; before it, define
 *   BENCH_PROG        the program name that prefixes every message;
 * and optionally
 *   BENCH_FAIL_TAG    what follows it in a failure ("FAIL: " by default);
 *   BENCH_GOAL_W1/2/3 the column widths of the goal table (40 16 16).
 * The libpq helpers are there when <libpq-fe.h> was included first.
 *
 * Messages go to stderr; figures are collected with bench_fig/bench_goal
 * as "bench: NAME VALUE UNIT" lines and printed by the program with
 * bench_figs_text() after its table.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../guardian.h"

#ifndef BENCH_PROG
#error "define BENCH_PROG before including bench_util.h"
#endif
#ifndef BENCH_FAIL_TAG
#define BENCH_FAIL_TAG "FAIL: "
#endif
#ifndef BENCH_GOAL_W1
#define BENCH_GOAL_W1 40
#endif
#ifndef BENCH_GOAL_W2
#define BENCH_GOAL_W2 16
#endif
#ifndef BENCH_GOAL_W3
#define BENCH_GOAL_W3 16
#endif

/* ---- messages and memory ------------------------------------------------- */

static unsigned bench_failures;

static inline void bench_vnote(const char *tag, const char *fmt, va_list ap)
{
	fputs(BENCH_PROG ": ", stderr);
	fputs(tag, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static inline void bench_note(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void bench_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vnote("", fmt, ap);
	va_end(ap);
}

/* A message, then exit status 2 (bad command line, missing prerequisite,
 * out of memory). */
static inline void bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static inline void bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vnote("", fmt, ap);
	va_end(ap);
	exit(2);
}

/* A failed check: counted in bench_failures, the run goes on. */
static inline void bench_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void bench_fail(const char *fmt, ...)
{
	va_list ap;

	bench_failures++;
	va_start(ap, fmt);
	bench_vnote(BENCH_FAIL_TAG, fmt, ap);
	va_end(ap);
}

static inline void *bench_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		bench_die("out of memory (%zu bytes)", n);
	return p;
}

static inline void *bench_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		bench_die("out of memory");
	return p;
}

static inline void *bench_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		bench_die("out of memory (%zu bytes)", n);
	return p;
}

/* ---- time and randomness ------------------------------------------------- */

static inline uint64_t bench_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_now(void)
{
	return bench_ns(CLOCK_MONOTONIC);
}

static inline void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u),
			      (long)(ns % 1000000000u)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline void bench_sleep_until(uint64_t abs_ns)
{
	struct timespec ts = {(time_t)(abs_ns / 1000000000u),
			      (long)(abs_ns % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static inline void bench_sleep_ms(unsigned ms)
{
	bench_sleep_until(bench_now() + (uint64_t)ms * 1000000u);
}

/* splitmix64: tiny, fast and the same sequence on every platform, which is
 * what a reproducible corpus needs (rand() is not). */
typedef struct bench_rng_s {
	uint64_t s;
} bench_rng_t;

static inline uint64_t bench_rng_next(bench_rng_t *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- figures ------------------------------------------------------------- */

static char *bench_figs;
static size_t bench_figs_len, bench_figs_cap;

static inline void bench_figf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void bench_figf(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(bench_figs + bench_figs_len,
			      bench_figs_cap - bench_figs_len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < bench_figs_cap - bench_figs_len)
			break;
		bench_figs_cap = (bench_figs_cap + (size_t)n + 1) * 2;
		bench_figs = bench_xrealloc(bench_figs, bench_figs_cap);
	}
	bench_figs_len += (size_t)n;
}

/* The collected "bench: ..." lines ("" when none). */
static inline const char *bench_figs_text(void)
{
	return bench_figs ? bench_figs : "";
}

static inline void bench_figs_free(void)
{
	free(bench_figs);
	bench_figs = NULL;
	bench_figs_len = bench_figs_cap = 0;
}

static inline void bench_fig(const char *name, double value, const char *unit)
{
	if (value == floor(value) && fabs(value) < 1e15)
		bench_figf("bench: %s %.0f %s\n", name, value, unit);
	else
		bench_figf("bench: %s %.3f %s\n", name, value, unit);
}

/* A row of the goal table on stdout and its "bench: goal.KEY" figure.
 * Goals are informational: they never fail the run. */
static inline void bench_goal(const char *what, double value, const char *unit,
			      bool higher_better, double target, bool have,
			      const char *key)
{
	bool met = have && (higher_better ? value >= target : value <= target);
	char v[40], t[40];

	if (have)
		snprintf(v, sizeof v, "%.4g %s", value, unit);
	else
		snprintf(v, sizeof v, "n/a");
	snprintf(t, sizeof t, "%s %.4g %s", higher_better ? ">=" : "<=", target,
		 unit);
	printf("  %-*s %-*s %-*s %s\n", BENCH_GOAL_W1, what, BENCH_GOAL_W2, v,
	       BENCH_GOAL_W3, t,
	       !have ? "not measured"
	       : met ? "met"
		     : "NOT met");
	bench_figf("bench: goal.%s %d %s\n", key,
		   !have ? -1
		   : met ? 1
			 : 0,
		   !have ? "not_measured"
		   : met ? "met"
			 : "not_met");
}

/* ---- cleanup guardian, ports ----------------------------------------------- */

/* The guardian (tests/guardian.h): cleanup() runs if we die, even by
 * SIGKILL. */
static inline void bench_guardian_start(void (*cleanup)(void),
					unsigned grace_ms)
{
	if (test_guardian_start(cleanup, grace_ms) != 0)
		bench_die("guardian: %s", strerror(errno));
}

/* Tells the guardian that cleanup is done (at exit, after cleaning up). */
static inline void bench_guardian_done(void)
{
	test_guardian_done();
}

/* Whether a TCP port of 127.0.0.1 can be bound now.  reuse: with
 * SO_REUSEADDR, as servers that set it too (TIME_WAIT left by an earlier
 * server does not make the port busy). */
static inline bool bench_port_free(int port, bool reuse)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	bool ok;

	if (fd < 0)
		return false;
	if (reuse)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* ---- the source tree ------------------------------------------------------ */

/* Finds the source tree (the directory with scripts/pg-cluster.sh):
 * $IMP_SOURCE_DIR, else ., .., ../.. or ../../..; its real path goes to
 * src (PATH_MAX bytes). */
static inline bool bench_find_src(char *src)
{
	static const char *const rel[] = {".", "..", "../..", "../../.."};
	const char *env = getenv("IMP_SOURCE_DIR");
	char probe[PATH_MAX + 64];

	if (env && *env) {
		snprintf(probe, sizeof probe, "%s/scripts/pg-cluster.sh", env);
		if (access(probe, R_OK) == 0 && realpath(env, src) != NULL)
			return true;
	}
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		snprintf(probe, sizeof probe, "%s/scripts/pg-cluster.sh",
			 rel[i]);
		if (access(probe, R_OK) == 0 && realpath(rel[i], src) != NULL)
			return true;
	}
	return false;
}

/* ---- libpq --------------------------------------------------------------- */

#ifdef LIBPQ_FE_H
static inline PGconn *bench_pq_connect(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, BENCH_PROG ": connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

static inline bool bench_pq_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, BENCH_PROG ": SQL failed: %s\n  %s", sql,
			PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* First column of the first row as a double; NAN on failure or NULL.
 * param: the one parameter $1, or NULL for none. */
static inline double bench_pq_num(PGconn *c, const char *sql, const char *param)
{
	const char *params[1] = {param};
	PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL,
				   param ? params : NULL, NULL, NULL, 0);
	double v = NAN;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
	    !PQgetisnull(r, 0, 0))
		v = strtod(PQgetvalue(r, 0, 0), NULL);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, BENCH_PROG ": SQL failed: %s\n  %s", sql,
			PQerrorMessage(c));
	PQclear(r);
	return v;
}
#endif /* LIBPQ_FE_H */

#endif /* BENCH_UTIL_H */
