/*
 * verdict.c -- what the caller does with a verdict: release it, write it
 * as JSON, name its enums; and the ISO-8601 time parser the tools use.
 *
 * Invariants:
 *  - A verdict's memory is one block that eval.c allocates (priv_); the
 *    block begins with a copy of the context's imp_allocator_t, so that
 *    imp_verdict_clear() needs no context and a verdict can outlive the
 *    policy and the evaluator that produced it.  Every pointer inside the
 *    verdict points into that block (or to static strings).
 *  - imp_verdict_clear() leaves a zeroed struct and is idempotent.
 *  - The JSON writer escapes every string with imp_buf_json_str (invalid
 *    UTF-8 becomes U+FFFD), so the output is always valid JSON.
 *
 * Threading: all functions are reentrant; a verdict belongs to one thread
 * at a time.
 *
 * Reports: return codes only; nothing is logged (verdicts hold message
 * text).
 */
#include "base.h"
#include "tz.h"

#include <inttypes.h>
#include <string.h>

const char *imp_action_name(imp_action_t a)
{
	switch (a) {
	case IMP_ALLOW:
		return "allow";
	case IMP_FLAG:
		return "flag";
	case IMP_REDACT:
		return "redact";
	case IMP_REJECT:
		return "reject";
	}
	return "unknown";
}

const char *imp_field_name(imp_field_t f)
{
	switch (f) {
	case IMP_FIELD_BODY:
		return "body";
	case IMP_FIELD_SUBJECT:
		return "subject";
	case IMP_FIELD_XHTML:
		return "xhtml";
	case IMP_FIELD_STATUS:
		return "status";
	case IMP_FIELD_OTHER:
		return "other";
	case IMP_FIELD_COUNT:
		break;
	}
	return "unknown";
}

void imp_verdict_clear(imp_verdict_t *v)
{
	if (!v)
		return;
	if (v->priv_) {
		imp_allocator_t a;
		memcpy(&a, v->priv_, sizeof(a));
		a.free(v->priv_, a.ud);
	}
	imp_zero(v, sizeof(*v));
}

/* ---- JSON ----------------------------------------------------------------- */

static void verdict_json_str(imp_buf_t *b, const char *s)
{
	if (s)
		imp_buf_json_str(b, s, strlen(s));
	else
		imp_buf_puts(b, "null");
}

static void verdict_json_key(imp_buf_t *b, const char *key, bool *first)
{
	if (!*first)
		imp_buf_putc(b, ',');
	*first = false;
	imp_buf_json_str(b, key, strlen(key));
	imp_buf_putc(b, ':');
}

