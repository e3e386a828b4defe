/*
 * xmlsplit.c -- imp_xml_split: cuts a buffer of zero or more top-level
 * stanzas (a capture file, a test fixture, a tool's stdin) into the exact
 * byte range of each stanza.
 *
 * How: expat parses "<w>" + buffer + "</w>"; every element at depth 1 of
 * the buffer is a stanza.  Its start is the byte index of its start tag,
 * its end the index plus byte count of its end tag (for <x/> expat reports
 * the same token to both handlers).  The three bytes of the wrapper are
 * subtracted, so the ranges point into the caller's buffer.  Whitespace
 * and comments between stanzas are allowed; any other text is an error.
 * An optional XML declaration (after an optional BOM and whitespace) at
 * the very start is skipped, because inside the wrapper it would no longer
 * be at the start of the document.
 *
 * No namespace processing: prefixes the surrounding stream declared (e.g.
 * stream:) must not make a capture unsplittable; imp_stanza_parse judges
 * each stanza on its own later.  Expat is iterative, so deep nesting costs
 * heap, not stack.
 *
 * Threading: no shared state; the callback runs on the caller's thread.
 *
 * Reports: cb(ud, xml, len, line, NULL) per stanza (line is 1-based, where
 * the stanza starts); on malformed input a final cb(ud, NULL, 0, line,
 * "line L, column C: reason") and IMP_ERR_PARSE.  A non-zero return from
 * cb stops the split: a negative value is returned, a positive one gives
 * IMP_OK.
 */
#include "base.h"

#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define SPLIT_WRAP_OPEN "<w>"
#define SPLIT_WRAP_CLOSE "</w>"
#define SPLIT_WRAP_LEN (sizeof(SPLIT_WRAP_OPEN) - 1)
#define SPLIT_CHUNK ((size_t)1 << 30) /* expat takes int lengths */

typedef struct split_s {
	XML_Parser xp;
	const char *buf;
	size_t len;             /* bytes in buf */
	size_t skip;            /* leading bytes not fed (BOM, declaration) */
	unsigned skip_lines;    /* newlines in them */
	unsigned long skip_col; /* bytes after their last newline */
	unsigned depth;         /* 1 = the wrapper */
	size_t start;           /* current stanza's first byte in buf */
	unsigned line;          /* and its line */
	imp_split_cb cb;
	void *ud;
	int cb_rc;
	bool failed;
	char err[256];
} split_t;

/* Position of the current expat event, mapped back to the caller's
 * buffer. */
static void split_pos(split_t *sp, unsigned long *line, unsigned long *col)
{
	unsigned long l = (unsigned long)XML_GetCurrentLineNumber(sp->xp);
	unsigned long c = (unsigned long)XML_GetCurrentColumnNumber(sp->xp);
	if (l == 1)
		c = (c >= SPLIT_WRAP_LEN ? c - SPLIT_WRAP_LEN : 0) +
		    sp->skip_col;
	*line = l + sp->skip_lines;
	*col = c + 1;
}

static void split_fail(split_t *sp, const char *msg)
{
	if (sp->failed || sp->cb_rc)
		return;
	unsigned long l, c;
	split_pos(sp, &l, &c);
	snprintf(sp->err, sizeof(sp->err), "line %lu, column %lu: %s", l, c,
		 msg);
	sp->failed = true;
	XML_StopParser(sp->xp, XML_FALSE);
}

static size_t split_offset(split_t *sp, XML_Index idx)
{
	return (size_t)idx - SPLIT_WRAP_LEN + sp->skip;
}

static void XMLCALL split_on_start(void *ud, const XML_Char *name,
				   const XML_Char **atts)
{
	split_t *sp = ud;
	if (++sp->depth == 2) {
		unsigned long l, c;
		split_pos(sp, &l, &c);
		sp->start = split_offset(sp, XML_GetCurrentByteIndex(sp->xp));
		sp->line = (unsigned)l;
	}
}

static void XMLCALL split_on_end(void *ud, const XML_Char *name)
{
	split_t *sp = ud;
	if (sp->depth-- != 2)
		return;
	size_t end = split_offset(sp, XML_GetCurrentByteIndex(sp->xp) +
					      XML_GetCurrentByteCount(sp->xp));
	/* An input that opens an element named like our wrapper ("<w>")
	 * and leaves it open is closed by the wrapper's own end tag: that
	 * element ends past the caller's buffer and is not a stanza. */
	if (end > sp->len) {
		split_fail(sp, "element not closed at end of input");
		return;
	}
	int rc = sp->cb(sp->ud, sp->buf + sp->start, end - sp->start, sp->line,
			NULL);
	if (rc != 0) {
		sp->cb_rc = rc;
		XML_StopParser(sp->xp, XML_FALSE);
	}
}

