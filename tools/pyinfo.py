"""Prints what the build needs to know about a Python interpreter.

Used by meson.build for -Dpython=PATH: meson 1.0's python module cannot
introspect CPython 3.12+ (it wants distutils), so the build asks the
interpreter itself.  One value per line: include dir, extension suffix,
version.
"""
import sys
import sysconfig

print(sysconfig.get_paths()["include"])
print(sysconfig.get_config_var("EXT_SUFFIX"))
print("%d.%d" % sys.version_info[:2])
