/* Chat templates (detection and formatting) and the UTF-8 text stream with stop strings.
 *
 * The formatting table is llama.cpp's own test conversation with the output llama.cpp's
 * llm_chat_apply_template gives for each family (tests/test-chat-template.cpp); the rows llama.cpp
 * does not test (llama2-sys, mistral-v7-tekken, falcon3, zephyr) follow its formatting code. The
 * detection table holds the Jinja texts that models of each family ship in tokenizer.chat_template.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_chat.h"
#include "ae_gguf.h"
#include "gguf_write.h"
#include "ae_utf8.h"
#include "test_util.h"

/* ---- Formatting ----------------------------------------------------------------------------------- */

static const struct ae_chat_message conversation[] = {
    { "system", "You are a helpful assistant" },
    { "user", "Hello" },
    { "assistant", "Hi there" },
    { "user", "Who are you" },
    { "assistant", "   I am an assistant   " },
    { "user", "Another question" },
};
#define N_CONVERSATION (sizeof conversation / sizeof conversation[0])

static const struct {
    const char *name;
    const char *expect; /* with the assistant prompt */
} format_rows[] = {
    { "chatml",
      "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
      "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
      "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
      "<|im_start|>assistant\n" },
    { "llama2",
      "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
      "assistant   </s>[INST] Another question [/INST]" },
    { "llama2-sys",
      "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
      "[/INST]   I am an assistant   </s>[INST] Another question [/INST]" },
    { "llama2-sys-bos",
      "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you "
      "[/INST]   I am an assistant   </s><s>[INST] Another question [/INST]" },
    { "llama2-sys-strip",
      "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
      "[/INST]I am an assistant</s>[INST] Another question [/INST]" },
    { "mistral-v1",
      " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an "
      "assistant   </s> [INST] Another question [/INST]" },
    { "mistral-v3",
      "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
      "assistant</s>[INST] Another question[/INST]" },
    { "mistral-v3-tekken",
      "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
      "assistant   </s>[INST]Another question[/INST]" },
    { "mistral-v7",
      "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who "
      "are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]" },
    { "mistral-v7-tekken",
      "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]Hello[/INST]Hi there</s>[INST]Who are "
      "you[/INST]   I am an assistant   </s>[INST]Another question[/INST]" },
    { "phi3",
      "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
      "<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother "
      "question<|end|>\n<|assistant|>\n" },
    { "phi4",
      "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello"
      "<|im_end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you"
      "<|im_end|><|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|><|im_start|>user<|im_sep|>"
      "Another question<|im_end|><|im_start|>assistant<|im_sep|>" },
    { "falcon3",
      "<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n<|assistant|>\nHi there\n<|user|>\nWho are "
      "you\n<|assistant|>\n   I am an assistant   \n<|user|>\nAnother question\n<|assistant|>\n" },
    { "glmedge",
      "<|system|>\nYou are a helpful assistant<|user|>\nHello<|assistant|>\nHi there<|user|>\nWho are you"
      "<|assistant|>\n   I am an assistant   <|user|>\nAnother question<|assistant|>" },
    { "zephyr",
      "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi "
      "there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an assistant   "
      "<|endoftext|>\n<|user|>\nAnother question<|endoftext|>\n<|assistant|>\n" },
    { "gemma",
      "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there"
      "<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant"
      "<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n" },
    { "llama3",
      "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>"
      "user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there"
      "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant"
      "<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother "
      "question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
};
#define N_FORMAT_ROWS (sizeof format_rows / sizeof format_rows[0])

/* Formats into a malloc'd string, checking the sizing call against the writing call. */
static char *format(enum ae_chat_template t, const struct ae_chat_message *m, size_t n, bool add)
{
    size_t len = ae_chat_format(t, m, n, add, NULL, 0);
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(ae_chat_format(t, m, n, add, buf, len + 1), len);
    ck_assert_uint_eq(strlen(buf), len);
    return buf;
}

static enum ae_chat_template by_name(const char *name)
{
    enum ae_chat_template t;
    ae_error err = { { 0 } };
    ck_assert_msg(ae_chat_template_from_name(name, &t, &err) == 0, "%s: %s", name, err.msg);
    return t;
}

START_TEST(test_format_families)
{
    ck_assert_uint_eq(N_FORMAT_ROWS, AE_CHAT_TEMPLATE_COUNT); /* every family has a row */
    for (size_t r = 0; r < N_FORMAT_ROWS; r++) {
        enum ae_chat_template t = by_name(format_rows[r].name);
        ck_assert_str_eq(ae_chat_template_name(t), format_rows[r].name);
        char *got = format(t, conversation, N_CONVERSATION, true);
        ck_assert_msg(strcmp(got, format_rows[r].expect) == 0, "%s:\n got: '%s'\nwant: '%s'", format_rows[r].name,
                      got, format_rows[r].expect);
        free(got);
    }
}
END_TEST

/* Without the assistant prompt: the families that add one drop exactly it, the others are unchanged. */
START_TEST(test_format_no_assistant_prompt)
{
    static const struct { const char *name; const char *suffix; } rows[] = {
        { "chatml", "<|im_start|>assistant\n" },
        { "phi3", "<|assistant|>\n" },
        { "phi4", "<|im_start|>assistant<|im_sep|>" },
        { "falcon3", "<|assistant|>\n" },
        { "glmedge", "<|assistant|>" },
        { "zephyr", "<|assistant|>\n" },
        { "gemma", "<start_of_turn>model\n" },
        { "llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n" },
        { "llama2", "" },
        { "llama2-sys-bos", "" },
        { "mistral-v1", "" },
        { "mistral-v3", "" },
        { "mistral-v7", "" },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        enum ae_chat_template t = by_name(rows[r].name);
        char *with = format(t, conversation, N_CONVERSATION, true);
        char *without = format(t, conversation, N_CONVERSATION, false);
        size_t ls = strlen(rows[r].suffix), lw = strlen(with);
        ck_assert_msg(lw >= ls && strcmp(with + lw - ls, rows[r].suffix) == 0, "%s: no suffix", rows[r].name);
        ck_assert_msg(strlen(without) == lw - ls && strncmp(with, without, lw - ls) == 0, "%s: '%s'",
                      rows[r].name, without);
        free(with);
        free(without);
    }
}
END_TEST

/* Smaller conversations, where the families' special cases show. */
START_TEST(test_format_edge_cases)
{
    static const struct ae_chat_message one_user[] = { { "user", "  Hi  " } };
    static const struct ae_chat_message sys_model_user[] = {
        { "system", " Be brief. " }, { "assistant", "Sure." }, { "system", "\tNo lists." }, { "user", "Go" },
    };
    static const struct ae_chat_message empty_sys[] = { { "system", " \n " }, { "user", "Go" } };
    static const struct ae_chat_message answered[] = {
        { "user", "Q" }, { "assistant", "A" },
    };
    static const struct ae_chat_message utf8[] = { { "user", "Grüße, 世界 🎉" } };
    static const struct {
        const char *name;
        const struct ae_chat_message *m;
        size_t n;
        bool add;
        const char *expect;
    } rows[] = {
        { "chatml", one_user, 1, true, "<|im_start|>user\n  Hi  <|im_end|>\n<|im_start|>assistant\n" },
        { "llama3", one_user, 1, true,
          "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
        { "gemma", one_user, 1, false, "<start_of_turn>user\nHi<end_of_turn>\n" },
        /* gemma holds system text over a model turn and joins consecutive ones without a separator */
        { "gemma", sys_model_user, 4, true,
          "<start_of_turn>model\nSure.<end_of_turn>\n<start_of_turn>user\nBe brief.No lists.\n\nGo<end_of_turn>\n"
          "<start_of_turn>model\n" },
        { "gemma", empty_sys, 2, false, "<start_of_turn>user\nGo<end_of_turn>\n" },
        { "llama2", one_user, 1, true, "[INST]   Hi   [/INST]" },
        { "llama2-sys-strip", one_user, 1, true, "[INST] Hi [/INST]" },
        { "llama2-sys-bos", answered, 2, true, "[INST] Q [/INST]A</s>" },
        { "mistral-v1", answered, 2, true, " [INST] Q [/INST] A</s>" },
        { "mistral-v3", one_user, 1, true, "[INST]   Hi  [/INST]" },
        { "mistral-v7", answered, 2, true, "[INST] Q[/INST] A</s>" },
        { "phi3", utf8, 1, true, "<|user|>\nGrüße, 世界 🎉<|end|>\n<|assistant|>\n" },
        { "zephyr", NULL, 0, true, "<|assistant|>\n" },
        { "llama2", NULL, 0, true, "[INST] " },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char *got = format(by_name(rows[r].name), rows[r].m, rows[r].n, rows[r].add);
        ck_assert_msg(strcmp(got, rows[r].expect) == 0, "row %zu (%s):\n got: '%s'\nwant: '%s'", r, rows[r].name,
                      got, rows[r].expect);
        free(got);
    }
}
END_TEST

START_TEST(test_format_truncates)
{
    enum ae_chat_template t = by_name("chatml");
    char *full = format(t, conversation, N_CONVERSATION, true);
    size_t len = strlen(full);
    for (size_t cap = 1; cap <= len + 2; cap += 7) {
        char buf[1024];
        memset(buf, 'X', sizeof buf);
        ck_assert_uint_eq(ae_chat_format(t, conversation, N_CONVERSATION, true, buf, cap), len);
        size_t want = cap - 1 < len ? cap - 1 : len;
        ck_assert_uint_eq(strlen(buf), want);
        ck_assert_int_eq(strncmp(buf, full, want), 0);
        ck_assert_int_eq(buf[want + 1], 'X'); /* nothing written past the NUL */
    }
    free(full);
}
END_TEST

/* ---- Names and detection -------------------------------------------------------------------------- */

START_TEST(test_names)
{
    const char *names = ae_chat_template_names();
    for (int t = 0; t < AE_CHAT_TEMPLATE_COUNT; t++) {
        const char *name = ae_chat_template_name((enum ae_chat_template)t);
        ck_assert_int_eq(by_name(name), t);
        ck_assert_ptr_nonnull(strstr(names, name));
    }
    ck_assert_str_eq(names + strlen(names) - strlen("llama3"), "llama3"); /* no trailing separator */
    ck_assert_int_eq(strncmp(names, "chatml, llama2, ", 16), 0);

    static const char *const bad[] = { "", "ChatML", "llama-3", "monarch", "chatml " };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum ae_chat_template t = AE_CHAT_GEMMA;
        ae_error err = { { 0 } };
        ck_assert_int_eq(ae_chat_template_from_name(bad[i], &t, &err), -1);
        ck_assert_int_eq(t, AE_CHAT_GEMMA); /* untouched */
        ck_assert_msg(strstr(err.msg, "unknown chat template") && strstr(err.msg, "chatml, llama2") &&
                          strstr(err.msg, "llama3"), "'%s': %s", bad[i], err.msg);
    }
}
END_TEST

/* Templates as models ship them, and the family llama.cpp finds in each. */
static const struct {
    const char *model;
    const char *text;
    const char *family;
} detect_rows[] = {
    { "teknium/OpenHermes-2.5-Mistral-7B",
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
      "+ '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      "chatml" },
    { "Qwen/Qwen2-7B-Instruct",
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
      "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>"
      "assistant\n' }}{% endif %}",
      "chatml" },
    { "mistralai/Mistral-7B-Instruct-v0.2",
      "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] "
      "== 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
      "roles are supported!') }}{% endif %}{% endfor %}",
      "llama2" },
    { "meta-llama/Llama-2-7b-chat-hf",
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
      "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
      "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
      "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
      "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
      "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
      "llama2-sys-strip" },
    { "TheBloke/FusionNet_34Bx2_MoE-AWQ",
      "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- if idx > 1 -%}"
      "\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- else -%}\n{{- "
      "messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n"
      "{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] "
      "== 'assistant' -%}\n{{- ' '  + messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}",
      "llama2-sys-bos" },
    { "a Llama 2 template with a system block and no stripping",
      "{% for message in messages %}{% if message['role'] == 'system' %}{{ '[INST] <<SYS>>\\n' + message['content'] "
      "+ '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'user' %}{{ message['content'] + ' [/INST]' }}{% else %}"
      "{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
      "llama2-sys" },
    { "mistralai/Mistral-7B-Instruct-v0.2 (mistral's v1 template with a system prompt)",
      "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    "
      "{%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}"
      "\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message['role'] == 'user' %}\n        "
      "{%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + "
      "'\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + "
      "message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n"
      "        {{- ' ' + message['content'] + eos_token}}\n    {%- endif %}\n{%- endfor %}\n",
      "mistral-v1" },
    { "mistralai/Mistral-Large-Instruct-2407 (v3)",
      "{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        "
      "{%- if tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS] [\" }}\n"
      "            {{- \"[/AVAILABLE_TOOLS]\" }}\n        {%- endif %}\n        {%- if loop.last and system_message "
      "is defined %}\n            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}"
      "\n        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}"
      "\n    {%- elif message[\"role\"] == \"assistant\" %}\n        {{- \" \" + message[\"content\"]|trim + "
      "eos_token}}\n    {%- endif %}\n{%- endfor %}\n",
      "mistral-v3" },
    { "mistralai/Mistral-Nemo-Instruct-2407 (v3-tekken)",
      "{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        "
      "{%- if tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS][\" }}\n"
      "            {{- \"[/AVAILABLE_TOOLS]\" }}\n        {%- endif %}\n        {%- if loop.last and system_message "
      "is defined %}\n            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}"
      "\n        {%- else %}\n            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}"
      "\n    {%- elif message[\"role\"] == \"assistant\" %}\n        {{- message[\"content\"] + eos_token}}\n    "
      "{%- endif %}\n{%- endfor %}\n",
      "mistral-v3-tekken" },
    { "mistralai/Mistral-Large-Instruct-2411 (v7)",
      "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
      "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + "
      "message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + "
      "message['content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and assistant roles are "
      "supported!') }}{% endif %}{% endfor %}",
      "mistral-v7" },
    { "microsoft/Phi-3-mini-4k-instruct",
      "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
      "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}"
      "{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
      "phi3" },
    { "microsoft/Phi-3-vision-128k-instruct",
      "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
      "{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}"
      "{% endif %}",
      "phi3" },
    { "microsoft/phi-4",
      "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
      "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
      "message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') %}"
      "{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}",
      "phi4" },
    { "a Falcon 3 template (turns end with a literal </s>)",
      "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + "
      "'\\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif "
      "message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '</s>\\n' }}{% endif %}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
      "falcon3" },
    { "THUDM/glm-edge-1.5b-chat",
      "{% for item in messages %}{% if item['role'] == 'system' %}<|system|>\n{{ item['content'] }}{% elif "
      "item['role'] == 'user' %}<|user|>\n{{ item['content'] }}{% elif item['role'] == 'assistant' %}<|assistant|>\n"
      "{{ item['content'] }}{% endif %}{% endfor %}<|assistant|>",
      "glmedge" },
    /* HuggingFaceH4/zephyr-7b-beta and stablelm-2-zephyr spell <|assistant|> and end turns with
     * eos_token: llama.cpp's detection calls that glmedge, and so does Aether (--chat-template zephyr
     * gives the zephyr format). */
    { "HuggingFaceH4/zephyr-7b-beta",
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
      "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
      "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
      "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
      "glmedge" },
    { "a zephyr template with the <|endoftext|> end marker written out",
      "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + "
      "'<|endoftext|>\n' }}{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|endoftext|>\n' }}"
      "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|' + 'assistant' + '|>\n' }}{% endif %}",
      "zephyr" },
    { "google/gemma-7b-it",
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
      "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
      "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
      "gemma" },
    { "meta-llama/Meta-Llama-3-8B-Instruct",
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
      "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
      "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
      "llama3" },
    { "meta-llama/Llama-3.1-8B-Instruct (abridged)",
      "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n"
      "{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{%- if builtin_tools is defined or "
      "tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n{{- \"Cutting Knowledge Date: "
      "December 2023\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}\n    "
      "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
      "'<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant"
      "<|end_header_id|>\\n\\n' }}\n{%- endif %}\n",
      "llama3" },
    { "a template that is a family name", "gemma", "gemma" },
    { "another", "mistral-v7-tekken", "mistral-v7-tekken" },
};

START_TEST(test_detect)
{
    for (size_t r = 0; r < sizeof detect_rows / sizeof detect_rows[0]; r++) {
        enum ae_chat_template t = AE_CHAT_TEMPLATE_COUNT;
        ae_error err = { { 0 } };
        const char *text = detect_rows[r].text;
        ck_assert_msg(ae_chat_template_detect(text, strlen(text), &t, &err) == 0, "%s: %s", detect_rows[r].model,
                      err.msg);
        ck_assert_msg(strcmp(ae_chat_template_name(t), detect_rows[r].family) == 0, "%s: detected %s, expected %s",
                      detect_rows[r].model, ae_chat_template_name(t), detect_rows[r].family);
    }

    /* The length bounds the text: a family name followed by more bytes is not that name. */
    enum ae_chat_template t;
    ck_assert_int_eq(ae_chat_template_detect("chatml", 4, &t, NULL), -1);
    ck_assert_int_eq(ae_chat_template_detect("<|im_start|>", 12, &t, NULL), 0);
    ck_assert_int_eq(t, AE_CHAT_CHATML);
    ck_assert_int_eq(ae_chat_template_detect("<|im_start|>", 11, &t, NULL), -1);
}
END_TEST

START_TEST(test_detect_errors)
{
    static const struct { const char *what; const char *text; const char *expect; } rows[] = {
        { "garbage", "INVALID TEMPLATE", "matches no supported family" },
        { "empty", "", "matches no supported family" },
        { "a bare loop", "{% for message in messages %}{{ message['content'] }}{% endfor %}",
          "matches no supported family" },
        { "deepseek-ai/DeepSeek-V3",
          "{% for message in messages %}{% if message['role'] == 'user' %}{{'<｜User｜>' + message['content']}}"
          "{% endif %}{% endfor %}{% if add_generation_prompt %}{{'<｜Assistant｜>'}}{% endif %}",
          "matches no supported family" },
        { "mlabonne/AlphaMonarch-7B",
          "{% for message in messages %}{{bos_token + message['role'] + '\\n' + message['content'] + eos_token + "
          "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ bos_token + 'assistant\\n' }}{% endif %}",
          "'monarch' family" },
        { "CohereForAI/c4ai-command-r-plus",
          "{{ bos_token }}{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ "
          "'<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% endif %}"
          "{% endfor %}",
          "'command-r' family" },
        { "eachadea/vicuna-13b-1.1",
          "{%- for message in messages %}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + "
          "'\n'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n' -}}{%- endif -%}{%- endfor -%}",
          "'vicuna' family" },
        { "THUDM/glm-4-9b-chat",
          "[gMASK]<sop>{% for item in messages %}{% if item['content'] %}<|{{ item['role'] }}|>{{ item['metadata'] }}"
          "\n{{ item['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
          "'chatglm4' family" },
        { "HuggingFaceTB/SmolVLM-Instruct",
          "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}: {{ message['content'] }}"
          "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
          "'smolvlm' family" },
        { "a family name Aether does not format", "openchat", "'openchat' family" },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        enum ae_chat_template t = AE_CHAT_GEMMA;
        ae_error err = { { 0 } };
        ck_assert_msg(ae_chat_template_detect(rows[r].text, strlen(rows[r].text), &t, &err) == -1, "%s: accepted",
                      rows[r].what);
        ck_assert_int_eq(t, AE_CHAT_GEMMA);
        ck_assert_msg(strstr(err.msg, rows[r].expect) != NULL, "%s: '%s' lacks '%s'", rows[r].what, err.msg,
                      rows[r].expect);
        ck_assert_msg(strstr(err.msg, "--chat-template") && strstr(err.msg, ae_chat_template_names()),
                      "%s: '%s' does not list the names", rows[r].what, err.msg);
    }
}
END_TEST

/* ---- From a GGUF file ----------------------------------------------------------------------------- */

/* A GGUF image in memory with one metadata key (none when key is NULL). */
static void *make_gguf(const char *key, const char *str_value, uint32_t u32_value, size_t *size)
{
    ae_gguf_writer *w = ae_gguf_writer_create();
    ck_assert_ptr_nonnull(w);
    ae_gguf_writer_add_str(w, "general.architecture", "llama");
    if (key && str_value)
        ae_gguf_writer_add_str(w, key, str_value);
    else if (key)
        ae_gguf_writer_add_u32(w, key, u32_value);
    char *data = NULL;
    FILE *f = open_memstream(&data, size);
    ck_assert_ptr_nonnull(f);
    ae_error err = { { 0 } };
    ck_assert_msg(ae_gguf_writer_write(w, f, NULL, NULL, &err) == 0, "%s", err.msg);
    fclose(f);
    ae_gguf_writer_destroy(w);
    return data;
}

/* Opens a made-up file and asks for its template; returns the result of ae_chat_template_from_gguf. */
static int template_of(const char *key, const char *str_value, uint32_t u32_value, const char *override,
                       enum ae_chat_template *t, ae_error *err)
{
    size_t size;
    void *data = make_gguf(key, str_value, u32_value, &size);
    ae_gguf *g = NULL;
    ck_assert_msg(ae_gguf_open_memory(&g, data, size, "made.gguf", err) == 0, "%s", err->msg);
    int r = ae_chat_template_from_gguf(g, override, t, err);
    ae_gguf_close(g);
    free(data);
    return r;
}

START_TEST(test_from_gguf)
{
    enum ae_chat_template t;
    ae_error err = { { 0 } };
    const char *llama3 = detect_rows[19].text;
    ck_assert_str_eq(detect_rows[19].family, "llama3");

    ck_assert_int_eq(template_of("tokenizer.chat_template", llama3, 0, NULL, &t, &err), 0);
    ck_assert_int_eq(t, AE_CHAT_LLAMA3);
    ck_assert_int_eq(template_of("tokenizer.chat_template", llama3, 0, "gemma", &t, &err), 0);
    ck_assert_int_eq(t, AE_CHAT_GEMMA); /* the override wins */
    ck_assert_int_eq(template_of(NULL, NULL, 0, NULL, &t, &err), 0);
    ck_assert_int_eq(t, AE_CHAT_CHATML); /* no template: llama.cpp's default */

    t = AE_CHAT_GEMMA;
    ck_assert_int_eq(template_of("tokenizer.chat_template", "{{ messages }}", 0, NULL, &t, &err), -1);
    ck_assert_int_eq(t, AE_CHAT_GEMMA);
    ck_assert_msg(strstr(err.msg, "made.gguf") && strstr(err.msg, "tokenizer.chat_template") &&
                      strstr(err.msg, "--chat-template"), "%s", err.msg);
    ck_assert_int_eq(template_of("tokenizer.chat_template", NULL, 7, NULL, &t, &err), -1);
    ck_assert_msg(strstr(err.msg, "tokenizer.chat_template") && strstr(err.msg, "string"), "%s", err.msg);
    ck_assert_int_eq(template_of("tokenizer.chat_template", llama3, 0, "nonsense", &t, &err), -1);
    ck_assert_msg(strstr(err.msg, "nonsense") && strstr(err.msg, "chatml"), "%s", err.msg);

    /* A real model without a template. */
    ae_gguf *g = NULL;
    ck_assert_msg(ae_gguf_open(&g, test_shared_path("models/stories260K.gguf"), &err) == 0, "%s", err.msg);
    t = AE_CHAT_GEMMA;
    ck_assert_int_eq(ae_chat_template_from_gguf(g, NULL, &t, &err), 0);
    ck_assert_int_eq(t, AE_CHAT_CHATML);
    ae_gguf_close(g);
}
END_TEST

/* ---- UTF-8 stream --------------------------------------------------------------------------------- */

struct sink_buf {
    char text[8192];
    size_t len;
    int calls;
};

static void sink_collect(void *ctx, const char *text, size_t len)
{
    struct sink_buf *b = ctx;
    ck_assert_uint_gt(len, 0);
    ck_assert_msg(ae_utf8_valid(text, len), "sink got invalid UTF-8");
    ck_assert_uint_lt(b->len + len, sizeof b->text);
    memcpy(b->text + b->len, text, len);
    b->len += len;
    b->text[b->len] = '\0';
    b->calls++;
}

static ae_utf8_stream *make_stream(const char *const *stops, size_t n, struct sink_buf *b)
{
    memset(b, 0, sizeof *b);
    ae_utf8_stream *u = NULL;
    ae_error err = { { 0 } };
    ck_assert_msg(ae_utf8_stream_create(&u, stops, n, sink_collect, b, &err) == 0, "%s", err.msg);
    return u;
}

START_TEST(test_utf8_valid)
{
    static const struct { const char *s; bool ok; } rows[] = {
        { "", true }, { "abc", true }, { "h\xc3\xa9", true }, { "\xe6\x97\xa5", true }, { "\xf0\x9f\x8e\x89", true },
        { "\xef\xbf\xbd", true }, { "\xf4\x8f\xbf\xbf", true }, { "\xed\x9f\xbf", true },
        { "\x80", false }, { "\xc3", false }, { "\xc0\xaf", false }, { "\xc1\xbf", false },
        { "\xe0\x80\xaf", false }, { "\xed\xa0\x80", false }, { "\xf0\x8f\xbf\xbf", false },
        { "\xf4\x90\x80\x80", false }, { "\xf5\x80\x80\x80", false }, { "\xff", false }, { "\xe6\x97", false },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        ck_assert_msg(ae_utf8_valid(rows[r].s, strlen(rows[r].s)) == rows[r].ok, "row %zu", r);
}
END_TEST

START_TEST(test_utf8_split_characters)
{
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89!";
    const size_t n = strlen(text);
    struct sink_buf b;
    ae_utf8_stream *u = make_stream(NULL, 0, &b);

    /* Byte by byte: nothing comes out until a character is whole. */
    for (size_t i = 0; i < n; i++) {
        size_t before = b.len;
        ck_assert_int_eq(ae_utf8_stream_push(u, text + i, 1), 0);
        const bool last_of_char = i + 1 == n || ((unsigned char)text[i + 1] & 0xC0) != 0x80;
        if (last_of_char)
            ck_assert_uint_gt(b.len, before);
        else
            ck_assert_uint_eq(b.len, before);
    }
    ck_assert_int_eq(ae_utf8_stream_flush(u), 0);
    ck_assert_str_eq(b.text, text);

    /* Every split of the text into two pieces gives it back whole. */
    for (size_t cut = 0; cut <= n; cut++) {
        ae_utf8_stream_reset(u);
        memset(&b, 0, sizeof b);
        ae_utf8_stream_push(u, text, cut);
        ae_utf8_stream_push(u, text + cut, n - cut);
        ae_utf8_stream_flush(u);
        ck_assert_str_eq(b.text, text);
    }
    ae_utf8_stream_destroy(u);
}
END_TEST

START_TEST(test_utf8_invalid_bytes)
{
#define FFFD "\xef\xbf\xbd"
    static const struct { const char *in; const char *out; } rows[] = {
        { "\x80", FFFD },
        { "a\xff" "b", "a" FFFD "b" },
        { "\xe6\x97", FFFD },                        /* cut short: one U+FFFD at the flush */
        { "\xe6\x97" "a", FFFD "a" },
        { "\xf0\x9f\x98" "x\xf0\x9f\x98", FFFD "x" FFFD },
        { "\xc0\xaf", FFFD FFFD },                   /* overlong lead, then a stray continuation */
        { "\xe0\x80\x80", FFFD FFFD FFFD },          /* overlong three-byte form */
        { "\xed\xa0\x80", FFFD FFFD FFFD },          /* a surrogate */
        { "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD }, /* past U+10FFFF */
        { "\xc3\xa9\xa9", "\xc3\xa9" FFFD },
        { "\xe6\x97\xa5\x80\xe6", "\xe6\x97\xa5" FFFD FFFD },
    };
#undef FFFD
    struct sink_buf b;
    ae_utf8_stream *u = make_stream(NULL, 0, &b);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            ae_utf8_stream_reset(u);
            memset(&b, 0, sizeof b);
            const size_t n = strlen(rows[r].in);
            if (bytewise)
                for (size_t i = 0; i < n; i++)
                    ae_utf8_stream_push(u, rows[r].in + i, 1);
            else
                ae_utf8_stream_push(u, rows[r].in, n);
            ae_utf8_stream_flush(u);
            ck_assert_msg(strcmp(b.text, rows[r].out) == 0, "row %zu%s", r, bytewise ? " (byte by byte)" : "");
        }
    }
    ae_utf8_stream_destroy(u);
}
END_TEST

/* Pieces pushed one by one; the output after each push and at the end. */
START_TEST(test_utf8_stop_strings)
{
    static const struct {
        const char *stops[3];
        const char *pieces[8];
        const char *after[8];    /* sink text after each push */
        const char *final;       /* after the flush */
        int stop_index;
    } rows[] = {
        { { "</s>", "\nUser:" }, { "Hello", " wor", "ld<", "/", "s>", "more" },
          { "Hello", "Hello wor", "Hello world", "Hello world", "Hello world", "Hello world" }, "Hello world", 0 },
        { { "</s>", "\nUser:" }, { "a<", "b" }, { "a", "a<b" }, "a<b", -1 },
        { { "</s>", "\nUser:" }, { "ok\nUs", "er", ": hi" }, { "ok", "ok", "ok" }, "ok", 1 },
        { { "</s>" }, { "abc</" }, { "abc" }, "abc</", -1 },          /* held text comes out at the end */
        { { "</s>" }, { "</s>" }, { "" }, "", 0 },
        { { "aab" }, { "a", "a", "a", "b" }, { "", "", "a", "a" }, "a", 0 },
        { { "ab", "abc" }, { "xa", "bc" }, { "x", "x" }, "x", 0 },     /* the first to complete wins */
        { { "bc", "abcd" }, { "ab", "ce" }, { "", "a" }, "a", 0 },
        { { "b", "ab" }, { "xab" }, { "x" }, "x", 1 },                /* two end together: the longer wins */
        { { "\xe6\x97\xa5\xe6\x9c\xac" }, { "x\xe6", "\x97\xa5", "\xe6\x9c", "\xac", "y" },
          { "x", "x", "x", "x", "x" }, "x", 0 },                       /* 日本, split inside characters */
        { { "\xe6\x97\xa5\xe6\x9c\xac" }, { "\xe6\x97\xa5\xe6", "\x97\xa5" }, { "", "\xe6\x97\xa5" },
          "\xe6\x97\xa5\xe6\x97\xa5", -1 },        /* 日日: the second 日 may start 日本 until the end */
        { { "STOP" }, { "no stop here" }, { "no stop here" }, "no stop here", -1 },
        { { "\xef\xbf\xbd!" }, { "a\xe6", "!" }, { "a", "a" }, "a", 0 }, /* a replaced byte can complete a stop */
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        size_t n_stops = 0;
        while (n_stops < 3 && rows[r].stops[n_stops])
            n_stops++;
        struct sink_buf b;
        ae_utf8_stream *u = make_stream(rows[r].stops, n_stops, &b);
        bool stopped = false;
        for (int i = 0; i < 8 && rows[r].pieces[i]; i++) {
            int ret = ae_utf8_stream_push(u, rows[r].pieces[i], strlen(rows[r].pieces[i]));
            stopped = stopped || ret;
            ck_assert_int_eq(ret, stopped);
            ck_assert_msg(strcmp(b.text, rows[r].after[i]) == 0, "row %zu piece %d: '%s', expected '%s'", r, i,
                          b.text, rows[r].after[i]);
        }
        ck_assert_int_eq(ae_utf8_stream_flush(u), rows[r].stop_index >= 0);
        ck_assert_msg(strcmp(b.text, rows[r].final) == 0, "row %zu final: '%s', expected '%s'", r, b.text,
                      rows[r].final);
        ck_assert_int_eq(ae_utf8_stream_stop_index(u), rows[r].stop_index);

        /* Reset starts over. */
        ae_utf8_stream_reset(u);
        memset(&b, 0, sizeof b);
        ck_assert_int_eq(ae_utf8_stream_push(u, "fresh", 5), 0);
        ck_assert_int_eq(ae_utf8_stream_stop_index(u), -1);
        ae_utf8_stream_flush(u);
        ck_assert_str_eq(b.text, "fresh");
        ae_utf8_stream_destroy(u);
    }
}
END_TEST

START_TEST(test_utf8_long_text)
{
    static const char *const stops[] = { "<|im_end|>" };
    static char text[3000];
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = (char)('a' + i % 26);
    struct sink_buf b;
    ae_utf8_stream *u = make_stream(stops, 1, &b);
    ck_assert_int_eq(ae_utf8_stream_push(u, text, sizeof text - 1), 0);
    ck_assert_str_eq(b.text, text);
    ck_assert_int_eq(ae_utf8_stream_push(u, "<|im_e", 6), 0);
    ck_assert_int_eq(ae_utf8_stream_push(u, "nd|>tail", 8), 1);
    ck_assert_str_eq(b.text, text);
    ae_utf8_stream_destroy(u);
}
END_TEST

START_TEST(test_utf8_bad_stops)
{
    static const char *const empty[] = { "ok", "" };
    static const char *const invalid[] = { "a\xe6" };
    ae_utf8_stream *u = NULL;
    ae_error err = { { 0 } };
    struct sink_buf b;
    ck_assert_int_eq(ae_utf8_stream_create(&u, empty, 2, sink_collect, &b, &err), -1);
    ck_assert_ptr_null(u);
    ck_assert_msg(strstr(err.msg, "stop string 1") && strstr(err.msg, "empty"), "%s", err.msg);
    ck_assert_int_eq(ae_utf8_stream_create(&u, invalid, 1, sink_collect, &b, &err), -1);
    ck_assert_ptr_null(u);
    ck_assert_msg(strstr(err.msg, "stop string 0") && strstr(err.msg, "UTF-8"), "%s", err.msg);
}
END_TEST

/* ---- Suite ---------------------------------------------------------------------------------------- */

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("templates");
    tcase_add_test(tc, test_format_families);
    tcase_add_test(tc, test_format_no_assistant_prompt);
    tcase_add_test(tc, test_format_edge_cases);
    tcase_add_test(tc, test_format_truncates);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_detect);
    tcase_add_test(tc, test_detect_errors);
    tcase_add_test(tc, test_from_gguf);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("utf8");
    tcase_add_test(tu, test_utf8_valid);
    tcase_add_test(tu, test_utf8_split_characters);
    tcase_add_test(tu, test_utf8_invalid_bytes);
    tcase_add_test(tu, test_utf8_stop_strings);
    tcase_add_test(tu, test_utf8_long_text);
    tcase_add_test(tu, test_utf8_bad_stops);
    suite_add_tcase(s, tu);
    return s;
}

int main(void)
{
    return test_run_suite(chat_suite());
}
