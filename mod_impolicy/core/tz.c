/*
 * tz.c -- IANA time zones from TZif files (RFC 8536), without the C
 * library's TZ/localtime machinery.
 *
 * Purpose: schedules are evaluated in the civil time of the person a rule
 * protects, in any zone, from many threads at once.  localtime_r() depends
 * on the process-wide TZ variable (setenv/tzset are not thread-safe), so we
 * read zoneinfo files ourselves.
 *
 * Invariants: a loaded imp_tz_t is immutable and lives in the caller's
 * arena.  Its transition times are strictly ascending, every transition's
 * type index is < n_types, n_types >= 1.  When the file carries a POSIX TZ
 * footer (v2+), it is parsed at load and applied to every instant at or
 * after the last transition (or to all instants when there are none).
 * Leap-second ("right/") zones are refused: policy times are POSIX times.
 *
 * Threading: loading allocates from the given arena (one thread);
 * imp_tz_localtime/imp_tz_mktime only read the zone and are thread-safe
 * and allocation-free.
 *
 * Reports: imp_tz_load returns IMP_ERR_IO with a readable reason in err for
 * an unknown zone, a refused name, or a truncated or corrupt file (every
 * count and index is bounds-checked: a bad file is an error, never a
 * crash); IMP_ERR_NOMEM when the arena or allocator fails.
 */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_MAX_FILE (1024 * 1024) /* real zones are < 4 KiB */
#define TZ_MAX_NAME 255
#define TZ_SECS_PER_DAY 86400

/* Clamp instants to about +-1.1 billion years so that civil years fit an
 * int and t + offset never overflows. */
#define TZ_T_LIMIT ((int64_t)1 << 55)

typedef struct tz_type_s {
	int32_t utoff; /* seconds east of UTC */
	bool dst;
} tz_type_t;

/* One end of a POSIX TZ DST rule: "Jn", "n" or "Mm.w.d", plus "/time". */
typedef enum { TZ_RULE_JULIAN1, TZ_RULE_JULIAN0, TZ_RULE_MWD } tz_rule_kind_t;

typedef struct tz_rdate_s {
	tz_rule_kind_t kind;
	int day;      /* Jn: 1..365; n: 0..365; M: day of week 0..6 */
	int week;     /* M: 1..5 (5 = last) */
	int mon;      /* M: 1..12 */
	int32_t time; /* local seconds after midnight, -167h..167h */
} tz_rdate_t;

typedef struct tz_rule_s {
	int32_t std_off; /* seconds east of UTC */
	int32_t dst_off;
	bool has_dst;
	tz_rdate_t start, end;
} tz_rule_t;

struct imp_tz_s {
	const char *name;
	const int64_t *trans; /* ascending transition instants */
	const uint8_t *trans_type;
	size_t n_trans;
	const tz_type_t *types; /* types[0] applies before trans[0] */
	size_t n_types;
	bool has_rule; /* footer present: applies from the last transition */
	tz_rule_t rule;
};

static const tz_type_t tz_utc_type = {0, false};
static const imp_tz_t tz_utc = {
	.name = "UTC",
	.types = &tz_utc_type,
	.n_types = 1,
};

const imp_tz_t *imp_tz_utc(void)
{
	return &tz_utc;
}

const char *imp_tz_name(const imp_tz_t *tz)
{
	return tz ? tz->name : NULL;
}

/* ---- civil dates --------------------------------------------------------- */

/* Floor division and modulo for a positive divisor. */
static int64_t tz_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b) != 0 && a < 0)
		q--;
	return q;
}

/* Days since 1970-01-01 in the proleptic Gregorian calendar.  Counts in
 * 400-year eras (146097 days) with March as the first month, so the leap
 * day is the last day of the computational year. */
int64_t imp_days_from_civil(int y, int m, int d)
{
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = tz_floor_div(yy, 400);
	int64_t yoe = yy - era * 400;             /* 0..399 */
	int64_t mp = (m + 9) % 12;                /* Mar = 0 .. Feb = 11 */
	int64_t doy = (153 * mp + 2) / 5 + d - 1; /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* 0..146096 */
	return era * 146097 + doe - 719468; /* 719468: 0000-03-01 to epoch */
}

