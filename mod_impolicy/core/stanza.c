/*
 * stanza.c -- parses one XMPP stanza with expat into an arena DOM, extracts
 * the facts rules read (kind, attributes, text fields, file transfer,
 * end-to-end encryption, hints, multicast addresses, corrections), masks
 * field spans in place and serialises the DOM back to XML.
 *
 * Invariants:
 *  - Every node, string and array lives in the caller's arena (pending
 *    character data too: a flushed text node adopts its buffer).
 *    imp_stanza_parse frees its expat parser before it returns, whatever
 *    happened; an imp_stanza_parser_t keeps one parser and resets it
 *    before each stanza (XML_ParserReset, then handlers and the hash
 *    salt again), which spares creating and freeing expat's tables per
 *    stanza -- the largest single cost of judging a short message.
 *  - Adjacent character data (text, entity references, CDATA sections) is
 *    merged into one text node, so a text node is never followed by another
 *    text node.  Comments and processing instructions are dropped.
 *  - A stanza without a namespace is in jabber:client (RFC 6120 4.8.3): an
 *    unqualified element whose default namespace was never declared gets
 *    the static string stanza_ns_implied.  The serialiser recognises that
 *    pointer and does not declare it, so a stanza that arrived without
 *    xmlns leaves without one.  An explicit xmlns="" keeps ns == NULL.
 *  - Each imp_ftext_t's segments are ascending in field_off; separators
 *    ("\n" between bodies, XHTML blocks, other payload texts) belong to no
 *    segment, so masking them touches no node.
 *  - Masking replaces bytes one for one: offsets never move.
 *
 * Hostile input: the size limit is checked before expat sees a byte; depth,
 * attributes per element and node count are checked in the handlers, which
 * stop the parser with a reason.  Any DTD (DOCTYPE, entity declaration) is
 * refused, which rules out entity expansion attacks.  The input encoding is
 * forced to UTF-8 (XMPP streams are UTF-8); expat rejects invalid UTF-8 and
 * NUL bytes.
 *
 * Threading: no global mutable state; one call uses only its arguments; an
 * imp_stanza_parser_t is used by one thread at a time.
 * Expat's memory-suite hooks take no user data, so the expat parser (per
 * call, or kept by an imp_stanza_parser_t, whose own struct comes from the
 * context) uses expat's default allocator rather than the context's (no
 * process-wide hooks are swapped); the DOM and everything that outlives the
 * call uses the arena.  Stanzas the fast path reads never touch expat.
 *
 * Reports: imp_stanza_parse returns IMP_ERR_PARSE with "line L, column C:
 * reason" (1-based) for malformed XML and every limit, IMP_ERR_NOMEM when
 * memory runs out, IMP_ERR_INVALID for bad arguments.
 */
#include "stanza.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A byte that cannot occur in an XML 1.0 document, not even as a character
 * reference, so it cannot be confused with a character of a namespace URI
 * or a name. */
#define STANZA_NS_SEP '\x01'

#define STANZA_NS_XML "http://www.w3.org/XML/1998/namespace"
#define STANZA_NS_CLIENT "jabber:client"
#define STANZA_NS_SERVER "jabber:server"
#define STANZA_NS_XHTML_IM "http://jabber.org/protocol/xhtml-im"
#define STANZA_NS_XHTML "http://www.w3.org/1999/xhtml"

#define STANZA_DEF_MAX_BYTES ((size_t)4 * 1024 * 1024)
#define STANZA_DEF_MAX_DEPTH 64u
#define STANZA_DEF_MAX_ATTRS 64u
#define STANZA_DEF_MAX_NODES ((size_t)100000)

/* The implied namespace of a stanza without xmlns; compared by address. */
static const char stanza_ns_implied[] = STANZA_NS_CLIENT;
/* xml:lang and friends; interned so that comparisons are cheap. */
static const char stanza_ns_xml[] = STANZA_NS_XML;
/* The stanza namespaces as declared (not implied): every stanza declares
 * one, so its root need not copy it. */
static const char stanza_ns_client[] = STANZA_NS_CLIENT;
static const char stanza_ns_server[] = STANZA_NS_SERVER;

/* ---- parsing ------------------------------------------------------------ */

typedef struct stanza_parser_s {
	XML_Parser xp;
	imp_arena_t *arena;
	imp_stanza_limits_t lim;
	imp_xnode_t *root, *cur;
	unsigned depth, max_seen_depth;
	unsigned undecl_depth; /* depth of the outermost active xmlns="" */
	bool undecl_next;      /* xmlns="" seen for the next start tag */
	size_t n_nodes;
	imp_buf_t text; /* pending character data (heap) */
	int rc;         /* IMP_OK until something failed */
	char *err;
	size_t errlen;
} stanza_parser_t;

/* Stops expat and records why, with the current position.  Only the first
 * failure is kept. */
static void stanza_fail(stanza_parser_t *sp, int rc, const char *fmt, ...)
	IMP_PRINTF(3, 4);

