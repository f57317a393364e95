/* The securebits of a thread (root: SECBIT_KEEP_CAPS, SECBIT_NO_SETUID_FIXUP, SECBIT_NOROOT
 * with its lock, SECBIT_NO_CAP_AMBIENT_RAISE; an ordinary user cannot set any: they must stay
 * 0) and the behaviour they give: with SECBIT_NO_CAP_AMBIENT_RAISE an ambient raise fails.
 * kind: credentials
 * checks: PR_GET_SECUREBITS, PR_CAP_AMBIENT_RAISE refused when SECBIT_NO_CAP_AMBIENT_RAISE is set
 * root: restored
 */
#include "conformance.h"
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>

static int want;

static void setup(void) {
    if (geteuid() == 0) {
        want = SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
               SECBIT_NO_CAP_AMBIENT_RAISE;
        CF_TRY(prctl(PR_SET_SECUREBITS, want, 0, 0, 0));
    }
    want = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
}

static void check(void) {
    CF_EQ("PR_GET_SECUREBITS", want, prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    if (want & SECBIT_NO_CAP_AMBIENT_RAISE) {
        int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0);
        CF_EQ("ambient raise refused under SECBIT_NO_CAP_AMBIENT_RAISE", -1, r);
    }
    if (want & SECBIT_NOROOT_LOCKED) {
        int r = prctl(PR_SET_SECUREBITS, want & ~SECBIT_NOROOT, 0, 0, 0);
        CF_EQ("clearing a locked SECBIT_NOROOT refused", -1, r);
    }
}
CF_MAIN
