/*
 * record.c -- archive records: build from a verdict, canonical encoding,
 * hash chain, spool serialisation.
 *
 * Invariants:
 *  - A record is one heap block from the ctx allocator: a rec_block_t (the
 *    public imp_record_t first, so the record pointer is the block), then
 *    the pointer arrays, the flags, the raw XML and the strings.  Nothing in
 *    it points outside the block except static severity and hash_alg
 *    literals and the key_id given to imp_record_chain, which must outlive
 *    the record (the archive's configuration copy does); imp_record_dup
 *    and imp_record_deserialize copy key_id into their blocks.
 *  - Every text field of a built record is valid UTF-8 without NUL bytes:
 *    PostgreSQL's text type refuses anything else, and a row that can never
 *    be inserted would block the spool replay forever.  Invalid bytes from
 *    the host (JIDs given in the view, malformed stanzas) become U+FFFD at
 *    build time; the hash covers the stored (sanitised) text, so the
 *    database and the chain agree.  raw_xml stays byte-exact (bytea).
 *  - The canonical encoding is docs/archive.md's "IMPARC01" format and must
 *    equal impolicy.canonical_record() in SQL byte for byte.  It is streamed
 *    into the digest (no copy of a 1 MiB stanza just to hash it).
 *  - The spool serialisation ("IMPR" + version 1, little-endian) is
 *    self-delimiting and the decoder checks every length against the
 *    remaining bytes, that strings are NUL-terminated without interior NUL
 *    and valid UTF-8, that enumerated fields hold known values and that no
 *    byte is left over: a frame that passed its CRC but was written by a
 *    buggy or foreign writer is rejected instead of trusted.
 *
 * Threading: no shared state; a record belongs to one thread at a time.
 *
 * Reports: return codes only (IMP_ERR_NOMEM, IMP_ERR_PARSE,
 * IMP_ERR_INTERNAL for OpenSSL failures, IMP_ERR_LIMIT for a stanza over
 * 4 GiB - 2, which the spool format cannot hold).
 */
#include "record.h"

#include "jid.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#define REC_MAGIC "IMPARC01"
#define REC_SER_MAGIC "IMPR"
#define REC_SER_VERSION 1
#define REC_NULL_LEN 0xFFFFFFFFu
#define REC_RAW_MAX 0xFFFFFFFEu
#define REC_SMALL 32
#define REC_JID_MAX 3072 /* imp_jid_parse accepts at most 3071 bytes */

typedef struct rec_block_s {
	imp_record_t r;
	size_t size; /* bytes in the block */
} rec_block_t;

static const char *const rec_severities[] = {"low", "medium", "high",
					     "critical"};
static const char *const rec_verdicts[] = {"allow", "flag", "redact", "reject"};
static const char *const rec_directions[] = {"outbound", "inbound", "internal",
					     "external"};
static const char *const rec_hash_algs[] = {"sha256", "hmac-sha256"};

/* Maps s to the static literal it equals, or NULL. */
static const char *rec_literal(const char *const *set, size_t n, const char *s,
			       size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(set[i]) == len && memcmp(set[i], s, len) == 0)
			return set[i];
	return NULL;
}

static unsigned rec_severity_code(const char *s)
{
	for (unsigned i = 0; i < IMP_ARRAY_LEN(rec_severities); i++)
		if (s && strcmp(s, rec_severities[i]) == 0)
			return i;
	return 1; /* medium, the schema's default */
}

/* ---- UTF-8 sanitising ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF; NUL counts invalid). */
static size_t rec_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xBF;

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < len)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

/* Length of the longest prefix of p[0..n) that is ASCII without NUL.
 * Why: record text is overwhelmingly ASCII, and validating it byte by byte
 * through rec_utf8_seq dominated imp_record_build; eight bytes at a time
 * (no byte >= 0x80, no zero byte: the classic haszero test) is ~8x faster,
 * and only the non-ASCII parts go through the full UTF-8 check. */
static size_t rec_ascii_prefix(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (n - i >= 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if ((w & 0x8080808080808080u) ||
		    ((w - 0x0101010101010101u) & ~w & 0x8080808080808080u))
			break;
		i += 8;
	}
	while (i < n && p[i] - 1u < 0x7Fu)
		i++;
	return i;
}

