/*
 * test_sched.c -- schedule parsers and imp_sched_active.
 *
 * Tables of civil times against a small schedule table shaped like a real
 * policy (work hours except holidays, breaks, nights across midnight,
 * every-year dates), then DST days evaluated through imp_tz_localtime for
 * America/New_York and Europe/Berlin, then parser error messages.
 */
#include "check.h"
#include "sched.h"

static imp_ctx_t *ctx;
static imp_arena_t *arena;

/* Civil time with the weekday computed (1970-01-01 was a Thursday). */
static imp_tm_t civil(int y, int mo, int d, int h, int mi)
{
	int64_t z = imp_days_from_civil(y, mo, d);
	imp_tm_t t = {.year = y, .mon = mo, .mday = d, .hour = h, .min = mi};
	t.wday = (int)(((z % 7) + 11) % 7);
	return t;
}

static imp_window_t win(const char *s)
{
	imp_window_t w = {0, 0};
	char err[128];
	bool ok = imp_sched_parse_window(s, &w, err, sizeof(err));
	CHECK_MSG(ok, "window %s: %s", s, err);
	return w;
}

static uint8_t days(const char *s)
{
	uint8_t m = 0;
	char err[128];
	bool ok = imp_sched_parse_days(s, &m, err, sizeof(err));
	CHECK_MSG(ok, "days %s: %s", s, err);
	return m;
}

static imp_date_t date(const char *s)
{
	imp_date_t d = {0, 0, 0};
	char err[128];
	bool ok = imp_sched_parse_date(s, &d, err, sizeof(err));
	CHECK_MSG(ok, "date %s: %s", s, err);
	return d;
}

enum {
	S_WORK,
	S_BREAKS,
	S_NIGHT,
	S_HOLIDAYS,
	S_MON_NIGHT,
	S_EARLY,
	S_XMAS_EVE_LUNCH,
	S_NYE_PARTY,
	S_FRI_EVENING,
	S_WEEKEND_NOT_LEAP,
	S_LEAP,
	S_OFF_WORK,
	S_ALWAYS,
	S_COUNT
};

static imp_sched_t table[S_COUNT];

static void build_table(void)
{
	static imp_window_t w_work[1], w_breaks[2], w_night[1], w_mon[1],
		w_early[1], w_lunch[1], w_nye[1], w_fri[1];
	static imp_date_t d_hol[2], d_eve[1], d_nye[1], d_leap[1];
	static const uint32_t ex_hol[] = {S_HOLIDAYS}, ex_leap[] = {S_LEAP},
			      ex_work[] = {S_WORK};

	w_work[0] = win("08:30-17:30");
	w_breaks[0] = win("10:30-10:45");
	w_breaks[1] = win("12:00-13:00");
	w_night[0] = win("22:00-06:00");
	w_mon[0] = win("22:00-02:00");
	w_early[0] = win("01:30-02:30");
	w_lunch[0] = win("12:00-14:00");
	w_nye[0] = win("22:00-02:00");
	w_fri[0] = win("18:00-24:00");
	d_hol[0] = date("2026-12-25");
	d_hol[1] = date("--01-01");
	d_eve[0] = date("2026-12-24");
	d_nye[0] = date("2026-12-31");
	d_leap[0] = date("--02-29");

	table[S_WORK] = (imp_sched_t){
		"work_hours", days("mon-fri"), w_work, 1, NULL, 0, ex_hol, 1};
	table[S_BREAKS] = (imp_sched_t){
		"breaks", days("weekdays"), w_breaks, 2, NULL, 0, NULL, 0};
	table[S_NIGHT] = (imp_sched_t){"night", days("daily"), w_night, 1, NULL,
				       0,       NULL,          0};
	table[S_HOLIDAYS] = (imp_sched_t){
		"holidays", days("daily"), NULL, 0, d_hol, 2, NULL, 0};
	table[S_MON_NIGHT] = (imp_sched_t){"mon_night", days("mon"), w_mon, 1,
					   NULL,        0,           NULL,  0};
	table[S_EARLY] = (imp_sched_t){"early", days("daily"), w_early, 1, NULL,
				       0,       NULL,          0};
	table[S_XMAS_EVE_LUNCH] = (imp_sched_t){
		"xmas_eve_lunch", days("daily"), w_lunch, 1, d_eve, 1, NULL, 0};
	table[S_NYE_PARTY] = (imp_sched_t){
		"nye", days("daily"), w_nye, 1, d_nye, 1, NULL, 0};
	table[S_FRI_EVENING] = (imp_sched_t){
		"fri_evening", days("fri"), w_fri, 1, NULL, 0, NULL, 0};
	table[S_WEEKEND_NOT_LEAP] = (imp_sched_t){
		"weekend", days("sat,sun"), NULL, 0, NULL, 0, ex_leap, 1};
	table[S_LEAP] = (imp_sched_t){"leap", days("daily"), NULL, 0, d_leap,
				      1,      NULL,          0};
	table[S_OFF_WORK] = (imp_sched_t){
		"off_work", days("daily"), NULL, 0, NULL, 0, ex_work, 1};
	/* A zero mask (as from a zeroed struct) means every day. */
	table[S_ALWAYS] = (imp_sched_t){"always", 0, NULL, 0, NULL, 0, NULL, 0};
}

