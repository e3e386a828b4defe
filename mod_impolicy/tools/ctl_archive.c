/*
 * ctl_archive.c -- impolicyctl's PostgreSQL compliance-archive commands:
 * db init|upgrade|status, archive-status, verify, purge, hold
 * add|remove|list, and the writer side of `eval --archive`.
 *
 * Contract:
 *  - The DSN comes from --dsn, --dsn-file (first line, 0600 advised) or the
 *    environment (IMPOLICY_DSN); it is never printed (libpq's own error
 *    messages do not contain passwords).  Passwords may also come from
 *    PGPASSFILE/PGPASSWORD.
 *  - Every value the user gives reaches SQL as a parameter (PQexecParams);
 *    the only SQL sent as text is this file's constants and the schema
 *    scripts of mod_impolicy/sql/.
 *  - db init|upgrade apply each NNN_*.sql whose number is not yet in
 *    impolicy.schema_version, in order, each in one transaction under an
 *    advisory lock (two concurrent inits apply a script once); re-running
 *    is a no-op with a message.
 *  - verify is core/verify.c; this file only prints: one line per problem
 *    on stdout, "NODE seq N: KIND: detail", exit 1 when there is any.
 *  - purge calls impolicy.purge() and, with --key-file, signs the
 *    checkpoints it left in the same transaction; --dry-run lists what
 *    would go (and what holds keep) in a read-only transaction.
 *  - Exit status: 0 ok, 1 problems found / refused, 3 database error,
 *    64 usage.
 *
 * Threading: single-threaded (the archive writer of eval --archive has its
 * own thread inside the library).
 */
#include "ctl_archive.h"

#include "policy.h"
#include "spool.h"
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CA_EXIT_OK 0
#define CA_EXIT_FAIL 1
#define CA_EXIT_USAGE 64
#define CA_MAX_ARGS 16
#define CA_MAX_SCRIPTS 1000

const char ctl_archive_usage_text[] =
	"Archive commands (PostgreSQL; DSN from --dsn DSN, --dsn-file FILE or\n"
	"the environment variable IMPOLICY_DSN; passwords are never shown):\n"
	"  db init|upgrade [--dsn DSN] [--sql-dir DIR]\n"
	"      Apply every schema script (NNN_*.sql) not yet recorded in\n"
	"      impolicy.schema_version, in order, each in one transaction.\n"
	"      Re-running is a no-op.  Needs a superuser (roles are created).\n"
	"  db status [--dsn DSN] [--sql-dir DIR]\n"
	"      Show the applied schema versions and pending scripts (exit 1\n"
	"      when some are pending).\n"
	"  archive-status [--dsn DSN] [--spool-dir DIR]\n"
	"      Per node: records, last seq, last ts, open flags; spool files.\n"
	"  archive-status --status-file F | --spool-dir DIR --node N\n"
	"      A running writer's counters from its status file (default\n"
	"      DIR/N.status; the second form when no DSN is given); exit 1\n"
	"      when the file is missing or older than 5 s (writer not\n"
	"      running).\n"
	"  archive-requeue --spool-dir DIR --node N\n"
	"      After fixing why PostgreSQL refused them, re-queue the node's\n"
	"      quarantined records (DIR/N.quarantine) for replay by its next\n"
	"      writer.  The writer must be stopped.\n"
	"  verify [--dsn DSN] [--node N] [--from T] [--to T] [--key-file F]\n"
	"         [--key-id ID]\n"
	"      Recompute the hash chains; one line per problem (altered,\n"
	"      missing, inserted, reordered, broken-link, duplicate,\n"
	"      checkpoint, unverifiable) and exit 1, or exit 0 when intact.\n"
	"      Needs a role that may read impolicy.stanza (the archive's\n"
	"      owner or a superuser); the writer, reviewer and admin roles\n"
	"      cannot.\n"
	"  purge [--dsn DSN] [--dry-run] [--limit N] [--key-file F]\n"
	"        [--key-id ID]\n"
	"      Remove records past retention and not on hold (audited);\n"
	"      --key-file signs the chain checkpoints the purge leaves.\n"
	"  hold add [--dsn DSN] (--user JID | --conversation KEY |\n"
	"           --from T --to T)... --reason TEXT [--by WHO]\n"
	"  hold remove ID --reason TEXT [--dsn DSN] [--by WHO]\n"
	"  hold list [--dsn DSN] [--all]\n"
	"      Legal holds: records they match are never purged.\n"
	"Options of eval for the archive:\n"
	"  --archive DSN          also record every stanza in the archive\n"
	"                         (exit 3 unless all are durable in "
	"PostgreSQL)\n"
	"  --node N               archive node id (default impolicyctl)\n"
	"  --spool-dir DIR        spool directory (default\n"
	"                         /var/tmp/impolicyctl-spool-UID)\n"
	"  --durability strict|batched, --key-file F, --key-id ID,\n"
	"  --retention CLASS      retention class when the policy names none\n"
	"  --flush-timeout SECS   wait at most SECS (default 60) for every\n"
	"                         record to reach PostgreSQL\n"
	"  --new-node             this node has never recorded: start at seq "
	"1\n"
	"                         even if PostgreSQL cannot confirm it "
	"(without\n"
	"                         it, eval refuses to record, exit 3, until\n"
	"                         PostgreSQL can give the chain head)\n"
	"Times (T) are ISO 8601; without an offset they are UTC.\n"
	"Archive exit status: 0 ok, 1 problems found or refused,\n"
	"3 database error, 64 usage.\n";

static const char *ca_prog = "impolicyctl";

/* ---- options ------------------------------------------------------------ */

typedef struct ca_opts_s {
	const char *dsn, *dsn_file, *sql_dir, *spool_dir, *node, *from, *to;
	const char *key_file, *key_id, *user, *conv, *reason, *by, *limit;
	const char *status_file;
	int dry_run, all;
	const char *args[CA_MAX_ARGS];
	int n_args;
} ca_opts_t;

static int ca_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", ca_prog);
	fprintf(stderr, fmt, arg ? arg : "");
	fprintf(stderr, "\nTry '%s --help' for more information.\n", ca_prog);
	return CA_EXIT_USAGE;
}

/* Parses --name VALUE / --name=VALUE options and positional words.
 * allowed: space-separated option names valid for the command. */
static int ca_parse(int argc, char **argv, const char *allowed, ca_opts_t *o)
{
	static const struct {
		const char *name;
		size_t off;
	} vals[] = {
		{"--dsn", offsetof(ca_opts_t, dsn)},
		{"--dsn-file", offsetof(ca_opts_t, dsn_file)},
		{"--sql-dir", offsetof(ca_opts_t, sql_dir)},
		{"--spool-dir", offsetof(ca_opts_t, spool_dir)},
		{"--node", offsetof(ca_opts_t, node)},
		{"--from", offsetof(ca_opts_t, from)},
		{"--to", offsetof(ca_opts_t, to)},
		{"--key-file", offsetof(ca_opts_t, key_file)},
		{"--key-id", offsetof(ca_opts_t, key_id)},
		{"--user", offsetof(ca_opts_t, user)},
		{"--conversation", offsetof(ca_opts_t, conv)},
		{"--reason", offsetof(ca_opts_t, reason)},
		{"--by", offsetof(ca_opts_t, by)},
		{"--limit", offsetof(ca_opts_t, limit)},
		{"--status-file", offsetof(ca_opts_t, status_file)},
	};
	int only_args = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (o->n_args >= CA_MAX_ARGS)
				return ca_usage("too many arguments%s", NULL);
			o->args[o->n_args++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		char name[32];
		if (nlen >= sizeof name)
			return ca_usage("unknown option '%s'", a);
		memcpy(name, a, nlen);
		name[nlen] = '\0';
		/* Is it allowed for this command? (whole-word match) */
		const char *p = allowed;
		int ok = 0;
		while ((p = strstr(p, name)) != NULL) {
			char after = p[nlen];
			if ((p == allowed || p[-1] == ' ') &&
			    (after == ' ' || after == '\0')) {
				ok = 1;
				break;
			}
			p += nlen;
		}
		if (!ok)
			return ca_usage("unknown option '%s'", a);
		if (strcmp(name, "--dry-run") == 0) {
			o->dry_run = 1;
			continue;
		}
		if (strcmp(name, "--all") == 0) {
			o->all = 1;
			continue;
		}
		size_t k;
		for (k = 0; k < (sizeof vals / sizeof vals[0]); k++)
			if (strcmp(vals[k].name, name) == 0)
				break;
		if (k == (sizeof vals / sizeof vals[0]))
			return ca_usage("unknown option '%s'", a);
		const char *val;
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return ca_usage("option '%s' needs a value", a);
		*(const char **)((char *)o + vals[k].off) = val;
	}
	return 0;
}

