/*
 * test_spool.c -- the archive spool (spool.h): CRC-32C, append / sync /
 * reopen / peek / consume, segment rolling and deletion, the head file,
 * recovery from a torn tail and from a corrupt segment, and appends that
 * fail for lack of space (RLIMIT_FSIZE with SIGXFSZ ignored -> EFBIG)
 * leaving the spool consistent.
 */
#include "check.h"
#include "impolicy.h"
#include "record.h"
#include "spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static imp_ctx_t *g_ctx;
static void rm_rf(const char *path);
static char g_root[] = "/tmp/test_spool_XXXXXX";
static unsigned g_warnings, g_errors;

static void test_log(void *ud, imp_log_level_t level, const char *msg)
{
	(void)ud;
	(void)msg;
	if (level == IMP_LOG_WARN)
		g_warnings++;
	else if (level == IMP_LOG_ERROR)
		g_errors++;
}

/* A chained record with seq, a body of body_len bytes and a raw stanza. */
static imp_record_t *mk(uint64_t seq, const unsigned char *prev,
			size_t body_len)
{
	static const char *const ids[] = {"r.one"};
	static const char *const secs[] = {""};
	imp_record_flag_t fl = {"r.one", NULL, "medium"};
	imp_record_t t;
	char *body = malloc(body_len + 1);
	char raw[64];

	memset(body, 'a' + (int)(seq % 26), body_len);
	body[body_len] = '\0';
	snprintf(raw, sizeof(raw), "<message id='%llu'/>",
		 (unsigned long long)seq);
	memset(&t, 0, sizeof(t));
	t.node = "n1";
	t.ts_us = 1700000000000000 + (int64_t)seq;
	t.direction = "outbound";
	t.kind = "message";
	t.from_bare = "a@x";
	t.body = body;
	t.raw_xml = (const unsigned char *)raw;
	t.raw_len = strlen(raw);
	t.verdict = "flag";
	t.rule_ids = ids;
	t.sections = secs;
	t.n_rules = 1;
	t.flags = &fl;
	t.n_flags = 1;
	t.retention_class = "3y";
	imp_record_t *r = imp_record_dup(g_ctx, &t);
	free(body);
	if (r)
		imp_record_chain(r, seq, prev, NULL, 0, NULL);
	return r;
}

/* Appends records seq first..last chained from *prev (updated). */
static int append_range(imp_spool_t *sp, uint64_t first, uint64_t last,
			unsigned char prev[IMP_HASH_LEN], size_t body_len)
{
	for (uint64_t s = first; s <= last; s++) {
		imp_record_t *r = mk(s, prev, body_len);
		if (!r)
			return IMP_ERR_NOMEM;
		int rc = imp_spool_append(sp, r);
		if (rc == IMP_OK)
			memcpy(prev, r->rec_hash, IMP_HASH_LEN);
		imp_record_free(g_ctx, r);
		if (rc != IMP_OK)
			return rc;
	}
	return IMP_OK;
}

/* Peeks everything pending; checks seqs first.. in order and that each
 * record's hash still verifies.  Returns the number read. */
static size_t peek_all(imp_spool_t *sp, uint64_t first, bool consume)
{
	imp_record_t *recs[7];
	size_t total = 0, n;
	uint64_t want = first;

	for (;;) {
		CHECK_INT(imp_spool_peek(sp, IMP_ARRAY_LEN(recs), recs, &n),
			  IMP_OK);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			unsigned char h[IMP_HASH_LEN];
			CHECK_MSG(recs[i]->seq == want, "seq %llu want %llu",
				  (unsigned long long)recs[i]->seq,
				  (unsigned long long)want);
			CHECK_INT(imp_record_hash(recs[i], NULL, 0, h), IMP_OK);
			CHECK(memcmp(h, recs[i]->rec_hash, IMP_HASH_LEN) == 0);
			want++;
			imp_record_free(g_ctx, recs[i]);
		}
		total += n;
		if (!consume)
			break;
		CHECK_INT(imp_spool_consume(sp, n), IMP_OK);
	}
	return total;
}

