"""The console's data layer without a screen: forecasts, levels, validation, the poller."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from omen_tui.client import AdminClient, AdminError
from omen_tui.format import money
from omen_tui.model import Filter, Poller
from omen_tui.model.budget import Meter, forecast
from omen_tui.model.cache import CacheUse
from omen_tui.model.periods import Periods
from omen_tui.model.poller import FEED_SIZE, percentile
from omen_tui.screens.budget import validate
from tests.tui.fake_admin import FakeAdmin
from tests.tui.seed import NOW
from tests.tui.test_views import append_request

UTC = ZoneInfo("UTC")


def test_periods_start_on_the_day_the_monday_and_the_first() -> None:
    periods = Periods.at(NOW, UTC)  # Wednesday 2026-03-04 12:30 UTC
    assert periods.hours_elapsed("daily") == 12.5
    assert periods.hours_elapsed("weekly") == 2 * 24 + 12.5
    assert periods.hours_elapsed("monthly") == 3 * 24 + 12.5
    assert periods.elapsed_fraction("daily") == pytest.approx(12.5 / 24)


def test_forecast_is_the_spend_plus_the_last_hours_burn_over_the_hours_left() -> None:
    periods = Periods.at(NOW, UTC)  # 12:30: 11.5 hours left today
    assert forecast(1.25, 0.10, periods, "daily") == pytest.approx(1.25 + 0.10 * 11.5)
    assert forecast(1.25, 0.0, periods, "daily") == 1.25  # nothing burning: what is spent
    # One minute into a burst of $0.01/min: the day's average says ~$0.02, the burn $0.24.
    one_minute_in = Periods.at(NOW - 12.5 * 3600 + 60, UTC)
    assert forecast(0.01, 0.6, one_minute_in, "daily") > 0.05
    assert forecast(0.0, 1.0, periods, "monthly") == pytest.approx((31 - 4) * 24 + 11.5)


@pytest.mark.parametrize(
    ("used", "limit", "level"),
    [(1, None, "none"), (0.5, 1, "ok"), (0.9, 1, "soft"), (1.0, 1, "hard"), (0.1, 0, "hard")],
)
def test_meter_levels_match_the_daemons_soft_and_hard_limits(
    used: float, limit: float | None, level: str
) -> None:
    assert Meter("x", used, limit).level == level


def test_budget_validation_accepts_amounts_and_reset_and_refuses_the_rest() -> None:
    changes, errors = validate({"daily": " $1,250.50 ", "weekly": "", "monthly": "reset"})
    assert changes == {"daily": "1250.50", "monthly": None} and not errors
    _, errors = validate({"daily": "-1", "weekly": "ten", "monthly": "nan"})
    assert errors == {
        "daily": "must not be negative",
        "weekly": "'ten' is not an amount",
        "monthly": "'nan' is not an amount",
    }


def test_filter_matches_container_and_provider_exactly_and_text_loosely() -> None:
    filt = Filter(container="app", provider="openai", text="LOADING")
    assert filt.matches_container("app") and not filt.matches_container("app2")
    assert filt.matches_provider("openai") and not filt.matches_provider(None)
    assert filt.matches_text(None, "model is loading") and not filt.matches_text("ok")
    assert filt.describe() == 'container=app provider=openai "LOADING"'


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95)) == (50.0, 95.0)
    assert percentile([7.0], 95) == 7.0


def test_the_routing_feed_reads_only_rows_it_has_not_seen(seeded_db: Path) -> None:
    poller = Poller(seeded_db, FakeAdmin().client(), tz=UTC, clock=lambda: NOW)
    first = poller.fetch("routing", Filter()).routing
    assert first is not None and first.replace and len(first.rows) == 138
    again = poller.fetch("routing", Filter()).routing
    assert again is not None and not again.replace and again.rows == []
    append_request(seeded_db, "req_next", NOW)
    more = poller.fetch("routing", Filter()).routing
    assert more is not None and [r.id for r in more.rows] == ["req_next"]
    narrowed = poller.fetch("routing", Filter(container="research")).routing
    assert narrowed is not None and narrowed.replace
    assert {r.container for r in narrowed.rows} == {"research"}
    assert FEED_SIZE >= 100


def test_each_container_carries_its_prompt_cache_use_per_period(seeded_db: Path) -> None:
    overview = Poller(seeded_db, FakeAdmin().client(), tz=UTC, clock=lambda: NOW).fetch(
        "overview", Filter()
    )
    assert overview.overview is not None
    cache = {s.name: s.cache for s in overview.overview.containers}
    app = cache["app"]["daily"]
    # The seed: OpenAI serves 3/4 of every second and third prompt of 1024+ tokens from cache.
    assert app.read_tokens > 0 and app.write_tokens == 0
    assert app.hit_ratio == app.read_tokens / app.prompt_tokens
    assert 0.0 < app.saved_usd < 0.1
    assert cache["app"]["monthly"].read_tokens >= app.read_tokens


def test_cache_use_without_prompt_tokens_has_no_ratio_and_is_not_active() -> None:
    assert CacheUse().hit_ratio is None and not CacheUse().active
    assert CacheUse(1000, 0, 0, 0.0).hit_ratio == 0.0
    assert CacheUse(1000, 0, 512, 0.0).active  # writing to the cache is using it


def test_money_under_a_cent_never_reads_as_zero() -> None:
    assert money(0) == "$0"
    assert money(0.0008) == "$0.0008"
    assert money(0.00004) == "$0.00004"  # format.money's contract, changed with the routing work
    assert money(1.239) == "$1.24"
    assert all(len(money(v)) <= 9 for v in (0.00004, 0.0008, 0.05, 999.99, 1234.5))


def test_the_poller_says_when_the_store_is_missing(tmp_path: Path) -> None:
    poller = Poller(tmp_path / "none.db", FakeAdmin(up=False).client(), tz=UTC)
    snapshot = poller.fetch("overview", Filter())
    assert snapshot.store_error is not None and "no store at" in snapshot.store_error
    assert not snapshot.daemon.reachable and "unreachable" in snapshot.daemon.message


def test_admin_errors_carry_the_daemons_message_and_a_hint_for_keys() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "unknown API key"}})

    client = AdminClient("http://omen.test", "wrong", transport=httpx.MockTransport(refuse))
    with pytest.raises(AdminError) as refused:
        client.endpoints()
    assert refused.value.refused and "unknown API key" in refused.value.message
    assert "OMEN_ADMIN_KEY" in refused.value.message

    down = AdminClient("http://omen.test", None, transport=FakeAdmin(up=False).handle_transport())
    with pytest.raises(AdminError) as unreachable:
        down.health()
    assert unreachable.value.unreachable and "daemon unreachable at http://omen.test" in str(
        unreachable.value
    )
