/*
 * verify.c -- recomputes the archive's per-node hash chains from
 * PostgreSQL and names every altered, deleted, inserted, reordered or
 * duplicated record (see verify.h and docs/archive.md "Verification").
 *
 * Contract:
 *  - Read-only: one REPEATABLE READ READ ONLY transaction, so the walk
 *    sees one snapshot even while a writer keeps inserting; rolled back at
 *    the end.  Parameterised SQL only.
 *  - Rows are streamed in single-row mode with binary results (bytea,
 *    text and arrays arrive exactly as stored; no text-escaping round
 *    trip), rebuilt into an imp_record_t and hashed with imp_record_hash()
 *    -- the very code the writer used -- so verify and writer cannot
 *    disagree about the encoding.
 *  - Per node, a light entry (seq, ts, prev_hash, rec_hash, flags) per row
 *    is kept; classification runs once the node's rows are all in, because
 *    telling "reordered" from "inserted" needs to know whether some record
 *    anywhere in the chain links to the one at hand.
 *  - Classification (one problem per record, most specific first):
 *      duplicate/inserted  several rows with one seq: the one that fits the
 *                          chain is kept, the others are reported;
 *      missing             a seq gap not bridged by purged_record;
 *      reordered           prev_hash names a record at another seq, or ts
 *                          goes backwards in an otherwise intact record;
 *      inserted            prev_hash names no record and no record links
 *                          to this one;
 *      broken-link         any other prev_hash mismatch (typically the
 *                          previous record was rewritten with a fresh hash);
 *      altered             the recomputed hash differs from rec_hash
 *                          (ts changes included).
 *    Where several explanations fit, the report names the record that
 *    carries the evidence.
 *    The deletion of a chain's newest records is invisible to the database
 *    alone (compare with the writer's spool head); so is, without an HMAC
 *    key, a forger who recomputes every later hash.
 *  - Problem details never contain stanza content.
 *
 * Threading: no shared state; one call per connection.
 */
#include "verify.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL's binary timestamptz counts µs from 2000-01-01. */
#define VF_PG_EPOCH_US INT64_C(946684800000000)
/* Columns of the record stream. */
enum {
	VF_NODE,
	VF_SEQ,
	VF_TS,
	VF_DIRECTION,
	VF_KIND,
	VF_STYPE,
	VF_FROM_BARE,
	VF_FROM_FULL,
	VF_TO_BARE,
	VF_TO_FULL,
	VF_THREAD,
	VF_CONV,
	VF_BODY,
	VF_RAW,
	VF_VERDICT,
	VF_RULES,
	VF_SECTIONS,
	VF_DIGEST,
	VF_RETENTION,
	VF_ALG,
	VF_KEYID,
	VF_PREV,
	VF_REC,
	VF_PURGED,
	VF_NCOLS
};

static const char vf_stream_sql[] =
	"SELECT s.node, s.seq, s.ts, s.direction, s.kind, s.stanza_type, "
	"s.from_bare, s.from_full, s.to_bare, s.to_full, s.thread, "
	"s.conv_key, s.body, s.raw_xml, s.verdict, s.rule_ids, s.sections, "
	"s.policy_digest, s.retention_class, s.hash_alg, s.key_id, "
	"s.prev_hash, s.rec_hash, false AS purged "
	"FROM impolicy.stanza s "
	"WHERE ($1::text IS NULL OR s.node = $1::text) "
	"AND ($2::int8 IS NULL OR s.ts >= 'epoch'::timestamptz + "
	"$2::int8 * interval '1 microsecond') "
	"AND ($3::int8 IS NULL OR s.ts < 'epoch'::timestamptz + "
	"$3::int8 * interval '1 microsecond') "
	"UNION ALL "
	"SELECT p.node, p.seq, p.ts, NULL, NULL, NULL, NULL, NULL, NULL, "
	"NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
	"p.retention_class, NULL, NULL, p.prev_hash, p.rec_hash, true "
	"FROM impolicy.purged_record p "
	"WHERE ($1::text IS NULL OR p.node = $1::text) "
	"AND ($2::int8 IS NULL OR p.ts >= 'epoch'::timestamptz + "
	"$2::int8 * interval '1 microsecond') "
	"AND ($3::int8 IS NULL OR p.ts < 'epoch'::timestamptz + "
	"$3::int8 * interval '1 microsecond') "
	"ORDER BY 1, 2, 24, 3";

