/*
 * eval.c -- judges one stanza against a compiled policy (imp_eval_*).
 *
 * Steps per stanza: parse (stanza.c, with the evaluator's reusable parser:
 * no expat parser is created per stanza) -> parties and direction -> the
 * escalation gate (a suspended local sender is refused before anything
 * else) -> the content phase (normalise each inspected field once, run the
 * lexicon once and the wanted detectors once per field, memoise the hits)
 * -> every candidate rule's condition tree -> precedence, evidence,
 * redaction, escalation, notification -> one verdict block the caller owns.
 *
 * Invariants:
 *  - Nothing here changes the policy; everything derived from it that is
 *    worth caching (per-rule prefilters, engine scratch) lives in the
 *    evaluator and is rebuilt when the policy (pointer or digest) changes.
 *  - Per-stanza memory comes from the evaluator's scratch arena, reset at
 *    the start of each run; it keeps its first chunk, so a short clean
 *    message calls the allocator once (for the verdict block).
 *  - Only facts some candidate rule needs are computed: a rule whose
 *    `kinds` exclude the stanza is skipped; content is scanned only when a
 *    candidate reads content, and only the detectors and fields it names.
 *  - A rule with a required top-level content condition (`detect`/`words`
 *    directly in its `when`) is skipped without walking its tree when the
 *    stanza has no hit of that kind at all, so large policies stay cheap on
 *    clean messages.
 *  - Precedence is reject > redact > flag > allow; the deciding rule is the
 *    first matched rule with the strongest action.  A redact rule without
 *    spans acts as flag.  Never a silent pass: content that could not be
 *    inspected (size or engine limits) yields the policy's on_uninspectable
 *    outcome through the pseudo-rule "policy.uninspectable".
 *  - Direction: a stanza without `to` is addressed to the sender's own
 *    server (RFC 6120 10.3), so its recipient side has the sender's
 *    locality (a local presence broadcast is internal, never inbound).
 *  - Retention: the deciding rule's class, else the first matched rule's
 *    own class, else the policy default, else NULL.
 *  - The verdict is copied into one block from the context allocator whose
 *    first bytes are the allocator (see verdict.c), so it outlives the
 *    policy and the evaluator.
 *
 * Threading: an evaluator is used by one thread at a time; the policy and
 * the context are only read.  The shared escalation/fan-out state is
 * thread-safe (state.c); the context creates it lazily under lazy_lock
 * and the evaluator caches the pointer.
 *
 * Reports: return codes; engine failures are logged at warn level without
 * message text.  Message text appears only in the verdict and in explain.
 */
#include "base.h"
#include "detect.h"
#include "jid.h"
#include "lexicon.h"
#include "mpat.h"
#include "norm.h"
#include "policy.h"
#include "sched.h"
#include "stanza.h"
#include "state.h"
#include "tz.h"

#include <stdlib.h>
#include <string.h>

#define EVAL_MAX_HITS 256   /* evidence entries kept per verdict */
#define EVAL_MAX_NOTIFY 64  /* distinct compliance JIDs per verdict */
#define EVAL_EXPLAIN_HITS 3 /* hits listed per condition in explain */

static const char eval_fallback_notice[] =
	"This message was blocked by the IM policy.";

/* What the evaluator derives once per policy for each rule. */
typedef struct eval_pre_s {
	uint32_t det_fields;  /* fields DETECT atoms read */
	uint32_t word_fields; /* fields WORDS atoms read */
	uint64_t req_det;     /* a top-level DETECT conjunct's mask, or 0 */
	const uint64_t *req_lists; /* a top-level WORDS conjunct's lists */
	size_t req_nw;             /* 64-bit words in req_lists */
} eval_pre_t;

/* Per stanza kind: the candidate rules by prefilter class (policy order
 * within each), and the content they need. */
typedef struct eval_kindix_s {
	const uint32_t *always, *words, *det;
	size_t n_always, n_words, n_det;
	uint64_t det_want;
	uint32_t det_fields, word_fields;
	bool want_words;
} eval_kindix_t;

#define EVAL_KINDS 4 /* IMP_KIND_MESSAGE .. IMP_KIND_OTHER */

struct imp_eval_s {
	imp_ctx_t *ctx;
	imp_arena_t *scratch;
	imp_mpat_scratch_t *ms;
	imp_detscratch_t *ds;
	imp_stanza_parser_t *sp; /* one expat parser, reset per stanza */
	imp_state_t *state;      /* cached ctx->state */
	/* the policy the caches below were built for */
	const imp_policy_t *policy;
	uint64_t serial;
	eval_pre_t *pre;
	size_t n_pre_cap;
	uint32_t *ix_mem; /* EVAL_KINDS * n_pre_cap rule indexes */
	eval_kindix_t kix[EVAL_KINDS];
};

/* A party of the stanza: the sender or one recipient. */
typedef struct eval_jid_s {
	const char *raw;
	const char *bare; /* lowercase bare JID, NULL when unparsable */
	imp_jid_t j;
	bool local;
} eval_jid_t;

/* The memoised content of one field. */
typedef struct eval_field_s {
	bool scanned;
	const char *src; /* the field text the views were made from */
	size_t scan_len; /* inspected bytes (<= max_scan_bytes) */
	/* plain of ASCII text is the field text itself, map NULL */
	imp_ntext_t plain, words;
	bool have_plain, have_words;
	imp_dethit_t *det;
	size_t n_det;
	uint64_t det_any;    /* detectors with at least one hit */
	uint8_t det_max[64]; /* best confidence per detector */
	imp_lexhit_t *lex;
	size_t n_lex;
	uint64_t *lex_bits; /* lists with at least one hit */
} eval_field_t;

/* Everything one run knows; lives on the stack, memory in scratch. */
typedef struct eval_run_s {
	imp_eval_t *ev;
	const imp_policy_t *p;
	const imp_view_t *view;
	imp_arena_t *a;
	imp_stanza_t *st;
	unsigned flags;
	int64_t now_us, now_s;
	eval_jid_t from;
	eval_jid_t *rcpt; /* [0] is `to` when present, then addresses */
	size_t n_rcpt;
	const char *session_bare;
	unsigned dir;
	bool dry;
	/* content */
	size_t n_list_words; /* 64-bit words of a list bitset */
	uint64_t det_want;
	uint32_t det_fields, word_fields;
	bool want_words;
	bool uninspectable;
	uint64_t any_det;
	bool any_lex;
	uint64_t *lex_all; /* lists hit in any field */
	eval_field_t f[IMP_FIELD_COUNT];
	/* schedules */
	bool lt_done;
	imp_tm_t lt;
	const imp_tz_t *lt_zone;
	/* fan-out */
	bool fp_done;
	uint64_t fp;
	int rc;        /* IMP_ERR_NOMEM once allocation failed */
	imp_buf_t *ex; /* explain trace or NULL */
} eval_run_t;

/* The verdict under construction (scratch memory, policy strings). */
typedef struct eval_out_s {
	imp_action_t action;
	unsigned flags;
	const char *rule_id, *section, *notice;
	imp_rule_match_t *m;
	size_t n_m, cap_m;
	imp_hit_t *hits;
	uint32_t *hit_rule; /* index into m */
	size_t n_hits;
	const char *notify[EVAL_MAX_NOTIFY];
	size_t n_notify;
	const char *redacted_xml;
	size_t redacted_xml_len;
	const char *redacted_body;
	const char *body; /* original */
	const char *explain;
	const char *error;
	const char *retention; /* policy string or NULL */
	imp_stanza_info_t info;
	char digest[65];
} eval_out_t;

/* ---- evaluator lifetime ---------------------------------------------------- */

int imp_eval_new(imp_ctx_t *ctx, imp_eval_t **out)
{
	if (!ctx || !out)
		return IMP_ERR_INVALID;
	*out = NULL;
	imp_eval_t *ev = imp_calloc(ctx, 1, sizeof(*ev));
	if (!ev)
		return IMP_ERR_NOMEM;
	ev->ctx = ctx;
	/* 64 KiB keeps a typical stanza, its DOM, normalised views and hits
	 * in the first chunk, which reset keeps. */
	ev->scratch = imp_arena_new(ctx, 64 * 1024);
	ev->ms = imp_mpat_scratch_new(ctx);
	ev->ds = imp_detscratch_new(ctx);
	ev->sp = imp_stanza_parser_new(ctx);
	if (!ev->scratch || !ev->ms || !ev->ds || !ev->sp) {
		imp_eval_free(ev);
		return IMP_ERR_NOMEM;
	}
	*out = ev;
	return IMP_OK;
}

void imp_eval_free(imp_eval_t *ev)
{
	if (!ev)
		return;
	imp_arena_free(ev->scratch);
	if (ev->ms)
		imp_mpat_scratch_free(ev->ms);
	if (ev->ds)
		imp_detscratch_free(ev->ds);
	imp_stanza_parser_free(ev->sp);
	imp_mfree(ev->ctx, ev->pre);
	imp_mfree(ev->ctx, ev->ix_mem);
	imp_mfree(ev->ctx, ev);
}

