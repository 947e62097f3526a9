from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def signing_key_configured(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Without a signing key, checkpoints cannot be signed and exports cannot prove themselves."""
    if settings.AUDIT_SIGNING_KEY:
        return []
    return [
        Warning(
            "AUDIT_SIGNING_KEY is not set: audit checkpoints cannot be signed.",
            hint="Set AUDIT_SIGNING_KEY_FILE to a file holding an Ed25519 key (base64 of 32 bytes, or PEM).",
            id="audit.W001",
        )
    ]
