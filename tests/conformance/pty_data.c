/* Data queued in a pseudo-terminal the job opened itself.
 * kind: terminal
 * checks: complete lines queued toward the slave in canonical mode (one read each), bytes written by the slave not yet read by the master; both directions work on afterwards
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>

static int m, s;

static void setup(void) {
    CF_TRY(m = posix_openpt(O_RDWR | O_NOCTTY));
    CF_TRY(grantpt(m));
    CF_TRY(unlockpt(m));
    CF_TRY(s = open(ptsname(m), O_RDWR | O_NOCTTY));
    struct termios t;
    CF_TRY(tcgetattr(s, &t));
    t.c_lflag &= ~ECHO;
    t.c_oflag &= ~OPOST;
    CF_TRY(tcsetattr(s, TCSANOW, &t));
    CF_TRY(write(m, "line one\ntwo\n", 13));
    CF_TRY(write(s, "to master", 9));
    usleep(50000);
}

static void check(void) {
    int n = 0;
    CF_TRY(ioctl(s, FIONREAD, &n));
    CF_EQ("bytes readable at the slave", 13, n);
    CF_TRY(ioctl(m, FIONREAD, &n));
    CF_EQ("bytes readable at the master", 9, n);
    char buf[64] = "";
    CF_EQ("the slave reads the first line", 9, read(s, buf, sizeof buf - 1));
    CF_STREQ("the first line", "line one\n", buf);
    memset(buf, 0, sizeof buf);
    CF_EQ("the slave reads the second line", 4, read(s, buf, sizeof buf - 1));
    CF_STREQ("the second line", "two\n", buf);
    memset(buf, 0, sizeof buf);
    CF_EQ("the master reads the output", 9, read(m, buf, sizeof buf - 1));
    CF_STREQ("the output", "to master", buf);
    CF_TRY(write(m, "line one\ntwo\n", 13));
    CF_TRY(write(s, "to master", 9));
    usleep(50000);
}
CF_MAIN
