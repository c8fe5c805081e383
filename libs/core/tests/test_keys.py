"""Stream and key names under one namespace."""

from __future__ import annotations

import pytest

from apihub_core import Keys


def test_default_namespace_names() -> None:
    keys = Keys()
    assert keys.namespace == "apihub"
    assert keys.requests == "apihub:requests"
    assert keys.responses == "apihub:responses"
    assert keys.dead_letter == "apihub:dead-letter"
    assert keys.reply_prefix == "apihub:reply:"
    assert keys.reply("client-42") == "apihub:reply:client-42"
    assert keys.order_sent("r-1") == "apihub:order-sent:r-1"


def test_every_name_carries_the_namespace() -> None:
    keys = Keys("t1234abcd")
    names = [
        keys.requests,
        keys.responses,
        keys.dead_letter,
        keys.reply("c"),
        keys.order_sent("r"),
    ]
    assert all(name.startswith("t1234abcd:") for name in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("namespace", ["", " ", "has space", "tab\there", "new\nline"])
def test_invalid_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        Keys(namespace)


def test_keys_are_frozen() -> None:
    keys = Keys("a")
    with pytest.raises(AttributeError):
        keys.namespace = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "client_id", ["a", "my-client-42", "under_score", "dot.ted", "0123456789abcdef", "x" * 128]
)
def test_is_reply_stream_accepts_well_formed_reply_streams(client_id: str) -> None:
    keys = Keys("ns")
    assert keys.is_reply_stream(keys.reply(client_id))


@pytest.mark.parametrize(
    "key",
    [
        "ns:reply:",
        "ns:reply:" + "x" * 129,
        "ns:reply:a b",
        "ns:reply:a:b",
        "ns:reply:a/b",
        "ns:reply:a*",
        "other:reply:abc",
        "ns:requests",
        "ns:responses",
        "nsx:reply:abc",
        "reply:abc",
        "",
    ],
)
def test_is_reply_stream_refuses_anything_else(key: str) -> None:
    assert not Keys("ns").is_reply_stream(key)
