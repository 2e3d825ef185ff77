#include <criterion/criterion.h>

#include "harness.h"
#include "wsclient.h"

Test(websocket, placeholder) {
        cr_assert(harness_daemon_path() != NULL);
}