static imp_state_t *eval_state(imp_eval_t *ev)
{
	if (ev->state)
		return ev->state;
	imp_ctx_t *ctx = ev->ctx;
	pthread_mutex_lock(&ctx->lazy_lock);
	if (!ctx->state) {
		ctx->state = imp_state_new(ctx);
		if (ctx->state)
			ctx->state_free = imp_state_free;
	}
	ev->state = ctx->state;
	pthread_mutex_unlock(&ctx->lazy_lock);
	return ev->state;
}

/* Fields (1 << f) read by DETECT / WORDS atoms below c. */
static void eval_pre_walk(const imp_cond_t *c, eval_pre_t *pr)
{
	switch (c->op) {
	case IMP_C_ALL:
	case IMP_C_ANY:
	case IMP_C_NOT:
		for (size_t i = 0; i < c->u.kids.n; i++)
			eval_pre_walk(c->u.kids.v[i], pr);
		break;
	case IMP_C_DETECT:
		pr->det_fields |= c->fields;
		break;
	case IMP_C_WORDS:
		pr->word_fields |= c->fields;
		break;
	default:
		break;
	}
}

/* Makes the engine scratch and per-rule caches fit p.  A policy freed and
 * another loaded at the same address is caught by the serial. */
static int eval_prepare(imp_eval_t *ev, const imp_policy_t *p)
{
	if (ev->policy == p && ev->serial == p->serial)
		return IMP_OK;
	ev->policy = NULL;
	if (p->lexicon) {
		int rc = imp_mpat_scratch_prepare(ev->ms,
						  imp_lexicon_mpat(p->lexicon));
		if (rc != IMP_OK)
			return rc;
	}
	if (p->detectors) {
		int rc = imp_detscratch_prepare(ev->ds, p->detectors);
		if (rc != IMP_OK)
			return rc;
	}
	if (p->n_rules > ev->n_pre_cap) {
		eval_pre_t *np =
			imp_realloc(ev->ctx, ev->pre, p->n_rules * sizeof(*np));
		if (!np)
			return IMP_ERR_NOMEM;
		ev->pre = np;
		uint32_t *nx =
			imp_realloc(ev->ctx, ev->ix_mem,
				    EVAL_KINDS * p->n_rules * sizeof(*nx));
		if (!nx)
			return IMP_ERR_NOMEM;
		ev->ix_mem = nx;
		ev->n_pre_cap = p->n_rules;
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		const imp_rule_t *r = &p->rules[i];
		eval_pre_t *pr = &ev->pre[i];
		memset(pr, 0, sizeof(*pr));
		if (!r->when)
			continue;
		eval_pre_walk(r->when, pr);
		if (r->when->op == IMP_C_ALL) {
			for (size_t k = 0; k < r->when->u.kids.n; k++) {
				const imp_cond_t *c = r->when->u.kids.v[k];
				if (c->op == IMP_C_DETECT && !pr->req_det)
					pr->req_det = c->u.detect.mask;
				else if (c->op == IMP_C_WORDS &&
					 !pr->req_lists) {
					pr->req_lists = c->u.lists.bits;
					pr->req_nw = c->u.lists.n_words;
				}
			}
		}
	}
	/* The kind index: three lists per kind, each in policy order. */
	uint32_t *mem = ev->ix_mem;
	for (int k = 0; k < EVAL_KINDS; k++) {
		eval_kindix_t *kx = &ev->kix[k];
		memset(kx, 0, sizeof(*kx));
		unsigned bit = 1u << k;
		for (int cls = 0; cls < 3; cls++) {
			uint32_t *start = mem;
			for (size_t i = 0; i < p->n_rules; i++) {
				const imp_rule_t *rule = &p->rules[i];
				const eval_pre_t *pr = &ev->pre[i];
				unsigned kinds =
					rule->kinds ? rule->kinds : ~0u;
				if (!(kinds & bit))
					continue;
				int c = pr->req_lists ? 1 : pr->req_det ? 2 : 0;
				if (c != cls)
					continue;
				*mem++ = (uint32_t)i;
			}
			size_t n = (size_t)(mem - start);
			if (cls == 0) {
				kx->always = start;
				kx->n_always = n;
			} else if (cls == 1) {
				kx->words = start;
				kx->n_words = n;
			} else {
				kx->det = start;
				kx->n_det = n;
			}
		}
		for (size_t i = 0; i < p->n_rules; i++) {
			const imp_rule_t *rule = &p->rules[i];
			unsigned kinds = rule->kinds ? rule->kinds : ~0u;
			if (!(kinds & bit))
				continue;
			kx->det_want |= rule->det_mask;
			kx->det_fields |= ev->pre[i].det_fields;
			if (rule->needs_words) {
				kx->want_words = true;
				kx->word_fields |= ev->pre[i].word_fields;
			}
		}
	}
	ev->policy = p;
	ev->serial = p->serial;
	return IMP_OK;
}

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t eval_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static bool eval_domain_local(const imp_policy_t *p, const imp_jid_t *j)
{
	for (size_t i = 0; i < p->n_local_domains; i++)
		if (imp_domain_match(p->local_domains[i], j->domain,
				     j->domain_len))
			return true;
	return false;
}

/* Parses raw into e (bare JID in scratch); unparsable JIDs have no bare
 * and are in no group. */
static void eval_jid(eval_run_t *r, const char *raw, eval_jid_t *e)
{
	memset(e, 0, sizeof(*e));
	e->raw = raw;
	if (!raw || !imp_jid_parse(raw, strlen(raw), &e->j))
		return;
	e->bare = imp_jid_bare(r->a, &e->j);
	if (!e->bare) {
		r->rc = IMP_ERR_NOMEM;
		return;
	}
	e->local = eval_domain_local(r->p, &e->j);
}

static bool eval_group_has(const imp_group_t *g, const eval_jid_t *e)
{
	if (!e->bare)
		return false;
	for (size_t i = 0; i < g->n_globs; i++)
		if (imp_jid_glob(g->globs[i], e->bare))
			return true;
	for (size_t i = 0; i < g->n_domains; i++)
		if (imp_domain_match(g->domains[i], e->j.domain,
				     e->j.domain_len))
			return true;
	return false;
}

static bool eval_party_has(const imp_policy_t *p, const imp_party_t *pt,
			   const eval_jid_t *e)
{
	if (!e->bare)
		return false;
	if (pt->local && e->local)
		return true;
	if (pt->remote && !e->local)
		return true;
	for (size_t i = 0; i < pt->n_globs; i++)
		if (imp_jid_glob(pt->globs[i], e->bare))
			return true;
	for (size_t i = 0; i < pt->n_groups; i++)
		if (pt->groups[i] < p->n_groups &&
		    eval_group_has(&p->groups[pt->groups[i]], e))
			return true;
	return false;
}

static bool eval_party_any_rcpt(const eval_run_t *r, const imp_party_t *pt)
{
	for (size_t i = 0; i < r->n_rcpt; i++)
		if (eval_party_has(r->p, pt, &r->rcpt[i]))
			return true;
	return false;
}

static int eval_user_tz_cmp(const void *key, const void *el)
{
	return strcmp((const char *)key, ((const imp_user_tz_t *)el)->bare);
}

/* The zone of the person a schedule protects: the sender when local, else
 * the (first) recipient; per user, else first group with a zone, else the
 * policy zone. */
static const imp_tz_t *eval_zone(const eval_run_t *r)
{
	const imp_policy_t *p = r->p;
	const eval_jid_t *who = NULL;
	if (r->from.local && r->from.bare)
		who = &r->from;
	else if (r->n_rcpt && r->rcpt[0].bare)
		who = &r->rcpt[0];
	if (who) {
		if (p->n_user_tz) {
			const imp_user_tz_t *u =
				bsearch(who->bare, p->user_tz, p->n_user_tz,
					sizeof(*p->user_tz), eval_user_tz_cmp);
			if (u && u->tz)
				return u->tz;
		}
		for (size_t i = 0; i < p->n_groups; i++)
			if (p->groups[i].tz &&
			    eval_group_has(&p->groups[i], who))
				return p->groups[i].tz;
	}
	return p->tz ? p->tz : imp_tz_utc();
}

static const char *eval_dir_name(unsigned dir)
{
	switch (dir) {
	case IMP_DIR_OUTBOUND:
		return "outbound";
	case IMP_DIR_INBOUND:
		return "inbound";
	case IMP_DIR_INTERNAL:
		return "internal";
	default:
		return "external";
	}
}

static void eval_ex(eval_run_t *r, int depth, const char *fmt, ...)
	IMP_PRINTF(3, 4);
/* Explain lines cost nothing unless explain was asked for. */
#define EVAL_EX(r, ...)                            \
	do {                                       \
		if ((r)->ex)                       \
			eval_ex((r), __VA_ARGS__); \
	} while (0)
