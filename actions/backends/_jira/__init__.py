"""The parts of the Jira backend, one module per concern; import them from
``actions.backends.jira``. (The package is not named ``jira``: rasa_sdk scans the
actions package with ``pkgutil.walk_packages``, which would import the client library
of that name in its place.)
"""
