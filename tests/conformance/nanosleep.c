/* Sleeps a checkpoint interrupts: nanosleep and clock_nanosleep, relative and absolute.
 * kind: interrupted syscalls
 * checks: sleeps: no EINTR, no early end; a relative sleep given a remaining-time pointer (nanosleep, clock_nanosleep on CLOCK_MONOTONIC and CLOCK_BOOTTIME) and an absolute CLOCK_MONOTONIC one end on time after a restart; one without that pointer (usleep) sleeps its whole request again (never more than once more)
 * root: restored
 * build: -lpthread
 */
#include "conformance.h"
#include "waits.h"

static struct timespec req(void) {
    struct timespec t = {WAIT_NS / 1000000000LL, WAIT_NS % 1000000000LL};
    return t;
}

static const char *w_nanosleep(void) {
    struct timespec r = req(), rem;
    return nanosleep(&r, &rem) ? strerror(errno) : NULL;
}
static const char *w_rel(clockid_t c) {
    struct timespec r = req(), rem;
    int e = clock_nanosleep(c, 0, &r, &rem);
    return e ? strerror(e) : NULL;
}
static const char *w_mono(void) { return w_rel(CLOCK_MONOTONIC); }
static const char *w_boot(void) { return w_rel(CLOCK_BOOTTIME); }
static const char *w_abs(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += WAIT_NS / 1000000000LL;
    int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
    return e ? strerror(e) : NULL;
}
static const char *w_usleep(void) { return usleep(WAIT_NS / 1000) ? strerror(errno) : NULL; }

static struct waiter ws[] = {
    {.name = "nanosleep with rmtp", .wait = w_nanosleep, .extra_ns = SLACK_NS},
    {.name = "clock_nanosleep(CLOCK_MONOTONIC) with rmtp", .wait = w_mono, .extra_ns = SLACK_NS},
    {.name = "clock_nanosleep(CLOCK_BOOTTIME) with rmtp", .wait = w_boot, .extra_ns = SLACK_NS},
    {.name = "clock_nanosleep(TIMER_ABSTIME)", .wait = w_abs, .extra_ns = SLACK_NS},
    {.name = "usleep (no rmtp)", .wait = w_usleep, .extra_ns = WAIT_NS + SLACK_NS},
};

static void setup(void) {
    for (unsigned i = 0; i < sizeof ws / sizeof ws[0]; i++) waiters[n_waiters++] = &ws[i];
    start_waiters();
}
static void check(void) { check_waiters(); }
CF_MAIN
