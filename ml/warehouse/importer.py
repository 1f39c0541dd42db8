"""`ml import`: load a retailer's own CSV/Parquet exports into the raw tables.

Files stream through DuckDB's own readers (``read_csv`` with every column as text,
``read_parquet``) into temporary tables; SQL then renames, casts and validates them, and
one transaction replaces the raw tables. Nothing passes through pandas: a 10-million-row
orders file takes about 30 CPU-seconds and stays within ``MEMORY_LIMIT`` (DuckDB spills the
rest to disk; see bench/import.py).

**What a file may look like**

- Format by extension: ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``) or ``.parquet``.
  CSV: the first line is the header; quotes are ``"`` (doubled to escape). The delimiter is
  the one of ``, ; TAB |`` that splits the header into the most columns, unless given.
  UTF-8 (a byte-order mark is fine) or, when asked, Latin-1.
- Column names: a mapping ``{table: {their_column: our_column}}`` renames; a column not in
  the mapping whose name, lower-cased with non-alphanumerics as ``_``, is one of ours is
  taken as it is (``Customer ID`` -> ``customer_id``). Every other column is *unknown* and
  kept aside in ``raw.<table>_extra``, never dropped: the loaded row's key, its
  ``source_line`` and the unknown columns as text, for each row with any of them
  non-empty. A mapping may also translate values: ``orders: {values: {status: {paid:
  completed}}}`` (matched case-insensitively; unmapped values pass through).
- Timestamps: ISO 8601 (``2024-03-01``, ``2024-03-01 14:05[:09]``, ``T`` separator,
  offsets such as ``Z``/``+02:00`` converted to UTC), ``YYYY/MM/DD``, day-month-year with
  ``/``, ``.`` or ``-`` and an optional ``HH:MM[:SS]`` (or ``h:MM AM``), epoch seconds (9-10
  digits, decimals allowed) and epoch milliseconds (12-13 digits). Day-month order is
  decided per column: month first (``MM/DD/YYYY``) only when more values can only be read
  month-first (second field above 12) than can only be read day-first (first field above
  12); otherwise day first. Values that contradict the column's order are quarantined.
  Timestamps without an offset are taken as UTC, like the load time.
- Amounts: plain numbers, decimal commas (``12,50``), thousands separators
  (``1,234.56``, ``1.234,56``, ``1 234,56``, ``1'234.56``), a currency symbol or code before
  or after (``€12.50``, ``$1,234.56``, ``12.50 EUR``) and a leading minus. When both ``.``
  and ``,`` appear the last one is the decimal mark; a lone ``,`` is a decimal comma unless
  it separates groups of exactly three digits (``1,234`` is 1234); a lone ``.`` is a
  decimal point.

**Filled in when the source lacks it**

- An id the source does not have (or leaves empty) is synthesised, deterministically:
  ``syn-`` + the first 16 hex digits of the MD5 of the row's customer id, timestamp and
  amount (orders: customer_id, ordered_at, revenue; sessions: customer_id, started_at;
  marketing touches: customer_id, touched_at, channel, campaign) and the row's ordinal
  among rows identical in those values (in file order). So the same export always gives
  the same ids, and identical rows without an id stay separate orders: without an id, a
  repeated row cannot be told apart from a second purchase in the same second.
  ``order_items.line_number`` missing: the line's position within its order, in file order.
- orders without ``status`` get ``'completed'``; every other missing column is NULL
  (e.g. ``discount``, ``order_channel``).

**Validation, with nothing lost.** A row that cannot be used goes to ``raw.quarantine``
(table_name, source_file, line_number, reason, raw_record: the original row as JSON
text). One reason per row, the first that applies in this order:

- ``malformed_row``: a CSV record with too few or too many fields or an unterminated quote
  (raw_record holds the text as read and the parser's message);
- ``null_<column>``: an empty required column (orders: customer_id, ordered_at, revenue;
  customers: customer_id; order_items: order_id; sessions: started_at; marketing_touches:
  customer_id, touched_at; media_lift_tests: every column but test_id);
- ``unparseable_timestamp``, ``non_numeric_<column>``, ``non_integer_<column>``,
  ``invalid_<column>`` (booleans): a non-empty value that does not parse as its column's
  type, whether the column is required or not;
- ``negative_<column>``: revenue, discount, price, quantity, cost, page_views, cart_adds,
  spend, impressions, clicks, standard_error;
- ``future_timestamp``: an event at or after the load time (default: now, UTC); for
  media_spend a date after the load time's day; media_lift_tests an end_date after it (a
  test still running has no readout);
- ``conflicting_duplicate_<key>``: several rows share an id (orders: order_id; customers:
  customer_id; order_items: order_line = order_id + line_number; sessions: session_id;
  marketing_touches: touch_id; media_spend: date_channel = date + channel; media_lift_tests:
  test_id, synthesised from channel and dates when missing) but differ in some value; all of them are quarantined, as
  there is no telling which is right. Rows identical in every contract column are exact
  duplicates: one is kept (the first in the file) and the others only counted.

``line_number`` is the CSV line of the record, the header being line 1 (it is the
physical line unless an earlier field holds a line break or the file has blank lines);
for Parquet, the row's position (first row = 1).

The import fails (``ImportFailed``, nothing written) when the rejected share of any table
exceeds ``max_rejected_share``. It fails early, checking every file's header before
reading any rows, on a file that is empty, is not valid UTF-8 (suggesting ``--encoding
latin-1``), parses into one column (suggesting the delimiter) or lacks a required column
(saying what was expected and what was found); a file without data rows, or with invalid
UTF-8 past its first MiB, fails as it is read.

**Atomic and idempotent.** One transaction replaces the imported raw tables, their
``_extra`` tables and ``raw.quarantine`` together; a failed import leaves the previous raw
data exactly as it was. Raw tables not given in the import are dropped (importing only
orders leaves no customers, order_items, sessions or marketing_touches: the platform then
builds fewer features), and so is ``eval.oracle_labels``: the synthetic generator's ground
truth describes data that is no longer there. The same files give identical tables.
"""

from __future__ import annotations

