/* Futex waits with a timeout that a checkpoint interrupts.
 * kind: interrupted syscalls
 * checks: futex waits: no EINTR, no early end, each call times out; FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC time and pthread_cond_timedwait on a CLOCK_MONOTONIC condition end on time after a restart; FUTEX_WAIT (relative: the time left is only in the kernel's restart block) waits its whole timeout again (never more than once more)
 * root: restored
 * build: -lpthread
 */
#include "conformance.h"
#include "waits.h"
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>

static uint32_t word;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;

static const char *w_futex(void) {
    struct timespec t = {WAIT_NS / 1000000000LL, WAIT_NS % 1000000000LL};
    long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &t, NULL, 0);
    return r < 0 && errno == ETIMEDOUT ? NULL : r < 0 ? strerror(errno) : "woke up";
}
static const char *w_bitset(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += WAIT_NS / 1000000000LL;
    long r = syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 0, &t, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    return r < 0 && errno == ETIMEDOUT ? NULL : r < 0 ? strerror(errno) : "woke up";
}
static const char *w_cond(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += WAIT_NS / 1000000000LL;
    pthread_mutex_lock(&mu);
    int e = 0;
    while (e == 0) e = pthread_cond_timedwait(&cv, &mu, &t);
    pthread_mutex_unlock(&mu);
    return e == ETIMEDOUT ? NULL : strerror(e);
}
static struct waiter ws[] = {
    {.name = "FUTEX_WAIT (relative)", .wait = w_futex, .extra_ns = WAIT_NS + SLACK_NS},
    {.name = "FUTEX_WAIT_BITSET (absolute)", .wait = w_bitset, .extra_ns = SLACK_NS},
    {.name = "pthread_cond_timedwait (CLOCK_MONOTONIC)", .wait = w_cond, .extra_ns = SLACK_NS},
};

static void setup(void) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &a);
    for (unsigned i = 0; i < sizeof ws / sizeof ws[0]; i++) waiters[n_waiters++] = &ws[i];
    start_waiters();
}
static void check(void) { check_waiters(); }
CF_MAIN
