/*
 * impolicyctl.c -- the command-line tool for policy admins, in the manner
 * of prosodyctl/ejabberdctl: lint a policy (check) and dry-run stanzas
 * against it (eval, explain); eval --archive also records every judged
 * stanza in the PostgreSQL compliance archive through the library's
 * archive writer, and the archive commands (db, archive-status, verify,
 * purge, hold) live in ctl_archive.c.
 *
 * Contract:
 *  - Uses the public API only (impolicy.h); nothing here re-implements
 *    parsing or evaluation, so what the CLI says is what the module does.
 *  - Exit status: 0 ok, 1 some stanza was malformed or could not be judged
 *    (or a stanza file could not be read), 2 the policy is invalid or could
 *    not be read, 3 (eval --archive) some record is not durable in
 *    PostgreSQL, 64 usage error (EX_USAGE).
 *  - Message bodies are printed only as part of the verdict output the admin
 *    asked for (eval/explain); diagnostics never contain stanza content.
 *  - eval keeps escalation and fan-out state across all stanzas of one run
 *    (one policy, one evaluator), so an admin can dry-run escalation;
 *    --no-state evaluates every stanza with IMP_EVAL_DRY_RUN instead.
 *  - --at fixes the context clock for the whole run; a time without UTC
 *    offset is read in the policy's time zone, which is why the clock is
 *    set only after the policy has been loaded.
 *
 * Threading: single-threaded program.
 */
#include "impolicy.h"

#include "ctl_archive.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTL_EXIT_OK 0
#define CTL_EXIT_STANZA 1
#define CTL_EXIT_POLICY 2
#define CTL_EXIT_USAGE 64

#define CTL_MAX_DOMAINS 64

static const char *ctl_progname = "impolicyctl";

static const char ctl_usage_text[] =
	"usage: impolicyctl COMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"Commands:\n"
	"  check [--engine E] [--local-domain D]... [--archive DSN\n"
	"        [--dsn-file F]] POLICY\n"
	"      Load and validate POLICY and every file it includes or reads.\n"
	"      Prints a one-line summary on stdout and exits 0, or every\n"
	"      problem as FILE:LINE:COL: message on stderr and exits 2.\n"
	"      With --archive, also checks that every retention class the\n"
	"      policy names is defined in that archive (exit 2 if not, 3 if\n"
	"      the database cannot be read); eval --archive does the same.\n"
	"  eval --policy POLICY [OPTIONS] [FILE ...|-]\n"
	"      Judge every stanza in each FILE (several stanzas per file are\n"
	"      allowed; no FILE or '-' reads stdin, shown as <stdin>) and\n"
	"      print one verdict per stanza, one line each:\n"
	"      'FILE:LINE: ACTION rule=ID section=\"..\" notice=\"..\"'.\n"
	"      Escalation and fan-out state is kept across the stanzas of one\n"
	"      run, so repeated violations suspend the sender as they would\n"
	"      on the server.\n"
	"  explain --policy POLICY [OPTIONS] [FILE ...|-]\n"
	"      Same as eval --explain: also shows every rule considered and\n"
	"      which of its conditions held.\n"
	"  version\n"
	"      Print the version of impolicyctl and libimpolicy.\n"
	"  help, --help, -h\n"
	"      Print this text.\n"
	"\n"
	"Options of eval and explain:\n"
	"  --policy POLICY        the policy file (required)\n"
	"  --at TIME              judge as if it were TIME (ISO 8601, e.g.\n"
	"                         2026-11-25T10:35:00; without an offset the\n"
	"                         time is read in the policy's time zone)\n"
	"  --local-domain D       add D to the policy's local domains "
	"(repeat)\n"
	"  --origin local|remote  where the stanzas came from (default: "
	"decided\n"
	"                         from the domains)\n"
	"  --session JID          the authenticated full JID of the sender's\n"
	"                         session (impersonation checks compare to "
	"it)\n"
	"  --engine E             auto (default), vectorscan or pcre2\n"
	"  --json                 one JSON object per stanza and line, with\n"
	"                         \"file\" and \"line\" added\n"
	"  --explain              add the readable trace of every rule\n"
	"  --no-state             do not keep escalation/fan-out state "
	"between\n"
	"                         stanzas (each is a pure dry run)\n"
	"  --archive DSN          also record each stanza in the archive "
	"(below)\n"
	"\n"
	"Options may also be written --name=value; '--' ends the options.\n"
	"\n"
	"Exit status:\n"
	"  0   ok (check: the policy is valid; eval: every stanza was judged)\n"
	"  1   some stanza was malformed or could not be judged, or a stanza\n"
	"      file could not be read (the other stanzas are still judged)\n"
	"  2   the policy is invalid or could not be read\n"
	"  3   eval --archive: some record is not durable in PostgreSQL\n"
	"  64  usage error (unknown command or option, missing argument)\n"
	"\n";

