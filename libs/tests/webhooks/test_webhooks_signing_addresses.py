"""Webhook signatures (what a receiver verifies) and the address rules of callbacks (SSRF)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time

import pytest

from photosplat_libs.webhooks import (
    CallbackRefused,
    address_problem,
    new_secret,
    parse_callback_url,
    secret_of_token,
    signature_header,
    verify,
)

BODY = b'{"event":"job.done"}'


def test_the_signature_is_stripes_scheme_and_verifies() -> None:
    secret, t = new_secret(), int(time.time())
    header = signature_header(secret, BODY, t)
    # What any receiver can compute with the standard library alone.
    expected = hmac.new(secret.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"
    assert verify(secret, header, BODY)
    assert verify(secret, f"{header},v1=00", BODY)  # another scheme's value beside it is fine
    assert not verify(secret, header, BODY + b" ")
    assert not verify(new_secret(), header, BODY)
    assert not verify(secret, signature_header(secret, BODY, t - 301), BODY)  # a replay, too old
    assert not verify(secret, f"v1={expected}", BODY) and not verify(secret, "garbage", BODY)


def test_a_clients_secret_is_derived_from_its_token_and_reveals_nothing_of_it() -> None:
    token = "t" * 43
    assert secret_of_token(token) == secret_of_token(token) != secret_of_token("u" * 43)
    assert secret_of_token(token).startswith("whsec_") and token not in secret_of_token(token)
    assert new_secret() != new_secret()


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "private_address"),
        ("10.0.0.1", "private_address"),
        ("172.16.5.4", "private_address"),
        ("192.168.1.1", "private_address"),
        ("100.64.0.1", "private_address"),  # carrier-grade NAT
        ("::1", "private_address"),
        ("fd00::1", "private_address"),
        ("::ffff:10.0.0.1", "private_address"),  # IPv4-mapped
        ("169.254.169.254", "link_local_address"),
        ("fe80::1", "link_local_address"),
        ("0.0.0.0", "unspecified_address"),
        ("::", "unspecified_address"),
        ("224.0.0.251", "multicast_address"),
        ("ff02::1", "multicast_address"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_address_rules(address: str, rule: str | None) -> None:
    problem = address_problem(ipaddress.ip_address(address), allow_private=False)
    assert (problem.rule if problem else None) == rule
    allowed = address_problem(ipaddress.ip_address(address), allow_private=True)
    # An operator's permission covers private ranges, never link-local, multicast or unspecified.
    assert (allowed.rule if allowed else None) == (None if rule == "private_address" else rule)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://example.com/x", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
        ("http:///path", "host"),
        ("http://example.com:99999/", "format"),
        ("http://exa mple.com/", "format"),
        ("http://example.com/" + "a" * 2048, "length"),
    ],
)
def test_url_rules(url: str, rule: str) -> None:
    with pytest.raises(CallbackRefused) as refused:
        parse_callback_url(url)
    assert refused.value.rule == rule


def test_the_target_of_a_url() -> None:
    target = parse_callback_url("HTTPS://Hooks.Example.com/p?q=1")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert parse_callback_url("http://[2001:db8::1]:8080/").host == "2001:db8::1"
