/*
 * fuzz_record.c -- libFuzzer harness for the archive record decoder and
 * the spool's frame parsing and recovery.
 *
 * The first input byte picks the target:
 *  - even: the rest is a serialised record for imp_record_deserialize.  A
 *    record that decodes must serialise back to exactly the input (the
 *    decoder neither repairs nor ignores bytes), hash, dup and encode.
 *  - odd: the rest becomes a spool segment file in a scratch directory;
 *    imp_spool_open must recover it (truncating, setting aside), and every
 *    record it then hands out must decode again; a reopen after recovery
 *    must be clean and agree on the pending count.
 * Anything else is a bug: __builtin_trap().
 */
#include "record.h"
#include "spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(c)                    \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

static imp_ctx_t *g_ctx;
static char g_dir[] = "/tmp/fuzz_record_XXXXXX";

static void fuzz_record(const uint8_t *data, size_t size)
{
	imp_record_t *r = NULL;
	imp_buf_t b;
	unsigned char h[IMP_HASH_LEN];
	static const unsigned char key[] = "k";

	if (imp_record_deserialize(g_ctx, data, size, &r) != IMP_OK) {
		FUZZ_ASSERT(r == NULL);
		return;
	}
	imp_buf_init(&b, g_ctx, NULL);
	imp_record_serialize(r, &b);
	FUZZ_ASSERT(!b.oom && b.len == size && memcmp(b.data, data, size) == 0);
	imp_buf_reset(&b);
	imp_record_canonical(r, &b);
	FUZZ_ASSERT(!b.oom && b.len >= 8 && memcmp(b.data, "IMPARC01", 8) == 0);
	FUZZ_ASSERT(imp_record_hash(r, key, 1, h) == IMP_OK);
	imp_record_t *d = imp_record_dup(g_ctx, r);
	FUZZ_ASSERT(d != NULL);
	unsigned char h2[IMP_HASH_LEN];
	FUZZ_ASSERT(imp_record_hash(d, key, 1, h2) == IMP_OK);
	FUZZ_ASSERT(memcmp(h, h2, IMP_HASH_LEN) == 0);
	imp_record_free(g_ctx, d);
	imp_buf_free(&b);
	imp_record_free(g_ctx, r);
}

static void fuzz_clear_dir(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", g_dir, e->d_name);
		unlink(p);
	}
	closedir(d);
}

static void fuzz_spool(const uint8_t *data, size_t size)
{
	char p[512], err[256];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	imp_record_t *recs[16];
	size_t n;
	int fd;

	fuzz_clear_dir();
	snprintf(p, sizeof(p), "%s/f.0000000000000001.spool", g_dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(write(fd, data, size) == (ssize_t)size);
	close(fd);
	FUZZ_ASSERT(imp_spool_open(g_ctx, g_dir, "f", &sp, &head, err,
				   sizeof(err)) == IMP_OK);
	uint64_t pending = imp_spool_pending(sp);
	uint64_t total = 0, last = 0;
	for (;;) {
		FUZZ_ASSERT(imp_spool_peek(sp, 16, recs, &n) == IMP_OK);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			FUZZ_ASSERT(recs[i]->seq > last);
			last = recs[i]->seq;
			imp_record_free(g_ctx, recs[i]);
		}
		total += n;
		/* consume only the first batch so that reopen replays */
		break;
	}
	FUZZ_ASSERT(total <= pending);
	FUZZ_ASSERT(head.seq >= last);
	imp_spool_close(sp);
	sp = NULL;
	/* recovery left a clean spool */
	FUZZ_ASSERT(imp_spool_open(g_ctx, g_dir, "f", &sp, &head, err,
				   sizeof(err)) == IMP_OK);
	FUZZ_ASSERT(imp_spool_pending(sp) == pending);
	imp_spool_close(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_ctx) {
		if (imp_ctx_new(NULL, &g_ctx) != IMP_OK || !mkdtemp(g_dir))
			__builtin_trap();
	}
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_spool(data + 1, size - 1);
	else
		fuzz_record(data + 1, size - 1);
	return 0;
}
