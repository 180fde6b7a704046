/* The slots and the scheduler (serve.h): continuous batching over --parallel KV cache regions.
 *
 * A request is tokenized and checked by the HTTP thread that received it (serve_request_create), then
 * queued (serve_request_submit). The step loop, on the program's main thread, repeats:
 *   1. under the lock: free the slots of requests whose client went away, and move queued requests into
 *      free slots (first come, first served);
 *   2. without it: build one batch, a run of rows per busy slot: one row (its last sampled token) for
 *      every slot that is generating, then, while the step has room (n_batch rows in all), a chunk of
 *      the prompt of each slot still reading one, oldest request first. A long prompt is read over
 *      several steps, so the slots that are generating get a token at every step meanwhile;
 *   3. run the batch through the model: one forward step for all runs when the program has a batched
 *      step (ae_model.forward_batch), else one forward call per run on that slot's cache;
 *   4. for each run that ends its slot's prompt or generates: sample the next token with the request's
 *      own sampler and pass its text through the request's text stream (UTF-8 and stop strings);
 *   5. under the lock: publish the new text, tokens and finish reasons, wake the HTTP threads, and free
 *      the slots of requests that finished.
 * New requests therefore join between steps, and one that finishes frees its slot for the next one at
 * once.
 *
 * Determinism: every run's rows are computed from that run's tokens and its own slot's cache only
 * (docs/serve.md says why the kernels guarantee it), and each request samples with its own seeded
 * sampler, so a request's tokens do not depend on what else is in the batch or how its prompt was
 * chunked.
 */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

double serve_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- Requests -------------------------------------------------------------------------------------- */

static void request_free(struct serve_request *r)
{
    if (!r)
        return;
    serve_params_free(&r->params);
    ae_sampler_destroy(r->sampler);
    ae_utf8_stream_destroy(r->text_stream);
    pthread_cond_destroy(&r->cv);
    free(r->prompt);
    free(r->stage);
    free(r->lp);
    free(r->text);
    free(r);
}

/* The text stream's sink: text for this step, published after it. The stage holds the most one token
 * can release (see serve_request_create), so this never allocates. */
static void request_sink(void *ctx, const char *text, size_t len)
{
    struct serve_request *r = ctx;
    size_t room = r->stage_cap - r->stage_len;
    size_t n = len < room ? len : room;
    memcpy(r->stage + r->stage_len, text, n);
    r->stage_len += n;
}

static int request_tokenize(struct serve *s, struct serve_request *r, struct serve_error *e)
{
    int32_t n_ctx = s->st.n_ctx;
    struct serve_params *p = &r->params;
    if (p->prompt_ids) {
        if (p->n_prompt_ids > n_ctx)
            return serve_fail(e, 400, "prompt", "the prompt is %" PRId32 " tokens, more than the context of %" PRId32
                              " tokens", p->n_prompt_ids, n_ctx);
        r->prompt = p->prompt_ids;
        r->n_prompt = p->n_prompt_ids;
        p->prompt_ids = NULL;
        return 0;
    }
    ae_error err = { { 0 } };
    size_t cap = (size_t)n_ctx + 1, n = 0;
    const char *param = p->kind == SERVE_KIND_CHAT ? "messages" : "prompt";
    if (!(r->prompt = malloc(cap * sizeof *r->prompt)))
        return serve_fail(e, 500, param, "out of memory for a prompt of up to %zu tokens", cap);
    if (ae_tokenize(s->mi.tok, p->prompt, p->prompt_len, true, true, r->prompt, cap, &n, &err) < 0) {
        if (n > (size_t)n_ctx)
            return serve_fail(e, 400, param, "the prompt is %zu tokens or more, more than the context of %" PRId32
                              " tokens", n, n_ctx);
        return serve_fail(e, 400, param, "the prompt cannot be tokenized: %s", err.msg);
    }
    if (n > (size_t)n_ctx)
        return serve_fail(e, 400, param, "the prompt is %zu tokens, more than the context of %" PRId32 " tokens",
                          n, n_ctx);
    if (n == 0)
        return serve_fail(e, 400, param, "the prompt is empty and the vocabulary adds no BOS: nothing to "
                          "generate from");
    r->n_prompt = (int32_t)n;
    return 0;
}

