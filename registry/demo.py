"""A realistic demo portfolio for trying Switchboard out, and the function that loads it.

The registry is built through ``registry.services`` so the audit log tells the same story a real
administrator would have left behind. Dates are relative to the day of loading, so the demo always
shows recent approvals, a planned retirement ahead and one expired approval. Loading is idempotent:
objects are looked up by slug (label for versions, username for users) and only missing ones are
created; what exists is left exactly as an administrator may have changed it.

Prices, latencies and limits are illustrative, not any provider's real figures.
"""

import datetime
from collections import Counter as Tally
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth.models import Group, User
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from audit.checkpoints import make_checkpoint
from audit.models import AuditEvent
from audit.sealing import seal_all
from console.roles import ADMINISTRATOR, AUDITOR, REVIEWER
from policies import demo as policies_demo
from policies.models import Application, Team
from registry import services
from registry.models import (
    Capability,
    Certification,
    ComplianceCell,
    DataClassification,
    Lifecycle,
    Model,
    ModelVersion,
    Provider,
    Region,
)

M = TypeVar("M", bound=models.Model)

DEFAULT_PASSWORD = "switchboard-demo"  # noqa: S105 - published demo password, printed on every run
APPROVED = ComplianceCell.Decision.APPROVED
DENIED = ComplianceCell.Decision.DENIED

# --- Vocabulary -------------------------------------------------------------------------------

REGIONS = {"eu": "European Union", "us": "United States"}
CERTIFICATIONS = {
    "soc2": "SOC 2 Type II",
    "hipaa-baa": "HIPAA BAA",
    "iso27001": "ISO 27001",
    "gdpr-dpa": "GDPR DPA",
}
CAPABILITIES = {
    "reasoning": "Reasoning",
    "code": "Code",
    "summarization": "Summarization",
    "classification": "Classification",
    "extraction": "Extraction",
    "creative": "Creative writing",
    "multilingual": "Multilingual",
}
# slug: (name, sensitivity, description)
CLASSIFICATIONS = {
    "public": ("Public", 10, "Published or publishable information."),
    "internal": ("Internal", 20, "Everyday company information not meant for the public."),
    "confidential": ("Confidential", 30, "Contracts, financials, source code, unreleased plans."),
    "pii": ("Personal data (PII)", 40, "Anything that identifies a person: names, emails, account ids."),
    "phi": ("Health data (PHI)", 50, "Protected health information under HIPAA; needs a BAA."),
}


# --- Portfolio --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    slug: str
    name: str
    kind: str
    base_url: str
    credentials_env: str
    regions: tuple[str, ...]
    certifications: tuple[str, ...]
    evidence: str  # what the baseline public/internal approvals rest on


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    slug: str
    name: str
    family: str
    tier: str
    capabilities: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class VersionSpec:
    """One version; day offsets count from the day of loading (negative: in the past)."""

    key: str  # "provider/model/label"
    api_model_id: str
    context_window: int
    max_output_tokens: int
    input_cost: str
    output_cost: str
    latency_ms: int
    rpm: int
    tpm: int
    regions: tuple[str, ...]
    scores: dict[str, int]
    created: int
    approved: int | None = None
    deprecated: int | None = None
    retired: int | None = None
    deprecates_on: int | None = None
    retires_on: int | None = None
    successor: str | None = None  # label of the newer version of the same model
    notes: str = ""

    @property
    def provider(self) -> str:
        return self.key.split("/")[0]

    @property
    def model(self) -> str:
        return self.key.split("/")[1]

    @property
    def label(self) -> str:
        return self.key.split("/")[2]


@dataclass(frozen=True)
class CellSpec:
    """One compliance decision; ``decided`` and ``expires`` are day offsets like the versions'."""

    version: str
    classification: str
    decision: str
    reason: str
    decided: int
    evidence: str = ""
    evidence_url: str = ""
    regions: tuple[str, ...] = ()
    expires: int | None = None


