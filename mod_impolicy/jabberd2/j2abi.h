/*
 * j2abi.h -- our own declarations of the few jabberd2 2.7.0 session
 * manager structures and functions mod_impolicy uses.
 *
 * Written from the verified facts in ../shared/hosts/jabberd2.md (offsets
 * checked against the Debian 12 binaries); no jabberd2 source is used.
 * Only the fields we touch are named; the rest is explicit padding, and
 * every offset and size is pinned by a _Static_assert so a wrong edit
 * fails the build instead of corrupting the host's memory.
 *
 * The functions are resolved from the jabberd2-sm executable when the
 * module is loaded (-Wl,-z,now makes a missing one fail at load time).
 */
#ifndef IMP_J2ABI_H
#define IMP_J2ABI_H

#include <stddef.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "the jabberd2 layouts below are verified for LP64 only"
#endif

#define J2_HOST __attribute__((visibility("default")))

/* mod_ret_t */
#define J2_MOD_HANDLED 0
#define J2_MOD_PASS 1

/* chain enum (mod_chain_t) */
#define J2_CHAIN_IN_SESS 2
#define J2_CHAIN_IN_ROUTER 3

/* stanza_err_* codes used here */
#define J2_ERR_RESOURCE_CONSTRAINT 116

/* pkt_type_t bits */
#define J2_PKT_MESSAGE 0x10
#define J2_PKT_PRESENCE 0x20
#define J2_PKT_PRESENCE_UN 0x21
#define J2_PKT_S10N 0x40
#define J2_PKT_IQ 0x80
#define J2_PKT_IQ_RESULT 0x82
#define J2_PKT_ERROR 0x200

/* route_type_t bit of pkt->rtype */
#define J2_ROUTE_ERROR 0x40

/* mio actions */
#define J2_MIO_ACCEPT 0
#define J2_MIO_READ 1
#define J2_MIO_WRITE 2
#define J2_MIO_CLOSE 3

typedef struct j2_nad_st j2_nad_t;
typedef struct j2_jid_st j2_jid_t;
typedef struct j2_sm_st j2_sm_t;
typedef struct j2_sess_st j2_sess_t;
typedef struct j2_pkt_st j2_pkt_t;
typedef struct j2_mm_st j2_mm_t;
typedef struct j2_module_st j2_module_t;
typedef struct j2_mod_instance_st j2_mod_instance_t;
typedef void *j2_log_t;
typedef void *j2_config_t;
typedef void *j2_xht;

/* ---- mio ---------------------------------------------------------------- */

typedef struct j2_mio_fd_st {
	int fd;
} j2_mio_fd_t;

struct j2_mio_st;
typedef struct j2_mio_st **j2_mio_t;
typedef int (*j2_mio_handler_t)(j2_mio_t m, int action, j2_mio_fd_t *fd,
				void *data, void *arg);

/* The vtable of mio (mio/mio.h): nine function pointers in this order. */
struct j2_mio_st {
	void (*mio_free)(j2_mio_t m);
	j2_mio_fd_t *(*mio_listen)(j2_mio_t m, int port, const char *sourceip,
				   j2_mio_handler_t app, void *arg);
	j2_mio_fd_t *(*mio_connect)(j2_mio_t m, int port, const char *hostip,
				    const char *srcip, j2_mio_handler_t app,
				    void *arg);
	j2_mio_fd_t *(*mio_register)(j2_mio_t m, int fd, j2_mio_handler_t app,
				     void *arg);
	void (*mio_app)(j2_mio_t m, j2_mio_fd_t *fd, j2_mio_handler_t app,
			void *arg);
	void (*mio_close)(j2_mio_t m, j2_mio_fd_t *fd);
	void (*mio_write)(j2_mio_t m, j2_mio_fd_t *fd);
	void (*mio_read)(j2_mio_t m, j2_mio_fd_t *fd);
	void (*mio_run)(j2_mio_t m, int timeout);
};
_Static_assert(offsetof(struct j2_mio_st, mio_register) == 24, "mio_register");
_Static_assert(offsetof(struct j2_mio_st, mio_read) == 56, "mio_read");
_Static_assert(sizeof(struct j2_mio_st) == 72, "mio_st size");

/* ---- nad ---------------------------------------------------------------- */

struct j2_nad_elem_st {
	int parent, iname, lname, icdata, lcdata, itail, ltail, attr, ns, my_ns,
		depth;
};
_Static_assert(sizeof(struct j2_nad_elem_st) == 44, "nad_elem_st size");

struct j2_nad_attr_st {
	int iname, lname, ival, lval, my_ns, next;
};
_Static_assert(sizeof(struct j2_nad_attr_st) == 24, "nad_attr_st size");