void imp_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = tz_floor_div(z, 146097);
	int64_t doe = z - era * 146097; /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;                      /* 0..11 */
	int64_t dd = doy - (153 * mp + 2) / 5 + 1;
	int64_t mm = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (mm <= 2));
	*m = (int)mm;
	*d = (int)dd;
}

static bool tz_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int tz_month_days(int64_t y, int m)
{
	static const int md[12] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	return m == 2 && tz_is_leap(y) ? 29 : md[m - 1];
}

/* ---- POSIX TZ footer ----------------------------------------------------- */

/* Local-time instant (seconds since the epoch, as if local were UTC) at
 * which rule end r fires in year y. */
static int64_t tz_rdate_local(int y, const tz_rdate_t *r)
{
	int64_t days;

	switch (r->kind) {
	case TZ_RULE_JULIAN1:
		/* 1..365, February 29 is never counted. */
		days = imp_days_from_civil(y, 1, 1) + r->day - 1;
		if (r->day >= 60 && tz_is_leap(y))
			days++;
		break;
	case TZ_RULE_JULIAN0:
		days = imp_days_from_civil(y, 1, 1) + r->day;
		break;
	default: {
		int64_t first = imp_days_from_civil(y, r->mon, 1);
		/* 1970-01-01 was a Thursday (4). */
		int wday1 = (int)(((first % 7) + 11) % 7);
		int mday = 1 + (r->day - wday1 + 7) % 7 + (r->week - 1) * 7;
		int mdays = tz_month_days(y, r->mon);
		while (mday > mdays)
			mday -= 7;
		days = first + mday - 1;
		break;
	}
	}
	return days * TZ_SECS_PER_DAY + r->time;
}

/* Offset and DST flag of the footer rule at instant t.  Looks at the rule's
 * transitions in the surrounding three years and takes the latest one at or
 * before t, which handles southern-hemisphere rules, transition times past
 * 24:00 or below 0 and year-round DST ("J365/25") alike. */
static void tz_rule_lookup(const tz_rule_t *r, int64_t t, tz_type_t *out)
{
	int y, m, d;
	int64_t best = INT64_MIN;
	bool best_dst = false;

	out->utoff = r->std_off;
	out->dst = false;
	if (!r->has_dst)
		return;
	imp_civil_from_days(tz_floor_div(t + r->std_off, TZ_SECS_PER_DAY), &y,
			    &m, &d);
	for (int yy = y - 1; yy <= y + 1; yy++) {
		/* The start is given in standard time, the end in DST. */
		int64_t s = tz_rdate_local(yy, &r->start) - r->std_off;
		int64_t e = tz_rdate_local(yy, &r->end) - r->dst_off;
		/* On a tie the start wins: year-round DST ends and restarts
		 * at the same instant. */
		if (e <= t && e > best) {
			best = e;
			best_dst = false;
		}
		if (s <= t && s >= best) {
			best = s;
			best_dst = true;
		}
	}
	if (best_dst) {
		out->utoff = r->dst_off;
		out->dst = true;
	}
}

typedef struct tz_scan_s {
	const char *p;
	const char *end;
} tz_scan_t;

static bool tz_scan_num(tz_scan_t *s, int max, int *out)
{
	int v = 0;
	const char *p0 = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
		v = v * 10 + (*s->p - '0');
		if (v > max)
			return false;
		s->p++;
	}
	*out = v;
	return s->p > p0;
}