static size_t count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, sl = strlen(suffix);

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Path of the index-th (sorted) segment of dir. */
static bool seg_path(const char *dir, size_t index, char *out, size_t outlen)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	size_t k = 0;
	bool found = false;

	if (n < 0)
		return false;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(list[i]->d_name);
		if (!found && l > 6 &&
		    strcmp(list[i]->d_name + l - 6, ".spool") == 0 &&
		    k++ == index) {
			snprintf(out, outlen, "%s/%s", dir, list[i]->d_name);
			found = true;
		}
		free(list[i]);
	}
	free(list);
	return found;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void mkdir_name(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", g_root, name);
}

/* Opens the spool of node n1 in dir, checking that it opens; NULL if
 * not. */
static imp_spool_t *open_n1(const char *dir, imp_spool_head_t *head)
{
	char err[256];
	imp_spool_t *sp = NULL;

	CHECK_INT(imp_spool_open(g_ctx, dir, "n1", &sp, head, err, sizeof(err)),
		  IMP_OK);
	return sp;
}

/* ---- tests --------------------------------------------------------------- */

static void test_crc(void)
{
	static const struct {
		const char *in;
		uint32_t crc;
	} cases[] = {
		{"", 0x00000000u},
		{"a", 0xc1d04330u},
		{"123456789", 0xe3069283u}, /* the CRC-32C check value */
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
		CHECK_INT(imp_crc32c(0, cases[i].in, strlen(cases[i].in)),
			  cases[i].crc);
	/* against a bitwise reference, every length and alignment (the
	 * implementation may use hardware or tables) */
	unsigned char buf[80];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n + off <= sizeof(buf); n += 3) {
			uint32_t c = 0xFFFFFFFFu;
			for (size_t k = 0; k < n; k++) {
				c ^= buf[off + k];
				for (int bit = 0; bit < 8; bit++)
					c = c & 1 ? (c >> 1) ^ 0x82F63B78u
						  : c >> 1;
			}
			CHECK_INT(imp_crc32c(0, buf + off, n), ~c);
		}
	/* incremental equals one shot */
	CHECK_INT(imp_crc32c(imp_crc32c(0, "1234", 4), "56789", 5),
		  0xe3069283u);
}

