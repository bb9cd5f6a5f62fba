"""JT/T 808 framing: the bytes on the wire ↔ header and body.

A frame on the wire is ``0x7e · escaped(header · body · check) · 0x7e``: inside it 0x7e is
sent as ``7d 02`` and 0x7d as ``7d 01``; the check byte is the XOR of every unescaped byte of
header and body. The header (JT/T 808-2013 §4.4, 2019 §4.4):

==========  ==========================================================================
WORD        message id
WORD        body properties: bits 0–9 body length, 10–12 encryption (bit 10 = RSA),
            13 sub-package, 14 version flag (2019 header), 15 reserved
BYTE        (2019 only) protocol version, 1 for JT/T 808-2019
BCD[6]      terminal phone number, 12 digits (2013); BCD[10], 20 digits (2019)
WORD        message serial number
WORD, WORD  (sub-package only) total packages, this package's index (from 1)
==========  ==========================================================================

Pure: no I/O, no clock. Nothing here raises on bad input: a frame that cannot be read is a
:class:`BadFrame` with a reason from :mod:`gps_ingest.records`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gps_ingest.records import (
    BAD_CHECKSUM,
    BAD_ESCAPE,
    BAD_LENGTH,
    FRAME_TOO_LONG,
    NOT_A_FRAME,
    TRUNCATED_FRAME,
)

FLAG = 0x7E
ESCAPE = 0x7D
MAX_BODY = 0x3FF  # ten bits of length
HEADER_2013 = 12
HEADER_2019 = 17
SUBPACKAGE_FIELDS = 4
#: The longest escaped frame content there can be: every byte of the longest header, body and
#: check escaped. A stream that goes on longer without a 0x7e is not JT/T 808.
MAX_ESCAPED = 2 * (HEADER_2019 + SUBPACKAGE_FIELDS + MAX_BODY + 1)

_BIT_SUBPACKAGE = 1 << 13
_BIT_VERSION = 1 << 14
_ENCRYPTION = 0x1C00


@dataclass(frozen=True, slots=True)
class Header:
    message_id: int
    phone: str  # the BCD digits as sent (hex of the bytes: 12 digits in 2013, 20 in 2019)
    serial: int
    version: int | None = None  # None: a 2011/2013 header; else the 2019 version byte
    encryption: int = 0  # bits 10–12 of the body properties (0: none, 1: RSA)
    packages: tuple[int, int] | None = None  # (total, index from 1) of a sub-package

    @property
    def protocol(self) -> str:
        return "2013" if self.version is None else "2019"


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes
    check_ok: bool = True


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Why a frame cannot be used; ``header`` when it could still be read (e.g. a failing check
    byte), so that the platform can answer the message it refuses."""

    reason: str
    detail: str
    header: Header | None = None


# -- escaping and the check byte ----------------------------------------------------------------


def escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> tuple[bytes, str | None]:
    """The bytes of a frame's content without its escapes, and what is wrong with them: a 0x7d
    must be followed by 0x01 or 0x02 (one that is not is kept as it is, so that the check byte
    can still say whether the frame is whole)."""
    if ESCAPE not in data:
        return data, None
    out = bytearray()
    problem = None
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        nxt = data[i + 1] if b == ESCAPE and i + 1 < n else None
        if b == ESCAPE and nxt in (0x01, 0x02):
            out.append(ESCAPE if nxt == 0x01 else FLAG)
            i += 2
            continue
        if b == ESCAPE and problem is None:
            what = "the end of the frame" if nxt is None else f"0x{nxt:02x}"
            problem = f"0x7d at byte {i} is followed by {what}, not 0x01 or 0x02"
        out.append(b)
        i += 1
    return bytes(out), problem


def xor_check(data: bytes) -> int:
    check = 0
    for b in data:
        check ^= b
    return check


# -- parsing --------------------------------------------------------------------------------------


def parse_header(data: bytes) -> tuple[Header, int, int] | BadFrame:
    """``(header, header length, body length in the properties)`` from unescaped bytes."""
    if len(data) < 4:
        return BadFrame(TRUNCATED_FRAME, f"{len(data)} bytes: shorter than a header")
    message_id = int.from_bytes(data[0:2], "big")
    props = int.from_bytes(data[2:4], "big")
    is_2019 = bool(props & _BIT_VERSION)
    subpackage = bool(props & _BIT_SUBPACKAGE)
    size = (HEADER_2019 if is_2019 else HEADER_2013) + (SUBPACKAGE_FIELDS if subpackage else 0)
    if len(data) < size:
        return BadFrame(TRUNCATED_FRAME, f"{len(data)} bytes: shorter than its "
                                         f"{'2019' if is_2019 else '2013'} header ({size} bytes)")
    if is_2019:
        version: int | None = data[4]
        phone, pos = data[5:15].hex(), 15
    else:
        version, phone, pos = None, data[4:10].hex(), 10
    serial = int.from_bytes(data[pos:pos + 2], "big")
    packages = None
    if subpackage:
        packages = (int.from_bytes(data[pos + 2:pos + 4], "big"),
                    int.from_bytes(data[pos + 4:pos + 6], "big"))
    header = Header(message_id, phone, serial, version, (props & _ENCRYPTION) >> 10, packages)
    return header, size, props & MAX_BODY