typedef struct vf_ent_s {
	uint64_t seq;
	int64_t ts_us;
	unsigned char prev[IMP_HASH_LEN];
	unsigned char rec[IMP_HASH_LEN];
	bool purged, hash_ok, keyed, unverifiable, referenced;
} vf_ent_t;

typedef struct vf_s {
	const imp_ctx_t *ctx;
	const imp_verify_opts_t *o;
	imp_verify_cb cb;
	void *ud;
	imp_verify_stats_t *st;
	char node[256];
	vf_ent_t *e;
	size_t n, cap;
	uint64_t n_unverifiable; /* keyed records hashed without a key */
	uint64_t n_wrong_key;    /* keyed under another key id */
	imp_arena_t *scratch;
	bool oom;
} vf_t;

const char *imp_verify_kind_name(imp_verify_kind_t k)
{
	static const char *const names[] = {
		"altered",     "missing",   "inserted",   "reordered",
		"broken-link", "duplicate", "checkpoint", "unverifiable"};
	return (unsigned)k < IMP_ARRAY_LEN(names) ? names[k] : "unknown";
}

static void vf_report(vf_t *v, uint64_t seq, uint64_t seq_last,
		      imp_verify_kind_t kind, const char *fmt, ...)
	IMP_PRINTF(5, 6);

static void vf_report(vf_t *v, uint64_t seq, uint64_t seq_last,
		      imp_verify_kind_t kind, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	imp_verify_problem_t p = {v->node, seq, seq_last, kind, detail};
	v->st->problems++;
	if (v->cb)
		v->cb(v->ud, &p);
}

/* ---- binary value decoding --------------------------------------------- */

static uint32_t vf_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t vf_be64(const unsigned char *p)
{
	return (uint64_t)vf_be32(p) << 32 | vf_be32(p + 4);
}

static const char *vf_text(const PGresult *res, int col)
{
	/* libpq NUL-terminates every value, binary ones included. */
	return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static bool vf_int8(const PGresult *res, int col, int64_t *out)
{
	if (PQgetisnull(res, 0, col) || PQgetlength(res, 0, col) != 8)
		return false;
	*out = (int64_t)vf_be64((const unsigned char *)PQgetvalue(res, 0, col));
	return true;
}

static bool vf_hash(const PGresult *res, int col, unsigned char out[32])
{
	if (PQgetisnull(res, 0, col) ||
	    PQgetlength(res, 0, col) != IMP_HASH_LEN)
		return false;
	memcpy(out, PQgetvalue(res, 0, col), IMP_HASH_LEN);
	return true;
}

/* Decodes a one-dimensional binary text[] (array_send) into NUL-terminated
 * copies in the scratch arena.  Returns false when malformed or when it
 * holds NULL elements (the schema forbids both). */
static bool vf_text_array(vf_t *v, const PGresult *res, int col,
			  const char *const **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (PQgetisnull(res, 0, col))
		return false;
	const unsigned char *p = (const unsigned char *)PQgetvalue(res, 0, col);
	size_t len = (size_t)PQgetlength(res, 0, col);
	if (len < 12)
		return false;
	uint32_t ndim = vf_be32(p);
	if (ndim == 0)
		return true; /* '{}' */
	if (ndim != 1 || len < 20)
		return false;
	uint32_t count = vf_be32(p + 12);
	size_t off = 20;
	if (count > len / 4)
		return false;
	const char **arr = imp_arena_calloc(v->scratch, count + 1, sizeof *arr);
	if (arr == NULL) {
		v->oom = true;
		return false;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (len - off < 4)
			return false;
		uint32_t el = vf_be32(p + off);
		off += 4;
		if (el == UINT32_MAX || el > len - off)
			return false;
		arr[i] = imp_arena_strndup(v->scratch, (const char *)p + off,
					   el);
		if (arr[i] == NULL) {
			v->oom = true;
			return false;
		}
		off += el;
	}
	*out = arr;
	*n_out = count;
	return true;
}

/* ---- collecting a node's rows ------------------------------------------ */

static vf_ent_t *vf_push(vf_t *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		vf_ent_t *e = imp_realloc(v->ctx, v->e, cap * sizeof *e);
		if (e == NULL) {
			v->oom = true;
			return NULL;
		}
		v->e = e;
		v->cap = cap;
	}
	vf_ent_t *e = &v->e[v->n++];
	memset(e, 0, sizeof *e);
	return e;
}

