/*
 * stanza.h -- stanza parsing (expat) into a small DOM plus the facts rules
 * read, redaction in place, and re-serialisation.
 *
 * The parser is hardened against hostile input: size limit, depth limit,
 * attribute and element count limits, invalid UTF-8 and XML errors all give
 * IMP_ERR_PARSE with a readable reason; DTDs and entity declarations are
 * refused (no billion laughs).  Namespaces are resolved; the default
 * namespace of a stanza without xmlns is jabber:client.
 *
 * Facts extracted (see the IMP_FT_, IMP_E2E_, IMP_HINT_ bits):
 *  - file transfer: XEP-0363 upload slot requests (urn:xmpp:http:upload:0
 *    <request/>, and the older eu:siacs:conversations:http:upload), 0066
 *    jabber:x:oob / jabber:iq:oob, 0096 SI (http://jabber.org/protocol/si
 *    with profile .../si/profile/file-transfer), 0065 bytestreams, 0047 IBB
 *    (open/data), 0234 Jingle file transfer (urn:xmpp:jingle:apps:file-
 *    transfer:*), 0385 SIMS (urn:xmpp:sims:1 / references with media-
 *    sharing), 0447 SFS (urn:xmpp:sfs:0).
 *  - end-to-end encryption: OMEMO legacy (eu.siacs.conversations.axolotl)
 *    and OMEMO:2 (urn:xmpp:omemo:2), OpenPGP for XMPP (urn:xmpp:openpgp:0),
 *    legacy jabber:x:encrypted, OTR ("?OTR" at the start of a body),
 *    XEP-0380 <encryption/> hints.
 *  - processing hints (XEP-0334): no-store, no-permanent-store, no-copy,
 *    store; and private carbons (XEP-0280 <private/>).
 *  - XEP-0033 multicast <addresses/>: the jids of to/cc/bcc addresses.
 *  - XEP-0308 corrections (<replace/>), XHTML-IM text.
 * Text fields (imp_field_t) are built from the DOM's character data and
 * remember which text nodes they came from, so masking a span of a field
 * masks the right characters in the DOM.
 *
 * Threading: all memory comes from the caller's (scratch) arena.
 */
#ifndef IMP_STANZA_H
#define IMP_STANZA_H

#include "base.h"

enum {
	IMP_KIND_MESSAGE = 1 << 0,
	IMP_KIND_PRESENCE = 1 << 1,
	IMP_KIND_IQ = 1 << 2,
	IMP_KIND_OTHER = 1 << 3,
};

enum {
	IMP_FT_UPLOAD = 1 << 0, /* XEP-0363 slot request */
	IMP_FT_OOB = 1 << 1,    /* XEP-0066 */
	IMP_FT_SI = 1 << 2,     /* XEP-0096 */
	IMP_FT_SOCKS5 = 1 << 3, /* XEP-0065 */
	IMP_FT_IBB = 1 << 4,    /* XEP-0047 */
	IMP_FT_JINGLE = 1 << 5, /* XEP-0234 */
	IMP_FT_SIMS = 1 << 6,   /* XEP-0385 */
	IMP_FT_SFS = 1 << 7,    /* XEP-0447 */
};

enum {
	IMP_E2E_OMEMO = 1 << 0,      /* eu.siacs.conversations.axolotl */
	IMP_E2E_OMEMO2 = 1 << 1,     /* urn:xmpp:omemo:2 */
	IMP_E2E_OPENPGP = 1 << 2,    /* urn:xmpp:openpgp:0 (XEP-0373) */
	IMP_E2E_LEGACY_PGP = 1 << 3, /* jabber:x:encrypted (XEP-0027) */
	IMP_E2E_OTR = 1 << 4,        /* ?OTR body */
	IMP_E2E_HINT = 1 << 5,       /* XEP-0380 <encryption/> */
};

enum {
	IMP_HINT_NO_STORE = 1 << 0,
	IMP_HINT_NO_PERMANENT_STORE = 1 << 1,
	IMP_HINT_NO_COPY = 1 << 2,
	IMP_HINT_STORE = 1 << 3,
	IMP_HINT_PRIVATE = 1 << 4, /* carbons <private/> */
};

