"""Sessions: a hidden state kept per client-chosen id, so a story or a conversation continues across
requests without re-reading its text. Stored in SQLite so they survive a restart.

A session row holds the model's state after the session's text (float32 bytes: every row of it,
two for a guided voice, and on a voiced model each row's voice constant), the end of that text
(for the controls that look back: --no-repeat, --ban), how many characters it has read, the voice
it belongs to, and the fingerprint of the checkpoint that wrote it: a state means nothing to
another model. The least
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
    digest TEXT,
    rows INTEGER NOT NULL DEFAULT 1,
    voice TEXT,
    voice_width INTEGER NOT NULL DEFAULT 0
)
"""
# columns added since the first sessions files, with their definitions (added to an older file)
_ADDED = {
    "digest": "TEXT",
    "rows": "INTEGER NOT NULL DEFAULT 1",
    "voice": "TEXT",
    "voice_width": "INTEGER NOT NULL DEFAULT 0",
}
_COLUMNS = (
    "id, model, fingerprint, layers, hidden, has_cell, state, tail, chars, requests, created, "
    "used, digest, rows, voice, voice_width"
)


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
    voice: str | None = None  # the voice it belongs to (`serve.voicing.session_key`)

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
    """Every row of h (and c) per layer, then each row's voice constant when it has one (a
    one-row state without a voice packs as sessions always have)."""
    parts = list(state.h) + list(state.c or []) + ([state.voice] if state.voice is not None else [])
    return b"".join(np.ascontiguousarray(p, dtype=np.float32).tobytes() for p in parts)


def unpack(
    blob: bytes, layers: int, hidden: int, has_cell: bool, rows: int = 1, width: int = 0
) -> State:
    flat = np.frombuffer(blob, dtype=np.float32)
    n = layers * (2 if has_cell else 1)
    if flat.size != rows * (n * hidden + width):
        raise InputError("a stored session has the wrong size")
    size = rows * hidden
    parts = [flat[k * size : (k + 1) * size].reshape(rows, hidden).copy() for k in range(n)]
    voice = flat[n * size :].reshape(rows, width).copy() if width else None
    return State(parts[:layers], parts[layers:] if has_cell else None, voice)


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
            for name, kind in _ADDED.items():  # a file written before chat sessions or voices
                if name not in columns:
                    self._db.execute(f"ALTER TABLE sessions ADD COLUMN {name} {kind}")
        except sqlite3.Error as e:
            raise InputError(f"{self.path}: cannot open the sessions database ({e})") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot create ({e.strerror})") from None
        self._lock = threading.Lock()

    def get(self, session: str) -> Saved | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session,)
            ).fetchone()
        if row is None:
            return None
        sid, model, fp, layers, hidden, has_cell, blob, tail, *rest, rows, voice, width = row
        state = unpack(blob, layers, hidden, bool(has_cell), rows, width)
        return Saved(sid, model, fp, state, tail, *rest, voice=voice)

    def put(
        self,
        session: str,
        model: str,
        fingerprint: str,
        state: State,
        text: str,
        read: int,
        digest: str | None = None,
        voice: str | None = None,
    ) -> None:
        """Store the state after `text` (the end of the session's whole text; `read` characters
        were added by this request), then evict the least recently used beyond the cap. A chat
        session gives the digest of its whole conversation, and `read` is then that
        conversation's length (it may have been read again from its start); a completion clears
        the digest: its text is no longer a known conversation. voice: the voice the session
        belongs to."""
        now = time.time()
        layers, (rows, hidden) = len(state.h), state.h[0].shape
        width = 0 if state.voice is None else state.voice.shape[1]
        chars = "excluded.chars" if digest is not None else "sessions.chars + excluded.chars"
        with self._lock:
            self._db.execute(
                f"INSERT INTO sessions ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET model = excluded.model, "
                "fingerprint = excluded.fingerprint, layers = excluded.layers, "
                "hidden = excluded.hidden, has_cell = excluded.has_cell, state = excluded.state, "
                f"tail = excluded.tail, chars = {chars}, "
                "requests = sessions.requests + 1, used = excluded.used, digest = excluded.digest, "
                "rows = excluded.rows, voice = excluded.voice, voice_width = excluded.voice_width",
                (session, model, fingerprint, layers, hidden, int(state.c is not None),
                 pack(state), text[-TAIL:], read, now, now, digest, rows, voice, width),
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