/* Bytes s[0..n) needs once every invalid byte became U+FFFD (3 bytes). */
static size_t rec_clean_len(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, out = 0;

	for (;;) {
		size_t a = rec_ascii_prefix(p + i, n - i);
		i += a;
		out += a;
		if (i >= n)
			break;
		size_t l = rec_utf8_seq(p + i, n - i);
		if (l) {
			i += l;
			out += l;
		} else {
			i++;
			out += 3;
		}
	}
	return out;
}

static char *rec_clean_copy(char *dst, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	for (;;) {
		size_t a = rec_ascii_prefix(p + i, n - i);
		memcpy(dst, p + i, a);
		dst += a;
		i += a;
		if (i >= n)
			break;
		size_t l = rec_utf8_seq(p + i, n - i);
		if (l) {
			memcpy(dst, p + i, l);
			dst += l;
			i += l;
		} else {
			memcpy(dst, "\xEF\xBF\xBD", 3);
			dst += 3;
			i++;
		}
	}
	return dst;
}

/* ---- packing: one block per record --------------------------------------- */

/* The text fields, in one table so size and copy walk the same list. */
static const char **rec_text_field(imp_record_t *r, size_t i)
{
	switch (i) {
	case 0:
		return &r->node;
	case 1:
		return &r->kind;
	case 2:
		return &r->stanza_type;
	case 3:
		return &r->from_bare;
	case 4:
		return &r->from_full;
	case 5:
		return &r->to_bare;
	case 6:
		return &r->to_full;
	case 7:
		return &r->thread;
	case 8:
		return &r->conv_key;
	case 9:
		return &r->body;
	case 10:
		return &r->retention_class;
	case 11:
		return &r->direction;
	case 12:
		return &r->verdict;
	case 13:
		return &r->hash_alg;
	default:
		return &r->key_id;
	}
}
#define REC_N_TEXT 15

typedef struct rec_sizer_s {
	size_t n;
	bool overflow;
	bool clean; /* sanitise UTF-8 */
	bool dirty; /* some string needs sanitising (copy pass re-checks) */
} rec_sizer_t;

static void rec_size_add(rec_sizer_t *z, size_t n)
{
	if (z->n + n < z->n)
		z->overflow = true;
	z->n += n;
}

static void rec_size_str(rec_sizer_t *z, const char *s)
{
	if (s) {
		size_t n = strlen(s), c = z->clean ? rec_clean_len(s, n) : n;
		if (c != n)
			z->dirty = true;
		rec_size_add(z, c + 1);
	}
}

static char *rec_put_str(char **pos, const char *s, bool clean)
{
	char *d = *pos, *e;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	if (clean && rec_clean_len(s, n) != n) {
		e = rec_clean_copy(d, s, n);
	} else {
		memcpy(d, s, n);
		e = d + n;
	}
	*e++ = '\0';
	*pos = e;
	return d;
}

/* Copies src (whose strings are NUL-terminated) into one new block.
 * clean: sanitise text. */
