"""The C extension of the hot path; everything else about the package is in pyproject.toml.

``ingress_egress._native._speedups`` is built from the repo's own C source with the
CPython C API only (no third-party build dependency beyond setuptools). An editable install
(``make install`` -> ``uv sync``) compiles it and puts the ``.so`` next to the source in
``src/ingress_egress/_native/``, where it is imported; without it the package runs on its
pure-Python reference (slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ingress_egress._native._speedups",
            sources=["src/ingress_egress/_native/_speedups.c"],
            extra_compile_args=["-std=c11", "-Wno-missing-field-initializers"],
        )
    ]
)
