"""opsbot: a natural-language ChatOps assistant (Rasa NLU, Jenkins, Jira, logs).

This package holds the ``opsbot`` command line and its settings; the Rasa
components live in ``nlu``, the actions in ``actions``.
"""

__version__ = "0.1.0"
