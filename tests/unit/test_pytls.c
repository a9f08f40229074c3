/* test_pytls.c - mp_pytls_decode (preload/pytls.c): the three x86-64 TLS access sequences that
 * _PyThreadState_GetCurrent can be compiled to, and what is not one of them. The general-dynamic
 * bytes are those of pyenv's 3.12.1 (disassembled); the exec forms are built by hand. The
 * e2e Python tests run the decoder on every 3.12+ interpreter present. */
#include <criterion/criterion.h>

#include <string.h>

#include "pytls.h"

static int
decode(const uint8_t *code, size_t size, uintptr_t *desc, intptr_t *off) {
    *desc = 0;
    *off = 0;
    return mp_pytls_decode(code, size, desc, off);
}

Test(pytls, general_dynamic_after_a_stack_adjustment) {
    /* sub $8,%rsp; data16 lea 0x26dbd4(%rip),%rdi; data16 data16 rex.W call rel32;
     * mov (%rax),%rax; add $8,%rsp; ret */
    static const uint8_t code[] = {0x48, 0x83, 0xec, 0x08, 0x66, 0x48, 0x8d, 0x3d, 0xd4, 0xdb,
                                   0x26, 0x00, 0x66, 0x66, 0x48, 0xe8, 0xb7, 0x22, 0xe3, 0xff,
                                   0x48, 0x8b, 0x00, 0x48, 0x83, 0xc4, 0x08, 0xc3};
    uintptr_t desc;
    intptr_t off;
    cr_assert_eq(decode(code, sizeof code, &desc, &off), MP_PYTLS_DESC);
    cr_assert_eq(desc, (uintptr_t)(code + 12) + 0x26dbd4);
    /* The same, cut before its final load: not the sequence. */
    cr_assert_eq(decode(code, 22, &desc, &off), MP_PYTLS_NONE);
}

Test(pytls, general_dynamic_needs_the_value_load) {
    static const uint8_t code[] = {0x66, 0x48, 0x8d, 0x3d, 0x10, 0x00, 0x00, 0x00, 0x66, 0x66,
                                   0x48, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x48, 0x89, 0xc0, 0xc3};
    uintptr_t desc;
    intptr_t off;
    cr_assert_eq(decode(code, sizeof code, &desc, &off), MP_PYTLS_NONE, "mov %%rax,%%rax");
}

Test(pytls, initial_exec_reads_the_got_entry) {
    /* mov rel(%rip),%rax; mov %fs:(%rax),%rax; ret; then the "GOT" word, 4 bytes further. */
    uint8_t code[32] = {0x48, 0x8b, 0x05, 0, 0, 0, 0, 0x64, 0x48, 0x8b, 0x00, 0xc3};
    const int32_t rel = 16 - 7; /* from the end of the first instruction to code + 16 */
    memcpy(code + 3, &rel, 4);
    int64_t got = -0x38;
    memcpy(code + 16, &got, 8);
    uintptr_t desc;
    intptr_t off;
    cr_assert_eq(decode(code, 12, &desc, &off), MP_PYTLS_OFFSET);
    cr_assert_eq(off, -0x38);
    /* An offset above the thread pointer, or absurdly far below it: not a static TLS block. */
    got = 0x40;
    memcpy(code + 16, &got, 8);
    cr_assert_eq(decode(code, 12, &desc, &off), MP_PYTLS_NONE);
    got = -((int64_t)1 << 40);
    memcpy(code + 16, &got, 8);
    cr_assert_eq(decode(code, 12, &desc, &off), MP_PYTLS_NONE);
}

Test(pytls, local_exec_anywhere_in_the_first_16_bytes) {
    /* endbr64; mov %fs:0xfffffffffffffff8,%rax; ret */
    static const uint8_t code[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x64, 0x48, 0x8b,
                                   0x04, 0x25, 0xf8, 0xff, 0xff, 0xff, 0xc3};
    uintptr_t desc;
    intptr_t off;
    cr_assert_eq(decode(code, sizeof code, &desc, &off), MP_PYTLS_OFFSET);
    cr_assert_eq(off, -8);
    static const uint8_t above[] = {0x64, 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00, 0xc3};
    cr_assert_eq(decode(above, sizeof above, &desc, &off), MP_PYTLS_NONE);
}

Test(pytls, anything_else_is_not_decoded) {
    static const uint8_t call[] = {0xe9, 0x00, 0x10, 0x00, 0x00}; /* jmp elsewhere */
    static const uint8_t zero[] = {0x31, 0xc0, 0xc3};             /* xor %eax,%eax; ret */
    uintptr_t desc;
    intptr_t off;
    cr_assert_eq(decode(call, sizeof call, &desc, &off), MP_PYTLS_NONE);
    cr_assert_eq(decode(zero, sizeof zero, &desc, &off), MP_PYTLS_NONE);
    cr_assert_eq(decode(zero, 0, &desc, &off), MP_PYTLS_NONE);
}
