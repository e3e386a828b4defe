/*
 * policy.h -- the compiled policy: what the loader (policy_load.c) builds
 * and the evaluator (eval.c) reads.
 *
 * Invariants:
 *  - Immutable once imp_policy_load() returns it; every pointer inside
 *    points into p->arena (or static data) and lives until the last
 *    reference is dropped.
 *  - Every name a rule refers to has been resolved to an index at load;
 *    evaluation never looks anything up by name and never fails on a
 *    policy problem.
 *  - Rules keep policy file order; rule ids are unique.
 */
#ifndef IMP_POLICY_H
#define IMP_POLICY_H

#include <stdatomic.h>

#include "base.h"
#include "detect.h"
#include "lexicon.h"
#include "sched.h"
#include "tz.h"

/* Direction facts (a stanza has exactly one of the first four). */
enum {
	IMP_DIR_OUTBOUND = 1 << 0, /* local sender, remote recipient */
	IMP_DIR_INBOUND = 1 << 1,  /* remote sender, local recipient */
	IMP_DIR_INTERNAL = 1 << 2, /* both local */
	IMP_DIR_EXTERNAL = 1 << 3, /* both remote (transit; rare) */
};
/* In conditions, `direction: outgoing` means sent by a local user
 * (OUTBOUND | INTERNAL) and `incoming` received by one (INBOUND |
 * INTERNAL); `external` in conditions means "one side remote" (OUTBOUND |
 * INBOUND | EXTERNAL).  The loader expands these to masks. */

/* A set of parties: groups plus loose JID globs. */
typedef struct imp_party_s {
	const uint32_t *groups; /* indexes into p->groups */
	size_t n_groups;
	const char *const *globs; /* imp_jid_glob patterns */
	size_t n_globs;
	bool local;  /* `local`: any JID in a local domain */
	bool remote; /* `remote`: any JID outside the local domains */
} imp_party_t;

typedef enum imp_cond_op_e {
	IMP_C_ALL,           /* children ANDed (a `when` mapping) */
	IMP_C_ANY,           /* children ORed (`any:` list) */
	IMP_C_NOT,           /* one child negated (`not:`) */
	IMP_C_KIND,          /* u.mask: IMP_KIND_* */
	IMP_C_TYPE,          /* u.strs: stanza type attribute values */
	IMP_C_DIRECTION,     /* u.mask: IMP_DIR_* */
	IMP_C_FROM,          /* u.party matches the sender */
	IMP_C_TO,            /* u.party matches the recipient (any XEP-0033
	                       address counts as a recipient too) */
	IMP_C_BETWEEN,       /* u.pair: one side in a, the other in b */
	IMP_C_PARTY,         /* u.party matches either side */
	IMP_C_DETECT,        /* u.detect: any detector in mask, >= min conf */
	IMP_C_WORDS,         /* u.lists: hit of any list in the bitset */
	IMP_C_FILE_TRANSFER, /* u.mask: IMP_FT_* (any) */
	IMP_C_ENCRYPTED,     /* u.mask: IMP_E2E_* (any) */
	IMP_C_HINTS,         /* u.mask: IMP_HINT_* (any) */
	IMP_C_DURING,        /* u.scheds: active in any of them */
	IMP_C_CORRECTION,    /* u.flag */
	IMP_C_HAS_BODY,      /* u.flag */
	IMP_C_RECIPIENTS,    /* u.count: >= this many XEP-0033 addresses */
	IMP_C_FANOUT,        /* u.fanout: same text to >= n recipients within
	                       window (stateful, per sender) */
	IMP_C_SPOOFED,       /* u.flag: stanza from differs from session bare */
	IMP_C_BODY_BYTES,    /* u.count: body longer than this */
} imp_cond_op_t;

