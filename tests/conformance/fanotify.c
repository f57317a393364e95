/* fanotify: a privileged group with inode, mount and file system marks.
 * kind: fanotify
 * checks: group flags (FAN_UNLIMITED_QUEUE, FAN_UNLIMITED_MARKS) and event flags (O_RDWR, O_CLOEXEC), O_NONBLOCK; an inode mark on a file (FAN_MODIFY, FAN_CLOSE_WRITE, FAN_OPEN ignored with FAN_MARK_IGNORED_SURV_MODIFY), an evictable inode mark on an open file, a mount mark and a file system mark (ignore masks only, surviving modifications, so that nothing else on the host queues events), each with its object, mflags, mask, ignored mask, in order; events after the restart
 * root: restored
 * user: skip: fanotify_init without FAN_REPORT_FID, mount and file system marks need CAP_SYS_ADMIN
 */
#include "conformance.h"
#include "fanotify_common.h"
#include <sys/syscall.h>

#define FLAGS (FAN_CLASS_NOTIF | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS)
#define EVENT_FLAGS (O_RDWR | O_CLOEXEC | KERNEL_O_LARGEFILE)
static int fan, held;

static unsigned long long mnt_id_of(const char *path) {
    struct statx sx;
    return statx(AT_FDCWD, path, 0, STATX_MNT_ID, &sx) ? 0 : sx.stx_mnt_id;
}

static void setup(void) {
    int fd;
    CF_TRY(fd = open("watched.txt", O_CREAT | O_WRONLY, 0600));
    close(fd);
    CF_TRY(held = open("evictable.txt", O_CREAT | O_RDWR, 0600));
    CF_TRY(fan = fanotify_init(FLAGS, EVENT_FLAGS));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, "watched.txt"));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
                         FAN_OPEN, AT_FDCWD, "watched.txt"));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_EVICTABLE, FAN_CLOSE_NOWRITE, AT_FDCWD,
                         "evictable.txt"));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_ACCESS,
                         AT_FDCWD, "."));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM | FAN_MARK_IGNORED_MASK |
                             FAN_MARK_IGNORED_SURV_MODIFY,
                         FAN_OPEN, AT_FDCWD, "."));
    CF_TRY(fcntl(fan, F_SETFL, O_NONBLOCK));
}

static void check(void) {
    struct fan_mark m[8];
    unsigned flags, event_flags;
    int n = fan_marks(fan, m, 8, &flags, &event_flags);
    CF_EQ("group flags", FLAGS, flags);
    CF_EQ("event flags", EVENT_FLAGS, event_flags);
    CF_EQ("number of marks", 4, n);
    fan_check_mark(m, n, 0, 's', sdev_of("."), FAN_MARK_IGNORED_SURV_MODIFY, 0, FAN_OPEN);
    fan_check_mark(m, n, 1, 'm', mnt_id_of("."), FAN_MARK_IGNORED_SURV_MODIFY, 0,
                   FAN_ACCESS);
    fan_check_mark(m, n, 2, 'i', ino_of("evictable.txt"), FAN_MARK_EVICTABLE, FAN_CLOSE_NOWRITE, 0);
    fan_check_mark(m, n, 3, 'i', ino_of("watched.txt"), FAN_MARK_IGNORED_SURV_MODIFY,
                   FAN_MODIFY | FAN_CLOSE_WRITE, FAN_OPEN);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(fan, F_GETFL) & O_NONBLOCK);
    fan_events(fan);
    int fd = open("watched.txt", O_WRONLY | O_APPEND);
    if (write(fd, "x", 1) != 1) cf_fail("writing watched.txt");
    close(fd);
    fd = open("evictable.txt", O_RDONLY);
    close(fd);
    unsigned got = fan_events(fan);
    CF_EQ("FAN_MODIFY reported", FAN_MODIFY, got & FAN_MODIFY);
    CF_EQ("FAN_CLOSE_WRITE reported", FAN_CLOSE_WRITE, got & FAN_CLOSE_WRITE);
    CF_EQ("FAN_CLOSE_NOWRITE reported", FAN_CLOSE_NOWRITE, got & FAN_CLOSE_NOWRITE);
    CF_EQ("no FAN_OPEN (ignored)", 0, got & FAN_OPEN);
}

CF_MAIN
