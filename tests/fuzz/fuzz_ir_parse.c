/* libFuzzer harness for the IR text parser, the verifier and the printer.
 *
 * Each input is handed to ir_parse as a dump. A rejection must leave the output untouched and say
 * where (the name and a line number) and what. An accepted graph goes through ir_verify, which must
 * answer cleanly either way; a graph that verifies is printed (ir_print_string and ir_print to a memory
 * FILE, which must agree), and the text must parse back, verify again and print byte for byte the
 * same: the dump is canonical. Any difference aborts, which libFuzzer reports.
 *
 *   make fuzz FUZZ_SECONDS=600
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz_ir_parse: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Dumps longer than this are not interesting and only slow the search down. */
#define MAX_INPUT (1u << 16)

/* Prints g both ways; returns the ir_print_string text (malloc'd). */
static char *print_both(const struct ir_graph *g)
{
    char *s = ir_print_string(g);
    CHECK(s != NULL);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    CHECK(ir_print(g, f) == 0);
    CHECK(fclose(f) == 0);
    if (n != strlen(s) || memcmp(buf, s, n) != 0) {
        fprintf(stderr, "fuzz_ir_parse: ir_print and ir_print_string differ:\n%s\n---\n%s\n", s, buf);
        abort();
    }
    free(buf);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    struct ir_graph *g = (struct ir_graph *)&g; /* a sentinel: a failed parse must not write it */
    ae_error err;
    err.msg[0] = 0;
    if (ir_parse(&g, (const char *)data, size, "fuzz.ir", &err) < 0) {
        CHECK(g == (struct ir_graph *)&g);
        CHECK(strncmp(err.msg, "fuzz.ir:", 8) == 0);
        return 0;
    }
    CHECK(g != NULL && g != (struct ir_graph *)&g);
    err.msg[0] = 0;
    if (ir_verify(g, &err) < 0) {
        CHECK(err.msg[0] != 0);
        ir_graph_destroy(g);
        return 0;
    }
    /* The graph is valid: printing and parsing back must be the identity on the text. */
    char *s1 = print_both(g);
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        char small[8];
        int k = ir_print_node(g->nodes[i], small, sizeof small);
        CHECK(k > 0 && strlen(small) == ((size_t)k < sizeof small ? (size_t)k : sizeof small - 1));
    }
    struct ir_graph *h = NULL;
    if (ir_parse(&h, s1, strlen(s1), "printed.ir", &err) < 0) {
        fprintf(stderr, "fuzz_ir_parse: the printed dump does not parse back: %s\n%s", err.msg, s1);
        abort();
    }
    CHECK(h->n_nodes == g->n_nodes);
    if (ir_verify(h, &err) < 0) {
        fprintf(stderr, "fuzz_ir_parse: the printed dump parses back but does not verify: %s\n%s", err.msg, s1);
        abort();
    }
    char *s2 = print_both(h);
    if (strcmp(s1, s2) != 0) {
        fprintf(stderr, "fuzz_ir_parse: printing is not stable:\n%s\n---\n%s\n", s1, s2);
        abort();
    }
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct ir_node *a = g->nodes[i], *b = h->nodes[i];
        CHECK(a->op == b->op && a->dtype == b->dtype && a->rank == b->rank && a->n_src == b->n_src);
        CHECK(memcmp(a->shape, b->shape, sizeof a->shape) == 0);
        CHECK(a->layer == b->layer);
        for (uint32_t k = 0; k < a->n_src; k++)
            CHECK(a->src[k]->id == b->src[k]->id);
    }
    free(s1);
    free(s2);
    ir_graph_destroy(h);
    ir_graph_destroy(g);
    return 0;
}
