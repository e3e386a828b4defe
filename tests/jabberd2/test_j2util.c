/*
 * test_j2util.c -- unit tests of the connector's host-independent helpers:
 * the handler-time histogram behind the "impolicy: stats" line.
 */
#include "check.h"
#include "j2util.h"

#include <stdlib.h>

static void test_hist(void)
{
	j2_hist_t *h = calloc(1, sizeof *h);
	int i;

	CHECK(h != NULL);
	if (!h)
		return;
	CHECK_INT(j2_hist_quantile(h, 0.5), 0);
	for (i = 0; i < 98; i++)
		j2_hist_add(h, 4000 + (uint64_t)i); /* ~4 us */
	j2_hist_add(h, 60000);                      /* 60 us */
	j2_hist_add(h, 5000000);                    /* 5 ms: overflow bucket */
	CHECK_INT(h->count, 100);
	CHECK_INT(j2_hist_quantile(h, 0.5), 4100); /* bucket upper bound */
	CHECK_INT(j2_hist_quantile(h, 0.99), 60100);
	CHECK_INT(j2_hist_quantile(h, 1.0), 5000000);
	CHECK_INT(h->max_ns, 5000000);
	free(h);
}

int main(void)
{
	test_hist();
	return CHECK_DONE();
}