/* ---- context, DSN, connection -------------------------------------------- */

static void ca_log(void *ud, imp_log_level_t level, const char *msg)
{
	static const char *const names[] = {"error", "warning", "info",
					    "debug"};
	(void)ud;
	fprintf(stderr, "%s: %s: %s\n", ca_prog,
		(unsigned)level < 4 ? names[level] : "log", msg);
}

static imp_ctx_t *ca_ctx(void)
{
	imp_ctx_config_t cfg;
	imp_ctx_t *ctx = NULL;
	memset(&cfg, 0, sizeof cfg);
	cfg.version = IMP_CTX_CONFIG_VERSION;
	cfg.log = ca_log;
	cfg.log_level = IMP_LOG_WARN;
	if (imp_ctx_new(&cfg, &ctx) != IMP_OK) {
		fprintf(stderr, "%s: cannot create context\n", ca_prog);
		return NULL;
	}
	return ctx;
}

/* Reads the first line of a small file into a malloc'd string. */
static char *ca_read_line(const char *path, const char *what)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "%s: cannot read %s %s: %s\n", ca_prog, what,
			path, strerror(errno));
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		fprintf(stderr, "%s: %s %s is empty\n", ca_prog, what, path);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
			 line[n - 1] == ' '))
		line[--n] = '\0';
	return line;
}

/* Resolves the DSN: explicit, file, environment.  Returns a malloc'd
 * string or NULL (message printed). */
static char *ca_dsn(const char *dsn, const char *dsn_file)
{
	if (dsn != NULL)
		return strdup(dsn);
	if (dsn_file != NULL)
		return ca_read_line(dsn_file, "DSN file");
	const char *env = getenv("IMPOLICY_DSN");
	if (env != NULL && env[0] != '\0')
		return strdup(env);
	fprintf(stderr,
		"%s: no database: give --dsn DSN, --dsn-file FILE or set "
		"IMPOLICY_DSN\n",
		ca_prog);
	return NULL;
}

static void ca_pq_error(const char *what, const PGconn *conn)
{
	const char *m = PQerrorMessage(conn);
	size_t n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	fprintf(stderr, "%s: %s: %.*s\n", ca_prog, what, (int)n, m);
}

static PGconn *ca_connect(const ca_opts_t *o)
{
	char *dsn = ca_dsn(o->dsn, o->dsn_file);
	if (dsn == NULL)
		return NULL;
	PGconn *conn = PQconnectdb(dsn);
	/* Wipe our copy: it may hold a password. */
	memset(dsn, 0, strlen(dsn));
	free(dsn);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		ca_pq_error("cannot connect to the archive database", conn);
		PQfinish(conn);
		return NULL;
	}
	/* Times are shown and read in UTC whatever the server's default. */
	PGresult *res = PQexec(conn, "SET TimeZone = 'UTC'");
	PQclear(res);
	PQsetClientEncoding(conn, "UTF8");
	return conn;
}

/* Runs a parameterised statement; returns the result when its status is
 * the expected one, else prints the error and returns NULL. */
static PGresult *ca_exec(PGconn *conn, const char *what, const char *sql, int n,
			 const char *const *params, ExecStatusType want)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != want) {
		ca_pq_error(what, conn);
		PQclear(res);
		return NULL;
	}
	return res;
}

static int ca_cmd_ok(PGconn *conn, const char *what, const char *sql)
{
	PGresult *res = ca_exec(conn, what, sql, 0, NULL, PGRES_COMMAND_OK);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* Formats a time given by the user (ISO 8601; UTC without offset) for
 * PostgreSQL.  Returns 0 or -1 (message printed). */
static int ca_time(imp_ctx_t *ctx, const char *opt, const char *s, int64_t *us,
		   char out[64])
{
	if (imp_time_parse(ctx, s, NULL, us) != IMP_OK) {
		fprintf(stderr,
			"%s: %s: cannot parse time '%s' (want ISO 8601, e.g. "
			"2026-11-25T10:35:00Z)\n",
			ca_prog, opt, s);
		return -1;
	}
	time_t secs = (time_t)(*us / 1000000);
	int64_t frac = *us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	struct tm tm;
	if (gmtime_r(&secs, &tm) == NULL)
		return -1;
	char date[32];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, 64, "%s.%06d+00", date, (int)frac);
	return 0;
}

/* Reads an HMAC key file: its bytes, one trailing newline dropped. */
static unsigned char *ca_read_key(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: cannot read key file %s: %s\n", ca_prog,
			path, strerror(errno));
		return NULL;
	}
	unsigned char *buf = malloc(4097);
	size_t n = buf ? fread(buf, 1, 4097, f) : 0;
	fclose(f);
	if (buf == NULL || n == 0 || n > 4096) {
		fprintf(stderr, "%s: key file %s must hold 1..4096 bytes\n",
			ca_prog, path);
		free(buf);
		return NULL;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		fprintf(stderr, "%s: key file %s is empty\n", ca_prog, path);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static void ca_free_key(unsigned char *key, size_t len)
{
	if (key != NULL) {
		memset(key, 0, len);
		free(key);
	}
}

/* ---- db init | upgrade | status ------------------------------------------ */

typedef struct ca_script_s {
	int version;
	char name[256];
} ca_script_t;

static int ca_script_cmp(const void *a, const void *b)
{
	const ca_script_t *x = a, *y = b;
	return x->version - y->version;
}

/* Lists NNN_*.sql in dir, sorted.  Returns the count or -1. */
static int ca_scripts(const char *dir, ca_script_t *out, int max)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "%s: cannot open SQL directory %s: %s\n",
			ca_prog, dir, strerror(errno));
		return -1;
	}
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *s = de->d_name;
		size_t len = strlen(s);
		if (len < 9 || len >= sizeof out->name || s[0] < '0' ||
		    s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
		    s[2] > '9' || s[3] != '_' ||
		    strcmp(s + len - 4, ".sql") != 0)
			continue;
		if (n >= max)
			break;
		out[n].version =
			(s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
		memcpy(out[n].name, s, len + 1);
		n++;
	}
	closedir(d);
	qsort(out, (size_t)n, sizeof *out, ca_script_cmp);
	for (int i = 1; i < n; i++)
		if (out[i].version == out[i - 1].version) {
			fprintf(stderr,
				"%s: %s and %s have the same version number\n",
				ca_prog, out[i - 1].name, out[i].name);
			return -1;
		}
	return n;
}

