/* Pipe ends keep their status flags, their capacity and their unread bytes.
 * kind: pipe
 * checks: O_NONBLOCK, O_DIRECT (packets) and access mode of each end and of ends reopened through /proc, capacity, unread data, packet boundaries
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/ioctl.h>

static int a[2], b[2], c[2], d[4];

static void check_fl(const char *what, int fd, int want) {
    int fl = fcntl(fd, F_GETFL);
    CF_EQ(what, want, fl & (O_ACCMODE | O_NONBLOCK | O_DIRECT));
}

static void setup(void) {
    CF_TRY(pipe(a));                        /* both ends blocking */
    CF_TRY(fcntl(a[1], F_SETFL, O_NONBLOCK)); /* only the write end non-blocking */
    CF_TRY(pipe2(b, O_NONBLOCK));           /* both non-blocking */
    CF_TRY(fcntl(b[1], F_SETFL, 0));        /* ... then the write end blocking again */
    CF_TRY(pipe2(c, O_DIRECT));             /* packet mode */
    CF_TRY(fcntl(c[1], F_SETPIPE_SZ, 65536 * 2));
    CF_TRY(write(a[1], "abc", 3));
    CF_TRY(write(c[1], "p1", 2));
    CF_TRY(write(c[1], "p22", 3));
    CF_TRY(pipe(d));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", d[0]);
    CF_TRY(d[2] = open(path, O_RDONLY | O_NONBLOCK));
    CF_TRY(d[3] = open(path, O_RDWR));
}

static void check(void) {
    check_fl("a read end flags", a[0], O_RDONLY);
    check_fl("a write end flags", a[1], O_WRONLY | O_NONBLOCK);
    check_fl("b read end flags", b[0], O_RDONLY | O_NONBLOCK);
    check_fl("b write end flags", b[1], O_WRONLY);
    check_fl("c read end flags", c[0], O_RDONLY); /* pipe2(O_DIRECT) marks the write end only */
    check_fl("c write end flags", c[1], O_WRONLY | O_DIRECT);
    CF_EQ("c capacity", 65536 * 2, fcntl(c[0], F_GETPIPE_SZ));
    int n = 0;
    if (ioctl(a[0], FIONREAD, &n) < 0) cf_fail("FIONREAD: %s", strerror(errno));
    CF_EQ("a unread bytes", 3, n);
    char buf[16] = {0};
    /* unread data is peeked through tee so that both checks see it */
    int t[2];
    if (pipe(t) == 0) {
        ssize_t k = tee(a[0], t[1], 16, SPLICE_F_NONBLOCK);
        CF_EQ("a tee'd bytes", 3, k);
        if (k > 0 && read(t[0], buf, sizeof buf) != 3) cf_fail("reading tee'd bytes");
        CF_STREQ("a unread data", "abc", buf);
        close(t[0]);
        close(t[1]);
    }
    /* packet mode: one read returns one packet; put them back afterwards */
    n = 0;
    ioctl(c[0], FIONREAD, &n);
    CF_EQ("c unread bytes", 5, n);
    if (n == 5) {
        memset(buf, 0, sizeof buf);
        ssize_t k = read(c[0], buf, sizeof buf);
        CF_EQ("c first packet length", 2, k);
        CF_STREQ("c first packet", "p1", buf);
        if (k == 2) {
            memset(buf, 0, sizeof buf);
            k = read(c[0], buf, sizeof buf);
            CF_EQ("c second packet length", 3, k);
            CF_STREQ("c second packet", "p22", buf);
        }
        fcntl(c[1], F_SETFL, O_DIRECT);
        if (write(c[1], "p1", 2) != 2 || write(c[1], "p22", 3) != 3) cf_fail("refilling c");
    }
    /* d: one pipe end opened a second time through /proc: its own open file description */
    CF_EQ("d2 flags (a second open file description)", O_RDONLY | O_NONBLOCK,
          fcntl(d[2], F_GETFL) & (O_ACCMODE | O_NONBLOCK));
    CF_EQ("d0 flags", O_RDONLY, fcntl(d[0], F_GETFL) & (O_ACCMODE | O_NONBLOCK));
    CF_EQ("d3 flags (read-write open of a pipe)", O_RDWR, fcntl(d[3], F_GETFL) & (O_ACCMODE | O_NONBLOCK));
    /* d3 reads and writes the same pipe */
    if (write(d[3], "x", 1) != 1) cf_fail("writing through the read-write open of d: %s", strerror(errno));
    char ch = 0;
    if (read(d[2], &ch, 1) != 1 || ch != 'x') cf_fail("reading back through d2: %s", strerror(errno));
}
CF_MAIN
