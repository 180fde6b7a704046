/* The OpenAI API: request bodies into struct serve_params, and the bodies of answers (serve.h).
 *
 * Parsing is strict about what it reads and silent about the rest: the body must be one JSON object
 * (json-c in strict mode, UTF-8 checked, nesting at most SERVE_MAX_JSON_DEPTH), every field the server
 * knows must have the JSON type and range OpenAI documents (null counts as absent), and fields it does
 * not know are ignored, as OpenAI's clients expect. Every problem is a 400 whose message names the
 * field. Numbers must be finite; integers must be JSON integers. Strings that reach the tokenizer or the
 * chat template may not contain NUL.
 *
 * Sampling defaults are llama.cpp's (ae_sampler_params_init: temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05), as llama-server's are; a request without a seed gets a random one.
 *
 * Answers are built as json-c objects and printed plain. Text that came from the model is valid UTF-8
 * already (the text stream makes it so); token pieces in logprobs and anything echoed from a request
 * are made valid (each bad byte becomes U+FFFD), so that every body is valid JSON.
 */
#include "serve.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define J serve_jc

int serve_fail(struct serve_error *e, int status, const char *param, const char *fmt, ...)
{
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- Reading fields ---------------------------------------------------------------------------------- */

static const char *api_type_name(enum json_type t)
{
    switch (t) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "a JSON value";
}

/* The field key of o: 1 and *out when present and not null, 0 when absent or null. */
static int api_field(struct json_object *o, const char *key, struct json_object **out)
{
    struct json_object *v = NULL;
    if (!J.json_object_object_get_ex(o, key, &v) || !v || J.json_object_get_type(v) == json_type_null)
        return 0;
    *out = v;
    return 1;
}

static int api_wrong_type(struct serve_error *e, const char *key, const char *want, struct json_object *v)
{
    return serve_fail(e, 400, key, "'%s' must be %s, not %s", key, want, api_type_name(J.json_object_get_type(v)));
}

/* A boolean field; *out keeps its default when absent. */
static int api_bool(struct json_object *o, const char *key, bool *out, struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, key, &v))
        return 0;
    if (J.json_object_get_type(v) != json_type_boolean)
        return api_wrong_type(e, key, "a boolean", v);
    *out = J.json_object_get_boolean(v) != 0;
    return 0;
}

/* An integer field in [lo, hi]. Returns 1 when present, 0 when absent, -1 on error. */
static int api_int(struct json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, key, &v))
        return 0;
    if (J.json_object_get_type(v) != json_type_int)
        return api_wrong_type(e, key, "an integer", v);
    int64_t x = J.json_object_get_int64(v);
    /* json-c clamps what does not fit in int64 to its limits, which the range below then refuses. */
    if (x < lo || x > hi || x == INT64_MAX || x == INT64_MIN)
        return serve_fail(e, 400, key, "'%s' must be from %" PRId64 " to %" PRId64 "", key, lo, hi);
    *out = x;
    return 1;
}

/* A number field (integer or not) in [lo, hi], finite. */
static int api_number(struct json_object *o, const char *key, double lo, double hi, float *out,
                      struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, key, &v))
        return 0;
    enum json_type t = J.json_object_get_type(v);
    if (t != json_type_int && t != json_type_double)
        return api_wrong_type(e, key, "a number", v);
    double x = J.json_object_get_double(v);
    if (!isfinite(x) || x < lo || x > hi)
        return serve_fail(e, 400, key, "'%s' must be a number from %g to %g", key, lo, hi);
    *out = (float)x;
    return 1;
}

/* A string of valid UTF-8 without NUL bytes; *s points into the JSON object. */
static int api_string_value(struct json_object *v, const char *what, const char **s, size_t *len,
                            struct serve_error *e)
{
    if (J.json_object_get_type(v) != json_type_string)
        return api_wrong_type(e, what, "a string", v);
    *s = J.json_object_get_string(v);
    int n = J.json_object_get_string_len(v);
    *len = n > 0 ? (size_t)n : 0;
    if (memchr(*s, 0, *len))
        return serve_fail(e, 400, what, "'%s' contains a NUL character", what);
    /* json-c checks UTF-8's structure but lets overlong forms and surrogates through. */
    if (!ae_utf8_valid(*s, *len))
        return serve_fail(e, 400, what, "'%s' is not valid UTF-8", what);
    return 0;
}

