/* Supplementary groups and the real/effective/saved/fs user and group ids. As root the
 * program sets groups and gids of its own and moves to other uids (keeping its capabilities
 * with PR_SET_KEEPCAPS); an ordinary user cannot change them, and they must stay what they
 * were.
 * kind: credentials
 * checks: getgroups, getresuid, getresgid, fsuid/fsgid, the Uid/Gid/Groups lines of /proc/self/status
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static gid_t groups[64];
static int ngroups;
static uid_t uid[4];
static gid_t gid[4];

static void status_line(const char *key, char *out, size_t len) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[1024];
    out[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':') {
            char *v = line + strlen(key) + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            /* tabs and spaces as one space */
            for (char *p = v; *p; p++) if (*p == '\t') *p = ' ';
            snprintf(out, len, "%s", v);
        }
    if (f) fclose(f);
}

static char want_groups_line[512], want_uid_line[128], want_gid_line[128];

static void setup(void) {
    if (geteuid() == 0) {
        gid_t g[] = {4, 27, 100, 1234, 60000};
        CF_TRY(setgroups(5, g));
        CF_TRY(setresgid(1001, 1002, 1003));
        CF_TRY(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
        /* syscall: glibc would change every thread, the kernel's call changes this one */
        CF_TRY(syscall(SYS_setresuid, 2001, 0, 2003));
        setfsuid(2004);
        setfsgid(1004);
    }
    ngroups = getgroups(64, groups);
    CF_TRY(ngroups);
    getresuid(&uid[0], &uid[1], &uid[2]);
    getresgid(&gid[0], &gid[1], &gid[2]);
    uid[3] = setfsuid(-1);
    gid[3] = setfsgid(-1);
    status_line("Groups", want_groups_line, sizeof want_groups_line);
    status_line("Uid", want_uid_line, sizeof want_uid_line);
    status_line("Gid", want_gid_line, sizeof want_gid_line);
}

static void check(void) {
    gid_t g[64];
    int n = getgroups(64, g);
    CF_EQ("number of groups", ngroups, n);
    for (int i = 0; i < n && i < ngroups; i++) CF_EQ("a supplementary group", groups[i], g[i]);
    uid_t u[4];
    gid_t h[4];
    getresuid(&u[0], &u[1], &u[2]);
    getresgid(&h[0], &h[1], &h[2]);
    u[3] = setfsuid(-1);
    h[3] = setfsgid(-1);
    const char *names[] = {"real", "effective", "saved", "fs"};
    char what[64];
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "%s uid", names[i]);
        CF_EQ(what, uid[i], u[i]);
        snprintf(what, sizeof what, "%s gid", names[i]);
        CF_EQ(what, gid[i], h[i]);
    }
    char line[512];
    status_line("Groups", line, sizeof line);
    CF_STREQ("Groups in /proc/self/status", want_groups_line, line);
    status_line("Uid", line, sizeof line);
    CF_STREQ("Uid in /proc/self/status", want_uid_line, line);
    status_line("Gid", line, sizeof line);
    CF_STREQ("Gid in /proc/self/status", want_gid_line, line);
}
CF_MAIN
