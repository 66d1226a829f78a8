/*
 * steptrace._agent.load_yaml(): YAML config files as plain Python objects,
 * through the common loader (steptrace/config.h).  The package's
 * steptrace.config module gives the objects their meaning.
 */
#ifndef STEPTRACE_AGENT_CONFIG_PY_H
#define STEPTRACE_AGENT_CONFIG_PY_H

#include "compat.h"

/*
 * load_yaml(path) -> dict | list | str | int | float | bool | None.
 * METH_O: `path` is a str, bytes or os.PathLike.  Plain scalars are
 * resolved with the YAML 1.1 rules of st_config_resolve(); quoted and
 * block scalars and every mapping key stay str.  An empty file gives None.
 * Raises OSError (with errno and filename) when the file cannot be read,
 * ValueError("FILE:LINE:COLUMN: message") for anything wrong inside it,
 * MemoryError.  Returns a new reference.
 */
PyObject *st__config_py_load_yaml(PyObject *mod, PyObject *path);

#endif /* STEPTRACE_AGENT_CONFIG_PY_H */