/* ---- The prompt ------------------------------------------------------------------------------------- */

static char *api_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* An array of token ids, each in the tokenizer's vocabulary. */
static int api_token_ids(struct serve_params *p, struct json_object *a, const char *what,
                         const struct serve_model_info *mi, struct serve_error *e)
{
    size_t n = J.json_object_array_length(a);
    if (n == 0)
        return serve_fail(e, 400, what, "'%s' is an empty list of token ids", what);
    if (n > (size_t)INT32_MAX / 2)
        return serve_fail(e, 400, what, "'%s' has too many token ids", what);
    if (!(p->prompt_ids = malloc(n * sizeof *p->prompt_ids)))
        return serve_fail(e, 500, what, "out of memory for %zu token ids", n);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = J.json_object_array_get_idx(a, i);
        if (!v || J.json_object_get_type(v) != json_type_int)
            return serve_fail(e, 400, what, "'%s'[%zu] must be an integer token id", what, i);
        int64_t id = J.json_object_get_int64(v);
        if (id < 0 || id >= mi->n_vocab)
            return serve_fail(e, 400, what, "'%s'[%zu]: token id %" PRId64 " is outside the vocabulary (0..%" PRId32 ")",
                              what, i, id, mi->n_vocab - 1);
        p->prompt_ids[i] = (int32_t)id;
    }
    p->n_prompt_ids = (int32_t)n;
    return 0;
}

/* /v1/completions: prompt is a string, a list of token ids, or a list of one of either. */
static int api_prompt(struct serve_params *p, struct json_object *o, const struct serve_model_info *mi,
                      struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, "prompt", &v))
        return serve_fail(e, 400, "prompt", "'prompt' is required");
    if (J.json_object_get_type(v) == json_type_array && J.json_object_array_length(v) == 1) {
        struct json_object *only = J.json_object_array_get_idx(v, 0);
        enum json_type t = only ? J.json_object_get_type(only) : json_type_null;
        if (t == json_type_string || t == json_type_array)
            v = only;
    }
    enum json_type t = J.json_object_get_type(v);
    if (t == json_type_string) {
        const char *s;
        size_t n;
        if (api_string_value(v, "prompt", &s, &n, e) < 0)
            return -1;
        if (!(p->prompt = api_strndup(s, n)))
            return serve_fail(e, 500, "prompt", "out of memory for a prompt of %zu bytes", n);
        p->prompt_len = n;
        return 0;
    }
    if (t == json_type_array) {
        struct json_object *first = J.json_object_array_get_idx(v, 0);
        if (first && J.json_object_get_type(first) != json_type_int)
            return serve_fail(e, 400, "prompt", "'prompt' must be a string or a list of token ids; one prompt per "
                              "request");
        return api_token_ids(p, v, "prompt", mi, e);
    }
    return api_wrong_type(e, "prompt", "a string or a list of token ids", v);
}

/* A message's content: a string, or a list of text parts ({"type": "text", "text": ...}) joined by
 * newlines. Returns a malloc'd string. */
