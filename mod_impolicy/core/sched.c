/*
 * sched.c -- schedule parsers for the policy loader, and the test "is this
 * schedule active at this civil time?" for the evaluator.
 *
 * Semantics (sched.h, docs/policy-language.md): windows are half-open
 * [start, end) in minutes after local midnight; a window whose end is not
 * after its start runs across midnight and belongs to the day it starts on,
 * so at Tuesday 01:00 the window "22:00-02:00" is active when Monday (the
 * start day) passes the `days` and `dates` filters.  Dates with year 0 match
 * every year.  A schedule with dates and no windows is active all day on
 * those dates; `except` schedules veto it at the same instant.
 *
 * Invariants: parsers accept exactly the documented syntax and never
 * produce an empty day mask or an empty window, so "fail at load, never at
 * match" holds.  imp_sched_active trusts the loader for acyclic except
 * chains and in-range indexes.
 *
 * Threading: everything here is pure; the table is read-only.
 *
 * Reports: parsers return false with a readable reason ("unknown day
 * 'fryday'", "hour 25 out of range", "empty window 10:00-10:00").
 */
#include "sched.h"

#include <stdio.h>
#include <string.h>

#define SCHED_ALL_DAYS 0x7f

static const char *const sched_day_names[7] = {"sun", "mon", "tue", "wed",
					       "thu", "fri", "sat"};
static const char *const sched_day_long[7] = {
	"sunday",   "monday", "tuesday", "wednesday",
	"thursday", "friday", "saturday"};

static bool sched_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Day index 0..6 for s[0..n) ("mon", "Monday"), or -1. */
static int sched_day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++) {
		if (imp_strcaseeq_n(s, n, sched_day_names[i], 3) ||
		    imp_strcaseeq_n(s, n, sched_day_long[i],
				    strlen(sched_day_long[i])))
			return i;
	}
	return -1;
}

/* One comma-separated item: a day, a range "fri-mon", or a keyword. */
static bool sched_days_item(const char *s, size_t n, uint8_t *mask, char *err,
			    size_t errlen)
{
	const char *dash;
	int a, b;

	if (imp_strcaseeq_n(s, n, "daily", 5) ||
	    imp_strcaseeq_n(s, n, "everyday", 8)) {
		*mask |= SCHED_ALL_DAYS;
		return true;
	}
	if (imp_strcaseeq_n(s, n, "weekdays", 8)) {
		*mask |= 0x3e; /* mon..fri */
		return true;
	}
	if (imp_strcaseeq_n(s, n, "weekends", 8)) {
		*mask |= 0x41; /* sat, sun */
		return true;
	}
	dash = memchr(s, '-', n);
	if (!dash) {
		a = sched_day_index(s, n);
		if (a < 0) {
			snprintf(err, errlen, "unknown day '%.*s'",
				 (int)(n > 32 ? 32 : n), s);
			return false;
		}
		*mask |= (uint8_t)(1u << a);
		return true;
	}
	/* A range; "fri-mon" wraps over the weekend. */
	size_t n1 = (size_t)(dash - s), n2 = n - n1 - 1;
	while (n1 > 0 && sched_space(s[n1 - 1]))
		n1--;
	const char *s2 = dash + 1;
	while (n2 > 0 && sched_space(*s2)) {
		s2++;
		n2--;
	}
	a = sched_day_index(s, n1);
	b = sched_day_index(s2, n2);
	if (a < 0 || b < 0) {
		const char *bs = a < 0 ? s : s2;
		size_t bn = a < 0 ? n1 : n2;
		snprintf(err, errlen, "unknown day '%.*s' in range '%.*s'",
			 (int)(bn > 32 ? 32 : bn), bs, (int)(n > 32 ? 32 : n),
			 s);
		return false;
	}
	for (int d = a;; d = (d + 1) % 7) {
		*mask |= (uint8_t)(1u << d);
		if (d == b)
			break;
	}
	return true;
}

