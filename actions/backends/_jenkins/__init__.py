"""The parts of the Jenkins backend, one module per concern; import them from
``actions.backends.jenkins``. (The package is not named ``jenkins``: rasa_sdk scans the
actions package with ``pkgutil.walk_packages``, which would import the client library
of that name in its place.)
"""
