"""One day of a development container's coding-assistant traffic (the seed's "Cost Analysis").

The seed sizes the day as 100 "code explain", 50 "simple edit", 10 "refactoring" and
5 "architecture" calls. This module turns that into concrete OpenAI chat requests of the kind
an assistant (Claude Code, Cursor, Zeke) sends: a system prompt plus a user message carrying
real-looking source in several languages. Explanations quote an excerpt of one file, edits
send the whole file, refactorings send several files of one project, architecture questions
send a repository tree, design notes and files from several services.

Token counts follow the prompt's size (characters / 4, the usual rule of thumb) and each task
type's typical answer length; `build_day(seed)` is deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Task types (the seed's table, with the intent a client would hint and the seed's own figures)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskType:
    key: str
    label: str
    calls: int
    hint_intent: str  # metadata.intent a client that knows its task would send (the seed's names)
    output_tokens: tuple[int, int]  # inclusive range of answer sizes
    max_tokens: int  # what the assistant asks for
    seed_provider: str  # the seed's table
    seed_cost: float  # the seed's table, $/day


TASKS: tuple[TaskType, ...] = (
    TaskType("explain", "Code explain", 100, "explain", (300, 600), 1024, "Ollama", 0.00),
    TaskType("edit", "Simple edits", 50, "code", (150, 400), 1024, "Ollama", 0.00),
    TaskType("refactor", "Refactoring", 10, "refactor", (1500, 3000), 4096, "Claude", 0.50),
    TaskType("architecture", "Architecture", 5, "reasoning", (2000, 4000), 8192, "Claude", 1.00),
)
SEED_OMEN_TOTAL = 1.50
SEED_CLOUD_TOTAL = 4.95
SEED_CLOUD_PER_CALL = 0.03
SEED_SAVINGS = 0.70


@dataclass(frozen=True)
class Call:
    """One request of the day."""

    index: int
    task: str  # TaskType.key
    hint_intent: str
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    prompt_tokens: int  # characters / 4 of every message's content
    completion_tokens: int
    reply_text: str  # what the fake upstream answers (about completion_tokens long)


def estimate_tokens(messages: tuple[dict[str, str], ...]) -> int:
    """Characters / 4 over every message's content (rounded up, at least 1)."""
    chars = sum(len(m["content"]) for m in messages)
    return max(1, -(-chars // 4))


# --------------------------------------------------------------------------------------------
# The assistant's system prompt
# --------------------------------------------------------------------------------------------

SYSTEM_PROMPT = """\
You are an expert software engineer acting as a coding assistant inside the user's development \
container. The workspace is a monorepo (`acme/shop`) with a Python billing service, a Go \
ingestion pipeline, a TypeScript/React dashboard, a Java order service, a Rust CLI and SQL \
migrations. Tools available to you in this session: filesystem (read/write within /workspace), \
shell (non-interactive, no network), git and build.

Guidelines:
- Answer the question that was asked; be concise, but do not omit steps that matter.
- When you change code, show only the changed functions or a unified diff, and keep the \
project's existing style (formatter settings, naming, error handling conventions).
- Never invent APIs: if you are unsure whether a function exists, say so.
- Point out bugs, race conditions or security problems you notice, even if not asked.
- Prefer small, reviewable changes; mention tests that should be added or updated.
- Use fenced code blocks with the language name.
"""

# --------------------------------------------------------------------------------------------
# Source files in the workspace
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: str
    lang: str  # the code fence's language tag
    project: str
    code: str
    explain: tuple[str, ...]  # questions a developer asks about this file
    edits: tuple[str, ...]  # small edits a developer asks for


BILLING_MODELS = r"""from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


class Currency(str, enum.Enum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", Decimal(str(self.amount)))

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    def rounded(self) -> Money:
        return Money(self.amount.quantize(CENT, rounding=ROUND_HALF_UP), self.currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(Decimal(0), currency)


@dataclass
class Customer:
    id: str
    name: str
    country: str  # ISO 3166-1 alpha-2
    vat_id: str | None = None
    is_business: bool = False
    tier: str = "standard"  # standard | gold | platinum


@dataclass
class LineItem:
    sku: str
    description: str
    quantity: int
    unit_price: Money
    tax_category: str = "standard"

    @property
    def net(self) -> Money:
        return self.unit_price * self.quantity


class InvoiceStatus(str, enum.Enum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


@dataclass
class Invoice:
    customer: Customer
    currency: Currency
    items: list[LineItem] = field(default_factory=list)
    id: str = field(default_factory=lambda: f"inv_{uuid.uuid4().hex[:12]}")
    number: str | None = None
    status: InvoiceStatus = InvoiceStatus.DRAFT
    issue_date: date | None = None
    discount: Money | None = None
    tax_total: Money | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def net_total(self) -> Money:
        total = Money.zero(self.currency)
        for item in self.items:
            total = total + item.net
        if self.discount is not None:
            total = total - self.discount
        return total

    @property
    def gross_total(self) -> Money:
        tax = self.tax_total or Money.zero(self.currency)
        return (self.net_total + tax).rounded()
"""

BILLING_TAX = r'''"""VAT and sales-tax rules for invoices.

Rates are looked up per (country, category). EU B2B sales to another member state with a
valid VAT id are reverse-charged: no VAT on the invoice, the buyer accounts for it.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from functools import lru_cache

from billing.models import Customer, Invoice, LineItem, Money

log = logging.getLogger(__name__)

SELLER_COUNTRY = "DE"
EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
_VAT_ID = re.compile(r"^[A-Z]{2}[0-9A-Z]{8,12}$")

RATES: dict[tuple[str, str], Decimal] = {
    ("DE", "standard"): Decimal("0.19"),
    ("DE", "reduced"): Decimal("0.07"),
    ("FR", "standard"): Decimal("0.20"),
    ("FR", "reduced"): Decimal("0.055"),
    ("NL", "standard"): Decimal("0.21"),
    ("NL", "reduced"): Decimal("0.09"),
    ("IT", "standard"): Decimal("0.22"),
    ("GB", "standard"): Decimal("0.20"),
}


class TaxError(Exception):
    pass


def is_valid_vat_id(vat_id: str | None) -> bool:
    return bool(vat_id) and bool(_VAT_ID.match(vat_id.replace(" ", "").upper()))


def reverse_charge(customer: Customer) -> bool:
    return (
        customer.is_business
        and customer.country in EU_COUNTRIES
        and customer.country != SELLER_COUNTRY
        and is_valid_vat_id(customer.vat_id)
    )


@lru_cache(maxsize=256)
def rate_for(country: str, category: str) -> Decimal:
    try:
        return RATES[(country, category)]
    except KeyError:
        if (country, "standard") in RATES:
            log.warning("no %s rate for %s, using standard", category, country)
            return RATES[(country, "standard")]
        if country not in EU_COUNTRIES:
            return Decimal(0)  # export outside the EU: zero-rated
        raise TaxError(f"no VAT rate configured for {country}/{category}") from None


def line_tax(item: LineItem, customer: Customer) -> Money:
    if reverse_charge(customer):
        return Money.zero(item.unit_price.currency)
    country = customer.country if customer.country in EU_COUNTRIES else SELLER_COUNTRY
    return (item.net * rate_for(country, item.tax_category)).rounded()


def invoice_tax(invoice: Invoice) -> Money:
    total = Money.zero(invoice.currency)
    for item in invoice.items:
        total = total + line_tax(item, invoice.customer)
    if invoice.discount is not None and total.amount > 0:
        # Spread the discount proportionally over the taxed amount.
        gross_net = sum((i.net.amount for i in invoice.items), Decimal(0))
        share = invoice.discount.amount / gross_net if gross_net else Decimal(0)
        total = Money(total.amount * (1 - share), invoice.currency).rounded()
    return total
'''

BILLING_INVOICES = r"""import logging
from datetime import date, timedelta
from decimal import Decimal

from billing import tax
from billing.db import InvoiceRepository, SequenceRepository
from billing.mail import Mailer
from billing.models import Customer, Currency, Invoice, InvoiceStatus, LineItem, Money
from billing.pricing import PriceBook

log = logging.getLogger(__name__)


class InvoiceService:
    def __init__(self, repo: InvoiceRepository, seq: SequenceRepository, mailer: Mailer,
                 prices: PriceBook):
        self.repo = repo
        self.seq = seq
        self.mailer = mailer
        self.prices = prices

    def generate_invoice(self, customer: Customer, order: dict, send: bool = True) -> Invoice:
        currency = Currency(order.get("currency", "EUR"))
        invoice = Invoice(customer=customer, currency=currency)
        for line in order["lines"]:
            price = self.prices.price_for(line["sku"], currency)
            if price is None:
                raise ValueError("unknown sku " + line["sku"])
            invoice.items.append(LineItem(
                sku=line["sku"],
                description=line.get("description") or self.prices.name_for(line["sku"]),
                quantity=int(line["qty"]),
                unit_price=price,
                tax_category=self.prices.tax_category(line["sku"]),
            ))

        # discounts
        net = invoice.net_total.amount
        if customer.tier == "gold":
            if net > 1000:
                invoice.discount = Money(net * Decimal("0.10"), currency)
            else:
                invoice.discount = Money(net * Decimal("0.05"), currency)
        elif customer.tier == "platinum":
            if net > 1000:
                invoice.discount = Money(net * Decimal("0.15"), currency)
            else:
                invoice.discount = Money(net * Decimal("0.10"), currency)
        elif order.get("coupon"):
            coupon = order["coupon"]
            if coupon.startswith("PCT"):
                invoice.discount = Money(net * Decimal(coupon[3:]) / 100, currency)
            elif coupon.startswith("ABS"):
                invoice.discount = Money(Decimal(coupon[3:]), currency)
            else:
                log.warning("ignoring unknown coupon %s", coupon)
        if invoice.discount and invoice.discount.amount > net:
            invoice.discount = Money(net, currency)

        invoice.tax_total = tax.invoice_tax(invoice)
        invoice.number = "INV-%d-%06d" % (date.today().year, self.seq.next("invoice"))
        invoice.issue_date = date.today()
        invoice.status = InvoiceStatus.ISSUED
        self.repo.save(invoice)

        if send:
            try:
                due = invoice.issue_date + timedelta(days=30 if customer.is_business else 14)
                self.mailer.send(
                    to=customer.id,
                    template="invoice_issued",
                    context={"invoice": invoice, "due": due.isoformat(),
                             "total": str(invoice.gross_total.amount)},
                )
            except Exception:
                log.exception("failed to send invoice %s", invoice.number)
        return invoice

    def void_invoice(self, invoice_id: str, reason: str) -> Invoice:
        invoice = self.repo.get(invoice_id)
        if invoice is None:
            raise KeyError(invoice_id)
        if invoice.status == InvoiceStatus.PAID:
            raise ValueError("cannot void a paid invoice; issue a credit note instead")
        invoice.status = InvoiceStatus.VOID
        self.repo.save(invoice)
        log.info("voided %s: %s", invoice.number, reason)
        return invoice

    def mark_paid(self, invoice_id: str, amount: Decimal) -> Invoice:
        invoice = self.repo.get(invoice_id)
        if invoice.gross_total.amount != amount:
            log.warning("partial payment for %s: %s of %s", invoice.number, amount,
                        invoice.gross_total.amount)
            return invoice
        invoice.status = InvoiceStatus.PAID
        self.repo.save(invoice)
        return invoice
"""

BILLING_API = r"""from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from billing.deps import current_user, invoice_service
from billing.invoices import InvoiceService
from billing.models import Customer, Invoice

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


class OrderLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=10_000)
    description: str | None = None


class CreateInvoiceIn(BaseModel):
    customer_id: str
    currency: str = "EUR"
    lines: list[OrderLineIn] = Field(min_length=1)
    coupon: str | None = None
    send: bool = True


class InvoiceOut(BaseModel):
    id: str
    number: str | None
    status: str
    net_total: Decimal
    tax_total: Decimal
    gross_total: Decimal
    currency: str

    @classmethod
    def of(cls, invoice: Invoice) -> "InvoiceOut":
        return cls(
            id=invoice.id,
            number=invoice.number,
            status=invoice.status.value,
            net_total=invoice.net_total.amount,
            tax_total=invoice.tax_total.amount if invoice.tax_total else Decimal(0),
            gross_total=invoice.gross_total.amount,
            currency=invoice.currency.value,
        )


Service = Annotated[InvoiceService, Depends(invoice_service)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=InvoiceOut)
def create_invoice(body: CreateInvoiceIn, service: Service, user=Depends(current_user)):
    customer: Customer | None = service.repo.customers.get(body.customer_id)
    if customer is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "customer not found")
    if not user.can_bill(customer):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to bill this customer")
    try:
        invoice = service.generate_invoice(customer, body.model_dump(), send=body.send)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return InvoiceOut.of(invoice)


@router.get("/{invoice_id}", response_model=InvoiceOut)
def get_invoice(invoice_id: str, service: Service, user=Depends(current_user)):
    invoice = service.repo.get(invoice_id)
    if invoice is None or not user.can_see(invoice.customer):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "invoice not found")
    return InvoiceOut.of(invoice)


@router.post("/{invoice_id}/void", response_model=InvoiceOut)
def void_invoice(invoice_id: str, reason: str, service: Service, user=Depends(current_user)):
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins only")
    try:
        return InvoiceOut.of(service.void_invoice(invoice_id, reason))
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "invoice not found")
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc))
"""

BILLING_TESTS = r"""from decimal import Decimal
from unittest.mock import MagicMock

import pytest

from billing.invoices import InvoiceService
from billing.models import Currency, Customer, InvoiceStatus, Money


@pytest.fixture
def prices():
    book = MagicMock()
    book.price_for.side_effect = lambda sku, cur: {
        "PLAN-PRO": Money(Decimal("49.00"), cur),
        "SEAT": Money(Decimal("12.50"), cur),
        "BOOK": Money(Decimal("30.00"), cur),
    }.get(sku)
    book.name_for.side_effect = lambda sku: sku.title()
    book.tax_category.side_effect = lambda sku: "reduced" if sku == "BOOK" else "standard"
    return book


@pytest.fixture
def service(prices):
    seq = MagicMock()
    seq.next.return_value = 42
    return InvoiceService(repo=MagicMock(), seq=seq, mailer=MagicMock(), prices=prices)


def order(*lines, **extra):
    return {"lines": [{"sku": s, "qty": q} for s, q in lines], **extra}


def test_standard_customer_in_germany_pays_19_percent(service):
    customer = Customer(id="c1", name="Erika", country="DE")
    invoice = service.generate_invoice(customer, order(("PLAN-PRO", 1), ("SEAT", 4)))
    assert invoice.net_total == Money(Decimal("99.00"), Currency.EUR)
    assert invoice.tax_total == Money(Decimal("18.81"), Currency.EUR)
    assert invoice.status is InvoiceStatus.ISSUED
    assert invoice.number.endswith("-000042")


def test_gold_customer_gets_ten_percent_above_1000(service):
    customer = Customer(id="c2", name="Big GmbH", country="DE", tier="gold")
    invoice = service.generate_invoice(customer, order(("SEAT", 100)))
    assert invoice.discount.amount == Decimal("125.000")


def test_reverse_charge_for_french_business(service):
    customer = Customer(id="c3", name="SARL", country="FR", vat_id="FR12345678901",
                        is_business=True)
    invoice = service.generate_invoice(customer, order(("PLAN-PRO", 2)))
    assert invoice.tax_total.amount == 0


def test_unknown_sku_is_rejected(service):
    with pytest.raises(ValueError, match="unknown sku"):
        service.generate_invoice(Customer(id="c4", name="x", country="DE"), order(("NOPE", 1)))


def test_mail_failure_does_not_fail_the_invoice(service):
    service.mailer.send.side_effect = ConnectionError("smtp down")
    invoice = service.generate_invoice(Customer(id="c5", name="y", country="DE"),
                                       order(("BOOK", 1)))
    assert invoice.status is InvoiceStatus.ISSUED
    service.repo.save.assert_called_once()
"""

WEB_CLIENT = r"""// Thin fetch wrapper used by every dashboard hook: auth, retries, typed errors.
import { getAccessToken, refreshAccessToken } from "../auth/session";

export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly requestId?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  retries?: number;
}

const BASE_URL = import.meta.env.VITE_API_URL ?? "/api";
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

function buildUrl(path: string, query?: RequestOptions["query"]): string {
  const url = new URL(BASE_URL + path, window.location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const { method = "GET", body, query, signal, retries = 2 } = opts;
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(buildUrl(path, query), {
      method,
      signal,
      headers: {
        Authorization: `Bearer ${getAccessToken()}`,
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    if (res.status === 401 && !refreshed) {
      refreshed = true;
      await refreshAccessToken();
      attempt--;
      continue;
    }
    if (RETRYABLE.has(res.status) && attempt < retries && method === "GET") {
      const retryAfter = Number(res.headers.get("retry-after"));
      const delay = Number.isFinite(retryAfter) && retryAfter > 0
        ? retryAfter * 1000
        : 250 * 2 ** attempt + Math.random() * 100;
      await sleep(delay, signal);
      continue;
    }
    if (!res.ok) {
      const payload = await res.json().catch(() => ({}));
      throw new ApiError(
        res.status,
        payload?.error?.code ?? "http_error",
        payload?.error?.message ?? res.statusText,
        res.headers.get("x-request-id") ?? undefined,
      );
    }
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}
"""

WEB_HOOK = r"""import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, request } from "../api/client";
import type { Order, OrderStatus } from "../types";

interface Page<T> {
  items: T[];
  next_cursor: string | null;
  total: number;
}

export interface OrderFilters {
  status?: OrderStatus;
  customerId?: string;
  search?: string;
  sort?: "created_at" | "-created_at" | "total" | "-total";
}

export function useOrders(filters: OrderFilters, pageSize = 50) {
  const [orders, setOrders] = useState<Order[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [total, setTotal] = useState(0);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const abortRef = useRef<AbortController | null>(null);

  const load = useCallback(
    async (reset: boolean) => {
      abortRef.current?.abort();
      const controller = new AbortController();
      abortRef.current = controller;
      setLoading(true);
      setError(null);
      try {
        const page = await request<Page<Order>>("/v1/orders", {
          query: {
            status: filters.status,
            customer_id: filters.customerId,
            q: filters.search,
            sort: filters.sort ?? "-created_at",
            limit: pageSize,
            cursor: reset ? undefined : cursor ?? undefined,
          },
          signal: controller.signal,
        });
        setOrders((prev) => (reset ? page.items : [...prev, ...page.items]));
        setCursor(page.next_cursor);
        setTotal(page.total);
      } catch (err) {
        if ((err as Error).name === "AbortError") return;
        setError(err instanceof ApiError ? err : new ApiError(0, "network", String(err)));
      } finally {
        if (abortRef.current === controller) setLoading(false);
      }
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [filters.status, filters.customerId, filters.search, filters.sort, pageSize],
  );

  useEffect(() => {
    load(true);
    return () => abortRef.current?.abort();
  }, [load]);

  const loadMore = useCallback(() => {
    if (!loading && cursor) load(false);
  }, [loading, cursor, load]);

  const reload = useCallback(() => load(true), [load]);
  return { orders, total, loading, error, hasMore: cursor !== null, loadMore, reload };
}
"""

WEB_TABLE = r"""import { useMemo, useState } from "react";
import { useOrders, type OrderFilters } from "../hooks/useOrders";
import { formatMoney, formatRelative } from "../lib/format";
import { StatusBadge } from "./StatusBadge";
import { Spinner } from "./Spinner";
import type { Order } from "../types";

const COLUMNS: { key: keyof Order | "customer"; label: string; sortable?: boolean }[] = [
  { key: "number", label: "Order" },
  { key: "customer", label: "Customer" },
  { key: "status", label: "Status" },
  { key: "total", label: "Total", sortable: true },
  { key: "created_at", label: "Created", sortable: true },
];

export function OrderTable({ customerId }: { customerId?: string }) {
  const [filters, setFilters] = useState<OrderFilters>({ customerId, sort: "-created_at" });
  const { orders, total, loading, error, hasMore, loadMore } = useOrders(filters);
  const [selected, setSelected] = useState<Set<string>>(new Set());

  const allSelected = orders.length > 0 && orders.every((o) => selected.has(o.id));
  const selectedTotal = useMemo(
    () => orders.filter((o) => selected.has(o.id)).reduce((sum, o) => sum + o.total, 0),
    [orders, selected],
  );

  function toggleSort(key: "total" | "created_at") {
    setFilters((f) => ({ ...f, sort: f.sort === `-${key}` ? key : (`-${key}` as const) }));
  }

  function toggle(id: string) {
    setSelected((prev) => {
      const next = new Set(prev);
      next.has(id) ? next.delete(id) : next.add(id);
      return next;
    });
  }

  if (error) {
    return <div role="alert" className="error">Could not load orders: {error.message}</div>;
  }

  return (
    <div className="order-table">
      <input
        type="search"
        placeholder="Search orders"
        onChange={(e) => setFilters((f) => ({ ...f, search: e.target.value || undefined }))}
      />
      <table>
        <thead>
          <tr>
            <th>
              <input
                type="checkbox"
                checked={allSelected}
                onChange={() =>
                  setSelected(allSelected ? new Set() : new Set(orders.map((o) => o.id)))
                }
              />
            </th>
            {COLUMNS.map((c) => (
              <th
                key={c.key}
                onClick={c.sortable ? () => toggleSort(c.key as "total" | "created_at") : undefined}
              >
                {c.label}
                {filters.sort?.endsWith(c.key) && (filters.sort.startsWith("-") ? " ▼" : " ▲")}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {orders.map((o) => (
            <tr key={o.id} className={selected.has(o.id) ? "selected" : undefined}>
              <td>
                <input type="checkbox" checked={selected.has(o.id)} onChange={() => toggle(o.id)} />
              </td>
              <td>{o.number}</td>
              <td>{o.customer.name}</td>
              <td><StatusBadge status={o.status} /></td>
              <td className="num">{formatMoney(o.total, o.currency)}</td>
              <td title={o.created_at}>{formatRelative(o.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <footer>
        {selected.size > 0 && (
          <span>{selected.size} selected · {formatMoney(selectedTotal, "EUR")}</span>
        )}
        <span>{orders.length} of {total}</span>
        {loading ? <Spinner /> : hasMore && <button onClick={loadMore}>Load more</button>}
      </footer>
    </div>
  );
}
"""

GO_WORKER = r"""package queue

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/acme/shop/ingest/internal/store"
)

type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	OrderID   string          `json:"order_id"`
	Payload   json.RawMessage `json:"payload"`
	Attempts  int             `json:"-"`
	Received  time.Time       `json:"-"`
}

type Handler func(ctx context.Context, ev *Event) error

var ErrPermanent = errors.New("permanent failure")

type Pool struct {
	in       chan *Event
	handlers map[string]Handler
	store    store.Events
	workers  int
	wg       sync.WaitGroup
	mu       sync.Mutex
	inflight map[string]struct{}
}

func NewPool(workers, buffer int, st store.Events) *Pool {
	return &Pool{
		in:       make(chan *Event, buffer),
		handlers: map[string]Handler{},
		store:    st,
		workers:  workers,
		inflight: map[string]struct{}{},
	}
}

func (p *Pool) Handle(eventType string, h Handler) { p.handlers[eventType] = h }

func (p *Pool) Submit(ev *Event) bool {
	p.mu.Lock()
	if _, dup := p.inflight[ev.ID]; dup {
		p.mu.Unlock()
		return false
	}
	p.inflight[ev.ID] = struct{}{}
	p.mu.Unlock()
	ev.Received = time.Now()
	p.in <- ev
	return true
}

func (p *Pool) Start(ctx context.Context) {
	for i := 0; i < p.workers; i++ {
		p.wg.Add(1)
		go func(id int) {
			defer p.wg.Done()
			for ev := range p.in {
				p.process(ctx, id, ev)
			}
		}(i)
	}
}

func (p *Pool) process(ctx context.Context, worker int, ev *Event) {
	defer func() {
		p.mu.Lock()
		delete(p.inflight, ev.ID)
		p.mu.Unlock()
	}()
	h, ok := p.handlers[ev.Type]
	if !ok {
		slog.Warn("no handler", "type", ev.Type, "id", ev.ID)
		_ = p.store.MarkDead(ctx, ev.ID, "no handler")
		return
	}
	for {
		ev.Attempts++
		err := h(ctx, ev)
		if err == nil {
			_ = p.store.MarkDone(ctx, ev.ID)
			return
		}
		if errors.Is(err, ErrPermanent) || ev.Attempts >= 5 {
			slog.Error("giving up", "id", ev.ID, "attempts", ev.Attempts, "err", err)
			_ = p.store.MarkDead(ctx, ev.ID, err.Error())
			return
		}
		time.Sleep(time.Duration(ev.Attempts*ev.Attempts) * 200 * time.Millisecond)
	}
}

func (p *Pool) Stop() {
	close(p.in)
	p.wg.Wait()
}
"""

GO_RETRY = r"""package queue

import (
	"context"
	"math"
	"math/rand"
	"time"
)

// Backoff computes exponential delays with full jitter, capped at Max.
type Backoff struct {
	Base   time.Duration
	Max    time.Duration
	Factor float64
	rnd    *rand.Rand
}

func NewBackoff(base, max time.Duration) *Backoff {
	src := rand.NewSource(time.Now().UnixNano())
	return &Backoff{Base: base, Max: max, Factor: 2, rnd: rand.New(src)}
}

// Delay returns the wait before attempt n (n starts at 1).
func (b *Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	ceiling := float64(b.Base) * math.Pow(b.Factor, float64(n-1))
	if ceiling > float64(b.Max) || math.IsInf(ceiling, 1) {
		ceiling = float64(b.Max)
	}
	return time.Duration(b.rnd.Int63n(int64(ceiling) + 1))
}

// Retry calls fn until it succeeds, returns a permanent error, the context ends,
// or attempts are exhausted. The last error is returned.
func Retry(ctx context.Context, attempts int, b *Backoff, fn func(context.Context) error) error {
	var err error
	for n := 1; n <= attempts; n++ {
		if err = fn(ctx); err == nil {
			return nil
		}
		if isPermanent(err) || n == attempts {
			return err
		}
		t := time.NewTimer(b.Delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

func isPermanent(err error) bool {
	type permanent interface{ Permanent() bool }
	if p, ok := err.(permanent); ok {
		return p.Permanent()
	}
	return false
}
"""

GO_MAIN = r"""package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/acme/shop/ingest/internal/api"
	"github.com/acme/shop/ingest/internal/billing"
	"github.com/acme/shop/ingest/internal/queue"
	"github.com/acme/shop/ingest/internal/store"
)

func main() {
	addr := flag.String("addr", ":8081", "listen address")
	dsn := flag.String("dsn", os.Getenv("DATABASE_URL"), "postgres DSN")
	workers := flag.Int("workers", 8, "event workers")
	billingURL := flag.String("billing-url", "http://billing:8000", "billing service base URL")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	db, err := store.Open(ctx, *dsn)
	if err != nil {
		slog.Error("open store", "err", err)
		os.Exit(1)
	}
	defer db.Close()

	pool := queue.NewPool(*workers, 1024, db.Events())
	bill := billing.NewClient(*billingURL, &http.Client{Timeout: 10 * time.Second})
	pool.Handle("order.created", billing.OnOrderCreated(bill))
	pool.Handle("order.cancelled", billing.OnOrderCancelled(bill))
	pool.Start(ctx)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           api.Routes(pool, db),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		slog.Info("listening", "addr", *addr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("serve", "err", err)
			stop()
		}
	}()

	<-ctx.Done()
	slog.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	pool.Stop()
}
"""

RUST_CACHE = r"""use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A small LRU cache with a per-entry time to live, used by the CLI to avoid
/// refetching catalog data on every invocation.
pub struct TtlCache<K, V> {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<K, Entry<V>>,
    tick: u64,
}

struct Entry<V> {
    value: V,
    inserted: Instant,
    last_used: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Self { capacity, ttl, entries: HashMap::with_capacity(capacity), tick: 0 }
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let expired = match self.entries.get_mut(key) {
            Some(entry) if entry.inserted.elapsed() < self.ttl => {
                entry.last_used = self.tick;
                return Some(entry.value.clone());
            }
            Some(_) => true,
            None => false,
        };
        if expired {
            self.entries.remove(key);
        }
        None
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.evict();
        }
        self.entries.insert(key, Entry { value, inserted: Instant::now(), last_used: self.tick });
    }

    fn evict(&mut self) {
        // O(n) scan: fine for the few hundred entries the CLI keeps.
        let now = Instant::now();
        self.entries.retain(|_, e| now.duration_since(e.inserted) < self.ttl);
        if self.entries.len() < self.capacity {
            return;
        }
        if let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut cache = TtlCache::new(2, Duration::from_secs(60));
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.insert("c", 3);
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.len(), 2);
    }
}
"""

RUST_CONFIG = r"""use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub cache: CacheConfig,
}

#[derive(Debug, Deserialize, Clone)]
pub struct CacheConfig {
    pub capacity: usize,
    pub ttl_secs: u64,
    pub dir: Option<PathBuf>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { capacity: 512, ttl_secs: 300, dir: None }
    }
}

fn default_timeout() -> u64 {
    30
}

#[derive(Debug)]
pub enum ConfigError {
    NotFound(PathBuf),
    Io(std::io::Error),
    Parse(toml::de::Error),
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::NotFound(p) => write!(f, "no config file at {}", p.display()),
            ConfigError::Io(e) => write!(f, "reading config: {e}"),
            ConfigError::Parse(e) => write!(f, "parsing config: {e}"),
            ConfigError::Invalid(m) => write!(f, "invalid config: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}

pub fn default_path() -> PathBuf {
    dirs::config_dir().unwrap_or_else(|| PathBuf::from(".")).join("acme").join("config.toml")
}

pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let path = path.map(Path::to_path_buf).unwrap_or_else(default_path);
    let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound(path.clone()),
        _ => ConfigError::Io(e),
    })?;
    let mut config: Config = toml::from_str(&text).map_err(ConfigError::Parse)?;
    if let Ok(url) = env::var("ACME_API_URL") {
        config.api_url = url;
    }
    if let Ok(token) = env::var("ACME_TOKEN") {
        config.token = Some(token);
    }
    if !config.api_url.starts_with("https://") && !config.api_url.starts_with("http://localhost") {
        return Err(ConfigError::Invalid(format!("api_url must be https: {}", config.api_url)));
    }
    if config.cache.capacity == 0 {
        return Err(ConfigError::Invalid("cache.capacity must be > 0".into()));
    }
    Ok(config)
}
"""

JAVA_ORDERS = r"""package com.acme.orders;

import java.math.BigDecimal;
import java.time.Clock;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.stereotype.Service;
import org.springframework.transaction.annotation.Transactional;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

@Service
public class OrderService {
    private static final Logger log = LoggerFactory.getLogger(OrderService.class);

    private final OrderRepository orders;
    private final InventoryClient inventory;
    private final PricingClient pricing;
    private final KafkaTemplate<String, String> kafka;
    private final ObjectMapper json;
    private final Clock clock;

    public OrderService(OrderRepository orders, InventoryClient inventory, PricingClient pricing,
                        KafkaTemplate<String, String> kafka, ObjectMapper json, Clock clock) {
        this.orders = orders;
        this.inventory = inventory;
        this.pricing = pricing;
        this.kafka = kafka;
        this.json = json;
        this.clock = clock;
    }

    @Transactional
    public Order placeOrder(String customerId, List<OrderLine> lines, String currency) {
        if (lines.isEmpty()) {
            throw new IllegalArgumentException("an order needs at least one line");
        }
        for (OrderLine line : lines) {
            if (!inventory.reserve(line.sku(), line.quantity())) {
                throw new OutOfStockException(line.sku());
            }
        }
        BigDecimal total = BigDecimal.ZERO;
        for (OrderLine line : lines) {
            BigDecimal unit = pricing.unitPrice(line.sku(), currency);
            total = total.add(unit.multiply(BigDecimal.valueOf(line.quantity())));
        }
        Order order = new Order(UUID.randomUUID().toString(), customerId, lines, total, currency,
                OrderStatus.PLACED, Instant.now(clock));
        orders.save(order);
        publish("order.created", order);
        return order;
    }

    @Transactional
    public Order cancel(String orderId, String reason) {
        Order order = orders.findById(orderId)
                .orElseThrow(() -> new OrderNotFoundException(orderId));
        if (order.status() == OrderStatus.SHIPPED) {
            throw new IllegalStateException("order " + orderId + " already shipped");
        }
        order.lines().forEach(l -> inventory.release(l.sku(), l.quantity()));
        Order cancelled = order.withStatus(OrderStatus.CANCELLED);
        orders.save(cancelled);
        publish("order.cancelled", cancelled);
        log.info("cancelled order {}: {}", orderId, reason);
        return cancelled;
    }

    private void publish(String type, Order order) {
        try {
            OrderEvent event = new OrderEvent(type, order, Instant.now(clock));
            String payload = json.writeValueAsString(event);
            kafka.send("orders", order.id(), payload);
        } catch (JsonProcessingException e) {
            log.error("could not serialise {} for {}", type, order.id(), e);
        }
    }
}
"""

SQL_MIGRATION = r"""-- 0007: order events for the ingest pipeline, and invoice references on orders.
BEGIN;

CREATE TYPE order_event_state AS ENUM ('pending', 'processing', 'done', 'dead');

CREATE TABLE order_events (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id      uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    type          text NOT NULL
                  CHECK (type IN ('order.created', 'order.cancelled', 'order.shipped')),
    payload       jsonb NOT NULL,
    state         order_event_state NOT NULL DEFAULT 'pending',
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz,
    processed_at  timestamptz
);

-- Workers poll pending events oldest first and lock them with FOR UPDATE SKIP LOCKED.
CREATE INDEX order_events_pending_idx
    ON order_events (created_at)
    WHERE state = 'pending';

CREATE INDEX order_events_order_idx ON order_events (order_id, created_at DESC);

ALTER TABLE orders
    ADD COLUMN invoice_id text,
    ADD COLUMN invoiced_at timestamptz;

CREATE UNIQUE INDEX orders_invoice_id_key ON orders (invoice_id) WHERE invoice_id IS NOT NULL;

-- Backfill: every existing order gets a synthetic 'order.created' event already marked done,
-- so the dashboard's event timeline is complete.
INSERT INTO order_events (order_id, type, payload, state, attempts, created_at, processed_at)
SELECT o.id,
       'order.created',
       jsonb_build_object('order_id', o.id, 'total', o.total, 'currency', o.currency),
       'done',
       1,
       o.created_at,
       o.created_at
FROM orders o;

CREATE OR REPLACE FUNCTION claim_order_events(batch integer, lease interval)
RETURNS SETOF order_events
LANGUAGE sql AS $$
    UPDATE order_events e
       SET state = 'processing', locked_until = now() + lease, attempts = e.attempts + 1
     WHERE e.id IN (
           SELECT id FROM order_events
            WHERE state = 'pending'
               OR (state = 'processing' AND locked_until < now())
            ORDER BY created_at
            LIMIT batch
            FOR UPDATE SKIP LOCKED)
    RETURNING e.*;
$$;

COMMIT;
"""

DEPLOY_SH = r"""#!/usr/bin/env bash
# Deploy one service to the shared VM fleet: build, push, migrate, restart, smoke-test.
set -euo pipefail

SERVICE="${1:?usage: deploy.sh <billing|ingest|orders|web> [git-ref]}"
REF="${2:-$(git rev-parse --short HEAD)}"
REGISTRY="registry.acme.internal"
HOSTS_FILE="deploy/hosts/${SERVICE}.txt"
IMAGE="${REGISTRY}/shop/${SERVICE}:${REF}"

log() { printf '%s [deploy:%s] %s\n' "$(date -u +%FT%TZ)" "$SERVICE" "$*" >&2; }

[[ -f "$HOSTS_FILE" ]] || { log "no hosts file $HOSTS_FILE"; exit 1; }
mapfile -t HOSTS < <(grep -v '^#' "$HOSTS_FILE" | sed '/^$/d')

log "building $IMAGE"
docker build -t "$IMAGE" -f "services/${SERVICE}/Dockerfile" .
docker push "$IMAGE"

if [[ -d "services/${SERVICE}/migrations" || "$SERVICE" == "orders" ]]; then
  log "running migrations"
  docker run --rm --env-file "deploy/env/${SERVICE}.env" "$IMAGE" migrate up
fi

for host in "${HOSTS[@]}"; do
  log "restarting on $host"
  ssh -o BatchMode=yes "deploy@${host}" \
    "docker pull '$IMAGE' && docker rm -f '$SERVICE' || true && \
     docker run -d --name '$SERVICE' --restart unless-stopped \
       --env-file /etc/acme/${SERVICE}.env -p 8080:8080 '$IMAGE'"
  for i in $(seq 1 20); do
    if curl -fsS "http://${host}:8080/healthz" >/dev/null; then
      log "$host healthy"
      break
    fi
    if [[ $i -eq 20 ]]; then
      log "$host did not become healthy, aborting"
      exit 1
    fi
    sleep 3
  done
done

log "smoke test"
./scripts/smoke.sh "$SERVICE"
log "done: $IMAGE"
"""

FILES: tuple[SourceFile, ...] = (
    SourceFile(
        "services/billing/billing/models.py",
        "python",
        "billing",
        BILLING_MODELS,
        (
            "Why does Money.__post_init__ use object.__setattr__ instead of a normal assignment?",
            "Explain how net_total and gross_total are computed on Invoice, and where rounding "
            "happens.",
            "What is the purpose of the _check method in Money? When would it raise?",
        ),
        (
            "Add a __neg__ method and a `is_zero` property to Money.",
            "Make Invoice.items default to a tuple instead of a list and adjust the type hint.",
            "Add a `due_date` field to Invoice (date | None, default None).",
        ),
    ),
    SourceFile(
        "services/billing/billing/tax.py",
        "python",
        "billing",
        BILLING_TAX,
        (
            "Can you explain the reverse-charge logic here? When does a customer get no VAT?",
            "What does rate_for do when there is no rate configured for a country and category?",
            "Explain how invoice_tax spreads the discount over the taxed amount.",
        ),
        (
            "Add Spain's standard (21%) and reduced (10%) rates to RATES.",
            "is_valid_vat_id crashes when vat_id is None because of .replace: fix it.",
            "Log the customer id in the warning inside rate_for.",
        ),
    ),
    SourceFile(
        "services/billing/billing/invoices.py",
        "python",
        "billing",
        BILLING_INVOICES,
        (
            "Walk me through generate_invoice step by step.",
            "How are gold and platinum discounts applied, and how do coupons interact with tiers?",
            "What happens in mark_paid when the amount doesn't match the gross total?",
        ),
        (
            "mark_paid doesn't handle a missing invoice (repo.get returns None): raise KeyError "
            "like void_invoice does.",
            "Use an f-string for the invoice number instead of % formatting.",
            "Make the payment terms (30/14 days) constants at module level.",
        ),
    ),
    SourceFile(
        "services/billing/billing/api.py",
        "python",
        "billing",
        BILLING_API,
        (
            "What does InvoiceOut.of do and why is it a classmethod?",
            "Explain how the dependency injection works for `Service` in these routes.",
        ),
        (
            "Add `from exc` to the HTTPExceptions raised inside except blocks in void_invoice.",
            "Add a `coupon` max_length of 32 to CreateInvoiceIn.",
            "Return 404 instead of 403 from create_invoice when the user can't bill the customer.",
        ),
    ),
    SourceFile(
        "services/billing/tests/test_invoices.py",
        "python",
        "billing",
        BILLING_TESTS,
        (
            "How does the prices fixture fake the PriceBook?",
            "Why does test_gold_customer_gets_ten_percent_above_1000 expect 125.000 and not "
            "125.00?",
        ),
        (
            "Add a test that a platinum customer under 1000 gets 10% off.",
            "Parametrize the German tax test over standard and reduced categories.",
        ),
    ),
    SourceFile(
        "web/src/api/client.ts",
        "typescript",
        "web",
        WEB_CLIENT,
        (
            "Explain the retry logic in request(): which requests are retried and how the delay "
            "is chosen.",
            "Why is attempt decremented after refreshing the token?",
            "What does the sleep helper do with the AbortSignal?",
        ),
        (
            "Add a default 30s timeout using AbortSignal.timeout, combined with the caller's "
            "signal.",
            "Make buildUrl skip null values as well as undefined.",
            "Include the request method and path in ApiError's message.",
        ),
    ),
    SourceFile(
        "web/src/hooks/useOrders.ts",
        "typescript",
        "web",
        WEB_HOOK,
        (
            "Explain how useOrders avoids race conditions between overlapping requests.",
            "Why is the exhaustive-deps lint rule disabled on load's dependency list?",
            "How does pagination work in this hook?",
        ),
        (
            "Return `isEmpty` (no orders and not loading) from the hook.",
            "Reset the selection cursor when pageSize changes.",
        ),
    ),
    SourceFile(
        "web/src/components/OrderTable.tsx",
        "tsx",
        "web",
        WEB_TABLE,
        (
            "Explain how sorting is toggled in this component.",
            "How does the select-all checkbox work?",
        ),
        (
            "Debounce the search input by 300ms.",
            "Show an empty state row when there are no orders.",
            "Use the orders' own currency for the selected total instead of hard-coded EUR.",
        ),
    ),
    SourceFile(
        "ingest/internal/queue/worker.go",
        "go",
        "ingest",
        GO_WORKER,
        (
            "Explain how the worker pool deduplicates events and what inflight is for.",
            "What happens to an event whose handler keeps failing?",
            "Is there a problem with calling Submit after Stop? Explain what happens.",
        ),
        (
            "Make the maximum number of attempts a field on Pool instead of the literal 5.",
            "Log the worker id in the 'giving up' message.",
            "Check ctx.Done() before each retry instead of sleeping unconditionally.",
        ),
    ),
    SourceFile(
        "ingest/internal/queue/retry.go",
        "go",
        "ingest",
        GO_RETRY,
        (
            "Explain the full-jitter backoff in Delay.",
            "How does isPermanent decide whether an error is permanent?",
        ),
        (
            "Use errors.As in isPermanent so wrapped errors are recognised.",
            "Backoff.rnd is not safe for concurrent use; protect it with a mutex.",
        ),
    ),
    SourceFile(
        "ingest/cmd/ingest/main.go",
        "go",
        "ingest",
        GO_MAIN,
        (
            "Explain the shutdown sequence in main.",
            "What does signal.NotifyContext do here?",
        ),
        (
            "Add a -shutdown-timeout flag instead of the hard-coded 15 seconds.",
            "Add an IdleTimeout of 60s to the http.Server.",
        ),
    ),
    SourceFile(
        "cli/src/cache.rs",
        "rust",
        "cli",
        RUST_CACHE,
        (
            "Explain how TtlCache::get handles expired entries and why it uses the `expired` flag.",
            "What is the tick counter for, and what is the cost of evict()?",
        ),
        (
            "Add an `is_empty` method (clippy complains about len without is_empty).",
            "Add a `remove` method that returns the removed value.",
            "Add a test that an entry expires after its ttl.",
        ),
    ),
    SourceFile(
        "cli/src/config.rs",
        "rust",
        "cli",
        RUST_CONFIG,
        (
            "Explain the order in which config values are resolved (file, env, defaults).",
            "Why does ConfigError implement Display and Error manually here?",
        ),
        (
            "Allow `ACME_TIMEOUT_SECS` to override timeout_secs.",
            "Reject a ttl_secs of 0 with ConfigError::Invalid.",
        ),
    ),
    SourceFile(
        "orders/src/main/java/com/acme/orders/OrderService.java",
        "java",
        "orders",
        JAVA_ORDERS,
        (
            "Explain what happens in placeOrder if pricing fails after inventory has been "
            "reserved.",
            "Is the Kafka publish inside the transaction? What does that mean for consistency?",
            "Explain why Clock is injected instead of calling Instant.now() directly.",
        ),
        (
            "Validate that every line's quantity is positive in placeOrder.",
            "Use a stream with reduce to compute the total.",
        ),
    ),
    SourceFile(
        "db/migrations/0007_order_events.sql",
        "sql",
        "db",
        SQL_MIGRATION,
        (
            "Explain how claim_order_events works and what FOR UPDATE SKIP LOCKED does here.",
            "Why is order_events_pending_idx a partial index?",
        ),
        (
            "Add 'order.refunded' to the allowed event types.",
            "Add an index on order_events (state, locked_until) for the stale-lease lookup.",
        ),
    ),
    SourceFile(
        "scripts/deploy.sh",
        "bash",
        "ops",
        DEPLOY_SH,
        (
            "Explain what this deploy script does for each host.",
            "Why is `|| true` in the ssh command a problem?",
        ),
        (
            "Add a --dry-run flag that prints the commands instead of running them.",
            "Quote $SERVICE in the env-file path inside the ssh command.",
        ),
    ),
)

_BY_PATH = {f.path: f for f in FILES}

REPO_TREE = """\
acme/shop
├── services/billing/          Python 3.12, FastAPI, SQLAlchemy, Postgres (schema `billing`)
│   ├── billing/{api,invoices,tax,models,pricing,db,mail,deps}.py
│   └── tests/
├── ingest/                    Go 1.22, consumes order events, calls billing over HTTP
│   ├── cmd/ingest/main.go
│   └── internal/{api,billing,queue,store}/
├── orders/                    Java 21, Spring Boot 3, Kafka producer, Postgres (schema `orders`)
├── web/                       TypeScript, React 18, Vite; the operator dashboard
│   └── src/{api,hooks,components,lib,auth}/
├── cli/                       Rust 1.79, `acme` CLI for support staff (catalog, orders, refunds)
├── db/migrations/             shared Postgres migrations (sqlx-style, numbered)
├── scripts/deploy.sh          deploys one service to the VM fleet
└── deploy/{hosts,env}/        per-service host lists and env files
"""

DESIGN_NOTES = """\
# ARCHITECTURE.md (excerpt)

## Today
- One Postgres 15 primary (16 vCPU, 64 GB) with one async replica; every service has its own
  schema but they share the cluster. Peak load: ~1,200 orders/hour, ~40 dashboard users.
- `orders` publishes `order.created` / `order.cancelled` to Kafka *after* saving the order, but
  inside the same @Transactional method: if the commit fails after the send, consumers see an
  order that does not exist. We have seen this twice in production (deadlock retries).
- `ingest` consumes the topic, writes each event to `order_events` and then calls billing's
  `POST /v1/invoices` synchronously from a worker pool of 8. Billing is the bottleneck at month
  end (tax lookups, PDF rendering, SMTP) and its p99 goes from 300 ms to 9 s.
- Invoices are numbered from a Postgres sequence per year; numbering must be gap-free for
  German tax law (GoBD), which the current `nextval` approach does not guarantee.
- Deploys are done by `scripts/deploy.sh` from a laptop; migrations run before the new image
  starts, so a migration that drops or renames a column breaks the old version still serving.
- The dashboard reads orders through billing's and orders' public APIs; there is no BFF.

## Constraints
- Team: 6 engineers, 1 on-call rotation. No Kubernetes yet; VMs with Docker and systemd.
- EU customers' data must stay in eu-central-1. A US entity is planned for next year.
- Budget for managed services is modest (< $3k/month extra).
"""

REFACTORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Refactor InvoiceService.generate_invoice: it does pricing, discounts, tax, numbering, "
        "persistence and mailing in one method. Extract the discount rules into a strategy "
        "(tier discounts and coupons should be separate, composable rules), move line building "
        "into its own method, and make sending the mail the caller's decision via an event "
        "instead of a try/except inside the service. Keep behaviour identical and update the "
        "tests; add tests for the coupon paths that are currently untested.",
        (
            "services/billing/billing/invoices.py",
            "services/billing/billing/models.py",
            "services/billing/billing/tax.py",
            "services/billing/billing/api.py",
            "services/billing/tests/test_invoices.py",
        ),
    ),
    (
        "Money handling is inconsistent: discounts are computed on raw Decimals, rounding "
        "happens in three places, and invoice_tax re-derives the net total. Refactor so that "
        "all arithmetic goes through Money, rounding happens exactly once per line and once per "
        "invoice (document the rule), and tax is computed per line after the discount is "
        "allocated. Show the diff for each file and the new tests.",
        (
            "services/billing/billing/models.py",
            "services/billing/billing/tax.py",
            "services/billing/billing/invoices.py",
            "services/billing/tests/test_invoices.py",
        ),
    ),
    (
        "The order list has grown a hand-written state machine in useOrders. Refactor to a "
        "useReducer-based hook with explicit states (idle, loading, loadingMore, error), keep "
        "cancellation of stale requests, move cursor handling out of OrderTable's concerns, and "
        "make the API client's retry policy configurable per call. Keep the public return shape "
        "of useOrders compatible so other screens don't break.",
        (
            "web/src/api/client.ts",
            "web/src/hooks/useOrders.ts",
            "web/src/components/OrderTable.tsx",
        ),
    ),
    (
        "worker.go has its own quadratic sleep-based retry while retry.go has a proper "
        "Backoff/Retry. Refactor the pool to use Retry with context cancellation, make Stop "
        "drain in-flight events within a deadline instead of blocking forever, make Submit "
        "non-blocking with an error when the buffer is full or the pool is stopped, and wire the "
        "new options through main.go flags. Include table-driven tests.",
        (
            "ingest/internal/queue/worker.go",
            "ingest/internal/queue/retry.go",
            "ingest/cmd/ingest/main.go",
        ),
    ),
    (
        "Introduce a crate-wide error type with thiserror for the CLI (config and cache "
        "errors), make TtlCache generic over a Clock trait so expiry can be tested without "
        "sleeping, and let the cache be built from CacheConfig. Show the new error module and "
        "the changes to both files, plus tests.",
        ("cli/src/cache.rs", "cli/src/config.rs"),
    ),
    (
        "OrderService publishes to Kafka inside the transaction, which can announce orders that "
        "never committed. Refactor to a transactional outbox: write the event to order_events in "
        "the same transaction, and have a relay publish it. Show the Java changes, any "
        "migration changes needed on top of 0007, and how the Go worker should consume from the "
        "outbox (claim_order_events) instead of Kafka.",
        (
            "orders/src/main/java/com/acme/orders/OrderService.java",
            "db/migrations/0007_order_events.sql",
            "ingest/internal/queue/worker.go",
            "ingest/internal/queue/retry.go",
        ),
    ),
)

