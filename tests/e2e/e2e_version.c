/* tests/e2e/e2e_version.c -- the connector built for another jabberd2
 * version (CMake: mod_impolicy_v260, IMP_JABBERD2_VERSION=2.6.0) must make
 * the 2.7.0 sm refuse to run (exit status 78, a loud log line) rather than
 * let traffic pass unjudged; the same configuration with the right module
 * comes up (control). */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	e2e_init("version");
	const char *old = getenv("IMP_E2E_MODULE_OLD");
	if (!old || !*old)
		e2e_fatal("IMP_E2E_MODULE_OLD is not set");
	char xml[1200];
	snprintf(xml, sizeof xml,
		 "    <policy>%s/contrib/policies/acme.yaml</policy>\n"
		 "    <archive><none/></archive>\n",
		 e2e_src);
	char *out = e2e_stack_expect_fail(old, xml);
	printf("# j2-stack.sh output:\n%s\n", out ? out : "(none)");
	e2e_check(out && strstr(out, "sm exit status: 78"),
		  "mismatch: the sm exits with status 78");
	e2e_check(out && strstr(out, "impolicy: built for jabberd2 2.6.0 but "
				     "the session manager is"),
		  "mismatch: the module says why");
	e2e_check(out && strstr(out, "refusing to initialise"),
		  "mismatch: the module refuses to initialise");
	e2e_check(out && !strstr(out, "ready for sessions"),
		  "mismatch: the sm never became ready for sessions");
	free(out);

	/* Control: the module built for 2.7.0, same configuration. */
	e2e_adduser("alice");
	e2e_stack_start(xml, NULL);
	e2e_check(e2e_sm_alive(), "control: the 2.7.0 build loads and runs");
	char *log = e2e_sm_log();
	e2e_check(log && strstr(log, "impolicy: active on chain in-sess"),
		  "control: active on chain in-sess");
	free(log);
	e2e_client_t *a = e2e_connect("alice", "e2e");
	e2e_check(a->connected == 1, "control: a client logs in");
	return e2e_finish();
}
