/* inotify: watches with their masks and watch numbers, and the events they report.
 * kind: inotify
 * checks: every watch's mask (IN_ONESHOT, IN_EXCL_UNLINK included) and watch descriptor (/proc/self/fdinfo); events after the restart carry the numbers inotify_add_watch returned; O_NONBLOCK
 * root: restored
 * user: refused: needs CAP_DAC_READ_SEARCH
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

static int in, wd_dir, wd_file;
static unsigned mask_dir = IN_CREATE | IN_DELETE | IN_EXCL_UNLINK, mask_file = IN_MODIFY | IN_ONESHOT;

static void setup(void) {
    CF_TRY(mkdir("watched", 0700));
    int fd;
    CF_TRY(fd = open("watched.txt", O_CREAT | O_WRONLY, 0600));
    close(fd);
    CF_TRY(in = inotify_init1(IN_NONBLOCK));
    CF_TRY(wd_dir = inotify_add_watch(in, "watched", mask_dir));
    CF_TRY(wd_file = inotify_add_watch(in, "watched.txt", mask_file));
}

static int round_no;
static void check(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", in);
    FILE *f = fopen(path, "r");
    int seen_dir = 0, seen_file = 0;
    while (f && fgets(line, sizeof line, f)) {
        int wd;
        unsigned mask;
        char *w = strstr(line, "wd:"), *m = strstr(line, "mask:");
        if (strncmp(line, "inotify", 7) || !w || !m) continue;
        wd = strtol(w + 3, NULL, 16);
        mask = strtoul(m + 5, NULL, 16);
        if (wd == wd_dir) seen_dir = (mask & ~IN_ISDIR) == mask_dir;
        if (wd == wd_file) seen_file = mask == mask_file;
    }
    if (f) fclose(f);
    CF_EQ("directory watch with its number and mask", 1, seen_dir);
    CF_EQ("one-shot file watch with its number and mask", 1, seen_file);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(in, F_GETFL) & O_NONBLOCK);
    char name[32];
    snprintf(name, sizeof name, "watched/f%d", round_no++);
    int fd = open(name, O_CREAT | O_WRONLY, 0600);
    close(fd);
    char buf[4096];
    int n = read(in, buf, sizeof buf), created = 0;
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        if (e->wd == wd_dir && (e->mask & IN_CREATE)) created++;
        p += sizeof *e + e->len;
    }
    CF_EQ("IN_CREATE reported with the directory's watch number", 1, created);
}

CF_MAIN
