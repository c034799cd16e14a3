"""Persistence for Omen (SQLite, or PostgreSQL for a fleet): schema and migrations, the
batching writer, read queries.

The daemon writes only through `StoreWriter`; `omen logs`, `omen tui` and daemon startup
read through `StoreReader`. This package knows SQL and nothing else. Installed as `omen_store`
(this folder is store/ in the repository).
"""

from omen_store.errors import StoreError, StoreMissingError, StoreUnusableError
from omen_store.pg import display as display_store
from omen_store.pg import is_postgres
from omen_store.reader import StoreReader
from omen_store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    FeedbackRecord,
    GpuSample,
    HealthSample,
    KeyCreated,
    KeyRevoked,
    Level,
    RequestRecord,
    level_for,
)
from omen_store.redact import REDACTED, redact_body
from omen_store.rollups import day_name, hour_name
from omen_store.rows import (
    ApiKeyRow,
    AuditRow,
    BudgetChangeRow,
    BudgetOverrideRow,
    ContainerSpend,
    DrainRow,
    GpuRow,
    HealthRow,
    MinuteTraffic,
    OutcomeRow,
    RequestRow,
    SpendDailyRow,
    SpendTotals,
    audit_change,
)
from omen_store.schema import SCHEMA_VERSION, check_store
from omen_store.writer import StoreWriter, WriterStats

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "ApiKeyRow",
    "AuditRecord",
    "AuditRow",
    "BudgetChange",
    "BudgetChangeRow",
    "BudgetOverrideRow",
    "ContainerSpend",
    "DrainChange",
    "DrainRow",
    "FeedbackRecord",
    "GpuRow",
    "GpuSample",
    "HealthRow",
    "HealthSample",
    "KeyCreated",
    "KeyRevoked",
    "Level",
    "MinuteTraffic",
    "OutcomeRow",
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
    "audit_change",
    "check_store",
    "day_name",
    "display_store",
    "hour_name",
    "is_postgres",
    "level_for",
    "redact_body",
]