/* Is the schema there?  1 yes, 0 no, -1 error. */
static int ca_has_schema(PGconn *conn)
{
	PGresult *res = ca_exec(conn, "reading the schema version",
				"SELECT to_regclass('impolicy.schema_version') "
				"IS NOT NULL",
				0, NULL, PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	int has = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return has;
}

/* Is version v recorded?  1 yes, 0 no, -1 error. */
static int ca_applied(PGconn *conn, int v)
{
	int has = ca_has_schema(conn);
	if (has <= 0)
		return has;
	char vs[16];
	snprintf(vs, sizeof vs, "%d", v);
	const char *p[1] = {vs};
	PGresult *res = ca_exec(conn, "reading the schema version",
				"SELECT 1 FROM impolicy.schema_version "
				"WHERE version = $1::int",
				1, p, PGRES_TUPLES_OK);
	if (res == NULL)
		return -1;
	int n = PQntuples(res) > 0;
	PQclear(res);
	return n;
}

static int ca_apply(PGconn *conn, const char *dir, const ca_script_t *s,
		    int *applied)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, s->name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: cannot read %s: %s\n", ca_prog, path,
			strerror(errno));
		return CA_EXIT_FAIL;
	}
	char *sql = NULL;
	size_t len = 0;
	{
		size_t cap = 0;
		for (;;) {
			if (len + 65536 + 1 > cap) {
				cap = cap ? cap * 2 : 262144;
				char *p = realloc(sql, cap);
				if (p == NULL) {
					free(sql);
					fclose(f);
					fprintf(stderr, "%s: out of memory\n",
						ca_prog);
					return CA_EXIT_FAIL;
				}
				sql = p;
			}
			size_t n = fread(sql + len, 1, 65536, f);
			len += n;
			if (n == 0)
				break;
		}
		sql[len] = '\0';
	}
	fclose(f);

	*applied = 0;
	if (ca_cmd_ok(conn, "BEGIN", "BEGIN") != 0) {
		free(sql);
		return CTL_EXIT_DB;
	}
	/* Serialise concurrent inits; then look again under the lock. */
	PGresult *res = ca_exec(
		conn, "taking the schema lock",
		"SELECT pg_advisory_xact_lock(hashtext('impolicy.schema'))", 0,
		NULL, PGRES_TUPLES_OK);
	int st = CTL_EXIT_DB;
	if (res == NULL)
		goto rollback;
	PQclear(res);
	int a = ca_applied(conn, s->version);
	if (a < 0)
		goto rollback;
	if (a > 0) {
		st = CA_EXIT_OK; /* someone else applied it meanwhile */
		goto rollback;
	}
	/* The script is SQL of this source tree, not user input: simple
	 * query protocol, several statements, one transaction (ours). */
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		char what[300];
		snprintf(what, sizeof what, "%s failed (rolled back)", s->name);
		ca_pq_error(what, conn);
		PQclear(res);
		st = CA_EXIT_FAIL;
		goto rollback;
	}
	PQclear(res);
	/* Each script records itself; record it if one forgot. */
	char vs[16];
	snprintf(vs, sizeof vs, "%d", s->version);
	const char *p[2] = {vs, s->name};
	if (ca_cmd_ok(conn, "RESET ROLE", "RESET ROLE") != 0)
		goto rollback;
	res = ca_exec(conn, "recording the schema version",
		      "INSERT INTO impolicy.schema_version (version, name) "
		      "SELECT $1::int, $2::text WHERE NOT EXISTS (SELECT 1 "
		      "FROM impolicy.schema_version WHERE version = $1::int)",
		      2, p, PGRES_COMMAND_OK);
	if (res == NULL)
		goto rollback;
	PQclear(res);
	if (ca_cmd_ok(conn, "COMMIT", "COMMIT") != 0) {
		free(sql);
		return CTL_EXIT_DB;
	}
	free(sql);
	*applied = 1;
	return CA_EXIT_OK;
rollback:
	(void)ca_cmd_ok(conn, "ROLLBACK", "ROLLBACK");
	free(sql);
	return st;
}

static int ca_cmd_db(int argc, char **argv)
{
	ca_opts_t o;
	memset(&o, 0, sizeof o);
	int st = ca_parse(argc, argv, "--dsn --dsn-file --sql-dir", &o);
	if (st != 0)
		return st;
	if (o.n_args != 1)
		return ca_usage("db: say init, upgrade or status%s", NULL);
	const char *sub = o.args[0];
	if (strcmp(sub, "init") != 0 && strcmp(sub, "upgrade") != 0 &&
	    strcmp(sub, "status") != 0)
		return ca_usage("db: unknown subcommand '%s'", sub);
#ifdef IMP_SQL_DIR
	const char *dir = o.sql_dir ? o.sql_dir : IMP_SQL_DIR;
#else
	const char *dir = o.sql_dir ? o.sql_dir : "mod_impolicy/sql";
#endif
	ca_script_t *scripts = calloc(CA_MAX_SCRIPTS, sizeof *scripts);
	if (scripts == NULL)
		return CA_EXIT_FAIL;
	int n = ca_scripts(dir, scripts, CA_MAX_SCRIPTS);
	if (n <= 0) {
		if (n == 0)
			fprintf(stderr, "%s: no NNN_*.sql scripts in %s\n",
				ca_prog, dir);
		free(scripts);
		return CA_EXIT_FAIL;
	}
	PGconn *conn = ca_connect(&o);
	if (conn == NULL) {
		free(scripts);
		return CTL_EXIT_DB;
	}
	int has = ca_has_schema(conn);
	if (has < 0) {
		st = CTL_EXIT_DB;
		goto out;
	}
	if (strcmp(sub, "upgrade") == 0 && !has) {
		fprintf(stderr,
			"%s: db upgrade: no impolicy schema in this database; "
			"run 'impolicyctl db init' first\n",
			ca_prog);
		st = CA_EXIT_FAIL;
		goto out;
	}
	if (strcmp(sub, "status") == 0) {
		int pending = 0;
		if (has) {
			PGresult *res = ca_exec(
				conn, "reading the schema version",
				"SELECT version, name, applied_at, applied_by "
				"FROM impolicy.schema_version ORDER BY version",
				0, NULL, PGRES_TUPLES_OK);
			if (res == NULL) {
				st = CTL_EXIT_DB;
				goto out;
			}
			for (int i = 0; i < PQntuples(res); i++)
				printf("applied %s (version %s) at %s by %s\n",
				       PQgetvalue(res, i, 1),
				       PQgetvalue(res, i, 0),
				       PQgetvalue(res, i, 2),
				       PQgetvalue(res, i, 3));
			PQclear(res);
		} else {
			printf("no impolicy schema in this database\n");
		}
		for (int i = 0; i < n; i++) {
			int a = has ? ca_applied(conn, scripts[i].version) : 0;
			if (a < 0) {
				st = CTL_EXIT_DB;
				goto out;
			}
			if (!a) {
				printf("pending %s (version %d)\n",
				       scripts[i].name, scripts[i].version);
				pending++;
			}
		}
		if (pending)
			printf("schema: %d script(s) pending; run "
			       "'impolicyctl db %s'\n",
			       pending, has ? "upgrade" : "init");
		else
			printf("schema: up to date\n");
		st = pending ? CA_EXIT_FAIL : CA_EXIT_OK;
		goto out;
	}
	int done = 0;
	for (int i = 0; i < n; i++) {
		int a = ca_applied(conn, scripts[i].version);
		if (a < 0) {
			st = CTL_EXIT_DB;
			goto out;
		}
		if (a)
			continue;
		int applied = 0;
		st = ca_apply(conn, dir, &scripts[i], &applied);
		if (st != CA_EXIT_OK)
			goto out;
		if (applied) {
			printf("applied %s (schema version %d)\n",
			       scripts[i].name, scripts[i].version);
			done++;
		}
	}
	if (done == 0)
		printf("schema is up to date (version %d); nothing to do\n",
		       scripts[n - 1].version);
	st = CA_EXIT_OK;
out:
	PQfinish(conn);
	free(scripts);
	return st;
}

/* ---- archive-status ------------------------------------------------------- */

