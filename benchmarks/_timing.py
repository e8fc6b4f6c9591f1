"""Timing helpers shared by hsslin's benchmarks.

What is here, and why (see DESIGN.md, "Measuring"):

* :func:`time_interleaved` times several callables in round-robin order
  (dense, ours, dense, ours, ...) after a warm-up, so slow drift of the
  machine (clock, other processes, thermal) hits every side alike; quote
  the medians and their ratio.
* :func:`time_back_to_back` times one callable repeatedly on its own (its
  data stays in cache: the "warm" number).
* :func:`blas_limit` / :func:`blas_threads` pin and report numpy's BLAS
  thread pool through threadpoolctl, without touching OpenMP pools (which
  hsslin's own kernels may use).
* :class:`CpuMonitor` measures how much CPU *other* processes used while a
  measurement ran (a concurrent compile on a 2-core machine ruins timings;
  this makes that visible instead of silent).
* :func:`machine_info` collects what a results file must state: CPU model,
  cores, memory, numpy/scipy/BLAS versions and threading, date, git commit.
* :func:`render_table` prints the same rows as aligned text or Markdown;
  :func:`write_report` writes a results file ending in its "## Machine" list.

Only numpy and the standard library are required; threadpoolctl is used
when installed (``pip install .[bench]``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Callable

import numpy as np

try:  # optional, but every benchmark in this repository asks for it
    import threadpoolctl as _tpc
except ImportError:  # pragma: no cover
    _tpc = None

clock = time.perf_counter


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def gc_paused():
    """Disables Python's cyclic garbage collector inside the block."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_once(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of `fn` (its result is dropped after the clock stops)."""
    t0 = clock()
    out = fn()
    t1 = clock()
    del out
    return t1 - t0


def time_back_to_back(fn: Callable[[], object], repeat: int, warmup: int = 2) -> np.ndarray:
    """Time `repeat` consecutive calls of `fn` after `warmup` untimed calls.

    Returns the individual times in seconds (take the median).
    """
    with gc_paused():
        for _ in range(warmup):
            fn()
        return np.array([time_once(fn) for _ in range(repeat)])


def time_interleaved(
    fns: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 2
) -> dict[str, np.ndarray]:
    """Time several callables round-robin: a, b, a, b, ... (in the mapping's order).

    `warmup` untimed rounds come first. Returns ``{name: times in seconds}``,
    `repeat` times per callable; compare medians (see :func:`ratio`).
    """
    items = list(fns.items())
    times: dict[str, list[float]] = {name: [] for name, _ in items}
    with gc_paused():
        for _ in range(warmup):
            for _, fn in items:
                fn()
        for _ in range(repeat):
            for name, fn in items:
                times[name].append(time_once(fn))
    return {name: np.array(ts) for name, ts in times.items()}


