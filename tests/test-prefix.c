/* Unit tests for src/prefix.c: template validation with the offending offset,
 * and expansion, including truncation at the buffer size. */

#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "prefix.h"

static const char *const valid_table[] = {
        "",
        "plain text ",
        "%a",
        "%i",
        "%%",
        "[%a #%i] ",
        "100%% sure: ",
        "%%a is not a directive here",
        "%a%i%%%a",
        "tab\tcr\r\x01\x7f",
        "caf\xc3\xa9 > ",
};

static const struct {
        const char *tmpl;
        size_t offset;
} invalid_table[] = {
        {"%", 0},   {"ab%", 2}, {"%x", 0},    {"a%b", 1},    {"%A", 0},
        {"%I", 0},  {"%%%", 2}, {"%a%", 2},   {"%%%z", 2},   {"% ", 0},
        {"%\n", 0}, {"\n", 0},  {"abc\n", 3}, {"%a\n%i", 2}, {"ok %i then %d", 11},
};

Test(prefix, validate_accepts) {
        for (size_t i = 0; i < sizeof(valid_table) / sizeof(valid_table[0]); i++) {
                size_t off = 4242;

                cr_expect_eq(prefix_validate(valid_table[i], &off), 0, "refused \"%s\"", valid_table[i]);
                cr_expect_eq(off, 4242, "offset written on success for \"%s\"", valid_table[i]);
        }
}

Test(prefix, validate_refuses_with_offset) {
        for (size_t i = 0; i < sizeof(invalid_table) / sizeof(invalid_table[0]); i++) {
                size_t off = 4242;

                cr_expect_eq(prefix_validate(invalid_table[i].tmpl, &off), -EINVAL, "accepted template #%zu",
                             i);
                cr_expect_eq(off, invalid_table[i].offset, "template #%zu: offset %zu, expected %zu", i, off,
                             invalid_table[i].offset);
        }
}

Test(prefix, validate_null_offset_and_template) {
        size_t off = 7;

        cr_expect_eq(prefix_validate("%q", NULL), -EINVAL);
        cr_expect_eq(prefix_validate("%a", NULL), 0);
        cr_expect_eq(prefix_validate(NULL, &off), -EINVAL);
        cr_expect_eq(off, 7);
}

/* Expands into a buffer with guard bytes and checks none is touched. */
static void expect_expand(const char *tmpl, const char *peer, uint64_t id, size_t size, const char *want) {
        char buf[PREFIX_EXPANDED_MAX + 16];
        size_t n, want_len = strlen(want);

        cr_assert_lt(size, sizeof(buf));
        memset(buf, '#', sizeof(buf));
        n = prefix_expand(tmpl, peer, id, "alice", buf, size);
        cr_expect_eq(n, want_len, "\"%s\" (size %zu): length %zu, expected %zu", tmpl, size, n, want_len);
        cr_expect_eq(memcmp(buf, want, want_len), 0, "\"%s\" (size %zu): got \"%.*s\", expected \"%s\"",
                     tmpl, size, (int)n, buf, want);
        for (size_t i = n; i < sizeof(buf); i++)
                cr_assert_eq(buf[i], '#', "\"%s\" (size %zu): byte %zu written past the result", tmpl, size,
                             i);
}

typedef struct ExpandCase {
        const char *tmpl, *peer;
        uint64_t id;
        size_t size;
        const char *want;
} ExpandCase;

static void expect_expand_table(const ExpandCase *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                expect_expand(t[i].tmpl, t[i].peer, t[i].id, t[i].size, t[i].want);
}