int imp_verdict_json(imp_ctx_t *ctx, const imp_verdict_t *v, int with_explain,
		     char **out, size_t *len)
{
	if (!ctx || !v || !out)
		return IMP_ERR_INVALID;
	*out = NULL;
	if (len)
		*len = 0;
	imp_buf_t b;
	imp_buf_init(&b, ctx, NULL);
	bool first = true;
	imp_buf_putc(&b, '{');

	verdict_json_key(&b, "verdict", &first);
	verdict_json_str(&b, imp_action_name(v->action));

	verdict_json_key(&b, "rule", &first);
	verdict_json_str(&b, v->rule_id);
	verdict_json_key(&b, "section", &first);
	verdict_json_str(&b, v->section);
	verdict_json_key(&b, "notice", &first);
	verdict_json_str(&b, v->notice);

	verdict_json_key(&b, "rules", &first);
	imp_buf_putc(&b, '[');
	for (size_t i = 0; i < v->n_rules; i++) {
		if (i)
			imp_buf_putc(&b, ',');
		verdict_json_str(&b, v->rules[i].rule_id);
	}
	imp_buf_putc(&b, ']');

	verdict_json_key(&b, "matches", &first);
	imp_buf_putc(&b, '[');
	for (size_t i = 0; i < v->n_rules; i++) {
		const imp_rule_match_t *m = &v->rules[i];
		static const char *const sev[] = {"low", "medium", "high",
						  "critical"};
		if (i)
			imp_buf_putc(&b, ',');
		imp_buf_puts(&b, "{\"id\":");
		verdict_json_str(&b, m->rule_id);
		imp_buf_puts(&b, ",\"section\":");
		verdict_json_str(&b, m->section);
		imp_buf_puts(&b, ",\"action\":");
		verdict_json_str(&b, imp_action_name(m->action));
		imp_buf_puts(&b, ",\"severity\":");
		verdict_json_str(&b, m->severity >= 0 && m->severity <= 3
					     ? sev[m->severity]
					     : "low");
		imp_buf_putc(&b, '}');
	}
	imp_buf_putc(&b, ']');

	verdict_json_key(&b, "hits", &first);
	imp_buf_putc(&b, '[');
	for (size_t i = 0; i < v->n_hits; i++) {
		const imp_hit_t *h = &v->hits[i];
		if (i)
			imp_buf_putc(&b, ',');
		imp_buf_puts(&b, "{\"source\":");
		verdict_json_str(&b, h->source);
		imp_buf_puts(&b, ",\"field\":");
		verdict_json_str(&b, imp_field_name(h->field));
		imp_buf_printf(&b,
			       ",\"start\":%" PRIu32 ",\"end\":%" PRIu32
			       ",\"confidence\":%u,\"rule\":",
			       h->start, h->end, (unsigned)h->confidence);
		verdict_json_str(&b, h->rule_id);
		imp_buf_putc(&b, '}');
	}
	imp_buf_putc(&b, ']');

	verdict_json_key(&b, "flags", &first);
	{
		static const struct {
			unsigned bit;
			const char *name;
		} names[] = {
			{IMP_VF_NOTIFY, "notify"},
			{IMP_VF_SUSPENDED, "suspended"},
			{IMP_VF_UNINSPECTABLE, "uninspectable"},
			{IMP_VF_MALFORMED, "malformed"},
			{IMP_VF_ESCALATED, "escalated"},
		};
		bool f1 = true;
		imp_buf_putc(&b, '[');
		for (size_t i = 0; i < IMP_ARRAY_LEN(names); i++) {
			if (!(v->flags & names[i].bit))
				continue;
			if (!f1)
				imp_buf_putc(&b, ',');
			f1 = false;
			verdict_json_str(&b, names[i].name);
		}
		imp_buf_putc(&b, ']');
	}

	verdict_json_key(&b, "notify", &first);
	imp_buf_putc(&b, '[');
	for (size_t i = 0; i < v->n_notify; i++) {
		if (i)
			imp_buf_putc(&b, ',');
		verdict_json_str(&b, v->notify[i]);
	}
	imp_buf_putc(&b, ']');

	/* The retention class the archive files this stanza under (API
	 * 1.1); null when neither a rule nor the policy names one. */
	verdict_json_key(&b, "retention", &first);
	verdict_json_str(&b, v->retention);

	if (v->action == IMP_REDACT && v->redacted_body) {
		verdict_json_key(&b, "redacted_body", &first);
		verdict_json_str(&b, v->redacted_body);
	}

	verdict_json_key(&b, "policy_digest", &first);
	verdict_json_str(&b, v->policy_digest);

	verdict_json_key(&b, "stanza", &first);
	{
		const imp_stanza_info_t *s = &v->stanza;
		imp_buf_puts(&b, "{\"kind\":");
		verdict_json_str(&b, s->kind);
		imp_buf_puts(&b, ",\"type\":");
		verdict_json_str(&b, s->type);
		imp_buf_puts(&b, ",\"from\":");
		verdict_json_str(&b, s->from);
		imp_buf_puts(&b, ",\"to\":");
		verdict_json_str(&b, s->to);
		imp_buf_puts(&b, ",\"id\":");
		verdict_json_str(&b, s->id);
		imp_buf_puts(&b, ",\"thread\":");
		verdict_json_str(&b, s->thread);
		imp_buf_puts(&b, ",\"direction\":");
		verdict_json_str(&b, s->direction);
		imp_buf_putc(&b, '}');
	}

	if (v->error) {
		verdict_json_key(&b, "error", &first);
		verdict_json_str(&b, v->error);
	}
	if (with_explain && v->explain) {
		verdict_json_key(&b, "explain", &first);
		verdict_json_str(&b, v->explain);
	}
	imp_buf_putc(&b, '}');

	if (b.oom || !b.data) {
		imp_buf_free(&b);
		return IMP_ERR_NOMEM;
	}
	*out = b.data;
	if (len)
		*len = b.len;
	return IMP_OK;
}

