/*
 * Config files: a small YAML loader built on libyaml.
 *
 * st_config_load_file() / st_config_load_string() parse one YAML document
 * into a read-only tree of nodes (mapping, sequence, scalar), each knowing
 * its line and column; st_config_free() releases the whole tree.  The
 * loader is generic: what the keys mean is up to the caller (the agent's
 * Python-facing load_yaml(), the collector's own config).
 *
 * What it accepts, on purpose smaller than YAML:
 *   - one document per file (an empty file is an empty document);
 *   - mapping keys are scalars, each at most once per mapping;
 *   - no aliases (`*name`): they would let a small file expand into a huge
 *     tree.  Anchors (`&name`) are allowed and ignored;
 *   - no explicit tags except `!!str` and `!` (which make a scalar a
 *     string) and `!!map` / `!!seq` on the matching collections;
 *   - limits on file size, nesting depth and node count
 *     (struct st_config_limits).
 *
 * Errors are codes (0 or negative, steptrace/error.h) plus human-readable
 * text written into a caller-supplied buffer of fixed length, always in
 * the form "NAME:LINE:COLUMN: message" (or "NAME: message" when there is
 * no position, e.g. a file that cannot be read), with 1-based LINE and
 * COLUMN.  ST_CONFIG_ERRLEN is a good size for that buffer; longer text is
 * cut, and the buffer is always NUL-terminated when errlen > 0.
 */
#ifndef STEPTRACE_COMMON_CONFIG_H
#define STEPTRACE_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* A good size for the error buffers below (paths can be long). */
#define ST_CONFIG_ERRLEN 1024

/* Default limits (see struct st_config_limits). */
#define ST_CONFIG_MAX_BYTES (1024u * 1024u)
#define ST_CONFIG_MAX_DEPTH 32u
#define ST_CONFIG_MAX_NODES 65536u

/* Limits a load enforces; a field left 0 takes its default above. */
struct st_config_limits {
    size_t max_bytes; /* Largest input, in bytes. */
    size_t max_depth; /* Deepest nesting of mappings and sequences. */
    size_t max_nodes; /* Most nodes (scalars and collections) in total. */
};

enum st_config_kind {
    ST_CONFIG_SCALAR = 1,
    ST_CONFIG_SEQUENCE = 2,
    ST_CONFIG_MAPPING = 3
};

/* How a scalar was written.  Only plain scalars are resolved to null,
 * booleans and numbers (st_config_resolve); the others are strings. */
enum st_config_style {
    ST_CONFIG_PLAIN = 1,  /* foo, 12, true, ~ or nothing at all. */
    ST_CONFIG_QUOTED = 2, /* 'foo' or "foo", or tagged !!str or !. */
    ST_CONFIG_BLOCK = 3   /* A literal (|) or folded (>) block. */
};

/* The type of a scalar under the YAML 1.1 rules st_config_resolve uses. */
enum st_config_type {
    ST_CONFIG_NULL = 1,
    ST_CONFIG_BOOL = 2,
    ST_CONFIG_INT = 3,
    ST_CONFIG_FLOAT = 4,
    ST_CONFIG_STR = 5
};

/* A loaded document (opaque).  Owns every node of its tree. */
struct st_config;

/* One node of the tree (opaque).  Borrowed from its st_config: valid until
 * st_config_free() of that document. */
struct st_config_node;

/*
 * Reads and parses the YAML file at `path`.  `limits` may be NULL for the
 * defaults.  On success *out is a new document, freed with
 * st_config_free().  On failure *out is NULL and `err` holds
 * "PATH:LINE:COLUMN: message" or "PATH: message".
 * @return 0; a negative errno when the file cannot be opened or read
 *         (-ENOENT, -EACCES, -EISDIR, ...); ST_ECONFIG for a YAML syntax
 *         error or a construct this loader refuses; ST_ELIMIT when a
 *         limit is exceeded; ST_ENOMEM.
 */
int st_config_load_file(const char *path,
                        const struct st_config_limits *limits,
                        struct st_config **out, char *err, size_t errlen);

/*
 * Parses `len` bytes of YAML at `text` (need not be NUL-terminated; it is
 * not borrowed past the call).  `name` stands for the file in error
 * messages (e.g. "<string>") and is copied.  Otherwise as
 * st_config_load_file(), without the errno returns.
 */
int st_config_load_string(const char *name, const char *text, size_t len,
                          const struct st_config_limits *limits,
                          struct st_config **out, char *err, size_t errlen);

/* Frees a document and every node of it.  NULL is allowed. */
void st_config_free(struct st_config *cfg);

