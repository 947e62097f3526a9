"""Builders for registry test data, in code. Each takes overrides as keyword arguments."""

import itertools
from decimal import Decimal
from typing import Any

from registry import services
from registry.models import (
    Capability,
    Certification,
    ComplianceCell,
    DataClassification,
    Model,
    ModelVersion,
    Provider,
    Region,
)

_sequence = itertools.count(1)

CLASSIFICATIONS = [("public", 10), ("internal", 20), ("confidential", 30), ("pii", 40), ("phi", 50)]
CAPABILITIES = ["reasoning", "code", "summarization", "classification", "extraction", "creative", "multilingual"]


def vocabulary() -> dict[str, Any]:
    """Regions eu and us, the standard capabilities and classifications, two certifications."""
    regions = {
        slug: Region.objects.get_or_create(slug=slug, defaults={"name": slug.upper()})[0] for slug in ("eu", "us")
    }
    for slug in CAPABILITIES:
        Capability.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    classifications = {
        slug: DataClassification.objects.get_or_create(slug=slug, defaults={"name": slug.upper(), "sensitivity": rank})[
            0
        ]
        for slug, rank in CLASSIFICATIONS
    }
    certifications = {
        slug: Certification.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name in (("soc2", "SOC 2 Type II"), ("hipaa-baa", "HIPAA BAA"))
    }
    return {"regions": regions, "classifications": classifications, "certifications": certifications}


def make_provider(**overrides: Any) -> Provider:
    n = next(_sequence)
    data = {
        "name": f"Provider {n}",
        "slug": f"provider-{n}",
        "kind": Provider.Kind.OPENAI_COMPATIBLE,
        "base_url": "https://api.example.test/v1",
        "credentials_env": "PROVIDER_API_KEY",
    }
    data.update(overrides)
    return Provider.objects.create(**data)


def make_model(provider: Provider | None = None, **overrides: Any) -> Model:
    n = next(_sequence)
    data = {"name": f"Model {n}", "slug": f"model-{n}", "family": "test", "tier": Model.Tier.WORKHORSE}
    data.update(overrides)
    return Model.objects.create(provider=provider or make_provider(), **data)


def make_version(
    model: Model | None = None,
    *,
    lifecycle: str = "candidate",
    regions: tuple[str, ...] = ("eu", "us"),
    **overrides: Any,
) -> ModelVersion:
    """A version created through the service (so it is audited), then stepped to ``lifecycle``."""
    vocabulary()
    n = next(_sequence)
    data: dict[str, Any] = {
        "model": model or make_model(),
        "label": f"v{n}",
        "api_model_id": f"test-model-{n}",
        "context_window": 128_000,
        "input_cost_per_mtok": Decimal("1.5000"),
        "output_cost_per_mtok": Decimal("6.0000"),
        "typical_latency_ms": 800,
        "quality_scores": {"code": 70},
    }
    data.update(overrides)
    version = services.create_version(data=data, regions=Region.objects.filter(slug__in=regions))
    path = {
        "candidate": [],
        "approved": ["approved"],
        "deprecated": ["approved", "deprecated"],
        "retired": ["approved", "deprecated", "retired"],
    }[lifecycle]
    for step in path:
        version = services.transition_version(version, to=step)
    return version


def approve(
    version: ModelVersion, classification: str = "internal", *, regions: tuple[str, ...] = (), **kwargs: Any
) -> ComplianceCell:
    """Approve ``version`` for a classification through the service (audited, revision bumped).

    ``regions`` limits the approval to those region slugs; other keywords go to ``set_compliance``.
    """
    kwargs.setdefault("evidence", "Contract clause 7")
    kwargs.setdefault("reason", "Reviewed by legal")
    return services.set_compliance(
        model_version=version,
        classification=DataClassification.objects.get(slug=classification),
        decision="approved",
        regions=Region.objects.filter(slug__in=regions),
        **kwargs,
    )
