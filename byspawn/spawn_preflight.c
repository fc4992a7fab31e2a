/*
 * Start-up checks of the sandbox tooling.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byspawn.h"
#include "log.h"

#define PREFLIGHT_TIMEOUT_MS	10000

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
kill_wait(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/*
 * Run argv (no shell) in a process group of its own, with stdin from
 * /dev/null and stdout+stderr captured into out (NUL-terminated,
 * truncated to outlen).  0 when it ran and exited within timeout_ms
 * (its wait status in *status); -1 when it could not be started, or,
 * with ETIMEDOUT, when it took longer: then the whole group is killed,
 * grandchildren that hold the pipe included.  Blocks meanwhile: for
 * start-up checks only.
 */
int
spawn_run_capture(char *const argv[], char *out, size_t outlen, int *status,
    int timeout_ms)
{
	char		 discard[512];
	struct pollfd	 pfd;
	sigset_t	 none;
	int64_t		 deadline = now_ms() + timeout_ms;
	size_t		 off = 0;
	ssize_t		 n;
	pid_t		 pid, r;
	int		 p[2], devnull, t;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	switch ((pid = fork())) {
	case -1:
		close(p[0]);
		close(p[1]);
		return -1;
	case 0:
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if ((devnull = open("/dev/null", O_RDONLY)) == -1 ||
		    dup2(devnull, STDIN_FILENO) == -1 ||
		    dup2(p[1], STDOUT_FILENO) == -1 ||
		    dup2(p[1], STDERR_FILENO) == -1)
			_exit(127);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "%s", strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);		/* either side may win the race */
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		if ((t = (int)(deadline - now_ms())) <= 0)
			goto timeout;
		if (poll(&pfd, 1, t) == -1) {
			if (errno == EINTR)
				continue;
			goto timeout;
		}
		if (pfd.revents == 0)
			continue;
		if (off + 1 < outlen)
			n = read(p[0], out + off, outlen - off - 1);
		else
			n = read(p[0], discard, sizeof(discard));
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (off + 1 < outlen)
			off += (size_t)n;
	}
	close(p[0]);
	if (outlen > 0)
		out[off] = '\0';
	while ((r = waitpid(pid, status, WNOHANG)) != pid) {
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline) {
			kill_wait(pid);
			errno = ETIMEDOUT;
			return -1;
		}
		usleep(10000);
	}
	return 0;
 timeout:
	close(p[0]);
	kill_wait(pid);
	errno = ETIMEDOUT;
	return -1;
}

int
preflight_bwrap(const char *bwrap_path, char *version, size_t len,
    char *err, size_t errlen)
{
	char	*argv[] = { (char *)bwrap_path, "--version", NULL };
	char	 out[256];
	int	 status;

	if (access(bwrap_path, X_OK) == -1) {
		snprintf(err, errlen, "%s: %s (install bubblewrap)", bwrap_path,
		    strerror(errno));
		return -1;
	}
	if (spawn_run_capture(argv, out, sizeof(out), &status,
	    PREFLIGHT_TIMEOUT_MS) == -1) {
		snprintf(err, errlen, "%s: cannot run: %s", bwrap_path,
		    strerror(errno));
		return -1;
	}
	out[strcspn(out, "\n")] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    strncmp(out, "bubblewrap ", 11) != 0) {
		snprintf(err, errlen, "%s --version failed: %s", bwrap_path,
		    out[0] ? out : "no output");
		return -1;
	}
	snprintf(version, len, "%s", out);
	return 0;
}
