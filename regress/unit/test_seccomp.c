/*
 * The worker seccomp profile (common/seccomp_profile.c): the exported
 * BPF is well formed, bwrap loads it, and a probe under it sees EPERM
 * or ENOSYS for the denied calls while ordinary ones work.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <seccomp.h>

#include "seccomp_profile.h"

#define BWRAP	"/usr/bin/bwrap"

static char	 dir[256];
static char	 filter[512];
static char	 probe[512];

static void
suite_setup(void)
{
	const char	*t = getenv("TMPDIR");
	const char	*f = getenv("BY_FIXTURES");
	char		 cmd[4096], err[256];

	snprintf(dir, sizeof(dir), "%s/seccomp-test.XXXXXX",
	    t != NULL ? t : "/tmp");
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		abort();
	snprintf(filter, sizeof(filter), "%s/seccomp.bpf", dir);
	snprintf(probe, sizeof(probe), "%s/sysprobe", dir);
	snprintf(cmd, sizeof(cmd), "cc -O1 -o '%s' '%s/sysprobe.c'", probe,
	    f != NULL ? f : "regress/fixtures");
	if (system(cmd) != 0)
		abort();
	if (seccomp_profile_write(filter, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
}

static void
suite_teardown(void)
{
	unlink(filter);
	unlink(probe);
	rmdir(dir);
}

/*
 * Run the probe in a minimal bwrap sandbox, with the filter on fd 3
 * when filtered; its output in out, its wait status returned.
 */
static int
run_probe(int filtered, const char *arg, char *out, size_t len)
{
	char	*argv[64];
	int	 n = 0, p[2], fd = -1, st;
	size_t	 off = 0;
	ssize_t	 r;
	pid_t	 pid;

	argv[n++] = BWRAP;
	argv[n++] = "--unshare-user";
	argv[n++] = "--unshare-pid";
	argv[n++] = "--die-with-parent";
	argv[n++] = "--cap-drop";
	argv[n++] = "ALL";
	argv[n++] = "--ro-bind";
	argv[n++] = "/usr";
	argv[n++] = "/usr";
	argv[n++] = "--symlink";
	argv[n++] = "usr/lib";
	argv[n++] = "/lib";
	argv[n++] = "--symlink";
	argv[n++] = "usr/lib64";
	argv[n++] = "/lib64";
	argv[n++] = "--proc";
	argv[n++] = "/proc";
	argv[n++] = "--dev";
	argv[n++] = "/dev";
	argv[n++] = "--ro-bind";
	argv[n++] = probe;
	argv[n++] = "/sysprobe";
	if (filtered) {
		argv[n++] = "--seccomp";
		argv[n++] = "3";
		ck_assert_int_ne(fd = open(filter, O_RDONLY), -1);
	}
	argv[n++] = "/sysprobe";
	if (arg != NULL)
		argv[n++] = (char *)arg;
	argv[n] = NULL;
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		if (fd != -1 && dup2(fd, 3) == -1)
			_exit(126);
		execv(BWRAP, argv);
		_exit(127);
	}
	close(p[1]);
	if (fd != -1)
		close(fd);
	while (off + 1 < len && (r = read(p[0], out + off,
	    len - off - 1)) > 0)
		off += (size_t)r;
	out[off] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static json_t *
probe_json(int filtered)
{
	char		 out[4096];
	json_error_t	 jerr;
	json_t		*j;
	int		 st;

	st = run_probe(filtered, NULL, out, sizeof(out));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "probe status %d: %s", st, out);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j != NULL, "%s: %s", jerr.text, out);
	return j;
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "no %s", key);
	return json_string_value(v);
}

START_TEST(test_export)
{
	struct stat	 st;
	size_t		 n, i;
	char		 err[256], path[PATH_MAX];
	int		 fd;
	mode_t		 old;

	ck_assert_int_eq(stat(filter, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(st.st_size % 8, 0);
	ck_assert_int_ge(st.st_size, 92 * 8);
	ck_assert_int_ne(fd = open(filter, O_RDONLY), -1);
	ck_assert_int_eq(seccomp_profile_check(fd, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, (size_t)st.st_size / 8);
	close(fd);

	/* the 51 of machine facts, each a syscall of this architecture */
	for (n = 0; seccomp_denied_syscalls[n] != NULL; n++)
		ck_assert_msg(seccomp_syscall_resolve_name(
		    seccomp_denied_syscalls[n]) >= 0, "%s does not resolve",
		    seccomp_denied_syscalls[n]);
	ck_assert_int_eq(n, 51);
	for (i = 0; i < n; i++)
		ck_assert_str_ne(seccomp_denied_syscalls[i], "clone");

	/* mode 0644 whatever the umask; a short file is refused */
	snprintf(path, sizeof(path), "%s/umask.bpf", dir);
	old = umask(077);
	ck_assert_int_eq(seccomp_profile_write(path, err, sizeof(err)), 0);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_APPEND), -1);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	close(fd);
	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	ck_assert_int_eq(seccomp_profile_check(fd, &n, err, sizeof(err)), -1);
	close(fd);
	unlink(path);
	snprintf(path, sizeof(path), "%s/no/such/dir/x.bpf", dir);
	ck_assert_int_eq(seccomp_profile_write(path, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_in_bwrap)
{
	static const char *const eperm[] = { "ptrace", "keyctl", "bpf",
	    "mount", "unshare", "clone_newuser", "io_uring_setup",
	    "perf_event_open", "userfaultfd", "kexec_load", "personality",
	    "tiocsti", "tiocsti_high", NULL };
	json_t	*f, *u;
	size_t	 i;

	f = probe_json(1);
	for (i = 0; eperm[i] != NULL; i++)
		ck_assert_msg(strcmp(jstr(f, eperm[i]), "EPERM") == 0,
		    "%s: %s", eperm[i], jstr(f, eperm[i]));
	ck_assert_str_eq(jstr(f, "clone3"), "ENOSYS");
	ck_assert_str_eq(jstr(f, "getpid"), "ok");
	ck_assert_str_eq(jstr(f, "fork"), "ok");

	/* the same probe unfiltered: it is the filter that answers */
	u = probe_json(0);
	ck_assert_str_eq(jstr(u, "keyctl"), "ok");
	ck_assert_str_eq(jstr(u, "ptrace"), "ESRCH");
	ck_assert_str_eq(jstr(u, "clone3"), "EINVAL");
	ck_assert_str_eq(jstr(u, "io_uring_setup"), "EFAULT");
	ck_assert_str_eq(jstr(u, "tiocsti"), "ENOTTY");
	ck_assert_str_eq(jstr(u, "personality"), "ok");
	json_decref(f);
	json_decref(u);
}
END_TEST

/* Another ABI would dodge the syscall numbers: the process dies. */
START_TEST(test_bad_arch)
{
	char	 out[256];
	int	 st;

	st = run_probe(1, "x32", out, sizeof(out));
	/* bwrap relays the probe's death as 128 + SIGSYS */
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGSYS,
	    "status %d, output %s", st, out);
	ck_assert_ptr_null(strstr(out, "survived"));
	st = run_probe(0, "x32", out, sizeof(out));
	ck_assert(WIFEXITED(st));
}
END_TEST

static Suite *
seccomp_suite(void)
{
	Suite	*s = suite_create("seccomp");
	TCase	*tc = tcase_create("profile");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_export);
	tcase_add_test(tc, test_in_bwrap);
	tcase_add_test(tc, test_bad_arch);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(seccomp_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
