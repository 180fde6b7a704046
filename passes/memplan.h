/* Activation memory planning: every intermediate gets an offset in one arena, planned ahead of time.
 *
 * The core works on abstract buffers (a size and an inclusive live range of schedule steps), so it can
 * be tested on random sets and used for any backend; the pass (pass_memplan) builds the buffers from a
 * graph's schedule. Assignment is greedy, largest buffer first, each into the lowest aligned gap left by
 * the already placed buffers whose live ranges overlap its own. Two buffers share bytes only when their
 * live ranges are disjoint.
 */
#ifndef AE_MEMPLAN_H
#define AE_MEMPLAN_H

#include <stdint.h>

#include "ae_error.h"

struct plan_buffer {
    uint64_t size;        /* bytes */
    uint32_t first, last; /* schedule steps: written at first, last read at last (first <= last) */
    uint64_t offset;      /* assigned by plan_arena_assign; a multiple of the alignment */
};

/* Assigns every buffer's offset and returns the arena size (the peak). alignment: a power of two. */
uint64_t plan_arena_assign(struct plan_buffer *b, uint32_t n, uint64_t alignment);

/* Fails, naming both, when two buffers live at the same step overlap in the arena, or when an offset is
 * misaligned or a buffer ends past arena_size. */
int plan_check(const struct plan_buffer *b, uint32_t n, uint64_t alignment, uint64_t arena_size, ae_error *err);

/* The largest sum of sizes live at one step: no plan can use less. */
uint64_t plan_max_live(const struct plan_buffer *b, uint32_t n);

#endif
