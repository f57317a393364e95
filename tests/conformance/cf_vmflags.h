/* Reading a mapping's VmFlags from /proc/self/smaps, for the memory conformance programs. */
#ifndef CF_VMFLAGS_H
#define CF_VMFLAGS_H
#include <stdio.h>
#include <string.h>

/* The VmFlags line of the mapping that contains `p` (empty when there is none); `range`
 * receives its start and end when not NULL. */
static void cf_vmflags(const void *p, char *out, size_t n, unsigned long range[2]) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    out[0] = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            in = a <= (unsigned long)p && (unsigned long)p < b;
            if (in && range) range[0] = a, range[1] = b;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, n, "%s", line + 8);
            char *nl = strchr(out, '\n');
            if (nl) *nl = 0;
            break;
        }
    }
    fclose(f);
}

/* True when the VmFlags `flags` contain the two-letter `code`. */
static int cf_has_flag(const char *flags, const char *code) {
    size_t l = strlen(code);
    for (const char *s = flags; (s = strstr(s, code)) != NULL; s += l)
        if ((s == flags || s[-1] == ' ') && (s[l] == ' ' || s[l] == 0)) return 1;
    return 0;
}
#endif
