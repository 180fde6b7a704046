/* The reference interpreter: executes any IR graph in plain C, the oracle for every pass and backend.
 *
 * Activations are f32. Weights are read from the GGUF mapping in their own type and dequantized row by
 * row as they are used (ae_dequantize_row). Each kv_cache node gets its own buffer of n_ctx rows in the
 * node's dtype (f32, or f16 like llama.cpp's default cache). Simple and slow on purpose: every op is
 * a direct loop over the formula in docs/ir.md, with llama.cpp's order of float operations where it
 * matters (rms_norm, softmax, rope, gelu), so its logits match llama.cpp's within rounding.
 */
#ifndef AE_INTERP_H
#define AE_INTERP_H

#include <stdint.h>

#include "ae_error.h"
#include "ae_gguf.h"
#include "ir.h"

struct interp;

/* Binds g's weights to f's tensors (by name; type and shape must match) and allocates KV caches of
 * n_ctx rows. g must pass ir_verify and outlive the interpreter, as must f. A graph with fused ops runs
 * as a private copy with those ops lowered (ir_fused_lower); the trace then reports the copy's nodes. */
int interp_create(struct interp **out, const struct ir_graph *g, const ae_gguf *f, uint32_t n_ctx, ae_error *err);
void interp_destroy(struct interp *it);

/* Runs one step: n_tokens tokens at positions pos .. pos+n_tokens-1, after pos tokens already in the
 * cache (a new sequence starts at pos 0). Writes the graph's first output (the logits) to out, which
 * must hold interp_output_size(it, n_tokens) floats. */
int interp_eval(struct interp *it, const int32_t *tokens, uint32_t n_tokens, uint32_t pos, float *out,
                ae_error *err);

/* Elements of the first output for a step of n_tokens tokens (e.g. n_vocab, or n_tokens * n_vocab). */
int64_t interp_output_size(const struct interp *it, uint32_t n_tokens);

/* Called after each f32 node of a step with its value (numel elements, row-major), for tracing and
 * for comparing graphs node by node. NULL turns it off. */
typedef void (*interp_trace_fn)(void *ctx, const struct ir_node *n, const float *data, int64_t numel);
void interp_set_trace(struct interp *it, interp_trace_fn fn, void *ctx);

/* The index of the largest value; the lowest index wins ties (llama.cpp's greedy sampler). */
int32_t interp_argmax(const float *x, int64_t n);

#endif
