"""A local HTTPS server that speaks WSMan and PSRP well enough for pypsrp's real client.

The WinRM adapter's tests run the real pypsrp stack (``RunspacePool``, ``PowerShell``, ``WinRS``,
``WSMan``, its requests transport with TLS and Basic auth) against this stand-in, so a method
pypsrp lacks, a resource URI Windows would not find or a pipeline left open is a failing test,
not a double that agrees with the code.

What it answers follows the exchanges Windows records in pypsrp's own suite
(jborean93/pypsrp ``tests/tests_pypsrp/responses/``): ``test_psrp_multiple_invocations.yml``
(Create, Receive, Command, Signal Terminate, Delete), ``test_psrp_with_jea_configuration.yml``
(``http://schemas.microsoft.com/powershell/<name>``; script text refused in a NoLanguage
session with "The syntax is not supported by this runspace...") and
``test_winrs_operation_timeout.yml`` (a Receive with nothing yet is a ``w:TimedOut`` fault,
code 2150858793). A JEA configuration lists the commands it makes visible; anything else gets
PowerShell's CommandNotFoundException text. An unknown configuration gets the fault text Windows
gives ("Cannot find the ... session configuration in the WSMan: drive"); its numeric code is
not recorded anywhere we could read (docs/lab/winrm.md, item 2).
"""

from __future__ import annotations

import base64
import ssl
import struct
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pypsrp.messages import MessageType
from pypsrp.powershell import Fragment
from pypsrp.serializer import Serializer

from tests.certs import self_signed

PS_PREFIX = "http://schemas.microsoft.com/powershell/"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
ACTIONS = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
TERMINATE = ACTIONS + "signal/Terminate"
PS_CTRL_C = "powershell/signal/ctrl_c"
NO_LANGUAGE = ("The syntax is not supported by this runspace. This can occur if the runspace is "
               "in no-language mode.")
OPERATION_TIMEOUT_CODE = "2150858793"


@dataclass(frozen=True)
class Cmd:
    """One command of a pipeline as the server received it."""

    text: str  # a command name, or the script text when is_script
    is_script: bool
    parameters: dict[str, Any]


@dataclass
class Call:
    configuration: str
    commands: list[Cmd]
    command_id: str


@dataclass
class Reply:
    """What the host answers to one pipeline."""

    output: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # non-terminating error records
    warnings: list[str] = field(default_factory=list)
    failed: str | None = None  # a terminating error: the pipeline ends FAILED with it
    running_polls: int = 0  # Receives answered "still running" (w:TimedOut) before the end
    fault: str | None = None  # a WSMan fault (HTTP 500) for the first Receive instead


@dataclass
class _Pipeline:
    call: Call
    reply: Reply
    stopped: bool = False
    done: bool = False


@dataclass
class _Shell:
    id: str
    configuration: str
    partial: dict[int, bytes] = field(default_factory=dict)  # object id -> fragments so far
    pending: list[bytes] = field(default_factory=list)
    pipelines: dict[str, _Pipeline] = field(default_factory=dict)
    next_object: int = 1


