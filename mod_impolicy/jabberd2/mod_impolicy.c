/*
 * mod_impolicy.c -- the jabberd2 2.7.0 session manager connector.
 *
 * Loaded by jabberd2-sm from sm.xml as <module>impolicy</module> in the
 * chains in-sess (after validate) and in-router (after session).  Every
 * stanza a local session sends is judged in in-sess; in-router judges
 * only stanzas from non-local domains (local senders were judged in
 * in-sess already), so each stanza is judged and archived once.
 *
 * Threads: the sm is a single-threaded event loop; all host calls happen
 * on it.  The reloader thread and the archive writer never call the host:
 * their log lines and the strict-durability completions go through a
 * mutex-protected queue and an eventfd registered with the sm's mio, and
 * the sm thread drains them on READ.  The sm creates its mio only after
 * the modules are initialised, so the eventfd is registered by the first
 * handler call.
 *
 * docs/jabberd2.md is the administrator's manual.
 */
#include "impolicy.h"
#include "j2abi.h"
#include "j2util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifndef IMP_JABBERD2_VERSION
#define IMP_JABBERD2_VERSION "2.7.0"
#endif

#define J2_STANZAS_NS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define J2_EX_CONFIG 78
#define J2_QUEUE_MAX 10000
#define J2_STATS_PERIOD_S 60

/* syslog levels, as jabberd2's log_write takes them */
#define J2_LOG_ERR 3
#define J2_LOG_WARNING 4
#define J2_LOG_NOTICE 5
#define J2_LOG_INFO 6

/* A stanza held until its archive record is durable (strict mode), or a
 * record of a generated stanza awaiting its completion (pkt NULL). */
typedef struct j2_held_s {
	struct j2_held_s *next;
	j2_pkt_t *pkt;   /* NULL: nothing to deliver */
	j2_sess_t *sess; /* in-sess: the sender's session; NULL: in-router */
	char sm_id[41];  /* to check the session still exists */
	int done;
	int rc;
} j2_held_t;

enum { J2_Q_LOG, J2_Q_DONE };

typedef struct j2_qitem_s {
	struct j2_qitem_s *next;
	int kind;
	int level;
	j2_held_t *held;
	int rc;
	char line[];
} j2_qitem_t;

typedef struct j2_state_s {
	j2_sm_t *sm;
	j2_module_t *mod;
	pthread_t sm_thread;
	unsigned chains; /* bit per chain seen in module_init */
	int warned_chains;

	/* configuration */
	char *policy_path;
	char **domains;
	size_t n_domains;
	unsigned reload_interval;
	int policy_fail_open;
	char **notify;
	size_t n_notify;
	int archive_on;
	int archive_fail_open;
	int strict;
	char *node;
	unsigned char *key;
	size_t key_len;

	/* library */
	imp_ctx_t *ctx;
	imp_slot_t *slot;
	imp_eval_t *ev;     /* judges stanzas: verdicts borrow its scratch */
	imp_eval_t *ev_gen; /* generated stanzas, sent while a verdict of ev
			       is still in use */
	imp_archive_t *ar;

	/* notifier */
	int efd;
	j2_mio_fd_t *mfd;
	j2_mio_t mio;
	int reg_failed;
	pthread_mutex_t qlock;
	j2_qitem_t *qhead, *qtail;
	size_t qlen;
	uint64_t qdropped;
	atomic_int stats_due;

	/* reloader */
	pthread_t reloader;
	int reloader_started;
	pthread_mutex_t rlock;
	pthread_cond_t rcond;
	int stop;
	struct stat pst; /* the policy file as last loaded (or tried) */
	int pst_valid;

	/* held stanzas, in submission order (sm thread only) */
	j2_held_t *hhead, *htail;
	j2_pkt_t *resume; /* the held packet being re-injected */

	/* ids of generated stanzas: a random per-process prefix, so the
	 * copies the router hands back are recognised and never judged */
	char gen_prefix[40];
	size_t gen_prefix_len;
	uint64_t gen_count;

	/* scratch for the stanza text (sm thread only) */
	char *buf;
	size_t buf_size;
	int *open; /* elements opened, not yet closed, while writing */
	size_t open_cap;

	/* statistics (sm thread only) */
	uint64_t judged, rejected, redacted, flagged, refused_unrecorded;
	j2_hist_t hist;
} j2_state_t;

static j2_state_t g = {.efd = -1};

int module_init(j2_mod_instance_t *mi) __attribute__((visibility("default")));

/* ---- logging ------------------------------------------------------------ */

static int j2_on_sm_thread(void)
{
	return pthread_equal(pthread_self(), g.sm_thread);
}

static void j2_notify_fd(void)
{
	uint64_t one = 1;
	ssize_t n;

	if (g.efd < 0)
		return;
	n = write(g.efd, &one, sizeof one);
	(void)n; /* EAGAIN: the counter is already non-zero */
}

static void j2_queue_push(j2_qitem_t *it)
{
	pthread_mutex_lock(&g.qlock);
	if (it->kind == J2_Q_LOG && g.qlen >= J2_QUEUE_MAX) {
		g.qdropped++;
		pthread_mutex_unlock(&g.qlock);
		free(it);
		return;
	}
	it->next = NULL;
	if (g.qtail)
		g.qtail->next = it;
	else
		g.qhead = it;
	g.qtail = it;
	g.qlen++;
	pthread_mutex_unlock(&g.qlock);
	j2_notify_fd();
}

static void j2_vlog(int level, const char *fmt, va_list ap)
{
	char line[1024];
	j2_qitem_t *it;
	size_t n;

	vsnprintf(line, sizeof line, fmt, ap);
	if (j2_on_sm_thread()) {
		if (g.sm && g.sm->log)
			log_write(g.sm->log, level, "impolicy: %s", line);
		return;
	}
	n = strlen(line);
	it = malloc(sizeof *it + sizeof "impolicy: " + n);
	if (!it)
		return;
	memset(it, 0, sizeof *it);
	it->kind = J2_Q_LOG;
	it->level = level;
	memcpy(it->line, "impolicy: ", 10);
	memcpy(it->line + 10, line, n + 1);
	j2_queue_push(it);
}

static void j2_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void j2_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	j2_vlog(level, fmt, ap);
	va_end(ap);
}

/* The library's log callback: any thread. */
static void j2_imp_log(void *ud, imp_log_level_t level, const char *msg)
{
	static const int map[] = {J2_LOG_ERR, J2_LOG_WARNING, J2_LOG_NOTICE,
				  J2_LOG_INFO};

	(void)ud;
	j2_log(level <= IMP_LOG_DEBUG ? map[level] : J2_LOG_INFO, "%s", msg);
}

/* Refuses to run: stderr, syslog and the sm log, then exit 78 so that no
 * traffic passes unjudged. */
static void j2_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
static void j2_die(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "impolicy: %s\n", line);
	fflush(stderr);
	openlog("jabberd2-sm", LOG_PID, LOG_DAEMON);
	syslog(LOG_ERR, "impolicy: %s", line);
	closelog();
	if (g.sm && g.sm->log)
		log_write(g.sm->log, J2_LOG_ERR, "impolicy: %s", line);
	exit(J2_EX_CONFIG);
}

