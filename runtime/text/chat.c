/* Chat templates (see ae_chat.h): family detection from Jinja text, and formatting.
 *
 * Detection asks the same questions in the same order as llama.cpp's llm_chat_detect_template, so
 * a template lands in the family llama.cpp picks. Where llama.cpp's answer is a family that Aether
 * does not format, detection fails and names that family rather than guessing another one; the
 * user can then choose one with --chat-template. Formatting restates llm_chat_apply_template for
 * each family. Trimming strips the C locale's white space (space, \t, \n, \v, \f, \r) at both ends.
 */
#include "ae_chat.h"

#include <string.h>

static const char *const chat_names[AE_CHAT_TEMPLATE_COUNT] = {
#define AE_CHAT_NAME(id, name) [AE_CHAT_##id] = name,
    AE_CHAT_TEMPLATE_LIST(AE_CHAT_NAME)
#undef AE_CHAT_NAME
};

/* Families llama.cpp recognizes ahead of (or instead of) a supported one, and Aether does not format. */
static const char *const chat_unsupported_names[] = {
    "smolvlm", "chatglm4", "monarch", "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "command-r",
};

const char *ae_chat_template_name(enum ae_chat_template t)
{
    return (unsigned)t < AE_CHAT_TEMPLATE_COUNT ? chat_names[t] : "?";
}

const char *ae_chat_template_names(void)
{
    static const char list[] =
#define AE_CHAT_LISTED(id, name) ", " name
        AE_CHAT_TEMPLATE_LIST(AE_CHAT_LISTED)
#undef AE_CHAT_LISTED
        ;
    return list + 2;
}

/* The supported family named by the n bytes at s, or AE_CHAT_TEMPLATE_COUNT. */
static enum ae_chat_template chat_lookup(const char *s, size_t n)
{
    for (int t = 0; t < AE_CHAT_TEMPLATE_COUNT; t++)
        if (strlen(chat_names[t]) == n && memcmp(chat_names[t], s, n) == 0)
            return (enum ae_chat_template)t;
    return AE_CHAT_TEMPLATE_COUNT;
}

static const char *chat_lookup_unsupported(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof chat_unsupported_names / sizeof chat_unsupported_names[0]; i++)
        if (strlen(chat_unsupported_names[i]) == n && memcmp(chat_unsupported_names[i], s, n) == 0)
            return chat_unsupported_names[i];
    return NULL;
}

int ae_chat_template_from_name(const char *name, enum ae_chat_template *out, ae_error *err)
{
    enum ae_chat_template t = chat_lookup(name, strlen(name));
    if (t == AE_CHAT_TEMPLATE_COUNT)
        return ae_fail(err, "unknown chat template '%s': expected one of %s", name, ae_chat_template_names());
    *out = t;
    return 0;
}

/* ---- Detection ------------------------------------------------------------------------------------ */

struct chat_text {
    const char *s;
    size_t n;
};

static bool chat_has(struct chat_text t, const char *needle)
{
    return memmem(t.s, t.n, needle, strlen(needle)) != NULL;
}

/* llama.cpp's decision list. Returns a supported family, or AE_CHAT_TEMPLATE_COUNT with *other set
 * to the unsupported family's name, or NULL when nothing matched. */
