"""Reading a push request's commands, and reading / rewriting receive-pack's report-status.

The report is rewritten so a check's reason reaches the pusher as `! [remote rejected] <ref> (<reason>)`
instead of git's generic "pre-receive hook declined".
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hooks.refs import RefUpdate, is_sha

from .pktline import FLUSH, PktError, PktReader, encode, sideband_frames


@dataclass
class PushCommands:
    """Parses the command list at the head of a receive-pack request body, fed chunk by chunk."""

    updates: list[RefUpdate] = field(default_factory=list)
    capabilities: set[str] = field(default_factory=set)
    done: bool = False
    complete: bool = False  # the whole command list was read, up to its flush
    _reader: PktReader = field(default_factory=PktReader)

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        try:
            for _raw, payload in self._reader.feed(chunk):
                if payload is None:
                    self.done = self.complete = True
                    return
                self._parse_line(payload)
        except PktError:
            self.done = True
        if len(self._reader.buffer) > 4 * 65536:
            self.done = True

    def _parse_line(self, payload: bytes) -> None:
        line, _, caps = payload.rstrip(b"\n").partition(b"\0")
        if caps:
            self.capabilities.update(caps.decode("ascii", "replace").split())
        parts = line.decode("utf-8", "surrogateescape").split(" ", 2)  # as receive-pack: the ref is the rest
        if len(parts) == 3 and is_sha(parts[0].lower()) and is_sha(parts[1].lower()):
            self.updates.append(RefUpdate(old=parts[0].lower(), new=parts[1].lower(), ref=parts[2]))

    def requested(self) -> list[RefUpdate] | None:
        """The commands, once all of them have been read; None if the list could not be read."""
        return self.updates if self.complete else None

    @property
    def reports_status(self) -> bool:
        return bool(self.capabilities & {"report-status", "report-status-v2"})

    @property
    def sideband(self) -> bool:
        return bool(self.capabilities & {"side-band", "side-band-64k"})


@dataclass
class ReportFilter:
    """Passes progress through at once and holds the report-status back until `finish`."""

    sideband: bool
    report: bytearray = field(default_factory=bytearray)
    _reader: PktReader = field(default_factory=PktReader)

    def feed(self, chunk: bytes) -> bytes:
        if not self.sideband:
            self.report += chunk
            return b""
        passthrough = bytearray()
        for raw, payload in self._reader.feed(chunk):
            if payload is None:
                continue  # the outer flush; re-sent by finish()
            if payload[:1] == b"\x01" and len(payload) > 1:
                self.report += payload[1:]
            else:
                passthrough += raw
        return bytes(passthrough)

    def results(self) -> dict[str, str | None]:
        """ref -> None when applied ("ok"), else git's reason."""
        outcome: dict[str, str | None] = {}
        for line in _report_lines(bytes(self.report)):
            if line.startswith("ok "):
                outcome[line[3:]] = None
            elif line.startswith("ng "):
                ref, _, reason = line[3:].partition(" ")
                outcome[ref] = reason
        return outcome

    def finish(self, reasons: dict[str, str]) -> bytes:
        """The report with each ref in `reasons` failed for that reason (git's "ok" too: a change undone)."""
        lines = []
        for line in _report_lines(bytes(self.report)):
            if line.startswith(("ok ", "ng ")):
                ref, _, _ = line[3:].partition(" ")
                if ref in reasons:
                    line = f"ng {ref} {reasons[ref]}"
            lines.append(encode((line + "\n").encode("utf-8", "surrogateescape")))
        report = b"".join(lines) + FLUSH if lines else bytes(self.report)
        if not self.sideband:
            return report
        return sideband_frames(1, report) + FLUSH


def _report_lines(report: bytes) -> list[str]:
    lines = []
    try:
        for _raw, payload in PktReader().feed(report):
            if payload is not None:
                lines.append(payload.rstrip(b"\n").decode("utf-8", "surrogateescape"))
    except PktError:
        return []
    return lines
