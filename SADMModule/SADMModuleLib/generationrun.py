"""One generation on a worker thread, polled from the main thread."""

from __future__ import annotations

import logging
import queue
import threading
import time

from sadm.errors import GenerationCancelled
from SADMModuleLib.preparedrequest import PreparedRequest


class GenerationRun:
    """One generation on a worker thread. The main thread calls `poll()` (from a QTimer) to receive
    progress and the outcome, and creates nodes itself; nothing here touches the scene."""

    def __init__(self, logic, request: PreparedRequest) -> None:
        """logic: anything with `runRequest(request, progress, cancel)` (SADMModuleLogic)."""
        self.request = request
        self.outcome: str | None = None  # "done" | "cancelled" | "failed"
        self.result = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._logic = logic
        self._cancel = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="SADM generation", daemon=True)

    def start(self) -> GenerationRun:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def cancelRequested(self) -> bool:
        return self._cancel.is_set()

    def poll(self) -> list[tuple]:
        """Events since the last poll: ("progress", (done, total, frame)), then ("done" | "cancelled" | "failed", payload)."""
        events = []
        while True:
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                return events
            events.append((kind, payload))
            if kind == "done":
                self.outcome, self.result = kind, payload
            elif kind in ("cancelled", "failed"):
                self.outcome, self.error = kind, payload

    def _work(self) -> None:
        started = time.monotonic()
        try:
            result = self._logic.runRequest(
                self.request, progress=lambda *step: self._events.put(("progress", step)), cancel=self._cancel
            )
            self.seconds = time.monotonic() - started
            self._events.put(("done", result))
        except GenerationCancelled as error:
            self._events.put(("cancelled", error))
        except BaseException as error:  # reported on the main thread; never lost in a worker
            logging.exception("SADM generation failed")
            self._events.put(("failed", error))