static enum ae_chat_template chat_classify(struct chat_text t, const char **other)
{
    *other = NULL;
    if (chat_has(t, "<|im_start|>")) {
        if (chat_has(t, "<|im_sep|>"))
            return AE_CHAT_PHI4;
        if (chat_has(t, "<end_of_utterance>")) {
            *other = "smolvlm";
            return AE_CHAT_TEMPLATE_COUNT;
        }
        return AE_CHAT_CHATML;
    }
    if ((t.n >= 7 && memcmp(t.s, "mistral", 7) == 0) || chat_has(t, "[INST]")) {
        if (chat_has(t, "[SYSTEM_PROMPT]"))
            return AE_CHAT_MISTRAL_V7;
        if (chat_has(t, "' [INST] ' + system_message") || chat_has(t, "[AVAILABLE_TOOLS]")) {
            if (chat_has(t, " [INST]"))
                return AE_CHAT_MISTRAL_V1;
            if (chat_has(t, "\"[INST]\""))
                return AE_CHAT_MISTRAL_V3_TEKKEN;
            return AE_CHAT_MISTRAL_V3;
        }
        if (chat_has(t, "content.strip()"))
            return AE_CHAT_LLAMA2_SYS_STRIP;
        if (chat_has(t, "bos_token + '[INST]"))
            return AE_CHAT_LLAMA2_SYS_BOS;
        if (chat_has(t, "<<SYS>>"))
            return AE_CHAT_LLAMA2_SYS;
        return AE_CHAT_LLAMA2;
    }
    if (chat_has(t, "<|assistant|>") && chat_has(t, "<|end|>"))
        return AE_CHAT_PHI3;
    if (chat_has(t, "[gMASK]<sop>")) {
        *other = "chatglm4";
        return AE_CHAT_TEMPLATE_COUNT;
    }
    if (chat_has(t, "<|assistant|>") && chat_has(t, "<|user|>"))
        return chat_has(t, "</s>") ? AE_CHAT_FALCON3 : AE_CHAT_GLMEDGE;
    if (chat_has(t, "<|{{ item['role'] }}|>") && chat_has(t, "<|begin_of_image|>"))
        return AE_CHAT_GLMEDGE;
    if (chat_has(t, "<|user|>") && chat_has(t, "<|endoftext|>"))
        return AE_CHAT_ZEPHYR;
    if (chat_has(t, "bos_token + message['role']"))
        *other = "monarch";
    else if (chat_has(t, "<start_of_turn>"))
        return AE_CHAT_GEMMA;
    else if (chat_has(t, "'\\n\\nAssistant: ' + eos_token"))
        *other = "orion";
    else if (chat_has(t, "GPT4 Correct "))
        *other = "openchat";
    else if (chat_has(t, "USER: ") && chat_has(t, "ASSISTANT: "))
        *other = chat_has(t, "SYSTEM: ") ? "vicuna-orca" : "vicuna";
    else if (chat_has(t, "### Instruction:") && chat_has(t, "<|EOT|>"))
        *other = "deepseek";
    else if (chat_has(t, "<|START_OF_TURN_TOKEN|>") && chat_has(t, "<|USER_TOKEN|>"))
        *other = "command-r";
    else if (chat_has(t, "<|start_header_id|>") && chat_has(t, "<|end_header_id|>"))
        return AE_CHAT_LLAMA3;
    return AE_CHAT_TEMPLATE_COUNT;
}

int ae_chat_template_detect(const char *text, size_t len, enum ae_chat_template *out, ae_error *err)
{
    enum ae_chat_template t = chat_lookup(text, len);
    const char *other = chat_lookup_unsupported(text, len);
    if (t == AE_CHAT_TEMPLATE_COUNT && !other)
        t = chat_classify((struct chat_text){ text, len }, &other);
    if (t != AE_CHAT_TEMPLATE_COUNT) {
        *out = t;
        return 0;
    }
    if (other)
        return ae_fail(err, "chat template: the model's template is of the '%s' family, which is not "
                       "supported; pass --chat-template with one of %s", other, ae_chat_template_names());
    return ae_fail(err, "chat template: the model's template (%zu bytes, starting \"%.*s\") matches no "
                   "supported family; pass --chat-template with one of %s",
                   len, (int)(len < 60 ? len : 60), text, ae_chat_template_names());
}

int ae_chat_template_from_gguf(const ae_gguf *g, const char *override_name, enum ae_chat_template *out,
                               ae_error *err)
{
    if (override_name)
        return ae_chat_template_from_name(override_name, out, err);
    struct ae_str s;
    int r = ae_gguf_get_str(g, "tokenizer.chat_template", &s, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        *out = AE_CHAT_CHATML;
        return 0;
    }
    if (ae_chat_template_detect(s.ptr, (size_t)s.len, out, err) != 0)
        return ae_fail_prefix(err, "%s: key tokenizer.chat_template", g->path);
    return 0;
}

/* ---- Formatting ----------------------------------------------------------------------------------- */

/* Output into a caller's buffer that counts what did not fit. */
struct chat_out {
    char *buf;
    size_t cap;
    size_t len;
};

