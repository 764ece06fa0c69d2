"""The trainer: retrains in seconds while it is warm, and is gone while nobody retrains.

Why: a fresh ``opsbot train`` spends most of its time importing Rasa and torch and
loading the embedding model (bench/retrain.py measures it); the training itself, with
Rasa's fingerprint cache and opsbot's embedding cache, takes a few seconds. This process
imports all that once, then trains on request, one job at a time:

    POST http://127.0.0.1:<port>/train  {"force": false}
      ->  {"model": "<path>", "seconds": 6.1,
           "trained": ["LinearIntentClassifier", ...], "restored": ["RulePolicy", ...]}

Warm, it holds 550-600 MB (``python -m bench.memory``), so it runs on demand.
``opsbot run`` and ``opsbot demo`` hold its port (``opsbot._processes.TrainerOnDemand``,
written to ``<state dir>/trainer.port``) and start it, on that socket, when a retrain
connects: ``opsbot train``, a phrasing taught in the chat, ``opsbot review``. It answers
at once, warms up, trains, and exits once it has had nothing to do for
``OPSBOT_TRAINER_IDLE_SECONDS`` (120); the next retrain starts it again. With 0 it
starts with the servers and stays. Run on its own (``python -m opsbot._trainer``, as
bench/retrain.py does) it listens on a free port and writes the port file once warm.

It listens on loopback only. ``/train`` needs the run's API token (``Authorization:
Bearer $OPSBOT_API_TOKEN``, or the state dir's ``api-token``): any local user can reach
a loopback port, and a forced retrain costs minutes of both cores and leaves a model
behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["PORT_FILE", "Idle", "main", "train_remotely"]

PORT_FILE = "trainer.port"
# How long `opsbot train` waits for a trainer to answer its first request: one started
# on demand answers once its interpreter is up, before it warms up.
ANSWER_SECONDS = 60.0


def train_remotely(state_dir: Path, force: bool, timeout: float = 1800.0,
                   on_start: Callable[[bool], None] | None = None) -> dict[str, Any] | None:
    """Train through a running opsbot's trainer: its answer, or None if none answers.

    ``on_start`` is called once a trainer has answered and the training begins, with
    whether it was warm (False: it is starting, and this retrain waits for its warm-up).
    """
    try:
        port = int((state_dir / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    answer = _train_once(f"http://127.0.0.1:{port}", state_dir, force, timeout, on_start)
    if answer is not None and answer.get("retry"):
        # It started without TensorFlow, which the configuration now needs, and exits;
        # the next connection starts one that loads it.
        answer = _train_once(f"http://127.0.0.1:{port}", state_dir, force, timeout, None)
    return answer


def _train_once(base: str, state_dir: Path, force: bool, timeout: float,
                on_start: Callable[[bool], None] | None) -> dict[str, Any] | None:
    try:  # a left-over port file of an opsbot that is gone: train here instead
        with urllib.request.urlopen(f"{base}/", timeout=ANSWER_SECONDS) as answer:
            status = json.loads(answer.read().decode() or "{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    from opsbot._tokens import API_TOKEN, read_token

    if on_start is not None:
        on_start(bool(status.get("warm", True)) if isinstance(status, dict) else True)
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


class Idle:
    """Whether the trainer has had nothing to do for ``seconds`` (0: never idle).

    Work is what happens between :meth:`begin` and :meth:`end`: the warm-up and every
    request, a training included.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._busy = 0
        self._since = clock()
        self._now = False
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            self._busy += 1

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
            self._since = self._clock()

    def expire(self) -> None:
        """Idle as soon as the work under way ends, whatever ``seconds`` says."""
        with self._lock:
            self._now = True

    def expired(self) -> bool:
        with self._lock:
            if self._busy:
                return False
            return self._now or (self.seconds > 0
                                 and self._clock() - self._since >= self.seconds)


def _serve_until_idle(server: ThreadingHTTPServer, idle: Idle) -> None:
    def watch() -> None:
        while not idle.expired():
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=watch, name="opsbot-trainer-idle", daemon=True).start()
    server.serve_forever(poll_interval=0.5)
    server.server_close()  # waits for the requests under way


