/*
 * fuzz_stanza.c -- libFuzzer harness for the stanza parser and splitter.
 *
 * Runs imp_xml_split over the input and, for each stanza it finds (or the
 * whole input when there is none), imp_stanza_parse, a mask of every field,
 * and imp_stanza_serialize.  Besides memory errors (ASan/UBSan) it checks
 * the contracts: a parse error leaves a reason, masking keeps field
 * lengths, and a serialised stanza parses again to the same facts.
 * Anything else is a bug: __builtin_trap().
 */
#include "stanza.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_s {
	imp_ctx_t *ctx;
	imp_arena_t *arena;
	size_t n;
} fuzz_t;

#define FUZZ_ASSERT(c)                    \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

static bool fuzz_same(const imp_stanza_t *x, const imp_stanza_t *y)
{
	if (x->kind != y->kind || x->ft != y->ft || x->e2ee != y->e2ee ||
	    x->hints != y->hints || x->correction != y->correction ||
	    x->n_addresses != y->n_addresses || x->n_urls != y->n_urls ||
	    x->n_filenames != y->n_filenames)
		return false;
	for (int f = 0; f < IMP_FIELD_COUNT; f++)
		if (x->fields[f].len != y->fields[f].len ||
		    memcmp(x->fields[f].text, y->fields[f].text,
			   x->fields[f].len) != 0)
			return false;
	return true;
}

static void fuzz_one(fuzz_t *fz, const char *xml, size_t len)
{
	imp_arena_t *a = fz->arena;
	imp_stanza_t *st = NULL;
	char err[256];
	int rc = imp_stanza_parse(a, xml, len, NULL, &st, err, sizeof(err));
	if (rc != IMP_OK) {
		FUZZ_ASSERT(st == NULL && (rc == IMP_ERR_NOMEM || err[0]));
		return;
	}
	/* serialise, reparse, compare the facts */
	imp_buf_t b;
	imp_buf_init(&b, NULL, a);
	imp_stanza_serialize(st, &b);
	FUZZ_ASSERT(!b.oom && b.data);
	imp_stanza_limits_t big = {.max_bytes = b.len + 1};
	imp_stanza_t *st2 = NULL;
	rc = imp_stanza_parse(a, b.data, b.len, &big, &st2, err, sizeof(err));
	FUZZ_ASSERT(rc == IMP_OK);
	FUZZ_ASSERT(fuzz_same(st, st2));

	/* mask a span of every field, then all of it */
	for (int f = 0; f < IMP_FIELD_COUNT; f++) {
		size_t n = st->fields[f].len;
		FUZZ_ASSERT(imp_stanza_mask(st, (imp_field_t)f, n / 3,
					    n / 3 + n / 4 + 1, '#') == IMP_OK);
		FUZZ_ASSERT(st->fields[f].len == n);
		FUZZ_ASSERT(imp_stanza_mask(st, (imp_field_t)f, 0, n, '*') ==
			    IMP_OK);
		for (size_t i = 0; i < n; i++)
			FUZZ_ASSERT(st->fields[f].text[i] == '*');
	}
	imp_buf_t b2;
	imp_buf_init(&b2, NULL, a);
	imp_stanza_serialize(st, &b2);
	FUZZ_ASSERT(!b2.oom);
	big.max_bytes = b2.len + 1;
	rc = imp_stanza_parse(a, b2.data, b2.len, &big, &st2, err, sizeof(err));
	FUZZ_ASSERT(rc == IMP_OK);
	for (int f = 0; f < IMP_FIELD_COUNT; f++)
		for (size_t i = 0; i < st2->fields[f].len; i++)
			FUZZ_ASSERT(st2->fields[f].text[i] == '*' ||
				    st2->fields[f].text[i] == '\n');
}

static int fuzz_split_cb(void *ud, const char *xml, size_t len, unsigned line,
			 const char *err)
{
	fuzz_t *fz = ud;
	FUZZ_ASSERT(line >= 1);
	if (!xml) {
		FUZZ_ASSERT(err && err[0]);
		return 0;
	}
	FUZZ_ASSERT(len >= 3 && xml[0] == '<' && xml[len - 1] == '>');
	fz->n++;
	fuzz_one(fz, xml, len);
	imp_arena_reset(fz->arena);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_t fz; /* the harness's own state, one thread */
	if (!fz.ctx) {
		if (imp_ctx_new(NULL, &fz.ctx) != IMP_OK)
			return 0;
		fz.arena = imp_arena_new(fz.ctx, 0);
	}
	fz.n = 0;
	imp_xml_split(fz.ctx, (const char *)data, size, fuzz_split_cb, &fz);
	if (fz.n == 0) {
		fuzz_one(&fz, (const char *)data, size);
		imp_arena_reset(fz.arena);
	}
	return 0;
}