/* Zone abbreviation: 3+ letters, or <...> with letters, digits, + and -. */
static bool tz_scan_abbr(tz_scan_t *s)
{
	const char *p0;

	if (s->p < s->end && *s->p == '<') {
		s->p++;
		p0 = s->p;
		while (s->p < s->end && *s->p != '>') {
			char c = *s->p;
			if (!((c >= 'A' && c <= 'Z') ||
			      (c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '+' || c == '-'))
				return false;
			s->p++;
		}
		if (s->p >= s->end || s->p - p0 < 3)
			return false;
		s->p++;
		return true;
	}
	p0 = s->p;
	while (s->p < s->end && ((*s->p >= 'A' && *s->p <= 'Z') ||
				 (*s->p >= 'a' && *s->p <= 'z')))
		s->p++;
	return s->p - p0 >= 3;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh.  Returns seconds as written (POSIX
 * offsets are west-positive; the caller negates). */
static bool tz_scan_hms(tz_scan_t *s, int maxh, int32_t *out)
{
	int sign = 1, h, m = 0, sec = 0;

	if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
		if (*s->p == '-')
			sign = -1;
		s->p++;
	}
	if (!tz_scan_num(s, maxh, &h))
		return false;
	if (s->p < s->end && *s->p == ':') {
		s->p++;
		if (!tz_scan_num(s, 59, &m))
			return false;
		if (s->p < s->end && *s->p == ':') {
			s->p++;
			if (!tz_scan_num(s, 59, &sec))
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return true;
}

static bool tz_scan_rdate(tz_scan_t *s, tz_rdate_t *r)
{
	if (s->p >= s->end)
		return false;
	if (*s->p == 'J') {
		s->p++;
		r->kind = TZ_RULE_JULIAN1;
		if (!tz_scan_num(s, 365, &r->day) || r->day < 1)
			return false;
	} else if (*s->p == 'M') {
		s->p++;
		r->kind = TZ_RULE_MWD;
		if (!tz_scan_num(s, 12, &r->mon) || r->mon < 1)
			return false;
		if (s->p >= s->end || *s->p++ != '.')
			return false;
		if (!tz_scan_num(s, 5, &r->week) || r->week < 1)
			return false;
		if (s->p >= s->end || *s->p++ != '.')
			return false;
		if (!tz_scan_num(s, 6, &r->day))
			return false;
	} else {
		r->kind = TZ_RULE_JULIAN0;
		if (!tz_scan_num(s, 365, &r->day))
			return false;
	}
	r->time = 2 * 3600; /* POSIX default 02:00 */
	if (s->p < s->end && *s->p == '/') {
		s->p++;
		/* RFC 8536 3.3.1 extends the hour to -167..167. */
		if (!tz_scan_hms(s, 167, &r->time))
			return false;
	}
	return true;
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". */
static bool tz_parse_rule(const char *p, size_t n, tz_rule_t *r)
{
	tz_scan_t s = {p, p + n};
	int32_t v;

	memset(r, 0, sizeof(*r));
	if (!tz_scan_abbr(&s) || !tz_scan_hms(&s, 24, &v))
		return false;
	r->std_off = -v;
	if (s.p == s.end)
		return true;
	if (!tz_scan_abbr(&s))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (s.p < s.end && *s.p != ',') {
		if (!tz_scan_hms(&s, 24, &v))
			return false;
		r->dst_off = -v;
	}
	if (s.p == s.end) {
		/* No rule given: POSIX leaves it to the implementation; use
		 * the US rule like glibc's default. */
		r->start = (tz_rdate_t){TZ_RULE_MWD, 0, 2, 3, 7200};
		r->end = (tz_rdate_t){TZ_RULE_MWD, 0, 1, 11, 7200};
		return true;
	}
	if (*s.p++ != ',' || !tz_scan_rdate(&s, &r->start))
		return false;
	if (s.p >= s.end || *s.p++ != ',' || !tz_scan_rdate(&s, &r->end))
		return false;
	return s.p == s.end;
}

/* ---- lookup --------------------------------------------------------------- */

static void tz_lookup(const imp_tz_t *tz, int64_t t, tz_type_t *out)
{
	size_t lo, hi;

	if (tz->n_trans == 0 || t >= tz->trans[tz->n_trans - 1]) {
		if (tz->has_rule) {
			tz_rule_lookup(&tz->rule, t, out);
			return;
		}
		if (tz->n_trans == 0) {
			*out = tz->types[0];
			return;
		}
	}
	if (t < tz->trans[0]) {
		*out = tz->types[0];
		return;
	}
	/* Largest i with trans[i] <= t. */
	lo = 0;
	hi = tz->n_trans;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	*out = tz->types[tz->trans_type[lo]];
}

static int64_t tz_clamp(int64_t t)
{
	if (t > TZ_T_LIMIT)
		return TZ_T_LIMIT;
	if (t < -TZ_T_LIMIT)
		return -TZ_T_LIMIT;
	return t;
}

void imp_tz_localtime(const imp_tz_t *tz, int64_t t, imp_tm_t *out)
{
	tz_type_t ty;
	int64_t local, days, secs;

	if (!tz)
		tz = &tz_utc;
	t = tz_clamp(t);
	tz_lookup(tz, t, &ty);
	local = t + ty.utoff;
	days = tz_floor_div(local, TZ_SECS_PER_DAY);
	secs = local - days * TZ_SECS_PER_DAY;
	imp_civil_from_days(days, &out->year, &out->mon, &out->mday);
	out->wday = (int)(((days % 7) + 11) % 7);
	out->hour = (int)(secs / 3600);
	out->min = (int)(secs / 60 % 60);
	out->sec = (int)(secs % 60);
	out->utcoff = ty.utoff;
	out->dst = ty.dst;
}

/* Civil fields are taken as given, so out-of-range values (hour 25, min
 * -1) simply carry, as with mktime(3). */
int64_t imp_tz_mktime(const imp_tz_t *tz, const imp_tm_t *tm)
{
	int64_t local, cand[5], best = INT64_MAX, latest = INT64_MIN;
	int32_t offs[5];
	size_t n = 0;
	tz_type_t ty;

	if (!tz)
		tz = &tz_utc;
	/* Months outside 1..12 carry into the year. */
	int64_t mon0 = (int64_t)tm->mon - 1;
	int64_t year = (int64_t)tm->year + tz_floor_div(mon0, 12);
	mon0 -= tz_floor_div(mon0, 12) * 12;
	if (year > 2000000000)
		year = 2000000000;
	if (year < -2000000000)
		year = -2000000000;
	local = imp_days_from_civil((int)year, (int)mon0 + 1, 1) + tm->mday - 1;
	local = local * TZ_SECS_PER_DAY + (int64_t)tm->hour * 3600 +
		(int64_t)tm->min * 60 + tm->sec;
	local = tz_clamp(local);

	/* Every offset in effect within +-27 hours of the wall time is a
	 * candidate (offsets are below 26 h and real zones never change
	 * twice within that span); probing both sides and the wall time
	 * itself finds the offsets on either side of a transition. */
	const int64_t probes[3] = {local - 27 * 3600, local, local + 27 * 3600};
	for (size_t i = 0; i < IMP_ARRAY_LEN(probes); i++) {
		tz_lookup(tz, probes[i], &ty);
		bool seen = false;
		for (size_t j = 0; j < n; j++)
			seen |= offs[j] == ty.utoff;
		if (!seen)
			offs[n++] = ty.utoff;
	}
	for (size_t j = 0; j < n; j++) {
		cand[j] = local - offs[j];
		tz_lookup(tz, cand[j], &ty);
		if (ty.utoff == offs[j] && cand[j] < best)
			best = cand[j]; /* valid; the earliest wins overlaps */
		if (cand[j] > latest)
			latest = cand[j];
	}
	if (best != INT64_MAX)
		return best;
	/* In a gap (the wall time was skipped): read it with the offset in
	 * effect before the transition, which is the latest candidate
	 * instant, so the time moves forward by the gap's length -- New York
	 * 02:30 on a spring-forward night is 07:30Z, shown as 03:30 EDT.  That
	 * is the convention of RFC 5545 and of most calendar software, and
	 * what an admin typing --at 02:30 expects. */
	return latest;
}

/* ---- loading --------------------------------------------------------------- */

static bool tz_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > TZ_MAX_NAME || name[0] == '/' || name[n - 1] == '/')
		return false;
	if (strstr(name, "..") || strstr(name, "//"))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '/' || c == '_' ||
		      c == '+' || c == '-'))
			return false;
	}
	return true;
}

