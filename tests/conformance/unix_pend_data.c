/* A UNIX stream connection not accepted yet that already carries data.
 * kind: UNIX socket
 * checks: the data a client sent before its connection was accepted arrives after accepting
 * root: refused: not accepted yet
 */
#include "unix_cf.h"

static int lst, cli;
static char srv_path[108];

static void setup(void) {
    cf_path(srv_path, "pd.sock");
    lst = cf_bound(SOCK_STREAM, srv_path);
    CF_TRY(listen(lst, 2));
    cli = cf_bound(SOCK_STREAM, NULL);
    cf_connect(cli, srv_path);
    cf_send(cli, "early bytes");
}

static void check(void) {
    int a;
    CF_TRY(a = accept(lst, NULL, NULL));
    cf_expect("data sent before accept", a, "early bytes", NULL, -1);
    close(a);
    close(cli);
    cli = cf_bound(SOCK_STREAM, NULL);
    cf_connect(cli, srv_path);
    cf_send(cli, "early bytes");
}
CF_MAIN
