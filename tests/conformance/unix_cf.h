/* Checks shared by the UNIX socket programs: names, options, queued messages with their
 * boundaries and senders, socket files. Each reads the state back through the kernel. */
#ifndef CAIRN_UNIX_CF_H
#define CAIRN_UNIX_CF_H

#include "conformance.h"
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

/* A printable form of a UNIX address: "" unnamed, "@name" abstract, else the path. */
__attribute__((unused)) static const char *cf_addr(const struct sockaddr_un *a, socklen_t len, char *buf, size_t n) {
    size_t plen = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (plen == 0) {
        buf[0] = 0;
    } else if (a->sun_path[0] == 0) {
        snprintf(buf, n, "@%.*s", (int)(plen - 1), a->sun_path + 1);
    } else {
        snprintf(buf, n, "%.*s", (int)strnlen(a->sun_path, plen), a->sun_path);
    }
    return buf;
}

/* The local (peer = 0) or peer (peer = 1) name of `fd`, or "ERR:<errno name>". */
__attribute__((unused)) static const char *cf_name(int fd, int peer, char *buf, size_t n) {
    struct sockaddr_un a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    int r = peer ? getpeername(fd, (struct sockaddr *)&a, &len)
                 : getsockname(fd, (struct sockaddr *)&a, &len);
    if (r < 0) {
        snprintf(buf, n, "ERR:%s", strerrorname_np(errno));
        return buf;
    }
    return cf_addr(&a, len, buf, n);
}

#define CF_NAME(what, fd, want)                                                                \
    do {                                                                                       \
        char cf_b[128];                                                                        \
        CF_STREQ(what " (getsockname)", (want), cf_name((fd), 0, cf_b, sizeof cf_b));          \
    } while (0)

#define CF_PEER(what, fd, want)                                                                \
    do {                                                                                       \
        char cf_b[128];                                                                        \
        CF_STREQ(what " (getpeername)", (want), cf_name((fd), 1, cf_b, sizeof cf_b));          \
    } while (0)

__attribute__((unused)) static int cf_opt(int fd, int opt) {
    int v = -12345;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0) return -errno;
    return v;
}

/* Receives one message without waiting and checks its bytes, its length (no truncation,
 * MSG_EOR where `eor`) and, when `from` is not NULL, its sender's address. Returns the
 * message length (or -errno). */
__attribute__((unused)) static long cf_expect(const char *what, int fd, const char *want, const char *from, int eor) {
    char buf[4096];
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n < 0) {
        cf_fail("%s: expected \"%s\", recvmsg failed: %s", what, want, strerrorname_np(errno));
        return -errno;
    }
    if ((size_t)n != strlen(want) || memcmp(buf, want, n) != 0)
        cf_fail("%s: expected \"%s\", got \"%.*s\"", what, want, (int)n, buf);
    if (m.msg_flags & MSG_TRUNC) cf_fail("%s: MSG_TRUNC", what);
    if (eor >= 0 && !!(m.msg_flags & MSG_EOR) != eor)
        cf_fail("%s: MSG_EOR expected %d, flags 0x%x", what, eor, m.msg_flags);
    if (from) {
        char b[128];
        CF_STREQ("sender", from, cf_addr(&a, m.msg_namelen, b, sizeof b));
    }
    return n;
}

/* Checks that nothing is queued on `fd` (a peek would block). */
__attribute__((unused)) static void cf_expect_empty(const char *what, int fd) {
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
        cf_fail("%s: expected an empty queue, recv gave %zd (%s)", what, n,
                n < 0 ? strerrorname_np(errno) : "data");
}

/* Checks that `path` is a socket file with `mode` and owner `uid`. */
__attribute__((unused)) static void cf_sockfile(const char *path, unsigned mode, unsigned uid) {
    struct stat st;
    if (lstat(path, &st) < 0) {
        cf_fail("socket file %s: %s", path, strerrorname_np(errno));
        return;
    }
    if (!S_ISSOCK(st.st_mode)) cf_fail("%s is not a socket file", path);
    CF_EQ("socket file mode", mode, st.st_mode & 07777);
    CF_EQ("socket file owner", uid, st.st_uid);
}

/* Sends `s` (its length, no NUL) on `fd`; setup fails if it cannot. */
__attribute__((unused)) static void cf_send(int fd, const char *s) { CF_TRY(send(fd, s, strlen(s), MSG_DONTWAIT)); }

/* Sends `s` on `fd` to the bound name `path` ('@' first: abstract). */
__attribute__((unused)) static void cf_sendto(int fd, const char *s, const char *path) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    socklen_t len;
    if (path[0] == '@') {
        memcpy(a.sun_path + 1, path + 1, strlen(path) - 1);
        len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    } else {
        strcpy(a.sun_path, path);
        len = sizeof a;
    }
    CF_TRY(sendto(fd, s, strlen(s), MSG_DONTWAIT, (struct sockaddr *)&a, len));
}

/* A struct sockaddr_un for `path` ('@' first: abstract) and its length. */
static socklen_t cf_sun(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (path[0] == '@') {
        memcpy(a->sun_path + 1, path + 1, strlen(path) - 1);
        return offsetof(struct sockaddr_un, sun_path) + strlen(path);
    }
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

/* A new socket of `type` bound to `path` ('@' first: abstract; NULL: unbound). */
__attribute__((unused)) static int cf_bound(int type, const char *path) {
    int fd;
    CF_TRY(fd = socket(AF_UNIX, type, 0));
    if (path) {
        struct sockaddr_un a;
        socklen_t len = cf_sun(&a, path);
        if (path[0] != '@') unlink(path);
        CF_TRY(bind(fd, (struct sockaddr *)&a, len));
    }
    return fd;
}

/* Connects `fd` to `path` ('@' first: abstract). */
__attribute__((unused)) static void cf_connect(int fd, const char *path) {
    struct sockaddr_un a;
    socklen_t len = cf_sun(&a, path);
    CF_TRY(connect(fd, (struct sockaddr *)&a, len));
}

/* Writes the absolute path of `name` in the working directory into `buf` (108 bytes). */
__attribute__((unused)) static void cf_path(char *buf, const char *name) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || strlen(cwd) + strlen(name) + 2 > 108) {
        printf("SETUP FAILED: working directory too long for a socket name\n");
        exit(2);
    }
    strcpy(buf, cwd);
    strcat(buf, "/");
    strcat(buf, name);
}

/* Writes a fresh abstract name "@PREFIX-<uid>-<nanoseconds>" into `buf` (64 bytes): abstract
 * names are shared by every job of the machine. */
__attribute__((unused)) static void cf_abstract(char *buf, const char *prefix) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(buf, 64, "@%s-%u-%ld", prefix, (unsigned)getuid(), t.tv_nsec);
}

#endif