/* ---- statistics ----------------------------------------------------------- */

static uint64_t j2_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void j2_log_stats(void)
{
	uint64_t p50 = j2_hist_quantile(&g.hist, 0.5);
	uint64_t p99 = j2_hist_quantile(&g.hist, 0.99);

	j2_log(J2_LOG_NOTICE,
	       "stats: judged=%llu rejected=%llu redacted=%llu flagged=%llu "
	       "refused_unrecorded=%llu handler_us p50=%.1f p99=%.1f "
	       "max=%.1f",
	       (unsigned long long)g.judged, (unsigned long long)g.rejected,
	       (unsigned long long)g.redacted, (unsigned long long)g.flagged,
	       (unsigned long long)g.refused_unrecorded, (double)p50 / 1000.0,
	       (double)p99 / 1000.0, (double)g.hist.max_ns / 1000.0);
}

/* ---- configuration ---------------------------------------------------------- */

static const char *j2_cfg(const char *key, int num)
{
	return config_get_one(g.sm->config, key, num);
}

static char *j2_strdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		j2_die("out of memory; refusing to initialise");
	return d;
}

static char **j2_cfg_list(const char *key, size_t *n)
{
	char **v;
	size_t i, cnt = 0;

	while (j2_cfg(key, (int)cnt))
		cnt++;
	*n = cnt;
	v = calloc(cnt + 1, sizeof *v);
	if (!v)
		j2_die("out of memory; refusing to initialise");
	for (i = 0; i < cnt; i++)
		v[i] = j2_strdup(j2_cfg(key, (int)i));
	return v;
}

static int j2_cfg_choice(const char *key, const char *a, const char *b,
			 int dflt)
{
	const char *v = j2_cfg(key, 0);

	if (!v)
		return dflt;
	if (strcmp(v, a) == 0)
		return 0;
	if (strcmp(v, b) == 0)
		return 1;
	j2_die("configuration error: <%s> must be %s or %s (not '%s'); "
	       "refusing to initialise",
	       key, a, b, v);
}

/* Reads an HMAC key file: its bytes, one trailing newline dropped. */
static void j2_read_key(const char *path)
{
	unsigned char buf[4097];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		j2_die("configuration error: cannot read key file %s: %s; "
		       "refusing to initialise",
		       path, strerror(errno));
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n == 0 || n > 4096)
		j2_die("configuration error: key file %s must hold 1..4096 "
		       "bytes; refusing to initialise",
		       path);
	g.key = malloc(n);
	if (!g.key)
		j2_die("out of memory; refusing to initialise");
	memcpy(g.key, buf, n);
	g.key_len = n;
	memset(buf, 0, sizeof buf);
}

static int j2_is_local(const char *domain)
{
	size_t i;

	if (!domain)
		return 0;
	if (g.sm->id && strcasecmp(domain, g.sm->id) == 0)
		return 1;
	for (i = 0; i < g.n_domains; i++)
		if (strcasecmp(domain, g.domains[i]) == 0)
			return 1;
	return 0;
}

/* The domain server notices come from: the local party's domain (the
 * sm's own id is a component name, not a domain users know). */
static const char *j2_server_domain(const j2_jid_t *local)
{
	if (local && local->domain && local->domain[0])
		return local->domain;
	if (g.n_domains)
		return g.domains[0];
	return g.sm->id;
}

/* ---- policy loading (sm thread at init, reloader thread after) ------------ */

static int j2_load_policy(void)
{
	imp_load_options_t opt;
	imp_policy_t *p = NULL, *cur;
	imp_errors_t *errs = NULL;
	imp_policy_info_t info;
	char msg[1024];
	size_t i, n;
	int rc;

	memset(&opt, 0, sizeof opt);
	opt.version = IMP_LOAD_OPTIONS_VERSION;
	opt.local_domains = (const char *const *)g.domains;
	opt.n_local_domains = g.n_domains;
	rc = imp_policy_load(g.ctx, g.policy_path, &opt, &p, &errs);
	if (rc == IMP_OK && p) {
		imp_policy_info(p, &info);
		imp_slot_swap(g.slot, p);
		j2_log(J2_LOG_NOTICE,
		       "policy %s %s loaded (digest %.12s, %zu rules) from %s",
		       info.name ? info.name : "?",
		       info.version ? info.version : "?",
		       info.digest ? info.digest : "", info.n_rules,
		       g.policy_path);
		imp_policy_unref(p);
		return 0;
	}
	n = errs ? imp_errors_count(errs) : 0;
	for (i = 0; i < n; i++) {
		imp_error_format(imp_errors_get(errs, i), msg, sizeof msg);
		j2_log(J2_LOG_ERR, "policy error: %s", msg);
	}
	if (errs && imp_errors_dropped(errs))
		j2_log(J2_LOG_ERR, "policy error: %zu more errors not shown",
		       imp_errors_dropped(errs));
	if (n == 0)
		j2_log(J2_LOG_ERR, "policy error: %s: %s", g.policy_path,
		       imp_strerror(rc));
	imp_errors_free(errs);
	cur = imp_slot_acquire(g.slot);
	if (cur) {
		j2_log(J2_LOG_ERR, "keeping the previous policy");
		imp_policy_unref(cur);
	} else if (g.policy_fail_open) {
		j2_log(J2_LOG_ERR, "no policy: passing stanzas unjudged "
				   "(fail-open)");
	} else {
		j2_log(J2_LOG_ERR, "no policy: refusing all stanzas "
				   "(fail-closed)");
	}
	return -1;
}

static int j2_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void *j2_reloader_main(void *arg)
{
	struct timespec deadline, now;
	uint64_t last_stats, last_check;
	struct stat st;
	unsigned step;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &now);
	last_stats = last_check = (uint64_t)now.tv_sec;
	step = g.reload_interval ? g.reload_interval : J2_STATS_PERIOD_S;
	if (step > J2_STATS_PERIOD_S)
		step = J2_STATS_PERIOD_S;
	pthread_mutex_lock(&g.rlock);
	while (!g.stop) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += step;
		while (!g.stop &&
		       pthread_cond_timedwait(&g.rcond, &g.rlock, &deadline) !=
			       ETIMEDOUT)
			;
		if (g.stop)
			break;
		pthread_mutex_unlock(&g.rlock);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (g.reload_interval &&
		    (uint64_t)now.tv_sec - last_check >= g.reload_interval) {
			last_check = (uint64_t)now.tv_sec;
			if (stat(g.policy_path, &st) == 0) {
				if (!g.pst_valid ||
				    !j2_same_file(&st, &g.pst)) {
					g.pst = st;
					g.pst_valid = 1;
					j2_load_policy();
				}
			} else if (g.pst_valid) {
				g.pst_valid = 0;
				j2_log(J2_LOG_ERR,
				       "policy file %s: %s (keeping the "
				       "current policy)",
				       g.policy_path, strerror(errno));
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((uint64_t)now.tv_sec - last_stats >= J2_STATS_PERIOD_S) {
			last_stats = (uint64_t)now.tv_sec;
			atomic_store(&g.stats_due, 1);
			j2_notify_fd();
		}
		pthread_mutex_lock(&g.rlock);
	}
	pthread_mutex_unlock(&g.rlock);
	return NULL;
}

