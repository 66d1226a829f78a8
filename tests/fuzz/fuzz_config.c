/*
 * Config files through the entry points that read them:
 *   - the collector's: st__settings_load (daemon/settings.c, with the
 *     forwarding keys of daemon/fwdconf.c), which `steptraced --config`
 *     calls on the file;
 *   - the package's YAML: st_config_load_file and the walk the agent's
 *     load_yaml() makes of the tree (agent/config_py.c: every scalar
 *     resolved and converted, every mapping key's text, every item), here
 *     without Python objects.
 * The package's TOML files are parsed by Python's tomllib
 * (client/steptrace/config.py), not by C: nothing of ours to fuzz there.
 *
 * Input: byte 0 picks the entry point (bit 0); the rest is the file,
 * which the loaders open by name (/proc/self/fd/N of a memfd).
 */
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "steptrace/config.h"
#include "steptrace/error.h"

#include "settings.h"

/* The walk of config_py_node: what load_yaml() reads of every node. */
static void
config_walk(const struct st_config *cfg, const struct st_config_node *n)
{
    char err[ST_CONFIG_ERRLEN];
    long long iv;
    double dv;
    size_t i, len;
    int bv;

    switch (st_config_kind(n)) {
    case ST_CONFIG_MAPPING:
        for (i = 0; i < st_config_size(n); i++) {
            const struct st_config_node *k = st_config_key(n, i);

            FUZZ_CHECK(k != NULL && st_config_kind(k) == ST_CONFIG_SCALAR);
            const char *t = st_config_text(k, &len);

            FUZZ_CHECK(t != NULL);
            /* A key holding "\0" cannot be looked up by a C string. */
            if (strlen(t) == len)
                FUZZ_CHECK(st_config_lookup(n, t) != NULL);
            config_walk(cfg, st_config_value(n, i));
        }
        FUZZ_CHECK(st_config_key(n, i) == NULL);
        break;
    case ST_CONFIG_SEQUENCE:
        for (i = 0; i < st_config_size(n); i++)
            config_walk(cfg, st_config_item(n, i));
        FUZZ_CHECK(st_config_item(n, i) == NULL);
        break;
    case ST_CONFIG_SCALAR:
        FUZZ_CHECK(st_config_text(n, &len) != NULL);
        switch (st_config_resolve(n)) {
        case ST_CONFIG_BOOL: FUZZ_CHECK(st_config_as_bool(n, &bv) == 0); break;
        case ST_CONFIG_INT: (void)st_config_as_int(n, &iv); break;
        case ST_CONFIG_FLOAT: (void)st_config_as_double(n, &dv); break;
        default: break;
        }
        /* The error text of a node, as load_yaml raises it. */
        st_config_errorf(cfg, n, err, sizeof(err), "%s", "fuzz");
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        break;
    default: FUZZ_CHECK(0);
    }
    FUZZ_CHECK(st_config_line(n) >= 1 && st_config_column(n) >= 1);
}

static void
config_agent(const char *path)
{
    struct st_config *cfg = NULL;
    char err[ST_CONFIG_ERRLEN];
    int rc;

    rc = st_config_load_file(path, NULL, &cfg, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(cfg == NULL && err[0] != '\0');
        FUZZ_CHECK(rc == ST_ECONFIG || rc == ST_ELIMIT || rc == ST_ENOMEM);
        return;
    }
    if (st_config_root(cfg) != NULL)
        config_walk(cfg, st_config_root(cfg));
    st_config_free(cfg);
}

static void
config_collector(const char *path)
{
    struct st_settings set;
    char err[ST_CONFIG_ERRLEN];
    int rc;

    st__settings_init(&set);
    rc = st__settings_load(&set, path, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || err[0] != '\0');
    st__settings_close(&set);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    size_t off = 1;
    int fd;

    if (size < 1)
        return 0;
    fd = memfd_create("fuzz.yaml", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);

        FUZZ_CHECK(w > 0);
        off += (size_t)w;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (data[0] & 1)
        config_collector(path);
    else
        config_agent(path);
    close(fd);
    return 0;
}
