/*
 * mpat.c -- multi-pattern scanning over Vectorscan or PCRE2 (see mpat.h).
 *
 * Purpose: compile a set of literals and regexes once, at policy load, and
 * report every (pattern id, end offset) at which a pattern matches a text.
 *
 * Engines:
 *  - Vectorscan: one block-mode database for the whole set
 *    (hs_compile_lit_multi when every pattern is a literal, else
 *    hs_compile_multi with literals escaped).  No HS_FLAG_SINGLEMATCH: word
 *    lists need every end offset, overlaps included ("bad word" and "word").
 *    Matches arrive in increasing end order.
 *  - PCRE2: the patterns are grouped into alternations (split by UTF mode
 *    and by source size, because PCRE2's compiled size is bounded); each
 *    alternative ends in a string callout "(?C{index})" that records the
 *    match and returns 1, which makes PCRE2 backtrack into every other
 *    alternative and every other path, and then advance to the next start.
 *    One pcre2_match() call per alternation thus enumerates every
 *    (pattern, end) pair -- the same set Vectorscan reports.  Pairs are
 *    collected, sorted by (end, index) and de-duplicated before the caller
 *    sees them, so this backend also reports in increasing end order.
 *    Guarantee: for literals and for regexes in the common subset, the
 *    reported set equals Vectorscan's.  Cost: regexes whose matches overlap
 *    heavily (\d+ over a long digit run) cost O(n^2) paths; the match limit
 *    (100000, which PCRE2 counts per match attempt) bounds the work, and
 *    hitting it gives IMP_ERR_LIMIT after the matches found so far were
 *    reported.  Backtracking verbs ((*COMMIT), (*SKIP) ...) are outside the
 *    common subset and would hide matches of other alternatives.
 *
 * Invariants: a compiled set is immutable; every engine object it holds is
 * released by cleanups registered in the owning arena.  Empty patterns and
 * patterns that can match the empty string are rejected at compile time
 * (Vectorscan refuses them too; an empty match is never useful here).
 *
 * Threading: sets are shared read-only; each thread scans with its own
 * imp_mpat_scratch_t (Vectorscan scratch, PCRE2 match context, match data
 * and JIT stack).  No global mutable state.
 *
 * Reports: compile errors as "pattern N: why" plus the bad index; scan
 * errors as IMP_ERR_LIMIT (PCRE2 match/depth/JIT-stack limits) or
 * IMP_ERR_INTERNAL.  Never logs message text.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "mpat.h"

#include <hs/hs.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPAT_MATCH_LIMIT 100000u
#define MPAT_DEPTH_LIMIT 10000u
/* Source bytes per PCRE2 alternation: well below the compiled-size limit
 * of a LINK_SIZE=2 build (64 KiB), so that large word lists still fit. */
#define MPAT_GROUP_SOURCE 8192u

typedef struct mpat_group_s {
	pcre2_code *code;
} mpat_group_t;

struct imp_mpat_s {
	imp_engine_t engine;
	size_t n;
	unsigned *ids;        /* by pattern index */
	size_t *lit_len;      /* literal length, 0 for regexes */
	hs_database_t *db;    /* Vectorscan */
	mpat_group_t *groups; /* PCRE2 */
	size_t n_groups;
};

typedef struct mpat_pair_s {
	size_t end;
	size_t idx;
} mpat_pair_t;

struct imp_mpat_scratch_s {
	const imp_ctx_t *ctx;
	hs_scratch_t *hs;
	pcre2_general_context *gctx;
	pcre2_match_context *mctx;
	pcre2_match_data *md;
	pcre2_jit_stack *jit;
	const imp_mpat_t *cur; /* the set being scanned, for the callout */
	mpat_pair_t *pairs;
	size_t n_pairs, cap_pairs;
	bool oom;
};

/* ---- helpers ----------------------------------------------------------- */

static void *mpat_pcre2_malloc(PCRE2_SIZE n, void *ud)
{
	return imp_malloc((const imp_ctx_t *)ud, n);
}

static void mpat_pcre2_free(void *p, void *ud)
{
	imp_mfree((const imp_ctx_t *)ud, p);
}