static void ctl_usage_hint(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n",
		ctl_progname);
}

static int ctl_usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", ctl_progname);
	fprintf(stderr, fmt, arg ? arg : "");
	fputc('\n', stderr);
	ctl_usage_hint();
	return CTL_EXIT_USAGE;
}

/* ---- the context: log to stderr, injectable clock --------------------- */

typedef struct ctl_clock_s {
	int fixed;
	int64_t us;
} ctl_clock_t;

static int64_t ctl_clock_now(void *ud)
{
	const ctl_clock_t *c = ud;
	if (c->fixed)
		return c->us;
	/* Not fixed: behave like the default clock.  timespec_get is C11. */
	struct timespec ts;
	if (timespec_get(&ts, TIME_UTC) != TIME_UTC)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void ctl_log(void *ud, imp_log_level_t level, const char *msg)
{
	static const char *const names[] = {"error", "warning", "info",
					    "debug"};
	(void)ud;
	fprintf(stderr, "%s: %s: %s\n", ctl_progname,
		(unsigned)level < 4 ? names[level] : "log", msg);
}

static int ctl_ctx_new(ctl_clock_t *clk, imp_ctx_t **out)
{
	imp_ctx_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.version = IMP_CTX_CONFIG_VERSION;
	cfg.log = ctl_log;
	cfg.log_level = IMP_LOG_WARN;
	cfg.clock = ctl_clock_now;
	cfg.clock_ud = clk;
	int rc = imp_ctx_new(&cfg, out);
	if (rc != IMP_OK)
		fprintf(stderr, "%s: cannot create context: %s\n", ctl_progname,
			imp_strerror(rc));
	return rc;
}

/* ---- policy loading (check, eval) -------------------------------------- */

typedef struct ctl_opts_s {
	const char *policy;
	const char *at;
	const char *session;
	imp_origin_t origin;
	imp_engine_t engine;
	const char *domains[CTL_MAX_DOMAINS];
	size_t n_domains;
	int json;
	int explain;
	int no_state;
	const char **files;
	size_t n_files;
	int archive;                  /* --archive given */
	const char *archive_opt_seen; /* first archive-only option */
	ctl_archive_opts_t arch;
} ctl_opts_t;

/* Prints every error of a refused policy, one per line, then the summary
 * line the admin's scripts can grep for. */
static void ctl_print_errors(const char *path, int rc, imp_errors_t *errs)
{
	size_t n = errs ? imp_errors_count(errs) : 0;
	size_t dropped = errs ? imp_errors_dropped(errs) : 0;
	char small[512];

	for (size_t i = 0; i < n; i++) {
		const imp_error_t *e = imp_errors_get(errs, i);
		size_t need = imp_error_format(e, small, sizeof small);
		if (need < sizeof small) {
			fprintf(stderr, "%s\n", small);
			continue;
		}
		char *big = malloc(need + 1);
		if (big == NULL) {
			fprintf(stderr, "%s\n", small); /* truncated */
			continue;
		}
		imp_error_format(e, big, need + 1);
		fprintf(stderr, "%s\n", big);
		free(big);
	}
	if (n == 0 && dropped == 0) {
		/* No list (e.g. out of memory): still say why. */
		fprintf(stderr, "%s: policy refused: %s\n", path,
			imp_strerror(rc));
		return;
	}
	fprintf(stderr, "%s: policy refused: %zu error(s)", path, n + dropped);
	if (dropped > 0)
		fprintf(stderr, " (%zu more not shown)", dropped);
	fputc('\n', stderr);
}

static int ctl_load(imp_ctx_t *ctx, const ctl_opts_t *o, imp_policy_t **out)
{
	imp_load_options_t lo;
	imp_errors_t *errs = NULL;

	memset(&lo, 0, sizeof lo);
	lo.version = IMP_LOAD_OPTIONS_VERSION;
	lo.engine = o->engine;
	lo.local_domains = o->n_domains ? o->domains : NULL;
	lo.n_local_domains = o->n_domains;
	*out = NULL;
	int rc = imp_policy_load(ctx, o->policy, &lo, out, &errs);
	if (rc == IMP_OK && *out != NULL) {
		imp_errors_free(errs);
		return IMP_OK;
	}
	if (rc == IMP_OK)
		rc = IMP_ERR_INTERNAL;
	ctl_print_errors(o->policy, rc, errs);
	imp_errors_free(errs);
	return rc;
}

/* ---- option parsing ------------------------------------------------------ */

/* Matches argv[*i] against --name / --name=value; on a match with a value
 * stores it in *val (advancing *i when the value is the next word) and
 * returns 1; returns -1 when the value is missing. */
static int ctl_opt_value(int argc, char **argv, int *i, const char *name,
			 const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

static int ctl_parse_engine(const char *s, imp_engine_t *out)
{
	if (strcmp(s, "auto") == 0)
		*out = IMP_ENGINE_AUTO;
	else if (strcmp(s, "vectorscan") == 0)
		*out = IMP_ENGINE_VECTORSCAN;
	else if (strcmp(s, "pcre2") == 0)
		*out = IMP_ENGINE_PCRE2;
	else
		return -1;
	return 0;
}

/* Parses the options of check/eval/explain.  Returns 0 or an exit code. */
static int ctl_parse(int argc, char **argv, int eval_opts, ctl_opts_t *o)
{
	static const char *const value_opts[] = {
		"--policy",    "--at",         "--local-domain", "--origin",
		"--session",   "--engine",     "--archive",      "--node",
		"--spool-dir", "--durability", "--key-file",     "--key-id",
		"--retention", "--dsn-file",   "--flush-timeout"};
	int only_files = 0;

	o->files = calloc((size_t)argc + 1, sizeof *o->files);
	if (o->files == NULL) {
		fprintf(stderr, "%s: out of memory\n", ctl_progname);
		return CTL_EXIT_STANZA;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
			o->files[o->n_files++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_files = 1;
			continue;
		}
		if (eval_opts && strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (eval_opts && strcmp(a, "--explain") == 0) {
			o->explain = 1;
			continue;
		}
		if (eval_opts && strcmp(a, "--no-state") == 0) {
			o->no_state = 1;
			continue;
		}
		if (eval_opts && strcmp(a, "--new-node") == 0) {
			o->arch.new_node = 1;
			continue;
		}
		const char *val = NULL;
		int which = -1, r = 0;
		for (size_t k = 0; k < sizeof value_opts / sizeof *value_opts;
		     k++) {
			r = ctl_opt_value(argc, argv, &i, value_opts[k], &val);
			if (r != 0) {
				which = (int)k;
				break;
			}
		}
		if (which < 0)
			return ctl_usage_error("unknown option '%s'", a);
		if (r < 0)
			return ctl_usage_error("option '%s' needs a value", a);
		/* check accepts only --engine, --local-domain, --archive and
		 * --dsn-file */
		if (!eval_opts && which != 2 && which != 5 && which != 6 &&
		    which != 13)
			return ctl_usage_error("option '%s' is not valid for "
					       "check",
					       value_opts[which]);
		switch (which) {
		case 0:
			o->policy = val;
			break;
		case 1:
			o->at = val;
			break;
		case 2:
			if (o->n_domains >= CTL_MAX_DOMAINS)
				return ctl_usage_error("too many --local-domain"
						       " options%s",
						       NULL);
			o->domains[o->n_domains++] = val;
			break;
		case 3:
			if (strcmp(val, "local") == 0)
				o->origin = IMP_ORIGIN_LOCAL;
			else if (strcmp(val, "remote") == 0)
				o->origin = IMP_ORIGIN_REMOTE;
			else
				return ctl_usage_error(
					"--origin must be local or remote, "
					"not '%s'",
					val);
			break;
		case 4:
			o->session = val;
			break;
		case 5:
			if (ctl_parse_engine(val, &o->engine) != 0)
				return ctl_usage_error(
					"--engine must be auto, vectorscan "
					"or pcre2, not '%s'",
					val);
			break;
		case 6:
			o->archive = 1;
			o->arch.dsn = val;
			break;
		case 7:
			o->arch.node = val;
			break;
		case 8:
			o->arch.spool_dir = val;
			break;
		case 9:
			if (strcmp(val, "strict") != 0 &&
			    strcmp(val, "batched") != 0)
				return ctl_usage_error(
					"--durability must be strict or "
					"batched, not '%s'",
					val);
			o->arch.durability = val;
			break;
		case 10:
			o->arch.key_file = val;
			break;
		case 11:
			o->arch.key_id = val;
			break;
		case 12:
			o->arch.retention = val;
			break;
		case 13:
			o->arch.dsn_file = val;
			break;
		case 14:
			o->arch.flush_timeout = val;
			break;
		}
		if (which >= 7 && !o->archive_opt_seen)
			o->archive_opt_seen = value_opts[which];
	}
	if (o->archive_opt_seen && !o->archive)
		return ctl_usage_error("option '%s' needs --archive DSN",
				       o->archive_opt_seen);
	return 0;
}

/* ---- output helpers ---------------------------------------------------- */

typedef struct ctl_buf_s {
	char *p;
	size_t len, cap;
	int failed;
} ctl_buf_t;

static void ctl_buf_add(ctl_buf_t *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void ctl_buf_str(ctl_buf_t *b, const char *s)
{
	ctl_buf_add(b, s, strlen(s));
}

/* Appends s as the inside of a JSON string. */
static void ctl_buf_json_str(ctl_buf_t *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		switch (*p) {
		case '"':
			ctl_buf_str(b, "\\\"");
			break;
		case '\\':
			ctl_buf_str(b, "\\\\");
			break;
		case '\n':
			ctl_buf_str(b, "\\n");
			break;
		case '\r':
			ctl_buf_str(b, "\\r");
			break;
		case '\t':
			ctl_buf_str(b, "\\t");
			break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof esc, "\\u%04x", *p);
				ctl_buf_str(b, esc);
			} else {
				ctl_buf_add(b, (const char *)p, 1);
			}
		}
	}
}

/* Appends s for the plain one-line output: quotes, backslashes and
 * control characters escaped so that one verdict stays one line. */
static void ctl_buf_plain_str(ctl_buf_t *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		if (*p == '"' || *p == '\\') {
			ctl_buf_add(b, "\\", 1);
			ctl_buf_add(b, (const char *)p, 1);
		} else if (*p == '\n') {
			ctl_buf_str(b, "\\n");
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof esc, "\\x%02x", *p);
			ctl_buf_str(b, esc);
		} else {
			ctl_buf_add(b, (const char *)p, 1);
		}
	}
}

