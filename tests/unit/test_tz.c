/*
 * test_tz.c -- our TZif reader against the C library's localtime_r.
 *
 * The test process may set TZ (it is single-threaded); the library never
 * does.  Real zones are compared hour by hour across 2024-2040 (which
 * crosses from the transition table into the POSIX footer rule), POSIX
 * footers are compared through hand-built TZif files, and names, corrupt
 * files, DST gaps and overlaps are checked against fixed expectations.
 */
#include "check.h"
#include "tz.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static imp_ctx_t *ctx;
static imp_arena_t *arena;

static void sys_localtime(const char *zone, int64_t t, struct tm *tm)
{
	static char current[128];
	time_t tt = (time_t)t;

	if (strcmp(current, zone) != 0) {
		setenv("TZ", zone, 1);
		tzset();
		snprintf(current, sizeof(current), "%s", zone);
	}
	memset(tm, 0, sizeof(*tm));
	localtime_r(&tt, tm);
}

/* Compares every `step` seconds in [from, to); returns mismatches (and
 * reports the first few). */
static unsigned compare_range(const imp_tz_t *tz, const char *sysname,
			      int64_t from, int64_t to, int64_t step)
{
	unsigned bad = 0;

	for (int64_t t = from; t < to; t += step) {
		struct tm s;
		imp_tm_t m;
		sys_localtime(sysname, t, &s);
		imp_tz_localtime(tz, t, &m);
		if (m.year != s.tm_year + 1900 || m.mon != s.tm_mon + 1 ||
		    m.mday != s.tm_mday || m.hour != s.tm_hour ||
		    m.min != s.tm_min || m.sec != s.tm_sec ||
		    m.wday != s.tm_wday || m.utcoff != s.tm_gmtoff ||
		    m.dst != (s.tm_isdst > 0)) {
			if (bad++ < 5)
				fprintf(stderr,
					"%s t=%lld: ours %04d-%02d-%02d "
					"%02d:%02d:%02d w%d off %d dst %d, "
					"libc %04d-%02d-%02d %02d:%02d:%02d "
					"w%d off %ld dst %d\n",
					sysname, (long long)t, m.year, m.mon,
					m.mday, m.hour, m.min, m.sec, m.wday,
					(int)m.utcoff, m.dst, s.tm_year + 1900,
					s.tm_mon + 1, s.tm_mday, s.tm_hour,
					s.tm_min, s.tm_sec, s.tm_wday,
					s.tm_gmtoff, s.tm_isdst);
		}
	}
	return bad;
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	return imp_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static const imp_tz_t *load(const char *dir, const char *name, int *rc,
			    char *err, size_t errlen)
{
	const imp_tz_t *tz = NULL;
	*rc = imp_tz_load(arena, dir, name, &tz, err, errlen);
	return tz;
}

static void test_civil(void)
{
	static const struct {
		int y, m, d;
		int64_t days;
	} cases[] = {
		{1970, 1, 1, 0},       {1969, 12, 31, -1},
		{2000, 2, 29, 11016},  {2000, 3, 1, 11017},
		{1900, 3, 1, -25508},  {2026, 11, 25, 20782},
		{1600, 1, 1, -135140}, {2400, 12, 31, 157419},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		int y, m, d;
		CHECK_INT(
			imp_days_from_civil(cases[i].y, cases[i].m, cases[i].d),
			cases[i].days);
		imp_civil_from_days(cases[i].days, &y, &m, &d);
		CHECK_INT(y, cases[i].y);
		CHECK_INT(m, cases[i].m);
		CHECK_INT(d, cases[i].d);
	}
	/* Against timegm() and a round trip, every 13 days over 1000 years. */
	unsigned bad = 0;
	for (int64_t z = -200000; z < 200000; z += 13) {
		int y, m, d;
		struct tm tm = {0};
		imp_civil_from_days(z, &y, &m, &d);
		tm.tm_year = y - 1900;
		tm.tm_mon = m - 1;
		tm.tm_mday = d;
		if (imp_days_from_civil(y, m, d) != z ||
		    (int64_t)timegm(&tm) != z * 86400)
			bad++;
	}
	CHECK_INT(bad, 0);
}

static void test_real_zones(void)
{
	static const char *zones[] = {
		"America/New_York",  "Europe/Berlin",
		"Australia/Sydney",  "Asia/Kolkata",
		"America/Sao_Paulo", "Pacific/Chatham",
		"Europe/Dublin",     "UTC",
		"Asia/Tehran",       "America/Nuuk",
		"Africa/Casablanca", "America/St_Johns",
	};
	char err[256];
	int rc;

	for (size_t i = 0; i < IMP_ARRAY_LEN(zones); i++) {
		const imp_tz_t *tz =
			load(NULL, zones[i], &rc, err, sizeof(err));
		CHECK_MSG(rc == IMP_OK && tz, "%s: %s", zones[i], err);
		if (!tz)
			continue;
		CHECK_STR(imp_tz_name(tz), zones[i]);
		/* Every hour 2024-2040 (table, then footer rule), plus every
		 * 7h13m since 1900 for the older history. */
		CHECK_INT(compare_range(tz, zones[i], utc(2024, 1, 1, 0, 0, 0),
					utc(2041, 1, 1, 0, 0, 0), 3600),
			  0);
		CHECK_INT(compare_range(tz, zones[i], utc(1900, 1, 1, 0, 0, 0),
					utc(2100, 1, 1, 0, 0, 0), 25980),
			  0);
	}
}

/* Every zone in zone1970.tab, sampled every ~9.3 days 1960-2060. */
static void test_all_zones(void)
{
	FILE *f = fopen("/usr/share/zoneinfo/zone1970.tab", "r");
	char line[512], err[256];
	unsigned zones = 0, failed = 0, mismatched = 0;

	CHECK(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		int rc;
		if (line[0] == '#' || sscanf(line, "%*s %*s %127s", name) != 1)
			continue;
		zones++;
		const imp_tz_t *tz = load(NULL, name, &rc, err, sizeof(err));
		if (!tz) {
			if (failed++ < 5)
				fprintf(stderr, "%s: %s\n", name, err);
			continue;
		}
		if (compare_range(tz, name, utc(1960, 1, 1, 0, 0, 0),
				  utc(2060, 1, 1, 0, 0, 0), 803571) != 0)
			mismatched++;
	}
	fclose(f);
	CHECK(zones > 300);
	CHECK_INT(failed, 0);
	CHECK_INT(mismatched, 0);
}

/* Exact DST transition instants. */
static void test_transitions(void)
{
	const struct {
		const char *zone;
		int64_t t;
		int y, mo, d, h, mi, s;
		int32_t off;
		bool dst;
	} cases[] = {
		/* New York spring forward 2026-03-08 07:00Z -> EDT. */
		{"America/New_York", 1772953199, 2026, 3, 8, 1, 59, 59, -18000,
		 false},
		{"America/New_York", 1772953200, 2026, 3, 8, 3, 0, 0, -14400,
		 true},
		/* Fall back 2026-11-01 06:00Z: 01:59:59 EDT, then 01:00 EST. */
		{"America/New_York", 1793512799, 2026, 11, 1, 1, 59, 59, -14400,
		 true},
		{"America/New_York", 1793512800, 2026, 11, 1, 1, 0, 0, -18000,
		 false},
		/* Beyond the table (2045): the footer rule. */
		{"America/New_York", utc(2045, 3, 12, 7, 0, 0), 2045, 3, 12, 3,
		 0, 0, -14400, true},
		/* Berlin 2026-03-29 01:00Z -> CEST. */
		{"Europe/Berlin", 1774746000, 2026, 3, 29, 3, 0, 0, 7200, true},
		{"Europe/Berlin", 1774745999, 2026, 3, 29, 1, 59, 59, 3600,
		 false},
		/* Sydney: AEDT ends 2026-04-05 03:00 local (16:00Z). */
		{"Australia/Sydney", utc(2026, 4, 4, 16, 0, 0), 2026, 4, 5, 2,
		 0, 0, 36000, false},
		{"Australia/Sydney", utc(2026, 4, 4, 15, 59, 59), 2026, 4, 5, 2,
		 59, 59, 39600, true},
		/* Dublin: negative DST, winter is the "DST" (GMT) period. */
		{"Europe/Dublin", utc(2026, 1, 15, 12, 0, 0), 2026, 1, 15, 12,
		 0, 0, 0, true},
		{"Europe/Dublin", utc(2026, 7, 15, 12, 0, 0), 2026, 7, 15, 13,
		 0, 0, 3600, false},
		{"Asia/Kolkata", 0, 1970, 1, 1, 5, 30, 0, 19800, false},
		{"UTC", -1, 1969, 12, 31, 23, 59, 59, 0, false},
	};
	char err[256];
	int rc;

	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_tm_t m;
		const imp_tz_t *tz =
			load(NULL, cases[i].zone, &rc, err, sizeof(err));
		CHECK(tz != NULL);
		if (!tz)
			continue;
		imp_tz_localtime(tz, cases[i].t, &m);
		CHECK_MSG(m.year == cases[i].y && m.mon == cases[i].mo &&
				  m.mday == cases[i].d &&
				  m.hour == cases[i].h &&
				  m.min == cases[i].mi && m.sec == cases[i].s &&
				  m.utcoff == cases[i].off &&
				  m.dst == cases[i].dst,
			  "case %zu (%s): %04d-%02d-%02d %02d:%02d:%02d off %d "
			  "dst %d",
			  i, cases[i].zone, m.year, m.mon, m.mday, m.hour,
			  m.min, m.sec, (int)m.utcoff, m.dst);
	}
	/* 2026-11-25 was a Wednesday. */
	imp_tm_t m;
	imp_tz_localtime(imp_tz_utc(), utc(2026, 11, 25, 20, 0, 0), &m);
	CHECK_INT(m.wday, 3);
	CHECK_STR(imp_tz_name(imp_tz_utc()), "UTC");
}

