/*
 * norm.h -- text normalisation before matching.
 *
 * Two views of a text, each with a map back to byte offsets in the source so
 * that matches can be reported and redacted in the original:
 *  - IMP_NORM_PLAIN: NFKC compatibility folding (full-width digits become
 *    ASCII), format characters (Cf: zero-width space/joiners, bidi marks,
 *    soft hyphen) removed, case kept.  Detectors run on this view.
 *  - IMP_NORM_WORDS: PLAIN plus case folding, diacritics stripped (NFKD and
 *    drop combining marks), the leetspeak map (0->o 1->i 3->e 4->a 5->s
 *    7->t @->a $->s ...) applied inside words that contain letters,
 *    separators collapsed inside spelled-out words ("f.u.c.k", "f u c k",
 *    "f-u-c-k" -> "fuck"), runs of three or more equal letters squeezed to
 *    one ("fuuuuck" -> "fuck") and every other run of non-word characters
 *    turned into one space.  Word lists are normalised with the same
 *    function, so matching happens in one space.
 * ASCII input takes a fast path that does not call utf8proc.
 * Invalid UTF-8 bytes are replaced by U+FFFD (and map to their byte).
 *
 * Threading: pure functions; memory comes from the caller's arena.
 */
#ifndef IMP_NORM_H
#define IMP_NORM_H

#include "base.h"

enum { IMP_NORM_PLAIN = 0, IMP_NORM_WORDS = 1 };

typedef struct imp_ntext_s {
	char *s; /* normalised UTF-8, NUL-terminated */
	size_t len;
	/* map[i] is the source offset of the character that produced byte i;
	 * map[len] is the source length.  A normalised span [b, e) therefore
	 * covers the source bytes [map[b], map[e]) -- for e < len, map[e] is
	 * the start of the next surviving character, so trailing removed
	 * characters are not included. */
	uint32_t *map;
} imp_ntext_t;

/* Normalises src[0..len) into *out with memory from a.  Returns IMP_OK,
 * IMP_ERR_NOMEM, or IMP_ERR_LIMIT when len exceeds 1 GiB. */
int imp_norm(imp_arena_t *a, const char *src, size_t len, int mode,
	     imp_ntext_t *out);

/* True when src[0..len) is all ASCII.  For such text the PLAIN view is the
 * text itself with the identity map (map[i] == i), so a caller may use the
 * source directly instead of calling imp_norm(). */
bool imp_norm_is_ascii(const char *src, size_t len);

/* True when byte c (of a WORDS view) is part of a word: an ASCII letter or
 * digit, or any byte >= 0x80 (non-ASCII letters survive folding). */
static inline bool imp_norm_wordbyte(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c >= 'A' && c <= 'Z');
}

#endif /* IMP_NORM_H */
