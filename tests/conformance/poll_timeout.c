/* poll and ppoll with a timeout that a checkpoint interrupts.
 * kind: interrupted syscalls
 * checks: poll and ppoll: no EINTR, no early end, the call returns 0 (timeout) and ends on time after a restart (ppoll: the kernel writes the time left back to its timeout; poll: the time left is only in the kernel's restart block, cairn dates the thread's sleep and re-issues poll with what was left)
 * root: restored
 * build: -lpthread
 */
#include "conformance.h"
#include "waits.h"
#include <poll.h>

static int quiet[2];

static const char *w_poll(void) {
    struct pollfd p = {.fd = quiet[0], .events = POLLIN};
    int r = poll(&p, 1, WAIT_NS / 1000000);
    return r == 0 ? NULL : r < 0 ? strerror(errno) : "returned an event";
}
static const char *w_ppoll(void) {
    struct pollfd p = {.fd = quiet[0], .events = POLLIN};
    struct timespec t = {WAIT_NS / 1000000000LL, WAIT_NS % 1000000000LL};
    int r = ppoll(&p, 1, &t, NULL);
    return r == 0 ? NULL : r < 0 ? strerror(errno) : "returned an event";
}

static struct waiter ws[] = {
    {.name = "poll", .wait = w_poll, .extra_ns = SLACK_NS},
    {.name = "ppoll", .wait = w_ppoll, .extra_ns = SLACK_NS},
};

static void setup(void) {
    CF_TRY(pipe(quiet));
    for (unsigned i = 0; i < sizeof ws / sizeof ws[0]; i++) waiters[n_waiters++] = &ws[i];
    start_waiters();
}
static void check(void) { check_waiters(); }
CF_MAIN
