/* Test program for tests/stdio.rs: reads lines from stdin with read(2), so that a checkpoint
 * finds it blocked in read on its pipe or terminal, and answers each line with one write(2) on
 * stdout ("O ...") and one on stderr ("E ..."). Every answer reports isatty(0/1/2), whether
 * the controlling terminal is stdin's terminal, the EINTRs seen so far and a checksum of all
 * input. The line "quit" ends the dialogue; a read error is reported and exits 1.
 * usage: stdio_echo */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static long eintr;
static unsigned long sum;

/* "stdin" when the terminal on fd 0 is the controlling terminal (TIOCGSID succeeds only on
 * the caller's own), "other" for another controlling terminal, "none" without one. */
static const char *ctty(void) {
    pid_t sid;
    if (ioctl(0, TIOCGSID, &sid) == 0) return "stdin";
    int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return "none";
    close(fd);
    return "other";
}

static void say(int fd, char tag, const char *what) {
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "%c %s tty=%d%d%d ctty=%s eintr=%ld sum=%lu\n", tag, what,
                     isatty(0), isatty(1), isatty(2), ctty(), eintr, sum);
    if (n < 0 || (size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    for (;;) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno == EINTR) { eintr++; continue; }
        if (w != n) _exit(2);
        return;
    }
}

int main(void) {
    char buf[4096];
    size_t len = 0;
    long lines = 0;
    for (;;) {
        ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR) { eintr++; continue; }
        if (r < 0) {
            dprintf(2, "E read failed: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0) break;
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = 0;
            if (strcmp(buf, "quit") == 0) goto done;
            for (char *p = buf; p < nl; p++) sum = sum * 31 + (unsigned char)*p;
            lines++;
            char what[4200];
            snprintf(what, sizeof what, "%ld [%s]", lines, buf);
            say(1, 'O', what);
            say(2, 'E', what);
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len);
        }
        if (len == sizeof buf - 1) {
            dprintf(2, "E line too long\n");
            return 1;
        }
    }
done:;
    char what[64];
    snprintf(what, sizeof what, "done lines=%ld", lines);
    say(1, 'O', what);
    say(2, 'E', what);
    return 0;
}
