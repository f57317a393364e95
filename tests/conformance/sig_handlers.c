/* Signal dispositions: handlers with their flags and masks, ignored signals, defaults.
 * kind: signals
 * checks: sa_handler, sa_flags (SA_RESTART, SA_SIGINFO, SA_NODEFER, SA_RESETHAND, SA_ONSTACK), sa_mask of each handler; SIG_IGN; SIG_DFL; a handler still runs when its signal arrives
 * root: restored
 */
#include "conformance.h"

static volatile sig_atomic_t got_usr1, got_rt;
static void on_usr1(int s) { (void)s; got_usr1++; }
static void on_rt(int s, siginfo_t *si, void *u) { (void)s; (void)u; got_rt = si->si_value.sival_int; }

static void setup(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaddset(&sa.sa_mask, SIGRTMIN + 3);
    CF_TRY(sigaction(SIGUSR1, &sa, NULL));
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
    CF_TRY(sigaction(SIGRTMIN + 5, &sa, NULL));
    CF_TRY(signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0);
    CF_TRY(signal(SIGWINCH, SIG_IGN) == SIG_ERR ? -1 : 0);
}

static void check(void) {
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    CF_EQ("SIGUSR1 handler", (long)on_usr1, (long)cur.sa_handler);
    CF_EQ("SIGUSR1 SA_RESTART|SA_NODEFER", SA_RESTART | SA_NODEFER, cur.sa_flags & (SA_RESTART | SA_NODEFER | SA_SIGINFO | SA_RESETHAND | SA_ONSTACK));
    CF_EQ("SIGUSR1 mask has SIGHUP", 1, sigismember(&cur.sa_mask, SIGHUP));
    CF_EQ("SIGUSR1 mask has SIGRTMIN+3", 1, sigismember(&cur.sa_mask, SIGRTMIN + 3));
    CF_EQ("SIGUSR1 mask lacks SIGTERM", 0, sigismember(&cur.sa_mask, SIGTERM));
    sigaction(SIGRTMIN + 5, NULL, &cur);
    CF_EQ("SIGRTMIN+5 handler", (long)on_rt, (long)cur.sa_sigaction);
    CF_EQ("SIGRTMIN+5 SA_SIGINFO|SA_RESETHAND|SA_ONSTACK", SA_SIGINFO | SA_RESETHAND | SA_ONSTACK, cur.sa_flags & (SA_RESTART | SA_NODEFER | SA_SIGINFO | SA_RESETHAND | SA_ONSTACK));
    sigaction(SIGPIPE, NULL, &cur);
    CF_EQ("SIGPIPE ignored", (long)SIG_IGN, (long)cur.sa_handler);
    sigaction(SIGWINCH, NULL, &cur);
    CF_EQ("SIGWINCH ignored", (long)SIG_IGN, (long)cur.sa_handler);
    sigaction(SIGTERM, NULL, &cur);
    CF_EQ("SIGTERM default", (long)SIG_DFL, (long)cur.sa_handler);
    int before = got_usr1;
    raise(SIGUSR1);
    CF_EQ("SIGUSR1 handler ran", before + 1, got_usr1);
}

CF_MAIN
