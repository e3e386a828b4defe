/*
 * detect.h -- validated detectors for confidential data.
 *
 * Built-in detectors (names are part of the policy language):
 *   payment_card  13-19 digits with optional space/dash groups; Luhn; brand
 *                 prefix and length table (Visa, Mastercard 51-55/2221-2720,
 *                 Amex 34/37, Discover, JCB, Diners, UnionPay, Maestro);
 *                 well-known test numbers excluded.
 *   iban          ISO 13616: country code, per-country length, mod-97 == 1;
 *                 spaced groups accepted.
 *   us_ssn        AAA-GG-SSSS (dashes, spaces or none): area not 000, 666,
 *                 9xx; group not 00; serial not 0000; known advertising
 *                 numbers (078-05-1120, 219-09-9999) excluded.
 *   email         addr-spec with a dotted domain and a plausible TLD.
 *   phone         E.164 (+CC...) and NANP forms ((555) 123-4567,
 *                 555-123-4567); 7-15 digits.
 *   private_key   PEM "-----BEGIN ... PRIVATE KEY-----" blocks.
 *   aws_key       AKIA/ASIA + 16 upper-case base32 characters.
 *   github_token  ghp_/gho_/ghu_/ghs_/ghr_ + 36, github_pat_ + 82.
 *   gitlab_token  glpat- + 20 or more.
 *   slack_token   xoxb-/xoxp-/xoxa-/xoxr-/xoxs- ..., hooks.slack.com URLs.
 *   jwt           three base64url segments, the first decoding to JSON
 *                 with "alg".
 *   password      "password is X", "pw: X", "pwd=X", "passcode X" ... where
 *                 X has enough entropy (>= 2.5 bits/char over >= 6 chars,
 *                 not a dictionary placeholder like "******").
 *   credential    umbrella name: any of private_key, aws_key, github_token,
 *                 gitlab_token, slack_token, jwt, password.
 * Each hit carries a confidence 0..100: a base from the validator, raised
 * when a context word ("card", "visa", "iban", "ssn", ...) occurs within the
 * detector's window of characters before the hit.
 *
 * Custom detectors: a PCRE2 pattern (compiled with JIT at load), an optional
 * validator (luhn, mod97, none), context words, window and confidence.
 *
 * Mechanism: one Vectorscan (or PCRE2) prefilter set over the PLAIN view
 * tells which detectors may have something; only those run their PCRE2
 * extraction pattern (JIT, with match and depth limits from a per-thread
 * match context) and validator.
 *
 * Threading: a detector set is immutable after build.
 */
#ifndef IMP_DETECT_H
#define IMP_DETECT_H

#include "base.h"
#include "mpat.h"

typedef struct imp_detset_s imp_detset_t;
typedef struct imp_detscratch_s imp_detscratch_t;

typedef struct imp_detector_spec_s {
	const char *name;
	const char *pattern;        /* PCRE2, UTF mode */
	const char *validator;      /* "luhn", "mod97", "none" or NULL */
	const char *const *context; /* context words, may be NULL */
	size_t n_context;
	unsigned window;     /* chars before a hit to look (0: 40) */
	unsigned confidence; /* base confidence 0..100 (0: 70) */
	const char *file;    /* for errors */
	unsigned line, col;  /* of the pattern */
} imp_detector_spec_t;

/* True when name is a built-in detector (including "credential"). */
bool imp_detect_builtin_exists(const char *name);
/* The names of all built-ins, NULL-terminated, for docs and errors. */
const char *const *imp_detect_builtin_names(void);

/* Builds the set: every built-in (always present, so indexes are stable)
 * plus custom[0..n).  Bad custom patterns or validators are reported to
 * errs at their file:line:col and make the build fail with
 * IMP_ERR_POLICY.  A custom name equal to a built-in is an error. */
int imp_detset_build(imp_arena_t *a, const imp_detector_spec_t *custom,
		     size_t n, imp_engine_t engine, imp_errors_t *errs,
		     imp_detset_t **out);

/* Index of a concrete detector by name; -1 when unknown and for the
 * umbrella "credential" (use imp_detset_mask for that). */
int imp_detset_index(const imp_detset_t *d, const char *name);
/* Fills mask bits (1 << index, indexes < 64) for name; "credential"
 * sets the bits of all credential detectors.  Returns false if unknown. */
bool imp_detset_mask(const imp_detset_t *d, const char *name, uint64_t *mask);
size_t imp_detset_count(const imp_detset_t *d);
const char *imp_detset_name(const imp_detset_t *d, unsigned index);

typedef struct imp_dethit_s {
	uint16_t det;        /* detector index */
	uint8_t confidence;  /* 0..100 */
	uint32_t start, end; /* byte offsets in the scanned (PLAIN) text */
} imp_dethit_t;

imp_detscratch_t *imp_detscratch_new(const imp_ctx_t *ctx);
int imp_detscratch_prepare(imp_detscratch_t *s, const imp_detset_t *d);
void imp_detscratch_free(imp_detscratch_t *s);

/* Runs the detectors in `want` (bit mask of indexes) over text, appending
 * validated hits to *hits (memory from scratch arena).  *limited is set
 * when a PCRE2 match or depth limit was hit: the text could not be fully
 * inspected (the caller applies the policy's on_uninspectable outcome).
 * Returns IMP_OK, IMP_ERR_NOMEM or IMP_ERR_INTERNAL. */
int imp_detset_scan(const imp_detset_t *d, imp_detscratch_t *s,
		    imp_arena_t *scratch, uint64_t want, const char *text,
		    size_t len, imp_dethit_t **hits, size_t *n_hits,
		    bool *limited);

/* Validators, exposed for unit tests and custom detectors.  Input is the
 * matched text; non-digit separators (space, dash, dot) are skipped. */
bool imp_luhn_valid(const char *s, size_t n);
bool imp_iban_valid(const char *s, size_t n);
/* Returns the card brand ("visa", ...) or NULL when prefix/length fail. */
const char *imp_card_brand(const char *s, size_t n);
bool imp_ssn_valid(const char *s, size_t n);
/* Shannon entropy in bits per character. */
double imp_entropy(const char *s, size_t n);

#endif /* IMP_DETECT_H */
