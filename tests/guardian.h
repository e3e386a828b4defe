/*
 * guardian.h -- cleanup after a test or benchmark process dies, even by
 * SIGKILL (ctest's timeout), which no atexit hook or signal handler sees;
 * the servers the process started would otherwise run on.
 *
 * test_guardian_start() forks a child that blocks on a pipe whose only
 * write end is ours (close-on-exec, so the servers we start do not inherit
 * it).  test_guardian_done() writes a "done" byte and closes it: call it
 * at exit, after cleaning up.  EOF without that byte means we died: the
 * child waits grace_ms (for a script we were running to exit), runs
 * cleanup() and exits, without returning into our code or running our
 * atexit hooks.  cleanup() must only use what was set up before the fork.
 */
#ifndef IMP_TEST_GUARDIAN_H
#define IMP_TEST_GUARDIAN_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* The write end of the guardian's pipe; -1 when there is no guardian. */
static int test_guard_fd = -1;

/* 0, or -1 with errno set (pipe or fork failed). */
static inline int test_guardian_start(void (*cleanup)(void), unsigned grace_ms)
{
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	fflush(NULL); /* the child must not write our buffers twice */
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		char c;
		ssize_t r;

		close(p[1]);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		do
			r = read(p[0], &c, 1);
		while (r < 0 && errno == EINTR);
		if (r != 1) {
			struct timespec ts = {grace_ms / 1000,
					      (long)(grace_ms % 1000) *
						      1000000L};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
			cleanup();
		}
		_exit(0);
	}
	close(p[0]);
	test_guard_fd = p[1];
	return 0;
}

static inline void test_guardian_done(void)
{
	if (test_guard_fd >= 0) {
		ssize_t r = write(test_guard_fd, "k", 1);

		(void)r;
		close(test_guard_fd);
		test_guard_fd = -1;
	}
}

#endif /* IMP_TEST_GUARDIAN_H */