/* The request's sampler: its parameters, plus a ban on the logits past the tokenizer's vocabulary
 * (padding rows of the output matrix), as the program's own sampler has. */
static int request_sampler(struct serve *s, struct serve_request *r, struct serve_error *e)
{
    const struct ae_model *m = s->p->m;
    struct ae_sampler_params sp = r->params.sampling;
    int32_t n_pad = m->n_vocab - s->mi.n_vocab, n_bias = sp.n_logit_bias;
    struct ae_logit_bias *all = malloc(((size_t)n_pad + (size_t)n_bias + 1) * sizeof *all);
    if (!all)
        return serve_fail(e, 500, "", "out of memory for the sampler");
    if (n_bias)
        memcpy(all, sp.logit_bias, (size_t)n_bias * sizeof *all);
    for (int32_t i = 0; i < n_pad; i++)
        all[n_bias + i] = (struct ae_logit_bias){ s->mi.n_vocab + i, -INFINITY };
    sp.logit_bias = all;
    sp.n_logit_bias = n_bias + n_pad;
    ae_error err = { { 0 } };
    r->sampler = ae_sampler_create(&sp, m->n_vocab, &err);
    free(all);
    if (!r->sampler)
        return serve_fail(e, 400, "", "sampling parameters: %s", err.msg);
    return 0;
}

struct serve_request *serve_request_create(struct serve *s, struct serve_params *params, struct serve_error *e)
{
    struct serve_request *r = calloc(1, sizeof *r);
    if (!r) {
        serve_fail(e, 500, "", "out of memory");
        serve_params_free(params);
        return NULL;
    }
    r->params = *params;
    memset(params, 0, sizeof *params);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->created = (int64_t)time(NULL);
    int32_t n_ctx = s->st.n_ctx;
    if (request_tokenize(s, r, e) < 0)
        goto fail;
    /* Generating k tokens feeds k - 1 of them back: the context holds n_prompt + k - 1 positions. */
    int32_t room = n_ctx - r->n_prompt + 1;
    if (r->params.max_tokens > 0 && (int64_t)r->n_prompt + r->params.max_tokens > (int64_t)n_ctx + 1) {
        serve_fail(e, 400, "max_tokens", "the context is %" PRId32 " tokens: the prompt takes %" PRId32 " and "
                   "max_tokens asks for %" PRId32 " more (at most %" PRId32 ")", n_ctx, r->n_prompt,
                   r->params.max_tokens, room);
        goto fail;
    }
    r->max_tokens = r->params.max_tokens > 0 ? r->params.max_tokens : room;
    if (request_sampler(s, r, e) < 0)
        goto fail;
    ae_error err = { { 0 } };
    if (ae_utf8_stream_create(&r->text_stream, (const char *const *)r->params.stops, r->params.n_stops,
                              request_sink, r, &err) < 0) {
        serve_fail(e, 400, "stop", "%s", err.msg);
        goto fail;
    }
    /* One token releases at most its piece, a held partial character and held stop-string text, each
     * byte of which may become a 3-byte U+FFFD. */
    r->stage_cap = 3 * (s->p->piece_cap + SERVE_MAX_STOP_BYTES + 8);
    if (!(r->stage = malloc(r->stage_cap)) || !(r->text = malloc(r->text_cap = 256)) ||
        (r->params.logprobs && !(r->lp = calloc((size_t)r->max_tokens, sizeof *r->lp)))) {
        serve_fail(e, 500, "", "out of memory");
        goto fail;
    }
    r->text[0] = 0;
    return r;
fail:
    request_free(r);
    return NULL;
}

