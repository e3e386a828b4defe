/*
 * policy_load.c -- reads, validates and compiles a policy (YAML, see
 * docs/policy-language.md) into the immutable struct imp_policy_s of
 * policy.h.  (Reference counting and the slot are in policy.c.)
 *
 * Purpose: a policy admin's mistake must be found at load, never at match
 * time.  Loading is two phases: (1) collect -- parse the main file and its
 * includes with libyaml into documents, and gather every section entry
 * (with its file and position) into name tables, reporting duplicates with
 * both places; (2) compile -- resolve every name to an index, parse
 * schedules, zones, lists (reading list files), detectors and rule
 * conditions, and build the lexicon and detector set.  Both phases go on
 * after an error so that one run reports every problem (up to max_errors);
 * any error refuses the whole policy.
 *
 * Invariants: everything the compiled policy points to lives in p->arena
 * (or static data); temporaries live in a scratch arena and the libyaml
 * documents, all freed before imp_policy_load returns.  The digest is the
 * SHA-256 over every file read, in read order, each preceded by its path
 * relative to the main file and its length.
 *
 * Out of memory: allocation failures inside the loader unwind with longjmp
 * to imp_policy_load, which owns every resource through the heap-allocated
 * loader state, and returns IMP_ERR_NOMEM.  Calls into other units
 * (lexicon, detectors, zones) return their codes normally.
 *
 * Threading: loading touches only its own state and the context (read
 * only), so several loads may run at once (realpath, stat and libyaml
 * keep no shared state).  The policy it returns is immutable.
 *
 * Reports: every problem as an imp_error_t "FILE:LINE:COL: message" (with a
 * "did you mean" hint for near-miss names); IMP_ERR_POLICY for an invalid
 * policy, IMP_ERR_IO when the main file cannot be read, IMP_ERR_NOMEM.
 */
#include "policy.h"
#include "stanza.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define PL_MAX_FILE ((size_t)64 << 20)
#define PL_MAX_INCLUDE_DEPTH 8
#define PL_MAX_CONDS 100000       /* alias bombs must not explode the tree */
#define PL_MAX_ALIAS_NODES 100000 /* nodes aliases may add to a document */
#define PL_MAX_COND_DEPTH 64
#define PL_DEFAULT_MAX_ERRORS 50
#define PL_DEFAULT_NOTICE "This message was blocked by the IM policy."
#define PL_ALL_KINDS \
	(IMP_KIND_MESSAGE | IMP_KIND_PRESENCE | IMP_KIND_IQ | IMP_KIND_OTHER)
#define PL_ALL_FIELDS ((1u << IMP_FIELD_COUNT) - 1)

/* ---- loader state ------------------------------------------------------- */

/* One parsed YAML file. */
typedef struct pl_src_s {
	yaml_document_t doc;
	const char *file; /* display path (as given / joined), policy arena */
	struct pl_src_s *next;
} pl_src_t;

/* A node together with the document and file it came from. */
typedef struct pl_ref_s {
	pl_src_t *src;
	yaml_node_t *n; /* NULL: absent */
} pl_ref_t;

/* An entry of a named section (schedules, groups, users, lists,
 * detectors). */
typedef struct pl_named_s {
	const char *name;
	pl_ref_t key, val;
} pl_named_t;

typedef struct pl_vec_s {
	void *v;
	size_t n, cap;
} pl_vec_t;

enum { PL_SCHED, PL_GROUP, PL_USER, PL_LIST, PL_DET, PL_NSECT };

static const char *const pl_sect_key[PL_NSECT] = {
	"schedules", "groups", "users", "lists", "detectors"};
static const char *const pl_sect_what[PL_NSECT] = {"schedule", "group", "user",
						   "list", "detector"};

typedef struct pl_tzc_s {
	const char *name;
	const imp_tz_t *tz;
} pl_tzc_t;

typedef struct pl_s {
	imp_ctx_t *ctx;
	imp_errors_t *errs;
	imp_arena_t *a;   /* the policy arena */
	imp_arena_t *tmp; /* temporaries */
	imp_policy_t *p;
	imp_engine_t engine;
	jmp_buf oom;
	size_t nerr;
	const char *rule_id; /* rule being compiled, for errors */

	imp_sha256_t *sha;
	char *filebuf; /* file being read (heap), freed on unwind */
	pl_src_t *srcs;
	const char *main_dir; /* prefix of the main file's directory */
	const char *stack[PL_MAX_INCLUDE_DEPTH + 2]; /* include realpaths */
	size_t depth;

	pl_ref_t policy, settings, escalation;
	pl_vec_t named[PL_NSECT]; /* pl_named_t */
	pl_vec_t rules;           /* pl_ref_t */
	pl_vec_t tzc;             /* pl_tzc_t */
	pl_vec_t files;           /* const char *: paths in read order */
	size_t n_conds;
	bool conds_reported;
	size_t n_merge_ops;
	unsigned merges_reported;
} pl_t;

static IMP_PRINTF(7, 8) void pl_errx(pl_t *pl, const char *file, unsigned line,
				     unsigned col, const char *hint,
				     const char *detail, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl->nerr++;
	imp_errors_addx(pl->errs, IMP_ERR_POLICY, file, line, col, pl->rule_id,
			detail, hint, "%s", msg);
}

#define PL_LINE(r) ((unsigned)(r).n->start_mark.line + 1)
#define PL_COL(r) ((unsigned)(r).n->start_mark.column + 1)

static IMP_PRINTF(3, 4) void pl_err(pl_t *pl, pl_ref_t r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl_errx(pl, r.src->file, PL_LINE(r), PL_COL(r), NULL, NULL, "%s", msg);
}

static IMP_PRINTF(4, 5) void pl_errh(pl_t *pl, pl_ref_t r, const char *hint,
				     const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pl_errx(pl, r.src->file, PL_LINE(r), PL_COL(r), hint, NULL, "%s", msg);
}

/* Allocation that unwinds to imp_policy_load on failure. */
static void *pl_alloc(pl_t *pl, imp_arena_t *a, size_t n)
{
	void *m = imp_arena_calloc(a, 1, n ? n : 1);
	if (!m)
		longjmp(pl->oom, 1);
	return m;
}

static char *pl_strdup(pl_t *pl, const char *s)
{
	char *d = imp_arena_strdup(pl->a, s);
	if (!d)
		longjmp(pl->oom, 1);
	return d;
}

static void *pl_vec_push(pl_t *pl, pl_vec_t *v, size_t elem)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		void *nv = pl_alloc(pl, pl->tmp, cap * elem);
		if (v->n)
			memcpy(nv, v->v, v->n * elem);
		v->v = nv;
		v->cap = cap;
	}
	return (char *)v->v + elem * v->n++;
}

/* ---- small helpers -------------------------------------------------------- */

/* Edit distance for "did you mean" hints (short names only). */
static size_t pl_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Picks the closest candidate within a small distance. */
typedef struct pl_suggest_s {
	const char *best;
	size_t dist;
	char hint[160];
} pl_suggest_t;

static void pl_suggest_init(pl_suggest_t *s)
{
	s->best = NULL;
	s->dist = SIZE_MAX;
	s->hint[0] = 0;
}

static void pl_suggest_add(pl_suggest_t *s, const char *word, const char *cand)
{
	size_t d = pl_distance(word, cand);
	size_t lim = strlen(word) < 4 ? 1 : strlen(word) < 8 ? 2 : 3;
	if (d <= lim && d < s->dist) {
		s->dist = d;
		s->best = cand;
	}
}

static const char *pl_suggest_hint(pl_suggest_t *s)
{
	if (!s->best)
		return NULL;
	snprintf(s->hint, sizeof(s->hint), "did you mean '%s'?", s->best);
	return s->hint;
}

static bool pl_valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static const char *pl_kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	case YAML_SCALAR_NODE:
		return n->data.scalar.length ? "a scalar" : "an empty value";
	default:
		return "nothing";
	}
}

static pl_ref_t pl_child(pl_ref_t r, int index)
{
	pl_ref_t c = {r.src, yaml_document_get_node(&r.src->doc, index)};
	return c;
}

static const char *pl_scalar(pl_ref_t r)
{
	return (const char *)r.n->data.scalar.value;
}

static bool pl_is_scalar(pl_ref_t r)
{
	return r.n && r.n->type == YAML_SCALAR_NODE;
}

/* Number of items in a sequence or pairs in a mapping. */
static size_t pl_len(pl_ref_t r)
{
	if (r.n->type == YAML_SEQUENCE_NODE)
		return (size_t)(r.n->data.sequence.items.top -
				r.n->data.sequence.items.start);
	if (r.n->type == YAML_MAPPING_NODE)
		return (size_t)(r.n->data.mapping.pairs.top -
				r.n->data.mapping.pairs.start);
	return 1;
}

static pl_ref_t pl_item(pl_ref_t r, size_t i)
{
	return pl_child(r, r.n->data.sequence.items.start[i]);
}

static bool pl_expect(pl_t *pl, pl_ref_t r, yaml_node_type_t t, const char *key)
{
	if (r.n->type == t)
		return true;
	const char *want = t == YAML_MAPPING_NODE    ? "a mapping"
			   : t == YAML_SEQUENCE_NODE ? "a sequence"
						     : "a scalar";
	pl_err(pl, r, "'%s': expected %s, got %s", key, want,
	       pl_kind_name(r.n));
	return false;
}

/* A string value (scalar, any style). */
static const char *pl_str(pl_t *pl, pl_ref_t r, const char *key)
{
	if (!pl_expect(pl, r, YAML_SCALAR_NODE, key))
		return NULL;
	return pl_strdup(pl, pl_scalar(r));
}

/* A non-empty string value. */
static const char *pl_str_ne(pl_t *pl, pl_ref_t r, const char *key)
{
	const char *s = pl_str(pl, r, key);
	if (s && !*s) {
		pl_err(pl, r, "'%s' must not be empty", key);
		return NULL;
	}
	return s;
}

/* YAML 1.1 booleans, from plain scalars only ("yes" in quotes is a
 * string).  Returns 1/0, or -1 after reporting. */
static int pl_bool(pl_t *pl, pl_ref_t r, const char *key)
{
	static const char *const t[] = {"true", "yes", "on", "y"};
	static const char *const f[] = {"false", "no", "off", "n"};
	if (pl_is_scalar(r) &&
	    r.n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		for (size_t i = 0; i < IMP_ARRAY_LEN(t); i++) {
			if (!imp_strcasecmp(pl_scalar(r), t[i]))
				return 1;
			if (!imp_strcasecmp(pl_scalar(r), f[i]))
				return 0;
		}
	}
	if (pl_is_scalar(r))
		pl_err(pl, r, "'%s': expected true or false, got '%s'", key,
		       pl_scalar(r));
	else
		pl_err(pl, r, "'%s': expected true or false, got %s", key,
		       pl_kind_name(r.n));
	return -1;
}

static bool pl_is_bool(pl_ref_t r)
{
	static const char *const b[] = {"true",  "yes", "on",
					"false", "no",  "off"};
	if (!pl_is_scalar(r) ||
	    r.n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < IMP_ARRAY_LEN(b); i++)
		if (!imp_strcasecmp(pl_scalar(r), b[i]))
			return true;
	return false;
}

