/* Where a program's time goes: `PROGRAM --profile` times every step of the generated forward functions
 * and sums the times per op kind ("matmul q4_0 x16", "attention", "rms_norm", ...), separately for
 * prefill and decode steps, then prints a table of them.
 *
 * The generated code brackets each step with ae_profile_now() and ae_profile_add() when its state holds
 * a profile (ae_state.profile), and does nothing more otherwise. A kind is the string literal the
 * emitter wrote: kinds are told apart by their text. Nothing is allocated after creation.
 */
#ifndef AE_PROFILE_H
#define AE_PROFILE_H

#include <stdint.h>
#include <stdio.h>

typedef struct ae_profile ae_profile;

enum ae_profile_phase {
    AE_PROFILE_PREFILL = 0,
    AE_PROFILE_DECODE = 1,
};

/* A profile with room for every kind a program uses; NULL when out of memory. */
ae_profile *ae_profile_create(void);
void ae_profile_destroy(ae_profile *p);

/* A monotonic clock in nanoseconds. */
uint64_t ae_profile_now(void);

/* Adds ae_profile_now() - t0 to kind in phase, and counts one call. */
void ae_profile_add(ae_profile *p, enum ae_profile_phase phase, const char *kind, uint64_t t0);

/* Counts a whole step of a phase (tokens: the step's tokens), whose time the kinds share. */
void ae_profile_step(ae_profile *p, enum ae_profile_phase phase, int64_t tokens, uint64_t t0);

/* Prints one table per phase that ran: each kind's total time, its share of the phase's steps, its time
 * per step and calls per step, largest first, and what no kind accounts for (the step's own overhead). */
void ae_profile_print(const ae_profile *p, FILE *f);

#endif
