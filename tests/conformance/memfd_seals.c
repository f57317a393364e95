/* Sealed memfds: every seal, and MFD_NOEXEC_SEAL.
 * kind: memfd
 * checks: F_GET_SEALS, writes/shrinks/grows refused as the seals say, contents, size, mode, name
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

static int a, b, c;

static void setup(void) {
    CF_TRY(a = memfd_create("sealed-all", MFD_ALLOW_SEALING));
    CF_TRY(write(a, "frozen", 6));
    CF_TRY(fcntl(a, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    CF_TRY(b = memfd_create("sealed-grow", MFD_ALLOW_SEALING));
    CF_TRY(write(b, "0123456789", 10));
    CF_TRY(fcntl(b, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_FUTURE_WRITE));
    CF_TRY(c = memfd_create("noexec", MFD_NOEXEC_SEAL));
    CF_TRY(write(c, "data", 4));
}

static void check(void) {
    CF_EQ("a seals", F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, fcntl(a, F_GET_SEALS));
    CF_EQ("a write refused", -1, pwrite(a, "x", 1, 0));
    CF_EQ("a ftruncate refused", -1, ftruncate(a, 1));
    char buf[16] = {0};
    CF_EQ("a pread", 6, pread(a, buf, sizeof buf, 0));
    CF_STREQ("a contents", "frozen", buf);
    CF_EQ("b seals", F_SEAL_GROW | F_SEAL_FUTURE_WRITE, fcntl(b, F_GET_SEALS));
    CF_EQ("b grow refused", -1, ftruncate(b, 20));
    CF_EQ("b write refused", -1, pwrite(b, "x", 1, 0));
    memset(buf, 0, sizeof buf);
    CF_EQ("b pread", 10, pread(b, buf, sizeof buf, 0));
    CF_STREQ("b contents", "0123456789", buf);
    struct stat st;
    if (fstat(c, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("c mode (no exec bits)", S_IFREG | 0666, st.st_mode);
    CF_EQ("c seals", F_SEAL_EXEC, fcntl(c, F_GET_SEALS));
    CF_EQ("c chmod +x refused", -1, fchmod(c, 0777));
    CF_EQ("c size", 4, st.st_size);
}
CF_MAIN