static pcre2_general_context *mpat_gctx_new(const imp_ctx_t *ctx)
{
	return pcre2_general_context_create(mpat_pcre2_malloc, mpat_pcre2_free,
					    (void *)ctx);
}

static void mpat_gctx_cleanup(void *p)
{
	pcre2_general_context_free(p);
}

static void mpat_code_cleanup(void *p)
{
	pcre2_code_free(p);
}

static void mpat_hs_cleanup(void *p)
{
	hs_free_database(p);
}

static void mpat_seterr(char *err, size_t errlen, size_t i, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "pattern %zu: %s", i, why);
}

/* Appends the literal p[0..n) to b so that both engines read it as bytes:
 * alphanumerics as is, everything else as \xHH. */
static void mpat_escape(imp_buf_t *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9')) {
			imp_buf_putc(b, (char)c);
		} else {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			imp_buf_append(b, e, 4);
		}
	}
}

bool imp_mpat_vectorscan_available(void)
{
	return hs_valid_platform() == HS_SUCCESS;
}

imp_engine_t imp_mpat_engine(const imp_mpat_t *m)
{
	return m->engine;
}

/* ---- compile: Vectorscan ---------------------------------------------- */

static int mpat_compile_hs(imp_arena_t *a, imp_mpat_t *m,
			   const imp_mpat_pattern_t *pats, size_t n,
			   size_t *bad_index, char *err, size_t errlen)
{
	const imp_ctx_t *ctx = imp_arena_ctx(a);
	bool all_lit = true;
	for (size_t i = 0; i < n; i++)
		if (!(pats[i].flags & IMP_MPAT_LITERAL))
			all_lit = false;
	if (n > UINT_MAX)
		return IMP_ERR_LIMIT;

	const char **exprs = imp_calloc(ctx, n, sizeof(*exprs));
	unsigned *flags = imp_calloc(ctx, n, sizeof(*flags));
	unsigned *ids = imp_calloc(ctx, n, sizeof(*ids));
	size_t *lens = imp_calloc(ctx, n, sizeof(*lens));
	int rc = IMP_OK;
	if (!exprs || !flags || !ids || !lens) {
		rc = IMP_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const imp_mpat_pattern_t *p = &pats[i];
		ids[i] = (unsigned)i;
		flags[i] =
			(p->flags & IMP_MPAT_CASELESS) ? HS_FLAG_CASELESS : 0;
		if (all_lit) {
			exprs[i] = p->expr;
			lens[i] = p->len;
			continue;
		}
		/* Regex form; the arena keeps the strings alive. */
		imp_buf_t one;
		imp_buf_init(&one, ctx, a);
		if (p->flags & IMP_MPAT_LITERAL) {
			mpat_escape(&one, p->expr, p->len);
		} else {
			imp_buf_append(&one, p->expr, p->len);
			if (p->flags & IMP_MPAT_UTF8)
				flags[i] |= HS_FLAG_UTF8;
		}
		imp_buf_putc(&one, '\0');
		if (one.oom) {
			rc = IMP_ERR_NOMEM;
			goto out;
		}
		exprs[i] = one.data;
	}

	hs_compile_error_t *ce = NULL;
	hs_error_t he;
	if (all_lit)
		he = hs_compile_lit_multi(exprs, flags, ids, lens, (unsigned)n,
					  HS_MODE_BLOCK, NULL, &m->db, &ce);
	else
		he = hs_compile_multi(exprs, flags, ids, (unsigned)n,
				      HS_MODE_BLOCK, NULL, &m->db, &ce);
	if (he != HS_SUCCESS) {
		int idx = ce ? ce->expression : -1;
		if (bad_index)
			*bad_index = idx >= 0 ? (size_t)idx : 0;
		mpat_seterr(err, errlen, idx >= 0 ? (size_t)idx : 0,
			    ce && ce->message ? ce->message
					      : "vectorscan compile failed");
		if (ce)
			hs_free_compile_error(ce);
		rc = he == HS_NOMEM ? IMP_ERR_NOMEM : IMP_ERR_POLICY;
		goto out;
	}
	rc = imp_arena_cleanup(a, mpat_hs_cleanup, m->db);
out:
	imp_mfree(ctx, exprs);
	imp_mfree(ctx, flags);
	imp_mfree(ctx, ids);
	imp_mfree(ctx, lens);
	return rc;
}