import csv
import gzip
import re
import resource
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ml.faults import checkpoint
from ml.schema import RAW_TABLES, REQUIRED_TABLES, TRUTH_TABLES
from ml.settings import EVAL_SCHEMA, RAW_SCHEMA, get_settings
from ml.warehouse import DuckDBWarehouse, Warehouse, connect, get_warehouse, qualified

QUARANTINE_TABLE = "quarantine"
QUARANTINE_COLUMNS = {
    "table_name": "VARCHAR",
    "source_file": "VARCHAR",
    "line_number": "BIGINT",
    "reason": "VARCHAR",
    "raw_record": "VARCHAR",
}
EXTRA_SUFFIX = "_extra"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITER_CANDIDATES = (",", ";", "\t", "|")
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
             "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}
UTF8_CHECK_BYTES = 1 << 20  # the rest of the file is checked by DuckDB as it reads
# DuckDB keeps staged rows within this and spills the rest to <warehouse>.tmp/: a bigger
# file costs disk, not memory (10M rows: about the same speed as without a limit).
MEMORY_LIMIT = "1GB"


class ImportFailed(ValueError):
    """The import cannot go ahead; the message says what was expected and what was found.

    ``report`` is set when the files were read but too many rows were rejected."""

    def __init__(self, message: str, report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class _TableRules:
    key: tuple[str, ...]  # a row's identity: exact duplicates collapse, conflicts quarantine
    key_label: str  # names the key in the conflicting-duplicate reason
    required: tuple[str, ...]  # every loaded row has a value
    hashed_id_from: tuple[str, ...] = ()  # a missing key[-1] is a hash of these (+ ordinal)
    position_within: str | None = None  # a missing key[-1] is the row's position in this
    defaults: dict[str, str] = field(default_factory=dict)  # SQL for a column the file lacks
    non_negative: tuple[str, ...] = ()
    event_time: str | None = None  # must lie before the load time

    @property
    def synthesisable(self) -> str | None:
        return self.key[-1] if self.hashed_id_from or self.position_within else None


RULES: dict[str, _TableRules] = {
    "customers": _TableRules(
        key=("customer_id",), key_label="customer_id", required=("customer_id",),
        event_time="signed_up_at",
    ),
    "orders": _TableRules(
        key=("order_id",), key_label="order_id",
        required=("customer_id", "ordered_at", "revenue"),
        hashed_id_from=("customer_id", "ordered_at", "revenue"),
        defaults={"status": "'completed'"},
        non_negative=("revenue", "discount"), event_time="ordered_at",
    ),
    "order_items": _TableRules(
        key=("order_id", "line_number"), key_label="order_line", required=("order_id",),
        position_within="order_id", non_negative=("quantity", "price"),
    ),
    "sessions": _TableRules(
        key=("session_id",), key_label="session_id", required=("started_at",),
        hashed_id_from=("customer_id", "started_at"),
        non_negative=("page_views", "cart_adds"), event_time="started_at",
    ),
    "marketing_touches": _TableRules(
        key=("touch_id",), key_label="touch_id", required=("customer_id", "touched_at"),
        hashed_id_from=("customer_id", "touched_at", "channel", "campaign"),
        non_negative=("cost",), event_time="touched_at",
    ),
    "media_spend": _TableRules(
        key=("date", "channel"), key_label="date_channel", required=("date", "channel", "spend"),
        non_negative=("spend", "impressions", "clicks"), event_time="date",
    ),
    "media_lift_tests": _TableRules(
        key=("test_id",), key_label="test_id",
        required=("channel", "start_date", "end_date", "spend_change",
                  "incremental_new_customers", "standard_error"),
        hashed_id_from=("channel", "start_date", "end_date"),
        non_negative=("standard_error",), event_time="end_date",
    ),
}

# --- SQL helpers ---------------------------------------------------------------------------

_CURRENCY = r"(?:[€$£¥]|(?i:eur|usd|gbp|chf|sek|nok|dkk|pln|czk|huf|jpy|cad|aud|nzd))"
_AMOUNT_PATTERN = (
    rf"^([-+])?\s*{_CURRENCY}?\s*([-+])?\s*([0-9][0-9.,' \x{{00A0}}\x{{202F}}]*)"
    rf"\s*{_CURRENCY}?$"
)
_DAY_MONTH_YEAR = r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{4}"
_DAY_FIRST_ONLY = r"^(1[3-9]|2\d|3[01])[/.-](0?[1-9]|1[0-2])[/.-]\d{4}"
_MONTH_FIRST_ONLY = r"^(0?[1-9]|1[0-2])[/.-](1[3-9]|2\d|3[01])[/.-]\d{4}"
_TIME_SUFFIXES = (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "")


def _str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _formats(date_part: str) -> str:
    return "[" + ", ".join(
        _str(f"{date_part.replace('/', sep)}{suffix}")
        for sep in "/.-" for suffix in _TIME_SUFFIXES
    ) + "]"


_MACROS = (
    # Text -> DOUBLE: plain numbers fast, then currency and separators (rules in the docstring).
    """CREATE OR REPLACE TEMP MACRO _separators_removed(n) AS (
        CASE
            WHEN contains(n, ',') AND contains(n, '.') THEN
                CASE WHEN regexp_matches(n, ',[^.]*$')
                     THEN replace(replace(n, '.', ''), ',', '.') ELSE replace(n, ',', '') END
            WHEN contains(n, ',') THEN
                CASE WHEN regexp_full_match(n, '\\d{1,3}(,\\d{3})+') THEN replace(n, ',', '')
                     WHEN regexp_full_match(n, '\\d+,\\d+') THEN replace(n, ',', '.') END
            WHEN regexp_full_match(n, '\\d{1,3}(\\.\\d{3}){2,}') THEN replace(n, '.', '')
            ELSE n
        END)""",
    f"""CREATE OR REPLACE TEMP MACRO _parse_amount(v) AS (
        CASE
            WHEN v IS NULL THEN NULL
            WHEN isfinite(TRY_CAST(v AS DOUBLE)) THEN TRY_CAST(v AS DOUBLE)
            ELSE TRY_CAST(_separators_removed(regexp_replace(
                     regexp_extract(v, {_str(_AMOUNT_PATTERN)}, 3),
                     '[\\s\\x{{00A0}}\\x{{202F}}'']', '', 'g')) AS DOUBLE)
                 * CASE WHEN '-' IN (regexp_extract(v, {_str(_AMOUNT_PATTERN)}, 1),
                                     regexp_extract(v, {_str(_AMOUNT_PATTERN)}, 2))
                        THEN -1 ELSE 1 END
        END)""",
    """CREATE OR REPLACE TEMP MACRO _parse_integer(v) AS (
        CASE WHEN _parse_amount(v) = round(_parse_amount(v))
                  AND abs(_parse_amount(v)) < 2147483648
             THEN _parse_amount(v)::INTEGER END)""",
    """CREATE OR REPLACE TEMP MACRO _parse_boolean(v) AS (
        CASE WHEN lower(v) IN ('true', 't', 'yes', 'y', '1') THEN true
             WHEN lower(v) IN ('false', 'f', 'no', 'n', '0') THEN false END)""",
    # Text -> TIMESTAMP. Byte tests (strpos, LIKE) pick the shape, so the common ISO case
    # costs one cast; years before 1900 (two-digit years read as 0024) count as unparseable.
    f"""CREATE OR REPLACE TEMP MACRO _parse_timestamp_any(v, day_first) AS (
        CASE
            WHEN v IS NULL THEN NULL
            WHEN strpos(v, '-') = 5 THEN
                CASE WHEN contains(v, '+') OR v LIKE '%:%-%'
                     THEN TRY_CAST(v AS TIMESTAMPTZ)::TIMESTAMP ELSE TRY_CAST(v AS TIMESTAMP) END
            WHEN strpos(v, '/') = 5 THEN try_strptime(v, {_formats('%Y/%m/%d')})
            WHEN strpos(v, '/') IN (2, 3) OR strpos(v, '.') IN (2, 3) OR strpos(v, '-') IN (2, 3)
                THEN CASE WHEN day_first THEN try_strptime(v, {_formats('%d/%m/%Y')})
                          ELSE try_strptime(v, {_formats('%m/%d/%Y')}) END
            WHEN regexp_full_match(v, '\\d{{9,10}}(\\.\\d+)?')
                THEN make_timestamp((v::DOUBLE * 1000000)::BIGINT)
            WHEN regexp_full_match(v, '\\d{{12,13}}') THEN make_timestamp(v::BIGINT * 1000)
            ELSE TRY_CAST(v AS TIMESTAMP)
        END)""",
    """CREATE OR REPLACE TEMP MACRO _parse_timestamp(v, day_first) AS (
        CASE WHEN _parse_timestamp_any(v, day_first) >= TIMESTAMP '1900-01-01'
             THEN _parse_timestamp_any(v, day_first) END)""",
    "CREATE OR REPLACE TEMP MACRO _parse_date(v, day_first) AS (_parse_timestamp(v, day_first)::DATE)",
    # Text as the file has it, without surrounding spaces; empty is NULL. (trim() is
    # Unicode-aware and slow: call it only when there is something to trim.)
    """CREATE OR REPLACE TEMP MACRO _clean(v) AS (
        nullif(CASE WHEN starts_with(v, ' ') OR ends_with(v, ' ') THEN trim(v) ELSE v END, ''))""",
)

_PARSERS = {  # contract type -> (macro, reason for a value it cannot read)
    "TIMESTAMP": ("_parse_timestamp", "unparseable_timestamp"),
    "DATE": ("_parse_date", "unparseable_date"),
    "DOUBLE": ("_parse_amount", "non_numeric_{column}"),
    "INTEGER": ("_parse_integer", "non_integer_{column}"),
    "BOOLEAN": ("_parse_boolean", "invalid_{column}"),
}

# --- report --------------------------------------------------------------------------------


@dataclass
class TableReport:
    table: str
    source_file: Path
    columns: dict[str, str]  # our column -> their column
    filled: dict[str, str]  # our column the file lacks -> what fills it
    extra_columns: list[str]  # their columns kept aside in raw.<table>_extra
    date_order: str | None  # "day first" / "month first" when the file has DD/MM-style dates
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates_collapsed: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> rows
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first lines
    seconds: float = 0.0

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined.values())

    @property
    def rejected_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