static void eval_ex(eval_run_t *r, int depth, const char *fmt, ...)
{
	if (!r->ex)
		return;
	for (int i = 0; i < depth; i++)
		imp_buf_puts(r->ex, "  ");
	va_list ap;
	va_start(ap, fmt);
	imp_buf_vprintf(r->ex, fmt, ap);
	va_end(ap);
	imp_buf_putc(r->ex, '\n');
}

/* ---- content phase -------------------------------------------------------- */

/* Normalises and scans field f once with everything the candidate rules
 * need.  Limits mark the stanza uninspectable; they never make it pass. */
static void eval_scan_field(eval_run_t *r, imp_field_t f)
{
	eval_field_t *ef = &r->f[f];
	const imp_ftext_t *ft = &r->st->fields[f];
	const imp_policy_t *p = r->p;
	ef->scanned = true;
	ef->src = ft->text;
	if (!ft->len)
		return;
	size_t max = p->max_scan_bytes ? p->max_scan_bytes : 1048576;
	size_t n = ft->len;
	if (n > max) {
		/* Inspect the first max bytes (on a character boundary) so
		 * that what we can see still counts, and say we could not
		 * see the rest. */
		n = max;
		while (n > 0 && ((unsigned char)ft->text[n] & 0xC0) == 0x80)
			n--;
		r->uninspectable = true;
	}
	ef->scan_len = n;
	bool det = r->det_want && p->detectors && (r->det_fields & (1u << f));
	bool words =
		r->want_words && p->lexicon && (r->word_fields & (1u << f));
	if (det) {
		int rc = IMP_OK;
		if (ft->text[n] == '\0' && imp_norm_is_ascii(ft->text, n)) {
			/* ASCII is its own PLAIN view: scan the field text
			 * itself; map NULL means the identity (eval_span). */
			ef->plain.s = ft->text;
			ef->plain.len = n;
			ef->plain.map = NULL;
		} else {
			rc = imp_norm(r->a, ft->text, n, IMP_NORM_PLAIN,
				      &ef->plain);
		}
		if (rc == IMP_ERR_NOMEM) {
			r->rc = rc;
			return;
		}
		if (rc != IMP_OK) {
			r->uninspectable = true;
		} else {
			ef->have_plain = true;
			bool limited = false;
			rc = imp_detset_scan(p->detectors, r->ev->ds, r->a,
					     r->det_want, ef->plain.s,
					     ef->plain.len, &ef->det,
					     &ef->n_det, &limited);
			if (rc == IMP_ERR_NOMEM) {
				r->rc = rc;
				return;
			}
			if (rc != IMP_OK || limited) {
				if (rc != IMP_OK)
					imp_log(r->ev->ctx, IMP_LOG_WARN,
						"detector scan of %s failed: "
						"%s",
						imp_field_name(f),
						imp_strerror(rc));
				r->uninspectable = true;
			}
			for (size_t i = 0; i < ef->n_det; i++) {
				const imp_dethit_t *h = &ef->det[i];
				if (h->det >= 64)
					continue;
				ef->det_any |= 1ULL << h->det;
				if (h->confidence > ef->det_max[h->det])
					ef->det_max[h->det] = h->confidence;
			}
			r->any_det |= ef->det_any;
		}
	}
	if (words) {
		int rc =
			imp_norm(r->a, ft->text, n, IMP_NORM_WORDS, &ef->words);
		if (rc == IMP_ERR_NOMEM) {
			r->rc = rc;
			return;
		}
		if (rc != IMP_OK) {
			r->uninspectable = true;
			return;
		}
		ef->have_words = true;
		rc = imp_lexicon_scan(p->lexicon, r->ev->ms, r->a, &ef->words,
				      &ef->lex, &ef->n_lex);
		if (rc == IMP_ERR_NOMEM) {
			r->rc = rc;
			return;
		}
		if (rc != IMP_OK) {
			if (rc != IMP_ERR_LIMIT)
				imp_log(r->ev->ctx, IMP_LOG_WARN,
					"word list scan of %s failed: %s",
					imp_field_name(f), imp_strerror(rc));
			r->uninspectable = true;
		}
		if (ef->n_lex) {
			ef->lex_bits = imp_arena_calloc(r->a, r->n_list_words,
							sizeof(uint64_t));
			if (!ef->lex_bits) {
				r->rc = IMP_ERR_NOMEM;
				return;
			}
			for (size_t i = 0; i < ef->n_lex; i++) {
				uint32_t l = ef->lex[i].list;
				if (l / 64 < r->n_list_words)
					ef->lex_bits[l / 64] |= 1ULL
								<< (l % 64);
			}
			if (!r->lex_all) {
				r->lex_all =
					imp_arena_calloc(r->a, r->n_list_words,
							 sizeof(uint64_t));
				if (!r->lex_all) {
					r->rc = IMP_ERR_NOMEM;
					return;
				}
			}
			for (size_t w = 0; w < r->n_list_words; w++)
				r->lex_all[w] |= ef->lex_bits[w];
			r->any_lex = true;
		}
	}
}

static bool eval_lex_match(const eval_field_t *ef, const imp_cond_t *c)
{
	if (!ef->lex_bits)
		return false;
	for (size_t w = 0; w < c->u.lists.n_words; w++)
		if (c->u.lists.bits[w] & ef->lex_bits[w])
			return true;
	return false;
}

static bool eval_det_match(const eval_field_t *ef, const imp_cond_t *c)
{
	uint64_t m = c->u.detect.mask & ef->det_any;
	while (m) {
		unsigned d = (unsigned)__builtin_ctzll(m);
		m &= m - 1;
		if (ef->det_max[d] >= c->u.detect.min_confidence)
			return true;
	}
	return false;
}

static bool eval_lexhit_in(const imp_cond_t *c, const imp_lexhit_t *h)
{
	return h->list / 64 < c->u.lists.n_words &&
	       (c->u.lists.bits[h->list / 64] >> (h->list % 64)) & 1;
}

static bool eval_dethit_in(const imp_cond_t *c, const imp_dethit_t *h)
{
	return h->det < 64 && (c->u.detect.mask >> h->det) & 1 &&
	       h->confidence >= c->u.detect.min_confidence;
}

/* A normalised span mapped back to field byte offsets (src: the field
 * text).  map[len] is the end of the source, so a hit that ends the view
 * would also take the characters normalisation dropped after it ("shit!"
 * -> "*****"); trailing ASCII punctuation and spaces beyond the hit's last
 * character are trimmed off again.  Non-ASCII leftovers (a combining mark
 * composed into the last letter) stay inside the span. */
static void eval_span(const char *src, const imp_ntext_t *nt, uint32_t b,
		      uint32_t e, uint32_t *fs, uint32_t *fe)
{
	if (b > nt->len)
		b = (uint32_t)nt->len;
	if (e > nt->len)
		e = (uint32_t)nt->len;
	/* A NULL map is the identity (an ASCII PLAIN view). */
	*fs = nt->map ? nt->map[b] : b;
	*fe = nt->map ? nt->map[e] : e;
	if (src && e == nt->len && e > b) {
		uint32_t last = nt->map ? nt->map[e - 1] : e - 1;
		unsigned char c = (unsigned char)src[last];
		uint32_t lo = last + (c >= 0xF0   ? 4
				      : c >= 0xE0 ? 3
				      : c >= 0xC0 ? 2
						  : 1);
		while (*fe > lo) {
			unsigned char t = (unsigned char)src[*fe - 1];
			if (t >= 0x80 || (t >= '0' && t <= '9') ||
			    ((t | 0x20) >= 'a' && (t | 0x20) <= 'z'))
				break;
			(*fe)--;
		}
	}
	if (*fe < *fs)
		*fe = *fs;
}

/* Explain: the hits of a content condition, "payment_card: 1 hit
 * body[8..27] conf 95". */
static void eval_ex_content(eval_run_t *r, int depth, const imp_cond_t *c)
{
	if (!r->ex)
		return;
	const imp_policy_t *p = r->p;
	for (int f = 0; f < IMP_FIELD_COUNT; f++) {
		const eval_field_t *ef = &r->f[f];
		if (!(c->fields & (1u << f)))
			continue;
		size_t n = 0;
		imp_buf_t line;
		imp_buf_init(&line, NULL, r->a);
		if (c->op == IMP_C_DETECT) {
			for (size_t i = 0; i < ef->n_det; i++) {
				const imp_dethit_t *h = &ef->det[i];
				if (!eval_dethit_in(c, h))
					continue;
				if (n++ >= EVAL_EXPLAIN_HITS)
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->plain, h->start, h->end,
					  &s, &e);
				imp_buf_printf(
					&line, " %s %s[%u..%u] conf %u",
					imp_detset_name(p->detectors, h->det),
					imp_field_name((imp_field_t)f), s, e,
					(unsigned)h->confidence);
			}
		} else {
			for (size_t i = 0; i < ef->n_lex; i++) {
				const imp_lexhit_t *h = &ef->lex[i];
				if (!eval_lexhit_in(c, h))
					continue;
				if (n++ >= EVAL_EXPLAIN_HITS)
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->words, h->start, h->end,
					  &s, &e);
				imp_buf_printf(&line, " %s %s[%u..%u]",
					       h->list < p->n_lists
						       ? p->lists[h->list].name
						       : "?",
					       imp_field_name((imp_field_t)f),
					       s, e);
			}
		}
		if (n)
			EVAL_EX(r, depth, "%zu hit%s in %s:%s%s", n,
				n == 1 ? "" : "s",
				imp_field_name((imp_field_t)f),
				line.data ? line.data : "",
				n > EVAL_EXPLAIN_HITS ? " ..." : "");
	}
}