static void stanza_fail(stanza_parser_t *sp, int rc, const char *fmt, ...)
{
	if (sp->rc != IMP_OK)
		return;
	sp->rc = rc;
	if (!sp->xp)
		return; /* the fast path: expat will parse and report */
	if (sp->err && sp->errlen) {
		int n = snprintf(
			sp->err, sp->errlen, "line %lu, column %lu: ",
			(unsigned long)XML_GetCurrentLineNumber(sp->xp),
			(unsigned long)XML_GetCurrentColumnNumber(sp->xp) + 1);
		if (n >= 0 && (size_t)n < sp->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(sp->err + n, sp->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	XML_StopParser(sp->xp, XML_FALSE);
}

static bool stanza_count_node(stanza_parser_t *sp)
{
	if (++sp->n_nodes > sp->lim.max_nodes) {
		stanza_fail(sp, IMP_ERR_PARSE, "more than %zu XML nodes",
			    sp->lim.max_nodes);
		return false;
	}
	return true;
}

static void stanza_link(imp_xnode_t *parent, imp_xnode_t *n)
{
	n->parent = parent;
	if (parent->last)
		parent->last->next = n;
	else
		parent->first = n;
	parent->last = n;
}

/* Turns the pending character data into one text node of the current
 * element. */
static void stanza_flush_text(stanza_parser_t *sp)
{
	if (sp->text.len == 0 || !sp->cur)
		return;
	if (sp->text.oom) {
		stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
		return;
	}
	if (!stanza_count_node(sp))
		return;
	imp_xnode_t *n = imp_arena_calloc(sp->arena, 1, sizeof(*n));
	if (!n) {
		stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
		return;
	}
	/* The arena buffer (NUL-terminated) becomes the node's text; the
	 * next run of character data starts a new one. */
	n->type = IMP_XNODE_TEXT;
	n->text = sp->text.data;
	n->text_len = sp->text.len;
	stanza_link(sp->cur, n);
	imp_buf_init(&sp->text, NULL, sp->arena);
}

/* Splits an expat triplet "uri SEP local [SEP prefix]" or "local". */
static void stanza_split_name(const char *qn, const char **uri, size_t *ulen,
			      const char **local, size_t *llen,
			      const char **prefix)
{
	const char *s1 = strchr(qn, STANZA_NS_SEP);
	if (!s1) {
		*uri = NULL;
		*ulen = 0;
		*local = qn;
		*llen = strlen(qn);
		*prefix = NULL;
		return;
	}
	*uri = qn;
	*ulen = (size_t)(s1 - qn);
	*local = s1 + 1;
	const char *s2 = strchr(*local, STANZA_NS_SEP);
	if (s2) {
		*llen = (size_t)(s2 - *local);
		*prefix = s2 + 1;
	} else {
		*llen = strlen(*local);
		*prefix = NULL;
	}
}

/* Namespace URIs repeat down the tree: reuse the parent's copy. */
static const char *stanza_intern_ns(stanza_parser_t *sp, const char *uri,
				    size_t ulen)
{
	for (imp_xnode_t *p = sp->cur; p; p = p->parent) {
		if (p->ns && strlen(p->ns) == ulen &&
		    memcmp(p->ns, uri, ulen) == 0)
			return p->ns;
		if (p == sp->cur->parent)
			break; /* look only two levels up: cheap */
	}
	if (ulen == sizeof(STANZA_NS_XML) - 1 &&
	    memcmp(uri, STANZA_NS_XML, ulen) == 0)
		return stanza_ns_xml;
	if (ulen == sizeof(STANZA_NS_CLIENT) - 1 &&
	    memcmp(uri, STANZA_NS_CLIENT, ulen) == 0)
		return stanza_ns_client;
	if (ulen == sizeof(STANZA_NS_SERVER) - 1 &&
	    memcmp(uri, STANZA_NS_SERVER, ulen) == 0)
		return stanza_ns_server;
	return imp_arena_strndup(sp->arena, uri, ulen);
}

static void XMLCALL stanza_on_ns_start(void *ud, const XML_Char *prefix,
				       const XML_Char *uri)
{
	stanza_parser_t *sp = ud;
	if (!prefix && (!uri || !*uri))
		sp->undecl_next = true;
}

/* What both parsers do when an element opens, before its name and
 * attributes are stored: flush pending text, enforce the depth, attribute
 * and node limits, track xmlns="" undeclarations, and make the node with
 * its namespace (the implied stanza namespace when none was ever
 * declared, RFC 6120 4.8.3).  NULL when the parse has failed. */
static imp_xnode_t *stanza_elem_begin(stanza_parser_t *sp, const char *uri,
				      size_t ulen, size_t na)
{
	if (sp->rc != IMP_OK)
		return NULL;
	stanza_flush_text(sp);
	if (sp->rc != IMP_OK)
		return NULL;
	if (++sp->depth > sp->lim.max_depth) {
		stanza_fail(sp, IMP_ERR_PARSE,
			    "elements nested deeper than %u levels",
			    sp->lim.max_depth);
		return NULL;
	}
	if (sp->depth > sp->max_seen_depth)
		sp->max_seen_depth = sp->depth;
	if (na > sp->lim.max_attrs) {
		stanza_fail(sp, IMP_ERR_PARSE,
			    "element with more than %u attributes",
			    sp->lim.max_attrs);
		return NULL;
	}
	if (!stanza_count_node(sp))
		return NULL;
	bool undecl = sp->undecl_next;
	sp->undecl_next = false;
	if (undecl && sp->undecl_depth == 0)
		sp->undecl_depth = sp->depth;

	imp_xnode_t *n = imp_arena_calloc(sp->arena, 1, sizeof(*n));
	if (!n)
		goto nomem;
	n->type = IMP_XNODE_ELEM;
	if (uri) {
		n->ns = stanza_intern_ns(sp, uri, ulen);
		if (!n->ns)
			goto nomem;
	} else if (sp->undecl_depth == 0) {
		n->ns = stanza_ns_implied;
	}
	if (na) {
		n->attrs = imp_arena_calloc(sp->arena, na, sizeof(*n->attrs));
		if (!n->attrs)
			goto nomem;
		n->n_attrs = na;
	}
	return n;
nomem:
	stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
	return NULL;
}

/* Links a finished element node into the tree and descends into it. */
static void stanza_elem_enter(stanza_parser_t *sp, imp_xnode_t *n)
{
	if (sp->cur)
		stanza_link(sp->cur, n);
	else
		sp->root = n;
	sp->cur = n;
}

static void XMLCALL stanza_on_start(void *ud, const XML_Char *qname,
				    const XML_Char **atts)
{
	stanza_parser_t *sp = ud;
	if (sp->rc != IMP_OK)
		return;
	size_t na = 0;
	while (atts[2 * na])
		na++;
	const char *uri, *local, *prefix;
	size_t ulen, llen;
	stanza_split_name(qname, &uri, &ulen, &local, &llen, &prefix);
	imp_xnode_t *n = stanza_elem_begin(sp, uri, ulen, na);
	if (!n)
		return;
	n->name = imp_arena_strndup(sp->arena, local, llen);
	if (!n->name)
		goto nomem;
	if (prefix) {
		n->prefix = imp_arena_strdup(sp->arena, prefix);
		if (!n->prefix)
			goto nomem;
	}
	for (size_t i = 0; i < na; i++) {
		imp_xattr_t *at = &n->attrs[i];
		stanza_split_name(atts[2 * i], &uri, &ulen, &local, &llen,
				  &prefix);
		if (uri) {
			at->ns = stanza_intern_ns(sp, uri, ulen);
			if (!at->ns)
				goto nomem;
		}
		at->name = imp_arena_strndup(sp->arena, local, llen);
		at->value = imp_arena_strdup(sp->arena, atts[2 * i + 1]);
		if (!at->name || !at->value)
			goto nomem;
	}
	stanza_elem_enter(sp, n);
	return;
nomem:
	stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
}

static void XMLCALL stanza_on_end(void *ud, const XML_Char *qname)
{
	stanza_parser_t *sp = ud;
	if (sp->rc != IMP_OK)
		return;
	stanza_flush_text(sp);
	if (sp->undecl_depth == sp->depth)
		sp->undecl_depth = 0;
	sp->depth--;
	if (sp->cur)
		sp->cur = sp->cur->parent;
}

static void XMLCALL stanza_on_text(void *ud, const XML_Char *s, int len)
{
	stanza_parser_t *sp = ud;
	if (sp->rc != IMP_OK || len <= 0)
		return;
	imp_buf_append(&sp->text, s, (size_t)len);
	if (sp->text.oom)
		stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
}

static void XMLCALL stanza_on_doctype(void *ud, const XML_Char *name,
				      const XML_Char *sysid,
				      const XML_Char *pubid, int has_internal)
{
	stanza_fail(ud, IMP_ERR_PARSE, "DTD not allowed");
}

static void XMLCALL stanza_on_entity(void *ud, const XML_Char *name,
				     int is_param, const XML_Char *value,
				     int value_len, const XML_Char *base,
				     const XML_Char *sysid,
				     const XML_Char *pubid,
				     const XML_Char *notation)
{
	stanza_fail(ud, IMP_ERR_PARSE, "DTD not allowed");
}

/* ---- fact extraction ---------------------------------------------------- */

enum stanza_zone_e {
	ZONE_OTHER = 0, /* payload text: goes to IMP_FIELD_OTHER */
	ZONE_BODY,
	ZONE_SUBJECT,
	ZONE_STATUS,
	ZONE_XHTML,
	ZONE_SKIP, /* not text anyone reads: ids, ciphertext, base64 */
};

enum {
	CTXF_JINGLE = 1 << 0,    /* inside urn:xmpp:jingle:1 <jingle/> */
	CTXF_SIMS = 1 << 1,      /* inside SIMS <media-sharing/> */
	CTXF_SFS = 1 << 2,       /* inside SFS <file-sharing/> */
	CTXF_FILE = 1 << 3,      /* this element is a file description */
	CTXF_OOB = 1 << 4,       /* this element is an OOB payload */
	CTXF_UPLOAD_OLD = 1 << 5 /* pre-0.3 upload <request/> */
};

typedef struct stanza_level_s {
	unsigned char zone;
	unsigned char flags;
} stanza_level_t;

typedef struct stanza_strv_s {
	const char **v;
	size_t n, cap;
} stanza_strv_t;

typedef struct stanza_fbuild_s {
	imp_buf_t buf;
	/* While the field's text is exactly one text node's, that node and
	 * no copy in buf (see stanza_fb_own). */
	imp_xnode_t *lazy;
	imp_fseg_t *segs;
	size_t n_segs, cap_segs;
	bool sep_pending; /* a separator goes before the next text */
} stanza_fbuild_t;

typedef struct stanza_extract_s {
	imp_arena_t *arena;
	imp_stanza_t *st;
	stanza_fbuild_t f[IMP_FIELD_COUNT];
	stanza_strv_t addresses, urls, filenames;
	size_t body_start; /* offset of the current root <body/> text */
	bool nomem;
} stanza_extract_t;

/* String equality, NULL never equal.  Names and namespaces differ early
 * or are short, and most compare against literals: an inline loop beats
 * a call to strcmp, which profiles showed at several percent of a short
 * stanza's cost. */
static inline bool stanza_eq(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static bool stanza_has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

static bool stanza_is_stanza_ns(const char *ns)
{
	if (ns == stanza_ns_client || ns == stanza_ns_server ||
	    ns == stanza_ns_implied)
		return true;
	return stanza_eq(ns, STANZA_NS_CLIENT) ||
	       stanza_eq(ns, STANZA_NS_SERVER);
}

static bool stanza_is(const imp_xnode_t *n, const char *ns, const char *name)
{
	return stanza_eq(n->ns, ns) && stanza_eq(n->name, name);
}

static const char *stanza_attr(const imp_xnode_t *n, const char *name)
{
	for (size_t i = 0; i < n->n_attrs; i++)
		if (!n->attrs[i].ns && stanza_eq(n->attrs[i].name, name))
			return n->attrs[i].value;
	return NULL;
}

/* The concatenated character data directly inside n (arena copy). */
static const char *stanza_elem_text(stanza_extract_t *ex, const imp_xnode_t *n)
{
	size_t len = 0;
	for (const imp_xnode_t *c = n->first; c; c = c->next)
		if (c->type == IMP_XNODE_TEXT)
			len += c->text_len;
	char *s = imp_arena_alloc(ex->arena, len + 1);
	if (!s) {
		ex->nomem = true;
		return NULL;
	}
	size_t off = 0;
	for (const imp_xnode_t *c = n->first; c; c = c->next)
		if (c->type == IMP_XNODE_TEXT) {
			memcpy(s + off, c->text, c->text_len);
			off += c->text_len;
		}
	s[off] = '\0';
	return s;
}

static void stanza_strv_push(stanza_extract_t *ex, stanza_strv_t *sv,
			     const char *s)
{
	if (!s || !*s)
		return;
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 4;
		const char **v = imp_arena_alloc(ex->arena, cap * sizeof(*v));
		if (!v) {
			ex->nomem = true;
			return;
		}
		if (sv->n)
			memcpy(v, sv->v, sv->n * sizeof(*v));
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
}

/* A field whose text is exactly one text node's text uses that text
 * instead of a copy (a chat body is one node): the field text and the
 * node text are then the same bytes, which imp_stanza_mask masks twice,
 * harmlessly.  Anything more turns it into an owned copy first. */
static void stanza_fb_own(stanza_fbuild_t *fb)
{
	if (fb->lazy) {
		const imp_xnode_t *tn = fb->lazy;
		fb->lazy = NULL;
		imp_buf_append(&fb->buf, tn->text, tn->text_len);
	}
}

static size_t stanza_fb_len(const stanza_fbuild_t *fb)
{
	return fb->lazy ? fb->lazy->text_len : fb->buf.len;
}

static void stanza_field_sep(stanza_extract_t *ex, imp_field_t f)
{
	ex->f[f].sep_pending = true;
}

/* Appends a text node to field f, remembering where it came from. */
static void stanza_field_add(stanza_extract_t *ex, imp_field_t f,
			     imp_xnode_t *tn)
{
	stanza_fbuild_t *fb = &ex->f[f];
	if (fb->sep_pending && stanza_fb_len(fb) > 0) {
		stanza_fb_own(fb);
		imp_buf_putc(&fb->buf, '\n');
	}
	fb->sep_pending = false;
	if (tn->text_len == 0)
		return;
	if (fb->n_segs == fb->cap_segs) {
		size_t cap = fb->cap_segs ? fb->cap_segs * 2 : 4;
		imp_fseg_t *v = imp_arena_alloc(ex->arena, cap * sizeof(*v));
		if (!v) {
			ex->nomem = true;
			return;
		}
		if (fb->n_segs)
			memcpy(v, fb->segs, fb->n_segs * sizeof(*v));
		fb->segs = v;
		fb->cap_segs = cap;
	}
	imp_fseg_t *sg = &fb->segs[fb->n_segs++];
	sg->node = tn;
	sg->field_off = (uint32_t)stanza_fb_len(fb);
	sg->node_off = 0;
	sg->len = (uint32_t)tn->text_len;
	if (stanza_fb_len(fb) == 0) {
		fb->lazy = tn;
		return;
	}
	stanza_fb_own(fb);
	imp_buf_append(&fb->buf, tn->text, tn->text_len);
}

static bool stanza_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* XHTML elements that do not break a line: text on both sides belongs to
 * the same line of the rendered message. */
static bool stanza_xhtml_inline(const char *name)
{
	static const char *const inl[] = {
		"a",      "abbr",   "acronym", "b",   "bdo",  "big",   "cite",
		"code",   "del",    "dfn",     "em",  "font", "i",     "img",
		"ins",    "kbd",    "q",       "s",   "samp", "small", "span",
		"strike", "strong", "sub",     "sup", "tt",   "u",     "var",
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(inl); i++)
		if (stanza_eq(name, inl[i]))
			return true;
	return false;
}

/* Facts carried by one element, wherever it sits in the stanza (a transfer
 * hidden in a nested or forwarded payload still counts). */
static unsigned char stanza_facts(stanza_extract_t *ex, imp_xnode_t *n,
				  unsigned char inherited, unsigned char *zone)
{
	imp_stanza_t *st = ex->st;
	const char *ns = n->ns, *name = n->name;
	unsigned char fl = inherited & (CTXF_JINGLE | CTXF_SIMS | CTXF_SFS);
	/* No fact lives in the stanza namespace itself (message, body,
	 * thread ...): the common elements skip the comparisons below. */
	if (!ns || ns == stanza_ns_implied || stanza_is_stanza_ns(ns))
		return fl;

	/* file transfer */
	if (stanza_eq(name, "request") &&
	    (stanza_eq(ns, "urn:xmpp:http:upload:0") ||
	     stanza_eq(ns, "urn:xmpp:http:upload") ||
	     stanza_eq(ns, "eu:siacs:conversations:http:upload"))) {
		st->ft |= IMP_FT_UPLOAD;
		stanza_strv_push(ex, &ex->filenames,
				 stanza_attr(n, "filename"));
		fl |= CTXF_UPLOAD_OLD;
	} else if ((stanza_is(n, "jabber:x:oob", "x") ||
		    stanza_is(n, "jabber:iq:oob", "query"))) {
		st->ft |= IMP_FT_OOB;
		fl |= CTXF_OOB;
	} else if (stanza_is(n, "http://jabber.org/protocol/si", "si")) {
		if (stanza_eq(stanza_attr(n, "profile"),
			      "http://jabber.org/protocol/si/profile/"
			      "file-transfer"))
			st->ft |= IMP_FT_SI;
	} else if (stanza_is(n,
			     "http://jabber.org/protocol/si/profile/"
			     "file-transfer",
			     "file")) {
		st->ft |= IMP_FT_SI;
		stanza_strv_push(ex, &ex->filenames, stanza_attr(n, "name"));
	} else if (stanza_is(n, "http://jabber.org/protocol/bytestreams",
			     "query")) {
		st->ft |= IMP_FT_SOCKS5;
	} else if (stanza_eq(ns, "http://jabber.org/protocol/ibb") &&
		   (stanza_eq(name, "open") || stanza_eq(name, "data") ||
		    stanza_eq(name, "close"))) {
		st->ft |= IMP_FT_IBB;
		if (stanza_eq(name, "data"))
			*zone = ZONE_SKIP; /* base64 file chunks */
	} else if (stanza_is(n, "urn:xmpp:jingle:1", "jingle")) {
		fl |= CTXF_JINGLE;
	} else if (stanza_has_prefix(ns,
				     "urn:xmpp:jingle:apps:file-transfer:")) {
		if (stanza_eq(name, "description") && (fl & CTXF_JINGLE))
			st->ft |= IMP_FT_JINGLE;
		else if (stanza_eq(name, "file"))
			fl |= CTXF_FILE;
	} else if (stanza_is(n, "urn:xmpp:sims:1", "media-sharing")) {
		st->ft |= IMP_FT_SIMS;
		fl |= CTXF_SIMS;
	} else if (stanza_is(n, "urn:xmpp:sfs:0", "file-sharing")) {
		st->ft |= IMP_FT_SFS;
		fl |= CTXF_SFS;
	} else if (stanza_is(n, "urn:xmpp:file:metadata:0", "file")) {
		fl |= CTXF_FILE;
	} else if (stanza_is(n, "urn:xmpp:reference:0", "reference")) {
		if (fl & CTXF_SIMS)
			stanza_strv_push(ex, &ex->urls, stanza_attr(n, "uri"));
	} else if (stanza_is(n, "http://jabber.org/protocol/url-data",
			     "url-data")) {
		if (fl & CTXF_SFS)
			stanza_strv_push(ex, &ex->urls,
					 stanza_attr(n, "target"));
	}

	/* end-to-end encryption: the payload is ciphertext, not text */
	else if (stanza_is(n, "eu.siacs.conversations.axolotl", "encrypted")) {
		st->e2ee |= IMP_E2E_OMEMO;
		*zone = ZONE_SKIP;
	} else if (stanza_is(n, "urn:xmpp:omemo:2", "encrypted")) {
		st->e2ee |= IMP_E2E_OMEMO2;
		*zone = ZONE_SKIP;
	} else if (stanza_is(n, "urn:xmpp:openpgp:0", "openpgp")) {
		st->e2ee |= IMP_E2E_OPENPGP;
		*zone = ZONE_SKIP;
	} else if (stanza_is(n, "jabber:x:encrypted", "x")) {
		st->e2ee |= IMP_E2E_LEGACY_PGP;
		*zone = ZONE_SKIP;
	} else if (stanza_is(n, "urn:xmpp:eme:0", "encryption")) {
		st->e2ee |= IMP_E2E_HINT;
	}

	/* hints, carbons, multicast, corrections */
	else if (stanza_eq(ns, "urn:xmpp:hints")) {
		if (stanza_eq(name, "no-store"))
			st->hints |= IMP_HINT_NO_STORE;
		else if (stanza_eq(name, "no-permanent-store"))
			st->hints |= IMP_HINT_NO_PERMANENT_STORE;
		else if (stanza_eq(name, "no-copy"))
			st->hints |= IMP_HINT_NO_COPY;
		else if (stanza_eq(name, "store"))
			st->hints |= IMP_HINT_STORE;
	} else if (stanza_is(n, "urn:xmpp:carbons:2", "private")) {
		st->hints |= IMP_HINT_PRIVATE;
	} else if (stanza_is(n, "http://jabber.org/protocol/address",
			     "address")) {
		const char *t = stanza_attr(n, "type");
		if (stanza_eq(t, "to") || stanza_eq(t, "cc") ||
		    stanza_eq(t, "bcc"))
			stanza_strv_push(ex, &ex->addresses,
					 stanza_attr(n, "jid"));
	} else if (stanza_is(n, "urn:xmpp:message-correct:0", "replace")) {
		st->correction = true;
	}
	return fl;
}

/* Facts that need the parent: file names and URLs in child elements. */
static void stanza_child_facts(stanza_extract_t *ex, imp_xnode_t *n,
			       unsigned char parent_flags)
{
	if ((parent_flags & CTXF_FILE) && stanza_eq(n->name, "name"))
		stanza_strv_push(ex, &ex->filenames, stanza_elem_text(ex, n));
	else if ((parent_flags & CTXF_UPLOAD_OLD) &&
		 stanza_eq(n->name, "filename"))
		stanza_strv_push(ex, &ex->filenames, stanza_elem_text(ex, n));
	else if ((parent_flags & CTXF_OOB) && stanza_eq(n->name, "url"))
		stanza_strv_push(ex, &ex->urls, stanza_elem_text(ex, n));
}

/* The zone of a direct child of the stanza element. */
static unsigned char stanza_root_child_zone(stanza_extract_t *ex,
					    imp_xnode_t *n)
{
	imp_stanza_t *st = ex->st;
	if (!stanza_is_stanza_ns(n->ns))
		return ZONE_OTHER;
	if (stanza_eq(n->name, "body")) {
		/* Bodies in several languages: one per line. */
		if (st->fields[IMP_FIELD_BODY].present) {
			stanza_fb_own(&ex->f[IMP_FIELD_BODY]);
			imp_buf_putc(&ex->f[IMP_FIELD_BODY].buf, '\n');
		}
		st->fields[IMP_FIELD_BODY].present = true;
		ex->body_start = stanza_fb_len(&ex->f[IMP_FIELD_BODY]);
		return ZONE_BODY;
	}
	if (stanza_eq(n->name, "subject")) {
		if (st->fields[IMP_FIELD_SUBJECT].present) {
			stanza_fb_own(&ex->f[IMP_FIELD_SUBJECT]);
			imp_buf_putc(&ex->f[IMP_FIELD_SUBJECT].buf, '\n');
		}
		st->fields[IMP_FIELD_SUBJECT].present = true;
		return ZONE_SUBJECT;
	}
	if (stanza_eq(n->name, "status") && st->kind == IMP_KIND_PRESENCE) {
		if (st->fields[IMP_FIELD_STATUS].present) {
			stanza_fb_own(&ex->f[IMP_FIELD_STATUS]);
			imp_buf_putc(&ex->f[IMP_FIELD_STATUS].buf, '\n');
		}
		st->fields[IMP_FIELD_STATUS].present = true;
		return ZONE_STATUS;
	}
	if (stanza_eq(n->name, "thread")) {
		if (!st->thread)
			st->thread = stanza_elem_text(ex, n);
		return ZONE_SKIP;
	}
	if (st->kind == IMP_KIND_PRESENCE &&
	    (stanza_eq(n->name, "show") || stanza_eq(n->name, "priority")))
		return ZONE_SKIP;
	return ZONE_OTHER;
}

static void stanza_text_node(stanza_extract_t *ex, imp_xnode_t *tn,
			     unsigned char zone)
{
	switch (zone) {
	case ZONE_BODY:
		stanza_field_add(ex, IMP_FIELD_BODY, tn);
		break;
	case ZONE_SUBJECT:
		stanza_field_add(ex, IMP_FIELD_SUBJECT, tn);
		break;
	case ZONE_STATUS:
		stanza_field_add(ex, IMP_FIELD_STATUS, tn);
		break;
	case ZONE_XHTML:
		stanza_field_add(ex, IMP_FIELD_XHTML, tn);
		break;
	case ZONE_OTHER:
		if (!stanza_blank(tn->text, tn->text_len)) {
			stanza_field_sep(ex, IMP_FIELD_OTHER);
			stanza_field_add(ex, IMP_FIELD_OTHER, tn);
			ex->st->fields[IMP_FIELD_OTHER].present = true;
		}
		break;
	default:
		break;
	}
}

/* Called when the walk leaves element n (at depth d, zone z). */
static void stanza_leave(stanza_extract_t *ex, imp_xnode_t *n, unsigned d,
			 unsigned char zone)
{
	if (zone == ZONE_XHTML && !stanza_xhtml_inline(n->name))
		stanza_field_sep(ex, IMP_FIELD_XHTML);
	if (d == 1 && zone == ZONE_BODY) {
		const stanza_fbuild_t *fb = &ex->f[IMP_FIELD_BODY];
		const char *data = fb->lazy ? fb->lazy->text : fb->buf.data;
		/* OTR data, query and error messages all start "?OTR"
		 * ("?OTR:", "?OTRv23?", "?OTR Error:"). */
		if (stanza_fb_len(fb) - ex->body_start >= 4 &&
		    memcmp(data + ex->body_start, "?OTR", 4) == 0)
			ex->st->e2ee |= IMP_E2E_OTR;
	}
}

static int stanza_extract(imp_arena_t *a, imp_stanza_t *st, unsigned depth)
{
	stanza_extract_t ex;
	imp_zero(&ex, sizeof(ex));
	ex.arena = a;
	ex.st = st;
	for (int i = 0; i < IMP_FIELD_COUNT; i++)
		imp_buf_init(&ex.f[i].buf, NULL, a);

	imp_xnode_t *root = st->root;
	st->name = root->name;
	if (stanza_is_stanza_ns(root->ns)) {
		if (stanza_eq(root->name, "message"))
			st->kind = IMP_KIND_MESSAGE;
		else if (stanza_eq(root->name, "presence"))
			st->kind = IMP_KIND_PRESENCE;
		else if (stanza_eq(root->name, "iq"))
			st->kind = IMP_KIND_IQ;
		else
			st->kind = IMP_KIND_OTHER;
	} else {
		st->kind = IMP_KIND_OTHER;
	}
	/* One pass over the root's attributes; the first unqualified one of
	 * each name counts (as stanza_attr would find it), the last
	 * xml:lang. */
	for (size_t i = 0; i < root->n_attrs; i++) {
		const imp_xattr_t *at = &root->attrs[i];
		const char *nm = at->name;
		const char **slot = NULL;
		if (at->ns) {
			if (stanza_eq(at->ns, stanza_ns_xml) &&
			    stanza_eq(nm, "lang"))
				st->lang = at->value;
			continue;
		}
		switch (nm[0]) {
		case 't':
			if (stanza_eq(nm, "type"))
				slot = &st->type;
			else if (stanza_eq(nm, "to"))
				slot = &st->to;
			break;
		case 'i':
			if (nm[1] == 'd' && nm[2] == '\0')
				slot = &st->id;
			break;
		case 'f':
			if (stanza_eq(nm, "from"))
				slot = &st->from;
			break;
		default:
			break;
		}
		if (slot && !*slot)
			*slot = at->value;
	}

	/* Iterative pre-order walk; lv[d] is the context of the element at
	 * depth d (root = 0), so deep trees cannot exhaust the C stack. */
	stanza_level_t *lv = imp_arena_calloc(a, depth + 1, sizeof(*lv));
	if (!lv)
		return IMP_ERR_NOMEM;
	unsigned char z0 = ZONE_OTHER;
	lv[0].flags = stanza_facts(&ex, root, 0, &z0);
	lv[0].zone = z0;
	imp_xnode_t *n = root->first;
	unsigned d = 1;
	while (n && n != root) {
		if (n->type == IMP_XNODE_TEXT) {
			stanza_text_node(&ex, n, lv[d - 1].zone);
		} else {
			unsigned char pz = lv[d - 1].zone, zone = pz;
			if (d == 1)
				zone = stanza_root_child_zone(&ex, n);
			else if (pz == ZONE_OTHER &&
				 stanza_is(n, STANZA_NS_XHTML, "body") &&
				 stanza_is(n->parent, STANZA_NS_XHTML_IM,
					   "html")) {
				zone = ZONE_XHTML;
				stanza_field_sep(&ex, IMP_FIELD_XHTML);
				st->fields[IMP_FIELD_XHTML].present = true;
			}
			stanza_child_facts(&ex, n, lv[d - 1].flags);
			lv[d].flags =
				stanza_facts(&ex, n, lv[d - 1].flags, &zone);
			if (pz == ZONE_XHTML && !stanza_xhtml_inline(n->name))
				stanza_field_sep(&ex, IMP_FIELD_XHTML);
			lv[d].zone = zone;
			if (n->first && d < depth) {
				n = n->first;
				d++;
				continue;
			}
			stanza_leave(&ex, n, d, zone);
		}
		while (n != root && !n->next) {
			n = n->parent;
			d--;
			if (n != root)
				stanza_leave(&ex, n, d, lv[d].zone);
		}
		if (n != root)
			n = n->next;
	}

	for (int i = 0; i < IMP_FIELD_COUNT; i++) {
		stanza_fbuild_t *fb = &ex.f[i];
		imp_ftext_t *ft = &st->fields[i];
		if (fb->buf.oom)
			ex.nomem = true;
		if (fb->lazy) {
			ft->text = fb->lazy->text;
			ft->len = fb->lazy->text_len;
		} else {
			ft->text = fb->buf.len ? fb->buf.data : (char *)"";
			ft->len = fb->buf.len;
		}
		ft->segs = fb->segs;
		ft->n_segs = fb->n_segs;
	}
	st->addresses = ex.addresses.v;
	st->n_addresses = ex.addresses.n;
	st->urls = ex.urls.v;
	st->n_urls = ex.urls.n;
	st->filenames = ex.filenames.v;
	st->n_filenames = ex.filenames.n;
	return ex.nomem ? IMP_ERR_NOMEM : IMP_OK;
}

/* ---- fast path ------------------------------------------------------------ */

/* Most stanzas are plain: ASCII names, unprefixed elements, default
 * namespace declarations, quoted attributes, character data with the five
 * predefined entities and character references.  stanza_fast reads exactly
 * that subset itself and builds the DOM expat's handlers would build: the
 * same text, end-tag and namespace handlers, and stanza_fast_elem, the
 * start handler without expat's name triplets (xmlns attributes removed,
 * attribute values normalised).  It is a recogniser, not a second parser: anything
 * outside the subset (prefixes, comments, CDATA, processing instructions,
 * DTDs, carriage returns, invalid characters, unbalanced tags, duplicate
 * attributes, a handler reporting a limit) makes it return false, and
 * the caller discards what it built and parses the stanza with expat,
 * which then produces the verdict and the error message.  So expat stays
 * the judge of every input the subset does not cover, and inputs it covers
 * are well-formed XML parsed the way expat parses them. */

#define STANZA_FAST_ATTRS 16
#define STANZA_FAST_DEPTH 32
#define STANZA_FAST_ABUF 2048

typedef struct stanza_fast_s {
	const char *p, *end;
	/* default namespace per open element; NULL: none in scope */
	const char *ns[STANZA_FAST_DEPTH + 1];
	size_t ns_len[STANZA_FAST_DEPTH + 1];
	const char *open[STANZA_FAST_DEPTH]; /* element names, for end tags */
	size_t open_len[STANZA_FAST_DEPTH];
	unsigned depth;
} stanza_fast_t;

/* Byte classes of the fast path: FT_TEXT bytes stand for themselves in
 * character data (printable ASCII but '&', '<', ']'; tab, newline),
 * FT_ATTR in attribute values (printable ASCII but '&', '<' and quotes),
 * FT_NAME in names, FT_NAMESTART at their start. */
enum {
	FT_TEXT = 1,
	FT_ATTR = 2,
	FT_NAME = 4,
	FT_NAMESTART = 8,
	FT_SPACE = 16 /* white space between attributes */
};

/* clang-format off */
static const unsigned char stanza_fast_tab[256] = {
	 0,  0,  0,  0,  0,  0,  0,  0,  0, 17, 17,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	19,  3,  1,  3,  3,  3,  0,  1,  3,  3,  3,  3,  3,  7,  7,  3,
	 7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  3,  3,  0,  3,  3,  3,
	 3, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
	15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  3,  3,  2,  3, 15,
	 3, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
	15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  3,  3,  3,  3,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};
/* clang-format on */

static bool stanza_fast_namestart(unsigned char c)
{
	return (stanza_fast_tab[c] & FT_NAMESTART) != 0;
}

static bool stanza_fast_space(unsigned char c)
{
	return (stanza_fast_tab[c] & FT_SPACE) != 0; /* ' ', '\t', '\n' */
}

/* An XML 1.0 Char (section 2.2). */
static bool stanza_fast_xmlchar(uint32_t c)
{
	return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
	       (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

/* Length of the valid UTF-8 sequence of an XML Char at s (s < end,
 * *s >= 0x80), or 0. */
static size_t stanza_fast_utf8(const unsigned char *s, const unsigned char *end)
{
	uint32_t c;
	size_t n;
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
		c = s[0] & 0x1Fu;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		c = s[0] & 0x0Fu;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		c = s[0] & 0x07u;
	} else {
		return 0;
	}
	if ((size_t)(end - s) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3Fu);
	}
	static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
	if (c < min[n] || (c >= 0xD800 && c <= 0xDFFF) ||
	    !stanza_fast_xmlchar(c))
		return 0;
	return n;
}

/* Decodes the reference at *pp ('&' ... ';') into out (UTF-8, at most 4
 * bytes); returns its length or 0 when it is not one we accept. */
static size_t stanza_fast_ref(const char **pp, const char *end, char *out)
{
	const char *p = *pp + 1;
	const char *semi =
		memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	if (!semi)
		return 0;
	size_t n = (size_t)(semi - p);
	uint32_t c = 0;
	if (n >= 2 && p[0] == '#') {
		bool hex = p[1] == 'x';
		size_t i = hex ? 2 : 1;
		if (i >= n)
			return 0;
		for (; i < n; i++) {
			unsigned char d = (unsigned char)p[i];
			unsigned v;
			if (d >= '0' && d <= '9')
				v = d - '0';
			else if (hex && d >= 'a' && d <= 'f')
				v = d - 'a' + 10;
			else if (hex && d >= 'A' && d <= 'F')
				v = d - 'A' + 10;
			else
				return 0;
			c = c * (hex ? 16 : 10) + v;
			if (c > 0x10FFFF)
				return 0;
		}
		if (!stanza_fast_xmlchar(c))
			return 0;
	} else if (n == 2 && memcmp(p, "lt", 2) == 0) {
		c = '<';
	} else if (n == 2 && memcmp(p, "gt", 2) == 0) {
		c = '>';
	} else if (n == 3 && memcmp(p, "amp", 3) == 0) {
		c = '&';
	} else if (n == 4 && memcmp(p, "quot", 4) == 0) {
		c = '"';
	} else if (n == 4 && memcmp(p, "apos", 4) == 0) {
		c = '\'';
	} else {
		return 0;
	}
	*pp = semi + 1;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* Skips the run of plain bytes (FT_TEXT when text, else FT_ATTR) at p:
 * the per-byte loop over character data was the largest single cost of
 * parsing a chat stanza.  With SSE2, sixteen bytes are classified at once;
 * anything the vector test refuses (control bytes, which include tab and
 * newline, DEL, non-ASCII and the special characters) ends the vector
 * step, and the table decides that one byte.  The result is exactly the
 * table loop's. */
static inline const char *stanza_fast_skip(const char *p, const char *end,
					   bool text)
{
	const unsigned char cls = text ? FT_TEXT : FT_ATTR;
	for (;;) {
#if defined(__SSE2__)
		const __m128i lo = _mm_set1_epi8(0x20);
		const __m128i del = _mm_set1_epi8(0x7f);
		const __m128i amp = _mm_set1_epi8('&');
		const __m128i lt = _mm_set1_epi8('<');
		/* text: ']' (for "]]>"); attributes: both quotes */
		const __m128i x1 = _mm_set1_epi8(text ? ']' : '"');
		const __m128i x2 = _mm_set1_epi8(text ? ']' : '\'');
		while (end - p >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)p);
			/* signed compare: bytes >= 0x80 are negative */
			__m128i bad = _mm_cmplt_epi8(v, lo);
			bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, del));
			bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, amp));
			bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, lt));
			bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, x1));
			bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, x2));
			unsigned m = (unsigned)_mm_movemask_epi8(bad);
			if (m) {
				p += __builtin_ctz(m);
				break;
			}
			p += 16;
		}
