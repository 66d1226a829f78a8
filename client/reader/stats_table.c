/*
 * The tables of `steptrace stats` (stats.h): its lines and its
 * functions, slowest first, in columns as wide as their widest cell,
 * times in milliseconds rounded as the log's Runtime lines are.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

static int
stats_cmp_line(const void *x, const void *y)
{
    const struct stats_line *a = *(const struct stats_line *const *)x;
    const struct stats_line *b = *(const struct stats_line *const *)y;
    int r;

    if (a->ns != b->ns)
        return a->ns > b->ns ? -1 : 1;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    r = strcmp(a->file, b->file);
    if (r != 0)
        return r;
    return a->line < b->line ? -1 : a->line > b->line;
}

static int
stats_cmp_func(const void *x, const void *y)
{
    const struct stats_func *a = *(const struct stats_func *const *)x;
    const struct stats_func *b = *(const struct stats_func *const *)y;
    int r;

    if (a->ns != b->ns)
        return a->ns > b->ns ? -1 : 1;
    if (a->calls != b->calls)
        return a->calls > b->calls ? -1 : 1;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    r = strcmp(a->file, b->file);
    return r != 0 ? r : strcmp(a->func, b->func);
}

/* ns as milliseconds with 4 decimals, rounded half up to 0.1 us as the
 * log's Runtime lines are (common/record.c). */
static void
stats_ms(char *buf, size_t n, uint64_t ns)
{
    uint64_t tenths = ns / 100 + (ns % 100 >= 50);

    snprintf(buf, n, "%llu.%04llu", (unsigned long long)(tenths / 10000),
             (unsigned long long)(tenths % 10000));
}

/* Appends s padded with spaces to width (right-aligned or left). */
static void
stats_cell(const char *s, size_t width, int right)
{
    size_t n = strlen(s), pad = n < width ? width - n : 0;
    static const char spaces[] = "                                        ";

    if (!right)
        st_buf_append(&rd_out, s, n);
    while (pad > 0) {
        size_t k = pad < sizeof(spaces) - 1 ? pad : sizeof(spaces) - 1;

        st_buf_append(&rd_out, spaces, k);
        pad -= k;
    }
    if (right)
        st_buf_append(&rd_out, s, n);
}

/* The numeric cells of a row: up to 3 columns, then a name and a place. */
#define STATS_NUM 3
#define STATS_CELL 32

struct stats_row {
    char num[STATS_NUM][STATS_CELL];
    const char *func;
    const char *place;
    uint32_t line; /* 0: place alone. */
};

static void
stats_table(const char *const *heads, struct stats_row *rows, size_t n)
{
    size_t w[STATS_NUM + 1], i, k;
    char place[16];

    for (k = 0; k <= STATS_NUM; k++)
        w[k] = strlen(heads[k]);
    for (i = 0; i < n; i++) {
        for (k = 0; k < STATS_NUM; k++)
            if (strlen(rows[i].num[k]) > w[k])
                w[k] = strlen(rows[i].num[k]);
        if (strlen(rows[i].func) > w[STATS_NUM])
            w[STATS_NUM] = strlen(rows[i].func);
    }
    for (k = 0; k < STATS_NUM; k++) {
        stats_cell(heads[k], w[k] + 2, 1);
    }
    st_buf_puts(&rd_out, "  ");
    stats_cell(heads[STATS_NUM], w[STATS_NUM], 0);
    st_buf_puts(&rd_out, "  ");
    st_buf_puts(&rd_out, heads[STATS_NUM + 1]);
    st_buf_puts(&rd_out, "\n");
    for (i = 0; i < n; i++) {
        for (k = 0; k < STATS_NUM; k++)
            stats_cell(rows[i].num[k], w[k] + 2, 1);
        st_buf_puts(&rd_out, "  ");
        stats_cell(rows[i].func, w[STATS_NUM], 0);
        st_buf_puts(&rd_out, "  ");
        st_buf_puts(&rd_out, rows[i].place);
        if (rows[i].line != 0) {
            snprintf(place, sizeof(place), ":%u", rows[i].line);
            st_buf_puts(&rd_out, place);
        }
        st_buf_puts(&rd_out, "\n");
    }
}

int
rd__stats_print(const struct stats_ctx *c, uint64_t top)
{
    static const char *const lhead[] = {"total ms", "mean ms", "hits",
                                        "function", "line"};
    static const char *const fhead[] = {"total ms", "calls", "hits",
                                        "function", "file"};
    size_t nl = top == 0 || top > c->nlines ? c->nlines : (size_t)top;
    size_t nf = top == 0 || top > c->nfuncs ? c->nfuncs : (size_t)top;
    const struct stats_line **ls = malloc((c->nlines + 1) * sizeof(*ls));
    const struct stats_func **fs = malloc((c->nfuncs + 1) * sizeof(*fs));
    struct stats_row *rows = malloc((nl > nf ? nl : nf) * sizeof(*rows) + 1);
    char head[160], total[STATS_CELL];
    size_t i;
    int r = 0;

    if (ls == NULL || fs == NULL || rows == NULL) {
        r = -1;
        goto out;
    }
    for (i = 0; i < c->nlines; i++)
        ls[i] = &c->lines[i];
    for (i = 0; i < c->nfuncs; i++)
        fs[i] = &c->funcs[i];
    qsort(ls, c->nlines, sizeof(*ls), stats_cmp_line);
    qsort(fs, c->nfuncs, sizeof(*fs), stats_cmp_func);
    stats_ms(total, sizeof(total), c->runtime_ns);
    snprintf(head, sizeof(head),
             "Lines, slowest first (%zu of %zu; %llu steps, %s ms in all)\n",
             nl, c->nlines, (unsigned long long)c->steps, total);
    st_buf_puts(&rd_out, head);
    for (i = 0; i < nl; i++) {
        stats_ms(rows[i].num[0], STATS_CELL, ls[i]->ns);
        stats_ms(rows[i].num[1], STATS_CELL,
                 ls[i]->hits ? ls[i]->ns / ls[i]->hits : 0);
        snprintf(rows[i].num[2], STATS_CELL, "%llu",
                 (unsigned long long)ls[i]->hits);
        rows[i].func = ls[i]->func;
        rows[i].place = ls[i]->file;
        rows[i].line = ls[i]->line;
    }
    stats_table(lhead, rows, nl);
    snprintf(head, sizeof(head),
             "\nFunctions, slowest first (%zu of %zu; the time of their "
             "own lines)\n",
             nf, c->nfuncs);
    st_buf_puts(&rd_out, head);
    for (i = 0; i < nf; i++) {
        stats_ms(rows[i].num[0], STATS_CELL, fs[i]->ns);
        snprintf(rows[i].num[1], STATS_CELL, "%llu",
                 (unsigned long long)fs[i]->calls);
        snprintf(rows[i].num[2], STATS_CELL, "%llu",
                 (unsigned long long)fs[i]->hits);
        rows[i].func = fs[i]->func;
        rows[i].place = fs[i]->file;
        rows[i].line = 0;
    }
    stats_table(fhead, rows, nf);
out:
    free(ls);
    free(fs);
    free(rows);
    return r;
}
