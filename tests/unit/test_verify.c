/*
 * test_verify.c -- the database-free parts of verify.c: the checkpoint
 * signature (docs/archive.md "Purge checkpoints"), pinned against vectors
 * computed independently (Python hmac/hashlib over the documented bytes),
 * argument checks, and the problem names impolicyctl prints.  The chain
 * walk itself needs PostgreSQL and is tested by tests/archive/test_ctl.sh.
 */
#include "verify.h"

#include "check.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int main(void)
{
	unsigned char digest[32], mac[IMP_HASH_LEN];
	char h[65];
	SHA256((const unsigned char *)"digest", 6, digest);

	static const struct {
		const char *key, *node;
		int64_t purge_id, first, last, removed;
		const char *want;
	} cases[] = {
		{"secret-key", "node-1", 7, 5, 10, 6,
		 "4898b34add36bdd2dd113c3a73b2aa7646a47581d2ae37c30b81f26f83e10"
		 "3ab"},
		{"secret-kez", "node-1", 7, 5, 10, 6,
		 "4e27b2673652cd2b5cacb93359c5d48a0db39f1269857aa20f2a5e358191e"
		 "586"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = imp_verify_checkpoint_mac(
			(const unsigned char *)cases[i].key,
			strlen(cases[i].key), cases[i].node, cases[i].purge_id,
			cases[i].first, cases[i].last, cases[i].removed, digest,
			sizeof digest, mac);
		CHECK_INT(rc, IMP_OK);
		hex(mac, sizeof mac, h);
		CHECK_STR(h, cases[i].want);
	}
	/* Every field is covered: changing any one changes the MAC. */
	unsigned char base[IMP_HASH_LEN], other[IMP_HASH_LEN];
	const unsigned char *k = (const unsigned char *)"k";
	CHECK_INT(imp_verify_checkpoint_mac(k, 1, "n", 1, 2, 3, 2, digest, 32,
					    base),
		  IMP_OK);
	int64_t v[4][4] = {
		{2, 2, 3, 2}, {1, 1, 3, 2}, {1, 2, 4, 2}, {1, 2, 3, 3}};
	for (size_t i = 0; i < 4; i++) {
		imp_verify_checkpoint_mac(k, 1, "n", v[i][0], v[i][1], v[i][2],
					  v[i][3], digest, 32, other);
		CHECK(memcmp(base, other, sizeof base) != 0);
	}
	imp_verify_checkpoint_mac(k, 1, "m", 1, 2, 3, 2, digest, 32, other);
	CHECK(memcmp(base, other, sizeof base) != 0);
	imp_verify_checkpoint_mac(k, 1, "n", 1, 2, 3, 2, digest, 31, other);
	CHECK(memcmp(base, other, sizeof base) != 0);
	/* Bad arguments are refused, not crashed on. */
	CHECK_INT(imp_verify_checkpoint_mac(NULL, 0, "n", 1, 2, 3, 2, digest,
					    32, other),
		  IMP_ERR_INVALID);
	CHECK_INT(imp_verify_run(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0),
		  IMP_ERR_INVALID);

	static const struct {
		imp_verify_kind_t k;
		const char *name;
	} names[] = {
		{IMP_VERIFY_ALTERED, "altered"},
		{IMP_VERIFY_MISSING, "missing"},
		{IMP_VERIFY_INSERTED, "inserted"},
		{IMP_VERIFY_REORDERED, "reordered"},
		{IMP_VERIFY_BROKEN_LINK, "broken-link"},
		{IMP_VERIFY_DUPLICATE, "duplicate"},
		{IMP_VERIFY_CHECKPOINT, "checkpoint"},
		{IMP_VERIFY_UNVERIFIABLE, "unverifiable"},
		{(imp_verify_kind_t)99, "unknown"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		CHECK_STR(imp_verify_kind_name(names[i].k), names[i].name);
	return CHECK_DONE();
}