#endif
		if (p < end && (stanza_fast_tab[(unsigned char)*p] & cls)) {
			p++;
			continue;
		}
		return p;
	}
}

/* Reads a name at f->p; false when there is none we accept. */
static bool stanza_fast_name(stanza_fast_t *f, const char **name, size_t *len)
{
	const char *s = f->p;
	if (s >= f->end || !stanza_fast_namestart((unsigned char)*s))
		return false;
	while (s < f->end && (stanza_fast_tab[(unsigned char)*s] & FT_NAME))
		s++;
	*name = f->p;
	*len = (size_t)(s - f->p);
	f->p = s;
	return true;
}

/* Character data up to the next '<' (or the end), handed to the text
 * handler in runs. */
static bool stanza_fast_text(stanza_parser_t *sp, stanza_fast_t *f)
{
	const char *p = f->p, *run = p;
	while (p < f->end && *p != '<') {
		unsigned char c = (unsigned char)*p;
		if (stanza_fast_tab[c] & FT_TEXT) {
			p = stanza_fast_skip(p + 1, f->end, true);
			continue;
		}
		if (c == ']') {
			/* "]]>" is not allowed in character data */
			if (f->end - p >= 3 && p[1] == ']' && p[2] == '>')
				return false;
			p++;
		} else if (c >= 0x80) {
			size_t n =
				stanza_fast_utf8((const unsigned char *)p,
						 (const unsigned char *)f->end);
			if (!n)
				return false;
			p += n;
		} else if (c == '&') {
			if (p > run)
				stanza_on_text(sp, run, (int)(p - run));
			char ch[4];
			size_t n = stanza_fast_ref(&p, f->end, ch);
			if (!n)
				return false;
			stanza_on_text(sp, ch, (int)n);
			run = p;
		} else {
			return false; /* control characters, '\r' */
		}
	}
	if (p > run)
		stanza_on_text(sp, run, (int)(p - run));
	f->p = p;
	return sp->rc == IMP_OK;
}

