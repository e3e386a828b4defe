/*
 * test_base.c -- arenas, buffers, JSON/XML escaping, error lists, UTF-8
 * validation, file reading and SHA-256 (base.c).
 */
#include "base.h"
#include "check.h"

#include <stdlib.h>
#include <unistd.h>

static int cleanup_calls;
static void count_cleanup(void *arg)
{
	cleanup_calls += *(int *)arg;
}

/* An allocator that counts live blocks, to prove arenas return all. */
static long live_blocks;
static void *counting_malloc(size_t n, void *ud)
{
	(void)ud;
	live_blocks++;
	return malloc(n);
}
static void *counting_realloc(void *p, size_t n, void *ud)
{
	(void)ud;
	if (!p)
		live_blocks++;
	return realloc(p, n);
}
static void counting_free(void *p, void *ud)
{
	(void)ud;
	if (p)
		live_blocks--;
	free(p);
}

static void test_arena(imp_ctx_t *ctx)
{
	imp_arena_t *a = imp_arena_new(ctx, 1024);
	CHECK(a != NULL);
	char *p1 = imp_arena_alloc(a, 3);
	char *p2 = imp_arena_alloc(a, 5);
	CHECK(((uintptr_t)p1 & 15) == 0);
	CHECK(((uintptr_t)p2 & 15) == 0);
	CHECK(p2 >= p1 + 3);
	/* large blocks and many small ones */
	char *big = imp_arena_alloc(a, 100000);
	CHECK(big != NULL);
	memset(big, 'x', 100000);
	for (int i = 0; i < 1000; i++) {
		char *s = imp_arena_printf(a, "item-%d", i);
		CHECK_STR(s, (snprintf(big, 32, "item-%d", i), big));
	}
	size_t grown = imp_arena_size(a);
	CHECK(grown > 100000);
	static int one = 1, ten = 10;
	CHECK_INT(imp_arena_cleanup(a, count_cleanup, &one), IMP_OK);
	CHECK_INT(imp_arena_cleanup(a, count_cleanup, &ten), IMP_OK);
	imp_arena_reset(a);
	CHECK_INT(cleanup_calls, 11);
	CHECK(imp_arena_size(a) < grown);
	CHECK_STR(imp_arena_strndup(a, "abcdef", 3), "abc");
	int *z = imp_arena_calloc(a, 10, sizeof(int));
	CHECK(z && z[0] == 0 && z[9] == 0);
	CHECK(imp_arena_calloc(a, SIZE_MAX / 2, 4) == NULL);
	imp_arena_free(a);
	CHECK_INT(cleanup_calls, 11);
}

static void test_buf(imp_ctx_t *ctx)
{
	imp_buf_t b;
	imp_buf_init(&b, ctx, NULL);
	imp_buf_puts(&b, "a");
	imp_buf_printf(&b, "%d-%s", 42, "x");
	imp_buf_putc(&b, '!');
	CHECK_STR(b.data, "a42-x!");
	CHECK_INT(b.len, 6);
	imp_buf_reset(&b);
	imp_buf_json_str(&b, "q\"\\\n\t\x01\xc3\xa9\xff", 9);
	CHECK_STR(b.data, "\"q\\\"\\\\\\n\\t\\u0001\xc3\xa9\\ufffd\"");
	imp_buf_reset(&b);
	imp_buf_xml_escape(&b, "<a&'\">", 6, false);
	CHECK_STR(b.data, "&lt;a&amp;'\"&gt;");
	imp_buf_reset(&b);
	imp_buf_xml_escape(&b, "<a&'\">", 6, true);
	CHECK_STR(b.data, "&lt;a&amp;&apos;&quot;&gt;");
	imp_buf_free(&b);

	imp_arena_t *a = imp_arena_new(ctx, 0);
	imp_buf_init(&b, NULL, a);
	for (int i = 0; i < 10000; i++)
		imp_buf_putc(&b, 'z');
	CHECK_INT(b.len, 10000);
	CHECK(!b.oom);
	imp_arena_free(a);
}

