"""`ml import`: messy exports land in the raw tables or the quarantine, never nowhere;
failures say what was expected and what was found; writes are atomic and idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.warehouse import importer
from ml.warehouse.importer import ImportFailed, import_files, load_mapping

LOAD_TIME = datetime(2025, 1, 1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop_export"
ORDERS_HEADER = "order_id,customer_id,ordered_at,revenue"


def write(path: Path, text: str, encoding: str = "utf-8", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def run(tmp_path: Path, files: dict[str, Path], **kwargs) -> importer.ImportReport:
    kwargs.setdefault("load_time", LOAD_TIME)
    kwargs.setdefault("max_rejected_share", 1.0)
    return import_files(files, warehouse_path=tmp_path / "w.duckdb", **kwargs)


def rows(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def tables(tmp_path: Path) -> set[str]:
    return {r[0] for r in rows(tmp_path, "SELECT schema_name || '.' || table_name "
                                         "FROM duckdb_tables()")}


def good_orders(tmp_path: Path, name: str = "orders.csv", n: int = 5) -> Path:
    lines = [f"o{i},c{i % 3},2024-01-{i + 1:02d} 10:00:00,{10 + i}.5" for i in range(n)]
    return write(tmp_path / name, "\n".join([ORDERS_HEADER, *lines]) + "\n")


MESSY = """\
Order Number,Customer Email,Created At,Total,Discount,Financial Status,Gift Note
1001,a@x.com,13/01/2024 10:05,"€12,50",0,paid,hello
1002,b@x.com,14/02/2024 11:00,"$1,234.56",1,refunded,
1003,,15/02/2024 11:00,10,0,paid,
1004,c@x.com,31/02/2024,10,0,paid,
1005,c@x.com,15/02/2024 11:00,-5,0,paid,
1006,c@x.com,15/02/2024 11:00,ten euros,0,paid,
1007,c@x.com,15/02/2099 11:00,5,0,paid,
1008,d@x.com,16/02/2024,5,0,paid,x
1008,d@x.com,16/02/2024,5,0,paid,y
1009,d@x.com,16/02/2024,5,0,paid,
1009,d@x.com,16/02/2024,6,0,paid,
1010,e@x.com,1700000000,12.50 EUR,0,voided,
1011,e@x.com
1012,e@x.com,2024-03-01T10:00:00+02:00,"1.234,50 €",,PAID,z
"""
MESSY_MAPPING = {"orders": {
    "Order Number": "order_id", "Customer Email": "customer_id", "Created At": "ordered_at",
    "Total": "revenue", "Financial Status": "status",
    "values": {"status": {"paid": "completed", "refunded": "returned", "voided": "cancelled"}},
}}


def test_messy_orders_are_loaded_or_quarantined_with_a_reason(tmp_path):
    report = run(tmp_path, {"orders": write(tmp_path / "orders.csv", MESSY)},
                 mapping=MESSY_MAPPING)

    quarantined = rows(tmp_path, "SELECT line_number, reason FROM raw.quarantine")
    assert quarantined == [
        (4, "null_customer_id"), (5, "unparseable_timestamp"), (6, "negative_revenue"),
        (7, "non_numeric_revenue"), (8, "future_timestamp"),
        (11, "conflicting_duplicate_order_id"), (12, "conflicting_duplicate_order_id"),
        (14, "malformed_row"),
    ]
    loaded = rows(tmp_path, "SELECT order_id, customer_id, ordered_at, revenue, discount, "
                            "status, order_channel FROM raw.orders")
    assert loaded == [
        ("1001", "a@x.com", datetime(2024, 1, 13, 10, 5), 12.5, 0.0, "completed", None),
        ("1002", "b@x.com", datetime(2024, 2, 14, 11, 0), 1234.56, 1.0, "returned", None),
        ("1008", "d@x.com", datetime(2024, 2, 16), 5.0, 0.0, "completed", None),
        ("1010", "e@x.com", datetime(2023, 11, 14, 22, 13, 20), 12.5, 0.0, "cancelled", None),
        ("1012", "e@x.com", datetime(2024, 3, 1, 8, 0), 1234.5, None, "completed", None),
    ]
    orders = report.tables["orders"]
    assert (orders.rows_read, orders.rows_loaded, orders.duplicates_collapsed) == (14, 5, 1)
    assert orders.rows_read == orders.rows_loaded + orders.rows_quarantined + 1
    assert orders.quarantined["conflicting_duplicate_order_id"] == 2
    assert orders.examples["malformed_row"] == [14]
    assert orders.extra_columns == ["Gift Note"]
    assert orders.date_order.startswith("day first")
    assert "discount" in orders.columns and orders.columns["discount"] == "Discount"

    record = json.loads(rows(tmp_path, "SELECT raw_record FROM raw.quarantine "
                                       "WHERE line_number = 7")[0][0])
    assert record == {"Order Number": "1006", "Customer Email": "c@x.com",
                      "Created At": "15/02/2024 11:00", "Total": "ten euros", "Discount": "0",
                      "Financial Status": "paid", "Gift Note": None}
    malformed = json.loads(rows(tmp_path, "SELECT raw_record FROM raw.quarantine "
                                          "WHERE reason = 'malformed_row'")[0][0])
    assert malformed["csv_line"] == "1011,e@x.com"
    # rows with something to keep aside, by id and line (after the malformed line 14)
    assert rows(tmp_path, "SELECT order_id, source_line, \"Gift Note\" FROM raw.orders_extra") == [
        ("1001", 2, "hello"), ("1008", 9, "x"), ("1012", 15, "z")]
    assert rows(tmp_path, "SELECT DISTINCT table_name, source_file FROM raw.quarantine") == [
        ("orders", str(tmp_path / "orders.csv"))]
    assert "null_customer_id: 1 (lines 4)" in report.summary()


def test_common_number_and_timestamp_formats_are_coerced(tmp_path):
    cases = [  # (ordered_at, revenue) as exported -> expected
        ("2024-05-01", "12,50", datetime(2024, 5, 1), 12.5),
        ("2024-05-01 14:05:09", "€12.50", datetime(2024, 5, 1, 14, 5, 9), 12.5),
        ("2024-05-01T14:05:09Z", "$1,234.56", datetime(2024, 5, 1, 14, 5, 9), 1234.56),
        ("2024-05-01T14:05:09-05:00", "12.50 EUR", datetime(2024, 5, 1, 19, 5, 9), 12.5),
        ("2024/05/01 14:05", "1.234,56 €", datetime(2024, 5, 1, 14, 5), 1234.56),
        ("01.05.2024 14:05", "1 234,56", datetime(2024, 5, 1, 14, 5), 1234.56),
        ("1714572309", "1'234.56", datetime(2024, 5, 1, 14, 5, 9), 1234.56),
        ("1714572309000", " 7 ", datetime(2024, 5, 1, 14, 5, 9), 7.0),
        ("25/12/2024", "-0", datetime(2024, 12, 25), 0.0),
        ("1/2/2024 9:05", "USD 3.5", datetime(2024, 2, 1, 9, 5), 3.5),
        ("2024-05-01", "1,234", datetime(2024, 5, 1), 1234.0),  # groups of three: thousands
        ("2024-05-01", "1.234.567", datetime(2024, 5, 1), 1234567.0),
    ]
    body = "\n".join(f'o{i},c,"{ts}","{amount}"' for i, (ts, amount, _, _) in enumerate(cases))
    run(tmp_path, {"orders": write(tmp_path / "o.csv", f"{ORDERS_HEADER}\n{body}\n")})
    assert rows(tmp_path, "SELECT ordered_at, revenue FROM raw.orders") == [
        (ts, revenue) for _, _, ts, revenue in cases]
    assert rows(tmp_path, "SELECT count(*) FROM raw.quarantine") == [(0,)]


def test_month_first_dates_are_read_month_first_when_the_column_says_so(tmp_path):
    body = "o1,c,03/14/2024,1\no2,c,12/25/2024,1\no3,c,01/02/2024,1\no4,c,13/02/2024,1\n"
    report = run(tmp_path, {"orders": write(tmp_path / "o.csv", f"{ORDERS_HEADER}\n{body}")})
    assert report.tables["orders"].date_order.startswith("month first")
    assert rows(tmp_path, "SELECT order_id, ordered_at FROM raw.orders") == [
        ("o1", datetime(2024, 3, 14)), ("o2", datetime(2024, 12, 25)),
        ("o3", datetime(2024, 1, 2))]
    assert rows(tmp_path, "SELECT line_number, reason FROM raw.quarantine") == [
        (5, "unparseable_timestamp")]


def test_orders_without_ids_get_deterministic_ids_and_defaults(tmp_path):
    header = "customer_id,ordered_at,revenue"
    same = "c1,2024-01-01 10:00:00,10"
    first = write(tmp_path / "a.csv", f"{header}\n{same}\nc2,2024-01-02,5\n{same}\n")
    report = run(tmp_path, {"orders": first})
    ids = [r[0] for r in rows(tmp_path, "SELECT order_id FROM raw.orders")]
    assert len(set(ids)) == 3 and all(i.startswith("syn-") and len(i) == 20 for i in ids)
    assert report.tables["orders"].filled == {
        "order_id": "synthesised (not in the file)", "discount": "not in the file: NULL",
        "status": "not in the file: 'completed'", "order_channel": "not in the file: NULL"}
    assert rows(tmp_path, "SELECT DISTINCT status, discount, order_channel FROM raw.orders") == [
        ("completed", None, None)]
    # Other rows, other order, other formatting: the same orders keep their ids.
    second = write(tmp_path / "b.csv", f"{header}\nc3,2024-02-01,1\nc2,02/01/2024,\"5,00\"\n"
                                       f"{same}\n{same}\n")
    run(tmp_path, {"orders": second})
    assert set(ids) < {r[0] for r in rows(tmp_path, "SELECT order_id FROM raw.orders")}


def test_other_tables_get_their_own_rules(tmp_path):
    files = {
        "orders": good_orders(tmp_path),
        "order_items": write(tmp_path / "items.csv", "order_id,product_id,quantity,price\n"
                             "o1,p1,2,\"4,50\"\no1,p2,1,3\no2,p1,1.5,3\no2,p3,-1,3\n"),
        "sessions": write(tmp_path / "sessions.csv", "customer_id,started_at,page_views\n"
                          ",2024-01-01 09:00,3\nc1,2024-01-01 09:00,4\n"),
        "marketing_touches": write(tmp_path / "touches.tsv", "customer_id\ttouched_at\tchannel"
                                   "\tclicked\nc1\t2024-01-01\tCRM\tyes\nc2\t2024-01-01\tSEM"
                                   "\tmaybe\n"),
    }
    report = run(tmp_path, files)
    assert rows(tmp_path, "SELECT order_id, line_number, product_id, quantity, price "
                          "FROM raw.order_items") == [
        ("o1", 1, "p1", 2, 4.5), ("o1", 2, "p2", 1, 3.0)]
    assert report.tables["order_items"].quarantined == {
        "non_integer_quantity": 1, "negative_quantity": 1}
    assert rows(tmp_path, "SELECT customer_id, page_views FROM raw.sessions") == [
        (None, 3), ("c1", 4)]  # anonymous visits are kept
    assert rows(tmp_path, "SELECT customer_id, clicked FROM raw.marketing_touches") == [
        ("c1", True)]
    assert report.tables["marketing_touches"].quarantined == {"invalid_clicked": 1}
    assert rows(tmp_path, "SELECT table_name, line_number, reason FROM raw.quarantine "
                          "ORDER BY ALL") == [
        ("marketing_touches", 3, "invalid_clicked"), ("order_items", 4, "non_integer_quantity"),
        ("order_items", 5, "negative_quantity")]


def test_semicolons_bom_and_gzip_just_work(tmp_path):
    import gzip

    text = "order_id;customer_id;ordered_at;revenue\no1;c1;2024-01-01;12,50\n"
    run(tmp_path, {"orders": write(tmp_path / "o.csv", text, bom=True)})
    assert rows(tmp_path, "SELECT order_id, revenue FROM raw.orders") == [("o1", 12.5)]
    (tmp_path / "o.csv.gz").write_bytes(gzip.compress(text.encode()))
    run(tmp_path, {"orders": tmp_path / "o.csv.gz"})
    assert rows(tmp_path, "SELECT order_id, revenue FROM raw.orders") == [("o1", 12.5)]


def test_column_names_cannot_clash_with_duckdb(tmp_path):
    text = 'RowID,"we""ird",order_id,customer_id,ordered_at,revenue\n7,x,o2,c,2024-01-02,1\n' \
           "3,y,o1,c,2024-01-01,-1\n"
    run(tmp_path, {"orders": write(tmp_path / "o.csv", text)})
    assert rows(tmp_path, 'SELECT order_id, source_line, "RowID", "we""ird" '
                          "FROM raw.orders_extra") == [("o2", 2, "7", "x")]
    assert rows(tmp_path, "SELECT line_number, raw_record FROM raw.quarantine") == [
        (3, '{"RowID":"3","we\\"ird":"y","order_id":"o1","customer_id":"c",'
            '"ordered_at":"2024-01-01","revenue":"-1"}')]


def test_wrong_delimiter_fails_with_the_one_to_use(tmp_path):
    path = write(tmp_path / "orders.csv", "id;customer;date;amount\n1;a;01/02/2024;12,50\n")
    with pytest.raises(ImportFailed) as failure:
        run(tmp_path, {"orders": path}, delimiter=",")
    message = str(failure.value)
    assert message.startswith("orders.csv: expected columns order_id?, customer_id, ordered_at, "
                              "revenue (optional: discount, status, order_channel)")
    assert "found: 'id;customer;date;amount'" in message
    assert message.endswith("is the delimiter ';'? pass --delimiter ';'")


def test_latin1_fails_with_a_hint_or_is_transcoded_when_asked(tmp_path):
    path = write(tmp_path / "o.csv", f"{ORDERS_HEADER}\no1,José,2024-01-01,1\n", "latin-1")
    with pytest.raises(ImportFailed, match=r"o.csv: line 2 is not valid UTF-8 .*encoding latin-1"):
        run(tmp_path, {"orders": path})
    run(tmp_path, {"orders": path}, encoding="latin-1")
    assert rows(tmp_path, "SELECT customer_id FROM raw.orders") == [("José",)]
    # Past the sniffed head, DuckDB's reader finds it (and the line).
    body = "".join(f"o{i},customer-{i:07d},2024-01-01,1\n" for i in range(40_000))
    late = write(tmp_path / "late.csv", f"{ORDERS_HEADER}\n{body}o,Zoë,2024-01-01,1\n", "latin-1")
    with pytest.raises(ImportFailed, match=r"late.csv: line 40002 is not valid UTF-8.*latin-1"):
        run(tmp_path, {"orders": late})


@pytest.mark.parametrize(("text", "message"), [
    ("", "o.csv: the file is empty; expected a header line with columns order_id?, "
         "customer_id, ordered_at, revenue"),
    ("\ufeff\n", "o.csv: the file is empty"),
    (f"{ORDERS_HEADER}\n", "o.csv: no readable rows (only a header)"),
    ("order_id,customer_id,revenue\no1,c1,1\n",
     "o.csv: expected columns order_id?, customer_id, ordered_at, revenue (optional: discount, "
     "status, order_channel); missing: ordered_at; found: 'order_id', 'customer_id', 'revenue'"),
    ("a,A\n1,2\n", "o.csv: the header repeats column(s) A, a"),
])
def test_unusable_files_fail_fast_saying_what_was_expected(tmp_path, text, message):
    with pytest.raises(ImportFailed, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        run(tmp_path, {"orders": write(tmp_path / "o.csv", text)})
    assert not (tmp_path / "w.duckdb").exists() or "raw.orders" not in tables(tmp_path)


def test_bad_arguments_fail_fast(tmp_path):
    orders = good_orders(tmp_path)
    with pytest.raises(ImportFailed, match="orders is required: pass --orders FILE"):
        run(tmp_path, {"customers": orders})
    with pytest.raises(ImportFailed, match="unknown table"):
        run(tmp_path, {"orders": orders, "returns": orders})
    with pytest.raises(ImportFailed, match=r"expected a \.csv, \.tsv, \.txt .* or \.parquet"):
        run(tmp_path, {"orders": write(tmp_path / "o.xlsx", "x")})
    with pytest.raises(ImportFailed, match="'Order Nr', which the file does not have"):
        run(tmp_path, {"orders": orders}, mapping={"orders": {"Order Nr": "order_id"}})
    with pytest.raises(ImportFailed, match="'Total' maps to 'amount', which is not a column"):
        run(tmp_path, {"orders": orders}, mapping={"orders": {"Total": "amount"}})
    with pytest.raises(ImportFailed, match="unsupported encoding 'utf-16'"):
        run(tmp_path, {"orders": orders}, encoding="utf-16")


def test_too_many_rejects_fails_and_writes_nothing(tmp_path):
    run(tmp_path, {"orders": good_orders(tmp_path)})
    before = rows(tmp_path, "SELECT * FROM raw.orders")
    bad = write(tmp_path / "bad.csv", f"{ORDERS_HEADER}\no1,c,2024-01-01,1\no2,,2024-01-01,1\n"
                                      "o3,c,n/a,1\n")
    with pytest.raises(ImportFailed) as failure:
        run(tmp_path, {"orders": bad}, max_rejected_share=0.05)
    assert str(failure.value).startswith("bad.csv: 66.7% of 3 rows rejected (allowed 5.0%); "
                                         "nothing was imported")
    assert "unparseable_timestamp: 1 (lines 4)" in str(failure.value)
    report = failure.value.report
    assert not report.committed and report.tables["orders"].quarantined == {
        "null_customer_id": 1, "unparseable_timestamp": 1}
    assert report.tables["orders"].date_order is None  # "n/a" is no DD/MM date
    assert rows(tmp_path, "SELECT * FROM raw.orders") == before


def test_a_failed_import_leaves_the_previous_data_exactly_as_it_was(tmp_path, monkeypatch):
    customers = write(tmp_path / "customers.csv", "customer_id,region\nc0,DE\nc1,FR\n")
    run(tmp_path, {"orders": good_orders(tmp_path), "customers": customers})
    snapshot = {t: rows(tmp_path, f"SELECT * FROM {t}") for t in sorted(tables(tmp_path))}
    assert set(snapshot) == {"raw.orders", "raw.customers", "raw.quarantine"}

    # The second file is broken: nothing is written.
    broken = write(tmp_path / "broken.csv", "id,region\nc0,DE\n")
    with pytest.raises(ImportFailed, match="broken.csv: expected columns customer_id"):
        run(tmp_path, {"orders": good_orders(tmp_path, "new.csv", 3), "customers": broken})
    assert {t: rows(tmp_path, f"SELECT * FROM {t}") for t in sorted(tables(tmp_path))} == snapshot

    # Writing fails halfway through the transaction: rolled back.
    write_table = importer._write

    def fail_on_customers(con, staged):
        if staged.table == "customers":
            raise RuntimeError("disk full")
        write_table(con, staged)

    monkeypatch.setattr(importer, "_write", fail_on_customers)
    with pytest.raises(RuntimeError, match="disk full"):
        run(tmp_path, {"orders": good_orders(tmp_path, "new.csv", 3), "customers": customers})
    assert {t: rows(tmp_path, f"SELECT * FROM {t}") for t in sorted(tables(tmp_path))} == snapshot


def test_importing_twice_gives_identical_tables(tmp_path):
    files = {"orders": write(tmp_path / "orders.csv", MESSY)}
    dump = ("SELECT * FROM raw.orders", "SELECT * FROM raw.orders_extra",
            "SELECT * FROM raw.quarantine")
    run(tmp_path, files, mapping=MESSY_MAPPING)
    first = [rows(tmp_path, sql) for sql in dump]
    run(tmp_path, files, mapping=MESSY_MAPPING)
    assert [rows(tmp_path, sql) for sql in dump] == first


def test_tables_not_in_the_import_are_dropped(tmp_path):
    customers = write(tmp_path / "customers.csv", "customer_id,region,vip\nc0,DE,yes\n")
    run(tmp_path, {"orders": good_orders(tmp_path), "customers": customers})
    assert {"raw.customers", "raw.customers_extra"} <= tables(tmp_path)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA eval; CREATE TABLE eval.oracle_labels AS SELECT 1 AS x; "
                    "CREATE TABLE eval.campaign_effects AS SELECT 1 AS x")
    report = run(tmp_path, {"orders": good_orders(tmp_path)})
    assert report.dropped_tables == ["raw.customers", "raw.customers_extra", "eval.oracle_labels",
                                     "eval.campaign_effects"]
    assert tables(tmp_path) == {"raw.orders", "raw.quarantine"}


def test_mapping_from_yaml(tmp_path):
    mapping_file = write(tmp_path / "mapping.yml", """
