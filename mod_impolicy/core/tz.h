/*
 * tz.h -- IANA time zones read from the system zoneinfo (TZif v1-v3),
 * without touching the process's TZ or localtime state.
 *
 * A zone is loaded once (at policy load) into an immutable imp_tz_t: the
 * 64-bit transition table plus the POSIX TZ footer rule used for instants
 * after the last transition, so DST is right for any year.  Converting an
 * instant to local civil time is a binary search, thread-safe and
 * allocation-free.
 */
#ifndef IMP_TZ_H
#define IMP_TZ_H

#include "base.h"

typedef struct imp_tz_s imp_tz_t;

/* Civil time in a zone. */
typedef struct imp_tm_s {
	int year; /* e.g. 2026 */
	int mon;  /* 1..12 */
	int mday; /* 1..31 */
	int wday; /* 0 = Sunday .. 6 = Saturday */
	int hour, min, sec;
	int32_t utcoff; /* seconds east of UTC */
	bool dst;
} imp_tm_t;

/* Loads zone `name` ("America/New_York", "UTC") from dir (NULL: the
 * context's zoneinfo dir) into arena a.  Names with "..", a leading '/',
 * or characters outside [A-Za-z0-9/_+-] are refused.  Returns IMP_OK,
 * IMP_ERR_IO (unknown zone; why in err) or IMP_ERR_NOMEM. */
int imp_tz_load(imp_arena_t *a, const char *dir, const char *name,
		const imp_tz_t **out, char *err, size_t errlen);

/* The UTC zone, always available, no file needed. */
const imp_tz_t *imp_tz_utc(void);
const char *imp_tz_name(const imp_tz_t *tz);

/* Converts t (seconds since the epoch) to civil time in tz. */
void imp_tz_localtime(const imp_tz_t *tz, int64_t t, imp_tm_t *out);

/* Converts civil time (year..sec, ignoring wday/utcoff/dst) in tz to
 * seconds since the epoch.  A time in a DST gap is read with the offset
 * before the gap, so it moves forward by the gap (RFC 5545: New York
 * 02:30 on the spring-forward day is 03:30 EDT); an ambiguous time gives
 * the earlier instant. */
int64_t imp_tz_mktime(const imp_tz_t *tz, const imp_tm_t *tm);

/* Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t imp_days_from_civil(int y, int m, int d);
void imp_civil_from_days(int64_t z, int *y, int *m, int *d);

#endif /* IMP_TZ_H */
