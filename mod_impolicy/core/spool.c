/*
 * spool.c -- the archive's local append-only spool (spool.h).
 *
 * Layout: in dir, segments "NODE.SEQ16HEX.spool" of frames
 *   "IMPS" | u32 payload length | u32 CRC-32C(payload) | payload
 * (little-endian; payload = imp_record_serialize()), and "NODE.head", two
 * fixed 64-byte slots each holding a chain head with its own CRC.  Heads
 * are written alternately into slot (generation & 1) with pwrite +
 * fdatasync: a torn write can damage only the slot being written, and the
 * other still holds the previous head, so one fdatasync per update is
 * crash-safe without a rename dance.
 *
 * Invariants:
 *  - segs[] is ordered by first seq; segs[nseg - 1] is the one appended to
 *    (fd >= 0 once opened for writing).  Every segment but the last has
 *    been fdatasync'd (rolling syncs the old one).
 *  - synced_size is the prefix of the last segment known durable; frames
 *    beyond it are "unsynced".  When fdatasync fails, the unsynced frames
 *    are truncated away and the next imp_spool_sync() reports IMP_ERR_IO:
 *    after a failed fdatasync the kernel may have dropped those pages, so
 *    the file is cut back to what is known durable instead of holding
 *    records the caller was told had failed, or holes in the middle.
 *  - The replay cursor (rd_seg, rd_off) only ever reads synced frames.
 *    Consumption is not persisted: after a restart, records of a partly
 *    consumed segment are replayed again, which the database drops by
 *    (node, seq, ts) -- replays are idempotent by design.
 *  - A failed append leaves the files as they were (partial frame cut off,
 *    a segment created for it removed).
 *
 * Recovery (open): every segment is scanned and each frame CRC-checked and
 * decoded; seqs must grow.  A bad frame at the end of the last segment
 * with nothing valid after it is a torn append: truncated away, logged.
 * Any other bad frame (corruption followed by valid data, or in an older
 * segment) makes the segment "*.corrupt" (renamed, kept for the operator,
 * logged as an error); records in it are not replayed, but their seqs
 * still advance the chain head so that a sequence number is never reused.
 *
 * Threading: one thread uses a spool (the archive writer).  No globals.
 *
 * Reports: IMP_ERR_IO with errno text in err (open) and through imp_log;
 * IMP_ERR_NOMEM.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC "IMPS"
#define SPOOL_FRAME_HDR 12
#define SPOOL_HEAD_MAGIC "IMPH"
#define SPOOL_HEAD_VERSION 1u
#define SPOOL_SUFFIX ".spool"
#define SPOOL_CHUNK (256u << 10)

static const uint32_t spool_crc_table[256] = {
	0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu,
	0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu,
	0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u,
	0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
	0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u,
	0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
	0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
	0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
	0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu,
	0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u, 0xc288cab2u,
	0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u,
	0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
	0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu,
	0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
	0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u,
	0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
	0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u, 0x96bf4dccu,
	0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
	0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u,
	0x0f36e6f7u, 0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
	0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
	0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u,
	0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu, 0x90a324fau,
	0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
	0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu,
	0xceb018deu, 0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu,
	0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u, 0xb7072f64u, 0xa457dc90u,
	0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
	0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u,
	0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
	0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu,
	0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
	0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u,
	0x97baa1bau, 0x84ea524eu, 0x7681d14du, 0x2892ed69u, 0xdaf96e6au,
	0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
	0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
	0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u,
	0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au,
	0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u,
	0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
	0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu, 0x8ecee914u,
	0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
	0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u,
	0x07198540u, 0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
	0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au,
	0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u,
	0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u,
	0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
	0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
	0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u,
	0x988c474du, 0x6ae7c44eu, 0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u,
	0xad7d5351u,
};

#if defined(__x86_64__) && defined(__GNUC__)
#define SPOOL_CRC_HW 1
/* SSE4.2's crc32 instruction computes exactly CRC-32C: ~10x the table
 * loop, which matters for the spool throughput (every byte appended and
 * replayed is checksummed). */
