/* Templates (template.h): finding a snippet and filling its placeholders. */
#include "template.h"

#include <ctype.h>
#include <string.h>

#define MARK "//@ "

/* The start of the line after p's line, or the end of the text. */
static const char *next_line(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

/* The snippet called name: *len bytes from the returned pointer, or NULL. */
static const char *find(const char *text, const char *name, size_t *len)
{
    size_t mark = strlen(MARK), name_len = strlen(name);
    for (const char *p = text; *p; p = next_line(p)) {
        if (strncmp(p, MARK, mark) != 0 || strncmp(p + mark, name, name_len) != 0 ||
            (p[mark + name_len] != '\n' && p[mark + name_len] != 0))
            continue;
        const char *start = next_line(p), *end = start;
        while (*end && strncmp(end, MARK, mark) != 0)
            end = next_line(end);
        while (end - start >= 2 && end[-1] == '\n' && end[-2] == '\n')
            end--; /* the blank lines before the next snippet separate, they belong to neither */
        *len = (size_t)(end - start);
        return start;
    }
    return NULL;
}

bool tmpl_has(const char *text, const char *name)
{
    size_t len;
    return find(text, name, &len) != NULL;
}

static bool is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

int tmpl_write(FILE *f, const char *text, const char *name, const struct tmpl_arg *args, uint32_t n_args,
               ae_error *err)
{
    size_t len;
    const char *s = find(text, name, &len);
    if (!s)
        return ae_fail(err, "no template snippet '%s'", name);
    const char *end = s + len;
    while (s < end) {
        const char *d = memchr(s, '$', (size_t)(end - s));
        if (!d) {
            fwrite(s, 1, (size_t)(end - s), f);
            break;
        }
        fwrite(s, 1, (size_t)(d - s), f);
        const char *w = d + 1;
        while (w < end && is_word(*w))
            w++;
        size_t wl = (size_t)(w - d - 1);
        uint32_t i = 0;
        while (i < n_args && !(strlen(args[i].name) == wl && memcmp(args[i].name, d + 1, wl) == 0))
            i++;
        if (i == n_args)
            return ae_fail(err, "template snippet '%s': no value for $%.*s", name, (int)wl, d + 1);
        fputs(args[i].value, f);
        s = w;
    }
    return 0;
}