int serve_request_submit(struct serve *s, struct serve_request *r, struct serve_error *e)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->draining)
        rc = serve_fail(e, 503, "", "the server is shutting down");
    else if (s->q_len + s->n_busy >= s->n_slots + s->q_cap)
        rc = serve_fail(e, 503, "", "all %" PRId32 " slots are busy and %" PRId32 " requests are waiting: try again "
                        "later", s->n_slots, s->q_len);
    if (rc == 0) {
        r->id = ++s->next_id;
        r->t_submit = serve_now_ms();
        r->refs++;
        s->queue[(s->q_head + s->q_len) % (s->q_cap + s->n_slots)] = r;
        s->q_len++;
        s->n_open++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Drops one reference, under s->mu. */
static void request_unref(struct serve_request *r)
{
    if (--r->refs == 0)
        request_free(r);
}

void serve_request_release(struct serve *s, struct serve_request *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&s->mu);
    if (r->id) {
        s->n_open--;
        if (r->finish == SERVE_FINISH_NONE) {
            r->cancelled = true;
            pthread_cond_signal(&s->work);
        }
    }
    request_unref(r);
    pthread_mutex_unlock(&s->mu);
}

/* ---- The slots ------------------------------------------------------------------------------------- */

/* Ends a slot's request (under s->mu): publishes the finish, wakes its HTTP thread, frees the slot. */
static void slot_finish(struct serve *s, struct serve_slot *sl, enum serve_finish f, const char *error)
{
    struct serve_request *r = sl->req;
    r->finish = f;
    if (error)
        snprintf(r->error, sizeof r->error, "%s", error);
    if (f == SERVE_FINISH_CANCELLED)
        s->metrics.requests_cancelled++;
    pthread_cond_broadcast(&r->cv);
    s->kv_used -= sl->n_past;
    s->n_busy--;
    sl->req = NULL;
    request_unref(r);
}

/* The free slot whose cache holds the longest start of r's prompt (among equals, the one used least
 * recently, so that other caches live longer), and in *keep how many of its positions r keeps: at most
 * all but the prompt's last token, which must be fed again for its logits. -1 when every slot is busy. */
static int32_t engine_pick_slot(const struct serve *s, const struct serve_request *r, int32_t *keep)
{
    int32_t best = -1;
    *keep = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        const struct serve_slot *sl = &s->slots[i];
        if (sl->req)
            continue;
        int32_t limit = sl->n_past < r->n_prompt - 1 ? sl->n_past : r->n_prompt - 1, n = 0;
        while (n < limit && sl->tokens[n] == r->prompt[n])
            n++;
        if (best < 0 || n > *keep || (n == *keep && sl->t_last < s->slots[best].t_last)) {
            best = i;
            *keep = n;
        }
    }
    return best;
}

/* Under s->mu: frees the slots and queue places of requests whose client went away, and gives free
 * slots to queued requests in order. */
static void engine_schedule(struct serve *s)
{
    for (int32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].req && s->slots[i].req->cancelled)
            slot_finish(s, &s->slots[i], SERVE_FINISH_CANCELLED, NULL);
    int32_t ring = s->q_cap + s->n_slots;
    while (s->q_len > 0) {
        struct serve_request *r = s->queue[s->q_head];
        if (r->cancelled) {
            r->finish = SERVE_FINISH_CANCELLED;
            s->metrics.requests_cancelled++;
            pthread_cond_broadcast(&r->cv);
            request_unref(r);
        } else {
            int32_t keep, i = engine_pick_slot(s, r, &keep);
            if (i < 0)
                break;
            struct serve_slot *sl = &s->slots[i];
            *sl = (struct serve_slot){ .req = r, .tokens = sl->tokens, .n_past = keep, .n_fed = keep, .next = -1,
                                       .t_last = serve_now_ms() };
            ae_error err = { { 0 } };
            for (int32_t k = 0; k < keep; k++)
                ae_sampler_accept(r->sampler, r->prompt[k], &err);
            s->n_busy++;
            s->kv_used += keep;
            s->metrics.prompt_tokens += (uint64_t)r->n_prompt;
            s->metrics.prompt_tokens_cached += (uint64_t)keep;
        }
        s->q_head = (s->q_head + 1) % ring;
        s->q_len--;
    }
}

/* ---- One step -------------------------------------------------------------------------------------- */