static imp_record_t *rec_pack(const imp_ctx_t *ctx, const imp_record_t *src,
			      bool clean)
{
	rec_sizer_t z = {sizeof(rec_block_t), false, clean, false};
	size_t arrays, i;
	rec_block_t *blk;
	imp_record_t *r, tmp = *src;
	char *pos;

	arrays = sizeof(char *) * 2 * src->n_rules;
	if (src->n_rules > SIZE_MAX / (4 * sizeof(char *)) ||
	    src->n_flags > SIZE_MAX / (4 * sizeof(imp_record_flag_t)))
		return NULL;
	rec_size_add(&z, arrays);
	rec_size_add(&z, sizeof(imp_record_flag_t) * src->n_flags);
	rec_size_add(&z, src->raw_len);
	rec_size_add(&z, 1);
	for (i = 0; i < REC_N_TEXT; i++)
		rec_size_str(&z, *rec_text_field(&tmp, i));
	for (i = 0; i < src->n_rules; i++) {
		rec_size_str(&z, src->rule_ids[i] ? src->rule_ids[i] : "");
		rec_size_str(&z, src->sections[i] ? src->sections[i] : "");
	}
	for (i = 0; i < src->n_flags; i++) {
		rec_size_str(&z, src->flags[i].rule_id);
		rec_size_str(&z, src->flags[i].section);
	}
	if (z.overflow)
		return NULL;
	/* The sizing pass validated every string: when all were clean the
	 * copy pass is a plain memcpy (one UTF-8 scan per record, not two). */
	clean = z.dirty;

	blk = imp_malloc(ctx, z.n);
	if (!blk)
		return NULL;
	memset(blk, 0, sizeof(*blk));
	blk->size = z.n;
	r = &blk->r;
	*r = *src;
	pos = (char *)(blk + 1);
	/* Pointer arrays and flags first: they need alignment, which the
	 * block start (malloc) and sizeof(rec_block_t) provide. */
	r->rule_ids = src->n_rules ? (const char *const *)(void *)pos : NULL;
	const char **ids = (const char **)(void *)pos;
	pos += sizeof(char *) * src->n_rules;
	r->sections = src->n_rules ? (const char *const *)(void *)pos : NULL;
	const char **secs = (const char **)(void *)pos;
	pos += sizeof(char *) * src->n_rules;
	imp_record_flag_t *fl = (imp_record_flag_t *)(void *)pos;
	r->flags = src->n_flags ? fl : NULL;
	pos += sizeof(imp_record_flag_t) * src->n_flags;

	unsigned char *raw = (unsigned char *)pos;
	if (src->raw_len)
		memcpy(raw, src->raw_xml, src->raw_len);
	raw[src->raw_len] = 0;
	r->raw_xml = raw;
	pos += src->raw_len + 1;

	for (i = 0; i < REC_N_TEXT; i++)
		*rec_text_field(r, i) =
			rec_put_str(&pos, *rec_text_field(&tmp, i), clean);
	for (i = 0; i < src->n_rules; i++) {
		ids[i] = rec_put_str(
			&pos, src->rule_ids[i] ? src->rule_ids[i] : "", clean);
		secs[i] = rec_put_str(
			&pos, src->sections[i] ? src->sections[i] : "", clean);
	}
	for (i = 0; i < src->n_flags; i++) {
		fl[i].rule_id = rec_put_str(&pos, src->flags[i].rule_id, clean);
		fl[i].section = rec_put_str(&pos, src->flags[i].section, clean);
		fl[i].severity = rec_severities[rec_severity_code(
			src->flags[i].severity)];
	}
	return r;
}

/* ---- build --------------------------------------------------------------- */

/* Lowercase bare JID of full into out[REC_JID_MAX]; NULL when full is NULL
 * or not a JID. */
