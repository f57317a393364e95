/* timerfd_create(2) conformance across checkpoints: clocks, relative and absolute timers
 * (an absolute CLOCK_MONOTONIC timer keeps its expiry on the program's clock, which a
 * restored job sees continue from the checkpoint), TFD_TIMER_CANCEL_ON_SET, intervals,
 * expirations not read yet, O_NONBLOCK.
 * Usage: timerfd STEPS. Prints "step N ok" or "FAIL ..." with the difference. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL
#define MS 1000000LL
#define HOUR (3600 * NS)

static int bad;

static void fail(int step, const char *what, long long want, long long got) {
    printf("FAIL step %d: %s: expected %lld, got %lld\n", step, what, want, got);
    bad++;
}

static long long ns(struct timespec t) { return t.tv_sec * NS + t.tv_nsec; }

static long long now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return ns(t);
}

static struct timespec ts(long long v) {
    struct timespec t = {v / NS, v % NS};
    return t;
}

static long long info(int fd, const char *key, int base) {
    char path[64], line[256];
    long long v = -1;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) v = strtoll(line + strlen(key), NULL, base);
    fclose(f);
    return v;
}

static void arm(int fd, int flags, long long value, long long interval) {
    struct itimerspec its = {ts(interval), ts(value)};
    if (timerfd_settime(fd, flags, &its, NULL) < 0) { perror("timerfd_settime"); exit(2); }
}

/* The expiry of FD on clock C (now + time left), read when nothing slept in between. */
static long long expiry(int fd, clockid_t c, long long *interval) {
    for (;;) {
        struct itimerspec cur;
        long long a = now(c);
        timerfd_gettime(fd, &cur);
        long long b = now(c);
        *interval = ns(cur.it_interval);
        if (b - a < 2 * MS) return ns(cur.it_value) ? a + ns(cur.it_value) : 0;
    }
}