ARCHITECTURE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Month-end invoicing is our biggest operational problem (see ARCHITECTURE.md). Should "
        "ingest keep calling billing synchronously, or should billing consume order events "
        "itself? Compare at least three designs (sync HTTP with backpressure, billing consuming "
        "the outbox/Kafka directly, a job queue in Postgres) on idempotency, ordering, failure "
        "modes, operational cost for a 6-person team, and the gap-free invoice numbering "
        "requirement. Recommend one, explain why, and give a migration plan in steps that can "
        "each be deployed safely.",
        (
            "services/billing/billing/invoices.py",
            "services/billing/billing/api.py",
            "orders/src/main/java/com/acme/orders/OrderService.java",
            "db/migrations/0007_order_events.sql",
            "ingest/internal/queue/worker.go",
            "ingest/cmd/ingest/main.go",
        ),
    ),
    (
        "We need zero-downtime deploys with backwards-compatible schema migrations. Today "
        "deploy.sh runs migrations before restarting hosts one by one, so the old version breaks "
        "on renamed columns. Propose a deployment and migration strategy (expand/contract, "
        "blue/green or rolling with health gates) that fits VMs + Docker without Kubernetes. "
        "Analyse the trade-offs, show how 0007 would have been split, and what changes in the "
        "services' startup and health checks are needed.",
        (
            "scripts/deploy.sh",
            "db/migrations/0007_order_events.sql",
            "ingest/cmd/ingest/main.go",
            "services/billing/billing/api.py",
            "cli/src/config.rs",
        ),
    ),
    (
        "Next year we add a US entity: US customers' data must stay in the US, EU data in the "
        "EU, but support staff (dashboard and CLI) need a global view. How should we partition "
        "the services and the database? Consider per-region deployments vs. a single global "
        "deployment with row-level residency, what the dashboard's API client and the CLI cache "
        "must change, tax handling (US sales tax vs. EU VAT) and how invoice numbering works "
        "per entity. Reason through the consistency and latency implications.",
        (
            "services/billing/billing/tax.py",
            "services/billing/billing/models.py",
            "web/src/api/client.ts",
            "web/src/hooks/useOrders.ts",
            "cli/src/cache.rs",
            "db/migrations/0007_order_events.sql",
        ),
    ),
    (
        "Review the overall architecture for reliability. Where are the single points of "
        "failure, which failure modes lose or duplicate data (orders, events, invoices, "
        "emails), and what would you change first given our constraints? Prioritise by risk "
        "and effort, and explain the reasoning behind each priority.",
        (
            "orders/src/main/java/com/acme/orders/OrderService.java",
            "ingest/internal/queue/worker.go",
            "ingest/internal/queue/retry.go",
            "services/billing/billing/invoices.py",
            "db/migrations/0007_order_events.sql",
            "scripts/deploy.sh",
        ),
    ),
    (
        "The dashboard calls billing and orders directly and is getting slow (N+1 requests per "
        "page, retries amplifying load during incidents). Should we introduce a BFF, GraphQL, "
        "or read models fed by the order events? Design the read path end to end, including "
        "caching, pagination semantics (cursor stability while events arrive), and how the "
        "client's retry policy should change. Discuss the trade-offs and pick one.",
        (
            "web/src/api/client.ts",
            "web/src/hooks/useOrders.ts",
            "web/src/components/OrderTable.tsx",
            "services/billing/billing/api.py",
            "db/migrations/0007_order_events.sql",
            "ingest/internal/queue/worker.go",
        ),
    ),
)