@dataclass
class ImportReport:
    tables: dict[str, TableReport]
    warehouse: str  # where the tables went, e.g. "DuckDB warehouse /path" or a BigQuery project
    load_time: datetime
    dropped_tables: list[str] = field(default_factory=list)
    committed: bool = False
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # the process's peak resident memory so far

    def summary(self) -> str:
        """Plain-text summary: per table rows read/loaded, quarantine by reason."""
        lines = []
        for t in self.tables.values():
            lines.append(
                f"{t.table} <- {t.source_file.name}: {t.rows_read:,} rows read, "
                f"{t.rows_loaded:,} loaded, {t.rows_quarantined:,} quarantined "
                f"({t.rejected_share:.2%}), {t.duplicates_collapsed:,} exact duplicates "
                f"collapsed, in {t.seconds:.1f}s"
            )
            for reason, rows in sorted(t.quarantined.items(), key=lambda kv: -kv[1]):
                shown = ", ".join(map(str, t.examples.get(reason, [])))
                lines.append(f"  {reason}: {rows:,} (lines {shown}{', ...' if rows > 3 else ''})")
            if t.date_order:
                lines.append(f"  dates read {t.date_order}")
            if t.extra_columns:
                lines.append(f"  kept aside in {RAW_SCHEMA}.{t.table}{EXTRA_SUFFIX}: "
                             + ", ".join(t.extra_columns))
            for column, filler in t.filled.items():
                lines.append(f"  {column}: {filler}")
        if self.dropped_tables:
            lines.append("dropped (not in this import): " + ", ".join(self.dropped_tables))
        return "\n".join(lines)


# --- mapping -------------------------------------------------------------------------------


