"""Bot API parameters as api.telegram.org reads them: from the query string, a form,
JSON or multipart, with its coercions and its 400s.

Why apart: how a parameter is read is the same for every method; the methods only
name what they want.
"""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

from simulators._http import Request
from simulators.telegram._model import _DEFAULT_ALLOWED, _UPDATE_TYPES, _bad


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _int(params: dict[str, Any], name: str, default: int = 0) -> int:
    """An integer; like the Bot API, garbage reads as 0."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    text = _str(params, name) or ""
    try:
        return int(text.strip())
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return 0


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, bool):
        return value
    return (_str(params, name) or "").strip().lower() in ("true", "1", "yes")


def _json(params: dict[str, Any], name: str, what: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {what} JSON object") from None
    return value


def _allowed_updates(value: Any) -> frozenset[str] | None:
    """The update types a bot asked for; None when it did not ask."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad("can't parse allowed updates JSON array")
    names = {str(name).lower() for name in value} & set(_UPDATE_TYPES)
    return frozenset(names) if value else _DEFAULT_ALLOWED


def _request_params(request: Request) -> dict[str, Any]:
    """Parameters from the query string and a form, JSON or multipart body."""
    params: dict[str, Any] = {name: values[0] for name, values in request.query.items()}
    body = request.body
    if not body:
        return params
    content_type = request.header("Content-Type") or ""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _bad("can't parse JSON encoded request body") from None
        if not isinstance(data, dict):
            raise _bad("JSON object expected as request body")
        params.update(data)
    elif kind == "multipart/form-data":
        parsed = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        if not parsed.is_multipart():
            raise _bad("can't parse multipart/form-data request body")
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            raw = payload if isinstance(payload, bytes) else b""
            params[name] = raw if part.get_filename() else raw.decode("utf-8", "replace")
    else:  # application/x-www-form-urlencoded, or no type at all
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({name: values[0] for name, values in form.items()})
    return params


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    return {name: f"<{len(value)} bytes>" if isinstance(value, bytes) else value
            for name, value in params.items()}