bool imp_sched_parse_days(const char *s, uint8_t *mask, char *err,
			  size_t errlen)
{
	uint8_t m = 0;
	const char *p = s;

	if (!s) {
		snprintf(err, errlen, "missing days");
		return false;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		while (n > 0 && sched_space(*p)) {
			p++;
			n--;
		}
		while (n > 0 && sched_space(p[n - 1]))
			n--;
		if (n == 0) {
			snprintf(err, errlen, "empty day in '%.40s'", s);
			return false;
		}
		if (!sched_days_item(p, n, &m, err, errlen))
			return false;
		if (!comma)
			break;
		p = comma + 1;
	}
	*mask = m;
	return true;
}

/* "H:MM" or "HH:MM" at *p; advances *p.  24:00 is allowed when end. */
static bool sched_parse_hm(const char **pp, bool end, uint16_t *out, char *err,
			   size_t errlen)
{
	const char *p = *pp;
	int h = 0, m = 0, nd = 0;

	while (*p >= '0' && *p <= '9' && nd < 3) {
		h = h * 10 + (*p++ - '0');
		nd++;
	}
	if (nd == 0 || nd > 2 || *p != ':') {
		snprintf(err, errlen, "expected HH:MM at '%.16s'", *pp);
		return false;
	}
	p++;
	if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9')) {
		snprintf(err, errlen, "expected HH:MM at '%.16s'", *pp);
		return false;
	}
	m = (p[0] - '0') * 10 + (p[1] - '0');
	p += 2;
	if (p[0] >= '0' && p[0] <= '9') {
		snprintf(err, errlen, "expected HH:MM at '%.16s'", *pp);
		return false;
	}
	if (h > 24) {
		snprintf(err, errlen, "hour %d out of range", h);
		return false;
	}
	if (m > 59) {
		snprintf(err, errlen, "minute %d out of range", m);
		return false;
	}
	if (h == 24 && (m != 0 || !end)) {
		snprintf(err, errlen, "%s",
			 m != 0 ? "24:00 is the latest time"
				: "24:00 is only allowed as the end of a "
				  "window");
		return false;
	}
	*out = (uint16_t)(h * 60 + m);
	*pp = p;
	return true;
}

bool imp_sched_parse_window(const char *s, imp_window_t *w, char *err,
			    size_t errlen)
{
	const char *p = s;
	uint16_t a, b;

	if (!s) {
		snprintf(err, errlen, "missing window");
		return false;
	}
	while (sched_space(*p))
		p++;
	if (!sched_parse_hm(&p, false, &a, err, errlen))
		return false;
	while (sched_space(*p))
		p++;
	if (*p != '-') {
		snprintf(err, errlen, "expected HH:MM-HH:MM, got '%.40s'", s);
		return false;
	}
	p++;
	while (sched_space(*p))
		p++;
	if (!sched_parse_hm(&p, true, &b, err, errlen))
		return false;
	while (sched_space(*p))
		p++;
	if (*p != '\0') {
		snprintf(err, errlen, "trailing text after window '%.40s'", s);
		return false;
	}
	/* Equal ends would mean "nothing" (or, read across midnight, a
	 * whole day): refuse rather than guess.  00:00-24:00 is a day. */
	if (a == b) {
		snprintf(err, errlen, "empty window %02u:%02u-%02u:%02u",
			 a / 60u, a % 60u, b / 60u, b % 60u);
		return false;
	}
	/* An end of 00:00 means midnight at the end of the start day:
	 * "18:00-00:00" is the same as "18:00-24:00". */
	if (b == 0)
		b = 1440;
	w->start = a;
	w->end = b;
	return true;
}

