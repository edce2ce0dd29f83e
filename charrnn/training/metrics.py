"""metrics.jsonl: the run's log on disk, one JSON object per line.

It does not decide what to record (the loop does) and never reads the records back for training.
"""

from __future__ import annotations

import json
from pathlib import Path

from charrnn import atomic, strict_json


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed as the run goes.

    On resume, records past the checkpoint's step (written before a crash) are dropped first, so
    the file always describes the run that the checkpoint continues.
    """

    def __init__(self, path: Path, keep_through: int) -> None:
        kept = []
        if path.exists() and keep_through:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= keep_through:
                        kept.append(line)
                except ValueError:
                    continue  # a line torn by a crash
        atomic.write_text(path, "".join(k + "\n" for k in kept))
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(strict_json.dumps(strict_json.record(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