def load_mapping(path: Path) -> dict[str, dict[str, Any]]:
    """Read a mapping file: ``{table: {their_column: our_column, ..., values: {our_column:
    {their_value: our_value}}}}``. Checked against the contract when the import runs."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ImportFailed(f"{path}: cannot read the mapping: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ImportFailed(
            f"{path}: expected a mapping of tables to {{their column: our column}}, e.g. "
            "'orders: {\"Order Number\": order_id}'; found: " + repr(data)[:200]
        )
    return {str(table): {str(k): v for k, v in block.items()} for table, block in data.items()}


def _split_mapping(table: str, block: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict]]:
    """A table's mapping as (their column -> our column, our column -> value translation)."""
    ours = RAW_TABLES[table]
    renames: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for their, target in block.items():
        if isinstance(target, dict) and their == "values":
            for column, translation in target.items():
                if column not in ours or not isinstance(translation, dict):
                    raise ImportFailed(
                        f"mapping for {table}: values must be {{our column: {{their value: "
                        f"our value}}}} with columns among {', '.join(ours)}; found "
                        f"{column!r}: {translation!r}"
                    )
                values[column] = {str(k).strip().lower(): str(v) for k, v in translation.items()}
        elif isinstance(target, str) and target in ours:
            renames[their] = target
        else:
            raise ImportFailed(
                f"mapping for {table}: {their!r} maps to {target!r}, which is not a column of "
                f"{table}; expected one of {', '.join(ours)}"
            )
    return renames, values


def _normalised(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _expected_columns(table: str) -> str:
    rules = RULES[table]
    needed = list(dict.fromkeys(rules.key + rules.required))
    expected = [c + ("?" if c == rules.synthesisable else "") for c in needed]
    optional = [c for c in RAW_TABLES[table] if c not in needed]
    return f"{', '.join(expected)} (optional: {', '.join(optional)})"


def _resolve_columns(
    table: str, source: Path, found: list[str], renames: dict[str, str], delimiter: str | None
) -> tuple[dict[str, str], list[str]]:
    """Our column -> their column, and their unknown columns (in file order)."""
    by_folded = {name.strip().lower(): name for name in found}
    resolved: dict[str, str] = {}
    for their, ours in renames.items():
        actual = their if their in found else by_folded.get(their.strip().lower())
        if actual is None:
            raise ImportFailed(
                f"{source.name}: the mapping for {table} names column {their!r}, which the "
                f"file does not have; found: {', '.join(map(repr, found))}"
            )
        if ours in resolved:
            raise ImportFailed(
                f"{source.name}: the mapping for {table} maps both {resolved[ours]!r} and "
                f"{actual!r} to {ours}; map one of them"
            )
        resolved[ours] = actual
    taken = set(resolved.values())
    for name in found:
        ours = _normalised(name)
        if name not in taken and ours in RAW_TABLES[table] and ours not in resolved:
            resolved[ours] = name
            taken.add(name)
    rules = RULES[table]
    needed = [c for c in rules.key + rules.required
              if c != rules.synthesisable and c not in resolved]
    if needed:
        shown = ", ".join(map(repr, found))
        unmapped = [name for name in found if name not in taken] or found
        hint = f"map yours with --mapping, e.g. {table}: {{'{unmapped[0]}': {needed[0]}}}"
        if len(found) == 1:
            guess = max(DELIMITER_CANDIDATES, key=found[0].count)
            if found[0].count(guess) and guess != delimiter:
                shown_guess = "\\t" if guess == "\t" else guess
                hint = f"is the delimiter '{shown_guess}'? pass --delimiter '{shown_guess}'"
        raise ImportFailed(
            f"{source.name}: expected columns {_expected_columns(table)}; missing: "
            f"{', '.join(needed)}; found: {shown} — {hint}"
        )
    resolved = {c: resolved[c] for c in RAW_TABLES[table] if c in resolved}
    return resolved, [name for name in found if name not in taken]


# --- reading files -------------------------------------------------------------------------


def _normalised_encoding(encoding: str | None) -> str:
    name = (encoding or "utf-8").strip().lower()
    if name not in ENCODINGS:
        raise ImportFailed(
            f"unsupported encoding {encoding!r}: expected utf-8 or latin-1 "
            "(convert other files to UTF-8 first, e.g. with iconv)"
        )
    return ENCODINGS[name]


def _normalised_delimiter(delimiter: str | None) -> str | None:
    if delimiter is None:
        return None
    value = {"\\t": "\t", "tab": "\t"}.get(delimiter.lower(), delimiter)
    if len(value) != 1:
        raise ImportFailed(f"--delimiter must be one character (or 'tab'); found {delimiter!r}")
    return value


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _file_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = suffixes[-1:] == [".gz"]
    last = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes or [""])[-1]
    if last in CSV_SUFFIXES:
        return "csv"
    if last in PARQUET_SUFFIXES and not compressed:
        return "parquet"
    raise ImportFailed(
        f"{path.name}: expected a .csv, .tsv, .txt (optionally .gz) or .parquet file; "
        f"found {''.join(path.suffixes) or 'no extension'}"
    )


def _check_utf8(path: Path, head: bytes) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(head) - 3:
            return  # a character cut by the sample's end
        line = head[: exc.start].count(b"\n") + 1
        raise ImportFailed(
            f"{path.name}: line {line} is not valid UTF-8 (byte 0x{head[exc.start]:02x}); "
            "the file looks Latin-1/Windows encoded — pass --encoding latin-1"
        ) from exc


