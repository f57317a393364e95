/* eventfd: counters, semaphore mode and flags.
 * kind: eventfd
 * checks: counter (beyond 32 bits); EFD_SEMAPHORE (each read takes 1); O_NONBLOCK (EAGAIN when empty); FD_CLOEXEC; a dup shares the counter
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>

static int sem, big, empty, dupd;

static void setup(void) {
    CF_TRY(sem = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC));
    CF_TRY(big = eventfd(0, 0));
    CF_TRY(empty = eventfd(0, EFD_NONBLOCK));
    uint64_t v = 0x123456789ULL;
    CF_TRY(write(big, &v, 8));
    CF_TRY(dupd = dup(big));
}

static void check(void) {
    uint64_t v = 0;
    CF_EQ("semaphore read", 8, read(sem, &v, 8));
    CF_EQ("semaphore read takes 1", 1, v);
    v = 1;
    CF_EQ("semaphore refilled", 8, write(sem, &v, 8));
    CF_EQ("O_NONBLOCK of the semaphore", O_NONBLOCK, fcntl(sem, F_GETFL) & O_NONBLOCK);
    CF_EQ("FD_CLOEXEC of the semaphore", FD_CLOEXEC, fcntl(sem, F_GETFD));
    CF_EQ("blocking counter has no O_NONBLOCK", 0, fcntl(big, F_GETFL) & O_NONBLOCK);
    CF_EQ("counter read through the dup", 8, read(dupd, &v, 8));
    CF_EQ("counter beyond 32 bits", 0x123456789LL, (long long)v);
    v = 0x123456789ULL;
    CF_EQ("counter refilled", 8, write(big, &v, 8));
    errno = 0;
    CF_EQ("empty counter read fails", -1, read(empty, &v, 8));
    CF_EQ("with EAGAIN", EAGAIN, errno);
    /* All five left in the semaphore: */
    int n = 0;
    while (read(sem, &v, 8) == 8) n++;
    CF_EQ("semaphore count", 5, n);
    v = 5;
    CF_EQ("semaphore restored", 8, write(sem, &v, 8));
}

CF_MAIN
