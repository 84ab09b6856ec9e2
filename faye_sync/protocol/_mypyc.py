"""mypyc's class decorators, without mypy_extensions at run time.

mypyc sees ``mypy_extensions.trait`` (the names resolve there for mypy) and
compiles the class as a trait; the interpreter gets the identity function.
This module is never compiled: its else branch is all it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import trait as trait
else:

    def trait(cls):
        return cls