def _csv_header(path: Path, table: str, encoding: str, delimiter: str | None
                ) -> tuple[list[str], str]:
    """The header's column names and the delimiter, read from the file's first line."""
    with _open_bytes(path) as f:
        head = f.read(UTF8_CHECK_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFailed(f"{path.name}: the file is UTF-16; save it as UTF-8 (or Latin-1)")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip():
        raise ImportFailed(
            f"{path.name}: the file is empty; expected a header line with columns "
            f"{_expected_columns(table)} and one row per record"
        )
    if encoding == "utf-8":
        _check_utf8(path, head)
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode(encoding, errors="replace")
    if delimiter is None:
        delimiter = max(DELIMITER_CANDIDATES,
                        key=lambda d: len(next(csv.reader([first_line], delimiter=d))))
    names = [n.strip() for n in next(csv.reader([first_line], delimiter=delimiter))]
    names = [n or f"column{i + 1}" for i, n in enumerate(names)]
    folded = [n.lower() for n in names]
    repeated = sorted({n for n in names if folded.count(n.lower()) > 1})
    if repeated:
        raise ImportFailed(f"{path.name}: the header repeats column(s) {', '.join(repeated)}")
    return names, delimiter


@dataclass
class _Staged:
    """One file: its columns as inspected, then its rows in temporary tables."""
    table: str
    source: Path
    kind: str  # csv or parquet
    delimiter: str | None
    found: list[str]  # the file's columns
    columns: dict[str, str]  # ours -> theirs
    extras: list[str]
    translations: dict[str, dict[str, str]]
    report: TableReport
    malformed: int = 0  # CSV records the reader rejected

    def staged_column(self, name: str) -> str:
        """A file column as staged: by position (c0, c1, ...), so no name can clash with
        anything, not even DuckDB's rowid."""
        return f"c{self.found.index(name)}"

    @property
    def src(self) -> str:
        return _ident(f"_src_{self.table}")

    @property
    def typed(self) -> str:
        return _ident(f"_typed_{self.table}")

    @property
    def rejects(self) -> str:
        return _ident(f"_rejects_{self.table}")

    @property
    def shifts(self) -> str:
        return _ident(f"_shifts_{self.table}")


def _inspect(con: duckdb.DuckDBPyConnection, table: str, path: Path, block: dict[str, Any],
             encoding: str, delimiter: str | None) -> _Staged:
    """Check a file's format, encoding and columns without reading its rows."""
    renames, translations = _split_mapping(table, block)
    kind = _file_kind(path)
    if kind == "csv":
        found, delimiter = _csv_header(path, table, encoding, delimiter)
    else:
        try:
            found = [row[0] for row in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({_str(str(path))})").fetchall()]
        except duckdb.Error as exc:
            raise ImportFailed(f"{path.name}: not a readable Parquet file ({exc})") from exc
    columns, extras = _resolve_columns(table, path, found, renames, delimiter)
    report = TableReport(table=table, source_file=path, columns=columns, filled={},
                         extra_columns=extras, date_order=None)
    return _Staged(table, path, kind, delimiter, found, columns, extras, translations, report)


def _read_rows(con: duckdb.DuckDBPyConnection, staged: _Staged, encoding: str) -> int:
    """Stream the file into _src_<table> (all text, columns c0, c1, ..., in file order, so
    rowid = position) and, for CSV, its malformed records into _rejects_<table>(line,
    csv_line, error)."""
    path = _str(str(staged.source))
    if staged.kind == "parquet":
        casts = ", ".join(f"CAST({_ident(n)} AS VARCHAR) AS {staged.staged_column(n)}"
                          for n in staged.found)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {staged.src} AS "
                    f"SELECT {casts} FROM read_parquet({path})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {staged.rejects} "
                    "(line BIGINT, csv_line VARCHAR, error VARCHAR)")
    else:
        columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(staged.found))) + "}"
        errors = f"_reject_errors_{staged.table}"
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {staged.src} AS SELECT * FROM read_csv({path}, "
                f"auto_detect = false, header = true, skip = 0, delim = "
                f"{_str(staged.delimiter)}, quote = '\"', escape = '\"', columns = {columns}, "
                f"encoding = {_str(encoding)}, store_rejects = true, rejects_table = "
                f"{_str(errors)}, rejects_scan = {_str(f'_reject_scans_{staged.table}')})"
            )
        except duckdb.Error as exc:
            raise ImportFailed(f"{staged.source.name}: cannot be read as CSV ({exc})") from exc
        bad_encoding = con.execute(f"SELECT min(line) FROM {_ident(errors)} "
                                   "WHERE error_type = 'INVALID ENCODING'").fetchone()[0]
        if bad_encoding is not None:
            raise ImportFailed(
                f"{staged.source.name}: line {bad_encoding} is not valid UTF-8; the file "
                "looks Latin-1/Windows encoded — pass --encoding latin-1"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {staged.rejects} AS SELECT line::BIGINT AS line, "
            "any_value(csv_line ORDER BY column_idx) AS csv_line, "
            "any_value(error_message ORDER BY column_idx) AS error "
            f"FROM {_ident(errors)} GROUP BY line ORDER BY line"
        )
    rows = con.execute(f"SELECT count(*) FROM {staged.src}").fetchone()[0]
    staged.malformed = con.execute(f"SELECT count(*) FROM {staged.rejects}").fetchone()[0]
    if rows == 0:
        raise ImportFailed(
            f"{staged.source.name}: no readable rows"
            + (f" ({staged.malformed:,} malformed: check the delimiter and quoting)"
               if staged.malformed else " (only a header); expected one row per record")
        )
    return rows


def _day_first(con: duckdb.DuckDBPyConnection, src: str, column: str) -> tuple[bool, str | None]:
    """Whether D/M/Y-shaped dates in the column are day first, and a label when any exist."""
    day_only, month_only, shaped = con.execute(
        f"SELECT count(*) FILTER (regexp_matches(v, {_str(_DAY_FIRST_ONLY)})), "
        f"count(*) FILTER (regexp_matches(v, {_str(_MONTH_FIRST_ONLY)})), count(*) "
        f"FROM (SELECT trim({_ident(column)}) AS v FROM {src} "
        f"WHERE regexp_matches({_ident(column)}, {_str(_DAY_MONTH_YEAR)}))"
    ).fetchone()
    if not shaped:
        return True, None
    if month_only > day_only:
        return False, f"month first (MM/DD/YYYY): {month_only:,} values can only be read so"
    return True, f"day first (DD/MM/YYYY): {day_only:,} values can only be read so"


def _text_sql(column: str, translation: dict[str, str] | None) -> str:
    text = f"_clean({_ident(column)})"
    if not translation:
        return text
    cases = " ".join(f"WHEN {_str(k)} THEN {_str(v)}" for k, v in translation.items())
    return f"CASE lower({text}) {cases} ELSE {text} END"


