"""Typed async wrappers over the backends' client libraries (Jenkins, Jira, logs).

A new backend is a module here that claims its intents in actions/requests.py.
"""