static void ca_spool_status(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		printf("spool %s: cannot open: %s\n", dir, strerror(errno));
		return;
	}
	/* Segment names: NODE.SEQ16HEX.spool; corrupt ones end .corrupt. */
	struct {
		char node[256];
		unsigned long segs, corrupt;
		unsigned long long bytes;
		uint64_t quarantined;
		int quarantine_bad;
	} nodes[64];
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *s = de->d_name;
		size_t len = strlen(s);
		int corrupt = 0;
		size_t base;
		int quarantine = 0;
		if (len > 6 && strcmp(s + len - 6, ".spool") == 0)
			base = len - 6;
		else if (len > 11 && strcmp(s + len - 11, ".quarantine") == 0) {
			/* NODE.quarantine: records PostgreSQL refused for a
			 * data reason (docs/archive.md, "Poison rows"). */
			quarantine = 1;
			base = len - 11 + 17; /* no .SEQ16HEX part */
		} else if (len > 8 && strcmp(s + len - 8, ".corrupt") == 0) {
			corrupt = 1;
			base = len - 8;
			if (base > 6 && strncmp(s + base - 6, ".spool", 6) == 0)
				base -= 6;
		} else
			continue;
		if (!quarantine && (base < 18 || s[base - 17] != '.'))
			continue;
		size_t nl = base - 17;
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, s);
		if (stat(path, &sb) != 0)
			continue;
		int k;
		for (k = 0; k < n; k++)
			if (strlen(nodes[k].node) == nl &&
			    strncmp(nodes[k].node, s, nl) == 0)
				break;
		if (k == n) {
			if (n == 64 || nl >= sizeof nodes[0].node)
				continue;
			memset(&nodes[n], 0, sizeof nodes[n]);
			memcpy(nodes[n].node, s, nl);
			n++;
		}
		if (quarantine) {
			uint64_t q = 0;
			if (imp_spool_quarantine_count(path, &q) != IMP_OK)
				nodes[k].quarantine_bad = 1;
			nodes[k].quarantined += q;
			continue;
		}
		if (corrupt)
			nodes[k].corrupt++;
		else
			nodes[k].segs++;
		nodes[k].bytes += (unsigned long long)sb.st_size;
	}
	closedir(d);
	if (n == 0)
		printf("spool %s: empty (nothing waiting for PostgreSQL)\n",
		       dir);
	for (int k = 0; k < n; k++) {
		printf("spool %s: node %s: %lu segment(s), %llu bytes waiting",
		       dir, nodes[k].node, nodes[k].segs, nodes[k].bytes);
		if (nodes[k].corrupt)
			printf(", %lu corrupt segment(s) kept for the operator",
			       nodes[k].corrupt);
		if (nodes[k].quarantined || nodes[k].quarantine_bad)
			printf(", %" PRIu64 " quarantined record(s)%s in "
			       "%s.quarantine (refused by PostgreSQL; see "
			       "docs/archive.md)",
			       nodes[k].quarantined,
			       nodes[k].quarantine_bad ? " (file damaged)" : "",
			       nodes[k].node);
		printf("\n");
	}
}

/* A running writer's status file (imp_archive_config_t.status_file): one
 * JSON object our writer writes, "key": value pairs.  Returns the number
 * after "key": or -1 when absent. */
static int ca_json_num(const char *js, const char *key, long long *out)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(js, pat);
	if (p == NULL)
		return -1;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (end == p || errno != 0)
		return -1;
	*out = v;
	return 0;
}

/* The "node" string (printable; escapes other than \" and \\ shown as
 * '?'). */
static void ca_json_node(const char *js, char *out, size_t size)
{
	snprintf(out, size, "?");
	const char *p = strstr(js, "\"node\":");
	if (p == NULL)
		return;
	p += 7;
	while (*p == ' ')
		p++;
	if (*p++ != '"')
		return;
	size_t n = 0;
	for (; *p && *p != '"' && n + 1 < size; p++) {
		char c = *p;
		if (c == '\\') {
			p++;
			c = (*p == '"' || *p == '\\') ? *p : '?';
			if (*p == 'u')
				p += strlen(p) >= 5 ? 4 : 0;
			if (*p == '\0')
				break;
		}
		out[n++] = (unsigned char)c < 0x20 ? '?' : c;
	}
	out[n] = '\0';
}

#define CA_STATUS_MAX_AGE_S 5

static int ca_status_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr,
			"%s: archive-status: no status file %s: %s (is the "
			"writer running, with this status file?)\n",
			ca_prog, path, strerror(errno));
		return CA_EXIT_FAIL;
	}
	char js[8192];
	size_t n = fread(js, 1, sizeof js - 1, f);
	js[n] = '\0';
	struct stat sb;
	int st_rc = fstat(fileno(f), &sb);
	fclose(f);
	static const char *const keys[] = {
		"pid",         "updated_us",  "submitted",
		"queued",      "written",     "spooled",
		"replayed",    "refused",     "lost",
		"quarantined", "spool_bytes", "oldest_unwritten_us",
		"connected",   "last_seq"};
	enum { K_N = sizeof keys / sizeof keys[0] };
	long long v[K_N];
	for (size_t k = 0; k < K_N; k++) {
		if (ca_json_num(js, keys[k], &v[k]) != 0) {
			fprintf(stderr,
				"%s: archive-status: %s is not a status file "
				"(no \"%s\")\n",
				ca_prog, path, keys[k]);
			return CA_EXIT_FAIL;
		}
	}
	char node[256];
	ca_json_node(js, node, sizeof node);
	/* Age from the file's modification time: the kernel's clock, which
	 * a faked clock in the writer's process does not move. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double age =
		st_rc == 0
			? (double)(now.tv_sec - sb.st_mtim.tv_sec) +
				  (double)(now.tv_nsec - sb.st_mtim.tv_nsec) /
					  1e9
			: 1e9;
	time_t upd = (time_t)(v[1] / 1000000);
	struct tm tm;
	char when[64] = "?";
	if (gmtime_r(&upd, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("node %s: writer pid %lld, status updated %.1f s ago "
	       "(writer clock %s), connected %s\n",
	       node, v[0], age < 0 ? 0.0 : age, when, v[12] ? "yes" : "no");
	printf("node %s: submitted %lld, queued %lld, written %lld, spooled "
	       "%lld, replayed %lld, refused %lld, lost %lld, quarantined "
	       "%lld, spool bytes %lld, oldest unwritten %lld us, last seq "
	       "%lld\n",
	       node, v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
	       v[11], v[13]);
	if (age > CA_STATUS_MAX_AGE_S) {
		fprintf(stderr,
			"%s: archive-status: %s is %.0f s old (more than %d "
			"s): the writer of node %s is not running\n",
			ca_prog, path, age, CA_STATUS_MAX_AGE_S, node);
		return CA_EXIT_FAIL;
	}
	return CA_EXIT_OK;
}

static int ca_cmd_status(int argc, char **argv)
{
	ca_opts_t o;
	memset(&o, 0, sizeof o);
	int st = ca_parse(argc, argv,
			  "--dsn --dsn-file --spool-dir --node --status-file",
			  &o);
	if (st != 0)
		return st;
	if (o.n_args != 0)
		return ca_usage("archive-status: unexpected argument '%s'",
				o.args[0]);
	const char *env_dsn = getenv("IMPOLICY_DSN");
	int have_dsn = o.dsn || o.dsn_file || (env_dsn && *env_dsn);
	if (o.status_file) {
		if (o.dsn || o.dsn_file)
			return ca_usage("archive-status: --status-file reads "
					"no database (drop --dsn)%s",
					NULL);
		return ca_status_file(o.status_file);
	}
	if (o.spool_dir && o.node && !have_dsn) {
		size_t len = strlen(o.spool_dir) + strlen(o.node) + 9;
		char *path = malloc(len);
		if (path == NULL)
			return CA_EXIT_FAIL;
		snprintf(path, len, "%s/%s.status", o.spool_dir, o.node);
		st = ca_status_file(path);
		free(path);
		return st;
	}
	PGconn *conn = ca_connect(&o);
	if (conn == NULL)
		return CTL_EXIT_DB;
	const char *p[1] = {o.node};
	PGresult *res = ca_exec(
		conn, "reading the archive",
		"SELECT s.node, count(*), max(s.seq), max(s.ts), "
		"(SELECT count(*) FROM impolicy.flag f WHERE f.node = s.node "
		" AND f.state = 'open') "
		"FROM impolicy.stanza s WHERE ($1::text IS NULL OR s.node = "
		"$1) "
		"GROUP BY s.node ORDER BY s.node",
		1, p, PGRES_TUPLES_OK);
	if (res == NULL) {
		PQfinish(conn);
		return CTL_EXIT_DB;
	}
	if (PQntuples(res) == 0)
		printf("archive: no records\n");
	for (int i = 0; i < PQntuples(res); i++)
		printf("node %s: records %s, last seq %s, last ts %s, open "
		       "flags %s\n",
		       PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		       PQgetvalue(res, i, 4));
	PQclear(res);
	PQfinish(conn);
	if (o.spool_dir)
		ca_spool_status(o.spool_dir);
	return CA_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------------ */