/* ---- archive -------------------------------------------------------------- */

/* Writer thread (or submit itself): queue the completion for the sm. */
static void j2_archive_done(void *ud, uint64_t seq, int rc)
{
	j2_qitem_t *it = calloc(1, sizeof *it);

	(void)seq;
	if (!it) {
		/* cannot happen in practice; the stanza stays held until
		 * shutdown rather than being delivered unconfirmed */
		return;
	}
	it->kind = J2_Q_DONE;
	it->held = ud;
	it->rc = rc;
	j2_queue_push(it);
}

static j2_held_t *j2_held_new(j2_pkt_t *pkt, j2_sess_t *sess)
{
	j2_held_t *h = calloc(1, sizeof *h);

	if (!h)
		return NULL;
	h->pkt = pkt;
	h->sess = sess;
	if (sess)
		memcpy(h->sm_id, sess->sm_id, sizeof h->sm_id - 1);
	if (g.htail)
		g.htail->next = h;
	else
		g.hhead = h;
	g.htail = h;
	return h;
}

/* Removes the tail entry (submit refused it before queueing). */
static void j2_held_drop_tail(j2_held_t *h)
{
	j2_held_t *p;

	if (g.hhead == h) {
		g.hhead = g.htail = NULL;
	} else {
		for (p = g.hhead; p && p->next != h; p = p->next)
			;
		if (p) {
			p->next = NULL;
			g.htail = p;
		}
	}
	free(h);
}

/* Records a judged stanza.  hold_pkt: strict mode holds it until durable.
 * Returns 1 when held, 0 when recorded (or no archive), -1 when it could
 * not be recorded and must be refused. */
static int j2_record(const imp_view_t *view, const imp_verdict_t *v,
		     j2_pkt_t *hold_pkt, j2_sess_t *sess)
{
	j2_held_t *h;
	int rc;

	if (!g.ar)
		return g.archive_on && !g.archive_fail_open ? -1 : 0;
	if (!g.strict)
		return imp_archive_submit(g.ar, view, v, NULL) == IMP_OK ? 0
									 : -1;
	h = j2_held_new(NULL, sess);
	if (!h)
		return -1;
	rc = imp_archive_submit_async(g.ar, view, v, j2_archive_done, h, NULL);
	if (rc != IMP_OK) {
		j2_held_drop_tail(h);
		return -1;
	}
	/* done may already have been queued; the pkt is attached before the
	 * queue is drained (on this thread), so that is safe */
	h->pkt = hold_pkt;
	return hold_pkt ? 1 : 0;
}

/* ---- stanza text ------------------------------------------------------------ */

/* Serialises element 1 of the packet (the stanza) straight from the nad
 * into g.buf, without the sm's session attributes (and their namespace
 * declaration) on the stanza element.  The output is what nad_print
 * prints, minus those: the same namespace declarations, the same quoting
 * ('...') and the same escapes (&quot; &apos; &lt; &gt; &amp;).  It
 * replaces nad_print + a stripping pass + a copy: nad_print appends to
 * the packet's cdata, which costs a realloc of that buffer per stanza.
 * g.buf grows only when a bigger stanza arrives. */

#define J2_SESSION_NS "http://jabberd.jabberstudio.org/ns/session/1.0"
#define J2_XML_NS "http://www.w3.org/XML/1998/namespace"

typedef struct j2_wr_s {
	size_t len;
	int oom;
} j2_wr_t;

static int j2_wr_room(j2_wr_t *w, size_t more)
{
	size_t need = w->len + more + 1, sz;
	char *b;

	if (need <= g.buf_size)
		return 1;
	if (w->oom || need < more)
		return w->oom = 1, 0;
	sz = need + need / 2 + 4096;
	b = realloc(g.buf, sz);
	if (!b)
		return w->oom = 1, 0;
	g.buf = b;
	g.buf_size = sz;
	return 1;
}

static void j2_wr(j2_wr_t *w, const char *s, size_t n)
{
	if (n == 0 || !j2_wr_room(w, n))
		return;
	memcpy(g.buf + w->len, s, n);
	w->len += n;
}

static void j2_wr_c(j2_wr_t *w, char c)
{
	if (!j2_wr_room(w, 1))
		return;
	g.buf[w->len++] = c;
}

/* nad text at (i, n), escaped for content and '-quoted attributes. */
static void j2_wr_esc(j2_wr_t *w, const j2_nad_t *nad, int i, int n)
{
	const char *s, *run;
	int k;

	if (n <= 0 || i < 0)
		return;
	s = nad->cdata + i;
	run = s;
	for (k = 0; k < n; k++) {
		const char *e;

		switch (s[k]) {
		case '"':
			e = "&quot;";
			break;
		case '\'':
			e = "&apos;";
			break;
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '&':
			e = "&amp;";
			break;
		default:
			continue;
		}
		j2_wr(w, run, (size_t)(s + k - run));
		j2_wr(w, e, strlen(e));
		run = s + k + 1;
	}
	j2_wr(w, run, (size_t)(s + n - run));
}

static int j2_ns_is(const j2_nad_t *nad, int ns, const char *uri, size_t len)
{
	return ns >= 0 && (size_t)nad->nss[ns].luri == len &&
	       memcmp(nad->cdata + nad->nss[ns].iuri, uri, len) == 0;
}

static void j2_wr_qname(j2_wr_t *w, const j2_nad_t *nad, int ns, int iname,
			int lname)
{
	if (ns >= 0 && nad->nss[ns].iprefix >= 0) {
		j2_wr(w, nad->cdata + nad->nss[ns].iprefix,
		      (size_t)nad->nss[ns].lprefix);
		j2_wr_c(w, ':');
	}
	j2_wr(w, nad->cdata + iname, (size_t)lname);
}

static void j2_wr_xmlns(j2_wr_t *w, const j2_nad_t *nad, int ns)
{
	j2_wr(w, " xmlns", 6);
	if (nad->nss[ns].iprefix >= 0) {
		j2_wr_c(w, ':');
		j2_wr(w, nad->cdata + nad->nss[ns].iprefix,
		      (size_t)nad->nss[ns].lprefix);
	}
	j2_wr(w, "='", 2);
	j2_wr(w, nad->cdata + nad->nss[ns].iuri, (size_t)nad->nss[ns].luri);
	j2_wr_c(w, '\'');
}

/* Writes the start tag of element e (with its text when it stays open).
 * top: the stanza element, whose session attributes are left out.
 * Returns 1 when e was left open (its children and end tag follow). */
