"""Build glue for the one compiled module; the project's metadata lives in setup.cfg.

vpop/radius/_wire.c holds the compiled twins of the wire primitives whose Python
reference is vpop/radius/wire_py.py; vpop/radius/wire.py uses them when they are built.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("vpop.radius._wire", ["vpop/radius/_wire.c"],
                             extra_compile_args=["-O2", "-Wall"],
                             # Without a compiler vpop runs the Python reference (slower);
                             # tests/unit/test_wire.py fails then, so it cannot go unseen.
                             optional=True)])
