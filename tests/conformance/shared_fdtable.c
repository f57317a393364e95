/* Two processes sharing one descriptor table (clone with CLONE_FILES, without CLONE_THREAD).
 * kind: descriptor sharing
 * checks: kcmp(KCMP_FILES) identity, a descriptor opened by one is open in the other, a descriptor closed by the other is gone here
 * root: refused: share one descriptor table
 */
#include "conformance.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static pid_t other;
static int go[2], done[2];
static char stack[64 * 1024] __attribute__((aligned(16)));

/* The other process: on each byte from `go`, closes descriptor 40 (opened by the parent) and
 * opens /dev/null as descriptor 41, then answers on `done`. */
static int run(void *arg) {
    (void)arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char x;
    while (read(go[0], &x, 1) == 1) {
        close(40);
        int n = open("/dev/null", O_RDONLY);
        if (n >= 0 && n != 41) {
            dup2(n, 41);
            close(n);
        }
        write(done[1], "k", 1);
    }
    return 0;
}

static void setup(void) {
    CF_TRY(pipe(go));
    CF_TRY(pipe(done));
    CF_TRY(other = clone(run, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL));
}

static void check(void) {
    CF_EQ("kcmp(KCMP_FILES): one descriptor table", 0,
          syscall(SYS_kcmp, getpid(), other, KCMP_FILES, 0, 0));
    close(41);
    int f;
    CF_TRY(f = open("/dev/zero", O_RDONLY));
    CF_TRY(dup2(f, 40));
    close(f);
    char x = 'g';
    write(go[1], &x, 1);
    read(done[0], &x, 1);
    CF_EQ("descriptor 40, closed by the other process, is closed here", -1, fcntl(40, F_GETFD));
    CF_EQ("descriptor 41, opened by the other process, is open here", 1, fcntl(41, F_GETFD) >= 0);
}
CF_MAIN
