"""The Teams simulator's HTTP face: the Bot Connector API under ``/teams-sim/``, the AAD
token service, the OpenID metadata and keys, and the control API under ``/_sim/``.

Why apart: the wire is one job; the public face drives the same state from Python.
"""

from __future__ import annotations

import copy
import datetime as dt
import hmac
import json
import time
from base64 import b64decode
from binascii import Error as BinasciiError
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from simulators._http import Request, Response
from simulators.teams._model import (
    _BOTFRAMEWORK_TENANT_GUID,
    _FORM,
    _TOKEN_LIFETIME,
    BOTFRAMEWORK_SCOPE,
    BOTFRAMEWORK_TENANT,
    CHANNEL_ID,
    CHANNEL_NAME,
    SERVICE_PATH,
    TEAM_ID,
    TEAM_NAME,
    RecordedRequest,
    _aad_error,
    _connector_error,
    _Refused,
    logger,
)
from simulators.teams._state import _Conversation, _Sent

if TYPE_CHECKING:  # pragma: no cover
    from simulators.teams._simulator import TeamsSimulator


class _App:
    def __init__(self, sim: TeamsSimulator) -> None:
        self.sim = sim
        self.state = sim._state

    def __call__(self, request: Request) -> Response:
        control = request.segments[:1] == ("_sim",)
        failure = None if control else self.state.faults.hold(request.raw_path)
        if failure is not None:
            response = self._fault_response(request, failure)
        else:
            try:
                response = self._route(request)
            except _Refused as refused:
                response = refused.response
        self.state.log.append(RecordedRequest(request.method, request.target, response.status,
                                              request.header("Authorization")))
        return response

    def _fault_response(self, request: Request, status: int) -> Response:
        message = "injected by TeamsSimulator.fail_next()"
        if request.segments[:1] != (SERVICE_PATH.strip("/"),):
            return _aad_error(status, "temporarily_unavailable", 50196, message).response
        code = {429: "TooManyRequests", 401: "Unauthorized", 403: "Forbidden",
                404: "NotFound"}.get(status)
        if code is None:
            try:
                code = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                code = "ServiceError"
        response = _connector_error(status, code, message).response
        return response.with_header("Retry-After", "1") if status == 429 else response

    def _route(self, request: Request) -> Response:
        segments = request.segments
        method = request.method
        match segments:
            case ("openid", ".well-known", "openidconfiguration") if method == "GET":
                return Response.json(self.sim._channel_metadata())
            case ("openid", "keys") if method == "GET":
                return Response.json(self.sim._jwks(endorse=True))
            case ("_sim", *rest):
                return self._control(request, tuple(rest))
            case (prefix, "v3", *rest) if prefix == SERVICE_PATH.strip("/"):
                self._check_outbound_auth(request)
                self._check_rate(request, tuple(rest))
                return self._connector(request, tuple(rest))
            case (tenant, "v2.0", ".well-known", "openid-configuration") if method == "GET":
                return Response.json(self.sim._tenant_metadata(self._tenant(tenant)))
            case (tenant, "oauth2", "v2.0", "token"):
                if method != "POST":
                    raise _aad_error(405, "invalid_request", 900561,
                                     "The endpoint only accepts POST requests.")
                return self._token(request, self._tenant(tenant))
            case (_, "discovery", "instance") if method == "GET":
                return self._instance_discovery(request)
            case (tenant, "discovery", "v2.0", "keys") if method == "GET":
                self._tenant(tenant)
                return Response.json(self.sim._jwks(endorse=False))
        raise _connector_error(404, "NotFound",
                               f"The Teams simulator has no {method} {request.raw_path}")

    # -- AAD -------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> str:
        """The tenant GUID behind an authority's tenant segment."""
        if tenant.lower() == self.sim.tenant_id.lower():
            return self.sim.tenant_id
        if tenant.lower() in (BOTFRAMEWORK_TENANT, _BOTFRAMEWORK_TENANT_GUID):
            return _BOTFRAMEWORK_TENANT_GUID
        raise _aad_error(400, "invalid_request", 90002,
                         f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                         f"tenant ID (the simulator knows {self.sim.tenant_id} and "
                         f"{BOTFRAMEWORK_TENANT}).")

    def _instance_discovery(self, request: Request) -> Response:
        endpoint = request.param("authorization_endpoint") or ""
        parts = [part for part in urlsplit(endpoint).path.split("/") if part]
        tenant = parts[0] if parts else self.sim.tenant_id
        self._tenant(tenant)
        host = urlsplit(self.sim.url).netloc
        return Response.json({
            "tenant_discovery_endpoint":
                f"{self.sim.url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host,
                          "aliases": [host]}],
        })

    def _token(self, request: Request, tid: str) -> Response:
        if _FORM not in (request.header("Content-Type") or "").lower():
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'grant_type'.")
        form = {name: values[0] for name, values in
                parse_qs(request.body.decode(errors="replace"), keep_blank_values=True).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.header("Authorization") or ""
        if basic.lower().startswith("basic "):  # client_secret_basic
            try:
                user, _, password = b64decode(basic[6:]).decode().partition(":")
            except (BinasciiError, UnicodeDecodeError):
                user = password = ""
            client_id, secret = client_id or unquote(user), unquote(password)
        grant = form.get("grant_type")
        if not grant:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'grant_type'.")
        if grant != "client_credentials":
            raise _aad_error(400, "unsupported_grant_type", 70003,
                             f"The app requested an unsupported grant type '{grant}'; the "
                             "simulator only does client_credentials.")
        if not client_id:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'client_id'.")
        if client_id.lower() != self.sim.app_id.lower():
            raise _aad_error(400, "unauthorized_client", 700016,
                             f"Application with identifier '{client_id}' was not found in the "
                             f"directory '{tid}'. This can happen if the application has not "
                             "been installed by the administrator of the tenant.")
        if not secret:
            raise _aad_error(401, "invalid_client", 7000218,
                             "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.")
        if not hmac.compare_digest(secret.encode(), self.sim.app_password.encode()):
            raise _aad_error(401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in "
                             "the request is the client secret value, not the client secret ID, "
                             f"for a secret added to app '{client_id}'.")
        scope = form.get("scope")
        if not scope:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'scope'.")
        if scope.split() != [BOTFRAMEWORK_SCOPE]:
            raise _aad_error(400, "invalid_scope", 70011,
                             f"The provided value for the input parameter 'scope' is not valid. "
                             f"The scope {scope} is not valid; the Bot Connector service needs "
                             f"{BOTFRAMEWORK_SCOPE}.")
        token = self.sim._issue_access_token(tid)
        return Response.json({"token_type": "Bearer", "expires_in": _TOKEN_LIFETIME,
                              "ext_expires_in": _TOKEN_LIFETIME, "access_token": token})

    # -- connector ---------------------------------------------------------------------

    def _check_outbound_auth(self, request: Request) -> None:
        if not self.sim.require_outbound_auth:
            return
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        with self.state.lock:
            expiry = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.time():
            reason = ("no bearer token" if expiry is None and not token else
                      "the token has expired" if expiry is not None else
                      "the token was not issued by this simulator's token endpoint")
            raise _connector_error(401, "Unauthorized",
                                   f"Authorization has been denied for this request ({reason}).")

    def _check_rate(self, request: Request, rest: tuple[str, ...]) -> None:
        """429 with Retry-After when the bot goes over the per bot per thread limits."""
        method = request.method
        scenario, thread = "", ""
        match rest:
            case ("conversations",) if method == "POST":
                scenario = "create"
            case ("conversations", cid, "activities", *_) if method in ("POST", "PUT",
                                                                        "DELETE"):
                scenario, thread = "send", cid.split(";", 1)[0]
            case ("conversations", cid, *_) if method == "GET":
                scenario, thread = "members", cid.split(";", 1)[0]
        wait = self.state.admit(scenario, thread, request.raw_path)
        if wait is not None:
            logger.info("Teams simulator: throttled %s %s (Retry-After: %d)", method,
                        request.raw_path, wait)
            raise _Refused(_connector_error(
                429, "TooManyRequests",
                f"The bot sent too many requests to this conversation; retry after {wait} "
                "seconds (per bot per thread limit).").response
                .with_header("Retry-After", str(wait)))

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _connector_error(400, "BadArgument",
                                   f"The request body is not valid JSON: {exc}") from None

    def _activity_body(self, request: Request) -> dict[str, Any]:
        body = self._json(request)
        if not isinstance(body, dict):
            raise _connector_error(400, "BadArgument", "The request body must be an Activity "
                                   "object.")
        if not isinstance(body.get("type"), str) or not body["type"]:
            raise _connector_error(400, "BadArgument", "Activity type is required.")
        return body

    def _known(self, cid: str) -> _Conversation:
        found = self.state.conversation(cid)
        if found is None:
            raise _connector_error(404, "ConversationNotFound",
                                   f"Conversation not found: {cid!r}. The simulator knows the "
                                   "personal chats of its users and the channel "
                                   f"{CHANNEL_ID} (threads: ';messageid=<root id>').")
        return found

    def _connector(self, request: Request, rest: tuple[str, ...]) -> Response:
        method = request.method
        match rest:
            case ("conversations",):
                if method == "POST":
                    return self._create_conversation(request)
                if method == "GET":
                    with self.state.lock:
                        listed = [{"id": c.id, "members": [self.state.users[k].account()
                                                           for k in c.members]}
                                  for c in self.state.conversations.values()]
                    return Response.json({"conversations": listed})
            case ("conversations", cid, "activities") if method == "POST":
                self._known(cid)
                return self._store(cid, self._activity_body(request), None, "send")
            case ("conversations", cid, "activities", aid):
                self._known(cid)
                if method == "POST":
                    return self._store(cid, self._activity_body(request), aid, "reply")
                if method == "PUT":
                    return self._update(cid, aid, self._activity_body(request))
                if method == "DELETE":
                    return self._delete(cid, aid)
            case ("conversations", cid, "activities", _aid, "members") if method == "GET":
                return Response.json(self._members(self._known(cid)))
            case ("conversations", cid, "members") if method == "GET":
                return Response.json(self._members(self._known(cid)))
            case ("conversations", cid, "members", uid) if method == "GET":
                conversation = self._known(cid)
                user = self.state.user(uid)
                if user is None or user.key not in conversation.members:
                    raise _connector_error(404, "MemberNotFoundInConversation",
                                           f"The user {uid!r} is not a member of {cid!r}.")
                return Response.json(user.member(self.sim.tenant_id))
            case ("conversations", cid, paged) if paged.lower() == "pagedmembers" \
                    and method == "GET":
                return self._paged_members(request, self._known(cid))
            case ("teams", team) if method == "GET":
                self._team(team)
                return Response.json({"id": TEAM_ID, "name": TEAM_NAME,
                                      "aadGroupId": "00000000-0000-0000-0000-00000000fea1",
                                      "channelCount": 2, "memberCount": len(self.state.users),
                                      "type": "standard"})
            case ("teams", team, "conversations") if method == "GET":
                self._team(team)
                return Response.json({"conversations": [{"id": TEAM_ID, "name": None},
                                                        {"id": CHANNEL_ID,
                                                         "name": CHANNEL_NAME}]})
            case _:
                raise _connector_error(404, "NotFound", "The Teams simulator's connector has "
                                       f"no {method} /v3/{'/'.join(rest)}")
        raise _connector_error(405, "MethodNotAllowed",
                               f"{method} is not allowed on /v3/{'/'.join(rest)}")

    @staticmethod
    def _team(team: str) -> None:
        if team not in (TEAM_ID, CHANNEL_ID):
            raise _connector_error(404, "TeamNotFound", f"Team not found: {team!r}")

    def _members(self, conversation: _Conversation) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self.state.users[key].member(self.sim.tenant_id)
                    for key in conversation.members]

    def _paged_members(self, request: Request, conversation: _Conversation) -> Response:
        members = self._members(conversation)
        try:
            size = int(request.param("pageSize") or 200)
            start = int(request.param("continuationToken") or 0)
        except ValueError:
            raise _connector_error(400, "BadArgument", "pageSize and continuationToken must "
                                   "be what the previous page returned") from None
        size = max(1, min(size, 500))
        page = members[start:start + size]
        more = start + size < len(members)
        # The last page has no continuationToken at all: the Agents SDK's
        # PagedMembersResult refuses a null one.
        return Response.json({"members": page, **({"continuationToken": str(start + size)}
                                                  if more else {})})

    def _store(self, cid: str, body: dict[str, Any], reply_to: str | None,
               kind: str) -> Response:
        aid = self.state.next_id()
        if cid == CHANNEL_ID and reply_to is None:
            cid = f"{CHANNEL_ID};messageid={aid}"  # a new post starts its own thread
        activity = copy.deepcopy(body)
        activity["id"] = aid
        conversation = activity.get("conversation")
        activity["conversation"] = {**(conversation if isinstance(conversation, dict) else {}),
                                    "id": cid}
        if reply_to is not None:
            activity.setdefault("replyToId", reply_to)
        activity.setdefault("timestamp", _now_iso())
        with self.state.changed:
            self.state.sent[aid] = _Sent(aid, cid, activity)
            self.state.events.append({"kind": kind, "id": aid, "conversation": cid,
                                      "activity": copy.deepcopy(activity)})
            self.state.changed.notify_all()
        return Response.json({"id": aid}, 201)

    def _update(self, cid: str, aid: str, body: dict[str, Any]) -> Response:
        with self.state.changed:
            sent = self.state.sent.get(aid)
            if sent is None or sent.deleted or sent.conversation.split(";")[0] != cid.split(";")[0]:
                raise _connector_error(404, "ActivityNotFound",
                                       f"Activity {aid!r} not found in conversation {cid!r} "
                                       "(the bot can only update activities it sent).")
            activity = copy.deepcopy(body)
            activity["id"] = aid
            activity["conversation"] = {**(activity.get("conversation") or {}),
                                        "id": sent.conversation}
            for key in ("replyToId", "timestamp"):
                if key in sent.activity:
                    activity.setdefault(key, sent.activity[key])
            sent.activity = activity
            self.state.events.append({"kind": "update", "id": aid, "conversation": cid,
                                      "activity": copy.deepcopy(activity)})
            self.state.changed.notify_all()
        return Response.json({"id": aid})

    def _delete(self, cid: str, aid: str) -> Response:
        with self.state.changed:
            sent = self.state.sent.get(aid)
            if sent is None or sent.deleted:
                raise _connector_error(404, "ActivityNotFound",
                                       f"Activity {aid!r} not found in conversation {cid!r}.")
            sent.deleted = True
            self.state.events.append({"kind": "delete", "id": aid, "conversation": cid,
                                      "activity": None})
            self.state.changed.notify_all()
        return Response(200)

    def _create_conversation(self, request: Request) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise _connector_error(400, "BadArgument", "ConversationParameters expected.")
        channel = ((body.get("channelData") or {}).get("channel") or {}).get("id")
        activity = body.get("activity")
        if channel:
            if channel != CHANNEL_ID:
                raise _connector_error(404, "ConversationNotFound",
                                       f"Channel not found: {channel!r}")
            if not isinstance(activity, dict):
                raise _connector_error(400, "BadArgument", "A new channel thread needs an "
                                       "activity to start it.")
            root = json.loads(self._store(CHANNEL_ID, activity, None, "send").body)["id"]
            return Response.json({"id": f"{CHANNEL_ID};messageid={root}", "activityId": root,
                                  "serviceUrl": self.sim.service_url}, 201)
        members = body.get("members") or []
        users = [self.state.user(str(m.get("id") or "")) for m in members if isinstance(m, dict)]
        if len(users) != 1 or users[0] is None or body.get("isGroup"):
            raise _connector_error(400, "BadArgument", "The simulator creates 1:1 chats with "
                                   "one known member (by 29: id or AAD object id), or channel "
                                   "threads (channelData.channel.id).")
        cid = users[0].personal_conversation
        with self.state.lock:
            if cid not in self.state.conversations:
                self.state.add_personal(users[0])
        answer: dict[str, Any] = {"id": cid, "serviceUrl": self.sim.service_url}
        if isinstance(activity, dict):
            answer["activityId"] = json.loads(self._store(cid, activity, None, "send").body)["id"]
        return Response.json(answer, 201)

    # -- control ---------------------------------------------------------------------

    def _control(self, request: Request, rest: tuple[str, ...]) -> Response:
        def body() -> dict[str, Any]:
            data = self._json(request)
            if not isinstance(data, dict):
                raise _connector_error(400, "BadArgument", "a JSON object is expected")
            return data

        try:
            match rest:
                case ("bot-endpoint",) if request.method == "POST":
                    self.sim.set_bot_endpoint(str(body().get("url") or ""))
                    return Response.json({"url": self.sim.bot_endpoint})
                case ("activities",) if request.method == "GET":
                    conversation = request.param("conversation") or None
                    return Response.json({"activities": self.sim.bot_activities(conversation)})
                case ("users", user, "send") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.send_text(
                        user, str(data.get("text") or ""),
                        conversation=data.get("conversation") or "personal",
                        mention=bool(data.get("mention", True)), thread=data.get("thread"))
                case ("users", user, "submit") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.submit(
                        user, str(data.get("activity_id") or ""), title=data.get("title"),
                        data=data.get("data"), inputs=data.get("inputs"))
                case ("users", user, "execute") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.execute(
                        user, str(data.get("activity_id") or ""), title=data.get("title"),
                        verb=data.get("verb"), inputs=data.get("inputs"))
                case _:
                    raise _connector_error(404, "NotFound",
                                           f"no {request.method} /_sim/{'/'.join(rest)}")
        except LookupError as exc:
            raise _connector_error(404, "NotFound", str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            raise _connector_error(400, "BadArgument", str(exc)) from None
        except OSError as exc:
            raise _connector_error(502, "BotUnreachable", str(exc)) from None
        return Response.json({"status": status, "body": answer,
                              "activity": self.sim._posted.activity})


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