static void test_mktime(void)
{
	static const struct {
		const char *zone;
		int y, mo, d, h, mi;
		int64_t want;
	} cases[] = {
		{"America/New_York", 2026, 7, 1, 12, 0, 1782921600},
		{"America/New_York", 2026, 1, 15, 9, 0, 1768485600},
		/* Gap: 02:30 does not exist; it is read with the offset
		 * before the gap (EST, -5h): 07:30Z, i.e. 03:30 EDT. */
		{"America/New_York", 2026, 3, 8, 2, 30, 1772955000},
		/* Overlap: 01:30 happens twice; the earlier instant (EDT). */
		{"America/New_York", 2026, 11, 1, 1, 30, 1793511000},
		/* Sydney gap 2026-10-04 02:30 -> +10h; overlap 2026-04-05
		 * 02:30 -> the AEDT one. */
		{"Australia/Sydney", 2026, 10, 4, 2, 30, 0},
		{"Australia/Sydney", 2026, 4, 5, 2, 30, 0},
		{"Europe/Berlin", 2026, 3, 29, 2, 30, 0},
		{"Europe/Berlin", 2026, 10, 25, 2, 30, 0},
		/* Far beyond the table. */
		{"Europe/Berlin", 2090, 10, 29, 2, 30, 0},
		{"UTC", 2026, 11, 25, 20, 1, 1795636860},
	};
	/* Expected values computed independently for the zero entries. */
	const int64_t computed[] = {
		0,
		0,
		0,
		0,
		utc(2026, 10, 4, 2, 30, 0) - 10 * 3600,
		utc(2026, 4, 5, 2, 30, 0) - 11 * 3600,
		utc(2026, 3, 29, 2, 30, 0) - 1 * 3600,
		utc(2026, 10, 25, 2, 30, 0) - 2 * 3600,
		utc(2090, 10, 29, 2, 30, 0) - 2 * 3600,
		0,
	};
	char err[256];
	int rc;

	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		const imp_tz_t *tz =
			load(NULL, cases[i].zone, &rc, err, sizeof(err));
		imp_tm_t tm = {.year = cases[i].y,
			       .mon = cases[i].mo,
			       .mday = cases[i].d,
			       .hour = cases[i].h,
			       .min = cases[i].mi};
		CHECK(tz != NULL);
		if (!tz)
			continue;
		int64_t want = cases[i].want ? cases[i].want : computed[i];
		CHECK_MSG(imp_tz_mktime(tz, &tm) == want,
			  "case %zu: got %lld want %lld", i,
			  (long long)imp_tz_mktime(tz, &tm), (long long)want);
	}

	/* Out-of-range fields carry, as with mktime(3). */
	static const struct {
		int y, mo, d, h, mi;
	} carry[] = {
		{2026, 13, 1, 0, 0},  /* = 2027-01-01 */
		{2026, 0, 31, 0, 0},  /* = 2025-12-31 */
		{2026, -23, 1, 0, 0}, /* = 2024-01-01 */
		{2026, 2, 29, 0, 0},  /* = 2026-03-01 */
		{2026, 1, 1, 24, 0},  /* = 2026-01-02 */
		{2026, 1, 1, 0, -1},  /* = 2025-12-31 23:59 */
	};
	const int64_t carry_want[] = {
		utc(2027, 1, 1, 0, 0, 0), utc(2025, 12, 31, 0, 0, 0),
		utc(2024, 1, 1, 0, 0, 0), utc(2026, 3, 1, 0, 0, 0),
		utc(2026, 1, 2, 0, 0, 0), utc(2025, 12, 31, 23, 59, 0),
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(carry); i++) {
		imp_tm_t tm = {.year = carry[i].y,
			       .mon = carry[i].mo,
			       .mday = carry[i].d,
			       .hour = carry[i].h,
			       .min = carry[i].mi};
		CHECK_INT(imp_tz_mktime(imp_tz_utc(), &tm), carry_want[i]);
	}

	/* Round trip: mktime(localtime(t)) == t except for the second
	 * occurrence of an ambiguous time, where it is the first. */
	static const char *zones[] = {"America/New_York", "Pacific/Chatham",
				      "Europe/Dublin", "Australia/Sydney"};
	for (size_t i = 0; i < IMP_ARRAY_LEN(zones); i++) {
		const imp_tz_t *tz =
			load(NULL, zones[i], &rc, err, sizeof(err));
		unsigned bad = 0;
		if (!tz)
			continue;
		for (int64_t t = utc(2025, 1, 1, 0, 0, 0);
		     t < utc(2040, 1, 1, 0, 0, 0); t += 1800) {
			imp_tm_t m, m2;
			imp_tz_localtime(tz, t, &m);
			int64_t back = imp_tz_mktime(tz, &m);
			imp_tz_localtime(tz, back, &m2);
			bool ok = back == t ||
				  (back < t && m2.hour == m.hour &&
				   m2.min == m.min && m2.mday == m.mday);
			if (!ok && bad++ < 3)
				fprintf(stderr, "%s: t=%lld back=%lld\n",
					zones[i], (long long)t,
					(long long)back);
		}
		CHECK_INT(bad, 0);
	}
}

