"""
The process a L{pypid.sandbox.readme_sandbox.ReadmeSandbox} renders in:
C{python -m pypid.sandbox.readme_child}.

It reads requests on its standard input and writes answers on the standard
output it had at start (file descriptor 1 is then pointed at standard
error, so that nothing a renderer prints can corrupt an answer). Each
message is a frame: four bytes of length (big-endian) and that many bytes
of UTF-8 JSON. A request is C{{"text": ..., "type": ...}}; an answer is the
fields of a L{pypid.core.dists.readme.RenderedDescription}. It says
C{{"ready": true}} once it can take requests, and again once it has
imported a markup's renderer at the daemon's C{{"warm": "text/markdown"}}
(or C{"text/x-rst"}), sent before the first description of that markup:
a render's budget is spent rendering, and a child imports only the
renderers it is given (L{pypid.core.dists.readme.warm_up}).

It runs at a lower priority than the daemon (C{nice}) and with an address
space bound (L{MEMORY_LIMIT}): a render that exhausts it answers the plain
text, or the process dies and the sandbox starts another. It exits when its
standard input closes (the daemon stopped or died).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from contextlib import suppress
from typing import BinaryIO

#: The address space of a child (bytes): the interpreter and the renderers
#: take 40 MB once warmed up (VmSize), and rendering 63 kB of Markdown that
#: froze a renderer peaks at 43 MB; what needs a gigabyte is no README.
MEMORY_LIMIT = 1024 * 1024 * 1024

#: How much lower a child's priority is than the daemon's.
NICENESS = 10

_LENGTH = struct.Struct(">I")


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's body, or L{None} at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    return body if len(body) == length else None


def frame(body: bytes) -> bytes:
    """C{body} as a frame."""
    return _LENGTH.pack(len(body)) + body


def encode(value: object) -> bytes:
    """JSON as a frame's body (lone surrogates of a decoded file kept)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def decode(body: bytes) -> object:
    """A frame's body as JSON."""
    return json.loads(body.decode("utf-8", "surrogatepass"))


def _confine() -> None:
    """Lower the priority, bound the memory, ignore the terminal's Ctrl-C."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with suppress(OSError):
        os.nice(NICENESS)
    with suppress(OSError, ValueError):
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main() -> None:
    """Serve requests until standard input closes."""
    _confine()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    from pypid.core.dists.readme import render_description, warm_up

    answers.write(frame(encode({"ready": True})))
    answers.flush()
    while True:
        body = read_frame(requests)
        if body is None:
            return
        answer: dict[str, object]
        try:
            request = decode(body)
            assert isinstance(request, dict)
            if "warm" in request:
                warm_up(str(request["warm"]))
                answer = {"ready": True}
            else:
                rendered = render_description(request.get("text"), request.get("type"))
                answer = {"html": rendered.html, "renderer": rendered.renderer,
                          "fell_back": rendered.fell_back, "reason": rendered.reason}
        except MemoryError:
            answer = {"error": "the description needs more memory than a render may take"}
        answers.write(frame(encode(answer)))
        answers.flush()


if __name__ == "__main__":
    main()
