/*
 * lexicon.h -- word and phrase lists compiled into one multi-pattern set.
 *
 * Every entry of every list is normalised with IMP_NORM_WORDS and compiled
 * as a literal into a single imp_mpat_t, so one pass over a field's WORDS
 * view finds the hits of all lists.  Matching is whole-word: a hit counts
 * only when the bytes before and after it in the normalised text are not
 * word bytes (imp_norm_wordbyte), so "class" in "classic" or "ass" in
 * "assessment" does not hit.  An entry ending in '*' is a prefix entry
 * ("scam*" hits "scammer"); an entry in a list with match: substring skips
 * the boundary checks.  Phrases match across any run of separators because
 * the WORDS view collapses them to one space.
 *
 * Threading: immutable after build; scans use per-thread mpat scratch.
 */
#ifndef IMP_LEXICON_H
#define IMP_LEXICON_H

#include "base.h"
#include "mpat.h"
#include "norm.h"

/* One list as the policy loader hands it over. */
typedef struct imp_lexlist_s {
	const char *name;
	const char *const *entries; /* UTF-8, as written */
	size_t n_entries;
	const unsigned *entry_lines; /* for errors; may be NULL */
	const char *file;            /* for errors; may be NULL */
	bool substring;              /* match: substring */
} imp_lexlist_t;

typedef struct imp_lexicon_s imp_lexicon_t;

/* Builds the lexicon for lists[0..n) in arena a.  Entries that normalise to
 * nothing are reported to errs (file:line when known) and skipped; that is
 * an error of the policy.  Duplicate entries are merged.  Returns IMP_OK,
 * IMP_ERR_POLICY (errors added) or IMP_ERR_NOMEM. */
int imp_lexicon_build(imp_arena_t *a, const imp_lexlist_t *lists, size_t n,
		      imp_engine_t engine, imp_errors_t *errs,
		      imp_lexicon_t **out);

size_t imp_lexicon_words(const imp_lexicon_t *lx); /* distinct entries */
const imp_mpat_t *imp_lexicon_mpat(const imp_lexicon_t *lx);

/* A whole-word hit of list `list` on the WORDS view, normalised offsets. */
typedef struct imp_lexhit_s {
	uint32_t list;
	uint32_t start, end;
} imp_lexhit_t;

/* Scans a WORDS view; appends hits (one per list per span; an entry shared
 * by several lists yields one hit for each) to *hits (grown in arena
 * scratch).  Returns IMP_OK, IMP_ERR_NOMEM or what imp_mpat_scan returned. */
int imp_lexicon_scan(const imp_lexicon_t *lx, imp_mpat_scratch_t *s,
		     imp_arena_t *scratch, const imp_ntext_t *words,
		     imp_lexhit_t **hits, size_t *n_hits);

#endif /* IMP_LEXICON_H */
