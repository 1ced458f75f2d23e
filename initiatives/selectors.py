"""Reads shared by pages, the API and tasks, and the access doors of initiatives, business
units, team members and iterations: `..._get(..., user)` answers 404 for what the user may not
see, `..._visible_to(user)` lists only what they may see. No view reads these models itself."""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connections
from django.db.models import (
    Case,
    Count,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import Http404
from django.urls import reverse

from bizdevops import search
from initiatives import permissions
from initiatives.models import (
    FINAL_STATUSES,
    KEY_PREFIX,
    BusinessUnit,
    Initiative,
    Iteration,
    Membership,
    Phase,
    days_left,
    dev_due,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser


def parse_key(key: str) -> int | None:
    """`BDO-12` -> 12; anything else -> None."""
    if not key.upper().startswith(KEY_PREFIX):
        return None
    number = key[len(KEY_PREFIX) :]
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        return None
    return int(number)


def limit_to_visible(queryset: QuerySet[Any], user: AnyUser, path: str = "") -> QuerySet[Any]:
    """The rows of `queryset` whose initiative the user may see; `path` leads from its model
    to the initiative (e.g. "kpi__initiative__"). For the selectors of the apps above this
    one (KPIs, jobs, runs), which offer their own doors."""
    if permissions.sees_portfolio(user):
        return queryset
    if permissions.sees_own_units(user):
        # An IN subquery rather than a join through the stakeholder table: the list and its
        # count stay on the listed table (and can never repeat a row).
        memberships = BusinessUnit.stakeholders.through.objects
        own_units = memberships.filter(user=user.pk).values("businessunit_id")
        return queryset.filter(**{f"{path}business_unit__in": own_units})
    return queryset.none()


@functools.cache
def _kpi_count() -> Subquery:
    """The initiative's KPI count as a correlated subquery rather than `Count` over a join:
    with no GROUP BY, `count()` drops the unused annotation and filters and pages run on the
    initiative table alone. The KPI model is reached through the relation because `kpis`
    sits above this app. A plain COUNT (`Func`: the `Count` aggregate would add a GROUP BY)
    is 0, never NULL, for no KPIs. Built once (a query copies an expression it takes in)."""
    kpi_model = Initiative._meta.get_field("kpis").related_model
    counted = (
        kpi_model._default_manager.filter(initiative=OuterRef("pk"))
        .order_by()
        .annotate(n=Func(F("pk"), function="COUNT"))
        .values("n")
    )
    return Subquery(counted, output_field=IntegerField())


def _listed() -> QuerySet[Initiative]:
    """Initiatives with what a card or list row shows, in a constant number of queries."""
    return Initiative.objects.select_related("business_unit", "accountable").annotate(
        kpi_count=_kpi_count()
    )


def initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return limit_to_visible(_listed(), user)


def open_initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return initiatives_visible_to(user).exclude(status__in=FINAL_STATUSES)


def closed_initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return initiatives_visible_to(user).filter(status__in=FINAL_STATUSES).order_by("-updated_at")


def initiative_get(key: str, user: AnyUser) -> Initiative:
    """The initiative with this key as the user may see it, else 404 (not 403: a page must
    not reveal what exists elsewhere)."""
    pk = parse_key(key)
    if pk is None:
        raise Http404(f"No initiative {key}.")
    try:
        return initiatives_visible_to(user).get(pk=pk)
    except Initiative.DoesNotExist:
        raise Http404(f"No initiative {key}.") from None


def my_initiatives(user: AnyUser) -> QuerySet[Initiative]:
    """Open initiatives the user is accountable for or on the team of."""
    mine = Initiative.objects.filter(
        Q(accountable_id=user.pk)
        | Q(memberships__user_id=user.pk, memberships__left_at__isnull=True)
    ).values("pk")
    return open_initiatives_visible_to(user).filter(pk__in=mine).order_by("phase", "id")


# Board cards --------------------------------------------------------------------------------

BOARD_PAGE = 50

# What a card shows: the long texts of an initiative (and the password hash of its accountable)
# stay in the database. A card decorator that needs another field of the initiative: add it
# here (and to `Card`).
CARD_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "phase",
    "status",
    "dev_timebox_weeks",
    "dev_started_at",
    "business_unit__name",
    "accountable__username",
    "accountable__first_name",
    "accountable__last_name",
)


class Card:
    """One board card: the `CARD_FIELDS` of an initiative read as a plain row (`.values()`),
    not as a model instance with its business unit and accountable (building those was about
    5 ms of a board of 150 cards), with the model's Dev timebox rules. The card decorators
    add attributes to it (say, `kpi_health`)."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.pk: int = row["id"]
        self.title: str = row["title"]
        self.phase: str = row["phase"]
        self.status: str = row["status"]
        self.dev_timebox_weeks: int = row["dev_timebox_weeks"]
        self.dev_started_at: dt.datetime | None = row["dev_started_at"]
        self.business_unit_name: str = row["business_unit__name"]
        self.accountable_username: str = row["accountable__username"]
        self.accountable_first_name: str = row["accountable__first_name"]
        self.accountable_last_name: str = row["accountable__last_name"]
        self.kpi_count: int | None = row.get("kpi_count")

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.pk}"

    @property
    def dev_due_at(self) -> dt.datetime | None:
        return dev_due(self.phase, self.status, self.dev_started_at, self.dev_timebox_weeks)

    @property
    def dev_days_left(self) -> int | None:
        return days_left(self.dev_due_at)

    @property
    def accountable_name(self) -> str:
        """As `accountable.get_full_name() or accountable.get_username()` says it."""
        full = f"{self.accountable_first_name} {self.accountable_last_name}".strip()
        return full or self.accountable_username


def _cards(initiatives: QuerySet[Initiative]) -> list[Card]:
    fields = CARD_FIELDS
    if "kpi_count" in initiatives.query.annotations:
        fields = (*fields, "kpi_count")
    return [Card(row) for row in initiatives.values(*fields)]


CardDecorator = Callable[[list[Card]], None]
_card_decorators: list[CardDecorator] = []


def decorates_cards(decorator: CardDecorator) -> CardDecorator:
    """Register a function that adds attributes to the cards of a board before it is shown
    (the apps above add, say, each card's KPI health), in one pass for all cards."""
    if decorator not in _card_decorators:
        _card_decorators.append(decorator)
    return decorator


@dataclass
class Column:
    """A board column: one page of its cards (`page` counts from 1) and how many there are
    in all. The view adds where "show more" leads (`more_url` without JavaScript, `more_hx_url`
    for htmx), the way back to the first page (`first_url`) and what each card shows
    (`shown`)."""

    phase: Phase
    cards: list[Card]
    total: int
    page: int = 1
    page_size: int = BOARD_PAGE
    more_url: str = ""
    more_hx_url: str = ""
    first_url: str = ""
    shown: list[dict[str, object]] = field(default_factory=list)

    @property
    def first(self) -> int:
        """The position (from 1) of the first card shown; 0 when none is."""
        return (self.page - 1) * self.page_size + 1 if self.cards else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.page_size + len(self.cards)

    @property
    def more(self) -> int:
        """How many cards the next page holds (0: this is the last)."""
        return min(self.page_size, max(self.total - self.last, 0))

    @property
    def next_page(self) -> int:
        return self.page + 1


def _decorated(cards: list[Card]) -> list[Card]:
    for decorate in _card_decorators:
        decorate(cards)
    return cards


def by_phase(initiatives: QuerySet[Initiative]) -> list[Column]:
    """Every card of `initiatives` in one column per phase, in phase order, the cards
    decorated (for short lists: the start page's own initiatives)."""
    cards = _decorated(_cards(initiatives))
    columns = []
    for phase in Phase:
        mine = [card for card in cards if card.phase == phase]
        columns.append(Column(phase, mine, total=len(mine), page_size=max(len(mine), 1)))
    return columns


def page_number(value: object) -> int:
    """A page number from a query string: a whole number from 1 to 999,999, else 1."""
    text = str(value or "")
    if text.isascii() and text.isdigit() and len(text) < 7:
        return max(int(text), 1)
    return 1


def board_columns(
    initiatives: QuerySet[Initiative],
    *,
    pages: Mapping[Phase, int] | None = None,
    phases: Iterable[Phase] = tuple(Phase),
    page_size: int = BOARD_PAGE,
) -> list[Column]:
    """The board: per phase, one page of cards in the initiatives' order (`pages[phase]`,
    the first by default, the last if past it) and the count of all of them; a fixed number
    of queries whatever the count: one aggregate for the counts, one per column, then the
    decorators' for the cards shown."""
    pages = pages or {}
    # COUNT(*), not COUNT(id): the (phase, status) index then answers it alone.
    counts = dict(initiatives.order_by().values_list("phase").annotate(n=Count("*")))
    columns = []
    for phase in phases:
        total = counts.get(phase, 0)
        page = max(1, min(pages.get(phase, 1), math.ceil(total / page_size)))
        start = (page - 1) * page_size
        cards = _cards(initiatives.filter(phase=phase)[start : start + page_size])
        columns.append(Column(phase, cards, total=total, page=page, page_size=page_size))
    _decorated([card for column in columns for card in column.cards])
    return columns


# Team, iterations, business units -------------------------------------------------------------


def team(initiative: Initiative) -> list[Membership]:
    return list(
        initiative.memberships.filter(left_at__isnull=True)
        .select_related("user")
        .order_by("role", "user__username")
    )


def member_get(initiative: Initiative, member_id: int) -> Membership:
    """A current member of an initiative the caller fetched through `initiative_get`."""
    try:
        return initiative.memberships.select_related("user").get(pk=member_id, left_at__isnull=True)
    except Membership.DoesNotExist:
        raise Http404("No such member of the team.") from None


def iterations(initiative: Initiative) -> list[Iteration]:
    return list(initiative.iterations.select_related("recorded_by").order_by("-number"))


def iteration_get(initiative: Initiative, number: int) -> Iteration:
    """An iteration of an initiative the caller fetched through `initiative_get`."""
    try:
        return initiative.iterations.get(number=number)
    except Iteration.DoesNotExist:
        raise Http404(f"{initiative.key} has no iteration {number}.") from None


def team_roles_of(user: AnyUser) -> dict[int, set[str]]:
    """The user's active team roles per initiative id, in one query (for lists that show
    per-initiative actions)."""
    roles: dict[int, set[str]] = {}
    if not user.is_authenticated:
        return roles
    rows = Membership.objects.filter(user_id=user.pk, left_at__isnull=True).values_list(
        "initiative_id", "role"
    )
    for initiative_id, role in rows:
        roles.setdefault(initiative_id, set()).add(role)
    return roles


def business_units_visible_to(user: AnyUser) -> QuerySet[BusinessUnit]:
    """The whole list for the portfolio roles; a stakeholder's own units; none without a
    role."""
    units = BusinessUnit.objects.order_by("name")
    if permissions.sees_portfolio(user):
        return units
    if permissions.sees_own_units(user):
        return units.filter(stakeholders=user.pk)
    return units.none()


def business_unit_get(pk: int, user: AnyUser) -> BusinessUnit:
    try:
        return business_units_visible_to(user).get(pk=pk)
    except BusinessUnit.DoesNotExist:
        raise Http404("No such business unit.") from None


# The global search (bizdevops/search.py, docs/search.md) ---------------------------------------

# The story fields full-text search reads, in the order of the PostgreSQL index expression of
# migration 0004 (initiative_search): the query must build the same expression to use it.
SEARCH_FIELDS = (
    "title",
    "business_problem",
    "business_requirements",
    "use_case",
    "algorithm_translation",
    "data_feasibility",
)
SEARCH_CONFIG = "english"


def search_document() -> SearchVector:
    return SearchVector(*SEARCH_FIELDS, config=SEARCH_CONFIG)


def search_query(words: list[str]) -> SearchQuery:
    """Every word as a prefix (`frau` finds "fraud"), all of them required. Only letters and
    digits reach the tsquery syntax, so no user input is an operator."""
    pieces = [piece for word in words for piece in re.findall(r"[^\W_]+", word)]
    return SearchQuery(
        " & ".join(f"{piece}:*" for piece in pieces), config=SEARCH_CONFIG, search_type="raw"
    )


def search_keys(words: list[str]) -> tuple[list[int], list[str]]:
    """The initiative numbers of the words that are keys (`BDO-12`), and the other words."""
    keys = [pk for word in words if (pk := parse_key(word)) is not None]
    return keys, [word for word in words if parse_key(word) is None]


def initiatives_matching(query: str, user: AnyUser) -> QuerySet[Initiative]:
    """Visible initiatives with a key in the query or all its other words in the title or the
    story: on PostgreSQL by full-text search on the GIN index, elsewhere by substring."""
    keys, words = search_keys(search.terms(query))
    visible = initiatives_visible_to(user)
    matched = Q(pk__in=keys)
    if words and connections[visible.db].vendor == "postgresql":
        visible = visible.alias(document=search_document())
        matched |= Q(document=search_query(words))
    elif words:
        text = Q()
        for word in words:
            text &= functools.reduce(
                operator.or_, (Q(**{f"{name}__icontains": word}) for name in SEARCH_FIELDS)
            )
        matched |= text
    # The key first, then titles with the first word, then the newest. An expression leads
    # the order on purpose: ordered by the primary key alone, PostgreSQL would walk that
    # index backwards testing every row against the document (seconds when nothing matches)
    # instead of reading the matches from the GIN index and sorting those.
    first = []
    if keys:
        first.append(Case(When(pk__in=keys, then=Value(0)), default=Value(1)))
    if words:
        first.append(Case(When(title__icontains=words[0], then=Value(0)), default=Value(1)))
    return visible.filter(matched).order_by(*first, "-pk")


@search.provider("initiatives", label="Initiatives", order=10)
def search_initiatives(query: str, user: AnyUser, limit: int) -> search.Found:
    rows = list(initiatives_matching(query, user)[: limit + 1])
    hits = [
        search.Hit(
            title=f"{initiative.key} {initiative.title}",
            url=reverse("initiative-detail", args=[initiative.key]),
            detail=f"{initiative.business_unit.name} · {initiative.get_phase_display()} · "
            f"{initiative.get_status_display()}",
        )
        for initiative in rows[:limit]
    ]
    return search.Found(hits, more=len(rows) > limit)
