/* Data queued toward a pseudo-terminal in non-canonical (raw) mode.
 * kind: terminal
 * checks: bytes queued toward a raw slave (every byte value, read back exactly), the raw settings (VMIN, VTIME)
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>

static int m, s;
static unsigned char data[200];

static void setup(void) {
    CF_TRY(m = posix_openpt(O_RDWR | O_NOCTTY));
    CF_TRY(grantpt(m));
    CF_TRY(unlockpt(m));
    CF_TRY(s = open(ptsname(m), O_RDWR | O_NOCTTY));
    struct termios t;
    CF_TRY(tcgetattr(s, &t));
    cfmakeraw(&t);
    t.c_cc[VMIN] = 3;
    t.c_cc[VTIME] = 0;
    CF_TRY(tcsetattr(s, TCSANOW, &t));
    for (int i = 0; i < 200; i++) data[i] = (unsigned char)(i * 7 + 1);
    CF_TRY(write(m, data, sizeof data));
    usleep(50000);
}

static void check(void) {
    struct termios t;
    CF_TRY(tcgetattr(s, &t));
    CF_EQ("ICANON", 0, t.c_lflag & ICANON);
    CF_EQ("VMIN", 3, t.c_cc[VMIN]);
    int n = 0;
    CF_TRY(ioctl(s, FIONREAD, &n));
    CF_EQ("bytes readable at the slave", 200, n);
    unsigned char buf[256];
    CF_EQ("the slave reads them", 200, read(s, buf, sizeof buf));
    CF_EQ("the bytes", 0, memcmp(buf, data, sizeof data));
    CF_TRY(write(m, data, sizeof data));
    usleep(50000);
}
CF_MAIN
