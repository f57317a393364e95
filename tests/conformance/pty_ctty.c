/* A pseudo-terminal that a process of the job made its controlling terminal.
 * kind: terminal
 * checks: the child's controlling terminal (tty_nr) is the slave, it leads the session and is the terminal's foreground process group
 * root: refused: controlling terminal
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

static int m;
static pid_t c;
static dev_t rdev;
static char x0;

static void setup(void) {
    CF_TRY(m = posix_openpt(O_RDWR | O_NOCTTY));
    CF_TRY(grantpt(m));
    CF_TRY(unlockpt(m));
    char name[64];
    snprintf(name, sizeof name, "%s", ptsname(m));
    int ready[2];
    CF_TRY(pipe(ready));
    int life[2];
    CF_TRY(pipe(life));
    c = fork();
    if (c == 0) {
        close(life[1]);
        setsid();
        int s = open(name, O_RDWR); /* without O_NOCTTY: becomes the controlling terminal */
        if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) _exit(3);
        write(ready[1], "k", 1);
        while (read(life[0], &x0, 1) != 0) {}
        _exit(0);
    }
    close(life[0]);
    char x;
    if (read(ready[0], &x, 1) != 1) {
        printf("SETUP FAILED: the session leader\n");
        exit(2);
    }
    struct stat st;
    int s;
    CF_TRY(s = open(name, O_RDWR | O_NOCTTY));
    CF_TRY(fstat(s, &st));
    close(s);
    rdev = st.st_rdev;
}

static void check(void) {
    char p[64], buf[512] = "";
    snprintf(p, sizeof p, "/proc/%d/stat", c);
    FILE *f = fopen(p, "r");
    if (f) {
        fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    char *s = strrchr(buf, ')');
    int ppid = 0, pgrp = 0, sid = 0, tty = 0, tpgid = 0;
    char st;
    if (!s || sscanf(s + 2, "%c %d %d %d %d %d", &st, &ppid, &pgrp, &sid, &tty, &tpgid) != 6) {
        cf_fail("reading %s", p);
        return;
    }
    CF_EQ("child's session", c, sid);
    CF_EQ("child's controlling terminal (tty_nr)", (long long)rdev, tty);
    CF_EQ("terminal's foreground group", c, tpgid);
    pid_t fg = -1;
    CF_TRY(ioctl(m, TIOCGPGRP, &fg));
    CF_EQ("TIOCGPGRP on the master", c, fg);
}
CF_MAIN