# --------------------------------------------------------------------------------------------
# Building the day
# --------------------------------------------------------------------------------------------

_ANSWER_OPENERS = {
    "explain": "Here is what this code does, step by step.",
    "edit": "Here is the change; only the affected lines are shown.",
    "refactor": "Below is the refactoring, file by file, followed by the updated tests.",
    "architecture": "Short answer first, then the options, the trade-offs and a plan.",
}
_ANSWER_BODY = (
    "The function first validates its input, then builds the intermediate values it needs, and "
    "finally persists the result; errors on the way are either converted to domain errors or "
    "logged and swallowed, which is worth revisiting. "
)


def _fenced(source: SourceFile, code: str | None = None) -> str:
    return f"`{source.path}`:\n```{source.lang}\n{(code or source.code).rstrip()}\n```"


def _explain(rng: random.Random) -> str:
    source = rng.choice(FILES)
    question = rng.choice(source.explain)
    lines = source.code.rstrip().splitlines()
    if len(lines) > 30 and rng.random() < 0.6:
        length = rng.randint(25, min(70, len(lines)))
        start = rng.randint(0, len(lines) - length)
        excerpt = "\n".join(lines[start : start + length])
        where = f"`{source.path}` (lines {start + 1}-{start + length}):"
        code = f"{where}\n```{source.lang}\n{excerpt}\n```"
    else:
        code = _fenced(source)
    return f"{question}\n\n{code}"


