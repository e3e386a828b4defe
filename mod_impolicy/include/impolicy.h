/*
 * impolicy.h -- the public API of libimpolicy, the host-neutral core of
 * mod_impolicy.
 *
 * Contract:
 *  - Everything a host connector, impolicyctl, the benchmarks and the tests
 *    need is declared here; nothing else is public.
 *  - Return codes (imp_rc_t, IMP_OK == 0, errors negative) are separate from
 *    verdicts (imp_action_t).
 *  - Opaque handles: imp_ctx_t (process context: allocator, log, clock),
 *    imp_policy_t (immutable, refcounted compiled policy), imp_slot_t (the
 *    current policy of a host, swapped atomically on reload), imp_eval_t
 *    (per-thread evaluator owning scratch memory).
 *  - Structures passed in carry a version field first; new fields are only
 *    ever appended.
 *  - The library never exits, aborts or prints; it reports through the log
 *    callback of the context.  Message bodies are logged at debug level only.
 *
 * Threading: an imp_ctx_t and an imp_policy_t may be shared by any number of
 * threads.  An imp_eval_t is used by one thread at a time.  imp_slot_t
 * operations are thread-safe.
 */
#ifndef IMPOLICY_H
#define IMPOLICY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMP_VERSION_STRING "0.1.0"
#define IMP_API_VERSION 1

#if defined(__GNUC__)
#define IMP_API __attribute__((visibility("default")))
#else
#define IMP_API
#endif

/* ---- return codes -------------------------------------------------- */

typedef enum imp_rc_e {
	IMP_OK = 0,
	IMP_ERR_NOMEM = -1,    /* allocation failed */
	IMP_ERR_INVALID = -2,  /* bad argument or wrong struct version */
	IMP_ERR_IO = -3,       /* a file could not be read */
	IMP_ERR_POLICY = -4,   /* the policy is invalid; see the error list */
	IMP_ERR_PARSE = -5,    /* malformed stanza XML */
	IMP_ERR_LIMIT = -6,    /* a configured limit was exceeded */
	IMP_ERR_INTERNAL = -7, /* a dependency failed unexpectedly */
	IMP_ERR_UNSUPPORTED = -8, /* not available in this build */
} imp_rc_t;

/* A static English description of rc; never NULL. */
IMP_API const char *imp_strerror(int rc);

/* ---- context -------------------------------------------------------- */

typedef struct imp_ctx_s imp_ctx_t;

typedef enum imp_log_level_e {
	IMP_LOG_ERROR = 0,
	IMP_LOG_WARN = 1,
	IMP_LOG_INFO = 2,
	IMP_LOG_DEBUG = 3,
} imp_log_level_t;

/* Called with a NUL-terminated message without trailing newline.  May be
 * called from any thread that uses the library. */
typedef void (*imp_log_fn)(void *ud, imp_log_level_t level, const char *msg);

/* Returns the current time as microseconds since the Unix epoch (UTC). */
typedef int64_t (*imp_clock_fn)(void *ud);

typedef struct imp_allocator_s {
	void *(*malloc)(size_t size, void *ud);
	void *(*realloc)(void *ptr, size_t size, void *ud);
	void (*free)(void *ptr, void *ud);
	void *ud;
} imp_allocator_t;

#define IMP_CTX_CONFIG_VERSION 1

typedef struct imp_ctx_config_s {
	unsigned version;             /* IMP_CTX_CONFIG_VERSION */
	const imp_allocator_t *alloc; /* NULL: malloc/realloc/free; copied */
	imp_log_fn log;               /* NULL: discard */
	void *log_ud;
	imp_log_level_t log_level; /* messages above this are not formatted */
	imp_clock_fn clock;        /* NULL: CLOCK_REALTIME */
	void *clock_ud;
	const char *zoneinfo_dir; /* NULL: /usr/share/zoneinfo; copied */
} imp_ctx_config_t;

/* Creates a context.  cfg may be NULL for all defaults.
 * Returns IMP_OK, IMP_ERR_INVALID or IMP_ERR_NOMEM.  *out is owned by the
 * caller and freed with imp_ctx_free() after every policy, slot and
 * evaluator created from it has been freed. */
