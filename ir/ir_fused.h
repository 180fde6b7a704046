/* Fused ops: the nodes the fuse pass makes, what they mean, and how they lower back to primitive ops.
 *
 * Four ops (rows at the end of ops.def) each stand for a fixed sequence of primitive ops:
 *   ew           x0 [, x1, x2, x3]           v = x0, then up to four steps (below), each in f32
 *   matmul_ew    x, w [, x2, x3]             v = x w^T, then the steps
 *   rms_norm_mul x, w [, r]                  rms_norm(x) * w (+ r)
 *   matmul_rope  x, w, pos [, bias]          rope(reshape(x w^T (+ bias), [S, H, D]), pos)
 * A step is one of add, mul (with the next unused source, which has v's shape or is one row of its last
 * dimension), scale (by its constant), silu, gelu or softcap (with its constant as the cap); the first
 * 'none' ends the list. ir_fused_lower rewrites a fused node into exactly those primitive ops, so a
 * fused graph means the same as its lowering; that is how the interpreter runs fused graphs, and how
 * a backend without a fused kernel can run one. docs/passes.md describes the ops in full.
 */
#ifndef AE_IR_FUSED_H
#define AE_IR_FUSED_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"
#include "ir.h"

/* One step of ew and matmul_ew (union ir_params .ew.op[i]). */
enum ir_ew_step {
    IR_EW_NONE = 0,
    IR_EW_ADD,
    IR_EW_MUL,
    IR_EW_SCALE,   /* v * k */
    IR_EW_SILU,
    IR_EW_GELU,
    IR_EW_SOFTCAP, /* k * tanh(v / k) */
    IR_EW_STEP_COUNT
};
#define IR_EW_MAX_STEPS 4

/* Whether op is one of the fused ops. */
bool ir_op_is_fused(enum ir_op op);

/* The parameters of ew and matmul_ew (op0..op3, then k0..k3), for ir_op_params. */
const struct ir_param_desc *ir_ew_params(uint32_t *n);

/* The name of a step ("silu"), and the number of steps of an ew or matmul_ew node before the first
 * none. */
const char *ir_ew_step_name(enum ir_ew_step s);
uint32_t ir_ew_n_steps(const struct ir_node *n);

/* ir_verify's rules for the fused ops; the message names the node like ir_verify's own. */
int ir_verify_fused(const struct ir_node *n, ae_error *err);

/* Rewrites every fused node of g into the primitive ops it stands for (names kept), then restores the
 * topological order. g stays valid for ir_verify. Fails only on a broken graph. */
int ir_fused_lower(struct ir_graph *g, ae_error *err);

#endif
