/* UDP sockets: bound, connected, and their queued datagrams.
 * kind: UDP socket
 * checks: bound address (IPv4, IPv6, wildcard), connected peer, queued datagrams (count, boundaries, content, source address), SO_BROADCAST, O_NONBLOCK
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"

static int a, b, c, w, v6a, v6b;
static char names[6][2][128];

static int udp(int family, const char *ip, int port) {
    int fd;
    CF_TRY(fd = socket(family, SOCK_DGRAM, 0));
    if (!ip) return fd;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *x = (struct sockaddr_in *)&ss;
        x->sin_family = AF_INET;
        x->sin_port = htons(port);
        inet_pton(AF_INET, ip, &x->sin_addr);
        len = sizeof *x;
    } else {
        struct sockaddr_in6 *x = (struct sockaddr_in6 *)&ss;
        x->sin6_family = AF_INET6;
        x->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &x->sin6_addr);
        len = sizeof *x;
    }
    CF_TRY(bind(fd, (struct sockaddr *)&ss, len));
    return fd;
}

static void to(int from, int dst, const char *msg, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CF_TRY(getsockname(dst, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CF_TRY(sendto(from, msg, n, 0, (struct sockaddr *)&ss, len));
}

static const char *msgs[] = {"one", "datagram number two", "3", "the fourth and last"};

static void setup(void) {
    a = udp(AF_INET, "127.0.0.1", 0);
    b = udp(AF_INET, "127.0.0.2", 0);
    w = udp(AF_INET, "0.0.0.0", 0); /* wildcard */
    c = udp(AF_INET, "127.0.0.1", 0);
    struct sockaddr_in p;
    socklen_t len = sizeof p;
    CF_TRY(getsockname(a, (struct sockaddr *)&p, &len));
    CF_TRY(connect(c, (struct sockaddr *)&p, len)); /* c -> a */
    int one = 1;
    CF_TRY(setsockopt(b, SOL_SOCKET, SO_BROADCAST, &one, sizeof one));
    fcntl(w, F_SETFL, O_NONBLOCK);
    v6a = udp(AF_INET6, "::1", 0);
    v6b = udp(AF_INET6, "::1", 0);
    /* Queued: on a, from b, c, b; on w, from a; on v6a, from v6b (a large one too). */
    to(b, a, msgs[0], strlen(msgs[0]));
    CF_TRY(send(c, msgs[1], strlen(msgs[1]), 0));
    to(b, a, msgs[2], strlen(msgs[2]));
    to(a, w, msgs[3], strlen(msgs[3]));
    static char big[40000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)inet_byte(5, i);
    to(v6b, v6a, big, sizeof big);
    to(v6b, v6a, msgs[0], 1);
    int fds[6] = {a, b, c, w, v6a, v6b};
    for (int i = 0; i < 6; i++) {
        inet_name(fds[i], 0, names[i][0], 128);
        inet_name(fds[i], 1, names[i][1], 128);
    }
}

/* Checks the datagrams queued on fd (peeked with SO_PEEK_OFF, left in place). */
static void check_queue(const char *what, int fd, int n, const char **want, size_t *lens,
                        const char **from) {
    int off = 0;
    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
    static char buf[70000];
    for (int i = 0; i <= n; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ssize_t r = recvfrom(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT, (struct sockaddr *)&ss, &len);
        if (i == n) {
            if (r >= 0) cf_fail("%s: more than %d datagrams queued", what, n);
            break;
        }
        if (r < 0) {
            cf_fail("%s: datagram %d missing (%s)", what, i, strerror(errno));
            break;
        }
        if ((size_t)r != lens[i] || memcmp(buf, want[i], lens[i]) != 0)
            cf_fail("%s: datagram %d differs (%zd bytes, expected %zu)", what, i, r, lens[i]);
        char src[128], ip[64];
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
            snprintf(src, sizeof src, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
            snprintf(src, sizeof src, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
        char w[96];
        snprintf(w, sizeof w, "%s datagram %d source", what, i);
        CF_STREQ(w, from[i], src);
    }
    off = -1;
    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
}

static void check(void) {
    int fds[6] = {a, b, c, w, v6a, v6b};
    const char *what[6] = {"a", "b", "c (connected)", "w (wildcard)", "v6a", "v6b"};
    for (int i = 0; i < 6; i++) inet_check_names(what[i], fds[i], names[i][0], names[i][1]);
    const char *qa[] = {msgs[0], msgs[1], msgs[2]};
    size_t la[] = {strlen(msgs[0]), strlen(msgs[1]), strlen(msgs[2])};
    const char *fa[] = {names[1][0], names[2][0], names[1][0]};
    check_queue("a", a, 3, qa, la, fa);
    const char *qw[] = {msgs[3]};
    size_t lw[] = {strlen(msgs[3])};
    const char *fw[] = {names[0][0]};
    check_queue("w", w, 1, qw, lw, fw);
    static char big[40000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)inet_byte(5, i);
    const char *q6[] = {big, msgs[0]};
    size_t l6[] = {sizeof big, 1};
    const char *f6[] = {names[5][0], names[5][0]};
    check_queue("v6a", v6a, 2, q6, l6, f6);
    int v = 0;
    socklen_t len = sizeof v;
    getsockopt(b, SOL_SOCKET, SO_BROADCAST, &v, &len);
    CF_EQ("b SO_BROADCAST", 1, v);
    CF_EQ("w O_NONBLOCK", O_NONBLOCK, fcntl(w, F_GETFL) & O_NONBLOCK);
    /* The connected socket still reaches its peer, behind the queue: not read here. */
}
CF_MAIN
