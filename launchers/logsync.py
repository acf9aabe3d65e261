"""A run's files sent back through its job's output, for a launcher that gets nothing else back from where the job
runs (ray without a folder the cluster shares: Ray removes the job's working directory with the job).

Job side, shipped beside the Ray entrypoint as tp_logsync.py (standard library only, no platform imports):

    python tp_logsync.py RUN_DIR --tag TAG --pid PID

follows RUN_DIR and prints one marked line into the job's output for each new line of the files a run appends to
(`APPENDED`: metrics.jsonl, diagnostics.jsonl) and each new content of the files it replaces (`REPLACED`: verl's
checkpoint pointer, then job_state.json, the job's own record of its end). It ends once it has sent a job_state.json
whose state is no longer `running` (so everything the job wrote before its end is sent before the job ends), on
SIGTERM (Ray's stop) or once PID (the entrypoint) is gone, each after a last pass.

A record line is `[tp-sync TAG] KIND NAME PAYLOAD`: `line NAME TEXT` (one appended line, as written), `file NAME
JSON-STRING` (a replaced file's whole content), `restart NAME -` (an appended file started again from empty) and
`where - {"host": ..., "run_dir": ...}` (where the run's files lie there). TAG is a random token the launcher
makes per submission and hands only to the entrypoint (its argument, never the job's environment), so a job that
prints something alike is never mistaken for a record. Each record is one write(2) to the job's log, which Ray
opened for appending, so it is never cut by the job's own output; the job's output can still be cut by a record
(a line written in pieces), so a record is taken out of the middle of a line too and the line is joined again.

Submitting side: `Demux` splits what Ray returns for the job's log into the job's own output (train.log) and the
records, incrementally and idempotently (the launcher reads the whole log again at each status, from any process).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# files a run appends to, sent line by line: verl's metrics, the diagnostics monitor's anomalies
APPENDED = ("metrics.jsonl", "diagnostics.jsonl")
# verl's pointer to its newest complete checkpoint (written last, once the checkpoint is whole)
CHECKPOINT_POINTER = "checkpoints/latest_checkpointed_iteration.txt"
# the job's own record of its start and end (launchers/templates/_job_record.sh.j2)
JOB_STATE = "job_state.json"
# files a run replaces whole, sent whenever they change; the job's record last: what it reports came before it
REPLACED = (CHECKPOINT_POINTER, JOB_STATE)


def marker(tag: str) -> str:
    """The prefix of every record line of the submission tagged `tag`."""
    return f"[tp-sync {tag}] "


# ---- job side ------------------------------------------------------------------------------------------------------


@dataclass
class _Followed:
    offset: int = 0
    pending: bytes = b""
    # the last content sent of a replaced file
    sent: bytes | None = None


class Forwarder:
    """Sends what is new in `run_dir` as record lines to file descriptor `out` (the job's output)."""

    def __init__(self, run_dir: Path, tag: str, out: int = 1) -> None:
        self.run_dir = Path(run_dir)
        self.mark = marker(tag)
        self.out = out
        self.files = {name: _Followed() for name in (*APPENDED, *REPLACED)}
        self.ended = False

    def send(self, kind: str, name: str, payload: str) -> None:
        data = f"{self.mark}{kind} {name} {payload}\n".encode("utf-8", errors="replace")
        while data:  # one write(2) unless the kernel takes less
            data = data[os.write(self.out, data) :]

    def start(self) -> None:
        where = {"host": socket.gethostname(), "run_dir": str(self.run_dir.resolve())}
        self.send("where", "-", json.dumps(where))

    def poll(self, final: bool = False) -> None:
        for name in APPENDED:
            self._lines(name, final)
        for name in REPLACED:
            self._whole(name)

    def _lines(self, name: str, final: bool) -> None:
        state = self.files[name]
        try:
            with open(self.run_dir / name, "rb") as f:
                if os.fstat(f.fileno()).st_size < state.offset:  # truncated or replaced: it starts again
                    state.offset, state.pending = 0, b""
                    self.send("restart", name, "-")
                f.seek(state.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        state.offset += len(chunk)
        *lines, state.pending = (state.pending + chunk).split(b"\n")
        if final and state.pending:  # the writer is gone: its unfinished line is all there will be
            lines, state.pending = [*lines, state.pending], b""
        for line in lines:
            self.send("line", name, line.decode("utf-8", errors="replace"))

    def _whole(self, name: str) -> None:
        state = self.files[name]
        try:
            content = (self.run_dir / name).read_bytes()
        except FileNotFoundError:
            return
        if content == state.sent:
            return
        state.sent = content
        self.send("file", name, json.dumps(content.decode("utf-8", errors="replace")))
        if name == JOB_STATE:
            try:
                record = json.loads(content)
            except ValueError:
                return
            self.ended = isinstance(record, dict) and record.get("state") not in (None, "running")

    def run(self, pid: int | None, poll_s: float) -> int:
        stopping = False

        def on_term(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, on_term)
        self.start()
        while not stopping and not self.ended and _alive(pid):
            self.poll()
            time.sleep(poll_s)
        self.poll(final=True)
        return 0


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a run's files back through the job's output (see the module).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tag", required=True, help="the submission's token, in every record line")
    parser.add_argument("--pid", type=int, default=None, help="the entrypoint: stop once it is gone")
    parser.add_argument("--poll-s", type=float, default=0.25, help="seconds between two looks at the files")
    args = parser.parse_args(argv)
    if not args.tag.strip() or any(c.isspace() for c in args.tag):
        parser.error(f"--tag {args.tag!r}: one word expected")
    return Forwarder(args.run_dir, args.tag).run(args.pid, args.poll_s)


# ---- submitting side -----------------------------------------------------------------------------------------------


@dataclass
class Synced:
    """What the job sent back so far: its own output, and the files."""

    # the job's own output, records taken out
    output: str = ""
    # APPENDED file name -> its lines sent (each ended by a newline), since the last restart
    appended: dict[str, str] = field(default_factory=dict)
    # REPLACED file name -> its last content sent
    replaced: dict[str, str] = field(default_factory=dict)
    # where the run's files lie where the job runs: {"host": ..., "run_dir": ...}
    where: dict[str, Any] | None = None


class Demux:
    """Splits a job's output into its own output and the records tagged `tag` (None: no records, all output).

    `feed()` takes the output piece by piece, cut anywhere; a line not ended yet is held back until its newline
    comes (or `final=True`: the job has ended and nothing more will come). A line with our marker whose record does
    not parse is the job's own output."""

    def __init__(self, tag: str | None) -> None:
        self.mark = None if tag is None else marker(tag)
        self.synced = Synced()
        self._pending = ""
        self._output: list[str] = []
        self._files: dict[str, list[str]] = {}

    def feed(self, text: str, final: bool = False) -> Synced:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._line(line, ended=True)
        if final and self._pending:
            self._line(self._pending, ended=False)
            self._pending = ""
        self.synced.output = "".join(self._output)
        self.synced.appended = {name: "".join(lines) for name, lines in self._files.items()}
        return self.synced

    def _line(self, line: str, ended: bool) -> None:
        at = -1 if self.mark is None else line.find(self.mark)
        if at >= 0 and self._record(line[at + len(self.mark or "") :]):
            self._output.append(line[:at])  # the job's line this record cut continues on the next line
            return
        self._output.append(line + "\n" if ended else line)

    def _record(self, text: str) -> bool:
        kind, _, rest = text.partition(" ")
        name, _, payload = rest.partition(" ")
        if kind == "line" and name in APPENDED:
            self._files.setdefault(name, []).append(payload + "\n")
        elif kind == "restart" and name in APPENDED:
            self._files[name] = []
        elif kind == "file" and name in REPLACED and isinstance(content := _json(payload), str):
            self.synced.replaced[name] = content
        elif kind == "where" and name == "-" and isinstance(where := _json(payload), dict):
            self.synced.where = where
        else:
            return False
        return True


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