static void chat_put(struct chat_out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - 1 - o->len; /* keep one byte for the NUL */
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void chat_puts(struct chat_out *o, const char *s)
{
    chat_put(o, s, strlen(s));
}

static bool chat_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static struct chat_text chat_trim(const char *s)
{
    size_t n = strlen(s), b = 0;
    while (b < n && chat_is_space(s[b]))
        b++;
    while (n > b && chat_is_space(s[n - 1]))
        n--;
    return (struct chat_text){ s + b, n - b };
}

static void chat_put_trimmed(struct chat_out *o, const char *s)
{
    struct chat_text t = chat_trim(s);
    chat_put(o, t.s, t.n);
}

static bool chat_role_is(const struct ae_chat_message *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

/* <|im_start|>role\ncontent<|im_end|>\n, and the same for phi4 with <|im_sep|> and no newlines. */
static void chat_format_chatml(struct chat_out *o, const struct ae_chat_message *m, size_t n, bool add, bool phi4)
{
    const char *sep = phi4 ? "<|im_sep|>" : "\n", *end = phi4 ? "<|im_end|>" : "<|im_end|>\n";
    for (size_t i = 0; i < n; i++) {
        chat_puts(o, "<|im_start|>");
        chat_puts(o, m[i].role);
        chat_puts(o, sep);
        chat_puts(o, m[i].content);
        chat_puts(o, end);
    }
    if (add) {
        chat_puts(o, "<|im_start|>assistant");
        chat_puts(o, sep);
    }
}

/* [SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] answer</s>; tekken drops the spaces. */
static void chat_format_mistral_v7(struct chat_out *o, const struct ae_chat_message *m, size_t n, bool tekken)
{
    const char *sp = tekken ? "" : " ";
    for (size_t i = 0; i < n; i++) {
        if (chat_role_is(&m[i], "system")) {
            chat_puts(o, "[SYSTEM_PROMPT]");
            chat_puts(o, sp);
            chat_puts(o, m[i].content);
            chat_puts(o, "[/SYSTEM_PROMPT]");
        } else if (chat_role_is(&m[i], "user")) {
            chat_puts(o, "[INST]");
            chat_puts(o, sp);
            chat_puts(o, m[i].content);
            chat_puts(o, "[/INST]");
        } else {
            chat_puts(o, sp);
            chat_puts(o, m[i].content);
            chat_puts(o, "</s>");
        }
    }
}

/* Mistral v1, v3 and v3-tekken: the system text opens the first [INST] turn. */
static void chat_format_mistral(struct chat_out *o, const struct ae_chat_message *m, size_t n,
                                enum ae_chat_template t)
{
    const char *lead = t == AE_CHAT_MISTRAL_V1 ? " " : "";
    const char *trail = t == AE_CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            chat_puts(o, lead);
            chat_puts(o, "[INST]");
            chat_puts(o, trail);
            in_turn = true;
        }
        if (chat_role_is(&m[i], "system")) {
            chat_puts(o, m[i].content);
            chat_puts(o, "\n\n");
        } else if (chat_role_is(&m[i], "user")) {
            chat_puts(o, m[i].content);
            chat_puts(o, lead);
            chat_puts(o, "[/INST]");
        } else {
            chat_puts(o, trail);
            if (t == AE_CHAT_MISTRAL_V3)
                chat_put_trimmed(o, m[i].content);
            else
                chat_puts(o, m[i].content);
            chat_puts(o, "</s>");
            in_turn = false;
        }
    }
}

/* Llama 2 and its variants: <<SYS>> blocks, <s> inside the history, stripped contents. */
static void chat_format_llama2(struct chat_out *o, const struct ae_chat_message *m, size_t n,
                               enum ae_chat_template t)
{
    const bool sys = t != AE_CHAT_LLAMA2;
    const bool bos = t == AE_CHAT_LLAMA2_SYS_BOS;
    const bool strip = t == AE_CHAT_LLAMA2_SYS_STRIP;
    bool in_turn = true; /* the first [INST] has no <s>: the tokenizer adds BOS */
    chat_puts(o, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        struct chat_text c = strip ? chat_trim(m[i].content)
                                   : (struct chat_text){ m[i].content, strlen(m[i].content) };
        if (!in_turn) {
            in_turn = true;
            chat_puts(o, bos ? "<s>[INST] " : "[INST] ");
        }
        if (chat_role_is(&m[i], "system")) {
            if (sys) {
                chat_puts(o, "<<SYS>>\n");
                chat_put(o, c.s, c.n);
                chat_puts(o, "\n<</SYS>>\n\n");
            } else {
                chat_put(o, c.s, c.n);
                chat_puts(o, "\n");
            }
        } else if (chat_role_is(&m[i], "user")) {
            chat_put(o, c.s, c.n);
            chat_puts(o, " [/INST]");
        } else {
            chat_put(o, c.s, c.n);
            chat_puts(o, "</s>");
            in_turn = false;
        }
    }
}

