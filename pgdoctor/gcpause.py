"""The cyclic garbage collector paused for bounded work that makes no reference cycles: decoding a
snapshot (`pgdoctor.snapshot`), analysing and rendering its 100,000 sessions (`connections`)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bounded piece of work that makes no reference cycles, such
    as analysing and rendering 100,000 sessions: its passes over the new objects cost more than a
    third of that work (benchmarks/README.md). On again afterwards, whatever happens."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
