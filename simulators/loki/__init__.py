"""A local Grafana Loki: the query API opsbot's Loki log source calls, over real HTTP.

Why: opsbot's Loki backend, its tests and the demo need a Loki with realistic logs on
any machine, offline. This package serves Loki's read API from the records that
``simulators/logs.py`` generates (the same records the demo writes as files), as
streams labelled ``{service, env, level}`` (other names with ``labels=``, as real
installations use ``service_name``, ``app`` or ``job``) whose lines are the messages:

* ``GET /ready``, ``GET /loki/api/v1/status/buildinfo``
* ``GET /loki/api/v1/labels`` (and ``/label``), ``GET /loki/api/v1/label/<name>/values``
* ``GET|POST /loki/api/v1/query_range``: log queries; ``start``/``end`` as nanosecond
  or second epochs or RFC 3339, ``start`` inclusive and ``end`` exclusive as in Loki;
  ``limit`` (default 100, at most ``max_entries``), ``direction`` backward|forward
* ``GET|POST /loki/api/v1/query``: instant metric queries of the form
  ``count_over_time(LOG_QUERY [RANGE])``, optionally inside ``sum(...)`` or
  ``sum by (labels) (...)``; the window is ``(time - RANGE, time]`` as in Loki

LogQL is a subset, parsed properly: stream selectors with ``=``, ``!=``, ``=~``, ``!~``
and chained line filters ``|=``, ``!=``, ``|~``, ``!~``, strings in double quotes (Go
escapes) or backticks. Errors look like Loki's: 400 with a plain-text body such as
``parse error at line 1, col 10: syntax error: unexpected IDENTIFIER, expecting STRING``.
Anything outside the subset (``| json``, ``rate(...)``) is a 400 that says so; it never
matches everything. With ``tenant`` set, requests need ``X-Scope-OrgID`` like a
multi-tenant Loki (401 ``no org id`` without it; another tenant sees no data).

As Loki itself, ``/labels`` and ``/label/<name>/values`` leave ``data`` out when there is
nothing to list (``{"status": "success"}``): Loki's ``LabelResponse`` declares it
``json:"data,omitempty"`` (grafana/loki, ``pkg/loghttp/labels.go``).

    with LokiSimulator(now=datetime.now(UTC)) as loki:
        requests.get(loki.url + "/loki/api/v1/query_range",
                     params={"query": '{service="payments"} |= "timeout"', "limit": 20})

    python -m simulators.loki --port 3100     # prints the URL; Ctrl+C stops it

The package, one module a concern: ``_logql`` (the query language), ``_store`` (streams
and times), ``_app`` (HTTP) and ``_simulator`` (``LokiSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators.loki._logql import LogQLError, MetricQuery, StreamQuery, parse_logql
from simulators.loki._simulator import LokiSimulator, main
from simulators.loki._store import DEFAULT_MAX_ENTRIES, LOKI_VERSION, RecordedRequest

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "LOKI_VERSION",
    "LogQLError",
    "LokiSimulator",
    "MetricQuery",
    "RecordedRequest",
    "StreamQuery",
    "main",
    "parse_logql",
]