__attribute__((target("sse4.2"))) static uint32_t
spool_crc_hw(uint32_t crc, const unsigned char *b, size_t n)
{
	uint64_t c = crc;

	for (; n >= 8; n -= 8, b += 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	crc = (uint32_t)c;
	while (n--)
		crc = __builtin_ia32_crc32qi(crc, *b++);
	return crc;
}
#endif

uint32_t imp_crc32c(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;

	crc = ~crc;
#ifdef SPOOL_CRC_HW
	if (__builtin_cpu_supports("sse4.2"))
		return ~spool_crc_hw(crc, b, n);
#endif
	while (n--)
		crc = spool_crc_table[(crc ^ *b++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* ---- the spool object ---------------------------------------------------- */

typedef struct spool_seg_s {
	uint64_t first_seq; /* from the name */
	uint64_t size;      /* bytes of valid frames */
	uint64_t id;        /* unique in this spool: keys the read cache */
	char *path;
	/* Read-only, open while the segment is in the spool: replay reads
	 * through it, and if the file is removed under us (someone deletes
	 * the spool directory) its records are still here to restore.  -1
	 * past SPOOL_MAX_KEEP held segments (or when open failed): such a
	 * segment is read by path and cannot be restored. */
	int keep;
} spool_seg_t;

/* Descriptors held on segments at most: 16 GiB of spool at the default
 * segment size, well inside a process's usual 1024-descriptor limit. */
#define SPOOL_MAX_KEEP 256

typedef struct spool_pos_s {
	size_t seg;
	uint64_t off;
} spool_pos_t;

struct imp_spool_s {
	const imp_ctx_t *ctx;
	char *dir, *node;
	int dirfd, headfd;
	spool_seg_t *segs;
	size_t nseg, capseg;
	size_t seg_max;
	int wfd; /* segs[nseg - 1] open for appends (and reads: it can
		    restore the last segment), or -1 */
	uint64_t synced_size;  /* durable prefix of the last segment */
	uint64_t unsynced;     /* records beyond synced_size */
	bool sync_failed;      /* an internal sync lost records */
	bool dir_dirty;        /* a segment was created */
	uint64_t pending;      /* records not consumed */
	imp_spool_head_t last; /* newest appended record */
	imp_spool_head_t last_synced;
	uint64_t head_gen; /* generation of the newest head slot */
	spool_pos_t rd;    /* replay cursor */
	size_t n_keep;     /* segments with keep >= 0 */
	int rfd;           /* by-path read fd of segs[rfd_seg] (no keep) */
	size_t rfd_seg;
	spool_pos_t *peek_pos; /* cursor after each peeked record */
	size_t peek_n, peek_cap;
	imp_buf_t ser;       /* frame scratch */
	unsigned char *rbuf; /* the read cache (spool_fill) */
	size_t rcap;
	uint64_t cb_id, cb_off, cb_len;
	uint64_t next_id; /* segment ids, from 1 */
};

static void spool_put32(unsigned char *d, uint32_t v)
{
	d[0] = (unsigned char)v;
	d[1] = (unsigned char)(v >> 8);
	d[2] = (unsigned char)(v >> 16);
	d[3] = (unsigned char)(v >> 24);
}

static uint32_t spool_get32(const unsigned char *d)
{
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
	       (uint32_t)d[3] << 24;
}

static void spool_put64(unsigned char *d, uint64_t v)
{
	spool_put32(d, (uint32_t)v);
	spool_put32(d + 4, (uint32_t)(v >> 32));
}

static uint64_t spool_get64(const unsigned char *d)
{
	return spool_get32(d) | (uint64_t)spool_get32(d + 4) << 32;
}

static bool spool_reserve(imp_spool_t *sp, size_t n)
{
	unsigned char *p;

	if (n <= sp->rcap)
		return true;
	p = imp_realloc(sp->ctx, sp->rbuf, n);
	if (!p)
		return false;
	sp->rbuf = p;
	sp->rcap = n;
	return true;
}

/* Full pread; false with errno set on error, errno = 0 on a short file. */
static bool spool_pread(int fd, void *buf, size_t n, uint64_t off)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (k == 0) {
			errno = 0;
			return false;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return true;
}

static bool spool_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const unsigned char *p = buf;

	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (k == 0) {
			errno = EIO;
			return false;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return true;
}

static char *spool_seg_path(imp_spool_t *sp, uint64_t seq)
{
	size_t n = strlen(sp->dir) + strlen(sp->node) + 40;
	char *p = imp_malloc(sp->ctx, n);

	if (p)
		snprintf(p, n, "%s/%s.%016llx%s", sp->dir, sp->node,
			 (unsigned long long)seq, SPOOL_SUFFIX);
	return p;
}

/* The read cache: one window [cb_off, cb_off + cb_len) of the segment
 * with id cb_id (0: empty).  Replay and recovery read frame after frame,
 * and one pread per 256 KiB instead of two per frame is what keeps replay
 * fast on machines where a system call is expensive (virtual machines).
 * The window never covers bytes that may still change: peek fills only up
 * to the synced size, and the window is dropped after recovery and
 * whenever a segment is truncated or removed. */
static int spool_fill(imp_spool_t *sp, int fd, uint64_t id, uint64_t off,
		      uint64_t want)
{
	sp->cb_id = 0;
	if (want > SIZE_MAX || !spool_reserve(sp, want ? (size_t)want : 1))
		return IMP_ERR_NOMEM;
	if (!spool_pread(fd, sp->rbuf, (size_t)want, off))
		return errno ? IMP_ERR_IO : IMP_ERR_PARSE;
	sp->cb_id = id;
	sp->cb_off = off;
	sp->cb_len = want;
	return IMP_OK;
}

static bool spool_cached(const imp_spool_t *sp, uint64_t id, uint64_t off,
			 uint64_t n)
{
	return sp->cb_id == id && id != 0 && off >= sp->cb_off &&
	       off - sp->cb_off <= sp->cb_len &&
	       n <= sp->cb_len - (off - sp->cb_off);
}

/* Makes [off, off + n) of the file available in the cache, reading ahead
 * up to limit. */
static int spool_need(imp_spool_t *sp, int fd, uint64_t id, uint64_t off,
		      uint64_t n, uint64_t limit)
{
	uint64_t want = limit - off < SPOOL_CHUNK ? limit - off : SPOOL_CHUNK;

	if (spool_cached(sp, id, off, n))
		return IMP_OK;
	return spool_fill(sp, fd, id, off, want > n ? want : n);
}

/* Reads and checks the frame at off of fd (segment id, readable up to
 * limit): on success *payload points at it in the cache (valid until the
 * next read) and *len holds its length.  Returns IMP_OK, IMP_ERR_PARSE
 * (bad or torn frame), IMP_ERR_IO or IMP_ERR_NOMEM. */
static int spool_read_frame(imp_spool_t *sp, int fd, uint64_t id, uint64_t off,
			    uint64_t limit, const unsigned char **payload,
			    uint32_t *len)
{
	const unsigned char *hdr;
	uint32_t n;
	int rc;

	if (limit < off || limit - off < SPOOL_FRAME_HDR)
		return IMP_ERR_PARSE;
	rc = spool_need(sp, fd, id, off, SPOOL_FRAME_HDR, limit);
	if (rc != IMP_OK)
		return rc;
	hdr = sp->rbuf + (off - sp->cb_off);
	if (memcmp(hdr, SPOOL_MAGIC, 4) != 0)
		return IMP_ERR_PARSE;
	n = spool_get32(hdr + 4);
	if (n > limit - off - SPOOL_FRAME_HDR)
		return IMP_ERR_PARSE;
	rc = spool_need(sp, fd, id, off, SPOOL_FRAME_HDR + (uint64_t)n, limit);
	if (rc != IMP_OK)
		return rc;
	hdr = sp->rbuf + (off - sp->cb_off);
	if (imp_crc32c(0, hdr + SPOOL_FRAME_HDR, n) != spool_get32(hdr + 8))
		return IMP_ERR_PARSE;
	*payload = hdr + SPOOL_FRAME_HDR;
	*len = n;
	return IMP_OK;
}

static void spool_head_take(imp_spool_head_t *h, const imp_record_t *r)
{
	h->seq = r->seq;
	h->ts_us = r->ts_us;
	memcpy(h->hash, r->rec_hash, IMP_HASH_LEN);
}

/* ---- recovery ------------------------------------------------------------ */

/* After a bad frame at bad_off: are there valid frames later in the file?
 * Each one found also advances *maxh (its seq must never be reused). */
static int spool_valid_after(imp_spool_t *sp, int fd, uint64_t id,
			     uint64_t bad_off, uint64_t size,
			     imp_spool_head_t *maxh, bool *found)
{
	*found = false;
	for (uint64_t off = bad_off + 1; off + SPOOL_FRAME_HDR <= size;) {
		const unsigned char *pl;
		uint32_t len;
		imp_record_t *r = NULL;
		int rc = spool_need(sp, fd, id, off, 4, size);
		if (rc != IMP_OK)
			return rc == IMP_ERR_PARSE ? IMP_OK : rc;
		if (memcmp(sp->rbuf + (off - sp->cb_off), SPOOL_MAGIC, 4) !=
		    0) {
			off++;
			continue;
		}
		rc = spool_read_frame(sp, fd, id, off, size, &pl, &len);
		if (rc == IMP_ERR_IO || rc == IMP_ERR_NOMEM)
			return rc;
		if (rc == IMP_OK &&
		    imp_record_deserialize(sp->ctx, pl, len, &r) == IMP_OK) {
			*found = true;
			if (r->seq > maxh->seq)
				spool_head_take(maxh, r);
			imp_record_free(sp->ctx, r);
			off += SPOOL_FRAME_HDR + len;
			continue;
		}
		off++;
	}
	return IMP_OK;
}

/* Scans segs[i]: counts its records into sp->pending, advances *prev
 * (the newest record so far, across segments).  *corrupt is set when the
 * segment must be set aside.  Truncates a torn tail of the last segment. */
static int spool_scan(imp_spool_t *sp, size_t i, imp_spool_head_t *prev,
		      bool *corrupt)
{
	spool_seg_t *sg = &sp->segs[i];
	bool last = i + 1 == sp->nseg;
	struct stat st;
	uint64_t off = 0, size, records = 0;
	int fd, rc = IMP_OK;

	*corrupt = false;
	fd = open(sg->path, last ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: %s: %s", sg->path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return IMP_ERR_IO;
	}
	size = (uint64_t)st.st_size;
	while (off < size) {
		const unsigned char *pl;
		uint32_t len;
		imp_record_t *r = NULL;
		rc = spool_read_frame(sp, fd, sg->id, off, size, &pl, &len);
		if (rc == IMP_OK &&
		    imp_record_deserialize(sp->ctx, pl, len, &r) != IMP_OK)
			rc = IMP_ERR_PARSE;
		if (rc == IMP_OK && r->seq <= prev->seq) {
			rc = IMP_ERR_PARSE; /* out of order: not ours */
			imp_record_free(sp->ctx, r);
		}
		if (rc != IMP_OK)
			break;
		spool_head_take(prev, r);
		imp_record_free(sp->ctx, r);
		records++;
		off += SPOOL_FRAME_HDR + len;
	}
	if (rc == IMP_ERR_PARSE) {
		bool later = false;
		imp_spool_head_t maxh = *prev;
		rc = spool_valid_after(sp, fd, sg->id, off, size, &maxh,
				       &later);
		if (rc == IMP_OK && last && !later) {
			/* A crash mid-append: cut the torn frame off. */
			imp_log(sp->ctx, IMP_LOG_WARN,
				"spool: %s: torn tail of %llu bytes at offset "
				"%llu truncated (crash during an append)",
				sg->path, (unsigned long long)(size - off),
				(unsigned long long)off);
			if (ftruncate(fd, (off_t)off) != 0 ||
			    fdatasync(fd) != 0) {
				imp_log(sp->ctx, IMP_LOG_ERROR,
					"spool: %s: truncate: %s", sg->path,
					strerror(errno));
				rc = IMP_ERR_IO;
			}
			size = off;
		} else if (rc == IMP_OK) {
			imp_log(sp->ctx, IMP_LOG_ERROR,
				"spool: %s: corrupt frame at offset %llu "
				"(%llu good records before it); segment set "
				"aside as .corrupt for the operator",
				sg->path, (unsigned long long)off,
				(unsigned long long)records);
			*prev = maxh;
			*corrupt = true;
		}
	}
	close(fd);
	if (rc == IMP_OK && !*corrupt) {
		sg->size = size;
		sp->pending += records;
	}
	return rc;
}

static int spool_seg_cmp(const void *a, const void *b)
{
	const spool_seg_t *x = a, *y = b;

	return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

static int spool_push_seg(imp_spool_t *sp, uint64_t seq)
{
	if (sp->nseg == sp->capseg) {
		size_t cap = sp->capseg ? 2 * sp->capseg : 8;
		spool_seg_t *s =
			imp_realloc(sp->ctx, sp->segs, cap * sizeof(*s));
		if (!s)
			return IMP_ERR_NOMEM;
		sp->segs = s;
		sp->capseg = cap;
	}
	spool_seg_t *sg = &sp->segs[sp->nseg];
	sg->first_seq = seq;
	sg->size = 0;
	sg->id = ++sp->next_id;
	sg->keep = -1;
	sg->path = spool_seg_path(sp, seq);
	if (!sg->path)
		return IMP_ERR_NOMEM;
	sp->nseg++;
	return IMP_OK;
}

/* Drops segs[i] from the array (the file is the caller's business). */
static void spool_remove_seg(imp_spool_t *sp, size_t i)
{
	if (sp->cb_id == sp->segs[i].id)
		sp->cb_id = 0;
	if (sp->segs[i].keep >= 0) {
		close(sp->segs[i].keep);
		sp->n_keep--;
	}
	if (sp->rfd >= 0) {
		if (sp->rfd_seg == i) {
			close(sp->rfd);
			sp->rfd = -1;
		} else if (sp->rfd_seg > i) {
			sp->rfd_seg--;
		}
	}
	imp_mfree(sp->ctx, sp->segs[i].path);
	memmove(&sp->segs[i], &sp->segs[i + 1],
		(sp->nseg - i - 1) * sizeof(sp->segs[0]));
	sp->nseg--;
}

/* Holds segs[i] open (see spool_seg_t.keep) while under the bound; not
 * being able to is no error. */
static void spool_keep_open(imp_spool_t *sp, size_t i)
{
	if (sp->segs[i].keep >= 0 || sp->n_keep >= SPOOL_MAX_KEEP)
		return;
	sp->segs[i].keep = open(sp->segs[i].path, O_RDONLY | O_CLOEXEC);
	if (sp->segs[i].keep >= 0)
		sp->n_keep++;
}

/* A descriptor to read segs[seg] through: its keep, or one opened by path
 * (one at a time, cached).  -1 (logged) when neither works. */
static int spool_rfd(imp_spool_t *sp, size_t seg)
{
	if (sp->segs[seg].keep >= 0)
		return sp->segs[seg].keep;
	if (sp->rfd >= 0 && sp->rfd_seg == seg)
		return sp->rfd;
	if (sp->rfd >= 0)
		close(sp->rfd);
	sp->rfd = open(sp->segs[seg].path, O_RDONLY | O_CLOEXEC);
	sp->rfd_seg = seg;
	if (sp->rfd < 0)
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: open %s: %s",
			sp->segs[seg].path, strerror(errno));
	return sp->rfd;
}

static int spool_list(imp_spool_t *sp)
{
	size_t nl = strlen(sp->node);
	DIR *d = opendir(sp->dir);
	struct dirent *e;

	if (!d)
		return IMP_ERR_IO;
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name, *h;
		char *end;
		unsigned long long seq;
		if (strncmp(n, sp->node, nl) != 0 || n[nl] != '.')
			continue;
		h = n + nl + 1;
		if (strlen(h) != 16 + strlen(SPOOL_SUFFIX) ||
		    strcmp(h + 16, SPOOL_SUFFIX) != 0)
			continue;
		bool hex = true;
		for (int k = 0; k < 16; k++)
			if (!((h[k] >= '0' && h[k] <= '9') ||
			      (h[k] >= 'a' && h[k] <= 'f')))
				hex = false;
		if (!hex)
			continue;
		seq = strtoull(h, &end, 16);
		if (spool_push_seg(sp, seq) != IMP_OK) {
			closedir(d);
			return IMP_ERR_NOMEM;
		}
	}
	closedir(d);
	if (sp->nseg > 1)
		qsort(sp->segs, sp->nseg, sizeof(sp->segs[0]), spool_seg_cmp);
	return IMP_OK;
}

/* ---- the head file ------------------------------------------------------- */

/* Slot: "IMPH" | u32 version | u64 generation | u64 seq | i64 ts |
 * 32-byte hash | u32 CRC-32C of the 64 bytes before it | zero padding. */
#define SPOOL_HEAD_DATA 64
#define SPOOL_HEAD_SLOT_BYTES 80

static bool spool_head_decode(const unsigned char *s, uint64_t *gen,
			      imp_spool_head_t *h)
{
	if (memcmp(s, SPOOL_HEAD_MAGIC, 4) != 0 ||
	    spool_get32(s + 4) != SPOOL_HEAD_VERSION ||
	    imp_crc32c(0, s, SPOOL_HEAD_DATA) != spool_get32(s + 64))
		return false;
	*gen = spool_get64(s + 8);
	h->seq = spool_get64(s + 16);
	h->ts_us = (int64_t)spool_get64(s + 24);
	memcpy(h->hash, s + 32, IMP_HASH_LEN);
	return true;
}

static int spool_head_read(imp_spool_t *sp, imp_spool_head_t *h)
{
	unsigned char buf[2 * SPOOL_HEAD_SLOT_BYTES];
	ssize_t n;
	bool any = false;

	memset(h, 0, sizeof(*h));
	memset(buf, 0, sizeof(buf));
	n = pread(sp->headfd, buf, sizeof(buf), 0);
	if (n < 0)
		return IMP_ERR_IO;
	for (int i = 0; i < 2; i++) {
		uint64_t gen;
		imp_spool_head_t t;
		if ((size_t)n < (size_t)(i + 1) * SPOOL_HEAD_SLOT_BYTES)
			break;
		if (!spool_head_decode(buf + i * SPOOL_HEAD_SLOT_BYTES, &gen,
				       &t))
			continue;
		if (!any || gen > sp->head_gen) {
			sp->head_gen = gen;
			*h = t;
			any = true;
		}
	}
	return IMP_OK;
}

int imp_spool_set_head(imp_spool_t *sp, const imp_spool_head_t *head)
{
	unsigned char s[SPOOL_HEAD_SLOT_BYTES];
	uint64_t gen = sp->head_gen + 1;

	memset(s, 0, sizeof(s));
	memcpy(s, SPOOL_HEAD_MAGIC, 4);
	spool_put32(s + 4, SPOOL_HEAD_VERSION);
	spool_put64(s + 8, gen);
	spool_put64(s + 16, head->seq);
	spool_put64(s + 24, (uint64_t)head->ts_us);
	memcpy(s + 32, head->hash, IMP_HASH_LEN);
	spool_put32(s + 64, imp_crc32c(0, s, SPOOL_HEAD_DATA));
	/* The slot not holding the newest head: a torn write here leaves
	 * the other slot intact. */
	if (!spool_pwrite(sp->headfd, s, sizeof(s),
			  (gen & 1) * SPOOL_HEAD_SLOT_BYTES) ||
	    fdatasync(sp->headfd) != 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: %s/%s.head: %s",
			sp->dir, sp->node, strerror(errno));
		return IMP_ERR_IO;
	}
	sp->head_gen = gen;
	return IMP_OK;
}

/* ---- open / close -------------------------------------------------------- */

static bool spool_node_ok(const char *node)
{
	size_t n = node ? strlen(node) : 0;

	if (n == 0 || n > 200 || node[0] == '.')
		return false;
	return strchr(node, '/') == NULL;
}

static int spool_fail(imp_spool_t *sp, char *err, size_t errlen,
		      const char *what, const char *path)
{
	int e = errno;

	if (err && errlen)
		snprintf(err, errlen, "spool: %s %s: %s", what, path,
			 e ? strerror(e) : "failed");
	imp_log(sp->ctx, IMP_LOG_ERROR, "spool: %s %s: %s", what, path,
		e ? strerror(e) : "failed");
	return IMP_ERR_IO;
}

int imp_spool_open(const imp_ctx_t *ctx, const char *dir, const char *node,
		   imp_spool_t **out, imp_spool_head_t *head, char *err,
		   size_t errlen)
{
	imp_spool_t *sp;
	imp_spool_head_t hf, last;
	char *hp = NULL;
	size_t i;
	int rc = IMP_ERR_IO;

	*out = NULL;
	memset(head, 0, sizeof(*head));
	if (err && errlen)
		err[0] = '\0';
	if (!dir || !*dir || !spool_node_ok(node)) {
		if (err && errlen)
			snprintf(err, errlen,
				 "spool: invalid directory or "
				 "node name");
		return IMP_ERR_IO;
	}
	sp = imp_calloc(ctx, 1, sizeof(*sp));
	if (!sp)
		return IMP_ERR_NOMEM;
	sp->ctx = ctx;
	sp->dirfd = sp->headfd = sp->wfd = sp->rfd = -1;
	sp->seg_max = IMP_SPOOL_SEGMENT_BYTES;
	imp_buf_init(&sp->ser, ctx, NULL);
	sp->dir = imp_strdup(ctx, dir);
	sp->node = imp_strdup(ctx, node);
	if (!sp->dir || !sp->node) {
		rc = IMP_ERR_NOMEM;
		goto fail;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = spool_fail(sp, err, errlen, "mkdir", dir);
		goto fail;
	}
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		rc = spool_fail(sp, err, errlen, "open", dir);
		goto fail;
	}
	{
		size_t n = strlen(dir) + strlen(node) + 8;
		hp = imp_malloc(ctx, n);
		if (!hp) {
			rc = IMP_ERR_NOMEM;
			goto fail;
		}
		snprintf(hp, n, "%s/%s.head", dir, node);
	}
	sp->headfd = open(hp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->headfd < 0 || spool_head_read(sp, &hf) != IMP_OK) {
		rc = spool_fail(sp, err, errlen, "open", hp);
		goto fail;
	}
	rc = spool_list(sp);
	if (rc != IMP_OK) {
		if (rc == IMP_ERR_IO)
			spool_fail(sp, err, errlen, "list", dir);
		goto fail;
	}

	/* Scan oldest first; set corrupt segments aside, drop empty ones. */
	memset(&last, 0, sizeof(last));
	for (i = 0; i < sp->nseg;) {
		bool corrupt;
		rc = spool_scan(sp, i, &last, &corrupt);
		if (rc != IMP_OK) {
			errno = rc == IMP_ERR_NOMEM ? ENOMEM : EIO;
			spool_fail(sp, err, errlen, "recover",
				   sp->segs[i].path);
			goto fail;
		}
		if (corrupt) {
			size_t n = strlen(sp->segs[i].path) + 16;
			char *to = imp_malloc(ctx, n);
			if (!to) {
				rc = IMP_ERR_NOMEM;
				goto fail;
			}
			snprintf(to, n, "%s.corrupt", sp->segs[i].path);
			if (rename(sp->segs[i].path, to) != 0) {
				rc = spool_fail(sp, err, errlen, "rename",
						sp->segs[i].path);
				imp_mfree(ctx, to);
				goto fail;
			}
			imp_mfree(ctx, to);
			spool_remove_seg(sp, i);
			sp->dir_dirty = true;
		} else if (sp->segs[i].size == 0) {
			unlink(sp->segs[i].path);
			spool_remove_seg(sp, i);
			sp->dir_dirty = true;
		} else {
			i++;
		}
	}
	for (i = 0; i < sp->nseg; i++)
		spool_keep_open(sp, i);
	if (sp->nseg) {
		spool_seg_t *sg = &sp->segs[sp->nseg - 1];
		sp->wfd = open(sg->path, O_RDWR | O_CLOEXEC);
		/* What a crashed process left may sit in the page cache
		 * only: make it durable before calling it synced. */
		if (sp->wfd < 0 || fdatasync(sp->wfd) != 0) {
			rc = spool_fail(sp, err, errlen, "open", sg->path);
			goto fail;
		}
		sp->synced_size = sg->size;
	}
	if (sp->dir_dirty && fsync(sp->dirfd) != 0) {
		rc = spool_fail(sp, err, errlen, "fsync", dir);
		goto fail;
	}
	sp->cb_id = 0; /* may hold a cut-off tail */
	sp->dir_dirty = false;
	sp->last = sp->last_synced = last;
	*head = hf.seq >= last.seq ? hf : last;
	imp_mfree(ctx, hp);
	*out = sp;
	return IMP_OK;
fail:
	imp_mfree(ctx, hp);
	imp_spool_close(sp);
	return rc;
}

void imp_spool_close(imp_spool_t *sp)
{
	if (!sp)
		return;
	if (sp->wfd >= 0)
		close(sp->wfd);
	if (sp->rfd >= 0)
		close(sp->rfd);
	for (size_t i = 0; i < sp->nseg; i++)
		if (sp->segs[i].keep >= 0)
			close(sp->segs[i].keep);
	if (sp->headfd >= 0)
		close(sp->headfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	for (size_t i = 0; i < sp->nseg; i++)
		imp_mfree(sp->ctx, sp->segs[i].path);
	imp_mfree(sp->ctx, sp->segs);
	imp_mfree(sp->ctx, sp->peek_pos);
	imp_mfree(sp->ctx, sp->rbuf);
	imp_buf_free(&sp->ser);
	imp_mfree(sp->ctx, sp->dir);
	imp_mfree(sp->ctx, sp->node);
	imp_mfree(sp->ctx, sp);
}

void imp_spool_set_segment_bytes(imp_spool_t *sp, size_t bytes)
{
	sp->seg_max = bytes ? bytes : IMP_SPOOL_SEGMENT_BYTES;
}

/* ---- append / sync ------------------------------------------------------- */

/* Cuts the last segment back to its durable prefix after a failed
 * fdatasync (see the invariants). */
static void spool_drop_unsynced(imp_spool_t *sp)
{
	spool_seg_t *sg = &sp->segs[sp->nseg - 1];

	imp_log(sp->ctx, IMP_LOG_ERROR,
		"spool: %s: fdatasync failed (%s); %llu unsynced records "
		"dropped from the spool",
		sg->path, strerror(errno), (unsigned long long)sp->unsynced);
	if (ftruncate(sp->wfd, (off_t)sp->synced_size) != 0)
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: %s: truncate: %s",
			sg->path, strerror(errno));
	sp->cb_id = 0;
	sg->size = sp->synced_size;
	sp->pending -= sp->unsynced;
	sp->unsynced = 0;
	sp->last = sp->last_synced;
	sp->peek_n = 0;
	if (sg->size == 0) {
		close(sp->wfd);
		sp->wfd = -1;
		unlink(sg->path);
		spool_remove_seg(sp, sp->nseg - 1);
		sp->dir_dirty = true;
	}
}

/* ---- files removed under us ---------------------------------------------- */

/* Whether the directory or a file of the spool was removed (unlinked)
 * while we hold it open. */
static bool spool_removed(const imp_spool_t *sp)
{
	struct stat st;

	if (fstat(sp->dirfd, &st) != 0 || st.st_nlink == 0 ||
	    fstat(sp->headfd, &st) != 0 || st.st_nlink == 0)
		return true;
	if (sp->wfd >= 0 && (fstat(sp->wfd, &st) != 0 || st.st_nlink == 0))
		return true;
	for (size_t i = 0; i < sp->nseg; i++)
		if (sp->segs[i].keep >= 0 &&
		    (fstat(sp->segs[i].keep, &st) != 0 || st.st_nlink == 0))
			return true;
	return false;
}

/* Writes the first n bytes of the open file `from` to path (through a
 * temporary name, made durable) and returns path opened with flags, or
 * -1 (logged). */
static int spool_copy_out(imp_spool_t *sp, int from, uint64_t n,
			  const char *path, int flags)
{
	size_t tl = strlen(path) + 10;
	char *tmp = imp_malloc(sp->ctx, tl);
	unsigned char buf[16384];
	int fd = -1, out = -1;

	if (!tmp)
		return -1;
	snprintf(tmp, tl, "%s.restore", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	for (uint64_t off = 0; fd >= 0 && off < n;) {
		size_t k =
			n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
		if (!spool_pread(from, buf, k, off) ||
		    !spool_pwrite(fd, buf, k, off)) {
			close(fd);
			fd = -1;
			break;
		}
		off += k;
	}
	if (fd >= 0 && fdatasync(fd) == 0 && close(fd) == 0 &&
	    rename(tmp, path) == 0)
		out = open(path, flags | O_CLOEXEC);
	else if (fd >= 0)
		close(fd);
	if (out < 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: restore %s: %s", path,
			strerror(errno));
		unlink(tmp);
	}
	imp_mfree(sp->ctx, tmp);
	return out;
}

/* Someone removed the spool directory or files of it while records were
 * pending (an operator "cleaning up", a tmp reaper).  Their data is still
 * reachable through the descriptors we hold: write every removed file
 * back under its name, switch to the copies, and say so loudly.  IMP_OK
 * or IMP_ERR_IO. */
static int spool_restore(imp_spool_t *sp)
{
	struct stat st;
	size_t files = 0;

	if (fstat(sp->dirfd, &st) != 0 || st.st_nlink == 0) {
		int d;
		if (mkdir(sp->dir, 0700) != 0 && errno != EEXIST) {
			imp_log(sp->ctx, IMP_LOG_ERROR, "spool: mkdir %s: %s",
				sp->dir, strerror(errno));
			return IMP_ERR_IO;
		}
		d = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d < 0) {
			imp_log(sp->ctx, IMP_LOG_ERROR, "spool: open %s: %s",
				sp->dir, strerror(errno));
			return IMP_ERR_IO;
		}
		close(sp->dirfd);
		sp->dirfd = d;
	}
	if (fstat(sp->headfd, &st) == 0 && st.st_nlink == 0) {
		size_t n = strlen(sp->dir) + strlen(sp->node) + 8;
		char *hp = imp_malloc(sp->ctx, n);
		int fd = -1;
		if (hp) {
			snprintf(hp, n, "%s/%s.head", sp->dir, sp->node);
			fd = spool_copy_out(sp, sp->headfd,
					    (uint64_t)st.st_size, hp, O_RDWR);
			imp_mfree(sp->ctx, hp);
		}
		if (fd < 0)
			return IMP_ERR_IO;
		close(sp->headfd);
		sp->headfd = fd;
		files++;
	}
	size_t lost = 0;
	for (size_t i = 0; i < sp->nseg; i++) {
		spool_seg_t *sg = &sp->segs[i];
		bool last = i + 1 == sp->nseg && sp->wfd >= 0;
		/* the last segment can always be read through wfd */
		int src = sg->keep >= 0 ? sg->keep : last ? sp->wfd : -1;
		if (src < 0) {
			/* not held: it is gone if the directory went */
			if (access(sg->path, F_OK) != 0)
				lost++;
			continue;
		}
		if (fstat(src, &st) != 0 || st.st_nlink > 0)
			continue;
		int fd = spool_copy_out(sp, src, sg->size, sg->path, O_RDONLY);
		if (fd < 0)
			return IMP_ERR_IO;
		if (sg->keep >= 0)
			close(sg->keep);
		else
			sp->n_keep++;
		sg->keep = fd;
		if (last) {
			int w = open(sg->path, O_RDWR | O_CLOEXEC);
			if (w < 0) {
				imp_log(sp->ctx, IMP_LOG_ERROR,
					"spool: open %s: %s", sg->path,
					strerror(errno));
				return IMP_ERR_IO;
			}
			close(sp->wfd);
			sp->wfd = w;
		}
		files++;
	}
	if (fsync(sp->dirfd) != 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: fsync %s: %s", sp->dir,
			strerror(errno));
		return IMP_ERR_IO;
	}
	imp_log(sp->ctx, IMP_LOG_ERROR,
		"spool: %s: %zu file(s) of node %s were removed while %llu "
		"record(s) were pending; restored them from the open files",
		sp->dir, files, sp->node, (unsigned long long)sp->pending);
	if (lost) {
		/* beyond SPOOL_MAX_KEEP segments: replay will fail on these
		 * and say so; nothing pretends they are there */
		imp_log(sp->ctx, IMP_LOG_ERROR,
			"spool: %s: %zu segment(s) were not held open and are "
			"lost with the directory",
			sp->dir, lost);
		return IMP_ERR_IO;
	}
	return IMP_OK;
}

