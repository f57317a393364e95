/* Sleeps in many different blocking calls; any EINTR or short sleep is reported. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    for (int i = 0; i < 40; i++) {
        int r;
        struct timespec ts = {0, 5000000}, rem;
        switch (i % 4) {
        case 0: r = nanosleep(&ts, &rem); break;
        case 1: r = usleep(5000); break;
        case 2: r = poll(NULL, 0, 5); break;
        default: { struct timeval tv = {0, 5000}; r = select(0, NULL, NULL, NULL, &tv); }
        }
        fprintf(f, "%d %s\n", i, r == 0 ? "ok" : (errno == EINTR ? "EINTR" : "err"));
        fflush(f);
    }
    fprintf(f, "done\n");
    return fclose(f) == 0 ? 0 : 3;
}