static void check_expiry(int i, const char *what, int fd, clockid_t c, long long want,
                         long long tolerance, long long want_interval) {
    long long interval, got = expiry(fd, c, &interval);
    if (got == 0 || llabs(got - want) > tolerance) fail(i, what, want, got);
    if (interval != want_interval) fail(i, "interval", want_interval, interval);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    /* Periodic, relative, non-blocking: 50 ms then every 100 ms, read now and then. */
    int per = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    arm(per, 0, 50 * MS, 100 * MS);
    /* Absolute on CLOCK_MONOTONIC, an hour ahead. */
    int mono = timerfd_create(CLOCK_MONOTONIC, 0);
    long long mono_at = now(CLOCK_MONOTONIC) + HOUR;
    arm(mono, TFD_TIMER_ABSTIME, mono_at, 0);
    /* Absolute on CLOCK_REALTIME with TFD_TIMER_CANCEL_ON_SET, and a 7 s period. */
    int real = timerfd_create(CLOCK_REALTIME, 0);
    long long real_at = now(CLOCK_REALTIME) + HOUR;
    arm(real, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, real_at, 7 * NS);
    /* Relative on CLOCK_BOOTTIME: continues from what was left (the restore itself takes a
     * little of the job's time, hence the tolerance). */
    int boot = timerfd_create(CLOCK_BOOTTIME, 0);
    long long boot_at = now(CLOCK_BOOTTIME) + HOUR;
    arm(boot, 0, HOUR, 0);
    /* Fired once, never read: one expiration pending. */
    int fired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    arm(fired, 0, 1000, 0);
    /* Every 5 ms, never read: the expirations pile up. */
    int fast = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    arm(fast, 0, 5 * MS, 5 * MS);
    /* Never armed. */
    int idle = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
    /* With CAP_WAKE_ALARM and an RTC, an alarm clock too. */
    int alarm = timerfd_create(CLOCK_BOOTTIME_ALARM, 0);
    long long alarm_at = now(CLOCK_BOOTTIME) + HOUR;
    if (alarm >= 0) arm(alarm, TFD_TIMER_ABSTIME, alarm_at, 0);
    if (per < 0 || mono < 0 || real < 0 || boot < 0 || fired < 0 || fast < 0 || idle < 0) {
        perror("timerfd_create");
        return 2;
    }
    usleep(10000);
    long long fast_ticks = 0;
    for (int i = 1; i <= steps; i++) {
        long long interval;
        check_expiry(i, "absolute CLOCK_MONOTONIC expiry", mono, CLOCK_MONOTONIC, mono_at, 20 * MS, 0);
        check_expiry(i, "absolute CLOCK_REALTIME expiry", real, CLOCK_REALTIME, real_at, 20 * MS, 7 * NS);
        check_expiry(i, "relative CLOCK_BOOTTIME expiry", boot, CLOCK_BOOTTIME, boot_at, 1000 * MS, 0);
        if (alarm >= 0)
            check_expiry(i, "absolute CLOCK_BOOTTIME_ALARM expiry", alarm, CLOCK_BOOTTIME, alarm_at, 20 * MS, 0);
        long long left = expiry(per, CLOCK_MONOTONIC, &interval);
        if (interval != 100 * MS) fail(i, "periodic interval", 100 * MS, interval);
        left -= now(CLOCK_MONOTONIC);
        if (left <= 0 || left > 100 * MS) fail(i, "periodic time left (ns, at most 100 ms)", 100 * MS, left);
        uint64_t n;
        if (read(per, &n, 8) < 0 && errno != EAGAIN) fail(i, "periodic read", 0, errno);
        if (info(mono, "clockid:", 10) != CLOCK_MONOTONIC) fail(i, "clockid", CLOCK_MONOTONIC, info(mono, "clockid:", 10));
        if (info(real, "clockid:", 10) != CLOCK_REALTIME) fail(i, "clockid", CLOCK_REALTIME, info(real, "clockid:", 10));
        if (info(boot, "clockid:", 10) != CLOCK_BOOTTIME) fail(i, "clockid", CLOCK_BOOTTIME, info(boot, "clockid:", 10));
        if (info(idle, "clockid:", 10) != CLOCK_BOOTTIME) fail(i, "clockid", CLOCK_BOOTTIME, info(idle, "clockid:", 10));
        if (info(real, "settime flags:", 8) != (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))
            fail(i, "settime flags", TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, info(real, "settime flags:", 8));
        if (info(mono, "settime flags:", 8) != TFD_TIMER_ABSTIME) fail(i, "settime flags", TFD_TIMER_ABSTIME, info(mono, "settime flags:", 8));
        if (info(boot, "settime flags:", 8) != 0) fail(i, "settime flags", 0, info(boot, "settime flags:", 8));
        if (info(fired, "ticks:", 10) != 1) fail(i, "unread expirations of a fired timer", 1, info(fired, "ticks:", 10));
        if (expiry(fired, CLOCK_MONOTONIC, &interval) != 0 || interval != 0) fail(i, "fired timer disarmed", 0, interval);
        if (expiry(idle, CLOCK_BOOTTIME, &interval) != 0 || interval != 0) fail(i, "idle timer disarmed", 0, interval);
        struct pollfd pf[2] = {{fired, POLLIN, 0}, {idle, POLLIN, 0}};
        poll(pf, 2, 0);
        if (pf[0].revents != POLLIN) fail(i, "fired timer readable", POLLIN, pf[0].revents);
        if (pf[1].revents != 0) fail(i, "idle timer not readable", 0, pf[1].revents);
        /* The fast timer's expirations only grow (timerfd_gettime counts the missed ones). */
        expiry(fast, CLOCK_MONOTONIC, &interval);
        long long t = info(fast, "ticks:", 10);
        if (t < fast_ticks || t < 1) fail(i, "unread expirations only grow", fast_ticks, t);
        fast_ticks = t;
        if (!(fcntl(per, F_GETFL) & O_NONBLOCK)) fail(i, "O_NONBLOCK", 1, 0);
        if (fcntl(mono, F_GETFL) & O_NONBLOCK) fail(i, "blocking", 0, 1);
        if (!(fcntl(per, F_GETFD) & FD_CLOEXEC)) fail(i, "FD_CLOEXEC", 1, 0);
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    uint64_t n = 0;
    if (read(fired, &n, 8) != 8 || n != 1) fail(steps, "reading the fired timer", 1, n);
    if (read(fast, &n, 8) != 8 || (long long)n < fast_ticks) fail(steps, "reading the fast timer", fast_ticks, n);
    printf("%s\n", bad ? "FAIL" : "PASS");
    return 0;
}
