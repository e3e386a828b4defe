/*
 * fuzz_eval.c -- libFuzzer harness for the whole judging path a host
 * calls: imp_eval_run (stanza parse + every rule of the sample policy)
 * and imp_verdict_json, on arbitrary bytes.
 *
 * The sample policy (contrib/policies/acme.yaml, found through
 * IMP_SOURCE_DIR or the source tree path compiled in) is loaded once.  The
 * first input byte picks the origin and the explain flag, so both host
 * directions and the explain trace are explored.  Contracts checked
 * besides memory safety: the call returns IMP_OK, the verdict is one of
 * the four actions, a malformed stanza carries its reason, and a redact
 * verdict carries the stanza to deliver.  Anything else traps.
 */
#include "impolicy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(c)                    \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

static imp_ctx_t *fuzz_ctx;
static imp_policy_t *fuzz_policy;
static imp_eval_t *fuzz_ev;

static int64_t fuzz_clock(void *ud)
{
	(void)ud;
	return 1795604400LL * 1000000; /* 2026-11-25 11:00 Eastern */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *src = getenv("IMP_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/contrib/policies/acme.yaml",
		 src ? src : IMP_SOURCE_DIR_DEFAULT);
	imp_ctx_config_t cfg = {.version = IMP_CTX_CONFIG_VERSION,
				.clock = fuzz_clock};
	imp_errors_t *errs = NULL;
	if (imp_ctx_new(&cfg, &fuzz_ctx) != IMP_OK ||
	    imp_policy_load(fuzz_ctx, path, NULL, &fuzz_policy, &errs) !=
		    IMP_OK ||
	    imp_eval_new(fuzz_ctx, &fuzz_ev) != IMP_OK) {
		fprintf(stderr, "fuzz_eval: cannot load %s\n", path);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	imp_view_t view = {
		.version = IMP_VIEW_VERSION,
		.origin = (sel & 3) == 0   ? IMP_ORIGIN_LOCAL
			  : (sel & 3) == 1 ? IMP_ORIGIN_REMOTE
					   : IMP_ORIGIN_UNKNOWN,
		.xml = (const char *)data + 1,
		.xml_len = size - 1,
		.session_jid = (sel & 4) ? "alice@acme.example/fuzz" : NULL,
	};
	imp_verdict_t v;
	int rc = imp_eval_run(fuzz_ev, fuzz_policy, &view,
			      (sel & 8) ? IMP_EVAL_EXPLAIN : 0, &v);
	FUZZ_ASSERT(rc == IMP_OK);
	FUZZ_ASSERT(v.action >= IMP_ALLOW && v.action <= IMP_REJECT);
	if (v.flags & IMP_VF_MALFORMED)
		FUZZ_ASSERT(v.error != NULL);
	if (v.action == IMP_REDACT)
		FUZZ_ASSERT(v.redacted_xml != NULL);
	char *json = NULL;
	size_t len = 0;
	FUZZ_ASSERT(imp_verdict_json(fuzz_ctx, &v, (sel & 8) != 0, &json,
				     &len) == IMP_OK);
	FUZZ_ASSERT(json && len > 0 && json[0] == '{' && json[len - 1] == '}');
	imp_free(fuzz_ctx, json);
	imp_verdict_clear(&v);
	return 0;
}