/* fdatasync of the last segment; on failure drops what it held. */
static int spool_sync_last(imp_spool_t *sp)
{
	if (sp->wfd < 0 || sp->segs[sp->nseg - 1].size == sp->synced_size)
		return IMP_OK;
	if (fdatasync(sp->wfd) != 0) {
		spool_drop_unsynced(sp);
		return IMP_ERR_IO;
	}
	sp->synced_size = sp->segs[sp->nseg - 1].size;
	sp->unsynced = 0;
	sp->last_synced = sp->last;
	return IMP_OK;
}

/* Starts a new segment named after seq (the last one is synced first, so
 * that only the newest segment ever holds unsynced frames). */
static int spool_roll(imp_spool_t *sp, uint64_t seq)
{
	spool_seg_t *sg;
	int rc;

	/* the new segment goes into the directory: it must be there */
	if (spool_removed(sp) && spool_restore(sp) != IMP_OK)
		return IMP_ERR_IO;
	if (sp->wfd >= 0) {
		if (spool_sync_last(sp) != IMP_OK) {
			sp->sync_failed = true;
			return IMP_ERR_IO;
		}
		close(sp->wfd);
		sp->wfd = -1;
	}
	rc = spool_push_seg(sp, seq);
	if (rc != IMP_OK)
		return rc;
	sg = &sp->segs[sp->nseg - 1];
	sp->wfd = open(sg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sp->wfd < 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: create %s: %s",
			sg->path, strerror(errno));
		spool_remove_seg(sp, sp->nseg - 1);
		return IMP_ERR_IO;
	}
	spool_keep_open(sp, sp->nseg - 1);
	sp->synced_size = 0;
	sp->unsynced = 0;
	sp->dir_dirty = true;
	return IMP_OK;
}