/* An attribute value at f->p (the opening quote), normalised as XML 1.0
 * section 3.3.3 says for CDATA attributes, NUL-terminated into buf. */
static bool stanza_fast_attval(stanza_fast_t *f, char *buf, size_t *used,
			       size_t cap, const char **val, size_t *vlen)
{
	if (f->p >= f->end || (*f->p != '"' && *f->p != '\''))
		return false;
	char q = *f->p++;
	char *o = buf + *used;
	char *oe = buf + cap - 1;
	const char *p = f->p;
	while (p < f->end && *p != q) {
		unsigned char c = (unsigned char)*p;
		if (stanza_fast_tab[c] & FT_ATTR) {
			/* a run of plain bytes, copied at once */
			const char *r = p;
			p = stanza_fast_skip(p + 1, f->end, false);
			if ((size_t)(oe - o) < (size_t)(p - r) + 4)
				return false;
			memcpy(o, r, (size_t)(p - r));
			o += p - r;
			continue;
		}
		if (o + 4 > oe)
			return false;
		if (c == '"' || c == '\'') {
			*o++ = (char)c; /* the other quote */
			p++;
		} else if (c == '\n' || c == '\t') {
			*o++ = ' ';
			p++;
		} else if (c >= 0x80) {
			size_t n =
				stanza_fast_utf8((const unsigned char *)p,
						 (const unsigned char *)f->end);
			if (!n)
				return false;
			memcpy(o, p, n);
			o += n;
			p += n;
		} else if (c == '&') {
			size_t n = stanza_fast_ref(&p, f->end, o);
			if (!n)
				return false;
			o += n;
		} else {
			return false; /* '<', control characters, '\r' */
		}
	}
	if (p >= f->end)
		return false;
	f->p = p + 1;
	*o = '\0';
	*val = buf + *used;
	*vlen = (size_t)(o - (buf + *used));
	*used = (size_t)(o - buf) + 1;
	return true;
}

