"""The portfolio board, the archive and the start page, through the Django test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, Phase, Status, TeamRole
from kpis import services as kpi_services
from phases.models import Decision
from tests.factories import BusinessUnitFactory, decide, make_initiative
from tests.helpers import HTMX, html, queries

pytestmark = pytest.mark.django_db

COLUMN = re.compile(
    r'<section class="column column-\w+"[^>]*data-phase="(?P<phase>\w+)">(?P<body>.*?)</section>',
    re.S,
)
CARD_KEY = re.compile(r'data-key="(BDO-\d+)"')
ROW_KEY = re.compile(r'<td><a href="/initiatives/(BDO-\d+)/">')


def _columns(content: str) -> dict[str, set[str]]:
    """Board columns by phase, each with the keys of its cards."""
    columns = {m["phase"]: set(CARD_KEY.findall(m["body"])) for m in COLUMN.finditer(content)}
    assert list(columns) == ["biz", "dev", "ops"], columns
    return columns


def _on_board(content: str) -> set[str]:
    return set().union(*_columns(content).values())


def _archived(content: str) -> set[str]:
    return set(ROW_KEY.findall(content))


def _move_to(initiative: Initiative, phase: Phase, status: Status = Status.ACTIVE) -> None:
    # Bulk setup for the board only: going through every gate for a dozen initiatives would
    # test the gates again, not the board.
    Initiative.objects.filter(pk=initiative.pk).update(
        phase=phase,
        status=status,
        dev_started_at=timezone.now() if phase == Phase.DEV else None,
    )


@pytest.fixture
def marketing(db: Any) -> BusinessUnit:
    return BusinessUnitFactory(name="Marketing")


@pytest.fixture
def portfolio(
    pm: Any,
    other_pm: Any,
    engineer: Any,
    unit: BusinessUnit,
    marketing: BusinessUnit,
    ready_initiative: Initiative,
) -> dict[str, Initiative]:
    """Biz active, Biz on hold, Dev active, one cancelled and one retired initiative."""
    churn = make_initiative(
        other_pm,
        marketing,
        title="Churn forecast",
        business_problem="Customers leave without warning.",
    )
    initiative_services.member_add(
        initiative=churn, member=engineer, role=TeamRole.DATA_ENGINEER, user=other_pm
    )
    churn = decide(churn, Decision.HOLD, other_pm)
    pricing = make_initiative(pm, marketing, title="Price elasticity")
    abandoned = decide(make_initiative(pm, unit, title="Abandoned idea"), Decision.KILL, pm)
    # The standard initiative passes its Biz -> Dev gate (the engineer is on its team).
    dev = decide(ready_initiative, Decision.GO, pm)
    # Ops is reached by a bulk move here: the Dev -> Ops gate has its own tests.
    retired = make_initiative(pm, unit, title="Old scoring model")
    _move_to(retired, Phase.OPS)
    retired = decide(retired, Decision.RETIRE, pm)
    return {
        "pricing": pricing,
        "churn": churn,
        "dev": dev,
        "abandoned": abandoned,
        "retired": retired,
    }


def test_board_sends_anonymous_users_to_login(client: Any, db: Any) -> None:
    response = client.get("/board/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/board/"


def test_archive_sends_anonymous_users_to_login(client: Any, db: Any) -> None:
    response = client.get("/archive/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/archive/"


def test_a_business_stakeholder_sees_only_their_units_initiatives(
    client: Any, stakeholder: Any, portfolio: dict[str, Initiative]
) -> None:
    # The stakeholder belongs to Fraud only: the Marketing initiatives are not shown, and
    # their pages answer 404 as if they did not exist.
    client.force_login(stakeholder)
    columns = _columns(html(client.get("/board/")))
    assert columns["biz"] == set()
    assert columns["dev"] == {portfolio["dev"].key}
    assert client.get(f"/initiatives/{portfolio['pricing'].key}/").status_code == 404
    assert client.get(f"/initiatives/{portfolio['dev'].key}/").status_code == 200


@pytest.mark.parametrize("who", ["pm", "engineer", "scientist", "admin_user"])
def test_board_shows_open_initiatives_in_phase_columns(
    client: Any, request: Any, who: str, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = html(client.get("/board/"))

    assert "<html" in content
    assert "Portfolio board" in content
    columns = _columns(content)
    assert columns["biz"] == {portfolio["pricing"].key, portfolio["churn"].key}
    assert columns["dev"] == {portfolio["dev"].key}
    assert columns["ops"] == set()
    assert "3 initiatives in progress" in content
    # The card shows owner, unit, status and KPI count.
    assert "Churn forecast" in content
    assert "Card-fraud detection" in content
    assert "Marketing" in content
    assert "pm2" in content
    assert "On hold" in content
    assert "1 KPI" in content  # the Dev initiative's KPI
    assert "days left" in content  # the Dev timebox
    for closed in ("abandoned", "retired"):
        assert portfolio[closed].key not in _on_board(content)
    assert "Abandoned idea" not in content
    assert "Old scoring model" not in content


def test_board_htmx_returns_only_the_board_partial(
    client: Any, pm: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", **HTMX))

    assert content.lstrip().startswith('<div id="board"')
    assert content.rstrip().endswith("</div>")
    assert "<html" not in content
    assert "<form" not in content  # the filter form stays on the page
    assert _on_board(content) == {
        portfolio["pricing"].key,
        portfolio["churn"].key,
        portfolio["dev"].key,
    }


def test_board_htmx_partial_is_filtered_too(
    client: Any, pm: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", {"status": "on_hold"}, **HTMX))
    assert content.lstrip().startswith('<div id="board"')
    assert _on_board(content) == {portfolio["churn"].key}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"pricing", "churn", "dev"}),
        ({"status": "active"}, {"pricing", "dev"}),
        ({"status": "on_hold"}, {"churn"}),
        ({"accountable": "pm2"}, {"churn"}),
        ({"accountable": "pm"}, {"pricing", "dev"}),
        ({"q": "churn"}, {"churn"}),
        ({"q": "  PRICE  "}, {"pricing"}),
        ({"q": "without warning"}, {"churn"}),  # the business problem
        ({"q": "nothing matches this"}, set()),
        ({"status": "active", "accountable": "pm2"}, set()),
    ],
)
def test_board_filters_narrow_the_result(
    client: Any,
    pm: Any,
    portfolio: dict[str, Initiative],
    params: dict[str, str],
    expected: set[str],
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", params))
    assert _on_board(content) == {portfolio[name].key for name in expected}
    assert "not understood" not in content


def test_board_filters_by_business_unit(
    client: Any, pm: Any, marketing: BusinessUnit, unit: BusinessUnit, portfolio: Any
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", {"unit": marketing.pk}))
    assert _on_board(content) == {portfolio["pricing"].key, portfolio["churn"].key}

    content = html(client.get("/board/", {"unit": unit.pk}))
    assert _on_board(content) == {portfolio["dev"].key}


def test_board_filters_by_key(client: Any, pm: Any, portfolio: dict[str, Initiative]) -> None:
    client.force_login(pm)
    key = portfolio["churn"].key
    assert _on_board(html(client.get("/board/", {"q": key}))) == {key}
    assert _on_board(html(client.get("/board/", {"q": key.lower()}))) == {key}
    # A closed initiative's key finds nothing on the board.
    assert _on_board(html(client.get("/board/", {"q": portfolio["abandoned"].key}))) == set()


def test_board_only_mine(
    client: Any, pm: Any, engineer: Any, stakeholder: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", {"mine": "true"}))
    assert _on_board(content) == {portfolio["pricing"].key, portfolio["dev"].key}
    assert 'id="id_mine" checked' in content

    # A team member: the engineer is on the Churn team and the Dev initiative's team.
    client.force_login(engineer)
    content = html(client.get("/board/", {"mine": "true"}))
    assert _on_board(content) == {portfolio["churn"].key, portfolio["dev"].key}

    client.force_login(stakeholder)
    assert _on_board(html(client.get("/board/", {"mine": "true"}))) == set()
    # Unchecked: everything the stakeholder may see (their unit's one open initiative).
    assert _on_board(html(client.get("/board/", {"mine": "false"}))) == {portfolio["dev"].key}
    # A value that is neither yes nor no means "not set".
    client.force_login(pm)
    assert len(_on_board(html(client.get("/board/", {"mine": "perhaps"})))) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"unit": "abc"},
        {"unit": "999999"},
        {"unit": "-1"},
        {"accountable": "nobody-here"},
        {"accountable": "engineer"},  # not a program manager
        {"status": "cancelled"},  # not an open status
        {"status": "bogus"},
        {"unit": "abc", "status": "x", "accountable": "y"},
    ],
)
def test_board_ignores_garbage_filters(
    client: Any, pm: Any, portfolio: dict[str, Initiative], params: dict[str, str]
) -> None:
    client.force_login(pm)
    content = html(client.get("/board/", params))
    assert "Some filters were not understood and are ignored" in content
    assert _on_board(content) == {
        portfolio["pricing"].key,
        portfolio["churn"].key,
        portfolio["dev"].key,
    }


def test_board_with_odd_search_text_does_not_fail(
    client: Any, pm: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(pm)
    for text in ("BDO-", "BDO-0", "BDO-99999999999999999999999", "%_'\"<script>", "x" * 500):
        content = html(client.get("/board/", {"q": text}))
        assert _on_board(content) == set()
        assert "<script>" not in content


def test_board_runs_a_constant_number_of_queries(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit, marketing: BusinessUnit
) -> None:
    phases = [Phase.BIZ, Phase.DEV, Phase.OPS]

    def add(count: int) -> None:
        for n in range(count):
            owner = pm if n % 2 else other_pm
            initiative = make_initiative(owner, unit if n % 3 else marketing, title=f"Idea {n}")
            for k in range(n % 3):
                kpi_services.kpi_define(
                    initiative=initiative, user=owner, name=f"KPI {k}", target=k + 1
                )
            if n % 4 == 3:
                decide(initiative, Decision.HOLD, owner)
            else:
                _move_to(initiative, phases[n % 3])

    client.force_login(pm)
    add(2)
    queries(client, "/board/")  # warm up
    few = queries(client, "/board/")
    few_htmx = queries(client, "/board/", **HTMX)
    few_filtered = queries(client, "/board/?mine=true&q=idea&status=active")

    add(10)
    content = html(client.get("/board/"))
    assert len(_on_board(content)) == 12
    assert "KPIs" in content
    assert queries(client, "/board/") == few
    assert queries(client, "/board/", **HTMX) == few_htmx
    assert queries(client, "/board/?mine=true&q=idea&status=active") == few_filtered


def test_archive_lists_cancelled_and_retired_only(
    client: Any, stakeholder: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(stakeholder)
    content = html(client.get("/archive/"))

    assert "<html" in content
    assert _archived(content) == {portfolio["abandoned"].key, portfolio["retired"].key}
    assert "Abandoned idea" in content
    assert "Cancelled" in content
    assert "Retired" in content
    assert 'data-key="' not in content  # no board cards here


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "cancelled"}, {"abandoned"}),
        ({"status": "retired"}, {"retired"}),
        ({"q": "abandoned"}, {"abandoned"}),
        ({"accountable": "pm2"}, set()),
    ],
)
def test_archive_filters_narrow_the_result(
    client: Any,
    pm: Any,
    portfolio: dict[str, Initiative],
    params: dict[str, str],
    expected: set[str],
) -> None:
    client.force_login(pm)
    content = html(client.get("/archive/", params))
    assert _archived(content) == {portfolio[name].key for name in expected}


def test_archive_filters_by_unit_and_key(
    client: Any, pm: Any, marketing: BusinessUnit, unit: BusinessUnit, portfolio: Any
) -> None:
    client.force_login(pm)
    assert _archived(html(client.get("/archive/", {"unit": marketing.pk}))) == set()
    assert _archived(html(client.get("/archive/", {"unit": unit.pk}))) == {
        portfolio["abandoned"].key,
        portfolio["retired"].key,
    }
    key = portfolio["retired"].key
    assert _archived(html(client.get("/archive/", {"q": key}))) == {key}
    # An open initiative's key finds nothing in the archive.
    assert _archived(html(client.get("/archive/", {"q": portfolio["pricing"].key}))) == set()


def test_archive_empty_result_says_so(client: Any, pm: Any, portfolio: Any) -> None:
    client.force_login(pm)
    content = html(client.get("/archive/", {"q": "no such thing"}))
    assert "No cancelled or retired initiative matches." in content


@pytest.mark.parametrize(
    "params",
    [{"unit": "abc"}, {"status": "active"}, {"status": "on_hold"}, {"accountable": "??"}],
)
def test_archive_ignores_garbage_filters(
    client: Any, pm: Any, portfolio: dict[str, Initiative], params: dict[str, str]
) -> None:
    client.force_login(pm)
    content = html(client.get("/archive/", params))
    assert _archived(content) == {portfolio["abandoned"].key, portfolio["retired"].key}


def test_archive_htmx_returns_only_the_archive_partial(
    client: Any, pm: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(pm)
    content = html(client.get("/archive/", {"status": "retired"}, **HTMX))
    assert content.lstrip().startswith('<div id="archive"')
    assert content.rstrip().endswith("</div>")
    assert "<html" not in content
    assert "<form" not in content
    assert _archived(content) == {portfolio["retired"].key}


def test_archive_runs_a_constant_number_of_queries(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit, marketing: BusinessUnit
) -> None:
    def add(count: int) -> None:
        for n in range(count):
            owner = pm if n % 2 else other_pm
            initiative = make_initiative(owner, unit if n % 3 else marketing, title=f"Idea {n}")
            kpi_services.kpi_define(initiative=initiative, user=owner, name="KPI", target=1)
            if n % 2:
                decide(initiative, Decision.KILL, owner)
            else:
                _move_to(initiative, Phase.OPS, Status.RETIRED)

    client.force_login(pm)
    add(2)
    queries(client, "/archive/")
    few = queries(client, "/archive/")
    few_htmx = queries(client, "/archive/", **HTMX)

    add(10)
    assert len(_archived(html(client.get("/archive/")))) == 12
    assert queries(client, "/archive/") == few
    assert queries(client, "/archive/", **HTMX) == few_htmx


def test_home_lists_my_initiatives(client: Any, pm: Any, portfolio: dict[str, Initiative]) -> None:
    client.force_login(pm)
    content = html(client.get("/"))
    assert "My initiatives" in content
    assert _on_board(content) == {portfolio["pricing"].key, portfolio["dev"].key}
    assert "2 open initiatives" in content


def test_home_lists_team_memberships(
    client: Any, engineer: Any, portfolio: dict[str, Initiative]
) -> None:
    client.force_login(engineer)
    content = html(client.get("/"))
    assert _on_board(content) == {portfolio["churn"].key, portfolio["dev"].key}


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_new_initiative_link_for_program_managers_and_admins(
    client: Any, request: Any, who: str
) -> None:
    client.force_login(request.getfixturevalue(who))
    for url in ("/", "/board/", "/archive/"):
        content = html(client.get(url))
        assert 'href="/initiatives/new/"' in content
        assert "New initiative" in content


@pytest.mark.parametrize("who", ["stakeholder", "engineer", "scientist", "devops"])
def test_no_new_initiative_link_for_other_roles(client: Any, request: Any, who: str) -> None:
    client.force_login(request.getfixturevalue(who))
    for url in ("/", "/board/", "/archive/"):
        # follow: a stakeholder's home leads to the KPI overview (#13).
        content = html(client.get(url, follow=True))
        nav = content.split('<nav class="container" aria-label="Main">', 1)[1].split("</nav>")[0]
        assert "/initiatives/new/" not in nav
        assert "/initiatives/new/" not in content
        assert "New initiative" not in content


def test_no_new_initiative_link_for_a_user_without_role(client: Any, make_user: Any) -> None:
    client.force_login(make_user(username="nobody"))
    assert "/initiatives/new/" not in html(client.get("/"))


def test_home_runs_a_constant_number_of_queries(
    client: Any, pm: Any, engineer: Any, unit: BusinessUnit
) -> None:
    def add(count: int) -> None:
        for n in range(count):
            initiative = make_initiative(pm, unit, title=f"Idea {n}")
            kpi_services.kpi_define(initiative=initiative, user=pm, name="KPI", target=1)
            initiative_services.member_add(
                initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
            )
            if n % 3 == 1:
                _move_to(initiative, Phase.DEV)

    client.force_login(engineer)
    add(2)
    queries(client, "/")
    few = queries(client, "/")
    add(10)
    assert len(_on_board(html(client.get("/")))) == 12
    assert queries(client, "/") == few


def test_nav_marks_the_current_page(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert 'href="/board/" aria-current="page"' in html(client.get("/board/"))
    assert 'href="/archive/" aria-current="page"' in html(client.get("/archive/"))
    assert 'href="/" aria-current="page"' in html(client.get("/"))


def test_scientist_role_is_in_the_nav(client: Any, make_user: Any) -> None:
    client.force_login(make_user(Role.DATA_SCIENTIST, Role.DATA_ENGINEER, username="both"))
    content = html(client.get("/board/"))
    assert 'title="Data engineer, Data scientist"' in content
