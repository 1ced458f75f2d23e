from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from initiatives import selectors
from initiatives.models import Phase


@login_required
def home(request: HttpRequest) -> HttpResponse:
    initiatives = list(selectors.my_initiatives(request.user))
    columns = [(phase, [i for i in initiatives if i.phase == phase]) for phase in Phase]
    return render(request, "initiatives/home.html", {"columns": columns, "count": len(initiatives)})
