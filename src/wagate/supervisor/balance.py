"""How many sessions a worker takes and hands over, so that live workers run about as many sessions each.

Every worker reconciles on its own and sees the same picture: the sessions to run and, for each live worker, how
many leases it holds. From it each decides alone, and their decisions add up:

- a worker claims free sessions up to its *share*, the total divided by the live workers, rounded up, so that no
  one worker takes everything when many start together or when one stops;
- a worker above the *floor* (the total divided by the workers, rounded down) while others are below it hands over
  its part of what they lack (less the sessions already free), in proportion to how far above the floor it is (so
  that ten workers making room for a new one do not each hand over the whole gap), at most ``step`` a round; a
  worker above its share hands over the excess while others have room for it.

A session handed over is claimed by a worker with room; the one that handed it over claims nothing for a while, so
that it does not take it back at once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Spread"]


@dataclass(frozen=True, slots=True)
class Spread:
    """What one worker (``me``) sees at a reconcile."""

    me: str
    total: int  # sessions that should run
    counts: dict[str, int]  # every live worker (``me`` too) -> the sessions it runs

    @property
    def share(self) -> int:
        return -(-self.total // max(1, len(self.counts)))

    @property
    def floor(self) -> int:
        return self.total // max(1, len(self.counts))

    @property
    def mine(self) -> int:
        return self.counts.get(self.me, 0)

    def room(self) -> int:
        """Free sessions this worker may claim now."""
        return max(0, self.share - self.mine)

    def to_hand_over(self, step: int) -> int:
        """How many of its sessions this worker hands over this round."""
        floor, share = self.floor, self.share
        free = max(0, self.total - sum(self.counts.values()))  # handed over or left by a dead worker, unclaimed
        surplus = {owner: count - floor for owner, count in self.counts.items() if count > floor}
        if step <= 0 or self.me not in surplus:
            return 0
        # What workers below the floor lack, split in proportion to the surpluses, the remainder to the largest
        # fractions (ties by name): every worker computes the same split from the same picture, so the parts
        # add up to the gap.
        deficit = sum(floor - count for count in self.counts.values() if count < floor) - free
        part = 0
        if deficit > 0:
            whole = sum(surplus.values())
            parts = {owner: deficit * extra // whole for owner, extra in surplus.items()}
            by_fraction = sorted(surplus, key=lambda owner: (-(deficit * surplus[owner] % whole), owner))
            for owner in by_fraction[: deficit - sum(parts.values())]:
                parts[owner] += 1
            part = parts[self.me]
        # Above the share (a worker that ran more before others came): down to it while others have room.
        room = sum(share - count for owner, count in self.counts.items() if owner != self.me and count < share)
        over = min(self.mine - share, room - free)
        return min(step, surplus[self.me], max(part, over))

    def waiting(self) -> bool:
        """Below the floor while another worker is above it: sessions are about to be handed over to claim."""
        floor = self.floor
        return self.mine < floor and any(count > floor for owner, count in self.counts.items() if owner != self.me)
