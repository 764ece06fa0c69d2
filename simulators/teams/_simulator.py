"""``TeamsSimulator``, the Teams simulator's public face (tokens, playing the users,
reading what the bot did), and ``python -m simulators.teams``.

Why apart: what tests and the demo call; one cohesive class, so it stays one module.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from simulators._base import SimulatorBase, add_address_arguments, run_main
from simulators.teams._app import _App
from simulators.teams._cards import _all_actions, _input_values, card_actions, text_of
from simulators.teams._model import (
    _TOKEN_LIFETIME,
    ADAPTIVE_CARD,
    BOTFRAMEWORK_ISSUER,
    CHANNEL_ID,
    CHANNEL_NAME,
    DEFAULT_APP_ID,
    DEFAULT_APP_PASSWORD,
    DEFAULT_TENANT_ID,
    DELIVERY_TIMEOUT,
    KEY_ID,
    SERVICE_PATH,
    TEAM_ID,
    TEAM_NAME,
    THREAD_LIMITS,
    RecordedRequest,
    TeamsUser,
    logger,
)
from simulators.teams._state import _matches, _Sent, _State
from simulators.teams._tls import _new_key, _Tls, _TlsBackgroundServer

TokenArg = str | None  # "auto" (sign one), None (no Authorization header) or a raw token


class TeamsSimulator(SimulatorBase[RecordedRequest]):
    """The Teams channel, the Bot Connector service and AAD's token endpoint, in a thread.

    ``require_outbound_auth`` makes the connector demand a token from the token endpoint.
    ``bot_timeout``: seconds the channel waits for the bot to answer an activity (Azure Bot
    Service's 15 by default; later is a 504). ``thread_limits``: the Connector API's rate
    limits (``THREAD_LIMITS`` by default; ``{}`` for none; see ``set_thread_limits``).
    ``tls`` serves HTTPS (with ``ca_file``), which MSAL needs. ``port=0`` picks a free
    port; read ``url`` after ``start()``. An empty ``app_id`` is anonymous mode: inbound
    activities then carry no Authorization header unless a token is passed explicitly.
    """

    def __init__(
        self,
        *,
        app_id: str = DEFAULT_APP_ID,
        app_password: str = DEFAULT_APP_PASSWORD,
        tenant_id: str = DEFAULT_TENANT_ID,
        bot_name: str = "opsbot",
        issuer: str = BOTFRAMEWORK_ISSUER,
        require_outbound_auth: bool = True,
        bot_endpoint: str | None = None,
        bot_timeout: float = DELIVERY_TIMEOUT,
        thread_limits: Mapping[str, Sequence[tuple[float, int]]] | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if app_id and not app_password:
            raise ValueError("app_password must not be empty when app_id is set")
        if bot_timeout <= 0:
            raise ValueError(f"bot_timeout must be positive, got {bot_timeout}")
        self.app_id = app_id
        self.app_password = app_password
        self.tenant_id = tenant_id
        self.bot_name = bot_name
        self.issuer = issuer
        self.require_outbound_auth = require_outbound_auth
        self.bot_timeout = bot_timeout
        self.bot_endpoint: str | None = None
        if bot_endpoint:
            self.set_bot_endpoint(bot_endpoint)
        self._posted = threading.local()  # .activity: the last one this thread posted
        self._key = _new_key()
        self._forged_key: rsa.RSAPrivateKey | None = None
        self._state = _State(tenant_id)
        if thread_limits is not None:
            self.set_thread_limits(thread_limits)
        self._tls = _Tls() if tls else None
        app = _App(self)
        super().__init__(app, faults=self._state.faults, requests=self._state.log,
                         host=host, port=port, name="teams-simulator",
                         server_name="Microsoft-HTTPAPI/2.0")
        if self._tls is not None:  # same handler, served over HTTPS
            self._server = _TlsBackgroundServer(app, host=host, port=port,
                                                name="teams-simulator",
                                                server_name="Microsoft-HTTPAPI/2.0",
                                                context=self._tls.context)

    def __repr__(self) -> str:
        return f"TeamsSimulator({self._location()}, app {self.app_id or 'anonymous'})"

    # -- lifecycle (port, start, stop, with: SimulatorBase) ------------------------

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` without a trailing slash."""
        return self._server.url.rstrip("/")

    @property
    def service_url(self) -> str:
        """The ``serviceUrl`` of every activity: ``<url>/teams-sim/``."""
        return self.url + SERVICE_PATH

    @property
    def openid_metadata_url(self) -> str:
        return f"{self.url}/openid/.well-known/openidconfiguration"

    @property
    def bot_id(self) -> str:
        """The bot's account id in activities (``28:<app id>``)."""
        return f"28:{self.app_id or 'opsbot'}"

    @property
    def ca_file(self) -> str | None:
        """With ``tls``, the PEM of the CA that signed the server's certificate."""
        return str(self._tls.ca_file) if self._tls is not None else None

    def stop(self) -> None:
        super().stop()
        if self._tls is not None:
            self._tls.remove()

    def describe(self) -> str:
        """One line for the demo banner."""
        endpoint = self.bot_endpoint or "no bot endpoint yet"
        return (f"Teams channel (Bot Framework) at {self.url}, app {self.app_id or 'anonymous'}, "
                f"service URL {self.service_url}, posting to {endpoint}")

    def env(self) -> dict[str, str]:
        """What opsbot's Teams connector reads to talk to this channel.

        * ``TEAMS_APP_ID`` / ``TEAMS_APP_PASSWORD``: the bot's AAD app registration (client
          id and secret); inbound tokens have ``aud`` = the app id.
        * ``TEAMS_TENANT_ID``: the tenant of a single-tenant bot; outbound tokens come from
          ``{TEAMS_AUTHORITY_URL}/{TEAMS_TENANT_ID}/oauth2/v2.0/token`` (a multi-tenant
          bot would use ``botframework.com`` as the tenant, which the simulator also serves).
        * ``TEAMS_OPENID_METADATA_URL``: where the inbound JWT's signing keys are found
          (real: https://login.botframework.com/v1/.well-known/openidconfiguration).
        * ``TEAMS_TOKEN_ISSUER``: the ``iss`` inbound JWTs must carry
          (real: https://api.botframework.com).
        * ``TEAMS_AUTHORITY_URL``: the AAD login host for outbound tokens
          (real: https://login.microsoftonline.com).
        """
        return {"TEAMS_APP_ID": self.app_id, "TEAMS_APP_PASSWORD": self.app_password,
                "TEAMS_TENANT_ID": self.tenant_id,
                "TEAMS_OPENID_METADATA_URL": self.openid_metadata_url,
                "TEAMS_TOKEN_ISSUER": self.issuer, "TEAMS_AUTHORITY_URL": self.url}

    # -- identity ----------------------------------------------------------------------

    def _channel_metadata(self) -> dict[str, Any]:
        return {"issuer": self.issuer,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/openid/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"]}

    def _tenant_metadata(self, tid: str) -> dict[str, Any]:
        base = f"{self.url}/{tid}"
        return {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token",
                                             "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"https://login.microsoftonline.com/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com"}

    def _jwks(self, *, endorse: bool) -> dict[str, Any]:
        jwk = dict(RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True))
        jwk.update({"kid": KEY_ID, "use": "sig"})
        if endorse:
            jwk["endorsements"] = ["msteams", "emulator"]
        return {"keys": [jwk]}

    def token(
        self,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: float = 3600,
        not_before: float | None = None,
        key: Literal["sim", "forged"] = "sim",
        service_url: str | None = None,
        kid: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A channel JWT as the simulator signs inbound activities, or a bad one for tests.

        ``audience`` (default the app id), ``issuer`` (default ``issuer``), ``expires_in``
        seconds from now (negative: already expired), ``not_before`` (epoch seconds;
        default five minutes ago, as Bot Framework does), ``key="forged"`` signs with
        another RSA key under the same ``kid``; ``claims`` adds or overrides claims.
        """
        if key not in ("sim", "forged"):
            raise ValueError(f'key must be "sim" or "forged", got {key!r}')
        now = int(time.time())
        payload: dict[str, Any] = {
            "serviceurl": service_url or self.service_url,
            "nbf": int(not_before) if not_before is not None else now - 300,
            "exp": int(now + expires_in),
            "iss": issuer or self.issuer,
            "aud": audience or self.app_id,
            "iat": now,
        }
        payload.update(claims or {})
        if key == "forged":
            if self._forged_key is None:
                self._forged_key = _new_key()
            signing = self._forged_key
        else:
            signing = self._key
        return jwt.encode(payload, signing, algorithm="RS256",
                          headers={"kid": kid or KEY_ID, "typ": "JWT"})

    def _issue_access_token(self, tid: str) -> str:
        now = int(time.time())
        token = jwt.encode({"aud": "https://api.botframework.com",
                            "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now,
                            "exp": now + _TOKEN_LIFETIME, "appid": self.app_id,
                            "appidacr": "1", "idp": f"https://sts.windows.net/{tid}/",
                            "tid": tid, "ver": "1.0", "jti": secrets.token_hex(8)},
                           self._key, algorithm="RS256", headers={"kid": KEY_ID, "typ": "JWT"})
        with self._state.lock:
            self._state.tokens[token] = now + _TOKEN_LIFETIME
        return token

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint issued, oldest first."""
        with self._state.lock:
            return list(self._state.tokens)

    def expire_tokens(self) -> None:
        """Make every issued access token expired (the connector then answers 401)."""
        with self._state.lock:
            for token in self._state.tokens:
                self._state.tokens[token] = 0.0

    # -- throttling --------------------------------------------------------------------

    def set_thread_limits(self, limits: Mapping[str, Sequence[tuple[float, int]]]) -> None:
        """Replace the Connector API's limits: scenario ("send", "create", "members") ->
        ``(seconds, maximum operations)`` windows; a scenario left out is not limited."""
        checked: dict[str, tuple[tuple[float, int], ...]] = {}
        for scenario, windows in limits.items():
            if scenario not in THREAD_LIMITS:
                raise ValueError(f"unknown scenario {scenario!r}; the simulator limits "
                                 f"{', '.join(THREAD_LIMITS)}")
            pairs = tuple((float(period), int(allowed)) for period, allowed in windows)
            if any(period <= 0 or allowed < 1 for period, allowed in pairs):
                raise ValueError(f"{scenario}: each window needs seconds > 0 and at least "
                                 f"one operation, got {windows!r}")
            checked[scenario] = pairs
        with self._state.lock:
            self._state.thread_limits = checked
            self._state.recent.clear()

    def throttle_next(self, times: int = 1, *, retry_after: int = 1,
                      path: str | None = None) -> None:
        """Answer the next ``times`` Connector API requests (whose path holds ``path``) with
        429 and ``Retry-After: retry_after``, whatever the limits say."""
        if times < 1 or retry_after < 0:
            raise ValueError(f"times must be >= 1 and retry_after >= 0, got {times}, "
                             f"{retry_after}")
        with self._state.lock:
            self._state.throttles.append([times, retry_after, path])

    # -- users and conversations -------------------------------------------------------

    @property
    def users(self) -> dict[str, TeamsUser]:
        with self._state.lock:
            return dict(self._state.users)

    def add_user(self, key: str, name: str | None = None) -> TeamsUser:
        """Add a user (e.g. one opsbot does not know) with a personal chat and channel access."""
        if not key or not key.isalnum() or key != key.lower():
            raise ValueError(f"user key must be lower-case letters and digits, got {key!r}")
        with self._state.lock:
            if key in self._state.users:
                raise ValueError(f"user {key!r} already exists")
            number = len(self._state.users) + 1
            user = TeamsUser(key, f"29:1{key}PairwiseId", name or key.capitalize(),
                             f"00000000-0000-0000-0001-{number:012d}", name or key.capitalize(),
                             "Test")
            self._state.users[key] = user
            self._state.add_personal(user)
            self._state.conversations[CHANNEL_ID].members.append(key)
        return user

    def _user(self, user: str) -> TeamsUser:
        with self._state.lock:
            found = self._state.users.get(user)
        if found is None:
            raise LookupError(f"no user {user!r}; the simulator knows "
                              f"{', '.join(sorted(self.users))} (add_user adds one)")
        return found

    def _conversation_account(self, cid: str) -> dict[str, Any]:
        base = cid.split(";", 1)[0]
        if base == CHANNEL_ID:
            return {"id": cid, "conversationType": "channel", "isGroup": True,
                    "tenantId": self.tenant_id}
        return {"id": cid, "conversationType": "personal", "tenantId": self.tenant_id}

    def _channel_data(self, cid: str) -> dict[str, Any]:
        data: dict[str, Any] = {"tenant": {"id": self.tenant_id}}
        if cid.split(";", 1)[0] == CHANNEL_ID:
            data.update({"teamsTeamId": TEAM_ID, "teamsChannelId": CHANNEL_ID,
                         "team": {"id": TEAM_ID, "name": TEAM_NAME,
                                  "aadGroupId": "00000000-0000-0000-0000-00000000fea1"},
                         "channel": {"id": CHANNEL_ID, "name": CHANNEL_NAME}})
        return data

    def _activity(self, user: TeamsUser, cid: str, aid: str | None = None,
                  **fields: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        activity: dict[str, Any] = {
            "type": "message", "id": aid or self._state.next_id(),
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "localTimestamp": now.astimezone(dt.timezone(dt.timedelta(hours=1)))
                                 .isoformat(timespec="milliseconds"),
            "localTimezone": "Europe/Berlin", "serviceUrl": self.service_url,
            "channelId": "msteams", "from": user.account(),
            "conversation": self._conversation_account(cid),
            "recipient": {"id": self.bot_id, "name": self.bot_name}, "locale": "en-US",
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US",
                          "platform": "Web", "timezone": "Europe/Berlin"}],
            "channelData": self._channel_data(cid),
        }
        activity.update(fields)
        return activity

    # -- talking to the bot ------------------------------------------------------------

    def set_bot_endpoint(self, url: str) -> None:
        """Where activities go: the bot's messaging endpoint (e.g. .../api/messages)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"bot endpoint must be an http(s) URL, got {url!r}")
        self.bot_endpoint = url

    def _post(self, activity: dict[str, Any], token: TokenArg) -> tuple[int, Any]:
        endpoint = self.bot_endpoint
        if not endpoint:
            raise RuntimeError("no bot endpoint: call set_bot_endpoint(url) first (POST "
                               "/_sim/bot-endpoint from another process)")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Microsoft-SkypeBotApi (Microsoft-BotFramework/3.0)"}
        if token == "auto":
            if self.app_id:
                headers["Authorization"] = "Bearer " + self.token(
                    service_url=activity.get("serviceUrl") or self.service_url)
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(endpoint, data=json.dumps(activity).encode(),
                                         headers=headers, method="POST")
        timeout = self.bot_timeout
        started = time.monotonic()
        bot_status: int | None = None
        body: Any = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                bot_status, raw, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            bot_status, raw, kind = error.code, error.read(), error.headers
        except TimeoutError:
            pass  # the bot is late: Azure Bot Service gives up on it (below)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, TimeoutError):
                raise ConnectionError(f"cannot reach the bot at {endpoint}: {reason}") from exc
        late = bot_status is None or time.monotonic() - started > timeout
        if late:
            status = 504
            body = {"error": {"code": "GatewayTimeout",
                              "message": f"The bot did not answer activity {activity.get('id')} "
                                         f"within {timeout:g} seconds."}}
            logger.warning("Teams simulator: the bot at %s did not answer activity %s within "
                           "%gs: 504 GatewayTimeout", endpoint, activity.get("id"), timeout)
        else:
            status = int(bot_status or 0)
            text = raw.decode(errors="replace")
            body = text
            if "json" in (kind.get("Content-Type") or "") and text.strip():
                try:
                    body = json.loads(text)
                except ValueError:
                    pass
        self._posted.activity = copy.deepcopy(activity)
        with self._state.changed:
            self._state.inbound.append({"activity": copy.deepcopy(activity), "status": status,
                                        "body": body, "timed_out": late,
                                        "bot_status": bot_status})
            self._state.changed.notify_all()
        return status, body

    def _resolve(self, user: TeamsUser, conversation: str, thread: str | None) -> tuple[str, str]:
        """(conversation id, activity id) for a new message from ``user``."""
        aid = self._state.next_id()
        if conversation == "personal":
            return user.personal_conversation, aid
        if conversation == "channel":
            return f"{CHANNEL_ID};messageid={thread or aid}", aid
        with self._state.lock:
            found = self._state.conversation(conversation)
        if found is None or user.key not in found.members:
            raise LookupError(f"{user.key} is not in a conversation {conversation!r}; use "
                              "'personal', 'channel' or a known conversation id")
        return conversation, aid

    def send_text(self, user: str, text: str, *, conversation: str = "personal",
                  mention: bool = True, thread: str | None = None,
                  token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` writes ``text``; the HTTP status and body the bot answered with.

        ``conversation`` is "personal" (the user's chat with the bot), "channel" (a new
        thread in the team channel, or a reply in ``thread``, a root activity id) or a
        conversation id. In the channel, ``mention`` prefixes ``<at>bot</at>`` and adds the
        mention entity, as Teams does when the bot is @mentioned. ``token`` is "auto" (a
        valid JWT), None (no Authorization header) or a raw token to send.
        """
        account = self._user(user)
        cid, aid = self._resolve(account, conversation, thread)
        activity = self._activity(account, cid, aid, text=text, textFormat="plain")
        if mention and cid.split(";", 1)[0] == CHANNEL_ID:
            at = f"<at>{self.bot_name}</at>"
            activity["text"] = f"{at} {text}"
            activity["entities"].insert(0, {"type": "mention", "text": at, "mentioned": {
                "id": self.bot_id, "name": self.bot_name}})
        return self._post(activity, token)

    def resend(self, activity: Mapping[str, Any], *, token: TokenArg = "auto") -> tuple[int, Any]:
        """Post an activity again unchanged (a redelivery), with a fresh token."""
        return self._post(copy.deepcopy(dict(activity)), token)

    def _sent(self, activity_id: str) -> _Sent:
        with self._state.lock:
            sent = self._state.sent.get(activity_id)
            sent = copy.deepcopy(sent) if sent is not None and not sent.deleted else None
        if sent is None:
            raise LookupError(f"the bot sent no activity {activity_id!r} (or deleted it)")
        return sent

    def _find(self, activity_id: str, title: str | None, types: tuple[str, ...],
              verb: str | None = None) -> tuple[_Sent, str, dict[str, Any], dict[str, Any]]:
        """The activity and its one action of ``types`` with ``title`` (and ``verb``)."""
        sent = self._sent(activity_id)
        actions = [(kind, action, card) for kind, action, card in _all_actions(sent.activity)
                   if action.get("type") in types
                   and (title is None or action.get("title") == title)
                   and (verb is None or action.get("verb") == verb)]
        if len(actions) != 1:
            available = [a.get("title") for _, a, _ in _all_actions(sent.activity)]
            wanted = " ".join(f"{name} {value!r}" for name, value in
                              (("titled", title), ("with verb", verb)) if value is not None)
            raise LookupError(f"activity {activity_id} has {len(actions)} {'/'.join(types)} "
                              f"actions {wanted or '(give a title)'}; its actions: {available}")
        kind, action, card = actions[0]
        return sent, kind, action, card

    def submit(self, user: str, activity_id: str, *, title: str | None = None,
               data: Any = None, inputs: Mapping[str, Any] | None = None,
               token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` clicks a button of the card in the bot's activity ``activity_id``.

        Finds the Adaptive Card Action.Submit (or hero card messageBack / imBack / invoke
        button) titled ``title``, or the only one, and posts what Teams posts: for an
        Action.Submit with object data a message without text whose ``value`` is the data
        merged with the card's input values (``inputs`` overrides them), for string data a
        message with that text; ``msteams`` messageBack / imBack / invoke / task/fetch data
        as Teams maps them. ``data`` instead of ``title`` skips the lookup and submits that
        data. ``replyToId`` is the card's activity id. Returns the bot's HTTP status and
        body; LookupError if there is no such activity or action.
        """
        account = self._user(user)
        if title is None and data is not None:
            sent = self._sent(activity_id)
            action: dict[str, Any] = {"type": "Action.Submit", "data": data}
            card: dict[str, Any] = {}
            kind = ADAPTIVE_CARD
        else:
            sent, kind, action, card = self._find(
                activity_id, title, ("Action.Submit", "messageBack", "imBack", "invoke"))
        values = {} if action.get("associatedInputs") == "none" else _input_values(card)
        values.update(inputs or {})
        fields: dict[str, Any] = {"replyToId": activity_id}
        invoke = False
        if kind == ADAPTIVE_CARD:
            payload = action.get("data")
            teams = payload.get("msteams") if isinstance(payload, dict) else None
            if isinstance(payload, dict) and isinstance(teams, dict):
                kind_of = teams.get("type")
                if kind_of == "messageBack":
                    fields.update(text=teams.get("text"), value=teams.get("value"))
                elif kind_of == "imBack":
                    fields["text"] = teams.get("value")
                elif kind_of == "invoke":
                    value = teams.get("value")
                    fields.update(type="invoke", value={**value, **values}
                                  if isinstance(value, dict) else value)
                    invoke = True
                elif kind_of == "task/fetch":
                    fields.update(type="invoke", name="task/fetch",
                                  value={"data": {**payload, **values},
                                         "context": {"theme": "default"}})
                    invoke = True
                else:
                    raise ValueError(f"the simulator cannot click msteams type {kind_of!r}")
            elif isinstance(payload, str):
                fields["text"] = payload
            else:
                fields["value"] = {**(payload or {}), **values}
        else:  # hero / thumbnail card button
            button_type = action.get("type")
            if button_type == "messageBack":
                fields.update(text=action.get("text"), value=action.get("value"))
            elif button_type == "imBack":
                fields["text"] = action.get("value")
            else:
                fields.update(type="invoke", value=action.get("value"))
                invoke = True
        fields = {key: value for key, value in fields.items() if value is not None}
        if not invoke:
            fields.setdefault("textFormat", "plain")
        activity = self._activity(account, sent.conversation, **fields)
        return self._post(activity, token)

    def execute(self, user: str, activity_id: str, *, title: str | None = None,
                verb: str | None = None, inputs: Mapping[str, Any] | None = None,
                token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` clicks an Action.Execute (by ``title`` or ``verb``): an ``invoke``
        ``adaptiveCard/action``. Returns the bot's status and invoke response body; a
        200 answer carrying a card replaces the card, as Teams does."""
        account = self._user(user)
        sent, _, action, card = self._find(activity_id, title, ("Action.Execute",), verb)
        values = {} if action.get("associatedInputs") == "none" else _input_values(card)
        values.update(inputs or {})
        data = action.get("data")
        merged = {**data, **values} if isinstance(data, dict) else (data if data is not None
                                                                   else values)
        invoked: dict[str, Any] = {"type": "Action.Execute", "verb": action.get("verb"),
                                   "data": merged}
        if action.get("id"):
            invoked["id"] = action["id"]
        activity = self._activity(account, sent.conversation, type="invoke",
                                  name="adaptiveCard/action", replyToId=activity_id,
                                  value={"action": invoked, "trigger": "manual"})
        status, body = self._post(activity, token)
        if status == 200 and isinstance(body, dict) and body.get("type") == ADAPTIVE_CARD \
                and isinstance(body.get("value"), dict):
            with self._state.changed:
                stored = self._state.sent.get(activity_id)
                if stored is not None:
                    stored.activity["attachments"] = [{"contentType": ADAPTIVE_CARD,
                                                       "content": body["value"]}]
                    self._state.events.append({"kind": "refresh", "id": activity_id,
                                               "conversation": stored.conversation,
                                               "activity": copy.deepcopy(stored.activity)})
                    self._state.changed.notify_all()
        return status, body

    # -- reading what the bot did ------------------------------------------------------

    card_actions = staticmethod(card_actions)
    text_of = staticmethod(text_of)

    def bot_activities(self, conversation: str | None = None, *,
                       include_typing: bool = False) -> list[dict[str, Any]]:
        """What the bot posted and did not delete, in its current state (updates applied),
        oldest first. ``conversation``: None (all), "personal" (every personal chat), a user
        key (that user's chat), "channel" (every channel thread) or a conversation id (a bare
        channel id includes its threads). Typing indicators only with ``include_typing``."""
        with self._state.lock:
            return [copy.deepcopy(sent.activity) for sent in self._state.sent.values()
                    if not sent.deleted and _matches(conversation, sent.conversation, self._state)
                    and (include_typing or sent.activity.get("type") != "typing")]

    def bot_events(self) -> list[dict[str, Any]]:
        """Every send, reply, update, delete (and card refresh by an invoke response), in
        order: ``{"kind", "id", "conversation", "activity"}``."""
        with self._state.lock:
            return copy.deepcopy(self._state.events)

    def user_activities(self) -> list[dict[str, Any]]:
        """What the simulator posted to the bot, oldest first: ``{"activity", "status",
        "body", "timed_out", "bot_status"}``. ``status`` is what the channel got: the bot's
        answer, or 504 when the bot did not answer within ``bot_timeout`` (``timed_out``;
        ``bot_status`` is then what the bot said too late, or None)."""
        with self._state.lock:
            return copy.deepcopy(self._state.inbound)

    def wait_for_bot_activity(self, *, conversation: str | None = None,
                              contains: str | None = None, after_count: int = 0,
                              timeout: float = 10.0) -> dict[str, Any]:
        """The first of ``bot_activities(conversation)[after_count:]`` whose ``text_of``
        contains ``contains``, waiting up to ``timeout`` seconds; TimeoutError says what
        the bot did send."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                seen = [sent.activity for sent in self._state.sent.values()
                        if not sent.deleted and sent.activity.get("type") != "typing"
                        and _matches(conversation, sent.conversation, self._state)]
                for activity in seen[after_count:]:
                    if contains is None or contains in text_of(activity):
                        return copy.deepcopy(activity)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    texts = [text_of(a)[:80] for a in seen[after_count:]]
                    what = f" containing {contains!r}" if contains is not None else ""
                    where = conversation or "any conversation"
                    raise TimeoutError(f"no bot activity{what} in {where} within {timeout}s "
                                       f"(after {after_count} activities); it sent: {texts}")
                self._state.changed.wait(remaining)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.teams",
        description="A local Microsoft Teams channel for opsbot: signed activities to the "
                    "bot, the Bot Connector service and AAD's token endpoint.",
    )
    add_address_arguments(parser, 3979)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID,
                        help="the bot's app id ('' = anonymous, no JWTs)")
    parser.add_argument("--app-password", default=DEFAULT_APP_PASSWORD, help="its client secret")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID, help="the tenant GUID")
    parser.add_argument("--bot-name", default="opsbot", help="the bot's display name")
    parser.add_argument("--bot-endpoint", default=None, metavar="URL",
                        help="the bot's messaging endpoint, e.g. "
                             "http://127.0.0.1:5005/webhooks/teams/api/messages")
    parser.add_argument("--bot-timeout", type=float, default=DELIVERY_TIMEOUT, metavar="SECONDS",
                        help="how long the channel waits for the bot to answer an activity "
                             "(later is a 504, as Azure Bot Service does; default 15)")
    parser.add_argument("--no-thread-limits", action="store_true",
                        help="do not throttle the bot with the documented per thread limits")
    parser.add_argument("--no-outbound-auth", action="store_true",
                        help="let the connector accept requests without an issued token")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a throwaway CA (needed by MSAL)")
    args = parser.parse_args(argv)

    def make() -> TeamsSimulator:
        return TeamsSimulator(app_id=args.app_id, app_password=args.app_password,
                              tenant_id=args.tenant_id, bot_name=args.bot_name,
                              require_outbound_auth=not args.no_outbound_auth,
                              bot_endpoint=args.bot_endpoint, bot_timeout=args.bot_timeout,
                              thread_limits={} if args.no_thread_limits else None, tls=args.tls,
                              host=args.host, port=args.port)

    def banner(simulator: TeamsSimulator) -> list[str]:
        url = simulator.url
        lines = [f"Teams simulator at {url} (app id {simulator.app_id or 'anonymous'})",
                 f"  serviceUrl: {simulator.service_url}",
                 f"  bot endpoint: {simulator.bot_endpoint or 'not set'}"]
        lines += [f"  {name}={value}" for name, value in simulator.env().items()]
        if simulator.ca_file:
            lines.append(f"  CA certificate: {simulator.ca_file}")
        lines += ["  control API (JSON):",
                  f"    POST {url}/_sim/bot-endpoint {{\"url\": ...}}",
                  f"    POST {url}/_sim/users/<alice|bob|carol>/send "
                  "{\"text\": ..., \"conversation\": \"personal\"|\"channel\"}",
                  f"    POST {url}/_sim/users/<name>/submit "
                  "{\"activity_id\": ..., \"title\": ...}",
                  f"    POST {url}/_sim/users/<name>/execute "
                  "{\"activity_id\": ..., \"verb\": ...}",
                  f"    GET  {url}/_sim/activities?conversation=<personal|channel|name|id>"]
        return lines

    return run_main(make, banner, seed_error=ValueError,
                    cannot=f"listen on {args.host}:{args.port}")
