/* A deleted-but-open file shared by a dup and by a child, with a flock on it.
 * kind: descriptor sharing
 * checks: kcmp(KCMP_FILE) of the dup and of the child's descriptor, the offset moved by the child seen through the dup, the contents, the flock still held against another open (through /proc/PID/fd)
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int a, b;
static pid_t c;
static int cmd[2], ack[2];

static void setup(void) {
    char p[] = "/tmp/cf_shared_deleted.XXXXXX";
    CF_TRY(a = mkstemp(p));
    CF_TRY(write(a, "0123456789", 10));
    CF_TRY(unlink(p));
    CF_TRY(flock(a, LOCK_EX));
    CF_TRY(pipe(cmd));
    CF_TRY(pipe(ack));
    c = fork();
    if (c == 0) {
        /* The child keeps its inherited copy as descriptor 30 only. */
        if (dup2(a, 30) < 0) _exit(3);
        close(a);
        close(cmd[1]);
        write(ack[1], "r", 1);
        char x;
        while (read(cmd[0], &x, 1) == 1) {
            lseek(30, 4, SEEK_SET);
            write(ack[1], "k", 1);
        }
        _exit(0);
    }
    close(cmd[0]);
    char r;
    if (read(ack[0], &r, 1) != 1) {
        printf("SETUP FAILED: the child\n");
        exit(2);
    }
    CF_TRY(b = dup(a));
}

static void check(void) {
    CF_EQ("kcmp: the dup is the same description", 0,
          syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b));
    CF_EQ("kcmp: the child's descriptor is the same description", 0,
          syscall(SYS_kcmp, getpid(), c, KCMP_FILE, a, 30));
    CF_TRY(lseek(a, 0, SEEK_SET));
    char x = 'g';
    write(cmd[1], &x, 1);
    read(ack[0], &x, 1);
    CF_EQ("offset of the dup after the child's lseek", 4, lseek(b, 0, SEEK_CUR));
    char buf[4] = {0};
    CF_EQ("read through the descriptor", 3, read(a, buf, 3));
    CF_STREQ("contents at offset 4", "456", buf);
    pid_t q = fork();
    if (q == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", getppid(), a);
        int f = open(path, O_RDONLY);
        _exit(f >= 0 && flock(f, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int st;
    waitpid(q, &st, 0);
    CF_EQ("another open of the file cannot take the flock", 0, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
CF_MAIN
