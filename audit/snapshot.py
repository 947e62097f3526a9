"""JSON-safe pictures of model instances, for the before and after of audit events."""

import datetime
import decimal
import uuid
from typing import Any

from django.db import models


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _key(related: models.Model) -> Any:
    return getattr(related, "slug", None) or related.pk


def snapshot(instance: models.Model) -> dict[str, Any]:
    """Every concrete field and many-to-many of ``instance``, related objects by slug or id.

    Many-to-many values are sorted so two snapshots of the same state compare equal.
    """
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = field.value_from_object(instance)
        if isinstance(field, models.DecimalField) and isinstance(value, decimal.Decimal):
            # "3" typed in a form and "3.0000" read back are the same amount: record one spelling.
            value = value.quantize(decimal.Decimal(1).scaleb(-field.decimal_places))
        data[field.attname] = _plain(value)
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            data[field.name] = sorted(_key(obj) for obj in getattr(instance, field.name).all())
    return data