/* Runs the batch: one batched step, or one forward call per run on its own slot's cache. */
static int engine_forward(struct serve *s, const struct ae_batch_run *runs, int32_t n_runs, int32_t n_rows,
                          ae_error *err)
{
    const struct ae_model *m = s->p->m;
    if (s->batched) {
        struct ae_batch b = { .tokens = s->b_tokens, .n_tokens = n_rows, .runs = runs, .n_runs = n_runs,
                              .logits = s->b_logits };
        return m->forward_batch(&s->st, &b, err);
    }
    for (int32_t k = 0; k < n_runs; k++) {
        struct ae_state st = s->st;
        st.k_cache += (size_t)runs[k].seq * (size_t)m->n_layer;
        st.v_cache += (size_t)runs[k].seq * (size_t)m->n_layer;
        if (m->forward(&st, s->b_tokens + runs[k].row0, runs[k].n_rows, runs[k].pos0,
                       s->b_logits + (size_t)k * (size_t)m->n_vocab, err) < 0)
            return -1;
    }
    return 0;
}

/* log p(token) under softmax(logits) over the tokenizer's vocabulary, and the n_top most likely tokens. */
static void engine_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top,
                            struct serve_logprob *out)
{
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > -INFINITY)
            sum += exp((double)logits[i] - (double)max);
    double lse = (double)max + log(sum);
    out->token = token;
    out->logprob = (float)((double)logits[token] - lse);
    out->n_top = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        float l = logits[i];
        if (!(l > -INFINITY))
            continue;
        int32_t k = out->n_top < n_top ? out->n_top++ : n_top;
        if (k == n_top && l <= out->top_logprob[n_top - 1])
            continue;
        if (k == n_top)
            k = n_top - 1;
        while (k > 0 && out->top_logprob[k - 1] < l) {
            out->top_logprob[k] = out->top_logprob[k - 1];
            out->top_token[k] = out->top_token[k - 1];
            k--;
        }
        out->top_logprob[k] = l;
        out->top_token[k] = i;
    }
    for (int32_t k = 0; k < out->n_top; k++)
        out->top_logprob[k] = (float)((double)out->top_logprob[k] - lse);
}

/* What a step decided for one slot, published under the lock afterwards. */
struct engine_out {
    int32_t n_gen, n_lp;
    enum serve_finish finish;
    bool first_token;
    double t_token;
};

/* Samples a slot's next token from its run's logits and streams its text. */
static void engine_sample(struct serve *s, struct serve_slot *sl, const float *logits, struct engine_out *out,
                          char *error, size_t error_size)
{
    struct serve_request *r = sl->req;
    const ae_tokenizer *tok = s->mi.tok;
    ae_error err = { { 0 } };
    int32_t t = ae_sampler_sample(r->sampler, logits, &err);
    if (t < 0 || ae_sampler_accept(r->sampler, t, &err) < 0) {
        snprintf(error, error_size, "sampling: %.200s", err.msg);
        out->finish = SERVE_FINISH_ERROR;
        return;
    }
    if (r->lp)
        engine_logprobs(logits, s->mi.n_vocab, t, r->params.top_logprobs, &r->lp[out->n_lp++]);
    out->n_gen++;
    out->t_token = serve_now_ms();
    if (ae_tokenizer_is_eog(tok, t)) {
        out->finish = SERVE_FINISH_STOP;
    } else {
        size_t n;
        const char *piece = ae_token_to_piece(tok, t, false, 0, &n);
        if (piece && n && ae_utf8_stream_push(r->text_stream, piece, n))
            out->finish = SERVE_FINISH_STOP;
        else if (out->n_gen >= r->max_tokens || sl->n_past >= s->st.n_ctx)
            out->finish = SERVE_FINISH_LENGTH;
    }
    if (out->finish != SERVE_FINISH_NONE)
        ae_utf8_stream_flush(r->text_stream);
    else
        sl->next = t;
}