def _listen(listen_fd: int | None) -> ThreadingHTTPServer:
    """The HTTP server: on the supervisor's socket, or on a free loopback port of its own."""
    if listen_fd is None:
        return ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler,
                                 bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=listen_fd)
    server.server_address = server.socket.getsockname()
    server.server_name, server.server_port = "127.0.0.1", server.server_address[1]
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Serve /train, warming up in the background, until idle (or killed)."""
    parser = argparse.ArgumentParser(prog="python -m opsbot._trainer")
    parser.add_argument("--listen-fd", type=int,
                        help="serve on this listening socket, inherited from the opsbot that "
                             "holds the trainer's port (it writes the port file)")
    args = parser.parse_args(argv)
    from actions import _redact
    from actions.guard.identity import bearer, same_secret
    from opsbot import _no_tensorflow
    from opsbot._private import private_dir, write_private
    from opsbot._training import CommandError, quiet_library_warnings, run_training
    from opsbot.settings import Settings

    _redact.install()
    settings = Settings.from_env()
    quiet_library_warnings(all_user_warnings=True)
    os.environ["OPSBOT_CACHE_DIR"] = str(settings.cache_dir)
    config = settings.project / "config.yml"
    log = logging.getLogger("opsbot.trainer")
    idle = Idle(settings.trainer_idle_seconds)
    warm = threading.Event()
    replaced = threading.Event()  # config.yml came to need TensorFlow
    lock = threading.Lock()
    token = (os.environ.get("OPSBOT_API_TOKEN") or "").strip()
    server = _listen(args.listen_fd)

    def warm_up() -> None:
        idle.begin()
        try:
            _no_tensorflow.install_for(config)
            import rasa.api  # noqa: F401 - the slow imports, once
            import rasa.model_training  # noqa: F401

            from nlu._encoder import load_model

            load_model(None, "float32")
        finally:
            from opsbot._memory import trim

            trim()
            warm.set()
            idle.end()
        if args.listen_fd is None:  # on its own: say where, once warm (bench/retrain.py)
            write_private(private_dir(settings.state_dir) / PORT_FILE,
                          str(server.server_address[1]))
        print(f"trainer warm on 127.0.0.1:{server.server_address[1]}", flush=True)

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
            idle.begin()
            try:
                self._answer(200, {"status": "ok", "warm": warm.is_set()})
            finally:
                idle.end()

        def do_POST(self) -> None:
            idle.begin()
            try:
                self._post()
            finally:
                idle.end()

        def _post(self) -> None:
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
            warm.wait()
            with lock:
                if _no_tensorflow.installed() and _no_tensorflow.config_needs_tensorflow(config):
                    replaced.set()
                    idle.expire()
                    self._answer(503, {"retry": True, "error": (
                        "config.yml now has a TensorFlow component, and this trainer started "
                        "without TensorFlow; it exits, and the next retrain starts one that "
                        "loads it")})
                    return
                try:
                    training = run_training(settings, force=bool(body.get("force")), quiet=True)
                except CommandError as exc:
                    self._answer(422, {"error": str(exc)})
                    return
                except Exception as exc:  # noqa: BLE001 - the caller gets a reference; we keep serving
                    reference = uuid.uuid4().hex[:8]
                    log.exception("training failed (reference %s)", reference)
                    self._answer(500, {"error": f"training failed ({type(exc).__name__}); the "
                                                f"trainer's log has reference {reference}"})
                    return
                finally:
                    from opsbot._memory import trim

                    trim()
            self._answer(200, {"model": str(training.model), "seconds": round(training.seconds, 2),
                               "trained": list(training.trained),
                               "restored": list(training.restored)})

    server.RequestHandlerClass = Handler
    print(f"trainer started on 127.0.0.1:{server.server_address[1]} (idle timeout "
          f"{settings.trainer_idle_seconds:g} s)", flush=True)
    threading.Thread(target=warm_up, name="opsbot-trainer-warm-up", daemon=True).start()
    try:
        _serve_until_idle(server, idle)
    finally:
        if args.listen_fd is None:
            try:
                (settings.state_dir / PORT_FILE).unlink()
            except OSError:
                pass
    why = ("config.yml now needs TensorFlow" if replaced.is_set()
           else f"idle for {settings.trainer_idle_seconds:g} s")
    print(f"trainer {why}: exiting (the next retrain starts it again)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
