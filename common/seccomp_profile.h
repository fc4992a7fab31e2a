/*
 * The seccomp deny-list given to every worker sandbox (bwrap --seccomp).
 * Built with libseccomp for the native architecture and exported as
 * classic BPF; byctl writes it to a file and byspawn hands that file to
 * bwrap as a file descriptor.
 */

#ifndef BY_SECCOMP_PROFILE_H
#define BY_SECCOMP_PROFILE_H

#include <stddef.h>

/* Syscalls that fail with EPERM, NULL-terminated. */
extern const char *const seccomp_denied_syscalls[];

/*
 * Write the compiled filter to fd.  0 on success, -1 with a message in
 * err on failure.
 */
int	 seccomp_profile_export(int fd, char *err, size_t errlen);

/*
 * Write the compiled filter to path, mode 0644, replacing it atomically
 * (a temporary file next to it, then rename).
 */
int	 seccomp_profile_write(const char *path, char *err, size_t errlen);

/*
 * Sanity check of the exported filter file open on fd: a regular file,
 * not empty, whole BPF instructions, no more than the kernel takes.
 * Fills *ninsns.  0 when fine, -1 with a message.
 */
int	 seccomp_profile_check(int fd, size_t *ninsns, char *err,
	    size_t errlen);

#endif /* BY_SECCOMP_PROFILE_H */
