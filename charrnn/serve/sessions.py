"""Sessions: a hidden state kept per client-chosen id, so a story or a conversation continues across
requests without re-reading its text. Stored in SQLite so they survive a restart.

A session row holds the model's state after the session's text (float32 bytes), the end of that
text (for the controls that look back: --no-repeat, --ban), how many characters it has read, and
the fingerprint of the checkpoint that wrote it: a state means nothing to another model. The least
recently used rows beyond `max_sessions` are evicted on write. It does not decide when to commit
or run the model: the scheduler does; nor does it lock a session against concurrent requests: the
app does (a request holds its session from start to commit).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import InputError
from charrnn.infer.controls import MAX_NO_REPEAT, NO_REPEAT_WINDOW
from charrnn.infer.numpy_engine import State

# characters of a session's text kept for the controls that look back: as many as --no-repeat's
# window and its longest n-gram reach, so a session's next request is guarded as one request over
# its whole text would be (at most ~100 K characters a row; most sessions are shorter)
TAIL = NO_REPEAT_WINDOW + MAX_NO_REPEAT - 1
SESSION_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    layers INTEGER NOT NULL,
    hidden INTEGER NOT NULL,
    has_cell INTEGER NOT NULL,
    state BLOB NOT NULL,
    tail TEXT NOT NULL,
    chars INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL,
    digest TEXT
)
"""


@dataclass
class Saved:
    """A session as stored: the state after its text, and that text's end."""

    id: str
    model: str
    fingerprint: str
    state: State
    tail: str
    chars: int
    requests: int
    created: float
    used: float
    digest: str | None = None  # a chat session: sha256 of the conversation read (chars long)

    def info(self) -> dict:
        return {
            "id": self.id,
            "object": "session",
            "model": self.model,
            "chars": self.chars,
            "requests": self.requests,
            "chat": self.digest is not None,
            "created": int(self.created),
            "last_used": int(self.used),
        }


def valid_id(session: str) -> bool:
    return bool(SESSION_ID.fullmatch(session))


def pack(state: State) -> bytes:
    parts = list(state.h) + list(state.c or [])
    return b"".join(np.ascontiguousarray(p[0], dtype=np.float32).tobytes() for p in parts)


def unpack(blob: bytes, layers: int, hidden: int, has_cell: bool) -> State:
    flat = np.frombuffer(blob, dtype=np.float32)
    n = layers * (2 if has_cell else 1)
    if flat.size != n * hidden:
        raise InputError("a stored session has the wrong size")
    rows = [flat[k * hidden : (k + 1) * hidden].reshape(1, hidden).copy() for k in range(n)]
    return State(rows[:layers], rows[layers:] if has_cell else None)


class SessionStore:
    """The SQLite file of sessions; safe to use from the event loop and the batching thread."""

    def __init__(self, path: str | Path, max_sessions: int = 10_000) -> None:
        self.path, self.max_sessions = Path(path), max_sessions
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of the process
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if "digest" not in columns:  # a file written before chat sessions
                self._db.execute("ALTER TABLE sessions ADD COLUMN digest TEXT")
        except sqlite3.Error as e:
            raise InputError(f"{self.path}: cannot open the sessions database ({e})") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot create ({e.strerror})") from None
        self._lock = threading.Lock()

    def get(self, session: str) -> Saved | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, model, fingerprint, layers, hidden, has_cell, state, tail, chars, "
                "requests, created, used, digest FROM sessions WHERE id = ?",
                (session,),
            ).fetchone()
        if row is None:
            return None
        sid, model, fp, layers, hidden, has_cell, blob, tail, *rest = row
        state = unpack(blob, layers, hidden, bool(has_cell))
        return Saved(sid, model, fp, state, tail, *rest)

    def put(
        self,
        session: str,
        model: str,
        fingerprint: str,
        state: State,
        text: str,
        read: int,
        digest: str | None = None,
    ) -> None:
        """Store the state after `text` (the end of the session's whole text; `read` characters
        were added by this request), then evict the least recently used beyond the cap. A chat
        session gives the digest of its whole conversation, and `read` is then that
        conversation's length (it may have been read again from its start); a completion clears
        the digest: its text is no longer a known conversation."""
        now = time.time()
        layers, hidden = len(state.h), state.h[0].shape[1]
        chars = "excluded.chars" if digest is not None else "sessions.chars + excluded.chars"
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET model = excluded.model, "
                "fingerprint = excluded.fingerprint, layers = excluded.layers, "
                "hidden = excluded.hidden, has_cell = excluded.has_cell, state = excluded.state, "
                f"tail = excluded.tail, chars = {chars}, "
                "requests = sessions.requests + 1, used = excluded.used, digest = excluded.digest",
                (session, model, fingerprint, layers, hidden, int(state.c is not None),
                 pack(state), text[-TAIL:], read, now, now, digest),
            )  # fmt: skip
            self._evict()

    def _evict(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()
        if count > self.max_sessions:
            self._db.execute(
                "DELETE FROM sessions WHERE id IN "
                "(SELECT id FROM sessions ORDER BY used ASC LIMIT ?)",
                (count - self.max_sessions,),
            )

    def delete(self, session: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM sessions WHERE id = ?", (session,)).rowcount > 0

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