PROVIDERS = [
    ProviderSpec(
        "openai",
        "OpenAI",
        Provider.Kind.OPENAI_COMPATIBLE,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        ("eu", "us"),
        ("soc2", "hipaa-baa", "iso27001", "gdpr-dpa"),
        "OpenAI DPA and SOC 2 Type II report on file (vendor review VR-0142).",
    ),
    ProviderSpec(
        "anthropic",
        "Anthropic",
        Provider.Kind.ANTHROPIC,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        ("eu", "us"),
        ("soc2", "hipaa-baa", "iso27001", "gdpr-dpa"),
        "Anthropic DPA and SOC 2 Type II report on file (vendor review VR-0157).",
    ),
    ProviderSpec(
        "google",
        "Google",
        Provider.Kind.GOOGLE,
        "https://generativelanguage.googleapis.com",
        "GOOGLE_API_KEY",
        ("eu", "us"),
        ("soc2", "iso27001", "gdpr-dpa"),
        "Google Cloud data processing terms and ISO 27001 certificate on file (vendor review VR-0133).",
    ),
    ProviderSpec(
        "helix",
        "Helix self-hosted",
        Provider.Kind.SELF_HOSTED,
        "https://helix.eu-central.example.com/v1",
        "HELIX_API_TOKEN",
        ("eu",),
        ("iso27001", "gdpr-dpa"),
        "Runs in our own EU cluster; covered by the company ISO 27001 scope (ISMS-07).",
    ),
]

ECONOMY, WORKHORSE, FRONTIER = Model.Tier.ECONOMY, Model.Tier.WORKHORSE, Model.Tier.FRONTIER

# provider, slug, name, family, tier, capabilities, description
MODELS = [
    ModelSpec("openai", "gpt-lite", "GPT Lite", "GPT", ECONOMY,
              ("summarization", "classification", "extraction", "multilingual"),
              "Fast, cheap model for high-volume classification and extraction."),
    ModelSpec("openai", "gpt-standard", "GPT Standard", "GPT", WORKHORSE,
              ("reasoning", "code", "summarization", "extraction", "creative", "multilingual"),
              "General-purpose default for most applications."),
    ModelSpec("openai", "gpt-deep-reasoner", "GPT Deep Reasoner", "GPT", FRONTIER, ("reasoning", "code"),
              "Slow, expensive reasoning model for hard analytical and coding tasks."),
    ModelSpec("anthropic", "claude-lark", "Claude Lark", "Claude", ECONOMY,
              ("summarization", "classification", "extraction"),
              "Small, quick model with a long context window."),
    ModelSpec("anthropic", "claude-quill", "Claude Quill", "Claude", WORKHORSE,
              ("reasoning", "code", "summarization", "extraction", "creative", "multilingual"),
              "Balanced model; strong at writing and long documents."),
    ModelSpec("anthropic", "claude-summit", "Claude Summit", "Claude", FRONTIER, ("reasoning", "code", "creative"),
              "Largest Claude model, for the hardest tasks."),
    ModelSpec("google", "gemini-spark", "Gemini Spark", "Gemini", ECONOMY,
              ("summarization", "classification", "multilingual"),
              "Very cheap model with a one-million-token context."),
    ModelSpec("google", "gemini-prism", "Gemini Prism", "Gemini", WORKHORSE,
              ("reasoning", "summarization", "extraction", "multilingual"),
              "Workhorse with a very long context, good for document analysis."),
    ModelSpec("google", "gemini-apex", "Gemini Apex", "Gemini", FRONTIER, ("reasoning", "code", "multilingual"),
              "Frontier reasoning model with native multilingual strength."),
    ModelSpec("helix", "helix-8b", "Helix 8B", "Helix", ECONOMY, ("classification", "extraction"),
              "Small open-weight model on our own GPUs; data never leaves the EU cluster."),
    ModelSpec("helix", "helix-70b", "Helix 70B", "Helix", WORKHORSE,
              ("reasoning", "summarization", "extraction", "multilingual"),
              "Open-weight workhorse on our own GPUs, for sensitive EU workloads."),
    ModelSpec("helix", "helix-coder-34b", "Helix Coder 34B", "Helix", WORKHORSE, ("code",),
              "Open-weight code model for internal developer tools."),
]  # fmt: skip

BOTH = ("eu", "us")
EU = ("eu",)

