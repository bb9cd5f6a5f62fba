"""A JT/T 808 terminal as the tests and the bench drive it: a real TCP client on loopback that
registers, authenticates, sends locations and reads the platform's answers."""

from __future__ import annotations

import socket
import struct
from collections import deque
from datetime import datetime

from gps_ingest.jt808.frame import BadFrame, Frame, FrameReader, encode_frame
from gps_ingest.jt808.messages import (
    AUTHENTICATION,
    BATCH,
    BEIJING,
    HEARTBEAT,
    LOCATION,
    PLATFORM_RESPONSE,
    REGISTRATION,
    REGISTRATION_ANSWER,
    STATUS_POSITIONED,
    decode_general_response,
    decode_registration_answer,
)


def location_body(ts: float, lat: float, lon: float, speed_kmh: float = 30.0,
                  course: int = 90, alarm: int = 0, status: int = STATUS_POSITIONED) -> bytes:
    bcd = datetime.fromtimestamp(ts, BEIJING).strftime("%y%m%d%H%M%S")
    return (struct.pack(">IIIIhHH", alarm, status, round(lat * 1e6), round(lon * 1e6), 50,
                        round(speed_kmh * 10), course) + bytes.fromhex(bcd)
            + b"\x30\x01\x1f\x31\x01\x0c")  # signal 31, 12 satellites


def batch_body(items: list[bytes], backlog: bool = True) -> bytes:
    return (len(items).to_bytes(2, "big") + bytes([1 if backlog else 0])
            + b"".join(len(i).to_bytes(2, "big") + i for i in items))


def registration_body(plate: str = "湘B12345") -> bytes:
    return (b"\x00\x2b\x01\x00" + b"70111" + b"XC-TEST".ljust(20, b"\x00")
            + b"0000001" + b"\x01" + plate.encode("gbk"))


class Terminal:
    def __init__(self, port: int, phone: str, version: int | None = None,
                 timeout_s: float = 15.0):
        self.phone, self.version = phone, version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.reader = FrameReader()
        self.inbox: deque[Frame] = deque()
        self.serial = 0

    # -- sending -------------------------------------------------------------------------------

    def send(self, message_id: int, body: bytes = b"") -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        self.sock.sendall(encode_frame(message_id, self.phone, self.serial, body, self.version))
        return self.serial

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def location(self, ts: float, lat: float, lon: float, **kw) -> int:
        return self.send(LOCATION, location_body(ts, lat, lon, **kw))

    def batch(self, fixes: list[tuple[float, float, float]]) -> int:
        return self.send(BATCH, batch_body([location_body(*f) for f in fixes]))

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> Frame:
        while not self.inbox:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the platform closed the connection")
            for _, frame in self.reader.feed(data):
                assert not isinstance(frame, BadFrame), frame
                self.inbox.append(frame)
        return self.inbox.popleft()

    def answer(self) -> tuple[int, int, int]:
        """The next 0x8001: (answered serial, answered message id, result)."""
        frame = self.read()
        assert frame.header.message_id == PLATFORM_RESPONSE, hex(frame.header.message_id)
        r = decode_general_response(frame.body)
        return r.serial, r.message_id, r.result

    # -- the session -------------------------------------------------------------------------------

    def register(self) -> tuple[int, str]:
        """(result, auth code) of a registration."""
        serial = self.send(REGISTRATION, registration_body())
        frame = self.read()
        assert frame.header.message_id == REGISTRATION_ANSWER
        answered, result, code = decode_registration_answer(frame.body)
        assert answered == serial
        return result, code

    def authenticate(self, code: str) -> int:
        if self.version is None:
            body = code.encode()
        else:
            body = bytes([len(code)]) + code.encode() + b"861234567890123" + b"1.0".ljust(20, b"\0")
        serial = self.send(AUTHENTICATION, body)
        answered, message_id, result = self.answer()
        assert (answered, message_id) == (serial, AUTHENTICATION)
        return result

    def heartbeat(self) -> int:
        serial = self.send(HEARTBEAT)
        answered, message_id, result = self.answer()
        assert (answered, message_id) == (serial, HEARTBEAT)
        return result

    def kill(self) -> None:
        """Gone at once, as a terminal losing power: a reset, no goodbye."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def driver_card_body(ts: float, name: str | None, certificate: str = "",
                     authority: str = "", valid_until: str = "20301231") -> bytes:
    """0x0702: a card put in (``name`` given, read successfully) or taken out (None)."""
    bcd = bytes.fromhex(datetime.fromtimestamp(ts, BEIJING).strftime("%y%m%d%H%M%S"))
    if name is None:
        return b"\x02" + bcd
    gbk_name, gbk_authority = name.encode("gbk"), authority.encode("gbk")
    return (b"\x01" + bcd + b"\x00" + bytes([len(gbk_name)]) + gbk_name
            + certificate.encode().ljust(20, b"\x00") + bytes([len(gbk_authority)])
            + gbk_authority + bytes.fromhex(valid_until))


def read_text(terminal: Terminal) -> tuple[int, bool, str]:
    """The next frame as a 0x8300 text: (its serial, emergency?, the text)."""
    from gps_ingest.jt808.messages import TEXT, decode_text

    frame = terminal.read()
    assert frame.header.message_id == TEXT, hex(frame.header.message_id)
    flag, text = decode_text(frame.body, terminal.version)
    emergency = bool(flag & 1) if terminal.version is None else flag & 3 == 2
    return frame.header.serial, emergency, text


def respond(terminal: Terminal, serial: int, message_id: int, result: int = 0) -> None:
    """The terminal's general response 0x0001 to a message of the platform."""
    from gps_ingest.jt808.messages import GENERAL_RESPONSE, encode_general_response

    terminal.send(GENERAL_RESPONSE, encode_general_response(serial, message_id, result))