static void ca_verify_cb(void *ud, const imp_verify_problem_t *p)
{
	(void)ud;
	if (p->seq == 0)
		printf("%s: %s: %s\n", p->node, imp_verify_kind_name(p->kind),
		       p->detail);
	else if (p->seq_last > p->seq)
		printf("%s seq %" PRIu64 "-%" PRIu64 ": %s: %s\n", p->node,
		       p->seq, p->seq_last, imp_verify_kind_name(p->kind),
		       p->detail);
	else
		printf("%s seq %" PRIu64 ": %s: %s\n", p->node, p->seq,
		       imp_verify_kind_name(p->kind), p->detail);
}

static int ca_cmd_verify(int argc, char **argv)
{
	ca_opts_t o;
	memset(&o, 0, sizeof o);
	int st = ca_parse(argc, argv,
			  "--dsn --dsn-file --node --from --to --key-file "
			  "--key-id",
			  &o);
	if (st != 0)
		return st;
	if (o.n_args != 0)
		return ca_usage("verify: unexpected argument '%s'", o.args[0]);
	imp_ctx_t *ctx = ca_ctx();
	if (ctx == NULL)
		return CA_EXIT_FAIL;
	imp_verify_opts_t vo;
	memset(&vo, 0, sizeof vo);
	vo.node = o.node;
	vo.key_id = o.key_id;
	char ts[64];
	unsigned char *key = NULL;
	size_t key_len = 0;
	PGconn *conn = NULL;
	st = CA_EXIT_USAGE;
	if (o.from) {
		if (ca_time(ctx, "--from", o.from, &vo.from_us, ts) != 0)
			goto out;
		vo.has_from = true;
	}
	if (o.to) {
		if (ca_time(ctx, "--to", o.to, &vo.to_us, ts) != 0)
			goto out;
		vo.has_to = true;
	}
	st = CA_EXIT_FAIL;
	if (o.key_file) {
		key = ca_read_key(o.key_file, &key_len);
		if (key == NULL)
			goto out;
		vo.key = key;
		vo.key_len = key_len;
	}
	conn = ca_connect(&o);
	if (conn == NULL) {
		st = CTL_EXIT_DB;
		goto out;
	}
	imp_verify_stats_t vs;
	char err[512];
	int rc = imp_verify_run(ctx, conn, &vo, ca_verify_cb, NULL, &vs, err,
				sizeof err);
	if (rc != IMP_OK) {
		fprintf(stderr, "%s: verify: %s\n", ca_prog,
			err[0] ? err : imp_strerror(rc));
		st = CTL_EXIT_DB;
		goto out;
	}
	if (vs.unsigned_checked)
		fprintf(stderr,
			"%s: verify: %" PRIu64 " checkpoint signature(s) not "
			"checked: no --key-file\n",
			ca_prog, vs.unsigned_checked);
	fprintf(stderr,
		"%s: verify: %s: %" PRIu64 " node(s), %" PRIu64
		" record(s), %" PRIu64 " purged, %" PRIu64
		" checkpoint(s), %" PRIu64 " problem(s)\n",
		ca_prog, vs.problems ? "FAILED" : "intact", vs.nodes,
		vs.records, vs.purged, vs.checkpoints, vs.problems);
	st = vs.problems ? CA_EXIT_FAIL : CA_EXIT_OK;
out:
	if (fflush(stdout) != 0)
		st = CA_EXIT_FAIL;
	PQfinish(conn);
	ca_free_key(key, key_len);
	imp_ctx_free(ctx);
	return st;
}

/* ---- purge --------------------------------------------------------------------- */

/* The dry run runs the real impolicy.purge() -- the same retention and
 * hold checks, as the same role -- lists what it removed and rolls the
 * whole transaction back: what it shows is exactly what a purge would do
 * now, and it leaves no trace (nor an audit row: nothing happened). */