/* Rebuilds the stanza row as a record and recomputes its hash. */
static void vf_check_hash(vf_t *v, const PGresult *res, vf_ent_t *e)
{
	imp_record_t r;
	int64_t seq = 0;

	memset(&r, 0, sizeof r);
	imp_arena_reset(v->scratch);
	r.node = vf_text(res, VF_NODE);
	vf_int8(res, VF_SEQ, &seq);
	r.seq = (uint64_t)seq;
	r.ts_us = e->ts_us;
	r.direction = vf_text(res, VF_DIRECTION);
	r.kind = vf_text(res, VF_KIND);
	r.stanza_type = vf_text(res, VF_STYPE);
	r.from_bare = vf_text(res, VF_FROM_BARE);
	r.from_full = vf_text(res, VF_FROM_FULL);
	r.to_bare = vf_text(res, VF_TO_BARE);
	r.to_full = vf_text(res, VF_TO_FULL);
	r.thread = vf_text(res, VF_THREAD);
	r.conv_key = vf_text(res, VF_CONV);
	r.body = vf_text(res, VF_BODY);
	r.raw_xml = (const unsigned char *)vf_text(res, VF_RAW);
	r.raw_len = r.raw_xml ? (size_t)PQgetlength(res, 0, VF_RAW) : 0;
	r.verdict = vf_text(res, VF_VERDICT);
	size_t n_rules = 0, n_sections = 0;
	bool arrays_ok =
		vf_text_array(v, res, VF_RULES, &r.rule_ids, &n_rules) &&
		vf_text_array(v, res, VF_SECTIONS, &r.sections, &n_sections);
	/* The record struct has one count for both arrays; a row whose
	 * arrays differ in length cannot have been written by the writer. */
	r.n_rules = n_rules;
	if (!PQgetisnull(res, 0, VF_DIGEST) &&
	    PQgetlength(res, 0, VF_DIGEST) == IMP_HASH_LEN) {
		r.has_digest = true;
		memcpy(r.policy_digest, PQgetvalue(res, 0, VF_DIGEST),
		       IMP_HASH_LEN);
	}
	r.retention_class = vf_text(res, VF_RETENTION);
	r.hash_alg = vf_text(res, VF_ALG);
	r.key_id = vf_text(res, VF_KEYID);
	memcpy(r.prev_hash, e->prev, IMP_HASH_LEN);
	memcpy(r.rec_hash, e->rec, IMP_HASH_LEN);

	e->keyed = r.hash_alg && strcmp(r.hash_alg, "hmac-sha256") == 0;
	if (!arrays_ok || n_rules != n_sections || r.node == NULL ||
	    r.kind == NULL || r.hash_alg == NULL ||
	    (PQgetisnull(res, 0, VF_DIGEST) == 0 && !r.has_digest)) {
		e->hash_ok = false; /* cannot be the writer's record */
		return;
	}
	const unsigned char *key = NULL;
	size_t key_len = 0;
	if (e->keyed) {
		if (v->o->key == NULL) {
			e->unverifiable = true;
			e->hash_ok = true; /* unknown; links still checked */
			v->n_unverifiable++;
			return;
		}
		if (v->o->key_id && r.key_id &&
		    strcmp(v->o->key_id, r.key_id) != 0) {
			e->unverifiable = true;
			e->hash_ok = true;
			v->n_wrong_key++;
			return;
		}
		key = v->o->key;
		key_len = v->o->key_len;
	}
	unsigned char h[IMP_HASH_LEN];
	if (imp_record_hash(&r, key, key_len, h) != IMP_OK) {
		e->hash_ok = false;
		return;
	}
	e->hash_ok = memcmp(h, e->rec, IMP_HASH_LEN) == 0;
}

