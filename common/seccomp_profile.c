/*
 * The worker seccomp deny-list.  Everything is allowed except calls a
 * Shiny app never needs and that widen the kernel attack surface or
 * reach outside the sandbox: tracing, mounting, keyrings, BPF, module
 * and kexec loading, new namespaces, io_uring, clock setting, and a few
 * legacy interfaces.  A deny-list keeps R, its packages and the shell
 * commands apps run working; the sandbox (bwrap) does the confinement.
 */

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <seccomp.h>

#include "seccomp_profile.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME	0x00000080
#endif

/* A BPF program is at most BPF_MAXINSNS (4096) instructions of 8 bytes. */
#define BPF_INSN_SIZE	8
#define BPF_MAX_INSNS	4096

const char *const seccomp_denied_syscalls[] = {
	/* tracing and reading other processes */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	/* mounts, old and new API */
	"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount",
	"fspick", "move_mount", "open_tree", "mount_setattr",
	/* namespaces (clone flags are handled below) */
	"setns", "unshare",
	/* kernel keyrings */
	"keyctl", "add_key", "request_key",
	/* kernel extension, loading and power */
	"bpf", "init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "reboot", "swapon", "swapoff", "acct",
	/* surfaces with a long history of exploits */
	"userfaultfd", "perf_event_open", "io_uring_setup", "io_uring_enter",
	"io_uring_register",
	/* host clock */
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	/* file handles bypass path lookup (container escapes) */
	"open_by_handle_at", "name_to_handle_at",
	/* hardware and legacy interfaces */
	"quotactl", "iopl", "ioperm", "lookup_dcookie", "personality",
	"syslog", "vhangup", "nfsservctl", "uselib", "sysfs", "_sysctl",
	NULL
};

/* clone() with any of these fails: a worker makes no new namespaces. */
static const unsigned long clone_ns_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME,
};

static int
deny_syscalls(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	size_t	 i;
	int	 nr, r;

	for (i = 0; seccomp_denied_syscalls[i] != NULL; i++) {
		nr = seccomp_syscall_resolve_name(seccomp_denied_syscalls[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;	/* not a syscall of this architecture */
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr,
		    0)) < 0) {
			snprintf(err, errlen, "seccomp rule for %s: %s",
			    seccomp_denied_syscalls[i], strerror(-r));
			return -1;
		}
	}
	return 0;
}

static int
deny_clone_ns(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	size_t	 i;
	int	 r;

	/*
	 * One masked compare per flag: libseccomp ORs the rules of one
	 * syscall, so any flag set matches.  clone3 passes its flags in
	 * memory that BPF cannot read, so it answers ENOSYS and glibc
	 * falls back to clone, which is checked here.
	 */
	for (i = 0; i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]);
	    i++) {
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ,
		    clone_ns_flags[i], clone_ns_flags[i]))) < 0) {
			snprintf(err, errlen, "seccomp rule for clone: %s",
			    strerror(-r));
			return -1;
		}
	}
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0)) < 0) {
		snprintf(err, errlen, "seccomp rule for clone3: %s",
		    strerror(-r));
		return -1;
	}
	return 0;
}

static int
deny_tty_injection(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const unsigned long	 cmds[] = { TIOCSTI, TIOCLINUX };
	size_t			 i;
	int			 r;

	/*
	 * Pushing bytes into a terminal's input runs commands as whoever
	 * reads it.  The request is an int: compare the low 32 bits only,
	 * so high garbage bits cannot dodge the rule.
	 */
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ,
		    0xffffffffUL, cmds[i]))) < 0) {
			snprintf(err, errlen, "seccomp rule for ioctl: %s",
			    strerror(-r));
			return -1;
		}
	}
	return 0;
}

static scmp_filter_ctx
profile_build(char *err, size_t errlen)
{
	scmp_filter_ctx	 ctx;
	int		 r;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return NULL;
	}
	/* other ABIs (i386, x32) would bypass the numbers checked here */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) < 0) {
		snprintf(err, errlen, "seccomp bad-arch action: %s",
		    strerror(-r));
		seccomp_release(ctx);
		return NULL;
	}
	if (deny_syscalls(ctx, err, errlen) == -1 ||
	    deny_clone_ns(ctx, err, errlen) == -1 ||
	    deny_tty_injection(ctx, err, errlen) == -1) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

int
seccomp_profile_export(int fd, char *err, size_t errlen)
{
	scmp_filter_ctx	 ctx;
	int		 r;

	if ((ctx = profile_build(err, errlen)) == NULL)
		return -1;
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0) {
		snprintf(err, errlen, "seccomp_export_bpf: %s", strerror(-r));
		return -1;
	}
	return 0;
}

int
seccomp_profile_write(const char *path, char *err, size_t errlen)
{
	char	 dir[PATH_MAX], tmp[PATH_MAX];
	int	 fd;

	if (strlcpy(dir, path, sizeof(dir)) >= sizeof(dir) ||
	    snprintf(tmp, sizeof(tmp), "%s/.seccomp.XXXXXX",
	    dirname(dir)) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	/* read by byspawn as root and by operators: not secret */
	if (fchmod(fd, 0644) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (seccomp_profile_export(fd, err, errlen) == -1)
		goto fail;
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

int
seccomp_profile_check(int fd, size_t *ninsns, char *err, size_t errlen)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		return -1;
	}
	if (st.st_size == 0 || st.st_size % BPF_INSN_SIZE != 0 ||
	    st.st_size > BPF_MAX_INSNS * BPF_INSN_SIZE) {
		snprintf(err, errlen, "%lld bytes is not a BPF program (export "
		    "it with byctl seccomp export)", (long long)st.st_size);
		return -1;
	}
	*ninsns = (size_t)st.st_size / BPF_INSN_SIZE;
	return 0;
}
