"""The shop's one model: an order, written by the push handler and invoiced by a job."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    number = models.IntegerField(unique=True)
    total = models.IntegerField()
    invoiced = models.BooleanField(default=False)