/* A non-negative integer in [min, max]. */
static bool pl_uint(pl_t *pl, pl_ref_t r, const char *key, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	if (!pl_expect(pl, r, YAML_SCALAR_NODE, key))
		return false;
	const char *s = pl_scalar(r);
	uint64_t v = 0;
	bool ok = *s != 0;
	for (const char *c = s; *c && ok; c++) {
		if (*c < '0' || *c > '9' || v > (UINT64_MAX - 9) / 10)
			ok = false;
		else
			v = v * 10 + (uint64_t)(*c - '0');
	}
	if (!ok) {
		pl_err(pl, r, "'%s': expected an integer, got '%s'", key, s);
		return false;
	}
	if (v < min || v > max) {
		pl_err(pl, r, "'%s': %llu is out of range %llu..%llu", key,
		       (unsigned long long)v, (unsigned long long)min,
		       (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

/* A duration: "30s", "10m", "1h", "2d" or integer seconds; > 0, fits
 * 32 bits. */
static bool pl_duration(pl_t *pl, pl_ref_t r, const char *key, uint32_t *out)
{
	if (!pl_expect(pl, r, YAML_SCALAR_NODE, key))
		return false;
	const char *s = pl_scalar(r);
	uint64_t v = 0;
	const char *c = s;
	while (*c >= '0' && *c <= '9' && v < UINT32_MAX)
		v = v * 10 + (uint64_t)(*c++ - '0');
	uint64_t mul = 0;
	if (c > s && *c == 0)
		mul = 1;
	else if (c > s && c[1] == 0)
		mul = *c == 's'   ? 1
		      : *c == 'm' ? 60
		      : *c == 'h' ? 3600
		      : *c == 'd' ? 86400
				  : 0;
	if (!mul || v == 0 || v * mul > UINT32_MAX) {
		pl_errh(pl, r, "use e.g. 30s, 10m, 1h, 2d or integer seconds",
			"'%s': invalid duration '%s'", key, s);
		return false;
	}
	*out = (uint32_t)(v * mul);
	return true;
}

/* Items of a value that may be one scalar or a sequence of scalars.
 * Returns false (after reporting) for other shapes or empty lists. */
static bool pl_items(pl_t *pl, pl_ref_t r, const char *key, pl_ref_t **out,
		     size_t *n)
{
	if (r.n->type == YAML_SCALAR_NODE) {
		*out = pl_alloc(pl, pl->tmp, sizeof(pl_ref_t));
		(*out)[0] = r;
		*n = 1;
		return true;
	}
	if (r.n->type != YAML_SEQUENCE_NODE) {
		pl_err(pl, r, "'%s': expected a string or a list, got %s", key,
		       pl_kind_name(r.n));
		return false;
	}
	size_t len = pl_len(r);
	if (!len) {
		pl_err(pl, r, "'%s': empty list", key);
		return false;
	}
	pl_ref_t *v = pl_alloc(pl, pl->tmp, len * sizeof(*v));
	bool ok = true;
	for (size_t i = 0; i < len; i++) {
		v[i] = pl_item(r, i);
		if (!pl_expect(pl, v[i], YAML_SCALAR_NODE, key))
			ok = false;
	}
	*out = v;
	*n = len;
	return ok;
}

/* A list of strings copied into the policy arena (NULL-free). */
static bool pl_strlist(pl_t *pl, pl_ref_t r, const char *key,
		       const char *const **out, size_t *n)
{
	pl_ref_t *it;
	size_t cnt;
	if (!pl_items(pl, r, key, &it, &cnt))
		return false;
	const char **v = pl_alloc(pl, pl->a, cnt * sizeof(*v));
	bool ok = true;
	for (size_t i = 0; i < cnt; i++) {
		v[i] = pl_strdup(pl, pl_scalar(it[i]));
		if (!*v[i]) {
			pl_err(pl, it[i], "'%s': empty entry", key);
			ok = false;
		}
	}
	*out = v;
	*n = cnt;
	return ok;
}

/* Looks a keyword up in a table; reports unknown ones with a hint. */
typedef struct pl_kw_s {
	const char *name;
	uint32_t val;
} pl_kw_t;

static bool pl_keyword(pl_t *pl, pl_ref_t r, const char *key, const pl_kw_t *kw,
		       size_t nkw, uint32_t *out)
{
	const char *s = pl_scalar(r);
	pl_suggest_t sg;
	pl_suggest_init(&sg);
	for (size_t i = 0; i < nkw; i++) {
		if (!strcmp(s, kw[i].name)) {
			*out = kw[i].val;
			return true;
		}
		pl_suggest_add(&sg, s, kw[i].name);
	}
	char all[512];
	size_t o = 0;
	all[0] = 0;
	for (size_t i = 0; i < nkw && o < sizeof(all); i++)
		o += (size_t)snprintf(all + o, sizeof(all) - o, "%s%s",
				      i ? ", " : "", kw[i].name);
	const char *hint = pl_suggest_hint(&sg);
	char h2[600];
	if (!hint) {
		snprintf(h2, sizeof(h2), "expected one of: %s", all);
		hint = h2;
	}
	pl_errh(pl, r, hint, "'%s': unknown value '%s'", key, s);
	return false;
}

/* OR of keywords over a scalar or list value. */
static bool pl_keywords(pl_t *pl, pl_ref_t r, const char *key,
			const pl_kw_t *kw, size_t nkw, uint32_t *mask)
{
	pl_ref_t *it;
	size_t n;
	if (!pl_items(pl, r, key, &it, &n))
		return false;
	bool ok = true;
	*mask = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t v;
		if (pl_keyword(pl, it[i], key, kw, nkw, &v))
			*mask |= v;
		else
			ok = false;
	}
	return ok;
}

/* Fills vals/keyrefs from the pairs of mapping r.  With merged (the
 * mapping came from a YAML merge key `<<: *defaults`), keys already set
 * are overridden silently, as YAML 1.1 merge keys mean. */
static void pl_fields_map(pl_t *pl, pl_ref_t r, const char *what,
			  const char *const *keys, size_t nkeys, pl_ref_t *vals,
			  pl_ref_t *keyrefs, bool merged, unsigned depth)
{
	pl_ref_t merges[8];
	size_t n_merges = 0;
	for (yaml_node_pair_t *pr = r.n->data.mapping.pairs.start;
	     pr < r.n->data.mapping.pairs.top; pr++) {
		pl_ref_t k = pl_child(r, pr->key), v = pl_child(r, pr->value);
		if (!pl_is_scalar(k)) {
			pl_err(pl, k, "%s: keys must be strings, got %s", what,
			       pl_kind_name(k.n));
			continue;
		}
		const char *ks = pl_scalar(k);
		if (!strcmp(ks, "<<") &&
		    k.n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			/* bounded: merges of merges could otherwise grow
			 * exponentially through aliases */
			if (n_merges < IMP_ARRAY_LEN(merges) && depth < 8 &&
			    ++pl->n_merge_ops <= 10000)
				merges[n_merges++] = v;
			else if (!pl->merges_reported++)
				pl_err(pl, k, "too many merge keys ('<<')");
			continue;
		}
		size_t i;
		pl_suggest_t sg;
		pl_suggest_init(&sg);
		for (i = 0; i < nkeys; i++) {
			if (!strcmp(ks, keys[i]))
				break;
			pl_suggest_add(&sg, ks, keys[i]);
		}
		if (i == nkeys) {
			pl_errh(pl, k, pl_suggest_hint(&sg),
				"unknown key '%s' in %s", ks, what);
			continue;
		}
		if (vals[i].n) {
			if (!merged)
				pl_err(pl, k, "duplicate key '%s' in %s", ks,
				       what);
			continue;
		}
		vals[i] = v;
		if (keyrefs)
			keyrefs[i] = k;
	}
	/* merged mappings fill only the keys this mapping left unset; with
	 * a list, earlier mappings take precedence */
	for (size_t m = 0; m < n_merges; m++) {
		pl_ref_t v = merges[m];
		size_t cnt = v.n->type == YAML_SEQUENCE_NODE ? pl_len(v) : 1;
		for (size_t j = 0; j < cnt; j++) {
			pl_ref_t src = v.n->type == YAML_SEQUENCE_NODE
					       ? pl_item(v, j)
					       : v;
			if (src.n->type != YAML_MAPPING_NODE) {
				pl_err(pl, src,
				       "'<<': expected a mapping or a list of "
				       "mappings, got %s",
				       pl_kind_name(src.n));
				continue;
			}
			pl_fields_map(pl, src, what, keys, nkeys, vals, keyrefs,
				      true, depth + 1);
		}
	}
}

/* Splits a mapping with a fixed key set: vals[i] gets the value of
 * keys[i] (n == NULL when absent).  Unknown and duplicate keys are
 * reported; YAML merge keys (`<<`) are honoured.  Returns false when r is
 * not a mapping. */
static bool pl_fields(pl_t *pl, pl_ref_t r, const char *what,
		      const char *const *keys, size_t nkeys, pl_ref_t *vals,
		      pl_ref_t *keyrefs)
{
	for (size_t i = 0; i < nkeys; i++) {
		vals[i].src = r.src;
		vals[i].n = NULL;
		if (keyrefs)
			keyrefs[i] = vals[i];
	}
	if (r.n->type != YAML_MAPPING_NODE) {
		pl_err(pl, r, "%s: expected a mapping, got %s", what,
		       pl_kind_name(r.n));
		return false;
	}
	pl_fields_map(pl, r, what, keys, nkeys, vals, keyrefs, false, 0);
	return true;
}

/* ---- files -------------------------------------------------------------- */

/* Resolves rel against the directory of base (display paths). */
static const char *pl_resolve(pl_t *pl, const char *base, const char *rel)
{
	if (rel[0] == '/')
		return pl_strdup(pl, rel);
	const char *slash = strrchr(base, '/');
	if (!slash)
		return pl_strdup(pl, rel);
	char *s = imp_arena_printf(pl->a, "%.*s/%s", (int)(slash - base), base,
				   rel);
	if (!s)
		longjmp(pl->oom, 1);
	return s;
}

/* Reads a file for the policy: counts it, feeds the digest.  On failure
 * fills err and returns false.  The buffer is pl->filebuf (caller frees
 * with pl_file_done). */
static bool pl_file_read(pl_t *pl, const char *path, size_t *len, char *err,
			 size_t errlen)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "cannot open \"%s\": %s", path,
			 strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		/* a FIFO or device would block or never end a reload */
		snprintf(err, errlen, "\"%s\" is not a regular file", path);
		return false;
	}
	int rc = imp_read_file(pl->ctx, path, PL_MAX_FILE, &pl->filebuf, len,
			       err, errlen);
	if (rc == IMP_ERR_NOMEM)
		longjmp(pl->oom, 1);
	if (rc != IMP_OK) {
		pl->filebuf = NULL;
		return false;
	}
	const char *rel = path;
	size_t ml = strlen(pl->main_dir);
	if (ml && !strncmp(path, pl->main_dir, ml))
		rel = path + ml;
	char hdr[64];
	int hl = snprintf(hdr, sizeof(hdr), "\n%zu\n", *len);
	imp_sha256_update(pl->sha, rel, strlen(rel));
	imp_sha256_update(pl->sha, hdr, (size_t)hl);
	imp_sha256_update(pl->sha, pl->filebuf, *len);
	pl->p->n_files++;
	const char **fp = pl_vec_push(pl, &pl->files, sizeof(*fp));
	*fp = path;
	return true;
}

static void pl_file_done(pl_t *pl)
{
	imp_mfree(pl->ctx, pl->filebuf);
	pl->filebuf = NULL;
}

/* Line and column (1-based) of byte offset off in buf, for reader errors
 * that libyaml reports by offset only. */
static void pl_offset_pos(const char *buf, size_t len, size_t off,
			  unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static void pl_collect_file(pl_t *pl, const char *path, pl_ref_t at,
			    bool is_main);

/* Parses one YAML file into a pl_src_t.  NULL after reporting. */
/* Child i of a sequence or mapping node (a mapping's are key, value, key,
 * ...), as a node index. */
static int pl_kid(const yaml_node_t *nd, size_t i)
{
	if (nd->type == YAML_SEQUENCE_NODE)
		return nd->data.sequence.items.start[i];
	const yaml_node_pair_t *pr = &nd->data.mapping.pairs.start[i / 2];
	return i % 2 ? pr->value : pr->key;
}

/* YAML aliases let a few lines stand for an enormous tree ("billion
 * laughs"), and every reader of the document walks it expanded: the
 * condition compiler would spend time and memory exponential in the file.
 * Sums the expanded size of each node bottom-up, visiting every node once
 * (iteratively: nesting depth is unbounded), and refuses a document whose
 * aliases add more than PL_MAX_ALIAS_NODES nodes, or that holds an alias
 * to an enclosing node, which would expand forever.  Reported on the
 * file; false when refused. */
static bool pl_check_aliases(pl_t *pl, pl_src_t *src)
{
	yaml_document_t *d = &src->doc;
	size_t n = (size_t)(d->nodes.top - d->nodes.start);
	if (!n)
		return true;
	uint64_t cap = (uint64_t)n + PL_MAX_ALIAS_NODES + 1;
	uint64_t *size = pl_alloc(pl, pl->tmp, (n + 1) * sizeof(*size));
	/* per node: 0 not seen, 1 open (on the stack), 2 summed */
	unsigned char *state = pl_alloc(pl, pl->tmp, n + 1);
	struct {
		int id;
		size_t pos;
	} *stk = pl_alloc(pl, pl->tmp, n * sizeof(*stk));
	size_t sp = 0;
	stk[sp].id = 1; /* the root */
	stk[sp++].pos = 0;
	state[1] = 1;
	while (sp) {
		yaml_node_t *nd = yaml_document_get_node(d, stk[sp - 1].id);
		size_t pos = stk[sp - 1].pos, nkids = 0;
		if (nd->type == YAML_SEQUENCE_NODE)
			nkids = (size_t)(nd->data.sequence.items.top -
					 nd->data.sequence.items.start);
		else if (nd->type == YAML_MAPPING_NODE)
			nkids = 2 * (size_t)(nd->data.mapping.pairs.top -
					     nd->data.mapping.pairs.start);
		if (pos < nkids) {
			int kid = pl_kid(nd, pos);
			stk[sp - 1].pos++;
			if (state[kid] == 1) {
				pl_errx(pl, src->file,
					(unsigned)nd->start_mark.line + 1,
					(unsigned)nd->start_mark.column + 1,
					"an alias cannot refer to a node that "
					"contains it",
					NULL,
					"YAML alias refers to its own "
					"enclosing node");
				return false;
			}
			if (!state[kid]) {
				state[kid] = 1;
				stk[sp].id = kid;
				stk[sp++].pos = 0;
			}
			continue;
		}
		uint64_t sum = 1;
		for (size_t i = 0; i < nkids && sum < cap; i++)
			sum += size[pl_kid(nd, i)];
		size[stk[sp - 1].id] = sum < cap ? sum : cap;
		state[stk[sp - 1].id] = 2;
		sp--;
	}
	if (size[1] < cap)
		return true;
	yaml_node_t *root = yaml_document_get_node(d, 1);
	pl_errx(pl, src->file, (unsigned)root->start_mark.line + 1,
		(unsigned)root->start_mark.column + 1,
		"reuse lists by name instead of repeating aliases", NULL,
		"YAML aliases expand the document by more than %d nodes",
		PL_MAX_ALIAS_NODES);
	return false;
}

static pl_src_t *pl_parse(pl_t *pl, const char *path, pl_ref_t at,
			  const char *what)
{
	char err[512];
	size_t len;
	if (!pl_file_read(pl, path, &len, err, sizeof(err))) {
		if (at.n)
			pl_err(pl, at, "%s: %s", what, err);
		else
			pl_errx(pl, NULL, 0, 0, NULL, NULL, "%s", err);
		return NULL;
	}
	pl_src_t *src = pl_alloc(pl, pl->tmp, sizeof(*src));
	src->file = path;
	yaml_parser_t ps;
	if (!yaml_parser_initialize(&ps))
		longjmp(pl->oom, 1);
	yaml_parser_set_input_string(&ps, (const unsigned char *)pl->filebuf,
				     len);
	bool ok = yaml_parser_load(&ps, &src->doc) != 0;
	if (ok) {
		/* a second document would be silently ignored */
		yaml_document_t extra;
		if (yaml_parser_load(&ps, &extra)) {
			yaml_node_t *root = yaml_document_get_root_node(&extra);
			if (root)
				pl_errx(pl, path,
					(unsigned)root->start_mark.line + 1,
					(unsigned)root->start_mark.column + 1,
					NULL, NULL,
					"more than one YAML document in the "
					"file");
			yaml_document_delete(&extra);
		} else {
			ok = false;
			yaml_document_delete(&src->doc);
		}
	}
	if (!ok) {
		unsigned line, col;
		if (ps.error == YAML_READER_ERROR) {
			pl_offset_pos(pl->filebuf, len, ps.problem_offset,
				      &line, &col);
		} else {
			line = (unsigned)ps.problem_mark.line + 1;
			col = (unsigned)ps.problem_mark.column + 1;
		}
		if (ps.error == YAML_MEMORY_ERROR) {
			yaml_parser_delete(&ps);
			longjmp(pl->oom, 1);
		}
		pl_errx(pl, path, line, col, NULL, ps.context,
			"YAML syntax error: %s",
			ps.problem ? ps.problem : "unknown problem");
		yaml_parser_delete(&ps);
		pl_file_done(pl);
		return NULL;
	}
	yaml_parser_delete(&ps);
	pl_file_done(pl);
	src->next = pl->srcs;
	pl->srcs = src; /* from here the document is freed with the rest */
	return pl_check_aliases(pl, src) ? src : NULL;
}

static void pl_collect_named(pl_t *pl, int sect, pl_ref_t map)
{
	if (!pl_expect(pl, map, YAML_MAPPING_NODE, pl_sect_key[sect]))
		return;
	for (yaml_node_pair_t *pr = map.n->data.mapping.pairs.start;
	     pr < map.n->data.mapping.pairs.top; pr++) {
		pl_ref_t k = pl_child(map, pr->key),
			 v = pl_child(map, pr->value);
		if (!pl_is_scalar(k)) {
			pl_err(pl, k, "%s names must be strings, got %s",
			       pl_sect_what[sect], pl_kind_name(k.n));
			continue;
		}
		const char *name = pl_scalar(k);
		if (sect != PL_USER && !pl_valid_name(name)) {
			pl_err(pl, k,
			       "invalid %s name '%s' (use letters, digits, "
			       "'_', '.', '-')",
			       pl_sect_what[sect], name);
			continue;
		}
		if (sect == PL_GROUP &&
		    (!strcmp(name, "local") || !strcmp(name, "remote"))) {
			pl_err(pl, k, "'%s' is a built-in group name", name);
			continue;
		}
		pl_vec_t *vec = &pl->named[sect];
		pl_named_t *e = vec->v;
		size_t i;
		for (i = 0; i < vec->n; i++)
			if (!strcmp(e[i].name, name))
				break;
		if (i < vec->n) {
			pl_err(pl, k,
			       "duplicate %s '%s' (first defined at %s:%u)",
			       pl_sect_what[sect], name, e[i].key.src->file,
			       PL_LINE(e[i].key));
			continue;
		}
		pl_named_t *ne = pl_vec_push(pl, vec, sizeof(*ne));
		ne->name = pl_strdup(pl, name);
		ne->key = k;
		ne->val = v;
	}
}

static void pl_collect_once(pl_t *pl, pl_ref_t *slot, pl_ref_t k, pl_ref_t v,
			    const char *key)
{
	if (slot->n) {
		pl_err(pl, k, "duplicate '%s' section (first defined at %s:%u)",
		       key, slot->src->file,
		       (unsigned)slot->n->start_mark.line + 1);
		return;
	}
	*slot = v;
}

static void pl_collect_includes(pl_t *pl, pl_src_t *src, pl_ref_t v)
{
	pl_ref_t *it;
	size_t n;
	if (!pl_items(pl, v, "include", &it, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *rel = pl_scalar(it[i]);
		if (!*rel) {
			pl_err(pl, it[i], "'include': empty path");
			continue;
		}
		const char *path = pl_resolve(pl, src->file, rel);
		pl_collect_file(pl, path, it[i], false);
	}
}

/* Reads path (the main file or an include) and gathers its sections.
 * Includes are processed first so that their rules come before the
 * including file's own. */
static void pl_collect_file(pl_t *pl, const char *path, pl_ref_t at,
			    bool is_main)
{
	char *real = realpath(path, NULL);
	const char *id = path;
	if (real) {
		id = imp_arena_strdup(pl->a, real);
		free(real); /* before a possible unwind */
		if (!id)
			longjmp(pl->oom, 1);
	}
	for (size_t i = 0; i < pl->depth; i++) {
		if (!strcmp(pl->stack[i], id)) {
			pl_err(pl, at,
			       "include cycle: \"%s\" is already being "
			       "included",
			       path);
			return;
		}
	}
	if (pl->depth > PL_MAX_INCLUDE_DEPTH) {
		pl_err(pl, at, "includes nested more than %d levels deep",
		       PL_MAX_INCLUDE_DEPTH);
		return;
	}
	pl_src_t *src = pl_parse(pl, path, at, "include");
	if (!src)
		return;
	pl->stack[pl->depth++] = id;
	pl_ref_t root = {src, yaml_document_get_root_node(&src->doc)};
	if (!root.n) {
		if (is_main)
			pl_errx(pl, path, 1, 1, NULL, NULL,
				"the policy file is empty");
		pl->depth--;
		return;
	}
	if (root.n->type != YAML_MAPPING_NODE) {
		pl_err(pl, root,
		       "the policy file must be a mapping of sections, got %s",
		       pl_kind_name(root.n));
		pl->depth--;
		return;
	}
	static const char *const top[] = {
		"include", "policy", "settings",  "schedules", "groups",
		"users",   "lists",  "detectors", "rules",     "escalation"};
	pl_ref_t vals[IMP_ARRAY_LEN(top)], keys[IMP_ARRAY_LEN(top)];
	pl_fields(pl, root, "the top level", top, IMP_ARRAY_LEN(top), vals,
		  keys);
	if (vals[0].n)
		pl_collect_includes(pl, src, vals[0]);
	if (vals[1].n) {
		if (!is_main)
			pl_err(pl, keys[1],
			       "'policy' is only allowed in the "
			       "main file");
		else
			pl->policy = vals[1];
	} else if (is_main) {
		pl_errx(pl, path, 1, 1, NULL, NULL,
			"missing required section 'policy'");
	}
	if (vals[2].n)
		pl_collect_once(pl, &pl->settings, keys[2], vals[2],
				"settings");
	for (int s = 0; s < PL_NSECT; s++)
		if (vals[3 + s].n)
			pl_collect_named(pl, s, vals[3 + s]);
	if (vals[8].n && pl_expect(pl, vals[8], YAML_SEQUENCE_NODE, "rules")) {
		for (size_t i = 0; i < pl_len(vals[8]); i++) {
			pl_ref_t *r = pl_vec_push(pl, &pl->rules, sizeof(*r));
			*r = pl_item(vals[8], i);
		}
	}
	if (vals[9].n)
		pl_collect_once(pl, &pl->escalation, keys[9], vals[9],
				"escalation");
	pl->depth--;
}

/* ---- lookups -------------------------------------------------------------- */

static long pl_find(pl_t *pl, int sect, const char *name)
{
	pl_named_t *e = pl->named[sect].v;
	for (size_t i = 0; i < pl->named[sect].n; i++)
		if (!strcmp(e[i].name, name))
			return (long)i;
	return -1;
}

static void pl_unknown(pl_t *pl, int sect, pl_ref_t r, const char *extra1,
		       const char *extra2)
{
	const char *name = pl_scalar(r);
	pl_suggest_t sg;
	pl_suggest_init(&sg);
	pl_named_t *e = pl->named[sect].v;
	for (size_t i = 0; i < pl->named[sect].n; i++)
		pl_suggest_add(&sg, name, e[i].name);
	if (extra1)
		pl_suggest_add(&sg, name, extra1);
	if (extra2)
		pl_suggest_add(&sg, name, extra2);
	pl_errh(pl, r, pl_suggest_hint(&sg), "unknown %s '%s'",
		pl_sect_what[sect], name);
}

static const imp_tz_t *pl_tz(pl_t *pl, pl_ref_t r)
{
	if (!pl_expect(pl, r, YAML_SCALAR_NODE, "timezone"))
		return NULL;
	const char *name = pl_scalar(r);
	pl_tzc_t *c = pl->tzc.v;
	for (size_t i = 0; i < pl->tzc.n; i++)
		if (!strcmp(c[i].name, name))
			return c[i].tz;
	const imp_tz_t *tz = NULL;
	char err[256] = "";
	int rc = imp_tz_load(pl->a, NULL, name, &tz, err, sizeof(err));
	if (rc == IMP_ERR_NOMEM)
		longjmp(pl->oom, 1);
	if (rc != IMP_OK || !tz) {
		/* the zoneinfo path of a missing zone is noise for the
		 * admin (and differs between machines) */
		if (err[0] && strncmp(err, "unknown time zone", 17) != 0)
			pl_err(pl, r, "%s", err);
		else
			pl_err(pl, r, "unknown time zone '%s'", name);
		return NULL;
	}
	pl_tzc_t *nc = pl_vec_push(pl, &pl->tzc, sizeof(*nc));
	nc->name = pl_strdup(pl, name);
	nc->tz = tz;
	return tz;
}

/* notify: true (the settings' JIDs) or a list of JIDs. */
static void pl_notify(pl_t *pl, pl_ref_t r, const char *const **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (pl_is_bool(r)) {
		if (pl_bool(pl, r, "notify") == 1) {
			if (!pl->p->n_notify)
				pl_errh(pl, r,
					"list compliance JIDs in "
					"settings.notify "
					"or give them here",
					"'notify: true' but settings.notify "
					"names no JIDs");
			*out = pl->p->notify;
			*n = pl->p->n_notify;
		}
		return;
	}
	pl_strlist(pl, r, "notify", out, n);
}

/* ---- sections ------------------------------------------------------------- */

static void pl_compile_policy(pl_t *pl, const imp_load_options_t *opt)
{
	imp_policy_t *p = pl->p;
	p->tz = imp_tz_utc();
	p->name = "";
	const char *const *doms = NULL;
	size_t n_doms = 0;
	if (pl->policy.n) {
		static const char *const keys[] = {"name", "version",
						   "timezone", "local_domains"};
		pl_ref_t v[4];
		if (pl_fields(pl, pl->policy, "'policy'", keys, 4, v, NULL)) {
			if (v[0].n) {
				const char *s = pl_str_ne(pl, v[0], "name");
				if (s)
					p->name = s;
			} else {
				pl_err(pl, pl->policy,
				       "missing required key 'name' in "
				       "'policy'");
			}
			if (v[1].n)
				p->version = pl_str(pl, v[1], "version");
			if (v[2].n) {
				const imp_tz_t *tz = pl_tz(pl, v[2]);
				if (tz)
					p->tz = tz;
			}
			if (v[3].n)
				pl_strlist(pl, v[3], "local_domains", &doms,
					   &n_doms);
		}
	}
	size_t extra = opt ? opt->n_local_domains : 0;
	const char **all = pl_alloc(pl, pl->a, (n_doms + extra) * sizeof(*all));
	for (size_t i = 0; i < n_doms; i++)
		all[i] = doms[i];
	for (size_t i = 0; i < extra; i++)
		all[n_doms + i] = pl_strdup(pl, opt->local_domains[i]);
	p->local_domains = all;
	p->n_local_domains = n_doms + extra;
}

static void pl_compile_settings(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	p->on_uninspectable = IMP_OUTCOME_FLAG;
	p->on_malformed = IMP_REJECT;
	p->default_notice = PL_DEFAULT_NOTICE;
	p->mask = "*";
	p->max_scan_bytes = 1048576;
	if (!pl->settings.n)
		return;
	static const char *const keys[] = {
		"on_uninspectable", "on_malformed", "default_notice", "mask",
		"notify",           "retention",    "max_scan_bytes"};
	pl_ref_t v[7];
	if (!pl_fields(pl, pl->settings, "'settings'", keys, 7, v, NULL))
		return;
	static const pl_kw_t outc[] = {{"flag", IMP_OUTCOME_FLAG},
				       {"reject", IMP_OUTCOME_REJECT}};
	static const pl_kw_t malf[] = {{"reject", IMP_REJECT},
				       {"flag", IMP_FLAG}};
	uint32_t u;
	if (v[0].n && pl_expect(pl, v[0], YAML_SCALAR_NODE, keys[0]) &&
	    pl_keyword(pl, v[0], keys[0], outc, 2, &u))
		p->on_uninspectable = (imp_outcome_t)u;
	if (v[1].n && pl_expect(pl, v[1], YAML_SCALAR_NODE, keys[1]) &&
	    pl_keyword(pl, v[1], keys[1], malf, 2, &u))
		p->on_malformed = (imp_action_t)u;
	if (v[2].n) {
		const char *s = pl_str_ne(pl, v[2], keys[2]);
		if (s)
			p->default_notice = s;
	}
	if (v[3].n) {
		const char *s = pl_str(pl, v[3], keys[3]);
		if (s && (strlen(s) != 1 || s[0] < 0x21 || s[0] > 0x7e ||
			  s[0] == '<' || s[0] == '&'))
			pl_err(pl, v[3],
			       "'mask': expected one printable ASCII "
			       "character other than '<' and '&', got '%s'",
			       s);
		else if (s)
			p->mask = s;
	}
	if (v[4].n)
		pl_strlist(pl, v[4], keys[4], &p->notify, &p->n_notify);
	if (v[5].n)
		p->retention_default = pl_str_ne(pl, v[5], keys[5]);
	uint64_t n;
	if (v[6].n && pl_uint(pl, v[6], keys[6], 1, (uint64_t)1 << 30, &n))
		p->max_scan_bytes = (size_t)n;
}

static void pl_compile_scheds(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_named_t *e = pl->named[PL_SCHED].v;
	size_t n = pl->named[PL_SCHED].n;
	p->scheds = pl_alloc(pl, pl->a, n * sizeof(*p->scheds));
	p->n_scheds = n;
	/* the except references, kept for the cycle check */
	pl_ref_t **exc = pl_alloc(pl, pl->tmp, n * sizeof(*exc));
	static const char *const keys[] = {"days", "hours", "dates", "except"};
	for (size_t i = 0; i < n; i++) {
		imp_sched_t *s = &p->scheds[i];
		s->name = e[i].name;
		s->days = 0x7f;
		pl_ref_t v[4];
		char what[300], err[256];
		snprintf(what, sizeof(what), "schedule '%s'", e[i].name);
		if (!pl_fields(pl, e[i].val, what, keys, 4, v, NULL))
			continue;
		pl_ref_t *it;
		size_t cnt;
		if (v[0].n && pl_items(pl, v[0], "days", &it, &cnt)) {
			s->days = 0;
			for (size_t j = 0; j < cnt; j++) {
				uint8_t m = 0;
				err[0] = 0;
				if (imp_sched_parse_days(pl_scalar(it[j]), &m,
							 err, sizeof(err)))
					s->days |= m;
				else
					pl_errx(pl, it[j].src->file,
						PL_LINE(it[j]), PL_COL(it[j]),
						NULL, err[0] ? err : NULL,
						"invalid days '%s'",
						pl_scalar(it[j]));
			}
		}
		if (v[1].n && pl_items(pl, v[1], "hours", &it, &cnt)) {
			imp_window_t *w = pl_alloc(pl, pl->a, cnt * sizeof(*w));
			size_t k = 0;
			for (size_t j = 0; j < cnt; j++) {
				err[0] = 0;
				if (imp_sched_parse_window(pl_scalar(it[j]),
							   &w[k], err,
							   sizeof(err)))
					k++;
				else
					pl_errx(pl, it[j].src->file,
						PL_LINE(it[j]), PL_COL(it[j]),
						NULL, err[0] ? err : NULL,
						"invalid time window '%s'",
						pl_scalar(it[j]));
			}
			s->windows = w;
			s->n_windows = k;
		}
		if (v[2].n && pl_items(pl, v[2], "dates", &it, &cnt)) {
			imp_date_t *d = pl_alloc(pl, pl->a, cnt * sizeof(*d));
			size_t k = 0;
			for (size_t j = 0; j < cnt; j++) {
				err[0] = 0;
				if (imp_sched_parse_date(pl_scalar(it[j]),
							 &d[k], err,
							 sizeof(err)))
					k++;
				else
					pl_errx(pl, it[j].src->file,
						PL_LINE(it[j]), PL_COL(it[j]),
						NULL, err[0] ? err : NULL,
						"invalid date '%s'",
						pl_scalar(it[j]));
			}
			s->dates = d;
			s->n_dates = k;
		}
		if (v[3].n && pl_items(pl, v[3], "except", &it, &cnt)) {
			uint32_t *x = pl_alloc(pl, pl->a, cnt * sizeof(*x));
			exc[i] = pl_alloc(pl, pl->tmp, cnt * sizeof(pl_ref_t));
			size_t k = 0;
			for (size_t j = 0; j < cnt; j++) {
				long idx =
					pl_find(pl, PL_SCHED, pl_scalar(it[j]));
				if (idx < 0) {
					pl_unknown(pl, PL_SCHED, it[j], NULL,
						   NULL);
					continue;
				}
				exc[i][k] = it[j];
				x[k++] = (uint32_t)idx;
			}
			s->except = x;
			s->n_except = k;
		}
	}
	/* except cycles: iterative DFS with colours (0 white, 1 on the
	 * path, 2 done); a back edge is reported at the except item. */
	uint8_t *col = pl_alloc(pl, pl->tmp, n ? n : 1);
	size_t *stk = pl_alloc(pl, pl->tmp, (n + 1) * sizeof(*stk));
	size_t *pos = pl_alloc(pl, pl->tmp, (n + 1) * sizeof(*pos));
	for (size_t r = 0; r < n; r++) {
		if (col[r])
			continue;
		size_t sp = 0;
		stk[0] = r;
		pos[0] = 0;
		col[r] = 1;
		while (1) {
			size_t u = stk[sp];
			if (pos[sp] < p->scheds[u].n_except) {
				size_t j = pos[sp]++;
				uint32_t w = p->scheds[u].except[j];
				if (col[w] == 1) {
					pl_err(pl, exc[u][j],
					       "schedule 'except' cycle: '%s' "
					       "excepts '%s', which leads back "
					       "to '%s'",
					       p->scheds[u].name,
					       p->scheds[w].name,
					       p->scheds[u].name);
				} else if (col[w] == 0) {
					col[w] = 1;
					stk[++sp] = w;
					pos[sp] = 0;
				}
				continue;
			}
			col[u] = 2;
			if (sp == 0)
				break;
			sp--;
		}
	}
}

static void pl_compile_groups(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_named_t *e = pl->named[PL_GROUP].v;
	size_t n = pl->named[PL_GROUP].n;
	p->groups = pl_alloc(pl, pl->a, n * sizeof(*p->groups));
	p->n_groups = n;
	static const char *const keys[] = {"jids", "members", "domains",
					   "timezone"};
	for (size_t i = 0; i < n; i++) {
		imp_group_t *g = &p->groups[i];
		g->name = e[i].name;
		pl_ref_t v[4];
		char what[300];
		snprintf(what, sizeof(what), "group '%s'", e[i].name);
		if (!pl_fields(pl, e[i].val, what, keys, 4, v, NULL))
			continue;
		const char *const *a = NULL, *const *b = NULL;
		size_t na = 0, nb = 0;
		if (v[0].n)
			pl_strlist(pl, v[0], "jids", &a, &na);
		if (v[1].n)
			pl_strlist(pl, v[1], "members", &b, &nb);
		/* members are exact bare JIDs: lowercase them and keep them
		 * with the globs (a glob without wildcards matches exactly) */
		const char **gl = pl_alloc(pl, pl->a, (na + nb) * sizeof(*gl));
		for (size_t j = 0; j < na; j++)
			gl[j] = a[j];
		for (size_t j = 0; j < nb; j++) {
			char *m = pl_strdup(pl, b[j]);
			char *slash = strchr(m, '/');
			if (slash)
				*slash = 0;
			for (char *c = m; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c + 32);
			gl[na + j] = m;
		}
		g->globs = gl;
		g->n_globs = na + nb;
		if (v[2].n)
			pl_strlist(pl, v[2], "domains", &g->domains,
				   &g->n_domains);
		if (v[3].n)
			g->tz = pl_tz(pl, v[3]);
		if (!v[0].n && !v[1].n && !v[2].n)
			pl_err(pl, e[i].val,
			       "group '%s' needs 'jids', 'members' or "
			       "'domains'",
			       e[i].name);
	}
}

static int pl_user_cmp(const void *a, const void *b)
{
	return strcmp(((const imp_user_tz_t *)a)->bare,
		      ((const imp_user_tz_t *)b)->bare);
}

static void pl_compile_users(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_named_t *e = pl->named[PL_USER].v;
	size_t n = pl->named[PL_USER].n;
	p->user_tz = pl_alloc(pl, pl->a, n * sizeof(*p->user_tz));
	static const char *const keys[] = {"timezone"};
	for (size_t i = 0; i < n; i++) {
		char *bare = pl_strdup(pl, e[i].name);
		char *slash = strchr(bare, '/');
		if (slash)
			*slash = 0;
		for (char *c = bare; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (!*bare || bare[0] == '@' || strchr(bare, ' ')) {
			pl_err(pl, e[i].key, "invalid user JID '%s'",
			       e[i].name);
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < p->n_user_tz; j++)
			if (!strcmp(p->user_tz[j].bare, bare)) {
				pl_err(pl, e[i].key,
				       "duplicate user '%s' (the same bare "
				       "JID as another entry)",
				       e[i].name);
				dup = true;
			}
		if (dup)
			continue;
		pl_ref_t v[1];
		char what[300];
		snprintf(what, sizeof(what), "user '%s'", e[i].name);
		if (!pl_fields(pl, e[i].val, what, keys, 1, v, NULL))
			continue;
		if (!v[0].n) {
			pl_err(pl, e[i].val,
			       "missing required key 'timezone' in %s", what);
			continue;
		}
		const imp_tz_t *tz = pl_tz(pl, v[0]);
		if (!tz)
			continue;
		p->user_tz[p->n_user_tz].bare = bare;
		p->user_tz[p->n_user_tz++].tz = tz;
	}
	qsort(p->user_tz, p->n_user_tz, sizeof(*p->user_tz), pl_user_cmp);
}

/* Reads a list file: one entry per line, whole-line '#' comments, blank
 * lines ignored, UTF-8 checked per line. */
static void pl_list_file(pl_t *pl, pl_ref_t at, const char *listname,
			 pl_vec_t *ents, pl_vec_t *lines, const char **file,
			 size_t *n_files)
{
	const char *path = pl_resolve(pl, at.src->file, pl_scalar(at));
	char err[512];
	size_t len;
	if (!pl_file_read(pl, path, &len, err, sizeof(err))) {
		pl_err(pl, at, "list '%s': %s", listname, err);
		return;
	}
	*file = path;
	(*n_files)++;
	const char *buf = pl->filebuf;
	unsigned lineno = 0;
	size_t i = 0;
	if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
		i = 3; /* a BOM is not part of the first entry */
	while (i < len) {
		size_t s = i;
		while (i < len && buf[i] != '\n')
			i++;
		size_t e = i;
		i++;
		lineno++;
		if (!imp_utf8_valid(buf + s, e - s)) {
			pl_errx(pl, path, lineno, 0, NULL, NULL,
				"invalid UTF-8 in list file");
			continue;
		}
		while (s < e && (buf[s] == ' ' || buf[s] == '\t'))
			s++;
		while (e > s && (buf[e - 1] == ' ' || buf[e - 1] == '\t' ||
				 buf[e - 1] == '\r'))
			e--;
		if (s == e || buf[s] == '#')
			continue;
		if (memchr(buf + s, 0, e - s)) {
			pl_errx(pl, path, lineno, 0, NULL, NULL,
				"NUL byte in list file");
			continue;
		}
		const char **ent = pl_vec_push(pl, ents, sizeof(*ent));
		*ent = imp_arena_strndup(pl->a, buf + s, e - s);
		if (!*ent)
			longjmp(pl->oom, 1);
		unsigned *ln = pl_vec_push(pl, lines, sizeof(*ln));
		*ln = lineno;
	}
	pl_file_done(pl);
}

static void pl_compile_lists(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_named_t *e = pl->named[PL_LIST].v;
	size_t n = pl->named[PL_LIST].n;
	p->lists = pl_alloc(pl, pl->a, n * sizeof(*p->lists));
	p->n_lists = n;
	imp_lexlist_t *lx = pl_alloc(pl, pl->a, n * sizeof(*lx));
	size_t before = pl->nerr;
	static const char *const keys[] = {"words", "phrases",    "file",
					   "files", "categories", "match",
					   "lang"};
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		imp_list_t *l = &p->lists[i];
		l->name = e[i].name;
		lx[i].name = e[i].name;
		pl_ref_t v[7];
		char what[300];
		snprintf(what, sizeof(what), "list '%s'", e[i].name);
		if (!pl_fields(pl, e[i].val, what, keys, 7, v, NULL)) {
			ok = false;
			continue;
		}
		pl_vec_t ents = {0}, lines = {0};
		const char *file = NULL;
		bool inline_ents = false;
		for (int k = 0; k < 2; k++) {
			if (!v[k].n)
				continue;
			inline_ents = true;
			pl_ref_t *it;
			size_t nw;
			if (!pl_items(pl, v[k], keys[k], &it, &nw))
				continue;
			for (size_t j = 0; j < nw; j++) {
				if (!*pl_scalar(it[j])) {
					pl_err(pl, it[j], "'%s': empty entry",
					       keys[k]);
					continue;
				}
				const char **ent =
					pl_vec_push(pl, &ents, sizeof(*ent));
				*ent = pl_strdup(pl, pl_scalar(it[j]));
				unsigned *ln =
					pl_vec_push(pl, &lines, sizeof(*ln));
				*ln = PL_LINE(it[j]);
			}
		}
		/* The lexicon takes one file per list for its positions:
		 * inline entries point into the policy file, entries of one
		 * list file into that file; a list mixing sources is named
		 * by its definition only. */
		size_t n_files = 0;
		if (v[2].n && pl_expect(pl, v[2], YAML_SCALAR_NODE, "file"))
			pl_list_file(pl, v[2], e[i].name, &ents, &lines, &file,
				     &n_files);
		if (v[3].n) {
			pl_ref_t *it;
			size_t cnt;
			if (pl_items(pl, v[3], "files", &it, &cnt))
				for (size_t j = 0; j < cnt; j++)
					pl_list_file(pl, it[j], e[i].name,
						     &ents, &lines, &file,
						     &n_files);
		}
		if (!inline_ents && !v[2].n && !v[3].n)
			pl_err(pl, e[i].val,
			       "list '%s' needs 'words', 'phrases', 'file' "
			       "or 'files'",
			       e[i].name);
		if (v[4].n)
			pl_strlist(pl, v[4], "categories", &l->categories,
				   &l->n_categories);
		if (v[5].n && pl_expect(pl, v[5], YAML_SCALAR_NODE, "match")) {
			static const pl_kw_t m[] = {{"word", 0},
						    {"substring", 1}};
			uint32_t u;
			if (pl_keyword(pl, v[5], "match", m, 2, &u))
				lx[i].substring = u == 1;
		}
		if (v[6].n)
			l->lang = pl_str_ne(pl, v[6], "lang");
		const char **ev =
			pl_alloc(pl, pl->a, ents.n * sizeof(const char *));
		if (ents.n)
			memcpy(ev, ents.v, ents.n * sizeof(const char *));
		unsigned *lv = NULL;
		if (n_files + inline_ents == 1) {
			lv = pl_alloc(pl, pl->a, lines.n * sizeof(unsigned));
			if (lines.n)
				memcpy(lv, lines.v, lines.n * sizeof(unsigned));
		}
		if (!file || n_files + inline_ents > 1)
			file = e[i].val.src->file;
		lx[i].entries = ev;
		lx[i].n_entries = ents.n;
		lx[i].entry_lines = lv;
		lx[i].file = file;
		l->n_entries = ents.n;
	}
	if (!n || !ok || pl->nerr != before)
		return; /* the lexicon would only repeat errors */
	size_t errs_before =
		imp_errors_count(pl->errs) + imp_errors_dropped(pl->errs);
	int rc = imp_lexicon_build(pl->a, lx, n, pl->engine, pl->errs,
				   &p->lexicon);
	if (rc == IMP_ERR_NOMEM)
		longjmp(pl->oom, 1);
	if (rc != IMP_OK) {
		/* a unit that fails without saying why must still refuse
		 * the policy visibly */
		if (rc != IMP_ERR_POLICY ||
		    imp_errors_count(pl->errs) + imp_errors_dropped(pl->errs) ==
			    errs_before)
			pl_errx(pl, NULL, 0, 0, NULL, NULL,
				"cannot compile the word lists: %s",
				imp_strerror(rc));
		pl->nerr++;
		p->lexicon = NULL;
	}
}

static void pl_compile_detectors(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_named_t *e = pl->named[PL_DET].v;
	size_t n = pl->named[PL_DET].n;
	imp_detector_spec_t *sp = pl_alloc(pl, pl->a, n * sizeof(*sp));
	static const char *const keys[] = {"pattern", "validator", "context",
					   "window", "confidence"};
	size_t before = pl->nerr;
	for (size_t i = 0; i < n; i++) {
		imp_detector_spec_t *d = &sp[i];
		d->name = e[i].name;
		pl_ref_t v[5];
		char what[300];
		snprintf(what, sizeof(what), "detector '%s'", e[i].name);
		if (imp_detect_builtin_exists(e[i].name)) {
			pl_err(pl, e[i].key,
			       "detector '%s' is built in; choose another "
			       "name",
			       e[i].name);
			continue;
		}
		if (!pl_fields(pl, e[i].val, what, keys, 5, v, NULL))
			continue;
		if (!v[0].n) {
			pl_err(pl, e[i].val,
			       "missing required key 'pattern' in %s", what);
		} else {
			d->pattern = pl_str_ne(pl, v[0], "pattern");
			d->file = v[0].src->file;
			d->line = PL_LINE(v[0]);
			d->col = PL_COL(v[0]);
		}
		if (v[1].n && pl_expect(pl, v[1], YAML_SCALAR_NODE, keys[1])) {
			static const pl_kw_t vk[] = {
				{"luhn", 0}, {"mod97", 1}, {"none", 2}};
			uint32_t u;
			if (pl_keyword(pl, v[1], keys[1], vk, 3, &u))
				d->validator = vk[u].name;
		}
		if (v[2].n)
			pl_strlist(pl, v[2], keys[2], &d->context,
				   &d->n_context);
		uint64_t x;
		if (v[3].n && pl_uint(pl, v[3], keys[3], 1, 10000, &x))
			d->window = (unsigned)x;
		/* 0 would mean "the default" to imp_detset_build */
		if (v[4].n && pl_uint(pl, v[4], keys[4], 1, 100, &x))
			d->confidence = (unsigned)x;
	}
	if (pl->nerr != before)
		return;
	size_t errs_before =
		imp_errors_count(pl->errs) + imp_errors_dropped(pl->errs);
	int rc = imp_detset_build(pl->a, sp, n, pl->engine, pl->errs,
				  &p->detectors);
	if (rc == IMP_ERR_NOMEM)
		longjmp(pl->oom, 1);
	if (rc != IMP_OK) {
		/* a unit that fails without saying why must still refuse
		 * the policy visibly */
		if (rc != IMP_ERR_POLICY ||
		    imp_errors_count(pl->errs) + imp_errors_dropped(pl->errs) ==
			    errs_before)
			pl_errx(pl, NULL, 0, 0, NULL, NULL,
				"cannot compile the detectors: %s",
				imp_strerror(rc));
		pl->nerr++;
		p->detectors = NULL;
	}
}

/* ---- conditions ------------------------------------------------------------ */

static const pl_kw_t pl_kinds[] = {{"message", IMP_KIND_MESSAGE},
				   {"presence", IMP_KIND_PRESENCE},
				   {"iq", IMP_KIND_IQ}};
static const pl_kw_t pl_dirs[] = {
	{"outbound", IMP_DIR_OUTBOUND},
	{"inbound", IMP_DIR_INBOUND},
	{"internal", IMP_DIR_INTERNAL},
	{"external", IMP_DIR_OUTBOUND | IMP_DIR_INBOUND | IMP_DIR_EXTERNAL},
	{"outgoing", IMP_DIR_OUTBOUND | IMP_DIR_INTERNAL},
	{"incoming", IMP_DIR_INBOUND | IMP_DIR_INTERNAL}};
static const pl_kw_t pl_fieldkw[] = {{"body", 1u << IMP_FIELD_BODY},
				     {"subject", 1u << IMP_FIELD_SUBJECT},
				     {"xhtml", 1u << IMP_FIELD_XHTML},
				     {"status", 1u << IMP_FIELD_STATUS},
				     {"other", 1u << IMP_FIELD_OTHER}};
static const pl_kw_t pl_ftkw[] = {
	{"upload", IMP_FT_UPLOAD}, {"oob", IMP_FT_OOB},
	{"si", IMP_FT_SI},         {"socks5", IMP_FT_SOCKS5},
	{"ibb", IMP_FT_IBB},       {"jingle", IMP_FT_JINGLE},
	{"sims", IMP_FT_SIMS},     {"sfs", IMP_FT_SFS}};
static const pl_kw_t pl_e2ekw[] = {
	{"omemo", IMP_E2E_OMEMO},     {"omemo2", IMP_E2E_OMEMO2},
	{"openpgp", IMP_E2E_OPENPGP}, {"legacy_pgp", IMP_E2E_LEGACY_PGP},
	{"otr", IMP_E2E_OTR},         {"hint", IMP_E2E_HINT}};
static const pl_kw_t pl_hintkw[] = {
	{"no-store", IMP_HINT_NO_STORE},
	{"no-permanent-store", IMP_HINT_NO_PERMANENT_STORE},
	{"no-copy", IMP_HINT_NO_COPY},
	{"store", IMP_HINT_STORE},
	{"private", IMP_HINT_PRIVATE}};

static const char *const pl_cond_keys[] = {
	"kind",         "type",          "direction", "from",       "to",
	"party",        "between",       "detect",    "words",      "category",
	"fields",       "file_transfer", "encrypted", "hints",      "during",
	"outside",      "correction",    "has_body",  "recipients", "fanout",
	"spoofed_from", "body_bytes",    "any",       "not"};

static imp_cond_t *pl_cond_new(pl_t *pl, imp_cond_op_t op, pl_ref_t key,
			       const char *kname)
{
	if (++pl->n_conds > PL_MAX_CONDS)
		return NULL;
	imp_cond_t *c = pl_alloc(pl, pl->a, sizeof(*c));
	c->op = op;
	c->key = kname;
	c->file = key.src->file;
	c->line = PL_LINE(key);
	c->col = PL_COL(key);
	c->fields = PL_ALL_FIELDS;
	return c;
}

static imp_cond_t *pl_not(pl_t *pl, imp_cond_t *kid, pl_ref_t key,
			  const char *kname)
{
	if (!kid)
		return NULL;
	imp_cond_t *c = pl_cond_new(pl, IMP_C_NOT, key, kname);
	if (!c)
		return NULL;
	c->u.kids.v = pl_alloc(pl, pl->a, sizeof(imp_cond_t *));
	c->u.kids.v[0] = kid;
	c->u.kids.n = 1;
	return c;
}

/* A party set: group names, local, remote, JID globs (with '@'). */
static bool pl_party(pl_t *pl, pl_ref_t v, const char *key, imp_party_t *pt)
{
	pl_ref_t *it;
	size_t n;
	memset(pt, 0, sizeof(*pt));
	if (!pl_items(pl, v, key, &it, &n))
		return false;
	uint32_t *g = pl_alloc(pl, pl->a, n * sizeof(*g));
	const char **gl = pl_alloc(pl, pl->a, n * sizeof(*gl));
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const char *s = pl_scalar(it[i]);
		if (!strcmp(s, "local")) {
			pt->local = true;
		} else if (!strcmp(s, "remote")) {
			pt->remote = true;
		} else if (strchr(s, '@')) {
			gl[pt->n_globs++] = pl_strdup(pl, s);
		} else {
			long idx = pl_find(pl, PL_GROUP, s);
			if (idx < 0) {
				pl_unknown(pl, PL_GROUP, it[i], "local",
					   "remote");
				ok = false;
				continue;
			}
			g[pt->n_groups++] = (uint32_t)idx;
		}
	}
	pt->groups = g;
	pt->globs = gl;
	return ok;
}

/* A list bitset from list names, or from categories. */
static imp_cond_t *pl_cond_lists(pl_t *pl, pl_ref_t k, pl_ref_t v,
				 bool category)
{
	const char *kname = category ? "category" : "words";
	pl_ref_t *it;
	size_t n;
	if (!pl_items(pl, v, kname, &it, &n))
		return NULL;
	imp_policy_t *p = pl->p;
	size_t nw = (p->n_lists + 63) / 64;
	uint64_t *bits = pl_alloc(pl, pl->a, (nw ? nw : 1) * sizeof(*bits));
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const char *s = pl_scalar(it[i]);
		if (!category) {
			long idx = pl_find(pl, PL_LIST, s);
			if (idx < 0) {
				pl_unknown(pl, PL_LIST, it[i], NULL, NULL);
				ok = false;
				continue;
			}
			bits[idx / 64] |= (uint64_t)1 << (idx % 64);
			continue;
		}
		bool found = false;
		pl_suggest_t sg;
		pl_suggest_init(&sg);
		for (size_t l = 0; l < p->n_lists; l++)
			for (size_t j = 0; j < p->lists[l].n_categories; j++) {
				const char *c = p->lists[l].categories[j];
				if (!strcmp(c, s)) {
					bits[l / 64] |= (uint64_t)1 << (l % 64);
					found = true;
				} else {
					pl_suggest_add(&sg, s, c);
				}
			}
		if (!found) {
			pl_errh(pl, it[i], pl_suggest_hint(&sg),
				"unknown category '%s' (no list has it)", s);
			ok = false;
		}
	}
	if (!ok)
		return NULL;
	imp_cond_t *c = pl_cond_new(pl, IMP_C_WORDS, k, kname);
	if (!c)
		return NULL;
	c->u.lists.bits = bits;
	c->u.lists.n_words = nw;
	return c;
}

static imp_cond_t *pl_cond_detect(pl_t *pl, pl_ref_t k, pl_ref_t v)
{
	uint64_t conf = 50;
	pl_ref_t names = v;
	if (v.n->type == YAML_MAPPING_NODE) {
		static const char *const keys[] = {"any", "confidence"};
		pl_ref_t f[2];
		pl_fields(pl, v, "'detect'", keys, 2, f, NULL);
		if (f[1].n && !pl_uint(pl, f[1], "confidence", 0, 100, &conf))
			return NULL;
		if (!f[0].n) {
			pl_err(pl, v, "missing required key 'any' in 'detect'");
			return NULL;
		}
		names = f[0];
	}
	pl_ref_t *it;
	size_t n;
	if (!pl_items(pl, names, "detect", &it, &n))
		return NULL;
	uint64_t mask = 0;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const char *s = pl_scalar(it[i]);
		uint64_t m = 0;
		if (pl->p->detectors) {
			if (imp_detset_mask(pl->p->detectors, s, &m)) {
				mask |= m;
				continue;
			}
		} else if (imp_detect_builtin_exists(s) ||
			   pl_find(pl, PL_DET, s) >= 0) {
			continue; /* set failed to build: already reported */
		}
		pl_suggest_t sg;
		pl_suggest_init(&sg);
		for (const char *const *b = imp_detect_builtin_names(); *b; b++)
			pl_suggest_add(&sg, s, *b);
		pl_named_t *e = pl->named[PL_DET].v;
		for (size_t j = 0; j < pl->named[PL_DET].n; j++)
			pl_suggest_add(&sg, s, e[j].name);
		pl_errh(pl, it[i], pl_suggest_hint(&sg),
			"unknown detector '%s'", s);
		ok = false;
	}
	if (!ok)
		return NULL;
	imp_cond_t *c = pl_cond_new(pl, IMP_C_DETECT, k, "detect");
	if (!c)
		return NULL;
	c->u.detect.mask = mask;
	c->u.detect.min_confidence = (uint8_t)conf;
	return c;
}

