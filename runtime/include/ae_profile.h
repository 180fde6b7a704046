/* Where a program's time goes: `PROGRAM --profile` times every step of the generated forward functions
 * and sums the times per op kind ("matmul q4_0 x16", "attention", "rms_norm", ...), separately for
 * prefill and decode steps, then prints a table of them.
 *
 * The generated code marks the end of each step with one call, ae_profile_mark(s->profile, kind), which
 * counts the time since the previous mark (or the start of the forward function) under the step's kind;
 * ae_profile_begin and ae_profile_end bracket the whole function. Without --profile the state's profile
 * is NULL and the three return at once. One call per step, and no test at the call, keeps the timers
 * small in the program (a few bytes per step). A kind is the string literal the emitter wrote: kinds are
 * told apart by their text. Nothing is allocated after creation.
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

/* Starts a forward function of a phase: its steps' marks follow. Each of the three does nothing when p is
 * NULL. */
void ae_profile_begin(ae_profile *p, enum ae_profile_phase phase);

/* Counts the time since the previous mark (or ae_profile_begin) under kind in the current phase, and one
 * call. */
void ae_profile_mark(ae_profile *p, const char *kind);

/* Ends the forward function begun last: counts its whole time (which the kinds share) and its tokens. */
void ae_profile_end(ae_profile *p, int64_t tokens);

/* Prints one table per phase that ran: each kind's total time, its share of the phase's steps, its time
 * per step and calls per step, largest first, and what no kind accounts for (the forward function's
 * start and end). */
void ae_profile_print(const ae_profile *p, FILE *f);

#endif
