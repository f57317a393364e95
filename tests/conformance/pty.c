/* A pseudo-terminal the job opened itself: master and slave with their settings and queues.
 * kind: terminal
 * checks: ptsname and the slave's device, termios (flags, speed, control characters), window size, packet mode, data queued in both directions (toward the slave a complete line and a partly typed one)
 * root: refused: pseudo-terminal
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

static int m, s;
static char name[64];
static dev_t rdev;

static void setup(void) {
    CF_TRY(m = posix_openpt(O_RDWR | O_NOCTTY));
    CF_TRY(grantpt(m));
    CF_TRY(unlockpt(m));
    snprintf(name, sizeof name, "%s", ptsname(m));
    CF_TRY(s = open(name, O_RDWR | O_NOCTTY));
    struct stat st;
    CF_TRY(fstat(s, &st));
    rdev = st.st_rdev;
    struct termios t;
    CF_TRY(tcgetattr(s, &t));
    t.c_lflag &= ~ECHO;
    t.c_oflag &= ~OPOST;
    t.c_cc[VINTR] = 7;
    cfsetspeed(&t, B9600);
    CF_TRY(tcsetattr(s, TCSANOW, &t));
    struct winsize ws = {.ws_row = 33, .ws_col = 111, .ws_xpixel = 5, .ws_ypixel = 7};
    CF_TRY(ioctl(m, TIOCSWINSZ, &ws));
    int one = 1;
    CF_TRY(ioctl(m, TIOCPKT, &one));
    CF_TRY(write(m, "line one\npartial", 16));  /* to the slave: a line and a partial one */
    CF_TRY(write(s, "to master", 9));           /* to the master */
    usleep(50000);
}

static void check(void) {
    CF_STREQ("ptsname", name, ptsname(m));
    struct stat st;
    CF_TRY(fstat(s, &st));
    CF_EQ("slave st_rdev", rdev, st.st_rdev);
    struct termios t;
    CF_TRY(tcgetattr(s, &t));
    CF_EQ("ECHO", 0, t.c_lflag & ECHO);
    CF_EQ("ICANON", ICANON, t.c_lflag & ICANON);
    CF_EQ("OPOST", 0, t.c_oflag & OPOST);
    CF_EQ("VINTR", 7, t.c_cc[VINTR]);
    CF_EQ("speed", B9600, cfgetospeed(&t));
    struct winsize ws;
    CF_TRY(ioctl(s, TIOCGWINSZ, &ws));
    CF_EQ("rows", 33, ws.ws_row);
    CF_EQ("cols", 111, ws.ws_col);
    CF_EQ("xpixel", 5, ws.ws_xpixel);
    CF_EQ("ypixel", 7, ws.ws_ypixel);
    int pkt = 0;
    CF_TRY(ioctl(m, TIOCGPKT, &pkt));
    CF_EQ("packet mode", 1, pkt);
    int n = 0;
    CF_TRY(ioctl(s, FIONREAD, &n));
    CF_EQ("bytes readable at the slave (the complete line)", 9, n);
    CF_TRY(ioctl(m, FIONREAD, &n));
    CF_EQ("bytes readable at the master", 9, n);
}
CF_MAIN