static const char *rec_bare(const char *full, char *out)
{
	imp_jid_t j;
	char *p = out;

	if (!full || !imp_jid_parse(full, strlen(full), &j))
		return NULL;
	if (j.local_len + j.domain_len + 2 > REC_JID_MAX)
		return NULL;
	if (j.local) {
		for (size_t i = 0; i < j.local_len; i++) {
			char c = j.local[i];
			*p++ = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		*p++ = '@';
	}
	for (size_t i = 0; i < j.domain_len; i++) {
		char c = j.domain[i];
		*p++ = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	*p = '\0';
	return out;
}

static int rec_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool rec_digest_parse(const char *hex, unsigned char out[IMP_HASH_LEN])
{
	for (size_t i = 0; i < IMP_HASH_LEN; i++) {
		int hi = rec_hexval(hex[2 * i]), lo;
		if (hi < 0)
			return false;
		lo = rec_hexval(hex[2 * i + 1]);
		if (lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return hex[2 * IMP_HASH_LEN] == '\0';
}

static bool rec_nonempty(const char *s)
{
	return s && *s;
}

int imp_record_build(const imp_ctx_t *ctx, const char *node, int64_t ts_us,
		     const imp_view_t *view, const imp_verdict_t *v,
		     const char *retention_default, imp_record_t **out)
{
	imp_record_t t;
	const char *ids_small[REC_SMALL], *secs_small[REC_SMALL];
	imp_record_flag_t fl_small[REC_SMALL];
	const char **ids = ids_small, **secs = secs_small;
	imp_record_flag_t *fl = fl_small;
	void *heap = NULL;
	char from_bare[REC_JID_MAX], to_bare[REC_JID_MAX];
	/* Both bare JIDs fit (each < REC_JID_MAX): no heap block per build. */
	char conv[2 * REC_JID_MAX];
	size_t n = v->n_rules, nf = 0;
	int rc = IMP_OK;

	*out = NULL;
	memset(&t, 0, sizeof(t));
	if (view && view->xml_len > REC_RAW_MAX)
		return IMP_ERR_LIMIT;
	if (n > REC_SMALL) {
		size_t per = 2 * sizeof(char *) + sizeof(imp_record_flag_t);
		if (n > SIZE_MAX / per)
			return IMP_ERR_NOMEM;
		heap = imp_malloc(ctx, n * per);
		if (!heap)
			return IMP_ERR_NOMEM;
		fl = heap;
		ids = (const char **)(void *)(fl + n);
		secs = ids + n;
	}

	t.node = node ? node : "";
	t.ts_us = ts_us;
	t.direction = v->stanza.direction
			      ? rec_literal(rec_directions,
					    IMP_ARRAY_LEN(rec_directions),
					    v->stanza.direction,
					    strlen(v->stanza.direction))
			      : NULL;
	if (!t.direction)
		t.direction = "external"; /* what the evaluator assumes too */
	t.kind = rec_nonempty(v->stanza.kind) ? v->stanza.kind : "malformed";
	t.stanza_type = v->stanza.type;
	t.from_full = v->stanza.from;
	if (!t.from_full && view)
		t.from_full = view->from ? view->from : view->session_jid;
	t.to_full = v->stanza.to;
	if (!t.to_full && view)
		t.to_full = view->to;
	t.from_bare = rec_bare(t.from_full, from_bare);
	t.to_bare = rec_bare(t.to_full, to_bare);
	t.thread = v->stanza.thread;
	t.body = v->stanza.body;
	if (rec_nonempty(t.thread)) {
		t.conv_key = t.thread;
	} else if (t.from_bare && t.to_bare) {
		/* Both directions of a chat share one key: sorted pair. */
		const char *a = t.from_bare, *b = t.to_bare;
		size_t la, lb;
		if (strcmp(a, b) > 0) {
			a = t.to_bare;
			b = t.from_bare;
		}
		la = strlen(a);
		lb = strlen(b);
		memcpy(conv, a, la);
		conv[la] = ' ';
		memcpy(conv + la + 1, b, lb + 1);
		t.conv_key = conv;
	} else {
		t.conv_key = t.from_bare ? t.from_bare : t.to_bare;
	}
	if (view && view->xml) {
		t.raw_xml = (const unsigned char *)view->xml;
		t.raw_len = view->xml_len;
	}
	t.verdict = (unsigned)v->action < IMP_ARRAY_LEN(rec_verdicts)
			    ? rec_verdicts[v->action]
			    : "reject";
	for (size_t i = 0; i < n; i++) {
		const imp_rule_match_t *m = &v->rules[i];
		int sev = m->severity;
		ids[i] = m->rule_id ? m->rule_id : "";
		secs[i] = m->section ? m->section : "";
		if (v->action == IMP_ALLOW || m->action < IMP_FLAG)
			continue;
		sev = sev < 0 ? 0 : sev > 3 ? 3 : sev;
		fl[nf].rule_id = ids[i];
		fl[nf].section = m->section;
		fl[nf].severity = rec_severities[sev];
		nf++;
	}
	t.rule_ids = n ? ids : NULL;
	t.sections = n ? secs : NULL;
	t.n_rules = n;
	t.flags = nf ? fl : NULL;
	t.n_flags = nf;
	t.has_digest = rec_digest_parse(v->policy_digest, t.policy_digest);
	if (!t.has_digest)
		memset(t.policy_digest, 0, sizeof(t.policy_digest));
	if (rec_nonempty(v->retention))
		t.retention_class = v->retention;
	else if (rec_nonempty(retention_default))
		t.retention_class = retention_default;
	else
		t.retention_class = "default";

	*out = rec_pack(ctx, &t, true);
	if (!*out)
		rc = IMP_ERR_NOMEM;
	imp_mfree(ctx, heap);
	return rc;
}

/* ---- canonical encoding -------------------------------------------------- */

/* A sink for the encoder: a buffer or a running digest. */
typedef struct rec_sink_s {
	void (*put)(struct rec_sink_s *s, const void *p, size_t n);
	imp_buf_t *buf;
	EVP_MD_CTX *md;
	EVP_MAC_CTX *mac;
	bool failed;
} rec_sink_t;

static void rec_sink_buf(rec_sink_t *s, const void *p, size_t n)
{
	imp_buf_append(s->buf, p, n);
}

static void rec_sink_md(rec_sink_t *s, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(s->md, p, n) != 1)
		s->failed = true;
}

static void rec_sink_mac(rec_sink_t *s, const void *p, size_t n)
{
	if (n && EVP_MAC_update(s->mac, p, n) != 1)
		s->failed = true;
}

static void rec_be32(unsigned char *d, uint32_t v)
{
	d[0] = (unsigned char)(v >> 24);
	d[1] = (unsigned char)(v >> 16);
	d[2] = (unsigned char)(v >> 8);
	d[3] = (unsigned char)v;
}

static void rec_enc_bytes(rec_sink_t *s, const void *p, size_t n, bool null)
{
	unsigned char len[4];

	rec_be32(len, null ? REC_NULL_LEN : (uint32_t)n);
	s->put(s, len, 4);
	if (!null)
		s->put(s, p, n);
}

static void rec_enc_text(rec_sink_t *s, const char *t)
{
	rec_enc_bytes(s, t, t ? strlen(t) : 0, t == NULL);
}

static void rec_enc_int8(rec_sink_t *s, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (56 - 8 * i));
	rec_enc_bytes(s, b, 8, false);
}

static void rec_enc_array(rec_sink_t *s, const char *const *a, size_t n)
{
	unsigned char cnt[4];

	rec_be32(cnt, (uint32_t)n);
	s->put(s, cnt, 4);
	for (size_t i = 0; i < n; i++)
		rec_enc_text(s, a[i]);
}

/* docs/archive.md "Canonical record encoding"; SQL twin:
 * impolicy.canonical_record().  Keep the item order in step with it. */
static void rec_encode(const imp_record_t *r, rec_sink_t *s)
{
	s->put(s, REC_MAGIC, 8);
	rec_enc_text(s, r->node);
	rec_enc_int8(s, r->seq);
	rec_enc_int8(s, (uint64_t)r->ts_us);
	rec_enc_text(s, r->direction);
	rec_enc_text(s, r->kind);
	rec_enc_text(s, r->stanza_type);
	rec_enc_text(s, r->from_bare);
	rec_enc_text(s, r->from_full);
	rec_enc_text(s, r->to_bare);
	rec_enc_text(s, r->to_full);
	rec_enc_text(s, r->thread);
	rec_enc_text(s, r->conv_key);
	rec_enc_text(s, r->body);
	rec_enc_bytes(s, r->raw_xml, r->raw_len, false);
	rec_enc_text(s, r->verdict);
	rec_enc_array(s, r->rule_ids, r->n_rules);
	rec_enc_array(s, r->sections, r->n_rules);
	rec_enc_bytes(s, r->policy_digest, IMP_HASH_LEN, !r->has_digest);
	rec_enc_text(s, r->retention_class);
	rec_enc_text(s, r->hash_alg);
	rec_enc_text(s, r->key_id);
	rec_enc_bytes(s, r->prev_hash, IMP_HASH_LEN, false);
}

void imp_record_canonical(const imp_record_t *r, imp_buf_t *b)
{
	rec_sink_t s = {rec_sink_buf, b, NULL, NULL, false};

	rec_encode(r, &s);
}

/* SHA-256 or HMAC-SHA256 over the encoding, streamed. */
static int rec_digest(const imp_record_t *r, const unsigned char *key,
		      size_t key_len, bool keyed,
		      unsigned char out[IMP_HASH_LEN])
{
	rec_sink_t s = {NULL, NULL, NULL, NULL, false};
	int rc = IMP_ERR_INTERNAL;

	if (!keyed) {
		unsigned int len = 0;
		s.md = EVP_MD_CTX_new();
		if (!s.md || EVP_DigestInit_ex(s.md, EVP_sha256(), NULL) != 1)
			goto out;
		s.put = rec_sink_md;
		rec_encode(r, &s);
		if (!s.failed && EVP_DigestFinal_ex(s.md, out, &len) == 1 &&
		    len == IMP_HASH_LEN)
			rc = IMP_OK;
	} else {
		/* EVP_MAC rather than the deprecated HMAC_CTX; the fetch is
		 * per call because a cached EVP_MAC would be global state. */
		static const unsigned char nokey[1] = {0};
		EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM params[2];
		size_t len = 0;
		if (!mac)
			goto out;
		s.mac = EVP_MAC_CTX_new(mac);
		EVP_MAC_free(mac);
		if (!s.mac)
			goto out;
		params[0] = OSSL_PARAM_construct_utf8_string(
			OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (EVP_MAC_init(s.mac, key_len ? key : nokey, key_len,
				 params) != 1)
			goto out;
		s.put = rec_sink_mac;
		rec_encode(r, &s);
		if (!s.failed &&
		    EVP_MAC_final(s.mac, out, &len, IMP_HASH_LEN) == 1 &&
		    len == IMP_HASH_LEN)
			rc = IMP_OK;
	}
out:
	EVP_MD_CTX_free(s.md);
	EVP_MAC_CTX_free(s.mac);
	return rc;
}

int imp_record_chain(imp_record_t *r, uint64_t seq,
		     const unsigned char prev_hash[IMP_HASH_LEN],
		     const unsigned char *key, size_t key_len,
		     const char *key_id)
{
	r->seq = seq;
	memcpy(r->prev_hash, prev_hash, IMP_HASH_LEN);
	if (key) {
		r->hash_alg = rec_hash_algs[1];
		/* Referenced, not copied (the block has no room to grow): the
		 * archive's configuration copy outlives its records, and
		 * imp_record_dup / the spool copy it into their blocks. */
		r->key_id = key_id ? key_id : ""; /* the schema needs one */
	} else {
		r->hash_alg = rec_hash_algs[0];
		r->key_id = NULL;
	}
	return rec_digest(r, key, key_len, key != NULL, r->rec_hash);
}

int imp_record_hash(const imp_record_t *r, const unsigned char *key,
		    size_t key_len, unsigned char out[IMP_HASH_LEN])
{
	bool keyed = r->hash_alg && strcmp(r->hash_alg, "hmac-sha256") == 0;

	if (keyed && !key)
		return IMP_ERR_INVALID;
	return rec_digest(r, key, key_len, keyed, out);
}

/* ---- spool serialisation ------------------------------------------------- */

static void rec_ser_u32(imp_buf_t *b, uint32_t v)
{
	unsigned char d[4] = {(unsigned char)v, (unsigned char)(v >> 8),
			      (unsigned char)(v >> 16),
			      (unsigned char)(v >> 24)};
	imp_buf_append(b, d, 4);
}

static void rec_ser_u64(imp_buf_t *b, uint64_t v)
{
	rec_ser_u32(b, (uint32_t)v);
	rec_ser_u32(b, (uint32_t)(v >> 32));
}

/* u32 length (REC_NULL_LEN for NULL), the bytes, a NUL. */
static void rec_ser_str(imp_buf_t *b, const char *s)
{
	size_t n;

	if (!s) {
		rec_ser_u32(b, REC_NULL_LEN);
		return;
	}
	n = strlen(s);
	rec_ser_u32(b, (uint32_t)n);
	imp_buf_append(b, s, n + 1);
}

/* Order: magic, version, has_digest, seq, ts, the 15 strings below, raw,
 * digest, prev_hash, rec_hash, rules, flags. */
void imp_record_serialize(const imp_record_t *r, imp_buf_t *b)
{
	unsigned char hd[6] = {
		'I', 'M', 'P', 'R', REC_SER_VERSION, r->has_digest ? 1 : 0};

	if (!imp_buf_reserve(b, 128 + r->raw_len))
		return;
	imp_buf_append(b, hd, sizeof(hd));
	rec_ser_u64(b, r->seq);
	rec_ser_u64(b, (uint64_t)r->ts_us);
	rec_ser_str(b, r->node);
	rec_ser_str(b, r->direction);
	rec_ser_str(b, r->kind);
	rec_ser_str(b, r->stanza_type);
	rec_ser_str(b, r->from_bare);
	rec_ser_str(b, r->from_full);
	rec_ser_str(b, r->to_bare);
	rec_ser_str(b, r->to_full);
	rec_ser_str(b, r->thread);
	rec_ser_str(b, r->conv_key);
	rec_ser_str(b, r->body);
	rec_ser_str(b, r->verdict);
	rec_ser_str(b, r->retention_class);
	rec_ser_str(b, r->hash_alg);
	rec_ser_str(b, r->key_id);
	rec_ser_u32(b, (uint32_t)r->raw_len);
	imp_buf_append(b, r->raw_xml, r->raw_len);
	if (r->has_digest) {
		imp_buf_append(b, r->policy_digest, IMP_HASH_LEN);
	} else {
		static const unsigned char zero[IMP_HASH_LEN];
		imp_buf_append(b, zero, IMP_HASH_LEN);
	}
	imp_buf_append(b, r->prev_hash, IMP_HASH_LEN);
	imp_buf_append(b, r->rec_hash, IMP_HASH_LEN);
	rec_ser_u32(b, (uint32_t)r->n_rules);
	for (size_t i = 0; i < r->n_rules; i++) {
		rec_ser_str(b, r->rule_ids[i]);
		rec_ser_str(b, r->sections[i]);
	}
	rec_ser_u32(b, (uint32_t)r->n_flags);
	for (size_t i = 0; i < r->n_flags; i++) {
		unsigned char sev =
			(unsigned char)rec_severity_code(r->flags[i].severity);
		rec_ser_str(b, r->flags[i].rule_id);
		rec_ser_str(b, r->flags[i].section);
		imp_buf_append(b, &sev, 1);
	}
}

typedef struct rec_rd_s {
	const unsigned char *p;
	size_t left;
	bool bad;
} rec_rd_t;

static const unsigned char *rec_rd_take(rec_rd_t *d, size_t n)
{
	const unsigned char *p = d->p;

	if (d->bad || n > d->left) {
		d->bad = true;
		return NULL;
	}
	d->p += n;
	d->left -= n;
	return p;
}

static uint32_t rec_rd_u32(rec_rd_t *d)
{
	const unsigned char *p = rec_rd_take(d, 4);

	if (!p)
		return 0;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rec_rd_u64(rec_rd_t *d)
{
	uint64_t lo = rec_rd_u32(d);

	return lo | (uint64_t)rec_rd_u32(d) << 32;
}

/* A string pointing into the data (it carries its NUL).  *len receives its
 * length.  NULL for a NULL string, or with d->bad set on malformed input. */
static const char *rec_rd_str(rec_rd_t *d, bool nullable, size_t *len)
{
	uint32_t n = rec_rd_u32(d);
	const unsigned char *p;

	if (d->bad)
		return NULL;
	if (n == REC_NULL_LEN) {
		if (!nullable)
			d->bad = true;
		return NULL;
	}
	p = rec_rd_take(d, (size_t)n + 1);
	if (!p)
		return NULL;
	/* No interior NUL, a terminating one, valid UTF-8 (what the
	 * database accepts as text). */
	if (p[n] != 0 || memchr(p, 0, n) ||
	    !imp_utf8_valid((const char *)p, n)) {
		d->bad = true;
		return NULL;
	}
	if (len)
		*len = n;
	return (const char *)p;
}

/* A required string that must be one of set; returns the literal. */
static const char *rec_rd_enum(rec_rd_t *d, const char *const *set, size_t n,
			       bool nullable)
{
	size_t len = 0;
	const char *s = rec_rd_str(d, nullable, &len), *lit;

	if (!s)
		return NULL;
	lit = rec_literal(set, n, s, len);
	if (!lit)
		d->bad = true;
	return lit;
}

int imp_record_deserialize(const imp_ctx_t *ctx, const void *data, size_t len,
			   imp_record_t **out)
{
	rec_rd_t d = {data, len, false};
	imp_record_t t;
	const unsigned char *hd, *p;
	void *heap = NULL;
	uint32_t n, nf;
	int rc = IMP_ERR_PARSE;

	*out = NULL;
	memset(&t, 0, sizeof(t));
	hd = rec_rd_take(&d, 6);
	if (!hd || memcmp(hd, REC_SER_MAGIC, 4) != 0 ||
	    hd[4] != REC_SER_VERSION || hd[5] > 1)
		return IMP_ERR_PARSE;
	t.has_digest = hd[5] == 1;
	t.seq = rec_rd_u64(&d);
	t.ts_us = (int64_t)rec_rd_u64(&d);
	t.node = rec_rd_str(&d, false, NULL);
	t.direction = rec_rd_enum(&d, rec_directions,
				  IMP_ARRAY_LEN(rec_directions), false);
	t.kind = rec_rd_str(&d, false, NULL);
	t.stanza_type = rec_rd_str(&d, true, NULL);
	t.from_bare = rec_rd_str(&d, true, NULL);
	t.from_full = rec_rd_str(&d, true, NULL);
	t.to_bare = rec_rd_str(&d, true, NULL);
	t.to_full = rec_rd_str(&d, true, NULL);
	t.thread = rec_rd_str(&d, true, NULL);
	t.conv_key = rec_rd_str(&d, true, NULL);
	t.body = rec_rd_str(&d, true, NULL);
	t.verdict = rec_rd_enum(&d, rec_verdicts, IMP_ARRAY_LEN(rec_verdicts),
				false);
	t.retention_class = rec_rd_str(&d, false, NULL);
	t.hash_alg = rec_rd_enum(&d, rec_hash_algs,
				 IMP_ARRAY_LEN(rec_hash_algs), true);
	t.key_id = rec_rd_str(&d, true, NULL);
	n = rec_rd_u32(&d);
	if (d.bad || n == REC_NULL_LEN)
		return IMP_ERR_PARSE;
	t.raw_len = n;
	t.raw_xml = rec_rd_take(&d, n);
	p = rec_rd_take(&d, 3 * IMP_HASH_LEN);
	if (!p)
		return IMP_ERR_PARSE;
	memcpy(t.policy_digest, p, IMP_HASH_LEN);
	/* Without a digest its bytes are zero: one serialisation per record
	 * (decode then encode gives the input back). */
	if (!t.has_digest) {
		for (size_t i = 0; i < IMP_HASH_LEN; i++)
			if (p[i])
				return IMP_ERR_PARSE;
	}
	memcpy(t.prev_hash, p + IMP_HASH_LEN, IMP_HASH_LEN);
	memcpy(t.rec_hash, p + 2 * IMP_HASH_LEN, IMP_HASH_LEN);
	/* A keyed record names its key and an unkeyed one does not (the
	 * schema's CHECK); a chained record always has an algorithm. */
	if (t.hash_alg &&
	    (t.hash_alg == rec_hash_algs[1]) != (t.key_id != NULL))
		return IMP_ERR_PARSE;
	if (!t.hash_alg && t.key_id)
		return IMP_ERR_PARSE;

	/* Counts are bounded by the bytes left (each rule takes >= 10 bytes,
	 * each flag >= 10) before anything is allocated for them. */
	n = rec_rd_u32(&d);
	if (d.bad || n > d.left / 10)
		return IMP_ERR_PARSE;
	{
		size_t per = 2 * sizeof(char *) + sizeof(imp_record_flag_t);
		size_t cap = (size_t)n + d.left / 10 + 1;
		heap = imp_malloc(ctx, cap * per);
		if (!heap)
			return IMP_ERR_NOMEM;
	}
	const char **ids = heap, **secs = ids + n;
	for (uint32_t i = 0; i < n; i++) {
		ids[i] = rec_rd_str(&d, false, NULL);
		secs[i] = rec_rd_str(&d, false, NULL);
	}
	nf = rec_rd_u32(&d);
	if (d.bad || nf > d.left / 10)
		goto out;
	imp_record_flag_t *fl = (imp_record_flag_t *)(void *)(secs + n);
	for (uint32_t i = 0; i < nf; i++) {
		const unsigned char *sev;
		fl[i].rule_id = rec_rd_str(&d, false, NULL);
		fl[i].section = rec_rd_str(&d, true, NULL);
		sev = rec_rd_take(&d, 1);
		if (!sev || *sev >= IMP_ARRAY_LEN(rec_severities)) {
			d.bad = true;
			break;
		}
		fl[i].severity = rec_severities[*sev];
	}
	if (d.bad || d.left != 0)
		goto out;
	t.rule_ids = n ? ids : NULL;
	t.sections = n ? secs : NULL;
	t.n_rules = n;
	t.flags = nf ? fl : NULL;
	t.n_flags = nf;
	*out = rec_pack(ctx, &t, false);
	rc = *out ? IMP_OK : IMP_ERR_NOMEM;
out:
	imp_mfree(ctx, heap);
	return rc;
}

/* ---- copies -------------------------------------------------------------- */

imp_record_t *imp_record_dup(const imp_ctx_t *ctx, const imp_record_t *r)
{
	return rec_pack(ctx, r, false);
}

void imp_record_free(const imp_ctx_t *ctx, imp_record_t *r)
{
	imp_mfree(ctx, r);
}
