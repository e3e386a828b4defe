/*
 * record.h -- one archive record: what is stored for a judged stanza, its
 * canonical encoding (the bytes the hash chain covers) and its spool
 * serialisation.
 *
 * The canonical encoding is specified byte for byte in docs/archive.md and
 * implemented twice: here (what the writer hashes and impolicyctl verify
 * recomputes) and in SQL (impolicy.canonical_record, a reference for
 * auditors).  The two must agree; tests/archive checks that they do.
 *
 * Memory: a record is one heap block from the context allocator (the
 * struct, its strings and arrays), freed with imp_record_free(); queues
 * and the spool move records around as single pointers.
 *
 * Threading: a record belongs to one thread at a time.
 */
#ifndef IMP_RECORD_H
#define IMP_RECORD_H

#include "base.h"

#define IMP_HASH_LEN 32

/* One review-queue entry written with the stanza (table impolicy.flag). */
typedef struct imp_record_flag_s {
	const char *rule_id;
	const char *section;  /* NULL when the rule has none */
	const char *severity; /* "low" | "medium" | "high" | "critical" */
} imp_record_flag_t;

typedef struct imp_record_s {
	const char *node;
	uint64_t seq;
	int64_t ts_us;         /* judged at, microseconds since the epoch */
	const char *direction; /* outbound|inbound|internal|external */
	const char *kind;      /* never NULL ("message", ...) */
	const char *stanza_type, *from_bare, *from_full, *to_bare, *to_full;
	const char *thread, *conv_key, *body; /* each may be NULL */
	const unsigned char *raw_xml;         /* exactly as received */
	size_t raw_len;
	const char *verdict;         /* allow|flag|redact|reject */
	const char *const *rule_ids; /* matched rules, policy order */
	const char *const *sections; /* parallel; "" when a rule has none */
	size_t n_rules;
	bool has_digest;
	unsigned char policy_digest[IMP_HASH_LEN];
	const char *retention_class;
	const char *hash_alg; /* "sha256" | "hmac-sha256" */
	const char *key_id;   /* NULL unless hmac-sha256 */
	unsigned char prev_hash[IMP_HASH_LEN];
	unsigned char rec_hash[IMP_HASH_LEN];
	const imp_record_flag_t *flags; /* for flag/redact/reject verdicts:
	                                   one per matched rule whose action
	                                   is flag or stronger */
	size_t n_flags;
} imp_record_t;

/* Builds a record from a judged stanza (view->xml is copied verbatim;
 * facts come from the verdict's stanza info, matches and digest).  seq,
 * prev_hash, rec_hash, hash_alg and key_id are left zero/NULL for
 * imp_record_chain().  conv_key: the <thread/> when present, else the two
 * bare JIDs sorted and joined by a space.  retention: the verdict's class
 * if it names one, else retention_default, else "default".  Malformed
 * stanzas (IMP_VF_MALFORMED) are recorded too, with kind "malformed" when
 * the verdict knows no kind.  Returns IMP_OK or IMP_ERR_NOMEM. */
int imp_record_build(const imp_ctx_t *ctx, const char *node, int64_t ts_us,
		     const imp_view_t *view, const imp_verdict_t *v,
		     const char *retention_default, imp_record_t **out);

/* Sets seq, prev_hash, hash_alg/key_id and computes rec_hash =
 * SHA-256(canonical) or HMAC-SHA256(key, canonical).  IMP_OK or
 * IMP_ERR_INTERNAL (OpenSSL failure). */
int imp_record_chain(imp_record_t *r, uint64_t seq,
		     const unsigned char prev_hash[IMP_HASH_LEN],
		     const unsigned char *key, size_t key_len,
		     const char *key_id);

/* Appends the canonical encoding (docs/archive.md) to b. */
void imp_record_canonical(const imp_record_t *r, imp_buf_t *b);

/* Recomputes rec_hash over r's canonical encoding (with key when the
 * record is keyed) into out; used by verify. */
int imp_record_hash(const imp_record_t *r, const unsigned char *key,
		    size_t key_len, unsigned char out[IMP_HASH_LEN]);

/* Spool serialisation: a self-describing, versioned binary form of every
 * field including seq and hashes.  decode validates every length and
 * returns IMP_ERR_PARSE for anything malformed (never reads out of
 * bounds). */
void imp_record_serialize(const imp_record_t *r, imp_buf_t *b);
int imp_record_deserialize(const imp_ctx_t *ctx, const void *data, size_t len,
			   imp_record_t **out);

/* Copies r (one block).  NULL on OOM. */
imp_record_t *imp_record_dup(const imp_ctx_t *ctx, const imp_record_t *r);
void imp_record_free(const imp_ctx_t *ctx, imp_record_t *r);

#endif /* IMP_RECORD_H */
