/* Two processes sharing one descriptor table (clone with CLONE_FILES, without CLONE_THREAD).
 * kind: descriptor sharing
 * checks: kcmp(KCMP_FILES) identity, the set of open descriptors, a POSIX lock set by the other process belongs to the shared table (F_GETLK from here finds no conflict, from a third process names the other), a descriptor opened by one is open in the other, a descriptor closed by the other is gone here
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <sys/wait.h>

static pid_t other;
static char path[64];
static int lf;
static int go[2], done[2];
static char stack[64 * 1024] __attribute__((aligned(16)));

/* The other process: on each byte from `go`, closes descriptor 40 (opened by the parent) and
 * opens /dev/null as descriptor 41, then answers on `done`. */
static int run(void *arg) {
    (void)arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char x;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    fcntl(lf, F_SETLK, &fl);
    write(done[1], "l", 1);
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

/* The open descriptors of the (shared) table, other than 40 and 41, as a bit set. */
static unsigned long long table_bits(void) {
    unsigned long long bits = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int self = d ? dirfd(d) : -1;
    while (d && (e = readdir(d))) {
        int n = atoi(e->d_name);
        if (e->d_name[0] == '.' || n == self || n == 40 || n == 41) continue;
        bits |= n < 63 ? 1ULL << n : 1ULL << 63;
    }
    if (d) closedir(d);
    return bits;
}
static unsigned long long at_setup;

static void setup(void) {
    CF_TRY(pipe(go));
    CF_TRY(pipe(done));
    snprintf(path, sizeof path, "/tmp/cf_shared_fdtable.XXXXXX");
    CF_TRY(lf = mkstemp(path));
    CF_TRY(other = clone(run, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL));
    char x;
    if (read(done[0], &x, 1) != 1) exit(2);
    at_setup = table_bits();
}

static void lock_checks(void) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    CF_TRY(fcntl(lf, F_GETLK, &fl));
    CF_EQ("F_GETLK from a process of the table: no conflict", F_UNLCK, fl.l_type);
    pid_t c = fork();
    if (c == 0) {
        cf_failures = 0;
        int f = open(path, O_RDWR);
        struct flock q = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
        if (f < 0 || fcntl(f, F_GETLK, &q) < 0) _exit(1);
        CF_EQ("F_GETLK from a third process: type", F_WRLCK, q.l_type);
        CF_EQ("F_GETLK from a third process: start", 0, q.l_start);
        CF_EQ("F_GETLK from a third process: length", 10, q.l_len);
        CF_EQ("F_GETLK from a third process: pid (the process that set it)", other, q.l_pid);
        _exit(cf_failures ? 1 : 0);
    }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) cf_fail("the probe process found differences");
}

static void check(void) {
    static int round_no;
    lock_checks();
    CF_EQ("kcmp(KCMP_FILES): one descriptor table", 0,
          syscall(SYS_kcmp, getpid(), other, KCMP_FILES, 0, 0));
    CF_EQ("the descriptors open (as a bit set, 40 and 41 aside)", at_setup, table_bits());
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
    if (++round_no == CF_CHECKS) unlink(path);
}
CF_MAIN
