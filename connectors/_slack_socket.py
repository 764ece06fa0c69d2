"""The Slack connector's Socket Mode: a websocket to Slack, opened from inside the Rasa server.

slack_sdk's aiohttp ``SocketModeClient`` asks ``apps.connections.open`` (with the app-level
``xapp-`` token) for a websocket URL, connects, answers pings and reconnects when Slack
sends ``disconnect`` (docs.slack.dev/apis/events-api/using-socket-mode: connections are
refreshed every few hours) or the connection goes quiet. Each envelope is taken once by
its request id (``_slack_inbound``) and then acknowledged with its ``envelope_id`` at once,
before its turn runs: Slack sends an envelope that is not acknowledged again. An envelope
whose request could not be taken (opsbot's store did not answer) is left unacknowledged,
for Slack to redeliver. What comes over this connection is from Slack: the app token
opened it. The workspace is still checked, as in HTTP mode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from connectors._slack_inbound import COMMANDS, EVENTS, INTERACTIVE, Handler, SlackInbound

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.slack")

_RETRY_CAP = 60.0  # seconds between attempts to open the first connection, at most


class SlackSocket(SlackInbound):
    """The connector's Socket Mode; ``connectors.slack.SlackInput`` builds it."""

    app_token: str | None
    api_url: str
    _socket: SocketModeClient | None

    async def _open_socket(self, on_new_message: Handler) -> None:
        """Connect (trying again while Slack cannot be reached); give up on a refused token."""
        web = AsyncWebClient(base_url=self.api_url)
        pause = 1.0
        while True:
            try:
                opened = await web.apps_connections_open(app_token=str(self.app_token))
                break
            except SlackApiError as exc:
                error = str(exc.response.get("error") or exc.response.status_code)
                if exc.response.status_code != 429 and exc.response.status_code < 500:
                    logger.error("Slack refused SLACK_APP_TOKEN (apps.connections.open: %s). "
                                 "Create an app-level token with the connections:write scope "
                                 "(Basic Information -> App-Level Tokens). The Slack connector "
                                 "receives nothing.", error)
                    return
                logger.warning("Slack apps.connections.open: %s; trying again in %.0fs", error,
                               pause)
            except Exception as exc:  # noqa: BLE001 - not reachable yet (a connection, a timeout)
                logger.warning("cannot reach Slack at %s (%s); trying again in %.0fs",
                               self.api_url, exc, pause)
            await asyncio.sleep(pause)
            pause = min(_RETRY_CAP, pause * 2)
        client = SocketModeClient(app_token=str(self.app_token), web_client=web,
                                  logger=logging.getLogger("connectors.slack.socket"))
        client.wss_uri = str(opened["url"])

        async def listener(socket: Any, request: SocketModeRequest) -> None:
            await self._envelope(socket, request, on_new_message)

        client.socket_mode_request_listeners.append(listener)
        self._socket = client
        await client.connect()
        logger.info("Slack: connected in Socket Mode (bot %s in workspace %s)",
                    self.bot_user_id, self.team_id)

    async def _envelope(self, socket: Any, request: SocketModeRequest,
                        on_new_message: Handler) -> None:
        kind, body = request.type, request.payload
        ack = SocketModeResponse(envelope_id=request.envelope_id)
        if kind not in (EVENTS, INTERACTIVE, COMMANDS):
            await socket.send_socket_mode_response(ack)
            return
        taken = self.reserve(kind, body, on_new_message)  # its place, before any await
        try:
            refused = self.foreign(kind, body)
            if refused:
                logger.warning("refused a Slack %s envelope: %s", kind, refused)
                await socket.send_socket_mode_response(ack)
                return
            try:
                first = await self.first_time(kind, body)
            except Exception as exc:  # noqa: BLE001 - not acknowledged: Slack sends it again
                logger.warning("Slack %s envelope not taken yet: opsbot's store failed: %s",
                               kind, getattr(exc, "detail", None) or exc)
                return
            # Taken: it runs whether or not the acknowledgement gets through. Without one
            # Slack sends the envelope again, and its id says it is already running.
            taken.set_result(first)
            if request.retry_attempt:
                logger.info("Slack redelivered a %s envelope (attempt %s, %s)", kind,
                            request.retry_attempt, request.retry_reason)
            try:
                await socket.send_socket_mode_response(ack)
            except Exception as exc:  # noqa: BLE001 - a closing connection (Slack's refresh)
                logger.info("could not acknowledge a Slack %s envelope (%s); Slack sends it "
                            "again and it is recognised", kind, exc)
        finally:
            if not taken.done():
                taken.set_result(False)

    async def _close_socket(self) -> None:
        client, self._socket = self._socket, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing anyway
                logger.debug("closing the Slack socket failed", exc_info=True)