/* ---- compile: PCRE2 ----------------------------------------------------- */

static int mpat_compile_one_pcre2(const imp_ctx_t *ctx, const char *src,
				  size_t len, uint32_t opts,
				  pcre2_compile_context *cctx, pcre2_code **out,
				  char *why, size_t whylen)
{
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *c =
		pcre2_compile((PCRE2_SPTR)src, len, opts, &ecode, &eoff, cctx);
	(void)ctx;
	if (!c) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		snprintf(why, whylen, "%s at offset %zu", (char *)msg,
			 (size_t)eoff);
		return ecode == PCRE2_ERROR_HEAPLIMIT ? IMP_ERR_NOMEM
						      : IMP_ERR_POLICY;
	}
	*out = c;
	return IMP_OK;
}

static uint32_t mpat_pcre2_opts(bool utf)
{
	/* All paths must be explored for the callout to see every end:
	 * auto-possessification and the .* anchoring shortcut would skip
	 * some. */
	uint32_t o = PCRE2_NO_AUTO_POSSESS | PCRE2_NO_DOTSTAR_ANCHOR;
	if (utf)
		o |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
	return o;
}

static int mpat_count_callout(pcre2_callout_enumerate_block *b, void *ud)
{
	(void)b;
	(*(unsigned *)ud)++;
	return 0;
}

/* Validates regex i on its own, so errors name the right pattern. */
static int mpat_check_regex(const imp_ctx_t *ctx, const imp_mpat_pattern_t *p,
			    pcre2_compile_context *cctx, char *why,
			    size_t whylen)
{
	pcre2_code *c = NULL;
	uint32_t opts = mpat_pcre2_opts(p->flags & IMP_MPAT_UTF8);
	if (p->flags & IMP_MPAT_CASELESS)
		opts |= PCRE2_CASELESS;
	int rc = mpat_compile_one_pcre2(ctx, p->expr, p->len, opts, cctx, &c,
					why, whylen);
	if (rc != IMP_OK)
		return rc;
	uint32_t minlen = 0;
	pcre2_pattern_info(c, PCRE2_INFO_MINLENGTH, &minlen);
	/* A callout of the pattern's own would forge matches: our
	 * alternations report through callouts. */
	unsigned callouts = 0;
	pcre2_callout_enumerate(c, mpat_count_callout, &callouts);
	pcre2_code_free(c);
	if (minlen == 0) {
		snprintf(why, whylen, "pattern can match the empty string");
		return IMP_ERR_POLICY;
	}
	if (callouts) {
		snprintf(why, whylen, "callouts are not allowed");
		return IMP_ERR_POLICY;
	}
	return IMP_OK;
}

