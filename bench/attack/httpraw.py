"""Raw HTTP/1.1 over sockets to 127.0.0.1 only (stdlib). Request targets are sent byte for
byte as given (no normalisation), which is the point of the attack runner."""
import select
import socket
import time

HOST = "127.0.0.1"  # every target address; never anything else


class Closed(Exception):
    """The peer closed the connection (or reset it) before a whole response arrived."""


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def readable(sock, timeout=0.0):
    """poll(2), not select(2): fine with descriptors above 1024."""
    p = select.poll()
    p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(p.poll(int(timeout * 1000)))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        try:
            d = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(f"reset: {e}") from e
        if not d:
            raise Closed("closed by peer")
        self.buf += d

    def line(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("response line too long")
            self._fill()
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def take(self, n, keep):
        got, parts = 0, []
        while got < n:
            if not self.buf:
                self._fill()
            piece = self.buf[: n - got]
            self.buf = self.buf[len(piece):]
            got += len(piece)
            if keep:
                parts.append(piece)
        return got, b"".join(parts)

    def to_close(self, keep, cap):
        got, parts = len(self.buf), [self.buf] if keep else []
        self.buf = b""
        while True:
            try:
                d = self.sock.recv(262144)
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                return got, b"".join(parts)
            got += len(d)
            if keep and got <= cap:
                parts.append(d)


class Response:
    __slots__ = ("status", "headers", "body", "length", "interim", "close")

    def __repr__(self):
        return f"<{self.status} {self.length}B interim={self.interim} close={self.close}>"


def read_head(reader):
    line = reader.line()
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP status line: {line[:80]!r}")
    status = int(parts[1])
    headers = {}
    while True:
        h = reader.line()
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def read_response(reader, method="GET", keep_body=False, cap=1 << 20, stop_at_interim=False):
    """Reads one response (skipping 1xx unless stop_at_interim); the body is counted and kept
    only when keep_body (up to cap bytes)."""
    interim = []
    while True:
        status, headers = read_head(reader)
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            if stop_at_interim:
                r = Response()
                r.status, r.headers, r.body, r.length, r.interim, r.close = status, headers, b"", 0, interim, False
                return r
            continue
        break
    r = Response()
    r.status, r.headers, r.interim = status, headers, interim
    r.close = headers.get("connection", "").lower() == "close"
    body = b""
    if method == "HEAD" or status in (204, 304):
        n = 0
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        n, parts = 0, []
        while True:
            size = int(reader.line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.line() not in (b"\r\n", b"\n"):
                    pass
                break
            got, piece = reader.take(size, keep_body and n < cap)
            n += got
            if keep_body:
                parts.append(piece)
            reader.line()
        body = b"".join(parts)
    elif "content-length" in headers:
        n, body = reader.take(int(headers["content-length"]), keep_body)
    else:
        n, body = reader.to_close(keep_body, cap)
        r.close = True
    r.body, r.length = body[:cap], n
    return r


def send_streaming(sock, chunks, rate_bps=None, deadline=None):
    """Sends body chunks until done, until the server answers early (the socket turns
    readable), the peer resets, or the deadline passes. Returns (bytes_sent, why) with
    why in "done", "answered", "reset", "deadline"."""
    sent, start = 0, time.monotonic()
    for c in chunks:
        if readable(sock):
            return sent, "answered"
        if deadline is not None and time.monotonic() > deadline:
            return sent, "deadline"
        try:
            sock.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            return sent, "reset"
        except socket.timeout:
            return sent, "answered" if readable(sock) else "deadline"
        sent += len(c)
        if rate_bps:
            ahead = start + sent / rate_bps - time.monotonic()
            if ahead > 0:
                time.sleep(min(ahead, 1.0))
    return sent, "done"


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]