static void ctl_buf_kv(ctl_buf_t *b, const char *key, const char *val)
{
	ctl_buf_str(b, " ");
	ctl_buf_str(b, key);
	ctl_buf_str(b, "=\"");
	ctl_buf_plain_str(b, val);
	ctl_buf_str(b, "\"");
}

/* ---- eval -------------------------------------------------------------- */

typedef struct ctl_run_s {
	imp_ctx_t *ctx;
	imp_policy_t *policy;
	imp_eval_t *ev;
	const ctl_opts_t *o;
	const char *name; /* file name as shown */
	const char *buf;  /* the whole file */
	size_t len;
	size_t done;        /* offset just past the last well-formed stanza */
	int status;         /* exit status so far */
	ctl_archive_t *ar;  /* eval --archive, else NULL */
	int archive_status; /* CTL_EXIT_DB once a record was not taken */
} ctl_run_t;

static const char *ctl_display_name(const char *file)
{
	return strcmp(file, "-") == 0 ? "<stdin>" : file;
}

/* Prints one verdict.  split_err, when set, is the splitter's reason; it is
 * shown only when the evaluator gave none of its own. */
static void ctl_print_verdict(ctl_run_t *r, unsigned line,
			      const imp_verdict_t *v, const char *split_err)
{
	ctl_buf_t b = {0};
	char num[32];
	const char *err = v->error ? v->error : split_err;

	if (r->o->json) {
		char *js = NULL;
		size_t jlen = 0;
		int rc = imp_verdict_json(r->ctx, v, r->o->explain, &js, &jlen);
		ctl_buf_str(&b, "{\"file\":\"");
		ctl_buf_json_str(&b, r->name);
		snprintf(num, sizeof num, "\",\"line\":%u", line);
		ctl_buf_str(&b, num);
		if (rc == IMP_OK && js != NULL && jlen >= 2 && js[0] == '{') {
			/* Splice our keys in front of the library's. */
			int has_err = v->error != NULL;
			if (err && !has_err) {
				ctl_buf_str(&b, ",\"error\":\"");
				ctl_buf_json_str(&b, err);
				ctl_buf_str(&b, "\"");
			}
			if (jlen > 2 && js[1] != '}')
				ctl_buf_str(&b, ",");
			ctl_buf_add(&b, js + 1, jlen - 1);
		} else {
			/* Still one well-formed object per line. */
			ctl_buf_str(&b, ",\"verdict\":\"");
			ctl_buf_str(&b, imp_action_name(v->action));
			ctl_buf_str(&b, "\",\"error\":\"");
			ctl_buf_json_str(&b, err ? err
						 : "verdict could not be "
						   "serialised");
			ctl_buf_str(&b, "\"}");
			r->status = CTL_EXIT_STANZA;
		}
		imp_free(r->ctx, js);
	} else {
		ctl_buf_str(&b, r->name);
		snprintf(num, sizeof num, ":%u: ", line);
		ctl_buf_str(&b, num);
		ctl_buf_str(&b, imp_action_name(v->action));
		if (v->rule_id) {
			/* rule ids are [A-Za-z0-9_.-]+: no quoting needed */
			ctl_buf_str(&b, " rule=");
			ctl_buf_plain_str(&b, v->rule_id);
		}
		if (v->section)
			ctl_buf_kv(&b, "section", v->section);
		if (v->notice && v->action == IMP_REJECT)
			ctl_buf_kv(&b, "notice", v->notice);
		/* Every matched rule, so a flag behind a reject (or an allow
		 * rule documenting a match) is seen. */
		if (v->n_rules > 1 || (v->n_rules == 1 && v->rule_id == NULL)) {
			ctl_buf_t m = {0};
			for (size_t i = 0; i < v->n_rules; i++) {
				if (i)
					ctl_buf_str(&m, ",");
				ctl_buf_str(&m, v->rules[i].rule_id);
			}
			if (!m.failed && m.p) {
				ctl_buf_str(&b, " matched=");
				ctl_buf_plain_str(&b, m.p);
			}
			free(m.p);
		}
		if (v->flags & IMP_VF_SUSPENDED)
			ctl_buf_str(&b, " suspended");
		if (v->flags & IMP_VF_ESCALATED)
			ctl_buf_str(&b, " escalated");
		if (v->flags & IMP_VF_NOTIFY)
			ctl_buf_str(&b, " notify");
		if (v->flags & IMP_VF_UNINSPECTABLE)
			ctl_buf_str(&b, " uninspectable");
		if (v->action == IMP_REDACT && v->redacted_body)
			ctl_buf_kv(&b, "redacted", v->redacted_body);
		if (err)
			ctl_buf_kv(&b, "error", err);
		if (r->o->explain && v->explain) {
			ctl_buf_str(&b, "\n");
			/* Indent the trace so it reads as belonging to the
			 * verdict line above it. */
			const char *p = v->explain;
			while (*p) {
				const char *nl = strchr(p, '\n');
				size_t n = nl ? (size_t)(nl - p) : strlen(p);
				ctl_buf_str(&b, "    ");
				ctl_buf_add(&b, p, n);
				ctl_buf_str(&b, "\n");
				p += n + (nl ? 1 : 0);
			}
			b.len -= b.len > 0 && b.p[b.len - 1] == '\n';
		}
	}
	if (b.failed || b.p == NULL) {
		fprintf(stderr, "%s: out of memory printing a verdict\n",
			ctl_progname);
		r->status = CTL_EXIT_STANZA;
	} else {
		fwrite(b.p, 1, b.len, stdout);
		fputc('\n', stdout);
	}
	free(b.p);
}