static void test_basic(void)
{
	char dir[256], err[256];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0};

	mkdir_name(dir, sizeof(dir), "basic");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(head.seq, 0);
	CHECK_INT(imp_spool_pending(sp), 0);
	CHECK_INT(append_range(sp, 1, 10, prev, 100), IMP_OK);
	CHECK_INT(imp_spool_pending(sp), 10);
	CHECK(imp_spool_bytes(sp) > 10 * 100);
	/* replay reads durable records only */
	CHECK_INT(peek_all(sp, 1, false), 0);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	/* peek does not advance */
	imp_record_t *recs[4];
	size_t n;
	CHECK_INT(imp_spool_peek(sp, 4, recs, &n), IMP_OK);
	CHECK_INT(n, 4);
	for (size_t i = 0; i < n; i++)
		imp_record_free(g_ctx, recs[i]);
	CHECK_INT(imp_spool_peek(sp, 4, recs, &n), IMP_OK);
	CHECK_INT(n, 4);
	CHECK_INT(n ? recs[0]->seq : 0, 1);
	CHECK_STR(n ? recs[0]->body : NULL,
		  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	for (size_t i = 0; i < n; i++)
		imp_record_free(g_ctx, recs[i]);
	CHECK_INT(imp_spool_consume(sp, 4), IMP_OK);
	CHECK_INT(imp_spool_pending(sp), 6);
	/* consume without peeking walks the frames */
	CHECK_INT(imp_spool_consume(sp, 2), IMP_OK);
	CHECK_INT(peek_all(sp, 7, false), 4);
	CHECK_INT(imp_spool_consume(sp, 5), IMP_ERR_INVALID);
	imp_spool_close(sp);

	/* reopen: consumption is not persisted inside a segment (replays
	 * are idempotent), the head is the last spooled record */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(head.seq, 10);
	CHECK(memcmp(head.hash, prev, IMP_HASH_LEN) == 0);
	CHECK_INT(head.ts_us, 1700000000000000 + 10);
	CHECK_INT(imp_spool_pending(sp), 10);
	CHECK_INT(peek_all(sp, 1, true), 10);
	CHECK_INT(imp_spool_pending(sp), 0);
	CHECK_INT(imp_spool_bytes(sp), 0);
	CHECK_INT(count_files(dir, ".spool"), 0);
	/* appending after everything was consumed starts a new segment */
	CHECK_INT(append_range(sp, 11, 12, prev, 10), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK_INT(count_files(dir, ".spool"), 1);
	char p0[512];
	CHECK(seg_path(dir, 0, p0, sizeof(p0)));
	CHECK(strstr(p0, "/n1.000000000000000b.spool") != NULL);
	CHECK_INT(peek_all(sp, 11, true), 2);
	imp_spool_close(sp);

	/* another node in the same directory is independent */
	sp = NULL;
	CHECK_INT(
		imp_spool_open(g_ctx, dir, "n2", &sp, &head, err, sizeof(err)),
		IMP_OK);
	CHECK_INT(head.seq, 0);
	CHECK_INT(sp ? imp_spool_pending(sp) : 99, 0);
	imp_spool_close(sp);
	/* bad node names are refused */
	sp = NULL;
	CHECK_INT(imp_spool_open(g_ctx, dir, "../x", &sp, &head, err,
				 sizeof(err)),
		  IMP_ERR_IO);
	CHECK(sp == NULL && err[0] != '\0');
	CHECK_INT(imp_spool_open(g_ctx, "/proc/nonexistent/dir", "n", &sp,
				 &head, err, sizeof(err)),
		  IMP_ERR_IO);
}

static void test_head(void)
{
	char dir[256];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head, h;

	mkdir_name(dir, sizeof(dir), "head");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	for (uint64_t i = 40; i <= 42; i++) {
		memset(&h, 0, sizeof(h));
		h.seq = i;
		h.ts_us = (int64_t)i * 1000;
		memset(h.hash, (int)i, IMP_HASH_LEN);
		CHECK_INT(imp_spool_set_head(sp, &h), IMP_OK);
	}
	imp_spool_close(sp);
	sp = open_n1(dir, &head);
	CHECK_INT(head.seq, 42);
	CHECK_INT(head.ts_us, 42000);
	CHECK(head.hash[0] == 42 && head.hash[31] == 42);
	/* a spooled record newer than the head file wins */
	unsigned char prev[IMP_HASH_LEN];
	memset(prev, 42, sizeof(prev));
	CHECK_INT(append_range(sp, 43, 43, prev, 5), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	imp_spool_close(sp);
	sp = open_n1(dir, &head);
	CHECK_INT(head.seq, 43);
	CHECK(memcmp(head.hash, prev, IMP_HASH_LEN) == 0);
	imp_spool_close(sp);

	/* a torn write of the newest slot leaves the previous head */
	char hp[512];
	snprintf(hp, sizeof(hp), "%s/n1.head", dir);
	int fd = open(hp, O_RDWR);
	CHECK(fd >= 0);
	/* 42 went to slot 0 (generation 3 is odd? find the slot holding
	 * 42 by reading both) */
	unsigned char buf[160];
	CHECK_INT(pread(fd, buf, sizeof(buf), 0), 160);
	int slot42 = buf[16] == 42 ? 0 : 1;
	CHECK(buf[slot42 * 80 + 16] == 42 && buf[(1 - slot42) * 80 + 16] == 41);
	unsigned char junk = 0x5a;
	CHECK_INT(pwrite(fd, &junk, 1, slot42 * 80 + 40), 1);
	close(fd);
	sp = open_n1(dir, &head);
	/* the segment still has 43 */
	CHECK_INT(head.seq, 43);
	CHECK_INT(sp ? peek_all(sp, 43, true) : 0, 1);
	imp_spool_close(sp);
	sp = open_n1(dir, &head);
	CHECK_INT(head.seq, 41);
	CHECK(head.hash[0] == 41);
	imp_spool_close(sp);
}

static void test_segments(void)
{
	char dir[256], p[512];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0};

	mkdir_name(dir, sizeof(dir), "seg");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 2000);
	CHECK_INT(append_range(sp, 1, 40, prev, 300), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	size_t nseg = count_files(dir, ".spool");
	CHECK_MSG(nseg >= 8, "%zu segments", nseg);
	/* each segment stays under the limit and is named by its first seq */
	CHECK(seg_path(dir, 0, p, sizeof(p)));
	CHECK(strstr(p, "n1.0000000000000001.spool") != NULL);
	CHECK(file_size(p) > 0 && file_size(p) <= 2000);
	CHECK_INT(imp_spool_pending(sp), 40);
	/* consume 15: fully consumed segments are deleted */
	imp_record_t *recs[15];
	size_t n;
	CHECK_INT(imp_spool_peek(sp, 15, recs, &n), IMP_OK);
	CHECK_INT(n, 15);
	for (size_t i = 0; i < n; i++) {
		CHECK_INT(recs[i]->seq, i + 1);
		imp_record_free(g_ctx, recs[i]);
	}
	uint64_t bytes = imp_spool_bytes(sp);
	CHECK_INT(imp_spool_consume(sp, 15), IMP_OK);
	size_t left = count_files(dir, ".spool");
	CHECK_MSG(left < nseg && left > 0, "%zu of %zu segments left", left,
		  nseg);
	CHECK(imp_spool_bytes(sp) < bytes);
	CHECK_INT(imp_spool_pending(sp), 25);
	imp_spool_close(sp);
	/* reopen: what remains replays in order (from the first record of
	 * the oldest remaining segment) */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(head.seq, 40);
	uint64_t pend = imp_spool_pending(sp);
	CHECK(pend >= 25 && pend < 40);
	CHECK_INT(peek_all(sp, 40 - pend + 1, true), pend);
	CHECK_INT(count_files(dir, ".spool"), 0);
	imp_spool_close(sp);
}

/* The spool directory removed while records are pending (an operator
 * "cleaning up"): the next sync restores every file from the descriptors
 * the spool holds, says so at error level, and nothing is lost -- not the
 * records of closed segments, not the unsynced tail, not the head. */
static void test_removed(void)
{
	char dir[256];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head, h5 = {5, 1700000000000005, {0}};
	unsigned char prev[IMP_HASH_LEN] = {0};

	mkdir_name(dir, sizeof(dir), "removed");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 2000);
	CHECK_INT(append_range(sp, 1, 30, prev, 300), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	memset(h5.hash, 5, sizeof(h5.hash));
	CHECK_INT(imp_spool_set_head(sp, &h5), IMP_OK);
	size_t nseg = count_files(dir, ".spool");
	CHECK_MSG(nseg >= 5, "%zu segments", nseg);
	/* two more records, appended but not synced, then the directory
	 * goes */
	CHECK_INT(append_range(sp, 31, 32, prev, 300), IMP_OK);
	rm_rf(dir);
	CHECK(access(dir, F_OK) != 0);
	unsigned errors = g_errors;
	/* the next append opens a new segment (the old one is full): that
	 * notices and restores first; the sync then finds nothing to do */
	CHECK_INT(append_range(sp, 33, 34, prev, 300), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK_MSG(g_errors == errors + 1, "%u errors logged",
		  g_errors - errors);
	CHECK(count_files(dir, ".spool") >= nseg); /* and new ones */
	CHECK_INT(count_files(dir, ".restore"), 0);
	CHECK_INT(count_files(dir, ".head"), 1);
	CHECK_INT(imp_spool_pending(sp), 34);
	/* replay from the restored files in this process, without consuming */
	imp_record_t *recs[4];
	size_t n;
	CHECK_INT(imp_spool_peek(sp, 4, recs, &n), IMP_OK);
	CHECK_INT(n, 4);
	for (size_t i = 0; i < n; i++) {
		CHECK_INT(recs[i]->seq, i + 1);
		imp_record_free(g_ctx, recs[i]);
	}
	/* a second sync with nothing removed restores nothing */
	errors = g_errors;
	CHECK_INT(append_range(sp, 35, 35, prev, 300), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK_INT(g_errors, errors);
	imp_spool_close(sp);
	/* a new process finds every record, in order, and the head */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(head.seq, 35);
	CHECK_INT(imp_spool_pending(sp), 35);
	CHECK_INT(peek_all(sp, 1, true), 35);
	imp_spool_close(sp);
	/* the head file alone removed: restored with its content */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_head_t h40 = h5;
	h40.seq = 40;
	CHECK_INT(imp_spool_set_head(sp, &h40), IMP_OK);
	char hp[512];
	snprintf(hp, sizeof(hp), "%s/n1.head", dir);
	CHECK(unlink(hp) == 0);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK(access(hp, F_OK) == 0);
	imp_spool_close(sp);
	sp = open_n1(dir, &head);
	CHECK_INT(head.seq, 40);
	imp_spool_close(sp);
}

/* Past the 256 segments the spool holds open it reads the rest by path
 * (a long outage must not run the process out of descriptors).  If the
 * directory is then removed, it restores what it held (and the segment
 * it writes) and reports the rest as lost -- the sync fails -- instead
 * of pretending. */
static void test_keep_bound(void)
{
	char dir[256];
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0};

	mkdir_name(dir, sizeof(dir), "bound");
	imp_spool_t *sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 100); /* one record per segment */
	CHECK_INT(append_range(sp, 1, 300, prev, 50), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK_INT(count_files(dir, ".spool"), 300);
	imp_spool_close(sp);
	/* reopened: all 300 replay in order, held or not */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(peek_all(sp, 1, true), 300);
	imp_spool_close(sp);

	mkdir_name(dir, sizeof(dir), "bound2");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 100);
	memset(prev, 0, sizeof(prev));
	CHECK_INT(append_range(sp, 1, 300, prev, 50), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	rm_rf(dir);
	unsigned errors = g_errors;
	CHECK_INT(imp_spool_sync(sp), IMP_ERR_IO);
	CHECK_MSG(g_errors >= errors + 2, "%u errors", g_errors - errors);
	/* the 256 held segments are back, and the one being written (its
	 * append descriptor reads too) */
	CHECK_INT(count_files(dir, ".spool"), 257);
	/* new appends land in a file that exists: the next sync is clean */
	errors = g_errors;
	CHECK_INT(append_range(sp, 301, 301, prev, 50), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK_INT(g_errors, errors);
	imp_spool_close(sp);
}

static void test_torn_tail(void)
{
	char dir[256], err[256], p[512];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0}, h4[IMP_HASH_LEN];

	mkdir_name(dir, sizeof(dir), "torn");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(append_range(sp, 1, 4, prev, 50), IMP_OK);
	memcpy(h4, prev, IMP_HASH_LEN);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	uint64_t good = imp_spool_bytes(sp);
	CHECK_INT(append_range(sp, 5, 5, prev, 50), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	imp_spool_close(sp);
	CHECK(seg_path(dir, 0, p, sizeof(p)));
	off_t full = file_size(p);

	/* cut record 5 in the middle, and separately inside its header */
	static const off_t cuts[] = {7, 0};
	for (size_t c = 0; c < IMP_ARRAY_LEN(cuts); c++) {
		off_t to = cuts[c] ? full - cuts[c] : (off_t)good + 5;
		CHECK_INT(truncate(p, to), 0);
		unsigned w = g_warnings;
		sp = NULL;
		CHECK_INT(imp_spool_open(g_ctx, dir, "n1", &sp, &head, err,
					 sizeof(err)),
			  IMP_OK);
		if (!sp)
			return;
		CHECK(g_warnings > w); /* reported */
		CHECK_INT(file_size(p), good);
		CHECK_INT(head.seq, 4);
		CHECK(memcmp(head.hash, h4, IMP_HASH_LEN) == 0);
		CHECK_INT(imp_spool_pending(sp), 4);
		/* the writer continues the chain at 5 */
		memcpy(prev, h4, IMP_HASH_LEN);
		CHECK_INT(append_range(sp, 5, 5, prev, 50), IMP_OK);
		CHECK_INT(imp_spool_sync(sp), IMP_OK);
		CHECK_INT(peek_all(sp, 1, false), 5);
		imp_spool_close(sp);
		CHECK_INT(file_size(p), full);
	}
	/* garbage appended after the last frame (zeros from a crash that
	 * extended the file) is cut too */
	int fd = open(p, O_WRONLY | O_APPEND);
	char zeros[100] = {0};
	CHECK_INT(write(fd, zeros, sizeof(zeros)), 100);
	close(fd);
	sp = open_n1(dir, &head);
	CHECK_INT(file_size(p), full);
	CHECK_INT(head.seq, 5);
	CHECK_INT(sp ? imp_spool_pending(sp) : 0, 5);
	imp_spool_close(sp);
}

static void test_corrupt(void)
{
	char dir[256], p[512], p2[512];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0};

	mkdir_name(dir, sizeof(dir), "corrupt");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 1500);
	CHECK_INT(append_range(sp, 1, 20, prev, 300), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	imp_spool_close(sp);
	size_t nseg = count_files(dir, ".spool");
	CHECK(nseg >= 3);
	/* flip a byte in the middle of the oldest segment */
	CHECK(seg_path(dir, 0, p, sizeof(p)));
	CHECK(seg_path(dir, 1, p2, sizeof(p2)));
	int fd = open(p, O_RDWR);
	unsigned char b;
	CHECK_INT(pread(fd, &b, 1, 200), 1);
	b ^= 0x01;
	CHECK_INT(pwrite(fd, &b, 1, 200), 1);
	close(fd);
	unsigned e = g_errors;
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK(g_errors > e);
	CHECK_INT(count_files(dir, ".spool.corrupt"), 1);
	CHECK_INT(count_files(dir, ".spool"), nseg - 1);
	char cp[600];
	snprintf(cp, sizeof(cp), "%s.corrupt", p);
	CHECK(file_size(cp) > 0); /* kept for the operator */
	CHECK_INT(head.seq, 20);
	/* the remaining segments replay from the second segment's first seq */
	const char *base = strrchr(p2, '/') + 1;
	uint64_t first = strtoull(base + 3, NULL, 16);
	CHECK(first > 1);
	CHECK_INT(imp_spool_pending(sp), 20 - first + 1);
	CHECK_INT(peek_all(sp, first, false),
		  20 - first + 1 > 7 ? 7 : 20 - first + 1);
	imp_spool_close(sp);

	/* corruption in the middle of the LAST segment, with valid frames
	 * after it, is not a torn tail: set aside, not truncated */
	char last[512];
	CHECK(seg_path(dir, nseg - 2, last, sizeof(last)));
	off_t sz = file_size(last);
	fd = open(last, O_RDWR);
	CHECK_INT(pread(fd, &b, 1, 20), 1);
	b ^= 0x80;
	CHECK_INT(pwrite(fd, &b, 1, 20), 1);
	close(fd);
	sp = open_n1(dir, &head);
	CHECK_INT(count_files(dir, ".spool.corrupt"), 2);
	snprintf(cp, sizeof(cp), "%s.corrupt", last);
	CHECK_INT(file_size(cp), sz);
	/* its seqs are never reused */
	CHECK_INT(head.seq, 20);
	imp_spool_close(sp);
}

static void test_full(void)
{
	char dir[256], p[512];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char prev[IMP_HASH_LEN] = {0};
	struct rlimit old, lim;

	mkdir_name(dir, sizeof(dir), "full");
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	imp_spool_set_segment_bytes(sp, 6000);
	CHECK_INT(append_range(sp, 1, 3, prev, 500), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	CHECK(seg_path(dir, 0, p, sizeof(p)));
	off_t before = file_size(p);

	/* files may not grow past 4 KiB: the next ~600-byte frame crosses
	 * it (EFBIG instead of SIGXFSZ) */
	signal(SIGXFSZ, SIG_IGN);
	CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int rc = IMP_OK;
	uint64_t s = 4;
	for (; s < 20 && rc == IMP_OK; s++) {
		rc = append_range(sp, s, s, prev, 500);
	}
	s--; /* the seq that failed */
	CHECK_INT(rc, IMP_ERR_IO);
	uint64_t pend = imp_spool_pending(sp);
	CHECK_INT(pend, s - 1);
	/* no partial frame left behind */
	CHECK_INT(file_size(p), imp_spool_bytes(sp));
	CHECK((uint64_t)file_size(p) <= 4096);
	/* a roll into a new segment that cannot be written leaves no empty
	 * segment behind */
	imp_spool_set_segment_bytes(sp, (size_t)file_size(p));
	lim.rlim_cur = 0;
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
	CHECK_INT(append_range(sp, s, s, prev, 500), IMP_ERR_IO);
	CHECK_INT(count_files(dir, ".spool"), 1);
	CHECK_INT(imp_spool_pending(sp), pend);
	/* space comes back: the same record goes in */
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	imp_spool_set_segment_bytes(sp, 6000);
	CHECK_INT(append_range(sp, s, s + 2, prev, 500), IMP_OK);
	CHECK_INT(imp_spool_sync(sp), IMP_OK);
	imp_spool_close(sp);
	CHECK(before > 0 && (uint64_t)file_size(p) > (uint64_t)before);

	/* reopen: every record intact, contiguous, no recovery needed */
	unsigned w = g_warnings, e = g_errors;
	sp = open_n1(dir, &head);
	CHECK(g_warnings == w && g_errors == e);
	CHECK_INT(head.seq, s + 2);
	CHECK(memcmp(head.hash, prev, IMP_HASH_LEN) == 0);
	CHECK_INT(sp ? peek_all(sp, 1, true) : 0, s + 2);
	imp_spool_close(sp);
}

/* Quarantine: records go to NODE.quarantine, durable and countable, never
 * into the replay stream; renamed to a segment (the documented
 * re-injection) they replay in order. */
static void test_quarantine(void)
{
	static const uint64_t seqs[] = {3, 9, 12};
	char dir[256], path[512], seg[512];
	imp_spool_t *sp = NULL;
	imp_spool_head_t head;
	unsigned char zero[IMP_HASH_LEN] = {0};
	uint64_t n = 99;

	mkdir_name(dir, sizeof(dir), "quarantine");
	snprintf(path, sizeof(path), "%s/n1.quarantine", dir);
	CHECK_INT(imp_spool_quarantine_count(path, &n), IMP_OK);
	CHECK_INT(n, 0);
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	for (size_t i = 0; i < IMP_ARRAY_LEN(seqs); i++) {
		imp_record_t *r = mk(seqs[i], zero, 50);
		CHECK(r != NULL);
		if (r)
			CHECK_INT(imp_spool_quarantine(sp, r), IMP_OK);
		imp_record_free(g_ctx, r);
		CHECK_INT(imp_spool_quarantine_count(path, &n), IMP_OK);
		CHECK_INT(n, i + 1);
	}
	CHECK_INT(imp_spool_pending(sp), 0);
	imp_spool_close(sp);

	/* Not a segment: a reopened spool has nothing to replay. */
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(imp_spool_pending(sp), 0);
	imp_spool_close(sp);

	/* A damaged tail is reported, the frames before it counted. */
	FILE *f = fopen(path, "ab");
	CHECK(f != NULL);
	if (f) {
		fputs("IMPSxx", f);
		fclose(f);
	}
	CHECK_INT(imp_spool_quarantine_count(path, &n), IMP_ERR_PARSE);
	CHECK_INT(n, 3);
	CHECK_INT(truncate(path, file_size(path) - 6), 0);

	snprintf(seg, sizeof(seg), "%s/n1.%016llx.spool", dir, 3ULL);
	CHECK_INT(rename(path, seg), 0);
	sp = open_n1(dir, &head);
	if (!sp)
		return;
	CHECK_INT(imp_spool_pending(sp), 3);
	imp_record_t *recs[4];
	size_t got = 0;
	CHECK_INT(imp_spool_peek(sp, 4, recs, &got), IMP_OK);
	CHECK_INT(got, 3);
	for (size_t i = 0; i < got; i++) {
		CHECK_INT(recs[i]->seq, seqs[i]);
		imp_record_free(g_ctx, recs[i]);
	}
	imp_spool_close(sp);
}

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
}

int main(void)
{
	imp_ctx_config_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = IMP_CTX_CONFIG_VERSION;
	cfg.log = test_log;
	cfg.log_level = IMP_LOG_INFO;
	CHECK_INT(imp_ctx_new(&cfg, &g_ctx), IMP_OK);
	if (!g_ctx || !mkdtemp(g_root))
		return CHECK_DONE();
	test_crc();
	test_basic();
	test_head();
	test_segments();
	test_removed();
	test_keep_bound();
	test_torn_tail();
	test_corrupt();
	test_full();
	test_quarantine();
	rm_rf(g_root);
	imp_ctx_free(g_ctx);
	return CHECK_DONE();
}
