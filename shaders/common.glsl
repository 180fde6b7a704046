// What every kernel starts with: the push constants, the buffer types, the step's T and P.
//
// A kernel reaches its buffers through 64-bit device addresses: pc.ref[i] is reference i of its
// dispatch (ae_gpu.h), already resolved by the runtime, and pc.k[i] its constants. Each kernel names
// its references and constants with #defines, so the slots read like arguments. aetherc compiles
// every kernel with WTYPE (the weight's ggml type id) and the kernel's other choices as #defines.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require

layout(push_constant) uniform Push {
    uint64_t ref[8];
    uint k[16];
} pc;

// 1 when the KV cache holds f32, 0 for f16: set when the pipeline is created.
layout(constant_id = 0) const uint KV_F32 = 0;

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer Step { int T; int P; int n_ctx; int kv_f32; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32s { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4s { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer I32s { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32s { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer U32x4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16s { uint16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer F16s { float16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 1) readonly buffer U8s { uint8_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 1) readonly buffer I8s { int8_t v[]; };

// The ggml type ids (ggml_types.def).
#define TYPE_F32 0
#define TYPE_F16 1
#define TYPE_Q4_0 2
#define TYPE_Q4_1 3
#define TYPE_Q5_0 6
#define TYPE_Q5_1 7
#define TYPE_Q8_0 8
#define TYPE_Q2_K 10
#define TYPE_Q3_K 11
#define TYPE_Q4_K 12
#define TYPE_Q5_K 13
#define TYPE_Q6_K 14
#define TYPE_IQ4_NL 20
#define TYPE_IQ4_XS 23
#define TYPE_BF16 30
#define TYPE_TQ1_0 34
#define TYPE_TQ2_0 35

// The step's parameters (a macro: a function returning a buffer reference leaves a variable that SPIR-V
// validation refuses where the optimizer keeps it).
#define STEP Step(pc.ref[0])

float kf(uint i) { return uintBitsToFloat(pc.k[i]); }

// A count that is n, or n * T when the flag says the dimension is the step's T.
uint times_t(uint n, uint t_flag, int T) { return t_flag != 0u ? n * uint(T) : n; }

float half_to_float(uint16_t h) { return unpackHalf2x16(uint(h)).x; }
float bf16_to_float(uint16_t h) { return uintBitsToFloat(uint(h) << 16); }

// x rounded to fp16 and back (round to nearest even).
float round_half(float x) { return float(float16_t(x)); }

// ---- The elementwise steps (docs/ir.md), as the CPU kernels compute them -----------------------------

// tanh, kept away from arguments where an implementation's exp could overflow (tanh(15) is 1 in f32).
float safe_tanh(float x) { return tanh(clamp(x, -15.0, 15.0)); }

float ew_silu(float x) { return x / (1.0 + exp(-x)); }

// GELU as ggml's CPU backend gives it: the input rounded to fp16, the tanh formula in float, the result
// rounded to fp16; 0 below -10 and x above 10.
float ew_gelu(float x)
{
    if (x <= -10.0)
        return 0.0;
    if (x >= 10.0)
        return x;
    const float h = round_half(x);
    const float u = (0.79788456080286535587989211986876 * h) * (1.0 + (0.044715 * h) * h);
    return round_half((0.5 * h) * (1.0 + safe_tanh(u)));
}

float ew_softcap(float x, float cap) { return safe_tanh(x * (1.0 / cap)) * cap; }

// An operand of a fused elementwise step: reference slot s, element (r, c) of rows of n, or element c of
// one row broadcast over every row.
float ew_operand(uint s, uint r, uint c, uint n) { return F32s(pc.ref[s]).v[r * n + c]; }
float ew_row_operand(uint s, uint c) { return F32s(pc.ref[s]).v[c]; }

// Kernels that end in elementwise steps apply EPILOGUE(v, r, c, n) to each result v at row r, column c
// of rows of n; aetherc defines it from the fused node (none: nothing to do).
#ifndef EPILOGUE
#define EPILOGUE(v, r, c, n)
#endif