int imp_spool_append(imp_spool_t *sp, const imp_record_t *r)
{
	unsigned char *f;
	size_t n;
	spool_seg_t *sg;
	bool rolled = false;
	int rc;

	imp_buf_reset(&sp->ser);
	imp_buf_append(&sp->ser, "\0\0\0\0\0\0\0\0\0\0\0\0", SPOOL_FRAME_HDR);
	imp_record_serialize(r, &sp->ser);
	if (sp->ser.oom)
		return IMP_ERR_NOMEM;
	n = sp->ser.len - SPOOL_FRAME_HDR;
	if (n > UINT32_MAX)
		return IMP_ERR_IO;
	f = (unsigned char *)sp->ser.data;
	memcpy(f, SPOOL_MAGIC, 4);
	spool_put32(f + 4, (uint32_t)n);
	spool_put32(f + 8, imp_crc32c(0, f + SPOOL_FRAME_HDR, n));

	if (sp->wfd < 0 ||
	    (sp->segs[sp->nseg - 1].size > 0 &&
	     sp->segs[sp->nseg - 1].size + sp->ser.len > sp->seg_max)) {
		rc = spool_roll(sp, r->seq);
		if (rc != IMP_OK)
			return rc;
		rolled = true;
	}
	sg = &sp->segs[sp->nseg - 1];
	if (!spool_pwrite(sp->wfd, f, sp->ser.len, sg->size)) {
		int e = errno;
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: append to %s: %s",
			sg->path, strerror(e));
		/* Leave the files as they were: no partial frame, no empty
		 * segment named after a seq that was never spooled. */
		if (ftruncate(sp->wfd, (off_t)sg->size) != 0)
			imp_log(sp->ctx, IMP_LOG_ERROR,
				"spool: %s: truncate: %s", sg->path,
				strerror(errno));
		if (rolled && sg->size == 0) {
			close(sp->wfd);
			sp->wfd = -1;
			unlink(sg->path);
			spool_remove_seg(sp, sp->nseg - 1);
		}
		errno = e;
		return IMP_ERR_IO;
	}
	sg->size += sp->ser.len;
	sp->pending++;
	sp->unsynced++;
	spool_head_take(&sp->last, r);
	return IMP_OK;
}