IMP_API int imp_ctx_new(const imp_ctx_config_t *cfg, imp_ctx_t **out);
IMP_API void imp_ctx_free(imp_ctx_t *ctx);

/* The context's clock, in microseconds since the epoch. Thread-safe. */
IMP_API int64_t imp_ctx_now(const imp_ctx_t *ctx);

/* ---- errors --------------------------------------------------------- */

/* One structured error, in the manner of PostgreSQL's ereport: a primary
 * message, optional detail and hint, and the position it refers to. */
typedef struct imp_error_s {
	int code;            /* imp_rc_t */
	const char *file;    /* NULL when not about a file */
	unsigned line;       /* 1-based; 0 when unknown */
	unsigned column;     /* 1-based; 0 when unknown */
	const char *rule_id; /* NULL when not about a rule */
	const char *message; /* never NULL */
	const char *detail;  /* may be NULL */
	const char *hint;    /* may be NULL */
} imp_error_t;

typedef struct imp_errors_s imp_errors_t;

/* Number of errors recorded; errors beyond the cap are counted in
 * imp_errors_dropped() but not stored. */
IMP_API size_t imp_errors_count(const imp_errors_t *errs);
IMP_API size_t imp_errors_dropped(const imp_errors_t *errs);
/* The i-th error; valid until imp_errors_free(). */
IMP_API const imp_error_t *imp_errors_get(const imp_errors_t *errs, size_t i);
/* Formats error i as "FILE:LINE:COL: message" (parts omitted when unknown)
 * into buf; returns the length it needed, like snprintf. */
IMP_API size_t imp_error_format(const imp_error_t *e, char *buf, size_t size);
IMP_API void imp_errors_free(imp_errors_t *errs);

/* ---- policies --------------------------------------------------------- */

typedef struct imp_policy_s imp_policy_t;

typedef enum imp_engine_e {
	IMP_ENGINE_AUTO = 0, /* Vectorscan when the CPU supports it */
	IMP_ENGINE_VECTORSCAN = 1,
	IMP_ENGINE_PCRE2 = 2, /* PCRE2 JIT alternation; portable fallback */
} imp_engine_t;

#define IMP_LOAD_OPTIONS_VERSION 1

typedef struct imp_load_options_s {
	unsigned version; /* IMP_LOAD_OPTIONS_VERSION */
	imp_engine_t engine;
	size_t max_errors;                /* 0: 50 */
	const char *const *local_domains; /* added to the policy's own */
	size_t n_local_domains;
} imp_load_options_t;

/* Loads, validates and compiles the policy file at path (and the files it
 * includes).  On success *out holds a policy with one reference and *errs
 * is set to NULL.  On IMP_ERR_POLICY or IMP_ERR_IO *out is NULL and *errs
 * (when errs is not NULL) lists every problem found, capped; free it with
 * imp_errors_free().  opt may be NULL.  Thread-safe. */
IMP_API int imp_policy_load(imp_ctx_t *ctx, const char *path,
			    const imp_load_options_t *opt, imp_policy_t **out,
			    imp_errors_t **errs);

/* Reference counting; both thread-safe.  unref frees on the last one. */
IMP_API imp_policy_t *imp_policy_ref(imp_policy_t *p);
IMP_API void imp_policy_unref(imp_policy_t *p);

typedef struct imp_policy_info_s {
	const char *name;
	const char *version;
	const char *timezone;
	const char *digest; /* 64 lowercase hex chars: SHA-256 of the sources */
	size_t n_rules, n_lists, n_words, n_detectors, n_schedules, n_groups;
	size_t n_files;      /* policy files and list files read */
	size_t memory;       /* bytes held by the compiled policy */
	imp_engine_t engine; /* the engine actually used */
} imp_policy_info_t;

/* Fills *info; the strings live as long as the policy. */
IMP_API void imp_policy_info(const imp_policy_t *p, imp_policy_info_t *info);

/* ---- the current policy of a host: atomic swap on reload -------------- */

typedef struct imp_slot_s imp_slot_t;

/* Creates a slot holding an extra reference to initial (may be NULL). */
IMP_API int imp_slot_new(imp_ctx_t *ctx, imp_policy_t *initial,
			 imp_slot_t **out);
/* Returns a new reference to the current policy (NULL when empty); the
 * caller releases it with imp_policy_unref() when its evaluation ends. */
