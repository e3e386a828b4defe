/*
 * test_guardian.c -- tests/guardian.h, which the e2e harness and the
 * benchmarks rely on to stop their servers when ctest kills them.
 *
 * A child process starts a guardian whose cleanup creates a marker file,
 * then dies by SIGKILL (what ctest's timeout sends): the marker must
 * appear.  A child that calls test_guardian_done() before exiting must
 * leave no marker: the guardian runs its cleanup only when we died.
 */
#include "check.h"

#include "../guardian.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_marker[64];

static void make_marker(void)
{
	FILE *f = fopen(g_marker, "w");
	if (f)
		fclose(f);
}

/* Waits up to ms milliseconds for path to exist. */
static bool appears(const char *path, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (access(path, F_OK) == 0)
			return true;
		struct timespec ts = {0, 10000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Runs a child that starts a guardian and then either dies by SIGKILL
 * or finishes cleanly; returns its wait status. */
static int run_child(bool killed)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (test_guardian_start(make_marker, 0) != 0)
			_exit(3);
		if (killed)
			raise(SIGKILL);
		test_guardian_done();
		_exit(0);
	}
	int status = 0;
	if (pid > 0)
		waitpid(pid, &status, 0);
	return status;
}

int main(void)
{
	snprintf(g_marker, sizeof(g_marker), "/tmp/test_guardian.%ld",
		 (long)getpid());
	unlink(g_marker);

	int st = run_child(true);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK_MSG(appears(g_marker, 5000), "the guardian ran its cleanup after "
					   "SIGKILL");
	unlink(g_marker);

	st = run_child(false);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* give a wrongly running cleanup the time to show */
	CHECK_MSG(!appears(g_marker, 500), "no cleanup after a clean finish");
	unlink(g_marker);
	return CHECK_DONE();
}