struct j2_nad_ns_st {
	int iuri, luri, iprefix, lprefix, next;
};
_Static_assert(sizeof(struct j2_nad_ns_st) == 20, "nad_ns_st size");

struct j2_nad_st {
	struct j2_nad_elem_st *elems;      /* 0 */
	struct j2_nad_attr_st *attrs;      /* 8 */
	struct j2_nad_ns_st *nss;          /* 16 */
	char *cdata;                       /* 24 */
	int *depths;                       /* 32 */
	int elen, alen, nlen, clen, dlen;  /* 40..56 */
	int ecur, acur, ncur, ccur, scope; /* 60..76 */
	void *next;                        /* 80 */
};
_Static_assert(offsetof(struct j2_nad_st, cdata) == 24, "nad cdata");
_Static_assert(offsetof(struct j2_nad_st, ecur) == 60, "nad ecur");
_Static_assert(offsetof(struct j2_nad_st, ncur) == 68, "nad ncur");
_Static_assert(offsetof(struct j2_nad_st, ccur) == 72, "nad ccur");
_Static_assert(offsetof(struct j2_nad_st, next) == 80, "nad next");
_Static_assert(sizeof(struct j2_nad_st) == 88, "nad_st size");

/* ---- jid ---------------------------------------------------------------- */

struct j2_jid_st {
	char *node;     /* 0 */
	char *domain;   /* 8 */
	char *resource; /* 16 */
	char pad_[72 - 24];
};
_Static_assert(offsetof(struct j2_jid_st, domain) == 8, "jid domain");
_Static_assert(offsetof(struct j2_jid_st, resource) == 16, "jid resource");
_Static_assert(sizeof(struct j2_jid_st) == 72, "jid_st size");

/* ---- sm ----------------------------------------------------------------- */

struct j2_sm_st {
	const char *id; /* 0 */
	char pad0_[64 - 8];
	j2_mio_t mio; /* 64; created after the modules are loaded */
	char pad1_[120 - 72];
	j2_xht sessions; /* 120: sm_id -> sess */
	char pad2_[152 - 128];
	j2_config_t config; /* 152 */
	j2_log_t log;       /* 160; replaced on SIGHUP: read at call time */
	char pad3_[216 - 168];
	j2_mm_t *mm; /* 216 */
	char pad4_[232 - 224];
	char signature[2048]; /* 232 */
	int siglen;           /* 2280 */
	char pad5_[2296 - 2284];
	j2_xht hosts; /* 2296; created after the modules are loaded */
};
_Static_assert(offsetof(struct j2_sm_st, mio) == 64, "sm mio");
_Static_assert(offsetof(struct j2_sm_st, sessions) == 120, "sm sessions");
_Static_assert(offsetof(struct j2_sm_st, config) == 152, "sm config");
_Static_assert(offsetof(struct j2_sm_st, log) == 160, "sm log");
_Static_assert(offsetof(struct j2_sm_st, mm) == 216, "sm mm");
_Static_assert(offsetof(struct j2_sm_st, signature) == 232, "sm signature");
_Static_assert(offsetof(struct j2_sm_st, siglen) == 2280, "sm siglen");
_Static_assert(offsetof(struct j2_sm_st, hosts) == 2296, "sm hosts");

struct j2_mm_st {
	j2_sm_t *sm; /* 0 */
};

struct j2_sess_st {
	void *p;         /* 0 */
	void *user;      /* 8 */
	j2_jid_t *jid;   /* 16: the session's full JID */
	char c2s[1024];  /* 24 */
	char sm_id[41];  /* 1048 */
	char c2s_id[44]; /* 1089 */
	char pad_[1192 - 1133];
};
_Static_assert(offsetof(struct j2_sess_st, jid) == 16, "sess jid");
_Static_assert(offsetof(struct j2_sess_st, sm_id) == 1048, "sess sm_id");
_Static_assert(offsetof(struct j2_sess_st, c2s_id) == 1089, "sess c2s_id");
_Static_assert(sizeof(struct j2_sess_st) == 1192, "sess_st size");

struct j2_pkt_st {
	j2_sm_t *sm;       /* 0 */
	j2_sess_t *source; /* 8 */
	j2_jid_t *rto;     /* 16 */
	j2_jid_t *rfrom;   /* 24 */
	int rtype;         /* 32 */
	int type;          /* 36 */
	j2_jid_t *to;      /* 40 */
	j2_jid_t *from;    /* 48 */
	int ns;            /* 56 */
	int pri;           /* 60 */
	j2_nad_t *nad;     /* 64 */
};
_Static_assert(offsetof(struct j2_pkt_st, rtype) == 32, "pkt rtype");
_Static_assert(offsetof(struct j2_pkt_st, type) == 36, "pkt type");
_Static_assert(offsetof(struct j2_pkt_st, to) == 40, "pkt to");
_Static_assert(offsetof(struct j2_pkt_st, from) == 48, "pkt from");
_Static_assert(offsetof(struct j2_pkt_st, nad) == 64, "pkt nad");
_Static_assert(sizeof(struct j2_pkt_st) == 72, "pkt_st size");