# Costs are USD per million tokens; the self-hosted ones are our internal GPU cost allocation.
VERSIONS = [
    VersionSpec(
        "openai/gpt-lite/1.0", "gpt-lite-1.0", 128_000, 16_384, "0.15", "0.60", 450, 10_000, 2_000_000, BOTH,
        {"summarization": 68, "classification": 74, "extraction": 70, "multilingual": 65},
        created=-560, approved=-545, deprecated=-150, retired=-60, retires_on=-60, successor="2.0",
    ),
    VersionSpec(
        "openai/gpt-lite/2.0", "gpt-lite-2.0", 400_000, 16_384, "0.10", "0.40", 380, 10_000, 4_000_000, BOTH,
        {"summarization": 74, "classification": 80, "extraction": 77, "multilingual": 72},
        created=-165, approved=-150,
    ),
    VersionSpec(
        "openai/gpt-standard/4.0", "gpt-standard-4.0", 128_000, 16_384, "2.50", "10.00", 900, 5_000, 800_000, BOTH,
        {"reasoning": 78, "code": 76, "summarization": 82, "extraction": 80, "creative": 79, "multilingual": 80},
        created=-340, approved=-320, deprecated=-45, retires_on=40, successor="4.1",
        notes="Deprecated in favour of 4.1; migrate before the planned retirement.",
    ),
    VersionSpec(
        "openai/gpt-standard/4.1", "gpt-standard-4.1", 1_000_000, 32_768, "2.00", "8.00", 850, 5_000, 1_000_000, BOTH,
        {"reasoning": 83, "code": 84, "summarization": 85, "extraction": 86, "creative": 80, "multilingual": 83},
        created=-70, approved=-50,
    ),
    VersionSpec(
        "openai/gpt-deep-reasoner/1.0", "gpt-deep-reasoner-1.0", 200_000, 100_000, "10.00", "40.00", 9_000,
        1_000, 300_000, ("us",), {"reasoning": 94, "code": 91},
        created=-130, approved=-110,
    ),
    VersionSpec(
        "openai/gpt-deep-reasoner/1.5-preview", "gpt-deep-reasoner-1.5-preview", 200_000, 100_000, "8.00", "32.00",
        7_500, 500, 150_000, ("us",), {"reasoning": 96, "code": 93},
        created=-12, notes="Preview under evaluation on public benchmark data.",
    ),
    VersionSpec(
        "anthropic/claude-lark/3.5", "claude-lark-3-5", 200_000, 8_192, "0.80", "4.00", 600, 4_000, 400_000, BOTH,
        {"summarization": 79, "classification": 81, "extraction": 80},
        created=-300, approved=-285, deprecates_on=60,
        notes="Deprecation planned once 4.0 passes evaluation.",
    ),
    VersionSpec(
        "anthropic/claude-lark/4.0", "claude-lark-4-0", 200_000, 64_000, "1.00", "5.00", 550, 4_000, 400_000, BOTH,
        {"summarization": 84, "classification": 85, "extraction": 84},
        created=-6,
    ),
    VersionSpec(
        "anthropic/claude-quill/3.0", "claude-quill-3-0", 200_000, 4_096, "3.00", "15.00", 1_400, 2_000, 400_000,
        BOTH, {"reasoning": 72, "code": 70, "summarization": 80, "extraction": 76, "creative": 82, "multilingual": 75},
        created=-640, approved=-620, deprecated=-270, retired=-180, retires_on=-180, successor="3.5",
    ),
    VersionSpec(
        "anthropic/claude-quill/3.5", "claude-quill-3-5", 200_000, 8_192, "3.00", "15.00", 1_300, 4_000, 400_000,
        BOTH, {"reasoning": 81, "code": 84, "summarization": 85, "extraction": 83, "creative": 86, "multilingual": 80},
        created=-290, approved=-275, deprecated=-30, retires_on=25, successor="4.0",
        notes="Retirement announced by the provider; applications should move to 4.0.",
    ),
    VersionSpec(
        "anthropic/claude-quill/4.0", "claude-quill-4-0", 200_000, 64_000, "3.00", "15.00", 1_200, 4_000, 800_000,
        BOTH, {"reasoning": 87, "code": 89, "summarization": 88, "extraction": 87, "creative": 88, "multilingual": 84},
        created=-60, approved=-40,
    ),
    VersionSpec(
        "anthropic/claude-summit/4.0", "claude-summit-4-0", 200_000, 32_000, "15.00", "75.00", 4_000, 1_000,
        200_000, BOTH, {"reasoning": 95, "code": 94, "creative": 92},
        created=-100, approved=-80,
    ),
    VersionSpec(
        "google/gemini-spark/1.5", "gemini-spark-1.5", 1_000_000, 8_192, "0.075", "0.30", 350, 2_000, 4_000_000,
        BOTH, {"summarization": 66, "classification": 70, "multilingual": 72},
        created=-480, approved=-460, deprecated=-120, retired=-20, retires_on=-20, successor="2.0",
    ),
    VersionSpec(
        "google/gemini-spark/2.0", "gemini-spark-2.0", 1_000_000, 8_192, "0.10", "0.40", 320, 2_000, 4_000_000,
        BOTH, {"summarization": 75, "classification": 77, "multilingual": 79},
        created=-140, approved=-125,
    ),
    VersionSpec(
        "google/gemini-prism/1.5", "gemini-prism-1.5", 2_000_000, 8_192, "1.25", "5.00", 1_100, 1_000, 2_000_000,
        BOTH, {"reasoning": 76, "summarization": 83, "extraction": 79, "multilingual": 82},
        created=-430, approved=-415,
    ),
    VersionSpec(
        "google/gemini-apex/2.5", "gemini-apex-2.5", 1_000_000, 65_536, "1.25", "10.00", 3_500, 1_000, 2_000_000,
        BOTH, {"reasoning": 93, "code": 90, "multilingual": 90},
        created=-110, approved=-90,
    ),
    VersionSpec(
        "helix/helix-8b/1.2", "helix-8b-instruct-v1.2", 32_768, 4_096, "0.02", "0.02", 250, 600, 200_000, EU,
        {"classification": 71, "extraction": 66},
        created=-200, approved=-185,
    ),
    VersionSpec(
        "helix/helix-70b/2.0", "helix-70b-instruct-v2.0", 128_000, 8_192, "0.35", "0.40", 1_500, 300, 150_000, EU,
        {"reasoning": 74, "summarization": 79, "extraction": 77, "multilingual": 78},
        created=-240, approved=-220,
    ),
    VersionSpec(
        "helix/helix-70b/2.1", "helix-70b-instruct-v2.1", 128_000, 8_192, "0.35", "0.40", 1_400, 300, 150_000, EU,
        {"reasoning": 77, "summarization": 81, "extraction": 79, "multilingual": 80},
        created=-15, notes="New weights; load test on the EU cluster pending.",
    ),
    VersionSpec(
        "helix/helix-coder-34b/1.0", "helix-coder-34b-v1.0", 65_536, 8_192, "0.20", "0.25", 900, 300, 150_000, EU,
        {"code": 78},
        created=-160, approved=-150,
    ),
]  # fmt: skip

