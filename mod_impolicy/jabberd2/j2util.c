/*
 * j2util.c -- host-independent helpers of the jabberd2 connector.
 */
#include "j2util.h"

#include <string.h>

static int j2_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

#define J2_SESSION_NS "http://jabberd.jabberstudio.org/ns/session/1.0"

typedef struct j2_attr_s {
	size_t ws, name, nlen, val, vlen, end;
} j2_attr_t;

/* Reads the next attribute of a start tag at *i; 0 at the tag's end or on
 * anything unexpected. */
static int j2_next_attr(const char *in, size_t len, size_t *i, j2_attr_t *a)
{
	size_t k = *i;
	char q;

	a->ws = k;
	while (k < len && j2_space(in[k]))
		k++;
	if (k >= len || in[k] == '>' || in[k] == '/')
		return 0;
	a->name = k;
	while (k < len && in[k] != '=' && !j2_space(in[k]) && in[k] != '>')
		k++;
	a->nlen = k - a->name;
	while (k < len && j2_space(in[k]))
		k++;
	if (k >= len || in[k] != '=')
		return 0;
	k++;
	while (k < len && j2_space(in[k]))
		k++;
	if (k >= len || (in[k] != '\'' && in[k] != '"'))
		return 0;
	q = in[k++];
	a->val = k;
	while (k < len && in[k] != q)
		k++;
	if (k >= len)
		return 0;
	a->vlen = k - a->val;
	a->end = *i = k + 1;
	return 1;
}

size_t j2_strip_sm_attrs(const char *in, size_t len, char *out)
{
	size_t i = 0, o = 0, attrs, pfx = 0, plen = 0;
	const size_t ulen = sizeof J2_SESSION_NS - 1;
	j2_attr_t a;

	if (len == 0 || in[0] != '<') {
		memcpy(out, in, len);
		return len;
	}
	i = 1;
	while (i < len && !j2_space(in[i]) && in[i] != '>' && in[i] != '/')
		i++;
	attrs = i;
	/* the prefix bound to the sm's session namespace, if declared here */
	while (j2_next_attr(in, len, &i, &a))
		if (a.nlen > 6 && memcmp(in + a.name, "xmlns:", 6) == 0 &&
		    a.vlen == ulen &&
		    memcmp(in + a.val, J2_SESSION_NS, ulen) == 0) {
			pfx = a.name + 6;
			plen = a.nlen - 6;
		}
	if (!plen) {
		memcpy(out, in, len);
		return len;
	}
	memcpy(out, in, attrs);
	o = attrs;
	i = attrs;
	a.ws = i;
	while (j2_next_attr(in, len, &i, &a)) {
		int drop = (a.nlen > plen + 1 &&
			    memcmp(in + a.name, in + pfx, plen) == 0 &&
			    in[a.name + plen] == ':') ||
			   (a.nlen == plen + 6 &&
			    memcmp(in + a.name, "xmlns:", 6) == 0 &&
			    memcmp(in + a.name + 6, in + pfx, plen) == 0);

		if (!drop) {
			memcpy(out + o, in + a.ws, a.end - a.ws);
			o += a.end - a.ws;
		}
	}
	/* the rest (or a tag we do not understand) verbatim */
	memcpy(out + o, in + a.ws, len - a.ws);
	return o + (len - a.ws);
}

void j2_hist_add(j2_hist_t *h, uint64_t ns)
{
	uint64_t b = ns / 100;

	if (b > J2_HIST_BUCKETS)
		b = J2_HIST_BUCKETS;
	h->bucket[b]++;
	h->count++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

uint64_t j2_hist_quantile(const j2_hist_t *h, double q)
{
	uint64_t want, seen = 0;
	size_t b;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count);
	if (want < 1)
		want = 1;
	if (want > h->count)
		want = h->count;
	for (b = 0; b <= J2_HIST_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen >= want)
			break;
	}
	if (b >= J2_HIST_BUCKETS)
		return h->max_ns;
	return ((uint64_t)b + 1) * 100 < h->max_ns ? ((uint64_t)b + 1) * 100
						   : h->max_ns;
}
