"""How long ingest takes to confirm what a gateway sends, estimated as TCP estimates its round trip (RFC 6298).

A gateway sends a message again when it stays unconfirmed while a newer one was confirmed (a hole). With two
ingest workers, or a backlog in the broker, a message may wait in one worker's queue while another confirms newer
ones: a hole only in appearance. A fixed grace shorter than that wait sends the whole backlog again, and the copies
lengthen the wait (60,000 machines on 2 cores: 1.46 million copies, against about 3.4 million messages). So the
grace follows the confirmations: a smoothed mean of the time from a send to its confirmation plus four mean
deviations, never under the configured grace. Only messages sent once are sampled: a resent one's confirmation may
answer either send (Karn's rule).
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 6298's gains: the mean moves by 1/8 of each new sample's difference, the deviation by 1/4.
MEAN_GAIN = 0.125
DEVIATION_GAIN = 0.25
DEVIATIONS = 4


@dataclass(slots=True)
class RoundTrip:
    mean_s: float | None = None  # None until the first sample
    deviation_s: float = 0.0

    def sample(self, seconds: float) -> None:
        """One message's time from its (only) send to its confirmation."""
        if self.mean_s is None:
            self.mean_s, self.deviation_s = seconds, seconds / 2
            return
        self.deviation_s += DEVIATION_GAIN * (abs(self.mean_s - seconds) - self.deviation_s)
        self.mean_s += MEAN_GAIN * (seconds - self.mean_s)

    def grace_s(self, floor_s: float, ceiling_s: float) -> float:
        """How long a message may stay unconfirmed before it is worth sending again: the estimate, within
        [floor_s, ceiling_s] (the floor alone before any sample)."""
        if self.mean_s is None:
            return floor_s
        return min(ceiling_s, max(floor_s, self.mean_s + DEVIATIONS * self.deviation_s))
