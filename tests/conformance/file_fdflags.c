/* Regular files: descriptor flags, status flags and offsets of several descriptors.
 * kind: regular file
 * checks: FD_CLOEXEC per descriptor; O_APPEND, O_RDONLY/O_WRONLY/O_RDWR, O_NOATIME-free status flags; offset of each descriptor; dup'ed descriptors share one offset
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>

static int ro, wo, app, dupd;

static void setup(void) {
    CF_TRY(ro = open("data.txt", O_RDWR | O_CREAT | O_TRUNC, 0640));
    CF_TRY(write(ro, "0123456789abcdefghij", 20));
    close(ro);
    CF_TRY(ro = open("data.txt", O_RDONLY | O_CLOEXEC));
    CF_TRY(lseek(ro, 7, SEEK_SET));
    CF_TRY(wo = open("data.txt", O_WRONLY));
    CF_TRY(lseek(wo, 3, SEEK_SET));
    CF_TRY(app = open("log.txt", O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600));
    CF_TRY(write(app, "line\n", 5));
    CF_TRY(dupd = dup(wo));
}

static void check(void) {
    CF_EQ("FD_CLOEXEC of the O_CLOEXEC descriptor", FD_CLOEXEC, fcntl(ro, F_GETFD));
    CF_EQ("FD_CLOEXEC of a plain descriptor", 0, fcntl(wo, F_GETFD));
    CF_EQ("access mode O_RDONLY", O_RDONLY, fcntl(ro, F_GETFL) & O_ACCMODE);
    CF_EQ("access mode O_WRONLY", O_WRONLY, fcntl(wo, F_GETFL) & O_ACCMODE);
    CF_EQ("O_APPEND", O_APPEND, fcntl(app, F_GETFL) & O_APPEND);
    CF_EQ("no O_APPEND", 0, fcntl(wo, F_GETFL) & O_APPEND);
    CF_EQ("offset of the read descriptor", 7, lseek(ro, 0, SEEK_CUR));
    CF_EQ("offset of the write descriptor", 3, lseek(wo, 0, SEEK_CUR));
    CF_EQ("offset of the appending descriptor", 5, lseek(app, 0, SEEK_CUR));
    /* A dup shares the description: moving one moves the other. */
    CF_TRY(lseek(dupd, 11, SEEK_SET));
    CF_EQ("offset shared by dup", 11, lseek(wo, 0, SEEK_CUR));
    CF_TRY(lseek(dupd, 3, SEEK_SET));
    char c = 0;
    CF_EQ("read at the offset", 1, read(ro, &c, 1));
    CF_EQ("the byte at offset 7", '7', c);
    CF_TRY(lseek(ro, 7, SEEK_SET));
}

CF_MAIN
