"""The Telegram connector's poller: getUpdates in a loop, on one replica at a time.

Telegram lets one getUpdates run per bot, so the poller holds a lease in opsbot's store
(renewed from a thread of its own, so a busy event loop cannot lose it) and keeps its
offset there; each update it fetches is handled at most once (``_telegram_updates``).
Kept apart from ``connectors.telegram`` (settings, webhook, lifecycle), which describes
the connector and starts the poller in polling mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError

from actions import metrics
from actions.leases import lease_seconds, process_owner
from connectors._common import agent_ready, channel_store, stores
from connectors._telegram_send import _seconds
from connectors._telegram_updates import _ALLOWED_UPDATES, TelegramUpdates

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.telegram")

_POLL_KIND = "telegram-poll"  # where the poller got to: {"offset": ...}


class TelegramPolling(TelegramUpdates):
    """The connector's long polling; ``connectors.telegram.TelegramInput`` builds it."""

    poll_timeout: float
    _polling_lease: str | None  # its name while this process polls

    @staticmethod
    def _pace(name: str, interval: float) -> Any:
        """The poller's loops' Backoff (``actions.backoff``): up to a minute between tries."""
        from actions.backoff import Backoff

        return Backoff(name, logger, interval=interval, cap=60.0)

    async def _poll(
        self, app: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]],
        pace: Callable[[str, float], Any] | None = None,
    ) -> None:
        """getUpdates in a loop, as PTB's Updater does, on one replica at a time.

        Telegram lets one getUpdates run per bot (a second one ends the first with 409),
        so with several replicas (or workers) only the holder of the lease
        ``telegram-poller:<bot id>`` polls; the others wait and take over within
        OPSBOT_LEASE_SECONDS when it dies. The offset of the last handled update is kept
        in the store, so the next poller starts there, and an update seen twice anyway
        (fetched by a poller that died before saying so) is dropped by its id.

        While the store or Telegram fails, each loop tries less often (up to a minute) and
        logs a line when the failing starts, every few minutes while it lasts, and when it
        ends, not one per attempt. ``pace(name, interval)`` makes each loop's
        ``actions.backoff.Backoff`` (tests pass fast ones).
        """
        pace = pace or self._pace
        while not agent_ready(app):  # noqa: ASYNC110 - the agent is loaded by Rasa, which offers no event to await
            await asyncio.sleep(0.2)
        name, owner = f"telegram-poller:{self.bot.id}", _poller_owner()
        seconds = lease_seconds()
        # Taking and renewing the lease share one: both fail when the store does.
        store = pace("Telegram: the polling lease in opsbot's store", seconds / 4)
        restarts = pace("Telegram: the poller", 1.0)
        waiting_said = False
        while True:
            try:
                lease = await asyncio.to_thread(stores().leases.take, name, owner, seconds)
            except Exception as exc:  # noqa: BLE001 - the store may come back
                await asyncio.sleep(store.failed(exc))
                continue
            store.succeeded()
            if lease is None:
                if not waiting_said:
                    logger.info("Telegram: another replica polls for updates; this one waits "
                                "to take over")
                    waiting_said = True
                await asyncio.sleep(seconds / 4)
                continue
            waiting_said = False
            if lease.previous is not None:
                metrics.lease_changed("telegram_poller")
                logger.info("Telegram: took over polling from %s", lease.previous)
            self._polling_lease = name
            poller = asyncio.create_task(self._poll_updates(on_new_message, pace))
            keeper = asyncio.create_task(self._keep_lease(name, owner, seconds, store))
            try:
                done, _ = await asyncio.wait({poller, keeper},
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (poller, keeper):
                    task.cancel()
                await asyncio.gather(poller, keeper, return_exceptions=True)
            if poller in done and not poller.cancelled():
                failure = poller.exception()
                if failure is None:
                    await asyncio.to_thread(self._release_polling_lease)
                    return  # polling stopped for good (the token was refused)
                await asyncio.sleep(restarts.failed(failure))  # its traceback: the first time
                continue
            restarts.succeeded()
            logger.warning("Telegram: lost the polling lease; another replica polls now")

    async def _keep_lease(self, name: str, owner: str, seconds: float, store: Any) -> None:
        """Renew the polling lease every quarter of its time; return when it is lost.

        The renewing runs in a thread of its own: a busy event loop (a model loading, a
        long turn) must not lose the lease and let a second poller start. ``store`` is the
        Backoff that logs the store's failures (only its log: the renewing keeps its pace,
        and gives up after three failures, when the lease is about to run out).
        """
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()

        def renew() -> None:
            failures = 0
            while not stop.wait(seconds / 4):
                try:
                    kept = stores().leases.take(name, owner, seconds)
                    if stop.is_set() and kept is not None:  # released meanwhile: not again
                        stores().leases.release(name, owner)
                        return
                except Exception as exc:  # noqa: BLE001 - a short outage: keep polling a while
                    failures += 1
                    store.failed(exc)
                    if failures < 3:
                        continue
                    kept = None  # it runs out about now: stop before another one starts
                else:
                    failures = 0
                    store.succeeded()
                if kept is None:
                    break
            if not stop.is_set():
                loop.call_soon_threadsafe(_settle, lost)

        threading.Thread(target=renew, name="telegram-lease", daemon=True).start()
        try:
            await lost
        finally:
            stop.set()

    def _release_polling_lease(self) -> None:
        name, self._polling_lease = self._polling_lease, None
        if name is None:
            return
        try:
            stores().leases.release(name, _poller_owner())
        except Exception:  # noqa: BLE001 - it runs out by itself
            logger.debug("could not release the Telegram polling lease", exc_info=True)

    async def _poll_updates(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]],
        pace: Callable[[str, float], Any] | None = None,
    ) -> None:
        from actions.errors import BackendUnavailable

        pace = pace or self._pace
        telegram = pace("Telegram: getUpdates", 1.0)
        saving = pace("Telegram: saving the polling offset in opsbot's store", 1.0)
        try:
            await self.bot.delete_webhook()
        except TelegramError as exc:
            logger.warning("Telegram deleteWebhook failed: %s", exc)
        key = f"offset:{self.bot.id}"
        try:
            saved = await asyncio.to_thread(channel_store().recall, _POLL_KIND, key)
        except Exception:  # noqa: BLE001 - from 0: Telegram keeps what was not confirmed
            saved = None
        offset = int((saved or {}).get("offset") or 0)
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=int(self.poll_timeout), allowed_updates=_ALLOWED_UPDATES,
                    read_timeout=self.poll_timeout + 15.0)
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                logger.error("Telegram refused TELEGRAM_TOKEN while polling; polling stopped.")
                return
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after) + 0.5)
                continue
            except (Conflict, NetworkError, TelegramError) as exc:  # down, timed out, a 409
                # An outage to wait out, as a backend's: one line, no traceback.
                await asyncio.sleep(telegram.failed(BackendUnavailable(
                    f"{type(exc).__name__}: {exc}", backend="telegram")))
                continue
            telegram.succeeded()
            for update in updates:
                try:
                    first = await self._first_time(update)
                except Exception as exc:  # noqa: BLE001 - the store may come back
                    # Not taken, so not confirmed to Telegram: the next getUpdates from this
                    # offset fetches it again once the store answers. Nothing is lost.
                    await asyncio.sleep(saving.failed(exc))
                    break
                offset = max(offset, update.update_id + 1)
                if not first:
                    continue
                self._handle_taken(update, on_new_message)
            if updates:
                try:
                    await asyncio.to_thread(channel_store().remember, _POLL_KIND, key,
                                            {"offset": offset})
                except Exception as exc:  # noqa: BLE001 - the ids still keep updates from running twice
                    saving.failed(exc)
                else:
                    saving.succeeded()


def _poller_owner() -> str:
    """This process in the polling lease (each Sanic worker is one), even when
    OPSBOT_REPLICA_ID names the host."""
    return f"{process_owner()}:{os.getpid()}"


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
