/*
 * no-io-uring: run a command where io_uring is forbidden the way Docker's and Kubernetes'
 * default seccomp profiles forbid it: io_uring_setup, io_uring_enter and io_uring_register
 * fail with EPERM, every other system call is allowed.
 *
 *   no-io-uring COMMAND [ARG...]
 *
 * The filter is inherited by every child and thread and cannot be removed, so the whole
 * process tree of COMMAND runs without io_uring. Needs no privileges (PR_SET_NO_NEW_PRIVS).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* x32 callers use the x86_64 numbers with this bit set; the filter treats them alike. */
#define X32_BIT 0x40000000u

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    struct sock_filter filter[] = {
        /* Another architecture's numbers mean other calls: leave those alone. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~X32_BIT),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog program = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter,
    };
    /* Lets an unprivileged process install a filter (and keeps setuid from escaping it). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "no-io-uring: prctl(PR_SET_NO_NEW_PRIVS): %s\n", strerror(errno));
        return 126;
    }
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) {
        fprintf(stderr, "no-io-uring: seccomp(SECCOMP_SET_MODE_FILTER): %s\n", strerror(errno));
        return 126;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no-io-uring: exec %s: %s\n", argv[1], strerror(errno));
    return 127;
}
