"""SQLite persistence for Omen: schema and migrations, the batching writer, read queries.

The daemon writes only through `StoreWriter`; `omen logs`, `omen tui` and daemon startup
read through `StoreReader`. This package knows SQL and nothing else.
"""

from store.errors import StoreError, StoreMissingError, StoreUnusableError
from store.reader import StoreReader
from store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    GpuSample,
    HealthSample,
    Level,
    RequestRecord,
    level_for,
)
from store.redact import REDACTED, redact_body
from store.rollups import day_name, hour_name
from store.rows import (
    AuditRow,
    BudgetChangeRow,
    BudgetOverrideRow,
    ContainerSpend,
    DrainRow,
    GpuRow,
    HealthRow,
    MinuteTraffic,
    RequestRow,
    SpendDailyRow,
    SpendTotals,
)
from store.schema import SCHEMA_VERSION, check_store
from store.writer import StoreWriter, WriterStats

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "AuditRecord",
    "AuditRow",
    "BudgetChange",
    "BudgetChangeRow",
    "BudgetOverrideRow",
    "ContainerSpend",
    "DrainChange",
    "DrainRow",
    "GpuRow",
    "GpuSample",
    "HealthRow",
    "HealthSample",
    "Level",
    "MinuteTraffic",
    "RequestRecord",
    "RequestRow",
    "SpendDailyRow",
    "SpendTotals",
    "StoreError",
    "StoreMissingError",
    "StoreReader",
    "StoreUnusableError",
    "StoreWriter",
    "WriterStats",
    "check_store",
    "day_name",
    "hour_name",
    "level_for",
    "redact_body",
]