/* true or names: a mask (true: every bit); false: NOT of every bit. */
static imp_cond_t *pl_cond_facts(pl_t *pl, pl_ref_t k, pl_ref_t v,
				 imp_cond_op_t op, const char *kname,
				 const pl_kw_t *kw, size_t nkw)
{
	uint32_t mask = 0;
	int b = -1;
	if (pl_is_bool(v)) {
		b = pl_bool(pl, v, kname);
		for (size_t i = 0; i < nkw; i++)
			mask |= kw[i].val;
	} else if (!pl_keywords(pl, v, kname, kw, nkw, &mask)) {
		return NULL;
	}
	imp_cond_t *c = pl_cond_new(pl, op, k, kname);
	if (!c)
		return NULL;
	c->u.mask = mask;
	return b == 0 ? pl_not(pl, c, k, kname) : c;
}

static imp_cond_t *pl_when(pl_t *pl, pl_ref_t r, uint32_t fields,
			   unsigned depth);

static imp_cond_t *pl_cond_atom(pl_t *pl, size_t key, pl_ref_t k, pl_ref_t v,
				uint32_t fields, unsigned depth)
{
	const char *kname = pl_cond_keys[key];
	imp_cond_t *c = NULL;
	uint32_t mask;
	uint64_t num;
	switch (key) {
	case 0: /* kind */
		if (!pl_keywords(pl, v, kname, pl_kinds,
				 IMP_ARRAY_LEN(pl_kinds), &mask))
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_KIND, k, kname)))
			c->u.mask = mask;
		return c;
	case 1: { /* type */
		const char *const *s;
		size_t n;
		if (!pl_strlist(pl, v, kname, &s, &n))
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_TYPE, k, kname))) {
			c->u.strs.v = s;
			c->u.strs.n = n;
		}
		return c;
	}
	case 2: /* direction */
		if (!pl_keywords(pl, v, kname, pl_dirs, IMP_ARRAY_LEN(pl_dirs),
				 &mask))
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_DIRECTION, k, kname)))
			c->u.mask = mask;
		return c;
	case 3:
	case 4:
	case 5: { /* from, to, party */
		imp_party_t pt;
		if (!pl_party(pl, v, kname, &pt))
			return NULL;
		static const imp_cond_op_t ops[] = {IMP_C_FROM, IMP_C_TO,
						    IMP_C_PARTY};
		if ((c = pl_cond_new(pl, ops[key - 3], k, kname)))
			c->u.party = pt;
		return c;
	}
	case 6: { /* between */
		if (v.n->type != YAML_SEQUENCE_NODE || pl_len(v) != 2) {
			if (v.n->type == YAML_SEQUENCE_NODE)
				pl_errh(pl, v, "write between: [A, B]",
					"'between' needs exactly two items, "
					"got %zu",
					pl_len(v));
			else
				pl_errh(pl, v, "write between: [A, B]",
					"'between' needs exactly two items, "
					"got %s",
					pl_kind_name(v.n));
			return NULL;
		}
		imp_party_t a, b;
		bool ok = pl_party(pl, pl_item(v, 0), kname, &a);
		ok = pl_party(pl, pl_item(v, 1), kname, &b) && ok;
		if (!ok)
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_BETWEEN, k, kname))) {
			c->u.pair.a = a;
			c->u.pair.b = b;
		}
		return c;
	}
	case 7: /* detect */
		c = pl_cond_detect(pl, k, v);
		break;
	case 8: /* words */
	case 9: /* category */
		c = pl_cond_lists(pl, k, v, key == 9);
		break;
	case 11:
		return pl_cond_facts(pl, k, v, IMP_C_FILE_TRANSFER, kname,
				     pl_ftkw, IMP_ARRAY_LEN(pl_ftkw));
	case 12:
		return pl_cond_facts(pl, k, v, IMP_C_ENCRYPTED, kname, pl_e2ekw,
				     IMP_ARRAY_LEN(pl_e2ekw));
	case 13:
		if (!pl_keywords(pl, v, kname, pl_hintkw,
				 IMP_ARRAY_LEN(pl_hintkw), &mask))
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_HINTS, k, kname)))
			c->u.mask = mask;
		return c;
	case 14:
	case 15: { /* during, outside */
		pl_ref_t *it;
		size_t n;
		if (!pl_items(pl, v, kname, &it, &n))
			return NULL;
		uint32_t *ix = pl_alloc(pl, pl->a, n * sizeof(*ix));
		bool ok = true;
		for (size_t i = 0; i < n; i++) {
			long idx = pl_find(pl, PL_SCHED, pl_scalar(it[i]));
			if (idx < 0) {
				pl_unknown(pl, PL_SCHED, it[i], NULL, NULL);
				ok = false;
			}
			ix[i] = (uint32_t)idx;
		}
		if (!ok)
			return NULL;
		if (!(c = pl_cond_new(pl, IMP_C_DURING, k, kname)))
			return NULL;
		c->u.scheds.v = ix;
		c->u.scheds.n = n;
		/* outside: none of them active == NOT(DURING) */
		return key == 15 ? pl_not(pl, c, k, kname) : c;
	}
	case 16:
	case 17:
	case 20: { /* correction, has_body, spoofed_from */
		int b = pl_bool(pl, v, kname);
		if (b < 0)
			return NULL;
		imp_cond_op_t op = key == 16   ? IMP_C_CORRECTION
				   : key == 17 ? IMP_C_HAS_BODY
					       : IMP_C_SPOOFED;
		/* u.flag is always true; `false` is NOT(atom) */
		if (!(c = pl_cond_new(pl, op, k, kname)))
			return NULL;
		c->u.flag = true;
		return b ? c : pl_not(pl, c, k, kname);
	}
	case 18:
	case 21: /* recipients, body_bytes */
		if (!pl_uint(pl, v, kname, key == 18 ? 1 : 0, UINT32_MAX, &num))
			return NULL;
		if ((c = pl_cond_new(pl,
				     key == 18 ? IMP_C_RECIPIENTS
					       : IMP_C_BODY_BYTES,
				     k, kname)))
			c->u.count = num;
		return c;
	case 19: { /* fanout */
		static const char *const keys[] = {"recipients", "within"};
		pl_ref_t f[2];
		if (!pl_fields(pl, v, "'fanout'", keys, 2, f, NULL))
			return NULL;
		uint32_t win = 0;
		bool ok = true;
		num = 0;
		for (int i = 0; i < 2; i++)
			if (!f[i].n) {
				pl_err(pl, v,
				       "missing required key '%s' in 'fanout'",
				       keys[i]);
				ok = false;
			}
		if (f[0].n && !pl_uint(pl, f[0], "recipients", 2, 100000, &num))
			ok = false;
		if (f[1].n && !pl_duration(pl, f[1], "within", &win))
			ok = false;
		if (!ok)
			return NULL;
		if ((c = pl_cond_new(pl, IMP_C_FANOUT, k, kname))) {
			c->u.fanout.recipients = (uint32_t)num;
			c->u.fanout.window_s = win;
		}
		return c;
	}
	case 22: { /* any */
		if (!pl_expect(pl, v, YAML_SEQUENCE_NODE, "any"))
			return NULL;
		size_t n = pl_len(v);
		if (!n) {
			pl_err(pl, v, "'any': empty list");
			return NULL;
		}
		imp_cond_t **kids = pl_alloc(pl, pl->a, n * sizeof(*kids));
		bool ok = true;
		for (size_t i = 0; i < n; i++)
			if (!(kids[i] = pl_when(pl, pl_item(v, i), fields,
						depth + 1)))
				ok = false;
		if (!ok || !(c = pl_cond_new(pl, IMP_C_ANY, k, kname)))
			return NULL;
		c->u.kids.v = kids;
		c->u.kids.n = n;
		return c;
	}
	case 23: { /* not */
		imp_cond_t *kid = pl_when(pl, v, fields, depth + 1);
		return kid ? pl_not(pl, kid, k, kname) : NULL;
	}
	default:
		return NULL;
	}
	if (c)
		c->fields = fields;
	return c;
}