IMP_API imp_policy_t *imp_slot_acquire(imp_slot_t *slot);
/* Installs p (taking an extra reference) and drops the slot's reference
 * to the previous policy, which is freed when its last evaluation ends. */
IMP_API void imp_slot_swap(imp_slot_t *slot, imp_policy_t *p);
IMP_API void imp_slot_free(imp_slot_t *slot);

/* ---- stanzas in --------------------------------------------------------- */

typedef enum imp_origin_e {
	IMP_ORIGIN_LOCAL = 1,  /* sent by a local user's session (c2s) */
	IMP_ORIGIN_REMOTE = 2, /* arrived from another server (s2s) */
	IMP_ORIGIN_UNKNOWN = 3 /* offline tools: decided from the domains */
} imp_origin_t;

#define IMP_VIEW_VERSION 1

typedef struct imp_view_s {
	unsigned version; /* IMP_VIEW_VERSION */
	imp_origin_t origin;
	const char *xml; /* the stanza as received; required */
	size_t xml_len;
	const char *session_jid; /* authenticated full JID of the sender's
	                            session, or NULL */
	const char *from;        /* NULL: the stanza's from (or session_jid) */
	const char *to;          /* NULL: the stanza's to */
	int64_t time_us;         /* 0: the context clock */
} imp_view_t;

/* ---- verdicts out --------------------------------------------------------- */

typedef enum imp_action_e {
	IMP_ALLOW = 0,
	IMP_FLAG = 1,   /* deliver, queue for review */
	IMP_REDACT = 2, /* deliver with matched spans masked; flag */
	IMP_REJECT = 3, /* do not deliver; bounce policy-violation */
} imp_action_t;

IMP_API const char *imp_action_name(imp_action_t a);

typedef enum imp_verdict_flag_e {
	IMP_VF_NOTIFY = 1 << 0,        /* compliance JIDs are to be notified */
	IMP_VF_SUSPENDED = 1 << 1,     /* sender is suspended by escalation */
	IMP_VF_UNINSPECTABLE = 1 << 2, /* a match limit was hit */
	IMP_VF_MALFORMED = 1 << 3,     /* the XML could not be parsed */
	IMP_VF_ESCALATED = 1 << 4,     /* this stanza started a suspension */
} imp_verdict_flag_t;

/* Text fields of a stanza that rules inspect and redaction masks. */
typedef enum imp_field_e {
	IMP_FIELD_BODY = 0,    /* all <body/> texts, joined by "\n" */
	IMP_FIELD_SUBJECT = 1, /* <subject/> */
	IMP_FIELD_XHTML = 2,   /* text inside XHTML-IM <html/> */
	IMP_FIELD_STATUS = 3,  /* presence <status/> */
	IMP_FIELD_OTHER = 4,   /* other character data (e.g. iq payloads,
	                          OOB descriptions, file names) */
	IMP_FIELD_COUNT = 5
} imp_field_t;

IMP_API const char *imp_field_name(imp_field_t f);

/* One piece of evidence: what matched where. */
typedef struct imp_hit_s {
	const char *rule_id; /* the rule this evidence satisfied */
	const char *source;  /* detector or list name, or a fact name */
	imp_field_t field;
	uint32_t start, end; /* byte offsets in the field's text */
	uint8_t confidence;  /* 0..100 */
} imp_hit_t;

/* One matched rule. */
typedef struct imp_rule_match_s {
	const char *rule_id;
	const char *section; /* may be NULL */
	const char *notice;  /* may be NULL */
	imp_action_t action;
	int severity; /* 0 low .. 3 critical */
} imp_rule_match_t;

/* What the stanza was, as the core parsed it (for archives and logs).
 * Strings may be NULL when absent. */
typedef struct imp_stanza_info_s {
	const char *kind; /* "message", "presence", "iq" or element name */
	const char *type;
	const char *id;
	const char *from;
	const char *to;
	const char *thread;
	const char *body; /* IMP_FIELD_BODY text (original) */
	const char
		*direction; /* "outbound", "inbound", "internal", "external" */
} imp_stanza_info_t;