def parse_frame(content: bytes, accept_bad_check: bool = False) -> Frame | BadFrame:
    """A frame from its escaped content (the bytes between the two 0x7e).

    The checks, in order: length of the header, check byte, escapes, body length against the
    header's (a frame with a wrong escape whose check fails too is ``bad_checksum``: it was
    damaged, and the check is what says so). A failing check byte is ``bad_checksum`` unless ``accept_bad_check`` (some
    terminals' firmware computes it wrong on every frame): then the frame is returned with
    ``check_ok`` false.
    """
    if len(content) > MAX_ESCAPED:
        return BadFrame(FRAME_TOO_LONG, f"{len(content)} bytes between 0x7e: longer than any "
                                        f"frame ({MAX_ESCAPED})")
    data, escape_problem = unescape(content)
    parsed = parse_header(data[:-1])
    if isinstance(parsed, BadFrame):
        return parsed
    header, size, length = parsed
    check_ok = xor_check(data[:-1]) == data[-1]
    if not check_ok and not accept_bad_check:
        also = f"; and {escape_problem}" if escape_problem else ""
        return BadFrame(BAD_CHECKSUM, f"check byte 0x{data[-1]:02x}, the XOR of the frame is "
                                      f"0x{xor_check(data[:-1]):02x}{also}", header)
    if escape_problem:
        return BadFrame(BAD_ESCAPE, escape_problem, header)
    body = data[size:-1]
    if len(body) != length:
        return BadFrame(BAD_LENGTH, f"the header says a body of {length} bytes, the frame has "
                                    f"{len(body)}", header)
    return Frame(header, body, check_ok)


def encode_frame(message_id: int, phone: str, serial: int, body: bytes = b"",
                 version: int | None = None, packages: tuple[int, int] | None = None) -> bytes:
    """The whole frame on the wire, 0x7e delimiters included, with the header the terminal
    uses (``version`` None: 2013; ``phone`` as the terminal sent it)."""
    if len(body) > MAX_BODY:
        raise ValueError(f"a body of {len(body)} bytes; at most {MAX_BODY} (use sub-packages)")
    props = len(body) | (_BIT_SUBPACKAGE if packages else 0)
    digits = 20 if version is not None else 12
    phone = phone.rjust(digits, "0")
    if len(phone) != digits:
        raise ValueError(f"phone {phone!r}: at most {digits} digits in this header")
    head = message_id.to_bytes(2, "big")
    if version is not None:
        head += (props | _BIT_VERSION).to_bytes(2, "big") + bytes([version])
    else:
        head += props.to_bytes(2, "big")
    head += bytes.fromhex(phone) + (serial & 0xFFFF).to_bytes(2, "big")
    if packages:
        head += packages[0].to_bytes(2, "big") + packages[1].to_bytes(2, "big")
    data = head + body
    return b"\x7e" + escape(data + bytes([xor_check(data)])) + b"\x7e"


