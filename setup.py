"""Build the optional C line scanner of `postharden logs` (postharden.logs._scan).

Everything else is in pyproject.toml. The extension is optional: without a compiler (or
Python headers) the build goes on without it, and `postharden logs` uses its pure-Python
fast path (same report, slower).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the C scanner cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # any compiler or setup failure
            self._skip(error)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            self._skip(error)

    @staticmethod
    def _skip(error: Exception) -> None:
        print(
            f"warning: postharden.logs._scan not built ({error}); "
            "postharden logs falls back to its pure-Python fast path",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "postharden.logs._scan",
            ["src/postharden/logs/_scan.c"],
            extra_compile_args=["-O3", "-std=gnu11"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
