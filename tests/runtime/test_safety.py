"""Pure checks: SSRF policy, redaction, output and input bounds, step registry."""

from __future__ import annotations

import json
import logging

import pytest

from services.contract import MAX_INPUT_BYTES, MAX_OUTPUT_BYTES
from services.core.inputs import InputError, check_input, parse_input
from services.runtime.limits import bound_output, json_safe
from services.runtime.netguard import NetworkPolicyError, check_url
from services.runtime.redaction import REDACTED, Redactor, redacting_logs
from services.runtime.steps.registry import StepRegistry, UnknownStepType


def resolver(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://169.254.10.1/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::169.254.169.254]/",  # NAT64 (IPv6-only clusters reach IPv4 through it)
        "http://[2002:a9fe:a9fe::1]/",  # 6to4
        "http://[::169.254.169.254]/",  # IPv4-compatible
    ],
)
def test_link_local_and_metadata_are_always_refused(url: str) -> None:
    with pytest.raises(NetworkPolicyError):
        check_url(url, deny_private=False, resolve=resolver("93.184.216.34"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "//nohost"])
def test_only_http_schemes(url: str) -> None:
    with pytest.raises(NetworkPolicyError):
        check_url(url, deny_private=False, resolve=resolver("93.184.216.34"))


def test_every_resolved_address_is_checked() -> None:
    with pytest.raises(NetworkPolicyError, match="169.254.169.254"):
        check_url("http://sneaky.example/", False, resolver("93.184.216.34", "169.254.169.254"))
    check_url("http://fine.example/", False, resolver("93.184.216.34"))


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "fc00::1", "::1", "64:ff9b::10.0.0.1", "2002:7f00:1::", "::7f00:1"],
)
def test_private_ranges_only_when_denied(address: str) -> None:
    check_url("http://internal.example/", False, resolver(address))
    with pytest.raises(NetworkPolicyError, match="private"):
        check_url("http://internal.example/", True, resolver(address))


def test_unresolvable_host_is_a_clear_error() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(NetworkPolicyError, match="cannot resolve nowhere.invalid"):
        check_url("https://nowhere.invalid/x?key=secret", False, fail)


def test_redactor_covers_encoded_forms_and_nested_data() -> None:
    secret = 's3cr3t/value+"x"'
    redactor = Redactor([secret])
    data = {
        "raw": f"token {secret}",
        "url": "https://h/?k=s3cr3t%2Fvalue%2B%22x%22",
        "json": json.dumps({"a": secret}),
        secret: [secret],
    }
    assert secret not in json.dumps(redactor.value(data))
    assert "s3cr3t" not in json.dumps(redactor.value(data))
    assert REDACTED in redactor.text(secret)
    assert Redactor([]).value(data) == data


def test_redacting_logs_rewrites_message_extras_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("services.runtime.test")
    with caplog.at_level(logging.INFO), redacting_logs(Redactor(["hunter2"])):
        logger.info("password is %s", "hunter2", extra={"detail": {"p": "hunter2"}})
        try:
            raise ValueError("bad hunter2")
        except ValueError:
            logger.exception("boom")
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "hunter2" not in text
    assert "[redacted]" in text


def test_output_bounds() -> None:
    small = {"a": "b"}
    assert bound_output(small) == small
    big = {"data": "x" * (MAX_OUTPUT_BYTES + 10)}
    bounded = bound_output(big)
    assert bounded["truncated"] is True and bounded["size_bytes"] > MAX_OUTPUT_BYTES
    assert len(json.dumps(bounded)) < MAX_OUTPUT_BYTES


def test_json_safe_drops_nul_and_non_json() -> None:
    assert json_safe({"a\x00": ["x\x00", (1, 2), float("nan")], 1: object}) == {
        "a\ufffd": ["x\ufffd", [1, 2], "nan"], "1": "<class 'object'>"
    }


def test_input_bounds() -> None:
    assert parse_input('{"a": 1}', "WORKFLOW_INPUT") == {"a": 1}
    with pytest.raises(InputError, match="WORKFLOW_INPUT: is .* bytes; the limit is 262144"):
        parse_input(json.dumps({"a": "x" * MAX_INPUT_BYTES}), "WORKFLOW_INPUT")
    with pytest.raises(InputError, match="not valid JSON"):
        parse_input("{nope", "WORKFLOW_INPUT")
    with pytest.raises(InputError, match="must be a JSON object"):
        check_input([1], "input")


def test_input_size_is_measured_in_utf8_not_in_ascii_escapes() -> None:
    """100 KB of non-ASCII text is 100 KB of input, wherever it is checked (CLI or runner)."""
    text = "é" * 50_000  # 100,000 bytes in UTF-8; 300,000 as \u00e9 escapes
    assert check_input({"t": text}) == {"t": text}
    assert parse_input(json.dumps({"t": text}, ensure_ascii=False)) == {"t": text}


class _Plugin:
    def run(self, params, context):
        return {"hello": params.get("name")}


class _EntryPoint:
    def __init__(self, target: object) -> None:
        self.target = target

    def load(self) -> object:
        return self.target


def test_registry_loads_builtins_lazily_and_plugins_from_entry_points() -> None:
    registry = StepRegistry(discover=lambda: {"greet": _EntryPoint(_Plugin), "fn": _EntryPoint(lambda p, c: 42)})
    assert registry.get("log").run({"message": "x"}, _context()) == "x"
    assert registry.get("greet").run({"name": "ada"}, _context()) == {"hello": "ada"}
    assert registry.get("fn").run({}, _context()) == 42
    with pytest.raises(UnknownStepType, match="unknown step type 'nope'"):
        registry.get("nope")


def _context():
    from services.runtime.steps.base import StepContext

    return StepContext(execution_id="e", step_id="s", workflow="w", data={})