# -- the stream -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of bytes the splitter cut at 0x7e: a frame's content (or part of it), the empty run
    between one frame's closing and the next one's opening 0x7e, or ``garbage`` (before the
    stream's first 0x7e, or too long without one)."""

    content: bytes
    garbage: bool = False


class FrameSplitter:
    """Cuts a TCP byte stream at every 0x7e, whatever the reads: several frames in one, a frame
    split across several. Bytes before the stream's first 0x7e are garbage, and so is a run of
    more than :data:`MAX_ESCAPED` without one (dropped as it comes, so a peer sending no
    delimiter cannot make us hold more than that)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._started = False
        self._discarding = False  # inside a run that was too long: dropped up to the next 0x7e

    def feed(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        start = 0
        while True:
            end = data.find(b"\x7e", start)
            if end < 0:
                if not self._discarding:
                    self._pending += data[start:]
                    if len(self._pending) > MAX_ESCAPED:
                        self._pending.clear()
                        self._discarding = True
                        pieces.append(Piece(b"", garbage=True))
                return pieces
            if self._discarding:
                self._discarding = False
            else:
                self._pending += data[start:end]
                if self._started:
                    pieces.append(Piece(bytes(self._pending)))
                elif self._pending:
                    pieces.append(Piece(bytes(self._pending), garbage=True))
            self._pending.clear()
            self._started = True
            start = end + 1

    def close(self) -> list[Piece]:
        """At the end of the stream: what is left without its closing 0x7e."""
        rest, self._pending = bytes(self._pending), bytearray()
        return [Piece(rest, garbage=not self._started)] if rest else []

    @property
    def buffered(self) -> int:
        return len(self._pending)


def garbage_reject(piece: Piece) -> BadFrame:
    return BadFrame(NOT_A_FRAME, f"{len(piece.content)} bytes outside 0x7e delimiters"
                    if piece.content else f"more than {MAX_ESCAPED} bytes without a 0x7e")


#: What :class:`FrameReader` hands on: the frame's escaped content and what it is.
Cut = tuple[bytes, "Frame | BadFrame"]


class FrameReader:
    """Frames out of a TCP stream: :class:`FrameSplitter`, then each content parsed.

    Some terminals do not escape a 0x7e inside a frame (the set in ``tests/data/jt808`` has
    three 0x0200 such frames). The header's body length tells: a content shorter than its
    header says is held, and joined with the next run through the 0x7e that cut it, as long as
    a single 0x7e is between them — the empty run of ``7e 7e`` between two frames ends it, and
    what was held is refused as it is (``truncated_frame``, ``bad_length``…), and so is it
    when the next run is a whole, valid frame by itself (garbage before a frame must not cost
    the frame).
    """

    def __init__(self, accept_bad_check: bool = False) -> None:
        self.accept_bad_check = accept_bad_check
        self._splitter = FrameSplitter()
        self._held: bytes | None = None

    def feed(self, data: bytes) -> list[Cut]:
        out: list[Cut] = []
        for piece in self._splitter.feed(data):
            if piece.garbage:
                out.extend(self.flush())
                out.append((piece.content, garbage_reject(piece)))
                continue
            if not piece.content:  # 7e 7e: between two frames
                out.extend(self.flush())
                continue
            out.extend(self._take(piece.content))
        return out

    def _take(self, content: bytes) -> list[Cut]:
        held, self._held = self._held, None
        if held is None:
            if _short(content):
                self._held = content
                return []
            return [(content, parse_frame(content, self.accept_bad_check))]
        alone = None if _short(content) else parse_frame(content, self.accept_bad_check)
        if isinstance(alone, Frame):  # a whole frame after something broken: not its tail
            return [(held, self._refuse_short(held)), (content, alone)]
        joined = held + b"\x7e" + content
        if _short(joined):
            self._held = joined
            return []
        return [(joined, parse_frame(joined, self.accept_bad_check))]

    def flush(self) -> list[Cut]:
        """What is held, refused as it is (the connection ended, or the next frame began)."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        return [(held, self._refuse_short(held))]

    def _refuse_short(self, content: bytes) -> BadFrame:
        """A content shorter than its header says: ``bad_length`` if its check byte holds (the
        frame is whole), ``bad_checksum`` if not (cut short or damaged), ``truncated_frame``
        if not even its header is there."""
        result = parse_frame(content, self.accept_bad_check)
        if isinstance(result, Frame):  # cannot be: it is short; kept total all the same
            return BadFrame(BAD_LENGTH, "shorter than its header says", result.header)
        if result.reason == BAD_CHECKSUM:
            return BadFrame(BAD_CHECKSUM, f"{result.detail}; and shorter than its header says "
                                          "(cut short?)", result.header)
        return result

    def close(self) -> list[Cut]:
        """At the end of the stream: everything not yet handed on, refused as it is."""
        out = self.flush()
        for piece in self._splitter.close():
            bad = (garbage_reject(piece) if piece.garbage
                   else BadFrame(TRUNCATED_FRAME, f"the stream ended {len(piece.content)} bytes "
                                                  "into a frame"))
            out.append((piece.content, bad))
        return out

    @property
    def buffered(self) -> int:
        return self._splitter.buffered + len(self._held or b"")


def _short(content: bytes) -> bool:
    """Is this content shorter than its own header says (so perhaps cut by a bare 0x7e)?"""
    if len(content) >= MAX_ESCAPED:
        return False
    data, _ = unescape(content)
    parsed = parse_header(data)
    if isinstance(parsed, BadFrame):
        return True
    _, size, length = parsed
    return len(data) < size + length + 1
