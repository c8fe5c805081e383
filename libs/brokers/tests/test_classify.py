"""Every documented KIS/Kiwoom error code and the sample error bodies, through the classifiers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from apihub_brokers import (
    KIS_ERROR_CODES,
    KIWOOM_ERROR_CODES,
    classify_kis_response,
    classify_kiwoom_response,
)
from apihub_core import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)


def kis_body(code: str, message: str = "메시지") -> bytes:
    return json.dumps({"rt_cd": "1", "msg_cd": code, "msg1": message}).encode()


def kis_token_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "error_description": message}).encode()


def kiwoom_body(return_code: object, message: str) -> bytes:
    return json.dumps({"return_code": return_code, "return_msg": message}).encode()


# --- KIS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"output":{"stck_prpr":"71500"},"rt_cd":"0","msg_cd":"MCA00000","msg1":"ok"}',
        b'{"rt_cd":"0","msg_cd":"APBK0013","msg1":"\xec\xa3\xbc\xeb\xac\xb8"}',
        b'{"access_token":"x","expires_in":86400}',  # token endpoint
        b'{"code":200,"message":"revoked"}',  # revoke endpoint
    ],
)
def test_kis_success(body: bytes) -> None:
    classify_kis_response(200, body)


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        # the sample error bodies from the KIS/Kiwoom documentation and field reports
        (
            403,
            kis_token_body("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"),
            UpstreamRateLimited,
            "EGW00133",
        ),
        (
            500,
            kis_body("EGW00201", "초당 거래건수를 초과하였습니다."),
            UpstreamRateLimited,
            "EGW00201",
        ),
        (500, kis_body("EGW00123", "기간이 만료된 token 입니다."), UpstreamAuthError, "EGW00123"),
        (500, kis_body("EGW00121", "유효하지 않은 token 입니다."), UpstreamAuthError, "EGW00121"),
        # the KIS error-code table (EGW… codes)
        (
            403,
            kis_token_body("EGW00103", "유효하지 않은 AppKey입니다."),
            UpstreamRejected,
            "EGW00103",
        ),
        (
            403,
            kis_token_body("EGW00105", "유효하지 않은 AppSecret입니다."),
            UpstreamRejected,
            "EGW00105",
        ),
        (500, kis_body("EGW00122"), UpstreamAuthError, "EGW00122"),
        (500, kis_body("EGW00215"), UpstreamRateLimited, "EGW00215"),
        (500, kis_body("EGW02004"), UpstreamRejected, "EGW02004"),
        (500, kis_body("EGW02006", "모의투자 TR 이 아닙니다."), UpstreamRejected, "EGW02006"),
        (500, kis_body("EGW02007"), UpstreamRejected, "EGW02007"),
        (500, kis_body("EGW00002", "서버 에러"), UpstreamTransient, "EGW00002"),
        (500, kis_body("EGW00003"), UpstreamRejected, "EGW00003"),
        (500, kis_body("EGW00004"), UpstreamRejected, "EGW00004"),
        (500, kis_body("EGW00101"), UpstreamRejected, "EGW00101"),
        (200, kis_body("40570000", "모의투자 장시작전 입니다."), UpstreamRejected, "40570000"),
        (200, kis_body("OPSQ0001"), UpstreamRejected, "OPSQ0001"),
        # EGW00201 has been seen with HTTP 200: the code decides, not the status
        (200, kis_body("EGW00201"), UpstreamRateLimited, "EGW00201"),
        # an unknown code falls back on a telling status, else is a rejection
        (500, kis_body("EGW09999"), UpstreamRejected, "EGW09999"),
        (429, kis_body("EGW09999"), UpstreamRateLimited, "EGW09999"),
        (401, kis_body("EGW09999"), UpstreamAuthError, "EGW09999"),
    ],
)
def test_kis_errors(status: int, body: bytes, error: type[UpstreamError], code: str) -> None:
    with pytest.raises(error) as info:
        classify_kis_response(status, body)
    exc = info.value
    assert type(exc) is error
    assert exc.code == code
    assert exc.status == status
    assert exc.provider == "KIS"
    assert exc.message == json.loads(body).get("msg1", json.loads(body).get("error_description"))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"<html>Internal Server Error</html>", UpstreamTransient),
        (502, b"", UpstreamTransient),
        (503, b'{"unexpected":"json"}', UpstreamTransient),
        (408, b"timeout", UpstreamTransient),
        (401, b"Unauthorized", UpstreamAuthError),
        (429, b"Too Many Requests", UpstreamRateLimited),
        (404, b"not found", UpstreamRejected),
        (400, b"[1, 2]", UpstreamRejected),
        (302, b"", UpstreamRejected),
        (200, b"<html>captive portal</html>", UpstreamTransient),
        (200, b'{"rt_cd":"0"', UpstreamTransient),  # truncated
        (500, b'{"rt_cd":"0","msg_cd":"MCA00000"}', UpstreamTransient),  # success body, 5xx
    ],
)
def test_kis_without_an_envelope_the_status_decides(
    status: int, body: bytes, error: type[UpstreamError]
) -> None:
    with pytest.raises(error) as info:
        classify_kis_response(status, body)
    assert type(info.value) is error
    assert info.value.code == ""
    assert info.value.status == status


def test_kis_failure_without_code_or_message_is_still_a_failure() -> None:
    with pytest.raises(UpstreamRejected, match=r"no code"):
        classify_kis_response(200, b'{"rt_cd":"1"}')


def test_error_snippets_are_short_single_line_and_printable() -> None:
    body = ("<html>\n\t" + "가" * 1000 + "\x00\x1b[31m</html>").encode() + b"\xff\xfe"
    with pytest.raises(UpstreamTransient) as info:
        classify_kis_response(502, body)
    message = info.value.message
    assert "\n" not in message
    assert "\x00" not in message
    assert "\x1b" not in message
    assert len(message) < 300
    assert message.endswith("…'")


def test_kis_code_sets_can_be_extended() -> None:
    codes = dataclasses.replace(KIS_ERROR_CODES, transient=KIS_ERROR_CODES.transient | {"EGW00003"})
    with pytest.raises(UpstreamTransient):
        classify_kis_response(500, kis_body("EGW00003"), codes=codes)
    with pytest.raises(UpstreamRejected):
        classify_kis_response(500, kis_body("EGW00003"))


# --- Kiwoom ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        kiwoom_body(0, "정상적으로 처리되었습니다"),
        kiwoom_body("0", "조회완료"),
        b'{"stk_cd":"005930","stk_dt_pole_chart_qry":[],"return_code":0,"return_msg":"ok"}',
        b'{"stk_cd":"005930"}',  # no envelope at all: nothing says it failed
    ],
)
def test_kiwoom_success(body: bytes) -> None:
    classify_kiwoom_response(200, body)


RATE_MSG = (
    "허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID=ka10081]"
)
AUTH_MSG = "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"


@pytest.mark.parametrize(
    ("status", "return_code", "message", "error", "code"),
    [
        # the sample error bodies, with both statuses reported for each
        (200, 3, AUTH_MSG, UpstreamAuthError, "8005"),
        (401, 3, AUTH_MSG, UpstreamAuthError, "8005"),
        (429, 5, RATE_MSG, UpstreamRateLimited, "1700"),
        (200, 5, RATE_MSG, UpstreamRateLimited, "1700"),
        # the detailed code straight in return_code, as the official SDK assumes
        (200, 1700, "허용된 요청 개수를 초과하였습니다", UpstreamRateLimited, "1700"),
        (200, 8005, "Token이 유효하지 않습니다", UpstreamAuthError, "8005"),
        (200, 8031, "모의/실전 토큰 불일치", UpstreamAuthError, "8031"),
        (200, 8103, "토큰 인증 실패", UpstreamAuthError, "8103"),
        # categories alone
        (200, 5, "허용된 요청 개수를 초과하였습니다", UpstreamRateLimited, "5"),
        (200, 3, "인증에 실패했습니다", UpstreamAuthError, "3"),
        (200, 3, "인증에 실패했습니다[8010:IP 불일치]", UpstreamAuthError, "8010"),
        (200, 3, "인증에 실패했습니다[8999:처음 보는 코드]", UpstreamAuthError, "8999"),
        # batch size: rate-limit category, permanent error
        (
            200,
            5,
            "허용된 요청 개수를 초과하였습니다[1634:배치 크기 초과]",
            UpstreamRejected,
            "1634",
        ),
        (
            429,
            5,
            "허용된 요청 개수를 초과하였습니다[1634:배치 크기 초과]",
            UpstreamRejected,
            "1634",
        ),
        # bad app key or secret: a new token cannot help
        (
            200,
            3,
            "인증에 실패했습니다[8001:App Key와 Secret Key 검증에 실패했습니다]",
            UpstreamRejected,
            "8001",
        ),
        (200, 3, "인증에 실패했습니다[8002:App Key 검증 실패]", UpstreamRejected, "8002"),
        (200, 3, "[8030:실전/모의 앱키 불일치]", UpstreamRejected, "8030"),
        (200, 2, "[1687:재귀 호출이 발생하여 API 호출을 제한합니다]", UpstreamRateLimited, "1687"),
        (200, 2, "[1999:예기치 못한 에러입니다]", UpstreamTransient, "1999"),
        (200, 2, "[8009:토큰 발급 실패]", UpstreamTransient, "8009"),
        (200, 2, "[1511:필수 입력 값에 값이 존재하지 않습니다]", UpstreamRejected, "1511"),
        (200, 2, "[1901:시장 코드값이 존재하지 않습니다]", UpstreamRejected, "1901"),
        (200, 2, "ws style message CODE=1700 over", UpstreamRateLimited, "1700"),
        (200, 20, "주문가능금액 부족", UpstreamRejected, "20"),
        (429, 20, "unknown", UpstreamRateLimited, "20"),
        (401, 20, "unknown", UpstreamAuthError, "20"),
    ],
)
def test_kiwoom_errors(
    status: int, return_code: int, message: str, error: type[UpstreamError], code: str
) -> None:
    with pytest.raises(error) as info:
        classify_kiwoom_response(status, kiwoom_body(return_code, message))
    exc = info.value
    assert type(exc) is error
    assert (exc.code, exc.message, exc.status, exc.provider) == (code, message, status, "KIWOOM")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, b"Too Many Requests", UpstreamRateLimited),
        (401, b"", UpstreamAuthError),
        (500, b"<html>oops</html>", UpstreamTransient),
        (503, b'{"stk_cd":"005930"}', UpstreamTransient),
        (500, kiwoom_body(0, "정상"), UpstreamTransient),
        (404, b"no route", UpstreamRejected),
        (200, b"not json", UpstreamTransient),
    ],
)
def test_kiwoom_without_an_error_code_the_status_decides(
    status: int, body: bytes, error: type[UpstreamError]
) -> None:
    with pytest.raises(error) as info:
        classify_kiwoom_response(status, body)
    assert type(info.value) is error
    assert info.value.code == ""


def test_kiwoom_failure_without_message() -> None:
    with pytest.raises(UpstreamRejected, match=r"broker error 42") as info:
        classify_kiwoom_response(200, b'{"return_code":42}')
    assert info.value.code == "42"


def test_kiwoom_code_sets_can_be_extended() -> None:
    codes = dataclasses.replace(
        KIWOOM_ERROR_CODES, transient=KIWOOM_ERROR_CODES.transient | {"1634"}
    )
    batch = kiwoom_body(5, "[1634:배치 크기 초과]")
    with pytest.raises(UpstreamTransient):
        classify_kiwoom_response(200, batch, codes=codes)
    with pytest.raises(UpstreamRejected):
        classify_kiwoom_response(200, batch)


def test_errors_are_retryable_exactly_when_a_retry_can_help() -> None:
    assert UpstreamTransient.retryable
    assert UpstreamRateLimited.retryable
    assert UpstreamAuthError.retryable
    assert not UpstreamRejected.retryable