static void ctl_judge(ctl_run_t *r, const char *xml, size_t len, unsigned line,
		      const char *split_err)
{
	imp_view_t view;
	imp_verdict_t v;
	unsigned flags = 0;

	memset(&view, 0, sizeof view);
	memset(&v, 0, sizeof v);
	view.version = IMP_VIEW_VERSION;
	view.origin = r->o->origin;
	view.xml = xml;
	view.xml_len = len;
	view.session_jid = r->o->session;
	if (r->o->explain)
		flags |= IMP_EVAL_EXPLAIN;
	if (r->o->no_state)
		flags |= IMP_EVAL_DRY_RUN;

	int rc = imp_eval_run(r->ev, r->policy, &view, flags, &v);
	if (rc != IMP_OK) {
		/* The verdict is a fail-closed reject; say why it failed. */
		fprintf(stderr, "%s:%u: cannot judge stanza: %s\n", r->name,
			line, imp_strerror(rc));
		r->status = CTL_EXIT_STANZA;
		if (v.error == NULL && split_err == NULL)
			split_err = imp_strerror(rc);
	}
	if ((v.flags & IMP_VF_MALFORMED) || split_err)
		r->status = CTL_EXIT_STANZA;
	if (r->ar != NULL) {
		/* Recorded exactly as judged, malformed stanzas included:
		 * the archive must hold everything the server saw. */
		char where[512];
		snprintf(where, sizeof where, "%s:%u", r->name, line);
		if (ctl_archive_eval_submit(r->ar, &view, &v, where) != 0)
			r->archive_status = CTL_EXIT_DB;
	}
	ctl_print_verdict(r, line, &v, split_err);
	imp_verdict_clear(&v);
}

