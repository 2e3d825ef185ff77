/* RateLimit: a fixed window of 'interval' allowing 'burst' events. */
#include "ratelimit.h"

#include <stddef.h>

uint32_t ratelimit_flush(RateLimit *rl, uint64_t now_usec) {
        if (rl->count > 0 && now_usec - rl->begin < rl->interval_usec)
                return 0;
        uint32_t s = rl->suppressed;
        rl->count = 0;
        rl->suppressed = 0;
        rl->begin = now_usec;
        return s;
}

bool ratelimit_below(RateLimit *rl, uint64_t now_usec, uint32_t *ret_suppressed) {
        uint32_t s = ratelimit_flush(rl, now_usec);
        if (ret_suppressed)
                *ret_suppressed = s;
        if (rl->count < rl->burst) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}
