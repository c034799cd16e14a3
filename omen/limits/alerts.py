"""Budget alerts: a JSON POST to the container's `alert_webhook`, once per period and threshold.

Sent from a background task with retries, so a slow or broken receiver never delays a request.
Each alert sent is also an audit row (`budget_alert`), which is how a restarted daemon knows
it already warned about this period.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from omen_store import AuditRecord, StoreWriter

log = logging.getLogger("omen.alerts")

_RETRY_DELAYS = (0.5, 1.0, 2.0)


class Alerter:
    def __init__(self, writer: StoreWriter, sent: set[str] | None = None) -> None:
        self._writer = writer
        self._sent: set[str] = set(sent or ())
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=5.0)

    @staticmethod
    def key(container: str, period_key: str, threshold: float) -> str:
        return f"{container}|{period_key}|{threshold:g}"

    def maybe_send(
        self,
        *,
        container: str,
        webhook: str | None,
        period: str,
        period_key: str,
        threshold: float,
        spent: float,
        limit: float,
    ) -> bool:
        """Queue the alert unless this period and threshold were already alerted."""
        key = self.key(container, period_key, threshold)
        if key in self._sent:
            return False
        self._sent.add(key)
        payload = {
            "type": "omen.budget_alert",
            "container": container,
            "period": period,
            "period_key": period_key,
            "threshold_percent": threshold,
            "spent_usd": round(spent, 6),
            "budget_usd": limit,
            "percent_used": round(100 * spent / limit, 1) if limit else None,
            "ts": time.time(),
        }
        self._writer.record_audit(
            AuditRecord(
                ts=time.time(),
                actor="omen",
                action="budget_alert",
                target=container,
                before=None,
                after=payload,
                detail=key,
            )
        )
        log.warning(
            "budget alert: %s spent $%.4f of its $%.2f %s budget",
            container,
            spent,
            limit,
            period,
            extra={"container": container},
        )
        if webhook:
            task = asyncio.create_task(self._post(webhook, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    async def _post(self, url: str, payload: dict[str, object]) -> None:
        for attempt, delay in enumerate((0.0, *_RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._client.post(url, json=payload)
                if response.status_code < 400:
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = str(exc) or type(exc).__name__
            log.warning("budget alert webhook failed (try %d): %s", attempt + 1, error)
        log.error("budget alert webhook gave up after %d tries", len(_RETRY_DELAYS) + 1)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self._client.aclose()
