"""The arithmetic of `connections --sample`'s analysis on ticks written by hand: time per class, the
plateau, transactions and their idle gaps, the pool a plateau matches, the sizes advised. (Whether the
findings fire for real applications is tests/test_sample_live.py.)"""

from __future__ import annotations

import pytest

from pgdoctor.analyze.sample import SampleAnalysis, SampleGroup, XactStats, pool_match, saturated
from pgdoctor.collect.sample import SampleData, SessionSeen, StateSeen, Tick, XactCount
from pgdoctor.collect.server import ServerInfo, SettingRow

T0 = 1_700_000_000.0


def server(max_connections: int = 100) -> ServerInfo:
    settings = [
        SettingRow("max_connections", str(max_connections), "", "postmaster", False),
        SettingRow("superuser_reserved_connections", "3", "", "postmaster", False),
    ]
    return ServerInfo(180000, "18.0", "postgres", True, True, settings)


def data(ticks: list[Tick]) -> SampleData:
    return SampleData(server(), "postgres", 0.1, 10.0, False, ticks)


def who(pid: int, app: str = "api", addr: str | None = "10.0.0.5") -> SessionSeen:
    return SessionSeen(pid, T0 - 100, "app", "web", app, addr)


def test_time_per_class_transactions_and_gaps() -> None:
    a = SampleAnalysis()
    # pid 1: a transaction started at T0, active 1 s, idle in transaction 3 s, ends at T0+4 (idle after)
    a.add(Tick(T0, [who(1)], [StateSeen(1, "active", False, T0, T0)], [], [XactCount("app", 100)], 0))
    a.add(Tick(T0 + 1, [], [StateSeen(1, "idle in transaction", False, T0, T0 + 1)]))
    a.add(Tick(T0 + 4, [], [StateSeen(1, "idle", False, None, T0 + 4)]))
    a.add(Tick(T0 + 10, [], [], [], [XactCount("app", 160)], 5))
    report = a.finish(data([]))
    (g,) = report.groups
    assert g.label == "api @ 10.0.0.5"
    assert g.time_share == {
        "active": 0.1,
        "idle_in_transaction": 0.3,
        "idle": 0.6,
        "blocked": 0.0,
        "other": 0.0,
    }
    assert (g.held_min, g.held_max, g.plateau) == (1, 1, False)  # one connection is no pool
    x = g.xacts
    assert (x.ended, x.open, x.max_s, x.typical_idle_gap_s) == (1, 0, 4.0, 3.0)
    assert x.idle_share == 0.75
    # 60 transactions in 10 s in the unit's database, which it has to itself
    assert report.xacts_per_s == {"app": 6.0}
    assert (x.per_s, x.per_s_source) == (6.0, "pg_stat_database")


def test_plateau_and_sessions_coming_and_going() -> None:
    a = SampleAnalysis()
    states = [StateSeen(p, "active", False, T0, T0) for p in range(1, 6)]
    a.add(Tick(T0, [who(p) for p in range(1, 6)], states))
    a.add(Tick(T0 + 8.9))
    a.add(Tick(T0 + 9, [], [], [5]))  # one ends between these two reads: counted at their midpoint
    a.add(Tick(T0 + 10))
    (g,) = a.finish(data([])).groups
    assert (g.held_min, g.held_max) == (4, 5)
    assert g.plateau_share == pytest.approx(0.9, abs=0.06)
    assert g.plateau is True
    assert g.ever_idle is False


def test_sessions_without_application_name_go_by_address_and_user() -> None:
    a = SampleAnalysis()
    a.add(Tick(T0, [who(1, ""), who(2, "", None)], [StateSeen(p, "idle", False, None, T0) for p in (1, 2)]))
    a.add(Tick(T0 + 1))
    labels = [g.label for g in a.finish(data([])).groups]
    assert labels == ["(no application_name) web @ 10.0.0.5", "(no application_name) web @ local socket"]


@pytest.mark.parametrize(
    ("held", "match"),
    [
        (15, "SQLAlchemy's default pool (5 + 10)"),
        (45, "3 processes x 15, SQLAlchemy's default pool (5 + 10)"),
        (10, "asyncpg's default pool (max_size=10)"),
        (20, "2 processes x 10, asyncpg's default pool (max_size=10)"),
        (7, None),
    ],
)
def test_pool_match(held: int, match: str | None) -> None:
    assert pool_match(held) == match


def group(held: int, active: float, iit: float) -> SampleGroup:
    x = XactStats(100, 0, 10.0, "seen", 1.4, 1.6, 2.0, 1.5, iit / (active + iit), 1.0, 1.2)
    shares = {"active": active, "idle_in_transaction": iit, "idle": 0.0, "blocked": 0.0, "other": 0.0}
    return SampleGroup(
        "api", "10.0.0.5", None, "api @ 10.0.0.5", ["app"], held, held, held, held, 1.0, True, shares,
        False, float(held), 0, pool_match(held), x,
    )  # fmt: skip


def test_saturated_busy_pool_is_advised_bigger_within_free_slots() -> None:
    f = saturated(group(45, 1.0, 0.0), slots_left=50)
    assert f is not None and f.code == "app_pool_saturated"
    assert "3 processes x 15" in f.message and "Little's law" in f.message
    # twice 15 per process would need 45 more slots: within the 50 free
    assert "raise the pool to 30 connections per process (3 x 30 = 90" in f.advice
    assert "pool_size=10, max_overflow=20" in f.advice and "create_async_engine" in f.advice
    assert "asyncpg" not in f.advice  # 15 is SQLAlchemy's: no asyncpg advice
    tight = saturated(group(45, 1.0, 0.0), slots_left=9)
    assert tight is not None and "18 connections per process (3 x 18 = 54" in tight.advice


def test_saturated_by_slow_work_is_not_advised_a_bigger_pool() -> None:
    f = saturated(group(15, 0.1, 0.9), slots_left=50)
    assert f is not None
    assert "slow work inside the transaction" in f.message
    assert "raise the pool to" not in f.advice and "do not raise the pool" in f.advice


def test_no_saturation_without_free_slots_or_below_five() -> None:
    assert saturated(group(45, 1.0, 0.0), slots_left=0) is None
    assert saturated(group(4, 1.0, 0.0), slots_left=50) is None
