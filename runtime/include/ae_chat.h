/* Chat templates: a conversation of {role, content} messages into one prompt text.
 *
 * A GGUF model carries its chat template as Jinja text (tokenizer.chat_template). Aether does not
 * run Jinja: like llama.cpp's llm_chat_detect_template it recognizes the family from marker strings
 * in the text, and like llm_chat_apply_template it formats each family with fixed code, producing
 * the same text llama.cpp does. A --chat-template NAME override picks a family by name; a template
 * text that matches no supported family is an error that lists the names.
 *
 * The prompt does not include the BOS token: the tokenizer adds it.
 */
#ifndef AE_CHAT_H
#define AE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "ae_error.h"
#include "ae_gguf.h"

/* The supported families: enum suffix and llama.cpp's name. */
#define AE_CHAT_TEMPLATE_LIST(X)                       \
    X(CHATML, "chatml")                                \
    X(LLAMA2, "llama2")                                \
    X(LLAMA2_SYS, "llama2-sys")                        \
    X(LLAMA2_SYS_BOS, "llama2-sys-bos")                \
    X(LLAMA2_SYS_STRIP, "llama2-sys-strip")            \
    X(MISTRAL_V1, "mistral-v1")                        \
    X(MISTRAL_V3, "mistral-v3")                        \
    X(MISTRAL_V3_TEKKEN, "mistral-v3-tekken")          \
    X(MISTRAL_V7, "mistral-v7")                        \
    X(MISTRAL_V7_TEKKEN, "mistral-v7-tekken")          \
    X(PHI3, "phi3")                                    \
    X(PHI4, "phi4")                                    \
    X(FALCON3, "falcon3")                              \
    X(GLMEDGE, "glmedge")                              \
    X(ZEPHYR, "zephyr")                                \
    X(GEMMA, "gemma")                                  \
    X(LLAMA3, "llama3")

enum ae_chat_template {
#define AE_CHAT_ENUM(id, name) AE_CHAT_##id,
    AE_CHAT_TEMPLATE_LIST(AE_CHAT_ENUM)
#undef AE_CHAT_ENUM
    AE_CHAT_TEMPLATE_COUNT
};

struct ae_chat_message {
    const char *role;     /* "system", "user" or "assistant" (other roles pass through as llama.cpp does) */
    const char *content;
};

/* The family's name, e.g. "chatml". */
const char *ae_chat_template_name(enum ae_chat_template t);

/* The supported names separated by ", ", for messages. */
const char *ae_chat_template_names(void);

/* The family called name (a --chat-template argument). Fails with the list of supported names. */
int ae_chat_template_from_name(const char *name, enum ae_chat_template *out, ae_error *err);

/* The family of a Jinja template text (len bytes, not necessarily NUL-terminated). The text may also
 * be a family name. Fails when the text matches no family, or matches one that Aether does not
 * format; the message names it and lists the supported names. */
int ae_chat_template_detect(const char *text, size_t len, enum ae_chat_template *out, ae_error *err);

/* The template for a model: override_name when not NULL, else the family of the GGUF key
 * tokenizer.chat_template, else (no such key) chatml, llama.cpp's default. */
int ae_chat_template_from_gguf(const ae_gguf *g, const char *override_name, enum ae_chat_template *out,
                               ae_error *err);

/* Formats n messages as family t does, followed by the assistant's turn header when add_assistant
 * (families whose prompt has no such header ignore it, as in llama.cpp). Writes at most cap - 1
 * bytes and a NUL to buf (buf may be NULL when cap is 0) and returns the full length, so a call
 * with cap 0 sizes the buffer. */
size_t ae_chat_format(enum ae_chat_template t, const struct ae_chat_message *msgs, size_t n,
                      bool add_assistant, char *buf, size_t cap);

#endif