int imp_spool_sync(imp_spool_t *sp)
{
	if (spool_removed(sp) && spool_restore(sp) != IMP_OK)
		return IMP_ERR_IO;
	if (sp->sync_failed) {
		sp->sync_failed = false;
		return IMP_ERR_IO;
	}
	if (spool_sync_last(sp) != IMP_OK)
		return IMP_ERR_IO;
	if (sp->dir_dirty) {
		if (fsync(sp->dirfd) != 0) {
			imp_log(sp->ctx, IMP_LOG_ERROR, "spool: fsync %s: %s",
				sp->dir, strerror(errno));
			return IMP_ERR_IO;
		}
		sp->dir_dirty = false;
	}
	return IMP_OK;
}

uint64_t imp_spool_pending(const imp_spool_t *sp)
{
	return sp->pending;
}

uint64_t imp_spool_bytes(const imp_spool_t *sp)
{
	uint64_t n = 0;

	for (size_t i = 0; i < sp->nseg; i++)
		n += sp->segs[i].size;
	return n;
}

/* ---- replay cursor ------------------------------------------------------- */

/* Bytes of segs[i] the cursor may read: synced frames only. */
static uint64_t spool_readable(const imp_spool_t *sp, size_t i)
{
	return i + 1 == sp->nseg ? sp->synced_size : sp->segs[i].size;
}