_BAA = "HIPAA BAA signed and in force; zero data retention enabled for our organisation."

# Decisions beyond the baseline (public and internal for every version that was approved).
SENSITIVE_CELLS = [
    CellSpec("openai/gpt-lite/2.0", "confidential", DENIED,
             "Shared-capacity endpoint keeps prompts 30 days for abuse monitoring; no zero retention for this model.",
             decided=-140),
    CellSpec("openai/gpt-standard/4.0", "confidential", APPROVED, "Zero data retention confirmed for the org.",
             decided=-300, evidence="Zero data retention addendum ZDR-17, signed."),
    CellSpec("openai/gpt-standard/4.0", "pii", APPROVED, "EU processing only, per the DPA's transfer clauses.",
             decided=-300, evidence="OpenAI DPA with EU data residency (contract LGL-2204).", regions=EU, expires=60),
    CellSpec("openai/gpt-standard/4.1", "confidential", APPROVED, "Same terms as 4.0 carried over.",
             decided=-45, evidence="Zero data retention addendum ZDR-17 covers all GPT Standard versions.",
             expires=320),
    CellSpec("openai/gpt-standard/4.1", "pii", APPROVED, "EU processing only, per the DPA's transfer clauses.",
             decided=-45, evidence="OpenAI DPA with EU data residency (contract LGL-2204).", regions=EU, expires=320),
    CellSpec("openai/gpt-standard/4.1", "phi", APPROVED, "Covered by the BAA for US processing.",
             decided=-40, evidence=_BAA, evidence_url="https://legal.example.com/contracts/LGL-2291",
             regions=("us",), expires=325),
    CellSpec("openai/gpt-deep-reasoner/1.0", "confidential", APPROVED, "Security review passed.",
             decided=-100, evidence="Security review SR-0388.", expires=265),
    CellSpec("openai/gpt-deep-reasoner/1.0", "pii", DENIED,
             "Reasoning traces are retained by the provider; DPA addendum still under negotiation.", decided=-100),
    CellSpec("openai/gpt-deep-reasoner/1.5-preview", "public", APPROVED, "Evaluation on public benchmark data only.",
             decided=-10, evidence="Evaluation plan EV-112."),
    CellSpec("anthropic/claude-lark/3.5", "confidential", APPROVED, "Security review passed.",
             decided=-280, evidence="Security review SR-0301."),
    CellSpec("anthropic/claude-lark/3.5", "pii", APPROVED, "DPA covers personal data in both regions.",
             decided=-280, evidence="Anthropic DPA (contract LGL-2310).", expires=85),
    CellSpec("anthropic/claude-quill/3.5", "confidential", APPROVED, "Security review passed.",
             decided=-270, evidence="Security review SR-0305."),
    CellSpec("anthropic/claude-quill/3.5", "pii", APPROVED, "DPA covers personal data in both regions.",
             decided=-270, evidence="Anthropic DPA (contract LGL-2310).", expires=95),
    CellSpec("anthropic/claude-quill/4.0", "confidential", APPROVED, "Security review passed.",
             decided=-38, evidence="Security review SR-0412.", expires=327),
    CellSpec("anthropic/claude-quill/4.0", "pii", APPROVED, "DPA covers personal data in both regions.",
             decided=-38, evidence="Anthropic DPA (contract LGL-2310).", expires=327),
    CellSpec("anthropic/claude-quill/4.0", "phi", APPROVED, "Covered by the BAA for US processing.",
             decided=-35, evidence=_BAA, evidence_url="https://legal.example.com/contracts/LGL-2315",
             regions=("us",), expires=330),
    CellSpec("anthropic/claude-summit/4.0", "confidential", APPROVED, "Security review passed.",
             decided=-75, evidence="Security review SR-0397."),
    CellSpec("anthropic/claude-summit/4.0", "pii", APPROVED, "Approved for EU processing only.",
             decided=-75, evidence="Anthropic DPA (contract LGL-2310), EU residency.", regions=EU, expires=290),
    CellSpec("anthropic/claude-summit/4.0", "phi", DENIED, "Not yet listed in the BAA amendment.", decided=-75),
    CellSpec("google/gemini-spark/2.0", "confidential", DENIED,
             "Prompt logging cannot be disabled on this model (security review SR-0311).", decided=-120),
    CellSpec("google/gemini-prism/1.5", "confidential", APPROVED, "Annual vendor security review.",
             decided=-400, evidence="Google Cloud security assessment SR-0218, valid one year.", expires=-20),
    CellSpec("google/gemini-apex/2.5", "confidential", APPROVED, "Approved until the assessment renewal.",
             decided=-85, evidence="Google Cloud security assessment SR-0218 renewal, interim sign-off.",
             expires=18),
    CellSpec("google/gemini-apex/2.5", "pii", DENIED, "EU residency for this model not contractually guaranteed.",
             decided=-85),
    CellSpec("google/gemini-apex/2.5", "phi", DENIED, "No BAA covers the Gemini API.", decided=-85),
    CellSpec("helix/helix-8b/1.2", "confidential", APPROVED, "Self-hosted; data stays in our cluster.",
             decided=-180, evidence="Architecture review AR-0093."),
    CellSpec("helix/helix-8b/1.2", "pii", APPROVED, "Self-hosted in the EU; DPIA completed.",
             decided=-180, evidence="DPIA-2025-04.", expires=185),
    CellSpec("helix/helix-70b/2.0", "confidential", APPROVED, "Self-hosted; data stays in our cluster.",
             decided=-215, evidence="Architecture review AR-0101."),
    CellSpec("helix/helix-70b/2.0", "pii", APPROVED, "Self-hosted in the EU; DPIA completed.",
             decided=-215, evidence="DPIA-2025-06."),
    CellSpec("helix/helix-70b/2.0", "phi", DENIED, "The cluster is not yet in scope of the HIPAA risk assessment.",
             decided=-215),
    CellSpec("helix/helix-coder-34b/1.0", "confidential", APPROVED, "Self-hosted; approved for source code.",
             decided=-145, evidence="Architecture review AR-0104."),
    CellSpec("helix/helix-coder-34b/1.0", "pii", DENIED, "Code model; no use case for personal data.",
             decided=-145),
]  # fmt: skip


