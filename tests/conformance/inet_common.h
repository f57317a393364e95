/* Helpers shared by the TCP and UDP conformance programs: loopback connections, unread-data
 * patterns checked without consuming them, socket addresses as text. */
#ifndef CAIRN_INET_COMMON_H
#define CAIRN_INET_COMMON_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* "ip:port" of a socket's own (peer = 0) or peer address. */
static __attribute__((unused)) const char *inet_name(int fd, int peer, char *buf, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                 : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (r < 0) {
        snprintf(buf, n, "(%s)", strerror(errno));
        return buf;
    }
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(buf, n, "%s:%d", ip, ntohs(a->sin_port));
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(buf, n, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
    return buf;
}

/* A loopback TCP connection of `family` (AF_INET: 127.0.0.1, AF_INET6: ::1): *cli connected
 * to *srv accepted from a listener that is closed again unless `keep` is given. */
static __attribute__((unused)) void inet_pair(int family, int *cli, int *srv, int *keep) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    int l;
    CF_TRY(l = socket(family, SOCK_STREAM, 0));
    CF_TRY(bind(l, (struct sockaddr *)&ss, len));
    CF_TRY(listen(l, 4));
    CF_TRY(getsockname(l, (struct sockaddr *)&ss, &len));
    CF_TRY(*cli = socket(family, SOCK_STREAM, 0));
    CF_TRY(connect(*cli, (struct sockaddr *)&ss, len));
    CF_TRY(*srv = accept(l, NULL, NULL));
    if (keep)
        *keep = l;
    else
        close(l);
}

/* Byte i of pattern `seed`. */
static __attribute__((unused)) unsigned char inet_byte(unsigned seed, size_t i) {
    return (unsigned char)((i * 2654435761u + seed * 40503u) >> 7);
}

/* Write n pattern bytes into fd (blocking socket); exits on failure. */
static __attribute__((unused)) void inet_send_pattern(int fd, unsigned seed, size_t n) {
    unsigned char buf[8192];
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        for (size_t i = 0; i < k; i++) buf[i] = inet_byte(seed, off + i);
        ssize_t w = send(fd, buf, k, 0);
        if (w < 0) {
            printf("SETUP FAILED: send: %s\n", strerror(errno));
            exit(2);
        }
        off += (size_t)w;
    }
}

/* Checks, without consuming, that exactly n pattern bytes are unread on fd. */
static __attribute__((unused)) void inet_check_unread(const char *what, int fd, unsigned seed, size_t n) {
    int inq = -1;
    ioctl(fd, FIONREAD, &inq);
    CF_EQ(what, (long long)n, inq);
    unsigned char *buf = malloc(n + 1);
    ssize_t r = recv(fd, buf, n + 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 && r < 0 && errno == EAGAIN) r = 0;
    if (r != (ssize_t)n) {
        cf_fail("%s: peeked %zd bytes, expected %zu", what, r, n);
    } else {
        for (size_t i = 0; i < n; i++)
            if (buf[i] != inet_byte(seed, i)) {
                cf_fail("%s: byte %zu differs", what, i);
                break;
            }
    }
    free(buf);
}

/* Checks getsockname/getpeername of fd against what setup saw. */
static __attribute__((unused)) void inet_check_names(const char *what, int fd, const char *local, const char *peer) {
    char a[128], b[128], w[160];
    snprintf(w, sizeof w, "%s getsockname", what);
    CF_STREQ(w, local, inet_name(fd, 0, a, sizeof a));
    snprintf(w, sizeof w, "%s getpeername", what);
    CF_STREQ(w, peer, inet_name(fd, 1, b, sizeof b));
}

/* TCP state (TCP_INFO) of fd. */
static __attribute__((unused)) int inet_tcp_state(int fd) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return -1;
    return ti.tcpi_state;
}

/* Round trip of one small message a -> b (consumed), behind whatever b had unread: only when
 * b had nothing unread. */
static __attribute__((unused)) void inet_check_live(const char *what, int a, int b) {
    char msg[] = "ping", got[8] = {0};
    if (send(a, msg, 4, MSG_NOSIGNAL) != 4) {
        cf_fail("%s: send: %s", what, strerror(errno));
        return;
    }
    int fl = fcntl(b, F_GETFL);
    fcntl(b, F_SETFL, fl & ~O_NONBLOCK);
    ssize_t r = recv(b, got, 4, MSG_WAITALL);
    fcntl(b, F_SETFL, fl);
    if (r != 4 || memcmp(got, msg, 4) != 0) cf_fail("%s: round trip got %zd bytes", what, r);
}

#endif