/* A verdict is owned by the caller, filled by imp_eval_run() and released
 * with imp_verdict_clear() (never with free()).  All its pointers stay valid
 * until then, independent of the policy and the evaluator -- unless it was
 * made with IMP_EVAL_BORROW, whose shorter lifetime is described there. */
typedef struct imp_verdict_s {
	imp_action_t action;
	unsigned flags;      /* imp_verdict_flag_t */
	const char *rule_id; /* the deciding rule, or NULL for allow */
	const char *section; /* its policy section, or NULL */
	const char *notice;  /* the text for the sender, or NULL */
	size_t n_rules;      /* every matched rule, in policy order */
	const imp_rule_match_t *rules;
	size_t n_hits;
	const imp_hit_t *hits;
	size_t n_notify; /* compliance JIDs to notify */
	const char *const *notify;
	const char *redacted_xml; /* IMP_REDACT: the stanza to deliver */
	size_t redacted_xml_len;
	const char *redacted_body; /* IMP_REDACT: the masked body text */
	char policy_digest[65];
	imp_stanza_info_t stanza;
	const char *explain; /* with IMP_EVAL_EXPLAIN: a readable trace */
	const char *error;   /* IMP_VF_MALFORMED: why */
	void *priv_;         /* library-owned storage */
	/* Appended in API 1.1: */
	const char *retention; /* retention class: the deciding rule's, else
	                          the policy default, else NULL */
} imp_verdict_t;

IMP_API void imp_verdict_clear(imp_verdict_t *v);

/* Writes the verdict as one JSON object (no newline) into a malloc'd,
 * NUL-terminated string *out that the caller frees with imp_free().
 * With with_explain, the explain trace is included. */
IMP_API int imp_verdict_json(imp_ctx_t *ctx, const imp_verdict_t *v,
			     int with_explain, char **out, size_t *len);

/* Frees memory the library handed to the caller with malloc semantics. */
IMP_API void imp_free(imp_ctx_t *ctx, void *p);

/* ---- evaluation ----------------------------------------------------------- */

typedef struct imp_eval_s imp_eval_t;

typedef enum imp_eval_flag_e {
	IMP_EVAL_EXPLAIN = 1 << 0, /* build verdict->explain */
	IMP_EVAL_DRY_RUN = 1 << 1, /* do not update escalation/fan-out state */
	/* API 1.2: the verdict borrows instead of owning a copy.  Its
	 * pointers reach into the evaluator's scratch memory, the view's
	 * strings and the policy, and stay valid only until the next
	 * imp_eval_run() or imp_eval_free() on the same evaluator, and while
	 * the caller holds the policy and the view.  Saves a copy and an
	 * allocation per stanza for hosts that act on the verdict at once;
	 * imp_verdict_clear() is still called (it only zeroes). */
	IMP_EVAL_BORROW = 1 << 2,
} imp_eval_flag_t;

/* An evaluator owns per-stanza scratch memory and engine scratch; use one
 * per thread.  Freed with imp_eval_free(). */
IMP_API int imp_eval_new(imp_ctx_t *ctx, imp_eval_t **out);
IMP_API void imp_eval_free(imp_eval_t *ev);

/* Judges one stanza against policy p.  Fills *out (which the caller clears
 * with imp_verdict_clear()).  Malformed XML is not an error of the call:
 * it returns IMP_OK with IMP_VF_MALFORMED set and the action the policy's
 * `on_malformed` setting names (reject by default).  Returns IMP_ERR_INVALID
 * for bad arguments and IMP_ERR_NOMEM on allocation failure; *out is then
 * a reject verdict so that a careless caller still fails closed. */
IMP_API int imp_eval_run(imp_eval_t *ev, const imp_policy_t *p,
			 const imp_view_t *view, unsigned flags,
			 imp_verdict_t *out);

/* ---- the compliance archive ----------------------------------------------- */

/* An archive writer records every judged stanza in PostgreSQL through a
 * bounded queue and a writer thread with its own libpq connection; when
 * PostgreSQL is away, records go to a local fsync'd spool and are replayed
 * in order, exactly once (idempotent by node and sequence), when it comes
 * back.  Each record carries a per-node SHA-256 (optionally HMAC) hash
 * chain (docs/archive.md gives the byte-exact canonical encoding).
 *
 * Threading: imp_archive_submit() may be called from any thread; records
 * of one archive are sequenced in submission order. */