def compliance_plan() -> list[CellSpec]:
    """Every cell to seed: the routine public/internal approvals, then the considered decisions."""
    evidence = {provider.slug: provider.evidence for provider in PROVIDERS}
    baseline = [
        CellSpec(
            spec.key,
            classification,
            APPROVED,
            "Standard vendor terms reviewed.",
            decided=spec.approved + 3,
            evidence=evidence[spec.provider],
        )
        for spec in VERSIONS
        if spec.approved is not None
        for classification in ("public", "internal")
    ]
    return baseline + SENSITIVE_CELLS


# --- Teams, applications, people ---------------------------------------------------------------

# slug: (name, monthly budget in USD, contacts)
TEAMS = {
    "customer-care": ("Customer Care", Decimal("5000"), "care-leads@example.com\nfinops@example.com"),
    "clinical-research": ("Clinical Research", Decimal("12000"), "research-it@example.com\nprivacy@example.com"),
}
# slug: (name, team slug, allowed classifications, description)
APPLICATIONS = {
    "support-assistant": (
        "Support assistant",
        "customer-care",
        ("public", "internal", "pii"),
        "Drafts replies to customer emails for agents to review.",
    ),
    "ticket-triage": (
        "Ticket triage",
        "customer-care",
        ("public", "internal", "confidential"),
        "Classifies incoming tickets and routes them to the right queue.",
    ),
    "trial-summarizer": (
        "Trial summarizer",
        "clinical-research",
        ("internal", "confidential", "pii", "phi"),
        "Summarises clinical trial reports and adverse-event narratives.",
    ),
}
# username: (role, email); the administrator also gets the Django admin (staff and superuser).
USERS = {
    "admin": (ADMINISTRATOR, "admin@example.com"),
    "reviewer": (REVIEWER, "reviewer@example.com"),
    "reviewer2": (REVIEWER, "reviewer2@example.com"),
    "auditor": (AUDITOR, "auditor@example.com"),
}


