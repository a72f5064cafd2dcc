"""Build glue for the one compiled module; the project's metadata lives in setup.cfg.

vpop/radius/_wire.c holds the compiled twins of the codec's hot functions; codec.py
keeps the reference implementation in Python and uses them when they are built.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("vpop.radius._wire", ["vpop/radius/_wire.c"],
                             extra_compile_args=["-O2", "-Wall"])])
