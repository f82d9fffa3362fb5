"""The spread of sessions over live workers: each worker decides alone from the same picture, and the decisions of
all add up to an even spread without sessions passed back and forth."""

from __future__ import annotations

import random

import pytest

from wagate.supervisor.balance import Spread


def test_shares_floors_and_room() -> None:
    spread = Spread("a", 7, {"a": 0, "b": 0})
    assert (spread.share, spread.floor, spread.room()) == (4, 3, 4)
    assert Spread("a", 7, {"a": 5}).room() == 2  # alone: everything
    assert Spread("a", 0, {"a": 0, "b": 0}).room() == 0
    assert Spread("a", 3, {}).share == 3  # not yet seen alive: as if alone


def test_one_worker_makes_room_for_a_new_one() -> None:
    assert Spread("a", 7, {"a": 7, "b": 0}).to_hand_over(step=25) == 3
    assert Spread("a", 7, {"a": 7, "b": 0}).to_hand_over(step=2) == 2  # at most a step a round
    assert Spread("a", 7, {"a": 7, "b": 0}).to_hand_over(step=0) == 0  # rebalancing off
    assert Spread("a", 7, {"a": 4, "b": 3}).to_hand_over(step=25) == 0  # as even as seven can be
    assert Spread("b", 7, {"a": 7, "b": 0}).to_hand_over(step=25) == 0
    assert Spread("a", 7, {"a": 4, "b": 0}).to_hand_over(step=25) == 0  # three free already: b claims them


def test_the_parts_of_several_workers_add_up_to_the_gap() -> None:
    counts = {"a": 4, "b": 3, "c": 0}
    parts = {w: Spread(w, 7, counts).to_hand_over(25) for w in counts}
    assert parts == {"a": 1, "b": 1, "c": 0}  # c lacks two (the floor is 2)
    ten = {f"w{n}": 100 for n in range(10)} | {"new": 0}
    parts = {w: Spread(w, 1000, ten).to_hand_over(25) for w in ten}
    assert sum(parts.values()) == 90  # the floor is 90: ten workers hand over 9 each, not 90 each
    assert set(parts.values()) == {9, 0}
    uneven = {"a": 3, "b": 3, "c": 3, "d": 0}  # floor 2, d lacks 2, three give one each at most
    parts = {w: Spread(w, 9, uneven).to_hand_over(25) for w in uneven}
    assert sum(parts.values()) == 2


def rounds(counts: dict[str, int], total: int, *, step: int, seed: int, limit: int = 200) -> tuple[int, int]:
    """Workers reconcile one after another in a random order, each on what it sees then; a worker that handed
    sessions over claims nothing for the next two rounds. Returns (rounds until even and nothing free, moves)."""
    rng = random.Random(seed)
    free = total - sum(counts.values())
    cooldown: dict[str, int] = {}
    moves = 0
    for number in range(1, limit + 1):
        for worker in rng.sample(sorted(counts), len(counts)):
            spread = Spread(worker, total, dict(counts))
            if cooldown.get(worker, 0) < number:
                claimed = min(spread.room(), free)
                counts[worker] += claimed
                free -= claimed
            given = Spread(worker, total, dict(counts)).to_hand_over(step)
            if given:
                counts[worker] -= given
                free += given
                moves += given
                cooldown[worker] = number + 2
        if free == 0 and max(counts.values()) - min(counts.values()) <= 1:
            return number, moves
    raise AssertionError(f"not even after {limit} rounds: {counts}, {free} free")


@pytest.mark.parametrize("seed", range(20))
def test_an_uneven_start_evens_out_with_few_moves(seed: int) -> None:
    # one worker ran everything; nine more join
    done, moves = rounds({"w0": 1000} | {f"w{n}": 0 for n in range(1, 10)}, 1000, step=25, seed=seed)
    assert moves <= 900 + 10  # what the others lack, give or take a rounding per worker
    assert done <= 60
    # ten even workers and a new one
    done, moves = rounds({f"w{n}": 100 for n in range(10)} | {"new": 0}, 1000, step=25, seed=seed)
    assert moves <= 90 + 11
    # a worker stopped: its sessions are free, the others claim them up to their shares, nothing moves
    done, moves = rounds({"a": 334, "b": 333}, 1000, step=25, seed=seed)
    assert moves == 0
    # three workers, seven sessions, in every arrival order
    done, moves = rounds({"a": 4, "b": 3, "c": 0}, 7, step=25, seed=seed)
    assert moves <= 3
