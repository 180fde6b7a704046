/* The per-op-kind profile of a program's forward steps (ae_profile.h). */
#include "ae_profile.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROFILE_KINDS 64

struct profile_kind {
    const char *name;
    uint64_t ns, calls;
};

struct profile_phase {
    struct profile_kind kind[PROFILE_KINDS];
    int n_kinds;
    uint64_t step_ns, steps, tokens;
};

struct ae_profile {
    struct profile_phase phase[2];
    struct profile_phase *now; /* the phase of the forward function begun last */
    uint64_t t0, last;         /* its start, and its previous mark */
};

ae_profile *ae_profile_create(void)
{
    return calloc(1, sizeof(ae_profile));
}

void ae_profile_destroy(ae_profile *p)
{
    free(p);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ae_profile_begin(ae_profile *p, enum ae_profile_phase phase)
{
    if (!p)
        return;
    p->now = &p->phase[phase == AE_PROFILE_DECODE];
    p->t0 = p->last = now_ns();
}

void ae_profile_mark(ae_profile *p, const char *kind)
{
    if (!p)
        return;
    const uint64_t t = now_ns(), dt = t - p->last;
    p->last = t;
    struct profile_phase *ph = p->now;
    int i = 0;
    while (i < ph->n_kinds && ph->kind[i].name != kind && strcmp(ph->kind[i].name, kind) != 0)
        i++;
    if (i == ph->n_kinds) {
        if (ph->n_kinds == PROFILE_KINDS)
            i = PROFILE_KINDS - 1; /* the last slot takes what no slot is left for */
        else
            ph->kind[ph->n_kinds++].name = kind;
    }
    ph->kind[i].ns += dt;
    ph->kind[i].calls++;
}

void ae_profile_end(ae_profile *p, int64_t tokens)
{
    if (!p)
        return;
    struct profile_phase *ph = p->now;
    ph->step_ns += now_ns() - p->t0;
    ph->steps++;
    ph->tokens += (uint64_t)(tokens > 0 ? tokens : 0);
}

static int by_time(const void *a, const void *b)
{
    const struct profile_kind *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : strcmp(x->name, y->name);
}

void ae_profile_print(const ae_profile *p, FILE *f)
{
    static const char *const names[2] = {"prefill", "decode"};
    for (int i = 0; i < 2; i++) {
        const struct profile_phase *ph = &p->phase[i];
        if (!ph->steps)
            continue;
        struct profile_kind k[PROFILE_KINDS];
        memcpy(k, ph->kind, sizeof k);
        qsort(k, (size_t)ph->n_kinds, sizeof k[0], by_time);
        const double steps = (double)ph->steps, total = (double)ph->step_ns;
        fprintf(f, "profile, %s: %" PRIu64 " steps, %" PRIu64 " tokens, %.2f ms per step\n", names[i], ph->steps,
                ph->tokens, total / steps / 1e6);
        fprintf(f, "  %-28s %10s %7s %12s %10s\n", "kind", "total ms", "share", "us per step", "calls/step");
        uint64_t counted = 0;
        for (int j = 0; j < ph->n_kinds; j++) {
            fprintf(f, "  %-28s %10.2f %6.1f%% %12.1f %10.1f\n", k[j].name, (double)k[j].ns / 1e6,
                    total > 0 ? 100.0 * (double)k[j].ns / total : 0.0, (double)k[j].ns / steps / 1e3,
                    (double)k[j].calls / steps);
            counted += k[j].ns;
        }
        const double rest = total - (double)counted;
        fprintf(f, "  %-28s %10.2f %6.1f%% %12.1f\n", "(between the steps)", rest / 1e6,
                total > 0 ? 100.0 * rest / total : 0.0, rest / steps / 1e3);
    }
}
