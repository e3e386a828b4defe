/*
 * archive.c -- the compliance archive writer: imp_archive_open, submit,
 * submit_async, flush, stats and close (impolicy.h).
 *
 * Purpose: record every judged stanza in PostgreSQL without ever blocking
 * the host's event loop (except, in strict mode, for the group commit that
 * makes the record durable), and without losing a record when PostgreSQL
 * or the writer process goes away.
 *
 * Design:
 *  - The host thread builds the record (imp_record_build, outside the lock)
 *    and, under one mutex, assigns the next sequence number, clamps ts so
 *    that it never goes backwards along the chain (verify reports a ts that
 *    decreases as 'reordered'), and appends it to a bounded FIFO ring.
 *    FIFO order == seq order.
 *  - One writer thread owns the libpq connection and the spool.  It takes up
 *    to batch_max records (waiting at most batch_ms to fill a batch in
 *    batched mode; not at all in strict mode, where the batch fills while
 *    the previous commit runs = group commit), computes the hash chain in
 *    seq order (imp_record_chain), then:
 *      * PostgreSQL connected and spool empty: commits the batch, with its
 *        flag rows, in one transaction; persists the chain head.
 *      * otherwise (PostgreSQL away, commit failed, or older records still
 *        spooled -- replay must stay in order): appends the batch to the
 *        spool and fdatasyncs once for the whole batch.
 *    While the spool is non-empty and PostgreSQL is back, it replays the
 *    spool oldest first, a batch at a time: commit, then consume.  Replays
 *    are made idempotent by INSERT ... ON CONFLICT DO NOTHING on the
 *    (node, seq, ts) key, so a crash between commit and consume replays
 *    rows that are simply dropped: exactly once in the archive.
 *  - How rows reach PostgreSQL, and why not COPY: each batch is sent in
 *    pipeline mode as one INSERT ... SELECT FROM unnest($1, ..., $23) ON
 *    CONFLICT DO NOTHING whose parameters are binary arrays, one per column
 *    (raw XML with NUL bytes needs no escaping), plus one such INSERT for
 *    the batch's flag rows.  All statements between two pipeline syncs run
 *    as one implicit transaction: a batch (stanzas + flags) commits
 *    atomically, with one WAL flush.  COPY cannot skip duplicates, and the
 *    writer role has no SELECT (so no named conflict target), so COPY would
 *    need a temporary staging table plus the same INSERT ... SELECT ... ON
 *    CONFLICT: an extra pass over the data for no gain.  Measured here
 *    (2 shared cores, load ~4, local server, synchronous_commit on, 20k
 *    chat stanzas, 1000-row batches): one pipelined INSERT per row 5.7k
 *    rows/s; the array form 15-17k rows/s; the server's own ceiling, one
 *    INSERT ... SELECT generate_series of 20k rows in psql, ~20k rows/s
 *    (the five review indexes, the GIN full-text one above all, dominate).
 *    So the array form is within ~20% of what the schema allows, and COPY
 *    (same final INSERT ... SELECT) could not beat that ceiling.
 *  - When neither PostgreSQL nor the spool can take a batch, the records
 *    that were not spooled are dropped together with everything queued
 *    behind them, and the sequence is rewound to the last record that is in
 *    PostgreSQL or the spool, so the chain never has a hole and no sequence
 *    number on disk is ever reused.  Strict submitters of those records get
 *    IMP_ERR_IO (fail-closed: refused) or IMP_OK with `lost` counted
 *    (fail-open); batched records already accepted are counted as lost.
 *    The archive is then 'unrecordable' for a backoff period during which
 *    submit refuses (or, fail-open, drops and counts) immediately.
 *
 *  - Poison rows: a batch refused for a data reason (SQLSTATE class 22/23)
 *    is retried row by row; good rows commit, each refused row goes to
 *    the fsynced quarantine file (imp_spool_quarantine), is logged with
 *    its SQLSTATE (never its body) and counted in `quarantined`, so that
 *    one bad row never holds up the stream behind it.
 *  - Completions: a strict submitter waits on an arc_waiter_t; an
 *    asynchronous one (imp_archive_submit_async) is owed a callback.  The
 *    writer settles both at the same points (arc_complete, under mu: a
 *    batch committed, spooled, or dropped by arc_rewind; close), collects
 *    the callbacks and calls them after releasing mu (arc_fire), in seq
 *    order.  Only the writer (or close, after the join) completes records,
 *    so each is completed exactly once.
 *  - Status file (cfg->status_file): rewritten by the writer thread about
 *    once a second and at close (tmp + rename), JSON of the stats.
 *  - open never guesses the chain head: with none in the spool and
 *    PostgreSQL unreachable it fails (IMP_ERR_IO) unless cfg->new_node.
 *
 * Invariants: every seq in 1..last_seq that was reported durable is in
 * PostgreSQL, the spool or the quarantine file; records reach PostgreSQL in seq order; the
 * chain head (spool head file) never goes backwards.
 *
 * Threading: submit/flush/stats may be called from any thread; all shared
 * state is protected by ar->mu.  The connection, the spool and the chain
 * head belong to the writer thread (the connection made in open is handed
 * over by pthread_create).  No global mutable state.
 *
 * Reports: connection changes, spooling, replay and failures through the
 * context log (host and database name only -- never the DSN or a
 * password); counters through imp_archive_stats.
 */
#include "base.h"
#include "record.h"
#include "spool.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ARC_QUEUE_DEFAULT 65536
#define ARC_BATCH_DEFAULT 1000
#define ARC_BATCH_MS_DEFAULT 20
#define ARC_FULL_WAIT_US 100000 /* submit waits this long on a full queue */
#define ARC_BACKOFF_MIN_MS 100
#define ARC_BACKOFF_MAX_MS 10000
#define ARC_DOWN_LOG_EVERY_US (60 * 1000000LL)
#define ARC_DSN_MAX (64 * 1024)
#define ARC_STATUS_EVERY_US 1000000 /* status file rewrites */

/* PostgreSQL type oids for the parameters we send. */
#define ARC_OID_BYTEA 17
#define ARC_OID_INT8 20
#define ARC_OID_INT2 21
#define ARC_OID_TEXT 25
#define ARC_OID_TIMESTAMPTZ 1184

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define ARC_PG_EPOCH_US INT64_C(946684800000000)

#define ARC_STMT_STANZA "imp_arc_stanza"
#define ARC_STMT_FLAG "imp_arc_flag"
#define ARC_N_STANZA_PARAMS 23
#define ARC_N_FLAG_PARAMS 7

/* One statement per chunk of rows: every column travels as one binary
 * array parameter and unnest() turns them back into rows.  rule_ids and
 * sections are text[] per row, which unnest would flatten, so each row's
 * array travels as its text literal and is cast back. */
static const char arc_sql_stanza[] =
	"INSERT INTO impolicy.stanza (node, seq, ts, direction, kind, "
	"stanza_type, from_bare, from_full, to_bare, to_full, thread, "
	"conv_key, body, raw_xml, verdict, rule_ids, sections, policy_digest, "
	"retention_class, hash_alg, key_id, prev_hash, rec_hash) "
	"SELECT u.node, u.seq, u.ts, u.direction, u.kind, u.stanza_type, "
	"u.from_bare, u.from_full, u.to_bare, u.to_full, u.thread, u.conv_key, "
	"u.body, u.raw_xml, u.verdict, u.rule_ids::text[], u.sections::text[], "
	"u.policy_digest, u.retention_class, u.hash_alg, u.key_id, "
	"u.prev_hash, "
	"u.rec_hash FROM unnest($1::text[], $2::int8[], $3::timestamptz[], "
	"$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
	"$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], "
	"$14::bytea[], $15::text[], $16::text[], $17::text[], $18::bytea[], "
	"$19::text[], $20::text[], $21::text[], $22::bytea[], $23::bytea[]) "
	"AS u(node, seq, ts, direction, kind, stanza_type, from_bare, "
	"from_full, to_bare, to_full, thread, conv_key, body, raw_xml, "
	"verdict, rule_ids, sections, policy_digest, retention_class, "
	"hash_alg, key_id, prev_hash, rec_hash) "
	"ON CONFLICT DO NOTHING";

/* A bare ON CONFLICT DO NOTHING: naming the target would need SELECT. */
static const char arc_sql_flag[] =
	"INSERT INTO impolicy.flag (node, seq, ts, ord, rule_id, section, "
	"severity) SELECT u.node, u.seq, u.ts, u.ord, u.rule_id, u.section, "
	"coalesce(u.severity, 'medium') FROM unnest($1::text[], $2::int8[], "
	"$3::timestamptz[], $4::int2[], $5::text[], $6::text[], $7::text[]) "
	"AS u(node, seq, ts, ord, rule_id, section, severity) "
	"ON CONFLICT DO NOTHING";

