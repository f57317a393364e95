/* A pseudo-terminal pair the job holds both sides of, as MPI launchers give their ranks:
 * settings, number and the output waiting at the master.
 * kind: terminal
 * checks: ptsname and the slave's device, termios (flags, speed, control characters), window size, packet mode off, the slave's output not yet read at the master, nothing at the slave
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
    t.c_lflag &= ~(ECHO | ECHOE | ECHOK);
    t.c_oflag &= ~ONLCR;
    t.c_cc[VINTR] = 7;
    cfsetspeed(&t, B9600);
    CF_TRY(tcsetattr(s, TCSANOW, &t));
    struct winsize ws = {.ws_row = 33, .ws_col = 111, .ws_xpixel = 5, .ws_ypixel = 7};
    CF_TRY(ioctl(m, TIOCSWINSZ, &ws));
    CF_TRY(write(s, "rank output\nmore\r\n", 18)); /* to the master, not read yet */
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
    CF_EQ("OPOST", OPOST, t.c_oflag & OPOST);
    CF_EQ("ONLCR", 0, t.c_oflag & ONLCR);
    CF_EQ("VINTR", 7, t.c_cc[VINTR]);
    CF_EQ("speed", B9600, cfgetospeed(&t));
    struct winsize ws;
    CF_TRY(ioctl(s, TIOCGWINSZ, &ws));
    CF_EQ("rows", 33, ws.ws_row);
    CF_EQ("cols", 111, ws.ws_col);
    CF_EQ("xpixel", 5, ws.ws_xpixel);
    CF_EQ("ypixel", 7, ws.ws_ypixel);
    int pkt = 1;
    CF_TRY(ioctl(m, TIOCGPKT, &pkt));
    CF_EQ("packet mode", 0, pkt);
    int n = -1;
    CF_TRY(ioctl(s, FIONREAD, &n));
    CF_EQ("bytes readable at the slave", 0, n);
    CF_TRY(ioctl(m, FIONREAD, &n));
    CF_EQ("bytes readable at the master", 18, n);
    char buf[32] = {0};
    CF_EQ("read at the master", 18, read(m, buf, sizeof buf));
    CF_STREQ("the slave's output", "rank output\nmore\r\n", buf);
    /* Put it back for the next cycle's check. */
    CF_TRY(write(s, buf, 18));
    usleep(50000);
}
CF_MAIN