/* ---- conditions ---------------------------------------------------------------- */

static const char *eval_type(const imp_stanza_t *st)
{
	if (st->type)
		return st->type;
	if (st->kind == IMP_KIND_MESSAGE)
		return "normal";
	if (st->kind == IMP_KIND_PRESENCE)
		return "available";
	return "";
}

static bool eval_localtime(eval_run_t *r)
{
	if (!r->lt_done) {
		r->lt_zone = eval_zone(r);
		imp_tz_localtime(r->lt_zone, r->now_s, &r->lt);
		r->lt_done = true;
	}
	return true;
}

static uint32_t eval_fanout(eval_run_t *r, const imp_cond_t *c)
{
	const imp_ftext_t *body = &r->st->fields[IMP_FIELD_BODY];
	if (!r->from.bare || !body->len || !r->n_rcpt)
		return 0;
	if (!r->fp_done) {
		imp_ntext_t nt;
		size_t n = body->len;
		if (r->f[IMP_FIELD_BODY].have_words) {
			nt = r->f[IMP_FIELD_BODY].words;
		} else if (imp_norm(r->a, body->text, n, IMP_NORM_WORDS, &nt) !=
			   IMP_OK) {
			/* Fall back to the raw text: a weaker fingerprint
			 * beats none. */
			nt.s = body->text;
			nt.len = n;
		}
		/* "Buy NOW!" and "buy now" are the same content: the WORDS
		 * view folds case and separators; trim what is left at the
		 * edges. */
		const char *s = nt.s;
		size_t len = nt.len;
		while (len && *s == ' ') {
			s++;
			len--;
		}
		while (len && s[len - 1] == ' ')
			len--;
		r->fp = eval_hash(s, len);
		r->fp_done = true;
	}
	imp_state_t *state = eval_state(r->ev);
	if (!state) {
		r->rc = IMP_ERR_NOMEM;
		return 0;
	}
	uint32_t best = 0;
	for (size_t i = 0; i < r->n_rcpt; i++) {
		if (!r->rcpt[i].bare)
			continue;
		uint32_t n = imp_state_fanout(state, r->from.bare, r->fp,
					      r->rcpt[i].bare, r->now_s,
					      c->u.fanout.window_s, r->dry);
		if (n > best)
			best = n;
	}
	return best;
}

/* Names of stanza fact bits, in bit order, for explain. */
static const char *const eval_ft_names[] = {
	"upload", "oob", "si", "socks5", "ibb", "jingle", "sims", "sfs"};
static const char *const eval_e2e_names[] = {"omemo",      "omemo2", "openpgp",
					     "legacy_pgp", "otr",    "hint"};
static const char *const eval_hint_names[] = {"no-store", "no-permanent-store",
					      "no-copy", "store", "private"};

static const char *eval_bit_names(eval_run_t *r, unsigned bits,
				  const char *const *names, size_t n)
{
	imp_buf_t b;
	imp_buf_init(&b, NULL, r->a);
	for (size_t i = 0; i < n; i++) {
		if (!(bits & (1u << i)))
			continue;
		if (b.len)
			imp_buf_putc(&b, ',');
		imp_buf_puts(&b, names[i]);
	}
	return b.len && !b.oom ? b.data : "none";
}

static bool eval_cond(eval_run_t *r, const imp_cond_t *c, int depth);

static bool eval_kids(eval_run_t *r, const imp_cond_t *c, int depth, bool any)
{
	bool held = !any;
	size_t i = 0;
	for (; i < c->u.kids.n; i++) {
		bool k = eval_cond(r, c->u.kids.v[i], depth);
		if (k == any) {
			held = any;
			i++;
			break;
		}
	}
	for (; r->ex && i < c->u.kids.n; i++)
		EVAL_EX(r, depth, "%s: not evaluated (%s)",
			c->u.kids.v[i]->key ? c->u.kids.v[i]->key : "?",
			any ? "an earlier alternative held"
			    : "an earlier condition failed");
	return held;
}

static bool eval_cond(eval_run_t *r, const imp_cond_t *c, int depth)
{
	const imp_stanza_t *st = r->st;
	const imp_policy_t *p = r->p;
	const char *key = c->key ? c->key : "?";
	bool held = false;
	switch (c->op) {
	case IMP_C_ALL:
		if (depth > 1 || r->ex)
			EVAL_EX(r, depth, "%s: (all of)", key);
		held = eval_kids(r, c, depth + 1, false);
		EVAL_EX(r, depth, "%s: %s", key, held ? "held" : "failed");
		return held;
	case IMP_C_ANY:
		EVAL_EX(r, depth, "%s: (any of)", key);
		held = eval_kids(r, c, depth + 1, true);
		EVAL_EX(r, depth, "%s: %s", key, held ? "held" : "failed");
		return held;
	case IMP_C_NOT:
		EVAL_EX(r, depth, "%s: (negation of)", key);
		held = c->u.kids.n ? !eval_cond(r, c->u.kids.v[0], depth + 1)
				   : true;
		EVAL_EX(r, depth, "%s: %s", key, held ? "held" : "failed");
		return held;
	case IMP_C_KIND:
		held = (st->kind & c->u.mask) != 0;
		EVAL_EX(r, depth, "%s: %s (stanza is %s)", key,
			held ? "held" : "failed", st->name ? st->name : "?");
		return held;
	case IMP_C_TYPE: {
		const char *t = eval_type(st);
		for (size_t i = 0; i < c->u.strs.n && !held; i++)
			held = strcmp(c->u.strs.v[i], t) == 0;
		EVAL_EX(r, depth, "%s: %s (type %s)", key,
			held ? "held" : "failed", *t ? t : "(none)");
		return held;
	}
	case IMP_C_DIRECTION:
		held = (r->dir & c->u.mask) != 0;
		EVAL_EX(r, depth, "%s: %s (direction %s)", key,
			held ? "held" : "failed", eval_dir_name(r->dir));
		return held;
	case IMP_C_FROM:
		held = eval_party_has(p, &c->u.party, &r->from);
		EVAL_EX(r, depth, "%s: %s (sender %s)", key,
			held ? "held" : "failed",
			r->from.bare ? r->from.bare : "unknown");
		return held;
	case IMP_C_TO:
		held = eval_party_any_rcpt(r, &c->u.party);
		EVAL_EX(r, depth, "%s: %s (%zu recipient%s, first %s)", key,
			held ? "held" : "failed", r->n_rcpt,
			r->n_rcpt == 1 ? "" : "s",
			r->n_rcpt && r->rcpt[0].bare ? r->rcpt[0].bare
						     : "unknown");
		return held;
	case IMP_C_PARTY:
		held = eval_party_has(p, &c->u.party, &r->from) ||
		       eval_party_any_rcpt(r, &c->u.party);
		EVAL_EX(r, depth, "%s: %s (sender %s)", key,
			held ? "held" : "failed",
			r->from.bare ? r->from.bare : "unknown");
		return held;
	case IMP_C_BETWEEN:
		held = (eval_party_has(p, &c->u.pair.a, &r->from) &&
			eval_party_any_rcpt(r, &c->u.pair.b)) ||
		       (eval_party_has(p, &c->u.pair.b, &r->from) &&
			eval_party_any_rcpt(r, &c->u.pair.a));
		EVAL_EX(r, depth, "%s: %s (sender %s, recipient %s)", key,
			held ? "held" : "failed",
			r->from.bare ? r->from.bare : "unknown",
			r->n_rcpt && r->rcpt[0].bare ? r->rcpt[0].bare
						     : "unknown");
		return held;
	case IMP_C_DETECT:
	case IMP_C_WORDS:
		for (int f = 0; f < IMP_FIELD_COUNT && !held; f++) {
			if (!(c->fields & (1u << f)) || !r->f[f].scanned)
				continue;
			held = c->op == IMP_C_DETECT
				       ? eval_det_match(&r->f[f], c)
				       : eval_lex_match(&r->f[f], c);
		}
		if (r->ex) {
			if (held)
				EVAL_EX(r, depth, "%s: held", key);
			else if (c->op == IMP_C_DETECT)
				EVAL_EX(r, depth,
					"%s: failed (no hit with confidence "
					">= %u)",
					key,
					(unsigned)c->u.detect.min_confidence);
			else
				EVAL_EX(r, depth, "%s: failed (no list hit)",
					key);
			eval_ex_content(r, depth + 1, c);
		}
		return held;
	case IMP_C_FILE_TRANSFER:
		held = (st->ft & c->u.mask) != 0;
		EVAL_EX(r, depth, "%s: %s (transfer paths: %s)", key,
			held ? "held" : "failed",
			eval_bit_names(r, st->ft, eval_ft_names,
				       IMP_ARRAY_LEN(eval_ft_names)));
		return held;
	case IMP_C_ENCRYPTED:
		held = (st->e2ee & c->u.mask) != 0;
		EVAL_EX(r, depth, "%s: %s (encryption: %s)", key,
			held ? "held" : "failed",
			eval_bit_names(r, st->e2ee, eval_e2e_names,
				       IMP_ARRAY_LEN(eval_e2e_names)));
		return held;
	case IMP_C_HINTS:
		held = (st->hints & c->u.mask) != 0;
		EVAL_EX(r, depth, "%s: %s (hints: %s)", key,
			held ? "held" : "failed",
			eval_bit_names(r, st->hints, eval_hint_names,
				       IMP_ARRAY_LEN(eval_hint_names)));
		return held;
	case IMP_C_DURING: {
		eval_localtime(r);
		const char *which = NULL;
		for (size_t i = 0; i < c->u.scheds.n && !held; i++) {
			uint32_t ix = c->u.scheds.v[i];
			if (ix < p->n_scheds &&
			    imp_sched_active(p->scheds, ix, &r->lt)) {
				held = true;
				which = p->scheds[ix].name;
			}
		}
		EVAL_EX(r, depth, "%s: %s (%04d-%02d-%02d %02d:%02d %s%s%s)",
			key, held ? "held" : "failed", r->lt.year, r->lt.mon,
			r->lt.mday, r->lt.hour, r->lt.min,
			imp_tz_name(r->lt_zone), which ? ", active: " : "",
			which ? which : "");
		return held;
	}
	case IMP_C_CORRECTION:
		held = st->correction == c->u.flag;
		EVAL_EX(r, depth, "%s: %s (%sa correction)", key,
			held ? "held" : "failed", st->correction ? "" : "not ");
		return held;
	case IMP_C_HAS_BODY: {
		bool has = st->fields[IMP_FIELD_BODY].len > 0;
		held = has == c->u.flag;
		EVAL_EX(r, depth, "%s: %s (%s)", key, held ? "held" : "failed",
			has ? "has a body" : "no body");
		return held;
	}
	case IMP_C_RECIPIENTS:
		held = st->n_addresses >= c->u.count;
		EVAL_EX(r, depth, "%s: %s (%zu addresses)", key,
			held ? "held" : "failed", st->n_addresses);
		return held;
	case IMP_C_FANOUT: {
		uint32_t n = eval_fanout(r, c);
		held = n >= c->u.fanout.recipients;
		EVAL_EX(r, depth,
			"%s: %s (%u distinct recipients within %us, need %u)",
			key, held ? "held" : "failed", n, c->u.fanout.window_s,
			c->u.fanout.recipients);
		return held;
	}
	case IMP_C_SPOOFED: {
		eval_jid_t sf;
		bool spoofed = false;
		if (st->from && r->session_bare) {
			eval_jid(r, st->from, &sf);
			spoofed = !sf.bare || strcmp(sf.bare, r->session_bare);
		}
		held = spoofed == c->u.flag;
		EVAL_EX(r, depth, "%s: %s (from %s the session)", key,
			held ? "held" : "failed",
			spoofed ? "differs from" : "matches");
		return held;
	}
	case IMP_C_BODY_BYTES:
		held = st->fields[IMP_FIELD_BODY].len > c->u.count;
		EVAL_EX(r, depth, "%s: %s (body %zu bytes)", key,
			held ? "held" : "failed",
			st->fields[IMP_FIELD_BODY].len);
		return held;
	}
	EVAL_EX(r, depth, "%s: failed (unknown condition)", key);
	return false;
}