static void test_names(void)
{
	static const char *bad[] = {
		"../etc/passwd",      "/etc/passwd",
		"Nope/Nowhere",       "",
		"America/New York",   "America//New_York",
		"America/",           "Europe/Berlin\n",
		"a/../../etc/passwd", "Europe/Berlin;",
		"America/New_York.",  "America",
	};
	char err[256];
	int rc;

	for (size_t i = 0; i < IMP_ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		const imp_tz_t *tz = load(NULL, bad[i], &rc, err, sizeof(err));
		CHECK_MSG(rc == IMP_ERR_IO && tz == NULL, "'%s' accepted",
			  bad[i]);
		CHECK_MSG(err[0] != '\0', "'%s': no reason", bad[i]);
	}
	/* Names with + and - are legal. */
	const imp_tz_t *tz = load(NULL, "Etc/GMT+5", &rc, err, sizeof(err));
	CHECK(rc == IMP_OK && tz);
	if (tz) {
		imp_tm_t m;
		imp_tz_localtime(tz, 0, &m);
		CHECK_INT(m.utcoff, -5 * 3600);
	}
	/* A NULL err buffer is allowed. */
	CHECK_INT(imp_tz_load(arena, NULL, "Nope/Nowhere", &tz, NULL, 0),
		  IMP_ERR_IO);
}