# --- Loading ----------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What a load did, for the command's summary."""

    created: Tally[str] = field(default_factory=Tally)
    passwords_reset: list[str] = field(default_factory=list)
    kept_passwords: list[str] = field(default_factory=list)
    audit_events: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # application slug: raw key, made this time


@dataclass(frozen=True)
class _Clock:
    """Turns the data's day offsets into moments and days relative to one fixed 'now'."""

    now: datetime.datetime

    def at(self, days: int) -> datetime.datetime:
        return self.now + datetime.timedelta(days=days)

    def on(self, days: int | None) -> datetime.date | None:
        if days is None:
            return None
        return timezone.localdate(self.now) + datetime.timedelta(days=days)


@transaction.atomic
def load_demo(*, password: str = DEFAULT_PASSWORD, reset_passwords: bool = False) -> DemoResult:
    """Create whatever part of the demo is missing, all or nothing.

    ``reset_passwords`` also gives existing demo users ``password``; without it their password
    is theirs to keep, since someone may have changed it on purpose.
    """
    result = DemoResult()
    events_before = AuditEvent.objects.count()
    clock = _Clock(timezone.now().replace(second=0, microsecond=0))
    _load_vocabulary(result)
    models_by_key = _load_models(result, _load_providers(result))
    new_versions = _load_versions(clock, result, models_by_key)
    _link_successors(new_versions)
    _load_applications(result, _load_teams(result))
    _load_users(result, password=password, reset_passwords=reset_passwords)
    result.keys = policies_demo.load(result, clock.now)
    result.audit_events = AuditEvent.objects.count() - events_before
    # Without a broker no beat runs: seal and sign what the demo recorded, so the ledger verifies.
    seal_all()
    make_checkpoint()
    return result