static int ca_purge_dry(PGconn *conn, const char *limit)
{
	const char *p[1] = {limit};
	if (ca_cmd_ok(conn, "BEGIN", "BEGIN") != 0)
		return CTL_EXIT_DB;
	/* How many past-retention records holds keep: needs read access to
	 * the stanzas, which an admin role does not have; then omitted. */
	char held[32] = "";
	if (ca_cmd_ok(conn, "SAVEPOINT", "SAVEPOINT held") == 0) {
		PGresult *res = PQexec(
			conn, "SELECT count(*) FROM impolicy.stanza s "
			      "JOIN impolicy.retention_class r "
			      "ON r.name = s.retention_class "
			      "WHERE s.ts + r.keep < now() AND NOT "
			      "impolicy.purgeable(s.from_bare, s.to_bare, "
			      "s.conv_key, s.ts, s.retention_class, now())");
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			snprintf(held, sizeof held, "%s",
				 PQgetvalue(res, 0, 0));
		PQclear(res);
		(void)ca_cmd_ok(conn, "ROLLBACK TO SAVEPOINT",
				held[0] ? "RELEASE SAVEPOINT held"
					: "ROLLBACK TO SAVEPOINT held");
	}
	/* Two statements: purge() is volatile and must run once, and the
	 * rows it records are visible only to the statements after it. */
	PGresult *res = ca_exec(conn, "purge (dry run)",
				"SELECT impolicy.purge($1::int)", 1, p,
				PGRES_TUPLES_OK);
	if (res == NULL) {
		(void)ca_cmd_ok(conn, "ROLLBACK", "ROLLBACK");
		return CTL_EXIT_DB;
	}
	char pid[32];
	snprintf(pid, sizeof pid, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	const char *pp[1] = {pid};
	res = ca_exec(conn, "purge (dry run)",
		      "SELECT p.node, p.seq, p.ts, p.retention_class "
		      "FROM impolicy.purged_record p "
		      "WHERE p.purge_id = $1::int8 ORDER BY p.node, p.seq",
		      1, pp, PGRES_TUPLES_OK);
	if (res == NULL) {
		(void)ca_cmd_ok(conn, "ROLLBACK", "ROLLBACK");
		return CTL_EXIT_DB;
	}
	int n = PQntuples(res);
	for (int i = 0; i < n; i++)
		printf("would purge %s seq %s (ts %s, class %s)\n",
		       PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	PQclear(res);
	if (held[0])
		printf("dry run: %d record(s) would be purged; %s past "
		       "retention kept by legal holds\n",
		       n, held);
	else
		printf("dry run: %d record(s) would be purged\n", n);
	if (ca_cmd_ok(conn, "ROLLBACK", "ROLLBACK") != 0)
		return CTL_EXIT_DB;
	return CA_EXIT_OK;
}

static int ca_cmd_purge(int argc, char **argv)
{
	ca_opts_t o;
	memset(&o, 0, sizeof o);
	int st = ca_parse(argc, argv,
			  "--dsn --dsn-file --dry-run --limit --key-file "
			  "--key-id",
			  &o);
	if (st != 0)
		return st;
	if (o.n_args != 0)
		return ca_usage("purge: unexpected argument '%s'", o.args[0]);
	if (o.limit) {
		char *end;
		errno = 0;
		long l = strtol(o.limit, &end, 10);
		if (errno || *end || l < 0 || l > 2147483647)
			return ca_usage("--limit must be a number >= 0, not "
					"'%s'",
					o.limit);
	}
	unsigned char *key = NULL;
	size_t key_len = 0;
	if (o.key_file && !o.dry_run) {
		key = ca_read_key(o.key_file, &key_len);
		if (key == NULL)
			return CA_EXIT_FAIL;
	}
	PGconn *conn = ca_connect(&o);
	if (conn == NULL) {
		ca_free_key(key, key_len);
		return CTL_EXIT_DB;
	}
	if (o.dry_run) {
		st = ca_purge_dry(conn, o.limit);
		goto out;
	}
	st = CTL_EXIT_DB;
	if (ca_cmd_ok(conn, "BEGIN", "BEGIN") != 0)
		goto out;
	const char *p[1] = {o.limit};
	PGresult *res = ca_exec(conn, "purge", "SELECT impolicy.purge($1::int)",
				1, p, PGRES_TUPLES_OK);
	if (res == NULL)
		goto rollback;
	char pid[32];
	snprintf(pid, sizeof pid, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	const char *pp[1] = {pid};
	res = ca_exec(conn, "reading the purge",
		      "SELECT r.removed, c.checkpoint_id, c.node, c.first_seq, "
		      "c.last_seq, c.removed, encode(c.digest, 'hex') "
		      "FROM impolicy.purge_run r LEFT JOIN "
		      "impolicy.chain_checkpoint c ON c.purge_id = r.purge_id "
		      "WHERE r.purge_id = $1::int8 ORDER BY c.checkpoint_id",
		      1, pp, PGRES_TUPLES_OK);
	if (res == NULL)
		goto rollback;
	printf("purge %s: removed %s record(s)\n", pid,
	       PQntuples(res) ? PQgetvalue(res, 0, 0) : "0");
	int unsigned_n = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 1))
			continue;
		const char *cid = PQgetvalue(res, i, 1);
		const char *node = PQgetvalue(res, i, 2);
		printf("checkpoint %s: node %s seq %s-%s (%s record(s))", cid,
		       node, PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
		       PQgetvalue(res, i, 5));
		if (key == NULL) {
			printf(", unsigned\n");
			unsigned_n++;
			continue;
		}
		unsigned char digest[64], mac[IMP_HASH_LEN];
		const char *hex = PQgetvalue(res, i, 6);
		size_t dl = strlen(hex) / 2;
		if (dl > sizeof digest)
			dl = sizeof digest;
		for (size_t k = 0; k < dl; k++) {
			unsigned v = 0;
			sscanf(hex + 2 * k, "%2x", &v);
			digest[k] = (unsigned char)v;
		}
		if (imp_verify_checkpoint_mac(
			    key, key_len, node, strtoll(pid, NULL, 10),
			    strtoll(PQgetvalue(res, i, 3), NULL, 10),
			    strtoll(PQgetvalue(res, i, 4), NULL, 10),
			    strtoll(PQgetvalue(res, i, 5), NULL, 10), digest,
			    dl, mac) != IMP_OK) {
			printf("\n");
			fprintf(stderr, "%s: cannot compute a signature\n",
				ca_prog);
			PQclear(res);
			st = CA_EXIT_FAIL;
			goto rollback;
		}
		/* bytea parameter in hex text form. */
		char machex[2 + 2 * IMP_HASH_LEN + 1] = "\\x";
		for (size_t k = 0; k < IMP_HASH_LEN; k++)
			snprintf(machex + 2 + 2 * k, 3, "%02x", mac[k]);
		const char *sp[3] = {cid, machex,
				     o.key_id ? o.key_id : "default"};
		PGresult *r2 =
			ca_exec(conn, "signing the checkpoint",
				"SELECT impolicy.checkpoint_sign($1::int8, "
				"$2::bytea, $3::text)",
				3, sp, PGRES_TUPLES_OK);
		if (r2 == NULL) {
			printf("\n");
			PQclear(res);
			goto rollback;
		}
		PQclear(r2);
		printf(", signed\n");
	}
	PQclear(res);
	if (ca_cmd_ok(conn, "COMMIT", "COMMIT") != 0)
		goto out;
	if (unsigned_n)
		fprintf(stderr,
			"%s: purge: %d checkpoint(s) left unsigned (no "
			"--key-file); verify reports unsigned checkpoints\n",
			ca_prog, unsigned_n);
	st = CA_EXIT_OK;
	goto out;
rollback:
	(void)ca_cmd_ok(conn, "ROLLBACK", "ROLLBACK");
out:
	fflush(stdout);
	PQfinish(conn);
	ca_free_key(key, key_len);
	return st;
}

/* ---- hold ------------------------------------------------------------------------ */

/* "REASON (requested by WHO)": the database records the login that placed
 * the hold; --by names the person on whose behalf it was done. */
static char *ca_reason(const char *reason, const char *by)
{
	size_t n = strlen(reason) + (by ? strlen(by) + 32 : 0) + 1;
	char *s = malloc(n);
	if (s == NULL)
		return NULL;
	if (by)
		snprintf(s, n, "%s (requested by %s)", reason, by);
	else
		snprintf(s, n, "%s", reason);
	return s;
}

static int ca_hold_add(PGconn *conn, imp_ctx_t *ctx, const ca_opts_t *o)
{
	char from[64], to[64];
	int64_t f_us = 0, t_us = 0;
	if (o->from && ca_time(ctx, "--from", o->from, &f_us, from) != 0)
		return CA_EXIT_USAGE;
	if (o->to && ca_time(ctx, "--to", o->to, &t_us, to) != 0)
		return CA_EXIT_USAGE;
	if (o->from && o->to && f_us >= t_us)
		return ca_usage("hold add: --from must be before --to%s", NULL);
	char *reason = ca_reason(o->reason, o->by);
	if (reason == NULL)
		return CA_EXIT_FAIL;
	const char *p[5] = {o->user, o->conv, o->from ? from : NULL,
			    o->to ? to : NULL, reason};
	PGresult *res = ca_exec(conn, "hold add",
				"SELECT impolicy.hold_add($1::text, $2::text, "
				"$3::timestamptz, $4::timestamptz, $5::text)",
				5, p, PGRES_TUPLES_OK);
	free(reason);
	if (res == NULL)
		return CTL_EXIT_DB;
	printf("hold %s placed\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return CA_EXIT_OK;
}

static int ca_hold_list(PGconn *conn, int all)
{
	const char *p[1] = {all ? "t" : "f"};
	PGresult *res = ca_exec(
		conn, "hold list",
		"SELECT hold_id, released_at IS NULL, jid, conv_key, "
		"from_ts, to_ts, placed_by, placed_at, reason, released_at, "
		"released_by, release_reason FROM impolicy.legal_hold "
		"WHERE $1::bool OR released_at IS NULL ORDER BY hold_id",
		1, p, PGRES_TUPLES_OK);
	if (res == NULL)
		return CTL_EXIT_DB;
	static const char *const names[] = {"user", "conversation", "from",
					    "to"};
	for (int i = 0; i < PQntuples(res); i++) {
		int active = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		printf("hold %s %s", PQgetvalue(res, i, 0),
		       active ? "active" : "released");
		for (int k = 0; k < 4; k++)
			if (!PQgetisnull(res, i, 2 + k))
				printf(" %s=\"%s\"", names[k],
				       PQgetvalue(res, i, 2 + k));
		printf(" placed_by=%s placed_at=\"%s\" reason=\"%s\"",
		       PQgetvalue(res, i, 6), PQgetvalue(res, i, 7),
		       PQgetvalue(res, i, 8));
		if (!active)
			printf(" released_at=\"%s\" released_by=%s "
			       "release_reason=\"%s\"",
			       PQgetvalue(res, i, 9), PQgetvalue(res, i, 10),
			       PQgetvalue(res, i, 11));
		printf("\n");
	}
	if (PQntuples(res) == 0)
		printf("no %sholds\n", all ? "" : "active ");
	PQclear(res);
	return CA_EXIT_OK;
}

static int ca_cmd_hold(int argc, char **argv)
{
	ca_opts_t o;
	memset(&o, 0, sizeof o);
	int st = ca_parse(argc, argv,
			  "--dsn --dsn-file --user --conversation --from --to "
			  "--reason --by --all",
			  &o);
	if (st != 0)
		return st;
	if (o.n_args < 1)
		return ca_usage("hold: say add, remove or list%s", NULL);
	const char *sub = o.args[0];
	if (strcmp(sub, "add") == 0) {
		if (o.n_args != 1)
			return ca_usage("hold add: unexpected argument '%s'",
					o.args[1]);
		if (!o.user && !o.conv && !o.from && !o.to)
			return ca_usage("hold add: give --user JID, "
					"--conversation KEY or --from T/--to "
					"T%s",
					NULL);
		if (o.reason == NULL || o.reason[0] == '\0')
			return ca_usage("hold add: --reason TEXT is "
					"required%s",
					NULL);
	} else if (strcmp(sub, "remove") == 0) {
		if (o.n_args != 2)
			return ca_usage("hold remove: give the hold ID%s",
					NULL);
		const char *id = o.args[1];
		if (id[0] == '\0' || strspn(id, "0123456789") != strlen(id) ||
		    strlen(id) > 18)
			return ca_usage("hold remove: '%s' is not a hold ID",
					id);
		if (o.reason == NULL || o.reason[0] == '\0')
			return ca_usage("hold remove: --reason TEXT is "
					"required%s",
					NULL);
	} else if (strcmp(sub, "list") == 0) {
		if (o.n_args != 1)
			return ca_usage("hold list: unexpected argument '%s'",
					o.args[1]);
	} else {
		return ca_usage("hold: unknown subcommand '%s'", sub);
	}
	imp_ctx_t *ctx = ca_ctx();
	if (ctx == NULL)
		return CA_EXIT_FAIL;
	PGconn *conn = ca_connect(&o);
	if (conn == NULL) {
		imp_ctx_free(ctx);
		return CTL_EXIT_DB;
	}
	if (strcmp(sub, "add") == 0) {
		st = ca_hold_add(conn, ctx, &o);
	} else if (strcmp(sub, "remove") == 0) {
		char *reason = ca_reason(o.reason, o.by);
		const char *p[2] = {o.args[1], reason};
		PGresult *res = reason ? ca_exec(conn, "hold remove",
						 "SELECT impolicy.hold_release("
						 "$1::int8, $2::text)",
						 2, p, PGRES_TUPLES_OK)
				       : NULL;
		free(reason);
		if (res == NULL) {
			st = CA_EXIT_FAIL;
		} else {
			printf("hold %s released\n", o.args[1]);
			PQclear(res);
			st = CA_EXIT_OK;
		}
	} else {
		st = ca_hold_list(conn, o.all);
	}
	fflush(stdout);
	PQfinish(conn);
	imp_ctx_free(ctx);
	return st;
}

/* ---- eval --archive ---------------------------------------------------------- */

struct ctl_archive_s {
	imp_ctx_t *ctx;
	imp_archive_t *ar;
	unsigned char *key;
	size_t key_len;
	char *dsn;
	uint64_t submitted, failed;
	int flush_ms;
};

/* ---- the policy's retention classes against the archive ------------------ */

/* A class is known when it is one of the n names in known. */
static int ca_class_known(const char *cls, char **known, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(cls, known[i]) == 0)
			return 1;
	return 0;
}