/* Moves pos to the next frame start that can be read; false at the end. */
static bool spool_settle(const imp_spool_t *sp, spool_pos_t *pos)
{
	while (pos->seg < sp->nseg &&
	       pos->off >= spool_readable(sp, pos->seg)) {
		if (pos->seg + 1 == sp->nseg)
			return false;
		pos->seg++;
		pos->off = 0;
	}
	return pos->seg < sp->nseg;
}

int imp_spool_peek(imp_spool_t *sp, size_t max, imp_record_t **recs,
		   size_t *n_out)
{
	spool_pos_t pos = sp->rd;
	size_t n = 0;
	int rc = IMP_OK;

	*n_out = 0;
	sp->peek_n = 0;
	if (max > sp->peek_cap) {
		spool_pos_t *p =
			imp_realloc(sp->ctx, sp->peek_pos, max * sizeof(*p));
		if (!p)
			return IMP_ERR_NOMEM;
		sp->peek_pos = p;
		sp->peek_cap = max;
	}
	while (n < max && spool_settle(sp, &pos)) {
		uint32_t len;
		int fd = spool_rfd(sp, pos.seg);
		if (fd < 0) {
			rc = IMP_ERR_IO;
			break;
		}
		const unsigned char *pl;
		rc = spool_read_frame(sp, fd, sp->segs[pos.seg].id, pos.off,
				      spool_readable(sp, pos.seg), &pl, &len);
		if (rc == IMP_OK)
			rc = imp_record_deserialize(sp->ctx, pl, len, &recs[n]);
		if (rc != IMP_OK) {
			/* Verified at open or written by us: damage since. */
			if (rc != IMP_ERR_NOMEM) {
				imp_log(sp->ctx, IMP_LOG_ERROR,
					"spool: %s: unreadable frame at "
					"offset %llu",
					sp->segs[pos.seg].path,
					(unsigned long long)pos.off);
				rc = IMP_ERR_IO;
			}
			break;
		}
		pos.off += SPOOL_FRAME_HDR + len;
		sp->peek_pos[n++] = pos;
	}
	if (rc != IMP_OK) {
		for (size_t i = 0; i < n; i++)
			imp_record_free(sp->ctx, recs[i]);
		return rc;
	}
	sp->peek_n = n;
	*n_out = n;
	return IMP_OK;
}

