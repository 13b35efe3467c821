"""Measurement harness shared by the benchmark scripts in this folder.

The scripts import it as a sibling module (``python benchmarks/bench_x.py`` puts this
folder on ``sys.path``, and so do the child processes, which re-invoke the script by path).

Pieces:

* fresh-process runner: :func:`run_child` re-invokes a script with ``--case NAME ...`` and
  reads the JSON the child prints on its last stdout line (:func:`emit`);
  :func:`run_cases` runs every case ``repeat`` times, interleaved, with a progress line
  per run on stderr;
* peak RSS: :func:`peak_rss_mb` (``VmHWM``), reset by :func:`start_measuring` through
  ``/proc/self/clear_refs`` once the inputs are built;
* CPU accounting: :class:`Timed` (wall, user + system CPU of this process, CPU of an
  optional watched process, CPU the rest of the machine used from ``/proc/stat``);
* report helpers: :func:`machine`, :func:`versions`, :func:`setting`, :func:`table`,
  :func:`median`, :func:`parse_size`, :func:`load_average`;
* command line: :func:`bench_parser` (the options every fresh-process benchmark takes),
  :func:`child_mode` (run one case when invoked as a child), :func:`sizes_and_cases`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- memory


def kib_to_mb(value: float) -> float:
    """``ru_maxrss`` in MB: it is in KiB on Linux, in bytes on macOS."""
    return value / (1024 * 1024) if sys.platform == "darwin" else value / 1024


def status_mb(field: str) -> float | None:
    """A size field (``VmRSS``, ``VmHWM``) of /proc/self/status in MB, None if unavailable."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's RSS high-water mark.

    Linux: ``VmHWM``, the figure ``ru_maxrss`` is made of, read directly because
    ``ru_maxrss`` also keeps the high-water marks of exited threads and of the process
    image before exec (the parent's RSS), which :func:`reset_peak_rss` does not clear.
    Elsewhere: ``ru_maxrss``.
    """
    hwm = status_mb("VmHWM")
    if hwm is not None:
        return hwm
    return kib_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def current_rss_mb() -> float:
    """This process's RSS now (``VmRSS``; the peak where /proc is missing)."""
    rss = status_mb("VmRSS")
    return peak_rss_mb() if rss is None else rss


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def start_measuring() -> dict[str, Any]:
    """Call once the inputs are built: collect garbage, reset the peak, record the baseline."""
    gc.collect()
    reset = reset_peak_rss()
    return {"baseline_mb": current_rss_mb(), "peak_reset": reset}


# ---------------------------------------------------------------- CPU and time


def host_busy_seconds() -> float:
    """CPU seconds all processes of the machine have been busy since boot (Linux; else NaN)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    busy = sum(int(value) for i, value in enumerate(fields[:8]) if i not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timed:
    """Wall and CPU seconds (all threads) of a ``with`` block, and the CPU others used.

    Next to the wall time, CPU time shows whether a slow run did more work or only
    waited for a CPU, and the CPU time other processes used meanwhile
    (``other_cpu_seconds``, > 0: the run shared the cores) whether it had the machine to
    itself. With ``pid``, that process's CPU is measured too (``pid_cpu_seconds``) and
    not counted as the others'.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.seconds = self.cpu_seconds = self.pid_cpu_seconds = 0.0
        self.other_cpu_seconds = float("nan")

    def __enter__(self) -> Timed:
        self._host = host_busy_seconds()
        self._cpu = cpu_seconds()
        self._pid_cpu = process_cpu_seconds(self.pid) if self.pid else 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = cpu_seconds() - self._cpu
        if self.pid:
            self.pid_cpu_seconds = process_cpu_seconds(self.pid) - self._pid_cpu
        busy = host_busy_seconds() - self._host
        self.other_cpu_seconds = max(0.0, busy - self.cpu_seconds - self.pid_cpu_seconds)

    def result(self, measured: Mapping[str, Any], **fields: Any) -> dict:
        """A child's JSON result: the times, the peak RSS now, ``fields`` and ``measured``
        (what :func:`start_measuring` returned)."""
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "other_cpu_seconds": self.other_cpu_seconds,
            "peak_mb": peak_rss_mb(),
            **fields,
            **measured,
        }


# ---------------------------------------------------------------- fresh-process runner