def _ensure(
    model_class: type[M],
    result: DemoResult,
    *,
    slug: str,
    data: dict[str, Any],
    m2m: dict[str, Any] | None = None,
    unique_name: bool = False,
    **lookup: Any,
) -> M:
    """The object with this slug, created through the audited service if it is missing.

    With ``unique_name`` an object that kept its name but got a new slug also counts as present:
    creating the demo's one would break the unique name (and duplicate it in people's eyes).
    """
    match = Q(slug=slug) | Q(name=data["name"]) if unique_name else Q(slug=slug)
    existing = model_class._default_manager.filter(match, **lookup).first()
    if existing is not None:
        return existing
    result.created[str(model_class._meta.verbose_name_plural)] += 1
    return services.create_object(model_class, data={"slug": slug, **lookup, **data}, m2m=m2m)


def _load_vocabulary(result: DemoResult) -> None:
    for slug, name in REGIONS.items():
        _ensure(Region, result, slug=slug, data={"name": name})
    for slug, name in CERTIFICATIONS.items():
        _ensure(Certification, result, slug=slug, data={"name": name})
    for slug, name in CAPABILITIES.items():
        _ensure(Capability, result, slug=slug, data={"name": name})
    for slug, (name, sensitivity, description) in CLASSIFICATIONS.items():
        data = {"name": name, "sensitivity": sensitivity, "description": description}
        _ensure(DataClassification, result, slug=slug, data=data)


def _load_providers(result: DemoResult) -> dict[str, Provider]:
    """The demo's providers by their demo slug (an administrator may have changed the stored one)."""
    providers = {}
    for spec in PROVIDERS:
        data = {
            "name": spec.name,
            "kind": spec.kind,
            "base_url": spec.base_url,
            "credentials_env": spec.credentials_env,
        }
        m2m = {
            "regions": Region.objects.filter(slug__in=spec.regions),
            "certifications": Certification.objects.filter(slug__in=spec.certifications),
        }
        providers[spec.slug] = _ensure(Provider, result, slug=spec.slug, data=data, m2m=m2m, unique_name=True)
    return providers


def _load_models(result: DemoResult, providers: dict[str, Provider]) -> dict[tuple[str, str], Model]:
    """The demo's models by (demo provider slug, demo model slug)."""
    models_by_key = {}
    for spec in MODELS:
        provider = providers[spec.provider]
        data = {"name": spec.name, "family": spec.family, "tier": spec.tier, "description": spec.description}
        m2m = {"capabilities": Capability.objects.filter(slug__in=spec.capabilities)}
        models_by_key[spec.provider, spec.slug] = _ensure(
            Model, result, slug=spec.slug, data=data, m2m=m2m, unique_name=True, provider=provider
        )
    return models_by_key


def _load_versions(
    clock: _Clock, result: DemoResult, models_by_key: dict[tuple[str, str], Model]
) -> dict[str, tuple[VersionSpec, ModelVersion]]:
    """Create the missing versions with their lifecycle history and matrix cells.

    An existing version is left alone entirely: it may have moved on (retired, re-hosted) and
    replaying its history would fail or undo an administrator's work.
    """
    cells_by_version: dict[str, list[CellSpec]] = {}
    for cell in compliance_plan():
        cells_by_version.setdefault(cell.version, []).append(cell)
    created = {}
    for spec in VERSIONS:
        model = models_by_key[spec.provider, spec.model]
        if ModelVersion.objects.filter(model=model, label=spec.label).exists():
            continue
        version = _create_version(spec, model, clock)
        result.created["model versions"] += 1
        _replay_history(version, spec, cells_by_version.get(spec.key, []), clock, result)
        created[spec.key] = (spec, version)
    return created