/* ---- hand-built TZif files -------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A v2 file with one type (offset off) and n_trans transitions at the
 * given instants (all to type 0), then footer.  Returns its length. */
static size_t build_tzif(unsigned char *buf, int32_t off, const int64_t *tr,
			 size_t n_trans, const char *footer)
{
	size_t n = 0;

	for (int v = 0; v < 2; v++) {
		size_t tsize = v ? 8 : 4;
		memcpy(buf + n, "TZif2", 5);
		memset(buf + n + 5, 0, 15);
		put32(buf + n + 20, 0);
		put32(buf + n + 24, 0);
		put32(buf + n + 28, 0);
		put32(buf + n + 32, (uint32_t)n_trans);
		put32(buf + n + 36, 1);
		put32(buf + n + 40, 4);
		n += 44;
		for (size_t i = 0; i < n_trans; i++) {
			if (tsize == 8) {
				put32(buf + n,
				      (uint32_t)((uint64_t)tr[i] >> 32));
				put32(buf + n + 4, (uint32_t)tr[i]);
			} else {
				put32(buf + n, (uint32_t)tr[i]);
			}
			n += tsize;
		}
		memset(buf + n, 0, n_trans);
		n += n_trans;
		put32(buf + n, (uint32_t)off);
		buf[n + 4] = 0;
		buf[n + 5] = 0;
		n += 6;
		memcpy(buf + n, "XXX", 4);
		n += 4;
	}
	buf[n++] = '\n';
	memcpy(buf + n, footer, strlen(footer));
	n += strlen(footer);
	buf[n++] = '\n';
	return n;
}