def _edit(rng: random.Random) -> str:
    source = rng.choice(FILES)
    request = rng.choice(source.edits)
    return (
        f"{request}\n\nCurrent file:\n\n{_fenced(source)}\n\n"
        "Reply with the changed code only, no explanation."
    )


def _multi_file(request: str, paths: tuple[str, ...], preamble: str = "") -> str:
    files = "\n\n".join(_fenced(_BY_PATH[p]) for p in paths)
    return f"{request}\n\n{preamble}Relevant files:\n\n{files}"


def _refactor(rng: random.Random) -> str:
    request, paths = rng.choice(REFACTORS)
    return _multi_file(request, paths)


def _architecture(index: int) -> str:
    question, paths = ARCHITECTURE[index % len(ARCHITECTURE)]
    preamble = f"Repository layout:\n\n```\n{REPO_TREE}```\n\n{DESIGN_NOTES}\n"
    return _multi_file(question, paths, preamble)


def _reply_text(task: str, completion_tokens: int) -> str:
    # About 4 characters a token, fewer word pieces than tokens, so max_tokens never cuts it.
    target = completion_tokens * 4
    body = _ANSWER_BODY * (target // len(_ANSWER_BODY) + 1)
    return f"{_ANSWER_OPENERS[task]} {body[:target]}".rstrip()


def build_day(seed: int = 20240601) -> list[Call]:
    """The day's 165 calls, in a shuffled (but reproducible) order."""
    rng = random.Random(seed)
    drafts: list[tuple[TaskType, str]] = []
    for task in TASKS:
        for n in range(task.calls):
            if task.key == "explain":
                user = _explain(rng)
            elif task.key == "edit":
                user = _edit(rng)
            elif task.key == "refactor":
                user = _refactor(rng)
            else:
                user = _architecture(n)
            drafts.append((task, user))
    rng.shuffle(drafts)
    calls: list[Call] = []
    for index, (task, user) in enumerate(drafts):
        messages = (
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        )
        completion = rng.randint(*task.output_tokens)
        calls.append(
            Call(
                index=index,
                task=task.key,
                hint_intent=task.hint_intent,
                messages=messages,
                max_tokens=task.max_tokens,
                prompt_tokens=estimate_tokens(messages),
                completion_tokens=completion,
                reply_text=_reply_text(task.key, completion),
            )
        )
    return calls