static uint32_t tz_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t tz_be64(const unsigned char *p)
{
	uint64_t v = (uint64_t)tz_be32(p) << 32 | tz_be32(p + 4);
	return (int64_t)v;
}

/* Reads path into a heap buffer with plain open/read. */
static int tz_read(const imp_ctx_t *ctx, const char *path, unsigned char **out,
		   size_t *len, char *err, size_t errlen)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%.100s: %s", path, strerror(errno));
		return IMP_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > TZ_MAX_FILE) {
		snprintf(err, errlen, "%.100s: not a zoneinfo file", path);
		close(fd);
		return IMP_ERR_IO;
	}
	buf = imp_malloc(ctx, (size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return IMP_ERR_NOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "%.100s: %s", path,
				 r < 0 ? strerror(errno) : "short read");
			imp_mfree(ctx, buf);
			close(fd);
			return IMP_ERR_IO;
		}
		got += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = got;
	return IMP_OK;
}

typedef struct tz_hdr_s {
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
	char version;
} tz_hdr_t;

static bool tz_parse_hdr(const unsigned char *p, size_t len, tz_hdr_t *h)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return false;
	h->version = (char)p[4];
	h->isutcnt = tz_be32(p + 20);
	h->isstdcnt = tz_be32(p + 24);
	h->leapcnt = tz_be32(p + 28);
	h->timecnt = tz_be32(p + 32);
	h->typecnt = tz_be32(p + 36);
	h->charcnt = tz_be32(p + 40);
	/* Caps that keep the size arithmetic far from overflow; a real
	 * zone has a few hundred transitions at most. */
	return h->timecnt <= TZ_MAX_FILE && h->leapcnt <= TZ_MAX_FILE &&
	       h->charcnt <= TZ_MAX_FILE && h->typecnt <= TZ_MAX_FILE &&
	       h->isutcnt <= TZ_MAX_FILE && h->isstdcnt <= TZ_MAX_FILE;
}

