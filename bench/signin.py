"""Sign-in checks: does an unknown name take as long as a wrong password?

Times ``geo311.kernel.auth.passwords.Passwords`` with the default argon2id cost (the settings'
defaults), in one process: the right password, a wrong password for a real user, an unknown
name (checked against the dummy hash), and a user with no password. Baseline: the wrong
password for a real user; the ratio says how far the others are from it (about 1.0 means an
attacker cannot tell names that exist from names that do not by the time the answer takes).

Medians of ``--runs`` runs, each case timed in turn within a run; min and max beside them.

Usage::

    uv run python bench/signin.py            # 15 runs
    uv run python bench/signin.py --runs 31
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.settings import SigninSettings

PASSWORD = "a password of some length"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    settings = SigninSettings()
    passwords = Passwords(settings)
    stored = passwords.hash(PASSWORD)
    passwords.burn("warm the dummy hash up")
    cases: dict[str, Callable[[], object]] = {
        "wrong password (baseline)": lambda: passwords.verify(stored, "not it at all"),
        "right password": lambda: passwords.verify(stored, PASSWORD),
        "unknown name": lambda: passwords.burn("not it at all"),
        "user with no password": lambda: passwords.verify(None, "not it at all"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, call in cases.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times["wrong password (baseline)"])
    load = os.getloadavg()
    print(
        f"argon2id t={settings.argon2_time_cost} m={settings.argon2_memory_kib} KiB "
        f"p={settings.argon2_parallelism}; {runs} runs; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'case':28} {'median ms':>10} {'min':>8} {'max':>8} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:28} {median:10.1f} {min(values):8.1f} {max(values):8.1f} {median / base:6.2f}"
        )


if __name__ == "__main__":
    main()
