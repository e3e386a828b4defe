/*
 * lexicon.c -- word and phrase lists compiled into one multi-pattern set
 * (implements lexicon.h).
 *
 * Purpose: at policy load, normalise every entry of every list with
 * IMP_NORM_WORDS (the very function message text goes through, so "Sh1t",
 * "ｓｈｉｔ" and "shit" are one entry), merge duplicates, and compile the
 * distinct normalised entries as literals into a single imp_mpat_t.  At
 * evaluation, one scan of a field's WORDS view yields the hits of all
 * lists.
 *
 * Matching semantics, decided per (entry, list) membership:
 *  - word (default): the normalised bytes before the match start and after
 *    its end must not be word bytes (imp_norm_wordbyte).  This is what
 *    keeps "ass" out of "assessment", "class", "bass" and "passive" (the
 *    Scunthorpe problem): the WORDS view contains only word characters and
 *    single spaces, so the check is a whole-token check.
 *  - prefix: an entry whose last non-blank character is '*' ("scam*")
 *    checks only the start, so it hits "scam", "scammer", "scams"; the
 *    hit extends to the end of the word ("scammer", not "scam"), so the
 *    evidence and the redaction span cover the whole word.  A '*'
 *    anywhere else is an ordinary separator (normalised away).
 *  - substring: every entry of a list with `match: substring` skips both
 *    checks.
 * Phrases ("donate now") match across any run of separators because the
 * WORDS view collapses each run to one space.
 *
 * Invariants:
 *  - Pattern ids are indexes into pat_len/mem_start; each pattern owns the
 *    sorted, duplicate-free memberships members[mem_start[id] ..
 *    mem_start[id + 1]), each (list << 2 | mode).
 *  - An entry that normalises to nothing (only punctuation, emoji, or "*")
 *    is a policy error reported with the list's file and the entry's line;
 *    the build then fails with IMP_ERR_POLICY (after reporting every such
 *    entry) and produces no lexicon.
 *  - Hits appended by one scan are sorted by (start, end, list) and
 *    duplicate-free, so both engines give identical results.
 *
 * Threading: the lexicon is immutable after imp_lexicon_build() and shared;
 * imp_lexicon_scan() keeps its state on the stack and in the caller's
 * scratch arena and mpat scratch, so any number of threads may scan.
 */
#include "lexicon.h"

#include <stdlib.h>
#include <string.h>

enum { LEX_WORD = 0, LEX_PREFIX = 1, LEX_SUBSTR = 2 };

struct imp_lexicon_s {
	imp_mpat_t *mpat;
	size_t n_pats;
	size_t n_lists;
	uint32_t *pat_len;   /* [n_pats]: normalised entry length */
	uint32_t *mem_start; /* [n_pats + 1]: into members */
	uint32_t *members;   /* list << 2 | LEX_* */
};

/* One (pattern, membership) pair collected during the build; also
 * remembers where it came from for compile errors. */
typedef struct lex_pair_s {
	uint32_t pat;
	uint32_t member;
	uint32_t list;
	uint32_t entry;
} lex_pair_t;

static uint64_t lex_hash(const char *s, size_t n)
{
	/* FNV-1a: entries are short and trusted (the admin's own lists). */
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static int lex_pair_cmp(const void *pa, const void *pb)
{
	const lex_pair_t *a = pa, *b = pb;
	if (a->pat != b->pat)
		return a->pat < b->pat ? -1 : 1;
	if (a->member != b->member)
		return a->member < b->member ? -1 : 1;
	return 0;
}

/* Splits a raw entry into its text and mode: a trailing '*' (ignoring
 * trailing blanks) marks a prefix entry in a word list. */
static size_t lex_entry_text(const char *raw, bool substring, int *mode)
{
	size_t n = strlen(raw);
	while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t' ||
			 raw[n - 1] == '\r' || raw[n - 1] == '\n'))
		n--;
	*mode = substring ? LEX_SUBSTR : LEX_WORD;
	if (n > 0 && raw[n - 1] == '*') {
		n--;
		if (!substring)
			*mode = LEX_PREFIX;
	}
	return n;
}