static void vf_add_row(vf_t *v, const PGresult *res)
{
	int64_t seq = 0, ts = 0;
	vf_ent_t *e = vf_push(v);
	if (e == NULL)
		return;
	bool purged = !PQgetisnull(res, 0, VF_PURGED) &&
		      PQgetvalue(res, 0, VF_PURGED)[0] != 0;
	vf_int8(res, VF_SEQ, &seq);
	if (vf_int8(res, VF_TS, &ts))
		e->ts_us = ts + VF_PG_EPOCH_US;
	e->seq = (uint64_t)seq;
	e->purged = purged;
	bool hashes =
		vf_hash(res, VF_PREV, e->prev) && vf_hash(res, VF_REC, e->rec);
	if (purged) {
		e->hash_ok = hashes; /* content gone; checkpoint vouches */
		v->st->purged++;
		return;
	}
	v->st->records++;
	if (!hashes) {
		e->hash_ok = false;
		return;
	}
	vf_check_hash(v, res, e);
}

/* ---- classification ------------------------------------------------------ */

/* Open-addressing map rec_hash -> entry index (first occurrence). */
typedef struct vf_map_s {
	size_t *slot; /* index + 1; 0 = empty */
	size_t mask;
} vf_map_t;

static size_t vf_map_pos(const unsigned char *h)
{
	size_t x;
	memcpy(&x, h, sizeof x); /* the hash is uniformly distributed */
	return x;
}

static bool vf_map_init(vf_t *v, vf_map_t *m)
{
	size_t size = 16;
	while (size < v->n * 2)
		size *= 2;
	m->slot = imp_calloc(v->ctx, size, sizeof *m->slot);
	m->mask = size - 1;
	if (m->slot == NULL)
		return false;
	for (size_t i = 0; i < v->n; i++) {
		size_t p = vf_map_pos(v->e[i].rec) & m->mask;
		for (;;) {
			size_t s = m->slot[p];
			if (s == 0) {
				m->slot[p] = i + 1;
				break;
			}
			if (memcmp(v->e[s - 1].rec, v->e[i].rec,
				   IMP_HASH_LEN) == 0)
				break;
			p = (p + 1) & m->mask;
		}
	}
	return true;
}

/* Index of the entry whose rec_hash is h, or SIZE_MAX. */
static size_t vf_map_get(const vf_t *v, const vf_map_t *m,
			 const unsigned char *h)
{
	size_t p = vf_map_pos(h) & m->mask;
	for (;;) {
		size_t s = m->slot[p];
		if (s == 0)
			return SIZE_MAX;
		if (memcmp(v->e[s - 1].rec, h, IMP_HASH_LEN) == 0)
			return s - 1;
		p = (p + 1) & m->mask;
	}
}

static bool vf_zero(const unsigned char *h)
{
	for (size_t i = 0; i < IMP_HASH_LEN; i++)
		if (h[i])
			return false;
	return true;
}

#define VF_LOOSE_MAX 64

