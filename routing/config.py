"""Every tunable of the tracker, declared once with its default and why it has that value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tunables of :func:`routing.tracker.track`; plain values, no environment lookups."""

    # --- route progress -------------------------------------------------------------------
    # Forward search window for progress-aware snapping: GPS noise plus what a vehicle can drive.
    progress_window_m: float = 300.0
    # Fastest plausible road speed; widens the window by speed x time since the last snap.
    progress_max_speed_mps: float = 35.0
    # Noise can put a ping slightly behind the bus; look this far back (progress itself never drops).
    progress_back_m: float = 60.0
    # Tie-break between candidates on a road driven twice: metres of offset per metre of forward jump.
    progress_forward_penalty: float = 0.05
    # A ping farther than corridor + this from its snap point does not move progress (off route).
    progress_snap_extra_m: float = 50.0

    # --- stops ----------------------------------------------------------------------------
    # Exit radius = radius + this: a bus idling on the circle's edge must not arrive twice.
    stop_exit_margin_m: float = 30.0
    # Arrival needs progress within stop +/- (radius + this): kills drive-by triggers (Traccar #6019).
    stop_progress_tolerance_m: float = 120.0
    # Progress this far past a stop's exit edge without an entry means the stop was skipped.
    stop_missed_margin_m: float = 150.0
    # A dwell this long with a ping inside counts as "stopped": crossing a 120 m circle at 25 km/h
    # takes 17 s. A pass seen only between two pings is never "stopped" (nothing shows a halt).
    stopped_min_dwell_s: float = 20.0
    # A ping slower than this inside the circle also proves the bus stopped.
    stopped_max_speed_kmh: float = 3.0

    # --- trips ----------------------------------------------------------------------------
    # A run may start this long before its first scheduled stop (buses wait at the first stop).
    trip_start_before_s: float = 1800.0
    # ... and this long after it (late departures are still that run, not nothing).
    trip_start_after_s: float = 3600.0
    # A vehicle within the first stop's radius plus this is at the terminal (a terminal visit:
    # routing.trip_start) ...
    trip_start_margin_m: float = 150.0
    # ... and departs when it moves forward along the path by at least this much.
    trip_start_min_move_m: float = 20.0
    # A departure is progress this far past the first stop's circle (a bus idling on its edge or
    # creeping in a terminal lot has not left).
    trip_depart_margin_m: float = 30.0
    # A departure fix lies this close to the path (a GPS jump of a standing bus rarely does).
    trip_depart_max_offset_m: float = 40.0
    # Slower than this along the path between two pings is standing: the departure is later.
    trip_moving_mps: float = 2.0
    # A terminal visit is forgotten this long after the vehicle was last near the first stop.
    terminal_memory_s: float = 900.0
    # A vehicle first seen mid-route starts the trip after this much forward progress on the path.
    trip_join_min_progress_m: float = 300.0
    # A mid-route join is not a run the timetable would put this far ahead of (a spare heading
    # for a frozen bus's run must not take the next one while the frozen bus still holds it).
    trip_join_max_early_s: float = 600.0
    # Run choice: a departure up to this much early is as likely as as late ...
    run_early_grace_s: float = 60.0
    # ... and beyond it counts this many times its seconds against a late one.
    run_early_weight: float = 10.0
    # The last stop counts as reached by a vehicle that stopped within radius + this of it ...
    trip_end_margin_m: float = 100.0
    # ... for at least this long (a terminal layover just off the stop).
    trip_end_dwell_s: float = 30.0
    # A pool route's run due this long ago and not taken goes to the next bus that leaves
    # (first come, first served), before a later run that fits its departure better.
    pool_due_late_s: float = 600.0
    # A pool route's run held by a vehicle with no progress this long may be taken by another.
    claim_stale_s: float = 300.0
    # A trip not finished this long after its last scheduled stop is closed as timed out.
    trip_timeout_slack_s: float = 3600.0
    # A trip continuously off its corridor this long was another journey: close it as abandoned.
    trip_abandon_off_route_s: float = 1800.0
    # Completed trip ids remembered so a loop route ending at its start is not started twice.
    done_trips_kept: int = 16

    # --- corridor deviation ---------------------------------------------------------------
    # A deviation starts after this many consecutive pings beyond the corridor ...
    deviation_min_pings: int = 2
    # ... spanning at least this long (one noisy fix or a short jump is not a deviation).
    deviation_min_s: float = 30.0
    # ... and ends after this many consecutive pings back inside.
    deviation_end_pings: int = 2

    # --- overspeed ------------------------------------------------------------------------
    # Speeds up to limit + this are tolerated (speedometer vs GPS disagreement).
    overspeed_tolerance_kmh: float = 0.0
    # An episode needs this many consecutive pings over the limit ...
    overspeed_min_pings: int = 2
    # ... spanning at least this long (a single GPS speed spike is not an episode).
    overspeed_min_s: float = 10.0
    # ... and ends after this many consecutive pings at or under the limit.
    overspeed_end_pings: int = 2
    # A silence longer than this closes an episode: speed during the gap is unknown.
    episode_max_gap_s: float = 300.0
    # Derived speeds need at least this much time between fixes, else noise dominates.
    derived_speed_min_dt_s: float = 1.0
    # Derived speeds above this are GPS jumps, not driving; they are not used.
    derived_speed_max_kmh: float = 200.0

    # --- ETA ------------------------------------------------------------------------------
    # Completed runs whose per-segment times feed the learned ETA (the median is robust).
    eta_history_runs: int = 10
    # Cruise speed assumed for the stretch before the first stop when nothing better is known.
    eta_default_speed_kmh: float = 30.0

    # --- school geofences (teacher cars, meal trucks) -------------------------------------
    # Leaving a school needs distance > radius + this, so a car parked on the edge does not flap.
    geofence_exit_margin_m: float = 50.0
    # A school-to-school drive longer than this is not one itinerant-teaching trip (policy: 3 h).
    teacher_trip_max_s: float = 3 * 3600.0


DEFAULT = TrackerConfig()