static int j2_wr_start(j2_wr_t *w, const j2_nad_t *nad, int e, int top)
{
	const struct j2_nad_elem_st *el = &nad->elems[e];
	const size_t sl = sizeof J2_SESSION_NS - 1, xl = sizeof J2_XML_NS - 1;
	int ns, a, elem_ns = -1;

	j2_wr_c(w, '<');
	j2_wr_qname(w, nad, el->my_ns, el->iname, el->lname);
	if (el->my_ns >= 0 && nad->nss[el->my_ns].iprefix >= 0) {
		elem_ns = el->my_ns;
		j2_wr_xmlns(w, nad, elem_ns);
	}
	for (ns = el->ns; ns >= 0; ns = nad->nss[ns].next) {
		if (ns == elem_ns || j2_ns_is(nad, ns, J2_XML_NS, xl) ||
		    (top && j2_ns_is(nad, ns, J2_SESSION_NS, sl)))
			continue;
		j2_wr_xmlns(w, nad, ns);
	}
	for (a = el->attr; a >= 0; a = nad->attrs[a].next) {
		const struct j2_nad_attr_st *at = &nad->attrs[a];

		if (at->lname <= 0 ||
		    (top && j2_ns_is(nad, at->my_ns, J2_SESSION_NS, sl)))
			continue;
		j2_wr_c(w, ' ');
		j2_wr_qname(w, nad, at->my_ns, at->iname, at->lname);
		j2_wr(w, "='", 2);
		j2_wr_esc(w, nad, at->ival, at->lval);
		j2_wr_c(w, '\'');
	}
	/* An empty element is "<x/>", except the nad's last element: the
	 * installed 2.7.0 nad_print writes "<x></x>" for that one (observed),
	 * and the archive keeps the text it always had. */
	if (e + 1 < nad->ecur && nad->elems[e + 1].depth <= el->depth &&
	    el->lcdata == 0) {
		j2_wr(w, "/>", 2);
		j2_wr_esc(w, nad, el->itail, el->ltail);
		return 0;
	}
	j2_wr_c(w, '>');
	j2_wr_esc(w, nad, el->icdata, el->lcdata);
	return 1;
}

static void j2_wr_end(j2_wr_t *w, const j2_nad_t *nad, int e)
{
	const struct j2_nad_elem_st *el = &nad->elems[e];

	j2_wr(w, "</", 2);
	j2_wr_qname(w, nad, el->my_ns, el->iname, el->lname);
	j2_wr_c(w, '>');
	j2_wr_esc(w, nad, el->itail, el->ltail);
}

/* Writes element 1 and its subtree, in document order, without recursion
 * (a stanza may nest as deep as c2s lets it): g.open holds the elements
 * whose end tags are still due. */
static void j2_wr_stanza(j2_wr_t *w, const j2_nad_t *nad)
{
	size_t n_open = 0;
	int e;

	for (e = 1; e < nad->ecur && !w->oom; e++) {
		int depth = nad->elems[e].depth;

		if (e > 1 && depth <= nad->elems[1].depth)
			break; /* past the stanza's subtree */
		while (n_open > 0 &&
		       nad->elems[g.open[n_open - 1]].depth >= depth)
			j2_wr_end(w, nad, g.open[--n_open]);
		if (!j2_wr_start(w, nad, e, e == 1))
			continue;
		if (n_open == g.open_cap) {
			size_t cap = g.open_cap ? 2 * g.open_cap : 64;
			int *o = realloc(g.open, cap * sizeof *o);

			if (!o) {
				w->oom = 1;
				return;
			}
			g.open = o;
			g.open_cap = cap;
		}
		g.open[n_open++] = e;
	}
	while (n_open > 0)
		j2_wr_end(w, nad, g.open[--n_open]);
}

static int j2_stanza_text(j2_nad_t *nad, size_t *len)
{
	j2_wr_t w = {0, 0};

	if (!nad || nad->ecur < 2)
		return -1;
	j2_wr_stanza(&w, nad);
	if (w.oom || w.len == 0)
		return -1;
	g.buf[w.len] = '\0';
	*len = w.len;
	return 0;
}

/* ---- generated stanzas ------------------------------------------------------ */

static void j2_body(j2_pkt_t *pkt, const char *text)
{
	j2_nad_t *nad = pkt->nad;

	nad_insert_elem(nad, 1, nad->elems[1].my_ns, "body", text);
}

/* Archives a stanza the module generated (dry-run verdict) and routes it;
 * in fail-closed mode an unrecordable one is dropped. */
static void j2_send_generated(j2_pkt_t *pkt)
{
	imp_verdict_t v;
	imp_view_t view;
	imp_policy_t *p;
	size_t len;
	int rc = 0;

	if (!pkt)
		return;
	{
		char id[64];

		snprintf(id, sizeof id, "%s%llu", g.gen_prefix,
			 (unsigned long long)++g.gen_count);
		nad_set_attr(pkt->nad, 1, -1, "id", id, 0);
	}
	if (g.ar && j2_stanza_text(pkt->nad, &len) == 0) {
		memset(&view, 0, sizeof view);
		view.version = IMP_VIEW_VERSION;
		view.origin = IMP_ORIGIN_LOCAL;
		view.xml = g.buf;
		view.xml_len = len;
		memset(&v, 0, sizeof v);
		p = imp_slot_acquire(g.slot);
		imp_eval_run(g.ev_gen, p, &view,
			     IMP_EVAL_DRY_RUN | IMP_EVAL_BORROW, &v);
		rc = j2_record(&view, &v, NULL, NULL);
		imp_verdict_clear(&v);
		if (p)
			imp_policy_unref(p);
	} else if (g.archive_on && !g.ar) {
		rc = j2_record(NULL, NULL, NULL, NULL);
	}
	if (rc < 0) {
		g.refused_unrecorded++;
		pkt_free(pkt);
		return;
	}
	pkt_router(pkt);
}

/* ---- actions ---------------------------------------------------------------- */

/* Turns the packet into an RFC 6120 policy-violation error addressed to
 * the sender (the facts file's recipe).  pkt->from must be set. */
static void j2_make_policy_error(j2_pkt_t *pkt, const char *text)
{
	j2_nad_t *nad = pkt->nad;
	int err, el;

	nad_set_attr(nad, 1, -1, "type", "error", 5);
	err = nad_insert_elem(nad, 1, nad->elems[1].my_ns, "error", NULL);
	nad_set_attr(nad, err, -1, "type", "modify", 6);
	el = nad_insert_elem(nad, err, -1, "text", text);
	nad_append_namespace(nad, el, J2_STANZAS_NS, NULL);
	el = nad_insert_elem(nad, err, -1, "policy-violation", NULL);
	nad_append_namespace(nad, el, J2_STANZAS_NS, NULL);
	pkt->type |= J2_PKT_ERROR;
	pkt_tofrom(pkt);
}

/* in-sess: c2s does not set from; stamp it from the session. */
static void j2_stamp_from(j2_pkt_t *pkt, j2_sess_t *sess)
{
	if (pkt->from == NULL && sess && sess->jid) {
		pkt->from = jid_dup(sess->jid);
		if (pkt->from)
			nad_set_attr(pkt->nad, 1, -1, "from",
				     jid_full(pkt->from), 0);
	}
}

