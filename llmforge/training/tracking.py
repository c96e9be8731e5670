"""Metrics to MLflow in batches, off the training step's path.

A synchronous ``log_metric`` costs milliseconds (a whole decode step, or ~0.2% of
a CPU training step); here the step only appends to a list and a background
thread sends ``log_batch`` calls every ``interval`` seconds. ``close()`` flushes
everything, so every metric is present once a run ends.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class BatchedMetrics:
    def __init__(self, client, run_id: str, interval: float = 2.0, max_batch: int = 900) -> None:  # noqa: ANN001
        self.client, self.run_id, self.interval, self.max_batch = client, run_id, interval, max_batch
        self._pending: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        with self._lock:
            self._pending.extend(Metric(k, float(v), ts, step) for k, v in values.items())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for i in range(0, len(pending), self.max_batch):  # MLflow caps a batch at 1000 metrics
            try:
                self.client.log_batch(self.run_id, metrics=pending[i:i + self.max_batch])
            except Exception:  # tracking must never kill training; the job's own metrics still have them
                log.exception("sending %d metrics to MLflow failed", len(pending[i:i + self.max_batch]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
