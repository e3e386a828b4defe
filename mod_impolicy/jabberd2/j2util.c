/*
 * j2util.c -- host-independent helpers of the jabberd2 connector.
 */
#include "j2util.h"

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