static bool sched_digits(const char *p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

bool imp_sched_parse_date(const char *s, imp_date_t *d, char *err,
			  size_t errlen)
{
	int y = 0, m, day;
	const char *p = s;
	static const int mdays[12] = {31, 29, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};

	if (!s) {
		snprintf(err, errlen, "missing date");
		return false;
	}
	while (sched_space(*p))
		p++;
	if (p[0] == '-' && p[1] == '-') {
		p += 2; /* --MM-DD: every year */
	} else {
		if (!sched_digits(p, 4, &y) || p[4] != '-') {
			snprintf(
				err, errlen,
				"bad date '%.40s' (want YYYY-MM-DD or --MM-DD)",
				s);
			return false;
		}
		p += 5;
	}
	if (!sched_digits(p, 2, &m) || p[2] != '-' ||
	    !sched_digits(p + 3, 2, &day)) {
		snprintf(err, errlen,
			 "bad date '%.40s' (want YYYY-MM-DD or --MM-DD)", s);
		return false;
	}
	p += 5;
	while (sched_space(*p))
		p++;
	if (*p != '\0') {
		snprintf(err, errlen, "trailing text after date '%.40s'", s);
		return false;
	}
	if (y == 0 && s[0] != '-') {
		snprintf(err, errlen, "year 0000 out of range in '%.40s'", s);
		return false;
	}
	if (m < 1 || m > 12) {
		snprintf(err, errlen, "month %d out of range in '%.40s'", m, s);
		return false;
	}
	/* Feb 29 is fine for every-year dates (it matches in leap years). */
	if (day < 1 || day > mdays[m - 1] ||
	    (y != 0 && m == 2 && day == 29 &&
	     !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
		snprintf(err, errlen, "day %d out of range in '%.40s'", day, s);
		return false;
	}
	d->year = (int16_t)y;
	d->mon = (uint8_t)m;
	d->mday = (uint8_t)day;
	return true;
}

/* The start-day filters: weekday in `days` and, when dates are given, the
 * date among them.  A zero mask means the default, every day (parsers
 * never produce it). */
static bool sched_day_ok(const imp_sched_t *s, int y, int m, int d, int wday)
{
	uint8_t days = s->days ? s->days : SCHED_ALL_DAYS;

	if (!(days & (1u << wday)))
		return false;
	if (s->n_dates == 0)
		return true;
	for (size_t i = 0; i < s->n_dates; i++) {
		const imp_date_t *dt = &s->dates[i];
		if (dt->mon == m && dt->mday == d &&
		    (dt->year == 0 || dt->year == y))
			return true;
	}
	return false;
}

bool imp_sched_active(const imp_sched_t *table, size_t idx, const imp_tm_t *lt)
{
	const imp_sched_t *s = &table[idx];
	int minute = lt->hour * 60 + lt->min;
	bool today, yesterday = false, need_yesterday = false;
	int py = 0, pm = 0, pd = 0;

	/* Vetoes first: "work_hours except holidays". */
	for (size_t i = 0; i < s->n_except; i++)
		if (imp_sched_active(table, s->except[i], lt))
			return false;

	today = sched_day_ok(s, lt->year, lt->mon, lt->mday, lt->wday);
	if (s->n_windows == 0)
		return today;

	for (size_t i = 0; i < s->n_windows; i++)
		if (s->windows[i].end <= s->windows[i].start)
			need_yesterday = true;
	if (need_yesterday) {
		/* The previous civil day, for windows that began on it. */
		int64_t z = imp_days_from_civil(lt->year, lt->mon, lt->mday);
		imp_civil_from_days(z - 1, &py, &pm, &pd);
		yesterday = sched_day_ok(s, py, pm, pd, (lt->wday + 6) % 7);
	}

	for (size_t i = 0; i < s->n_windows; i++) {
		const imp_window_t *w = &s->windows[i];
		if (w->end > w->start) {
			if (today && minute >= w->start && minute < w->end)
				return true;
		} else {
			/* Across midnight: the evening part belongs to
			 * today, the morning part to yesterday's window. */
			if (today && minute >= w->start)
				return true;
			if (yesterday && minute < w->end)
				return true;
		}
	}
	return false;
}