/* Element type of each column (the parameter is an array of it). */
static const Oid arc_stanza_types[ARC_N_STANZA_PARAMS] = {
	ARC_OID_TEXT, ARC_OID_INT8,  ARC_OID_TIMESTAMPTZ, ARC_OID_TEXT,
	ARC_OID_TEXT, ARC_OID_TEXT,  ARC_OID_TEXT,        ARC_OID_TEXT,
	ARC_OID_TEXT, ARC_OID_TEXT,  ARC_OID_TEXT,        ARC_OID_TEXT,
	ARC_OID_TEXT, ARC_OID_BYTEA, ARC_OID_TEXT,        ARC_OID_TEXT,
	ARC_OID_TEXT, ARC_OID_BYTEA, ARC_OID_TEXT,        ARC_OID_TEXT,
	ARC_OID_TEXT, ARC_OID_BYTEA, ARC_OID_BYTEA};

static const Oid arc_flag_types[ARC_N_FLAG_PARAMS] = {
	ARC_OID_TEXT, ARC_OID_INT8, ARC_OID_TIMESTAMPTZ, ARC_OID_INT2,
	ARC_OID_TEXT, ARC_OID_TEXT, ARC_OID_TEXT};

/* A chunk's array parameters stay below this many bytes (PostgreSQL
 * refuses a single value above 1 GB; 1 MiB stanzas in a 1000-row batch
 * would get there). */
#define ARC_CHUNK_BYTES (32u << 20)

/* A strict submitter waits on one of these (on its own stack) until the
 * writer has made its record durable or given up on it. */
typedef struct arc_waiter_s {
	int done;
	int rc; /* IMP_OK or IMP_ERR_IO */
} arc_waiter_t;

/* How a record's submitter learns the outcome (its completion): a strict
 * waiter is woken (w), an asynchronous submitter is called back (fn, ud),
 * a plain batched submit hears nothing (both NULL). */
typedef struct arc_item_s {
	imp_record_t *r;
	arc_waiter_t *w;        /* strict imp_archive_submit */
	imp_archive_done_fn fn; /* imp_archive_submit_async */
	void *ud;
	int64_t enq_us; /* monotonic enqueue time (batch_ms) */
} arc_item_t;

/* A callback owed to an asynchronous submitter: collected under mu by the
 * writer, called by the writer after it lets go of mu (arc_fire). */
typedef struct arc_comp_s {
	imp_archive_done_fn fn;
	void *ud;
	uint64_t seq;
	int rc;
} arc_comp_t;

struct imp_archive_s {
	imp_ctx_t *ctx;
	char *conninfo; /* secret: never logged; wiped on close */
	char *node, *spool_dir, *retention_default, *key_id;
	unsigned char *key;
	size_t key_len;
	imp_durability_t durability;
	imp_failmode_t on_failure;
	size_t queue_max;
	unsigned batch_max, batch_ms;

	/* ---- shared, under mu ---- */
	pthread_mutex_t mu;
	pthread_cond_t cv_writer; /* work for the writer */
	pthread_cond_t cv_done;   /* progress for submitters and flushers */
	pthread_cond_t cv_space;  /* room in the queue */
	arc_item_t *q;
	size_t q_head, q_len;
	uint64_t last_seq;       /* last sequence assigned */
	int64_t last_ts;         /* ts of that record (ts never decreases) */
	uint64_t committed_seq;  /* every seq <= this is in PostgreSQL */
	size_t inflight;         /* records the writer holds right now */
	int64_t inflight_ts;     /* oldest ts among them */
	int64_t spool_oldest_ts; /* oldest spooled ts (when pending > 0) */
	uint64_t spool_pending, spool_bytes_now;
	bool stop, closing, unrecordable;
	int64_t unrecordable_until; /* monotonic */
	int64_t stop_deadline;      /* monotonic; INT64_MAX: none */
	unsigned flush_waiters;
	int connected;
	uint64_t n_submitted, n_written, n_spooled, n_replayed, n_refused,
		n_lost, n_quarantined;

	/* ---- writer thread only (and open before it starts) ---- */
	pthread_t thread;
	bool thread_started;
	PGconn *conn;
	bool conn_ok;
	int64_t reconnect_at; /* monotonic */
	unsigned backoff_ms;
	unsigned down_attempts; /* failed connects since the last success */
	int64_t down_logged_at; /* monotonic; last "unreachable" line */
	int parts_month; /* month (UTC, y*12+m) partitions were ensured for */
	imp_spool_t *spool;
	imp_spool_head_t head; /* last record in PostgreSQL or the spool */
	imp_buf_t arr;         /* scratch for array literals */
	imp_buf_t scol[ARC_N_STANZA_PARAMS]; /* array parameters */
	imp_buf_t fcol[ARC_N_FLAG_PARAMS];
	arc_comp_t *comp; /* callbacks owed (arc_fire) */
	size_t comp_n, comp_cap;
	char *status_file, *status_tmp; /* NULL: none */
	int64_t status_next;            /* monotonic: next rewrite */
	bool status_warned;             /* failure logged once */
};

/* ---- small helpers -------------------------------------------------------- */

static int64_t arc_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void arc_abstime(int64_t mono_us, struct timespec *ts)
{
	ts->tv_sec = (time_t)(mono_us / 1000000);
	ts->tv_nsec = (long)(mono_us % 1000000) * 1000;
}

/* Waits on cv until deadline (monotonic µs; INT64_MAX: forever). */
static void arc_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
	if (deadline == INT64_MAX) {
		pthread_cond_wait(cv, mu);
	} else {
		struct timespec ts;
		arc_abstime(deadline, &ts);
		pthread_cond_timedwait(cv, mu, &ts);
	}
}

static int arc_month_of(int64_t us)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	if (!gmtime_r(&s, &tm))
		return 0;
	return tm.tm_year * 12 + tm.tm_mon;
}

static void arc_put_be64(unsigned char out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* libpq messages end with a newline; the log wants one line. */
static void arc_log_pq(imp_archive_t *ar, imp_log_level_t lvl, const char *what,
		       const char *msg)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", msg ? msg : "");
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *c = buf; *c; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	imp_log(ar->ctx, lvl, "archive %s: %s: %s", ar->node, what, buf);
}

/* Appends a PostgreSQL text[] literal of n strings to b. */
static void arc_array_literal(imp_buf_t *b, const char *const *v, size_t n)
{
	imp_buf_putc(b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			imp_buf_putc(b, ',');
		imp_buf_putc(b, '"');
		for (const char *s = v[i] ? v[i] : ""; *s; s++) {
			if (*s == '"' || *s == '\\')
				imp_buf_putc(b, '\\');
			imp_buf_putc(b, *s);
		}
		imp_buf_putc(b, '"');
	}
	imp_buf_putc(b, '}');
}

/* ---- PostgreSQL (writer thread) --------------------------------------------- */

static void arc_pg_mark_down(imp_archive_t *ar)
{
	ar->conn_ok = false;
	ar->reconnect_at = arc_mono_us() + (int64_t)ar->backoff_ms * 1000;
	ar->backoff_ms *= 2;
	if (ar->backoff_ms > ARC_BACKOFF_MAX_MS)
		ar->backoff_ms = ARC_BACKOFF_MAX_MS;
	pthread_mutex_lock(&ar->mu);
	ar->connected = 0;
	pthread_mutex_unlock(&ar->mu);
}