/* stanza_on_start for the fast path: the same node through the same
 * stanza_elem_begin/enter, built from the parts the fast path already has
 * (no triplet to build and split again, value lengths known); test_stanza
 * compares both paths' DOMs. */
static void stanza_fast_elem(stanza_parser_t *sp, const char *uri, size_t ulen,
			     const char *name, size_t nlen,
			     const char *const *an, const size_t *al,
			     const char *const *av, const size_t *vl, size_t na)
{
	imp_xnode_t *n = stanza_elem_begin(sp, uri, ulen, na);
	if (!n)
		return;
	/* The element's name and all its attribute names and values in one
	 * arena block, each NUL-terminated. */
	size_t total = nlen + 1;
	for (size_t i = 0; i < na; i++)
		total += al[i] + vl[i] + 2;
	char *blk = imp_arena_alloc(sp->arena, total);
	if (!blk)
		goto nomem;
	memcpy(blk, name, nlen);
	blk[nlen] = '\0';
	n->name = blk;
	blk += nlen + 1;
	for (size_t i = 0; i < na; i++) {
		imp_xattr_t *at = &n->attrs[i];
		memcpy(blk, an[i], al[i]);
		blk[al[i]] = '\0';
		at->name = blk;
		blk += al[i] + 1;
		memcpy(blk, av[i], vl[i]);
		blk[vl[i]] = '\0';
		at->value = blk;
		blk += vl[i] + 1;
	}
	stanza_elem_enter(sp, n);
	return;
nomem:
	stanza_fail(sp, IMP_ERR_NOMEM, "out of memory");
}

