"""Operator notification: a real command hook, e-mail through a local SMTP server, and a notifier that
fails without ever stopping a run."""

import email
import email.policy
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from daq.core.errors import ConfigError
from daq.core.records import Event, Outcome, RunEnd, RunResult, RunStatus, Samples
from daq.engine.notify import Notice, Notifier, NotifyConfig, load_notify, notify_from_dict
from daq.storage.reader import open_run
from tests.conftest import EXAMPLES, ROOT, kill_run, run_sim

PROTOCOL = EXAMPLES / "ccd_single_plating.toml"
SHORTS = {"current_density": "10 mA/cm^2"}  # the 99 % cell shorts above its CCD

HOOK = textwrap.dedent("""
    import json, os, sys
    notice = json.load(sys.stdin)
    env = {k: v for k, v in os.environ.items() if k.startswith("DAQ_")}
    with open(sys.argv[1], "a") as fh:
        fh.write(json.dumps({"env": env, "notice": notice}) + "\\n")
""")


@pytest.fixture
def hook(tmp_path):
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    out = tmp_path / "notices.jsonl"
    return [sys.executable, str(script), str(out)], out


def read_notices(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_config(tmp_path, text):
    path = tmp_path / "notify.toml"
    path.write_text(textwrap.dedent(text))
    return path


def toml_list(argv):
    return "[" + ", ".join(json.dumps(a) for a in argv) + "]"


# --- settings -------------------------------------------------------------------------------------
def test_full_settings(tmp_path, hook):
    cfg = load_notify(
        write_config(
            tmp_path,
            f"""
        [notify]
        on = ["stop", "short_circuit", "fault"]
        repeat_after = "10 min"
        [notify.command]
        argv = {toml_list(hook[0])}
        timeout = "5 s"
        [notify.email]
        host = "smtp.lab.example"
        port = 587
        starttls = true
        username = "rig"
        password_env = "RIG_SMTP_PASSWORD"
        from = "rig@lab.example"
        to = ["operator@lab.example", "pi@lab.example"]
        """,
        )
    )
    assert cfg.on == ("stop", "short_circuit", "fault") and cfg.repeat_after == 600.0
    assert cfg.command.timeout == 5.0 and cfg.command.argv == tuple(hook[0])
    assert cfg.email.port == 587 and cfg.email.starttls and cfg.email.to == ("operator@lab.example", "pi@lab.example")


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({}, "notify: missing [notify] table"),
        ({"notify": {}}, "give a [notify.command] and/or a [notify.email]"),
        ({"notify": {"command": {"argv": []}}}, "notify.command.argv"),
        ({"notify": {"command": {"argv": ["x"], "timeout": "-1 s"}}}, "notify.command.timeout"),
        ({"notify": {"command": {"argv": ["x"], "timeout": "5 kg"}}}, "notify.command.timeout"),
        ({"notify": {"command": ["x"], "on": ["everything"]}}, "notify.on = 'everything'"),
        ({"notify": {"command": ["x"], "colour": "red"}}, "notify.colour: unknown field"),
        ({"notify": {"email": {"host": "h", "from": "a@b", "to": ["c@d"], "port": 99999}}}, "notify.email.port"),
        ({"notify": {"email": {"host": "h", "from": "a@b"}}}, "notify.email.to"),
        (
            {"notify": {"email": {"host": "h", "from": "a@b", "to": "c@d", "ssl": True, "starttls": True}}},
            "starttls or ssl",
        ),
        (
            {"notify": {"email": {"host": "h", "from": "a@b", "to": "c@d", "password_env": "X"}}},
            "notify.email.username: missing",
        ),
        ({"notify": "yes"}, "notify = 'yes': must be a table"),
    ],
)
def test_bad_settings_name_the_field(doc, needle):
    with pytest.raises(ConfigError) as err:
        notify_from_dict(doc, "n.toml")
    assert needle in str(err.value) and str(err.value).startswith("n.toml: ")