static const ExpandCase directives_table[] = {
        {"", "1.2.3.4:5", 1, 64, ""},
        {"plain ", "1.2.3.4:5", 1, 64, "plain "},
        {"%a", "1.2.3.4:5", 1, 64, "1.2.3.4:5"},
        {"%a", "[::1]:7878", 1, 64, "[::1]:7878"},
        {"%a", "unix", 1, 64, "unix"},
        {"%i", "x", 0, 64, "0"},
        {"%i", "x", 42, 64, "42"},
        {"%i", "x", UINT64_MAX, 64, "18446744073709551615"},
        {"%%", "x", 1, 64, "%"},
        {"%%a", "x", 1, 64, "%a"},
        {"[%a #%i] %%: ", "1.2.3.4:5", 42, 64, "[1.2.3.4:5 #42] %: "},
        {"%a%a", "ab", 1, 64, "abab"},
        {"<%a>", NULL, 1, 64, "<>"},
};

Test(prefix, expand_directives) {
        expect_expand_table(directives_table, sizeof(directives_table) / sizeof(directives_table[0]));
}

Test(prefix, expand_keeps_bytes) {
        expect_expand("\x01\t\r\x7f\xc3\xa9", "x", 1, 64, "\x01\t\r\x7f\xc3\xa9");
}

static const ExpandCase truncates_table[] = {
        {"[%a #%i] ", "1.2.3.4:5", 42, 0, ""},
        {"[%a #%i] ", "1.2.3.4:5", 42, 1, "["},
        {"[%a #%i] ", "1.2.3.4:5", 42, 4, "[1.2"},
        {"[%a #%i] ", "1.2.3.4:5", 42, 12, "[1.2.3.4:5 #"},
        {"[%a #%i] ", "1.2.3.4:5", 42, 13, "[1.2.3.4:5 #4"},
        {"[%a #%i] ", "1.2.3.4:5", 42, 16, "[1.2.3.4:5 #42] "}, /* exact fit */
        {"[%a #%i] ", "1.2.3.4:5", 42, 17, "[1.2.3.4:5 #42] "},
        {"%%%%", "x", 1, 1, "%"},
        {"abcdef", "x", 1, 3, "abc"},
};

Test(prefix, expand_truncates) {
        expect_expand_table(truncates_table, sizeof(truncates_table) / sizeof(truncates_table[0]));
}

Test(prefix, expand_worst_case_fits_bound) {
        char tmpl[256 + 1], peer[ADDR_STR_MAX];
        static char buf[PREFIX_EXPANDED_MAX + 1];

        /* The longest template, all %a, with the longest address. */
        for (size_t i = 0; i < 256; i += 2)
                memcpy(tmpl + i, "%a", 2);
        tmpl[256] = '\0';
        memset(peer, 'p', sizeof(peer) - 1);
        peer[sizeof(peer) - 1] = '\0';

        cr_assert_eq(prefix_validate(tmpl, NULL), 0);
        size_t n = prefix_expand(tmpl, peer, UINT64_MAX, NULL, buf, sizeof(buf));
        cr_expect_eq(n, 128 * (ADDR_STR_MAX - 1));
        cr_expect_leq(n, PREFIX_EXPANDED_MAX);
}

Test(prefix, user_identity) {
        char buf[PREFIX_EXPANDED_MAX];
        cr_expect_eq(prefix_validate("%u: ", NULL), 0);
        expect_expand("[%u] ", "x", 1, 64, "[alice] ");
        size_t n = prefix_expand("<%u>", "x", 1, NULL, buf, sizeof buf);
        cr_expect(n == 3 && memcmp(buf, "<->", 3) == 0, "no identity: %.*s", (int)n, buf);
        n = prefix_expand("<%u>", "x", 1, "", buf, sizeof buf);
        cr_expect(n == 3 && memcmp(buf, "<->", 3) == 0, "empty identity: %.*s", (int)n, buf);
        char longest[PREFIX_USER_MAX * 2];
        memset(longest, 'u', sizeof longest - 1);
        longest[sizeof longest - 1] = '\0';
        cr_expect_eq(prefix_expand("%u", "x", 1, longest, buf, sizeof buf), PREFIX_USER_MAX);
}

Test(prefix, expand_unvalidated_is_safe) {
        /* Not validated: a stray '%' is copied, nothing is read past NUL. */
        expect_expand("50%", "x", 1, 64, "50%");
        expect_expand("%q%a", "x", 1, 64, "%qx");
}