static char *api_content(struct json_object *m, size_t i, struct serve_error *e)
{
    char what[48];
    snprintf(what, sizeof what, "messages[%zu].content", i);
    struct json_object *c;
    if (!api_field(m, "content", &c))
        return api_strndup("", 0);
    const char *s;
    size_t n;
    if (J.json_object_get_type(c) == json_type_string) {
        if (api_string_value(c, what, &s, &n, e) < 0)
            return NULL;
        char *d = api_strndup(s, n);
        if (!d)
            serve_fail(e, 500, what, "out of memory");
        return d;
    }
    if (J.json_object_get_type(c) != json_type_array) {
        api_wrong_type(e, what, "a string or a list of content parts", c);
        return NULL;
    }
    size_t n_parts = J.json_object_array_length(c), total = 0;
    for (size_t k = 0; k < n_parts; k++) {
        struct json_object *part = J.json_object_array_get_idx(c, k), *type, *text;
        if (!part || J.json_object_get_type(part) != json_type_object) {
            serve_fail(e, 400, what, "'%s'[%zu] must be an object", what, k);
            return NULL;
        }
        if (!api_field(part, "type", &type) || J.json_object_get_type(type) != json_type_string ||
            strcmp(J.json_object_get_string(type), "text") != 0) {
            serve_fail(e, 400, what, "'%s'[%zu]: only parts of type \"text\" are supported", what, k);
            return NULL;
        }
        if (!api_field(part, "text", &text)) {
            serve_fail(e, 400, what, "'%s'[%zu] has no 'text'", what, k);
            return NULL;
        }
        if (api_string_value(text, what, &s, &n, e) < 0)
            return NULL;
        total += n + 1;
    }
    char *d = malloc(total + 1), *w = d;
    if (!d) {
        serve_fail(e, 500, what, "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < n_parts; k++) {
        struct json_object *text;
        api_field(J.json_object_array_get_idx(c, k), "text", &text);
        n = (size_t)J.json_object_get_string_len(text);
        if (k)
            *w++ = '\n';
        memcpy(w, J.json_object_get_string(text), n);
        w += n;
    }
    *w = 0;
    return d;
}

/* /v1/chat/completions: the messages through the model's chat template, with the assistant's turn
 * header at the end. */
static int api_messages(struct serve_params *p, struct json_object *o, const struct serve_model_info *mi,
                        struct serve_error *e)
{
    struct json_object *a;
    if (!api_field(o, "messages", &a))
        return serve_fail(e, 400, "messages", "'messages' is required");
    if (J.json_object_get_type(a) != json_type_array)
        return api_wrong_type(e, "messages", "an array", a);
    size_t n = J.json_object_array_length(a);
    if (n == 0)
        return serve_fail(e, 400, "messages", "'messages' is empty");
    if (n > SERVE_MAX_MESSAGES)
        return serve_fail(e, 400, "messages", "'messages' has %zu messages, more than the %d allowed", n,
                          SERVE_MAX_MESSAGES);
    if (!mi->have_template)
        return serve_fail(e, 400, "messages", "this model has no chat template the server can apply (%s); use "
                          "/v1/completions or start the server with --chat-template NAME", mi->template_error);
    struct ae_chat_message *msgs = calloc(n, sizeof *msgs);
    char **contents = calloc(n, sizeof *contents);
    int rc = -1;
    if (!msgs || !contents) {
        serve_fail(e, 500, "messages", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = J.json_object_array_get_idx(a, i), *role;
        char what[48];
        snprintf(what, sizeof what, "messages[%zu]", i);
        if (!m || J.json_object_get_type(m) != json_type_object) {
            serve_fail(e, 400, what, "'%s' must be an object", what);
            goto done;
        }
        snprintf(what, sizeof what, "messages[%zu].role", i);
        const char *r;
        size_t r_len;
        if (!api_field(m, "role", &role)) {
            serve_fail(e, 400, what, "'%s' is required", what);
            goto done;
        }
        if (api_string_value(role, what, &r, &r_len, e) < 0)
            goto done;
        if (r_len == 0) {
            serve_fail(e, 400, what, "'%s' is empty", what);
            goto done;
        }
        if (!(contents[i] = api_content(m, i, e)))
            goto done;
        /* OpenAI's newer name for the system role. */
        msgs[i] = (struct ae_chat_message){ strcmp(r, "developer") == 0 ? "system" : r, contents[i] };
    }
    size_t len = ae_chat_format(mi->tmpl, msgs, n, true, NULL, 0);
    if (!(p->prompt = malloc(len + 1))) {
        serve_fail(e, 500, "messages", "out of memory for a conversation of %zu bytes", len);
        goto done;
    }
    ae_chat_format(mi->tmpl, msgs, n, true, p->prompt, len + 1);
    p->prompt_len = len;
    rc = 0;
done:
    for (size_t i = 0; contents && i < n; i++)
        free(contents[i]);
    free(contents);
    free(msgs);
    return rc;
}

/* ---- Sampling and the rest -------------------------------------------------------------------------- */

static int api_stops(struct serve_params *p, struct json_object *o, struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, "stop", &v))
        return 0;
    bool one = J.json_object_get_type(v) == json_type_string;
    if (!one && J.json_object_get_type(v) != json_type_array)
        return api_wrong_type(e, "stop", "a string or an array of strings", v);
    size_t n = one ? 1 : J.json_object_array_length(v);
    if (n > SERVE_MAX_STOPS)
        return serve_fail(e, 400, "stop", "'stop' has %zu strings, more than the %d allowed", n, SERVE_MAX_STOPS);
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = one ? v : J.json_object_array_get_idx(v, i);
        const char *str;
        size_t len;
        if (!s || api_string_value(s, "stop", &str, &len, e) < 0)
            return s ? -1 : serve_fail(e, 400, "stop", "'stop'[%zu] must be a string", i);
        if (len == 0)
            return serve_fail(e, 400, "stop", "'stop' has an empty string");
        if (len > SERVE_MAX_STOP_BYTES)
            return serve_fail(e, 400, "stop", "a 'stop' string is %zu bytes, more than the %d allowed", len,
                              SERVE_MAX_STOP_BYTES);
        if (!(p->stops[p->n_stops] = api_strndup(str, len)))
            return serve_fail(e, 500, "stop", "out of memory");
        p->n_stops++;
    }
    return 0;
}