typedef int (*j2_in_sess_fn)(j2_mod_instance_t *mi, j2_sess_t *sess,
			     j2_pkt_t *pkt);
typedef int (*j2_in_router_fn)(j2_mod_instance_t *mi, j2_pkt_t *pkt);

struct j2_module_st {
	j2_mm_t *mm;                    /* 0 */
	const char *name;               /* 8 */
	int index;                      /* 16 */
	void *handle;                   /* 24 */
	void *module_init_fn;           /* 32 */
	int init;                       /* 40 */
	void *priv;                     /* 48 */
	void *sess_start;               /* 56 */
	void *sess_end;                 /* 64 */
	j2_in_sess_fn in_sess;          /* 72 */
	j2_in_router_fn in_router;      /* 80 */
	void *other_[(168 - 88) / 8];   /* out_sess..disco_extend: unused */
	void (*free)(j2_module_t *mod); /* 168 */
};
_Static_assert(offsetof(struct j2_module_st, init) == 40, "module init");
_Static_assert(offsetof(struct j2_module_st, priv) == 48, "module private");
_Static_assert(offsetof(struct j2_module_st, in_sess) == 72, "module in_sess");
_Static_assert(offsetof(struct j2_module_st, in_router) == 80,
	       "module in_router");
_Static_assert(offsetof(struct j2_module_st, free) == 168, "module free");
_Static_assert(sizeof(struct j2_module_st) == 176, "module_st size");

struct j2_mod_instance_st {
	j2_sm_t *sm;      /* 0 */
	j2_module_t *mod; /* 8 */
	int seq;          /* 16 */
	int chain;        /* 20 */
	const char *arg;  /* 24 */
};
_Static_assert(offsetof(struct j2_mod_instance_st, chain) == 20, "mi chain");
_Static_assert(sizeof(struct j2_mod_instance_st) == 32, "mod_instance size");

/* ---- functions exported by jabberd2-sm ------------------------------------ */

J2_HOST extern void log_write(j2_log_t log, int level, const char *msgfmt, ...)
	__attribute__((format(printf, 3, 4)));
J2_HOST extern const char *config_get_one(j2_config_t c, const char *key,
					  int num);
J2_HOST extern void *xhash_get(j2_xht h, const char *key);

J2_HOST extern j2_nad_t *nad_parse(const char *buf, int len);
J2_HOST extern void nad_free(j2_nad_t *nad);
J2_HOST extern void nad_print(j2_nad_t *nad, unsigned int elem,
			      const char **xml, int *len);
J2_HOST extern int nad_find_attr(j2_nad_t *nad, unsigned int elem, int ns,
				 const char *name, const char *val);
J2_HOST extern void nad_set_attr(j2_nad_t *nad, unsigned int elem, int ns,
				 const char *name, const char *val, int vallen);
J2_HOST extern int nad_insert_elem(j2_nad_t *nad, unsigned int parent, int ns,
				   const char *name, const char *cdata);
J2_HOST extern void nad_drop_elem(j2_nad_t *nad, unsigned int elem);
J2_HOST extern int nad_insert_nad(j2_nad_t *dest, int delem, j2_nad_t *src,
				  int selem);
J2_HOST extern int nad_append_namespace(j2_nad_t *nad, unsigned int elem,
					const char *uri, const char *prefix);

J2_HOST extern j2_pkt_t *pkt_create(j2_sm_t *sm, const char *elem,
				    const char *type, const char *to,
				    const char *from);
J2_HOST extern void pkt_free(j2_pkt_t *pkt);
J2_HOST extern void pkt_router(j2_pkt_t *pkt);
J2_HOST extern void pkt_sess(j2_pkt_t *pkt, j2_sess_t *sess);
J2_HOST extern j2_pkt_t *pkt_error(j2_pkt_t *pkt, int err);
J2_HOST extern j2_pkt_t *pkt_tofrom(j2_pkt_t *pkt);

J2_HOST extern j2_jid_t *jid_dup(j2_jid_t *jid);
J2_HOST extern const char *jid_full(j2_jid_t *jid);

J2_HOST extern int mm_in_sess(j2_mm_t *mm, j2_sess_t *sess, j2_pkt_t *pkt);
J2_HOST extern void dispatch(j2_sm_t *sm, j2_pkt_t *pkt);

#endif /* IMP_J2ABI_H */