def repeats_for(seconds_per_round: float, budget_s: float, lo: int = 5, hi: int = 200) -> int:
    """How many rounds fit in `budget_s` seconds, clamped to [lo, hi]."""
    if seconds_per_round <= 0:
        return hi
    return int(min(hi, max(lo, budget_s // seconds_per_round)))


def median(times: Sequence[float]) -> float:
    return float(np.median(np.asarray(times, dtype=float)))


def spread(times: Sequence[float]) -> float:
    """Interquartile range relative to the median (a noise indicator; 0.05 = 5%)."""
    t = np.asarray(times, dtype=float)
    if t.size < 2:
        return float("nan")
    q1, q2, q3 = np.percentile(t, [25, 50, 75])
    return float((q3 - q1) / q2) if q2 > 0 else float("nan")


def ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """median(numerator) / median(denominator), e.g. dense time / our time = speed-up."""
    return median(numerator) / median(denominator)


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------


def blas_pools() -> list[dict]:
    """Threadpoolctl's description of the loaded BLAS libraries (empty without threadpoolctl)."""
    if _tpc is None:
        return []
    return [p for p in _tpc.threadpool_info() if p.get("user_api") == "blas"]


def blas_threads() -> int | None:
    """Current thread count of numpy's BLAS (the first BLAS pool), or None if unknown."""
    pools = blas_pools()
    return int(pools[0]["num_threads"]) if pools else None


@contextlib.contextmanager
def blas_limit(n: int | None):
    """Limits every loaded BLAS (not OpenMP) to `n` threads inside the block; None: no change."""
    if n is None or _tpc is None:
        yield
        return
    with _tpc.threadpool_limits(limits=int(n), user_api="blas"):
        yield


def usable_cpus() -> int:
    """CPUs this process may run on (affinity mask), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# interference from other processes
# ---------------------------------------------------------------------------


def _system_busy_ticks() -> int | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    vals = [int(v) for v in fields[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int | None:
    try:
        with open("/proc/self/stat") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces: fields start after the last ')'
    rest = data.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (all threads)


class CpuMonitor:
    """CPU time other processes used between :meth:`start` and :meth:`stop`.

    ``stop()`` returns the fraction of the machine's capacity (wall time x
    usable CPUs) that processes other than this one kept busy, from
    /proc/stat and /proc/self/stat; NaN where /proc is unavailable. Above a
    few percent, timings of memory-bound kernels are unreliable.
    """

    def __init__(self):
        self._t0 = self._sys0 = self._own0 = None

    def start(self) -> CpuMonitor:
        self._t0 = clock()
        self._sys0 = _system_busy_ticks()
        self._own0 = _own_ticks()
        return self

    def stop(self) -> float:
        wall = clock() - self._t0
        sys1, own1 = _system_busy_ticks(), _own_ticks()
        if None in (sys1, own1, self._sys0, self._own0) or wall <= 0:
            return float("nan")
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        foreign = ((sys1 - self._sys0) - (own1 - self._own0)) / hz
        return max(0.0, foreign / (wall * (os.cpu_count() or 1)))


def wait_for_quiet(
    threshold: float = 0.10, window_s: float = 2.0, max_wait_s: float = 60.0
) -> tuple[float, float]:
    """Sleeps until other processes use less than `threshold` of the CPUs over `window_s`.

    Gives up after `max_wait_s`. Returns (seconds waited, last measured share);
    the caller should record the share (NaN where /proc is unavailable).
    """
    t0 = clock()
    while True:
        mon = CpuMonitor().start()
        time.sleep(window_s)
        share = mon.stop()
        waited = clock() - t0
        if not share >= threshold or waited >= max_wait_s:  # NaN: cannot tell, go on
            return waited, share


def loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


# ---------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags(wanted: Iterable[str] = ("avx2", "fma", "avx512f")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def git_revision(path: str) -> str:
    """Short commit of the repository at `path`, '+dirty' when it has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def machine_info(repo: str | None = None) -> dict[str, str]:
    """Ordered description of the machine and the numerical stack, as strings."""
    info: dict[str, str] = {}
    info["date"] = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    info["CPU"] = _cpu_model()
    flags = _cpu_flags()
    info["CPU flags (of interest)"] = ", ".join(flags) if flags else "none of avx2/fma/avx512f"
    info["cores"] = f"{os.cpu_count()} logical, {usable_cpus()} usable by this process"
    mem = _mem_total_gib()
    if mem is not None:
        info["memory"] = f"{mem:.1f} GiB"
    info["OS"] = f"{platform.system()} {platform.release()}"
    info["Python"] = f"{platform.python_implementation()} {sys.version.split()[0]}"
    info["numpy"] = np.__version__
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    pools = blas_pools()
    if pools:
        info["BLAS"] = "; ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
            f"{p.get('threading_layer')}, {p.get('num_threads')} threads by default)"
            for p in pools
        )
    else:
        info["BLAS"] = "unknown (threadpoolctl not installed)"
    la = loadavg()
    if la is not None:
        info["load average at start"] = " ".join(f"{v:.2f}" for v in la)
    if repo is not None:
        info["git commit"] = git_revision(repo)
    return info


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    """3 significant digits in s, ms or us."""
    if seconds is None or not np.isfinite(seconds):
        return "—"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """Rows as a Markdown table or as aligned plain text (first column left, rest right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    if markdown:
        out = [
            "| " + " | ".join(cells[0]) + " |",
            "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|",
        ]
        out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def write_report(path: str, lines: Sequence[str], info: Mapping[str, str]) -> None:
    """Writes a results file: ``lines`` then a "## Machine" section listing ``info``."""
    md = [*lines, "## Machine", "", *[f"- {k}: {v}" for k, v in info.items()], ""]
    with open(path, "w") as f:
        f.write("\n".join(md))
