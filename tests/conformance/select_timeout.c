/* select and pselect with a timeout that a checkpoint interrupts.
 * kind: interrupted syscalls
 * checks: select and pselect: no EINTR, no early end, the call returns 0 (timeout); both end on time after a restart (the kernel writes the time left back to their timeout)
 * root: restored
 * build: -lpthread
 */
#include "conformance.h"
#include "waits.h"
#include <sys/select.h>

static int quiet[2];

static const char *w_select(void) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(quiet[0], &r);
    struct timeval t = {WAIT_NS / 1000000000LL, (WAIT_NS % 1000000000LL) / 1000};
    int n = select(quiet[0] + 1, &r, NULL, NULL, &t);
    return n == 0 ? NULL : n < 0 ? strerror(errno) : "returned an event";
}
static const char *w_pselect(void) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(quiet[0], &r);
    struct timespec t = {WAIT_NS / 1000000000LL, WAIT_NS % 1000000000LL};
    int n = pselect(quiet[0] + 1, &r, NULL, NULL, &t, NULL);
    return n == 0 ? NULL : n < 0 ? strerror(errno) : "returned an event";
}

static struct waiter ws[] = {
    {.name = "select", .wait = w_select, .extra_ns = SLACK_NS},
    {.name = "pselect", .wait = w_pselect, .extra_ns = SLACK_NS},
};

static void setup(void) {
    CF_TRY(pipe(quiet));
    for (unsigned i = 0; i < sizeof ws / sizeof ws[0]; i++) waiters[n_waiters++] = &ws[i];
    start_waiters();
}
static void check(void) { check_waiters(); }
CF_MAIN
