"""The warehouse interface on BigQuery (google-cloud-bigquery + the Storage Read API).

- Logical schemas are datasets ``<prefix>_<schema>`` (raw may point at the retailer's own
  project and dataset); datasets are created in ``BQ_LOCATION`` on first write.
- Reads: large results are materialised into a scratch table (CREATE TABLE AS, expiring
  after a day) and streamed as Arrow record batches through the Storage Read API, so
  memory stays bounded; small results come back over REST.
- Writes: data is loaded into scratch tables by load jobs (Parquet, resumable upload),
  then copied over the target (whole tables) or merged into it (a key's rows): one
  statement each, so a failure leaves the old rows and a re-run replaces, never appends.
- Values are query parameters (positional ``?``), never string-built.
- Every query is dry-run first and its estimated bytes scanned logged under its stage.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from ml.settings import BigQuerySettings
from ml.warehouse.base import Data, Warehouse

log = logging.getLogger(__name__)

SCHEMAS = ("raw", "eval", "seeds", "staging", "intermediate", "marts", "ml")
SCRATCH = "scratch"  # logical schema of staging tables (dataset <prefix>_scratch)
SCRATCH_TTL = "INTERVAL 24 HOUR"  # left-overs of a killed run expire on their own
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def _bq_type(arrow_type: pa.DataType) -> str:
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks = (
        (pa.types.is_boolean, "BOOL"),
        (pa.types.is_integer, "INT64"),
        (pa.types.is_floating, "FLOAT64"),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), "STRING"),
        (pa.types.is_null, "STRING"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
        (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x), "BYTES"),
        (pa.types.is_decimal, "BIGNUMERIC" if pa.types.is_decimal(t) and t.scale > 9
         else "NUMERIC"),
    )
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "DATETIME"
    for check, name in checks:
        if check(t):
            return name
    raise TypeError(f"no BigQuery type for Arrow type {arrow_type}")


def bigquery_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(f.name, _bq_type(f.type)) for f in schema]


def _param_type(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "BOOL"
    if isinstance(value, (int, np.integer)):
        return "INT64"
    if isinstance(value, (float, np.floating)):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str) or value is None:
        return "STRING"
    raise TypeError(f"cannot pass {type(value).__name__} {value!r} as a BigQuery parameter")


def query_parameter(value: Any):
    """A positional parameter for ``?``, typed from the Python value."""
    if isinstance(value, (list, tuple)):
        kind = _param_type(value[0]) if value else "STRING"
        return bigquery.ArrayQueryParameter(None, kind, [_plain(v) for v in value])
    return bigquery.ScalarQueryParameter(None, _param_type(value), _plain(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "\\`") + "`"


# Legacy type names the API reports -> their GoogleSQL DDL names.
_DDL_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


class BigQueryWarehouse(Warehouse):
    kind = "bigquery"

    def __init__(self, settings: BigQuerySettings):
        self.settings = settings
        self._client: bigquery.Client | None = None
        self._read_client = None
        self._datasets: set[str] = set()
        self.estimates: list[tuple[str, int | None]] = []  # (stage, bytes) of this instance

    # --- clients ----------------------------------------------------------------------

    def _credentials(self):
        if self.settings.api_endpoint:  # a local emulator takes no credentials
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        if self.settings.keyfile:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_file(
                self.settings.keyfile, scopes=SCOPES)
        import google.auth

        credentials, _ = google.auth.default(scopes=SCOPES)  # ADC: workload identity, gcloud
        return credentials

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            from google.api_core.client_options import ClientOptions

            options = (ClientOptions(api_endpoint=self.settings.api_endpoint)
                       if self.settings.api_endpoint else None)
            self._client = bigquery.Client(project=self.settings.project,
                                           credentials=self._credentials(),
                                           location=self.settings.location,
                                           client_options=options)
        return self._client

    @property
    def read_client(self):
        """The Storage Read API client; None against an emulator without a gRPC endpoint
        (the client library does not send Storage reads to ``api_endpoint``)."""
        if self._read_client is None:
            from google.cloud import bigquery_storage

            if self.settings.storage_endpoint:
                import grpc
                from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
                    BigQueryReadGrpcTransport,
                )

                # Arrow pages exceed gRPC's 4 MiB default (Google's own transport lifts it too)
                channel = grpc.insecure_channel(self.settings.storage_endpoint, options=[
                    ("grpc.max_receive_message_length", -1),
                    ("grpc.max_send_message_length", -1)])
                self._read_client = bigquery_storage.BigQueryReadClient(
                    transport=BigQueryReadGrpcTransport(channel=channel))
            elif self.settings.api_endpoint:
                return None
            else:
                self._read_client = bigquery_storage.BigQueryReadClient(
                    credentials=self.client._credentials)
        return self._read_client

    # --- names --------------------------------------------------------------------------

    def table_id(self, schema: str, table: str) -> str:
        return f"{self.settings.project_of(schema)}.{self.settings.dataset(schema)}.{table}"

    def __str__(self) -> str:
        return (f"BigQuery project {self.settings.project} "
                f"(datasets {self.settings.dataset_prefix}_*)")

    def relation(self, schema: str, table: str) -> str:
        return _quote(self.table_id(schema, table))

    def quote(self, identifier: str) -> str:
        return _quote(identifier)

    def _ensure_dataset(self, schema: str) -> None:
        dataset = f"{self.settings.project_of(schema)}.{self.settings.dataset(schema)}"
        if dataset not in self._datasets:
            try:  # look first: creating needs bigquery.datasets.create on the project
                self.client.get_dataset(dataset)
            except NotFound:
                ref = bigquery.Dataset(dataset)
                ref.location = self.settings.location
                self.client.create_dataset(ref, exists_ok=True)
            self._datasets.add(dataset)

    def _scratch_id(self) -> str:
        self._ensure_dataset(SCRATCH)
        return self.table_id(SCRATCH, f"t_{uuid.uuid4().hex}")

    def _drop(self, table_id: str) -> None:
        self.client.delete_table(table_id, not_found_ok=True)

    # --- metadata -----------------------------------------------------------------------

    def _table(self, schema: str, table: str) -> bigquery.Table | None:
        try:
            return self.client.get_table(self.table_id(schema, table))
        except NotFound:
            return None

    def table_exists(self, schema: str, table: str) -> bool:
        return self._table(schema, table) is not None

    def columns(self, schema: str, table: str) -> list[str]:
        found = self._table(schema, table)
        return [field.name for field in found.schema] if found else []

    def tables(self) -> list[tuple[str, str]]:
        found = []
        for schema in SCHEMAS:
            dataset = f"{self.settings.project_of(schema)}.{self.settings.dataset(schema)}"
            try:
                found += [(schema, t.table_id) for t in self.client.list_tables(dataset)
                          if t.table_type == "TABLE"]
            except NotFound:
                continue
        return sorted(found)

    # --- queries ------------------------------------------------------------------------

    def _config(self, params: Sequence[Any], **kwargs) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(query_parameters=[query_parameter(v) for v in params],
                                       **kwargs)

    def estimate_bytes(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        job = self.client.query(sql, job_config=self._config(params, dry_run=True,
                                                              use_query_cache=False))
        return job.total_bytes_processed

    def _run(self, sql: str, params: Sequence[Any], stage: str) -> bigquery.QueryJob:
        try:
            estimate = self.estimate_bytes(sql, params)
        except NotFound:  # e.g. IF NOT EXISTS on a table that does not exist yet
            estimate = None
        self.estimates.append((stage, estimate))
        log.info("BigQuery %s: dry run estimates %s bytes scanned", stage,
                 "?" if estimate is None else f"{estimate:,}")
        job = self.client.query(sql, job_config=self._config(params))
        job.result()
        return job

    def query(self, sql: str, params: Sequence[Any] = (), stage: str = "query") -> pa.Table:
        return self._run(sql, params, stage).result().to_arrow(create_bqstorage_client=False)

    def read_batches(self, sql: str, params: Sequence[Any] = (), batch_rows: int = 100_000,
                     stage: str = "read") -> Iterator[pa.RecordBatch]:
        scratch = self._scratch_id()
        self._run(f"CREATE TABLE {_quote(scratch)} OPTIONS (expiration_timestamp = "
                  f"TIMESTAMP_ADD(CURRENT_TIMESTAMP(), {SCRATCH_TTL})) AS {sql}", params, stage)
        try:
            table = self.client.get_table(scratch)
            if self.read_client is not None:
                rows = self.client.list_rows(table)
                batches = rows.to_arrow_iterable(bqstorage_client=self.read_client)
            else:
                batches = self.client.list_rows(table, page_size=batch_rows).to_arrow_iterable()
            for batch in batches:
                for offset in range(0, batch.num_rows, batch_rows):
                    yield batch.slice(offset, batch_rows)
        finally:
            self._drop(scratch)

    # --- writes -------------------------------------------------------------------------

    def _stage(self, data: Data) -> str:
        """Load an Arrow table or Parquet files into a new scratch table; its id."""
        scratch = self._scratch_id()
        if isinstance(data, pa.Table):
            schema = data.schema
        else:
            files = [Path(f) for f in data]
            if not files:
                raise ValueError("no Parquet files to load")
            schema = pq.read_schema(files[0])
        table = bigquery.Table(scratch, schema=bigquery_schema(schema))
        table.expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        self.client.create_table(table)
        try:
            if isinstance(data, pa.Table):
                with tempfile.TemporaryDirectory(prefix="bq-load-") as tmp:
                    path = Path(tmp) / "data.parquet"
                    pq.write_table(data, path, coerce_timestamps="us",
                                   allow_truncated_timestamps=True)
                    self._load(path, scratch)
            else:
                for path in files:
                    self._load(path, scratch)
        except BaseException:
            self._drop(scratch)
            raise
        return scratch

    def _load(self, path: Path, table_id: str) -> None:
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET,
                                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
        with path.open("rb") as handle:  # no size given: a resumable upload
            self.client.load_table_from_file(handle, table_id, job_config=config).result()

    def replace_tables(self, tables: Mapping[str, Data], drop: Iterable[str] = ()) -> None:
        staged: dict[str, str] = {}
        try:
            for name, data in tables.items():  # every load first: a bad one changes nothing
                staged[name] = self._stage(data)
            for name, scratch in staged.items():
                schema, _, table = name.partition(".")
                self._ensure_dataset(schema)
                config = bigquery.CopyJobConfig(
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
                self.client.copy_table(scratch, self.table_id(schema, table),
                                       job_config=config).result()
            for name in drop:
                schema, _, table = name.partition(".")
                self._drop(self.table_id(schema, table))
        finally:
            for scratch in staged.values():
                self._drop(scratch)

    def replace_rows(self, schema: str, table: str, select_sql: str,
                     params: Sequence[Any] = (), key: Mapping[str, Any] | None = None,
                     sources: Mapping[str, Data] | None = None,
                     partition_by: str | None = None, cluster_by: Sequence[str] = ()) -> int:
        key = dict(key or {})
        scratch: list[str] = []
        try:
            names = {}
            for name, data in (sources or {}).items():
                scratch.append(self._stage(data))
                names[name] = _quote(scratch[-1])
            result = self._scratch_id()
            scratch.append(result)
            self._run(f"CREATE TABLE {_quote(result)} AS {select_sql.format(**names)}", params,
                      stage=f"{schema}.{table} new rows")
            self._ensure_dataset(schema)
            target = self.relation(schema, table)
            layout = (f" PARTITION BY {partition_by}" if partition_by else "") + (
                f" CLUSTER BY {', '.join(map(_quote, cluster_by))}" if cluster_by else "")
            self._run(f"CREATE TABLE IF NOT EXISTS {target}{layout} AS "
                      f"SELECT * FROM {_quote(result)} LIMIT 0", (), stage=f"{schema}.{table} ddl")
            incoming = self.client.get_table(result).schema
            self._add_missing_columns(schema, table, incoming)
            columns = [f.name for f in incoming]
            names_sql = ", ".join(map(_quote, columns))
            where = " AND ".join(f"T.{_quote(c)} = ?" for c in key)
            if key:
                self._run(f"MERGE {target} T USING {_quote(result)} S ON FALSE "
                          f"WHEN NOT MATCHED BY SOURCE AND {where} THEN DELETE "
                          f"WHEN NOT MATCHED THEN INSERT ({names_sql}) VALUES "
                          f"({', '.join('S.' + _quote(c) for c in columns)})",
                          list(key.values()), stage=f"{schema}.{table} merge")
                return int(self.scalar(f"SELECT count(*) FROM {target} T WHERE {where}",
                                       list(key.values()), stage=f"{schema}.{table} count"))
            job = self._run(f"INSERT INTO {target} ({names_sql}) SELECT {names_sql} "
                            f"FROM {_quote(result)}", (), stage=f"{schema}.{table} append")
            return int(job.num_dml_affected_rows or 0)
        finally:
            for table_id in scratch:
                self._drop(table_id)

    def _add_missing_columns(self, schema: str, table: str,
                             incoming: Sequence[bigquery.SchemaField]) -> None:
        """Additive schema evolution: the incoming columns the table lacks are added,
        nullable (``ALTER TABLE ... ADD COLUMN``, in place); older rows read NULL there."""
        have = set(self.columns(schema, table))
        for field in incoming:
            if field.name not in have:
                kind = _DDL_TYPES.get(field.field_type, field.field_type)
                self._run(f"ALTER TABLE {self.relation(schema, table)} ADD COLUMN IF NOT EXISTS "
                          f"{_quote(field.name)} {kind}", (),
                          stage=f"{schema}.{table} add column {field.name}")

    def shard_predicate(self, column: str, shards: int, shard: int) -> str:
        return (f"MOD(ABS(FARM_FINGERPRINT(CAST({_quote(column)} AS STRING))), {int(shards)}) "
                f"= {int(shard)}")
