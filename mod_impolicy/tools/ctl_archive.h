/*
 * ctl_archive.h -- impolicyctl's archive commands (ctl_archive.c): db
 * init|upgrade|status, archive-status, verify, purge, hold, and the
 * archive side of `eval --archive`.
 */
#ifndef IMP_CTL_ARCHIVE_H
#define IMP_CTL_ARCHIVE_H

#include "impolicy.h"

/* Exit status of the archive commands beyond 0/1/64: the database could
 * not be reached or refused the operation. */
#define CTL_EXIT_DB 3

/* Runs an archive command (argv[0] is the command name).  Returns the exit
 * status, or -1 when cmd is not an archive command. */
int ctl_archive_main(int argc, char **argv);

/* Usage text of the archive commands (appended to impolicyctl --help). */
extern const char ctl_archive_usage_text[];

/* eval --archive: options collected by impolicyctl.c's parser. */
typedef struct ctl_archive_opts_s {
	const char *dsn;        /* --archive DSN (may be NULL with dsn_file or
	                           IMPOLICY_DSN) */
	const char *dsn_file;   /* --dsn-file */
	const char *node;       /* --node (default "impolicyctl") */
	const char *spool_dir;  /* --spool-dir */
	const char *durability; /* strict|batched */
	const char *key_file;   /* --key-file: HMAC chain */
	const char *key_id;     /* --key-id */
	const char *retention;  /* --retention CLASS */
	const char *flush_timeout; /* --flush-timeout SECONDS (default 60) */
	int new_node;              /* --new-node */
} ctl_archive_opts_t;

typedef struct ctl_archive_s ctl_archive_t;

/* Checks that every retention class policy p (read from path) names, and
 * extra (the writer's default; may be NULL), exists in the archive's
 * impolicy.retention_class: PostgreSQL refuses records of unknown classes
 * (foreign key), which the writer would quarantine.  Prints each missing
 * class as FILE:LINE: ... on stderr.  Returns 0, 1 when classes are
 * missing, or CTL_EXIT_DB. */
int ctl_archive_check_retention(const imp_policy_t *p, const char *path,
				const char *dsn, const char *dsn_file,
				const char *extra);

/* Opens the archive writer for eval.  Returns 0 or an exit status (with a
 * message on stderr). */
int ctl_archive_eval_open(imp_ctx_t *ctx, const ctl_archive_opts_t *o,
			  ctl_archive_t **out);
/* Records one judged stanza; returns 0 or CTL_EXIT_DB (message printed
 * with where as prefix). */
int ctl_archive_eval_submit(ctl_archive_t *a, const imp_view_t *view,
			    const imp_verdict_t *v, const char *where);
/* Flushes (every record committed in PostgreSQL), prints a summary on
 * stderr, closes.  Returns 0 or CTL_EXIT_DB. */
int ctl_archive_eval_close(ctl_archive_t *a);

#endif /* IMP_CTL_ARCHIVE_H */
