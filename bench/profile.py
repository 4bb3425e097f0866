"""`python -m bench.run --profile DIR`: sample the alertnet process with py-spy while it is measured.

py-spy (`.venv/bin/pip install py-spy`) attaches to the running server for the measured window
only, with --idle and --threads, and writes raw collapsed stacks to DIR/NAME.txt; this module
summarises them (`python -m bench.profile DIR/NAME.txt` again later).
"""

from __future__ import annotations

import argparse
import linecache
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .harness import Child

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
#: A thread whose innermost line is one of these waits: the event loop in select, a worker on its queue.
_WAITING = re.compile(r"\.(select|get|wait|acquire|poll)\(")


def _source_line(frame: str) -> str:
    """The source text of a py-spy frame `func (path:line)`, found on sys.path."""
    match = _FRAME.match(frame.strip())
    if not match or not match["line"]:
        return ""
    for root in ["", *sys.path]:
        text = linecache.getline(str(Path(root) / match["file"]), int(match["line"]))
        if text:
            return text
    return ""


#: Frames every sample passes through (thread start, the event loop, `alertnet serve`): no information.
_PLUMBING = re.compile(
    r"\((threading\.py|<frozen runpy>|base_events\.py|events\.py|web\.py|cli\.py|__main__\.py)\)$"
)


def _idle(frame: str) -> bool:
    return bool(_WAITING.search(_source_line(frame)))


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@contextmanager
def sampling(child: Child, out: Path | None, name: str) -> Iterator[None]:
    """Sample `child` for the duration of the block, when profiling was asked for.

    py-spy pauses the child for each sample (no --nonblocking: read while it runs, half the
    stacks came out cut short), which slows the run measured with it by a tenth to a quarter."""
    tool = py_spy() if out is not None else None
    if out is None or tool is None:
        if out is not None:
            print("  (no py-spy: `.venv/bin/pip install py-spy` to profile)")
        yield
        return
    target = out / f"{name}.txt"
    spy = subprocess.Popen(
        [
            *(tool, "record", "--pid", str(child.pid), "--rate", "200", "--idle", "--threads"),
            *("--format", "raw", "--output", str(target)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)
    if target.exists():
        print(summary(target))


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    parts = path.split("/")
    where = "/".join(parts[-2:]) if parts[-1] in {"__init__.py", "base.py", "client.py"} else parts[-1]
    return f"{match['func']} ({where})"


def _thread(stack: list[str]) -> str:
    head = stack[0]
    if "MainThread" in head:
        return "main"
    return "worker threads (executor)"


def summary(path: Path, top: int = 25) -> str:
    """Inclusive share per function, per kind of thread, from py-spy's raw output."""
    per_thread: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        kind = _thread(stack)
        totals[kind] += count
        if _idle(stack[-1]):
            idle[kind] += count
            continue
        seen = {_short(frame) for frame in stack[1:]}
        seen = {name for name in seen if not _PLUMBING.search(name)}
        counter = per_thread.setdefault(kind, Counter())
        for name in seen:
            counter[name] += count
    lines = [f"\n  profile {path.name} (py-spy, inclusive % of that thread's samples)"]
    for kind, total in totals.most_common():
        lines.append(
            f"  {kind}: {total} samples, {idle[kind] / total:.0%} idle (waiting for I/O or work); "
            "time in a C call (SQLite, or waiting for SQLite's write lock) shows as its caller"
        )
        for name, count in per_thread.get(kind, Counter()).most_common(top):
            lines.append(f"    {count / total:6.1%}  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile.")
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    print(summary(args.raw, args.top))


if __name__ == "__main__":
    main()