/* A `when` mapping: an ALL node over its conditions, in file order.
 * `fields:` applies to the content atoms of this mapping and is inherited
 * by nested any/not mappings unless they set their own.  NULL after
 * reporting. */
static imp_cond_t *pl_when(pl_t *pl, pl_ref_t r, uint32_t fields,
			   unsigned depth)
{
	if (depth > PL_MAX_COND_DEPTH) {
		pl_err(pl, r, "conditions nested more than %d levels deep",
		       PL_MAX_COND_DEPTH);
		return NULL;
	}
	if (pl->n_conds > PL_MAX_CONDS)
		return NULL;
	size_t nk = IMP_ARRAY_LEN(pl_cond_keys);
	pl_ref_t v[IMP_ARRAY_LEN(pl_cond_keys)], k[IMP_ARRAY_LEN(pl_cond_keys)];
	if (!pl_fields(pl, r, "'when'", pl_cond_keys, nk, v, k))
		return NULL;
	bool ok = true;
	if (v[10].n) {
		uint32_t m;
		if (pl_keywords(pl, v[10], "fields", pl_fieldkw,
				IMP_ARRAY_LEN(pl_fieldkw), &m))
			fields = m;
		else
			ok = false;
		if (!v[7].n && !v[8].n && !v[9].n && !v[22].n && !v[23].n)
			pl_errh(pl, k[10],
				"fields applies to detect, words and category "
				"in the same mapping",
				"'fields' without 'detect', 'words' or "
				"'category'");
	}
	imp_cond_t **kids = pl_alloc(pl, pl->a, nk * sizeof(*kids));
	size_t nkids = 0;
	bool done[IMP_ARRAY_LEN(pl_cond_keys)] = {false};
	done[10] = true; /* fields: applied above */
	/* atoms in file order (for explain), then those that came from
	 * merge keys */
	for (yaml_node_pair_t *pr = r.n->data.mapping.pairs.start;
	     pr <= r.n->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn =
			pr < r.n->data.mapping.pairs.top
				? yaml_document_get_node(&r.src->doc, pr->key)
				: NULL;
		for (size_t i = 0; i < nk; i++) {
			if (done[i] || !v[i].n || (kn && k[i].n != kn))
				continue;
			done[i] = true;
			imp_cond_t *c =
				pl_cond_atom(pl, i, k[i], v[i], fields, depth);
			if (c)
				kids[nkids++] = c;
			else
				ok = false;
		}
	}
	if (pl->n_conds > PL_MAX_CONDS)
		return NULL; /* reported by the rule */
	if (!ok)
		return NULL;
	imp_cond_t *c = pl_cond_new(pl, IMP_C_ALL, r, "when");
	if (!c)
		return NULL;
	c->u.kids.v = kids;
	c->u.kids.n = nkids;
	return c;
}

