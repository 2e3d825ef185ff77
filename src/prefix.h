/* The 'prefix' template of docs/protocol.md: %a peer address, %i connection
 * id, %u authenticated identity, %%.
 * Pure. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Longest identity %u shows (longer ones are cut): no more than an address. */
#define PREFIX_USER_MAX 128
/* Upper bound of an expansion of a template of CONFIG_PREFIX_MAX bytes:
 * each two-byte directive expands to at most ADDR_STR_MAX (or
 * PREFIX_USER_MAX) bytes. */
#define PREFIX_EXPANDED_MAX ((size_t)256 / 2 * 128)

/* Returns 0 when the template is valid, -EINVAL otherwise (an unknown
 * directive, a lone trailing '%', a LF byte) with *ret_bad_offset set to the
 * offending byte. */
int prefix_validate(const char *tmpl, size_t *ret_bad_offset);

/* Expands a validated template into buf (no NUL added); returns the length,
 * truncated to size. */
size_t prefix_expand(const char *tmpl, const char *peer, uint64_t id, const char *user, char *buf,
                     size_t size);