/* The name errors use for the document (its path).  Borrowed. */
const char *st_config_name(const struct st_config *cfg);

/* The document's top node, or NULL for an empty document (an empty file,
 * or one holding only comments).  Borrowed. */
const struct st_config_node *st_config_root(const struct st_config *cfg);

/* The node's kind: an enum st_config_kind value. */
int st_config_kind(const struct st_config_node *n);

/* A scalar's style (enum st_config_style); 0 for a collection. */
int st_config_style(const struct st_config_node *n);

/* Where the node starts in the file: 1-based line and column. */
unsigned long st_config_line(const struct st_config_node *n);
unsigned long st_config_column(const struct st_config_node *n);

/*
 * A scalar's text (UTF-8, NUL-terminated, borrowed), with its length in
 * *len when len is not NULL (the text may hold NUL bytes written as "\0"
 * in a double-quoted scalar).  NULL for a collection.
 */
const char *st_config_text(const struct st_config_node *n, size_t *len);

/* The number of items of a sequence or of key/value pairs of a mapping;
 * 0 for a scalar. */
size_t st_config_size(const struct st_config_node *n);

/* Item i of a sequence, or NULL when n is not a sequence or i is out of
 * range.  Borrowed. */
const struct st_config_node *st_config_item(const struct st_config_node *n,
                                            size_t i);

/* The key (always a scalar) and the value of pair i of a mapping, in file
 * order, or NULL when n is not a mapping or i is out of range.  Borrowed. */
const struct st_config_node *st_config_key(const struct st_config_node *n,
                                           size_t i);
const struct st_config_node *st_config_value(const struct st_config_node *n,
                                             size_t i);

/* The value whose key's text is `key` in mapping n, or NULL.  Borrowed. */
const struct st_config_node *st_config_lookup(const struct st_config_node *n,
                                              const char *key);

/*
 * Resolves a scalar the way YAML 1.1 (PyYAML's safe loader) does, for
 * plain scalars only; quoted and block scalars are always ST_CONFIG_STR:
 *   null:  empty, ~, null (any case)
 *   bool:  true/false, yes/no, on/off (any case)
 *   int:   [-+] then 0, [1-9][0-9_]*, 0x[0-9a-fA-F_]+, 0b[01_]+ or
 *          0[0-7_]+ (octal, the YAML 1.1 form)
 *   float: [-+] then digits with a '.' and/or an exponent
 *          (1.5, .5, 1., 1e3, 1.5E-3; '_' allowed between digits),
 *          or .inf / .nan (any case)
 * @return an enum st_config_type value, or 0 for a collection.
 */
int st_config_resolve(const struct st_config_node *n);

/* Stores a ST_CONFIG_BOOL scalar's value (0 or 1) in *out.
 * @return 0, or ST_ECONFIG when the node does not resolve to a bool. */
int st_config_as_bool(const struct st_config_node *n, int *out);

/* Stores a ST_CONFIG_INT scalar's value in *out.
 * @return 0, ST_ECONFIG when it does not resolve to an int, or -ERANGE
 *         when it does not fit in a long long. */
int st_config_as_int(const struct st_config_node *n, long long *out);

/* A setting `key` of node v that must be a whole number in [min, max]:
 * its value in *out, else err holds "FILE:LINE:COLUMN: key must be a
 * whole number" or "... must be between MIN and MAX".
 * @return 0 or ST_ECONFIG. */
int st_config_int_in(const struct st_config *cfg,
                     const struct st_config_node *v, const char *key,
                     long long min, long long max, uint64_t *out, char *err,
                     size_t errlen);

/* Stores an ST_CONFIG_FLOAT or ST_CONFIG_INT scalar's value in *out
 * (a float too large for a double is +-inf, as in Python).
 * @return 0, ST_ECONFIG when it resolves to neither, -ERANGE for an int
 *         that does not fit in a long long, or ST_ENOMEM. */
int st_config_as_double(const struct st_config_node *n, double *out);

/*
 * Writes "NAME:LINE:COLUMN: <printf of fmt>" for node n of cfg into err
 * (or "NAME: ..." when n is NULL), for callers reporting what a document
 * means rather than how it is written ("unknown key", "expected a
 * number").  @return ST_ECONFIG, so that a caller can write
 * `return st_config_errorf(...)`.
 */
int st_config_errorf(const struct st_config *cfg,
                     const struct st_config_node *n, char *err, size_t errlen,
                     const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif /* STEPTRACE_COMMON_CONFIG_H */
