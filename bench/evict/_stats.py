"""Per-round statistics of an eviction run (``bench.evict``), from the VMM's timeline, the
handler's fault log and the vCPUs' batch latencies; and a one-line-per-variant summary.

Attribution rules: a round's batches are those that *started* between its arm and the next
arm; a batch belongs to the eviction window when it overlaps [freeze, release]. A blocked
fault (WP, RWP, held MINOR) belongs to the window it was read in, and waited from the
handler's read until the release (a lower bound on the vCPU's wait: the kernel queued it
earlier). A refault counts for round *r* when it fetches back a page evicted in round *r*
before the next round's freeze -- the only span in which that page cannot have been evicted
again: these are the wrong cold guesses.
"""

from __future__ import annotations

import numpy as np

from bench.evict import _core as core


def pct(values: np.ndarray) -> tuple:
    if values.size == 0:
        return None, None, None
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99), int(values.max())


def round_rows(rounds: list[dict], t_end: int, lat: np.ndarray, starts: np.ndarray, log: np.ndarray,
                minor_end: int) -> list[dict]:
    ends = starts + lat
    kinds = log[:, 3] & 0xFF
    blocked = (kinds == core.K_WINDOW) | (kinds == core.K_HELD)
    refault = kinds == core.K_REFAULT
    rows = []
    for i, rd in enumerate(rounds):
        t = rd["t"]
        t_next = rounds[i + 1]["t"]["arm"] if i + 1 < len(rounds) else t_end
        # an evicted page can be fetched back until the next freeze (the end of the next window)
        t_horizon = rounds[i + 1]["t"]["freeze"] if i + 1 < len(rounds) else t_end
        minor_next = rounds[i + 1]["minor0"] if i + 1 < len(rounds) else minor_end
        in_round = (starts >= t["arm"]) & (starts < t_next)
        in_win = (ends >= t["freeze"]) & (starts <= t["resumed"])
        p50, p99, mx = pct(lat[in_round])
        _, wp99, wmx = pct(lat[in_win])
        sel = blocked & (log[:, 0] >= t["freeze"]) & (log[:, 0] < t_horizon)
        waits = np.maximum(t["resumed"] - log[sel, 0], 0)
        seen = np.zeros(rd["cold"].size, bool)
        seen[log[sel, 2]] = True
        ev = rd["evicted"]
        rsel = refault & (log[:, 0] >= t["held"]) & (log[:, 0] < t_horizon)
        rsel &= ev[np.clip(log[:, 2], 0, ev.size - 1)]
        service = log[rsel, 1] - log[rsel, 0]
        evict_s = (t["resumed"] - t["freeze"] - (t["held"] - t["written"])) / 1e9  # without the deliberate hold
        n_ev = int(ev.sum())
        touched = rd["touched_r"] | rd["touched_w"]
        rows.append({
            "round": rd["round"], "hot_pages": int(rd["hot"].sum()), "cold_pages": int(rd["cold"].sum()),
            "evicted_pages": n_ev, "rescued_pages": rd["kept"], "runs": rd["runs"], "uffd_ioctls": rd["ioctls"],
            "drop_calls": rd["drop_calls"], "bytes_written": rd["bytes"],
            "freeze_ns": t["frozen"] - t["freeze"], "scan_ns": t["decided"] - t["frozen"],
            "intercept_ns": t["intercepted"] - t["decided"], "write_ns": t["written"] - t["intercepted"],
            "drop_ns": t["dropped"] - t["held"], "release_ns": t["resumed"] - t["dropped"],
            "window_ns": t["resumed"] - t["freeze"], "evicted_per_s": n_ev / evict_s if evict_s > 0 else None,
            "window_touched_pages": int(touched.sum()), "window_read_pages": int(rd["touched_r"].sum()),
            "window_write_pages": int(rd["touched_w"].sum()),
            "window_seen_pages": int((seen & rd["cold"]).sum()), "window_faults": int(sel.sum()),
            "blocked_ns_sum": int(waits.sum()), "blocked_ns_max": int(waits.max()) if waits.size else 0,
            "refaults": int(rsel.sum()), "refault_frac": int(rsel.sum()) / n_ev if n_ev else None,
            "refault_service_p50_ns": float(np.median(service)) if service.size else None,
            "refault_service_max_ns": int(service.max()) if service.size else None,
            "tracking_faults": minor_next - rd["minor0"],
            "lat_p50_ns": p50, "lat_p99_ns": p99, "lat_max_ns": mx, "win_lat_p99_ns": wp99, "win_lat_max_ns": wmx,
            "win_batches": int(in_win.sum()), "batches": int(in_round.sum()),
        })
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """One line per variant: medians over rounds and runs, worst integrity numbers."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        if mine[0]["status"] != "ok":
            out.append({"variant": name, "status": mine[0]["status"]})
            continue
        med = (lambda key: float(np.median([r[key] for r in mine if r[key] is not None]))
               if any(r[key] is not None for r in mine) else None)
        runs = {r["repeat"]: r for r in mine}.values()
        out.append({
            "variant": name, "status": "ok", "runs": len(runs), "rounds": len(mine),
            "evicted_per_s": med("evicted_per_s"), "evicted_pages": med("evicted_pages"),
            "window_ms": med("window_ns") / 1e6, "refaults": sum(r["refaults"] for r in mine),
            "evicted_total": sum(r["evicted_pages"] for r in mine),
            "window_touched": sum(r["window_touched_pages"] for r in mine),
            "window_seen": sum(r["window_seen_pages"] for r in mine),
            "stall_p99_us": max(r["run_lat_p99_ns"] for r in runs) / 1e3,
            "stall_max_ms": max(r["run_lat_max_ns"] for r in runs) / 1e6,
            "win_stall_max_ms": max((r["win_lat_max_ns"] or 0) for r in mine) / 1e6,
            "lost_pages": sum(r["lost_pages"] for r in runs), "torn_pages": sum(r["torn_pages"] for r in runs),
            "misplaced_pages": sum(r["misplaced_pages"] + r["zeroed_pages"] for r in runs),
            "lost_writes": sum(r["lost_writes"] for r in runs),
            "verdict": "clean" if all(r["verdict"] == "clean" for r in runs) else "data-loss",
        })
    return out
