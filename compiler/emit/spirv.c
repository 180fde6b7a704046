/* GLSL kernels to SPIR-V through libshaderc (spirv.h). */
#include "spirv.h"

#include <shaderc/shaderc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *spirv_file(const char *name)
{
    for (const struct spirv_source *s = spirv_sources; s->name; s++)
        if (!strcmp(s->name, name))
            return s->text;
    return NULL;
}

/* A growing string. */
struct text {
    char *s;
    size_t len, cap;
    bool failed;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->s, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

/* Appends file's text with each `#include "x"` line replaced by x's text (depth-limited). */
static int expand(struct text *t, const char *file, int depth, ae_error *err)
{
    const char *src = spirv_file(file);
    if (!src)
        return ae_fail(err, "shaders/%s: no such kernel file", file);
    if (depth > 4)
        return ae_fail(err, "shaders/%s: includes nest too deeply", file);
    for (const char *line = src; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        if (!strncmp(line, "#include \"", 10)) {
            const char *q = memchr(line + 10, '"', n - 10);
            char name[64];
            if (!q || (size_t)(q - line - 10) >= sizeof name)
                return ae_fail(err, "shaders/%s: a malformed #include line", file);
            memcpy(name, line + 10, (size_t)(q - line - 10));
            name[q - line - 10] = 0;
            if (expand(t, name, depth + 1, err) < 0)
                return ae_fail_prefix(err, "included from shaders/%s", file);
        } else
            text_add(t, line, n);
        line += n;
    }
    return 0;
}

char *spirv_source(const char *kernel, const char *defines, ae_error *err)
{
    struct text t = {0};
    text_add(&t, "#version 460\n", 13);
    for (const char *d = defines; d && *d;) {
        const char *end = strchr(d, '\n');
        size_t n = end ? (size_t)(end - d) : strlen(d);
        if (n) {
            text_add(&t, "#define ", 8);
            text_add(&t, d, n);
            text_add(&t, "\n", 1);
        }
        d += n + (end ? 1 : 0);
    }
    if (expand(&t, kernel, 0, err) < 0) {
        free(t.s);
        return NULL;
    }
    if (t.failed) {
        free(t.s);
        ae_fail(err, "out of memory");
        return NULL;
    }
    return t.s;
}

int spirv_compile(const char *text, const char *name, uint32_t **words, size_t *n_words, ae_error *err)
{
    static shaderc_compiler_t compiler;
    if (!compiler && !(compiler = shaderc_compiler_initialize()))
        return ae_fail(err, "libshaderc failed to start");
    shaderc_compile_options_t o = shaderc_compile_options_initialize();
    if (!o)
        return ae_fail(err, "out of memory");
    shaderc_compile_options_set_target_env(o, shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_2);
    shaderc_compile_options_set_optimization_level(o, shaderc_optimization_level_performance);
    shaderc_compilation_result_t r =
        shaderc_compile_into_spv(compiler, text, strlen(text), shaderc_compute_shader, name, "main", o);
    shaderc_compile_options_release(o);
    int rc = 0;
    if (!r)
        rc = ae_fail(err, "kernel %s: libshaderc returned nothing", name);
    else if (shaderc_result_get_compilation_status(r) != shaderc_compilation_status_success) {
        const char *msg = shaderc_result_get_error_message(r);
        rc = ae_fail(err, "kernel %s does not compile: %.900s", name, msg ? msg : "(no message)");
    } else {
        size_t bytes = shaderc_result_get_length(r);
        *n_words = bytes / 4;
        *words = malloc(bytes ? bytes : 4);
        if (!*words)
            rc = ae_fail(err, "out of memory");
        else
            memcpy(*words, shaderc_result_get_bytes(r), bytes);
    }
    shaderc_result_release(r);
    return rc;
}
