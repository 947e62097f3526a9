"""The routing engine: which model version answers a request, and why.

Pure Python, no Django and no database: ``policies.snapshot`` compiles the registry, the
compliance matrix, the applications and the active policy versions into a ``Snapshot``, and
``decide`` works on that alone, so it is fast, testable and benchmarkable by itself.

Hard filters come first, whatever the rules say: never a retired or candidate version, never a
provider that is not active, never a version the compliance matrix does not approve for the
request's classification (and region, and day), never a classification the application may not
send. Then the first matching rule picks among what survives. If nothing survives, the answer is
a ``Refusal`` that names every candidate and why it was excluded: fail closed.

Budgets are not known here (spend lives in counters, see ``policies.counters``); when a request is
over budget and its rule says ``over_budget: downgrade``, ``downgrade`` picks again, among the
economy tier only, through the same hard filters.
"""

import datetime
import hashlib
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_FALLBACKS = 3
DEFAULT_OUTPUT_TOKENS = 1024  # assumed for cost estimates when a request does not say
ROUTABLE = ("approved", "deprecated")
ECONOMY = "economy"
REFUSE, DOWNGRADE = "refuse", "downgrade"  # what a rule does over budget; see policies.document


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    ref: str  # provider/model/version, as policy documents name it
    provider: str  # slug
    provider_name: str
    provider_status: str
    model: str  # name
    label: str
    api_model_id: str
    tier: str
    lifecycle: str
    regions: frozenset[str]
    context_window: int
    input_cost: float  # USD per token
    output_cost: float
    latency_ms: int
    quality: Mapping[str, float]

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_cost + output_tokens * self.output_cost


@dataclass(frozen=True, slots=True)
class Approval:
    """An approved compliance cell. Empty ``regions`` means every region the version is hosted in."""

    regions: frozenset[str]
    expires_on: datetime.date | None


@dataclass(frozen=True, slots=True)
class App:
    id: int
    slug: str
    name: str
    team: str  # slug
    team_name: str
    classifications: frozenset[str]
    policy: str | None  # slug of the governing policy
    content_capture: bool
    team_id: int = 0
    # Budgets in micro-dollars, as the spend counters count; None: no budget (the team always has
    # one in the database; hand-built snapshots may leave it out).
    team_budget_micro: int | None = None
    requests_per_minute: int | None = None  # None: no quota
    budget_micro: int | None = None  # the application's own, on top of the team's


@dataclass(frozen=True, slots=True)
class Key:
    app: App
    expires_at: datetime.datetime | None
    revoked_at: datetime.datetime | None = None


@dataclass(frozen=True, slots=True)
class Match:
    task_types: frozenset[str] | None
    classifications: frozenset[str] | None
    applications: frozenset[str] | None
    teams: frozenset[str] | None
    complexity: frozenset[str] | None
    regions: frozenset[str] | None
    min_tokens: int
    max_tokens: int | None

    def accepts(self, request: "Request") -> bool:
        return (
            (self.task_types is None or request.task_type in self.task_types)
            and (self.classifications is None or request.classification in self.classifications)
            and (self.applications is None or request.app.slug in self.applications)
            and (self.teams is None or request.app.team in self.teams)
            and (self.complexity is None or request.complexity in self.complexity)
            and (self.regions is None or request.region in self.regions)
            and self.min_tokens <= request.input_tokens
            and (self.max_tokens is None or request.input_tokens <= self.max_tokens)
        )


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    action: str  # pinned, tier, cheapest, fastest, split
    pinned: str | None = None
    tier: str | None = None
    min_quality: float | None = None
    max_cost_usd: float | None = None
    split: tuple[tuple[str, int], ...] = ()
    fallbacks: tuple[str, ...] = ()
    escalation: tuple[str, str] | None = None  # (complexity, tier)
    verifier: str | None = None
    over_budget: str = REFUSE