def _stage(con: duckdb.DuckDBPyConnection, staged: _Staged, encoding: str,
           load_time: datetime) -> None:
    """Read the file's rows, type and validate them, count what will be loaded."""
    started = time.perf_counter()
    rows = _read_rows(con, staged, encoding)
    _type_rows(con, staged, load_time)
    if all(c in staged.columns for c in RULES[staged.table].key):
        _mark_duplicates(con, staged)
    _count(con, staged, rows)
    staged.report.seconds = time.perf_counter() - started


def _type_rows(con: duckdb.DuckDBPyConnection, staged: _Staged, load_time: datetime) -> None:
    """Temp table _typed_<table>: the contract's columns typed and filled, the unknown
    columns as _extra_<i>, the row's position (_src_row) and its quarantine reason."""
    rules, contract, columns = RULES[staged.table], RAW_TABLES[staged.table], staged.columns
    texts, parsed, reasons, negatives = [], [], [], []
    for column, their in columns.items():
        data_type, text = contract[column], _ident("_text_" + column)
        texts.append(f"{_text_sql(staged.staged_column(their), staged.translations.get(column))}"
                     f" AS {text}")
        if column in rules.required:
            reasons.append(f"WHEN {text} IS NULL THEN {_str('null_' + column)}")
        if data_type in _PARSERS:
            macro, reason = _PARSERS[data_type]
            if data_type in ("TIMESTAMP", "DATE"):
                day_first, staged.report.date_order = _day_first(
                    con, staged.src, staged.staged_column(their))
                parsed.append(f"{macro}({text}, {str(day_first).lower()}) AS {_ident(column)}")
            else:
                parsed.append(f"{macro}({text}) AS {_ident(column)}")
            reasons.append(f"WHEN {text} IS NOT NULL AND {_ident(column)} IS NULL "
                           f"THEN {_str(reason.format(column=column))}")
        else:
            parsed.append(f"{text} AS {_ident(column)}")
        if column in rules.non_negative:
            negatives.append(f"WHEN {_ident(column)} < 0 THEN {_str('negative_' + column)}")
    reasons += negatives
    if rules.event_time in columns:
        reasons.append(f"WHEN {_ident(rules.event_time)} >= {_str(load_time.isoformat(' '))}"
                       "::TIMESTAMP THEN 'future_timestamp'")

    outputs, windowed = [], False
    for column, data_type in contract.items():
        if column == rules.synthesisable and _needs_synthesis(con, staged, column):
            outputs.append(f"{_synthesised_sql(rules, column, columns)} AS {_ident(column)}")
            windowed = True
            staged.report.filled[column] = (
                "synthesised where empty" if column in columns else "synthesised (not in the file)")
        elif column in columns:
            outputs.append(_ident(column))
        else:
            default = rules.defaults.get(column, "NULL")
            outputs.append(f"CAST({default} AS {data_type}) AS {_ident(column)}")
            staged.report.filled[column] = f"not in the file: {default}"
    extras_in = "".join(f", {staged.staged_column(name)} AS _extra_{i}"
                        for i, name in enumerate(staged.extras))
    extras_out = "".join(f", _extra_{i}" for i in range(len(staged.extras)))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {staged.typed} AS "
        f"WITH texts AS (SELECT rowid AS _src_row, {', '.join(texts)}{extras_in} "
        f"FROM {staged.src}), "
        f"parsed AS (SELECT *, {', '.join(parsed)} FROM texts) "
        f"SELECT _src_row, {', '.join(outputs)}{extras_out}, "
        f"CASE {' '.join(reasons)} END AS _reason, false AS _collapsed FROM parsed"
        # a window does not keep file order; the raw tables are written in file order
        + (" ORDER BY _src_row" if windowed else "")
    )


def _needs_synthesis(con: duckdb.DuckDBPyConnection, staged: _Staged, column: str) -> bool:
    if column not in staged.columns:
        return True
    their = staged.staged_column(staged.columns[column])
    return bool(con.execute(
        f"SELECT count(*) FROM {staged.src} WHERE _clean({their}) IS NULL").fetchone()[0])


def _synthesised_sql(rules: _TableRules, column: str, columns: dict[str, str]) -> str:
    """SQL for a missing key: a position (order lines) or a hash of the row's values and
    its ordinal among rows identical in them (a value the file lacks counts as empty)."""
    present = column in columns
    if rules.position_within:
        within = _ident(rules.position_within)
        value = f"row_number() OVER (PARTITION BY {within} ORDER BY _src_row)::INTEGER"
    else:
        hashed = [c for c in rules.hashed_id_from if c in columns]
        parts = [f"coalesce(CAST({_ident(c)} AS VARCHAR), '')" if c in columns else "''"
                 for c in rules.hashed_id_from]
        null_key = f"{_ident(column)} IS NULL" if present else "true"
        identical = "".join(f", {_ident(c)}" for c in hashed)
        ordinal = f"row_number() OVER (PARTITION BY {null_key}{identical} ORDER BY _src_row)"
        value = (f"'syn-' || left(md5(concat_ws('|', {', '.join(parts)}, "
                 f"CAST({ordinal} AS VARCHAR))), 16)")
    return f"coalesce({_ident(column)}, {value})" if present else value


def _mark_duplicates(con: duckdb.DuckDBPyConnection, staged: _Staged) -> None:
    """Rows sharing a key: identical ones collapse to the first, differing ones are all
    quarantined."""
    rules = RULES[staged.table]
    key = ", ".join(_ident(c) for c in rules.key)
    values = ", ".join(_ident(c) for c in RAW_TABLES[staged.table] if c not in rules.key)
    on = " AND ".join(f"t.{_ident(c)} = d.{_ident(c)}" for c in rules.key)
    dups = _ident(f"_duplicates_{staged.table}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {dups} AS "
        f"WITH repeated AS (SELECT {key} FROM {staged.typed} WHERE _reason IS NULL "
        f"GROUP BY {key} HAVING count(*) > 1) "
        f"SELECT {key}, count(DISTINCT ({values})) AS variants, min(_src_row) AS first_row "
        f"FROM {staged.typed} JOIN repeated USING ({key}) WHERE _reason IS NULL GROUP BY {key}"
    )
    if not con.execute(f"SELECT count(*) FROM {dups}").fetchone()[0]:
        return
    con.execute(
        f"UPDATE {staged.typed} AS t SET _reason = "
        f"{_str('conflicting_duplicate_' + rules.key_label)} FROM {dups} AS d "
        f"WHERE {on} AND d.variants > 1 AND t._reason IS NULL"
    )
    con.execute(
        f"UPDATE {staged.typed} AS t SET _collapsed = true FROM {dups} AS d "
        f"WHERE {on} AND d.variants = 1 AND t._src_row <> d.first_row AND t._reason IS NULL"
    )