static void test_errors(imp_ctx_t *ctx)
{
	imp_errors_t *e = imp_errors_new(ctx, 3);
	imp_errors_add(e, IMP_ERR_POLICY, "p.yaml", 3, 7, "unknown key '%s'",
		       "foo");
	imp_errors_addx(e, IMP_ERR_POLICY, "p.yaml", 4, 1, "r1", NULL,
			"did you mean 'bar'?", "unknown list '%s'", "baz");
	imp_errors_add(e, IMP_ERR_IO, NULL, 0, 0, "no file");
	imp_errors_add(e, IMP_ERR_IO, NULL, 0, 0, "dropped");
	CHECK_INT(imp_errors_count(e), 3);
	CHECK_INT(imp_errors_dropped(e), 1);
	char buf[256];
	imp_error_format(imp_errors_get(e, 0), buf, sizeof(buf));
	CHECK_STR(buf, "p.yaml:3:7: unknown key 'foo'");
	imp_error_format(imp_errors_get(e, 1), buf, sizeof(buf));
	CHECK_STR(buf, "p.yaml:4:1: unknown list 'baz'; hint: did you mean "
		       "'bar'?");
	CHECK_STR(imp_errors_get(e, 1)->rule_id, "r1");
	imp_error_format(imp_errors_get(e, 2), buf, sizeof(buf));
	CHECK_STR(buf, "no file");
	/* truncation reports the length needed */
	size_t need = imp_error_format(imp_errors_get(e, 0), buf, 5);
	CHECK_INT(need, strlen("p.yaml:3:7: unknown key 'foo'"));
	CHECK_INT(strlen(buf), 4);
	CHECK(imp_errors_get(e, 3) == NULL);
	imp_errors_free(e);
}

static void test_utf8(void)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{"plain", true},
		{"caf\xc3\xa9", true},
		{"\xe2\x82\xac", true},
		{"\xf0\x9f\x98\x80", true},
		{"\xc0\xaf", false},         /* overlong '/' */
		{"\xe0\x80\xaf", false},     /* overlong */
		{"\xed\xa0\x80", false},     /* surrogate */
		{"\xf4\x90\x80\x80", false}, /* > U+10FFFF */
		{"\xc3", false},             /* truncated */
		{"\xff", false},
	};
	for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++)
		CHECK_MSG(imp_utf8_valid(cases[i].s, strlen(cases[i].s)) ==
				  cases[i].ok,
			  "case %zu", i);
}

static void test_misc(imp_ctx_t *ctx)
{
	CHECK(imp_strcasecmp("Acme.Example", "acme.example") == 0);
	CHECK(imp_strcasecmp("a", "b") < 0);
	CHECK(imp_strcaseeq_n("ABC", 3, "abc", 3));
	CHECK(!imp_strcaseeq_n("ABC", 3, "abcd", 4));
	CHECK_STR(imp_strerror(IMP_ERR_POLICY), "invalid policy");

	char hex[65];
	imp_sha256_t *h = imp_sha256_new();
	imp_sha256_update(h, "abc", 3);
	imp_sha256_final(h, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223"
		       "b00361a396177a9cb410ff61f20015ad");

	char path[] = "/tmp/imp-test-base-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, "hello\n", 6) == 6);
	close(fd);
	char *data;
	size_t len;
	char err[256];
	CHECK_INT(imp_read_file(ctx, path, 1024, &data, &len, err, sizeof(err)),
		  IMP_OK);
	CHECK_INT(len, 6);
	CHECK_STR(data, "hello\n");
	imp_mfree(ctx, data);
	CHECK_INT(imp_read_file(ctx, path, 3, &data, &len, err, sizeof(err)),
		  IMP_ERR_LIMIT);
	unlink(path);
	CHECK_INT(imp_read_file(ctx, path, 1024, &data, &len, err, sizeof(err)),
		  IMP_ERR_IO);
	CHECK(strstr(err, "No such file") != NULL);
	CHECK_INT(
		imp_read_file(ctx, "/tmp", 1024, &data, &len, err, sizeof(err)),
		IMP_ERR_IO);
}

int main(void)
{
	imp_allocator_t al = {counting_malloc, counting_realloc, counting_free,
			      NULL};
	imp_ctx_config_t cfg = {.version = IMP_CTX_CONFIG_VERSION,
				.alloc = &al};
	imp_ctx_t *ctx = NULL;
	CHECK_INT(imp_ctx_new(&cfg, &ctx), IMP_OK);
	imp_ctx_config_t bad = {.version = 99};
	imp_ctx_t *ctx2 = NULL;
	CHECK_INT(imp_ctx_new(&bad, &ctx2), IMP_ERR_INVALID);
	CHECK(imp_ctx_now(ctx) > 1600000000LL * 1000000);

	test_arena(ctx);
	test_buf(ctx);
	test_errors(ctx);
	test_utf8();
	test_misc(ctx);
	imp_ctx_free(ctx);
	CHECK_INT(live_blocks, 0);
	return CHECK_DONE();
}
