/*
 * mpat.h -- one interface over the multi-pattern scan engines.
 *
 * A pattern set is compiled once (at policy load) into an imp_mpat_t that
 * reports, for one pass over a text, every (pattern id, end offset) at which
 * a pattern matches.  Two engines serve behind it:
 *  - Vectorscan (Hyperscan API, libhs): block mode, all patterns in one
 *    database.  Fast; needs SSSE3+.
 *  - PCRE2 with JIT: all patterns in one alternation per group, matched
 *    repeatedly; the portable fallback, and the baseline for benchmarks.
 * Patterns are either literals (escaped by this unit) or regexes in the
 * common subset both engines accept (no backreferences, no lookaround).
 * Compile errors are reported at load, never at match time.
 *
 * Threading: a compiled imp_mpat_t is immutable and shared by all threads;
 * each thread scans with its own imp_mpat_scratch_t.
 */
#ifndef IMP_MPAT_H
#define IMP_MPAT_H

#include "base.h"

typedef struct imp_mpat_s imp_mpat_t;
typedef struct imp_mpat_scratch_s imp_mpat_scratch_t;

enum {
	IMP_MPAT_LITERAL = 1 << 0,  /* expr is a literal byte string */
	IMP_MPAT_CASELESS = 1 << 1, /* ASCII case-insensitive */
	IMP_MPAT_UTF8 = 1 << 2,     /* regex in UTF-8 mode */
};

typedef struct imp_mpat_pattern_s {
	const char *expr;
	size_t len;     /* bytes of expr */
	unsigned id;    /* reported back on match */
	unsigned flags; /* IMP_MPAT_* */
} imp_mpat_pattern_t;

/* Returns non-zero to stop the scan early. from is the start offset when
 * the engine knows it cheaply (literals: end - len), else (size_t)-1. */
typedef int (*imp_mpat_cb)(void *ud, unsigned id, size_t from, size_t to);

/* Compiles n patterns with engine (AUTO picks Vectorscan when the CPU has
 * what it needs).  The result and all engine objects belong to arena a
 * (cleanups registered).  On an invalid pattern returns IMP_ERR_POLICY and
 * writes "pattern N: why" into err; *bad_index (may be NULL) gets the index
 * of the offending pattern.  n == 0 gives a valid set that never matches. */
int imp_mpat_compile(imp_arena_t *a, const imp_mpat_pattern_t *pats, size_t n,
		     imp_engine_t engine, imp_mpat_t **out, size_t *bad_index,
		     char *err, size_t errlen);

/* The engine a compiled set uses. */
imp_engine_t imp_mpat_engine(const imp_mpat_t *m);

/* Scratch for one thread.  prepare() makes it fit db (growing as needed);
 * call it for every db the thread will scan. */
imp_mpat_scratch_t *imp_mpat_scratch_new(const imp_ctx_t *ctx);
int imp_mpat_scratch_prepare(imp_mpat_scratch_t *s, const imp_mpat_t *db);
void imp_mpat_scratch_free(imp_mpat_scratch_t *s);

/* Scans text once, calling cb for each match (every end offset of every
 * pattern, in increasing end order for Vectorscan; per pattern order for
 * PCRE2).  Returns IMP_OK, or IMP_ERR_LIMIT when an engine limit was hit
 * (the caller maps that to its configured outcome), IMP_ERR_INTERNAL on
 * engine failure. */
int imp_mpat_scan(const imp_mpat_t *m, imp_mpat_scratch_t *s, const char *text,
		  size_t len, imp_mpat_cb cb, void *ud);

/* True when this CPU can run Vectorscan databases. */
bool imp_mpat_vectorscan_available(void);

#endif /* IMP_MPAT_H */
