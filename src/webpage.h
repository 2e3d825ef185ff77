/* The built-in demo page a websocket listener serves at GET / without
 * Upgrade: HTML and a little JavaScript, no external resources. It joins
 * the broadcast through the listener it came from (ws:// or wss://). */
#pragma once

#include <stddef.h>

extern const char webpage_html[];
extern const size_t webpage_html_len;
