/*
 * test_j2util.c -- unit tests of the connector's host-independent helpers:
 * the root-tag cleaner (what is judged and archived must be the stanza as
 * the client sent it, without the sm's session attributes) and the
 * handler-time histogram behind the "impolicy: stats" line.
 */
#include "check.h"
#include "j2util.h"

#include <stdlib.h>

#define SESS "http://jabberd.jabberstudio.org/ns/session/1.0"

static void strip(const char *in, const char *want)
{
	char out[512];
	size_t n = j2_strip_sm_attrs(in, strlen(in), out);

	CHECK(n <= strlen(in));
	out[n] = '\0';
	CHECK_STR(out, want);
}

static void test_strip(void)
{
	/* as c2s hands it to the sm (prefix sc) */
	strip("<message xmlns:sc='" SESS "' xmlns='jabber:client' "
	      "sc:sm='4ac5' sc:c2s='11' id='m1' to='b@x'><body>x</body>"
	      "</message>",
	      "<message xmlns='jabber:client' id='m1' to='b@x'><body>x</body>"
	      "</message>");
	/* as pkt_create makes it (prefix sm), self-closing */
	strip("<presence xmlns:sm='" SESS "' sm:sm='1'/>", "<presence/>");
	/* double quotes, '>' inside a value, a child with that prefix kept */
	strip("<iq xmlns:sm=\"" SESS "\" sm:x=\"a>b\" id=\"a\"><sm:x/></iq>",
	      "<iq id=\"a\"><sm:x/></iq>");
	/* a prefix bound to another namespace is not touched */
	strip("<message xmlns:sm='urn:other' sm:a='1'><body/></message>",
	      "<message xmlns:sm='urn:other' sm:a='1'><body/></message>");
	/* nothing to do, truncated, empty, not a tag */
	strip("<iq id='a'>", "<iq id='a'>");
	strip("<iq xmlns:sc='" SESS "' id='a", "<iq id='a");
	strip("", "");
	strip("text", "text");
}

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
	test_strip();
	test_hist();
	return CHECK_DONE();
}