static int mpat_add_group(imp_arena_t *a, imp_mpat_t *m, imp_buf_t *src,
			  bool utf, pcre2_compile_context *cctx, size_t first,
			  size_t *bad_index, char *err, size_t errlen)
{
	const imp_ctx_t *ctx = imp_arena_ctx(a);
	char why[300];
	pcre2_code *c = NULL;
	if (src->oom)
		return IMP_ERR_NOMEM;
	int rc = mpat_compile_one_pcre2(ctx, src->data, src->len,
					mpat_pcre2_opts(utf), cctx, &c, why,
					sizeof(why));
	if (rc != IMP_OK) {
		/* Each member compiled alone, so this is a size problem. */
		if (bad_index)
			*bad_index = first;
		mpat_seterr(err, errlen, first, why);
		return rc;
	}
	rc = imp_arena_cleanup(a, mpat_code_cleanup, c);
	if (rc != IMP_OK)
		return rc;
	/* JIT is an optimisation: if it is unavailable the interpreter
	 * runs the same pattern with the same results. */
	(void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
	m->groups[m->n_groups++].code = c;
	return IMP_OK;
}

static int mpat_compile_pcre2(imp_arena_t *a, imp_mpat_t *m,
			      const imp_mpat_pattern_t *pats, size_t n,
			      size_t *bad_index, char *err, size_t errlen)
{
	const imp_ctx_t *ctx = imp_arena_ctx(a);
	char why[300];
	pcre2_general_context *g = mpat_gctx_new(ctx);
	if (!g || imp_arena_cleanup(a, mpat_gctx_cleanup, g) != IMP_OK)
		return IMP_ERR_NOMEM;
	pcre2_compile_context *cctx = pcre2_compile_context_create(g);
	if (!cctx)
		return IMP_ERR_NOMEM;
	int rc = IMP_OK;

	for (size_t i = 0; i < n; i++) {
		if (pats[i].flags & IMP_MPAT_LITERAL)
			continue;
		rc = mpat_check_regex(ctx, &pats[i], cctx, why, sizeof(why));
		if (rc != IMP_OK) {
			if (bad_index)
				*bad_index = i;
			mpat_seterr(err, errlen, i, why);
			goto out;
		}
	}

	/* Worst case one group per pattern. */
	m->groups = imp_arena_calloc(a, n, sizeof(*m->groups));
	if (!m->groups) {
		rc = IMP_ERR_NOMEM;
		goto out;
	}
	/* Two passes: non-UTF patterns (literals are byte strings), then
	 * UTF-mode regexes. */
	for (int pass = 0; pass < 2 && rc == IMP_OK; pass++) {
		bool utf = pass == 1;
		imp_buf_t src;
		imp_buf_init(&src, ctx, NULL);
		size_t first = 0, members = 0;
		for (size_t i = 0; i < n && rc == IMP_OK; i++) {
			const imp_mpat_pattern_t *p = &pats[i];
			bool putf = !(p->flags & IMP_MPAT_LITERAL) &&
				    (p->flags & IMP_MPAT_UTF8);
			if (putf != utf)
				continue;
			if (members && src.len > MPAT_GROUP_SOURCE) {
				rc = mpat_add_group(a, m, &src, utf, cctx,
						    first, bad_index, err,
						    errlen);
				imp_buf_reset(&src);
				members = 0;
				if (rc != IMP_OK)
					break;
			}
			if (!members)
				first = i;
			else
				imp_buf_putc(&src, '|');
			imp_buf_puts(&src, (p->flags & IMP_MPAT_CASELESS)
						   ? "(?i:"
						   : "(?-i:");
			if (p->flags & IMP_MPAT_LITERAL)
				mpat_escape(&src, p->expr, p->len);
			else
				imp_buf_append(&src, p->expr, p->len);
			imp_buf_printf(&src, ")(?C{%zu})", i);
			members++;
		}
		if (rc == IMP_OK && members)
			rc = mpat_add_group(a, m, &src, utf, cctx, first,
					    bad_index, err, errlen);
		imp_buf_free(&src);
	}
out:
	pcre2_compile_context_free(cctx);
	return rc;
}

int imp_mpat_compile(imp_arena_t *a, const imp_mpat_pattern_t *pats, size_t n,
		     imp_engine_t engine, imp_mpat_t **out, size_t *bad_index,
		     char *err, size_t errlen)
{
	if (!a || !out || (n && !pats))
		return IMP_ERR_INVALID;
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (engine == IMP_ENGINE_AUTO)
		engine = imp_mpat_vectorscan_available() ? IMP_ENGINE_VECTORSCAN
							 : IMP_ENGINE_PCRE2;
	else if (engine == IMP_ENGINE_VECTORSCAN &&
		 !imp_mpat_vectorscan_available()) {
		if (err && errlen)
			snprintf(err, errlen,
				 "vectorscan cannot run on this CPU");
		return IMP_ERR_UNSUPPORTED;
	}

	imp_mpat_t *m = imp_arena_calloc(a, 1, sizeof(*m));
	if (!m)
		return IMP_ERR_NOMEM;
	m->engine = engine;
	m->n = n;
	if (n) {
		m->ids = imp_arena_calloc(a, n, sizeof(*m->ids));
		m->lit_len = imp_arena_calloc(a, n, sizeof(*m->lit_len));
		if (!m->ids || !m->lit_len)
			return IMP_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pats[i].expr || pats[i].len == 0) {
			if (bad_index)
				*bad_index = i;
			mpat_seterr(err, errlen, i, "empty pattern");
			return IMP_ERR_POLICY;
		}
		m->ids[i] = pats[i].id;
		if (pats[i].flags & IMP_MPAT_LITERAL)
			m->lit_len[i] = pats[i].len;
	}
	if (n) {
		int rc = engine == IMP_ENGINE_VECTORSCAN
				 ? mpat_compile_hs(a, m, pats, n, bad_index,
						   err, errlen)
				 : mpat_compile_pcre2(a, m, pats, n, bad_index,
						      err, errlen);
		if (rc != IMP_OK)
			return rc;
	}
	*out = m;
	return IMP_OK;
}

