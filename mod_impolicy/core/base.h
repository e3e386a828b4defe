/*
 * base.h -- internal foundations shared by every core unit: the context,
 * arenas, growable buffers, error lists and logging.
 *
 * Lifetimes: memory either belongs to a compiled policy's arena (freed when
 * its last reference goes) or to an evaluator's per-stanza scratch arena
 * (reset after each stanza).  Arenas run cleanup callbacks for objects that
 * dependencies allocate (pcre2 codes, hs databases) when freed or reset.
 *
 * Threading: an arena or buffer is used by one thread at a time.  The
 * context is read-only after creation and may be shared.
 */
#ifndef IMP_BASE_H
#define IMP_BASE_H

#include "impolicy.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define IMP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define IMP_UNUSED __attribute__((unused))
#else
#define IMP_PRINTF(f, a)
#define IMP_UNUSED
#endif

#define IMP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct imp_ctx_s {
	imp_allocator_t alloc;
	imp_log_fn log;
	void *log_ud;
	imp_log_level_t log_level;
	imp_clock_fn clock;
	void *clock_ud;
	char *zoneinfo_dir;
	/* Escalation and fan-out state (state.h), created on first use under
	 * lazy_lock by the evaluator and freed by imp_ctx_free(). */
	struct imp_state_s *state;
	void (*state_free)(struct imp_state_s *); /* set with state */
	pthread_mutex_t lazy_lock;
};

/* Allocation through the context's allocator. */
void *imp_malloc(const imp_ctx_t *ctx, size_t n);
void *imp_calloc(const imp_ctx_t *ctx, size_t n, size_t size);
void *imp_realloc(const imp_ctx_t *ctx, void *p, size_t n);
void imp_mfree(const imp_ctx_t *ctx, void *p);
char *imp_strdup(const imp_ctx_t *ctx, const char *s);

/* Logging: formats only when level <= ctx->log_level. */
void imp_log(const imp_ctx_t *ctx, imp_log_level_t level, const char *fmt, ...)
	IMP_PRINTF(3, 4);

/* ---- arenas ------------------------------------------------------------ */

typedef struct imp_arena_s imp_arena_t;

/* chunk: preferred chunk size (0: 16 KiB).  NULL on allocation failure. */
imp_arena_t *imp_arena_new(const imp_ctx_t *ctx, size_t chunk);
/* Runs the cleanups (last registered first) and frees everything. */
void imp_arena_free(imp_arena_t *a);
/* Runs the cleanups and forgets all allocations; keeps the first chunk. */
void imp_arena_reset(imp_arena_t *a);
/* 16-byte aligned memory, NULL on failure. */
void *imp_arena_alloc(imp_arena_t *a, size_t n);
void *imp_arena_calloc(imp_arena_t *a, size_t n, size_t size);

/* memset(p, 0, n) through the C library.  For the large per-stanza
 * structures: given a constant size the compiler expands memset into
 * `rep stos`, whose start-up cost is tens of cycles on current CPUs,
 * while the library's vector loop is cheap. */
void imp_zero(void *p, size_t n);
char *imp_arena_strndup(imp_arena_t *a, const char *s, size_t n);
char *imp_arena_strdup(imp_arena_t *a, const char *s);
char *imp_arena_printf(imp_arena_t *a, const char *fmt, ...) IMP_PRINTF(2, 3);
/* Calls fn(arg) when the arena is reset or freed.  IMP_OK or NOMEM (in
 * which case fn(arg) has already been called). */
int imp_arena_cleanup(imp_arena_t *a, void (*fn)(void *), void *arg);
/* Bytes obtained from the allocator (chunks), for memory reports. */
size_t imp_arena_size(const imp_arena_t *a);
const imp_ctx_t *imp_arena_ctx(const imp_arena_t *a);

/* ---- growable byte buffers ----------------------------------------------- */

/* A buffer is either heap-backed (arena == NULL: via the ctx allocator, freed
 * with imp_buf_free) or arena-backed (never freed separately).  Once a
 * write fails, the buffer stays failed (oom set) and later writes are no-ops,
 * so callers check once at the end. */
