"""The shop's own pages: they know nothing about IronMQ."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from .models import Order


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django shop")


def orders(request: HttpRequest) -> JsonResponse:
    rows = Order.objects.order_by("number").values("number", "total", "invoiced")
    return JsonResponse(list(rows), safe=False)