/* ---- ISO-8601 times ----------------------------------------------------------- */

/* Reads exactly n digits at *p into *out. */
static bool verdict_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

int imp_time_parse(imp_ctx_t *ctx, const char *s, const char *tz,
		   int64_t *out_us)
{
	if (!ctx || !s || !out_us)
		return IMP_ERR_INVALID;
	const char *p = s;
	imp_tm_t tm;
	memset(&tm, 0, sizeof(tm));
	int64_t frac_us = 0;
	if (!verdict_digits(&p, 4, &tm.year) || *p++ != '-' ||
	    !verdict_digits(&p, 2, &tm.mon) || *p++ != '-' ||
	    !verdict_digits(&p, 2, &tm.mday))
		return IMP_ERR_INVALID;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!verdict_digits(&p, 2, &tm.hour) || *p++ != ':' ||
		    !verdict_digits(&p, 2, &tm.min))
			return IMP_ERR_INVALID;
		if (*p == ':') {
			p++;
			if (!verdict_digits(&p, 2, &tm.sec))
				return IMP_ERR_INVALID;
			if (*p == '.' || *p == ',') {
				p++;
				int64_t scale = 100000;
				if (*p < '0' || *p > '9')
					return IMP_ERR_INVALID;
				while (*p >= '0' && *p <= '9') {
					frac_us += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
	}
	if (tm.mon < 1 || tm.mon > 12 || tm.mday < 1 || tm.mday > 31 ||
	    tm.hour > 24 || tm.min > 59 || tm.sec > 60 ||
	    (tm.hour == 24 && (tm.min || tm.sec || frac_us)))
		return IMP_ERR_INVALID;
	{
		/* Reject dates that do not exist (2026-02-30). */
		int y, m, d;
		imp_civil_from_days(
			imp_days_from_civil(tm.year, tm.mon, tm.mday), &y, &m,
			&d);
		if (y != tm.year || m != tm.mon || d != tm.mday)
			return IMP_ERR_INVALID;
	}

	int64_t secs;
	if (*p == 'Z' || *p == 'z' || *p == '+' || *p == '-') {
		int32_t off = 0;
		if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1, oh, om = 0;
			p++;
			if (!verdict_digits(&p, 2, &oh))
				return IMP_ERR_INVALID;
			if (*p == ':')
				p++;
			if (*p && !verdict_digits(&p, 2, &om))
				return IMP_ERR_INVALID;
			if (oh > 23 || om > 59)
				return IMP_ERR_INVALID;
			off = sign * (oh * 3600 + om * 60);
		} else {
			p++;
		}
		if (*p)
			return IMP_ERR_INVALID;
		secs = imp_days_from_civil(tm.year, tm.mon, tm.mday) * 86400 +
		       tm.hour * 3600 + tm.min * 60 + tm.sec - off;
	} else {
		if (*p)
			return IMP_ERR_INVALID;
		if (!tz || strcmp(tz, "UTC") == 0) {
			secs = imp_tz_mktime(imp_tz_utc(), &tm);
		} else {
			/* The zone is read for this call only; tools parse a
			 * handful of times, so no cache is worth its state. */
			imp_arena_t *a = imp_arena_new(ctx, 4096);
			if (!a)
				return IMP_ERR_NOMEM;
			const imp_tz_t *z = NULL;
			char err[256];
			int rc = imp_tz_load(a, NULL, tz, &z, err, sizeof(err));
			if (rc != IMP_OK) {
				imp_arena_free(a);
				return rc == IMP_ERR_NOMEM ? rc
							   : IMP_ERR_INVALID;
			}
			secs = imp_tz_mktime(z, &tm);
			imp_arena_free(a);
		}
	}
	*out_us = secs * 1000000 + frac_us;
	return IMP_OK;
}
