/* The frame of a conformance program: one kind of kernel state, set up, then checked after
 * every restart.
 *
 * A program includes this header, defines
 *     static void setup(void);   -- creates the state (exit(2) with a message on failure)
 *     static void check(void);   -- checks every attribute, calling cf_fail() for each difference
 * and ends with CF_MAIN. The frame prints "READY" once setup() returned, then waits for SIGUSR2;
 * each SIGUSR2 runs check() and prints "CHECK n PASS" (or the failures, then "CHECK n FAIL").
 * After CF_CHECKS checks the program exits 0 (1 if a check failed). The runner sends SIGUSR2
 * after each restart; natively it sends them without checkpoints. See README.md. */
#ifndef CAIRN_CONFORMANCE_H
#define CAIRN_CONFORMANCE_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CF_CHECKS
#define CF_CHECKS 2
#endif

static int cf_failures;
static volatile sig_atomic_t cf_go;

/* Records one difference: what was checked, what was expected and what was found. */
__attribute__((format(printf, 1, 2))) static void cf_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    cf_failures++;
}

/* Checks that two integers are equal; names the attribute in the failure. */
#define CF_EQ(what, want, got)                                                                 \
    do {                                                                                       \
        long long cf_w = (long long)(want), cf_g = (long long)(got);                           \
        if (cf_w != cf_g) cf_fail("%s: expected %lld, got %lld", (what), cf_w, cf_g);          \
    } while (0)

/* Checks that two strings are equal. */
#define CF_STREQ(what, want, got)                                                              \
    do {                                                                                       \
        const char *cf_w = (want), *cf_g = (got);                                              \
        if (strcmp(cf_w ? cf_w : "(null)", cf_g ? cf_g : "(null)") != 0)                       \
            cf_fail("%s: expected \"%s\", got \"%s\"", (what), cf_w ? cf_w : "(null)",          \
                    cf_g ? cf_g : "(null)");                                                   \
    } while (0)

/* Ends setup with a message when a call that must work failed. */
#define CF_TRY(call)                                                                           \
    do {                                                                                       \
        if ((call) < 0) {                                                                      \
            printf("SETUP FAILED: %s: %s (line %d)\n", #call, strerror(errno), __LINE__);      \
            fflush(stdout);                                                                    \
            exit(2);                                                                           \
        }                                                                                      \
    } while (0)

static void cf_on_usr2(int sig) {
    (void)sig;
    cf_go = 1;
}

/* Waits for the runner's SIGUSR2 (in sigsuspend, the only place it is unblocked; every other
 * signal keeps the mask the program gave it). */
static void cf_wait(void) {
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    sigdelset(&mask, SIGUSR2);
    while (!cf_go) sigsuspend(&mask);
    cf_go = 0;
}

/* The frame: setup, READY, then CF_CHECKS rounds of (wait, check, verdict). */
static int cf_main(void (*setup_fn)(void), void (*check_fn)(void)) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cf_on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    setup_fn();
    printf("READY\n");
    fflush(stdout);
    int any = 0;
    for (int n = 1; n <= CF_CHECKS; n++) {
        cf_wait();
        cf_failures = 0;
        check_fn();
        printf("CHECK %d %s\n", n, cf_failures ? "FAIL" : "PASS");
        fflush(stdout);
        any |= cf_failures;
    }
    return any ? 1 : 0;
}

#define CF_MAIN                                                                                \
    int main(void) { return cf_main(setup, check); }

#endif
