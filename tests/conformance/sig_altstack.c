/* The alternate signal stack of a thread, and a handler that runs on it.
 * kind: signals
 * checks: sigaltstack address, size and flags; a SA_ONSTACK handler runs on that stack
 * root: restored
 */
#include "conformance.h"
#include <stdint.h>

static char stack[64 * 1024];
static volatile uintptr_t handler_sp;
static void on_usr1(int s) {
    (void)s;
    int local;
    handler_sp = (uintptr_t)&local;
}

static void setup(void) {
    stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack, .ss_flags = 0};
    CF_TRY(sigaltstack(&ss, NULL));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    CF_TRY(sigaction(SIGUSR1, &sa, NULL));
}

static void check(void) {
    stack_t cur;
    sigaltstack(NULL, &cur);
    CF_EQ("sigaltstack address", (long)stack, (long)cur.ss_sp);
    CF_EQ("sigaltstack size", sizeof stack, cur.ss_size);
    CF_EQ("sigaltstack flags", 0, cur.ss_flags);
    handler_sp = 0;
    raise(SIGUSR1);
    CF_EQ("handler ran on the alternate stack", 1,
          handler_sp >= (uintptr_t)stack && handler_sp < (uintptr_t)stack + sizeof stack);
}

CF_MAIN