typedef struct imp_archive_s imp_archive_t;

typedef enum imp_durability_e {
	/* imp_archive_submit() returns only when the record is durable in the
	 * spool (fdatasync) or committed in PostgreSQL; concurrent submitters
	 * share one sync (group commit). */
	IMP_DURABILITY_STRICT = 0,
	/* submit returns after enqueueing; the writer syncs the spool at least
	 * every batch_ms (loss window on a host crash: batch_ms plus what is
	 * queued; stated by imp_archive_stats). */
	IMP_DURABILITY_BATCHED = 1,
} imp_durability_t;

typedef enum imp_failmode_e {
	/* When neither PostgreSQL nor the spool can take a record, submit
	 * fails with IMP_ERR_IO and the host must refuse the stanza
	 * (resource-constraint) instead of delivering it unrecorded. */
	IMP_FAIL_CLOSED = 0,
	/* ... submit returns IMP_OK, the record is dropped and counted in
	 * imp_archive_stats_t.lost.  Must be chosen explicitly. */
	IMP_FAIL_OPEN = 1,
} imp_failmode_t;

#define IMP_ARCHIVE_CONFIG_VERSION 1

typedef struct imp_archive_config_s {
	unsigned version;      /* IMP_ARCHIVE_CONFIG_VERSION */
	const char *dsn;       /* libpq conninfo or URI; may be NULL when
	                               dsn_file is set */
	const char *dsn_file;  /* file holding the DSN (0600); NULL: none.
	                               The password may also come from libpq's
	                               PGPASSFILE/PGPASSWORD.  Never logged. */
	const char *node;      /* this writer's node id (required) */
	const char *spool_dir; /* directory for spool files (required) */
	imp_durability_t durability;
	imp_failmode_t on_failure;
	size_t queue_max;              /* records queued in memory; 0: 65536 */
	unsigned batch_max;            /* rows per database batch; 0: 1000 */
	unsigned batch_ms;             /* max wait to fill a batch; 0: 20 */
	const unsigned char *hmac_key; /* NULL: plain SHA-256 chain */
	size_t hmac_key_len;
	const char *hmac_key_id;       /* name recorded with keyed records */
	const char *retention_default; /* class when the verdict names none;
	                                  NULL: "default" */
	int new_node; /* 1: this node has never written to the archive.  When
	                 neither the spool nor PostgreSQL can tell the chain
	                 head at open, open starts at seq 1 only if new_node
	                 is set; otherwise it fails with IMP_ERR_IO (starting
	                 over would reuse sequence numbers already in the
	                 archive).  Appended: zero-initialised configs get the
	                 safe behaviour. */
	const char *status_file; /* NULL: none.  Else the writer thread
	                            rewrites this file (tmp + rename) about
	                            once a second and at close: a JSON object
	                            with every imp_archive_stats_t field plus
	                            "node", "pid" and "updated_us" (wall
	                            clock); read by impolicyctl archive-status
	                            --status-file.  Appended. */
} imp_archive_config_t;

/* Opens the archive: recovers the spool (truncating a torn tail), learns
 * the chain head (spool, else impolicy.writer_chain_head()), starts the
 * writer thread.  PostgreSQL being unreachable is not an error here (the
 * writer retries with backoff and spools meanwhile); an unusable spool
 * directory is (IMP_ERR_IO).  Errors are detailed through the ctx log. */
IMP_API int imp_archive_open(imp_ctx_t *ctx, const imp_archive_config_t *cfg,
			     imp_archive_t **out);

/* Records one judged stanza: view->xml is stored byte for byte, with the
 * verdict's facts.  Copies what it needs; view and verdict may be freed on
 * return.  *seq_out (may be NULL) receives the record's sequence number.
 * Returns IMP_OK, or IMP_ERR_IO when the record could not be made durable
 * and on_failure is IMP_FAIL_CLOSED (the caller must refuse the stanza),
 * IMP_ERR_LIMIT when the queue is full in batched mode and the spool is
 * unusable, IMP_ERR_INVALID after close. */
IMP_API int imp_archive_submit(imp_archive_t *ar, const imp_view_t *view,
			       const imp_verdict_t *v, uint64_t *seq_out);