/* logit_bias: {"token id": bias from -100 to 100}; -100 bans the token, as OpenAI says. */
static int api_logit_bias(struct serve_params *p, struct json_object *o, const struct serve_model_info *mi,
                          struct serve_error *e)
{
    struct json_object *v;
    if (!api_field(o, "logit_bias", &v))
        return 0;
    if (J.json_object_get_type(v) != json_type_object)
        return api_wrong_type(e, "logit_bias", "an object", v);
    size_t n = 0;
    struct json_object_iterator it = J.json_object_iter_begin(v), end = J.json_object_iter_end(v);
    for (; !J.json_object_iter_equal(&it, &end); J.json_object_iter_next(&it))
        n++;
    if (n == 0)
        return 0;
    if (n > SERVE_MAX_LOGIT_BIAS)
        return serve_fail(e, 400, "logit_bias", "'logit_bias' has %zu entries, more than the %d allowed", n,
                          SERVE_MAX_LOGIT_BIAS);
    if (!(p->logit_bias = calloc(n, sizeof *p->logit_bias)))
        return serve_fail(e, 500, "logit_bias", "out of memory");
    size_t k = 0;
    for (it = J.json_object_iter_begin(v); !J.json_object_iter_equal(&it, &end); J.json_object_iter_next(&it), k++) {
        const char *name = J.json_object_iter_peek_name(&it);
        struct json_object *b = J.json_object_iter_peek_value(&it);
        char *stop;
        long long id = strtoll(name, &stop, 10);
        if (!*name || *stop || id < 0 || id >= mi->n_vocab)
            return serve_fail(e, 400, "logit_bias", "'logit_bias' key '%.40s' is not a token id in the vocabulary "
                              "(0..%" PRId32 ")", name, mi->n_vocab - 1);
        enum json_type t = b ? J.json_object_get_type(b) : json_type_null;
        double x = t == json_type_int || t == json_type_double ? J.json_object_get_double(b) : NAN;
        if (!(x >= -100 && x <= 100))
            return serve_fail(e, 400, "logit_bias", "'logit_bias' values must be numbers from -100 to 100");
        p->logit_bias[k] = (struct ae_logit_bias){ (int32_t)id, x <= -100 ? -INFINITY : (float)x };
    }
    p->sampling.logit_bias = p->logit_bias;
    p->sampling.n_logit_bias = (int32_t)n;
    return 0;
}