static void ca_class_missing(const char *where, unsigned line, const char *what,
			     const char *cls, char **known, int n)
{
	if (line > 0)
		fprintf(stderr, "%s:%u: ", where, line);
	else
		fprintf(stderr, "%s: ", where);
	fprintf(stderr,
		"%s: retention class '%s' is not defined in the archive "
		"(impolicy.retention_class has:",
		what, cls);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %s", known[i]);
	fprintf(stderr, ")\n");
}

int ctl_archive_check_retention(const imp_policy_t *p, const char *path,
				const char *dsn, const char *dsn_file,
				const char *extra)
{
	PGconn *conn;
	PGresult *res;
	int n, missing = 0;
	char **known;

	conn = ca_connect(&(ca_opts_t){.dsn = dsn, .dsn_file = dsn_file});
	if (conn == NULL)
		return CTL_EXIT_DB;
	res = PQexecParams(conn,
			   "SELECT name FROM impolicy.retention_class "
			   "ORDER BY name",
			   0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ca_pq_error("cannot read impolicy.retention_class", conn);
		PQclear(res);
		PQfinish(conn);
		return CTL_EXIT_DB;
	}
	n = PQntuples(res);
	known = calloc((size_t)n + 1, sizeof *known);
	if (known == NULL) {
		PQclear(res);
		PQfinish(conn);
		return CTL_EXIT_DB;
	}
	for (int i = 0; i < n; i++)
		known[i] = PQgetvalue(res, i, 0);

	if (extra != NULL && !ca_class_known(extra, known, n)) {
		ca_class_missing("--retention", 0, "the writer's default",
				 extra, known, n);
		missing++;
	}
	if (p->retention_default != NULL &&
	    !ca_class_known(p->retention_default, known, n)) {
		ca_class_missing(path, 0, "settings.retention",
				 p->retention_default, known, n);
		missing++;
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		const imp_rule_t *r = &p->rules[i];
		char what[256];

		if (r->retention == NULL ||
		    r->retention == p->retention_default ||
		    ca_class_known(r->retention, known, n))
			continue;
		snprintf(what, sizeof what, "rule %s", r->id);
		ca_class_missing(r->file ? r->file : path, r->line, what,
				 r->retention, known, n);
		missing++;
	}
	free(known);
	PQclear(res);
	PQfinish(conn);
	if (missing > 0)
		fprintf(stderr,
			"%s: %d retention class(es) unknown to the archive: "
			"PostgreSQL would refuse those records (they would be "
			"quarantined); add the classes "
			"(impolicy.retention_class, "
			"as the admin role) or change the policy\n",
			path, missing);
	return missing > 0 ? 1 : 0;
}

int ctl_archive_eval_open(imp_ctx_t *ctx, const ctl_archive_opts_t *o,
			  ctl_archive_t **out)
{
	imp_archive_config_t cfg;
	char spool[256];
	*out = NULL;
	memset(&cfg, 0, sizeof cfg);
	cfg.version = IMP_ARCHIVE_CONFIG_VERSION;
	cfg.durability = IMP_DURABILITY_STRICT;
	if (o->durability != NULL) {
		if (strcmp(o->durability, "strict") == 0)
			cfg.durability = IMP_DURABILITY_STRICT;
		else if (strcmp(o->durability, "batched") == 0)
			cfg.durability = IMP_DURABILITY_BATCHED;
		else
			return ca_usage("--durability must be strict or "
					"batched, not '%s'",
					o->durability);
	}
	int flush_ms = 60000;
	if (o->flush_timeout != NULL) {
		char *end;
		long secs = strtol(o->flush_timeout, &end, 10);
		if (*end || secs < 0 || secs > 86400)
			return ca_usage("--flush-timeout must be seconds "
					"(0..86400), not '%s'",
					o->flush_timeout);
		flush_ms = (int)secs * 1000;
	}
	ctl_archive_t *a = calloc(1, sizeof *a);
	if (a == NULL)
		return CA_EXIT_FAIL;
	a->ctx = ctx;
	a->flush_ms = flush_ms;
	/* The DSN: --archive DSN, else --dsn-file (read by the library, so
	 * the string never sits in our memory), else IMPOLICY_DSN. */
	if (o->dsn != NULL && o->dsn[0] != '\0') {
		cfg.dsn = o->dsn;
	} else if (o->dsn_file != NULL) {
		cfg.dsn_file = o->dsn_file;
	} else {
		a->dsn = ca_dsn(NULL, NULL);
		if (a->dsn == NULL) {
			free(a);
			return CA_EXIT_USAGE;
		}
		cfg.dsn = a->dsn;
	}
	cfg.node = o->node ? o->node : "impolicyctl";
	if (o->spool_dir) {
		cfg.spool_dir = o->spool_dir;
	} else {
		/* Kept across runs on purpose: records a failed run left in
		 * the spool are replayed by the next run of the same node. */
		snprintf(spool, sizeof spool, "/var/tmp/impolicyctl-spool-%lu",
			 (unsigned long)getuid());
		cfg.spool_dir = spool;
	}
	cfg.on_failure = IMP_FAIL_CLOSED;
	cfg.retention_default = o->retention;
	/* A node that has never written may start at seq 1 even when
	 * PostgreSQL cannot confirm it (imp_archive_config_t.new_node): only
	 * on the admin's explicit word (--new-node, or the environment
	 * switch IMP_ARCHIVE_NEW_NODE=1 for scripts), never by default. */
	const char *nn = getenv("IMP_ARCHIVE_NEW_NODE");
	cfg.new_node = o->new_node || (nn != NULL && strcmp(nn, "1") == 0);
	if (o->key_file) {
		a->key = ca_read_key(o->key_file, &a->key_len);
		if (a->key == NULL) {
			free(a->dsn);
			free(a);
			return CA_EXIT_FAIL;
		}
		cfg.hmac_key = a->key;
		cfg.hmac_key_len = a->key_len;
		cfg.hmac_key_id = o->key_id ? o->key_id : "default";
	}
	int rc = imp_archive_open(ctx, &cfg, &a->ar);
	if (rc != IMP_OK) {
		fprintf(stderr, "%s: cannot open the archive (spool %s): %s\n",
			ca_prog, cfg.spool_dir, imp_strerror(rc));
		ca_free_key(a->key, a->key_len);
		free(a->dsn);
		free(a);
		return CTL_EXIT_DB;
	}
	*out = a;
	return CA_EXIT_OK;
}