/* A start tag at f->p (just after '<'); *empty for "/>". */
static bool stanza_fast_start(stanza_parser_t *sp, stanza_fast_t *f,
			      bool *empty)
{
	const char *name;
	size_t nlen;
	if (!stanza_fast_name(f, &name, &nlen) || f->depth >= STANZA_FAST_DEPTH)
		return false;
	char abuf[STANZA_FAST_ABUF];
	size_t used = 0;
	const char *anames[STANZA_FAST_ATTRS], *avals[STANZA_FAST_ATTRS];
	size_t alens[STANZA_FAST_ATTRS], avlens[STANZA_FAST_ATTRS];
	size_t na = 0;
	const char *ns = f->ns[f->depth];
	size_t ns_len = f->ns_len[f->depth];
	bool declared = false;
	for (;;) {
		const char *s = f->p;
		while (f->p < f->end && stanza_fast_space((unsigned char)*f->p))
			f->p++;
		if (f->p >= f->end)
			return false;
		if (*f->p == '>' || *f->p == '/')
			break;
		if (f->p == s)
			return false; /* attributes need space before them */
		const char *an;
		size_t al;
		if (!stanza_fast_name(f, &an, &al))
			return false;
		while (f->p < f->end && stanza_fast_space((unsigned char)*f->p))
			f->p++;
		if (f->p >= f->end || *f->p != '=')
			return false;
		f->p++;
		while (f->p < f->end && stanza_fast_space((unsigned char)*f->p))
			f->p++;
		const char *v;
		size_t vl;
		if (!stanza_fast_attval(f, abuf, &used, sizeof(abuf), &v, &vl))
			return false;
		if (al == 5 && memcmp(an, "xmlns", 5) == 0) {
			/* Reserved namespaces need expat's checks. */
			if (declared ||
			    (vl == sizeof(STANZA_NS_XML) - 1 &&
			     memcmp(v, STANZA_NS_XML, vl) == 0) ||
			    (vl == 29 &&
			     memcmp(v, "http://www.w3.org/2000/xmlns/", 29) ==
				     0))
				return false;
			declared = true;
			ns = vl ? v : NULL;
			ns_len = vl;
			stanza_on_ns_start(sp, NULL, v);
			continue;
		}
		if (na == STANZA_FAST_ATTRS)
			return false;
		for (size_t i = 0; i < na; i++)
			if (alens[i] == al && anames[i][0] == an[0] &&
			    memcmp(anames[i], an, al) == 0)
				return false; /* duplicate: expat reports */
		anames[na] = an;
		alens[na] = al;
		avals[na] = v;
		avlens[na] = vl;
		na++;
	}
	if (*f->p == '/') {
		if (f->end - f->p < 2 || f->p[1] != '>')
			return false;
		f->p += 2;
		*empty = true;
	} else {
		f->p++;
		*empty = false;
	}
	stanza_fast_elem(sp, ns, ns_len, name, nlen, anames, alens, avals,
			 avlens, na);
	if (sp->rc != IMP_OK)
		return false;
	f->open[f->depth] = name;
	f->open_len[f->depth] = nlen;
	f->depth++;
	/* ns may point into abuf, which dies with this frame: children
	 * inherit the node's interned copy. */
	f->ns[f->depth] = ns ? sp->cur->ns : NULL;
	f->ns_len[f->depth] = ns ? ns_len : 0;
	if (*empty) {
		f->depth--;
		stanza_on_end(sp, NULL);
	}
	return sp->rc == IMP_OK;
}

