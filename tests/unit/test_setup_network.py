"""A network failure of the setup command is one line, not a traceback: on the way to the sign-in
host (msal, through requests) and to Dataverse or Push365 (urllib), each kind of failure (a closed
port, a name that does not resolve, a timeout, a TLS handshake with a server that speaks no TLS, a
connection closed without an answer) is ``push365-setup: cannot reach <host>: <reason>`` on
stderr, exit status 1. Real sockets on the loopback interface, no mock."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dynamics.setup import __main__ as command
from dynamics.setup.transport import HttpRequest, NetworkError, UrllibTransport
from tests.conftest import free_port

ENVIRONMENT = "https://contoso.crm4.dynamics.com"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class Server:
    """A TCP server on the loopback interface that does ``handle`` with each connection."""

    def __init__(self, handle: Callable[[socket.socket], None], listen: bool = True) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = int(self.socket.getsockname()[1])
        self.handle = handle
        self.thread = threading.Thread(target=self._serve, daemon=True)
        if listen:
            self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                self.handle(connection)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def _plain_http_answer(connection: socket.socket) -> None:
    connection.recv(4096)
    connection.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def _close_at_once(connection: socket.socket) -> None:
    connection.recv(4096)


def test_a_closed_port_at_sign_in_is_one_line_naming_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()

    status = command.main(
        [
            "--environment",
            ENVIRONMENT,
            "--client-id",
            "00000000-0000-0000-0000-000000000001",
            "--login-host",
            f"127.0.0.1:{port}",
        ]
    )

    out, err = capsys.readouterr()
    assert status == 1
    assert _lines(err) == [f"push365-setup: cannot reach 127.0.0.1:{port}: connection refused"]
    assert out == ""


def test_a_sign_in_host_whose_name_does_not_resolve_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # .invalid never resolves (RFC 6761): what a mistyped or blocked host gives.
    status = command.main(
        ["--environment", ENVIRONMENT, "--client-id", "x", "--login-host", "login.push365.invalid"]
    )

    assert status == 1
    assert _lines(capsys.readouterr().err) == [
        "push365-setup: cannot reach login.push365.invalid: name not resolved (DNS)"
    ]


def test_the_default_sign_in_host_is_microsofts() -> None:
    args = command.parser().parse_args(["--environment", ENVIRONMENT])

    assert args.login_host == "login.microsoftonline.com"


@pytest.mark.parametrize(
    ("server", "scheme", "reason"),
    [
        (None, "http", "connection refused"),
        (_plain_http_answer, "https", "TLS handshake failed"),
        (_close_at_once, "http", "connection closed"),
        ("silent", "http", "timed out"),
    ],
)
def test_every_kind_of_failure_to_dataverse_or_push365_is_named(
    servers: list[Server], server: object, scheme: str, reason: str
) -> None:
    if server is None:
        port = free_port()
    elif server == "silent":  # accepted by the kernel, never answered
        servers.append(Server(lambda connection: None, listen=False))
        port = servers[-1].port
    else:
        assert callable(server)
        servers.append(Server(server))
        port = servers[-1].port
    transport = UrllibTransport(timeout_seconds=0.5)
    url = f"{scheme}://127.0.0.1:{port}/push365-register/rules?secret=s3cr3t"

    with pytest.raises(NetworkError) as failed:
        transport.send(HttpRequest("GET", url, {"X-Push365-Key": "p365.k"}))

    assert str(failed.value) == f"cannot reach 127.0.0.1:{port}: {reason}"
    assert failed.value.__cause__ is None
    assert failed.value.__suppress_context__


def test_rules_pull_from_a_closed_port_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    state = tmp_path / "push365-setup.json"
    state.write_text(json.dumps({"api_key": "p365.k", "base_url": f"http://127.0.0.1:{port}"}))

    status = command.main(["rules", "pull", str(tmp_path / "rules.yaml"), "--state", str(state)])

    assert status == 1
    assert _lines(capsys.readouterr().err) == [
        f"push365-setup: cannot reach 127.0.0.1:{port}: connection refused"
    ]
    assert not (tmp_path / "rules.yaml").exists()
