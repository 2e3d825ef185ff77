/* The envelope of what a node publishes on the cluster's Redis channel
 * (epoll-broadcaster.conf(5), cluster): one read-batch of one client's
 * messages, or a heartbeat. Pure: no I/O, no allocation.
 *
 * Wire form, one Redis message:
 *   "EB1 " NODE " " SEQ " " SENDER " " COUNT "\n" PAYLOAD
 * NODE is the publishing node's instance, 16 lowercase hex digits, drawn
 * anew at every start (so a restarted node is a new one and its sequence
 * may begin again); SEQ counts that instance's envelopes from 1, so a
 * receiver sees gaps and duplicates; SENDER is the client's id on that
 * node (it drops its own echo by it); COUNT is the number of messages in
 * PAYLOAD, each LF-terminated, the node's prefix already applied. COUNT 0
 * with an empty payload is a heartbeat. The numbers are decimal, without
 * sign or leading zeros. Another version tag than "EB1" is refused as
 * such, so that a mixed cluster says what is wrong. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* "EB1 " + 16 + 3 separators + two 20-digit numbers + a 10-digit count + LF. */
#define ENVELOPE_HEADER_MAX 80

typedef struct Envelope {
        uint64_t node;
        uint64_t seq;
        uint64_t sender;
        uint32_t count; /* 0: a heartbeat */
        /* 'count' LF-terminated messages, in the caller's buffer. */
        const char *payload;
        size_t payload_len;
} Envelope;

/* Writes the header of an envelope into buf. Returns its length. */
size_t envelope_header(char buf[ENVELOPE_HEADER_MAX], uint64_t node, uint64_t seq, uint64_t sender,
                       uint32_t count);

/* Parses one Redis message. Returns 0 with *ret set, -EPROTONOSUPPORT for
 * another version tag, -EMSGSIZE when a message (its LF included) is over
 * max_message bytes, or -EBADMSG for anything else that is not an
 * envelope: a malformed header, a count that does not match the payload,
 * a payload not ending with LF, a heartbeat with a payload, SEQ 0. */
int envelope_decode(const char *buf, size_t len, uint64_t max_message, Envelope *ret);
