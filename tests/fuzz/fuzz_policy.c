/*
 * fuzz_policy.c -- libFuzzer harness for the policy loader.
 *
 * Each input is written to a policy file in a private temporary directory
 * (list files and includes the input names resolve next to it, so most
 * simply do not exist) and loaded; whatever the bytes, the load must end
 * in IMP_OK or a clean error list, without crashes, leaks or undefined
 * behaviour.  Inputs that name device or proc files are skipped: reading
 * /dev/zero or /proc files would only measure the disk.
 *
 * Seed corpus: tests/fuzz/corpus/fuzz_policy (the conferr cases and the
 * sample policies).
 */
#include "impolicy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_path[300];
static imp_ctx_t *fz_ctx;

static int fz_init(void)
{
	char dir[] = "/tmp/fuzz_policy.XXXXXX";
	if (!mkdtemp(dir))
		return -1;
	snprintf(fz_path, sizeof(fz_path), "%s/policy.yaml", dir);
	return imp_ctx_new(NULL, &fz_ctx);
}

static int fz_mentions(const uint8_t *d, size_t n, const char *s)
{
	size_t l = strlen(s);
	for (size_t i = 0; i + l <= n; i++)
		if (!memcmp(d + i, s, l))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_ctx && fz_init() != 0)
		abort();
	if (size > 256 * 1024 || fz_mentions(data, size, "/dev") ||
	    fz_mentions(data, size, "/proc") || fz_mentions(data, size, "/sys"))
		return 0;
	FILE *f = fopen(fz_path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	imp_load_options_t o = {.version = IMP_LOAD_OPTIONS_VERSION,
				.engine = IMP_ENGINE_PCRE2};
	imp_policy_t *p = NULL;
	imp_errors_t *errs = NULL;
	int rc = imp_policy_load(fz_ctx, fz_path, &o, &p, &errs);
	if (rc == IMP_OK) {
		imp_policy_info_t info;
		if (!p)
			abort();
		imp_policy_info(p, &info);
		if (strlen(info.digest) != 64)
			abort();
		imp_policy_unref(p);
	} else {
		if (p)
			abort();
		/* every error must format */
		for (size_t i = 0; errs && i < imp_errors_count(errs); i++) {
			char buf[256];
			imp_error_format(imp_errors_get(errs, i), buf,
					 sizeof(buf));
		}
		imp_errors_free(errs);
	}
	return 0;
}
