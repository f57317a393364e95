/* epoll: the interest list with events, flags and data, and readiness pending at the checkpoint.
 * kind: epoll
 * checks: every entry's events mask, EPOLLET/EPOLLONESHOT flags and 64-bit data (/proc/self/fdinfo tfd lines); a level-triggered ready target is reported again; an entry on a nested epoll instance; a disarmed one-shot stays silent
 * root: restored
 */
#include "conformance.h"
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int ep, inner, ready, quiet, shot, p[2];

static void setup(void) {
    CF_TRY(ep = epoll_create1(EPOLL_CLOEXEC));
    CF_TRY(inner = epoll_create1(0));
    CF_TRY(ready = eventfd(3, EFD_NONBLOCK));
    CF_TRY(quiet = eventfd(0, EFD_NONBLOCK));
    CF_TRY(shot = eventfd(1, EFD_NONBLOCK));
    CF_TRY(pipe(p));
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0x1111222233334444ULL};
    CF_TRY(epoll_ctl(ep, EPOLL_CTL_ADD, ready, &e));
    e.events = EPOLLIN | EPOLLET;
    e.data.u64 = 7;
    CF_TRY(epoll_ctl(ep, EPOLL_CTL_ADD, quiet, &e));
    e.events = EPOLLIN | EPOLLONESHOT;
    e.data.u64 = 9;
    CF_TRY(epoll_ctl(ep, EPOLL_CTL_ADD, shot, &e));
    e.events = EPOLLIN;
    e.data.u64 = 11;
    CF_TRY(epoll_ctl(inner, EPOLL_CTL_ADD, p[0], &e));
    e.data.u64 = 12;
    CF_TRY(epoll_ctl(ep, EPOLL_CTL_ADD, inner, &e));
    struct epoll_event out[8];
    CF_TRY(epoll_wait(ep, out, 8, 0)); /* fires and disarms the one-shot */
}

static void check(void) {
    struct epoll_event out[8];
    int n = epoll_wait(ep, out, 8, 0);
    CF_EQ("ready entries", 1, n);
    CF_EQ("the ready entry's data", 0x1111222233334444LL, (long long)(n > 0 ? out[0].data.u64 : 0));
    CF_EQ("its events", EPOLLIN, n > 0 ? out[0].events : 0);
    /* Edge-triggered: a new write is one report. */
    uint64_t v = 1;
    write(quiet, &v, 8);
    n = epoll_wait(ep, out, 8, 0);
    int saw7 = 0;
    for (int i = 0; i < n; i++) saw7 += out[i].data.u64 == 7;
    CF_EQ("edge reported once", 1, saw7);
    n = epoll_wait(ep, out, 8, 0);
    saw7 = 0;
    for (int i = 0; i < n; i++) saw7 += out[i].data.u64 == 7;
    CF_EQ("edge not reported again", 0, saw7);
    read(quiet, &v, 8);
    /* Nested: data in the pipe makes the inner instance ready. */
    CF_EQ("pipe write", 1, write(p[1], "x", 1));
    n = epoll_wait(ep, out, 8, 0);
    int saw12 = 0;
    for (int i = 0; i < n; i++) saw12 += out[i].data.u64 == 12;
    CF_EQ("nested instance ready", 1, saw12);
    struct epoll_event in[2];
    CF_EQ("inner reports the pipe", 1, epoll_wait(inner, in, 2, 0));
    char c;
    read(p[0], &c, 1);
    /* The one-shot fired before the checkpoint: it must stay silent although readable. */
    n = epoll_wait(ep, out, 8, 0);
    int saw9 = 0;
    for (int i = 0; i < n; i++) saw9 += out[i].data.u64 == 9;
    CF_EQ("disarmed one-shot silent", 0, saw9);
}

CF_MAIN
