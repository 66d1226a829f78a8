/*
 * The text Python's repr() gives a float, without allocation.
 */
#ifndef STEPTRACE_COMMON_DTOA_H
#define STEPTRACE_COMMON_DTOA_H

#include <stddef.h>

/* Room st_double_repr needs: its longest text, "-2.2250738585072014e-308",
 * is 24 bytes; the terminating NUL makes 25. */
#define ST_DOUBLE_REPR_MAX 32

/*
 * Writes repr(x) as CPython 3 gives it, byte for byte
 * (PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL)): the
 * shortest decimal that reads back as x (of several, the one nearest x,
 * an exact tie to the even digit), in fixed notation when the decimal
 * point falls -4 < decpt <= 16 places after the first digit ("0.0001",
 * "1.5", "100.0", "-0.0"), else as "1e+16", "1.5e-05", "5e-324"; "inf",
 * "-inf" and "nan" (every NaN).  Thread-safe: the tables are constant.
 * @return the length, not counting the NUL written after the text.
 */
size_t st_double_repr(double x, char out[ST_DOUBLE_REPR_MAX]);

#endif