static void vf_classify(vf_t *v)
{
	vf_map_t m;
	if (v->n == 0)
		return;
	v->st->nodes++;
	if (!vf_map_init(v, &m)) {
		v->oom = true;
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		size_t p = vf_map_get(v, &m, v->e[i].prev);
		if (p != SIZE_MAX && p != i)
			v->e[p].referenced = true;
	}

	/* Walk state: the chain head so far.  With --from, the first record's
	 * predecessor lies outside the range and is not checked. */
	bool ranged = v->o->has_from;
	bool first = true;
	unsigned char expected[IMP_HASH_LEN];
	uint64_t last_seq = 0;
	int64_t last_ts = INT64_MIN;
	bool prev_suspect = false;
	bool went_keyed = false;
	/* Reordered records nothing has linked to yet: their successors in
	 * the chain are not reported again. */
	size_t loose[VF_LOOSE_MAX];
	size_t n_loose = 0;

	memset(expected, 0, sizeof expected);
	for (size_t i = 0; i < v->n;) {
		size_t j = i + 1;
		while (j < v->n && v->e[j].seq == v->e[i].seq)
			j++;
		/* Several rows with one seq: keep the one that fits. */
		size_t g = i;
		if (j - i > 1) {
			size_t best = SIZE_MAX;
			for (size_t k = i; k < j && best == SIZE_MAX; k++)
				if (v->e[k].hash_ok &&
				    (first || memcmp(v->e[k].prev, expected,
						     IMP_HASH_LEN) == 0))
					best = k;
			for (size_t k = i; k < j && best == SIZE_MAX; k++)
				if (v->e[k].referenced)
					best = k;
			g = best == SIZE_MAX ? i : best;
			for (size_t k = i; k < j; k++) {
				if (k == g)
					continue;
				if (memcmp(v->e[k].rec, v->e[g].rec,
					   IMP_HASH_LEN) == 0)
					vf_report(v, v->e[k].seq, v->e[k].seq,
						  IMP_VERIFY_DUPLICATE,
						  "seq stored twice (second "
						  "copy%s)",
						  v->e[k].purged
							  ? " in purged_record"
							  : "");
				else
					vf_report(v, v->e[k].seq, v->e[k].seq,
						  IMP_VERIFY_INSERTED,
						  "a second record claims this "
						  "seq and does not fit the "
						  "chain");
			}
		}
		const vf_ent_t *e = &v->e[g];
		bool gap = false;
		if (!(first && ranged) && e->seq > last_seq + 1) {
			gap = true;
			if (e->seq - 1 == last_seq + 1)
				vf_report(v, last_seq + 1, last_seq + 1,
					  IMP_VERIFY_MISSING,
					  "record deleted (not in "
					  "purged_record)");
			else
				vf_report(v, last_seq + 1, e->seq - 1,
					  IMP_VERIFY_MISSING,
					  "%" PRIu64 " records deleted (not "
					  "in purged_record)",
					  e->seq - 1 - last_seq);
		}
		bool link_ok = gap || (first && ranged) ||
			       memcmp(e->prev, expected, IMP_HASH_LEN) == 0;
		bool reported = false;
		if (!link_ok) {
			size_t lp = SIZE_MAX;
			for (size_t k = 0; k < n_loose; k++)
				if (memcmp(v->e[loose[k]].rec, e->prev,
					   IMP_HASH_LEN) == 0)
					lp = k;
			if (lp != SIZE_MAX) {
				/* The successor of a moved record: the move
				 * was already reported. */
				loose[lp] = loose[--n_loose];
				link_ok = true;
			}
		}
		if (!link_ok) {
			size_t p = vf_map_get(v, &m, e->prev);
			if (p != SIZE_MAX && v->e[p].seq != last_seq) {
				vf_report(v, e->seq, e->seq,
					  IMP_VERIFY_REORDERED,
					  "its chain predecessor is seq "
					  "%" PRIu64 ", not seq %" PRIu64 "%s",
					  v->e[p].seq, last_seq,
					  e->hash_ok ? ""
						     : " (moved: its hash no "
						       "longer matches)");
				if (n_loose < VF_LOOSE_MAX)
					loose[n_loose++] = g;
			} else if (p == SIZE_MAX && !e->referenced &&
				   !vf_zero(e->prev)) {
				vf_report(v, e->seq, e->seq,
					  IMP_VERIFY_INSERTED,
					  "links to no record of the chain "
					  "and none links to it");
			} else {
				vf_report(v, e->seq, e->seq,
					  IMP_VERIFY_BROKEN_LINK,
					  "prev_hash does not match the "
					  "rec_hash of seq %" PRIu64
					  " (that record rewritten, or this "
					  "one inserted)",
					  last_seq);
			}
			reported = true;
		}
		/* ts against the previous record's -- unless that record was
		 * itself damaged (an altered ts must not make every later
		 * record look reordered).  A record whose hash fails is
		 * "altered" even when its ts went backwards: its content,
		 * ts included, was changed in place. */
		bool ts_back = !first && !prev_suspect && e->ts_us < last_ts;
		if (!reported && !e->hash_ok)
			vf_report(v, e->seq, e->seq, IMP_VERIFY_ALTERED,
				  "recomputed %s differs from rec_hash%s",
				  e->keyed ? "HMAC" : "SHA-256",
				  ts_back ? " (and its ts is earlier than the "
					    "previous record's)"
					  : "");
		else if (!reported && ts_back)
			vf_report(v, e->seq, e->seq, IMP_VERIFY_REORDERED,
				  "ts is earlier than that of seq %" PRIu64,
				  last_seq);
		if (!e->purged) {
			if (e->keyed)
				went_keyed = true;
			else if (went_keyed && v->o->key != NULL)
				vf_report(v, e->seq, e->seq,
					  IMP_VERIFY_UNVERIFIABLE,
					  "plain sha256 record after the "
					  "node switched to HMAC");
		}
		memcpy(expected, e->rec, IMP_HASH_LEN);
		last_seq = e->seq;
		last_ts = e->ts_us;
		prev_suspect = reported || !e->hash_ok;
		first = false;
		i = j;
	}
	if (v->n_unverifiable)
		vf_report(v, 0, 0, IMP_VERIFY_UNVERIFIABLE,
			  "%" PRIu64 " HMAC records not checked: no key "
			  "given (--key-file)",
			  v->n_unverifiable);
	if (v->n_wrong_key)
		vf_report(v, 0, 0, IMP_VERIFY_UNVERIFIABLE,
			  "%" PRIu64 " HMAC records under another key id "
			  "than the one given",
			  v->n_wrong_key);
	imp_mfree(v->ctx, m.slot);
}