/* ---- scratch ------------------------------------------------------------ */

imp_mpat_scratch_t *imp_mpat_scratch_new(const imp_ctx_t *ctx)
{
	imp_mpat_scratch_t *s = imp_calloc(ctx, 1, sizeof(*s));
	if (!s)
		return NULL;
	s->ctx = ctx;
	return s;
}

int imp_mpat_scratch_prepare(imp_mpat_scratch_t *s, const imp_mpat_t *db)
{
	if (!s || !db)
		return IMP_ERR_INVALID;
	if (db->engine == IMP_ENGINE_VECTORSCAN && db->db) {
		/* Grows the one scratch so it fits every prepared db. */
		if (hs_alloc_scratch(db->db, &s->hs) != HS_SUCCESS)
			return IMP_ERR_NOMEM;
	}
	if (db->engine == IMP_ENGINE_PCRE2 && !s->mctx) {
		s->gctx = mpat_gctx_new(s->ctx);
		if (!s->gctx)
			return IMP_ERR_NOMEM;
		s->mctx = pcre2_match_context_create(s->gctx);
		s->md = pcre2_match_data_create(1, s->gctx);
		s->jit =
			pcre2_jit_stack_create(32 * 1024, 1024 * 1024, s->gctx);
		if (!s->mctx || !s->md || !s->jit)
			return IMP_ERR_NOMEM;
		pcre2_set_match_limit(s->mctx, MPAT_MATCH_LIMIT);
		pcre2_set_depth_limit(s->mctx, MPAT_DEPTH_LIMIT);
		pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
	}
	return IMP_OK;
}

void imp_mpat_scratch_free(imp_mpat_scratch_t *s)
{
	if (!s)
		return;
	if (s->hs)
		hs_free_scratch(s->hs);
	pcre2_match_data_free(s->md);
	pcre2_match_context_free(s->mctx);
	pcre2_jit_stack_free(s->jit);
	pcre2_general_context_free(s->gctx);
	imp_mfree(s->ctx, s->pairs);
	imp_mfree(s->ctx, s);
}

/* ---- scan ----------------------------------------------------------------- */

typedef struct mpat_hs_ud_s {
	const imp_mpat_t *m;
	imp_mpat_cb cb;
	void *ud;
} mpat_hs_ud_t;

static int mpat_hs_event(unsigned int idx, unsigned long long from,
			 unsigned long long to, unsigned int flags, void *p)
{
	const mpat_hs_ud_t *u = p;
	size_t len = u->m->lit_len[idx];
	(void)from;
	(void)flags;
	return u->cb(u->ud, u->m->ids[idx], len ? (size_t)to - len : (size_t)-1,
		     (size_t)to);
}

static int mpat_scan_hs(const imp_mpat_t *m, imp_mpat_scratch_t *s,
			const char *text, size_t len, imp_mpat_cb cb, void *ud)
{
	if (len > UINT_MAX)
		return IMP_ERR_LIMIT;
	if (!s->hs)
		return IMP_ERR_INVALID;
	mpat_hs_ud_t u = {m, cb, ud};
	hs_error_t he = hs_scan(m->db, text, (unsigned)len, 0, s->hs,
				mpat_hs_event, &u);
	if (he == HS_SUCCESS || he == HS_SCAN_TERMINATED)
		return IMP_OK;
	if (he == HS_INVALID)
		return IMP_ERR_INVALID; /* scratch not prepared for this db */
	return IMP_ERR_INTERNAL;
}