def test_bad_notify_file_is_refused_before_the_run(tmp_path, capsys):
    from daq.cli import main

    bad = write_config(tmp_path, "[notify\n")
    out = tmp_path / "run.h5"
    assert main(["run", str(PROTOCOL), "--sim", "--out", str(out), "--notify", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and err.count("\n") == 1 and not out.exists()


# --- command hook ---------------------------------------------------------------------------------
def test_short_circuit_reaches_a_real_command_hook(tmp_path, hook):
    notifier = Notifier(NotifyConfig(command=notify_from_dict({"notify": {"command": hook[0]}}).command))
    result = run_sim(PROTOCOL, tmp_path / "run.h5", 99, SHORTS, subscribers=[notifier])
    assert result.outcome == "short_circuit"
    assert notifier.close() == []
    notices = read_notices(hook[1])
    assert [n["env"]["DAQ_NOTIFY_CATEGORY"] for n in notices] == ["short_circuit", "stop"]
    short, stop = notices
    assert short["env"]["DAQ_RUN_FILE"] == str(tmp_path / "run.h5") and short["env"]["DAQ_CELL_ID"] == "LPSCl-99-01"
    assert "short circuit at" in short["env"]["DAQ_NOTIFY_MESSAGE"]
    assert short["notice"]["event_data"]["capacity"] > 0 and short["notice"]["protocol"] == "CCD single plating"
    assert "SHORT CIRCUIT" in short["env"]["DAQ_NOTIFY_SUBJECT"]
    assert stop["env"]["DAQ_RUN_OUTCOME"] == "short_circuit"
    assert "run stopped: short circuit" in stop["notice"]["subject"]
    with open_run(result.path) as run:
        notified = run.events()
        notified = notified[notified.kind == "notified"]
        assert list(notified.message) == ["operator notified by command (short_circuit)"]


def test_daq_run_notify_end_to_end(tmp_path, hook):
    """The console command: the last notice (run stopped) is delivered before the process exits."""
    cfg = write_config(tmp_path, f"[notify]\ncommand = {toml_list(hook[0])}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "daq.cli",
            "run",
            str(PROTOCOL),
            "--sim",
            "--out",
            str(tmp_path / "run.h5"),
            "--set",
            "capacity=0.5 mAh/cm^2",
            "--notify",
            str(cfg),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (notice,) = read_notices(hook[1])
    assert notice["env"]["DAQ_NOTIFY_SUBJECT"] == "LPSCl-99-01: run completed"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            [sys.executable, "-c", "import sys; print('pager offline', file=sys.stderr); sys.exit(3)"],
            "exited with 3: pager offline",
        ),
        ([sys.executable, "-c", "import time; time.sleep(30)"], "did not finish within 0.5 s"),
        (["/nonexistent/pager"], "could not be started"),
    ],
)
def test_a_failing_hook_never_stops_the_run(tmp_path, argv, needle):
    config = notify_from_dict({"notify": {"command": {"argv": argv, "timeout": "0.5 s"}}})
    notifier = Notifier(config)
    t0 = time.monotonic()
    result = run_sim(PROTOCOL, tmp_path / "run.h5", 99, SHORTS, subscribers=[notifier])
    assert result.outcome == "short_circuit" and result.status == "completed"
    assert time.monotonic() - t0 < 20
    with open_run(result.path) as run:
        events = run.events()
    failed = events[events.kind == "notify_failed"]
    assert len(failed) == 1 and needle in failed.message.iloc[0] and "the run goes on" in failed.message.iloc[0]
    assert "listener_error" not in set(events.kind)
    leftovers = notifier.close()  # the run-end notice failed after the file was closed: reported here
    assert len(leftovers) == 1 and needle in leftovers[0]


def test_background_delivery_and_throttling(tmp_path, hook):
    config = notify_from_dict({"notify": {"command": hook[0], "on": ["interlock", "stop"], "repeat_after": "1 h"}})
    notifier = Notifier(config, {"cell_id": "C1"})
    for k in range(3):
        notifier(Event(10.0 * k, "interlock", 0, f"pressure low #{k}"))
    notifier(Event(40.0, "short_circuit", 0, "not switched on"))
    result = RunResult("x.h5", RunStatus.COMPLETED, Outcome.ABORTED, "operator", 50.0, 0, 0.0, 0)
    notifier(RunEnd(RunStatus.COMPLETED, Outcome.ABORTED, {}, result))
    notifier(Samples({"t": np.zeros(0)}))
    notifier(None)  # nonsense never raises
    assert notifier.close(timeout=30) == []
    notices = read_notices(hook[1])
    assert [n["env"]["DAQ_NOTIFY_CATEGORY"] for n in notices] == ["interlock", "stop"]
    assert notices[1]["env"]["DAQ_NOTIFY_SUBJECT"] == "C1: run stopped: aborted"
    notifier.reset_throttling()
    notifier(Event(99.0, "interlock", 0, "pressure low again"))
    notifier.close()
    assert "2 similar notice(s) suppressed" in read_notices(hook[1])[-1]["env"]["DAQ_NOTIFY_MESSAGE"]


# --- e-mail ---------------------------------------------------------------------------------------
class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    servers = []

    def start(**kwargs):
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        servers.append(controller)
        return inbox, controller.port

    yield start
    for controller in servers:
        controller.stop()


def email_config(port, **extra):
    return notify_from_dict(
        {
            "notify": {
                "email": {
                    "host": extra.pop("host", "127.0.0.1"),
                    "port": port,
                    "from": "rig@lab.example",
                    "to": ["operator@lab.example"],
                    "timeout": "5 s",
                    **extra,
                }
            }
        }
    )


def test_email_through_a_local_smtp_server(tmp_path, smtp_server):
    inbox, port = smtp_server()
    notifier = Notifier(email_config(port, subject_prefix="[rig A]"))
    run_sim(PROTOCOL, tmp_path / "run.h5", 99, SHORTS, subscribers=[notifier])
    assert notifier.close() == []
    subjects = [
        next(line for line in body.splitlines() if line.startswith("Subject:")) for _, _, body in inbox.messages
    ]
    assert len(subjects) == 2 and "[rig A] LPSCl-99-01: SHORT CIRCUIT at" in subjects[0]
    assert subjects[1] == "Subject: [rig A] LPSCl-99-01: run stopped: short circuit"
    sender, to, raw = inbox.messages[0]
    assert sender == "rig@lab.example" and to == ["operator@lab.example"]
    body = email.message_from_string(raw, policy=email.policy.default).get_content()
    assert "short circuit at" in body and f"run_file: {tmp_path / 'run.h5'}" in body