/* Parses xml[0..len) if it is in the subset; false: use expat. */
static bool stanza_fast(stanza_parser_t *sp, const char *xml, size_t len)
{
	stanza_fast_t f;
	f.p = xml;
	f.end = xml + len;
	f.depth = 0;
	f.ns[0] = NULL;
	f.ns_len[0] = 0;
	if (len < 4 || xml[0] != '<')
		return false;
	bool done = false;
	while (f.p < f.end) {
		if (*f.p != '<') {
			if (f.depth == 0 || !stanza_fast_text(sp, &f))
				return false;
			continue;
		}
		if (done)
			return false; /* content after the root element */
		f.p++;
		if (f.p < f.end && *f.p == '/') {
			f.p++;
			const char *name;
			size_t nlen;
			if (f.depth == 0 || !stanza_fast_name(&f, &name, &nlen))
				return false;
			f.depth--;
			if (nlen != f.open_len[f.depth] ||
			    memcmp(name, f.open[f.depth], nlen) != 0)
				return false;
			while (f.p < f.end &&
			       stanza_fast_space((unsigned char)*f.p))
				f.p++;
			if (f.p >= f.end || *f.p != '>')
				return false;
			f.p++;
			stanza_on_end(sp, NULL);
			if (sp->rc != IMP_OK)
				return false;
		} else {
			bool empty;
			if (!stanza_fast_start(sp, &f, &empty))
				return false;
		}
		if (f.depth == 0)
			done = true;
	}
	return done && sp->root != NULL;
}

struct imp_stanza_parser_s {
	const imp_ctx_t *ctx;
	XML_Parser xp; /* created on first use */
	bool used;     /* xp has parsed since it was created or reset */
};

/* The expat parser of p, fresh or reset: NULL when memory runs out.  A
 * reset keeps expat's buffers and pools but clears handlers, the salt
 * and all document state, so no stanza sees the previous one's
 * namespaces or errors. */
static XML_Parser stanza_expat(imp_stanza_parser_t *p)
{
	if (p->xp && p->used && !XML_ParserReset(p->xp, "UTF-8")) {
		XML_ParserFree(p->xp);
		p->xp = NULL;
	}
	if (!p->xp)
		p->xp = XML_ParserCreateNS("UTF-8", STANZA_NS_SEP);
	p->used = p->xp != NULL;
	return p->xp;
}

/* One parse: the fast path when the stanza is in its subset, else expat
 * (fresh or reset), with every handler set again (a reset clears them)
 * and the hash salt (a reset zeroes it, and a zero salt makes expat
 * gather entropy again). */
static int stanza_parse_with(imp_stanza_parser_t *pp, imp_arena_t *a,
			     const char *xml, size_t len,
			     const imp_stanza_limits_t *lim, imp_stanza_t **out,
			     char *err, size_t errlen)
{
	stanza_parser_t sp;
	memset(&sp, 0, sizeof(sp));
	sp.arena = a;
	sp.err = err;
	sp.errlen = errlen;
	if (lim)
		sp.lim = *lim;
	if (!sp.lim.max_bytes)
		sp.lim.max_bytes = STANZA_DEF_MAX_BYTES;
	if (!sp.lim.max_depth)
		sp.lim.max_depth = STANZA_DEF_MAX_DEPTH;
	if (!sp.lim.max_attrs)
		sp.lim.max_attrs = STANZA_DEF_MAX_ATTRS;
	if (!sp.lim.max_nodes)
		sp.lim.max_nodes = STANZA_DEF_MAX_NODES;

	if (len > sp.lim.max_bytes) {
		if (err && errlen)
			snprintf(
				err, errlen,
				"line 1, column 1: stanza of %zu bytes exceeds "
				"the limit of %zu bytes",
				len, sp.lim.max_bytes);
		return IMP_ERR_PARSE;
	}
	if (len > (size_t)INT32_MAX) { /* expat takes an int length */
		if (err && errlen)
			snprintf(err, errlen, "line 1, column 1: too large");
		return IMP_ERR_PARSE;
	}

	/* Pending text lives in the arena: a flushed text node takes the
	 * buffer over instead of copying it. */
	imp_buf_init(&sp.text, NULL, a);
	int rc = IMP_OK;
	if (xml && stanza_fast(&sp, xml, len))
		goto extract;
	/* Start over with expat; what the fast path built stays unused in
	 * the arena. */
	{
		imp_stanza_limits_t l = sp.lim;
		memset(&sp, 0, sizeof(sp));
		sp.arena = a;
		sp.err = err;
		sp.errlen = errlen;
		sp.lim = l;
		imp_buf_init(&sp.text, NULL, a);
		if (err && errlen)
			err[0] = '\0';
	}
	XML_Parser xp = stanza_expat(pp);
	if (!xp)
		return IMP_ERR_NOMEM;
	sp.xp = xp;
	XML_SetHashSalt(xp, imp_hash_salt());
	XML_SetReturnNSTriplet(xp, 1);
	XML_SetUserData(xp, &sp);
	XML_SetElementHandler(xp, stanza_on_start, stanza_on_end);
	XML_SetCharacterDataHandler(xp, stanza_on_text);
	XML_SetStartNamespaceDeclHandler(xp, stanza_on_ns_start);
	XML_SetStartDoctypeDeclHandler(xp, stanza_on_doctype);
	XML_SetEntityDeclHandler(xp, stanza_on_entity);
	XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);

	if (XML_Parse(xp, xml ? xml : "", (int)len, XML_TRUE) !=
	    XML_STATUS_OK) {
		if (sp.rc != IMP_OK) {
			rc = sp.rc;
		} else {
			rc = IMP_ERR_PARSE;
			if (err && errlen)
				snprintf(
					err, errlen, "line %lu, column %lu: %s",
					(unsigned long)XML_GetCurrentLineNumber(
						xp),
					(unsigned long)XML_GetCurrentColumnNumber(
						xp) +
						1,
					XML_ErrorString(XML_GetErrorCode(xp)));
		}
	} else if (sp.rc != IMP_OK) {
		rc = sp.rc;
	} else if (!sp.root) {
		rc = IMP_ERR_PARSE;
		if (err && errlen)
			snprintf(err, errlen, "line 1, column 1: no element");
	}
	if (rc == IMP_ERR_NOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	if (rc != IMP_OK)
		return rc;
extract:;
	imp_stanza_t *st = imp_arena_calloc(a, 1, sizeof(*st));
	if (!st)
		return IMP_ERR_NOMEM;
	st->root = sp.root;
	rc = stanza_extract(a, st, sp.max_seen_depth);
	if (rc != IMP_OK)
		return rc;
	*out = st;
	return IMP_OK;
}

int imp_stanza_parse(imp_arena_t *a, const char *xml, size_t len,
		     const imp_stanza_limits_t *lim, imp_stanza_t **out,
		     char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (!a || !out || (!xml && len))
		return IMP_ERR_INVALID;
	/* "UTF-8" overrides any encoding declaration in the input. */
	imp_stanza_parser_t p = {imp_arena_ctx(a), NULL, false};
	int rc = stanza_parse_with(&p, a, xml, len, lim, out, err, errlen);
	if (p.xp)
		XML_ParserFree(p.xp);
	return rc;
}

/* ---- reusable parser ------------------------------------------------------ */

imp_stanza_parser_t *imp_stanza_parser_new(const imp_ctx_t *ctx)
{
	imp_stanza_parser_t *p = imp_calloc(ctx, 1, sizeof(*p));
	if (p)
		p->ctx = ctx;
	return p;
}

void imp_stanza_parser_free(imp_stanza_parser_t *p)
{
	if (!p)
		return;
	if (p->xp)
		XML_ParserFree(p->xp);
	imp_mfree(p->ctx, p);
}

int imp_stanza_parser_parse(imp_stanza_parser_t *p, imp_arena_t *a,
			    const char *xml, size_t len,
			    const imp_stanza_limits_t *lim, imp_stanza_t **out,
			    char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (!p || !a || !out || (!xml && len))
		return IMP_ERR_INVALID;
	return stanza_parse_with(p, a, xml, len, lim, out, err, errlen);
}