/* Sends the error back (pkt is consumed). */
static void j2_bounce(j2_pkt_t *pkt, j2_sess_t *sess)
{
	if (sess)
		pkt_sess(pkt, sess);
	else
		pkt_router(pkt);
}

static void j2_refuse_resource(j2_pkt_t *pkt, j2_sess_t *sess)
{
	j2_stamp_from(pkt, sess);
	j2_bounce(pkt_error(pkt, J2_ERR_RESOURCE_CONSTRAINT), sess);
}

static const char *j2_kind(int type)
{
	if (type & J2_PKT_MESSAGE)
		return "message";
	if (type & (J2_PKT_PRESENCE | J2_PKT_S10N))
		return "presence";
	if (type & J2_PKT_IQ)
		return "iq";
	return "stanza";
}

static void j2_reject(j2_pkt_t *pkt, j2_sess_t *sess, const imp_verdict_t *v)
{
	char text[1024], body[1536], to[512], sender[512], server[256];
	const char *notice = v->notice ? v->notice
				       : "blocked by the "
					 "compliance policy";
	int type = pkt->type;

	if (type & J2_PKT_ERROR) { /* never answer an error */
		pkt_free(pkt);
		return;
	}
	j2_stamp_from(pkt, sess);
	if (v->section)
		snprintf(text, sizeof text, "%s [%s]", notice, v->section);
	else
		snprintf(text, sizeof text, "%s", notice);
	snprintf(to, sizeof to, "%s", pkt->to ? jid_full(pkt->to) : "");
	snprintf(sender, sizeof sender, "%s",
		 sess && sess->jid ? jid_full(sess->jid)
		 : pkt->from       ? jid_full(pkt->from)
				   : "");
	snprintf(server, sizeof server, "%s",
		 j2_server_domain(sess ? sess->jid : pkt->to));
	j2_make_policy_error(pkt, text);
	j2_bounce(pkt, sess);
	if (!sender[0] || !strchr(sender, '@'))
		return; /* no notices to servers: two policies could ping-pong */
	snprintf(body, sizeof body,
		 "Your %s%s%s was not delivered: %s%s%s%s%s.", j2_kind(type),
		 to[0] ? " to " : "", to, notice,
		 v->section ? " (policy section " : "",
		 v->section ? v->section : "", v->rule_id ? ", rule " : "",
		 v->rule_id ? v->rule_id : "");
	if (v->section) {
		size_t n = strlen(body);

		if (n + 2 < sizeof body) {
			body[n - 1] = ')';
			body[n] = '.';
			body[n + 1] = '\0';
		}
	}
	{
		j2_pkt_t *n =
			pkt_create(g.sm, "message", "chat", sender, server);

		if (n) {
			j2_body(n, body);
			j2_send_generated(n);
		}
	}
}

static void j2_refuse_nopolicy(j2_pkt_t *pkt, j2_sess_t *sess)
{
	if (pkt->type & J2_PKT_ERROR) {
		pkt_free(pkt);
		return;
	}
	j2_stamp_from(pkt, sess);
	j2_make_policy_error(pkt, "the compliance policy is not loaded; "
				  "nothing can be delivered");
	j2_bounce(pkt, sess);
}

/* Replaces the stanza (element 1) with the verdict's redacted text. */
static int j2_redact(j2_pkt_t *pkt, const imp_verdict_t *v)
{
	j2_nad_t *src, *nad = pkt->nad;
	char uri[512], prefix[128];
	int i, ns, first;

	if (!v->redacted_xml || v->redacted_xml_len == 0 ||
	    v->redacted_xml_len > 0x7fffffff)
		return -1;
	src = nad_parse(v->redacted_xml, (int)v->redacted_xml_len);
	if (!src)
		return -1;
	if (src->ecur < 1) {
		nad_free(src);
		return -1;
	}
	nad_drop_elem(nad, 1);
	first = nad_insert_nad(nad, 0, src, 0);
	if (first != 1) {
		nad_free(src);
		return -1;
	}
	/* nad_insert_nad does not declare namespaces the destination already
	 * knows (the dropped original's); declare them on the copies */
	for (i = 0; i < src->ecur; i++) {
		for (ns = src->elems[i].ns; ns >= 0; ns = src->nss[ns].next) {
			struct j2_nad_ns_st *n = &src->nss[ns];

			if (n->luri <= 0 || (size_t)n->luri >= sizeof uri ||
			    n->lprefix >= (int)sizeof prefix)
				continue;
			memcpy(uri, src->cdata + n->iuri, (size_t)n->luri);
			uri[n->luri] = '\0';
			if (n->lprefix > 0 && n->iprefix >= 0) {
				memcpy(prefix, src->cdata + n->iprefix,
				       (size_t)n->lprefix);
				prefix[n->lprefix] = '\0';
			}
			nad_append_namespace(nad, (unsigned)(first + i), uri,
					     n->lprefix > 0 && n->iprefix >= 0
						     ? prefix
						     : NULL);
		}
	}
	nad_free(src);
	return 0;
}

static void j2_notify(const imp_verdict_t *v)
{
	char text[4096], rules[512];
	size_t i, o = 0, total = v->n_notify + g.n_notify;

	if (!(v->flags & IMP_VF_NOTIFY) || total == 0)
		return;
	rules[0] = '\0';
	for (i = 0; i < v->n_rules && o < sizeof rules - 1; i++) {
		int n = snprintf(
			rules + o, sizeof rules - o, "%s%s", i ? "," : "",
			v->rules[i].rule_id ? v->rules[i].rule_id : "?");
		if (n < 0)
			break;
		o += (size_t)n;
	}
	snprintf(text, sizeof text,
		 "Compliance notice: %s by rule(s) %s%s%s%s\nfrom: %s\nto: "
		 "%s\nbody (masked): %s",
		 imp_action_name(v->action), rules[0] ? rules : "-",
		 v->section ? " [" : "", v->section ? v->section : "",
		 v->section ? "]" : "", v->stanza.from ? v->stanza.from : "-",
		 v->stanza.to ? v->stanza.to : "-",
		 v->redacted_body ? v->redacted_body : "(withheld)");
	for (i = 0; i < total; i++) {
		const char *jid = i < v->n_notify ? v->notify[i]
						  : g.notify[i - v->n_notify];
		j2_pkt_t *n;
		size_t k;
		int dup = 0;

		for (k = 0; k < i && !dup; k++) {
			const char *o2 = k < v->n_notify
						 ? v->notify[k]
						 : g.notify[k - v->n_notify];
			dup = strcmp(o2, jid) == 0;
		}
		if (dup || !jid[0])
			continue;
		n = pkt_create(g.sm, "message", "headline", jid,
			       j2_server_domain(NULL));
		if (!n)
			continue;
		j2_body(n, text);
		j2_send_generated(n);
	}
}

/* ---- notifier --------------------------------------------------------------- */