static int ctl_split_cb(void *ud, const char *xml, size_t len, unsigned line,
			const char *err)
{
	ctl_run_t *r = ud;
	if (xml == NULL) {
		/* Malformed: judge what is left of the file, so the verdict
		 * carries the policy's on_malformed action and the evaluator's
		 * own reason.  The remainder is preceded by as many newlines
		 * as lines before it (and starts at its line's first column),
		 * so the positions in that reason are positions in the file;
		 * XML allows white space before the root element. */
		size_t off = r->done, bol, nl = 0;
		while (off < r->len &&
		       (r->buf[off] == ' ' || r->buf[off] == '\t' ||
			r->buf[off] == '\n' || r->buf[off] == '\r'))
			off++;
		bol = off;
		while (bol > 0 && r->buf[bol - 1] != '\n')
			bol--;
		for (size_t i = 0; i < bol; i++)
			nl += r->buf[i] == '\n';
		unsigned start_line = (unsigned)nl + 1;
		size_t rest_len = r->len - bol;
		char *rest = malloc(nl + rest_len + 2);
		if (rest == NULL) {
			fprintf(stderr, "%s:%u: out of memory\n", r->name,
				start_line);
			r->status = CTL_EXIT_STANZA;
			return IMP_OK;
		}
		memset(rest, '\n', nl);
		memcpy(rest + nl, r->buf + bol, rest_len);
		/* An empty remainder would be "no stanza" to the evaluator;
		 * hand it something that is certainly malformed. */
		if (off == r->len)
			rest[nl + rest_len++] = '<';
		rest[nl + rest_len] = '\0';
		(void)line; /* the evaluator's reason carries the position */
		ctl_judge(r, rest, nl + rest_len, start_line,
			  err ? err : "malformed XML");
		free(rest);
		return IMP_OK;
	}
	if (xml >= r->buf && xml + len <= r->buf + r->len)
		r->done = (size_t)(xml + len - r->buf);
	ctl_judge(r, xml, len, line, NULL);
	return IMP_OK;
}

