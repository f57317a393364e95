/* Open file descriptions shared between descriptors: by a dup, by fork, and by two siblings.
 * kind: descriptor sharing
 * checks: kcmp(KCMP_FILE) identity, the offset moved by one holder seen by the others (lseek, fdinfo pos), F_SETFL (O_APPEND, O_NONBLOCK) by one seen by the others, separate opens stay separate
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static char path[64];
static int fd, dupfd, own; /* fd: shared with child A; dupfd = dup(fd); own: a separate open */
static pid_t a, s1, s2;    /* a: inherits fd; s1, s2: siblings sharing `sib`, closed here */
static int cmd[3][2], ack[2];
enum { SIB = 20 };

/* A child that obeys "o<offset> f<flags>" commands on descriptor `d`. */
static void obey(int in, int d) {
    char line[64];
    for (;;) {
        int n = 0;
        char ch;
        while (n < 63 && read(in, &ch, 1) == 1 && ch != '\n') line[n++] = ch;
        if (n == 0) _exit(0);
        line[n] = 0;
        long v = strtol(line + 1, NULL, 10);
        if (line[0] == 'o') lseek(d, v, SEEK_SET);
        if (line[0] == 'f') fcntl(d, F_SETFL, (int)v);
        write(ack[1], "k", 1);
    }
}

static pid_t child(int k, int d) {
    pid_t p = fork();
    if (p == 0) {
        for (int j = 0; j < 3; j++) close(cmd[j][1]);
        obey(cmd[k][0], d);
    }
    return p;
}

static void tell(int k, char what, long v) {
    char line[64];
    int n = snprintf(line, sizeof line, "%c%ld\n", what, v);
    write(cmd[k][1], line, n);
    char x;
    read(ack[0], &x, 1);
}

static void setup(void) {
    cf_tmpfile_name(path, sizeof path, "shared_ofd");
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    CF_TRY(ftruncate(fd, 1 << 20));
    CF_TRY(lseek(fd, 111, SEEK_SET));
    CF_TRY(dupfd = dup(fd));
    CF_TRY(own = open(path, O_RDONLY));
    CF_TRY(lseek(own, 7, SEEK_SET));
    for (int j = 0; j < 3; j++) CF_TRY(pipe(cmd[j]));
    CF_TRY(pipe(ack));
    a = child(0, fd);
    int sib;
    CF_TRY(sib = open(path, O_RDWR));
    CF_TRY(dup2(sib, SIB));
    close(sib);
    CF_TRY(lseek(SIB, 222, SEEK_SET));
    s1 = child(1, SIB);
    s2 = child(2, SIB);
    close(SIB); /* only the two siblings hold it now */
    for (int j = 0; j < 3; j++) close(cmd[j][0]);
}

static int same(pid_t p1, int f1, pid_t p2, int f2) {
    return syscall(SYS_kcmp, p1, p2, KCMP_FILE, f1, f2) == 0;
}

static long pos_of(pid_t p, int d) {
    char name[64], buf[512];
    snprintf(name, sizeof name, "/proc/%d/fdinfo/%d", p, d);
    FILE *f = fopen(name, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strstr(buf, "pos:");
    return s ? strtol(s + 4, NULL, 10) : -1;
}

static long flags_of(pid_t p, int d) {
    char name[64], buf[512];
    snprintf(name, sizeof name, "/proc/%d/fdinfo/%d", p, d);
    FILE *f = fopen(name, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strstr(buf, "flags:");
    return s ? strtol(s + 6, NULL, 8) & (O_APPEND | O_NONBLOCK | O_ACCMODE) : -1;
}

static int round_no;

static void check(void) {
    pid_t me = getpid();
    round_no++;
    CF_EQ("kcmp: fd and its dup are one description", 1, same(me, fd, me, dupfd));
    CF_EQ("kcmp: fd and child A's fd are one description", 1, same(me, fd, a, fd));
    CF_EQ("kcmp: the siblings' descriptors are one description", 1, same(s1, SIB, s2, SIB));
    CF_EQ("kcmp: the separate open is another description", 0, same(me, fd, me, own));
    CF_EQ("kcmp: the siblings' file is another description than fd", 0, same(me, fd, s1, SIB));
    CF_EQ("offset of the separate open", 7, lseek(own, 0, SEEK_CUR));
    /* The dup in this process. */
    long off = 1000 * round_no + 1;
    CF_TRY(lseek(dupfd, off, SEEK_SET));
    CF_EQ("offset of fd after lseek on its dup", off, lseek(fd, 0, SEEK_CUR));
    CF_TRY(fcntl(dupfd, F_SETFL, O_APPEND));
    CF_EQ("O_APPEND on fd after F_SETFL on its dup", O_APPEND, fcntl(fd, F_GETFL) & O_APPEND);
    CF_TRY(fcntl(dupfd, F_SETFL, 0));
    /* Child A (inherited) moves the offset and the flags. */
    tell(0, 'o', off + 5);
    CF_EQ("offset of fd after child A's lseek", off + 5, lseek(fd, 0, SEEK_CUR));
    tell(0, 'f', O_NONBLOCK);
    CF_EQ("O_NONBLOCK of fd after child A's F_SETFL", O_NONBLOCK, fcntl(fd, F_GETFL) & O_NONBLOCK);
    tell(0, 'f', 0);
    CF_EQ("O_NONBLOCK of the dup after child A's F_SETFL", 0, fcntl(dupfd, F_GETFL) & O_NONBLOCK);
    /* The siblings. */
    CF_EQ("sibling 2 offset (moved last by sibling 1)", round_no == 1 ? 222 : 5000 + round_no - 1,
          pos_of(s2, SIB));
    tell(1, 'o', 5000 + round_no);
    CF_EQ("sibling 2 offset after sibling 1's lseek", 5000 + round_no, pos_of(s2, SIB));
    tell(2, 'f', O_APPEND | O_NONBLOCK);
    CF_EQ("sibling 1 flags after sibling 2's F_SETFL", O_RDWR | O_APPEND | O_NONBLOCK,
          flags_of(s1, SIB));
    tell(1, 'f', 0);
    CF_EQ("sibling 2 flags after sibling 1's F_SETFL", O_RDWR, flags_of(s2, SIB));
}
CF_MAIN