int ctl_archive_eval_submit(ctl_archive_t *a, const imp_view_t *view,
			    const imp_verdict_t *v, const char *where)
{
	uint64_t seq = 0;
	int rc = imp_archive_submit(a->ar, view, v, &seq);
	if (rc != IMP_OK) {
		a->failed++;
		fprintf(stderr, "%s: not recorded in the archive: %s\n", where,
			imp_strerror(rc));
		return CTL_EXIT_DB;
	}
	a->submitted++;
	return CA_EXIT_OK;
}

int ctl_archive_eval_close(ctl_archive_t *a)
{
	if (a == NULL)
		return CA_EXIT_OK;
	int st = CA_EXIT_OK;
	int rc = imp_archive_flush(a->ar, a->flush_ms);
	imp_archive_stats_t s;
	memset(&s, 0, sizeof s);
	imp_archive_stats(a->ar, &s);
	if (rc != IMP_OK || a->failed) {
		fprintf(stderr,
			"%s: archive: NOT all records are in PostgreSQL: "
			"%" PRIu64 " submitted, %" PRIu64 " written, %" PRIu64
			" spooled (kept for the next run), %" PRIu64
			" refused%s\n",
			ca_prog, s.submitted, s.written, s.spooled,
			s.refused + a->failed,
			s.connected ? "" : "; no database connection");
		st = CTL_EXIT_DB;
	} else if (s.quarantined > 0) {
		/* Durable, but in the quarantine file, not in PostgreSQL. */
		fprintf(stderr,
			"%s: archive: %" PRIu64 " record(s) refused by "
			"PostgreSQL for a data reason and quarantined in "
			"the spool's NODE.quarantine (see the log and "
			"docs/archive.md); %" PRIu64 " written\n",
			ca_prog, s.quarantined, s.written);
		st = CTL_EXIT_DB;
	} else {
		fprintf(stderr,
			"%s: archive: %" PRIu64 " record(s) durable in "
			"PostgreSQL (last seq %" PRIu64 ", %" PRIu64
			" replayed from the spool)\n",
			ca_prog, a->submitted, s.last_seq, s.replayed);
	}
	imp_archive_close(a->ar, rc == IMP_OK ? 10000 : 1000);
	ca_free_key(a->key, a->key_len);
	free(a->dsn);
	free(a);
	return st;
}

/* ---- dispatch ------------------------------------------------------------------ */

/* ---- archive-requeue ------------------------------------------------------ */

/* Re-queues a node's quarantined records (docs/archive.md): once their
 * cause is fixed, DIR/NODE.quarantine becomes the spool segment named
 * after its first record's seq, which the next writer of that node
 * replays in order (idempotent by node and seq).  The writer must not be
 * running: a fresh status file says it is. */
static int ca_cmd_requeue(int argc, char **argv)
{
	ca_opts_t o;
	char q[4096], seg[4096], st[4096];
	uint64_t n = 0, first = 0;
	struct stat sb;

	memset(&o, 0, sizeof o);
	int rc = ca_parse(argc, argv, "--spool-dir --node", &o);
	if (rc != 0)
		return rc;
	if (o.n_args != 0)
		return ca_usage("archive-requeue: unexpected argument '%s'",
				o.args[0]);
	if (!o.spool_dir || !o.node)
		return ca_usage("archive-requeue: --spool-dir DIR and --node N "
				"are required%s",
				NULL);
	if (strchr(o.node, '/') != NULL)
		return ca_usage("archive-requeue: bad node name '%s'", o.node);
	snprintf(q, sizeof q, "%s/%s.quarantine", o.spool_dir, o.node);
	snprintf(st, sizeof st, "%s/%s.status", o.spool_dir, o.node);
	if (stat(st, &sb) == 0 && time(NULL) - sb.st_mtime < 5) {
		fprintf(stderr,
			"%s: archive-requeue: the writer of node %s is running "
			"(%s was updated %lld s ago); stop it first\n",
			ca_prog, o.node, st,
			(long long)(time(NULL) - sb.st_mtime));
		return CA_EXIT_FAIL;
	}
	if (imp_spool_quarantine_count(q, &n) != IMP_OK) {
		fprintf(stderr,
			"%s: archive-requeue: %s is damaged or unreadable; "
			"nothing changed\n",
			ca_prog, q);
		return CA_EXIT_FAIL;
	}
	if (n == 0) {
		printf("node %s: nothing quarantined\n", o.node);
		return CA_EXIT_OK;
	}
	imp_ctx_t *ctx = NULL;
	if (imp_ctx_new(NULL, &ctx) != IMP_OK)
		return CA_EXIT_FAIL;
	rc = imp_spool_quarantine_first(ctx, q, &first);
	imp_ctx_free(ctx);
	if (rc != IMP_OK || first == 0) {
		fprintf(stderr,
			"%s: archive-requeue: cannot read the first record of "
			"%s; nothing changed\n",
			ca_prog, q);
		return CA_EXIT_FAIL;
	}
	snprintf(seg, sizeof seg, "%s/%s.%016llx.spool", o.spool_dir, o.node,
		 (unsigned long long)first);
	if (access(seg, F_OK) == 0) {
		fprintf(stderr,
			"%s: archive-requeue: %s exists already; let the "
			"writer replay it first\n",
			ca_prog, seg);
		return CA_EXIT_FAIL;
	}
	if (rename(q, seg) != 0) {
		fprintf(stderr, "%s: archive-requeue: cannot rename %s: %s\n",
			ca_prog, q, strerror(errno));
		return CA_EXIT_FAIL;
	}
	int dfd = open(o.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	printf("node %s: %" PRIu64 " quarantined record(s) from seq %" PRIu64
	       " re-queued as %s; the node's next writer replays them\n",
	       o.node, n, first, seg);
	return CA_EXIT_OK;
}

int ctl_archive_main(int argc, char **argv)
{
	const char *cmd = argv[0];
	if (strcmp(cmd, "db") == 0)
		return ca_cmd_db(argc - 1, argv + 1);
	if (strcmp(cmd, "archive-status") == 0)
		return ca_cmd_status(argc - 1, argv + 1);
	if (strcmp(cmd, "verify") == 0)
		return ca_cmd_verify(argc - 1, argv + 1);
	if (strcmp(cmd, "purge") == 0)
		return ca_cmd_purge(argc - 1, argv + 1);
	if (strcmp(cmd, "hold") == 0)
		return ca_cmd_hold(argc - 1, argv + 1);
	if (strcmp(cmd, "archive-requeue") == 0)
		return ca_cmd_requeue(argc - 1, argv + 1);
	return -1;
}