/* <|role|>\ncontent<end>: phi3 (<|end|>\n), falcon3 (\n), zephyr (<|endoftext|>\n), glmedge (nothing). */
static void chat_format_tagged(struct chat_out *o, const struct ae_chat_message *m, size_t n, bool add,
                               const char *end, const char *assistant)
{
    for (size_t i = 0; i < n; i++) {
        chat_puts(o, "<|");
        chat_puts(o, m[i].role);
        chat_puts(o, "|>\n");
        chat_puts(o, m[i].content);
        chat_puts(o, end);
    }
    if (add)
        chat_puts(o, assistant);
}

/* Gemma has no system role: system texts (trimmed) open the next non-model turn. */
static void chat_format_gemma(struct chat_out *o, const struct ae_chat_message *m, size_t n, bool add)
{
    size_t sys_from = 0; /* system messages from here on are not yet written */
    bool sys_pending = false;
    for (size_t i = 0; i < n; i++) {
        if (chat_role_is(&m[i], "system")) {
            sys_pending = sys_pending || chat_trim(m[i].content).n > 0;
            continue;
        }
        const bool model = chat_role_is(&m[i], "assistant") || chat_role_is(&m[i], "model");
        chat_puts(o, "<start_of_turn>");
        chat_puts(o, model ? "model" : m[i].role);
        chat_puts(o, "\n");
        if (sys_pending && !model) {
            for (size_t k = sys_from; k < i; k++)
                if (chat_role_is(&m[k], "system"))
                    chat_put_trimmed(o, m[k].content);
            chat_puts(o, "\n\n");
            sys_pending = false;
        }
        if (!model)
            sys_from = i + 1;
        chat_put_trimmed(o, m[i].content);
        chat_puts(o, "<end_of_turn>\n");
    }
    if (add)
        chat_puts(o, "<start_of_turn>model\n");
}

static void chat_format_llama3(struct chat_out *o, const struct ae_chat_message *m, size_t n, bool add)
{
    for (size_t i = 0; i < n; i++) {
        chat_puts(o, "<|start_header_id|>");
        chat_puts(o, m[i].role);
        chat_puts(o, "<|end_header_id|>\n\n");
        chat_put_trimmed(o, m[i].content);
        chat_puts(o, "<|eot_id|>");
    }
    if (add)
        chat_puts(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

size_t ae_chat_format(enum ae_chat_template t, const struct ae_chat_message *msgs, size_t n,
                      bool add_assistant, char *buf, size_t cap)
{
    struct chat_out o = { buf, cap, 0 };
    switch (t) {
    case AE_CHAT_CHATML:
        chat_format_chatml(&o, msgs, n, add_assistant, false);
        break;
    case AE_CHAT_PHI4:
        chat_format_chatml(&o, msgs, n, add_assistant, true);
        break;
    case AE_CHAT_MISTRAL_V7:
        chat_format_mistral_v7(&o, msgs, n, false);
        break;
    case AE_CHAT_MISTRAL_V7_TEKKEN:
        chat_format_mistral_v7(&o, msgs, n, true);
        break;
    case AE_CHAT_MISTRAL_V1:
    case AE_CHAT_MISTRAL_V3:
    case AE_CHAT_MISTRAL_V3_TEKKEN:
        chat_format_mistral(&o, msgs, n, t);
        break;
    case AE_CHAT_LLAMA2:
    case AE_CHAT_LLAMA2_SYS:
    case AE_CHAT_LLAMA2_SYS_BOS:
    case AE_CHAT_LLAMA2_SYS_STRIP:
        chat_format_llama2(&o, msgs, n, t);
        break;
    case AE_CHAT_PHI3:
        chat_format_tagged(&o, msgs, n, add_assistant, "<|end|>\n", "<|assistant|>\n");
        break;
    case AE_CHAT_FALCON3:
        chat_format_tagged(&o, msgs, n, add_assistant, "\n", "<|assistant|>\n");
        break;
    case AE_CHAT_ZEPHYR:
        chat_format_tagged(&o, msgs, n, add_assistant, "<|endoftext|>\n", "<|assistant|>\n");
        break;
    case AE_CHAT_GLMEDGE:
        chat_format_tagged(&o, msgs, n, add_assistant, "", "<|assistant|>");
        break;
    case AE_CHAT_GEMMA:
        chat_format_gemma(&o, msgs, n, add_assistant);
        break;
    case AE_CHAT_LLAMA3:
        chat_format_llama3(&o, msgs, n, add_assistant);
        break;
    case AE_CHAT_TEMPLATE_COUNT:
        break;
    }
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len;
}
