"""opsbot's chat connectors: Rasa input/output channels named in credentials.yml.

Rasa imports them inside ``rasa run``, before any of them reads a token, so this is
where the Rasa server gets opsbot's secret filter (``actions/_redact.py``): no log line
of the server, Rasa's, sanic's or httpx's, shows a configured secret.
"""

from actions import _redact

_redact.install()
