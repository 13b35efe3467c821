"""The journal's conversion of a small group in Python: what
:func:`evalstore.core.journal_prepare.sql_convert` (one DuckDB ``SELECT`` of the plan's
expressions and row-wise checks) returns, without a query, for the expressions and checks
single-example requests use.

:func:`python_convert` reads the plan's SQL expressions and checks by pattern (those it
does not know, and any value it does not read exactly as DuckDB does, give None: DuckDB
converts the group): text and 64-bit integer columns cast to VARCHAR, 64-bit integers
(up to 2^53) and doubles to DOUBLE, ISO-8601 texts (``YYYY-MM-DD[T ]HH:MM:SS``, 1-6
fraction digits, ``Z`` or ``+HH:MM``; none: UTC, the writer's session zone) and UTC
microsecond timestamps to TIMESTAMPTZ, the example key (``CAST(md5_number(id) AS UUID)``)
and DuckDB's ``hash`` of it (:func:`example_key`), the class predicted from a score (not
NaN), parameters that are text or NULL; and the null, time-range, probability and class
checks. The writer (:mod:`evalstore.core.journal_prepare`) runs both on the first group
of each shape and keeps Python for that shape only if they agree.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from evalstore.core.ingest import Plan
from evalstore.core.ingest_group import _group_expressions

#: The cache key prefix of a key column's hashes
_KEYS = "__evalstore_hash"
#: The cache key of the columns given to :func:`python_convert`
_GIVEN = "__evalstore_given"

# The plan's expressions and row-wise checks the Python conversion knows (anything else:
# DuckDB converts). Identifiers are the planner's quoted plain names.
_CAST = re.compile(r'CAST\("(\w+)" AS (VARCHAR|DOUBLE|TIMESTAMPTZ)\)\Z', re.ASCII)
_KEY = re.compile(r'CAST\(md5_number\(CAST\("(\w+)" AS VARCHAR\)\) AS UUID\)\Z', re.ASCII)
_COLUMN = re.compile(r'"(\w+)"\Z', re.ASCII)
_PARAM = re.compile(r"\$(\w+)\Z", re.ASCII)
_PREDICTED = re.compile(
    r'CASE WHEN "(\w+)" >= \$(\w+) THEN \$(\w+) WHEN "\1" IS NOT NULL THEN \$(\w+) END\Z',
    re.ASCII,
)
_IS_NULL = re.compile(r"(\w+) IS NULL\Z", re.ASCII)
_OUTSIDE = re.compile(r"\((\w+) < \$(\w+) OR \1 >= \$(\w+)\)\Z", re.ASCII)
_NOT_PROBABILITY = re.compile(r"\(isnan\((\w+)\) OR \1 < 0 OR \1 > 1\)\Z", re.ASCII)
_NOT_CLASS = re.compile(r"(\w+) IS NOT NULL AND NOT list_contains\(\$(\w+), \1\)\Z", re.ASCII)
#: ISO-8601 times DuckDB's cast to TIMESTAMPTZ reads the same way (no offset: the
#: writer's session time zone, UTC); other forms are left to DuckDB.
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})?\Z",
    re.ASCII,
)
#: The Unix epoch (UTC) and the Arrow type of a UTC microsecond timestamp, shared with
#: :mod:`evalstore.core.journal_prepare`.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
UTC_MICROS = pa.timestamp("us", "UTC")
_M64 = (1 << 64) - 1
_MURMUR = np.uint64(0xD6E8FEB86659FD93)
_TOP = np.uint64(1 << 63)
_SHIFT = np.uint64(32)
#: Keys from which :func:`example_keys` hashes with NumPy
_NUMPY_HASHES = 16


class _Unsupported(Exception):
    """Something the Python conversion does not know: DuckDB converts the group."""


def _murmur(value: int) -> int:
    """DuckDB's 64-bit integer hash (MurmurHash3's finalizer)."""
    value ^= value >> 32
    value = (value * 0xD6E8FEB86659FD93) & _M64
    value ^= value >> 32
    value = (value * 0xD6E8FEB86659FD93) & _M64
    return value ^ (value >> 32)


def example_key(example_id: str) -> tuple[str, int]:
    """``CAST(md5_number(example_id) AS UUID)`` as text and DuckDB's ``hash`` of it.

    ``md5_number`` reads the MD5 digest as a little-endian 128-bit integer, which the UUID
    shows as hex; DuckDB keeps a UUID with its top bit flipped and hashes the two halves.
    """
    digest = hashlib.md5(example_id.encode()).digest()
    text = digest[::-1].hex()
    value = int.from_bytes(digest, "little")
    hashed = _murmur(value & _M64) ^ _murmur((value >> 64) ^ (1 << 63))
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}", hashed


def _micros(text: str) -> int:
    """An ISO-8601 time (:data:`_TIME`) as microseconds since the epoch, UTC."""
    match = _TIME.match(text)
    if match is None:
        raise _Unsupported
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 59:  # (hour 24, a leap second: DuckDB decides)
        raise _Unsupported
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_DAY
    except ValueError:  # (month 13, February 30th: DuckDB decides)
        raise _Unsupported from None
    micros = (days * 86_400 + h * 3_600 + m * 60 + s) * 1_000_000
    if fraction:
        micros += int(fraction.ljust(6, "0"))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        micros -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * 1_000_000
    return micros


def _murmurs(values: np.ndarray) -> np.ndarray:
    """:func:`_murmur` of each of ``values`` (uint64; NumPy's products wrap as C's do)."""
    values = values ^ (values >> _SHIFT)
    values = values * _MURMUR
    values ^= values >> _SHIFT
    values = values * _MURMUR
    return values ^ (values >> _SHIFT)


def example_keys(example_ids: list[str]) -> tuple[list[str], list[int]]:
    """:func:`example_key` of each of ``example_ids``: the keys as text and their
    hashes, the hashes computed with NumPy for all at once."""
    digests = [hashlib.md5(v.encode()).digest() for v in example_ids]
    if len(digests) < _NUMPY_HASHES:  # (NumPy's fixed cost is more than a few in Python)
        hashes = []
        for digest in digests:
            value = int.from_bytes(digest, "little")
            hashes.append(_murmur(value & _M64) ^ _murmur((value >> 64) ^ (1 << 63)))
    else:
        halves = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2).astype(np.uint64)
        hashes = (_murmurs(halves[:, 0]) ^ _murmurs(halves[:, 1] ^ _TOP)).tolist()
    texts = []
    for digest in digests:
        t = digest[::-1].hex()
        texts.append(f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}")
    return texts, hashes


def _param(plan: Plan, name: str) -> Any:
    if name not in plan.params:
        raise _Unsupported
    return plan.params[name]


def _column(table: pa.Table, name: str, cache: dict[str, Any]) -> tuple[pa.DataType, list]:
    if name in cache[_GIVEN]:
        return cache[_GIVEN][name]
    if name not in cache:
        if name not in table.column_names:
            raise _Unsupported
        cache[name] = table.column(name).to_pylist()
    return table.schema.field(name).type, cache[name]


def _micros_column(table: pa.Table, name: str, cache: dict[str, Any]) -> list[Any]:
    """A UTC microsecond timestamp column as integers (given ones as they are)."""
    if name in cache[_GIVEN]:
        return cache[_GIVEN][name][1]
    return table.column(name).cast(pa.int64()).to_pylist()


def _text(kind: pa.DataType, values: list[Any]) -> list[Any]:
    """``CAST(x AS VARCHAR)`` of a string or 64-bit integer column."""
    if kind == pa.string():
        return values
    if kind == pa.int64():
        return [None if v is None else str(v) for v in values]
    raise _Unsupported


_EXPRESSIONS = (("cast", _CAST), ("key", _KEY), ("column", _COLUMN), ("param", _PARAM),
                ("predicted", _PREDICTED))  # fmt: skip
_CONDITIONS = (("null", _IS_NULL), ("outside", _OUTSIDE), ("probability", _NOT_PROBABILITY),
               ("class", _NOT_CLASS))  # fmt: skip


@functools.lru_cache(maxsize=4_096)
def _form(text: str, conditions: bool = False) -> tuple[str, tuple[Any, ...]]:
    """Which known expression (or, with ``conditions``, row-wise condition) ``text`` is,
    and its parts (the pattern's groups, counted from 1 as a match's); ``("", ())`` for
    none. Remembered: a plan's texts repeat with every group."""
    for form, pattern in _CONDITIONS if conditions else _EXPRESSIONS:
        if match := pattern.match(text):
            return form, (text, *match.groups())
    return "", ()


