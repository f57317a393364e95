/* epoll_wait and epoll_pwait2 with a timeout that a checkpoint interrupts.
 * kind: interrupted syscalls
 * checks: epoll_wait and epoll_pwait2: no EINTR (the kernel fails them with EINTR at any stop, even SIGSTOP; cairn repeats the call), no early end, the call returns 0 (timeout); epoll_wait ends on time after a restart (repeated with the milliseconds left); epoll_pwait2 (its timeout is the program's memory) waits its whole timeout again (never more than once more)
 * root: restored
 * build: -lpthread
 */
#include "conformance.h"
#include "waits.h"
#include <sys/epoll.h>
#include <sys/syscall.h>

static int quiet[2], ep1, ep2;

static const char *w_epoll(void) {
    struct epoll_event ev;
    int n = epoll_wait(ep1, &ev, 1, WAIT_NS / 1000000);
    return n == 0 ? NULL : n < 0 ? strerror(errno) : "returned an event";
}
static const char *w_epoll2(void) {
    struct epoll_event ev;
    struct timespec t = {WAIT_NS / 1000000000LL, WAIT_NS % 1000000000LL};
    long n = syscall(SYS_epoll_pwait2, ep2, &ev, 1, &t, NULL, 8);
    return n == 0 ? NULL : n < 0 ? strerror(errno) : "returned an event";
}

static struct waiter ws[] = {
    {.name = "epoll_wait", .wait = w_epoll, .extra_ns = SLACK_NS},
    {.name = "epoll_pwait2", .wait = w_epoll2, .extra_ns = WAIT_NS + SLACK_NS},
};

static void setup(void) {
    CF_TRY(pipe(quiet));
    struct epoll_event ev = {.events = EPOLLIN};
    CF_TRY(ep1 = epoll_create1(0));
    CF_TRY(ep2 = epoll_create1(0));
    CF_TRY(epoll_ctl(ep1, EPOLL_CTL_ADD, quiet[0], &ev));
    CF_TRY(epoll_ctl(ep2, EPOLL_CTL_ADD, quiet[0], &ev));
    for (unsigned i = 0; i < sizeof ws / sizeof ws[0]; i++) waiters[n_waiters++] = &ws[i];
    start_waiters();
}
static void check(void) { check_waiters(); }
CF_MAIN
