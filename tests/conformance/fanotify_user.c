/* fanotify: a group an ordinary user may create (FAN_REPORT_FID, inode marks).
 * kind: fanotify
 * checks: group flags and event flags (fdinfo), O_NONBLOCK; inode marks on a directory (FAN_CREATE, FAN_ONDIR, FAN_EVENT_ON_CHILD, and an ignore mask with FAN_MARK_IGNORE and FAN_MARK_IGNORED_SURV_MODIFY) and on a file, each with its mflags, mask, ignored mask, in order; events after the restart
 * root: restored
 */
#include "conformance.h"
#include "fanotify_common.h"

#define FLAGS (FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_NONBLOCK | FAN_CLOEXEC)
static int fan;

static void setup(void) {
    CF_TRY(mkdir("watched", 0700));
    int fd;
    CF_TRY(fd = open("watched.txt", O_CREAT | O_WRONLY, 0600));
    close(fd);
    CF_TRY(fan = fanotify_init(FLAGS, O_RDONLY | KERNEL_O_LARGEFILE));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD, FAN_CREATE | FAN_DELETE | FAN_ONDIR | FAN_EVENT_ON_CHILD,
                         AT_FDCWD, "watched"));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV, FAN_OPEN | FAN_ONDIR, AT_FDCWD,
                         "watched"));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, "watched.txt"));
}

static int round_no;
static void check(void) {
    struct fan_mark m[8];
    unsigned flags, event_flags;
    int n = fan_marks(fan, m, 8, &flags, &event_flags);
    CF_EQ("group flags", FLAGS, flags);
    CF_EQ("event flags", O_RDONLY | KERNEL_O_LARGEFILE, event_flags);
    CF_EQ("number of marks", 2, n);
    fan_check_mark(m, n, 0, 'i', ino_of("watched.txt"), 0, FAN_MODIFY | FAN_CLOSE_WRITE, 0);
    fan_check_mark(m, n, 1, 'i', ino_of("watched"), FAN_MARK_IGNORE_SURV & ~FAN_MARK_ADD,
                   FAN_CREATE | FAN_DELETE | FAN_ONDIR | FAN_EVENT_ON_CHILD, FAN_OPEN | FAN_ONDIR);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(fan, F_GETFL) & O_NONBLOCK);
    fan_events(fan);
    char name[32];
    snprintf(name, sizeof name, "watched/f%d", round_no++);
    int fd = open(name, O_CREAT | O_WRONLY, 0600);
    close(fd);
    fd = open("watched.txt", O_WRONLY | O_APPEND);
    if (write(fd, "x", 1) != 1) cf_fail("writing watched.txt");
    close(fd);
    unsigned got = fan_events(fan);
    CF_EQ("FAN_CREATE reported", FAN_CREATE, got & FAN_CREATE);
    CF_EQ("FAN_MODIFY reported", FAN_MODIFY, got & FAN_MODIFY);
    CF_EQ("FAN_CLOSE_WRITE reported", FAN_CLOSE_WRITE, got & FAN_CLOSE_WRITE);
    CF_EQ("no FAN_OPEN (ignored)", 0, got & FAN_OPEN);
}

CF_MAIN