/* Kinds a condition can hold for (conservative: NOT may hold anywhere). */
static unsigned pl_cond_kinds(const imp_cond_t *c)
{
	unsigned k;
	switch (c->op) {
	case IMP_C_ALL:
		k = PL_ALL_KINDS;
		for (size_t i = 0; i < c->u.kids.n; i++)
			k &= pl_cond_kinds(c->u.kids.v[i]);
		return k;
	case IMP_C_ANY:
		k = 0;
		for (size_t i = 0; i < c->u.kids.n; i++)
			k |= pl_cond_kinds(c->u.kids.v[i]);
		return k;
	case IMP_C_KIND:
		return c->u.mask;
	default:
		return PL_ALL_KINDS;
	}
}

static void pl_cond_needs(const imp_cond_t *c, imp_rule_t *r)
{
	switch (c->op) {
	case IMP_C_ALL:
	case IMP_C_ANY:
	case IMP_C_NOT:
		for (size_t i = 0; i < c->u.kids.n; i++)
			pl_cond_needs(c->u.kids.v[i], r);
		break;
	case IMP_C_DETECT:
		r->det_mask |= c->u.detect.mask;
		break;
	case IMP_C_WORDS:
		r->needs_words = true;
		break;
	case IMP_C_FANOUT:
		r->needs_state = true;
		break;
	default:
		break;
	}
}