def _line_sql(staged: _Staged, row: str) -> tuple[str, str]:
    """(join clause, expression) giving the source line of the row at position `row`.

    CSV: the header is line 1 and malformed records (held in the rejects table) take their
    own lines, so a row's line is its position + 2 + the malformed records before it."""
    if staged.kind == "parquet":
        return "", f"{row} + 1"
    if not staged.malformed:
        return "", f"{row} + 2"
    join = f"ASOF LEFT JOIN {staged.shifts} AS shift ON {row} >= shift.good_before"
    return join, f"{row} + 2 + coalesce(shift.malformed_before, 0)"


def _count(con: duckdb.DuckDBPyConnection, staged: _Staged, rows: int) -> None:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {staged.shifts} AS "
        "SELECT good_before, max(malformed_before) AS malformed_before FROM ("
        "SELECT line - 1 - row_number() OVER (ORDER BY line) AS good_before, "
        f"row_number() OVER (ORDER BY line) AS malformed_before FROM {staged.rejects}) "
        "GROUP BY good_before"
    )
    join, line = _line_sql(staged, "t._src_row")
    counts = con.execute(
        f"SELECT _reason, count(*), list(line ORDER BY line)[1:3] FROM ("
        f"SELECT t._reason, {line} AS line FROM {staged.typed} AS t {join} "
        f"WHERE t._reason IS NOT NULL "
        f"UNION ALL SELECT 'malformed_row', line FROM {staged.rejects}) GROUP BY _reason"
    ).fetchall()
    report = staged.report
    report.quarantined = {reason: n for reason, n, _ in sorted(counts)}
    report.examples = {reason: lines for reason, _, lines in sorted(counts)}
    report.rows_read = rows + staged.malformed
    report.duplicates_collapsed = con.execute(
        f"SELECT count(*) FROM {staged.typed} WHERE _collapsed").fetchone()[0]
    report.rows_loaded = report.rows_read - report.rows_quarantined - report.duplicates_collapsed


# --- writing -------------------------------------------------------------------------------


def _write(con: duckdb.DuckDBPyConnection, staged: _Staged) -> None:
    table, rules = staged.table, RULES[staged.table]
    contract = RAW_TABLES[table]
    select = ", ".join(f"CAST({_ident(c)} AS {t}) AS {_ident(c)}" for c, t in contract.items())
    con.execute(
        f"CREATE OR REPLACE TABLE {qualified(RAW_SCHEMA, table)} AS SELECT {select} "
        f"FROM {staged.typed} WHERE _reason IS NULL AND NOT _collapsed"
    )
    extra_table = qualified(RAW_SCHEMA, table + EXTRA_SUFFIX)
    if staged.extras:
        join, line = _line_sql(staged, "t._src_row")
        keys = ", ".join(f"t.{_ident(c)}" for c in rules.key)
        taken = set(rules.key) | {"source_line"}
        extras = ", ".join(f"t._extra_{i} AS {_ident(n + '_source' if n in taken else n)}"
                           for i, n in enumerate(staged.extras))
        something = " OR ".join(f"t._extra_{i} IS NOT NULL" for i in range(len(staged.extras)))
        con.execute(
            f"CREATE OR REPLACE TABLE {extra_table} AS SELECT {keys}, "
            f"CAST({line} AS BIGINT) AS source_line, {extras} FROM {staged.typed} AS t {join} "
            f"WHERE t._reason IS NULL AND NOT t._collapsed AND ({something})"
            + (" ORDER BY t._src_row" if join else "")
        )
    else:
        con.execute(f"DROP TABLE IF EXISTS {extra_table}")
    join, line = _line_sql(staged, "t._src_row")
    record = "json_object(" + ", ".join(f"{_str(n)}, s.{staged.staged_column(n)}"
                                        for n in staged.found) + ")"
    source = _str(str(staged.source))
    con.execute(
        f"INSERT INTO {qualified(RAW_SCHEMA, QUARANTINE_TABLE)} "
        f"SELECT {_str(table)}, {source}, line_number, reason, raw_record FROM ("
        f"SELECT {line} AS line_number, t._reason AS reason, {record} AS raw_record "
        f"FROM {staged.typed} AS t JOIN {staged.src} AS s ON s.rowid = t._src_row {join} "
        f"WHERE t._reason IS NOT NULL "
        f"UNION ALL SELECT line, 'malformed_row', json_object('csv_line', csv_line, "
        f"'error', error) FROM {staged.rejects}) ORDER BY line_number"
    )


def _write_all(con: duckdb.DuckDBPyConnection, staged: list[_Staged]) -> list[str]:
    """Replace the imported tables and the quarantine, drop the others: all or nothing."""
    given = {s.table for s in staged}
    quarantine_columns = ", ".join(f"{_ident(c)} {t}" for c, t in QUARANTINE_COLUMNS.items())
    dropped = []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(RAW_SCHEMA)}")
        con.execute(f"CREATE OR REPLACE TABLE {qualified(RAW_SCHEMA, QUARANTINE_TABLE)} "
                    f"({quarantine_columns})")
        for table in staged:
            _write(con, table)
        for table in RAW_TABLES:
            if table in given:
                continue
            for name in (table, table + EXTRA_SUFFIX):
                if _exists(con, RAW_SCHEMA, name):
                    con.execute(f"DROP TABLE {qualified(RAW_SCHEMA, name)}")
                    dropped.append(f"{RAW_SCHEMA}.{name}")
        for oracle in TRUTH_TABLES:
            if _exists(con, EVAL_SCHEMA, oracle):
                con.execute(f"DROP TABLE {qualified(EVAL_SCHEMA, oracle)}")
                dropped.append(f"{EVAL_SCHEMA}.{oracle}")
        checkpoint("import.tables_written")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return dropped


