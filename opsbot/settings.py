"""opsbot's settings: read once from the environment, checked at start-up.

Every variable, with its default and an example: docs/configuration.md.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value opsbot cannot use; the message says which and how to fix it."""


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a port number; "
                            f"use e.g. {name}={default}.") from None
    if not 0 < value < 65536:
        raise SettingsError(f"{name}={value} is out of range; a port is 1-65535.")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds; "
                            f"use e.g. {name}={default:g}.") from None
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name}={raw} is out of range; give 0 or more seconds.")
    return value


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "me"


@dataclass(frozen=True)
class Settings:
    """Where opsbot's files are and which ports its servers use."""

    project: Path
    host: str
    port: int
    actions_port: int
    models: Path
    state_dir: Path
    cache_dir: Path
    user: str
    actions_host: str = "127.0.0.1"
    # How long the trainer waits for the next retrain before it exits; 0: it starts with
    # the servers and stays (opsbot/_trainer.py).
    trainer_idle_seconds: float = 120.0

    @classmethod
    def from_env(cls, project: Path | None = None) -> Settings:
        root = (project or Path.cwd()).resolve()
        state = Path(os.environ.get("OPSBOT_STATE_DIR") or root / ".opsbot")
        models = Path(os.environ.get("OPSBOT_MODELS") or root / "models")
        cache = Path(os.environ.get("OPSBOT_CACHE_DIR") or state / "cache")
        return cls(
            project=root,
            host=os.environ.get("OPSBOT_HOST") or "127.0.0.1",
            port=_port("OPSBOT_PORT", 5005),
            actions_port=_port("OPSBOT_ACTIONS_PORT", 5055),
            models=models if models.is_absolute() else root / models,
            state_dir=state if state.is_absolute() else root / state,
            cache_dir=cache if cache.is_absolute() else root / cache,
            user=os.environ.get("OPSBOT_USER") or _default_user(),
            actions_host=os.environ.get("OPSBOT_ACTIONS_HOST") or "127.0.0.1",
            trainer_idle_seconds=_seconds("OPSBOT_TRAINER_IDLE_SECONDS", 120.0),
        )

    def check_project(self) -> None:
        """Fail with the fix if this is not an opsbot (Rasa) project directory."""
        missing = [n for n in ("config.yml", "domain.yml", "data")
                   if not (self.project / n).exists()]
        if missing:
            raise SettingsError(
                f"{self.project} is not an opsbot project (missing {', '.join(missing)}). "
                "Run opsbot from the repository root."
            )

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}/webhooks/rest/webhook"

    @property
    def actions_url(self) -> str:
        host = "127.0.0.1" if self.actions_host in ("0.0.0.0", "") else self.actions_host
        return f"http://{host}:{self.actions_port}/webhook"