static void vf_node_done(vf_t *v)
{
	vf_classify(v);
	v->n = 0;
	v->n_unverifiable = 0;
	v->n_wrong_key = 0;
}

/* ---- checkpoints ----------------------------------------------------------- */

static void vf_item(unsigned char *buf, size_t *off, const void *p, uint32_t n)
{
	buf[(*off)++] = (unsigned char)(n >> 24);
	buf[(*off)++] = (unsigned char)(n >> 16);
	buf[(*off)++] = (unsigned char)(n >> 8);
	buf[(*off)++] = (unsigned char)n;
	memcpy(buf + *off, p, n);
	*off += n;
}

static void vf_put64(unsigned char out[8], int64_t x)
{
	uint64_t u = (uint64_t)x;
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)u;
		u >>= 8;
	}
}

int imp_verify_checkpoint_mac(const unsigned char *key, size_t key_len,
			      const char *node, int64_t purge_id,
			      int64_t first_seq, int64_t last_seq,
			      int64_t removed, const unsigned char *digest,
			      size_t digest_len,
			      unsigned char out[IMP_HASH_LEN])
{
	size_t nlen = strlen(node);
	if (nlen > 1024 || digest_len > 64 || key == NULL)
		return IMP_ERR_INVALID;
	unsigned char buf[8 + 4 + 1024 + 4 * 12 + 64];
	unsigned char n8[8];
	size_t off = 0;
	memcpy(buf, "IMPCKP01", 8);
	off = 8;
	vf_item(buf, &off, node, (uint32_t)nlen);
	vf_put64(n8, purge_id);
	vf_item(buf, &off, n8, 8);
	vf_put64(n8, first_seq);
	vf_item(buf, &off, n8, 8);
	vf_put64(n8, last_seq);
	vf_item(buf, &off, n8, 8);
	vf_put64(n8, removed);
	vf_item(buf, &off, n8, 8);
	vf_item(buf, &off, digest, (uint32_t)digest_len);
	unsigned int mlen = 0;
	if (HMAC(EVP_sha256(), key, (int)key_len, buf, off, out, &mlen) ==
		    NULL ||
	    mlen != IMP_HASH_LEN)
		return IMP_ERR_INTERNAL;
	return IMP_OK;
}

static void vf_set_err(char *err, size_t errlen, const char *what,
		       const PGconn *conn)
{
	if (err == NULL || errlen == 0)
		return;
	const char *m = PQerrorMessage(conn);
	size_t n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	snprintf(err, errlen, "%s: %.*s", what, (int)n, m);
}

/* Checks every checkpoint against the purged_record rows it covers, and
 * that no purged rows lack a checkpoint. */