static void j2_release(void)
{
	j2_held_t *h;

	while ((h = g.hhead) && h->done) {
		j2_pkt_t *pkt = h->pkt;
		j2_sess_t *sess = NULL;

		g.hhead = h->next;
		if (!g.hhead)
			g.htail = NULL;
		if (pkt && h->sess) {
			sess = xhash_get(g.sm->sessions, h->sm_id);
			if (sess != h->sess) { /* the session has ended */
				pkt_free(pkt);
				pkt = NULL;
			}
		}
		if (pkt && h->rc != IMP_OK) {
			g.refused_unrecorded++;
			j2_refuse_resource(pkt, sess);
		} else if (pkt && sess) {
			int ret;

			g.resume = pkt;
			ret = mm_in_sess(g.sm->mm, sess, pkt);
			g.resume = NULL;
			if (ret == J2_MOD_PASS) {
				if (pkt->type == J2_PKT_IQ_RESULT)
					pkt_free(pkt);
				else
					pkt_sess(pkt_error(pkt, 102), sess);
			} else if (ret != J2_MOD_HANDLED) {
				pkt_sess(pkt_error(pkt, -ret), sess);
			}
		} else if (pkt) {
			/* dispatch() turned a route error into a stanza error
			 * the first time; a second pass would drop it */
			pkt->rtype &= ~J2_ROUTE_ERROR;
			g.resume = pkt;
			dispatch(g.sm, pkt);
			g.resume = NULL;
		} else if (h->rc != IMP_OK) {
			g.refused_unrecorded++;
		}
		free(h);
	}
}

/* Drains the queue on the sm thread. */
static void j2_drain(void)
{
	j2_qitem_t *it, *next;
	uint64_t dropped;

	pthread_mutex_lock(&g.qlock);
	it = g.qhead;
	g.qhead = g.qtail = NULL;
	g.qlen = 0;
	dropped = g.qdropped;
	g.qdropped = 0;
	pthread_mutex_unlock(&g.qlock);
	for (; it; it = next) {
		next = it->next;
		if (it->kind == J2_Q_LOG) {
			if (g.sm->log)
				log_write(g.sm->log, it->level, "%s", it->line);
		} else if (it->held) {
			it->held->done = 1;
			it->held->rc = it->rc;
		}
		free(it);
	}
	if (dropped)
		j2_log(J2_LOG_WARNING, "%llu log lines dropped (queue full)",
		       (unsigned long long)dropped);
	if (atomic_exchange(&g.stats_due, 0))
		j2_log_stats();
	j2_release();
}

static int j2_mio_cb(j2_mio_t m, int action, j2_mio_fd_t *fd, void *data,
		     void *arg)
{
	uint64_t v;
	ssize_t n;

	(void)m, (void)data, (void)arg;
	if (action == J2_MIO_READ) {
		do
			n = read(fd->fd, &v, sizeof v);
		while (n < 0 && errno == EINTR);
		j2_drain();
		return 1;
	}
	if (action == J2_MIO_CLOSE) {
		/* the sm closed it (it owns the descriptor now) */
		g.mfd = NULL;
		g.efd = -1;
	}
	return 0;
}

/* First handler call: the sm's mio exists now. */
static void j2_register(void)
{
	j2_mio_t m = g.sm->mio;

	if (g.mfd || !m || !*m || g.efd < 0)
		return;
	g.mfd = (*m)->mio_register(m, g.efd, j2_mio_cb, NULL);
	if (!g.mfd) {
		g.reg_failed = 1;
		j2_log(J2_LOG_ERR, "cannot register the notifier with the sm "
				   "event loop; strict durability cannot "
				   "complete");
		return;
	}
	g.mio = m;
	(*m)->mio_read(m, g.mfd);
	j2_drain();
}

/* ---- the handlers ------------------------------------------------------------ */

static int j2_judge(j2_sess_t *sess, j2_pkt_t *pkt, imp_origin_t origin)
{
	imp_verdict_t v;
	imp_view_t view;
	imp_policy_t *p;
	size_t len;
	int rc, ret = J2_MOD_PASS, held = 0;
	uint64_t t0 = j2_now_ns();

	if (!g.mfd && !g.reg_failed)
		j2_register();
	if (g.reg_failed)
		j2_drain(); /* no notifier: completions are taken here */
	if (!g.warned_chains &&
	    g.chains != (1u << J2_CHAIN_IN_SESS | 1u << J2_CHAIN_IN_ROUTER)) {
		g.warned_chains = 1;
		j2_log(J2_LOG_ERR, "configuration error: the module must be in "
				   "both chains in-sess and in-router; "
				   "stanzas on the missing one are not judged");
	}
	if (j2_stanza_text(pkt->nad, &len) != 0)
		return J2_MOD_PASS; /* nothing printable: the core's job */

	memset(&view, 0, sizeof view);
	view.version = IMP_VIEW_VERSION;
	view.origin = origin;
	view.xml = g.buf;
	view.xml_len = len;
	if (sess && sess->jid) {
		/* the jid's own string: valid while the session is */
		view.session_jid = jid_full(sess->jid);
		view.from = view.session_jid;
	}
	memset(&v, 0, sizeof v);
	p = imp_slot_acquire(g.slot);
	if (!p) {
		if (g.policy_fail_open)
			return J2_MOD_PASS;
		/* a reject verdict for the archive (evaluation without a
		 * policy fails closed) */
		imp_eval_run(g.ev, NULL, &view, IMP_EVAL_DRY_RUN, &v);
		rc = j2_record(&view, &v, NULL, sess);
		imp_verdict_clear(&v);
		if (rc < 0)
			g.refused_unrecorded++;
		j2_refuse_nopolicy(pkt, sess);
		ret = J2_MOD_HANDLED;
		goto done;
	}
	/* borrowed: the verdict lives in g.ev's scratch and points into p,
	 * both kept until done_v */
	imp_eval_run(g.ev, p, &view, IMP_EVAL_BORROW, &v);
	g.judged++;

	if (v.action == IMP_REDACT) {
		if (j2_redact(pkt, &v) != 0) {
			/* never deliver the unmasked original */
			j2_log(J2_LOG_ERR,
			       "redaction could not be applied "
			       "(rule %s); refusing the stanza",
			       v.rule_id ? v.rule_id : "?");
			v.action = IMP_REJECT;
		}
	}
	{
		int hold = g.strict && v.action != IMP_REJECT &&
			   pkt->type != J2_PKT_PRESENCE_UN;

		rc = j2_record(&view, &v, hold ? pkt : NULL, sess);
	}
	if (rc < 0 && v.action != IMP_REJECT) {
		g.refused_unrecorded++;
		j2_refuse_resource(pkt, sess);
		ret = J2_MOD_HANDLED;
		goto done_v;
	}
	held = rc == 1;
	switch (v.action) {
	case IMP_REJECT:
		g.rejected++;
		j2_reject(pkt, sess, &v);
		ret = J2_MOD_HANDLED;
		break;
	case IMP_REDACT:
		g.redacted++;
		break;
	case IMP_FLAG:
		g.flagged++;
		break;
	default:
		break;
	}
	j2_notify(&v);
	if (held)
		ret = J2_MOD_HANDLED;
done_v:
	imp_verdict_clear(&v);
	imp_policy_unref(p);
done:
	j2_hist_add(&g.hist, j2_now_ns() - t0);
	return ret;
}

