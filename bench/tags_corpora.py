"""The voices bench's helpers (bench/tags.py): its two labelled corpora, built from Debian packages
at run time (never copied into the repository), the independent judge, and the interval.

- DISTINCT: man pages in five languages (packages `manpages`, `manpages-de`, `-fr`, `-es`, `-it`),
  each page rendered to plain text by `man -l` (80 columns, `col -bx`), pages in a seeded order,
  each language capped at the same size: voices that differ in language.
- CLOSE: English fortunes (package `fortunes`), one voice per category file of at least 100 KB,
  capped alike: voices that differ in topic and register, not language.

The judge is a character 3-gram naive Bayes (add-k smoothing) trained on each voice's training
split; it shares no code with charrnn, so it can judge what charrnn writes and how charrnn
attributes. Standard library and numpy only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

MAN_LANGUAGES = {"en": "manpages", "de": "manpages-de", "fr": "manpages-fr", "es": "manpages-es"}
MAN_LANGUAGES["it"] = "manpages-it"
FORTUNES = Path("/usr/share/games/fortunes")
# categories of `fortunes` with at least ~100 KB of text (Debian 12): topic and register differ
FORTUNE_VOICES = ("computers", "people", "politics", "science", "songs-poems")
PACKAGES = (*MAN_LANGUAGES.values(), "fortunes", "man-db", "groff-base", "bsdextrautils")


def missing_packages() -> list[str]:
    """The Debian packages this bench reads that are not installed."""
    out = []
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            out.append(p)
    return out


def ensure_packages() -> None:
    """Install what is missing (as root), or exit saying which packages to install."""
    need = missing_packages()
    if not need:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *need]
        if subprocess.run(cmd, capture_output=True).returncode == 0 and not missing_packages():
            return
    raise SystemExit(f"tags bench: install these Debian packages first: {' '.join(need)}")


def man_pages(lang: str) -> list[Path]:
    """The language's page files, from its package's own list (not whatever else is installed
    under /usr/share/man: this machine's English pages hold thousands of one tool's), sorted."""
    listed = subprocess.run(
        ["dpkg-query", "-L", MAN_LANGUAGES[lang]], capture_output=True, text=True, check=True
    ).stdout.split()
    pages = (Path(p) for p in listed if re.search(r"/man/(?:[a-z]{2}/)?man\d/", p))
    return sorted(p for p in pages if p.is_file() and not p.is_symlink())


def render_man(path: Path) -> str:
    """A page as plain text at 80 columns: no overstrikes, spaces not tabs, blank runs squeezed."""
    env = os.environ | {"MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    man = subprocess.run(
        ["man", "-l", str(path)], capture_output=True, env=env, check=False, timeout=60
    )
    if man.returncode != 0 or not man.stdout:
        return ""
    col = subprocess.run(["col", "-bx"], input=man.stdout, capture_output=True, env=env)
    text = col.stdout.decode("utf-8", errors="replace")
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n\n"


def capped(pieces: Callable[[], Sequence[object]], read: Callable[[object], str], cap: int) -> str:
    """Documents joined in order until `cap` characters (the last one cut)."""
    parts, size = [], 0
    for p in pieces():
        text = read(p)
        if text:
            parts.append(text)
            size += len(text)
        if size >= cap:
            break
    return "".join(parts)[:cap]


def man_voice(lang: str, cap: int) -> str:
    def order() -> list[Path]:
        pages = man_pages(lang)
        random.Random(f"tags-{lang}").shuffle(pages)  # a spread of sections, the same each time
        return pages

    return capped(order, render_man, cap)


def fortune_voice(category: str, cap: int) -> str:
    """A category's fortunes, `%` separators turned into blank lines (each a short document),
    backspace overstrikes (underlined, bold) resolved to their letters."""
    path = FORTUNES / category
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = re.sub(r"[^\n]\x08", "", raw.decode("utf-8", errors="replace"))  # overstrikes, as col -b
    fortunes = [f.strip("\n") for f in re.split(r"^%$", text, flags=re.M) if f.strip()]
    return capped(lambda: fortunes, lambda f: f + "\n\n", cap)


CORPORA: dict[str, tuple[Callable[[str, int], str], tuple[str, ...]]] = {
    "distinct": (man_voice, tuple(MAN_LANGUAGES)),
    "close": (fortune_voice, FORTUNE_VOICES),
}


def build_corpus(work: Path, name: str, cap: int, voices: int | None = None) -> Path:
    """The corpus as a folder per voice under `work` (for `--tags-from dir`), built once: a folder
    whose record (`NAME-CAP-V.json` beside it) exists is reused. `voices`: only the first n (quick runs)."""
    make, names = CORPORA[name]
    names = names[:voices] if voices else names
    folder = work / "corpora" / f"{name}-{cap}-{len(names)}"
    meta_path = folder.parent / f"{folder.name}.json"  # beside it: a voice folder holds only voices
    if meta_path.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    meta: dict = {"name": name, "cap": cap, "voices": {}}
    for voice in names:
        text = make(voice, cap)
        (folder / voice).mkdir(parents=True, exist_ok=True)
        (folder / voice / "text.txt").write_text(text, encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        meta["voices"][voice] = {"chars": len(text), "sha256": digest}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return folder


# --- the judge ---------------------------------------------------------------------------------


class NaiveBayes:
    """Character 3-gram naive Bayes: each class a Markov model of order 2, P(c | ab) =
    (n(abc) + k) / (n(ab) + k·|A|) over the alphabet A of every class's training text plus one
    unseen symbol; a text goes to the class under which it is most probable (uniform prior)."""

    def __init__(self, texts: dict[str, str], k: float = 0.1) -> None:
        self.names = tuple(texts)
        self.k = k
        alphabet = set().union(*(set(t) for t in texts.values()))
        self.size = len(alphabet) + 1
        self.tri: list[Counter] = []
        self.bi: list[Counter] = []
        for text in texts.values():
            self.tri.append(Counter(text[i : i + 3] for i in range(len(text) - 2)))
            self.bi.append(Counter(text[i : i + 2] for i in range(len(text) - 2)))

    def log_likelihoods(self, text: str) -> list[float]:
        """log P(text's characters from the third on | class) for each class."""
        grams = Counter(text[i : i + 3] for i in range(len(text) - 2))
        out = []
        for tri, bi in zip(self.tri, self.bi, strict=True):
            total = 0.0
            for g, n in grams.items():
                total += n * math.log((tri[g] + self.k) / (bi[g[:2]] + self.k * self.size))
            out.append(total)
        return out

    def predict(self, text: str) -> str:
        ll = self.log_likelihoods(text)
        return self.names[max(range(len(ll)), key=ll.__getitem__)]


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (0, 1 for no trials)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def snippets(text: str, length: int, n: int, seed: int) -> tuple[list[str], bool]:
    """n snippets of `length` characters from `text`: disjoint where the text holds n of them
    (evenly spaced, seeded offset), else at seeded random starts (overlapping: True)."""
    if len(text) < length:
        return [], False
    rng = random.Random(seed)
    if len(text) >= n * length:
        stride = len(text) // n
        off = rng.randrange(stride - length + 1)
        return [text[off + i * stride : off + i * stride + length] for i in range(n)], False
    starts = [rng.randrange(len(text) - length + 1) for _ in range(n)]
    return [text[s : s + length] for s in starts], True