static void test_active(void)
{
	/* 2026-11-23 is a Monday; 2026-12-25 a Friday; 2028-02-29 a
	 * Tuesday; 2032-02-29 a Sunday. */
	static const struct {
		int sched, y, mo, d, h, mi;
		bool want;
	} cases[] = {
		/* Work hours, boundary minutes (half-open). */
		{S_WORK, 2026, 11, 23, 8, 29, false},
		{S_WORK, 2026, 11, 23, 8, 30, true},
		{S_WORK, 2026, 11, 23, 17, 29, true},
		{S_WORK, 2026, 11, 23, 17, 30, false},
		{S_WORK, 2026, 11, 27, 12, 0, true},  /* Friday */
		{S_WORK, 2026, 11, 28, 12, 0, false}, /* Saturday */
		{S_WORK, 2026, 11, 29, 12, 0, false}, /* Sunday */
		/* Holidays via except: Christmas (Fri), New Year every year. */
		{S_WORK, 2026, 12, 25, 10, 0, false},
		{S_WORK, 2026, 12, 24, 10, 0, true},
		{S_WORK, 2027, 1, 1, 10, 0, false}, /* Friday, --01-01 */
		{S_WORK, 2031, 1, 1, 10, 0, false}, /* Wednesday */
		{S_WORK, 2031, 1, 2, 10, 0, true},
		{S_WORK, 2027, 12, 24, 10, 0, true}, /* 2026-only date */
		{S_HOLIDAYS, 2026, 12, 25, 0, 0, true},
		{S_HOLIDAYS, 2026, 12, 25, 23, 59, true},
		{S_HOLIDAYS, 2026, 12, 26, 0, 0, false},
		{S_HOLIDAYS, 2027, 12, 25, 12, 0, false},
		{S_HOLIDAYS, 2040, 1, 1, 12, 0, true},
		/* except chains: off_work = daily except work_hours (which
		 * itself has holidays as an exception). */
		{S_OFF_WORK, 2026, 11, 23, 9, 0, false},
		{S_OFF_WORK, 2026, 11, 23, 18, 0, true},
		{S_OFF_WORK, 2026, 12, 25, 9, 0, true},
		/* Breaks and lunch. */
		{S_BREAKS, 2026, 11, 24, 10, 29, false},
		{S_BREAKS, 2026, 11, 24, 10, 30, true},
		{S_BREAKS, 2026, 11, 24, 10, 44, true},
		{S_BREAKS, 2026, 11, 24, 10, 45, false},
		{S_BREAKS, 2026, 11, 24, 12, 0, true},
		{S_BREAKS, 2026, 11, 24, 12, 59, true},
		{S_BREAKS, 2026, 11, 24, 13, 0, false},
		{S_BREAKS, 2026, 11, 28, 12, 30, false},
		/* Nights across midnight, every day. */
		{S_NIGHT, 2026, 11, 23, 21, 59, false},
		{S_NIGHT, 2026, 11, 23, 22, 0, true},
		{S_NIGHT, 2026, 11, 23, 23, 59, true},
		{S_NIGHT, 2026, 11, 24, 0, 0, true},
		{S_NIGHT, 2026, 11, 24, 5, 59, true},
		{S_NIGHT, 2026, 11, 24, 6, 0, false},
		{S_NIGHT, 2026, 11, 24, 12, 0, false},
		/* "mon 22:00-02:00": Monday night into Tuesday only. */
		{S_MON_NIGHT, 2026, 11, 23, 22, 0, true},   /* Mon */
		{S_MON_NIGHT, 2026, 11, 24, 1, 0, true},    /* Tue, from Mon */
		{S_MON_NIGHT, 2026, 11, 24, 1, 59, true},   /* Tue */
		{S_MON_NIGHT, 2026, 11, 24, 2, 0, false},   /* end */
		{S_MON_NIGHT, 2026, 11, 24, 22, 30, false}, /* Tue night */
		{S_MON_NIGHT, 2026, 11, 25, 1, 0, false},   /* from Tue */
		{S_MON_NIGHT, 2026, 11, 23, 1, 0, false},   /* from Sun */
		{S_MON_NIGHT, 2026, 11, 30, 23, 0, true},   /* next Mon */
		/* Month and year boundaries for the start day. */
		{S_MON_NIGHT, 2026, 12, 1, 0, 30, true}, /* Tue after Mon 30 */
		{S_NYE_PARTY, 2026, 12, 31, 22, 0, true},
		{S_NYE_PARTY, 2027, 1, 1, 1, 59, true},
		{S_NYE_PARTY, 2027, 1, 1, 2, 0, false},
		{S_NYE_PARTY, 2026, 12, 31, 1, 0, false}, /* from Dec 30 */
		{S_NYE_PARTY, 2027, 12, 31, 23, 0, false},
		/* Dates with hours. */
		{S_XMAS_EVE_LUNCH, 2026, 12, 24, 12, 0, true},
		{S_XMAS_EVE_LUNCH, 2026, 12, 24, 14, 0, false},
		{S_XMAS_EVE_LUNCH, 2026, 12, 23, 12, 0, false},
		/* 24:00 ends. */
		{S_FRI_EVENING, 2026, 11, 27, 23, 59, true},
		{S_FRI_EVENING, 2026, 11, 27, 17, 59, false},
		{S_FRI_EVENING, 2026, 11, 28, 0, 0, false},
		/* Every-year Feb 29 vetoing the weekend. */
		{S_WEEKEND_NOT_LEAP, 2026, 11, 28, 9, 0, true},
		{S_WEEKEND_NOT_LEAP, 2032, 2, 29, 9, 0, false},
		{S_WEEKEND_NOT_LEAP, 2032, 2, 28, 9, 0, true},
		{S_LEAP, 2028, 2, 29, 0, 0, true},
		{S_LEAP, 2028, 3, 1, 0, 0, false},
		{S_ALWAYS, 2026, 11, 25, 3, 0, true},
		{S_ALWAYS, 2026, 11, 29, 23, 59, true},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_tm_t lt = civil(cases[i].y, cases[i].mo, cases[i].d,
				    cases[i].h, cases[i].mi);
		bool got = imp_sched_active(table, (size_t)cases[i].sched, &lt);
		CHECK_MSG(got == cases[i].want,
			  "case %zu: %s at %04d-%02d-%02d %02d:%02d = %d", i,
			  table[cases[i].sched].name, cases[i].y, cases[i].mo,
			  cases[i].d, cases[i].h, cases[i].mi, got);
	}
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
	return imp_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

/* Schedules judged through real zones on DST days. */
static void test_dst(void)
{
	const imp_tz_t *ny = NULL, *berlin = NULL;
	char err[256];

	CHECK(imp_tz_load(arena, NULL, "America/New_York", &ny, err,
			  sizeof(err)) == IMP_OK);
	CHECK(imp_tz_load(arena, NULL, "Europe/Berlin", &berlin, err,
			  sizeof(err)) == IMP_OK);
	if (!ny || !berlin)
		return;

	const struct {
		const imp_tz_t *tz;
		int sched;
		int64_t t;
		bool want;
	} cases[] = {
		/* Fall back 2026-11-01 (06:00Z): 01:30 happens twice, and
		 * "01:30-02:30" holds at both. */
		{ny, S_EARLY, utc(2026, 11, 1, 5, 0), false},  /* 01:00 EDT */
		{ny, S_EARLY, utc(2026, 11, 1, 5, 30), true},  /* 01:30 EDT */
		{ny, S_EARLY, utc(2026, 11, 1, 6, 0), false},  /* 01:00 EST */
		{ny, S_EARLY, utc(2026, 11, 1, 6, 30), true},  /* 01:30 EST */
		{ny, S_EARLY, utc(2026, 11, 1, 7, 29), true},  /* 02:29 EST */
		{ny, S_EARLY, utc(2026, 11, 1, 7, 30), false}, /* 02:30 EST */
		/* Spring forward 2026-03-08 (07:00Z): 02:00-03:00 missing. */
		{ny, S_EARLY, utc(2026, 3, 8, 6, 30), true}, /* 01:30 EST */
		{ny, S_EARLY, utc(2026, 3, 8, 6, 59), true}, /* 01:59 EST */
		{ny, S_EARLY, utc(2026, 3, 8, 7, 0), false}, /* 03:00 EDT */
		/* Work hours start at 08:30 local either side of DST. */
		{ny, S_WORK, utc(2026, 3, 6, 13, 29), false}, /* Fri, EST */
		{ny, S_WORK, utc(2026, 3, 6, 13, 30), true},
		{ny, S_WORK, utc(2026, 3, 9, 12, 29), false}, /* Mon, EDT */
		{ny, S_WORK, utc(2026, 3, 9, 12, 30), true},
		{ny, S_WORK, utc(2026, 11, 2, 13, 30), true}, /* Mon, EST */
		{ny, S_WORK, utc(2026, 11, 2, 12, 30), false},
		/* Night across midnight over the fall-back night: Sat 22:00
		 * EDT to Sun 06:00 EST is 9 real hours. */
		{ny, S_NIGHT, utc(2026, 11, 1, 2, 0), true},   /* Sat 22:00 */
		{ny, S_NIGHT, utc(2026, 11, 1, 10, 59), true}, /* 05:59 EST */
		{ny, S_NIGHT, utc(2026, 11, 1, 11, 0), false}, /* 06:00 EST */
		/* A Berlin user and a New York policy, same instants.  In
		 * the weeks when only the US has switched (2026-03-09..28)
		 * the gap is 5 hours, not 6. */
		{berlin, S_WORK, utc(2026, 3, 16, 8, 0), true},    /* 09:00 */
		{ny, S_WORK, utc(2026, 3, 16, 8, 0), false},       /* 04:00 */
		{berlin, S_WORK, utc(2026, 3, 20, 16, 45), false}, /* 17:45 */
		{ny, S_WORK, utc(2026, 3, 20, 16, 45), true},      /* 12:45 */
		{berlin, S_WORK, utc(2026, 3, 27, 16, 15),
		 true}, /* 17:15 CET */
		{berlin, S_WORK, utc(2026, 3, 30, 16, 15), false}, /* 18:15 */
		{berlin, S_WORK, utc(2026, 3, 30, 15, 15), true},  /* 17:15 */
		/* Berlin's own fall back (2026-10-25 01:00Z). */
		{berlin, S_EARLY, utc(2026, 10, 24, 23, 30), true}, /* 01:30 */
		{berlin, S_EARLY, utc(2026, 10, 25, 0, 15), true},  /* 02:15 */
		{berlin, S_EARLY, utc(2026, 10, 25, 0, 30), false}, /* 02:30 */
		{berlin, S_EARLY, utc(2026, 10, 25, 1, 0),
		 true}, /* 02:00 CET */
		{berlin, S_EARLY, utc(2026, 10, 25, 1, 30), false}, /* 02:30 */
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_tm_t lt;
		imp_tz_localtime(cases[i].tz, cases[i].t, &lt);
		bool want = cases[i].want;
		bool got = imp_sched_active(table, (size_t)cases[i].sched, &lt);
		CHECK_MSG(got == want,
			  "dst case %zu: %s in %s at %04d-%02d-%02d %02d:%02d "
			  "= %d",
			  i, table[cases[i].sched].name,
			  imp_tz_name(cases[i].tz), lt.year, lt.mon, lt.mday,
			  lt.hour, lt.min, got);
	}

	/* Counted minute by minute over the whole day: on the fall-back day
	 * 01:30-02:30 holds for 01:30-01:59 EDT, 01:30-01:59 EST and
	 * 02:00-02:29 EST (90 real minutes); on the spring-forward day only
	 * for 01:30-01:59 EST (30). */
	unsigned fall = 0, spring = 0;
	for (int64_t t = utc(2026, 11, 1, 4, 0); t < utc(2026, 11, 2, 5, 0);
	     t += 60) {
		imp_tm_t lt;
		imp_tz_localtime(ny, t, &lt);
		fall += imp_sched_active(table, S_EARLY, &lt);
	}
	for (int64_t t = utc(2026, 3, 8, 5, 0); t < utc(2026, 3, 9, 4, 0);
	     t += 60) {
		imp_tm_t lt;
		imp_tz_localtime(ny, t, &lt);
		spring += imp_sched_active(table, S_EARLY, &lt);
	}
	CHECK_INT(fall, 90);
	CHECK_INT(spring, 30);
}

static void test_parse_days(void)
{
	static const struct {
		const char *s;
		int mask; /* -1: error */
		const char *msg;
	} cases[] = {
		{"mon-fri", 0x3e, NULL},
		{"sat,sun", 0x41, NULL},
		{"daily", 0x7f, NULL},
		{"weekdays", 0x3e, NULL},
		{"weekends", 0x41, NULL},
		{"tue", 0x04, NULL},
		{"fri-mon", 0x63, NULL},
		{"Mon, Wed", 0x0a, NULL},
		{"sun-sat", 0x7f, NULL},
		{"sat-sat", 0x40, NULL},
		{"monday-friday", 0x3e, NULL},
		{"MON - THU", 0x1e, NULL},
		{"fryday", -1, "unknown day 'fryday'"},
		{"mon-fryday", -1, "unknown day 'fryday'"},
		{"", -1, "empty"},
		{"mon,", -1, "empty"},
		{"mon--fri", -1, "unknown day"},
		{"mo", -1, "unknown day 'mo'"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		uint8_t m = 0xff;
		char err[128] = "";
		bool ok =
			imp_sched_parse_days(cases[i].s, &m, err, sizeof(err));
		CHECK_MSG(ok == (cases[i].mask >= 0), "'%s': %s", cases[i].s,
			  err);
		if (ok && cases[i].mask >= 0)
			CHECK_INT(m, cases[i].mask);
		if (cases[i].msg)
			CHECK_MSG(strstr(err, cases[i].msg) != NULL,
				  "'%s': err '%s', want '%s'", cases[i].s, err,
				  cases[i].msg);
	}
}

static void test_parse_window(void)
{
	static const struct {
		const char *s;
		int start, end; /* start -1: error */
		const char *msg;
	} cases[] = {
		{"08:30-17:30", 510, 1050, NULL},
		{"22:00-02:00", 1320, 120, NULL},
		{"18:00-24:00", 1080, 1440, NULL},
		{"00:00-24:00", 0, 1440, NULL},
		{"18:00-00:00", 1080, 1440, NULL},
		{"8:30-9:00", 510, 540, NULL},
		{" 10:00 - 11:00 ", 600, 660, NULL},
		{"23:59-00:01", 1439, 1, NULL},
		{"25:00-26:00", -1, 0, "hour 25 out of range"},
		{"10:00-25:00", -1, 0, "hour 25 out of range"},
		{"10:00-10:00", -1, 0, "empty window 10:00-10:00"},
		{"00:00-00:00", -1, 0, "empty window"},
		{"10:61-11:00", -1, 0, "minute 61 out of range"},
		{"24:00-01:00", -1, 0, "only allowed as the end"},
		{"10:00-24:30", -1, 0, "24:00"},
		{"10-11", -1, 0, "HH:MM"},
		{"10:00", -1, 0, "HH:MM-HH:MM"},
		{"10:00-11:00x", -1, 0, "trailing"},
		{"100:00-101:00", -1, 0, "HH:MM"},
		{"10:0-11:00", -1, 0, "HH:MM"},
		{"", -1, 0, "HH:MM"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_window_t w = {9999, 9999};
		char err[128] = "";
		bool ok = imp_sched_parse_window(cases[i].s, &w, err,
						 sizeof(err));
		CHECK_MSG(ok == (cases[i].start >= 0), "'%s': %s", cases[i].s,
			  err);
		if (ok && cases[i].start >= 0) {
			CHECK_INT(w.start, cases[i].start);
			CHECK_INT(w.end, cases[i].end);
		}
		if (cases[i].msg)
			CHECK_MSG(strstr(err, cases[i].msg) != NULL,
				  "'%s': err '%s', want '%s'", cases[i].s, err,
				  cases[i].msg);
	}
}

static void test_parse_date(void)
{
	static const struct {
		const char *s;
		int y, m, d; /* m 0: error */
		const char *msg;
	} cases[] = {
		{"2026-12-25", 2026, 12, 25, NULL},
		{"--01-01", 0, 1, 1, NULL},
		{"--02-29", 0, 2, 29, NULL},
		{"2028-02-29", 2028, 2, 29, NULL},
		{"2000-02-29", 2000, 2, 29, NULL},
		{"2026-02-29", 0, 0, 0, "day 29 out of range"},
		{"1900-02-29", 0, 0, 0, "day 29"},
		{"2026-13-01", 0, 0, 0, "month 13 out of range"},
		{"2026-00-10", 0, 0, 0, "month 0"},
		{"2026-12-32", 0, 0, 0, "day 32"},
		{"2026-04-31", 0, 0, 0, "day 31"},
		{"--04-31", 0, 0, 0, "day 31"},
		{"12/25/2026", 0, 0, 0, "YYYY-MM-DD"},
		{"--1-01", 0, 0, 0, "YYYY-MM-DD"},
		{"0000-01-01", 0, 0, 0, "year"},
		{"2026-12-25x", 0, 0, 0, "trailing"},
		{"2026-1-5", 0, 0, 0, "YYYY-MM-DD"},
		{"", 0, 0, 0, "YYYY-MM-DD"},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
		imp_date_t d = {-1, 99, 99};
		char err[128] = "";
		bool ok =
			imp_sched_parse_date(cases[i].s, &d, err, sizeof(err));
		CHECK_MSG(ok == (cases[i].m != 0), "'%s': %s", cases[i].s, err);
		if (ok && cases[i].m) {
			CHECK_INT(d.year, cases[i].y);
			CHECK_INT(d.mon, cases[i].m);
			CHECK_INT(d.mday, cases[i].d);
		}
		if (cases[i].msg)
			CHECK_MSG(strstr(err, cases[i].msg) != NULL,
				  "'%s': err '%s', want '%s'", cases[i].s, err,
				  cases[i].msg);
	}
}

/* Random strings over the parsers' alphabets: no crash (ASan/UBSan
 * watch), and every accepted value satisfies the header's invariants. */
static void test_parse_random(void)
{
	static const char alpha[] = "0123456789:-, monfriwedsatuhy2";
	unsigned seed = 12345, bad = 0, accepted = 0;

	for (int i = 0; i < 200000; i++) {
		char s[16], err[96];
		int n = 1 +
			(int)((seed = seed * 1103515245u + 12345u) >> 16) % 14;
		for (int k = 0; k < n; k++) {
			seed = seed * 1103515245u + 12345u;
			s[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		s[n] = '\0';
		if (i % 2 == 0) {
			/* Mostly well-formed: "HH:MM-HH:MM" with random
			 * digits (hours up to 29, minutes up to 69). */
			seed = seed * 1103515245u + 12345u;
			unsigned r = seed >> 8;
			snprintf(s, sizeof(s), "%02u:%02u-%02u:%02u", r % 30,
				 (r / 30) % 70, (r / 2100) % 30,
				 (r / 63000) % 70);
		}
		imp_window_t w;
		if (imp_sched_parse_window(s, &w, err, sizeof(err))) {
			accepted++;
			if (w.start > 1439 || w.end < 1 || w.end > 1440 ||
			    w.start == w.end)
				bad++;
		}
		uint8_t m;
		if (imp_sched_parse_days(s, &m, err, sizeof(err)) &&
		    (m == 0 || m > 0x7f))
			bad++;
		imp_date_t d;
		if (imp_sched_parse_date(s, &d, err, sizeof(err)) &&
		    (d.mon < 1 || d.mon > 12 || d.mday < 1 || d.mday > 31))
			bad++;
	}
	CHECK_INT(bad, 0);
	CHECK(accepted > 0);
}

int main(void)
{
	CHECK(imp_ctx_new(NULL, &ctx) == IMP_OK);
	arena = imp_arena_new(ctx, 0);
	CHECK(arena != NULL);
	if (!arena)
		return CHECK_DONE();
	build_table();
	test_active();
	test_dst();
	test_parse_days();
	test_parse_window();
	test_parse_date();
	test_parse_random();
	imp_arena_free(arena);
	imp_ctx_free(ctx);
	return CHECK_DONE();
}