def _converted(
    plan: Plan, table: pa.Table, column: str, expression: str, cache: dict[str, list[Any]]
) -> tuple[pa.DataType, list[Any]]:
    """The values and Arrow type DuckDB gives ``expression`` over ``table``."""
    n = table.num_rows
    form, match = _form(expression)
    if form == "cast":
        kind, values = _column(table, match[1], cache)
        if match[2] == "VARCHAR":
            return pa.string(), _text(kind, values)
        if match[2] == "DOUBLE":
            if kind == pa.float64():
                return pa.float64(), values
            if kind == pa.int64() and all(v is None or abs(v) <= 2**53 for v in values):
                return pa.float64(), [None if v is None else float(v) for v in values]
            raise _Unsupported
        if kind == pa.string():
            return UTC_MICROS, [None if v is None else _micros(v) for v in values]
        if kind == UTC_MICROS:
            return UTC_MICROS, _micros_column(table, match[1], cache)
        raise _Unsupported
    if form == "key":
        kind, values = _column(table, match[1], cache)
        ids = _text(kind, values)
        if any(v is None for v in ids):  # (a check refuses it: DuckDB names it)
            raise _Unsupported
        texts, hashes = example_keys(ids)
        cache[f"{_KEYS}:{column}"] = hashes
        return pa.string(), texts
    if form == "column":
        kind, values = _column(table, match[1], cache)
        if kind == pa.int64():
            return kind, values
        if kind == UTC_MICROS:
            return UTC_MICROS, _micros_column(table, match[1], cache)
        raise _Unsupported
    if form == "param":
        value = _param(plan, match[1])
        if value is None:
            return pa.null(), [None] * n
        if isinstance(value, str):
            return pa.string(), [value] * n
        raise _Unsupported
    if form == "predicted":
        kind, values = _column(table, match[1], cache)
        threshold = _param(plan, match[2])
        positive, negative = _param(plan, match[3]), _param(plan, match[4])
        if (
            kind not in (pa.float64(), pa.int64())
            or type(threshold) not in (int, float)
            or not isinstance(positive, str)
            or not isinstance(negative, str)
            or any(v is not None and v != v for v in values)  # NaN: DuckDB orders it last
        ):
            raise _Unsupported
        return pa.string(), [None if v is None else positive if v >= threshold else negative
                             for v in values]  # fmt: skip
    raise _Unsupported