typedef struct lex_build_s {
	imp_arena_t *a;   /* the policy's arena */
	imp_arena_t *tmp; /* normalisation scratch, freed at the end */
	const imp_ctx_t *ctx;
	/* distinct normalised entries */
	imp_mpat_pattern_t *pats;
	size_t n_pats, cap_pats;
	/* open-addressing table of pattern index + 1 (0: empty) */
	uint32_t *table;
	size_t table_mask;
	lex_pair_t *pairs;
	size_t n_pairs;
} lex_build_t;

/* Returns the pattern id of s[0..n), adding it when new; UINT32_MAX on
 * allocation failure. */
static uint32_t lex_intern(lex_build_t *b, const char *s, size_t n)
{
	size_t i = (size_t)lex_hash(s, n) & b->table_mask;
	for (;; i = (i + 1) & b->table_mask) {
		uint32_t v = b->table[i];
		if (v == 0)
			break;
		const imp_mpat_pattern_t *p = &b->pats[v - 1];
		if (p->len == n && memcmp(p->expr, s, n) == 0)
			return v - 1;
	}
	/* The table has twice as many slots as there are entries, and
	 * pats as many as entries, so neither can overflow here. */
	char *copy = imp_arena_strndup(b->a, s, n);
	if (!copy)
		return UINT32_MAX;
	uint32_t id = (uint32_t)b->n_pats++;
	b->pats[id].expr = copy;
	b->pats[id].len = n;
	b->pats[id].id = id;
	b->pats[id].flags = IMP_MPAT_LITERAL;
	b->table[i] = id + 1;
	return id;
}

static void lex_build_free(lex_build_t *b)
{
	if (b->tmp)
		imp_arena_free(b->tmp);
	imp_mfree(b->ctx, b->pats);
	imp_mfree(b->ctx, b->table);
	imp_mfree(b->ctx, b->pairs);
}

static int lex_collect(lex_build_t *b, const imp_lexlist_t *lists, size_t n,
		       imp_errors_t *errs, size_t *n_bad)
{
	for (size_t li = 0; li < n; li++) {
		const imp_lexlist_t *l = &lists[li];
		for (size_t ei = 0; ei < l->n_entries; ei++) {
			const char *raw = l->entries[ei] ? l->entries[ei] : "";
			unsigned line = l->entry_lines ? l->entry_lines[ei] : 0;
			int mode;
			size_t tn = lex_entry_text(raw, l->substring, &mode);
			imp_ntext_t nt;
			int rc = imp_norm(b->tmp, raw, tn, IMP_NORM_WORDS, &nt);
			if (rc == IMP_ERR_NOMEM)
				return rc;
			if (rc != IMP_OK || nt.len == 0) {
				(*n_bad)++;
				if (errs)
					imp_errors_addx(
						errs, IMP_ERR_POLICY, l->file,
						line, 0, NULL, NULL,
						"an entry needs at least one "
						"letter or digit",
						"list \"%s\": entry \"%s\" is "
						"empty after normalisation",
						l->name ? l->name : "?", raw);
				continue;
			}
			uint32_t id = lex_intern(b, nt.s, nt.len);
			if (id == UINT32_MAX)
				return IMP_ERR_NOMEM;
			lex_pair_t *pr = &b->pairs[b->n_pairs++];
			pr->pat = id;
			pr->member = (uint32_t)(li << 2) | (uint32_t)mode;
			pr->list = (uint32_t)li;
			pr->entry = (uint32_t)ei;
			imp_arena_reset(b->tmp);
		}
	}
	return IMP_OK;
}