typedef struct imp_xattr_s {
	const char *ns; /* NULL for unqualified */
	const char *name;
	const char *value;
} imp_xattr_t;

typedef struct imp_xnode_s imp_xnode_t;
struct imp_xnode_s {
	enum { IMP_XNODE_ELEM, IMP_XNODE_TEXT } type;
	imp_xnode_t *parent, *next, *first, *last;
	/* ELEM */
	const char *ns;     /* resolved namespace URI, NULL if none */
	const char *name;   /* local name */
	const char *prefix; /* as written, NULL for default namespace */
	imp_xattr_t *attrs;
	size_t n_attrs;
	/* TEXT: decoded UTF-8 character data (mutable for redaction) */
	char *text;
	size_t text_len;
};

/* A span of a field's text that came from one text node. */
typedef struct imp_fseg_s {
	imp_xnode_t *node;
	uint32_t field_off; /* where this segment starts in the field text */
	uint32_t node_off;  /* where it starts in node->text */
	uint32_t len;
} imp_fseg_t;

typedef struct imp_ftext_s {
	char *text; /* NUL-terminated, "" when absent */
	size_t len;
	imp_fseg_t *segs;
	size_t n_segs;
	bool present; /* the element exists (even if empty) */
} imp_ftext_t;

typedef struct imp_stanza_limits_s {
	size_t max_bytes;   /* 0: 4 MiB */
	unsigned max_depth; /* 0: 64 */
	unsigned max_attrs; /* per element; 0: 64 */
	size_t max_nodes;   /* 0: 100000 */
} imp_stanza_limits_t;

typedef struct imp_stanza_s {
	imp_xnode_t *root;
	unsigned kind;                            /* IMP_KIND_* */
	const char *name;                         /* root local name */
	const char *type, *id, *from, *to, *lang; /* attributes or NULL */
	const char *thread;                       /* <thread/> text or NULL */
	imp_ftext_t fields[IMP_FIELD_COUNT];
	unsigned ft;            /* IMP_FT_* */
	unsigned e2ee;          /* IMP_E2E_* */
	unsigned hints;         /* IMP_HINT_* */
	bool correction;        /* XEP-0308 */
	const char **addresses; /* XEP-0033 jids (to/cc/bcc) */
	size_t n_addresses;
	const char **urls; /* OOB/SIMS/SFS URLs seen */
	size_t n_urls;
	const char **filenames; /* file names offered (SI, Jingle, SIMS...) */
	size_t n_filenames;
} imp_stanza_t;

/* Parses exactly one stanza element from xml[0..len).  On IMP_ERR_PARSE
 * writes a reason ("line 1, column 40: mismatched tag") into err. */
int imp_stanza_parse(imp_arena_t *a, const char *xml, size_t len,
		     const imp_stanza_limits_t *lim, imp_stanza_t **out,
		     char *err, size_t errlen);

/* A reusable parser for one thread (an evaluator keeps one): the same
 * contract as imp_stanza_parse, without creating and freeing an expat
 * parser per stanza.  new() returns NULL when memory runs out. */
typedef struct imp_stanza_parser_s imp_stanza_parser_t;
imp_stanza_parser_t *imp_stanza_parser_new(const imp_ctx_t *ctx);
void imp_stanza_parser_free(imp_stanza_parser_t *p);
int imp_stanza_parser_parse(imp_stanza_parser_t *p, imp_arena_t *a,
			    const char *xml, size_t len,
			    const imp_stanza_limits_t *lim, imp_stanza_t **out,
			    char *err, size_t errlen);

/* Masks field text [start, end) (byte offsets, snapped outwards to
 * character boundaries) both in the field text and in the DOM: every
 * masked byte becomes the mask char ('*'), so offsets of other spans stay
 * valid and masks can be applied in any order.  Returns IMP_OK. */
int imp_stanza_mask(imp_stanza_t *st, imp_field_t f, size_t start, size_t end,
		    char mask);

/* Serialises the DOM back to XML (namespaces declared where needed) into
 * b.  The result is well-formed and parses to the same DOM. */
void imp_stanza_serialize(const imp_stanza_t *st, imp_buf_t *b);

#endif /* IMP_STANZA_H */