class WsmanStandIn:
    """State and rules of the simulated WinRM service; see the module docstring.

    ``configurations`` maps a session configuration name to the commands it makes visible,
    ``None`` meaning a full-language endpoint (Microsoft.PowerShell). ``handler`` decides the
    reply of each pipeline the endpoint accepts.
    """

    def __init__(self, configurations: dict[str, set[str] | None],
                 handler: Callable[[Call], Reply], *, username: str, password: str) -> None:
        self.configurations = {k.lower(): v for k, v in configurations.items()}
        self.handler = handler
        self.username, self.password = username, password
        self.machine = "HV01"
        self.shells: dict[str, _Shell] = {}
        self.calls: list[Call] = []
        self.resource_uris: list[str] = []
        self.signals: list[tuple[str, str]] = []  # (command id, code)
        self.deleted: list[str] = []
        self.operation_timeouts: list[str] = []  # of the Receives of pipelines
        self.port = 0
        self.failures: list[str] = []  # requests the stand-in could not answer
        self._lock = threading.Lock()

    # -- what a test asserts -----------------------------------------------------------

    def open_pipelines(self) -> list[str]:
        """Command ids the client never closed (no Terminate signal, shell not deleted)."""
        return [cid for shell in self.shells.values() for cid in shell.pipelines]

    # -- one request ---------------------------------------------------------------------

    def answer(self, body: bytes) -> tuple[int, str]:
        with self._lock:
            envelope = ET.fromstring(body)
            header = envelope.find("s:Header", NS)
            assert header is not None
            action = _text(header, "wsa:Action")
            message_id = _text(header, "wsa:MessageID")
            resource_uri = _text(header, "wsman:ResourceURI")
            self.resource_uris.append(resource_uri)
            shell_id = ""
            selector = header.find("wsman:SelectorSet/wsman:Selector[@Name='ShellId']", NS)
            if selector is not None:
                shell_id = selector.text or ""
            payload = envelope.find("s:Body", NS)
            assert payload is not None
            verb = action.rsplit("/", 1)[-1]
            if verb == "Create":
                return self._create(message_id, resource_uri, payload)
            shell = self.shells.get(shell_id)
            if shell is None:
                return self._fault(message_id, "s:Sender", "w:InvalidSelectors", "2150858843",
                                   "The request for the Windows Remote Shell with ShellId "
                                   f"{shell_id} failed because the shell was not found on the "
                                   "server.")
            if verb == "Receive":
                timeout = _text(header, "wsman:OperationTimeout")
                return self._receive(message_id, shell, payload, timeout)
            if verb == "Command":
                return self._command(message_id, shell, payload)
            if verb == "Send":
                for stream in payload.findall("rsp:Send/rsp:Stream", NS):
                    self._take_fragments(shell, stream.get("CommandId", ""), stream.text or "")
                return 200, _envelope(ACTIONS + "SendResponse", message_id,
                                      "<rsp:SendResponse/>")
            if verb == "Signal":
                return self._signal(message_id, shell, payload)
            if verb == "Delete":
                self.deleted.append(shell.id)
                del self.shells[shell.id]
                return 200, _envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/"
                                      "DeleteResponse", message_id, "")
            raise AssertionError(f"the stand-in does not know the WSMan action {action}")

    def _create(self, message_id: str, resource_uri: str, body: ET.Element) -> tuple[int, str]:
        name = resource_uri[len(PS_PREFIX):] if resource_uri.startswith(PS_PREFIX) else ""
        if not name or "/" in name or name.lower() not in self.configurations:
            return self._fault(
                message_id, "s:Sender", "w:InvalidResourceURI", "2150858752",
                "The WS-Management service cannot process the request. Cannot find the "
                f"{name or resource_uri} session configuration in the WSMan: drive on the "
                f"{self.machine} computer.")
        shell_el = body.find("rsp:Shell", NS)
        assert shell_el is not None
        shell = _Shell(shell_el.get("ShellId") or str(uuid.uuid4()).upper(), name.lower())
        creation = shell_el.find("pwsh:creationXml", NS)
        assert creation is not None and creation.text, "a PSRP Create carries creationXml"
        kinds = [kind for kind, _ in _messages(shell, creation.text)]
        assert kinds == [MessageType.SESSION_CAPABILITY, MessageType.INIT_RUNSPACEPOOL], kinds
        self.shells[shell.id] = shell
        rpid = shell.id
        shell.pending += [
            self._message(shell, MessageType.SESSION_CAPABILITY, rpid, None,
                          '<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version>'
                          '<Version N="PSVersion">2.0</Version>'
                          '<Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>'),
            self._message(shell, MessageType.RUNSPACEPOOL_STATE, rpid, None,
                          '<Obj RefId="0"><MS><I32 N="RunspaceState">2</I32></MS></Obj>'),
        ]
        created = (
            "<x:ResourceCreated><a:Address>https://127.0.0.1/wsman</a:Address>"
            f"<a:ReferenceParameters><w:ResourceURI>{escape(resource_uri)}</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell.id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell.id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri>"
            f"<rsp:Owner>{self.machine}\\{escape(self.username)}</rsp:Owner>"
            "<rsp:InputStreams>stdin pr</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout</rsp:OutputStreams><rsp:State>Connected</rsp:State>"
            "</rsp:Shell>"
        )
        return 200, _envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
                              message_id, created)

    def _command(self, message_id: str, shell: _Shell, body: ET.Element) -> tuple[int, str]:
        line = body.find("rsp:CommandLine", NS)
        assert line is not None
        command_id = line.get("CommandId") or str(uuid.uuid4()).upper()
        for argument in line.findall("rsp:Arguments", NS):
            self._take_fragments(shell, command_id, argument.text or "")
        return 200, _envelope(ACTIONS + "CommandResponse", message_id,
                              f"<rsp:CommandResponse><rsp:CommandId>{command_id}"
                              "</rsp:CommandId></rsp:CommandResponse>")

    def _take_fragments(self, shell: _Shell, command_id: str, data: str) -> None:
        for kind, xml in _messages(shell, data):
            if kind != MessageType.CREATE_PIPELINE:
                continue
            call = Call(shell.configuration, _commands(xml), command_id.upper())
            self.calls.append(call)
            shell.pipelines[call.command_id] = _Pipeline(call, self._decide(call))

    def _decide(self, call: Call) -> Reply:
        visible = self.configurations[call.configuration]
        if visible is not None:  # a JEA session: NoLanguage, the visible commands only
            for cmd in call.commands:
                if cmd.is_script:
                    return Reply(failed=NO_LANGUAGE)
                if cmd.text.lower() not in {v.lower() for v in visible}:
                    return Reply(failed=(
                        f"The term '{cmd.text}' is not recognized as the name of a cmdlet, "
                        "function, script file, or operable program. Check the spelling of the "
                        "name, or if a path was included, verify that the path is correct and "
                        "try again."))
        return self.handler(call)

    def _receive(self, message_id: str, shell: _Shell, body: ET.Element,
                 timeout: str) -> tuple[int, str]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = (desired.get("CommandId") or "").upper() if desired is not None else ""
        if not command_id:
            data, shell.pending = b"".join(shell.pending), []
            return 200, self._streams(message_id, data, None, done=False)
        self.operation_timeouts.append(timeout)
        pipeline = shell.pipelines[command_id]
        reply, rpid, pid = pipeline.reply, shell.id, command_id
        if pipeline.stopped or pipeline.done:
            raise AssertionError("Receive on a pipeline that already ended")
        if reply.fault is not None:
            fault, reply.fault = reply.fault, None
            return self._fault(message_id, "s:Receiver", "w:InternalError", "2150858843", fault)
        if reply.running_polls > 0:
            reply.running_polls -= 1
            return self._fault(message_id, "s:Receiver", "w:TimedOut", OPERATION_TIMEOUT_CODE,
                               "The WS-Management service cannot complete the operation within "
                               "the time specified in OperationTimeout.  ")
        parts = [self._message(shell, MessageType.ERROR_RECORD, rpid, pid, _error_record(e))
                 for e in reply.errors]
        parts += [self._message(shell, MessageType.WARNING_RECORD, rpid, pid,
                                _warning_record(w)) for w in reply.warnings]
        parts += [self._message(shell, MessageType.PIPELINE_OUTPUT, rpid, pid,
                                f"<S>{escape(o)}</S>") for o in reply.output]
        state = ('<Obj RefId="0"><MS><I32 N="PipelineState">4</I32></MS></Obj>'
                 if reply.failed is None else
                 '<Obj RefId="0"><MS><I32 N="PipelineState">5</I32>'
                 + _error_record(reply.failed, 'N="ExceptionAsErrorRecord" RefId="1"')
                 + "</MS></Obj>")
        parts.append(self._message(shell, MessageType.PIPELINE_STATE, rpid, pid, state))
        pipeline.done = True
        return 200, self._streams(message_id, b"".join(parts), command_id, done=True)

    def _signal(self, message_id: str, shell: _Shell, body: ET.Element) -> tuple[int, str]:
        signal = body.find("rsp:Signal", NS)
        assert signal is not None
        command_id = (signal.get("CommandId") or "").upper()
        code = _text(signal, "rsp:Code")
        self.signals.append((command_id, code))
        pipeline = shell.pipelines.get(command_id)
        if pipeline is None:
            return self._fault(message_id, "s:Sender", "w:InvalidParameter", "2150858843",
                               f"The command {command_id} was not found on the server.")
        if code == PS_CTRL_C:
            pipeline.stopped = True
        elif code == TERMINATE:
            del shell.pipelines[command_id]
        return 200, _envelope(ACTIONS + "SignalResponse", message_id, "<rsp:SignalResponse/>")

    # -- encoding ------------------------------------------------------------------------

    def _message(self, shell: _Shell, kind: int, rpid: str, pid: str | None, xml: str) -> bytes:
        data = struct.pack("<I", 1) + struct.pack("<I", kind)  # destination: client
        data += uuid.UUID(rpid).bytes_le + (uuid.UUID(pid) if pid else uuid.UUID(int=0)).bytes_le
        data += xml.encode("utf-8")
        shell.next_object += 1
        return Fragment(shell.next_object, 0, data, True, True).pack()

    def _streams(self, message_id: str, data: bytes, command_id: str | None,
                 *, done: bool) -> str:
        attr = f' CommandId="{command_id}"' if command_id else ""
        body = "<rsp:ReceiveResponse>"
        if data:
            body += (f'<rsp:Stream Name="stdout"{attr}>'
                     f"{base64.b64encode(data).decode()}</rsp:Stream>")
        if done:
            body += (f'<rsp:CommandState{attr} State="{ACTIONS}CommandState/Done"/>')
        body += "</rsp:ReceiveResponse>"
        return _envelope(ACTIONS + "ReceiveResponse", message_id, body)

    def _fault(self, message_id: str, code: str, subcode: str, wsman_code: str,
               text: str) -> tuple[int, str]:
        body = (
            f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}"
            f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(text)}'
            "</s:Text></s:Reason><s:Detail>"
            '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
            f'Code="{wsman_code}" Machine="{self.machine}"><f:Message>{escape(text)}'
            "</f:Message></f:WSManFault></s:Detail></s:Fault>"
        )
        return 500, _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", message_id,
                              body)