int imp_lexicon_build(imp_arena_t *a, const imp_lexlist_t *lists, size_t n,
		      imp_engine_t engine, imp_errors_t *errs,
		      imp_lexicon_t **out)
{
	if (!a || !out || (n && !lists))
		return IMP_ERR_INVALID;
	*out = NULL;

	lex_build_t b = {.a = a, .ctx = imp_arena_ctx(a)};
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += lists[i].n_entries;
	if (total >= UINT32_MAX / 4 || n >= UINT32_MAX / 4)
		return IMP_ERR_LIMIT;
	size_t slots = 16;
	while (slots < total * 2)
		slots *= 2;
	b.tmp = imp_arena_new(b.ctx, 0);
	b.pats = imp_calloc(b.ctx, total + 1, sizeof(*b.pats));
	b.table = imp_calloc(b.ctx, slots, sizeof(*b.table));
	b.pairs = imp_calloc(b.ctx, total + 1, sizeof(*b.pairs));
	b.table_mask = slots - 1;
	int rc = IMP_ERR_NOMEM;
	if (!b.tmp || !b.pats || !b.table || !b.pairs)
		goto done;

	size_t n_bad = 0;
	rc = lex_collect(&b, lists, n, errs, &n_bad);
	if (rc != IMP_OK)
		goto done;
	if (n_bad) {
		rc = IMP_ERR_POLICY;
		goto done;
	}

	/* Memberships: sort by (pattern, membership), drop duplicates, and
	 * lay them out per pattern. */
	qsort(b.pairs, b.n_pairs, sizeof(*b.pairs), lex_pair_cmp);
	rc = IMP_ERR_NOMEM;
	imp_lexicon_t *lx = imp_arena_calloc(a, 1, sizeof(*lx));
	if (!lx)
		goto done;
	lx->n_pats = b.n_pats;
	lx->n_lists = n;
	lx->pat_len = imp_arena_calloc(a, b.n_pats + 1, sizeof(uint32_t));
	lx->mem_start = imp_arena_calloc(a, b.n_pats + 1, sizeof(uint32_t));
	lx->members = imp_arena_calloc(a, b.n_pairs + 1, sizeof(uint32_t));
	if (!lx->pat_len || !lx->mem_start || !lx->members)
		goto done;
	size_t nm = 0;
	for (size_t i = 0; i < b.n_pairs; i++) {
		if (i > 0 && lex_pair_cmp(&b.pairs[i], &b.pairs[i - 1]) == 0)
			continue;
		lx->members[nm++] = b.pairs[i].member;
		lx->mem_start[b.pairs[i].pat + 1] = (uint32_t)nm;
	}
	/* Every pattern has at least one membership, so the running ends
	 * written above are complete; make them monotonic anyway. */
	for (size_t i = 1; i <= b.n_pats; i++)
		if (lx->mem_start[i] < lx->mem_start[i - 1])
			lx->mem_start[i] = lx->mem_start[i - 1];
	for (size_t i = 0; i < b.n_pats; i++)
		lx->pat_len[i] = (uint32_t)b.pats[i].len;

	char err[256] = "";
	size_t bad = 0;
	rc = imp_mpat_compile(a, b.pats, b.n_pats, engine, &lx->mpat, &bad, err,
			      sizeof(err));
	if (rc == IMP_ERR_POLICY) {
		/* Literals should always compile; if an engine still refuses
		 * one, point at the first entry that produced it. */
		const lex_pair_t *src = NULL;
		for (size_t i = 0; i < b.n_pairs && !src; i++)
			if (b.pairs[i].pat == bad)
				src = &b.pairs[i];
		if (errs && src) {
			const imp_lexlist_t *l = &lists[src->list];
			imp_errors_add(
				errs, IMP_ERR_POLICY, l->file,
				l->entry_lines ? l->entry_lines[src->entry] : 0,
				0, "list \"%s\": entry \"%s\": %s",
				l->name ? l->name : "?", l->entries[src->entry],
				err);
		} else if (errs) {
			imp_errors_add(errs, IMP_ERR_POLICY, NULL, 0, 0,
				       "word lists: %s", err);
		}
		goto done;
	}
	if (rc != IMP_OK) {
		/* The engine is unavailable or failed: say so, since the
		 * policy cannot load without its word lists. */
		if (errs && rc != IMP_ERR_NOMEM)
			imp_errors_add(errs, rc, NULL, 0, 0, "word lists: %s",
				       err[0] ? err : imp_strerror(rc));
		goto done;
	}
	*out = lx;
done:
	lex_build_free(&b);
	return rc;
}