static char tmpdir[64];

static void write_zone(const char *name, const unsigned char *p, size_t n)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(fwrite(p, 1, n, f) == n);
	fclose(f);
}

static void test_footers(void)
{
	/* Each footer is also a POSIX TZ string glibc understands. */
	static const char *footers[] = {
		"EST5EDT,M3.2.0,M11.1.0",
		"<+0330>-3:30",
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"AEST-10AEDT,M10.1.0,M4.1.0/3",
		"IST-1GMT0,M10.5.0,M3.5.0/1",
		"<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
		"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
		"XXX3YYY,J60/2,J300/2",
		"XXX3YYY,59/2,299/2",
		"XXX-2YYY,M3.5.0/25,M10.5.0/26",
		"XXX5YYY4:30,M4.1.0/1:30:15,M10.5.6",
		"<-0130>1:30",
	};
	unsigned char buf[512];
	char err[256];
	int rc;

	for (size_t i = 0; i < IMP_ARRAY_LEN(footers); i++) {
		char name[32];
		snprintf(name, sizeof(name), "Footer%zu", i);
		/* The type matches the footer's standard offset; no
		 * transitions, so the footer governs every instant. */
		size_t n = build_tzif(buf, 0, NULL, 0, footers[i]);
		write_zone(name, buf, n);
		const imp_tz_t *tz = load(tmpdir, name, &rc, err, sizeof(err));
		CHECK_MSG(rc == IMP_OK && tz, "%s: %s", footers[i], err);
		if (!tz)
			continue;
		CHECK_MSG(compare_range(tz, footers[i],
					utc(2019, 1, 1, 0, 0, 0),
					utc(2031, 1, 1, 0, 0, 0), 1800) == 0,
			  "footer %s", footers[i]);
		/* Exact-second agreement around each rule transition. */
		CHECK_MSG(compare_range(tz, footers[i],
					utc(2027, 1, 1, 0, 0, 0),
					utc(2028, 1, 1, 0, 0, 0), 61) == 0,
			  "footer %s (seconds)", footers[i]);
	}

	/* Rules glibc reads differently from RFC 8536.  Year-round DST
	 * (RFC 8536 3.3.1: "starts January 1 at 00:00 and ends December 31 at
	 * 24:00 plus the DST difference"): always EDT, also around New Year
	 * (glibc judges by the UTC year and shows EST there).  A DST name
	 * without a rule: our documented default, the US rule. */
	size_t n = build_tzif(buf, 0, NULL, 0, "EST5EDT,0/0,J365/25");
	write_zone("Footer30", buf, n);
	const imp_tz_t *tz = load(tmpdir, "Footer30", &rc, err, sizeof(err));
	CHECK(rc == IMP_OK && tz);
	if (tz) {
		unsigned not_dst = 0;
		for (int64_t t = utc(2025, 12, 30, 0, 0, 0);
		     t < utc(2027, 1, 3, 0, 0, 0); t += 1800) {
			imp_tm_t m;
			imp_tz_localtime(tz, t, &m);
			if (!m.dst || m.utcoff != -4 * 3600)
				not_dst++;
		}
		CHECK_INT(not_dst, 0);
	}
	n = build_tzif(buf, 0, NULL, 0, "XXX3YYY");
	write_zone("Footer31", buf, n);
	tz = load(tmpdir, "Footer31", &rc, err, sizeof(err));
	CHECK(rc == IMP_OK && tz);
	if (tz) {
		imp_tm_t m;
		imp_tz_localtime(tz, utc(2026, 1, 15, 12, 0, 0), &m);
		CHECK(!m.dst && m.utcoff == -3 * 3600);
		imp_tz_localtime(tz, utc(2026, 7, 15, 12, 0, 0), &m);
		CHECK(m.dst && m.utcoff == -2 * 3600);
		/* Second Sunday of March 2026 (the 8th), 02:00 local. */
		imp_tz_localtime(tz, utc(2026, 3, 8, 4, 59, 59), &m);
		CHECK(!m.dst);
		imp_tz_localtime(tz, utc(2026, 3, 8, 5, 0, 0), &m);
		CHECK(m.dst && m.hour == 3);
	}

	/* With transitions: before the first one, type 0; after the last,
	 * the footer. */
	const int64_t tr[] = {utc(2000, 1, 1, 0, 0, 0)};
	n = build_tzif(buf, 3600, tr, 1, "EST5EDT,M3.2.0,M11.1.0");
	write_zone("WithTrans", buf, n);
	tz = load(tmpdir, "WithTrans", &rc, err, sizeof(err));
	CHECK(rc == IMP_OK && tz);
	if (tz) {
		imp_tm_t m;
		imp_tz_localtime(tz, utc(1999, 6, 1, 0, 0, 0), &m);
		CHECK_INT(m.utcoff, 3600);
		imp_tz_localtime(tz, utc(2026, 6, 1, 0, 0, 0), &m);
		CHECK_INT(m.utcoff, -4 * 3600);
		CHECK(m.dst);
		imp_tz_localtime(tz, utc(2026, 1, 1, 0, 0, 0), &m);
		CHECK_INT(m.utcoff, -5 * 3600);
	}
	/* A version 1 file: the 32-bit block only, no footer. */
	const int64_t tr1[] = {utc(2001, 1, 1, 0, 0, 0)};
	n = build_tzif(buf, -7200, tr1, 1, "");
	buf[4] = '\0';
	write_zone("V1", buf, 44 + 4 + 1 + 6 + 4);
	tz = load(tmpdir, "V1", &rc, err, sizeof(err));
	CHECK_MSG(rc == IMP_OK && tz, "v1: %s", err);
	if (tz) {
		imp_tm_t m;
		imp_tz_localtime(tz, utc(2026, 6, 1, 0, 0, 0), &m);
		CHECK_INT(m.utcoff, -7200);
		CHECK_INT(m.hour, 22);
	}
	/* An empty footer: the last type forever. */
	n = build_tzif(buf, 7200, tr, 1, "");
	write_zone("NoFooter", buf, n);
	tz = load(tmpdir, "NoFooter", &rc, err, sizeof(err));
	CHECK(rc == IMP_OK && tz);
	if (tz) {
		imp_tm_t m;
		imp_tz_localtime(tz, utc(2300, 6, 1, 0, 0, 0), &m);
		CHECK_INT(m.utcoff, 7200);
	}
}

