"""Upload memory: the served process's RSS under 16 parallel worst-case photo uploads.

    uv run python bench/uploads.py [--runs 3] [--parallel 16] [--side 7071]
        [--cases png,png_rgba,jpeg,phone] [--variant LABEL=TREE[:KEY=VALUE,...]]...
        [--bound-mb 1024] [--settle-s 8]

Sets up a throwaway PostGIS cluster (migrated, demo city loaded) in a temporary directory.
For every variant, case and run it starts a fresh ``geo311 run`` (uvicorn, one process, on
loopback, as deployed) from the variant's source tree, sends one small report to warm it
up, resets the process's peak-RSS counter (``/proc/<pid>/clear_refs``), then sends
``--parallel`` reports at once through ``POST /api/v1/reports``, each with the case's photo:

- ``png``: a ``--side`` x ``--side`` RGB PNG (default 7071 x 7071 = 49,999,041 pixels: just
  under the 50 MP cap of main and the 52 MP cap of this branch), flat colour shapes, so the
  file is about 200 KB: the cheapest file that makes a server decode the most pixels;
- ``png_rgba``: the same with an alpha channel (Pillow needs a premultiplied copy to resize);
- ``jpeg``: the same picture as a progressive JPEG without chroma subsampling (libjpeg holds
  every coefficient at full scale, however much the decode is reduced);
- ``phone``: a 12 MP (4032 x 3024) JPEG with sensor-like noise, about 5 MB: what phones send.

Measured from /proc: the peak RSS of the burst (VmHWM), the RSS once the burst has settled
(no change above 2 MB for 2 s, at most ``--settle-s``), and each upload's latency and answer.
The table shows the median of ``--runs`` runs; the bound check takes the worst run.

The baseline is main as it stands where this branch forked from it (``git merge-base main
HEAD``; a later main may carry migrations this tree does not know), served from its own
source tree: ``git archive`` of that commit is unpacked into a temporary directory and
``geo311 run`` starts there (with that directory first on PYTHONPATH, so its ``geo311`` is
the one imported) with this environment's Python and libraries. Neither a setting nor an
environment switch selects the old code path: the baseline is the old code. ``--variant``
replaces the variants: TREE is ``git:REF`` or a directory; ``:KEY=VALUE,...`` sets the
server's environment (e.g. ``MALLOC_ARENA_MAX=2``).

Memory: the baseline holds about 470 MB per 50 MP RGB PNG decode (600 MB with alpha), so 16
at once need 8-10 GB; a burst whose rough need exceeds the machine's available memory is
skipped and marked, never run. Linux only (/proc). The load average before and after is
printed: the machine may be shared, which slows the bursts but not their memory figures.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.load import load_demo  # noqa: E402
from geo311.kernel import migrate  # noqa: E402
from geo311.kernel.database import Database  # noqa: E402
from geo311.kernel.embedded import EmbeddedCluster  # noqa: E402

DBNAME = "geo311_bench_uploads"
SLUG = "demo"
CASES = ("png", "png_rgba", "jpeg", "phone")
# Rough RSS a baseline server needs per upload in flight, MB (measured one at a time); used
# only to skip a burst the machine could not hold.
BASELINE_NEED_MB = {"png": 480, "png_rgba": 610, "jpeg": 360, "phone": 140}


@dataclass
class Variant:
    label: str
    tree: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Burst:
    idle_mb: float
    peak_mb: float
    settled_mb: float
    latencies_s: list[float]
    statuses: list[int]
    wall_s: float


# --- images ---------------------------------------------------------------------------------


def _scene(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (200, 210, 190))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w // 8, h // 6, w // 2, h * 5 // 6), fill=(40, 60, 160))
    draw.rectangle((w * 5 // 8, h // 8, w * 7 // 8, h // 2), fill=(180, 40, 40))
    return image


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def make_photo(case: str, side: int) -> tuple[str, bytes, str]:
    """Return the case's photo as (file name, bytes, MIME type)."""
    if case == "phone":
        size = (4032, 3024)
        noise = Image.effect_noise(size, 40).convert("RGB")
        return (
            "p.jpg",
            _encode(Image.blend(_scene(size), noise, 0.3), "JPEG", quality=90),
            "image/jpeg",
        )
    picture = _scene((side, side))
    if case == "png":
        return "p.png", _encode(picture, "PNG"), "image/png"
    if case == "png_rgba":
        picture.putalpha(255)
        return "p.png", _encode(picture, "PNG"), "image/png"
    if case == "jpeg":
        data = _encode(picture, "JPEG", quality=85, progressive=True, subsampling=0)
        return "p.jpg", data, "image/jpeg"
    raise ValueError(f"unknown case {case!r}")


