"""A trainer that stays running, so retraining after a few new phrases takes seconds.

Why: a fresh ``opsbot train`` spends most of its time importing Rasa, TensorFlow and
torch and loading the embedding model (bench/retrain.py measures it); the training
itself, with Rasa's fingerprint cache and opsbot's embedding cache, takes a few seconds.
``opsbot run`` and ``opsbot demo`` start this process next to the servers; it imports
all that once, then trains on request, one job at a time:

    POST http://127.0.0.1:<port>/train  {"force": false}
      ->  {"model": "<path>", "seconds": 6.1,
           "trained": ["LinearIntentClassifier", ...], "restored": ["RulePolicy", ...]}

It listens on loopback only, on a free port written to ``<state dir>/trainer.port``;
``opsbot train`` uses it when it answers and trains in its own process otherwise.
``/train`` needs the run's API token (``Authorization: Bearer $OPSBOT_API_TOKEN``, or
the state dir's ``api-token``): any local user can reach a loopback port, and a forced
retrain costs minutes of both cores and leaves a model behind.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["PORT_FILE", "main", "train_remotely"]

PORT_FILE = "trainer.port"


def train_remotely(state_dir: Path, force: bool, timeout: float = 1800.0,
                   on_start: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """Train through a running trainer: its answer, or None if none answers.

    ``on_start`` is called once a trainer has answered and the training begins.
    """
    try:
        port = int((state_dir / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    base = f"http://127.0.0.1:{port}"
    try:  # a left-over port file of a trainer that is gone: train here instead
        with urllib.request.urlopen(f"{base}/", timeout=5) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    from opsbot._tokens import API_TOKEN, read_token

    if on_start is not None:
        on_start()
    request = urllib.request.Request(
        f"{base}/train", data=json.dumps({"force": force}).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {read_token(state_dir, API_TOKEN) or ''}"},
        method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return dict(json.loads(answer.read().decode()))
    except urllib.error.HTTPError as exc:
        try:
            return dict(json.loads(exc.read().decode()))
        except ValueError:
            return {"error": f"the trainer answered HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"error": f"the running opsbot's trainer stopped answering ({exc}); "
                         "run 'opsbot train' again"}


def main() -> int:
    """Warm up, then serve /train until killed."""
    from actions import _redact
    from actions.guard.identity import bearer, same_secret
    from opsbot._private import private_dir, write_private
    from opsbot._training import CommandError, quiet_library_warnings, run_training
    from opsbot.settings import Settings

    _redact.install()
    settings = Settings.from_env()
    quiet_library_warnings(all_user_warnings=True)
    os.environ["OPSBOT_CACHE_DIR"] = str(settings.cache_dir)
    import rasa.api  # noqa: F401 - the slow imports, once
    import rasa.model_training  # noqa: F401

    from nlu._encoder import load_model

    load_model(None, "float32")
    lock = threading.Lock()
    token = (os.environ.get("OPSBOT_API_TOKEN") or "").strip()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(200, {"status": "ok"})

        def do_POST(self) -> None:
            if self.path != "/train":
                self._answer(404, {"error": "POST /train"})
                return
            if not same_secret(bearer(self.headers.get("Authorization")), token):
                self._answer(401, {"error": "the trainer needs the running opsbot's API token "
                                            "(OPSBOT_API_TOKEN, or its state dir's api-token)"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, {"error": "the body must be JSON"})
                return
            with lock:
                try:
                    training = run_training(settings, force=bool(body.get("force")), quiet=True)
                except CommandError as exc:
                    self._answer(422, {"error": str(exc)})
                    return
                except Exception as exc:  # noqa: BLE001 - the caller gets a reference; we keep serving
                    reference = uuid.uuid4().hex[:8]
                    logging.getLogger("opsbot.trainer").exception(
                        "training failed (reference %s)", reference)
                    self._answer(500, {"error": f"training failed ({type(exc).__name__}); the "
                                                f"trainer's log has reference {reference}"})
                    return
            self._answer(200, {"model": str(training.model), "seconds": round(training.seconds, 2),
                               "trained": list(training.trained),
                               "restored": list(training.restored)})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file = write_private(private_dir(settings.state_dir) / PORT_FILE,
                              str(server.server_address[1]))
    print(f"trainer ready on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        try:
            port_file.unlink()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