/* Under s->mu: the step's output of one slot becomes visible to its HTTP thread. */
static void engine_publish(struct serve *s, struct serve_slot *sl, const struct engine_out *out, const char *error)
{
    struct serve_request *r = sl->req;
    if (r->stage_len) {
        size_t need = r->text_len + r->stage_len + 1;
        if (need > r->text_cap) {
            size_t cap = r->text_cap * 2 > need ? r->text_cap * 2 : need;
            char *t = realloc(r->text, cap);
            if (!t) {
                slot_finish(s, sl, SERVE_FINISH_ERROR, "out of memory for the generated text");
                return;
            }
            r->text = t;
            r->text_cap = cap;
        }
        memcpy(r->text + r->text_len, r->stage, r->stage_len);
        r->text_len += r->stage_len;
        r->text[r->text_len] = 0;
        r->stage_len = 0;
    }
    if (out->n_gen > r->n_gen) {
        struct serve_metrics *m = &s->metrics;
        m->generated_tokens += (uint64_t)(out->n_gen - r->n_gen);
        if (r->n_gen == 0)
            serve_histogram_add(&m->ttft, (out->t_token - r->t_submit) / 1e3);
        else
            serve_histogram_add(&m->tpot, (out->t_token - sl->t_last) / 1e3);
        sl->t_last = out->t_token;
    }
    r->n_gen = out->n_gen;
    r->n_lp = out->n_lp;
    if (out->finish != SERVE_FINISH_NONE)
        slot_finish(s, sl, out->finish, error);
    else
        pthread_cond_broadcast(&r->cv);
}

/* One step over every busy slot. Returns 0; a failed forward step ends the requests in it with an
 * error (the server goes on). */
