"""What names a GitHub repository, in one place: the service catalog and the GitHub
backend both read it.

``GITHUB_OWNER`` is the user or organisation whose repositories are named after the
services when the catalog does not name one (and which "PRs waiting for my review"
searches); GitHub's own rule for a login: letters, digits and single hyphens, at most 39
characters, not starting with a hyphen (docs.github.com, "Creating an account on GitHub").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from actions.errors import ConfigError

__all__ = ["OWNER_VARIABLE", "Repository", "owner_from_env"]

OWNER_VARIABLE = "GITHUB_OWNER"
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


@dataclass(frozen=True)
class Repository:
    """A GitHub repository: ``owner/name``."""

    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


def owner_from_env(env: Mapping[str, str]) -> str | None:
    """``GITHUB_OWNER``, or None when it is not set; ConfigError when it cannot be one."""
    owner = (env.get(OWNER_VARIABLE) or "").strip() or None
    if owner is not None and not _OWNER.match(owner):
        raise ConfigError(f"{OWNER_VARIABLE}={owner!r} is not a GitHub user or "
                          f"organisation name; use e.g. {OWNER_VARIABLE}=acme.")
    return owner