/* ---- evidence and redaction ------------------------------------------------------ */

/* What the matched redact rules ask to mask, per field. */
typedef struct eval_redact_s {
	uint64_t *lists[IMP_FIELD_COUNT];
	uint64_t det[IMP_FIELD_COUNT];
	uint8_t det_min[IMP_FIELD_COUNT][64];
} eval_redact_t;

static int eval_add_hit(eval_run_t *r, eval_out_t *o, uint32_t m,
			const char *source, imp_field_t f, uint32_t s,
			uint32_t e, uint8_t conf)
{
	if (o->n_hits >= EVAL_MAX_HITS)
		return IMP_OK;
	if (!o->hits) {
		o->hits =
			imp_arena_alloc(r->a, EVAL_MAX_HITS * sizeof(*o->hits));
		o->hit_rule = imp_arena_alloc(
			r->a, EVAL_MAX_HITS * sizeof(*o->hit_rule));
		if (!o->hits || !o->hit_rule)
			return IMP_ERR_NOMEM;
	}
	imp_hit_t *h = &o->hits[o->n_hits];
	h->rule_id = NULL;
	h->source = source;
	h->field = f;
	h->start = s;
	h->end = e;
	h->confidence = conf;
	o->hit_rule[o->n_hits++] = m;
	return IMP_OK;
}

/* Walks a matched rule's tree: content atoms that are not negated
 * contribute evidence and (for redact rules) spans.  Returns whether any
 * span exists. */
static bool eval_collect(eval_run_t *r, eval_out_t *o, uint32_t m,
			 const imp_cond_t *c, eval_redact_t *rd)
{
	const imp_policy_t *p = r->p;
	bool any = false;
	switch (c->op) {
	case IMP_C_ALL:
	case IMP_C_ANY:
		for (size_t i = 0; i < c->u.kids.n; i++)
			any |= eval_collect(r, o, m, c->u.kids.v[i], rd);
		return any;
	case IMP_C_DETECT:
		for (int f = 0; f < IMP_FIELD_COUNT; f++) {
			eval_field_t *ef = &r->f[f];
			if (!(c->fields & (1u << f)) || !eval_det_match(ef, c))
				continue;
			any = true;
			if (rd) {
				uint64_t nm = c->u.detect.mask & ~rd->det[f];
				uint64_t both = c->u.detect.mask & rd->det[f];
				for (unsigned d = 0; d < 64; d++) {
					if ((nm >> d) & 1)
						rd->det_min[f][d] =
							c->u.detect
								.min_confidence;
					else if ((both >> d) & 1 &&
						 c->u.detect.min_confidence <
							 rd->det_min[f][d])
						rd->det_min[f][d] =
							c->u.detect
								.min_confidence;
				}
				rd->det[f] |= c->u.detect.mask;
			}
			for (size_t i = 0;
			     i < ef->n_det && o->n_hits < EVAL_MAX_HITS; i++) {
				const imp_dethit_t *h = &ef->det[i];
				if (!eval_dethit_in(c, h))
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->plain, h->start, h->end,
					  &s, &e);
				if (eval_add_hit(r, o, m,
						 imp_detset_name(p->detectors,
								 h->det),
						 (imp_field_t)f, s, e,
						 h->confidence) != IMP_OK)
					r->rc = IMP_ERR_NOMEM;
			}
		}
		return any;
	case IMP_C_WORDS:
		for (int f = 0; f < IMP_FIELD_COUNT; f++) {
			eval_field_t *ef = &r->f[f];
			if (!(c->fields & (1u << f)) || !eval_lex_match(ef, c))
				continue;
			any = true;
			if (rd) {
				if (!rd->lists[f]) {
					rd->lists[f] = imp_arena_calloc(
						r->a, r->n_list_words,
						sizeof(uint64_t));
					if (!rd->lists[f]) {
						r->rc = IMP_ERR_NOMEM;
						return any;
					}
				}
				for (size_t w = 0; w < c->u.lists.n_words &&
						   w < r->n_list_words;
				     w++)
					rd->lists[f][w] |= c->u.lists.bits[w];
			}
			for (size_t i = 0;
			     i < ef->n_lex && o->n_hits < EVAL_MAX_HITS; i++) {
				const imp_lexhit_t *h = &ef->lex[i];
				if (!eval_lexhit_in(c, h))
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->words, h->start, h->end,
					  &s, &e);
				if (eval_add_hit(
					    r, o, m,
					    h->list < p->n_lists
						    ? p->lists[h->list].name
						    : "list",
					    (imp_field_t)f, s, e,
					    100) != IMP_OK)
					r->rc = IMP_ERR_NOMEM;
			}
		}
		return any;
	default:
		/* NOT: what a negation matched is not evidence. */
		return false;
	}
}