def _create_version(spec: VersionSpec, model: Model, clock: _Clock) -> ModelVersion:
    data = {
        "model": model,
        "label": spec.label,
        "api_model_id": spec.api_model_id,
        "context_window": spec.context_window,
        "max_output_tokens": spec.max_output_tokens,
        "input_cost_per_mtok": Decimal(spec.input_cost),
        "output_cost_per_mtok": Decimal(spec.output_cost),
        "typical_latency_ms": spec.latency_ms,
        "rate_limit_rpm": spec.rpm,
        "rate_limit_tpm": spec.tpm,
        "quality_scores": spec.scores,
        "deprecates_on": clock.on(spec.deprecates_on),
        "retires_on": clock.on(spec.retires_on),
        "notes": spec.notes,
        "created_at": clock.at(spec.created),
    }
    return services.create_version(data=data, regions=Region.objects.filter(slug__in=spec.regions))


def _replay_history(
    version: ModelVersion, spec: VersionSpec, cells: list[CellSpec], clock: _Clock, result: DemoResult
) -> None:
    """Step through the lifecycle on the planned days, deciding the matrix cells before retirement
    (the matrix refuses approvals for a retired version, as it should)."""
    if spec.approved is not None:
        version = services.transition_version(
            version, to=Lifecycle.APPROVED, reason="Passed evaluation.", when=clock.at(spec.approved)
        )
    for cell in cells:
        _decide(version, cell, clock)
        result.created["compliance cells"] += 1
    if spec.deprecated is not None:
        version = services.transition_version(
            version, to=Lifecycle.DEPRECATED, reason="Superseded by a newer version.", when=clock.at(spec.deprecated)
        )
    if spec.retired is not None:
        services.transition_version(
            version, to=Lifecycle.RETIRED, reason="Planned retirement date reached.", when=clock.at(spec.retired)
        )


def _decide(version: ModelVersion, cell: CellSpec, clock: _Clock) -> None:
    services.set_compliance(
        model_version=version,
        classification=DataClassification.objects.get(slug=cell.classification),
        decision=cell.decision,
        reason=cell.reason,
        regions=Region.objects.filter(slug__in=cell.regions),
        expires_on=clock.on(cell.expires),
        evidence=cell.evidence,
        evidence_url=cell.evidence_url,
        decided_at=clock.at(cell.decided),
    )


def _link_successors(new_versions: dict[str, tuple[VersionSpec, ModelVersion]]) -> None:
    """Point each newly created old version at its replacement (a non-technical field, so allowed
    on frozen versions); versions that already existed keep whatever successor they have."""
    for spec, version in new_versions.values():
        if spec.successor is None:
            continue
        successor = ModelVersion.objects.get(model=version.model, label=spec.successor)
        services.update_version(version, data={"successor": successor})


def _load_teams(result: DemoResult) -> dict[str, Team]:
    """Teams have no service yet: created with the ORM, validated like a form would."""
    teams = {}
    for slug, (name, budget, contacts) in TEAMS.items():
        team = Team.objects.filter(Q(slug=slug) | Q(name=name)).first()
        if team is None:
            team = Team(slug=slug, name=name, monthly_budget_usd=budget, contacts=contacts)
            team.full_clean()
            team.save()
            result.created["teams"] += 1
        teams[slug] = team
    return teams


def _load_applications(result: DemoResult, teams: dict[str, Team]) -> None:
    for slug, (name, team_slug, classifications, description) in APPLICATIONS.items():
        if Application.objects.filter(slug=slug).exists():
            continue
        application = Application(slug=slug, name=name, team=teams[team_slug], description=description)
        application.full_clean()
        application.save()
        application.allowed_classifications.set(DataClassification.objects.filter(slug__in=classifications))
        result.created["applications"] += 1


def _load_users(result: DemoResult, *, password: str, reset_passwords: bool) -> None:
    for username, (role, email) in USERS.items():
        user = User.objects.filter(username=username).first()
        if user is None:
            _create_user(username, role, email, password)
            result.created["users"] += 1
        elif not reset_passwords:
            result.kept_passwords.append(username)
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            result.passwords_reset.append(username)


def _create_user(username: str, role: str, email: str, password: str) -> User:
    is_admin = role == ADMINISTRATOR
    user = User.objects.create_user(
        username=username, email=email, password=password, is_staff=is_admin, is_superuser=is_admin
    )
    user.groups.add(Group.objects.get(name=role))
    return user