static int api_sampling(struct serve_params *p, struct json_object *o, const struct serve_model_info *mi,
                        struct serve_error *e)
{
    struct ae_sampler_params *s = &p->sampling;
    ae_sampler_params_init(s);
    int64_t x;
    int rc;
    if (api_number(o, "temperature", 0, 2, &s->temp, e) < 0 || api_number(o, "top_p", 0, 1, &s->top_p, e) < 0 ||
        api_number(o, "min_p", 0, 1, &s->min_p, e) < 0 ||
        api_number(o, "presence_penalty", -2, 2, &s->presence_penalty, e) < 0 ||
        api_number(o, "frequency_penalty", -2, 2, &s->freq_penalty, e) < 0 ||
        api_number(o, "repeat_penalty", 0, 10, &s->repeat_penalty, e) < 0)
        return -1;
    if (s->repeat_penalty <= 0)
        return serve_fail(e, 400, "repeat_penalty", "'repeat_penalty' must be greater than 0");
    if ((rc = api_int(o, "top_k", 0, INT32_MAX, &x, e)) < 0)
        return -1;
    if (rc)
        s->top_k = (int32_t)x;
    if ((rc = api_int(o, "seed", INT64_MIN + 1, INT64_MAX - 1, &x, e)) < 0)
        return -1;
    /* -1 asks for a random seed, as in llama.cpp; any other integer is a seed (negative ones as unsigned). */
    if (rc && x != -1)
        s->seed = (uint64_t)x == AE_SAMPLER_SEED_RANDOM ? 0 : (uint64_t)x;
    return api_logit_bias(p, o, mi, e);
}

