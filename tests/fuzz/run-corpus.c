/*
 * A harness without libFuzzer: runs LLVMFuzzerTestOneInput once on each
 * file named, or on each file of each directory named (sorted by name),
 * so that the corpora and the past findings of tests/fuzz/corpus/ run as
 * ordinary tests in every build (tests/fuzz/meson.build; the ASan+UBSan
 * builds of tools/test.sh run them too).  A crash or an invariant that
 * fails aborts, as under libFuzzer; a clean run prints the count.
 */
#include "fuzz.h"

#include <dirent.h>
#include <sys/stat.h>

/* Weak: only some harnesses define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap = cap ? cap * 2 : 4096);

            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int
run_name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* @return the number of files run, or -1. */
static int
run_path(const char *path)
{
    struct dirent **names;
    struct stat st;
    char sub[4096];
    int i, n, count = 0;

    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;
    n = scandir(path, &names, NULL, run_name_cmp);
    if (n < 0) {
        perror(path);
        return -1;
    }
    for (i = 0; i < n; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(sub, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            if (run_file(sub) != 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int
main(int argc, char **argv)
{
    int i, n, total = 0;

    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        n = run_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("%s: %d inputs run\n", argv[0], total);
    return 0;
}
