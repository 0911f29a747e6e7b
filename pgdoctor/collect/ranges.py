"""Ranges some values must keep beyond their type, declared on the row types (msgspec checks them as a
snapshot is read; a live server gives nothing else); and `SharedStr`, the text columns many rows repeat.

The row types name them through the module (`pid: ranges.Pid`), and the module builds them on first
use: msgspec, which they are made of, is imported only when a snapshot is read or written (their
annotations are text until then), not by every live run (~6 ms of start-up).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

# The integers a snapshot may hold: 64 bits, signed (PostgreSQL's bigint: pg_stat_statements' counters
# and queryid are int8) or unsigned (PgBouncer's counters); anything wider was not written by pgdoctor.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
BIGINT_MAX = 2**63 - 1  # the widest a PostgreSQL column holds (msgspec's bounds stop at int64 too)

# name -> (ge, le)
_BOUNDS = {
    "Int64": (INT_MIN, BIGINT_MAX),
    "Pid": (1, BIGINT_MAX),  # a process id
    "BlockerPid": (0, BIGINT_MAX),  # pg_blocking_pids(): 0 is a prepared transaction
    "VersionNum": (90000, BIGINT_MAX),  # server_version_num: PostgreSQL 9.0 or later
}

if TYPE_CHECKING:
    from msgspec import Meta

    # A text column whose values many rows repeat (state, backend_type, user, database, application,
    # query …): a str. A snapshot's decoder gives every row the same str object for the same text
    # (`serde.decode`): 100,000 sessions then take 50 MB less.
    SharedStr = str

    Int64 = Annotated[int, Meta(ge=INT_MIN, le=BIGINT_MAX)]
    Pid = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
    BlockerPid = Annotated[int, Meta(ge=0, le=BIGINT_MAX)]
    VersionNum = Annotated[int, Meta(ge=90000, le=BIGINT_MAX)]
else:

    class _Shared(type):
        # `serde` decodes with dec_hook=operator.getitem: msgspec calls it with (SharedStr, text), so
        # SharedStr[text] is sys.intern(text), the one str object for that text (and a TypeError for
        # anything but a str, which msgspec reports where it is). Then msgspec checks that what the hook
        # gave is an instance of SharedStr: anything is (id() is never 0). Both in C, no Python call per
        # text: 100,000 rows take 0.03 s for it (a Python hook: 0.06 s, its check another 0.04 s).
        __getitem__ = sys.intern
        __instancecheck__ = id

    class SharedStr(metaclass=_Shared):
        """At run time, the marker of a text column for the snapshot decoder (see `_Shared`)."""

    def __getattr__(name: str) -> Any:
        """`Pid` & co., built (and kept) the first time a type's annotations are read."""
        if name not in _BOUNDS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from msgspec import Meta

        ge, le = _BOUNDS[name]
        globals()[name] = bounded = Annotated[int, Meta(ge=ge, le=le)]
        return bounded