/* Packets the handlers pass untouched: nothing to judge, or a held
 * packet being re-injected after its record became durable (judged
 * already). */
static int j2_not_ours(j2_pkt_t *pkt)
{
	if (!pkt || !pkt->nad || pkt->nad->ecur < 2)
		return 1;
	if (pkt == g.resume) {
		g.resume = NULL;
		return 1;
	}
	return 0;
}

static int j2_in_sess(j2_mod_instance_t *mi, j2_sess_t *sess, j2_pkt_t *pkt)
{
	(void)mi;
	if (j2_not_ours(pkt))
		return J2_MOD_PASS;
	return j2_judge(sess, pkt, IMP_ORIGIN_LOCAL);
}

/* One of our own notices coming back from the router: from a server
 * (no node) and carrying our secret id prefix. */
static int j2_is_generated(j2_pkt_t *pkt)
{
	j2_nad_t *nad = pkt->nad;
	int a;

	if (!pkt->from || !pkt->from->node || pkt->from->node[0])
		return 0;
	a = nad_find_attr(nad, 1, -1, "id", NULL);
	if (a < 0 || nad->attrs[a].lval < (int)g.gen_prefix_len)
		return 0;
	return memcmp(nad->cdata + nad->attrs[a].ival, g.gen_prefix,
		      g.gen_prefix_len) == 0;
}

static int j2_in_router(j2_mod_instance_t *mi, j2_pkt_t *pkt)
{
	(void)mi;
	if (j2_not_ours(pkt))
		return J2_MOD_PASS;
	/* local senders were judged in in-sess; our own notices are
	 * archived when generated */
	if (pkt->from && j2_is_local(pkt->from->domain))
		return J2_MOD_PASS;
	if (j2_is_generated(pkt))
		return J2_MOD_PASS;
	return j2_judge(NULL, pkt, IMP_ORIGIN_REMOTE);
}

/* ---- init and free ------------------------------------------------------------ */

static void j2_free(j2_module_t *mod)
{
	j2_held_t *h, *hn;
	size_t i, undelivered = 0;

	(void)mod;
	if (g.reloader_started) {
		pthread_mutex_lock(&g.rlock);
		g.stop = 1;
		pthread_cond_signal(&g.rcond);
		pthread_mutex_unlock(&g.rlock);
		pthread_join(g.reloader, NULL);
		g.reloader_started = 0;
	}
	if (g.ar) {
		imp_archive_close(g.ar, 5000);
		g.ar = NULL;
	}
	/* the sm has freed its mio already: drain by hand, without
	 * re-injecting anything (the sessions are gone) */
	g.mfd = NULL;
	{
		j2_qitem_t *it, *next;

		pthread_mutex_lock(&g.qlock);
		it = g.qhead;
		g.qhead = g.qtail = NULL;
		g.qlen = 0;
		pthread_mutex_unlock(&g.qlock);
		for (; it; it = next) {
			next = it->next;
			if (it->kind == J2_Q_LOG && g.sm->log)
				log_write(g.sm->log, it->level, "%s", it->line);
			free(it);
		}
	}
	for (h = g.hhead; h; h = hn) {
		hn = h->next;
		if (h->pkt) {
			pkt_free(h->pkt);
			undelivered++;
		}
		free(h);
	}
	g.hhead = g.htail = NULL;
	if (undelivered)
		j2_log(J2_LOG_WARNING,
		       "%zu held stanzas not delivered at shutdown (their "
		       "records are archived or spooled)",
		       undelivered);
	j2_log_stats();
	if (g.efd >= 0) {
		close(g.efd);
		g.efd = -1;
	}
	imp_eval_free(g.ev);
	imp_eval_free(g.ev_gen);
	imp_slot_free(g.slot);
	imp_ctx_free(g.ctx);
	g.ev = NULL;
	g.ev_gen = NULL;
	g.slot = NULL;
	g.ctx = NULL;
	for (i = 0; i < g.n_domains; i++)
		free(g.domains[i]);
	free(g.domains);
	for (i = 0; i < g.n_notify; i++)
		free(g.notify[i]);
	free(g.notify);
	if (g.key) {
		memset(g.key, 0, g.key_len);
		free(g.key);
	}
	free(g.policy_path);
	free(g.node);
	free(g.buf);
	free(g.open);
	g.buf = NULL;
	pthread_mutex_destroy(&g.qlock);
	pthread_mutex_destroy(&g.rlock);
	pthread_cond_destroy(&g.rcond);
}

/* The session manager must be the one this module was built for, and its
 * structures must look as we declared them. */
static void j2_check_host(j2_mod_instance_t *mi)
{
	const char *want = "jabberd2 sm " IMP_JABBERD2_VERSION;
	j2_sm_t *sm = mi->sm;
	char have[128];

	if (!sm || !mi->mod || !mi->mod->mm || mi->mod->mm->sm != sm ||
	    /* sm->mm is assigned when mm_new() returns, after the inits */
	    (sm->mm && sm->mm != mi->mod->mm) || !sm->config || !sm->id ||
	    sm->siglen <= 0 || sm->siglen >= (int)sizeof sm->signature ||
	    sm->signature[sm->siglen] != '\0' ||
	    strlen(sm->signature) != (size_t)sm->siglen)
		j2_die("built for jabberd2 %s but the session manager's "
		       "structures do not match; refusing to initialise",
		       IMP_JABBERD2_VERSION);
	g.sm = sm; /* the layout looks right: j2_die may use its log */
	if (strcmp(sm->signature, want) != 0) {
		const char *v = sm->signature;

		if (strncmp(v, "jabberd2 sm ", 12) == 0)
			v += 12;
		snprintf(have, sizeof have, "%.100s", v);
		j2_die("built for jabberd2 %s but the session manager is %s; "
		       "refusing to initialise",
		       IMP_JABBERD2_VERSION, have);
	}
}

