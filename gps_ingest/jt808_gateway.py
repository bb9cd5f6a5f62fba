"""The JT/T 808 gateway: terminals' TCP connections → the ingest pipeline, answers after commit.

One asyncio event loop holds every connection (thousands: a connection costs a few kB and no
thread). Per connection:

- frames are cut from the stream (:class:`gps_ingest.jt808.frame.FrameReader`), sub-packages put
  back together;
- registration 0x0100 → 0x8100 with an auth code if the phone number in the header is a device's
  ``jt808_phone`` (result 4, "no such terminal", and an ``unknown_terminal`` reject otherwise);
  the auth code is an HMAC of the phone number under the service's secret, so it survives a
  restart without being stored;
- authentication 0x0102 with that code binds the connection to the device; heartbeats 0x0002
  and the rest are answered 0x8001 at once;
- locations (0x0200, 0x0704) are handed to the pipeline — the same one as MQTT and HTTP, so
  filters, duplicates, tracking, notifications and the reject log are the same; in this
  process's thread or in pipeline processes (``backend.runtime.Jt808Service``) — in batches:
  the first location waits at most ``batch_ms`` for others (from any terminal) to share its
  transaction, as the MQTT ingest's batches do. Each location's 0x8001 goes out **after its
  batch committed**: a terminal that gets no answer sends the location again, so a crash or a
  database that is down loses nothing, and the duplicate is dropped on (device, ts).
- texts to the driver (0x8300) queued by the staff are sent to the terminals connected here,
  and their answers recorded (:mod:`gps_ingest.jt808_downlink`, through the database);
- a frame that cannot be read (bad check byte, escapes, lengths, garbage between frames) is
  handed to the pipeline too, which keeps it as a reject with its reason; the terminal gets
  0x8001 "message error" for it when its header could be read.

Back-pressure: a connection stops being read while ``max_inflight`` of its locations wait for
their commit, and every connection while the pipeline's queue is full. A connection silent for
``idle_timeout_s`` is closed (terminals send heartbeats every minute by default), as is one
that sent ``max_bad_frames`` unreadable frames in a row. A connection's failure, whatever it
is, ends only that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from gps_ingest.jt808.frame import BadFrame, Frame, Header, encode_frame
from gps_ingest.jt808.messages import (
    AUTHENTICATION,
    BATCH,
    DRIVER,
    FAILURE,
    GENERAL_RESPONSE,
    LOCATION,
    MESSAGE_ERROR,
    OK,
    PLATFORM_RESPONSE,
    REG_NO_TERMINAL,
    REG_OK,
    REGISTRATION,
    REGISTRATION_ANSWER,
    Driver,
    GeneralResponse,
    decode_authentication,
    decode_driver,
    decode_general_response,
    encode_general_response,
    encode_registration_answer,
)
from gps_ingest.jt808.reassembly import Reassembled
from gps_ingest.jt808_downlink import Downlink, TextStore
from gps_ingest.jt808_session import (
    GatewayConfig,
    LoopThread,
    Pending,
    Session,
    auth_code,
    seen,
)
from gps_ingest.pipeline import JT808, Message
from gps_ingest.records import UNAUTHENTICATED, UNKNOWN_TERMINAL

if TYPE_CHECKING:
    from gps_ingest.ports import TerminalInfo

log = logging.getLogger(__name__)

READ_BYTES = 4096
MAX_UNREAD_ANSWERS = 256 * 1024  # bytes of answers a terminal left unread: it is gone

Process = Callable[[Sequence[Message]], object]
#: stores who drives: (device id, the 0x0702 read, when it arrived); returns once committed
DriverCards = Callable[[str, "Driver", float], object]
Lookup = Callable[[str], "TerminalInfo | None"]


class Jt808Gateway(LoopThread):
    def __init__(self, process: Process, lookup: Lookup, config: GatewayConfig,
                 clock: Callable[[], float] = time.time,
                 driver_cards: DriverCards | None = None,
                 texts: TextStore | None = None) -> None:
        """``process`` runs a batch of messages through the pipeline and returns once committed
        (``IngestPipeline.process``, or the pipeline processes), raising if it was not;
        ``lookup`` gives the device of a phone number (it may query the database: it runs in a
        worker thread); ``texts``, the outbox of texts to the drivers (none: none are sent)."""
        self.process = process
        self.lookup = lookup
        self.driver_cards = driver_cards
        self.config = config
        self.clock = clock
        self.port: int | None = None
        self.stats = {"connections": 0, "frames": 0, "positions": 0, "rejected_frames": 0,
                      "batches": 0, "refused_connections": 0}
        self.last_batch_at: float | None = None
        self.failing: tuple[float, str] | None = None  # since when batches fail, and why
        self._sessions: set[Session] = set()
        self._by_device: dict[str, Session] = {}  # the authenticated connections
        # a Session is the downlink's Terminal (device_id, texts, next_serial)
        self.downlink = (Downlink(texts, config.text_poll_s, self._by_device,  # type: ignore[arg-type]
                                  self._send, clock)  # type: ignore[arg-type]
                         if texts is not None else None)
        self._poller: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Pending] | None = None
        self._full: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="jt808-pipeline")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- running ---------------------------------------------------------------------------------

    async def start(self) -> int:
        """Bind and begin accepting; the port bound."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=2 * self.config.batch_max)
        self._full = asyncio.Event()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, self.config.host,
                                                  self.config.port, limit=READ_BYTES * 4,
                                                  backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._batcher = asyncio.create_task(self._batches())
        self._sweeper = asyncio.create_task(self._sweep_idle())
        if self.downlink is not None:
            self._poller = asyncio.create_task(self.downlink.run())
        return self.port

    async def close(self) -> None:
        """Stop accepting, end every connection, let the batch in hand commit."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._poller is not None:
            self._poller.cancel()
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        await asyncio.to_thread(self._executor.shutdown, True)  # the batch in hand commits
        while self._queue is not None and not self._queue.empty():  # never to be committed
            self._queue.get_nowait().future.cancel()
        if self._stopped is not None:
            self._stopped.set()

    def probe(self, timeout_s: float = 5.0) -> dict | None:
        """From another thread: the gateway's state, read on its event loop (so an answer also
        says the loop is alive), or None if the loop did not answer within ``timeout_s``."""
        if self._loop is None:
            return None

        async def read() -> dict:
            return {"connections": len(self._sessions), "authenticated": len(self._by_device),
                    "last_batch_at": self.last_batch_at, "failing": self.failing,
                    **self.stats}

        try:
            return asyncio.run_coroutine_threadsafe(read(), self._loop).result(timeout_s)
        except Exception:  # noqa: BLE001 - a loop that is gone or hangs: no answer
            return None

    @property
    def connections(self) -> int:
        return len(self._sessions)

    # -- the batches -------------------------------------------------------------------------------

    async def _submit(self, message: Message) -> asyncio.Future[None]:
        assert self._queue is not None and self._full is not None and self._loop is not None
        pending = Pending(message, self._loop.create_future())
        pending.future.add_done_callback(seen)  # a failed batch's error is logged once, there
        await self._queue.put(pending)  # waits while the queue is full: back-pressure
        if self._queue.qsize() >= self.config.batch_max:
            self._full.set()
        return pending.future

    async def _batches(self) -> None:
        assert self._queue is not None and self._full is not None and self._loop is not None
        queue, full = self._queue, self._full
        while True:
            first = await queue.get()
            if queue.qsize() < self.config.batch_max - 1:
                full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(full.wait(), self.config.batch_ms / 1000)
            batch = [first]
            while len(batch) < self.config.batch_max and not queue.empty():
                batch.append(queue.get_nowait())
            messages = [p.message for p in batch]
            try:
                await self._loop.run_in_executor(self._executor, self.process, messages)
            except Exception as exc:  # the database is down: nothing is answered, all is resent
                log.error("a batch of %d JT/T 808 messages failed: %s", len(batch), exc)
                if self.failing is None:
                    self.failing = (self.clock(), str(exc))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.stats["batches"] += 1
            self.last_batch_at, self.failing = self.clock(), None
            for p in batch:
                if not p.future.done():
                    p.future.set_result(None)

    # -- a connection --------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        host, port = (writer.get_extra_info("peername") or ("?", "?"))[:2]
        peer = f"{host}:{port}"
        if len(self._sessions) >= self.config.max_connections:
            self.stats["refused_connections"] += 1
            log.warning("JT/T 808: %s refused, %d connections open", peer, len(self._sessions))
            writer.close()
            return
        session = Session(writer, peer)
        self._sessions.add(session)
        self.stats["connections"] += 1
        try:
            while True:
                session.last_read = self._loop.time()  # type: ignore[union-attr]
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                for content, frame in session.frames.feed(data):
                    await self._on_frame(session, content, frame)
                if session.bad_in_a_row > self.config.max_bad_frames:
                    log.warning("JT/T 808: %s sent %d unreadable frames in a row, closed", peer,
                                session.bad_in_a_row)
                    break
            for content, frame in session.frames.close():
                await self._on_frame(session, content, frame)
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug for this connection's input ends this connection only
            log.exception("JT/T 808: %s (%s) failed", peer, session.phone)
        finally:
            self._sessions.discard(session)
            writer.close()
            if self.downlink is not None:
                await self.downlink.on_close(session)
            elif self._by_device.get(session.device_id or "") is session:
                del self._by_device[session.device_id]  # type: ignore[arg-type]

    async def _sweep_idle(self) -> None:
        """Close the connections silent for longer than the idle timeout (one timer for all,
        rather than one per read)."""
        assert self._loop is not None
        idle = self.config.idle_timeout_s
        while True:
            await asyncio.sleep(min(5.0, idle / 4))
            now = self._loop.time()
            for session in list(self._sessions):
                if now - session.last_read > idle and not session.writer.is_closing():
                    log.info("JT/T 808: %s (%s) idle for %gs, closed", session.peer,
                             session.phone, idle)
                    session.writer.close()

    async def _on_frame(self, session: Session, content: bytes,
                        frame: Frame | BadFrame) -> None:
        self.stats["frames"] += 1
        if isinstance(frame, BadFrame):
            session.bad_in_a_row += 1
            self.stats["rejected_frames"] += 1
            header = frame.header
            await self._to_pipeline(session, content, header, [header.serial] if header else [],
                                    bad=True)
            return
        session.bad_in_a_row = 0
        serials: list[int] = [frame.header.serial]
        if frame.header.packages:
            whole = session.packages.add(frame)
            if isinstance(whole, str):
                self._answer(session, frame.header, [frame.header.serial], MESSAGE_ERROR)
                return
            if whole is None:
                return  # its answer goes out with the whole message's
            assert isinstance(whole, Reassembled)
            frame, serials = whole.frame, list(whole.serials)
            h = frame.header
            content = encode_frame(h.message_id, h.phone, h.serial, frame.body, h.version)[1:-1]
        header = frame.header
        mid = header.message_id
        if mid in (LOCATION, BATCH):
            await self._to_pipeline(session, content, header, serials)
        elif mid == REGISTRATION:
            await self._register(session, content, header)
        elif mid == AUTHENTICATION:
            await self._authenticate(session, content, header, frame.body)
        elif mid == GENERAL_RESPONSE:  # the terminal's answer to one of ours (a text)
            response = decode_general_response(frame.body)
            if (self.downlink is not None and isinstance(response, GeneralResponse)
                    and header.phone == session.phone):
                await self.downlink.on_response(session, response)
        elif mid == DRIVER:
            await self._driver_card(session, content, header, frame.body, serials)
        else:
            self._answer(session, header, serials, OK)  # heartbeat, deregistration, others

    async def _register(self, session: Session, content: bytes, header: Header) -> None:
        terminal = await asyncio.to_thread(self.lookup, header.phone)
        if terminal is None:
            self._write(session, header, REGISTRATION_ANSWER,
                        encode_registration_answer(header.serial, REG_NO_TERMINAL))
            await self._refuse(session, content, header, UNKNOWN_TERMINAL,
                               f"registration from {header.phone}: no device has it as "
                               "jt808_phone")
            return
        code = auth_code(self.config.secret, header.phone)
        self._write(session, header, REGISTRATION_ANSWER,
                    encode_registration_answer(header.serial, REG_OK, code))

    async def _authenticate(self, session: Session, content: bytes, header: Header,
                            body: bytes) -> None:
        terminal = await asyncio.to_thread(self.lookup, header.phone)
        code = decode_authentication(body, header.version)
        if terminal is None:
            self._answer(session, header, [header.serial], FAILURE)
            await self._refuse(session, content, header, UNKNOWN_TERMINAL,
                               f"authentication from {header.phone}: no device has it as "
                               "jt808_phone")
            return
        if not hmac.compare_digest(code.encode(), auth_code(self.config.secret,
                                                            header.phone).encode()):
            self._answer(session, header, [header.serial], FAILURE)
            await self._refuse(session, content, header, UNAUTHENTICATED,
                               f"authentication from {header.phone} with a wrong auth code "
                               "(register again: 0x0100)")
            return
        session.phone, session.device_id = header.phone, terminal.device_id
        session.accept_bad_check = session.frames.accept_bad_check = terminal.accept_bad_check
        session.version = header.version
        self._by_device[terminal.device_id] = session  # a newer connection of it takes over
        self._answer(session, header, [header.serial], OK)

    async def _driver_card(self, session: Session, content: bytes, header: Header, body: bytes,
                           serials: list[int]) -> None:
        """0x0702, a driver's card in or out: stored (who drives), then answered."""
        if header.phone != session.phone or session.device_id is None:
            self._answer(session, header, serials, FAILURE)
            await self._refuse(session, content, header, UNAUTHENTICATED,
                               f"{header.phone} sent 0x0702 before authenticating (0x0102)")
            return
        driver = decode_driver(body)
        if not isinstance(driver, Driver):
            log.warning("JT/T 808: %s: a driver card message that cannot be read: %s",
                        session.device_id, driver.detail)
            self._answer(session, header, serials, MESSAGE_ERROR)
            return
        if self.driver_cards is not None:
            assert self._loop is not None
            try:
                await self._loop.run_in_executor(self._executor, self.driver_cards,
                                                  session.device_id, driver, self.clock())
            except Exception as exc:  # not stored: not answered, the terminal sends it again
                log.error("JT/T 808: the driver card of %s was not stored: %s",
                          session.device_id, exc)
                return
        self._answer(session, header, serials, OK)

    async def _refuse(self, session: Session, content: bytes, header: Header, reason: str,
                      detail: str) -> None:
        """Into the reject log, through the pipeline; nothing waits for it."""
        await self._submit(Message(payload=content.hex().encode(), received_at=self.clock(),
                                   kind=JT808, topic=f"jt808:{header.phone}",
                                   params={"refused": reason, "detail": detail}))

    async def _to_pipeline(self, session: Session, content: bytes, header: Header | None,
                           serials: list[int], bad: bool = False) -> None:
        """A location (or an unreadable frame) through the pipeline; its answer after commit.

        An unreadable frame is the connection's: its device's, if it authenticated (the phone
        in a damaged header proves nothing)."""
        authenticated = bad or (header is not None and header.phone == session.phone)
        params = {"accept_bad_check": "1"} if session.accept_bad_check else None
        if header is not None and not authenticated:
            params = {"refused": UNAUTHENTICATED,
                      "detail": f"{header.phone} sent 0x{header.message_id:04x} before "
                                "authenticating (0x0102)"}
        phone = session.phone if bad or header is None else header.phone
        message = Message(payload=content.hex().encode(), received_at=self.clock(), kind=JT808,
                          topic=f"jt808:{phone or '-'}", params=params,
                          device_id=session.device_id if authenticated else None)
        if header is not None and header.message_id in (LOCATION, BATCH):
            self.stats["positions"] += 1
        future = await self._submit(message)
        if header is None:
            return  # nothing the terminal could be answered on
        # the answer is known now (the pipeline reads the frame as we did); it goes after commit
        if bad or header.encryption:
            code = MESSAGE_ERROR  # the frame itself is wrong: sending it again will not help
        elif not authenticated:
            code = FAILURE  # sent again after it authenticates
        else:
            code = OK  # stored, or refused for good (filters, no_fix…), in the reject log
        session.inflight += 1
        future.add_done_callback(lambda f: self._committed(session, header, serials, f, code))
        if session.inflight >= self.config.max_inflight:  # stop reading until one is answered
            session.room = self._loop.create_future()  # type: ignore[union-attr]
            await session.room

    def _committed(self, session: Session, header: Header, serials: list[int],
                   future: asyncio.Future[None], code: int) -> None:
        """A location's batch is done: answer it if it was committed."""
        session.inflight -= 1
        if session.room is not None and not session.room.done():
            session.room.set_result(None)
        if future.cancelled() or future.exception() is not None:
            return  # not committed: no answer, the terminal sends it again
        self._answer(session, header, serials, code)

    def _answer(self, session: Session, header: Header, serials: list[int], result: int) -> None:
        for serial in serials:
            self._write(session, header, PLATFORM_RESPONSE,
                        encode_general_response(serial, header.message_id, result))

    def _send(self, session: Session, message_id: int, body: Callable[[int | None], bytes],
              serial: int) -> bool:
        """A message of the platform's own (a text) to an authenticated terminal, in its header
        version; False if the connection is closing."""
        writer = session.writer
        if writer.is_closing() or session.phone is None:
            return False
        writer.write(encode_frame(message_id, session.phone, serial, body(session.version),
                                  session.version))
        return True

    def _write(self, session: Session, header: Header, message_id: int, body: bytes) -> None:
        writer = session.writer
        if writer.is_closing():
            return
        writer.write(encode_frame(message_id, header.phone, session.next_serial(), body,
                                  header.version))
        if writer.transport.get_write_buffer_size() > MAX_UNREAD_ANSWERS:
            log.warning("JT/T 808: %s does not read its answers, closed", session.peer)
            writer.close()