int imp_spool_consume(imp_spool_t *sp, size_t n)
{
	spool_pos_t pos;
	size_t gone = 0;

	if (n == 0)
		return IMP_OK;
	if (n <= sp->peek_n) {
		pos = sp->peek_pos[n - 1];
	} else {
		/* Not peeked: walk the frame headers. */
		pos = sp->rd;
		for (size_t i = 0; i < n; i++) {
			unsigned char hdr[SPOOL_FRAME_HDR];
			int fd;
			if (!spool_settle(sp, &pos))
				return IMP_ERR_INVALID;
			fd = spool_rfd(sp, pos.seg);
			if (fd < 0 ||
			    !spool_pread(fd, hdr, sizeof(hdr), pos.off) ||
			    memcmp(hdr, SPOOL_MAGIC, 4) != 0)
				return IMP_ERR_IO;
			pos.off += SPOOL_FRAME_HDR + spool_get32(hdr + 4);
		}
	}
	sp->peek_n = 0;
	sp->pending -= n;
	/* A cursor at the end of an older segment belongs to the next. */
	while (pos.seg + 1 < sp->nseg && pos.off >= sp->segs[pos.seg].size) {
		pos.seg++;
		pos.off = 0;
	}
	/* Whole segments behind the cursor go; so does the last one once
	 * everything in it is consumed and durable (the next append starts
	 * a fresh segment named after its own seq). */
	while (sp->nseg > 0 && pos.seg > 0) {
		unlink(sp->segs[0].path);
		spool_remove_seg(sp, 0);
		pos.seg--;
		gone++;
	}
	if (sp->nseg == 1 && pos.off >= sp->segs[0].size &&
	    sp->synced_size == sp->segs[0].size) {
		if (sp->wfd >= 0)
			close(sp->wfd);
		sp->wfd = -1;
		unlink(sp->segs[0].path);
		spool_remove_seg(sp, 0);
		pos.off = 0;
		gone++;
	}
	sp->rd = pos;
	if (gone && fsync(sp->dirfd) != 0) {
		imp_log(sp->ctx, IMP_LOG_WARN, "spool: fsync %s: %s", sp->dir,
			strerror(errno));
		sp->dir_dirty = true; /* retried by the next sync */
	}
	return IMP_OK;
}