static int vf_checkpoints(vf_t *v, PGconn *conn, const char *node_param,
			  char *err, size_t errlen)
{
	const char *sql =
		"SELECT c.checkpoint_id, c.purge_id, c.node, c.first_seq, "
		"c.last_seq, c.removed, c.digest, c.signature, c.sig_key_id, "
		"(SELECT count(*) FROM impolicy.purged_record p "
		" WHERE p.purge_id = c.purge_id AND p.node = c.node), "
		"(SELECT min(p.seq) FROM impolicy.purged_record p "
		" WHERE p.purge_id = c.purge_id AND p.node = c.node), "
		"(SELECT max(p.seq) FROM impolicy.purged_record p "
		" WHERE p.purge_id = c.purge_id AND p.node = c.node), "
		"sha256(coalesce((SELECT string_agg(int8send(p.seq) || "
		"p.rec_hash, ''::bytea ORDER BY p.seq) "
		" FROM impolicy.purged_record p WHERE p.purge_id = c.purge_id "
		" AND p.node = c.node), ''::bytea)) "
		"FROM impolicy.chain_checkpoint c "
		"WHERE ($1::text IS NULL OR c.node = $1::text) "
		"ORDER BY c.node, c.checkpoint_id";
	const char *params[1] = {node_param};
	PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		vf_set_err(err, errlen, "reading checkpoints", conn);
		PQclear(res);
		return IMP_ERR_IO;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t cid = 0, pid = 0, first = 0, last = 0, removed = 0;
		int64_t cnt = 0, mn = 0, mx = 0;
		const char *node = PQgetvalue(res, i, 2);
		snprintf(v->node, sizeof v->node, "%s", node);
		v->st->checkpoints++;
		/* Multi-row: read with the row index. */
#define VF_I8(col, dst)                                                   \
	do {                                                              \
		if (!PQgetisnull(res, i, col) &&                          \
		    PQgetlength(res, i, col) == 8)                        \
			dst = (int64_t)vf_be64(                           \
				(const unsigned char *)PQgetvalue(res, i, \
								  col));  \
	} while (0)
		VF_I8(0, cid);
		VF_I8(1, pid);
		VF_I8(3, first);
		VF_I8(4, last);
		VF_I8(5, removed);
		VF_I8(9, cnt);
		VF_I8(10, mn);
		VF_I8(11, mx);
#undef VF_I8
		const unsigned char *digest =
			(const unsigned char *)PQgetvalue(res, i, 6);
		int dlen = PQgetlength(res, i, 6);
		const unsigned char *recomputed =
			(const unsigned char *)PQgetvalue(res, i, 12);
		if (cnt != removed || mn != first || mx != last ||
		    dlen != IMP_HASH_LEN || PQgetlength(res, i, 12) != 32 ||
		    memcmp(digest, recomputed, IMP_HASH_LEN) != 0) {
			vf_report(v, (uint64_t)first, (uint64_t)last,
				  IMP_VERIFY_CHECKPOINT,
				  "checkpoint %" PRId64 " (purge %" PRId64
				  ") does not match its purged_record rows",
				  cid, pid);
			continue;
		}
		if (PQgetisnull(res, i, 7)) {
			vf_report(v, (uint64_t)first, (uint64_t)last,
				  IMP_VERIFY_CHECKPOINT,
				  "checkpoint %" PRId64 " (purge %" PRId64
				  ") is not signed (impolicyctl purge "
				  "--key-file signs it)",
				  cid, pid);
			continue;
		}
		if (v->o->key == NULL) {
			v->st->unsigned_checked++;
			continue;
		}
		unsigned char mac[IMP_HASH_LEN];
		if (imp_verify_checkpoint_mac(v->o->key, v->o->key_len, node,
					      pid, first, last, removed, digest,
					      (size_t)dlen, mac) != IMP_OK ||
		    PQgetlength(res, i, 7) != IMP_HASH_LEN ||
		    memcmp(mac, PQgetvalue(res, i, 7), IMP_HASH_LEN) != 0)
			vf_report(v, (uint64_t)first, (uint64_t)last,
				  IMP_VERIFY_CHECKPOINT,
				  "checkpoint %" PRId64 " (purge %" PRId64
				  "): signature does not match the key",
				  cid, pid);
	}
	PQclear(res);

	/* Purged rows no checkpoint covers cannot bridge a gap. */
	res = PQexecParams(
		conn,
		"SELECT p.node, p.purge_id, min(p.seq), max(p.seq) "
		"FROM impolicy.purged_record p "
		"WHERE ($1::text IS NULL OR p.node = $1::text) "
		"AND NOT EXISTS (SELECT 1 FROM impolicy.chain_checkpoint c "
		"WHERE c.purge_id = p.purge_id AND c.node = p.node) "
		"GROUP BY p.node, p.purge_id ORDER BY 1, 2",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		vf_set_err(err, errlen, "reading purged records", conn);
		PQclear(res);
		return IMP_ERR_IO;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		snprintf(v->node, sizeof v->node, "%s", PQgetvalue(res, i, 0));
		unsigned long long a =
			strtoull(PQgetvalue(res, i, 2), NULL, 10);
		unsigned long long b =
			strtoull(PQgetvalue(res, i, 3), NULL, 10);
		vf_report(v, a, b, IMP_VERIFY_CHECKPOINT,
			  "purged_record rows of purge %s have no checkpoint",
			  PQgetvalue(res, i, 1));
	}
	PQclear(res);
	return IMP_OK;
}

