/* inotify: a watch on a directory whose path the program then hid from its own user.
 * kind: inotify
 * checks: a watch on a directory inside a directory of mode 0: its number, mask and events (root finds its path; an ordinary user cannot, and is refused naming the watch, inode and device)
 * root: restored
 * user: refused: no path leads to it
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

static int in, wd;

static void unhide(void) { chmod("hidden", 0700); }

static void setup(void) {
    CF_TRY(mkdir("hidden", 0700));
    CF_TRY(mkdir("hidden/inner", 0700));
    atexit(unhide);
    CF_TRY(in = inotify_init1(IN_CLOEXEC));
    CF_TRY(wd = inotify_add_watch(in, "hidden/inner", IN_CREATE));
    CF_TRY(chmod("hidden", 0));
}

static int round_no;
static void check(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", in);
    FILE *f = fopen(path, "r");
    int seen = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned w, mask;
        char *m = strstr(line, "mask:");
        if (sscanf(line, "inotify wd:%x", &w) == 1 && m && sscanf(m, "mask:%x", &mask) == 1)
            seen += (int)w == wd && mask == IN_CREATE;
    }
    if (f) fclose(f);
    CF_EQ("the watch with its number and mask", 1, seen);
    CF_TRY(chmod("hidden", 0700));
    char name[48];
    snprintf(name, sizeof name, "hidden/inner/f%d", round_no++);
    int fd = open(name, O_CREAT | O_WRONLY, 0600);
    close(fd);
    char buf[4096] __attribute__((aligned(8)));
    int n = read(in, buf, sizeof buf), created = 0;
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        if (e->wd == wd && (e->mask & IN_CREATE)) created++;
        p += sizeof *e + e->len;
    }
    CF_EQ("IN_CREATE reported with the watch's number", 1, created);
    CF_TRY(chmod("hidden", 0));
}

CF_MAIN