/* ---- quarantine ---------------------------------------------------------- */

/* Records PostgreSQL refused for a data reason leave the replay stream (so
 * that one bad row cannot hold up everything behind it) but are never
 * dropped: each is appended, in the segment frame format, to
 * DIR/NODE.quarantine and made durable before the caller moves on. */
int imp_spool_quarantine(imp_spool_t *sp, const imp_record_t *r)
{
	size_t plen = strlen(sp->dir) + strlen(sp->node) + 16;
	char *path = imp_malloc(sp->ctx, plen);
	unsigned char *f;
	size_t n;
	struct stat sb;
	int fd, rc = IMP_OK;
	bool created;

	if (!path)
		return IMP_ERR_NOMEM;
	snprintf(path, plen, "%s/%s.quarantine", sp->dir, sp->node);
	imp_buf_reset(&sp->ser);
	imp_buf_append(&sp->ser, "\0\0\0\0\0\0\0\0\0\0\0\0", SPOOL_FRAME_HDR);
	imp_record_serialize(r, &sp->ser);
	if (sp->ser.oom) {
		imp_mfree(sp->ctx, path);
		return IMP_ERR_NOMEM;
	}
	n = sp->ser.len - SPOOL_FRAME_HDR;
	if (n > UINT32_MAX) {
		imp_mfree(sp->ctx, path);
		return IMP_ERR_IO;
	}
	f = (unsigned char *)sp->ser.data;
	memcpy(f, SPOOL_MAGIC, 4);
	spool_put32(f + 4, (uint32_t)n);
	spool_put32(f + 8, imp_crc32c(0, f + SPOOL_FRAME_HDR, n));

	fd = open(path, O_WRONLY | O_CLOEXEC);
	created = fd < 0;
	if (fd < 0)
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: quarantine %s: %s",
			path, strerror(errno));
		rc = IMP_ERR_IO;
		goto out;
	}
	/* Written at the current end, never past a torn frame we would not
	 * be able to read back: a failed write is truncated away. */
	if (!spool_pwrite(fd, f, sp->ser.len, (uint64_t)sb.st_size) ||
	    fdatasync(fd) != 0 || (created && fsync(sp->dirfd) != 0)) {
		imp_log(sp->ctx, IMP_LOG_ERROR, "spool: quarantine %s: %s",
			path, strerror(errno));
		if (ftruncate(fd, sb.st_size) != 0)
			imp_log(sp->ctx, IMP_LOG_ERROR,
				"spool: %s: truncate: %s", path,
				strerror(errno));
		rc = IMP_ERR_IO;
	}
out:
	if (fd >= 0)
		close(fd);
	imp_mfree(sp->ctx, path);
	return rc;
}

int imp_spool_quarantine_first(const imp_ctx_t *ctx, const char *path,
			       uint64_t *seq)
{
	unsigned char hdr[SPOOL_FRAME_HDR];
	unsigned char *pl = NULL;
	imp_record_t *r = NULL;
	struct stat sb;
	uint32_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = IMP_ERR_PARSE;

	*seq = 0;
	if (fd < 0)
		return IMP_ERR_IO;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return IMP_ERR_IO;
	}
	if ((uint64_t)sb.st_size < SPOOL_FRAME_HDR ||
	    !spool_pread(fd, hdr, SPOOL_FRAME_HDR, 0) ||
	    memcmp(hdr, SPOOL_MAGIC, 4) != 0)
		goto out;
	n = spool_get32(hdr + 4);
	if (n > (uint64_t)sb.st_size - SPOOL_FRAME_HDR)
		goto out;
	pl = malloc(n ? n : 1);
	if (!pl) {
		rc = IMP_ERR_NOMEM;
		goto out;
	}
	if (!spool_pread(fd, pl, n, SPOOL_FRAME_HDR) ||
	    imp_crc32c(0, pl, n) != spool_get32(hdr + 8))
		goto out;
	rc = imp_record_deserialize(ctx, pl, n, &r);
	if (rc == IMP_OK) {
		*seq = r->seq;
		imp_record_free(ctx, r);
	}
out:
	free(pl);
	close(fd);
	return rc;
}

int imp_spool_quarantine_count(const char *path, uint64_t *records)
{
	unsigned char hdr[SPOOL_FRAME_HDR];
	struct stat sb;
	uint64_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = IMP_OK;

	*records = 0;
	if (fd < 0)
		return errno == ENOENT ? IMP_OK : IMP_ERR_IO;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return IMP_ERR_IO;
	}
	while (off < (uint64_t)sb.st_size) {
		if ((uint64_t)sb.st_size - off < SPOOL_FRAME_HDR ||
		    !spool_pread(fd, hdr, SPOOL_FRAME_HDR, off) ||
		    memcmp(hdr, SPOOL_MAGIC, 4) != 0 ||
		    spool_get32(hdr + 4) >
			    (uint64_t)sb.st_size - off - SPOOL_FRAME_HDR) {
			rc = IMP_ERR_PARSE;
			break;
		}
		off += SPOOL_FRAME_HDR + (uint64_t)spool_get32(hdr + 4);
		(*records)++;
	}
	close(fd);
	return rc;
}
