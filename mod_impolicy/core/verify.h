/*
 * verify.h -- hash-chain verification of the PostgreSQL archive in C
 * (what `impolicyctl verify` runs; impolicy.verify_chain() is the SQL
 * reference for unkeyed chains).
 *
 * Given a libpq connection (a role that may SELECT impolicy.stanza,
 * purged_record and chain_checkpoint), a node (or every node) and an
 * optional time range, streams the records in (node, seq) order in
 * single-row mode, rebuilds each imp_record_t, recomputes imp_record_hash()
 * (HMAC when a key is given), checks links, gaps (bridged only by
 * purged_record rows whose checkpoint digest matches and, with a key, whose
 * signature is valid), duplicates, ts order and downgrades from HMAC to
 * plain SHA-256, and reports every problem precisely through a callback.
 *
 * Memory: one light entry (~100 bytes) per record of the node being
 * checked is kept until that node is classified; record contents are not
 * kept.  Threading: one call uses one connection and one thread.
 */
#ifndef IMP_VERIFY_H
#define IMP_VERIFY_H

#include "base.h"
#include "record.h"

struct pg_conn; /* PGconn from <libpq-fe.h> */

typedef enum imp_verify_kind_e {
	IMP_VERIFY_ALTERED = 0,      /* recomputed hash differs from rec_hash */
	IMP_VERIFY_MISSING = 1,      /* seq absent, not purged: deleted */
	IMP_VERIFY_INSERTED = 2,     /* a record nothing in the chain links to
	                               and that links to nothing */
	IMP_VERIFY_REORDERED = 3,    /* ts goes backwards, or the record's
	                               chain predecessor sits at another seq */
	IMP_VERIFY_BROKEN_LINK = 4,  /* prev_hash is not the previous record's
	                               rec_hash, no better explanation */
	IMP_VERIFY_DUPLICATE = 5,    /* the same seq twice, same content */
	IMP_VERIFY_CHECKPOINT = 6,   /* a purge checkpoint does not match its
	                               purged records, or is unsigned / badly
	                               signed */
	IMP_VERIFY_UNVERIFIABLE = 7, /* keyed records but no key, or a plain
	                                record after the node went keyed */
} imp_verify_kind_t;

/* "altered", "missing", "inserted", "reordered", "broken-link",
 * "duplicate", "checkpoint", "unverifiable". */
const char *imp_verify_kind_name(imp_verify_kind_t k);

typedef struct imp_verify_problem_s {
	const char *node;
	uint64_t seq;      /* first seq concerned (0: the node as a whole) */
	uint64_t seq_last; /* == seq unless a range (e.g. missing 5..9) */
	imp_verify_kind_t kind;
	const char *detail; /* one line, no stanza content */
} imp_verify_problem_t;

typedef void (*imp_verify_cb)(void *ud, const imp_verify_problem_t *p);

typedef struct imp_verify_opts_s {
	const char *node; /* NULL: every node */
	bool has_from, has_to;
	int64_t from_us, to_us;   /* [from, to) on ts */
	const unsigned char *key; /* HMAC key; NULL: none */
	size_t key_len;
	const char *key_id; /* NULL: accept any key_id with this key */
} imp_verify_opts_t;

typedef struct imp_verify_stats_s {
	uint64_t nodes;
	uint64_t records; /* stanza rows checked */
	uint64_t purged;  /* purged_record rows used as bridges */
	uint64_t checkpoints;
	uint64_t problems;
	uint64_t unsigned_checked; /* signed checkpoints not checked (no key) */
} imp_verify_stats_t;

/* Runs the verification in one REPEATABLE READ, READ ONLY transaction (a
 * consistent snapshot).  Returns IMP_OK when the walk completed (problems,
 * if any, were reported through cb and counted in st), IMP_ERR_IO on a
 * database error (message in err), IMP_ERR_NOMEM, IMP_ERR_INVALID. */
int imp_verify_run(const imp_ctx_t *ctx, struct pg_conn *conn,
		   const imp_verify_opts_t *o, imp_verify_cb cb, void *ud,
		   imp_verify_stats_t *st, char *err, size_t errlen);

/* HMAC-SHA-256 over a checkpoint (docs/archive.md "Purge checkpoints"),
 * used by purge to sign and by verify to check.  IMP_OK or
 * IMP_ERR_INTERNAL. */
int imp_verify_checkpoint_mac(const unsigned char *key, size_t key_len,
			      const char *node, int64_t purge_id,
			      int64_t first_seq, int64_t last_seq,
			      int64_t removed, const unsigned char *digest,
			      size_t digest_len,
			      unsigned char out[IMP_HASH_LEN]);

#endif /* IMP_VERIFY_H */
