"""Locked objects named as an operator would look for them (pg_locks columns -> text)."""

from __future__ import annotations

from pgdoctor.collect.locks import SummaryRow, WaitLock

RELATION_LEVEL = ("relation", "page", "tuple", "extend")


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def advisory_key(classid: int, objid: int, objsubid: int) -> str:
    """pg_advisory_lock(bigint) sets objsubid 1 and splits the key over classid/objid; the
    (int4, int4) form sets objsubid 2 with one key in each."""
    if objsubid == 1:
        key = ((classid & 0xFFFFFFFF) << 32) | (objid & 0xFFFFFFFF)
        if key >= 1 << 63:
            key -= 1 << 64
        return f"advisory key {key}"
    return f"advisory keys ({_int32(classid)}, {_int32(objid)})"


def _in_db(w: WaitLock | SummaryRow) -> str:
    if w.local or w.database in (None, 0):
        return ""
    return f" in database {w.datname or w.database}"


def relation_name(w: WaitLock | SummaryRow) -> str:
    if w.relname:
        return w.relname
    if not w.local:
        return f"relation {w.relation} in database {w.datname or w.database} (not resolvable from here)"
    return f"relation {w.relation}"


def object_name(w: WaitLock) -> str:
    """The locked object, named as an operator would look for it."""
    if w.locktype == "relation":
        return relation_name(w)
    if w.locktype == "tuple":
        return f"{relation_name(w)} ({w.page},{w.tuple})"
    if w.locktype == "page":
        return f"{relation_name(w)} page {w.page}"
    if w.locktype == "extend":
        return f"{relation_name(w)} (extension)"
    if w.locktype == "transactionid":
        return f"transaction {w.transactionid}"
    if w.locktype == "virtualxid":
        return f"virtual transaction {w.virtualxid}"
    if w.locktype == "advisory" and w.classid is not None and w.objid is not None:
        return advisory_key(w.classid, w.objid, w.objsubid or 0) + _in_db(w)
    if w.locktype == "object":
        if w.description:
            return w.description + _in_db(w)
        sub = f" column {w.objsubid}" if w.objsubid else ""
        return f"{w.catalog or w.classid} oid {w.objid}{sub}" + _in_db(w)
    if w.locktype == "frozenid":
        return f"datfrozenxid of database {w.datname or w.database}"
    parts = [
        f"{name} {value}"
        for name, value in (
            ("database", w.datname or w.database),
            ("classid", w.classid),
            ("objid", w.objid),
            ("objsubid", w.objsubid),
            ("transaction", w.transactionid),
        )
        if value not in (None, "")
    ]
    return f"{w.locktype} " + " ".join(parts) if parts else w.locktype


def summary_object(row: SummaryRow) -> str:
    if row.locktype in RELATION_LEVEL and row.relation is not None:
        return relation_name(row)
    if row.locktype == "object":
        return f"{row.catalog or row.classid} objects" + _in_db(row)
    if row.database not in (None, 0):
        return f"database {row.datname or row.database}"
    return ""
