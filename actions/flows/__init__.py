"""The built-in intents, each declared once beside its handler (``actions.registry``).

Each module holds the handlers of one area and ends with its ``INTENTS``:
``jenkins`` (deploys, builds), ``logs`` (log search), ``jira`` (tickets), ``events``
(subscriptions), ``wishes`` (what people asked for that opsbot cannot do), ``chat``
(hello, thanks, help); ``teach`` is the dialogue of teaching phrasings. Team-defined
operations come from ``actions.operations.flow``.

Nothing registers itself on import: ``actions.intents.install`` registers them all.
"""