/* ---- rules and escalation ------------------------------------------------- */

static const pl_kw_t pl_actions[] = {{"allow", IMP_ALLOW},
				     {"flag", IMP_FLAG},
				     {"redact", IMP_REDACT},
				     {"reject", IMP_REJECT}};
static const pl_kw_t pl_sev[] = {
	{"low", 0}, {"medium", 1}, {"high", 2}, {"critical", 3}};

static void pl_compile_rules(pl_t *pl)
{
	imp_policy_t *p = pl->p;
	pl_ref_t *rr = pl->rules.v;
	size_t n = pl->rules.n;
	p->rules = pl_alloc(pl, pl->a, n * sizeof(*p->rules));
	pl_ref_t *idrefs = pl_alloc(pl, pl->tmp, (n ? n : 1) * sizeof(*idrefs));
	static const char *const keys[] = {
		"id",     "section", "description", "severity", "when",
		"action", "notify",  "notice",      "escalate", "retention"};
	for (size_t i = 0; i < n; i++) {
		imp_rule_t *r = &p->rules[p->n_rules];
		pl_ref_t v[10];
		pl->rule_id = NULL;
		if (!pl_fields(pl, rr[i], "a rule", keys, 10, v, NULL))
			continue;
		r->file = rr[i].src->file;
		r->line = PL_LINE(rr[i]);
		r->severity = 1;
		r->action = IMP_FLAG;
		bool ok = true;
		if (!v[0].n) {
			pl_err(pl, rr[i],
			       "missing required key 'id' in a rule");
			ok = false;
		} else if ((r->id = pl_str(pl, v[0], "id"))) {
			if (!pl_valid_name(r->id)) {
				pl_err(pl, v[0],
				       "invalid rule id '%s' (use letters, "
				       "digits, '_', '.', '-')",
				       r->id);
				ok = false;
			}
			for (size_t j = 0; j < p->n_rules; j++)
				if (!strcmp(p->rules[j].id, r->id)) {
					pl_err(pl, v[0],
					       "duplicate rule id '%s' (first "
					       "defined at %s:%u)",
					       r->id, idrefs[j].src->file,
					       PL_LINE(idrefs[j]));
					ok = false;
					break;
				}
			pl->rule_id = r->id;
		} else {
			ok = false;
		}
		if (v[1].n)
			r->section = pl_str_ne(pl, v[1], "section");
		if (v[2].n)
			r->description = pl_str(pl, v[2], "description");
		uint32_t u;
		if (v[3].n &&
		    pl_expect(pl, v[3], YAML_SCALAR_NODE, "severity") &&
		    pl_keyword(pl, v[3], "severity", pl_sev, 4, &u))
			r->severity = (int)u;
		if (!v[5].n) {
			pl_err(pl, rr[i],
			       "missing required key 'action' in "
			       "rule '%s'",
			       r->id ? r->id : "?");
		} else if (pl_expect(pl, v[5], YAML_SCALAR_NODE, "action") &&
			   pl_keyword(pl, v[5], "action", pl_actions, 4, &u)) {
			r->action = (imp_action_t)u;
		}
		if (v[6].n)
			pl_notify(pl, v[6], &r->notify, &r->n_notify);
		if (v[7].n)
			r->notice = pl_str_ne(pl, v[7], "notice");
		r->escalate =
			r->action == IMP_REJECT || r->action == IMP_REDACT;
		if (v[8].n) {
			int b = pl_bool(pl, v[8], "escalate");
			if (b >= 0)
				r->escalate = b;
		}
		r->retention = p->retention_default;
		if (v[9].n)
			r->retention = pl_str_ne(pl, v[9], "retention");
		if (!v[4].n) {
			pl_errh(pl, rr[i],
				"use when: {} for a rule that "
				"always matches",
				"missing required key 'when' in rule '%s'",
				r->id ? r->id : "?");
		} else if (!(r->when = pl_when(pl, v[4], PL_ALL_FIELDS, 0))) {
			if (pl->n_conds > PL_MAX_CONDS && !pl->conds_reported) {
				pl_err(pl, v[4],
				       "conditions too large (more than %d "
				       "nodes)",
				       PL_MAX_CONDS);
				pl->conds_reported = true; /* report once */
			}
		} else {
			r->kinds = pl_cond_kinds(r->when);
			pl_cond_needs(r->when, r);
			p->det_mask_all |= r->det_mask;
			if (r->needs_words)
				p->any_words = true;
		}
		if (ok) {
			idrefs[p->n_rules] = v[0];
			p->n_rules++;
		} else {
			memset(r, 0, sizeof(*r));
		}
	}
	pl->rule_id = NULL;
}

