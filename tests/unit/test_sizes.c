/* test_sizes.c - report/sizes.c: parsing "10MB", "1.5GiB", plain bytes; formatting. */
#include <criterion/criterion.h>

#include "reader.h"
#include "sizes.h"

static uint64_t
parse_ok(const char *s) {
    uint64_t v = 0;
    cr_assert_eq(mp_size_parse(s, &v), 0, "'%s' parses", s);
    return v;
}

Test(sizes, parses) {
    cr_assert_eq(parse_ok("0"), 0);
    cr_assert_eq(parse_ok("4096"), 4096);
    cr_assert_eq(parse_ok("4096B"), 4096);
    cr_assert_eq(parse_ok("10MB"), 10000000);
    cr_assert_eq(parse_ok("10mb"), 10000000);
    cr_assert_eq(parse_ok("10 MB"), 10000000);
    cr_assert_eq(parse_ok("10MiB"), 10485760);
    cr_assert_eq(parse_ok("10M"), 10485760);
    cr_assert_eq(parse_ok("1.5GiB"), 1610612736);
    cr_assert_eq(parse_ok("1.5GB"), 1500000000);
    cr_assert_eq(parse_ok("64k"), 65536);
    cr_assert_eq(parse_ok("2KB"), 2000);
    cr_assert_eq(parse_ok("0.5KiB"), 512);
    cr_assert_eq(parse_ok("1TiB"), 1ull << 40);
    cr_assert_eq(parse_ok("3TB"), 3000000000000ull);
    cr_assert_eq(parse_ok("18446744073709551615"), UINT64_MAX);
    cr_assert_eq(parse_ok("  7 KiB  "), 7168);
}

Test(sizes, rejects) {
    const char *bad[] = {"",
                         " ",
                         "MB",
                         "-1",
                         "-1MB",
                         "1.5",
                         "1.",
                         ".5MB",
                         "1e3",
                         "0x10",
                         "10XB",
                         "10 M B",
                         "inf",
                         "nan",
                         "1,000",
                         "10MBs",
                         "18446744073709551616",
                         "17179869184GiB",
                         "99999999999999999999999",
                         "1.5B",
                         "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 42;
        cr_assert_eq(mp_size_parse(bad[i], &v), MP_EUSAGE, "'%s' is rejected", bad[i]);
        cr_assert_eq(v, 42, "output untouched for '%s'", bad[i]);
    }
    uint64_t v;
    cr_assert_eq(mp_size_parse(NULL, &v), MP_EUSAGE);
}

static void
fmt_is(uint64_t n, const char *want) {
    char buf[32];
    cr_assert_str_eq(mp_size_format(n, buf, sizeof buf), want, "%llu", (unsigned long long)n);
}

Test(sizes, formats) {
    fmt_is(0, "0 B");
    fmt_is(1, "1 B");
    fmt_is(1023, "1023 B");
    fmt_is(1024, "1.00 KiB");
    fmt_is(1536, "1.50 KiB");
    fmt_is(1048576, "1.00 MiB");
    fmt_is(1048575, "1.00 MiB");
    fmt_is(1610612736, "1.50 GiB");
    fmt_is(1ull << 40, "1.00 TiB");
    fmt_is(UINT64_MAX, "16.00 EiB");
}

Test(sizes, roundtrip) {
    uint64_t vals[] = {1024, 1536, 1 << 20, 3ull << 30};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char buf[32];
        mp_size_format(vals[i], buf, sizeof buf);
        cr_assert_eq(parse_ok(buf), vals[i], "%s", buf);
    }
}
