/*
 * Start-up checks of the sandbox tooling.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byspawn.h"
#include "log.h"

/*
 * Run argv with stdin from /dev/null and stdout+stderr captured into out
 * (NUL-terminated, truncated to outlen).  0 when it ran, -1 when it could
 * not be started.
 */
int
spawn_run_capture(char *const argv[], char *out, size_t outlen, int *status)
{
	int	 p[2], devnull;
	size_t	 off = 0;
	ssize_t	 n;
	pid_t	 pid;
	char	 discard[256];

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	switch ((pid = fork())) {
	case -1:
		close(p[0]);
		close(p[1]);
		return -1;
	case 0:
		if ((devnull = open("/dev/null", O_RDONLY)) == -1 ||
		    dup2(devnull, STDIN_FILENO) == -1 ||
		    dup2(p[1], STDOUT_FILENO) == -1 ||
		    dup2(p[1], STDERR_FILENO) == -1)
			_exit(127);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "%s", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		if (off + 1 < outlen)
			n = read(p[0], out + off, outlen - off - 1);
		else
			n = read(p[0], discard, sizeof(discard));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (off + 1 < outlen)
			off += (size_t)n;
	}
	close(p[0]);
	if (outlen > 0)
		out[off] = '\0';
	while (waitpid(pid, status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
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
	if (spawn_run_capture(argv, out, sizeof(out), &status) == -1) {
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
