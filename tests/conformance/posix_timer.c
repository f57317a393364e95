/* POSIX timers (timer_create) on the wall and monotonic clocks.
 * kind: timers
 * checks: timer ids (with a gap left by a deleted timer) and the id the next timer_create hands out; clock, signal number, notification and value of each timer (/proc/self/timers); interval and time left (timer_gettime) of a periodic CLOCK_REALTIME timer driving a handler, an absolute CLOCK_MONOTONIC timer (keeps its expiry), a relative CLOCK_BOOTTIME one, a periodic SIGEV_NONE one, a disarmed one; the signals the periodic timer delivers over a measured time, with their si_code and value; timer_getoverrun of a one-shot timer
 * root: restored
 * build: -lrt
 */
#include "conformance.h"
#include <time.h>

#define NT 5
static timer_t t[NT];
static volatile sig_atomic_t ticks, bad_info;
static struct timespec mono0, abs_expiry;
static long next_expected;
static char proc0[NT][160];

static void on_tick(int sig, siginfo_t *si, void *uc) {
    (void)sig, (void)uc;
    if (si->si_code != SI_TIMER || si->si_value.sival_ptr != (void *)0x1234) bad_info = 1;
    ticks++;
}

static long long ns(struct timespec a) { return a.tv_sec * 1000000000LL + a.tv_nsec; }
static long long now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ns(ts);
}

/* The 4-line block of /proc/self/timers for timer `id` (blocks come in any order). */
static void proc_block(long id, char *out, size_t len) {
    char buf[8192];
    out[0] = 0;
    FILE *f = fopen("/proc/self/timers", "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char key[32];
    snprintf(key, sizeof key, "ID: %ld\n", id);
    char *p = buf;
    while ((p = strstr(p, key)) && p != buf && p[-1] != '\n') p++;
    if (!p) return;
    char *end = p;
    for (int lines = 0; lines < 4 && (end = strchr(end, '\n')); lines++) end++;
    if (!end) end = p + strlen(p);
    snprintf(out, len, "%.*s", (int)(end - p), p);
}

static void setup(void) {
    struct sigaction sa = {.sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigaction(SIGRTMIN + 1, &sa, NULL);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
    sev.sigev_value.sival_ptr = (void *)0x1234;
    clockid_t clocks[NT] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
                            CLOCK_MONOTONIC};
    timer_t gone = 0;
    for (int i = 0; i < NT; i++) {
        struct sigevent s = sev;
        if (i == 4) s.sigev_notify = SIGEV_NONE;
        if (i == 2) {
            CF_TRY(timer_create(CLOCK_REALTIME, &s, &gone));
            s.sigev_value.sival_int = 77;
        }
        CF_TRY(timer_create(clocks[i], &s, &t[i]));
    }
    CF_TRY(timer_delete(gone)); /* a gap in the ids */
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    struct itimerspec tick = {{0, 10000000}, {0, 10000000}};
    CF_TRY(timer_settime(t[0], 0, &tick, NULL));
    abs_expiry = mono0;
    abs_expiry.tv_sec += 1000;
    struct itimerspec at = {{0, 0}, abs_expiry};
    CF_TRY(timer_settime(t[1], TIMER_ABSTIME, &at, NULL));
    struct itimerspec disarmed = {{3, 0}, {0, 0}};
    CF_TRY(timer_settime(t[2], 0, &disarmed, NULL));
    struct itimerspec rel = {{0, 0}, {2000, 0}};
    CF_TRY(timer_settime(t[3], 0, &rel, NULL));
    struct itimerspec none = {{0, 250000000}, {0, 250000000}};
    CF_TRY(timer_settime(t[4], 0, &none, NULL));
    for (int i = 0; i < NT; i++) proc_block((long)(intptr_t)t[i], proc0[i], sizeof proc0[i]);
    next_expected = (long)(intptr_t)t[NT - 1] + 1;
}

static void check_left(const char *what, timer_t id, long long want_ns, long long slack_ns,
                       long long interval_ns) {
    struct itimerspec cur;
    if (timer_gettime(id, &cur) != 0) {
        cf_fail("%s: timer_gettime: %s", what, strerror(errno));
        return;
    }
    long long left = ns(cur.it_value);
    if (left < want_ns - slack_ns || left > want_ns + slack_ns)
        cf_fail("%s: time left %lld ns, expected %lld ns (within %lld)", what, left, want_ns,
                slack_ns);
    if (ns(cur.it_interval) != interval_ns)
        cf_fail("%s: interval %lld ns, expected %lld", what, ns(cur.it_interval), interval_ns);
}

static void check(void) {
    for (int i = 0; i < NT; i++) {
        char got[160];
        proc_block((long)(intptr_t)t[i], got, sizeof got);
        CF_STREQ("/proc/self/timers entry", proc0[i], got);
    }
    long long elapsed = now(CLOCK_MONOTONIC) - ns(mono0);
    check_left("periodic CLOCK_REALTIME timer", t[0], 5000000, 5000001, 10000000);
    check_left("absolute CLOCK_MONOTONIC timer", t[1], ns(abs_expiry) - now(CLOCK_MONOTONIC),
               20000000, 0);
    check_left("disarmed timer", t[2], 0, 0, 0);
    check_left("relative CLOCK_BOOTTIME timer", t[3], 2000000000000LL - elapsed, 500000000, 0);
    check_left("periodic SIGEV_NONE timer", t[4], 125000000, 125000001, 250000000);
    CF_EQ("timer_getoverrun of the one-shot timer", 0, timer_getoverrun(t[3]));
    /* The periodic timer's signals over 500 ms (10 ms period). */
    sig_atomic_t before = ticks;
    long long start = now(CLOCK_MONOTONIC);
    while (now(CLOCK_MONOTONIC) - start < 500000000LL) {
        struct timespec d = {0, 5000000};
        nanosleep(&d, NULL);
    }
    int n = ticks - before;
    if (n < 10 || n > 55) cf_fail("periodic timer: %d signals in 500 ms, expected about 50 (at least 10 on a busy machine)", n);
    CF_EQ("signal info (si_code SI_TIMER, the timer's value)", 0, bad_info);
    /* The next timer gets the id after the highest one. */
    timer_t nt;
    struct sigevent s = {.sigev_notify = SIGEV_NONE};
    CF_EQ("timer_create", 0, timer_create(CLOCK_MONOTONIC, &s, &nt));
    CF_EQ("id of a new timer", next_expected, (long)(intptr_t)nt);
    next_expected++;
}
CF_MAIN