/* ---- the walk ------------------------------------------------------------ */

static int vf_exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		vf_set_err(err, errlen, sql, conn);
	PQclear(res);
	return ok ? IMP_OK : IMP_ERR_IO;
}

int imp_verify_run(const imp_ctx_t *ctx, struct pg_conn *conn,
		   const imp_verify_opts_t *o, imp_verify_cb cb, void *ud,
		   imp_verify_stats_t *st, char *err, size_t errlen)
{
	vf_t v;
	imp_verify_stats_t dummy;
	char from_s[32], to_s[32];
	int rc;

	if (ctx == NULL || conn == NULL || o == NULL)
		return IMP_ERR_INVALID;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof *st);
	memset(&v, 0, sizeof v);
	v.ctx = ctx;
	v.o = o;
	v.cb = cb;
	v.ud = ud;
	v.st = st;
	v.scratch = imp_arena_new(ctx, 0);
	if (v.scratch == NULL)
		return IMP_ERR_NOMEM;
	if (err && errlen)
		err[0] = '\0';

	rc = vf_exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
			err, errlen);
	if (rc != IMP_OK)
		goto out;
	rc = vf_checkpoints(&v, conn, o->node, err, errlen);
	if (rc != IMP_OK)
		goto rollback;

	snprintf(from_s, sizeof from_s, "%" PRId64, o->from_us);
	snprintf(to_s, sizeof to_s, "%" PRId64, o->to_us);
	const char *params[3] = {o->node, o->has_from ? from_s : NULL,
				 o->has_to ? to_s : NULL};
	if (!PQsendQueryParams(conn, vf_stream_sql, 3, NULL, params, NULL, NULL,
			       1)) {
		vf_set_err(err, errlen, "reading records", conn);
		rc = IMP_ERR_IO;
		goto rollback;
	}
	if (!PQsetSingleRowMode(conn)) {
		/* Never happens right after a send; without it the whole
		 * archive would be buffered, so refuse rather than risk it. */
		PGresult *r;
		while ((r = PQgetResult(conn)) != NULL)
			PQclear(r);
		if (err && errlen)
			snprintf(err, errlen, "cannot stream records");
		rc = IMP_ERR_IO;
		goto rollback;
	}
	v.node[0] = '\0';
	bool have_node = false;
	PGresult *res;
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType s = PQresultStatus(res);
		if (s == PGRES_SINGLE_TUPLE && PQnfields(res) == VF_NCOLS) {
			const char *node = PQgetvalue(res, 0, VF_NODE);
			if (!have_node || strcmp(node, v.node) != 0) {
				if (have_node)
					vf_node_done(&v);
				snprintf(v.node, sizeof v.node, "%s", node);
				have_node = true;
			}
			if (!v.oom)
				vf_add_row(&v, res);
		} else if (s != PGRES_TUPLES_OK) {
			vf_set_err(err, errlen, "reading records", conn);
			rc = IMP_ERR_IO;
		}
		PQclear(res);
	}
	if (rc == IMP_OK && have_node && !v.oom)
		vf_node_done(&v);
	if (rc == IMP_OK && v.oom)
		rc = IMP_ERR_NOMEM;
rollback:
	(void)vf_exec_ok(conn, "ROLLBACK", NULL, 0);
out:
	imp_mfree(ctx, v.e);
	imp_arena_free(v.scratch);
	return rc;
}
