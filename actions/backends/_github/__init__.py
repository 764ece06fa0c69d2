"""The parts of the GitHub backend, one module per concern; import them from
``actions.backends.github``. (The package is not named ``github``: that is PyGithub's
import name, which rasa_sdk's package scan would shadow.)
"""