def bench_parser(
    doc: str, cases: Mapping[str, Any], sizes: str, timeout: float
) -> argparse.ArgumentParser:
    """Options of a fresh-process benchmark: ``--sizes`` (default ``sizes``), ``--repeat``,
    ``--cases``, ``--timeout``, and the hidden child-mode ``--case``/``--rows``/``--workdir``
    (see :func:`child_mode`). The script adds its own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--sizes", default=sizes, help=f"rows, comma-separated (default {sizes})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    parser.add_argument(
        "--cases", default=",".join(cases), help=f"comma-separated subset of {', '.join(cases)}"
    )
    parser.add_argument(
        "--timeout", type=float, default=timeout, help="seconds before a run counts as timed out"
    )
    parser.add_argument("--case", choices=[*cases, "prepare"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser


def child_mode(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    run: Callable[[str], Callable[[Path, int], Mapping[str, Any]]],
) -> bool:
    """When invoked as a child (``--case NAME``): run ``run(NAME)(workdir, rows)`` once,
    print its JSON (:func:`emit`) and return True; else return False."""
    if args.case is None:
        return False
    if args.workdir is None or args.rows is None:
        parser.error("--case needs --rows and --workdir")
    emit(run(args.case)(args.workdir, args.rows))
    return True


def sizes_and_cases(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    cases: Mapping[str, Any],
    min_rows: int,
    repeats: Sequence[int],
) -> tuple[list[int], list[str]]:
    """``--sizes`` and ``--cases`` parsed and checked (a usage error if a case is unknown,
    a size is under ``min_rows`` or a repeat count under 1)."""
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in cases]
    if unknown or not sizes or min(sizes) < min_rows or min(repeats) < 1:
        parser.error(f"bad --sizes/--cases/--repeat (unknown cases: {unknown})")
    return sizes, chosen


def emit(result: Mapping[str, Any]) -> None:
    """Child side: print the result as JSON on the last stdout line."""
    print(json.dumps(result))


def run_child(
    script: str | Path,
    args: Sequence[str],
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> dict:
    """Run ``python script *args`` in a fresh process; the JSON of its last stdout line.

    ``{"timed_out": True}`` after ``timeout`` seconds; ``env`` is added to the
    environment. Raises RuntimeError with the child's stderr if it fails.
    """
    command = [sys.executable, str(Path(script).resolve()), *args]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired:
        return {"timed_out": True}
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(result: Mapping[str, Any]) -> str:
    """One run as a progress line: seconds, CPU, other processes' CPU, peak RSS."""
    if result.get("timed_out"):
        return "timed out"
    return (
        f"{result['seconds']:.3f} s (CPU {result['cpu_seconds']:.2f} s, other processes "
        f"{result['other_cpu_seconds']:.2f} s), peak {result['peak_mb']:.0f} MB"
    )


def run_cases(
    script: str | Path,
    keys: Iterable[str],
    common: Sequence[str],
    repeat: int,
    *,
    runs: Mapping[str, int] | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    prefix: str = "",
) -> dict[str, list[dict]]:
    """Run each case (``--case KEY *common``) ``repeat`` times, interleaved, each run in
    a fresh process; {key: [result per run]}.

    ``runs`` caps the runs of some cases (slow ones); a case that timed out is not run
    again. A progress line per run goes to stderr, after ``prefix``.
    """
    results: dict[str, list[dict]] = {key: [] for key in keys}
    for run in range(repeat):
        for key, done in results.items():
            if runs and run >= runs.get(key, repeat):
                continue
            if done and done[-1].get("timed_out"):
                continue
            result = run_child(script, ["--case", key, *common], timeout, env)
            done.append(result)
            print(
                f"{prefix}run {run + 1}/{repeat} {key}: {describe(result)}",
                file=sys.stderr,
                flush=True,
            )
    return results


# ---------------------------------------------------------------- report


def machine(memory: bool = True) -> str:
    """OS, architecture, cores, CPU model and (with ``memory``) the RAM."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = ""
    if memory:
        try:
            with open("/proc/meminfo") as info:
                ram = f", {int(info.readline().split()[1]) / 1024**2:.0f} GiB RAM"
        except (OSError, ValueError, IndexError):
            pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){ram}"


#: Import name -> the name a report shows.
_DISPLAY = {"sklearn": "scikit-learn"}


def versions(*modules: str, python: bool = True) -> str:
    """``Python X, duckdb Y, ...``: the versions of the named modules, in order."""
    parts = [f"Python {platform.python_version()}"] if python else []
    for name in modules:
        module = importlib.import_module(name)
        parts.append(f"{_DISPLAY.get(name, name)} {module.__version__}")
    return ", ".join(parts)


def load_average() -> float:
    """The 1-minute load average (NaN where unavailable)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def setting(title: str, software: str, load: Sequence[float]) -> list[str]:
    """The header lines of a report: title, date, machine, software, load average."""
    return [
        title,
        f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"software: {software}",
        f"load average (1 min) at start / end: {load[0]:.2f} / {load[-1]:.2f}",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """An aligned markdown table: first and last column left-aligned, the others right."""
    left = {0, len(header) - 1}
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "".join(
        "|" + (":" + "-" * (w + 1) if i in left else "-" * (w + 1) + ":")
        for i, w in enumerate(widths)
    )
    return [render(header), rule + "|", *map(render, rows)]


def median(runs: Iterable[Mapping[str, Any]], key: str) -> float:
    """The median of ``key`` over the runs."""
    return statistics.median(run[key] for run in runs)


def parse_size(text: str) -> int:
    """``100k`` -> 100000, ``1M`` -> 1000000, ``2_500`` -> 2500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def growth(sizes: Sequence[int], times: Sequence[float]) -> str:
    """``x9.8 for x10 rows, ...``: how time grows from one size to the next."""
    return ", ".join(
        f"x{times[i + 1] / times[i]:.1f} for x{sizes[i + 1] / sizes[i]:.0f} rows"
        for i in range(len(sizes) - 1)
    )