static void XMLCALL split_on_text(void *ud, const XML_Char *s, int len)
{
	split_t *sp = ud;
	if (sp->depth != 1)
		return;
	for (int i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
		    s[i] != '\r') {
			split_fail(sp, "text outside a stanza");
			return;
		}
}

static void XMLCALL split_on_doctype(void *ud, const XML_Char *name,
				     const XML_Char *sysid,
				     const XML_Char *pubid, int has_internal)
{
	split_fail(ud, "DTD not allowed");
}

/* Length of a leading BOM, whitespace and XML declaration, or 0. */
static size_t split_prolog(const char *buf, size_t len)
{
	size_t i = 0;
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	size_t j = i;
	while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' ||
			   buf[j] == '\r'))
		j++;
	if (len - j < 6 || memcmp(buf + j, "<?xml", 5) != 0 ||
	    !(buf[j + 5] == ' ' || buf[j + 5] == '\t' || buf[j + 5] == '\n' ||
	      buf[j + 5] == '\r'))
		return i;
	for (size_t k = j + 5; k + 1 < len; k++) {
		if (buf[k] == '?' && buf[k + 1] == '>')
			return k + 2;
		if (buf[k] == '<' || buf[k] == '>')
			break; /* not a declaration: let expat complain */
	}
	return i;
}

static bool split_feed(split_t *sp, const char *p, size_t n, bool final)
{
	do {
		size_t k = n > SPLIT_CHUNK ? SPLIT_CHUNK : n;
		bool last = final && k == n;
		if (XML_Parse(sp->xp, p, (int)k, last) != XML_STATUS_OK)
			return false;
		p += k;
		n -= k;
	} while (n > 0);
	return true;
}

int imp_xml_split(imp_ctx_t *ctx, const char *buf, size_t len, imp_split_cb cb,
		  void *ud)
{
	if (!cb || (!buf && len))
		return IMP_ERR_INVALID;
	split_t sp;
	memset(&sp, 0, sizeof(sp));
	sp.buf = buf;
	sp.len = len;
	sp.cb = cb;
	sp.ud = ud;
	sp.skip = split_prolog(buf, len);
	for (size_t i = 0; i < sp.skip; i++) {
		sp.skip_col++;
		if (buf[i] == '\n') {
			sp.skip_lines++;
			sp.skip_col = 0;
		}
	}
	sp.xp = XML_ParserCreate("UTF-8");
	if (!sp.xp)
		return IMP_ERR_NOMEM;
	XML_SetHashSalt(sp.xp, imp_hash_salt());
	XML_SetUserData(sp.xp, &sp);
	XML_SetElementHandler(sp.xp, split_on_start, split_on_end);
	XML_SetCharacterDataHandler(sp.xp, split_on_text);
	XML_SetStartDoctypeDeclHandler(sp.xp, split_on_doctype);

	bool ok =
		split_feed(&sp, SPLIT_WRAP_OPEN, SPLIT_WRAP_LEN, false) &&
		split_feed(&sp, buf ? buf + sp.skip : "", len - sp.skip, false);
	bool in_tail = ok;
	ok = ok && split_feed(&sp, SPLIT_WRAP_CLOSE,
			      sizeof(SPLIT_WRAP_CLOSE) - 1, true);
	int rc = IMP_OK;
	if (sp.cb_rc) {
		rc = sp.cb_rc < 0 ? sp.cb_rc : IMP_OK;
	} else if (!ok || sp.failed) {
		if (!sp.failed) {
			unsigned long l, c;
			split_pos(&sp, &l, &c);
			enum XML_Error code = XML_GetErrorCode(sp.xp);
			const char *msg = in_tail && sp.depth > 1
						  ? "unclosed element at end "
						    "of input"
						  : XML_ErrorString(code);
			if (code == XML_ERROR_NO_MEMORY)
				rc = IMP_ERR_NOMEM;
			snprintf(sp.err, sizeof(sp.err),
				 "line %lu, column %lu: %s", l, c,
				 msg ? msg : "malformed XML");
		}
		if (rc == IMP_OK)
			rc = IMP_ERR_PARSE;
		unsigned long l, c;
		split_pos(&sp, &l, &c);
		cb(ud, NULL, 0, (unsigned)l, sp.err);
	}
	XML_ParserFree(sp.xp);
	(void)ctx;
	return rc;
}