def _messages(shell: _Shell, data: str) -> list[tuple[int, bytes]]:
    """The PSRP messages (type, CLIXML) completed by these base64 fragments (MS-PSRP 2.2.4)."""
    done = []
    raw = base64.b64decode(data)
    while raw:
        fragment, raw = Fragment.unpack(raw)
        so_far = shell.partial.pop(fragment.object_id, b"") + fragment.data
        if not fragment.end:
            shell.partial[fragment.object_id] = so_far
            continue
        kind = struct.unpack("<I", so_far[4:8])[0]
        done.append((kind, so_far[40:].removeprefix(b"\xef\xbb\xbf")))
    return done


def _text(parent: ET.Element, path: str) -> str:
    element = parent.find(path, NS)
    return (element.text or "") if element is not None else ""


def _envelope(action: str, relates_to: str, body: str) -> str:
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
        'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )


def _error_record(message: str, attrs: str = 'RefId="0"') -> str:
    return (
        f'<Obj {attrs}><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T>'
        f"<T>System.Object</T></TN><ToString>{escape(message)}</ToString><MS>"
        '<S N="FullyQualifiedErrorId">HvbStandIn</S><I32 N="ErrorCategory_Category">0</I32>'
        '<B N="SerializeExtendedInfo">false</B></MS></Obj>'
    )