/* Masks every span the redact rules contributed, in one pass per field. */
static void eval_redact(eval_run_t *r, const eval_redact_t *rd, char maskc)
{
	for (int f = 0; f < IMP_FIELD_COUNT; f++) {
		eval_field_t *ef = &r->f[f];
		if (rd->det[f]) {
			for (size_t i = 0; i < ef->n_det; i++) {
				const imp_dethit_t *h = &ef->det[i];
				if (h->det >= 64 ||
				    !((rd->det[f] >> h->det) & 1) ||
				    h->confidence < rd->det_min[f][h->det])
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->plain, h->start, h->end,
					  &s, &e);
				if (e > s)
					imp_stanza_mask(r->st, (imp_field_t)f,
							s, e, maskc);
			}
		}
		if (rd->lists[f]) {
			for (size_t i = 0; i < ef->n_lex; i++) {
				const imp_lexhit_t *h = &ef->lex[i];
				uint32_t l = h->list;
				if (l / 64 >= r->n_list_words ||
				    !((rd->lists[f][l / 64] >> (l % 64)) & 1))
					continue;
				uint32_t s, e;
				eval_span(ef->src, &ef->words, h->start, h->end,
					  &s, &e);
				if (e > s)
					imp_stanza_mask(r->st, (imp_field_t)f,
							s, e, maskc);
			}
		}
	}
}

static int eval_add_match(eval_run_t *r, eval_out_t *o, const char *id,
			  const char *section, const char *notice,
			  imp_action_t action, int severity)
{
	if (o->n_m == o->cap_m) {
		size_t cap = o->cap_m ? o->cap_m * 2 : 16;
		imp_rule_match_t *nm = imp_arena_alloc(r->a, cap * sizeof(*nm));
		if (!nm)
			return IMP_ERR_NOMEM;
		if (o->n_m)
			memcpy(nm, o->m, o->n_m * sizeof(*nm));
		o->m = nm;
		o->cap_m = cap;
	}
	imp_rule_match_t *m = &o->m[o->n_m++];
	m->rule_id = id;
	m->section = section;
	m->notice = notice;
	m->action = action;
	m->severity = severity;
	return IMP_OK;
}

static void eval_add_notify(eval_out_t *o, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < o->n_notify && strcmp(o->notify[k], v[i]) != 0)
			k++;
		if (k == o->n_notify && o->n_notify < EVAL_MAX_NOTIFY)
			o->notify[o->n_notify++] = v[i];
	}
}

/* ---- the verdict block --------------------------------------------------------- */

typedef struct eval_blk_s {
	char *base; /* NULL while measuring */
	size_t off;
} eval_blk_t;

static void *eval_blk_alloc(eval_blk_t *b, size_t n, size_t align)
{
	b->off = (b->off + align - 1) & ~(align - 1);
	void *p = b->base ? b->base + b->off : NULL;
	b->off += n;
	return p;
}

