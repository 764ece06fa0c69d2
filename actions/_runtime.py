"""The action server's long-lived parts, built once from the environment on first use:
the backends (by name, ``actions.backends``), the service catalog, the store, the policy,
and where the Rasa server and the project are. Every variable is in the configuration docs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from actions.backends import KINDS, Backends
from actions.guard import OperationStore, Policy
from actions.service_catalog import ServiceCatalog
from actions.stores import Stores

PROJECT = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Backends, store and policy shared by every action in this process."""

    store: OperationStore
    policy: Policy
    rasa_url: str
    backends: Backends = field(default_factory=Backends)
    services: ServiceCatalog = field(default_factory=ServiceCatalog)
    project: Path = PROJECT
    _retrain: _Retrainer | None = field(default=None, repr=False)

    @property
    def stores(self) -> Stores:
        """The other concerns of ``store``'s database: taught phrasings, leases, events ..."""
        return Stores.around(self.store)

    def retrain(self) -> bool:
        """Retrain in the background and reload the Rasa server; False if it cannot start."""
        if self._retrain is None:
            self._retrain = _Retrainer(self.project, self.rasa_url)
        return self._retrain.request()

    @classmethod
    def from_env(cls) -> Runtime:
        project = Path(os.environ.get("OPSBOT_PROJECT") or PROJECT)
        return cls(
            project=project,
            backends=Backends.from_env(KINDS, os.environ),
            services=ServiceCatalog.from_env(os.environ),
            store=OperationStore.from_env(),
            policy=Policy.from_env(project),
            rasa_url=(os.environ.get("OPSBOT_RASA_URL") or "http://127.0.0.1:5005").rstrip("/"),
        )


class _Retrainer:
    """Runs ``opsbot train --reload`` in a thread; a request during a run queues one more."""

    def __init__(self, project: Path, rasa_url: str) -> None:
        self.project = project
        self.port = urlsplit(rasa_url).port or 5005
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def request(self) -> bool:
        with self._lock:
            if self._running:
                self._again = True
                return True
            self._running = True
        threading.Thread(target=self._run, name="opsbot-retrain", daemon=True).start()
        return True

    def _run(self) -> None:
        while True:
            command = [sys.executable, "-m", "opsbot", "train", "--reload",
                       "--port", str(self.port)]
            try:
                done = subprocess.run(command, cwd=self.project, capture_output=True, text=True,
                                      timeout=1800, stdin=subprocess.DEVNULL, check=False)
                if done.returncode != 0:
                    logger.error("retraining failed (exit %s): %s", done.returncode,
                                 (done.stderr or done.stdout)[-2000:])
                else:
                    logger.info("retrained: %s", done.stdout.strip().splitlines()[-1:] or "")
            except (OSError, subprocess.TimeoutExpired) as exc:
                logger.error("retraining could not run: %s", exc)
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process-wide runtime; configuration errors surface on the first action."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_env()
        return _runtime


def reset(value: Runtime | None = None) -> None:
    """Replace the runtime (tests), or drop it so the next call reads the environment again."""
    global _runtime
    with _lock:
        _runtime = value