def _warning_record(message: str) -> str:
    return (
        '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.WarningRecord</T>'
        "<T>System.Management.Automation.InformationalRecord</T><T>System.Object</T></TN>"
        f'<ToString>{escape(message)}</ToString><MS><S N="InformationalRecord_Message">'
        f'{escape(message)}</S><B N="InformationalRecord_SerializeInvocationInfo">false</B>'
        "</MS></Obj>"
    )


def _commands(raw: bytes) -> list[Cmd]:
    """The commands of a CreatePipeline message (MS-PSRP 2.2.2.10), read from its CLIXML."""
    root = ET.fromstring(raw)
    serializer = Serializer()
    commands = []
    for obj in root.findall("./MS/Obj[@N='PowerShell']/MS/Obj[@N='Cmds']/LST/Obj"):
        cmd = obj.find("MS/S[@N='Cmd']")
        assert cmd is not None
        text = serializer.deserialize(f"<S>{escape(cmd.text or '')}</S>")
        is_script = (obj.findtext("MS/B[@N='IsScript']") or "").lower() == "true"
        params: dict[str, Any] = {}
        for arg in obj.findall("MS/Obj[@N='Args']/LST/Obj"):
            name = arg.findtext("MS/S[@N='N']")
            value = arg.find("MS/*[@N='V']")
            if value is None:
                continue
            value.attrib.pop("N", None)
            params[name or f"<positional {len(params)}>"] = serializer.deserialize(
                ET.tostring(value).decode())
        commands.append(Cmd(text, is_script, params))
    return commands


# -- the HTTPS listener --------------------------------------------------------------------




@contextmanager
def serving(standin: WsmanStandIn, folder: Path) -> Iterator[Path]:
    """Listen on 127.0.0.1 (HTTPS, Basic auth) until the block ends; yields the CA file."""
    cert_file, key_file = self_signed(folder, "hv01.standin.test", "winrm")
    expected = "Basic " + base64.b64encode(
        f"{standin.username}:{standin.password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.headers.get("Authorization") != expected:
                self._send(401, b"", {"WWW-Authenticate": 'Basic realm="WSMAN"'})
                return
            assert self.path == "/wsman", self.path
            try:
                status, text = standin.answer(body)
            except Exception as exc:  # kept for the test to report, not lost in a thread
                standin.failures.append(f"{type(exc).__name__}: {exc}")
                self._send(400, b"", {})
                return
            self._send(status, text.encode("utf-8"),
                       {"Content-Type": "application/soap+xml;charset=UTF-8"})

        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    standin.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield cert_file
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
