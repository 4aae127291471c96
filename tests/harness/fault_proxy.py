"""
A small TCP proxy for the tests, in front of a store (or any HTTP server),
that can be told to misbehave: pass bytes through, hold each request a
while (L{FaultProxy.slow}), answer every request C{500} with an S3 error
body (L{FaultProxy.failing}), or cut every connection (L{FaultProxy.cut}).

It runs in threads of the test process; each change of behaviour closes the
connections open through it, so that a client's kept-alive connection meets
the new behaviour at its next request, as it would meet a store that
changed. Only what a store does on the wire is imitated; the store behind it
is real.
"""

import select
import socket
import threading
import time

#: What a failing store answers (S3's own error document).
ERROR_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
              b"<Message>We encountered an internal error. Please try again.</Message></Error>")


class FaultProxy:
    """
    Listens on a free loopback port (L{url}) and forwards to C{target}
    (C{(host, port)}), behaving as told.

    @ivar counts: requests and connections seen by behaviour, for the
        test's figures.
    """

    def __init__(self, target):
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._mode = "pass"
        self._delay = 0.0
        self._open = set()
        self._closed = False
        self.counts = {"pass": 0, "slow": 0, "failing": 0, "cut": 0}
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    # -- what the test tells it ------------------------------------------------

    def passing(self):
        """Pass every byte through, as if nothing stood between."""
        self._set("pass")

    def slow(self, delay):
        """Hold every chunk a client sends for C{delay} seconds before passing it on."""
        self._set("slow", delay)

    def failing(self):
        """Answer every request C{500 InternalError}, as a store that fails does."""
        self._set("failing")

    def cut(self):
        """Close every connection at once, as a store that went away (or its network)."""
        self._set("cut")

    def close(self):
        """Stop listening and close every connection."""
        self._closed = True
        self._listener.close()
        self._drop_open()

    def _set(self, mode, delay=0.0):
        with self._lock:
            self._mode, self._delay = mode, delay
        self._drop_open()

    def _drop_open(self):
        with self._lock:
            opened, self._open = self._open, set()
        for sock in opened:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # -- the threads ---------------------------------------------------------------

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode, delay = self._mode, self._delay
                self.counts[mode] += 1
            if mode == "cut":
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client, mode, delay),
                             name="fault-proxy-conn", daemon=True).start()

    def _serve(self, client, mode, delay):
        with self._lock:
            self._open.add(client)
        try:
            if mode == "failing":
                self._fail(client)
            else:
                self._pipe(client, delay)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(client)
            client.close()

    def _fail(self, client):
        """Answer each request on the connection 500 (its body read and dropped)."""
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            while len(buffered) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            buffered = buffered[length:]
            client.sendall(b"HTTP/1.1 500 Internal Server Error\r\n"
                           b"Content-Type: application/xml\r\n"
                           b"Content-Length: " + str(len(ERROR_BODY)).encode() + b"\r\n\r\n"
                           + ERROR_BODY)

    def _pipe(self, client, delay):
        """Copy bytes both ways until either side closes; hold the client's by C{delay}."""
        upstream = socket.create_connection(self.target, timeout=10)
        upstream.settimeout(None)
        with self._lock:
            self._open.add(upstream)
        try:
            pair = {client: upstream, upstream: client}
            while True:
                readable, _, _ = select.select(list(pair), [], [], 60)
                if not readable:
                    continue
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and delay:
                        time.sleep(delay)
                    pair[sock].sendall(data)
        finally:
            with self._lock:
                self._open.discard(upstream)
            upstream.close()
