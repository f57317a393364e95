/* A pseudo-terminal the job opened itself: master and slave with their settings and queues.
 * kind: terminal
 * checks: ptsname and the slave's device, termios (flags, speed, control characters), window size, packet mode, O_NONBLOCK of the master, a line being typed toward the slave in canonical mode (not readable until its newline arrives, then read whole)
 * root: restored
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
    CF_TRY(fcntl(m, F_SETFL, O_NONBLOCK));
    CF_TRY(write(m, "partial", 7)); /* to the slave: a line being typed */
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
    CF_EQ("O_NONBLOCK of the master", O_NONBLOCK, fcntl(m, F_GETFL) & O_NONBLOCK);
    int n = -1;
    CF_TRY(ioctl(s, FIONREAD, &n));
    CF_EQ("bytes readable at the slave (no complete line)", 0, n);
    CF_TRY(ioctl(m, FIONREAD, &n));
    CF_EQ("bytes readable at the master", 0, n);
    /* End the line: the slave reads it whole; then type the partial line again. */
    CF_TRY(write(m, " line\n", 6));
    usleep(50000);
    char buf[64] = "";
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    ssize_t r = read(s, buf, sizeof buf - 1);
    fcntl(s, F_SETFL, fl);
    CF_EQ("the line's length", 13, r);
    CF_STREQ("the line", "partial line\n", buf);
    CF_TRY(write(m, "partial", 7));
    usleep(50000);
}
CF_MAIN