/* Completion of an asynchronous submit: rc is IMP_OK (durable, or with
 * IMP_FAIL_OPEN counted lost) or IMP_ERR_IO / IMP_ERR_LIMIT (refused). */
typedef void (*imp_archive_done_fn)(void *ud, uint64_t seq, int rc);

/* Like imp_archive_submit in strict mode but never waits: done(ud, seq, rc)
 * is called exactly once, from the writer thread (or from this call when
 * the record is refused at once), when the record is durable (rc IMP_OK)
 * or could not be made durable (IMP_ERR_IO / IMP_ERR_LIMIT; with
 * IMP_FAIL_OPEN, rc is IMP_OK and the record is counted lost).  Works in
 * both durability modes (batched: done fires once the batch is committed
 * in PostgreSQL or synced to the spool).  Returns IMP_OK when queued
 * (*seq_out is set before done can run; done will follow), else the error
 * and done is not called.  The one case of done inside this call:
 * IMP_FAIL_OPEN and the record refused at once (unrecordable archive, full
 * queue): done(ud, 0, IMP_OK), counted lost, then IMP_OK is returned.
 * Writer-thread completions of one archive come in seq order, without the
 * archive lock held (under it only if the writer runs out of memory); done
 * must not call into the archive and should only queue and signal: it
 * holds up the writer.  On failure seq was never stored and is reused. */
IMP_API int imp_archive_submit_async(imp_archive_t *ar, const imp_view_t *view,
				     const imp_verdict_t *v,
				     imp_archive_done_fn done, void *ud,
				     uint64_t *seq_out);

/* Waits until every record submitted so far is committed in PostgreSQL
 * (not merely spooled), or timeout_ms passes (negative: no limit).
 * IMP_OK, or IMP_ERR_LIMIT on timeout. */
IMP_API int imp_archive_flush(imp_archive_t *ar, int timeout_ms);

typedef struct imp_archive_stats_s {
	uint64_t submitted;   /* records accepted by submit */
	uint64_t queued;      /* in memory now */
	uint64_t written;     /* committed in PostgreSQL (incl. replayed) */
	uint64_t spooled;     /* written to the spool while PG was away */
	uint64_t replayed;    /* spooled records later committed */
	uint64_t refused;     /* submits that failed (fail-closed) */
	uint64_t lost;        /* records dropped (fail-open only) */
	uint64_t spool_bytes; /* spool size on disk now */
	int64_t oldest_unwritten_us; /* age of the oldest record not yet in
	                                PostgreSQL; 0 when none */
	int connected;               /* 1 when the writer holds a connection */
	uint64_t last_seq;           /* last sequence assigned */
	uint64_t quarantined; /* records PostgreSQL rejected for a data reason
	                         (SQLSTATE class 22/23), moved to the spool's
	                         NODE.quarantine file (docs/archive.md) */
} imp_archive_stats_t;

IMP_API void imp_archive_stats(imp_archive_t *ar, imp_archive_stats_t *st);

/* Stops the writer: waits up to timeout_ms for queued records to reach
 * PostgreSQL; what is left stays in the spool for the next open (never
 * lost).  Frees ar. */
IMP_API void imp_archive_close(imp_archive_t *ar, int timeout_ms);

/* ---- utilities for tools ----------------------------------------------- */

/* Splits a buffer holding zero or more top-level XML elements (stanzas)
 * into the byte ranges of each element, calling cb for each in order.
 * On malformed XML, calls cb once more with xml == NULL and err set, then
 * stops.  Returns IMP_OK or IMP_ERR_PARSE. */
typedef int (*imp_split_cb)(void *ud, const char *xml, size_t len,
			    unsigned line, const char *err);
IMP_API int imp_xml_split(imp_ctx_t *ctx, const char *buf, size_t len,
			  imp_split_cb cb, void *ud);

/* Parses an ISO-8601 time ("2026-11-25T12:30:00Z", "...+01:00",
 * "2026-11-25 12:30") into microseconds since the epoch.  A time without
 * offset is read in the zone tz (IANA name; NULL: UTC). */
IMP_API int imp_time_parse(imp_ctx_t *ctx, const char *s, const char *tz,
			   int64_t *out_us);

#ifdef __cplusplus
}
#endif
#endif /* IMPOLICY_H */
