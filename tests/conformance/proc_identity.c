/* A process's identity and environment: pids, working directory, arguments, environment, name.
 * kind: process
 * checks: getpid, getppid, getpgrp, getsid; cwd; /proc/self/cmdline; environment variables (set with setenv after start); comm (prctl PR_SET_NAME); a forked child's getppid
 * root: restored
 */
#include "conformance.h"
#include <sys/prctl.h>
#include <sys/stat.h>
#include <fcntl.h>

static pid_t pid, ppid, pgrp, sid, child;
static int ask[2], ans[2];

static void setup(void) {
    pid = getpid();
    ppid = getppid();
    pgrp = getpgrp();
    sid = getsid(0);
    CF_TRY(mkdir("work dir", 0700));
    CF_TRY(chdir("work dir"));
    CF_TRY(setenv("CF_VALUE", "forty two", 1));
    CF_TRY(prctl(PR_SET_NAME, "proc_identity"));
    CF_TRY(pipe(ask));
    CF_TRY(pipe(ans));
    CF_TRY(child = fork());
    if (child == 0) {
        char b;
        close(ask[1]); /* EOF once the first process ends: the child ends with it */
        while (read(ask[0], &b, 1) == 1) {
            pid_t p = getppid();
            if (write(ans[1], &p, sizeof p) != sizeof p) _exit(1);
        }
        _exit(0);
    }
}

static void check(void) {
    CF_EQ("getpid", pid, getpid());
    CF_EQ("getppid", ppid, getppid());
    CF_EQ("getpgrp", pgrp, getpgrp());
    CF_EQ("getsid", sid, getsid(0));
    char cwd[4096];
    CF_EQ("getcwd works", 1, getcwd(cwd, sizeof cwd) != NULL);
    const char *base = strrchr(cwd, '/');
    CF_STREQ("cwd", "/work dir", base);
    CF_STREQ("environment", "forty two", getenv("CF_VALUE"));
    char buf[256] = {0};
    int fd = open("/proc/self/cmdline", O_RDONLY);
    int n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CF_EQ("cmdline read", 1, n > 0);
    const char *slash = strrchr(buf, '/');
    CF_STREQ("argv[0]", "/proc_identity", slash);
    char name[32] = {0};
    prctl(PR_GET_NAME, name);
    CF_STREQ("comm", "proc_identity", name);
    char b = 1;
    pid_t p = 0;
    CF_EQ("child asked", 1, write(ask[1], &b, 1));
    CF_EQ("child answered", sizeof p, read(ans[0], &p, sizeof p));
    CF_EQ("child's getppid", pid, p);
}

CF_MAIN