static void test_corrupt(void)
{
	static const char *bad_footers[] = {
		"EST5EDT,M3.2.0",
		"EST5EDT,M13.2.0,M11.1.0",
		"EST5EDT,M3.6.0,M11.1.0",
		"E5",
		"EST",
		"EST5EDT,J0,J100",
		"EST5EDT,M3.2.0,M11.1.0x",
		"EST99",
		"<EST5",
		"EST5EDT,366,10",
	};
	unsigned char buf[512], *real = NULL;
	char err[256], path[256];
	int rc;
	size_t n;

	/* Every proper prefix of a real zone file is refused. */
	FILE *f = fopen("/usr/share/zoneinfo/America/New_York", "rb");
	CHECK(f != NULL);
	if (f) {
		real = malloc(1 << 16);
		n = fread(real, 1, 1 << 16, f);
		fclose(f);
		CHECK(n > 100);
		unsigned accepted = 0;
		for (size_t len = 0; len < n; len++) {
			write_zone("Trunc", real, len);
			if (load(tmpdir, "Trunc", &rc, err, sizeof(err)) ||
			    rc != IMP_ERR_IO)
				accepted++;
		}
		CHECK_INT(accepted, 0);
		write_zone("Whole", real, n);
		CHECK(load(tmpdir, "Whole", &rc, err, sizeof(err)) != NULL);

		/* Bit flips in the header counts and type indexes must never
		 * crash (ASan watches); most are refused. */
		for (size_t pos = 0; pos < n; pos++) {
			unsigned char save = real[pos];
			real[pos] ^= 0xff;
			write_zone("Flip", real, n);
			(void)load(tmpdir, "Flip", &rc, err, sizeof(err));
			real[pos] = save;
		}
		/* Bad magic. */
		real[0] = 'X';
		write_zone("Magic", real, n);
		CHECK(load(tmpdir, "Magic", &rc, err, sizeof(err)) == NULL);
		CHECK_INT(rc, IMP_ERR_IO);
		free(real);
	}

	for (size_t i = 0; i < IMP_ARRAY_LEN(bad_footers); i++) {
		n = build_tzif(buf, 0, NULL, 0, bad_footers[i]);
		write_zone("BadFooter", buf, n);
		err[0] = '\0';
		CHECK_MSG(load(tmpdir, "BadFooter", &rc, err, sizeof(err)) ==
					  NULL &&
				  rc == IMP_ERR_IO,
			  "footer '%s' accepted", bad_footers[i]);
		CHECK(strstr(err, "footer") != NULL);
	}

	/* Transition type index out of range. */
	const int64_t tr[] = {100, 200};
	n = build_tzif(buf, 0, tr, 2, "");
	/* The v2 block's second type index: v1 block (44 + 8 + 2 + 6 + 4
	 * bytes), v2 header, two 8-byte transitions, first index. */
	buf[64 + 44 + 16 + 1] = 5;
	write_zone("BadIdx", buf, n);
	CHECK(load(tmpdir, "BadIdx", &rc, err, sizeof(err)) == NULL);
	/* Transitions out of order (v2 block). */
	const int64_t tr2[] = {200, 100};
	n = build_tzif(buf, 0, tr2, 2, "");
	write_zone("Order", buf, n);
	CHECK(load(tmpdir, "Order", &rc, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "order") != NULL);
	/* Huge counts. */
	n = build_tzif(buf, 0, NULL, 0, "");
	put32(buf + 32, 0x7fffffff);
	write_zone("Huge", buf, n);
	CHECK(load(tmpdir, "Huge", &rc, err, sizeof(err)) == NULL);
	/* A directory is not a zone. */
	snprintf(path, sizeof(path), "%s/Sub", tmpdir);
	CHECK(mkdir(path, 0700) == 0);
	CHECK(load(tmpdir, "Sub", &rc, err, sizeof(err)) == NULL);
	CHECK_INT(rc, IMP_ERR_IO);
}

static void cleanup_tmp(void)
{
	static const char *files[] = {
		"Trunc",  "Whole", "Flip", "Magic",     "BadFooter",
		"BadIdx", "Order", "Huge", "WithTrans", "NoFooter",
	};
	char path[256];
	for (size_t i = 0; i < IMP_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	for (int i = 0; i < 32; i++) {
		snprintf(path, sizeof(path), "%s/Footer%d", tmpdir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/Sub", tmpdir);
	rmdir(path);
	rmdir(tmpdir);
}

int main(void)
{
	CHECK(imp_ctx_new(NULL, &ctx) == IMP_OK);
	arena = imp_arena_new(ctx, 0);
	CHECK(arena != NULL);
	if (!arena)
		return CHECK_DONE();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tz.XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);

	test_civil();
	test_real_zones();
	test_all_zones();
	test_transitions();
	test_mktime();
	test_names();
	test_footers();
	test_corrupt();

	cleanup_tmp();
	imp_arena_free(arena);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