# --- the served process ---------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(variant: Variant, url: str, data_dir: Path, log: Path) -> Iterator[tuple[int, str]]:
    """Yield the pid and base URL of ``geo311 run`` from the variant's tree; stop it after."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(variant.tree),
        "GEO311_DB__URL": url,
        "GEO311_DATA_DIR": str(data_dir),
        "GEO311_JURISDICTION": SLUG,
        **variant.env,
    }
    cmd = [sys.executable, "-m", "geo311.cli", "run", "--no-demo", "--host", "127.0.0.1"]
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*cmd, "--port", str(port)],
            cwd=variant.tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                tail = log.read_text(errors="replace").splitlines()[-30:]
                raise RuntimeError(f"{variant.label}: server exited:\n" + "\n".join(tail))
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant.label}: no /healthz in 90 s; see {log}")
            time.sleep(0.2)
        yield server.pid, base
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _post(
    client: httpx.Client, base: str, pin: dict[str, str], photo: tuple[str, bytes, str]
) -> httpx.Response:
    return client.post(f"{base}/api/v1/reports", data=pin, files={"photo": photo})


def burst(
    pid: int,
    base: str,
    pin: dict[str, str],
    photo: tuple[str, bytes, str],
    parallel: int,
    settle_s: float,
) -> Burst:
    """Return the figures of ``parallel`` simultaneous uploads of ``photo``."""
    small = ("w.jpg", _encode(_scene((640, 480)), "JPEG"), "image/jpeg")
    with httpx.Client(timeout=300) as client:
        warm = _post(client, base, pin, small)
        if warm.status_code != 201:
            raise RuntimeError(f"warm-up upload: {warm.status_code} {warm.text[:300]}")
    time.sleep(0.5)
    idle = rss_mb(pid)
    reset_peak(pid)
    gate = threading.Barrier(parallel)
    latencies = [0.0] * parallel
    statuses = [0] * parallel

    def one(i: int) -> None:
        with httpx.Client(timeout=300) as client:
            gate.wait()
            started = time.perf_counter()
            try:
                statuses[i] = _post(client, base, pin, photo).status_code
            except httpx.HTTPError:
                statuses[i] = -1
            latencies[i] = time.perf_counter() - started

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return Burst(
        idle_mb=idle,
        peak_mb=peak_mb(pid),
        settled_mb=_settle(pid, settle_s),
        latencies_s=latencies,
        statuses=statuses,
        wall_s=wall,
    )


def _settle(pid: int, limit_s: float) -> float:
    """Return the RSS once it has not moved more than 2 MB for 2 s (or after ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    steady_since, last = time.monotonic(), rss_mb(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = rss_mb(pid)
        if abs(now - last) > 2:
            steady_since, last = time.monotonic(), now
        elif time.monotonic() - steady_since >= 2:
            break
    return rss_mb(pid)


# --- set-up ---------------------------------------------------------------------------------


@contextmanager
def cluster_with_demo(root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield the URL of a migrated database with the demo city, and a pin inside a ward."""
    cluster = EmbeddedCluster(root / "pg")
    try:
        cluster.start()
        cluster.ensure_database(DBNAME)
        url = cluster.url(DBNAME)
        migrate.upgrade(url)
        db = Database.connect(url, pool_size=2)
        try:
            load_demo(db, slug=SLUG)
            with db.session() as session:
                lat, lon = session.execute(
                    text(
                        "SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                        "FROM wards ORDER BY code LIMIT 1"
                    )
                ).one()
        finally:
            db.dispose()
        yield url, {"category": "pothole", "lat": str(lat), "lon": str(lon)}
    finally:
        cluster.stop()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def unpack(ref: str, into: Path) -> Path:
    """Return a directory holding the tree of git ``ref`` of this repository."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _variant(spec: str, tmp: Path) -> Variant:
    """Return the variant ``LABEL=TREE[:KEY=VALUE,...]``; TREE is ``git:REF`` or a directory."""
    label, _, rest = spec.partition("=")
    is_ref = rest.startswith("git:")
    tree, _, env_text = (rest[4:] if is_ref else rest).partition(":")
    path = unpack(tree, tmp / f"tree-{label}") if is_ref else Path(tree).resolve()
    env = dict(pair.split("=", 1) for pair in env_text.split(",") if pair)
    return Variant(label, path, env)


def mem_available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- report ---------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    results: dict[tuple[str, str], list[Burst]],
    skipped: set[tuple[str, str]],
    variants: list[Variant],
    cases: list[str],
    sizes: dict[str, int],
    bound_mb: float,
    parallel: int,
) -> bool:
    """Print the table; return whether every case of the last variant held the bound."""
    print()
    header = (
        f"{'case':9} {'variant':14} {'idle MB':>8} {'peak MB':>8} {'settled':>8} "
        f"{'p50 s':>6} {'max s':>6} {'burst s':>7}  answers"
    )
    print(header)
    print("-" * len(header))
    held = True
    checked = variants[-1].label
    for case in cases:
        for variant in variants:
            key = (variant.label, case)
            if key in skipped:
                print(f"{case:9} {variant.label:14} skipped: not enough free memory for it")
                continue
            runs = results.get(key, [])
            if not runs:
                continue
            answers: dict[int, int] = {}
            for run in runs:
                for status in run.statuses:
                    answers[status] = answers.get(status, 0) + 1
            print(
                f"{case:9} {variant.label:14} {_med([r.idle_mb for r in runs]):8.0f} "
                f"{_med([r.peak_mb for r in runs]):8.0f} {_med([r.settled_mb for r in runs]):8.0f} "
                f"{_med([statistics.median(r.latencies_s) for r in runs]):6.1f} "
                f"{_med([max(r.latencies_s) for r in runs]):6.1f} "
                f"{_med([r.wall_s for r in runs]):7.1f}  "
                + " ".join(f"{n}x{s}" for s, n in sorted(answers.items()))
            )
            if variant.label == checked:
                worst = max(r.peak_mb for r in runs)
                ok = worst <= bound_mb
                held = held and ok
        base, mine = (variants[0].label, case), (checked, case)
        if base in results and mine in results and base != mine:
            ratio = _med([r.peak_mb for r in results[base]]) / _med(
                [r.peak_mb for r in results[mine]]
            )
            print(f"{'':9} peak {base[0]} / {checked}: {ratio:.1f}x   ({sizes[case] / 1e3:.0f} KB)")
    print()
    for case in cases:
        runs = results.get((checked, case), [])
        if runs:
            worst = max(r.peak_mb for r in runs)
            verdict = "HELD" if worst <= bound_mb else "NOT HELD"
            print(
                f"bound: {checked}, {case}: peak RSS under {parallel} parallel uploads "
                f"<= {bound_mb:.0f} MB: worst run {worst:.0f} MB: {verdict}"
            )
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--side", type=int, default=7071, help="edge of the big images, px")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--variant", action="append", default=[], help="LABEL=TREE[:ENV]")
    parser.add_argument("--bound-mb", type=float, default=1024.0)
    parser.add_argument("--settle-s", type=float, default=8.0)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; cases: {', '.join(CASES)}")

    load_start = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="geo311-bench-uploads-"))
    root.chmod(0o755)  # as root, the cluster runs as postgres, which must reach its directory
    try:
        with ExitStack() as stack:
            # main where this branch left it: a newer main may carry migrations this tree
            # does not know, and its other changes are not what is measured here.
            fork = _git("merge-base", "main", "HEAD")[:10]
            specs = args.variant or [f"main=git:{fork}", f"branch={ROOT}"]
            variants = [_variant(spec, root) for spec in specs]
            for variant in variants:
                print(f"{variant.label}: {variant.tree} {variant.env or ''}", flush=True)
            print(f"setting up in {root} …", flush=True)
            url, pin = stack.enter_context(cluster_with_demo(root))
            photos = {case: make_photo(case, args.side) for case in cases}
            sizes = {case: len(photos[case][1]) for case in cases}
            print(
                f"cpus {os.cpu_count()}, load {load_start[0]:.2f} {load_start[1]:.2f} "
                f"{load_start[2]:.2f}, MemAvailable {mem_available_mb():.0f} MB; "
                f"{args.parallel} parallel uploads, {args.runs} runs; images "
                + ", ".join(f"{c} {sizes[c] / 1e3:.0f} KB" for c in cases),
                flush=True,
            )
            results: dict[tuple[str, str], list[Burst]] = {}
            skipped: set[tuple[str, str]] = set()
            for run in range(args.runs):
                for case in cases:
                    name, data, mime = photos[case]
                    for variant in variants:
                        need = BASELINE_NEED_MB[case] * args.parallel + 1024
                        if mem_available_mb() < need:
                            skipped.add((variant.label, case))
                            continue
                        data_dir = root / f"data-{variant.label}-{case}-{run}"
                        log = root / f"server-{variant.label}.log"
                        with served(variant, url, data_dir, log) as (pid, base):
                            figures = burst(
                                pid, base, pin, (name, data, mime), args.parallel, args.settle_s
                            )
                        shutil.rmtree(data_dir, ignore_errors=True)
                        results.setdefault((variant.label, case), []).append(figures)
                        print(
                            f"run {run + 1} {case:9} {variant.label:14} peak "
                            f"{figures.peak_mb:6.0f} MB settled {figures.settled_mb:6.0f} MB "
                            f"burst {figures.wall_s:5.1f} s",
                            flush=True,
                        )
            held = report(results, skipped, variants, cases, sizes, args.bound_mb, args.parallel)
            load_end = os.getloadavg()
            print(
                f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} "
                f"{load_start[2]:.2f}, at end {load_end[0]:.2f} {load_end[1]:.2f} "
                f"{load_end[2]:.2f} ({os.cpu_count()} cpus)"
            )
            return 0 if held else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