/* RFC 8536 3.1 rules for the block we actually use (the v1 block of a v2+
 * file is skipped, not judged): typecnt nonzero and at most 256 (one-byte
 * indexes), isutcnt/isstdcnt zero or typecnt. */
static bool tz_counts_ok(const tz_hdr_t *h)
{
	return h->typecnt != 0 && h->typecnt <= 256 &&
	       (h->isutcnt == 0 || h->isutcnt == h->typecnt) &&
	       (h->isstdcnt == 0 || h->isstdcnt == h->typecnt);
}

static size_t tz_block_size(const tz_hdr_t *h, size_t tsize)
{
	return (size_t)h->timecnt * tsize + h->timecnt +
	       (size_t)h->typecnt * 6 + h->charcnt +
	       (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Decodes a validated TZif image into tz (arrays in arena a). */
static int tz_decode(imp_arena_t *a, const unsigned char *p, size_t len,
		     imp_tz_t *tz, char *why, size_t whylen)
{
	tz_hdr_t h;
	size_t tsize = 4, need;
	const unsigned char *blk;
	int64_t *trans;
	uint8_t *ttype;
	tz_type_t *types;

	if (!tz_parse_hdr(p, len, &h)) {
		snprintf(why, whylen, "bad TZif header");
		return IMP_ERR_IO;
	}
	need = 44 + tz_block_size(&h, 4);
	if (len < need) {
		snprintf(why, whylen, "truncated TZif data");
		return IMP_ERR_IO;
	}
	if (h.version >= '2') {
		/* Skip the 32-bit block; use the 64-bit one. */
		p += need;
		len -= need;
		if (!tz_parse_hdr(p, len, &h)) {
			snprintf(why, whylen, "bad TZif v2 header");
			return IMP_ERR_IO;
		}
		tsize = 8;
		need = 44 + tz_block_size(&h, 8);
		if (len < need) {
			snprintf(why, whylen, "truncated TZif v2 data");
			return IMP_ERR_IO;
		}
	} else if (h.version != 0) {
		snprintf(why, whylen, "unknown TZif version");
		return IMP_ERR_IO;
	}
	if (!tz_counts_ok(&h)) {
		snprintf(why, whylen, "bad TZif counts");
		return IMP_ERR_IO;
	}
	if (h.leapcnt != 0) {
		snprintf(why, whylen, "leap-second zones are not supported");
		return IMP_ERR_IO;
	}
	blk = p + 44;

	trans = imp_arena_calloc(a, h.timecnt ? h.timecnt : 1, sizeof(*trans));
	ttype = imp_arena_calloc(a, h.timecnt ? h.timecnt : 1, 1);
	types = imp_arena_calloc(a, h.typecnt, sizeof(*types));
	if (!trans || !ttype || !types)
		return IMP_ERR_NOMEM;
	for (uint32_t i = 0; i < h.timecnt; i++) {
		const unsigned char *q = blk + (size_t)i * tsize;
		trans[i] = tsize == 8 ? tz_be64(q) : (int32_t)tz_be32(q);
		if (i > 0 && trans[i] <= trans[i - 1]) {
			snprintf(why, whylen, "transitions out of order");
			return IMP_ERR_IO;
		}
		/* Keep the table inside the range we compute with. */
		if (trans[i] < -TZ_T_LIMIT || trans[i] > TZ_T_LIMIT) {
			snprintf(why, whylen, "transition out of range");
			return IMP_ERR_IO;
		}
	}
	blk += (size_t)h.timecnt * tsize;
	for (uint32_t i = 0; i < h.timecnt; i++) {
		ttype[i] = blk[i];
		if (blk[i] >= h.typecnt) {
			snprintf(why, whylen, "bad transition type index");
			return IMP_ERR_IO;
		}
	}
	blk += h.timecnt;
	for (uint32_t i = 0; i < h.typecnt; i++) {
		const unsigned char *q = blk + (size_t)i * 6;
		int32_t off = (int32_t)tz_be32(q);
		/* RFC 8536: -89999..93599 (under 25 and 26 hours). */
		if (off < -89999 || off > 93599 || q[4] > 1 ||
		    q[5] >= (h.charcnt ? h.charcnt : 1)) {
			snprintf(why, whylen, "bad local time type");
			return IMP_ERR_IO;
		}
		types[i].utoff = off;
		types[i].dst = q[4] != 0;
	}
	/* Abbreviations, std/ut indicators: not needed for conversions. */

	tz->trans = trans;
	tz->trans_type = ttype;
	tz->n_trans = h.timecnt;
	tz->types = types;
	tz->n_types = h.typecnt;
	tz->has_rule = false;

	if (tsize == 8) {
		const char *f = (const char *)p + need;
		const char *fend = (const char *)p + len;
		const char *nl;

		if (f >= fend || *f != '\n') {
			snprintf(why, whylen, "missing TZ footer");
			return IMP_ERR_IO;
		}
		f++;
		nl = memchr(f, '\n', (size_t)(fend - f));
		if (!nl) {
			snprintf(why, whylen, "unterminated TZ footer");
			return IMP_ERR_IO;
		}
		if (nl > f) {
			if (!tz_parse_rule(f, (size_t)(nl - f), &tz->rule)) {
				snprintf(why, whylen, "bad TZ footer '%.*s'",
					 (int)(nl - f > 64 ? 64 : nl - f), f);
				return IMP_ERR_IO;
			}
			tz->has_rule = true;
		}
	}
	return IMP_OK;
}

int imp_tz_load(imp_arena_t *a, const char *dir, const char *name,
		const imp_tz_t **out, char *err, size_t errlen)
{
	const imp_ctx_t *ctx;
	char path[4096], why[160], errbuf[256];
	unsigned char *data = NULL;
	size_t len = 0;
	imp_tz_t *tz;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!err) {
		err = errbuf; /* callers may pass no buffer */
		errlen = sizeof(errbuf);
	}
	*out = NULL;
	if (!a || !name) {
		snprintf(err, errlen, "no time zone name");
		return IMP_ERR_IO;
	}
	if (!tz_name_ok(name)) {
		snprintf(err, errlen, "invalid time zone name '%.64s'", name);
		return IMP_ERR_IO;
	}
	/* UTC needs no file, so it works without zoneinfo installed. */
	if (strcmp(name, "UTC") == 0) {
		*out = &tz_utc;
		return IMP_OK;
	}
	ctx = imp_arena_ctx(a);
	if (!dir)
		dir = ctx && ctx->zoneinfo_dir ? ctx->zoneinfo_dir
					       : TZ_DEFAULT_DIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path)) {
		snprintf(err, errlen, "time zone path too long");
		return IMP_ERR_IO;
	}
	why[0] = '\0';
	rc = tz_read(ctx, path, &data, &len, why, sizeof(why));
	if (rc == IMP_ERR_IO)
		snprintf(err, errlen, "unknown time zone '%.64s' (%s)", name,
			 why);
	if (rc != IMP_OK)
		return rc;
	tz = imp_arena_calloc(a, 1, sizeof(*tz));
	if (tz)
		tz->name = imp_arena_strdup(a, name);
	if (!tz || !tz->name) {
		imp_mfree(ctx, data);
		return IMP_ERR_NOMEM;
	}
	why[0] = '\0';
	rc = tz_decode(a, data, len, tz, why, sizeof(why));
	imp_mfree(ctx, data);
	if (rc == IMP_ERR_IO)
		snprintf(err, errlen, "time zone '%.64s': %.100s: %s", name,
			 path, why);
	if (rc != IMP_OK)
		return rc;
	*out = tz;
	return IMP_OK;
}
