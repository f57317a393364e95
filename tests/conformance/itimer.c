/* Interval timers (setitimer): ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
 * kind: timers
 * checks: getitimer interval and time left of each; the SIGALRM a periodic ITIMER_REAL delivers over a measured time; the SIGVTALRM a periodic ITIMER_VIRTUAL delivers while the program spins; a one-shot ITIMER_PROF's time left
 * root: restored
 */
#include "conformance.h"
#include <sys/time.h>
#include <time.h>

static volatile int alarms, vtalarms;
static void on_alrm(int s) { (void)s; alarms++; }
static void on_vt(int s) { (void)s; vtalarms++; }

static long long mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static long long cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void setup(void) {
    struct sigaction sa = {.sa_handler = on_alrm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_vt;
    sigaction(SIGVTALRM, &sa, NULL);
    struct itimerval real = {{0, 10000}, {0, 10000}}, virt = {{0, 20000}, {0, 20000}},
                     prof = {{0, 0}, {500, 0}};
    CF_TRY(setitimer(ITIMER_REAL, &real, NULL));
    CF_TRY(setitimer(ITIMER_VIRTUAL, &virt, NULL));
    CF_TRY(setitimer(ITIMER_PROF, &prof, NULL));
}

static void check(void) {
    struct itimerval v;
    CF_EQ("getitimer(ITIMER_REAL)", 0, getitimer(ITIMER_REAL, &v));
    CF_EQ("ITIMER_REAL interval (us)", 10000, v.it_interval.tv_sec * 1000000 + v.it_interval.tv_usec);
    if (v.it_value.tv_sec != 0 || v.it_value.tv_usec > 10000)
        cf_fail("ITIMER_REAL time left %ld.%06ld s", (long)v.it_value.tv_sec, (long)v.it_value.tv_usec);
    CF_EQ("getitimer(ITIMER_VIRTUAL)", 0, getitimer(ITIMER_VIRTUAL, &v));
    CF_EQ("ITIMER_VIRTUAL interval (us)", 20000, v.it_interval.tv_sec * 1000000 + v.it_interval.tv_usec);
    /* CPU-time timers count in scheduler ticks: allow one tick beyond the interval. */
    if (v.it_value.tv_sec != 0 || v.it_value.tv_usec > 30000)
        cf_fail("ITIMER_VIRTUAL time left %ld.%06ld s", (long)v.it_value.tv_sec, (long)v.it_value.tv_usec);
    CF_EQ("getitimer(ITIMER_PROF)", 0, getitimer(ITIMER_PROF, &v));
    CF_EQ("ITIMER_PROF interval", 0, v.it_interval.tv_sec + v.it_interval.tv_usec);
    if (v.it_value.tv_sec < 495 || v.it_value.tv_sec > 500)
        cf_fail("ITIMER_PROF time left %ld s, expected just under 500", (long)v.it_value.tv_sec);
    int a0 = alarms;
    long long start = mono();
    while (mono() - start < 500000000LL) {
        struct timespec d = {0, 5000000};
        nanosleep(&d, NULL);
    }
    int a = alarms - a0;
    if (a < 10 || a > 55) cf_fail("SIGALRM in 500 ms: %d, expected about 50 (at least 10 on a busy machine)", a);
    int v0 = vtalarms;
    long long c0 = cpu();
    while (cpu() - c0 < 300000000LL) {
        /* user time only: ITIMER_VIRTUAL does not count the clock_gettime syscalls */
        for (volatile int i = 0; i < 1000000; i++) {
        }
    }
    int n = vtalarms - v0;
    if (n < 8 || n > 17) cf_fail("SIGVTALRM in 300 ms of CPU time: %d, expected about 15", n);
}
CF_MAIN