@dataclass(frozen=True, slots=True)
class Policy:
    slug: str
    version: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Snapshot:
    generation: int
    compliance_revision: int
    versions: Mapping[str, Version]  # by ref
    approvals: Mapping[tuple[int, str], Approval]  # (version id, classification slug)
    keys: Mapping[str, Key]  # by key hash
    policies: Mapping[str, Policy]  # active version of each policy, by slug
    task_types: frozenset[str]
    classifications: frozenset[str]
    regions: frozenset[str]
    by_id: Mapping[int, Version] = field(init=False)
    by_tier: Mapping[str, tuple[Version, ...]] = field(init=False)
    # Per classification: versions that pass every filter that does not depend on the request
    # (lifecycle, provider status, an approval exists). Only these can be chosen from a pool.
    eligible: Mapping[str, frozenset[int]] = field(init=False)
    # Pools of pool-based actions, per (rule, action, tier, task type, classification), built on first use.
    pools: dict[tuple[int, str, str | None, str, str], tuple[Version, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        by_tier: dict[str, list[Version]] = {}
        for version in self.versions.values():
            by_tier.setdefault(version.tier, []).append(version)
        object.__setattr__(self, "by_id", {v.id: v for v in self.versions.values()})
        object.__setattr__(self, "by_tier", {tier: tuple(vs) for tier, vs in by_tier.items()})
        eligible: dict[str, set[int]] = {}
        for version_id, classification in self.approvals:
            approved = self.by_id.get(version_id)
            if approved is not None and approved.lifecycle in ROUTABLE and approved.provider_status == "active":
                eligible.setdefault(classification, set()).add(version_id)
        object.__setattr__(self, "eligible", {c: frozenset(ids) for c, ids in eligible.items()})
        object.__setattr__(self, "pools", {})


@dataclass(frozen=True, slots=True)
class Request:
    app: App
    task_type: str
    classification: str
    region: str | None = None
    complexity: str | None = None
    input_tokens: int = 0
    max_output_tokens: int | None = None
    max_cost_usd: float | None = None
    max_latency_ms: int | None = None
    request_id: str = ""

    @property
    def output_tokens(self) -> int:
        return DEFAULT_OUTPUT_TOKENS if self.max_output_tokens is None else self.max_output_tokens

    @classmethod
    def from_body(cls, app: App, body: Mapping[str, Any], request_id: str = "") -> "Request":
        """A request from the routing API's JSON fields: validated by the API, or as the audit log keeps them."""
        cost = body.get("max_cost_usd")
        return cls(
            app=app,
            task_type=body["task_type"],
            classification=body["data_classification"],
            region=body.get("region"),
            complexity=body.get("complexity"),
            input_tokens=body.get("input_tokens") or 0,
            max_output_tokens=body.get("max_output_tokens"),
            max_cost_usd=float(cost) if cost is not None else None,
            max_latency_ms=body.get("max_latency_ms"),
            request_id=request_id or body.get("request_id") or "",
        )


@dataclass(frozen=True)
class Decision:
    model: Version
    fallbacks: tuple[Version, ...]
    verifier: Version | None
    policy: Policy
    rule: Rule
    reasons: tuple[str, ...]
    estimated_cost_usd: float


@dataclass(frozen=True)
class Refusal:
    detail: str
    policy: Policy | None
    rule: Rule | None
    excluded: tuple[tuple[Version, str], ...]


def compile_rule(rule: Mapping[str, Any]) -> Rule:
    """A validated document rule (see ``policies.document``) in the engine's form."""
    match = rule.get("match") or {}

    def members(key: str) -> frozenset[str] | None:
        values = match.get(key) or []
        return frozenset(values) if values else None

    tokens = match.get("input_tokens") or {}
    action = rule["action"]
    kind, value = next(iter(action.items()))
    escalation = rule.get("escalation")
    return Rule(
        name=rule["name"],
        match=Match(
            task_types=members("task_types"),
            classifications=members("classifications"),
            applications=members("applications"),
            teams=members("teams"),
            complexity=members("complexity"),
            regions=members("regions"),
            min_tokens=tokens.get("min", 0),
            max_tokens=tokens.get("max"),
        ),
        action=kind,
        pinned=value if kind == "pinned" else None,
        tier=value if kind == "tier" else (value.get("tier") if kind == "cheapest" else None),
        min_quality=value["min_quality"] if kind == "cheapest" else None,
        max_cost_usd=value["max_cost_usd"] if kind == "fastest" else None,
        split=tuple((entry["model_version"], entry["weight"]) for entry in value) if kind == "split" else (),
        fallbacks=tuple(rule.get("fallbacks") or ()),
        escalation=(escalation["complexity"], escalation["tier"]) if escalation else None,
        verifier=rule.get("verifier"),
        over_budget=rule.get("over_budget") or REFUSE,
    )


def exclusion(snapshot: Snapshot, version: Version, request: Request, today: datetime.date) -> str | None:
    """Why ``version`` may not serve ``request`` today, or None if it may. The hard filters."""
    if version.lifecycle not in ROUTABLE:
        return "retired" if version.lifecycle == "retired" else "a candidate: not approved for production"
    if version.provider_status != "active":
        return f"provider {version.provider} is {version.provider_status}"
    approval = snapshot.approvals.get((version.id, request.classification))
    if approval is None:
        return f"not approved for {request.classification} data"
    if approval.expires_on is not None and approval.expires_on < today:
        return f"approval for {request.classification} data expired on {approval.expires_on.isoformat()}"
    if request.region is not None:
        if request.region not in version.regions:
            return f"not hosted in {request.region}"
        if approval.regions and request.region not in approval.regions:
            return f"{request.classification} data approved only in {', '.join(sorted(approval.regions))}"
    elif approval.regions:
        return (
            f"{request.classification} data approved only in {', '.join(sorted(approval.regions))}, "
            "and the request names no region"
        )
    needed = request.input_tokens + request.output_tokens
    if needed > version.context_window:
        return f"context window of {version.context_window} tokens is smaller than the {needed} needed"
    if request.max_cost_usd is not None:
        cost = version.cost(request.input_tokens, request.output_tokens)
        if cost > request.max_cost_usd:
            return f"estimated cost ${cost:.6f} is above the request's limit of ${request.max_cost_usd}"
    if request.max_latency_ms is not None and version.latency_ms > request.max_latency_ms:
        return f"typical latency of {version.latency_ms} ms is above the request's limit of {request.max_latency_ms} ms"
    return None


def bucket(request_id: str) -> int:
    """0-99, the same for the same request id: weighted splits are reproducible."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def _ranked(
    snapshot: Snapshot, rule: Rule, request: Request, action: str, tier: str | None
) -> tuple[list[Version], list[tuple[Version, str]]]:
    """The action's candidates in order of preference, and those its own criteria set aside."""
    task, tokens_in, tokens_out = request.task_type, request.input_tokens, request.output_tokens
    if action == "pinned":
        pinned = rule.pinned
        return [snapshot.versions[pinned]] if pinned is not None and pinned in snapshot.versions else [], []
    if action == "split":
        entries = [(snapshot.versions[ref], weight) for ref, weight in rule.split if ref in snapshot.versions]
        point, total, first = bucket(request.request_id), 0, 0
        for index, (_, weight) in enumerate(entries):
            total += weight
            if point < total:
                first = index
                break
        ordered = [entries[first][0]] + [v for i, (v, _) in enumerate(entries) if i != first]
        return ordered, []
    pool = snapshot.by_tier.get(tier, ()) if tier else tuple(snapshot.versions.values())
    if action == "tier":
        return sorted(pool, key=lambda v: (-v.quality.get(task, 0), v.cost(tokens_in, tokens_out), v.id)), []
    set_aside: list[tuple[Version, str]] = []
    if action == "cheapest":
        assert rule.min_quality is not None
        keep = []
        for version in pool:
            score = version.quality.get(task)
            if score is None or score < rule.min_quality:
                set_aside.append(
                    (
                        version,
                        f"{task} quality {score if score is not None else 'unscored'} is below {rule.min_quality:g}",
                    )
                )
            else:
                keep.append(version)
        return sorted(keep, key=lambda v: (v.cost(tokens_in, tokens_out), v.latency_ms, v.id)), set_aside
    assert action == "fastest" and rule.max_cost_usd is not None
    keep = []
    for version in pool:
        cost = version.cost(tokens_in, tokens_out)
        if cost > rule.max_cost_usd:
            set_aside.append((version, f"estimated cost ${cost:.6f} is above the rule's ${rule.max_cost_usd:g}"))
        else:
            keep.append(version)
    return sorted(keep, key=lambda v: (v.latency_ms, v.cost(tokens_in, tokens_out), v.id)), set_aside


def _pool(snapshot: Snapshot, rule: Rule, request: Request, action: str, tier: str | None) -> tuple[Version, ...]:
    """The eligible versions a pool-based action chooses from, in its static order (cached).

    Tier: best score for the task first (ties: lower list price). Fastest: lowest latency first.
    Cheapest: those meeting the quality floor; ordering by cost depends on the request's tokens.
    """
    key = (id(rule), action, tier, request.task_type, request.classification)
    pool = snapshot.pools.get(key)
    if pool is None:
        eligible = snapshot.eligible.get(request.classification, frozenset())
        source = snapshot.by_tier.get(tier, ()) if tier else tuple(snapshot.versions.values())
        members = [v for v in source if v.id in eligible]
        task = request.task_type
        if action == "tier":
            members.sort(key=lambda v: (-v.quality.get(task, 0), v.input_cost + v.output_cost, v.id))
        elif action == "fastest":
            members.sort(key=lambda v: (v.latency_ms, v.input_cost + v.output_cost, v.id))
        else:
            assert rule.min_quality is not None
            members = [v for v in members if v.quality.get(task, -1) >= rule.min_quality]
        pool = snapshot.pools[key] = tuple(members)
    return pool


def _preferred(snapshot: Snapshot, rule: Rule, request: Request, action: str, tier: str | None) -> Iterable[Version]:
    """The action's candidates in order of preference, cheaply: pools hold only eligible versions."""
    if action in ("pinned", "split"):
        return _ranked(snapshot, rule, request, action, tier)[0]
    pool = _pool(snapshot, rule, request, action, tier)
    tokens_in, tokens_out = request.input_tokens, request.output_tokens
    if action == "tier":
        return pool
    if action == "fastest":
        limit = rule.max_cost_usd
        return (v for v in pool if v.cost(tokens_in, tokens_out) <= limit)  # type: ignore[operator]
    priced = [(tokens_in * v.input_cost + tokens_out * v.output_cost, v.latency_ms, v.id, v) for v in pool]
    wanted = MAX_FALLBACKS + 1
    best = heapq.nsmallest(wanted * 2, priced)
    return itertools.chain((entry[3] for entry in best), _rest(priced, len(best)))


def _rest(priced: list[tuple[float, int, int, Version]], skip: int) -> Iterable[Version]:
    """The remaining candidates in cost order, sorted only if the cheapest few were all excluded."""
    if skip < len(priced):
        yield from (entry[3] for entry in sorted(priced)[skip:])


def _unique(versions: Iterable[Version]) -> list[Version]:
    seen: set[int] = set()
    ordered = []
    for version in versions:
        if version.id not in seen:
            seen.add(version.id)
            ordered.append(version)
    return ordered


def decide(snapshot: Snapshot, request: Request, today: datetime.date) -> Decision | Refusal:
    """The model version for ``request``, with fallbacks and reasons, or a refusal saying why not."""
    if request.classification not in request.app.classifications:
        return Refusal(f"{request.app.slug} may not send {request.classification} data.", None, None, ())
    policy = snapshot.policies.get(request.app.policy) if request.app.policy else None
    if policy is None:
        return Refusal(f"{request.app.slug} is governed by no active policy.", None, None, ())
    rule = next((rule for rule in policy.rules if rule.match.accepts(request)), None)
    if rule is None:
        return Refusal(f"No rule of policy {policy.slug} v{policy.version} matches this request.", policy, None, ())

    reasons = [f"rule '{rule.name}' of policy {policy.slug} v{policy.version} matched"]
    action, tier = rule.action, rule.tier
    if rule.escalation is not None and request.complexity == rule.escalation[0]:
        action, tier = "tier", rule.escalation[1]
        reasons.append(f"complexity {request.complexity}: escalated to the best {tier} version")
    fallbacks = [snapshot.versions[ref] for ref in rule.fallbacks if ref in snapshot.versions]
    candidates = itertools.chain(_preferred(snapshot, rule, request, action, tier), fallbacks)
    chosen, backups, excluded = _choose(snapshot, candidates, request, today)
    if chosen is None:
        return _refusal(snapshot, rule, policy, request, action, tier, fallbacks, today)
    reasons.append(_why_chosen(action, tier, rule, chosen, request))
    return _decision(snapshot, policy, rule, request, today, chosen, backups, excluded, reasons)


def _choose(
    snapshot: Snapshot, candidates: Iterable[Version], request: Request, today: datetime.date
) -> tuple[Version | None, list[Version], list[tuple[Version, str]]]:
    """The first candidate that passes every hard filter, the next few as backups, and those excluded."""
    chosen: Version | None = None
    backups: list[Version] = []
    excluded: list[tuple[Version, str]] = []
    seen: set[int] = set()
    for version in candidates:
        if version.id in seen:
            continue
        seen.add(version.id)
        why = exclusion(snapshot, version, request, today)
        if why is not None:
            excluded.append((version, why))
        elif chosen is None:
            chosen = version
        elif len(backups) < MAX_FALLBACKS:
            backups.append(version)
        else:
            break
    return chosen, backups, excluded


def _decision(
    snapshot: Snapshot,
    policy: Policy,
    rule: Rule,
    request: Request,
    today: datetime.date,
    chosen: Version,
    backups: list[Version],
    excluded: list[tuple[Version, str]],
    reasons: list[str],
) -> Decision:
    if chosen.lifecycle == "deprecated":
        reasons.append(f"{chosen.ref} is deprecated")
    for version, why in excluded[:5]:
        reasons.append(f"excluded {version.ref}: {why}")
    verifier = _verifier(snapshot, rule, chosen, request, today, reasons)
    return Decision(
        model=chosen,
        fallbacks=tuple(backups),
        verifier=verifier,
        policy=policy,
        rule=rule,
        reasons=tuple(reasons),
        estimated_cost_usd=chosen.cost(request.input_tokens, request.output_tokens),
    )


def downgrade(
    snapshot: Snapshot, request: Request, decision: Decision, today: datetime.date, why: str
) -> Decision | Refusal:
    """The decision's rule again, restricted to the economy tier: for a request over budget.

    The rule's own preference comes first where it names economy versions (a pinned economy
    version, the cheapest economy one, an economy fallback), then the best-scoring rest of the
    economy tier. Escalation is ignored: being over budget wins. Every hard filter still applies,
    and if no economy version survives them the answer is a refusal, as for any rule. ``why`` says
    which budget is exceeded; it leads the reasons.
    """
    rule, policy = decision.rule, decision.policy
    reasons = [f"rule '{rule.name}' of policy {policy.slug} v{policy.version} matched", f"{why}: downgraded to economy"]
    fallbacks = [snapshot.versions[ref] for ref in rule.fallbacks if ref in snapshot.versions]
    fallbacks = [version for version in fallbacks if version.tier == ECONOMY]
    from_rule: set[int] = set()

    def preferred() -> Iterable[Version]:
        # Lazily: the choice usually stops after a few candidates, so a large pool is not sorted.
        for version in _preferred(snapshot, rule, request, rule.action, rule.tier):
            if version.tier == ECONOMY:
                from_rule.add(version.id)
                yield version

    economy = _preferred(snapshot, rule, request, "tier", ECONOMY)
    chosen, backups, excluded = _choose(snapshot, itertools.chain(preferred(), fallbacks, economy), request, today)
    if chosen is None:
        candidates = _unique([*preferred(), *fallbacks, *snapshot.by_tier.get(ECONOMY, ())])
        return Refusal(
            f"No economy model version may serve this request under rule '{rule.name}' ({why}).",
            policy,
            rule,
            tuple((version, exclusion(snapshot, version, request, today) or "not offered") for version in candidates),
        )
    if chosen.id in from_rule:
        reasons.append(_why_chosen(rule.action, rule.tier, rule, chosen, request))
    elif any(version.id == chosen.id for version in fallbacks):
        reasons.append(f"the rule's economy fallback: {chosen.ref}")
    else:
        reasons.append(f"best {request.task_type} score in the economy tier: {chosen.ref}")
    return _decision(snapshot, policy, rule, request, today, chosen, backups, excluded, reasons)


def _refusal(
    snapshot: Snapshot,
    rule: Rule,
    policy: Policy,
    request: Request,
    action: str,
    tier: str | None,
    fallbacks: list[Version],
    today: datetime.date,
) -> Refusal:
    """The slow path, taken only when nothing may serve: every candidate, and why it was excluded."""
    preferred, set_aside = _ranked(snapshot, rule, request, action, tier)
    excluded = list(set_aside)
    for version in _unique([*preferred, *fallbacks]):
        why = exclusion(snapshot, version, request, today)
        excluded.append((version, why or "not offered by the rule's action"))
    return Refusal(f"No model version may serve this request under rule '{rule.name}'.", policy, rule, tuple(excluded))


def _why_chosen(action: str, tier: str | None, rule: Rule, chosen: Version, request: Request) -> str:
    if action == "pinned":
        return (
            f"pinned to {chosen.ref}"
            if chosen.ref == rule.pinned
            else f"pinned version unavailable; fallback {chosen.ref}"
        )
    if action == "split":
        return f"weighted split, bucket {bucket(request.request_id)}: {chosen.ref}"
    if action == "tier":
        return f"best {request.task_type} score in the {tier} tier: {chosen.ref}"
    if action == "cheapest":
        return f"cheapest with {request.task_type} quality of at least {rule.min_quality:g}: {chosen.ref}"
    return f"fastest costing at most ${rule.max_cost_usd:g}: {chosen.ref}"


def _verifier(
    snapshot: Snapshot, rule: Rule, chosen: Version, request: Request, today: datetime.date, reasons: list[str]
) -> Version | None:
    """The rule's cross-check model, only if it too may see this data and comes from another provider."""
    if rule.verifier is None or rule.verifier not in snapshot.versions:
        return None
    verifier = snapshot.versions[rule.verifier]
    if verifier.provider == chosen.provider:
        reasons.append(f"verifier {verifier.ref} skipped: same provider as the chosen model")
        return None
    why = exclusion(snapshot, verifier, request, today)
    if why is not None:
        reasons.append(f"verifier {verifier.ref} skipped: {why}")
        return None
    return verifier
