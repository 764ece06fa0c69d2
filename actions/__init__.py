"""opsbot's rasa_sdk actions, served by ``rasa run actions`` (or ``opsbot run``).

Actions are thin: they read the tracker, call one backend or guard method and utter
a response from domain.yml. Backends live in ``actions/backends``, the safety layer
(policy, confirmations, audit, the operation store) in ``actions/guard``, opsbot's
database and its other stores in ``actions/storage`` (opened together by ``actions.stores``).
"""

from actions import _redact

_redact.install()  # the action server's logs never show a secret (actions/_redact.py)
