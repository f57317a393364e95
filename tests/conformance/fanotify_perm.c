/* fanotify: a group of a permission class (FAN_CLASS_CONTENT), which cairn refuses.
 * kind: fanotify
 * checks: the checkpoint is refused (an event read and not answered yet would keep a process waiting for an answer that never comes), the group works on unharmed (a FAN_OPEN_PERM event is answered)
 * root: refused: fanotify group of a permission class
 * user: skip: permission classes need CAP_SYS_ADMIN
 */
#include "conformance.h"
#include "fanotify_common.h"

static int fan;

static void setup(void) {
    int fd;
    CF_TRY(fd = open("guarded.txt", O_CREAT | O_WRONLY, 0600));
    close(fd);
    CF_TRY(fan = fanotify_init(FAN_CLASS_CONTENT | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY));
    CF_TRY(fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, "guarded.txt"));
}

static void check(void) {
    struct fan_mark m[4];
    unsigned flags, event_flags;
    int n = fan_marks(fan, m, 4, &flags, &event_flags);
    CF_EQ("group flags", FAN_CLASS_CONTENT | FAN_NONBLOCK | FAN_CLOEXEC, flags);
    fan_check_mark(m, n, 0, 'i', ino_of("guarded.txt"), 0, FAN_OPEN_PERM, 0);
    /* A child opens the file; the group answers FAN_ALLOW. */
    pid_t child = fork();
    if (child == 0) {
        int fd = open("guarded.txt", O_RDONLY);
        _exit(fd < 0);
    }
    int answered = 0;
    for (int tries = 0; tries < 500 && !answered; tries++) {
        char buf[4096] __attribute__((aligned(8)));
        ssize_t len = read(fan, buf, sizeof buf);
        struct fanotify_event_metadata *e = (void *)buf;
        for (; len > 0 && FAN_EVENT_OK(e, len); e = FAN_EVENT_NEXT(e, len)) {
            if (e->mask & FAN_OPEN_PERM) {
                struct fanotify_response r = {.fd = e->fd, .response = FAN_ALLOW};
                if (write(fan, &r, sizeof r) == sizeof r) answered = 1;
            }
            if (e->fd >= 0) close(e->fd);
        }
        if (!answered) usleep(10000);
    }
    CF_EQ("FAN_OPEN_PERM event answered", 1, answered);
    int status = -1;
    waitpid(child, &status, 0);
    CF_EQ("the child opened the file", 0, status);
}

CF_MAIN