/* logprobs: a boolean with top_logprobs 0..20 in chat; an integer 0..20 in completions. */
static int api_logprobs_field(struct serve_params *p, struct json_object *o, struct serve_error *e)
{
    int64_t x;
    int rc;
    if (p->kind == SERVE_KIND_CHAT) {
        if (api_bool(o, "logprobs", &p->logprobs, e) < 0 ||
            (rc = api_int(o, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &x, e)) < 0)
            return -1;
        if (rc && !p->logprobs)
            return serve_fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        p->top_logprobs = rc ? (int32_t)x : 0;
        return 0;
    }
    struct json_object *v;
    if (api_field(o, "logprobs", &v) && J.json_object_get_type(v) == json_type_boolean) {
        p->logprobs = J.json_object_get_boolean(v) != 0;
        return 0;
    }
    if ((rc = api_int(o, "logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &x, e)) < 0)
        return -1;
    p->logprobs = rc != 0;
    p->top_logprobs = rc ? (int32_t)x : 0;
    return 0;
}

/* Fields that ask for something the server does not do: a clear 400 rather than a silent difference. */
static int api_unsupported(struct serve_params *p, struct json_object *o, struct serve_error *e)
{
    int64_t x;
    int rc;
    if ((rc = api_int(o, "n", 1, INT32_MAX, &x, e)) < 0)
        return -1;
    if (rc && x != 1)
        return serve_fail(e, 400, "n", "'n' must be 1: one choice per request");
    if ((rc = api_int(o, "best_of", 1, INT32_MAX, &x, e)) < 0)
        return -1;
    if (rc && x != 1)
        return serve_fail(e, 400, "best_of", "'best_of' must be 1");
    if (p->kind == SERVE_KIND_COMPLETION) {
        bool echo = false;
        struct json_object *v;
        if (api_bool(o, "echo", &echo, e) < 0)
            return -1;
        if (echo)
            return serve_fail(e, 400, "echo", "'echo' is not supported");
        if (api_field(o, "suffix", &v))
            return serve_fail(e, 400, "suffix", "'suffix' is not supported");
    }
    return 0;
}

int serve_params_parse(struct serve_params *p, enum serve_kind kind, const char *body, size_t len,
                       const struct serve_model_info *mi, struct serve_error *e)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    ae_sampler_params_init(&p->sampling);
    e->message[0] = 0;
    if (len > INT_MAX)
        return serve_fail(e, 413, "", "the body is too large");
    struct json_tokener *t = J.json_tokener_new_ex(SERVE_MAX_JSON_DEPTH);
    if (!t)
        return serve_fail(e, 500, "", "out of memory");
    J.json_tokener_set_flags(t, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = J.json_tokener_parse_ex(t, body, (int)len);
    enum json_tokener_error te = J.json_tokener_get_error(t);
    size_t end = J.json_tokener_get_parse_end(t);
    int rc = -1;
    if (!o) {
        if (len == 0)
            serve_fail(e, 400, "", "the body is empty: expected a JSON object");
        else if (te == json_tokener_continue)
            serve_fail(e, 400, "", "the body ends inside its JSON value (%zu bytes)", len);
        else if (te == json_tokener_error_depth)
            serve_fail(e, 400, "", "the JSON is nested deeper than %d levels", SERVE_MAX_JSON_DEPTH);
        else
            serve_fail(e, 400, "", "the body is not valid JSON: %s at byte %zu", J.json_tokener_error_desc(te),
                       end);
        goto done;
    }
    if (end != len) {
        serve_fail(e, 400, "", "the body has more after its JSON value, at byte %zu", end);
        goto done;
    }
    if (J.json_object_get_type(o) != json_type_object) {
        serve_fail(e, 400, "", "the body must be a JSON object, not %s", api_type_name(J.json_object_get_type(o)));
        goto done;
    }
    struct json_object *v;
    if (api_field(o, "model", &v) && J.json_object_get_type(v) != json_type_string) {
        api_wrong_type(e, "model", "a string", v);
        goto done;
    }
    int64_t x;
    int have_max, have_mct;
    if ((have_max = api_int(o, "max_tokens", 1, INT32_MAX, &x, e)) < 0)
        goto done;
    if (have_max)
        p->max_tokens = (int32_t)x;
    if ((have_mct = api_int(o, "max_completion_tokens", 1, INT32_MAX, &x, e)) < 0)
        goto done;
    if (have_mct)
        p->max_tokens = (int32_t)x;
    struct json_object *so;
    if (api_bool(o, "stream", &p->stream, e) < 0)
        goto done;
    if (api_field(o, "stream_options", &so)) {
        if (J.json_object_get_type(so) != json_type_object) {
            api_wrong_type(e, "stream_options", "an object", so);
            goto done;
        }
        if (api_bool(so, "include_usage", &p->include_usage, e) < 0)
            goto done;
    }
    if (api_sampling(p, o, mi, e) < 0 || api_stops(p, o, e) < 0 || api_logprobs_field(p, o, e) < 0 ||
        api_unsupported(p, o, e) < 0)
        goto done;
    if (kind == SERVE_KIND_CHAT ? api_messages(p, o, mi, e) < 0 : api_prompt(p, o, mi, e) < 0)
        goto done;
    rc = 0;
done:
    J.json_object_put(o);
    J.json_tokener_free(t);
    if (rc < 0)
        serve_params_free(p);
    return rc;
}

void serve_params_free(struct serve_params *p)
{
    free(p->prompt);
    free(p->prompt_ids);
    free(p->logit_bias);
    for (size_t i = 0; i < p->n_stops; i++)
        free(p->stops[i]);
    memset(p, 0, sizeof *p);
}

/* ---- Writing bodies -------------------------------------------------------------------------------- */

/* A JSON string of n bytes that are made valid UTF-8: each byte that does not start a valid sequence
 * becomes U+FFFD. */
static struct json_object *api_str_n(const char *s, size_t n)
{
    if (ae_utf8_valid(s, n))
        return J.json_object_new_string_len(s, (int)n);
    char *d = malloc(n * 3 + 1);
    if (!d)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (len && i + len <= n && ae_utf8_valid(s + i, len)) {
            memcpy(d + k, s + i, len);
            k += len;
            i += len;
        } else {
            memcpy(d + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    struct json_object *o = J.json_object_new_string_len(d, (int)k);
    free(d);
    return o;
}

static struct json_object *api_str(const char *s) { return api_str_n(s, strlen(s)); }

static void api_add(struct json_object *o, const char *key, struct json_object *v)
{
    J.json_object_object_add(o, key, v);
}

/* Prints o plainly into a malloc'd string and releases o. */
static char *api_print(struct json_object *o)
{
    if (!o)
        return NULL;
    size_t n = 0;
    const char *s = J.json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                        &n);
    char *d = s ? api_strndup(s, n) : NULL;
    J.json_object_put(o);
    return d;
}

static const char *api_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 500: return "server_error";
    case 503: return "unavailable_error";
    default: return "invalid_request_error";
    }
}

char *serve_body_error(const struct serve_error *e)
{
    struct json_object *o = J.json_object_new_object(), *err = J.json_object_new_object();
    api_add(err, "message", api_str(e->message));
    api_add(err, "type", api_str(api_error_type(e->status)));
    api_add(err, "param", e->param[0] ? api_str(e->param) : NULL);
    api_add(err, "code", e->status == 401 ? api_str("invalid_api_key") : J.json_object_new_int64(e->status));
    api_add(o, "error", err);
    return api_print(o);
}

char *serve_body_models(const struct serve *s)
{
    struct json_object *o = J.json_object_new_object(), *data = J.json_object_new_array(),
                       *m = J.json_object_new_object();
    api_add(m, "id", api_str(s->model_id));
    api_add(m, "object", api_str("model"));
    api_add(m, "created", J.json_object_new_int64(s->created));
    api_add(m, "owned_by", api_str("aether"));
    J.json_object_array_add(data, m);
    api_add(o, "object", api_str("list"));
    api_add(o, "data", data);
    return api_print(o);
}

static const char *api_finish_reason(enum serve_finish f)
{
    switch (f) {
    case SERVE_FINISH_STOP: return "stop";
    case SERVE_FINISH_LENGTH: return "length";
    case SERVE_FINISH_NONE:
    case SERVE_FINISH_CANCELLED:
    case SERVE_FINISH_ERROR: break;
    }
    return NULL;
}

/* id, object, created, model: what every response and chunk starts with. */
static struct json_object *api_head(const struct serve *s, const struct serve_request *r, bool chunk)
{
    struct json_object *o = J.json_object_new_object();
    char id[48];
    bool chat = r->params.kind == SERVE_KIND_CHAT;
    snprintf(id, sizeof id, "%s-%016" PRIx64, chat ? "chatcmpl" : "cmpl", r->id);
    api_add(o, "id", api_str(id));
    api_add(o, "object", api_str(chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"));
    api_add(o, "created", J.json_object_new_int64(r->created));
    api_add(o, "model", api_str(s->model_id));
    api_add(o, "system_fingerprint", api_str("aether"));
    return o;
}

static struct json_object *api_usage(const struct serve_request *r)
{
    struct json_object *u = J.json_object_new_object();
    api_add(u, "prompt_tokens", J.json_object_new_int64(r->n_prompt));
    api_add(u, "completion_tokens", J.json_object_new_int64(r->n_gen));
    api_add(u, "total_tokens", J.json_object_new_int64((int64_t)r->n_prompt + r->n_gen));
    return u;
}

static struct json_object *api_bytes(const char *piece, size_t n)
{
    struct json_object *a = J.json_object_new_array();
    for (size_t i = 0; i < n; i++)
        J.json_object_array_add(a, J.json_object_new_int64((unsigned char)piece[i]));
    return a;
}

static const char *api_piece(const struct serve *s, int32_t token, size_t *n)
{
    const char *p = ae_token_to_piece(s->mi.tok, token, false, 0, n);
    if (!p)
        *n = 0;
    return p ? p : "";
}

/* Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]}. */
static struct json_object *api_logprobs_chat(const struct serve *s, const struct serve_request *r, int32_t from,
                                             int32_t to)
{
    struct json_object *o = J.json_object_new_object(), *content = J.json_object_new_array();
    for (int32_t i = from; i < to; i++) {
        const struct serve_logprob *lp = &r->lp[i];
        struct json_object *e = J.json_object_new_object(), *top = J.json_object_new_array();
        size_t n;
        const char *piece = api_piece(s, lp->token, &n);
        api_add(e, "token", api_str_n(piece, n));
        api_add(e, "logprob", J.json_object_new_double(lp->logprob));
        api_add(e, "bytes", api_bytes(piece, n));
        for (int32_t k = 0; k < lp->n_top; k++) {
            struct json_object *t = J.json_object_new_object();
            piece = api_piece(s, lp->top_token[k], &n);
            api_add(t, "token", api_str_n(piece, n));
            api_add(t, "logprob", J.json_object_new_double(lp->top_logprob[k]));
            api_add(t, "bytes", api_bytes(piece, n));
            J.json_object_array_add(top, t);
        }
        api_add(e, "top_logprobs", top);
        J.json_object_array_add(content, e);
    }
    api_add(o, "content", content);
    return o;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}, the offsets
 * counted from text_offset0 in the piece bytes. */
static struct json_object *api_logprobs_legacy(const struct serve *s, const struct serve_request *r, int32_t from,
                                               int32_t to)
{
    struct json_object *o = J.json_object_new_object(), *tokens = J.json_object_new_array(),
                       *lps = J.json_object_new_array(), *tops = J.json_object_new_array(),
                       *offs = J.json_object_new_array();
    int64_t off = 0;
    for (int32_t i = 0; i < to; i++) {
        const struct serve_logprob *lp = &r->lp[i];
        size_t n;
        const char *piece = api_piece(s, lp->token, &n);
        if (i >= from) {
            J.json_object_array_add(tokens, api_str_n(piece, n));
            J.json_object_array_add(lps, J.json_object_new_double(lp->logprob));
            J.json_object_array_add(offs, J.json_object_new_int64(off));
            struct json_object *t = J.json_object_new_object();
            for (int32_t k = 0; k < lp->n_top; k++) {
                size_t tn;
                const char *tp = api_piece(s, lp->top_token[k], &tn);
                struct json_object *key = api_str_n(tp, tn);
                char *name = api_strndup(J.json_object_get_string(key), (size_t)J.json_object_get_string_len(key));
                if (name)
                    api_add(t, name, J.json_object_new_double(lp->top_logprob[k]));
                free(name);
                J.json_object_put(key);
            }
            J.json_object_array_add(tops, t);
        }
        off += (int64_t)n;
    }
    api_add(o, "tokens", tokens);
    api_add(o, "token_logprobs", lps);
    api_add(o, "top_logprobs", tops);
    api_add(o, "text_offset", offs);
    return o;
}

static struct json_object *api_logprobs(const struct serve *s, const struct serve_request *r, int32_t from,
                                        int32_t to)
{
    if (!r->params.logprobs)
        return NULL;
    return r->params.kind == SERVE_KIND_CHAT ? api_logprobs_chat(s, r, from, to)
                                             : api_logprobs_legacy(s, r, from, to);
}

char *serve_body_response(const struct serve *s, const struct serve_request *r)
{
    struct json_object *o = api_head(s, r, false), *choices = J.json_object_new_array(),
                       *c = J.json_object_new_object();
    const char *finish = api_finish_reason(r->finish);
    api_add(c, "index", J.json_object_new_int64(0));
    if (r->params.kind == SERVE_KIND_CHAT) {
        struct json_object *msg = J.json_object_new_object();
        api_add(msg, "role", api_str("assistant"));
        api_add(msg, "content", api_str_n(r->text, r->text_len));
        api_add(c, "message", msg);
    } else {
        api_add(c, "text", api_str_n(r->text, r->text_len));
    }
    api_add(c, "logprobs", api_logprobs(s, r, 0, r->n_lp));
    api_add(c, "finish_reason", finish ? api_str(finish) : NULL);
    J.json_object_array_add(choices, c);
    api_add(o, "choices", choices);
    api_add(o, "usage", api_usage(r));
    return api_print(o);
}

char *serve_body_chunk(const struct serve *s, const struct serve_request *r, size_t from, size_t to,
                       int32_t lp_from, int32_t lp_to, bool first, bool finished)
{
    struct json_object *o = api_head(s, r, true), *choices = J.json_object_new_array(),
                       *c = J.json_object_new_object();
    const char *finish = finished ? api_finish_reason(r->finish) : NULL;
    api_add(c, "index", J.json_object_new_int64(0));
    if (r->params.kind == SERVE_KIND_CHAT) {
        struct json_object *delta = J.json_object_new_object();
        if (first)
            api_add(delta, "role", api_str("assistant"));
        if (first || to > from)
            api_add(delta, "content", api_str_n(r->text + from, to - from));
        api_add(c, "delta", delta);
    } else {
        api_add(c, "text", api_str_n(r->text + from, to - from));
    }
    api_add(c, "logprobs", lp_to > lp_from ? api_logprobs(s, r, lp_from, lp_to) : NULL);
    api_add(c, "finish_reason", finish ? api_str(finish) : NULL);
    J.json_object_array_add(choices, c);
    api_add(o, "choices", choices);
    if (r->params.include_usage)
        api_add(o, "usage", NULL);
    return api_print(o);
}

char *serve_body_usage_chunk(const struct serve *s, const struct serve_request *r)
{
    struct json_object *o = api_head(s, r, true);
    api_add(o, "choices", J.json_object_new_array());
    api_add(o, "usage", api_usage(r));
    return api_print(o);
}