def _failing(plan: Plan, condition: str, out: dict[str, list[Any]]) -> list[bool]:
    """Which rows meet a row-wise check's ``condition`` (NULL: not)."""
    form, match = _form(condition, conditions=True)
    if form == "null":
        return [v is None for v in out[match[1]]]
    if form == "outside":
        low, high = _param(plan, match[2]), _param(plan, match[3])
        if not all(isinstance(b, datetime) and b.tzinfo is not None for b in (low, high)):
            raise _Unsupported
        lo = (low - EPOCH) // timedelta(microseconds=1)
        hi = (high - EPOCH) // timedelta(microseconds=1)
        return [v is not None and (v < lo or v >= hi) for v in out[match[1]]]
    if form == "probability":
        return [v is not None and (v != v or v < 0 or v > 1) for v in out[match[1]]]
    if form == "class":
        classes = _param(plan, match[2])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise _Unsupported
        return [v is not None and v not in classes for v in out[match[1]]]
    raise _Unsupported


#: plan id -> (the plan, its (column, group expression) pairs, its row-wise conditions)
_PROGRAMS: dict[int, tuple[Plan, list[tuple[str, str]], list[str]]] = {}


def _program(plan: Plan) -> tuple[list[tuple[str, str]], list[str]]:
    """``plan``'s columns with their group expressions and its row-wise conditions, as
    :func:`python_convert` reads them (remembered per plan: the writer keeps its plans)."""
    known = _PROGRAMS.get(id(plan))
    if known is not None and known[0] is plan:
        return known[1], known[2]
    expressions = list(zip(plan.columns, _group_expressions(plan), strict=True))
    conditions = [check.where.format(table="", this="true", others="false")
                  for check in plan.checks if check.where]  # fmt: skip
    if len(_PROGRAMS) >= 1_024:
        _PROGRAMS.clear()
    _PROGRAMS[id(plan)] = (plan, expressions, conditions)
    return expressions, conditions


def python_convert(
    plan: Plan, table: pa.Table, given: dict[str, tuple[pa.DataType, list[Any]]] | None = None
) -> tuple[pa.Table, np.ndarray, np.ndarray] | None:
    """What :func:`sql_convert` returns for ``table`` (the group's rows with their batch
    ids and receipt times), computed in Python for the expressions and checks a small
    single-example request uses (strings, integers, doubles, ISO-8601 times, the example
    key and its hash, the predicted class of a score, the null, time-range, probability
    and class checks); None for anything else, which DuckDB converts. The writer runs
    both on the first group of each shape and uses this one only if they agree.

    ``given`` holds columns that ``table`` lacks, as Python values by name with their
    Arrow type (a timestamp's as UTC microseconds): the writer gives the per-row batch
    ids and receipt times that way instead of adding them to the table."""
    cache: dict[str, Any] = {_GIVEN: given or {}}
    out: dict[str, list[Any]] = {}
    arrays = []
    expressions, conditions = _program(plan)
    try:
        for column, expression in expressions:
            kind, values = _converted(plan, table, column, expression, cache)
            out[column] = values
            arrays.append(pa.array(values, kind))
        hashes = cache.get(f"{_KEYS}:example_key")
        if hashes is None:
            raise _Unsupported
        bad = [False] * table.num_rows
        for condition in conditions:
            bad = [a or b for a, b in zip(bad, _failing(plan, condition, out), strict=True)]
    except (_Unsupported, UnicodeError, pa.ArrowException, OverflowError):
        return None
    rows = pa.Table.from_arrays(arrays, names=plan.columns)
    return rows, np.array(hashes, dtype=np.uint64), np.array(bad, dtype=bool)
