"""Secret: a credential that never shows up in text, pickles or encoded events."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import traceback

import msgspec
import pytest

from apihub_runtime import Secret

VALUE = "PSxK3yRealLookingAppKey0123456789abc"


def test_str_and_repr_are_masked() -> None:
    secret = Secret(VALUE)
    assert VALUE not in str(secret)
    assert VALUE not in repr(secret)
    assert str(secret) == repr(secret) == "Secret('********')"


def test_f_strings_and_format_are_masked() -> None:
    secret = Secret(VALUE)
    assert VALUE not in f"{secret} {secret!r} {secret!s}"
    assert VALUE not in format(secret)
    assert VALUE not in "%s %r" % (secret, secret)  # noqa: UP031 - the old style is the point


def test_containers_show_the_mask() -> None:
    assert VALUE not in repr({"app_key": Secret(VALUE)})
    assert VALUE not in str([Secret(VALUE)])


def test_reveal_returns_the_value() -> None:
    assert Secret(VALUE).reveal() == VALUE


def test_logging_output_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("apihub.test.secret")
    secret = Secret(VALUE)
    with caplog.at_level(logging.INFO, logger="apihub.test.secret"):
        log.info("using key %s", secret)
        log.info("using key %r", secret)
        log.info("config %s", {"key": secret})
    assert len(caplog.records) == 3
    assert VALUE not in caplog.text
    assert "********" in caplog.text


def test_exception_messages_and_tracebacks_are_masked() -> None:
    secret = Secret(VALUE)
    with pytest.raises(ValueError, match="rejected key") as caught:
        raise ValueError(f"rejected key {secret}", secret)
    assert VALUE not in str(caught.value)
    assert VALUE not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cannot_be_pickled(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE), protocol=protocol)


def test_cannot_be_copied_through_reduce() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(Secret(VALUE))


def test_cannot_be_msgspec_encoded() -> None:
    with pytest.raises(TypeError):
        msgspec.json.encode({"app_key": Secret(VALUE)})
    with pytest.raises(TypeError):
        msgspec.msgpack.encode(Secret(VALUE))


def test_cannot_be_json_encoded() -> None:
    with pytest.raises(TypeError):
        json.dumps({"app_key": Secret(VALUE)})


def test_equal_values_are_equal_and_hash_alike() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert hash(Secret(VALUE)) == hash(Secret(VALUE))
    assert len({Secret(VALUE), Secret(VALUE)}) == 1


def test_different_values_are_not_equal() -> None:
    assert Secret(VALUE) != Secret(VALUE + "x")


def test_a_secret_never_equals_its_plain_value() -> None:
    assert Secret(VALUE) != VALUE
    assert VALUE != Secret(VALUE)  # noqa: SIM300 - the reflected comparison is the point


def test_fingerprint_is_stable_short_and_hides_the_value() -> None:
    first = Secret(VALUE).fingerprint()
    assert first == Secret(VALUE).fingerprint()
    assert len(first) == 10
    assert VALUE not in first
    assert first not in VALUE
    assert first != Secret(VALUE + "x").fingerprint()


def test_truthiness_follows_the_value() -> None:
    assert Secret(VALUE)
    assert not Secret("")


def test_no_instance_dict_to_leak_through() -> None:
    assert not hasattr(Secret(VALUE), "__dict__")