size_t imp_lexicon_words(const imp_lexicon_t *lx)
{
	return lx ? lx->n_pats : 0;
}

const imp_mpat_t *imp_lexicon_mpat(const imp_lexicon_t *lx)
{
	return lx ? lx->mpat : NULL;
}

/* ---- scanning --------------------------------------------------------------- */

typedef struct lex_scan_s {
	const imp_lexicon_t *lx;
	const unsigned char *s;
	size_t len;
	imp_buf_t hits; /* imp_lexhit_t records, in the scratch arena */
} lex_scan_t;

static int lex_scan_cb(void *ud, unsigned id, size_t from, size_t to)
{
	lex_scan_t *st = ud;
	const imp_lexicon_t *lx = st->lx;
	(void)from; /* literals: the start is always to - length */
	if (id >= lx->n_pats || to > st->len || to < lx->pat_len[id])
		return 0;
	size_t start = to - lx->pat_len[id];
	bool left = start == 0 || !imp_norm_wordbyte(st->s[start - 1]);
	bool right = to == st->len || !imp_norm_wordbyte(st->s[to]);
	/* A prefix entry's hit covers the whole word it starts ("fuck*" in
	 * "fucking" is "fucking"), so evidence and redaction take the word,
	 * not just the listed prefix. */
	size_t word_end = to;
	while (word_end < st->len && imp_norm_wordbyte(st->s[word_end]))
		word_end++;
	uint32_t last = UINT32_MAX;
	for (uint32_t m = lx->mem_start[id]; m < lx->mem_start[id + 1]; m++) {
		uint32_t list = lx->members[m] >> 2;
		unsigned mode = lx->members[m] & 3;
		if (list == last)
			continue; /* one hit per list per span */
		if (mode != LEX_SUBSTR &&
		    (!left || (mode == LEX_WORD && !right)))
			continue;
		imp_lexhit_t h = {
			.list = list,
			.start = (uint32_t)start,
			.end = (uint32_t)(mode == LEX_PREFIX ? word_end : to)};
		imp_buf_append(&st->hits, &h, sizeof(h));
		last = list;
	}
	return 0;
}

static int lex_hit_cmp(const void *pa, const void *pb)
{
	const imp_lexhit_t *a = pa, *b = pb;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	if (a->list != b->list)
		return a->list < b->list ? -1 : 1;
	return 0;
}

int imp_lexicon_scan(const imp_lexicon_t *lx, imp_mpat_scratch_t *s,
		     imp_arena_t *scratch, const imp_ntext_t *words,
		     imp_lexhit_t **hits, size_t *n_hits)
{
	if (!lx || !s || !scratch || !words || !hits || !n_hits)
		return IMP_ERR_INVALID;
	if (lx->n_pats == 0 || words->len == 0)
		return IMP_OK;

	lex_scan_t st = {.lx = lx,
			 .s = (const unsigned char *)words->s,
			 .len = words->len};
	imp_buf_init(&st.hits, imp_arena_ctx(scratch), scratch);
	int rc = imp_mpat_scan(lx->mpat, s, words->s, words->len, lex_scan_cb,
			       &st);
	if (st.hits.oom)
		return IMP_ERR_NOMEM;
	size_t k = st.hits.len / sizeof(imp_lexhit_t);
	if (k == 0)
		return rc;

	/* Engines report in different orders (and PCRE2 may see a span
	 * twice); sort and deduplicate so every engine gives one answer. */
	imp_lexhit_t *nh = (imp_lexhit_t *)(void *)st.hits.data;
	qsort(nh, k, sizeof(*nh), lex_hit_cmp);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (u == 0 || lex_hit_cmp(&nh[u - 1], &nh[i]) != 0)
			nh[u++] = nh[i];

	imp_lexhit_t *all =
		imp_arena_alloc(scratch, (*n_hits + u) * sizeof(*all));
	if (!all)
		return IMP_ERR_NOMEM;
	if (*n_hits)
		memcpy(all, *hits, *n_hits * sizeof(*all));
	memcpy(all + *n_hits, nh, u * sizeof(*all));
	*hits = all;
	*n_hits += u;
	return rc;
}