/* ---- masking -------------------------------------------------------------- */

int imp_stanza_mask(imp_stanza_t *st, imp_field_t f, size_t start, size_t end,
		    char mask)
{
	if (!st || (unsigned)f >= IMP_FIELD_COUNT)
		return IMP_ERR_INVALID;
	/* A mask byte must keep the text valid UTF-8 and must not be NUL. */
	if ((unsigned char)mask < 0x20 || (unsigned char)mask >= 0x7f)
		mask = '*';
	imp_ftext_t *ft = &st->fields[f];
	if (end > ft->len)
		end = ft->len;
	if (start >= end)
		return IMP_OK;
	const unsigned char *t = (const unsigned char *)ft->text;
	while (start > 0 && (t[start] & 0xC0) == 0x80)
		start--;
	while (end < ft->len && (t[end] & 0xC0) == 0x80)
		end++;
	memset(ft->text + start, mask, end - start);
	for (size_t i = 0; i < ft->n_segs; i++) {
		imp_fseg_t *sg = &ft->segs[i];
		size_t s0 = sg->field_off, s1 = s0 + sg->len;
		if (s1 <= start)
			continue;
		if (s0 >= end)
			break; /* segments ascend */
		size_t a0 = start > s0 ? start : s0;
		size_t a1 = end < s1 ? end : s1;
		memset(sg->node->text + sg->node_off + (a0 - s0), mask,
		       a1 - a0);
	}
	return IMP_OK;
}

/* ---- serialisation ---------------------------------------------------------- */

/* One namespace binding in scope while serialising.  prefix NULL is the
 * default namespace; ns NULL with prefix NULL is xmlns="". */
typedef struct ser_bind_s {
	const char *prefix;
	const char *ns;
	unsigned depth;
	bool declared; /* written out (false for the implied namespace) */
	char gen[16];  /* storage for a generated attribute prefix */
} ser_bind_t;

typedef struct ser_s {
	imp_buf_t *b;
	const imp_ctx_t *ctx;
	ser_bind_t *v;
	size_t n, cap;
	bool oom;
} ser_t;

static const char *ser_prefix(const ser_bind_t *e)
{
	return e->gen[0] ? e->gen : e->prefix;
}

static bool ser_ns_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return a == b || stanza_eq(a, b);
}

static bool ser_pfx_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return stanza_eq(a, b);
}

/* The innermost binding of prefix, or NULL when it is not bound. */
static ser_bind_t *ser_lookup(ser_t *s, const char *prefix)
{
	for (size_t i = s->n; i-- > 0;)
		if (ser_pfx_eq(ser_prefix(&s->v[i]), prefix))
			return &s->v[i];
	return NULL;
}

static ser_bind_t *ser_push(ser_t *s, const char *prefix, const char *ns,
			    unsigned depth, bool declared)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		ser_bind_t *v = imp_realloc(s->ctx, s->v, cap * sizeof(*v));
		if (!v) {
			s->oom = true;
			return NULL;
		}
		s->v = v;
		s->cap = cap;
	}
	ser_bind_t *e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	e->prefix = prefix;
	e->ns = ns;
	e->depth = depth;
	e->declared = declared;
	return e;
}

/* A prefix in scope for attribute namespace ns, or NULL. */
static const char *ser_attr_prefix(ser_t *s, const char *ns)
{
	for (size_t i = s->n; i-- > 0;) {
		const char *p = ser_prefix(&s->v[i]);
		if (p && ser_ns_eq(s->v[i].ns, ns) &&
		    ser_lookup(s, p) == &s->v[i])
			return p;
	}
	return NULL;
}

/* Works out (and pushes) the declarations element n needs at depth d. */
static void ser_bindings(ser_t *s, const imp_xnode_t *n, unsigned d)
{
	const char *prefix = n->ns ? n->prefix : NULL;
	if (prefix) {
		ser_bind_t *e = ser_lookup(s, prefix);
		if (!e || !ser_ns_eq(e->ns, n->ns))
			ser_push(s, prefix, n->ns, d, true);
	} else {
		ser_bind_t *e = ser_lookup(s, NULL);
		if (!n->ns) {
			/* Without a binding, a reader would imply
			 * jabber:client: say xmlns="" explicitly. */
			if (!e || e->ns)
				ser_push(s, NULL, NULL, d, true);
		} else if (!e && n->ns == stanza_ns_implied) {
			ser_push(s, NULL, n->ns, d, false);
		} else if (!e || !ser_ns_eq(e->ns, n->ns)) {
			ser_push(s, NULL, n->ns, d, true);
		}
	}
	for (size_t i = 0; i < n->n_attrs; i++) {
		const char *ns = n->attrs[i].ns;
		if (!ns || stanza_eq(ns, stanza_ns_xml))
			continue;
		if (ser_attr_prefix(s, ns))
			continue;
		/* Invent a prefix bound nowhere in scope, so that it
		 * shadows nothing this element or its other attributes
		 * use. */
		for (unsigned k = 0;; k++) {
			char gen[16];
			snprintf(gen, sizeof(gen), "ns%u", k);
			if (ser_lookup(s, gen))
				continue;
			ser_bind_t *e = ser_push(s, NULL, ns, d, true);
			if (e)
				memcpy(e->gen, gen, sizeof(gen));
			break;
		}
	}
}

static void ser_qname(imp_buf_t *b, const char *prefix, const char *name)
{
	if (prefix) {
		imp_buf_puts(b, prefix);
		imp_buf_putc(b, ':');
	}
	imp_buf_puts(b, name);
}

static void ser_open(ser_t *s, const imp_xnode_t *n, unsigned d)
{
	imp_buf_t *b = s->b;
	size_t first = s->n;
	ser_bindings(s, n, d);
	const char *prefix = n->ns ? n->prefix : NULL;
	imp_buf_putc(b, '<');
	ser_qname(b, prefix, n->name);
	for (size_t i = first; i < s->n; i++) {
		const ser_bind_t *e = &s->v[i];
		if (!e->declared)
			continue;
		const char *p = ser_prefix(e);
		imp_buf_puts(b, p ? " xmlns:" : " xmlns");
		if (p)
			imp_buf_puts(b, p);
		imp_buf_puts(b, "=\"");
		if (e->ns)
			imp_buf_xml_escape(b, e->ns, strlen(e->ns), true);
		imp_buf_putc(b, '"');
	}
	for (size_t i = 0; i < n->n_attrs; i++) {
		const imp_xattr_t *at = &n->attrs[i];
		const char *p = NULL;
		if (at->ns && stanza_eq(at->ns, stanza_ns_xml))
			p = "xml";
		else if (at->ns)
			p = ser_attr_prefix(s, at->ns);
		imp_buf_putc(b, ' ');
		ser_qname(b, p, at->name);
		imp_buf_puts(b, "=\"");
		imp_buf_xml_escape(b, at->value, strlen(at->value), true);
		imp_buf_putc(b, '"');
	}
	imp_buf_puts(b, n->first ? ">" : "/>");
}

static void ser_close(ser_t *s, const imp_xnode_t *n, unsigned d)
{
	imp_buf_puts(s->b, "</");
	ser_qname(s->b, n->ns ? n->prefix : NULL, n->name);
	imp_buf_putc(s->b, '>');
	while (s->n > 0 && s->v[s->n - 1].depth >= d)
		s->n--;
}

void imp_stanza_serialize(const imp_stanza_t *st, imp_buf_t *b)
{
	if (!st || !st->root || !b)
		return;
	ser_t s;
	memset(&s, 0, sizeof(s));
	s.b = b;
	s.ctx = b->arena ? imp_arena_ctx(b->arena) : b->ctx;

	/* Iterative walk: the DOM's parent links make an explicit stack
	 * unnecessary. */
	const imp_xnode_t *root = st->root, *n = root;
	unsigned d = 0;
	for (;;) {
		if (n->type == IMP_XNODE_TEXT) {
			imp_buf_xml_escape(b, n->text, n->text_len, false);
		} else {
			ser_open(&s, n, d);
			if (n->first) {
				n = n->first;
				d++;
				continue;
			}
			while (s.n > 0 && s.v[s.n - 1].depth >= d)
				s.n--;
		}
		while (n != root && !n->next) {
			n = n->parent;
			d--;
			ser_close(&s, n, d);
		}
		if (n == root)
			break;
		n = n->next;
	}
	imp_mfree(s.ctx, s.v);
	if (s.oom)
		b->oom = true;
}
