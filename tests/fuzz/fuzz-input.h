/* Reads a fuzz input as a stream of small integers that steer a target. Once
 * the input is used up every read returns 0, so a target never has to check
 * lengths and a short input is as meaningful as a long one. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct FuzzInput {
        const uint8_t *p;
        size_t left;
} FuzzInput;

static inline uint8_t fuzz_u8(FuzzInput *in) {
        if (in->left == 0)
                return 0;
        in->left--;
        return *in->p++;
}

static inline uint16_t fuzz_u16(FuzzInput *in) {
        uint16_t hi = fuzz_u8(in);
        return (uint16_t)(hi << 8 | fuzz_u8(in));
}