/* Reads a whole file (or stdin for "-") into a malloc'd buffer. */
static int ctl_read_all(const char *path, char **out, size_t *out_len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL)
		return -1;
	for (;;) {
		if (cap - len < 65536) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *p = realloc(buf, ncap + 1);
			if (p == NULL) {
				free(buf);
				if (f != stdin)
					fclose(f);
				errno = ENOMEM;
				return -1;
			}
			buf = p;
			cap = ncap;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (bad) {
		free(buf);
		errno = EIO;
		return -1;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

static int ctl_eval_file(ctl_run_t *r, const char *file)
{
	char *buf = NULL;
	size_t len = 0;

	r->name = ctl_display_name(file);
	if (ctl_read_all(file, &buf, &len) != 0) {
		fprintf(stderr, "%s: cannot read: %s\n", r->name,
			strerror(errno));
		r->status = CTL_EXIT_STANZA;
		return 0;
	}
	r->buf = buf;
	r->len = len;
	r->done = 0;
	int rc = imp_xml_split(r->ctx, buf, len, ctl_split_cb, r);
	if (rc != IMP_OK)
		r->status = CTL_EXIT_STANZA;
	free(buf);
	r->buf = NULL;
	return 0;
}

static int ctl_cmd_eval(int argc, char **argv, int explain)
{
	ctl_opts_t o;
	ctl_clock_t clk = {0, 0};
	imp_ctx_t *ctx = NULL;
	imp_policy_t *p = NULL;
	imp_eval_t *ev = NULL;
	int status;

	memset(&o, 0, sizeof o);
	o.origin = IMP_ORIGIN_UNKNOWN;
	o.engine = IMP_ENGINE_AUTO;
	status = ctl_parse(argc, argv, 1, &o);
	if (status != 0)
		goto out;
	if (explain)
		o.explain = 1;
	if (o.policy == NULL) {
		status = ctl_usage_error("%s: --policy POLICY is required",
					 explain ? "explain" : "eval");
		goto out;
	}
	if (o.n_files == 0)
		o.files[o.n_files++] = "-";
	if (ctl_ctx_new(&clk, &ctx) != IMP_OK) {
		status = CTL_EXIT_STANZA;
		goto out;
	}
	if (ctl_load(ctx, &o, &p) != IMP_OK) {
		status = CTL_EXIT_POLICY;
		goto out;
	}
	if (o.at != NULL) {
		imp_policy_info_t info;
		int64_t us = 0;
		memset(&info, 0, sizeof info);
		imp_policy_info(p, &info);
		if (imp_time_parse(ctx, o.at, info.timezone, &us) != IMP_OK) {
			status = ctl_usage_error(
				"--at: cannot parse time '%s' (want ISO 8601, "
				"e.g. 2026-11-25T10:35:00)",
				o.at);
			goto out;
		}
		clk.us = us;
		clk.fixed = 1;
	}
	int rc = imp_eval_new(ctx, &ev);
	if (rc != IMP_OK) {
		fprintf(stderr, "%s: cannot create evaluator: %s\n",
			ctl_progname, imp_strerror(rc));
		status = CTL_EXIT_STANZA;
		goto out;
	}

	ctl_run_t run;
	memset(&run, 0, sizeof run);
	run.ctx = ctx;
	run.policy = p;
	run.ev = ev;
	run.o = &o;
	if (o.archive) {
		/* Records of a class the archive does not define would be
		 * refused by PostgreSQL and quarantined: refuse up front. */
		status = ctl_archive_check_retention(p, o.policy, o.arch.dsn,
						     o.arch.dsn_file,
						     o.arch.retention);
		if (status == 1) {
			status = CTL_EXIT_POLICY;
			goto out;
		}
		/* Unreachable now: the writer spools and replays later. */
		if (status != 0)
			fprintf(stderr,
				"%s: retention classes not checked (the "
				"archive is unreachable); recording goes on\n",
				ctl_progname);
		status = ctl_archive_eval_open(ctx, &o.arch, &run.ar);
		if (status != 0)
			goto out;
	}
	for (size_t i = 0; i < o.n_files; i++)
		ctl_eval_file(&run, o.files[i]);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: cannot write output: %s\n", ctl_progname,
			strerror(errno));
		run.status = CTL_EXIT_STANZA;
	}
	status = run.status;
	/* The archive outcome wins: "exit 0 only when every record is
	 * durable in PostgreSQL". */
	if (run.ar != NULL && ctl_archive_eval_close(run.ar) != 0)
		run.archive_status = CTL_EXIT_DB;
	if (run.archive_status != 0)
		status = run.archive_status;
out:
	imp_eval_free(ev);
	imp_policy_unref(p);
	imp_ctx_free(ctx);
	free(o.files);
	return status;
}