def _publish(con: duckdb.DuckDBPyConnection, staged: list[_Staged], target: Warehouse,
             scratch: Path) -> list[str]:
    """Copy what ``_write_all`` wrote to the scratch file into ``target`` (BigQuery):
    Parquet files, load jobs, then every table swapped and the stale ones dropped."""
    given = {s.table for s in staged}
    written = [name for table in sorted(given) for name in (table, table + EXTRA_SUFFIX)
               if _exists(con, RAW_SCHEMA, name)] + [QUARANTINE_TABLE]
    files = {}
    for name in written:
        path = scratch / f"{name}.parquet"
        con.execute(f"COPY {qualified(RAW_SCHEMA, name)} TO {_str(str(path))} (FORMAT parquet)")
        files[f"{RAW_SCHEMA}.{name}"] = [path]
    stale = [(RAW_SCHEMA, name) for table in RAW_TABLES for name in (table, table + EXTRA_SUFFIX)
             if f"{RAW_SCHEMA}.{name}" not in files] + [(EVAL_SCHEMA, truth)
                                                       for truth in TRUTH_TABLES]
    dropped = [f"{schema}.{name}" for schema, name in stale if target.table_exists(schema, name)]
    target.replace_tables(files, drop=dropped)
    return dropped


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? AND NOT temporary", [schema, table]
    ).fetchone()[0])


# --- entry point ---------------------------------------------------------------------------


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def import_files(
    files: dict[str, Path],
    mapping: dict[str, dict[str, Any]] | None = None,
    warehouse_path: Path | None = None,
    max_rejected_share: float = 0.05,
    load_time: datetime | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Load ``{table: file}`` (``orders`` required) into the warehouse's raw tables.

    ``mapping``: ``{table: {their_column: our_column, values: {our_column: {their: ours}}}}``
    (see ``load_mapping``). Raw tables not in ``files`` are dropped, so importing only
    orders leaves the optional tables absent and the platform builds fewer features;
    ``eval.oracle_labels`` (synthetic ground truth) is dropped too. Columns the files lack
    are filled: orders.status with 'completed', ids synthesised, everything else NULL.
    Unusable rows go to ``raw.quarantine`` with a reason; unknown columns to
    ``raw.<table>_extra``. Raises ``ImportFailed`` (and writes nothing) on an unreadable
    file or when a table's rejected share exceeds ``max_rejected_share``. The module
    docstring has every parsing and validation rule.
    """
    started = time.perf_counter()
    unknown = sorted(set(files) - set(RAW_TABLES))
    if unknown:
        raise ImportFailed(f"unknown table(s) {', '.join(unknown)}; expected some of "
                           f"{', '.join(RAW_TABLES)}")
    for table in REQUIRED_TABLES:
        if table not in files:
            raise ImportFailed(f"{table} is required: pass --{table.replace('_', '-')} FILE")
    mapping = mapping or {}
    unknown = sorted(set(mapping) - set(RAW_TABLES))
    if unknown:
        raise ImportFailed(f"the mapping names unknown table(s) {', '.join(unknown)}; expected "
                           f"some of {', '.join(RAW_TABLES)}")
    paths = {table: Path(path).expanduser().resolve() for table, path in files.items()}
    for table, path in paths.items():
        if not path.is_file():
            raise ImportFailed(f"{table}: no such file {path}")
    encoding = _normalised_encoding(encoding)
    delimiter = _normalised_delimiter(delimiter)
    load_time = _utc_naive(load_time or datetime.now(UTC))
    target = DuckDBWarehouse(warehouse_path) if warehouse_path else get_warehouse()
    with ExitStack() as stack:
        if isinstance(target, DuckDBWarehouse):
            warehouse = target.path
        else:  # parse, check and quarantine in a scratch DuckDB file, then load the results
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="import-", dir=_scratch_root())))
            warehouse = scratch / "import.duckdb"
        report = _import(paths, mapping, warehouse, target, max_rejected_share, load_time,
                         delimiter, encoding, started)
    report.committed = True
    return _finish(report, started)


def _scratch_root() -> Path:
    root = get_settings().local_dir / "import-scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _import(paths: dict[str, Path], mapping: dict, warehouse: Path, target: Warehouse,
            max_rejected_share: float, load_time: datetime, delimiter: str | None,
            encoding: str | None, started: float) -> ImportReport:
    with connect(warehouse) as con:
        con.execute(f"SET memory_limit = {_str(MEMORY_LIMIT)}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = true")  # rowid = position in the file
        for macro in _MACROS:
            con.execute(macro)
        staged = [_inspect(con, table, paths[table], mapping.get(table) or {}, encoding,
                           delimiter) for table in RAW_TABLES if table in paths]
        for table in staged:
            _stage(con, table, encoding, load_time)
        report = ImportReport(tables={s.table: s.report for s in staged},
                              warehouse=str(target), load_time=load_time)
        too_many = [t for t in report.tables.values() if t.rejected_share > max_rejected_share]
        if too_many:
            _finish(report, started)
            worst = "; ".join(
                f"{t.source_file.name}: {t.rejected_share:.1%} of {t.rows_read:,} rows rejected"
                for t in too_many)
            raise ImportFailed(
                f"{worst} (allowed {max_rejected_share:.1%}); nothing was imported. Fix the "
                f"file(s) or pass --max-rejected-share.\n{report.summary()}", report)
        report.dropped_tables = _write_all(con, staged)
        if not isinstance(target, DuckDBWarehouse):
            report.dropped_tables = _publish(con, staged, target, warehouse.parent)
    return report


def _finish(report: ImportReport, started: float) -> ImportReport:
    report.seconds = time.perf_counter() - started
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report
