/*
 * The wire protocol for Python: steptrace._agent.wire_encode(),
 * wire_decode() and the protocol's constants (MSG_*, WIRE_*), built on
 * common's encoders and validated decoder (steptrace/wire.h), so that the
 * package's control client (steptrace/daemonctl.py: `steptrace daemon
 * status`, `steptrace tail`) speaks the protocol through the one codec the
 * agent and the collector use.  Nothing here touches the agent's tracing
 * state; every function runs with the GIL held.
 */
#ifndef STEPTRACE_AGENT_WIREPY_H
#define STEPTRACE_AGENT_WIREPY_H

#include "compat.h"

/*
 * Adds wire_encode, wire_decode and the constants to the module `module`
 * (borrowed).  Called once, from PyInit__agent.
 * @return 0, or -1 with an exception set.
 */
int st__wirepy_add(PyObject *module);

#endif /* STEPTRACE_AGENT_WIREPY_H */
