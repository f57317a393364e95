/* A UNIX stream server bound to DIR/sock with two client processes: each client sends N
 * numbered lines faster than the server reads them and reads the server's running sums only
 * every 10 lines, so data waits in both directions. When both are done the server forks a
 * third client that connects to the same path (the listener must still listen) and says bye.
 * Clients write their results to DIR/clientK.txt; the server prints everything: usage
 * unixserver DIR N [ABSTRACT-NAME] (bound to DIR/sock, or to the abstract name). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_un addr;

static int dial(void) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) _exit(40);
    return s;
}

static void client(const char *dir, int k, int n) {
    int s = dial();
    fcntl(s, F_SETFL, O_NONBLOCK);
    unsigned long got = 0, sum = 0;
    char buf[256];
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "%d %d\n", k, i);
        for (int off = 0; off < len;) {
            ssize_t w = write(s, line + off, len - off);
            if (w < 0 && errno == EAGAIN) { usleep(200); continue; }
            if (w <= 0) _exit(41);
            off += w;
        }
        usleep(1000);
        if (i % 10 == 9) {
            ssize_t r;
            while ((r = read(s, buf, sizeof buf)) > 0) {
                got += r;
                for (int j = 0; j < r; j++) sum = sum * 31 + (unsigned char)buf[j];
            }
        }
    }
    shutdown(s, SHUT_WR);
    fcntl(s, F_SETFL, 0);
    ssize_t r;
    while ((r = read(s, buf, sizeof buf)) > 0) {
        got += r;
        for (int j = 0; j < r; j++) sum = sum * 31 + (unsigned char)buf[j];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/client%d.txt", dir, k);
    FILE *f = fopen(path, "w");
    if (!f) _exit(42);
    fprintf(f, "client %d: reply bytes %lu sum %lu\n", k, got, sum);
    fclose(f);
    _exit(0);
}

int main(int argc, char **argv) {
    printf("start\n");
    fflush(stdout);
    if (argc < 3) return 2;
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    addr.sun_family = AF_UNIX;
    if (argc > 3) /* an abstract name: "\0" ARGV[3] */
        snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "%s", argv[3]);
    else
        snprintf(addr.sun_path, sizeof addr.sun_path, "%s/sock", dir);
    unlink(addr.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(l, 8) < 0) return 3;
    pid_t kids[3];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            close(l);
            client(dir, k, n);
        }
    }
    int c[2];
    for (int k = 0; k < 2; k++)
        if ((c[k] = accept(l, NULL, NULL)) < 0) return 4;
    long total[2] = {0, 0};
    int open_ = 2, eof[2] = {0, 0};
    char pend[2][64];
    int plen[2] = {0, 0};
    while (open_ > 0) {
        for (int k = 0; k < 2; k++) {
            if (eof[k]) continue;
            char b[8];
            ssize_t r = read(c[k], b, sizeof b);
            if (r < 0) return 5;
            if (r == 0) {
                eof[k] = 1;
                open_--;
                shutdown(c[k], SHUT_WR);
                continue;
            }
            for (int j = 0; j < r; j++) {
                if (b[j] != '\n') {
                    if (plen[k] < 63) pend[k][plen[k]++] = b[j];
                    continue;
                }
                pend[k][plen[k]] = 0;
                plen[k] = 0;
                int who, i;
                if (sscanf(pend[k], "%d %d", &who, &i) != 2) return 6;
                total[k] += i;
                char rep[32];
                int len = snprintf(rep, sizeof rep, "%ld\n", total[k]);
                if (write(c[k], rep, len) != len) return 7;
            }
        }
        usleep(3000);
    }
    for (int k = 0; k < 2; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st)) return 8;
    }
    kids[2] = fork();
    if (kids[2] == 0) {
        int s = dial();
        if (write(s, "bye\n", 4) != 4) _exit(43);
        _exit(0);
    }
    int late = accept(l, NULL, NULL);
    char bye[8] = {0};
    if (late < 0 || read(late, bye, 4) != 4) return 9;
    int st;
    if (waitpid(kids[2], &st, 0) != kids[2] || !WIFEXITED(st) || WEXITSTATUS(st)) return 10;
    printf("server: totals %ld %ld, late client said %s", total[0], total[1], bye);
    for (int k = 0; k < 2; k++) {
        char path[4096], line[256];
        snprintf(path, sizeof path, "%s/client%d.txt", dir, k);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(line, sizeof line, f)) return 11;
        fputs(line, stdout);
        fclose(f);
    }
    unlink(addr.sun_path);
    return 0;
}