typedef struct imp_cond_s imp_cond_t;
struct imp_cond_s {
	imp_cond_op_t op;
	const char *key;  /* the condition key as written, for explain */
	const char *file; /* position in the policy, for explain */
	unsigned line, col;
	/* DETECT and WORDS only: the fields (1 << imp_field_t) inspected;
	 * the loader sets it from the `fields:` key of the enclosing `when`
	 * mapping (nested any/not mappings inherit it unless they set their
	 * own), or to all fields.  Other ops ignore it.  Boolean atoms
	 * (CORRECTION, HAS_BODY, SPOOFED) always have u.flag == true: a
	 * `false` in the policy compiles to NOT(atom); likewise `outside:`
	 * is NOT(DURING) and `file_transfer: false` / `encrypted: false`
	 * are NOT of the all-bits mask. */
	uint32_t fields;
	union {
		struct {
			imp_cond_t **v;
			size_t n;
		} kids; /* ALL, ANY, NOT (n == 1) */
		uint32_t mask;
		struct {
			const char *const *v;
			size_t n;
		} strs;
		imp_party_t party;
		struct {
			imp_party_t a, b;
		} pair;
		struct {
			uint64_t mask;
			uint8_t min_confidence;
		} detect;
		struct {
			const uint64_t *bits; /* bitset over p->lists */
			size_t n_words;       /* 64-bit words in bits */
		} lists;
		struct {
			const uint32_t *v;
			size_t n;
		} scheds;
		struct {
			uint32_t recipients;
			uint32_t window_s;
		} fanout;
		uint64_t count;
		bool flag;
	} u;
};

typedef struct imp_group_s {
	const char *name;
	const char *const *globs; /* jids: patterns and exact bare JIDs */
	size_t n_globs;
	const char *const *domains; /* domains: exact, or "*.example" */
	size_t n_domains;
	const imp_tz_t *tz; /* NULL: policy zone */
} imp_group_t;

typedef struct imp_user_tz_s {
	const char *bare; /* lowercase bare JID */
	const imp_tz_t *tz;
} imp_user_tz_t;

typedef struct imp_list_s {
	const char *name;
	const char *const *categories;
	size_t n_categories;
	const char *lang; /* may be NULL */
	size_t n_entries;
} imp_list_t;

typedef struct imp_rule_s {
	const char *id;
	const char *section; /* may be NULL */
	const char *notice;  /* may be NULL: a default is used */
	const char *description;
	imp_action_t action;
	int severity;              /* 0 low, 1 medium, 2 high, 3 critical */
	const char *const *notify; /* JIDs */
	size_t n_notify;
	bool escalate;         /* counts towards escalation (default: action
	                         reject or redact) */
	const char *retention; /* retention class name or NULL */
	imp_cond_t *when;
	const char *file;
	unsigned line;
	/* Precomputed by the loader: what evaluation must compute. */
	unsigned kinds;    /* kinds this rule can match (IMP_KIND_*) */
	uint64_t det_mask; /* detectors any DETECT atom below needs */
	bool needs_words;
	bool needs_state;
} imp_rule_t;

typedef enum imp_outcome_e {
	IMP_OUTCOME_FLAG = 0,
	IMP_OUTCOME_REJECT = 1,
	IMP_OUTCOME_ALLOW = 2, /* only for explicit fail-open choices */
} imp_outcome_t;

typedef struct imp_escalation_s {
	bool enabled;
	uint32_t violations; /* this many ... */
	uint32_t within_s;   /* ... within this window ... */
	uint32_t suspend_s;  /* ... suspend outbound messages this long */
	const char *notice;
	const char *section;
	unsigned kinds; /* what a suspension refuses (default message) */
	const char *const *notify;
	size_t n_notify;
} imp_escalation_t;

struct imp_policy_s {
	atomic_uint refs;
	imp_ctx_t *ctx;
	imp_arena_t *arena;

	const char *name, *version, *path;
	char digest[65];
	uint64_t serial;    /* unique per loaded policy in this process */
	const imp_tz_t *tz; /* policy zone */
	const char *const *local_domains;
	size_t n_local_domains;

	imp_sched_t *scheds;
	size_t n_scheds;
	imp_group_t *groups;
	size_t n_groups;
	imp_user_tz_t *user_tz; /* sorted by bare */
	size_t n_user_tz;
	imp_list_t *lists;
	size_t n_lists;
	imp_lexicon_t *lexicon; /* all lists; list index == p->lists index;
	                           NULL when the policy has no lists (then
	                           any_words is false) */
	imp_detset_t *detectors;
	imp_rule_t *rules;
	size_t n_rules;
	imp_escalation_t escalation;

	/* settings: */
	imp_outcome_t on_uninspectable; /* default flag */
	imp_action_t on_malformed;      /* default reject */
	const char *default_notice;     /* for rules without one */
	const char *mask;               /* mask string, default "*" */
	const char *const *notify;      /* default compliance JIDs */
	size_t n_notify;
	const char *retention_default; /* retention class name or NULL */
	size_t max_scan_bytes;         /* per field; beyond is uninspectable */

	/* derived: */
	uint64_t det_mask_all; /* union of rules' det_mask */
	bool any_words;
	size_t n_files;
	size_t memory;
	imp_engine_t engine;
};

#endif /* IMP_POLICY_H */
