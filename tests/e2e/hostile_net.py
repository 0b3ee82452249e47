"""
hostile_net.py - raw-socket helpers for the hostile-input suite
(test_hostile.py).  http.client would fix up or refuse most of what these
tests send (bad request lines, lying lengths, NUL bytes, pipelining), so
requests are built as bytes and written to a plain socket.  Python 3
standard library only.
"""
import socket
import threading
import time

from harness import T, read_raw_response

# How an exchange ended after the responses that were read.
EOF = "eof"          # the server closed the connection
OPEN = "open"        # still open when we stopped waiting
RESET = "reset"      # connection reset by the server


def build(method, target, headers=(), body=None, version="HTTP/1.1",
          host=True, length=True, close=True):
    """A request as bytes.  headers: (name, value) pairs (bytes or str),
    written as given, in order.  Content-Length is added for a body unless
    length is false; Connection: close unless close is false."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    line = b(method) + b" " + b(target)
    if version:
        line += b" " + b(version)
    out = [line]
    if host:
        out.append(b"Host: 127.0.0.1")
    for k, v in headers:
        out.append(b(k) + b": " + b(v))
    if body is not None and length:
        out.append(b"Content-Length: %d" % len(body))
    if close:
        out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n" + (body or b"")


def post_json(path, body, headers=(), content_type="application/json",
              close=True):
    hdrs = []
    if content_type is not None:
        hdrs.append(("Content-Type", content_type))
    hdrs.extend(headers)
    return build("POST", path, hdrs, body, close=close)


class Exchange:
    """What came back on one connection: the responses read (in order), how
    the connection ended, and any bytes left unread after them."""

    def __init__(self, responses, end, leftover, elapsed):
        self.responses = responses
        self.end = end
        self.leftover = leftover
        self.elapsed = elapsed

    @property
    def resp(self):
        return self.responses[0] if self.responses else None

    def __repr__(self):
        return "<Exchange %d response(s) %r end=%s leftover=%r after %.3fs>" % (
            len(self.responses), self.responses, self.end,
            self.leftover[:200], self.elapsed)


def _wait_end(sock, buf, timeout):
    """After the responses: wait up to timeout for the server to close."""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return EOF, buf
            buf += chunk
    except socket.timeout:
        return OPEN, buf
    except ConnectionResetError:
        return RESET, buf


def exchange(port, data, n=1, half_close=False, timeout=None,
             end_timeout=None, head=False):
    """Connect, send data in one write, optionally half-close (FIN), read up
    to n responses, then wait up to end_timeout (default: 0.2 s when the
    last response asked for Connection: close or nothing was read, else 0)
    to see whether the server closes.  Never raises for a closed or silent
    connection: that is what the Exchange records."""
    timeout = timeout or T(5)
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    responses = []
    buf = b""
    end = None
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        while len(responses) < n:
            try:
                r, buf = read_raw_response(sock, buf, head=head)
            except EOFError:
                end = EOF
                break
            except socket.timeout:
                end = OPEN
                break
            except ConnectionResetError:
                end = RESET
                break
            responses.append(r)
        if end is None:
            if end_timeout is None:
                closing = (not responses or (
                    responses[-1].header("Connection") or "").lower() == "close")
                end_timeout = T(1) if closing else 0.05
            end, buf = _wait_end(sock, buf, end_timeout)
    finally:
        sock.close()
    return Exchange(responses, end, buf, time.monotonic() - t0)


def send_and_close(port, data, pause=0.0):
    """Send data, wait pause seconds, close (a client that goes away)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=T(5))
    try:
        sock.sendall(data)
        if pause:
            time.sleep(pause)
    finally:
        sock.close()


class Trickler:
    """A slowloris client: writes prefix at once, then data one byte every
    interval seconds from
    a thread until the data runs out, the server closes the connection, or
    stop() is called.  closed_at is the time (monotonic) the server's close
    was seen, or None."""

    def __init__(self, port, data, interval=0.1, prefix=b""):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=T(5))
        if prefix:
            self.sock.sendall(prefix)  # sent at once, before the trickle
        self.data = data
        self.interval = interval
        self.sent = 0
        self.received = b""
        self.started = time.monotonic()
        self.closed_at = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _peek_closed(self):
        self.sock.setblocking(False)
        try:
            chunk = self.sock.recv(65536)
            if not chunk:
                return True
            self.received += chunk
            return False
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.sock.setblocking(True)
            self.sock.settimeout(T(5))

    def _run(self):
        while not self._stop.is_set():
            if self._peek_closed():
                self.closed_at = time.monotonic()
                return
            if self.sent < len(self.data):
                try:
                    self.sock.send(self.data[self.sent:self.sent + 1])
                    self.sent += 1
                except OSError:
                    self.closed_at = time.monotonic()
                    return
            self._stop.wait(self.interval)

    def wait_closed(self, timeout):
        self.thread.join(timeout)
        return self.closed_at

    def stop(self):
        self._stop.set()
        self.thread.join(T(5))
        try:
            self.sock.close()
        except OSError:
            pass
