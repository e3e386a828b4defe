/*
 * check.h -- the tiny table-friendly assertion kit our unit tests use.
 *
 * Each CHECK counts as one assertion; a failure prints FILE:LINE and the
 * expression (and values for the typed variants) and the test goes on.
 * CHECK_DONE() prints the closing "N passed, N failed" line that ctest
 * logs show and returns the process exit status.
 */
#ifndef IMP_TEST_CHECK_H
#define IMP_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static unsigned check_passed_, check_failed_;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed_++;                                       \
		} else {                                                       \
			check_failed_++;                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_MSG(cond, ...)                                                   \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed_++;                                       \
		} else {                                                       \
			check_failed_++;                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                      \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		CHECK_MSG(a_ == b_, "%s = %lld, expected %lld", #a, a_, b_); \
	} while (0)

#define CHECK_STR(a, b)                                            \
	do {                                                       \
		const char *a_ = (a), *b_ = (b);                   \
		CHECK_MSG(a_ &&b_ &&strcmp(a_, b_) == 0,           \
			  "%s = \"%s\", expected \"%s\"", #a,      \
			  a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

#define CHECK_DONE()                                                     \
	(printf("%u passed, %u failed\n", check_passed_, check_failed_), \
	 check_failed_ ? 1 : 0)

#endif /* IMP_TEST_CHECK_H */