def test_email_with_login(smtp_server, monkeypatch):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"rig" and auth_data.password == b"s3cret"
        seen.append(ok)
        return AuthResult(success=ok, handled=False)

    inbox, port = smtp_server(authenticator=authenticator, auth_require_tls=False)
    monkeypatch.setenv("RIG_SMTP_PASSWORD", "s3cret")
    notifier = Notifier(email_config(port, username="rig", password_env="RIG_SMTP_PASSWORD", allow_plaintext_auth=True))
    assert notifier.deliver(Notice("fault", "test", "body")) == [("email", None)]
    assert seen == [True] and len(inbox.messages) == 1
    monkeypatch.setenv("RIG_SMTP_PASSWORD", "wrong")
    ((channel, error),) = notifier.deliver(Notice("fault", "test", "body"))
    assert channel == "email" and "SMTPAuthenticationError" in error
    monkeypatch.delenv("RIG_SMTP_PASSWORD")
    assert "RIG_SMTP_PASSWORD" in notifier.deliver(Notice("fault", "test", "body"))[0][1]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_email_with_starttls(tmp_path, smtp_server):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, port = smtp_server(tls_context=context, require_starttls=True)
    notifier = Notifier(email_config(port, starttls=True, ca_file=str(cert)))
    assert notifier.deliver(Notice("stop", "tls", "body")) == [("email", None)]
    assert len(inbox.messages) == 1
    plain = Notifier(email_config(port))  # the server insists on TLS: refused, reported, not raised
    assert "STARTTLS" in plain.deliver(Notice("stop", "plain", "body"))[0][1]


def test_unreachable_mail_server_is_an_event_not_a_crash(tmp_path):
    notifier = Notifier(email_config(free_port(), timeout="2 s"))
    result = run_sim(PROTOCOL, tmp_path / "run.h5", 99, SHORTS, subscribers=[notifier])
    assert result.outcome == "short_circuit"
    with open_run(result.path) as run:
        events = run.events()
    failed = events[events.kind == "notify_failed"]
    assert len(failed) == 1 and "ConnectionRefusedError" in failed.message.iloc[0]
    assert len(notifier.close()) == 1


# --- daq resume ------------------------------------------------------------------------------------
def test_refused_resume_notifies(tmp_path, hook, capsys):
    from daq.cli import main

    path = kill_run(tmp_path / "run.h5", "ccd_single_plating.toml", blocks=8)
    cfg = write_config(tmp_path, f"[notify]\ncommand = {toml_list(hook[0])}\n")
    code = main(["resume", str(path), "--sim", "--notify", str(cfg), "--set", "cell.simulation.start_shorted=true"])
    assert code == 2 and "impedance collapsed" in capsys.readouterr().err
    (notice,) = read_notices(hook[1])
    assert notice["env"]["DAQ_NOTIFY_CATEGORY"] == "refused"
    assert "impedance collapsed" in notice["env"]["DAQ_NOTIFY_MESSAGE"]
    assert os.path.basename(notice["env"]["DAQ_RUN_FILE"]) == "run.h5"


def test_login_over_an_unencrypted_link_needs_consent():
    email = {"host": "h", "from": "a@b", "to": "c@d", "username": "rig", "password_env": "PW"}
    with pytest.raises(ConfigError, match="notify.email.username = 'rig': logging in without starttls"):
        notify_from_dict({"notify": {"email": email}}, "n.toml")
    assert notify_from_dict({"notify": {"email": {**email, "starttls": True}}}).email.starttls
    assert notify_from_dict({"notify": {"email": {**email, "ssl": True}}}).email.ssl
    plain = notify_from_dict({"notify": {"email": {**email, "allow_plaintext_auth": True}}}).email
    assert plain.username == "rig" and not plain.starttls and not plain.ssl


def test_every_failed_notice_is_a_warning_on_stderr(tmp_path, capsys):
    argv = [sys.executable, "-c", "import sys; sys.exit(1)"]
    notifier = Notifier(notify_from_dict({"notify": {"command": {"argv": argv, "timeout": "5 s"}}}))
    result = run_sim(PROTOCOL, tmp_path / "run.h5", 99, SHORTS, subscribers=[notifier])
    assert result.outcome == "short_circuit"
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("daq: warning:")]
    # the short-circuit notice (also an event in the file) and the final stop notice (stderr only)
    assert len(warnings) == 2 and all("exited with 1" in w for w in warnings)
    assert "(short_circuit)" in warnings[0] and "(stop)" in warnings[1]
    with open_run(result.path) as run:
        events = run.events()
    failed = [json.loads(d)["category"] for d in events[events.kind == "notify_failed"].data]
    assert failed == ["short_circuit"]
