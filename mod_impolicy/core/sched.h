/*
 * sched.h -- schedules: weekday sets, hour windows (possibly across
 * midnight) and dates, evaluated on civil time in some zone.
 *
 * Semantics (documented in docs/policy-language.md):
 *  - A window "HH:MM-HH:MM" is half-open [start, end).  When end <= start
 *    the window runs across midnight and belongs to the day it starts on:
 *    "mon 22:00-02:00" covers Monday 22:00 to Tuesday 02:00.  "24:00" is
 *    allowed as an end.
 *  - `days` restricts the start day; default every day.
 *  - `dates` (YYYY-MM-DD, or --MM-DD for every year) with no hours make the
 *    schedule active all day on those dates (a holiday calendar).
 *  - `except` names other schedules; the schedule is inactive whenever one
 *    of them is active ("work_hours except holidays"), judged at the instant.
 *  - Schedules are evaluated in the zone of the user the rule is about (per
 *    user, else per group, else the policy zone); the caller passes the
 *    civil time in that zone.
 */
#ifndef IMP_SCHED_H
#define IMP_SCHED_H

#include "base.h"
#include "tz.h"

typedef struct imp_window_s {
	uint16_t start; /* minutes after midnight, 0..1439 */
	uint16_t end;   /* 1..1440; end <= start: crosses midnight */
} imp_window_t;

typedef struct imp_date_s {
	int16_t year; /* 0: every year */
	uint8_t mon, mday;
} imp_date_t;

typedef struct imp_sched_s {
	const char *name;
	uint8_t days; /* bit 0 = Sunday .. bit 6 = Saturday */
	const imp_window_t *windows;
	size_t n_windows; /* 0 with dates: all day on dates; 0 without
	                          dates: all day on days */
	const imp_date_t *dates;
	size_t n_dates;
	const uint32_t *except; /* indexes of schedules in the same table */
	size_t n_except;
} imp_sched_t;

/* Parsers for the policy loader.  Each returns true on success, else false
 * with a readable reason in err. */
bool imp_sched_parse_days(const char *s, uint8_t *mask, char *err,
			  size_t errlen); /* "mon-fri", "sat,sun", "daily",
                                             "weekdays", "weekends", "tue" */
bool imp_sched_parse_window(const char *s, imp_window_t *w, char *err,
			    size_t errlen);
bool imp_sched_parse_date(const char *s, imp_date_t *d, char *err,
			  size_t errlen);

/* True when schedule table[idx] is active at civil time lt.  Follows
 * except references (the loader guarantees they form no cycle). */
bool imp_sched_active(const imp_sched_t *table, size_t idx, const imp_tm_t *lt);

#endif /* IMP_SCHED_H */
