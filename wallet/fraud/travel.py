"""Impossible travel: a member's check-in too far from their last one for the time between them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TravelCheck:
    """How far the member would have gone since their last check-in, how fast, and whether that is possible."""

    previous_check_in_id: str
    previous_store_id: str
    distance_km: float
    seconds: float
    speed_kmh: float
    max_kmh: float

    @property
    def impossible(self) -> bool:
        return self.speed_kmh > self.max_kmh

    def details(self) -> dict:
        return {"previous_check_in_id": self.previous_check_in_id, "previous_store_id": self.previous_store_id,
                "distance_km": round(self.distance_km, 3), "seconds": round(self.seconds, 1),
                "speed_kmh": round(self.speed_kmh, 1) if self.speed_kmh != float("inf") else None,
                "max_kmh": self.max_kmh}


def travel_from_last(*, previous_check_in_id: str, previous_store_id: str, previous_at: datetime,
                     distance_m: float, slack_m: float, now: datetime, max_kmh: float) -> TravelCheck:
    """The speed from the last check-in to this one. ``slack_m``: what GPS and the stores' radii allow (the two
    radii): a member may have stood anywhere inside either store's circle."""
    distance_km = max(0.0, distance_m - slack_m) / 1000
    seconds = max(0.0, (now - previous_at).total_seconds())
    if distance_km == 0:
        speed = 0.0
    elif seconds == 0:
        speed = float("inf")
    else:
        speed = distance_km / (seconds / 3600)
    return TravelCheck(previous_check_in_id, previous_store_id, distance_km, seconds, speed, max_kmh)
