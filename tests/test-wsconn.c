#include <criterion/criterion.h>

#include "websocket.h"

Test(wsconn, placeholder) {
        WsConn *w = NULL;
        cr_assert_eq(ws_conn_new(&w), 0);
        ws_conn_free(w);
}
