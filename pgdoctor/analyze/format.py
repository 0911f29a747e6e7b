"""The one way pgdoctor writes a duration for people, in findings and in tables alike."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration; "" for None (unknown).

    Under a second in milliseconds and under ten seconds with three significant digits (statement
    timings), then whole units with the next one beside it:

    >>> duration(0.0123), duration(0.85), duration(4.25), duration(42.7)
    ('12.3ms', '850ms', '4.25s', '42s')
    >>> duration(95), duration(150), duration(600)
    ('1m35s', '2m30s', '10m00s')
    >>> duration(12_000), duration(187_200)
    ('3h20m', '2d04h')
    >>> duration(0), duration(-0.2), duration(None)
    ('0s', '0s', '')
    >>> duration(0.9999), duration(1.5), duration(9.9996)
    ('1s', '1.5s', '10s')
    """
    if seconds is None:
        return ""
    if seconds <= 0:
        return "0s"
    if seconds * 1000 < 999.5:
        return f"{seconds * 1000:.3g}ms"
    if seconds < 10:
        return f"{seconds:.3g}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
