"""Durations given on the command line (`--sample 30s`, `--watch 2s`, `--interval 1m`, `--every 5s`,
`--for 30m`): one grammar and one error wording for every option that takes one.

>>> parse("500ms", "--watch", 0.5, 3600)
0.5
>>> parse("2m", "--every", 0.1, 3600)
120.0
>>> parse(" 45 ", "--interval", 0, 3600)
45.0
>>> parse("1.5h", "--for", 0.1, 86400)
5400.0
"""

from __future__ import annotations

import re

from pgdoctor.errors import ExitCode, PgDoctorError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse(text: str, option: str, low: float, high: float, examples: str = "5s, 30s or 2m") -> float:
    """'5s', '500ms', '2m', '1h' or plain seconds -> seconds, at least `low` (more than 0 when `low` is 0)
    and at most `high`; else a usage error that names the option and shows the text (cut to 40
    characters)."""
    m = _DURATION.match(text)
    shown = repr(text[:40])
    if not m:
        raise PgDoctorError(f"invalid {option} {shown}: give a duration such as {examples}", ExitCode.USAGE)
    seconds = float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    if low <= 0 and not 0 < seconds <= high:
        raise PgDoctorError(
            f"invalid {option} {shown}: must be more than 0 and at most {high:g}s", ExitCode.USAGE
        )
    if not low <= seconds <= high:
        raise PgDoctorError(
            f"invalid {option} {shown}: must be between {low:g}s and {high:g}s", ExitCode.USAGE
        )
    return seconds
