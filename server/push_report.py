"""Reading a push request's commands, and reading / rewriting receive-pack's report-status and messages.

The report is rewritten so a check's reason reaches the pusher as `! [remote rejected] <ref> (<reason>)`
instead of git's generic "pre-receive hook declined". git's messages (side band 2) are written for someone at
the repository's own disk: they lose the server's paths, and a ref lock's advice to look for an editor.
"""
from __future__ import annotations

import itertools
import re
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from hooks.refs import RefUpdate, is_sha

from .pktline import FLUSH, PktError, PktReader, encode, sideband_frames


PUSH_CERTIFICATE = b"push-cert"
LEADING_LIMIT = 4 * 65536
LOCK_FAILED = b"error: cannot lock ref '"
LOCK_HELD = b"File exists."  # git's lockfile.c, before its advice on editors and crashed gits


@dataclass(frozen=True)
class PushHead:
    """What the start of a receive-pack request says, read before git starts."""

    first_line: bytes | None  # the first pkt-line that is not `shallow` (a command, or push-cert); None for a flush
    object_count: int | None  # from the pack's header, after the commands and any push options; None without one


def read_push_head(chunks: Iterable[bytes]) -> tuple[PushHead, Iterator[bytes]]:
    """Reads at most LEADING_LIMIT bytes of a push request; returns what they say with the whole body, nothing
    consumed. Whatever cannot be read (a bad pkt-line, a body cut short, a limit reached) stays None."""
    source = iter(chunks)
    seen: list[bytes] = []
    reader = PktReader()
    first_line: bytes | None = None
    first_read = False
    sections = 1  # pkt-line sections still to pass: the commands, then the push options if asked for
    size = 0
    try:
        for chunk in source:
            seen.append(chunk)
            size += len(chunk)
            if sections == 0:
                reader.buffer += chunk
            for _raw, payload in (reader.feed(chunk) if sections else ()):
                if not first_read and (payload is None or not payload.startswith(b"shallow ")):
                    first_line, first_read = payload, True
                if payload is None:
                    sections -= 1
                    if sections == 0:
                        break
                elif sections == 1 and b"\0" in payload and b"push-options" in payload.split(b"\0", 1)[1].split():
                    sections = 2
            if sections == 0 and len(reader.buffer) >= 12:
                signature, _version, count = struct.unpack_from(">4sII", reader.buffer)
                return PushHead(first_line, count if signature == b"PACK" else None), itertools.chain(seen, source)
            if size > LEADING_LIMIT:
                break
    except PktError:
        pass
    return PushHead(first_line, None), itertools.chain(seen, source)


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
        if caps:  # as git's parse_feature_request: names are separated by spaces and nothing else
            self.capabilities.update(name for name in caps.decode("ascii", "replace").split(" ") if name)
        parts = line.decode("utf-8", "surrogateescape").split(" ", 2)  # as receive-pack: the ref is the rest
        if len(parts) == 3 and is_sha(parts[0].lower()) and is_sha(parts[1].lower()):
            self.updates.append(RefUpdate(old=parts[0].lower(), new=parts[1].lower(), ref=parts[2]))

    def requested(self) -> list[RefUpdate] | None:
        """The commands, once all of them have been read; None if the list could not be read."""
        return self.updates if self.complete else None

    @property
    def atomic(self) -> bool:
        return "atomic" in self.capabilities

    @property
    def reports_status(self) -> bool:
        return bool(self.capabilities & {"report-status", "report-status-v2"})

    @property
    def sideband(self) -> bool:
        """receive-pack multiplexes its report only for side-band-64k (a plain side-band request gets none)."""
        return "side-band-64k" in self.capabilities


