"""The worker's queue of engine work (`charrnn.serve.work`): a slice is bounded in time, work is
taken in turn, and session commits go ahead of everything else."""

from __future__ import annotations

import itertools
import time

from charrnn.serve.work import Steps, WorkQueue

UNIT = 0.004  # seconds each unit of the work below takes, at least


def _work(name: str, units: int | None, log: list[str], ended: list[str]) -> Steps:
    """Work of `units` units (None: endless), each logged by name."""

    def steps():
        k = 0
        while True:
            time.sleep(UNIT)
            log.append(name)
            k += 1
            if k == units:
                return name
            yield

    return Steps(steps(), lambda value, error: ended.append(value))


def test_a_slice_is_bounded_in_time_not_in_units() -> None:
    log: list[str] = []
    q = WorkQueue()
    q.add(_work("long", None, log, []))
    q.run(budget=0.02)
    # each unit takes at least UNIT: a 20 ms slice ends at its first pause past 20 ms
    assert 1 <= len(log) <= 0.02 / UNIT + 1


def test_work_is_taken_in_turn_and_commits_first() -> None:
    log: list[str] = []
    ended: list[str] = []
    q = WorkQueue()
    q.add(_work("score", None, log, ended))  # a long score, queued first
    q.add(_work("prompt", 2, log, ended))
    q.run(budget=0.001)  # the score's slice
    assert set(log) == {"score"}
    q.run(budget=0.001)  # then the prompt's turn, though the score has not ended
    assert log[-1] == "prompt"
    q.add(_work("commit", 3, log, ended), commit=True)
    before = len(log)
    for _ in range(3):
        q.run(budget=0.001)
    assert log[before:] == ["commit"] * 3 and ended == ["commit"]  # ahead of both, to its end
    q.run(budget=0.001)
    q.run(budget=0.001)
    assert "prompt" in ended and len(q) == 1  # only the endless score is left


def test_dropped_work_says_so_and_failed_work_hands_its_error_on() -> None:
    got: list[tuple] = []
    q = WorkQueue()
    gone = [False]

    def endless():
        while True:
            yield

    def broken():
        yield
        raise ValueError("bad")

    q.add(Steps(endless(), lambda v, e: got.append((v, e)), gone=lambda: gone[0]))
    q.add(Steps(broken(), lambda v, e: got.append((v, e))))
    q.run(budget=0.001)
    gone[0] = True
    for _ in range(3):
        q.run(budget=0.001)
    assert len(q) == 0
    errors = [e for _, e in got]
    assert None in errors and any(isinstance(e, ValueError) for e in errors)


def test_new_work_runs_ahead_of_work_that_has_had_its_share() -> None:
    """Prompts queued behind long work that has had its FRESH share run first, slice after slice,
    and the long work still gets a turn once every STARVE + 1 slices however much new work
    arrives."""
    from charrnn.serve import work as work_mod

    log: list[str] = []
    q = WorkQueue()
    q.add(_work("score", None, log, []))
    q.add(_work("echo", None, log, []))
    while len(q._rest) < 2:  # both have had their fresh share
        q.run(budget=0.001)
    slices = 4 * (work_mod.STARVE + 1)
    runs = []
    for i in range(slices):
        q.add(_work(f"prompt{i}", 1, log, []))  # a new short request before every slice
        before = len(log)
        q.run(budget=0.001)  # one unit per slice: each unit takes longer than the budget
        runs.append(log[before:])
    long_turns = [k for k, ran in enumerate(runs) if ran[0] in ("score", "echo")]
    assert len(long_turns) == slices // (work_mod.STARVE + 1)  # a turn, no more, every 5 slices
    assert all(b - a == work_mod.STARVE + 1 for a, b in itertools.pairwise(long_turns))
    assert sum(ran[0].startswith("prompt") for ran in runs) == slices - len(long_turns)