static int mpat_callout(pcre2_callout_block *cb, void *p)
{
	imp_mpat_scratch_t *s = p;
	/* Only our own "(?C{index})" callouts exist (patterns with callouts
	 * are refused at compile time); anything else is ignored. */
	if (!cb->callout_string)
		return 0;
	size_t idx = strtoul((const char *)cb->callout_string, NULL, 10);
	if (idx >= s->cur->n)
		return 0;
	if (s->n_pairs == s->cap_pairs) {
		size_t cap = s->cap_pairs ? s->cap_pairs * 2 : 64;
		mpat_pair_t *np =
			imp_realloc(s->ctx, s->pairs, cap * sizeof(*np));
		if (!np) {
			s->oom = true;
			return PCRE2_ERROR_NOMEMORY;
		}
		s->pairs = np;
		s->cap_pairs = cap;
	}
	s->pairs[s->n_pairs].end = cb->current_position;
	s->pairs[s->n_pairs].idx = idx;
	s->n_pairs++;
	return 1; /* fail here: backtrack into every other path */
}

static int mpat_pair_cmp(const void *a, const void *b)
{
	const mpat_pair_t *x = a, *y = b;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return 0;
}

static int mpat_scan_pcre2(const imp_mpat_t *m, imp_mpat_scratch_t *s,
			   const char *text, size_t len, imp_mpat_cb cb,
			   void *ud)
{
	if (!s->mctx)
		return IMP_ERR_INVALID;
	int rc = IMP_OK;
	s->n_pairs = 0;
	s->oom = false;
	s->cur = m;
	pcre2_set_callout(s->mctx, mpat_callout, s);
	for (size_t g = 0; g < m->n_groups; g++) {
		int r = pcre2_match(m->groups[g].code, (PCRE2_SPTR)text, len, 0,
				    0, s->md, s->mctx);
		if (r == PCRE2_ERROR_NOMATCH || r >= 0)
			continue;
		if (s->oom) {
			rc = IMP_ERR_NOMEM;
		} else if (r == PCRE2_ERROR_MATCHLIMIT ||
			   r == PCRE2_ERROR_DEPTHLIMIT ||
			   r == PCRE2_ERROR_HEAPLIMIT ||
			   r == PCRE2_ERROR_JIT_STACKLIMIT) {
			rc = IMP_ERR_LIMIT;
		} else {
			rc = IMP_ERR_INTERNAL;
		}
		break;
	}
	pcre2_set_callout(s->mctx, NULL, NULL);
	if (rc == IMP_ERR_NOMEM || rc == IMP_ERR_INTERNAL)
		return rc;
	if (s->n_pairs > 1)
		qsort(s->pairs, s->n_pairs, sizeof(*s->pairs), mpat_pair_cmp);
	for (size_t i = 0; i < s->n_pairs; i++) {
		const mpat_pair_t *p = &s->pairs[i];
		if (i && p->end == p[-1].end && p->idx == p[-1].idx)
			continue;
		size_t l = m->lit_len[p->idx];
		if (cb(ud, m->ids[p->idx], l ? p->end - l : (size_t)-1, p->end))
			break;
	}
	return rc;
}

int imp_mpat_scan(const imp_mpat_t *m, imp_mpat_scratch_t *s, const char *text,
		  size_t len, imp_mpat_cb cb, void *ud)
{
	if (!m || !s || !cb || (len && !text))
		return IMP_ERR_INVALID;
	if (m->n == 0)
		return IMP_OK;
	if (!text)
		text = "";
	if (m->engine == IMP_ENGINE_VECTORSCAN)
		return mpat_scan_hs(m, s, text, len, cb, ud);
	return mpat_scan_pcre2(m, s, text, len, cb, ud);
}
