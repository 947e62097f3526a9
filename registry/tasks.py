from celery import shared_task

from registry import services


@shared_task
def apply_scheduled_lifecycle() -> list[int]:
    """Deprecate and retire the versions whose planned day has come; returns their ids."""
    return [version.pk for version in services.apply_scheduled_lifecycle()]