/* ---- check ---------------------------------------------------------------- */

static int ctl_cmd_check(int argc, char **argv)
{
	ctl_opts_t o;
	ctl_clock_t clk = {0, 0};
	imp_ctx_t *ctx = NULL;
	imp_policy_t *p = NULL;
	int status;

	memset(&o, 0, sizeof o);
	o.engine = IMP_ENGINE_AUTO;
	status = ctl_parse(argc, argv, 0, &o);
	if (status != 0)
		goto out;
	if (o.n_files != 1) {
		status = ctl_usage_error("check: exactly one POLICY file "
					 "expected%s",
					 NULL);
		goto out;
	}
	o.policy = o.files[0];
	if (ctl_ctx_new(&clk, &ctx) != IMP_OK) {
		status = CTL_EXIT_POLICY;
		goto out;
	}
	if (ctl_load(ctx, &o, &p) != IMP_OK) {
		status = CTL_EXIT_POLICY;
		goto out;
	}
	imp_policy_info_t info;
	memset(&info, 0, sizeof info);
	imp_policy_info(p, &info);
	printf("%s: ok: %s %s, %zu rules, %zu lists (%zu words), "
	       "%zu detectors, %zu schedules, %zu groups, digest %.12s\u2026\n",
	       o.policy, info.name ? info.name : "(unnamed)",
	       info.version ? info.version : "(no version)", info.n_rules,
	       info.n_lists, info.n_words, info.n_detectors, info.n_schedules,
	       info.n_groups, info.digest ? info.digest : "");
	status = fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_STANZA;
	if (status == CTL_EXIT_OK && o.archive) {
		int rc = ctl_archive_check_retention(p, o.policy, o.arch.dsn,
						     o.arch.dsn_file, NULL);
		if (rc == 1)
			status = CTL_EXIT_POLICY;
		else if (rc != 0)
			status = rc;
		else
			printf("%s: ok: every retention class it names is "
			       "defined in the archive\n",
			       o.policy);
	}
out:
	imp_policy_unref(p);
	imp_ctx_free(ctx);
	free(o.files);
	return status;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(ctl_usage_text, stderr);
		fputs(ctl_archive_usage_text, stderr);
		return CTL_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		fputs(ctl_usage_text, stdout);
		fputs(ctl_archive_usage_text, stdout);
		return CTL_EXIT_OK;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("impolicyctl %s (libimpolicy API %d)\n",
		       IMP_VERSION_STRING, IMP_API_VERSION);
		return CTL_EXIT_OK;
	}
	/* "COMMAND --help" prints the usage too, as prosodyctl does. */
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(ctl_usage_text, stdout);
			fputs(ctl_archive_usage_text, stdout);
			return CTL_EXIT_OK;
		}
	}
	if (strcmp(cmd, "check") == 0)
		return ctl_cmd_check(argc - 2, argv + 2);
	if (strcmp(cmd, "eval") == 0)
		return ctl_cmd_eval(argc - 2, argv + 2, 0);
	if (strcmp(cmd, "explain") == 0)
		return ctl_cmd_eval(argc - 2, argv + 2, 1);
	int st = ctl_archive_main(argc - 1, argv + 1);
	if (st >= 0)
		return st;
	return ctl_usage_error("unknown command '%s'", cmd);
}