orders:
  Order Number: order_id
  customer email: customer_id     # matched case-insensitively
  Created At: ordered_at
  Total: revenue
  Financial Status: status
  values:
    status: {Paid: completed, refunded: returned, voided: cancelled}
""")
    mapping = load_mapping(mapping_file)
    assert mapping["orders"]["values"]["status"]["Paid"] == "completed"
    run(tmp_path, {"orders": write(tmp_path / "orders.csv", MESSY)}, mapping=mapping)
    assert rows(tmp_path, "SELECT DISTINCT status FROM raw.orders ORDER BY 1") == [
        ("cancelled",), ("completed",), ("returned",)]
    with pytest.raises(ImportFailed, match="expected a mapping of tables"):
        load_mapping(write(tmp_path / "bad.yml", "- orders\n"))


def test_parquet_rows_are_numbered_by_position(tmp_path):
    table = pa.table({
        "order_id": pa.array([1, 2, 3], pa.int64()),
        "customer_id": pa.array(["c1", None, "c2"]),
        "ordered_at": pa.array([datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)],
                               pa.timestamp("us")),
        "revenue": pa.array([1.5, 2.0, 3.25]),
        "coupon": pa.array(["A", None, "B"]),
    })
    pq.write_table(table, tmp_path / "orders.parquet")
    run(tmp_path, {"orders": tmp_path / "orders.parquet"})
    assert rows(tmp_path, "SELECT order_id, ordered_at, revenue FROM raw.orders") == [
        ("1", datetime(2024, 1, 1), 1.5), ("3", datetime(2024, 1, 3), 3.25)]
    assert rows(tmp_path, "SELECT line_number, reason FROM raw.quarantine") == [
        (2, "null_customer_id")]
    assert rows(tmp_path, "SELECT * FROM raw.orders_extra") == [("1", 1, "A"), ("3", 3, "B")]


def test_example_export_imports_with_near_zero_rejects(tmp_path):
    report = run(tmp_path, {"orders": EXAMPLE / "orders.csv",
                            "customers": EXAMPLE / "customers.csv"},
                 mapping=load_mapping(EXAMPLE / "mapping.yml"), load_time=None,
                 max_rejected_share=0.01)
    orders, customers = report.tables["orders"], report.tables["customers"]
    assert orders.rows_loaded > 2_000 and customers.rows_loaded == 800
    assert orders.rows_quarantined <= 2 and customers.rows_quarantined == 0
    assert orders.extra_columns == ["Payment Method"]
    assert rows(tmp_path, "SELECT DISTINCT status FROM raw.orders ORDER BY 1") == [
        ("cancelled",), ("completed",), ("returned",)]
    assert rows(tmp_path, "SELECT count(*) FROM raw.orders o ANTI JOIN raw.customers c "
                          "USING (customer_id)") == [(0,)]
    assert rows(tmp_path, "SELECT count(DISTINCT acquisition_channel) FROM raw.customers "
                          "WHERE acquisition_channel IN ('SEM', 'SEO', 'CRM', 'Display', "
                          "'Direct', 'Referral')") == [(6,)]


def test_example_export_is_what_its_script_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLE / "make_example.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("orders.csv", "customers.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


@pytest.fixture(scope="module")
def parser():
    with duckdb.connect() as con:
        for macro in importer._MACROS:
            con.execute(macro)
        yield con


@settings(max_examples=200, deadline=None)
@given(cents=st.integers(-10**9, 10**9),
       style=st.sampled_from(["plain", "comma", "eu", "us", "us_whole", "symbol", "code",
                              "swiss"]))
def test_amounts_in_common_formats_parse_to_their_value(parser, cents, style):
    value = abs(cents) / 100
    whole, frac = f"{value:,.2f}".split(".")
    sign = "-" if cents < 0 else ""
    text = {
        "plain": f"{sign}{value:.2f}",
        "comma": f"{sign}{value:.2f}".replace(".", ","),
        "eu": f"{sign}{whole.replace(',', '.')},{frac} €",
        "us": f"{sign}${whole}.{frac}",
        "us_whole": f"{sign}${whole}" if frac == "00" else f"{sign}${whole}.{frac}",
        "symbol": f"{sign}€{whole.replace(',', '.')},{frac}",
        "code": f"{sign}{whole}.{frac} EUR",
        "swiss": f"{sign}{whole.replace(',', chr(39))}.{frac}",
    }[style]
    parsed = parser.execute("SELECT _parse_amount(_clean(?))", [text]).fetchone()[0]
    assert parsed == pytest.approx(cents / 100, abs=1e-9), text
