/* The memory planner's core: hand-made cases with known answers, and properties on random buffer sets
 * (no two buffers live together overlap, the peak is at least the largest live set and at most the
 * naive sum). */
#include <stdlib.h>

#include "memplan.h"
#include "test_util.h"

START_TEST(test_chain_reuses_memory)
{
    /* A chain a -> b -> c -> d: each buffer dies when the next is made, so two slots suffice. */
    struct plan_buffer b[] = {{100, 0, 1, 0}, {100, 1, 2, 0}, {100, 2, 3, 0}, {100, 3, 4, 0}};
    uint64_t peak = plan_arena_assign(b, 4, 64);
    ae_error err;
    ck_assert_msg(plan_check(b, 4, 64, peak, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(peak, 256); /* two 100-byte buffers, each rounded to 128 */
    ck_assert_uint_eq(b[0].offset, b[2].offset);
    ck_assert_uint_eq(b[1].offset, b[3].offset);
}
END_TEST

START_TEST(test_largest_first_fills_gaps)
{
    /* A big buffer lives throughout; two small ones with disjoint lives share the space after it. */
    struct plan_buffer b[] = {{32, 0, 0, 0}, {1000, 0, 9, 0}, {64, 2, 3, 0}, {64, 5, 6, 0}};
    uint64_t peak = plan_arena_assign(b, 4, 64);
    ae_error err;
    ck_assert_msg(plan_check(b, 4, 64, peak, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(b[1].offset, 0);
    ck_assert_uint_eq(b[2].offset, 1024);
    ck_assert_uint_eq(b[3].offset, 1024);
    ck_assert_uint_eq(peak, 1088);
}
END_TEST

START_TEST(test_check_catches_overlap)
{
    struct plan_buffer b[] = {{128, 0, 5, 0}, {128, 3, 4, 64}};
    ae_error err;
    ck_assert_int_eq(plan_check(b, 2, 64, 256, &err), -1);
    ck_assert_str_eq(err.msg, "buffers 0 (steps 0..5, bytes 0..128) and 1 (steps 3..4, bytes 64..192) are live "
                              "together and overlap");
    b[1].offset = 32;
    ck_assert_int_eq(plan_check(b, 2, 64, 256, &err), -1);
    ck_assert_str_eq(err.msg, "buffer 1: offset 32 is not a multiple of 64");
}
END_TEST

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

START_TEST(test_random_plans_are_valid)
{
    enum { MAX_N = 300 };
    static struct plan_buffer b[MAX_N];
    for (int round = 0; round < 400; round++) {
        uint32_t n = 1 + (uint32_t)(rng_next() % MAX_N);
        uint32_t steps = 1 + (uint32_t)(rng_next() % 200);
        uint64_t alignment = 1u << (rng_next() % 8);
        uint64_t naive = 0;
        for (uint32_t i = 0; i < n; i++) {
            b[i].first = (uint32_t)(rng_next() % steps);
            b[i].last = b[i].first + (uint32_t)(rng_next() % (rng_next() % 4 == 0 ? steps : 4));
            b[i].size = rng_next() % 5 == 0 ? 0 : 1 + rng_next() % 100000;
            naive += (b[i].size + alignment - 1) / alignment * alignment;
        }
        uint64_t peak = plan_arena_assign(b, n, alignment);
        ae_error err;
        ck_assert_msg(plan_check(b, n, alignment, peak, &err) == 0, "round %d: %s", round, err.msg);
        ck_assert_uint_ge(peak, plan_max_live(b, n));
        ck_assert_uint_le(peak, naive);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_chain_reuses_memory);
    tcase_add_test(tc, test_largest_first_fills_gaps);
    tcase_add_test(tc, test_check_catches_overlap);
    tcase_add_test(tc, test_random_plans_are_valid);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