@dataclass
class ReportFilter:
    """Passes progress through at once and holds the report-status back until `finish`, with the messages
    about a ref git could not lock: a ref found to hold what was pushed is reported ok without them."""

    sideband: bool
    refs: tuple[str, ...] = ()  # the refs the request names: how an `ng` line's ref is told from its reason
    private_paths: tuple[str, ...] = ()  # the server's own directories, taken out of git's messages
    report: bytearray = field(default_factory=bytearray)
    _held: list[tuple[str, bytes]] = field(default_factory=list)  # (ref, message) until the outcome is known
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
            elif payload[:1] == b"\x02" and len(payload) > 1:  # receive-pack's own messages come one per packet
                passthrough += self._message(payload[1:])
            else:
                passthrough += raw
        return bytes(passthrough)

    def __post_init__(self):
        # a repository's path before the data directory it is in; only where a path starts (after a space, a
        # quote or the start), never inside a ref or file name that happens to spell one (`refs/heads/data/x`)
        paths = sorted((p.encode("utf-8", "surrogateescape") for p in self.private_paths), key=len, reverse=True)
        self._paths = (re.compile(rb"(?<![^\s'\"(])(?:" + b"|".join(map(re.escape, paths)) + rb")(/\./|/)?")
                       if paths else None)
        self._names = set(self.refs)

    def _message(self, text: bytes) -> bytes:
        if self._paths is not None:
            text = self._paths.sub(lambda m: b"" if m.group(1) else b".", text)
        ref = self._unlocked_ref(text)
        if ref is None:
            return sideband_frames(2, text)
        if LOCK_HELD in text:
            text = LOCK_FAILED + ref.encode("utf-8", "surrogateescape") + (
                b"': another change to it is being written; try again\n")
        self._held.append((ref, text))
        return b""

    def _unlocked_ref(self, text: bytes) -> str | None:
        """The ref a "cannot lock ref" message is about, if the request names it (the longest that fits: a ref
        may hold a quote)."""
        if not text.startswith(LOCK_FAILED):
            return None
        quoted = text[len(LOCK_FAILED):].decode("utf-8", "surrogateescape")
        return self._longest_named(quoted, "'")

    def results(self) -> dict[str, str | None]:
        """ref -> None when applied ("ok"), else git's reason."""
        outcome: dict[str, str | None] = {}
        for line in _report_lines(bytes(self.report)):
            if line.startswith("ok "):
                outcome[line[3:]] = None
            elif line.startswith("ng "):
                ref, reason = self._ref_and_reason(line[3:])
                outcome[ref] = reason
        return outcome

    def unpack_problem(self) -> str | None:
        """What git said when it could not take the pack in (its `unpack` line other than `ok`), else None."""
        for line in _report_lines(bytes(self.report)):
            if line.startswith("unpack ") and line != "unpack ok":
                return line[len("unpack "):]
        return None

    def _ref_and_reason(self, rest: str) -> tuple[str, str]:
        """`<ref> <reason>`, where the ref may itself hold spaces (git refuses such a ref; its reason still counts)."""
        if rest in self._names:
            return rest, ""
        ref = self._longest_named(rest, " ")
        if ref is not None:
            return ref, rest[len(ref) + 1:]
        ref, _, reason = rest.partition(" ")
        return ref, reason

    def _longest_named(self, text: str, end: str) -> str | None:
        """The longest ref of the request that `text` starts with, followed by `end`: a set lookup at each `end`
        from the right (one pass over the refs per line was quadratic: 20,000 refused refs took minutes)."""
        cut = len(text)
        while (cut := text.rfind(end, 0, cut)) > 0:
            if text[:cut] in self._names:
                return text[:cut]
        return None

    def finish(self, reasons: dict[str, str | None]) -> bytes:
        """The report with each ref in `reasons` failed for that reason (git's "ok" too: a change undone), or ok
        for None (a ref that holds what was pushed although git's own swap failed)."""
        lines, reported_ok = [], set()
        for line in _report_lines(bytes(self.report)):
            if line.startswith(("ok ", "ng ")):
                ref = line[3:] if line.startswith("ok ") else self._ref_and_reason(line[3:])[0]
                if ref in reasons:
                    line = f"ng {ref} {reasons[ref]}" if reasons[ref] is not None else f"ok {ref}"
                if line.startswith("ok "):
                    reported_ok.add(ref)
            lines.append(encode((line + "\n").encode("utf-8", "surrogateescape")))
        report = b"".join(lines) + FLUSH if lines else bytes(self.report)
        if not self.sideband:
            return report
        messages = b"".join(sideband_frames(2, text) for ref, text in self._held if ref not in reported_ok)
        return messages + sideband_frames(1, report) + FLUSH


def _report_lines(report: bytes) -> list[str]:
    lines = []
    try:
        for _raw, payload in PktReader().feed(report):
            if payload is not None:
                lines.append(payload.rstrip(b"\n").decode("utf-8", "surrogateescape"))
    except PktError:
        return []
    return lines
