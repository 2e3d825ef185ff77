#include <criterion/criterion.h>
#include <errno.h>

#include "metrics.h"

Test(metrics, placeholder) {
        cr_assert_eq(metrics_render(NULL, NULL, 0), -ENOBUFS);
}
