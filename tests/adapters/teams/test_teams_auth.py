"""Every activity's bearer token is validated by the SDK against the issuer's published keys: the fake issuer signs
real RS256 JWTs, and unsigned, wrongly signed, expired, wrong-audience and wrong-issuer tokens are all refused with
401 before anything is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.storage.models import ConversationRef
from tests.adapters.teams.conftest import Teams
from tests.fakes.teams_connector import new_key

pytestmark = pytest.mark.teams


def _refs(teams: Teams) -> int:
    with teams.rt.factory() as session:
        return session.scalar(select(func.count()).select_from(ConversationRef)) or 0


def _install(teams: Teams, user: str = "UANA") -> dict[str, object]:
    return teams.driver.fake.activity("installationUpdate", user, action="add")


def test_a_token_signed_by_the_issuer_is_accepted(teams: Teams) -> None:
    status, _ = teams.driver.post(_install(teams))
    assert status == 200
    assert _refs(teams) == 1


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda fake: "", id="missing"),
        pytest.param(lambda fake: fake.unsigned_token(), id="unsigned"),
        pytest.param(lambda fake: fake.token(key=new_key()), id="wrongly-signed"),
        pytest.param(lambda fake: fake.token(expires_in=-3600), id="expired"),
        pytest.param(lambda fake: fake.token(audience="11111111-2222-4333-8444-555555555555"), id="wrong-audience"),
        pytest.param(lambda fake: fake.token(issuer="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda fake: fake.token(kid="unknown-key"), id="unknown-key"),
        pytest.param(lambda fake: fake.token(service_url="https://elsewhere.example/"), id="other-service"),
        pytest.param(lambda fake: "not-a-jwt", id="garbage"),
    ],
)
def test_refused_tokens_get_401_and_change_nothing(teams: Teams, make: object) -> None:
    token = make(teams.driver.fake)  # type: ignore[operator]
    status, _ = teams.driver.post(_install(teams), token=token)
    assert status == 401
    assert _refs(teams) == 0


def test_a_request_without_the_bearer_scheme_is_refused(teams: Teams) -> None:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{teams.driver.adapter.url}/api/messages", data=json.dumps(_install(teams)).encode(),
        headers={"Authorization": teams.driver.fake.token(), "Content-Type": "application/json"}, method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_a_signed_but_malformed_activity_is_a_400(teams: Teams) -> None:
    activity = _install(teams)
    del activity["conversation"]
    status, _ = teams.driver.post(activity)
    assert status == 400
    assert _refs(teams) == 0
