/*
 * spool.h -- the local append-only spool that holds archive records while
 * PostgreSQL is away (and, in strict mode, makes them durable before the
 * verdict is returned when the database cannot commit in time).
 *
 * Layout: a directory per archive node holding segment files
 * "NODE.SEQ16HEX.spool" (SEQ = the first record's sequence) of frames
 *   magic "IMPS" | u32 payload length | u32 CRC-32C of payload | payload
 * (little-endian; payload = imp_record_serialize()).  Segments roll at
 * IMP_SPOOL_SEGMENT_BYTES.  A state file "NODE.head" holds the chain head
 * (last seq, ts and rec_hash committed to PostgreSQL or spooled) so that a
 * writer that restarts while PostgreSQL is down continues the chain
 * without reusing a sequence number.
 *
 * Quarantine: "NODE.quarantine" holds, in the same frame format, records
 * PostgreSQL refused for a data reason (see imp_spool_quarantine).
 *
 * Recovery: opening the spool scans every segment; a torn or corrupt frame
 * at the end of the last segment (a crash mid-append) is truncated away
 * and reported; corruption elsewhere is reported and that segment is
 * renamed *.corrupt (kept for the operator, never silently dropped).
 *
 * Durability: append() writes; sync() fdatasyncs the current segment
 * (and the directory after creating a segment).  Callers batch appends
 * and sync once (group commit).
 *
 * Threading: one thread (the archive writer) uses a spool.
 */
#ifndef IMP_SPOOL_H
#define IMP_SPOOL_H

#include "base.h"
#include "record.h"

#define IMP_SPOOL_SEGMENT_BYTES (64u << 20)

typedef struct imp_spool_s imp_spool_t;

typedef struct imp_spool_head_s {
	uint64_t seq; /* 0: nothing recorded yet */
	int64_t ts_us;
	unsigned char hash[IMP_HASH_LEN];
} imp_spool_head_t;

/* Opens (creating dir with 0700 if needed) and recovers.  *head receives
 * the newest of: the head file and the last spooled record.  IMP_OK or
 * IMP_ERR_IO (why in err; also logged). */
int imp_spool_open(const imp_ctx_t *ctx, const char *dir, const char *node,
		   imp_spool_t **out, imp_spool_head_t *head, char *err,
		   size_t errlen);
void imp_spool_close(imp_spool_t *sp);

/* Appends one record (not yet durable).  IMP_OK or IMP_ERR_IO (disk full,
 * unwritable: the spool stays usable for a later retry; a partial frame is
 * truncated away). */
int imp_spool_append(imp_spool_t *sp, const imp_record_t *r);
/* Makes every appended record durable.  IMP_OK or IMP_ERR_IO. */
int imp_spool_sync(imp_spool_t *sp);

/* Persists the chain head (write + fdatasync of the small head file). */
int imp_spool_set_head(imp_spool_t *sp, const imp_spool_head_t *head);

/* Number of records and bytes waiting in the spool. */
uint64_t imp_spool_pending(const imp_spool_t *sp);
uint64_t imp_spool_bytes(const imp_spool_t *sp);

/* Replay cursor: reads spooled records oldest first, max records at a
 * time (records are heap copies the caller frees with imp_record_free).
 * After the caller has committed them, imp_spool_consume(sp, n) drops the
 * first n pending records, deleting segments that are wholly consumed.
 * IMP_OK (with *n_out == 0 at the end), IMP_ERR_IO, IMP_ERR_NOMEM. */
int imp_spool_peek(imp_spool_t *sp, size_t max, imp_record_t **recs,
		   size_t *n_out);
int imp_spool_consume(imp_spool_t *sp, size_t n);

/* Segment size at which appends roll to a new segment (0: the default
 * IMP_SPOOL_SEGMENT_BYTES); for tests and tuning. */
void imp_spool_set_segment_bytes(imp_spool_t *sp, size_t bytes);

/* Quarantine: a record PostgreSQL refused for a data reason (SQLSTATE
 * class 22/23) is appended to DIR/NODE.quarantine (same frame format as a
 * segment; the file is never read by replay) and fdatasynced before
 * return.  IMP_OK, IMP_ERR_IO or IMP_ERR_NOMEM. */
int imp_spool_quarantine(imp_spool_t *sp, const imp_record_t *r);
/* Number of frames in a quarantine file (0 when it does not exist).
 * IMP_OK, IMP_ERR_IO, or IMP_ERR_PARSE (count of the frames before the
 * damage in *records). */
int imp_spool_quarantine_count(const char *path, uint64_t *records);
/* Sequence number of the first record in a quarantine file (for re-queueing
 * it as a spool segment, which is named after its first seq).  IMP_OK,
 * IMP_ERR_IO, IMP_ERR_NOMEM or IMP_ERR_PARSE (empty or damaged). */
int imp_spool_quarantine_first(const imp_ctx_t *ctx, const char *path,
			       uint64_t *seq);

/* CRC-32C (Castagnoli), exposed for tests. */
uint32_t imp_crc32c(uint32_t crc, const void *p, size_t n);

#endif /* IMP_SPOOL_H */
