/* Fused ops: the nodes the fuse pass makes, what they mean, and how they lower back to primitive ops.
 *
 * Four ops (the rows of ops.def with IR_PROP_FUSED) each stand for a fixed sequence of primitive ops:
 *   ew           x0 [, x1, x2, x3]           v = x0, then up to four steps (below), each in f32
 *   matmul_ew    x, w [, x2, x3]             v = x w^T, then the steps
 *   rms_norm_mul x, w [, r]                  rms_norm(x) * w (+ r)
 *   matmul_rope  x, w, pos [, bias]          rope(reshape(x w^T (+ bias), [S, H, D]), pos)
 * A step is one of the ops marked STEP in ops.def: add, mul (with the next unused source, which has v's
 * shape or is one row of its last dimension), scale (by its constant), silu, gelu or softcap (with its
 * constant as the cap); the first 'none' ends the list. ir_fused_lower rewrites a fused node into
 * exactly those primitive ops, so a fused graph means the same as its lowering; that is how the
 * interpreter runs fused graphs, and how a backend without a fused kernel can run one. docs/passes.md
 * describes the ops in full.
 */
#ifndef AE_IR_FUSED_H
#define AE_IR_FUSED_H

#include <stdbool.h>
#include <stdint.h>

#include "ae_error.h"
#include "ir.h"

/* One step of ew and matmul_ew (union ir_params .ew.op[i]): IR_EW_NONE, then IR_EW_<NAME> for every op
 * whose ops.def row says STEP, in the order of ops.def. */
#define IR_EW_ENUM_STEP(NAME) IR_EW_##NAME,
#define IR_EW_ENUM_NO_STEP(NAME)
enum ir_ew_step {
    IR_EW_NONE = 0,
#define X(NAME, STR, MIN_SRC, MAX_SRC, PROPS, STEP) IR_EW_ENUM_##STEP(NAME)
#include "ops.def"
#undef X
    IR_EW_STEP_COUNT
};
#undef IR_EW_ENUM_STEP
#undef IR_EW_ENUM_NO_STEP
#define IR_EW_MAX_STEPS 4

/* Whether op is one of the fused ops (IR_PROP_FUSED). */
bool ir_op_is_fused(enum ir_op op);

/* The parameters of ew and matmul_ew (op0..op3, then k0..k3), for ir_op_params. */
const struct ir_param_desc *ir_ew_params(uint32_t *n);

/* The step an op becomes in a chain (IR_EW_NONE for an op that cannot be one), and the op a step
 * applies (IR_OP_COUNT for IR_EW_NONE). */
enum ir_ew_step ir_ew_step_of(enum ir_op op);
enum ir_op ir_ew_step_op(enum ir_ew_step s);
/* Whether a step takes an operand (the chain's next source: its op has two sources), and whether it
 * has a constant k (its op has a parameter). */
bool ir_ew_step_has_operand(enum ir_ew_step s);
bool ir_ew_step_has_k(enum ir_ew_step s);
/* The constant a node of a step op gives its step: its one parameter, or 0. */
float ir_ew_step_k(const struct ir_node *n);

/* The number of steps of an ew or matmul_ew node before the first none; their operands are the
 * sources from ir_op_min_src(n->op) on. */
uint32_t ir_ew_n_steps(const struct ir_node *n);

/* ir_verify's rules for the fused ops; the message names the node like ir_verify's own. */
int ir_verify_fused(const struct ir_node *n, ae_error *err);

/* Rewrites every fused node of g into the primitive ops it stands for (names kept), then restores the
 * topological order. g stays valid for ir_verify. Fails only on a broken graph. */
int ir_fused_lower(struct ir_graph *g, ae_error *err);

#endif
