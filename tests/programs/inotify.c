/* inotify(7) conformance across checkpoints: watches on a directory and a file with their
 * masks and watch descriptors (a removed watch leaves a gap), the events that file changes
 * produce after each restart, a watch added later getting the next descriptor, O_NONBLOCK.
 * Works in "watched/" under the current directory.
 * Usage: inotify STEPS. Prints "step N ok" or "FAIL ..." with the difference. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static int bad;

static void fail(int step, const char *what, const char *want, const char *got) {
    printf("FAIL step %d: %s:\n  expected %s\n  got      %s\n", step, what, want, got);
    bad++;
}

/* The watches of FD from fdinfo: "[wd mask]" each, by descriptor. */
static void watches(int fd, char *out, size_t len) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (!f) return;
    char items[16][32];
    int n = 0;
    while (n < 16 && fgets(line, sizeof line, f)) {
        unsigned wd, mask;
        char *m = strstr(line, "mask:");
        if (sscanf(line, "inotify wd:%x", &wd) == 1 && m && sscanf(m, "mask:%x", &mask) == 1)
            snprintf(items[n++], sizeof items[0], "[%02u %x]", wd, mask);
    }
    fclose(f);
    qsort(items, n, sizeof items[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        size_t k = strlen(out);
        snprintf(out + k, len - k, "%s", items[i]);
    }
}

/* Every queued event as "wd:mask:name ". */
static void events(int fd, char *out, size_t len) {
    char buf[4096] __attribute__((aligned(8)));
    out[0] = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            size_t k = strlen(out);
            snprintf(out + k, len - k, "%d:%x:%s ", e->wd, e->mask, e->len ? e->name : "");
            p += sizeof *e + e->len;
        }
    }
}

static void touch(const char *path) {
    int f = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (f < 0 || write(f, "x", 1) != 1) { perror(path); exit(2); }
    close(f);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    mkdir("watched", 0755);
    mkdir("watched/sub", 0755);
    mkdir("watched/later", 0755);
    mkdir("watched/tmp", 0755);
    touch("watched/file");
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int dir = inotify_add_watch(in, "watched", IN_CREATE | IN_DELETE | IN_MOVED_TO);
    int gone = inotify_add_watch(in, "watched/tmp", IN_ALL_EVENTS);
    int file = inotify_add_watch(in, "watched/file", IN_MODIFY | IN_CLOSE_WRITE);
    int sub = inotify_add_watch(in, "watched/sub", IN_ALL_EVENTS);
    inotify_add_watch(in, "watched/sub", IN_ATTRIB); /* replaces the mask */
    inotify_rm_watch(in, gone); /* its descriptor (2) stays unused */
    char got[2048], want[2048], list[512];
    events(in, got, sizeof got);
    if (in < 0 || dir != 1 || gone != 2 || file != 3 || sub != 4) {
        printf("setup: %d %d %d %d %d\n", in, dir, gone, file, sub);
        return 2;
    }
    /* IN_ONESHOT and IN_EXCL_UNLINK show in fdinfo's mask, so the watch list checks them. */
    int third = inotify_add_watch(in, "watched/later", IN_DELETE_SELF | IN_ONESHOT | IN_EXCL_UNLINK);
    watches(in, list, sizeof list);
    printf("watches %s\n", list);
    for (int i = 1; i <= steps; i++) {
        watches(in, got, sizeof got);
        if (strcmp(got, list)) fail(i, "watches", list, got);
        if (!(fcntl(in, F_GETFL) & O_NONBLOCK)) fail(i, "O_NONBLOCK", "set", "clear");
        char name[64];
        snprintf(name, sizeof name, "watched/s%d", i);
        touch(name);
        unlink(name);
        touch("watched/file");
        chmod("watched/sub", i % 2 ? 0700 : 0755);
        events(in, got, sizeof got);
        snprintf(want, sizeof want, "%d:%x:s%d %d:%x:s%d %d:%x: %d:%x: ", dir, IN_CREATE, i,
                 dir, IN_DELETE, i, file, IN_MODIFY, file, IN_CLOSE_WRITE);
        /* chmod of sub: IN_ATTRIB on sub itself. */
        size_t k = strlen(want);
        snprintf(want + k, sizeof want - k, "%d:%x: ", sub, IN_ATTRIB | IN_ISDIR);
        if (strcmp(got, want)) fail(i, "events", want, got);
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    /* The next watch gets the next descriptor. */
    int next = inotify_add_watch(in, ".", IN_CREATE);
    if (next != third + 1) printf("FAIL: next watch descriptor %d, expected %d\n", next, third + 1);
    printf("%s\n", bad || next != third + 1 ? "FAIL" : "PASS");
    return 0;
}
