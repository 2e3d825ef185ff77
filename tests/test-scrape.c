#include <criterion/criterion.h>

#include "harness.h"

Test(scrape, placeholder) {
        cr_assert(harness_daemon_path() != NULL);
}