static void pl_compile_escalation(pl_t *pl)
{
	imp_escalation_t *e = &pl->p->escalation;
	e->kinds = IMP_KIND_MESSAGE;
	if (!pl->escalation.n)
		return;
	static const char *const keys[] = {"violations", "within", "suspend",
					   "section",    "notice", "notify",
					   "kinds"};
	pl_ref_t v[7];
	if (!pl_fields(pl, pl->escalation, "'escalation'", keys, 7, v, NULL))
		return;
	for (int i = 0; i < 3; i++)
		if (!v[i].n)
			pl_err(pl, pl->escalation,
			       "missing required key '%s' in 'escalation'",
			       keys[i]);
	uint64_t num;
	if (v[0].n && pl_uint(pl, v[0], keys[0], 1, 1000000, &num))
		e->violations = (uint32_t)num;
	if (v[1].n)
		pl_duration(pl, v[1], keys[1], &e->within_s);
	if (v[2].n)
		pl_duration(pl, v[2], keys[2], &e->suspend_s);
	if (v[3].n)
		e->section = pl_str_ne(pl, v[3], keys[3]);
	if (v[4].n)
		e->notice = pl_str_ne(pl, v[4], keys[4]);
	if (v[5].n)
		pl_notify(pl, v[5], &e->notify, &e->n_notify);
	uint32_t m;
	if (v[6].n && pl_keywords(pl, v[6], keys[6], pl_kinds,
				  IMP_ARRAY_LEN(pl_kinds), &m))
		e->kinds = m;
	e->enabled = true;
}