static void engine_step(struct serve *s)
{
    const struct ae_model *m = s->p->m;
    struct ae_batch_run runs[AE_PROG_MAX_PARALLEL];
    int32_t n_runs = 0, n_rows = 0;
    /* A row for every slot that is generating... */
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct serve_slot *sl = &s->slots[i];
        if (sl->req && sl->next >= 0) {
            runs[n_runs] = (struct ae_batch_run){ .seq = i, .row0 = n_rows, .n_rows = 1, .pos0 = sl->n_past };
            s->b_slot[n_runs++] = i;
            s->b_tokens[n_rows++] = sl->next;
            sl->tokens[sl->n_past] = sl->next;
        }
    }
    /* ...then prompt chunks, oldest request first, while the step has room. */
    for (;;) {
        int32_t best = -1;
        for (int32_t i = 0; i < s->n_slots; i++) {
            struct serve_slot *sl = &s->slots[i];
            bool scheduled = false;
            for (int32_t k = 0; k < n_runs && !scheduled; k++)
                scheduled = s->b_slot[k] == i;
            if (sl->req && sl->next < 0 && !scheduled && (best < 0 || sl->req->id < s->slots[best].req->id))
                best = i;
        }
        if (best < 0 || n_rows >= s->n_batch)
            break;
        struct serve_slot *sl = &s->slots[best];
        int32_t left = sl->req->n_prompt - sl->n_fed, room = s->n_batch - n_rows;
        int32_t c = left < room ? left : room;
        runs[n_runs] = (struct ae_batch_run){ .seq = best, .row0 = n_rows, .n_rows = c, .pos0 = sl->n_past };
        s->b_slot[n_runs++] = best;
        memcpy(s->b_tokens + n_rows, sl->req->prompt + sl->n_fed, (size_t)c * sizeof *s->b_tokens);
        memcpy(sl->tokens + sl->n_past, sl->req->prompt + sl->n_fed, (size_t)c * sizeof *sl->tokens);
        n_rows += c;
    }
    if (n_runs == 0)
        return;

    ae_error err = { { 0 } };
    int rc = engine_forward(s, runs, n_runs, n_rows, &err);
    struct engine_out outs[AE_PROG_MAX_PARALLEL];
    char errors[AE_PROG_MAX_PARALLEL][256];
    for (int32_t k = 0; k < n_runs; k++) {
        struct serve_slot *sl = &s->slots[s->b_slot[k]];
        struct serve_request *r = sl->req;
        struct engine_out *out = &outs[k];
        *out = (struct engine_out){ .n_gen = r->n_gen, .n_lp = r->n_lp };
        errors[k][0] = 0;
        if (rc < 0) {
            snprintf(errors[k], sizeof errors[k], "the forward step failed: %.200s", err.msg);
            out->finish = SERVE_FINISH_ERROR;
            continue;
        }
        sl->n_past += runs[k].n_rows;
        if (sl->next < 0) {
            for (int32_t j = 0; j < runs[k].n_rows; j++)
                ae_sampler_accept(r->sampler, s->b_tokens[runs[k].row0 + j], &err);
            sl->n_fed += runs[k].n_rows;
            if (sl->n_fed < r->n_prompt)
                continue;
        }
        engine_sample(s, sl, s->b_logits + (size_t)k * (size_t)m->n_vocab, out, errors[k], sizeof errors[k]);
    }

    pthread_mutex_lock(&s->mu);
    s->metrics.steps++;
    s->metrics.step_rows += (uint64_t)n_rows;
    for (int32_t k = 0; k < n_runs; k++) {
        struct serve_slot *sl = &s->slots[s->b_slot[k]];
        if (rc == 0)
            s->kv_used += runs[k].n_rows;
        engine_publish(s, sl, &outs[k], errors[k][0] ? errors[k] : NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- The loop -------------------------------------------------------------------------------------- */

int serve_engine_init(struct serve *s, ae_error *err)
{
    const struct ae_model *m = s->p->m;
    s->n_slots = s->o->parallel;
    s->q_cap = s->o->queue;
    s->st = s->p->st;
    s->n_batch = s->p->o->n_batch > 0 && s->p->o->n_batch < m->t_max ? s->p->o->n_batch : m->t_max;
    if (s->n_slots > s->n_batch)
        return ae_fail(err, "--parallel %" PRId32 " is more than the %" PRId32 " tokens one step takes (-b, at most "
                       "the compiled step)", s->n_slots, s->n_batch);
    /* The batched step's arena holds its per-sequence rows after the plan's: one of its own. */
    s->batched = m->forward_batch && s->n_slots <= m->batch_max_seqs && m->batch_arena_bytes > 0;
    if (s->batched) {
        void *a = mmap(NULL, (size_t)m->batch_arena_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
            return ae_fail(err, "cannot allocate the batched step's arena (%" PRIu64 " bytes)", m->batch_arena_bytes);
        s->batch_arena = a;
        s->st.arena = a;
    }
    serve_metrics_init(&s->metrics);
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->queue = calloc((size_t)(s->q_cap + s->n_slots), sizeof *s->queue);
    s->b_tokens = malloc((size_t)s->n_batch * sizeof *s->b_tokens);
    s->b_slot = malloc((size_t)s->n_slots * sizeof *s->b_slot);
    s->b_logits = malloc((size_t)s->n_slots * (size_t)m->n_vocab * sizeof *s->b_logits);
    if (!s->slots || !s->queue || !s->b_tokens || !s->b_slot || !s->b_logits)
        return ae_fail(err, "out of memory for %" PRId32 " slots", s->n_slots);
    for (int32_t i = 0; i < s->n_slots; i++)
        if (!(s->slots[i].tokens = malloc((size_t)s->st.n_ctx * sizeof *s->slots[i].tokens)))
            return ae_fail(err, "out of memory for %" PRId32 " slots", s->n_slots);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    return 0;
}

void serve_engine_free(struct serve *s)
{
    for (int32_t i = 0; s->slots && i < s->n_slots; i++) {
        if (s->slots[i].req)
            request_unref(s->slots[i].req);
        free(s->slots[i].tokens);
    }
    for (int32_t k = 0; k < s->q_len; k++)
        request_unref(s->queue[(s->q_head + k) % (s->q_cap + s->n_slots)]);
    if (s->batch_arena)
        munmap(s->batch_arena, (size_t)s->p->m->batch_arena_bytes);
    free(s->slots);
    free(s->queue);
    free(s->b_tokens);
    free(s->b_slot);
    free(s->b_logits);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
}

int serve_engine_run(struct serve *s, volatile sig_atomic_t *stop, ae_error *err)
{
    (void)err;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (*stop && !s->draining) {
            s->draining = true;
            pthread_mutex_unlock(&s->mu);
            serve_http_quiesce(s);
            pthread_mutex_lock(&s->mu);
        }
        engine_schedule(s);
        if (s->n_busy == 0) {
            if (s->draining && s->n_open == 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->work, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        engine_step(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}
