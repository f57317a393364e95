/* Shared by the fanotify conformance programs: the group's marks as fdinfo shows them, and
 * the events that file changes produce. */
#ifndef CAIRN_FANOTIFY_COMMON_H
#define CAIRN_FANOTIFY_COMMON_H

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

/* O_LARGEFILE as the kernel adds it to event-file flags (the C library's is 0 on 64 bits). */
#define KERNEL_O_LARGEFILE 0100000

/* One mark line of fdinfo: its object (kind 'i' inode, 'm' mount, 's' file system, with
 * the inode number, mount id or device) and its flags and masks. */
struct fan_mark {
    char kind;
    unsigned long long obj;
    unsigned mflags, mask, ignored;
};

/* The marks of group FD (newest first, as fdinfo lists them) and its header line's flags. */
static int fan_marks(int fd, struct fan_mark *out, int max, unsigned *flags, unsigned *event_flags) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    int n = 0;
    *flags = *event_flags = ~0u;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "fanotify flags:%x event-flags:%x", flags, event_flags) == 2) continue;
        if (strncmp(line, "fanotify ", 9) || n == max) continue;
        struct fan_mark *m = &out[n];
        char *p;
        unsigned dev;
        if ((p = strstr(line, " ino:"))) {
            m->kind = 'i';
            m->obj = strtoull(p + 5, NULL, 16);
        } else if ((p = strstr(line, " mnt_id:"))) {
            m->kind = 'm';
            m->obj = strtoull(p + 8, NULL, 16);
        } else if (sscanf(line, "fanotify sdev:%x", &dev) == 1) {
            m->kind = 's';
            m->obj = dev;
        } else {
            continue;
        }
        p = strstr(line, "mflags:");
        m->mflags = p ? strtoul(p + 7, NULL, 16) : ~0u;
        p = strstr(line, " mask:");
        m->mask = p ? strtoul(p + 6, NULL, 16) : ~0u;
        p = strstr(line, "ignored_mask:");
        m->ignored = p ? strtoul(p + 13, NULL, 16) : ~0u;
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* Checks mark I of the group against what the program set up. */
static void fan_check_mark(const struct fan_mark *got, int n, int i, char kind,
                           unsigned long long obj, unsigned mflags, unsigned mask,
                           unsigned ignored) {
    char what[64];
    if (i >= n) {
        cf_fail("mark %d: missing (%d marks)", i, n);
        return;
    }
    snprintf(what, sizeof what, "mark %d: kind", i);
    CF_EQ(what, kind, got[i].kind);
    snprintf(what, sizeof what, "mark %d: inode, mount or device", i);
    CF_EQ(what, obj, got[i].obj);
    snprintf(what, sizeof what, "mark %d: mflags", i);
    CF_EQ(what, mflags, got[i].mflags);
    snprintf(what, sizeof what, "mark %d: mask", i);
    CF_EQ(what, mask, got[i].mask);
    snprintf(what, sizeof what, "mark %d: ignored mask", i);
    CF_EQ(what, ignored, got[i].ignored);
}

__attribute__((unused)) static unsigned long long ino_of(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : st.st_ino;
}

/* The kernel's device number (major << 20 | minor) of PATH's file system. */
__attribute__((unused)) static unsigned long long sdev_of(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : ((unsigned long long)major(st.st_dev) << 20) | minor(st.st_dev);
}

/* The masks of every event queued on FD, or-ed (FD is non-blocking). */
__attribute__((unused)) static unsigned fan_events(int fd) {
    char buf[8192] __attribute__((aligned(8)));
    unsigned all = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        struct fanotify_event_metadata *m = (void *)buf;
        for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
            all |= (unsigned)m->mask;
            if (m->fd >= 0) close(m->fd);
        }
    }
    return all;
}

#endif
