/* A file lease (fcntl F_SETLEASE): refused, not silently dropped.
 * kind: file lock
 * checks: F_GETLEASE of the holder, another open for writing breaks the lease (SIGIO)
 * root: refused: a lease
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/wait.h>

static char path[64];
static int fd;
static volatile sig_atomic_t broken;

static void on_io(int sig) {
    (void)sig;
    broken = 1;
}

static void setup(void) {
    snprintf(path, sizeof path, "/tmp/cf_lock_lease.XXXXXX");
    int t;
    CF_TRY(t = mkstemp(path));
    close(t);
    CF_TRY(fd = open(path, O_RDONLY));
    signal(SIGIO, on_io);
    CF_TRY(fcntl(fd, F_SETLEASE, F_RDLCK));
}

static void check(void) {
    CF_EQ("F_GETLEASE", F_RDLCK, fcntl(fd, F_GETLEASE));
    static int round_no;
    if (++round_no < CF_CHECKS) return;
    /* Last round: another process opens it for writing; the lease holder gets SIGIO. */
    pid_t c = fork();
    if (c == 0) {
        int w = open(path, O_WRONLY | O_NONBLOCK);
        _exit(w < 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int st;
    waitpid(c, &st, 0);
    CF_EQ("an O_NONBLOCK open for writing by another process fails with EWOULDBLOCK", 0,
          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    for (int i = 0; i < 100 && !broken; i++) usleep(10000);
    CF_EQ("the lease holder got SIGIO", 1, broken);
    fcntl(fd, F_SETLEASE, F_UNLCK);
    unlink(path);
}
CF_MAIN
