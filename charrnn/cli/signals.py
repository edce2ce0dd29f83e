"""Ctrl-C and SIGTERM during training: finish the step and save, or quit at once on the second."""

from __future__ import annotations

import os
import signal


class Signals:
    """First Ctrl-C / SIGTERM: finish the step, save last.ckpt, exit 130 / 143. Second: exit now
    (checkpoints are written atomically, so nothing on disk is ever half-written)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)

    def uninstall(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            os.write(2, b"\ncharrnn: stopping now; last.ckpt holds the last saved state\n")
            os._exit(128 + signum)
        self.signum = signum
        os.write(
            2,
            b"\ncharrnn: stopping after this step and saving last.ckpt "
            b"(press Ctrl-C again to quit at once)\n",
        )

    def reason(self) -> str | None:
        return "interrupted" if self.signum is not None else None