static const char *eval_blk_strn(eval_blk_t *b, const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = eval_blk_alloc(b, n + 1, 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static const char *eval_blk_str(eval_blk_t *b, const char *s)
{
	return s ? eval_blk_strn(b, s, strlen(s)) : NULL;
}

/* Lays o out in b (measuring when b->base is NULL) and points v at it. */
static void eval_freeze_into(const eval_out_t *o, eval_blk_t *b,
			     imp_verdict_t *v)
{
	memset(v, 0, sizeof(*v));
	eval_blk_alloc(b, sizeof(imp_allocator_t), 16);
	v->action = o->action;
	v->flags = o->flags;
	imp_rule_match_t *m = eval_blk_alloc(b, o->n_m * sizeof(*m), 16);
	for (size_t i = 0; i < o->n_m; i++) {
		imp_rule_match_t t = o->m[i];
		t.rule_id = eval_blk_str(b, o->m[i].rule_id);
		t.section = eval_blk_str(b, o->m[i].section);
		t.notice = eval_blk_str(b, o->m[i].notice);
		if (m)
			m[i] = t;
	}
	v->rules = m;
	v->n_rules = o->n_m;
	imp_hit_t *h = eval_blk_alloc(b, o->n_hits * sizeof(*h), 16);
	for (size_t i = 0; i < o->n_hits; i++) {
		imp_hit_t t = o->hits[i];
		t.rule_id = m ? m[o->hit_rule[i]].rule_id : NULL;
		t.source = eval_blk_str(b, o->hits[i].source);
		if (h)
			h[i] = t;
	}
	v->hits = h;
	v->n_hits = o->n_hits;
	const char **nt = eval_blk_alloc(b, o->n_notify * sizeof(*nt), 16);
	for (size_t i = 0; i < o->n_notify; i++) {
		const char *s = eval_blk_str(b, o->notify[i]);
		if (nt)
			nt[i] = s;
	}
	v->notify = (const char *const *)nt;
	v->n_notify = o->n_notify;
	/* The deciding rule's strings are those of its match entry. */
	v->rule_id = NULL;
	v->section = NULL;
	/* Both passes take the same branch, so the measure is exact. */
	bool found = false;
	for (size_t i = 0; o->rule_id && i < o->n_m; i++) {
		if (o->m[i].rule_id == o->rule_id) {
			found = true;
			if (m) {
				v->rule_id = m[i].rule_id;
				v->section = m[i].section;
			}
			break;
		}
	}
	if (!found) {
		v->rule_id = eval_blk_str(b, o->rule_id);
		v->section = eval_blk_str(b, o->section);
	}
	v->notice = eval_blk_str(b, o->notice);
	v->redacted_xml =
		eval_blk_strn(b, o->redacted_xml, o->redacted_xml_len);
	v->redacted_xml_len = o->redacted_xml ? o->redacted_xml_len : 0;
	v->redacted_body = eval_blk_str(b, o->redacted_body);
	memcpy(v->policy_digest, o->digest, sizeof(v->policy_digest));
	v->stanza.kind = eval_blk_str(b, o->info.kind);
	v->stanza.type = eval_blk_str(b, o->info.type);
	v->stanza.id = eval_blk_str(b, o->info.id);
	v->stanza.from = eval_blk_str(b, o->info.from);
	v->stanza.to = eval_blk_str(b, o->info.to);
	v->stanza.thread = eval_blk_str(b, o->info.thread);
	v->stanza.body = eval_blk_str(b, o->info.body);
	v->stanza.direction = o->info.direction; /* static */
	v->explain = eval_blk_str(b, o->explain);
	v->error = eval_blk_str(b, o->error);
	v->retention = eval_blk_str(b, o->retention);
}

/* IMP_EVAL_BORROW: v points at o's own arrays and strings (the scratch
 * arena, the stanza and view text, the policy) instead of a copy. */
static void eval_lend(eval_out_t *o, imp_verdict_t *v)
{
	imp_zero(v, sizeof(*v));
	v->action = o->action;
	v->flags = o->flags;
	v->rules = o->m;
	v->n_rules = o->n_m;
	for (size_t i = 0; i < o->n_hits; i++)
		o->hits[i].rule_id = o->m[o->hit_rule[i]].rule_id;
	v->hits = o->hits;
	v->n_hits = o->n_hits;
	v->notify = o->notify;
	v->n_notify = o->n_notify;
	v->rule_id = o->rule_id;
	v->section = o->section;
	v->notice = o->notice;
	v->redacted_xml = o->redacted_xml;
	v->redacted_xml_len = o->redacted_xml ? o->redacted_xml_len : 0;
	v->redacted_body = o->redacted_body;
	memcpy(v->policy_digest, o->digest, sizeof(v->policy_digest));
	v->stanza = o->info;
	v->explain = o->explain;
	v->error = o->error;
	v->retention = o->retention;
}

static int eval_freeze(imp_ctx_t *ctx, const eval_out_t *o, imp_verdict_t *v)
{
	eval_blk_t b = {NULL, 0};
	eval_freeze_into(o, &b, v);
	char *base = imp_malloc(ctx, b.off);
	if (!base) {
		memset(v, 0, sizeof(*v));
		return IMP_ERR_NOMEM;
	}
	memcpy(base, &ctx->alloc, sizeof(imp_allocator_t));
	b.base = base;
	b.off = 0;
	eval_freeze_into(o, &b, v);
	v->priv_ = base;
	return IMP_OK;
}

/* The fail-closed verdict for errors of the call: static strings only. */
static void eval_fail_closed(imp_verdict_t *v, const imp_policy_t *p)
{
	memset(v, 0, sizeof(*v));
	v->action = IMP_REJECT;
	v->notice = eval_fallback_notice;
	v->stanza.direction = "external";
	if (p)
		memcpy(v->policy_digest, p->digest, sizeof(v->policy_digest));
	v->policy_digest[64] = '\0';
}

/* ---- the run ---------------------------------------------------------------------- */

/* Sender, recipients and direction.  st may be NULL (malformed stanza). */
static void eval_parties(eval_run_t *r)
{
	const imp_view_t *view = r->view;
	const imp_stanza_t *st = r->st;
	const char *from = view->from       ? view->from
			   : st && st->from ? st->from
					    : view->session_jid;
	const char *to = view->to ? view->to : st ? st->to : NULL;
	eval_jid(r, from, &r->from);
	/* A local session's stanza is from a local user even when the
	 * domain list is incomplete; s2s traffic never is, so that a remote
	 * server cannot make us count violations against our users. */
	if (view->origin == IMP_ORIGIN_LOCAL)
		r->from.local = r->from.bare != NULL;
	else if (view->origin == IMP_ORIGIN_REMOTE)
		r->from.local = false;
	size_t n_addr = st ? st->n_addresses : 0;
	r->rcpt = imp_arena_calloc(r->a, n_addr + 1, sizeof(*r->rcpt));
	if (!r->rcpt) {
		r->rc = IMP_ERR_NOMEM;
		return;
	}
	r->n_rcpt = 0;
	/* No `to` (RFC 6120 10.3): the stanza is addressed to the sender's
	 * own account, i.e. handled by the sender's server, so the
	 * recipient side is the sender's bare domain -- internal for a
	 * local user's presence broadcast, never inbound. */
	bool to_local = r->from.local;
	if (to) {
		eval_jid(r, to, &r->rcpt[r->n_rcpt]);
		to_local = r->rcpt[r->n_rcpt].local;
		r->n_rcpt++;
	}
	for (size_t i = 0; i < n_addr; i++)
		eval_jid(r, st->addresses[i], &r->rcpt[r->n_rcpt++]);
	bool fl = r->from.local;
	r->dir = fl && to_local    ? IMP_DIR_INTERNAL
		 : fl && !to_local ? IMP_DIR_OUTBOUND
		 : to_local        ? IMP_DIR_INBOUND
				   : IMP_DIR_EXTERNAL;
	if (view->session_jid) {
		/* Usually the stanza's from is the session JID: reuse it. */
		if (r->from.raw && r->from.bare &&
		    (r->from.raw == view->session_jid ||
		     strcmp(r->from.raw, view->session_jid) == 0)) {
			r->session_bare = r->from.bare;
		} else {
			eval_jid_t s;
			eval_jid(r, view->session_jid, &s);
			r->session_bare = s.bare;
		}
	}
}

static const char *eval_kind_name(const imp_stanza_t *st)
{
	switch (st->kind) {
	case IMP_KIND_MESSAGE:
		return "message";
	case IMP_KIND_PRESENCE:
		return "presence";
	case IMP_KIND_IQ:
		return "iq";
	default:
		return st->name;
	}
}

/* Decides the action of the collected matches (precedence, first rule of
 * the strongest action). */
static void eval_decide(const imp_policy_t *p, eval_out_t *o)
{
	imp_action_t best = IMP_ALLOW;
	size_t who = SIZE_MAX;
	for (size_t i = 0; i < o->n_m; i++) {
		if (o->m[i].action > best) {
			best = o->m[i].action;
			who = i;
		}
	}
	o->action = best;
	if (who == SIZE_MAX)
		return;
	o->rule_id = o->m[who].rule_id;
	o->section = o->m[who].section;
	o->notice = o->m[who].notice;
	if (!o->notice && best == IMP_REJECT)
		o->notice = p->default_notice ? p->default_notice
					      : eval_fallback_notice;
}

/* Why a rule cannot match given the content found (NULL: it may).  Only
 * necessary conditions are tested, so a rule it lets through is judged by
 * its full tree. */
static const char *eval_prefilter(const eval_run_t *r, const eval_pre_t *pr)
{
	if (pr->req_det && !(pr->req_det & r->any_det))
		return "detectors";
	if (pr->req_lists) {
		if (!r->lex_all)
			return "word lists";
		size_t n = pr->req_nw < r->n_list_words ? pr->req_nw
							: r->n_list_words;
		for (size_t w = 0; w < n; w++)
			if (pr->req_lists[w] & r->lex_all[w])
				return NULL;
		return "word lists";
	}
	return NULL;
}

static bool eval_rule(eval_run_t *r, const imp_rule_t *rule)
{
	EVAL_EX(r, 0, "rule %s (%s:%u):", rule->id,
		rule->file ? rule->file : "?", rule->line);
	bool held = rule->when ? eval_cond(r, rule->when, 1) : true;
	EVAL_EX(r, 1, "=> %s", held ? "MATCHED" : "not matched");
	return held && !r->rc;
}

static int eval_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int eval_body(eval_run_t *r, eval_out_t *o, char *err)
{
	imp_eval_t *ev = r->ev;
	const imp_policy_t *p = r->p;
	imp_stanza_limits_t lim;
	memset(&lim, 0, sizeof(lim));
	int rc = imp_stanza_parser_parse(ev->sp, r->a, r->view->xml,
					 r->view->xml_len, &lim, &r->st, err,
					 256);
	if (rc != IMP_OK || !r->st) {
		if (rc == IMP_ERR_NOMEM)
			return rc;
		r->st = NULL;
		eval_parties(r);
		if (r->rc)
			return r->rc;
		o->flags |= IMP_VF_MALFORMED;
		o->error = err[0] ? err : "malformed XML";
		o->info.from = r->from.raw;
		o->info.to = r->n_rcpt ? r->rcpt[0].raw : NULL;
		o->info.direction = eval_dir_name(r->dir);
		imp_action_t a = p->on_malformed;
		if (eval_add_match(r, o, "policy.malformed", NULL,
				   a == IMP_REJECT ? p->default_notice : NULL,
				   a, 1) != IMP_OK)
			return IMP_ERR_NOMEM;
		eval_decide(p, o);
		EVAL_EX(r, 0, "stanza: malformed (%s) -> %s", o->error,
			imp_action_name(a));
		return IMP_OK;
	}
	imp_stanza_t *st = r->st;
	eval_parties(r);
	if (r->rc)
		return r->rc;
	o->info.kind = eval_kind_name(st);
	o->info.type = st->type;
	o->info.id = st->id;
	o->info.from = r->from.raw;
	o->info.to = r->n_rcpt ? r->rcpt[0].raw : NULL;
	o->info.thread = st->thread;
	o->info.body = st->fields[IMP_FIELD_BODY].present
			       ? st->fields[IMP_FIELD_BODY].text
			       : NULL;
	o->info.direction = eval_dir_name(r->dir);
	EVAL_EX(r, 0, "stanza: %s type=%s from=%s to=%s direction=%s",
		o->info.kind ? o->info.kind : "?", eval_type(st),
		r->from.bare ? r->from.bare : "(none)",
		r->n_rcpt && r->rcpt[0].bare ? r->rcpt[0].bare : "(none)",
		o->info.direction);

	/* The escalation gate: a suspended local user is refused first. */
	const imp_escalation_t *esc = &p->escalation;
	unsigned esc_kinds = esc->kinds ? esc->kinds : IMP_KIND_MESSAGE;
	if (esc->enabled && r->from.local && r->from.bare &&
	    (st->kind & esc_kinds)) {
		imp_state_t *state = eval_state(ev);
		if (!state)
			return IMP_ERR_NOMEM;
		int64_t left =
			imp_state_suspended(state, r->from.bare, r->now_s);
		if (left > 0) {
			const char *notice = esc->notice ? esc->notice
					     : p->default_notice
						     ? p->default_notice
						     : eval_fallback_notice;
			if (eval_add_match(r, o, "escalation.suspended",
					   esc->section, notice, IMP_REJECT,
					   3) != IMP_OK)
				return IMP_ERR_NOMEM;
			o->flags |= IMP_VF_SUSPENDED;
			eval_decide(p, o);
			EVAL_EX(r, 0,
				"escalation: sender suspended for %lld more "
				"seconds -> reject",
				(long long)left);
			return IMP_OK;
		}
	}

	/* Which rules are candidates, and what content they need: the kind
	 * index has it precomputed. */
	unsigned kind = st->kind ? st->kind : IMP_KIND_OTHER;
	int ki = __builtin_ctz(kind);
	const eval_kindix_t *kx = &ev->kix[ki < EVAL_KINDS ? ki : 3];
	r->det_want = kx->det_fields ? kx->det_want : 0;
	r->det_fields = kx->det_fields;
	r->want_words = kx->want_words && kx->word_fields;
	r->word_fields = kx->word_fields;
	r->n_list_words = (p->n_lists + 63) / 64;
	if (!r->n_list_words)
		r->n_list_words = 1;
	if (r->det_want || r->want_words) {
		for (int f = 0; f < IMP_FIELD_COUNT; f++) {
			if (!((r->det_fields | r->word_fields) & (1u << f)))
				continue;
			eval_scan_field(r, (imp_field_t)f);
			if (r->rc)
				return r->rc;
		}
	}

	/* Every candidate rule.  The fast path walks only the rules the
	 * kind index and the content prefilters leave, then restores
	 * policy order; explain walks all rules to say why each was
	 * skipped. */
	uint32_t *matched = imp_arena_alloc(
		r->a, (p->n_rules ? p->n_rules : 1) * sizeof(uint32_t));
	if (!matched)
		return IMP_ERR_NOMEM;
	size_t n_matched = 0;
	if (r->ex) {
		for (size_t i = 0; i < p->n_rules; i++) {
			const imp_rule_t *rule = &p->rules[i];
			unsigned kinds = rule->kinds ? rule->kinds : ~0u;
			if (!(kinds & kind)) {
				EVAL_EX(r, 0,
					"rule %s: skipped (not for %s stanzas)",
					rule->id,
					o->info.kind ? o->info.kind : "?");
				continue;
			}
			const char *why = eval_prefilter(r, &ev->pre[i]);
			if (why) {
				EVAL_EX(r, 0,
					"rule %s: skipped (its required %s "
					"found nothing)",
					rule->id, why);
				continue;
			}
			if (eval_rule(r, rule))
				matched[n_matched++] = (uint32_t)i;
			if (r->rc)
				return r->rc;
		}
	} else {
		for (size_t k = 0; k < kx->n_always; k++)
			if (eval_rule(r, &p->rules[kx->always[k]]))
				matched[n_matched++] = kx->always[k];
		bool sorted = true;
		if (r->any_lex) {
			for (size_t k = 0; k < kx->n_words; k++) {
				uint32_t i = kx->words[k];
				if (!eval_prefilter(r, &ev->pre[i]) &&
				    eval_rule(r, &p->rules[i])) {
					sorted = false;
					matched[n_matched++] = i;
				}
			}
		}
		if (r->any_det) {
			for (size_t k = 0; k < kx->n_det; k++) {
				uint32_t i = kx->det[k];
				if (!eval_prefilter(r, &ev->pre[i]) &&
				    eval_rule(r, &p->rules[i])) {
					sorted = false;
					matched[n_matched++] = i;
				}
			}
		}
		if (r->rc)
			return r->rc;
		if (!sorted)
			qsort(matched, n_matched, sizeof(*matched),
			      eval_u32_cmp);
	}

	/* Evidence, spans, effective actions. */
	eval_redact_t *rd = NULL;
	bool escalate = false;
	for (size_t k = 0; k < n_matched; k++) {
		const imp_rule_t *rule = &p->rules[matched[k]];
		imp_action_t act = rule->action;
		bool redact = act == IMP_REDACT;
		if (redact && !rd) {
			rd = imp_arena_calloc(r->a, 1, sizeof(*rd));
			if (!rd)
				return IMP_ERR_NOMEM;
		}
		uint32_t mi = (uint32_t)o->n_m;
		if (eval_add_match(r, o, rule->id, rule->section, rule->notice,
				   act, rule->severity) != IMP_OK)
			return IMP_ERR_NOMEM;
		bool spans = rule->when ? eval_collect(r, o, mi, rule->when,
						       redact ? rd : NULL)
					: false;
		if (r->rc)
			return r->rc;
		if (redact && !spans) {
			o->m[mi].action = IMP_FLAG;
			EVAL_EX(r, 0,
				"rule %s: redact without spans acts as flag",
				rule->id);
		}
		if (rule->escalate && o->m[mi].action != IMP_ALLOW)
			escalate = true;
		eval_add_notify(o, rule->notify, rule->n_notify);
	}
	if (r->uninspectable) {
		o->flags |= IMP_VF_UNINSPECTABLE;
		if (p->on_uninspectable != IMP_OUTCOME_ALLOW) {
			imp_action_t a =
				p->on_uninspectable == IMP_OUTCOME_REJECT
					? IMP_REJECT
					: IMP_FLAG;
			if (eval_add_match(r, o, "policy.uninspectable", NULL,
					   a == IMP_REJECT ? p->default_notice
							   : NULL,
					   a, 2) != IMP_OK)
				return IMP_ERR_NOMEM;
		}
		EVAL_EX(r, 0, "content could not be fully inspected -> %s",
			p->on_uninspectable == IMP_OUTCOME_REJECT ? "reject"
			: p->on_uninspectable == IMP_OUTCOME_ALLOW
				? "allow (configured)"
				: "flag");
	}
	eval_decide(p, o);
	/* Retention: the deciding rule's class, else the first matched rule
	 * (policy order) that names one; imp_eval_run falls back to the
	 * policy default.  The loader gives a rule without `retention` the
	 * default's pointer, so that pointer means "none of its own". */
	for (size_t k = 0; k < n_matched && o->rule_id; k++) {
		const imp_rule_t *rule = &p->rules[matched[k]];
		if (rule->id == o->rule_id) {
			if (rule->retention != p->retention_default)
				o->retention = rule->retention;
			break;
		}
	}
	for (size_t k = 0; k < n_matched && !o->retention; k++)
		if (p->rules[matched[k]].retention != p->retention_default)
			o->retention = p->rules[matched[k]].retention;

	if (o->action == IMP_REDACT && rd) {
		const imp_ftext_t *body = &st->fields[IMP_FIELD_BODY];
		/* The stanza info keeps the original body. */
		o->info.body =
			body->present
				? imp_arena_strndup(r->a, body->text, body->len)
				: NULL;
		if (body->present && !o->info.body)
			return IMP_ERR_NOMEM;
		eval_redact(r, rd, p->mask && p->mask[0] ? p->mask[0] : '*');
		imp_buf_t xb;
		imp_buf_init(&xb, NULL, r->a);
		imp_stanza_serialize(st, &xb);
		if (xb.oom)
			return IMP_ERR_NOMEM;
		o->redacted_xml = xb.data ? xb.data : "";
		o->redacted_xml_len = xb.len;
		o->redacted_body = body->present ? body->text : NULL;
	}

	/* Escalation and notification. */
	if (escalate && esc->enabled && r->from.local && r->from.bare &&
	    !r->dry && o->action != IMP_ALLOW) {
		imp_state_t *state = eval_state(ev);
		if (!state)
			return IMP_ERR_NOMEM;
		bool suspended = false;
		uint32_t n = imp_state_violation(state, r->from.bare, r->now_s,
						 esc->within_s, esc->violations,
						 esc->suspend_s, &suspended);
		EVAL_EX(r, 0, "escalation: violation %u of %u within %us%s", n,
			esc->violations, esc->within_s,
			suspended ? " -> sender suspended" : "");
		if (suspended) {
			o->flags |= IMP_VF_ESCALATED;
			eval_add_notify(o, esc->notify, esc->n_notify);
			imp_log(ev->ctx, IMP_LOG_INFO,
				"escalation: %s suspended for %us",
				r->from.bare, esc->suspend_s);
		}
	}
	if (o->n_notify)
		o->flags |= IMP_VF_NOTIFY;
	return IMP_OK;
}

int imp_eval_run(imp_eval_t *ev, const imp_policy_t *p, const imp_view_t *view,
		 unsigned flags, imp_verdict_t *out)
{
	if (!out)
		return IMP_ERR_INVALID;
	if (!ev || !p || !view || view->version != IMP_VIEW_VERSION ||
	    !view->xml) {
		eval_fail_closed(out, p);
		return IMP_ERR_INVALID;
	}
	/* every way out fills all of *out */
	imp_arena_reset(ev->scratch);
	int rc = eval_prepare(ev, p);
	if (rc != IMP_OK) {
		eval_fail_closed(out, p);
		return rc == IMP_ERR_NOMEM ? rc : IMP_ERR_INTERNAL;
	}

	eval_run_t r;
	imp_zero(&r, sizeof(r));
	r.ev = ev;
	r.p = p;
	r.view = view;
	r.a = ev->scratch;
	r.flags = flags;
	r.dry = (flags & IMP_EVAL_DRY_RUN) != 0;
	r.now_us = view->time_us ? view->time_us : imp_ctx_now(ev->ctx);
	r.now_s = r.now_us >= 0 ? r.now_us / 1000000
				: -((-r.now_us + 999999) / 1000000);
	imp_buf_t ex;
	if (flags & IMP_EVAL_EXPLAIN) {
		imp_buf_init(&ex, NULL, ev->scratch);
		r.ex = &ex;
		eval_ex(&r, 0, "policy: %s %s (digest %s)",
			p->name ? p->name : "?", p->version ? p->version : "",
			p->digest);
	}

	eval_out_t *o = imp_arena_calloc(ev->scratch, 1, sizeof(*o));
	char *err = imp_arena_alloc(ev->scratch, 256);
	if (!o || !err) {
		eval_fail_closed(out, p);
		return IMP_ERR_NOMEM;
	}
	err[0] = '\0';
	memcpy(o->digest, p->digest, sizeof(o->digest));
	o->digest[64] = '\0';
	o->info.direction = "external";

	rc = eval_body(&r, o, err);
	if (rc != IMP_OK) {
		eval_fail_closed(out, p);
		return rc;
	}
	if (!o->retention)
		o->retention = p->retention_default;
	if (r.ex) {
		eval_ex(&r, 0, "verdict: %s%s%s", imp_action_name(o->action),
			o->rule_id ? " by " : "", o->rule_id ? o->rule_id : "");
		if (ex.oom) {
			eval_fail_closed(out, p);
			return IMP_ERR_NOMEM;
		}
		o->explain = ex.data;
	}
	if (flags & IMP_EVAL_BORROW) {
		eval_lend(o, out);
		return IMP_OK;
	}
	rc = eval_freeze(ev->ctx, o, out);
	if (rc != IMP_OK) {
		eval_fail_closed(out, p);
		return rc;
	}
	return IMP_OK;
}
