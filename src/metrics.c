#include "metrics.h"

#include <errno.h>

ssize_t metrics_render(const MetricsSnapshot *m, char *buf, size_t size) {
        (void)m;
        (void)buf;
        (void)size;
        return -ENOBUFS;
}
