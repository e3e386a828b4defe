/*
 * j2util.h -- host-independent helpers of the jabberd2 connector: the
 * handler-time histogram.
 */
#ifndef IMP_J2UTIL_H
#define IMP_J2UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fixed buckets of 100 ns up to 1 ms, plus overflow. */
#define J2_HIST_BUCKETS 10000

typedef struct j2_hist_s {
	uint32_t bucket[J2_HIST_BUCKETS + 1];
	uint64_t count;
	uint64_t max_ns;
} j2_hist_t;

void j2_hist_add(j2_hist_t *h, uint64_t ns);
/* The q-quantile (0 < q <= 1) in nanoseconds: the upper bound of the
 * bucket holding it (max_ns for the overflow bucket); 0 when empty. */
uint64_t j2_hist_quantile(const j2_hist_t *h, double q);

#endif /* IMP_J2UTIL_H */
