/* The dumpable flag, cleared: PR_GET_DUMPABLE and the owner of /proc/self files (root for a
 * process that is not dumpable).
 * kind: process attributes
 * checks: PR_GET_DUMPABLE, owner of /proc/self/stat
 * root: restored
 * user: refused: is not dumpable
 */
#include "conformance.h"
#include <sys/prctl.h>
#include <sys/stat.h>

static void setup(void) { CF_TRY(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)); }

static void check(void) {
    CF_EQ("PR_GET_DUMPABLE", 0, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    struct stat st;
    if (stat("/proc/self/stat", &st) < 0) {
        cf_fail("stat /proc/self/stat: %s", strerror(errno));
        return;
    }
    /* not dumpable: /proc/PID files belong to root (of the user namespace; overflow uid
     * 65534 when it is not mapped) */
    if (st.st_uid != 0 && st.st_uid != 65534)
        cf_fail("owner of /proc/self/stat: expected root, got %u", st.st_uid);
}
CF_MAIN