/* Rank of an error's file in read order (no file first, unknown last). */
static size_t pl_file_rank(const pl_t *pl, const char *file)
{
	if (!file)
		return 0;
	const char *const *f = pl->files.v;
	for (size_t i = 0; i < pl->files.n; i++)
		if (!strcmp(f[i], file))
			return i + 1;
	return SIZE_MAX;
}

/* Sorts the recorded errors by file (in read order), line and column, so
 * that the admin reads them in file order whichever phase found them.
 * Stable: errors at the same place keep the order they were found in. */
static void pl_sort_errors(pl_t *pl)
{
	imp_errors_t *e = pl->errs;
	for (size_t i = 1; i < e->count; i++) {
		imp_error_t x = e->items[i];
		size_t rx = pl_file_rank(pl, x.file);
		size_t j = i;
		while (j > 0) {
			const imp_error_t *y = &e->items[j - 1];
			size_t ry = pl_file_rank(pl, y->file);
			if (ry < rx || (ry == rx && (y->line < x.line ||
						     (y->line == x.line &&
						      y->column <= x.column))))
				break;
			e->items[j] = e->items[j - 1];
			j--;
		}
		e->items[j] = x;
	}
}

/* ---- public API --------------------------------------------------------------- */

static void pl_cleanup(pl_t *pl)
{
	for (pl_src_t *s = pl->srcs; s; s = s->next)
		yaml_document_delete(&s->doc);
	pl->srcs = NULL;
	pl_file_done(pl);
	if (pl->sha) {
		char hex[65];
		imp_sha256_final(pl->sha, hex);
		pl->sha = NULL;
	}
	if (pl->tmp)
		imp_arena_free(pl->tmp);
	pl->tmp = NULL;
}

int imp_policy_load(imp_ctx_t *ctx, const char *path,
		    const imp_load_options_t *opt, imp_policy_t **out,
		    imp_errors_t **errs)
{
	if (errs)
		*errs = NULL;
	if (!ctx || !path || !out ||
	    (opt && opt->version != IMP_LOAD_OPTIONS_VERSION))
		return IMP_ERR_INVALID;
	*out = NULL;
	pl_t *pl = imp_calloc(ctx, 1, sizeof(*pl));
	if (!pl)
		return IMP_ERR_NOMEM;
	pl->ctx = ctx;
	pl->engine = opt ? opt->engine : IMP_ENGINE_AUTO;
	pl->errs = imp_errors_new(ctx, opt && opt->max_errors
					       ? opt->max_errors
					       : PL_DEFAULT_MAX_ERRORS);
	pl->a = imp_arena_new(ctx, 0);
	pl->tmp = imp_arena_new(ctx, 0);
	pl->sha = imp_sha256_new();
	int rc = IMP_OK;
	if (!pl->errs || !pl->a || !pl->tmp || !pl->sha) {
		rc = IMP_ERR_NOMEM;
		goto done;
	}
	if (setjmp(pl->oom)) {
		rc = IMP_ERR_NOMEM;
		goto done;
	}
	imp_policy_t *p = pl_alloc(pl, pl->a, sizeof(*p));
	pl->p = p;
	atomic_init(&p->refs, 1);
	p->ctx = ctx;
	p->arena = pl->a;
	p->path = pl_strdup(pl, path);
	const char *slash = strrchr(path, '/');
	pl->main_dir = slash ? imp_arena_strndup(pl->a, path,
						 (size_t)(slash - path + 1))
			     : "";
	if (!pl->main_dir)
		longjmp(pl->oom, 1);

	pl_ref_t none = {NULL, NULL};
	pl_collect_file(pl, p->path, none, true);
	if (!pl->srcs) {
		/* the main file could not be read or parsed */
		rc = pl->p->n_files ? IMP_ERR_POLICY : IMP_ERR_IO;
		goto done;
	}
	pl_compile_policy(pl, opt);
	pl_compile_settings(pl);
	pl_compile_scheds(pl);
	pl_compile_groups(pl);
	pl_compile_users(pl);
	pl_compile_lists(pl);
	pl_compile_detectors(pl);
	pl_compile_rules(pl);
	pl_compile_escalation(pl);
	if (pl->nerr || imp_errors_count(pl->errs) ||
	    imp_errors_dropped(pl->errs)) {
		rc = IMP_ERR_POLICY;
		goto done;
	}
	imp_sha256_final(pl->sha, p->digest);
	pl->sha = NULL;
	{
		static atomic_uint_fast64_t serials;
		p->serial = atomic_fetch_add(&serials, 1) + 1;
	}
	p->engine = p->lexicon ? imp_mpat_engine(imp_lexicon_mpat(p->lexicon))
			       : pl->engine;
	p->memory = imp_arena_size(p->arena);

done:
	if (rc != IMP_OK && pl->errs)
		pl_sort_errors(pl); /* needs pl->files, in the tmp arena */
	pl_cleanup(pl);
	if (rc == IMP_OK) {
		*out = pl->p;
		imp_errors_free(pl->errs);
	} else {
		if (rc == IMP_ERR_NOMEM && pl->errs)
			imp_errors_add(pl->errs, IMP_ERR_NOMEM, NULL, 0, 0,
				       "out of memory loading the policy");
		if (pl->a)
			imp_arena_free(pl->a);
		if (errs)
			*errs = pl->errs;
		else if (pl->errs)
			imp_errors_free(pl->errs);
	}
	imp_mfree(ctx, pl);
	return rc;
}
