"""A TCP proxy on 127.0.0.1 between a client and an HTTP server, for fault tests.

The tests put it in front of a real server and then stop it (the server is "down": connections refused),
start it again on the same port (the server's state survived, since only the proxy went away), or make
it fail one chosen request at a chosen point:

- ``trip(pattern, at="body")``: the first request whose request line matches ``pattern`` has its head
  and half its body forwarded, then nothing more (``then="hold"``: the connection stays open, as when
  the client is killed mid-upload; ``then="drop"``: both sides are closed, as when a connection breaks;
  ``then="down"``: the proxy stops at that moment, as when the server dies, until ``start()``);
- ``trip(pattern, at="response")``: the request is forwarded whole, the server answers, and the answer
  is thrown away and both sides closed (the write happened; the client cannot know).

``tripped`` is set when the chosen point is reached. Only requests with a ``Content-Length`` (or none)
are followed; a connection using chunked requests is forwarded as it is.
"""

import re
import socket
import threading

__all__ = ["TCPProxy"]


class TCPProxy:
    """Forward 127.0.0.1:``port`` to 127.0.0.1:``target_port``.

    Parameters
    ----------
    target_port : int
        The server's port.
    port : int, optional
        The proxy's port (a free one when omitted); kept across ``stop()`` and ``start()``.
    """

    def __init__(self, target_port, port=None):
        self.target_port = target_port
        self.port = port or _free_port()
        self.tripped = threading.Event()
        self.requests = []  # request lines seen, in order
        self._trip = None
        self._listener = None
        self._sockets = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self):
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Listen (again) on the proxy's port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self):
        """Stop listening and close every open connection (the server looks down)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            _close(s)

    def trip(self, pattern, *, at="body", then="drop"):
        """Fail the next request whose request line matches the regex ``pattern`` (bytes or str)."""
        if at not in ("body", "response") or then not in ("hold", "drop", "down"):
            raise ValueError(f"at={at!r}, then={then!r}: expected at in body/response, then in hold/drop/down")
        if isinstance(pattern, str):
            pattern = pattern.encode()
        self.tripped.clear()
        self._trip = (re.compile(pattern), at, then)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------------------ internals
    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client), _close(server)
                    return
                self._sockets |= {client, server}
            state = {"swallow": False}
            threading.Thread(target=self._upstream, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, state), daemon=True).start()

    def _upstream(self, client, server, state):
        buffer, remaining = b"", 0  # remaining: body bytes of the current request still to forward
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if state.get("raw"):
                    server.sendall(data)
                    continue
                buffer += data
                while buffer:
                    if remaining:
                        part = buffer[:remaining]
                        server.sendall(part)
                        remaining -= len(part)
                        buffer = buffer[len(part):]
                        continue
                    head_end = buffer.find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    head, buffer = buffer[:head_end + 4], buffer[head_end + 4:]
                    line = head.split(b"\r\n", 1)[0]
                    self.requests.append(line)
                    if b"transfer-encoding: chunked" in head.lower():
                        state["raw"] = True
                        server.sendall(head + buffer)
                        buffer = b""
                        break
                    match = re.search(rb"content-length:\s*(\d+)", head.lower())
                    length = int(match.group(1)) if match else 0
                    trip = self._trip
                    server.sendall(head)
                    if trip is not None and trip[0].search(line):
                        self._trip = None
                        if trip[1] == "body":  # half the body, then nothing
                            half = length // 2
                            while len(buffer) < half:
                                more = client.recv(65536)
                                if not more:
                                    break
                                buffer += more
                            server.sendall(buffer[:half])
                            if trip[2] == "down":
                                self.stop()
                            self.tripped.set()
                            if trip[2] == "hold":
                                while client.recv(65536):  # until the client goes away
                                    pass
                            return
                        state["swallow"] = trip[2]
                    remaining = length
        except OSError:
            pass
        finally:
            _close(client), _close(server)

    def _downstream(self, server, client, state):
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                while state["swallow"] and re.match(rb"HTTP/1\.\d 1\d\d ", data) and b"\r\n\r\n" in data:
                    end = data.index(b"\r\n\r\n") + 4  # "100 Continue": not the answer yet, pass it on
                    client.sendall(data[:end])
                    data = data[end:]
                if not data:
                    continue
                if state["swallow"]:  # the server answered: throw the answer away
                    if state["swallow"] == "down":
                        self.stop()
                    self.tripped.set()
                    if state["swallow"] == "hold":
                        continue
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client), _close(server)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
