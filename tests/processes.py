"""Server processes on 127.0.0.1, shared by the tests and ``bench/run.py``.

Standard library only, so that the bench can import it without pytest.
"""

import socket
import time

HOST = "127.0.0.1"
TIMEOUT = 30  # seconds, for any one wait


class NotServing(AssertionError):
    """A server process exited or did not answer in time; the message says which, with its output."""


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=TIMEOUT):
    """Wait until ``predicate()`` is true, looking every 10 ms; ``NotServing`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise NotServing("timed out")
        time.sleep(0.01)


def wait_serving(popen, answers, output, timeout=TIMEOUT):
    """Wait until ``answers()`` is true (it may raise ``OSError`` meaning not yet) while ``popen`` runs.

    ``output()`` gives the process's output for the message of ``NotServing``,
    raised when the process exits or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise NotServing(f"server exited with {popen.returncode}: {output()}")
        try:
            if answers():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise NotServing(f"server did not answer within {timeout} s: {output()}")


def listening(port):
    """Whether something accepts TCP connections on ``port`` of 127.0.0.1."""
    socket.create_connection((HOST, port), timeout=1).close()
    return True