typedef struct imp_buf_s {
	char *data; /* always NUL-terminated when len > 0 or cap > 0 */
	size_t len;
	size_t cap;
	const imp_ctx_t *ctx;
	imp_arena_t *arena;
	bool oom;
} imp_buf_t;

void imp_buf_init(imp_buf_t *b, const imp_ctx_t *ctx, imp_arena_t *arena);
void imp_buf_free(imp_buf_t *b);
void imp_buf_reset(imp_buf_t *b); /* len = 0, keeps memory */
bool imp_buf_reserve(imp_buf_t *b, size_t extra);
void imp_buf_append(imp_buf_t *b, const void *p, size_t n);
void imp_buf_puts(imp_buf_t *b, const char *s);
void imp_buf_putc(imp_buf_t *b, char c);
void imp_buf_printf(imp_buf_t *b, const char *fmt, ...) IMP_PRINTF(2, 3);
void imp_buf_vprintf(imp_buf_t *b, const char *fmt, va_list ap);
/* Appends s as the contents of a JSON string, with the quotes.  Invalid
 * UTF-8 bytes become U+FFFD. */
void imp_buf_json_str(imp_buf_t *b, const char *s, size_t n);
/* Appends s escaped for XML character data or attribute values. */
void imp_buf_xml_escape(imp_buf_t *b, const char *s, size_t n, bool attr);

/* ---- error lists ------------------------------------------------------------ */

struct imp_errors_s {
	const imp_ctx_t *ctx;
	imp_arena_t *arena; /* owns the strings */
	imp_error_t *items;
	size_t count, cap, max, dropped;
};

imp_errors_t *imp_errors_new(const imp_ctx_t *ctx, size_t max);
/* Records an error; file is copied; fmt is the primary message.  Extra
 * errors beyond max are counted as dropped.  Never fails loudly: on OOM
 * the error is counted as dropped. */
void imp_errors_add(imp_errors_t *e, int code, const char *file, unsigned line,
		    unsigned col, const char *fmt, ...) IMP_PRINTF(6, 7);
/* Like imp_errors_add, with a rule id, a detail and a hint (each may be
 * NULL). */
void imp_errors_addx(imp_errors_t *e, int code, const char *file, unsigned line,
		     unsigned col, const char *rule_id, const char *detail,
		     const char *hint, const char *fmt, ...) IMP_PRINTF(9, 10);

/* ---- small helpers ------------------------------------------------------------ */

/* ASCII case-insensitive comparisons (JIDs' domains, keywords). */
int imp_strcasecmp(const char *a, const char *b);
bool imp_strcaseeq_n(const char *a, size_t an, const char *b, size_t bn);
/* True when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
bool imp_utf8_valid(const char *s, size_t n);
/* Reads a whole file into a heap buffer (NUL-terminated) via ctx; returns
 * IMP_OK, IMP_ERR_IO (errno-based text into err), or IMP_ERR_LIMIT when it
 * exceeds max bytes. */
int imp_read_file(const imp_ctx_t *ctx, const char *path, size_t max,
		  char **out, size_t *len, char *err, size_t errlen);
/* A random salt for hash tables keyed by what senders choose, drawn once
 * per process (thread-safe): expat's attribute tables (set on every
 * parser, which keeps hash-flooding protection while sparing each stanza
 * expat's own entropy gathering, a getrandom system call and a getenv)
 * and the escalation and fan-out state. */
unsigned long imp_hash_salt(void);
/* Lowercase hex SHA-256 helpers (OpenSSL EVP). */
typedef struct imp_sha256_s imp_sha256_t;
imp_sha256_t *imp_sha256_new(void);
void imp_sha256_update(imp_sha256_t *h, const void *p, size_t n);
/* Writes 64 hex chars and a NUL into hex[65] and frees h. */
void imp_sha256_final(imp_sha256_t *h, char hex[65]);

#endif /* IMP_BASE_H */