/* Runs one statement outside pipeline mode; true when it succeeded. */
static bool arc_pg_exec_ok(imp_archive_t *ar, const char *sql, const char *what)
{
	PGresult *res = PQexec(ar->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		arc_log_pq(ar, IMP_LOG_WARN, what, PQerrorMessage(ar->conn));
	PQclear(res);
	return ok;
}

/* Creates the partitions for the current and the next month (UTC). */
static void arc_pg_partitions(imp_archive_t *ar)
{
	if (arc_pg_exec_ok(ar,
			   "SELECT impolicy.ensure_partitions(now(), "
			   "now() + interval '1 month')",
			   "ensure_partitions"))
		ar->parts_month = arc_month_of(imp_ctx_now(ar->ctx));
}

/* After a (re)connection: prepare the statements and the partitions. */
static bool arc_pg_setup(imp_archive_t *ar)
{
	/* Parameter types come from the casts in the statements. */
	PGresult *res = PQprepare(ar->conn, ARC_STMT_STANZA, arc_sql_stanza,
				  ARC_N_STANZA_PARAMS, NULL);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (ok) {
		res = PQprepare(ar->conn, ARC_STMT_FLAG, arc_sql_flag,
				ARC_N_FLAG_PARAMS, NULL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (!ok) {
		arc_log_pq(ar, IMP_LOG_ERROR, "cannot prepare statements",
			   PQerrorMessage(ar->conn));
		return false;
	}
	arc_pg_partitions(ar);
	return true;
}

/* Server notices (e.g. "word is too long to be indexed") would go to
 * stderr through libpq's default processor; the library never prints. */
static void arc_pg_notice(void *arg, const char *msg)
{
	imp_archive_t *ar = arg;
	arc_log_pq(ar, IMP_LOG_DEBUG, "server notice", msg);
}

/* Connects (first time) or resets the connection.  Blocking, bounded by
 * connect_timeout.  Updates conn_ok, the backoff and the shared flag. */
static bool arc_pg_connect(imp_archive_t *ar)
{
	if (!ar->conn) {
		/* The DSN goes first so that the settings after it win
		 * (application_name) or apply only when it names none
		 * (connect_timeout comes before it). */
		const char *keys[] = {"connect_timeout", "dbname",
				      "application_name", NULL};
		const char *vals[] = {"5", ar->conninfo, "mod_impolicy", NULL};
		ar->conn = PQconnectdbParams(keys, vals, 1);
		if (ar->conn)
			PQsetNoticeProcessor(ar->conn, arc_pg_notice, ar);
	} else {
		PQreset(ar->conn);
	}
	if (!ar->conn || PQstatus(ar->conn) != CONNECTION_OK) {
		int64_t now = arc_mono_us();
		/* The first failure, then one line a minute while it lasts:
		 * the backoff retries every 0.1..10 s. */
		ar->down_attempts++;
		if (ar->conn &&
		    (ar->down_attempts == 1 ||
		     now - ar->down_logged_at >= ARC_DOWN_LOG_EVERY_US)) {
			char what[128];
			snprintf(what, sizeof what,
				 "PostgreSQL unreachable (attempt %u; retrying "
				 "with backoff, records go to the spool)",
				 ar->down_attempts);
			arc_log_pq(ar, IMP_LOG_WARN, what,
				   PQerrorMessage(ar->conn));
			ar->down_logged_at = now;
		} else if (!ar->conn)
			imp_log(ar->ctx, IMP_LOG_ERROR,
				"archive %s: out of memory connecting",
				ar->node);
		arc_pg_mark_down(ar);
		return false;
	}
	if (!arc_pg_setup(ar)) {
		arc_pg_mark_down(ar);
		return false;
	}
	imp_log(ar->ctx, IMP_LOG_INFO,
		"archive %s: connected to PostgreSQL (host %s, database %s)"
		"%s",
		ar->node, PQhost(ar->conn) ? PQhost(ar->conn) : "?",
		PQdb(ar->conn) ? PQdb(ar->conn) : "?",
		ar->down_attempts ? " after failed attempts" : "");
	ar->down_attempts = 0;
	ar->conn_ok = true;
	ar->backoff_ms = ARC_BACKOFF_MIN_MS;
	pthread_mutex_lock(&ar->mu);
	ar->connected = 1;
	ar->unrecordable = false; /* PostgreSQL can take records again */
	pthread_mutex_unlock(&ar->mu);
	return true;
}

/* Binary array parameters: a 20-byte header (ndim 1, has-null flag,
 * element type, count, lower bound 1), then per element a 4-byte
 * big-endian length (-1: NULL) and the bytes. */
static void arc_put_be32(unsigned char out[4], uint32_t v)
{
	out[0] = (unsigned char)(v >> 24);
	out[1] = (unsigned char)(v >> 16);
	out[2] = (unsigned char)(v >> 8);
	out[3] = (unsigned char)v;
}

static void arc_col_start(imp_buf_t *b, Oid elem)
{
	unsigned char h[20];
	imp_buf_reset(b);
	arc_put_be32(h, 1);
	arc_put_be32(h + 4, 0);
	arc_put_be32(h + 8, elem);
	arc_put_be32(h + 12, 0);
	arc_put_be32(h + 16, 1);
	imp_buf_append(b, h, sizeof(h));
}

static void arc_col_put(imp_buf_t *b, const void *p, size_t n, bool null)
{
	unsigned char l[4];
	if (null) {
		arc_put_be32(l, UINT32_MAX);
		if (b->len >= 20 && !b->oom)
			b->data[7] = 1; /* the header's has-null flag */
		imp_buf_append(b, l, 4);
		return;
	}
	arc_put_be32(l, (uint32_t)n);
	imp_buf_append(b, l, 4);
	imp_buf_append(b, p, n);
}

static void arc_col_text(imp_buf_t *b, const char *s)
{
	arc_col_put(b, s, s ? strlen(s) : 0, s == NULL);
}

static void arc_col_finish(imp_buf_t *b, uint32_t count)
{
	if (b->len >= 20 && !b->oom)
		arc_put_be32((unsigned char *)b->data + 12, count);
}

/* Appends a PostgreSQL text[] literal of n strings to b (fresh). */
static void arc_col_array_literal(imp_buf_t *col, imp_buf_t *tmp,
				  const char *const *v, size_t n)
{
	imp_buf_reset(tmp);
	arc_array_literal(tmp, v, n);
	arc_col_put(col, tmp->data, tmp->len, false);
}

/* Sends one statement with the column buffers as binary parameters. */
static bool arc_pg_send_cols(imp_archive_t *ar, const char *stmt,
			     imp_buf_t *cols, int ncols, uint32_t count)
{
	const char *v[ARC_N_STANZA_PARAMS];
	int len[ARC_N_STANZA_PARAMS], fmt[ARC_N_STANZA_PARAMS];
	for (int i = 0; i < ncols; i++) {
		arc_col_finish(&cols[i], count);
		if (cols[i].oom || cols[i].len > INT32_MAX)
			return false;
		v[i] = cols[i].data;
		len[i] = (int)cols[i].len;
		fmt[i] = 1;
	}
	return PQsendQueryPrepared(ar->conn, stmt, ncols, v, len, fmt, 0) == 1;
}

/* Queues the INSERTs of recs[0..n) (and their flags) in the pipeline,
 * one statement pair per chunk of at most ARC_CHUNK_BYTES. */
static bool arc_pg_send_records(imp_archive_t *ar, imp_record_t *const *recs,
				size_t n, size_t *n_sent)
{
	imp_buf_t *sc = ar->scol, *fc = ar->fcol;
	size_t i = 0;
	while (i < n) {
		for (int c = 0; c < ARC_N_STANZA_PARAMS; c++)
			arc_col_start(&sc[c], arc_stanza_types[c]);
		for (int c = 0; c < ARC_N_FLAG_PARAMS; c++)
			arc_col_start(&fc[c], arc_flag_types[c]);
		uint32_t rows = 0, flags = 0;
		size_t bytes = 0;
		for (; i < n && (rows == 0 || bytes < ARC_CHUNK_BYTES); i++) {
			const imp_record_t *r = recs[i];
			unsigned char seq_be[8], ts_be[8];
			arc_put_be64(seq_be, r->seq);
			arc_put_be64(ts_be,
				     (uint64_t)(r->ts_us - ARC_PG_EPOCH_US));
			const char *texts[] = {r->direction,   r->kind,
					       r->stanza_type, r->from_bare,
					       r->from_full,   r->to_bare,
					       r->to_full,     r->thread,
					       r->conv_key,    r->body};
			arc_col_text(&sc[0], r->node);
			arc_col_put(&sc[1], seq_be, 8, false);
			arc_col_put(&sc[2], ts_be, 8, false);
			for (int c = 0; c < 10; c++)
				arc_col_text(&sc[3 + c], texts[c]);
			arc_col_put(&sc[13], r->raw_xml ? r->raw_xml : seq_be,
				    r->raw_xml ? r->raw_len : 0, false);
			arc_col_text(&sc[14], r->verdict);
			arc_col_array_literal(&sc[15], &ar->arr, r->rule_ids,
					      r->n_rules);
			arc_col_array_literal(&sc[16], &ar->arr, r->sections,
					      r->n_rules);
			arc_col_put(&sc[17], r->policy_digest, IMP_HASH_LEN,
				    !r->has_digest);
			arc_col_text(&sc[18], r->retention_class);
			arc_col_text(&sc[19], r->hash_alg);
			arc_col_text(&sc[20], r->key_id);
			arc_col_put(&sc[21], r->prev_hash, IMP_HASH_LEN, false);
			arc_col_put(&sc[22], r->rec_hash, IMP_HASH_LEN, false);
			rows++;
			bytes += r->raw_len + (r->body ? strlen(r->body) : 0) +
				 512;
			for (size_t k = 0; k < r->n_flags; k++) {
				unsigned char ord[2] = {(unsigned char)(k >> 8),
							(unsigned char)k};
				arc_col_text(&fc[0], r->node);
				arc_col_put(&fc[1], seq_be, 8, false);
				arc_col_put(&fc[2], ts_be, 8, false);
				arc_col_put(&fc[3], ord, 2, false);
				arc_col_text(&fc[4], r->flags[k].rule_id);
				arc_col_text(&fc[5], r->flags[k].section);
				arc_col_text(&fc[6], r->flags[k].severity);
				flags++;
			}
		}
		if (!arc_pg_send_cols(ar, ARC_STMT_STANZA, sc,
				      ARC_N_STANZA_PARAMS, rows))
			return false;
		(*n_sent)++;
		if (flags > 0) {
			if (!arc_pg_send_cols(ar, ARC_STMT_FLAG, fc,
					      ARC_N_FLAG_PARAMS, flags))
				return false;
			(*n_sent)++;
		}
	}
	return true;
}

/* What a commit attempt came to. */
enum {
	ARC_COMMIT_OK = 0,
	/* Server away, or any failure not known to be about the data: the
	 * connection is marked down (reset with backoff) and the records
	 * are retried later from the spool. */
	ARC_COMMIT_DOWN = 1,
	/* PostgreSQL refused the batch for a data reason (SQLSTATE class 22
	 * "data exception" or 23 "integrity constraint violation"): retrying
	 * the same rows can never succeed, the connection is fine. */
	ARC_COMMIT_DATA = 2,
};

/* Commits records (stanzas and flags) in one pipeline = one implicit
 * transaction.  ARC_COMMIT_OK when committed; on failure see above.  err
 * (errlen bytes) receives "[SQLSTATE] primary message" -- never the
 * DETAIL, which for a CHECK violation quotes the row, i.e. the body. */
static int arc_pg_commit(imp_archive_t *ar, imp_record_t *const *recs, size_t n,
			 char *errbuf, size_t errlen)
{
	if (!ar->conn_ok)
		return ARC_COMMIT_DOWN;
	int64_t now = imp_ctx_now(ar->ctx);
	if (arc_month_of(now) != ar->parts_month)
		arc_pg_partitions(ar);
	if (!PQenterPipelineMode(ar->conn)) {
		arc_log_pq(ar, IMP_LOG_WARN, "pipeline mode",
			   PQerrorMessage(ar->conn));
		arc_pg_mark_down(ar);
		return ARC_COMMIT_DOWN;
	}
	size_t sent = 0;
	bool ok = true;
	ok = arc_pg_send_records(ar, recs, n, &sent);
	if (ok)
		ok = PQpipelineSync(ar->conn) == 1;
	const char *err = NULL;
	bool data_err = false;
	errbuf[0] = '\0';
	if (ok) {
		/* One result (then NULL) per statement, then the sync. */
		size_t nulls = 0;
		for (;;) {
			PGresult *res = PQgetResult(ar->conn);
			if (!res) {
				if (PQstatus(ar->conn) != CONNECTION_OK ||
				    ++nulls > sent + 2) {
					ok = false;
					break;
				}
				continue;
			}
			ExecStatusType st = PQresultStatus(res);
			if (st == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				break;
			}
			if (st != PGRES_COMMAND_OK && ok) {
				ok = false;
				/* SQLSTATE first: 23503 on retention_class
				 * means the policy names a class the
				 * database does not know (retention_class_set
				 * adds it). */
				const char *state = PQresultErrorField(
					res, PG_DIAG_SQLSTATE);
				const char *msg = PQresultErrorField(
					res, PG_DIAG_MESSAGE_PRIMARY);
				snprintf(errbuf, errlen, "[%s] %s",
					 state ? state : "?", msg ? msg : "?");
				err = errbuf;
				data_err = state &&
					   (strncmp(state, "22", 2) == 0 ||
					    strncmp(state, "23", 2) == 0);
			}
			PQclear(res);
		}
	}
	if (PQstatus(ar->conn) == CONNECTION_OK &&
	    !PQexitPipelineMode(ar->conn))
		ok = false;
	if (ok)
		return ARC_COMMIT_OK;
	if (data_err && PQstatus(ar->conn) == CONNECTION_OK &&
	    PQtransactionStatus(ar->conn) == PQTRANS_IDLE)
		return ARC_COMMIT_DATA;
	arc_log_pq(ar, IMP_LOG_WARN, "commit failed; records go to the spool",
		   err ? err : PQerrorMessage(ar->conn));
	arc_pg_mark_down(ar);
	return ARC_COMMIT_DOWN;
}

/* Commits recs[0, n) in order, isolating rows PostgreSQL refuses for a data
 * reason: the batch first (the common case, one transaction); on a data
 * error, row by row, each in its own transaction, so that the good rows
 * commit and each bad one goes to the quarantine file (durable before we
 * go on; logged with its SQLSTATE, never its body).  *done receives how
 * many leading records are settled (committed or quarantined), *quar how
 * many of those were quarantined.  Returns ARC_COMMIT_OK when all n are
 * settled, else ARC_COMMIT_DOWN (the rest stay for the spool/replay). */
static int arc_pg_commit_isolating(imp_archive_t *ar, imp_record_t *const *recs,
				   size_t n, size_t *done, uint64_t *quar)
{
	char err[512];
	*done = 0;
	*quar = 0;
	int rc = arc_pg_commit(ar, recs, n, err, sizeof(err));
	if (rc != ARC_COMMIT_DATA) {
		*done = rc == ARC_COMMIT_OK ? n : 0;
		return rc;
	}
	imp_log(ar->ctx, IMP_LOG_WARN,
		"archive %s: PostgreSQL refused a batch of %zu from seq %llu "
		"for a data reason (%s); retrying row by row",
		ar->node, n, (unsigned long long)recs[0]->seq, err);
	for (size_t i = 0; i < n; i++) {
		rc = arc_pg_commit(ar, &recs[i], 1, err, sizeof(err));
		if (rc == ARC_COMMIT_DATA) {
			if (imp_spool_quarantine(ar->spool, recs[i]) !=
			    IMP_OK) {
				imp_log(ar->ctx, IMP_LOG_ERROR,
					"archive %s: seq %llu refused by "
					"PostgreSQL (%s) and the quarantine "
					"file cannot take it; kept for retry",
					ar->node,
					(unsigned long long)recs[i]->seq, err);
				arc_pg_mark_down(ar); /* retry after backoff */
				return ARC_COMMIT_DOWN;
			}
			imp_log(ar->ctx, IMP_LOG_ERROR,
				"archive %s: seq %llu refused by PostgreSQL "
				"(%s): moved to %s/%s.quarantine",
				ar->node, (unsigned long long)recs[i]->seq, err,
				ar->spool_dir, ar->node);
			(*quar)++;
		} else if (rc != ARC_COMMIT_OK) {
			return ARC_COMMIT_DOWN;
		}
		*done = i + 1;
	}
	return ARC_COMMIT_OK;
}

/* ---- the writer thread ------------------------------------------------------- */

static void arc_refresh_spool_stats(imp_archive_t *ar)
{
	uint64_t pending = imp_spool_pending(ar->spool);
	uint64_t bytes = imp_spool_bytes(ar->spool);
	pthread_mutex_lock(&ar->mu);
	ar->spool_pending = pending;
	ar->spool_bytes_now = bytes;
	pthread_mutex_unlock(&ar->mu);
}

/* Counts a record that could not be taken; returns what submit returns.
 * Called with mu held. */
static int arc_refuse(imp_archive_t *ar, int rc_closed)
{
	if (ar->on_failure == IMP_FAIL_OPEN) {
		ar->n_lost++;
		return IMP_OK;
	}
	ar->n_refused++;
	return rc_closed;
}

/* Completes one item with rc (IMP_OK or an error), with mu held, on the
 * writer thread: wakes a strict waiter (the submitter counts the refusal),
 * or owes an asynchronous submitter its callback (counted here: refused,
 * or lost with IMP_FAIL_OPEN), or, for a plain batched record, counts it
 * lost when dropped (count_lost).  The callback is called by arc_fire once
 * mu is released; should the list not grow (out of memory), it is called
 * right here, under mu, which done's contract (queue and signal only)
 * allows. */
static void arc_complete(imp_archive_t *ar, arc_item_t *it, int rc,
			 bool count_lost)
{
	if (it->w) {
		it->w->rc = rc;
		it->w->done = 1;
	} else if (it->fn) {
		int crc = rc == IMP_OK ? IMP_OK : arc_refuse(ar, rc);
		uint64_t seq = it->r ? it->r->seq : 0;
		if (ar->comp_n == ar->comp_cap) {
			size_t cap = ar->comp_cap ? 2 * ar->comp_cap : 64;
			arc_comp_t *c = imp_realloc(ar->ctx, ar->comp,
						    cap * sizeof(*c));
			if (c) {
				ar->comp = c;
				ar->comp_cap = cap;
			}
		}
		if (ar->comp_n < ar->comp_cap) {
			ar->comp[ar->comp_n++] =
				(arc_comp_t){it->fn, it->ud, seq, crc};
		} else {
			/* Keep the order: what is owed goes first. */
			for (size_t i = 0; i < ar->comp_n; i++)
				ar->comp[i].fn(ar->comp[i].ud, ar->comp[i].seq,
					       ar->comp[i].rc);
			ar->comp_n = 0;
			it->fn(it->ud, seq, crc);
		}
		it->fn = NULL;
	} else if (count_lost && rc != IMP_OK) {
		ar->n_lost++;
	}
}

/* Calls the callbacks owed, in seq order.  Writer thread, without mu. */
static void arc_fire(imp_archive_t *ar)
{
	for (size_t i = 0; i < ar->comp_n; i++)
		ar->comp[i].fn(ar->comp[i].ud, ar->comp[i].seq, ar->comp[i].rc);
	ar->comp_n = 0;
}

/* Empties the queue, completing every record with IMP_ERR_IO (count_lost:
 * plain batched records count as lost) and freeing it.  With mu held;
 * arc_fire after mu pays the callbacks owed. */
static void arc_fail_queue(imp_archive_t *ar, bool count_lost)
{
	while (ar->q_len > 0) {
		arc_item_t *it = &ar->q[ar->q_head];
		arc_complete(ar, it, IMP_ERR_IO, count_lost);
		imp_record_free(ar->ctx, it->r);
		ar->q_head = (ar->q_head + 1) % ar->queue_max;
		ar->q_len--;
	}
}

/* Records [from, n) of the batch and everything queued behind them could
 * not be made durable anywhere: drop them and rewind the sequence to the
 * chain head (their numbers were never stored, so reusing them leaves no
 * hole and no duplicate).  Called without mu. */
static void arc_rewind(imp_archive_t *ar, arc_item_t *items, size_t from,
		       size_t n)
{
	imp_log(ar->ctx, IMP_LOG_ERROR,
		"archive %s: neither PostgreSQL nor the spool can take "
		"records; %s",
		ar->node,
		ar->on_failure == IMP_FAIL_CLOSED
			? "refusing stanzas (fail-closed)"
			: "dropping records (fail-open)");
	pthread_mutex_lock(&ar->mu);
	for (size_t i = from; i < n; i++) {
		arc_complete(ar, &items[i], IMP_ERR_IO, true);
		imp_record_free(ar->ctx, items[i].r);
		items[i].r = NULL;
	}
	arc_fail_queue(ar, true);
	ar->last_seq = ar->head.seq;
	ar->unrecordable = true;
	ar->unrecordable_until = arc_mono_us() + (int64_t)ar->backoff_ms * 1000;
	pthread_cond_broadcast(&ar->cv_done);
	pthread_cond_broadcast(&ar->cv_space);
	pthread_mutex_unlock(&ar->mu);
	arc_fire(ar);
}

/* Marks items [0, n) finished with rc (strict waiters wake up, callbacks
 * are owed: arc_fire after mu).  With mu held.  Their records are freed
 * by arc_free_items once mu is released: freeing a batch of records takes
 * long enough to stall a submitter on mu. */
static void arc_finish(imp_archive_t *ar, arc_item_t *items, size_t n, int rc)
{
	for (size_t i = 0; i < n; i++)
		arc_complete(ar, &items[i], rc, false);
}

/* Frees the records of items [0, n) (taken off the queue: only the writer
 * holds them).  Without mu. */
static void arc_free_items(imp_archive_t *ar, arc_item_t *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		imp_record_free(ar->ctx, items[i].r);
		items[i].r = NULL;
	}
}

/* Chains, then commits or spools one batch taken from the queue. */
static void arc_write_batch(imp_archive_t *ar, arc_item_t *items, size_t n,
			    bool force_spool)
{
	imp_spool_head_t h = ar->head;
	size_t chained = 0;
	for (; chained < n; chained++) {
		imp_record_t *r = items[chained].r;
		if (imp_record_chain(r, r->seq, h.hash, ar->key, ar->key_len,
				     ar->key_id) != IMP_OK)
			break;
		h.seq = r->seq;
		h.ts_us = r->ts_us;
		memcpy(h.hash, r->rec_hash, IMP_HASH_LEN);
	}
	if (chained < n)
		imp_log(ar->ctx, IMP_LOG_ERROR,
			"archive %s: hashing failed (OpenSSL)", ar->node);

	imp_record_t *recs[chained ? chained : 1];
	for (size_t i = 0; i < chained; i++)
		recs[i] = items[i].r;

	pthread_mutex_lock(&ar->mu);
	bool spool_empty = ar->spool_pending == 0;
	pthread_mutex_unlock(&ar->mu);

	size_t done = 0;
	uint64_t quar = 0;
	if (chained > 0 && !force_spool && spool_empty) {
		arc_pg_commit_isolating(ar, recs, chained, &done, &quar);
		if (done > 0) {
			const imp_record_t *last = recs[done - 1];
			ar->head.seq = last->seq;
			ar->head.ts_us = last->ts_us;
			memcpy(ar->head.hash, last->rec_hash, IMP_HASH_LEN);
			if (imp_spool_set_head(ar->spool, &ar->head) != IMP_OK)
				imp_log(ar->ctx, IMP_LOG_WARN,
					"archive %s: cannot persist the chain "
					"head",
					ar->node);
			pthread_mutex_lock(&ar->mu);
			ar->committed_seq = last->seq; /* before the free */
			/* Quarantined records are durable too (fsynced
			 * quarantine file): their submitters get IMP_OK. */
			arc_finish(ar, items, done, IMP_OK);
			ar->n_written += done - quar;
			ar->n_quarantined += quar;
			ar->inflight -= done;
			pthread_cond_broadcast(&ar->cv_done);
			pthread_mutex_unlock(&ar->mu);
			arc_fire(ar);
			arc_free_items(ar, items, done);
		}
		if (done == chained) {
			if (chained < n)
				arc_rewind(ar, items, chained, n);
			return;
		}
		/* The rest (PostgreSQL went away mid-batch) goes to the
		 * spool, in order. */
		items += done;
		n -= done;
		chained -= done;
		for (size_t i = 0; i < chained; i++)
			recs[i] = items[i].r;
	}

	/* The spool: append the batch, one fdatasync for all of it. */
	size_t k = 0;
	for (; k < chained; k++)
		if (imp_spool_append(ar->spool, recs[k]) != IMP_OK)
			break;
	int src = k > 0 ? imp_spool_sync(ar->spool) : IMP_OK;
	if (k > 0) {
		/* Appended records are the chain's head even if the sync
		 * failed: they may be on disk and will be replayed, so
		 * their numbers must not be reused. */
		ar->head.seq = recs[k - 1]->seq;
		ar->head.ts_us = recs[k - 1]->ts_us;
		memcpy(ar->head.hash, recs[k - 1]->rec_hash, IMP_HASH_LEN);
		if (src != IMP_OK)
			imp_log(ar->ctx, IMP_LOG_ERROR,
				"archive %s: spool sync failed", ar->node);
	}
	int64_t first_ts = k > 0 ? recs[0]->ts_us : 0;
	unsigned long long first_seq = chained > 0 ? recs[0]->seq : 0;
	uint64_t pending = imp_spool_pending(ar->spool);
	uint64_t bytes = imp_spool_bytes(ar->spool);
	pthread_mutex_lock(&ar->mu);
	if (k > 0 && ar->spool_pending == 0)
		ar->spool_oldest_ts = first_ts;
	ar->spool_pending = pending;
	ar->spool_bytes_now = bytes;
	arc_finish(ar, items, k, src == IMP_OK ? IMP_OK : IMP_ERR_IO);
	ar->n_spooled += k;
	ar->inflight -= n;
	pthread_cond_broadcast(&ar->cv_done);
	pthread_mutex_unlock(&ar->mu);
	arc_fire(ar);
	arc_free_items(ar, items, k);
	if (k < n)
		arc_rewind(ar, items, k, n);
	else if (k > 0 && spool_empty)
		imp_log(ar->ctx, IMP_LOG_WARN,
			"archive %s: PostgreSQL unavailable; spooling from "
			"seq %llu",
			ar->node, first_seq);
}

/* Replays one batch from the spool; true when it made progress. */
static bool arc_replay(imp_archive_t *ar)
{
	imp_record_t *recs[ar->batch_max];
	size_t n = 0;
	int rc = imp_spool_peek(ar->spool, ar->batch_max, recs, &n);
	if (rc != IMP_OK) {
		imp_log(ar->ctx, IMP_LOG_ERROR,
			"archive %s: cannot read the spool (%s)", ar->node,
			imp_strerror(rc));
		arc_pg_mark_down(ar); /* retry after a backoff */
		return false;
	}
	if (n == 0) {
		arc_refresh_spool_stats(ar);
		return false;
	}
	size_t all = n;
	uint64_t quar = 0;
	arc_pg_commit_isolating(ar, recs, all, &n, &quar);
	bool ok = n > 0;
	if (ok) {
		if (imp_spool_consume(ar->spool, n) != IMP_OK)
			imp_log(ar->ctx, IMP_LOG_WARN,
				"archive %s: cannot consume replayed records "
				"(they will be replayed again, harmlessly)",
				ar->node);
		if (imp_spool_set_head(ar->spool, &ar->head) != IMP_OK)
			imp_log(ar->ctx, IMP_LOG_WARN,
				"archive %s: cannot persist the chain head",
				ar->node);
		uint64_t pending = imp_spool_pending(ar->spool);
		uint64_t bytes = imp_spool_bytes(ar->spool);
		pthread_mutex_lock(&ar->mu);
		ar->n_replayed += n - quar;
		ar->n_written += n - quar;
		ar->n_quarantined += quar;
		if (recs[n - 1]->seq > ar->committed_seq)
			ar->committed_seq = recs[n - 1]->seq;
		/* Spool empty: everything up to the chain head is settled
		 * (re-injected quarantine segments end below the head). */
		if (pending == 0 && ar->head.seq > ar->committed_seq)
			ar->committed_seq = ar->head.seq;
		ar->spool_oldest_ts = recs[n - 1]->ts_us;
		ar->spool_pending = pending;
		ar->spool_bytes_now = bytes;
		pthread_cond_broadcast(&ar->cv_done);
		pthread_mutex_unlock(&ar->mu);
		if (pending == 0)
			imp_log(ar->ctx, IMP_LOG_INFO,
				"archive %s: spool replayed up to seq %llu",
				ar->node, (unsigned long long)recs[n - 1]->seq);
	}
	for (size_t i = 0; i < all; i++)
		imp_record_free(ar->ctx, recs[i]);
	return ok;
}

/* Rewrites the status file (tmp + rename: a reader sees the old or the new
 * content, never half of one).  Writer thread, or close after the join.
 * No fsync: the file is a monitor's view, not a record. */
static void arc_status_write(imp_archive_t *ar)
{
	if (!ar->status_file)
		return;
	imp_archive_stats_t st;
	imp_archive_stats(ar, &st);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t wall = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 ", \"pid\": %ld, \"updated_us\": %" PRId64
		 ", \"submitted\": %" PRIu64 ", \"queued\": %" PRIu64
		 ", \"written\": %" PRIu64 ", \"spooled\": %" PRIu64
		 ", \"replayed\": %" PRIu64 ", \"refused\": %" PRIu64
		 ", \"lost\": %" PRIu64 ", \"spool_bytes\": %" PRIu64
		 ", \"oldest_unwritten_us\": %" PRId64
		 ", \"connected\": %d, \"last_seq\": %" PRIu64
		 ", \"quarantined\": %" PRIu64 "}\n",
		 (long)getpid(), wall, st.submitted, st.queued, st.written,
		 st.spooled, st.replayed, st.refused, st.lost, st.spool_bytes,
		 st.oldest_unwritten_us, st.connected, st.last_seq,
		 st.quarantined);
	imp_buf_t b;
	imp_buf_init(&b, ar->ctx, NULL);
	imp_buf_puts(&b, "{\"node\": ");
	imp_buf_json_str(&b, ar->node, strlen(ar->node));
	imp_buf_puts(&b, buf);
	bool ok = false;
	int err = ENOMEM;
	FILE *f = b.oom ? NULL : fopen(ar->status_tmp, "w");
	if (!f && !b.oom)
		err = errno;
	if (f) {
		ok = fwrite(b.data, 1, b.len, f) == b.len;
		ok = fclose(f) == 0 && ok;
		ok = ok && rename(ar->status_tmp, ar->status_file) == 0;
		if (!ok) {
			err = errno;
			unlink(ar->status_tmp);
		}
	}
	imp_buf_free(&b);
	if (!ok && !ar->status_warned) {
		ar->status_warned = true;
		imp_log(ar->ctx, IMP_LOG_WARN,
			"archive %s: cannot write the status file %s: %s",
			ar->node, ar->status_file, strerror(err));
	} else if (ok) {
		ar->status_warned = false;
	}
}

/* Rewrites the status file when it is due. */
static void arc_status_tick(imp_archive_t *ar)
{
	if (!ar->status_file)
		return;
	int64_t now = arc_mono_us();
	if (now < ar->status_next)
		return;
	ar->status_next = now + ARC_STATUS_EVERY_US;
	arc_status_write(ar);
}

static void *arc_writer_main(void *arg)
{
	imp_archive_t *ar = arg;
	arc_item_t *items = imp_calloc(ar->ctx, ar->batch_max, sizeof(*items));
	bool strict = ar->durability == IMP_DURABILITY_STRICT;

	for (;;) {
		arc_status_tick(ar);
		if (!ar->conn_ok && arc_mono_us() >= ar->reconnect_at)
			arc_pg_connect(ar);

		pthread_mutex_lock(&ar->mu);
		for (;;) {
			int64_t now = arc_mono_us();
			bool past_stop = ar->stop && now >= ar->stop_deadline;
			if (ar->q_len >= ar->batch_max || ar->stop ||
			    (ar->q_len > 0 &&
			     (strict || ar->flush_waiters > 0 || !items ||
			      now >= ar->q[ar->q_head].enq_us +
					      (int64_t)ar->batch_ms * 1000)))
				break;
			if (ar->spool_pending > 0 && ar->conn_ok && !past_stop)
				break;
			if (!ar->conn_ok && now >= ar->reconnect_at)
				break;
			if (ar->status_file && now >= ar->status_next)
				break; /* status_next: writer thread only */
			int64_t deadline = INT64_MAX;
			if (ar->q_len > 0)
				deadline = ar->q[ar->q_head].enq_us +
					   (int64_t)ar->batch_ms * 1000;
			if (!ar->conn_ok && ar->reconnect_at < deadline)
				deadline = ar->reconnect_at;
			/* Wake up now and then for the month rollover. */
			if (deadline > now + 1000000)
				deadline = now + 1000000;
			if (ar->status_file && ar->status_next < deadline)
				deadline = ar->status_next;
			arc_wait(&ar->cv_writer, &ar->mu, deadline);
		}
		bool stopping = ar->stop;
		bool past_stop = stopping && arc_mono_us() >= ar->stop_deadline;
		size_t n = 0;
		size_t cap = items ? ar->batch_max : 0;
		int64_t oldest = 0;
		while (n < cap && ar->q_len > 0) {
			items[n] = ar->q[ar->q_head];
			if (n == 0)
				oldest = items[n].r->ts_us;
			ar->q_head = (ar->q_head + 1) % ar->queue_max;
			ar->q_len--;
			n++;
		}
		ar->inflight = n;
		ar->inflight_ts = oldest;
		if (n > 0)
			pthread_cond_broadcast(&ar->cv_space);
		pthread_mutex_unlock(&ar->mu);

		if (n > 0) {
			/* Past the close deadline, or disconnected while
			 * closing: what is left goes to the spool. */
			bool force = past_stop || (stopping && !ar->conn_ok);
			arc_write_batch(ar, items, n, force);
		}
		pthread_mutex_lock(&ar->mu);
		bool replay = ar->spool_pending > 0;
		pthread_mutex_unlock(&ar->mu);
		if (replay && ar->conn_ok && !past_stop)
			arc_replay(ar);

		if (stopping) {
			pthread_mutex_lock(&ar->mu);
			bool done = ar->q_len == 0 &&
				    (ar->spool_pending == 0 || !ar->conn_ok ||
				     arc_mono_us() >= ar->stop_deadline);
			pthread_mutex_unlock(&ar->mu);
			if (done)
				break;
		}
		if (!items) {
			/* Out of memory at start: nothing can be written;
			 * fail everything until close. */
			pthread_mutex_lock(&ar->mu);
			arc_fail_queue(ar, false);
			pthread_cond_broadcast(&ar->cv_done);
			pthread_mutex_unlock(&ar->mu);
			arc_fire(ar);
		}
	}
	imp_mfree(ar->ctx, items);
	return NULL;
}

/* ---- public API --------------------------------------------------------------- */

static void arc_free(imp_archive_t *ar)
{
	if (!ar)
		return;
	if (ar->conn)
		PQfinish(ar->conn);
	if (ar->spool)
		imp_spool_close(ar->spool);
	if (ar->conninfo) {
		explicit_bzero(ar->conninfo, strlen(ar->conninfo));
		imp_mfree(ar->ctx, ar->conninfo);
	}
	if (ar->key) {
		explicit_bzero(ar->key, ar->key_len);
		imp_mfree(ar->ctx, ar->key);
	}
	imp_buf_free(&ar->arr);
	for (int i = 0; i < ARC_N_STANZA_PARAMS; i++)
		imp_buf_free(&ar->scol[i]);
	for (int i = 0; i < ARC_N_FLAG_PARAMS; i++)
		imp_buf_free(&ar->fcol[i]);
	imp_mfree(ar->ctx, ar->node);
	imp_mfree(ar->ctx, ar->spool_dir);
	imp_mfree(ar->ctx, ar->retention_default);
	imp_mfree(ar->ctx, ar->key_id);
	imp_mfree(ar->ctx, ar->q);
	imp_mfree(ar->ctx, ar->comp);
	imp_mfree(ar->ctx, ar->status_file);
	imp_mfree(ar->ctx, ar->status_tmp);
	pthread_cond_destroy(&ar->cv_writer);
	pthread_cond_destroy(&ar->cv_done);
	pthread_cond_destroy(&ar->cv_space);
	pthread_mutex_destroy(&ar->mu);
	imp_mfree(ar->ctx, ar);
}

/* Reads the DSN from cfg (string or file), trimmed. */
static int arc_load_dsn(imp_archive_t *ar, const imp_archive_config_t *cfg)
{
	if (cfg->dsn_file) {
		char err[256];
		size_t len = 0;
		int rc = imp_read_file(ar->ctx, cfg->dsn_file, ARC_DSN_MAX,
				       &ar->conninfo, &len, err, sizeof(err));
		if (rc != IMP_OK) {
			imp_log(ar->ctx, IMP_LOG_ERROR,
				"archive: cannot read the DSN file: %s", err);
			return rc;
		}
		while (len > 0 && (ar->conninfo[len - 1] == '\n' ||
				   ar->conninfo[len - 1] == '\r' ||
				   ar->conninfo[len - 1] == ' ' ||
				   ar->conninfo[len - 1] == '\t'))
			ar->conninfo[--len] = '\0';
		return IMP_OK;
	}
	ar->conninfo = imp_strdup(ar->ctx, cfg->dsn ? cfg->dsn : "");
	return ar->conninfo ? IMP_OK : IMP_ERR_NOMEM;
}

/* Learns the chain head from PostgreSQL (used when the spool knows none,
 * and to never fall behind what the database holds).  true when the
 * database answered (an empty answer means: no record of this node). */
static bool arc_pg_chain_head(imp_archive_t *ar)
{
	bool ok = false;
	const char *v[1] = {ar->node};
	PGresult *res = PQexecParams(
		ar->conn,
		"SELECT seq, (extract(epoch FROM ts) * 1000000)::int8, "
		"encode(rec_hash, 'hex') FROM impolicy.writer_chain_head($1)",
		1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		arc_log_pq(ar, IMP_LOG_WARN, "writer_chain_head",
			   PQerrorMessage(ar->conn));
	} else if (PQntuples(res) == 1) {
		ok = true;
		uint64_t seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		const char *hex = PQgetvalue(res, 0, 2);
		if (seq > ar->head.seq && strlen(hex) == 2 * IMP_HASH_LEN) {
			ar->head.seq = seq;
			ar->head.ts_us =
				strtoll(PQgetvalue(res, 0, 1), NULL, 10);
			for (int i = 0; i < IMP_HASH_LEN; i++) {
				unsigned x = 0;
				sscanf(hex + 2 * i, "%2x", &x);
				ar->head.hash[i] = (unsigned char)x;
			}
		}
	} else {
		ok = true; /* no row: the node has no record yet */
	}
	PQclear(res);
	return ok;
}

int imp_archive_open(imp_ctx_t *ctx, const imp_archive_config_t *cfg,
		     imp_archive_t **out)
{
	if (!out)
		return IMP_ERR_INVALID;
	*out = NULL;
	if (!ctx || !cfg || cfg->version != IMP_ARCHIVE_CONFIG_VERSION ||
	    !cfg->node || !*cfg->node || !cfg->spool_dir ||
	    (!cfg->dsn && !cfg->dsn_file) ||
	    (cfg->hmac_key && (!cfg->hmac_key_len || !cfg->hmac_key_id)) ||
	    (cfg->durability != IMP_DURABILITY_STRICT &&
	     cfg->durability != IMP_DURABILITY_BATCHED) ||
	    (cfg->on_failure != IMP_FAIL_CLOSED &&
	     cfg->on_failure != IMP_FAIL_OPEN))
		return IMP_ERR_INVALID;

	imp_archive_t *ar = imp_calloc(ctx, 1, sizeof(*ar));
	if (!ar)
		return IMP_ERR_NOMEM;
	ar->ctx = ctx;
	pthread_mutex_init(&ar->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ar->cv_writer, &ca);
	pthread_cond_init(&ar->cv_done, &ca);
	pthread_cond_init(&ar->cv_space, &ca);
	pthread_condattr_destroy(&ca);
	imp_buf_init(&ar->arr, ctx, NULL);
	for (int i = 0; i < ARC_N_STANZA_PARAMS; i++)
		imp_buf_init(&ar->scol[i], ctx, NULL);
	for (int i = 0; i < ARC_N_FLAG_PARAMS; i++)
		imp_buf_init(&ar->fcol[i], ctx, NULL);

	ar->durability = cfg->durability;
	ar->on_failure = cfg->on_failure;
	ar->queue_max = cfg->queue_max ? cfg->queue_max : ARC_QUEUE_DEFAULT;
	ar->batch_max = cfg->batch_max ? cfg->batch_max : ARC_BATCH_DEFAULT;
	ar->batch_ms = cfg->batch_ms ? cfg->batch_ms : ARC_BATCH_MS_DEFAULT;
	ar->backoff_ms = ARC_BACKOFF_MIN_MS;
	ar->stop_deadline = INT64_MAX;
	ar->node = imp_strdup(ctx, cfg->node);
	ar->spool_dir = imp_strdup(ctx, cfg->spool_dir);
	ar->retention_default =
		imp_strdup(ctx, cfg->retention_default ? cfg->retention_default
						       : "default");
	ar->q = imp_calloc(ctx, ar->queue_max, sizeof(*ar->q));
	bool status_nomem = false;
	if (cfg->status_file && *cfg->status_file) {
		size_t sl = strlen(cfg->status_file);
		ar->status_file = imp_strdup(ctx, cfg->status_file);
		ar->status_tmp = imp_malloc(ctx, sl + 5);
		if (ar->status_tmp)
			snprintf(ar->status_tmp, sl + 5, "%s.tmp",
				 cfg->status_file);
		status_nomem = !ar->status_file || !ar->status_tmp;
	}
	if (cfg->hmac_key) {
		ar->key = imp_malloc(ctx, cfg->hmac_key_len);
		ar->key_id = imp_strdup(ctx, cfg->hmac_key_id);
		if (ar->key)
			memcpy(ar->key, cfg->hmac_key, cfg->hmac_key_len);
		ar->key_len = cfg->hmac_key_len;
	}
	if (!ar->node || !ar->spool_dir || !ar->retention_default || !ar->q ||
	    status_nomem || (cfg->hmac_key && (!ar->key || !ar->key_id))) {
		arc_free(ar);
		return IMP_ERR_NOMEM;
	}
	int rc = arc_load_dsn(ar, cfg);
	if (rc != IMP_OK) {
		arc_free(ar);
		return rc;
	}

	char err[256] = "";
	rc = imp_spool_open(ctx, ar->spool_dir, ar->node, &ar->spool, &ar->head,
			    err, sizeof(err));
	if (rc != IMP_OK) {
		imp_log(ctx, IMP_LOG_ERROR, "archive %s: spool unusable: %s",
			ar->node, err);
		arc_free(ar);
		return rc == IMP_ERR_NOMEM ? rc : IMP_ERR_IO;
	}

	/* Connect now so that a writer without local state learns the chain
	 * head before the first sequence number is handed out.  Without a
	 * head from either side, starting at seq 1 would reuse numbers the
	 * archive may already hold (duplicate (node, seq) rows with another
	 * ts: a corrupt chain), so that is done only for a node declared new;
	 * otherwise open fails closed and the host must not start recording
	 * until PostgreSQL is reachable. */
	bool head_known = ar->head.seq > 0;
	if (arc_pg_connect(ar) && arc_pg_chain_head(ar))
		head_known = true;
	if (!head_known) {
		if (!cfg->new_node) {
			imp_log(ctx, IMP_LOG_ERROR,
				"archive %s: no chain head in the spool and "
				"PostgreSQL unreachable: refusing to record "
				"(sequence numbers could be reused); retry "
				"when "
				"PostgreSQL is up, or declare the node new",
				ar->node);
			arc_free(ar);
			return IMP_ERR_IO;
		}
		imp_log(ctx, IMP_LOG_WARN,
			"archive %s: new node, PostgreSQL unreachable: "
			"starting at seq 1",
			ar->node);
	}

	ar->last_seq = ar->head.seq;
	ar->last_ts = ar->head.ts_us;
	ar->committed_seq = ar->head.seq;
	ar->spool_pending = imp_spool_pending(ar->spool);
	ar->spool_bytes_now = imp_spool_bytes(ar->spool);
	if (ar->spool_pending > 0) {
		imp_record_t *first = NULL;
		size_t n = 0;
		if (imp_spool_peek(ar->spool, 1, &first, &n) == IMP_OK &&
		    n == 1) {
			ar->committed_seq = first->seq - 1;
			ar->spool_oldest_ts = first->ts_us;
			imp_record_free(ctx, first);
		} else {
			ar->committed_seq = 0;
		}
		imp_log(ctx, IMP_LOG_INFO,
			"archive %s: %llu spooled records to replay", ar->node,
			(unsigned long long)ar->spool_pending);
	}

	if (pthread_create(&ar->thread, NULL, arc_writer_main, ar) != 0) {
		imp_log(ctx, IMP_LOG_ERROR,
			"archive %s: cannot start the writer thread", ar->node);
		arc_free(ar);
		return IMP_ERR_INTERNAL;
	}
	ar->thread_started = true;
	*out = ar;
	return IMP_OK;
}

/* Both submits.  done == NULL: imp_archive_submit (waits in strict mode);
 * else asynchronous: never waits for durability, done follows when queued
 * (IMP_OK).  A record refused at once in fail-open mode is counted lost and
 * done(ud, 0, IMP_OK) is called here, before returning IMP_OK. */
static int arc_submit(imp_archive_t *ar, const imp_view_t *view,
		      const imp_verdict_t *v, imp_archive_done_fn done,
		      void *ud, uint64_t *seq_out)
{
	if (seq_out)
		*seq_out = 0;
	if (!ar || !view || !v || view->version != IMP_VIEW_VERSION ||
	    (!view->xml && view->xml_len))
		return IMP_ERR_INVALID;
	int64_t ts = view->time_us ? view->time_us : imp_ctx_now(ar->ctx);

	/* The record is built outside mu, then mu is taken once: the
	 * refusals below (closing, unrecordable) are rare, so building a
	 * record for nothing then costs less than a second lock round trip
	 * on every submit. */
	imp_record_t *r = NULL;
	int rc = imp_record_build(ar->ctx, ar->node, ts, view, v,
				  ar->retention_default, &r);

	pthread_mutex_lock(&ar->mu);
	if (ar->closing) {
		pthread_mutex_unlock(&ar->mu);
		imp_record_free(ar->ctx, r);
		return IMP_ERR_INVALID;
	}
	if (ar->unrecordable) {
		if (arc_mono_us() < ar->unrecordable_until) {
			rc = arc_refuse(ar, IMP_ERR_IO);
			pthread_mutex_unlock(&ar->mu);
			imp_record_free(ar->ctx, r);
			if (rc == IMP_OK && done)
				done(ud, 0, IMP_OK);
			return rc;
		}
		ar->unrecordable = false; /* try again */
	}
	if (rc != IMP_OK) {
		rc = arc_refuse(ar, rc);
		pthread_mutex_unlock(&ar->mu);
		imp_record_free(ar->ctx, r);
		if (rc == IMP_OK && done)
			done(ud, 0, IMP_OK);
		return rc;
	}

	arc_waiter_t w = {0, IMP_OK};
	bool wait = !done && ar->durability == IMP_DURABILITY_STRICT;
	bool urgent = wait || (done && ar->durability == IMP_DURABILITY_STRICT);
	if (ar->q_len >= ar->queue_max && !ar->closing) {
		int64_t deadline = arc_mono_us() + ARC_FULL_WAIT_US;
		while (ar->q_len >= ar->queue_max && !ar->closing &&
		       arc_mono_us() < deadline)
			arc_wait(&ar->cv_space, &ar->mu, deadline);
	}
	if (ar->closing || ar->q_len >= ar->queue_max) {
		rc = ar->closing ? IMP_ERR_INVALID
				 : arc_refuse(ar, IMP_ERR_LIMIT);
		pthread_mutex_unlock(&ar->mu);
		imp_record_free(ar->ctx, r);
		if (rc == IMP_OK && done)
			done(ud, 0, IMP_OK);
		return rc;
	}
	uint64_t seq = ++ar->last_seq;
	r->seq = seq;
	if (r->ts_us < ar->last_ts)
		r->ts_us = ar->last_ts; /* the chain's ts never goes back */
	ar->last_ts = r->ts_us;
	size_t tail = (ar->q_head + ar->q_len) % ar->queue_max;
	ar->q[tail].r = r;
	ar->q[tail].w = wait ? &w : NULL;
	ar->q[tail].fn = done;
	ar->q[tail].ud = ud;
	ar->q[tail].enq_us = arc_mono_us();
	ar->q_len++;
	ar->n_submitted++;
	/* Wake the writer only when it has something to decide. */
	if (urgent || ar->q_len == 1 || ar->q_len >= ar->batch_max)
		pthread_cond_signal(&ar->cv_writer);
	/* *seq_out is set before the writer can take the record (it needs
	 * mu), so done never runs before the caller knows the number. */
	if (done && seq_out)
		*seq_out = seq;
	if (wait) {
		while (!w.done)
			pthread_cond_wait(&ar->cv_done, &ar->mu);
		rc = w.rc == IMP_OK ? IMP_OK : arc_refuse(ar, w.rc);
		if (w.rc != IMP_OK)
			seq = 0;
	}
	pthread_mutex_unlock(&ar->mu);
	if (!done && seq_out)
		*seq_out = seq;
	return rc;
}

int imp_archive_submit(imp_archive_t *ar, const imp_view_t *view,
		       const imp_verdict_t *v, uint64_t *seq_out)
{
	return arc_submit(ar, view, v, NULL, NULL, seq_out);
}

int imp_archive_submit_async(imp_archive_t *ar, const imp_view_t *view,
			     const imp_verdict_t *v, imp_archive_done_fn done,
			     void *ud, uint64_t *seq_out)
{
	if (!done) {
		if (seq_out)
			*seq_out = 0;
		return IMP_ERR_INVALID;
	}
	return arc_submit(ar, view, v, done, ud, seq_out);
}

int imp_archive_flush(imp_archive_t *ar, int timeout_ms)
{
	if (!ar)
		return IMP_ERR_INVALID;
	int64_t deadline = timeout_ms < 0
				   ? INT64_MAX
				   : arc_mono_us() + (int64_t)timeout_ms * 1000;
	int rc = IMP_OK;
	pthread_mutex_lock(&ar->mu);
	uint64_t target = ar->last_seq;
	ar->flush_waiters++;
	pthread_cond_signal(&ar->cv_writer);
	for (;;) {
		/* Records dropped by a rewind never commit: then the goal
		 * is the (lower) current last sequence. */
		uint64_t goal = target < ar->last_seq ? target : ar->last_seq;
		if (ar->committed_seq >= goal)
			break;
		if (arc_mono_us() >= deadline) {
			rc = IMP_ERR_LIMIT;
			break;
		}
		arc_wait(&ar->cv_done, &ar->mu, deadline);
	}
	ar->flush_waiters--;
	pthread_mutex_unlock(&ar->mu);
	return rc;
}

void imp_archive_stats(imp_archive_t *ar, imp_archive_stats_t *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!ar)
		return;
	int64_t now = imp_ctx_now(ar->ctx);
	pthread_mutex_lock(&ar->mu);
	st->submitted = ar->n_submitted;
	st->queued = ar->q_len + ar->inflight;
	st->written = ar->n_written;
	st->spooled = ar->n_spooled;
	st->replayed = ar->n_replayed;
	st->refused = ar->n_refused;
	st->lost = ar->n_lost;
	st->quarantined = ar->n_quarantined;
	st->spool_bytes = ar->spool_bytes_now;
	st->connected = ar->connected;
	st->last_seq = ar->last_seq;
	/* Oldest first: the spool, then what the writer holds, then the
	 * queue (FIFO, ts non-decreasing). */
	int64_t oldest = 0;
	if (ar->spool_pending > 0)
		oldest = ar->spool_oldest_ts;
	else if (ar->inflight > 0)
		oldest = ar->inflight_ts;
	else if (ar->q_len > 0)
		oldest = ar->q[ar->q_head].r->ts_us;
	pthread_mutex_unlock(&ar->mu);
	if (oldest != 0)
		st->oldest_unwritten_us = now > oldest ? now - oldest : 1;
}

void imp_archive_close(imp_archive_t *ar, int timeout_ms)
{
	if (!ar)
		return;
	pthread_mutex_lock(&ar->mu);
	ar->closing = true;
	ar->stop = true;
	ar->stop_deadline =
		timeout_ms < 0 ? INT64_MAX
			       : arc_mono_us() + (int64_t)timeout_ms * 1000;
	pthread_cond_broadcast(&ar->cv_writer);
	pthread_cond_broadcast(&ar->cv_space);
	pthread_mutex_unlock(&ar->mu);
	if (ar->thread_started)
		pthread_join(ar->thread, NULL);
	/* The writer leaves the queue empty; be safe anyway (every
	 * asynchronous submitter still hears exactly once). */
	pthread_mutex_lock(&ar->mu);
	arc_fail_queue(ar, true);
	pthread_mutex_unlock(&ar->mu);
	arc_fire(ar);
	arc_status_write(ar);
	arc_free(ar);
}