static void j2_open_archive(void)
{
	imp_archive_config_t ac;
	const char *s;
	char *status = NULL;
	int rc;

	if (j2_cfg("impolicy.archive.none", 0)) {
		g.archive_on = 0;
		return;
	}
	g.archive_on = 1;
	memset(&ac, 0, sizeof ac);
	ac.version = IMP_ARCHIVE_CONFIG_VERSION;
	ac.dsn = j2_cfg("impolicy.archive.dsn", 0);
	ac.dsn_file = j2_cfg("impolicy.archive.dsn-file", 0);
	s = j2_cfg("impolicy.archive.node", 0);
	g.node = j2_strdup(s ? s : g.sm->id);
	ac.node = g.node;
	ac.spool_dir = j2_cfg("impolicy.archive.spool-dir", 0);
	if (!ac.dsn && !ac.dsn_file)
		j2_die("configuration error: <impolicy><archive> needs <dsn> "
		       "or <dsn-file> (or <none/>); refusing to initialise");
	if (!ac.spool_dir)
		j2_die("configuration error: <impolicy><archive> needs "
		       "<spool-dir>; refusing to initialise");
	g.strict = !j2_cfg_choice("impolicy.archive.durability", "strict",
				  "batched", 0);
	ac.durability =
		g.strict ? IMP_DURABILITY_STRICT : IMP_DURABILITY_BATCHED;
	g.archive_fail_open = j2_cfg_choice("impolicy.archive.on-failure",
					    "closed", "open", 0);
	ac.on_failure = g.archive_fail_open ? IMP_FAIL_OPEN : IMP_FAIL_CLOSED;
	s = j2_cfg("impolicy.archive.key-file", 0);
	if (s) {
		j2_read_key(s);
		ac.hmac_key = g.key;
		ac.hmac_key_len = g.key_len;
		ac.hmac_key_id = j2_cfg("impolicy.archive.key-id", 0);
		if (!ac.hmac_key_id)
			j2_die("configuration error: <key-file> needs "
			       "<key-id>; refusing to initialise");
	}
	ac.retention_default = j2_cfg("impolicy.archive.retention-default", 0);
	ac.new_node = j2_cfg("impolicy.archive.new-node", 0) != NULL;
	s = j2_cfg("impolicy.archive.status-file", 0);
	if (!s) {
		size_t n = strlen(ac.spool_dir) + strlen(g.node) + 16;

		status = malloc(n);
		if (status)
			snprintf(status, n, "%s/%s.status", ac.spool_dir,
				 g.node);
		s = status;
	}
	ac.status_file = s;
	rc = imp_archive_open(g.ctx, &ac, &g.ar);
	free(status);
	if (rc != IMP_OK) {
		g.ar = NULL;
		j2_log(J2_LOG_ERR, "archive could not be opened (%s): %s",
		       imp_strerror(rc),
		       g.archive_fail_open
			       ? "stanzas pass unrecorded (on-failure open)"
			       : "refusing all stanzas (on-failure closed)");
		return;
	}
	j2_log(J2_LOG_NOTICE,
	       "archive open: node %s, durability %s, on-failure %s%s", g.node,
	       g.strict ? "strict" : "batched",
	       g.archive_fail_open ? "open" : "closed",
	       g.key ? ", HMAC chain" : "");
}

static void j2_setup(j2_mod_instance_t *mi)
{
	imp_ctx_config_t cc;
	const char *s;
	struct stat st;
	int rc;

	g.sm = mi->sm;
	g.mod = mi->mod;
	g.sm_thread = pthread_self();
	pthread_mutex_init(&g.qlock, NULL);
	pthread_mutex_init(&g.rlock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g.rcond, &ca);
		pthread_condattr_destroy(&ca);
	}

	/* configuration */
	s = j2_cfg("impolicy.policy", 0);
	if (!s || !s[0])
		j2_die("configuration error: <impolicy><policy> is required; "
		       "refusing to initialise");
	g.policy_path = j2_strdup(s);
	g.domains = j2_cfg_list("impolicy.local-domain", &g.n_domains);
	if (g.n_domains == 0) { /* the sm's hosts (its hash does not exist
				   yet): the ids of <local> */
		free(g.domains);
		g.domains = j2_cfg_list("local.id", &g.n_domains);
	}
	s = j2_cfg("impolicy.reload-interval", 0);
	g.reload_interval = 1;
	if (s) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s || *end || v < 0 || v > 86400)
			j2_die("configuration error: <reload-interval> must be "
			       "0..86400 seconds (not '%s'); refusing to "
			       "initialise",
			       s);
		g.reload_interval = (unsigned)v;
	}
	g.policy_fail_open =
		j2_cfg_choice("impolicy.on-load-failure", "closed", "open", 0);
	g.notify = j2_cfg_list("impolicy.notify.jid", &g.n_notify);

	/* library */
	memset(&cc, 0, sizeof cc);
	cc.version = IMP_CTX_CONFIG_VERSION;
	cc.log = j2_imp_log;
	cc.log_level = IMP_LOG_INFO; /* debug may carry message bodies */
	rc = imp_ctx_new(&cc, &g.ctx);
	if (rc == IMP_OK)
		rc = imp_slot_new(g.ctx, NULL, &g.slot);
	if (rc == IMP_OK)
		rc = imp_eval_new(g.ctx, &g.ev);
	if (rc == IMP_OK)
		rc = imp_eval_new(g.ctx, &g.ev_gen);
	if (rc != IMP_OK)
		j2_die("cannot create the policy engine: %s; refusing to "
		       "initialise",
		       imp_strerror(rc));
	{
		unsigned char r[12];
		size_t i;

		if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
			j2_die("getrandom: %s; refusing to initialise",
			       strerror(errno));
		memcpy(g.gen_prefix, "impolicy-", 9);
		for (i = 0; i < sizeof r; i++)
			snprintf(g.gen_prefix + 9 + 2 * i, 3, "%02x", r[i]);
		g.gen_prefix[9 + 2 * sizeof r] = '-';
		g.gen_prefix[10 + 2 * sizeof r] = '\0';
		g.gen_prefix_len = 10 + 2 * sizeof r;
	}
	g.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (g.efd < 0)
		j2_die("eventfd: %s; refusing to initialise", strerror(errno));

	if (stat(g.policy_path, &st) == 0) {
		g.pst = st;
		g.pst_valid = 1;
	}
	j2_load_policy();
	j2_open_archive();

	if (pthread_create(&g.reloader, NULL, j2_reloader_main, NULL) != 0)
		j2_die("cannot start the policy reloader thread; refusing to "
		       "initialise");
	g.reloader_started = 1;

	g.mod->in_sess = j2_in_sess;
	g.mod->in_router = j2_in_router;
	g.mod->free = j2_free;
	j2_log(J2_LOG_NOTICE,
	       "initialised for %s (%zu local domains, reload every %us, "
	       "on-load-failure %s, archive %s)",
	       g.sm->signature, g.n_domains, g.reload_interval,
	       g.policy_fail_open ? "open" : "closed",
	       !g.archive_on ? "none"
	       : g.ar        ? "open"
			     : "UNAVAILABLE");
}

int module_init(j2_mod_instance_t *mi)
{
	if (!mi || !mi->mod)
		return 1;
	if (!mi->mod->init) {
		j2_check_host(mi);
		if (!g.mod)
			j2_setup(mi);
	}
	if (mi->chain == J2_CHAIN_IN_SESS || mi->chain == J2_CHAIN_IN_ROUTER) {
		g.chains |= 1u << mi->chain;
		j2_log(J2_LOG_NOTICE, "active on chain %s",
		       mi->chain == J2_CHAIN_IN_SESS ? "in-sess" : "in-router");
		return 0;
	}
	j2_log(J2_LOG_ERR,
	       "belongs in the chains in-sess and in-router only; ignoring "
	       "this instance (chain %d)",
	       mi->chain);
	return 1;
}
