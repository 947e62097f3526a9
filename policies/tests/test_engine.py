"""The routing engine alone, on hand-built snapshots: no database."""

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import engine

TODAY = datetime.date(2026, 11, 24)
APP = engine.App(
    id=1,
    slug="support",
    name="Support",
    team="care",
    team_name="Care",
    classifications=frozenset({"public", "internal", "pii", "phi"}),
    policy="main",
    content_capture=False,
)


def version(
    id: int, provider: str = "acme", tier: str = "workhorse", *, lifecycle: str = "approved", **kw: Any
) -> engine.Version:
    data: dict[str, Any] = {
        "id": id,
        "ref": f"{provider}/m{id}/v1",
        "provider": provider,
        "provider_name": provider.title(),
        "provider_status": "active",
        "model": f"M{id}",
        "label": "v1",
        "api_model_id": f"m{id}",
        "tier": tier,
        "lifecycle": lifecycle,
        "regions": frozenset({"eu", "us"}),
        "context_window": 100_000,
        "input_cost": 1e-6 * id,
        "output_cost": 2e-6 * id,
        "latency_ms": 1000 - id,
        "quality": {"code": 50 + id},
    }
    data.update(kw)
    return engine.Version(**data)


def snapshot(
    versions: list[engine.Version], rules: list[dict[str, Any]], approvals: dict[tuple[int, str], engine.Approval]
) -> engine.Snapshot:
    return engine.Snapshot(
        generation=1,
        compliance_revision=7,
        versions={v.ref: v for v in versions},
        approvals=approvals,
        keys={},
        policies={"main": engine.Policy("main", 3, tuple(engine.compile_rule(rule) for rule in rules))},
        task_types=frozenset({"code", "summarization"}),
        classifications=frozenset({"public", "internal", "pii", "phi"}),
        regions=frozenset({"eu", "us"}),
    )


def approve_all(versions: list[engine.Version], *classes: str) -> dict[tuple[int, str], engine.Approval]:
    return {(v.id, c): engine.Approval(frozenset(), None) for v in versions for c in classes}


def ask(snap: engine.Snapshot, **kw: Any) -> engine.Decision | engine.Refusal:
    data: dict[str, Any] = {"app": APP, "task_type": "code", "classification": "internal", "request_id": "r1"}
    data.update(kw)
    return engine.decide(snap, engine.Request(**data), TODAY)


def chosen(result: engine.Decision | engine.Refusal) -> str:
    assert isinstance(result, engine.Decision), result
    return result.model.ref


def test_pinned_version_is_chosen_with_fallbacks_in_order() -> None:
    a, b, c = version(1), version(2), version(3)
    snap = snapshot(
        [a, b, c],
        [{"name": "r", "action": {"pinned": a.ref}, "fallbacks": [c.ref, b.ref]}],
        approve_all([a, b, c], "internal"),
    )
    result = ask(snap)
    assert isinstance(result, engine.Decision)
    assert result.model == a
    assert [v.ref for v in result.fallbacks] == [c.ref, b.ref]
    assert result.rule.name == "r" and result.policy.version == 3
    assert result.estimated_cost_usd == pytest.approx(a.cost(0, engine.DEFAULT_OUTPUT_TOKENS))


def test_compliance_is_a_hard_filter_whatever_the_rule_says() -> None:
    a, b = version(1), version(2)
    approvals = approve_all([a, b], "internal") | {(b.id, "phi"): engine.Approval(frozenset(), None)}
    snap = snapshot([a, b], [{"name": "r", "action": {"pinned": a.ref}, "fallbacks": [b.ref]}], approvals)
    result = ask(snap, classification="phi")
    assert chosen(result) == b.ref
    assert f"excluded {a.ref}: not approved for phi data" in result.reasons  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("approval", "region", "expected"),
    [
        (engine.Approval(frozenset(), datetime.date(2026, 11, 23)), "eu", "expired on 2026-11-23"),
        (engine.Approval(frozenset({"eu"}), None), "us", "approved only in eu"),
        (engine.Approval(frozenset({"eu"}), None), None, "the request names no region"),
    ],
)
def test_expired_or_region_limited_approvals_exclude(
    approval: engine.Approval, region: str | None, expected: str
) -> None:
    a = version(1)
    snap = snapshot([a], [{"name": "r", "action": {"pinned": a.ref}}], {(a.id, "pii"): approval})
    result = ask(snap, classification="pii", region=region)
    assert isinstance(result, engine.Refusal)
    assert len(result.excluded) == 1 and expected in result.excluded[0][1]


def test_an_approval_is_valid_through_its_expiry_day() -> None:
    a = version(1)
    snap = snapshot(
        [a], [{"name": "r", "action": {"pinned": a.ref}}], {(a.id, "pii"): engine.Approval(frozenset(), TODAY)}
    )
    assert chosen(ask(snap, classification="pii")) == a.ref


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"lifecycle": "retired"}, "retired"),
        ({"lifecycle": "candidate"}, "candidate"),
        ({"provider_status": "disabled"}, "provider acme is disabled"),
        ({"regions": frozenset({"us"})}, "not hosted in eu"),
        ({"context_window": 10}, "context window"),
    ],
)
def test_hard_filters_name_their_reason(changes: dict[str, Any], reason: str) -> None:
    a = version(1, **changes)
    snap = snapshot([a], [{"name": "r", "action": {"pinned": a.ref}}], approve_all([a], "internal"))
    result = ask(snap, region="eu")
    assert isinstance(result, engine.Refusal)
    assert reason in result.excluded[0][1]
    assert "No model version may serve" in result.detail


def test_deprecated_versions_still_serve_but_say_so() -> None:
    a = version(1, lifecycle="deprecated")
    snap = snapshot([a], [{"name": "r", "action": {"pinned": a.ref}}], approve_all([a], "internal"))
    result = ask(snap)
    assert chosen(result) == a.ref and f"{a.ref} is deprecated" in result.reasons  # type: ignore[union-attr]


def test_request_limits_on_cost_and_latency_exclude() -> None:
    cheap_slow = version(1, latency_ms=5000)
    dear_fast = version(9, latency_ms=100)
    snap = snapshot(
        [cheap_slow, dear_fast],
        [{"name": "r", "action": {"tier": "workhorse"}}],
        approve_all([cheap_slow, dear_fast], "internal"),
    )
    assert chosen(ask(snap, max_latency_ms=1000)) == dear_fast.ref
    assert chosen(ask(snap, max_cost_usd=dear_fast.cost(0, 1024) / 2)) == cheap_slow.ref
    refused = ask(snap, max_latency_ms=1000, max_cost_usd=0.0)
    assert isinstance(refused, engine.Refusal) and len(refused.excluded) == 2


def test_first_matching_rule_wins() -> None:
    a, b = version(1), version(2)
    rules = [
        {"name": "phi", "match": {"classifications": ["phi"]}, "action": {"pinned": b.ref}},
        {"name": "long", "match": {"input_tokens": {"min": 1000}}, "action": {"pinned": b.ref}},
        {"name": "rest", "action": {"pinned": a.ref}},
    ]
    snap = snapshot([a, b], rules, approve_all([a, b], "internal", "phi"))
    assert ask(snap, classification="phi").rule.name == "phi"
    assert ask(snap, input_tokens=5000).rule.name == "long"
    assert ask(snap).rule.name == "rest"


def test_no_matching_rule_or_no_policy_refuses() -> None:
    a = version(1)
    snap = snapshot(
        [a],
        [{"name": "code-only", "match": {"task_types": ["summarization"]}, "action": {"pinned": a.ref}}],
        approve_all([a], "internal"),
    )
    assert "No rule of policy main v3 matches" in ask(snap).detail  # type: ignore[union-attr]
    orphan = engine.App(**{**{f: getattr(APP, f) for f in engine.App.__slots__}, "policy": None})
    assert "governed by no active policy" in ask(snap, app=orphan).detail  # type: ignore[union-attr]


def test_application_may_only_send_its_classifications() -> None:
    a = version(1)
    snap = snapshot([a], [{"name": "r", "action": {"pinned": a.ref}}], approve_all([a], "confidential"))
    result = ask(snap, classification="confidential")
    assert isinstance(result, engine.Refusal) and "may not send confidential" in result.detail


def test_tier_picks_best_quality_then_cheapest() -> None:
    weak, strong, other_tier = (
        version(1, quality={"code": 60}),
        version(2, quality={"code": 90}),
        version(3, "b", "frontier"),
    )
    snap = snapshot(
        [weak, strong, other_tier],
        [{"name": "r", "action": {"tier": "workhorse"}}],
        approve_all([weak, strong, other_tier], "internal"),
    )
    result = ask(snap)
    assert chosen(result) == strong.ref
    assert [v.ref for v in result.fallbacks] == [weak.ref]  # type: ignore[union-attr]


def test_cheapest_meeting_quality() -> None:
    low = version(1, quality={"code": 40})
    good_cheap = version(2, quality={"code": 80})
    good_dear = version(5, quality={"code": 95})
    snap = snapshot(
        [low, good_cheap, good_dear],
        [{"name": "r", "action": {"cheapest": {"min_quality": 75}}}],
        approve_all([low, good_cheap, good_dear], "internal"),
    )
    assert chosen(ask(snap)) == good_cheap.ref


def test_fastest_under_cost() -> None:
    slow_cheap = version(1, latency_ms=900)
    fast_cheap = version(2, latency_ms=300)
    fastest_dear = version(8, latency_ms=100)
    limit = fast_cheap.cost(0, 1024) * 1.01
    snap = snapshot(
        [slow_cheap, fast_cheap, fastest_dear],
        [{"name": "r", "action": {"fastest": {"max_cost_usd": limit}}}],
        approve_all([slow_cheap, fast_cheap, fastest_dear], "internal"),
    )
    assert chosen(ask(snap)) == fast_cheap.ref


def test_weighted_split_is_deterministic_per_request_id_and_follows_weights() -> None:
    a, b = version(1), version(2)
    snap = snapshot(
        [a, b],
        [
            {
                "name": "canary",
                "action": {"split": [{"model_version": a.ref, "weight": 80}, {"model_version": b.ref, "weight": 20}]},
            }
        ],
        approve_all([a, b], "internal"),
    )
    picks = [chosen(ask(snap, request_id=f"req-{i}")) for i in range(2000)]
    assert picks == [chosen(ask(snap, request_id=f"req-{i}")) for i in range(2000)]
    share = picks.count(b.ref) / len(picks)
    assert 0.17 < share < 0.23
    result = ask(snap, request_id="req-1")
    other = b.ref if result.model.ref == a.ref else a.ref  # type: ignore[union-attr]
    assert [v.ref for v in result.fallbacks] == [other]  # type: ignore[union-attr]


def test_escalation_moves_high_complexity_to_the_named_tier() -> None:
    small, big = version(1, tier="economy"), version(2, "other", "frontier")
    rules = [{"name": "r", "action": {"pinned": small.ref}, "escalation": {"complexity": "high", "tier": "frontier"}}]
    snap = snapshot([small, big], rules, approve_all([small, big], "internal"))
    assert chosen(ask(snap, complexity="low")) == small.ref
    result = ask(snap, complexity="high")
    assert chosen(result) == big.ref
    assert any("escalated" in reason for reason in result.reasons)  # type: ignore[union-attr]


def test_verifier_must_be_another_provider_and_approved_for_the_data() -> None:
    a, same, other, unapproved = version(1, "acme"), version(2, "acme"), version(3, "beta"), version(4, "gamma")
    approvals = approve_all([a, same, other], "internal")
    for verifier, expected in ((other, other), (same, None), (unapproved, None)):
        snap = snapshot(
            [a, same, other, unapproved],
            [{"name": "r", "action": {"pinned": a.ref}, "verifier": verifier.ref}],
            approvals,
        )
        result = ask(snap)
        assert isinstance(result, engine.Decision)
        assert result.verifier == expected


# --- The fail-closed invariant, over random portfolios, matrices and rules ----------------------

CLASSES = ["public", "internal", "pii", "phi"]
REGIONS = ["eu", "us"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[engine.Snapshot, engine.Request]:
    count = draw(st.integers(1, 12))
    versions = [
        version(
            i + 1,
            provider=draw(st.sampled_from(["acme", "beta", "gamma"])),
            tier=draw(st.sampled_from(["economy", "workhorse", "frontier"])),
            lifecycle=draw(st.sampled_from(["candidate", "approved", "approved", "deprecated", "retired"])),
            provider_status=draw(st.sampled_from(["active", "active", "degraded"])),
            regions=frozenset(draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))),
            context_window=draw(st.sampled_from([4_000, 32_000, 200_000])),
            quality={"code": draw(st.integers(0, 100))},
        )
        for i in range(count)
    ]
    approvals = {}
    for v in versions:
        for c in CLASSES:
            if draw(st.booleans()):
                approvals[(v.id, c)] = engine.Approval(
                    regions=frozenset(draw(st.lists(st.sampled_from(REGIONS), unique=True))),
                    expires_on=draw(
                        st.one_of(
                            st.none(), st.dates(TODAY - datetime.timedelta(days=3), TODAY + datetime.timedelta(days=3))
                        )
                    ),
                )
    refs = [v.ref for v in versions]
    ref = st.sampled_from(refs)
    action = st.one_of(
        st.builds(lambda r: {"pinned": r}, ref),
        st.builds(lambda t: {"tier": t}, st.sampled_from(["economy", "workhorse", "frontier"])),
        st.builds(lambda q: {"cheapest": {"min_quality": q}}, st.integers(0, 100)),
        st.builds(lambda c: {"fastest": {"max_cost_usd": c}}, st.floats(0, 0.05)),
    )
    rules = [
        {
            "name": f"r{i}",
            "match": {"classifications": draw(st.lists(st.sampled_from(CLASSES), unique=True))},
            "action": draw(action),
            "fallbacks": draw(st.lists(ref, max_size=3, unique=True)),
            **({"escalation": {"complexity": "high", "tier": "frontier"}} if draw(st.booleans()) else {}),
        }
        for i in range(draw(st.integers(1, 4)))
    ]
    request = engine.Request(
        app=APP,
        task_type="code",
        classification=draw(st.sampled_from(CLASSES)),
        region=draw(st.one_of(st.none(), st.sampled_from(REGIONS))),
        complexity=draw(st.sampled_from([None, "low", "high"])),
        input_tokens=draw(st.integers(0, 50_000)),
        max_output_tokens=draw(st.one_of(st.none(), st.integers(1, 8_000))),
        request_id=draw(st.text("abc123", min_size=1, max_size=8)),
    )
    return snapshot(versions, rules, approvals), request


def may_serve(snap: engine.Snapshot, v: engine.Version, request: engine.Request) -> bool:
    """An independent statement of the compliance rule, to check the engine against."""
    approval = snap.approvals.get((v.id, request.classification))
    if approval is None or (approval.expires_on is not None and approval.expires_on < TODAY):
        return False
    if v.lifecycle not in ("approved", "deprecated") or v.provider_status != "active":
        return False
    if request.region is None:
        return not approval.regions
    return request.region in v.regions and (not approval.regions or request.region in approval.regions)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_no_decision_ever_names_a_version_the_matrix_does_not_approve(
    world: tuple[engine.Snapshot, engine.Request],
) -> None:
    snap, request = world
    result = engine.decide(snap, request, TODAY)
    if isinstance(result, engine.Refusal):
        assert all(not may_serve(snap, v, request) or why for v, why in result.excluded)
        return
    for named in (result.model, *result.fallbacks, *([result.verifier] if result.verifier else [])):
        assert may_serve(snap, named, request), (named.ref, request)


# --- Over budget: the rule again, economy only --------------------------------------------------


def downgraded(snap: engine.Snapshot, **kw: Any) -> engine.Decision | engine.Refusal:
    data: dict[str, Any] = {"app": APP, "task_type": "code", "classification": "internal", "request_id": "r1"}
    data.update(kw)
    request = engine.Request(**data)
    decision = engine.decide(snap, request, TODAY)
    assert isinstance(decision, engine.Decision)
    return engine.downgrade(snap, request, decision, TODAY, "team Care is over its monthly budget of $5.00")


def test_a_downgrade_prefers_the_rules_own_economy_choice_then_the_best_economy_version() -> None:
    frontier, cheap, better = version(1, tier="frontier"), version(2, tier="economy"), version(3, tier="economy")
    snap = snapshot(
        [frontier, cheap, better],
        [{"name": "r", "action": {"pinned": frontier.ref}, "fallbacks": [cheap.ref], "over_budget": "downgrade"}],
        approve_all([frontier, cheap, better], "internal"),
    )
    result = downgraded(snap)
    assert isinstance(result, engine.Decision)
    assert result.model == cheap and [v.ref for v in result.fallbacks] == [better.ref]
    assert result.reasons[1:3] == (
        "team Care is over its monthly budget of $5.00: downgraded to economy",
        f"the rule's economy fallback: {cheap.ref}",
    )
    assert result.rule.over_budget == "downgrade"
    no_fallback = snapshot(
        [frontier, cheap, better],
        [{"name": "r", "action": {"pinned": frontier.ref}}],
        approve_all([frontier, cheap, better], "internal"),
    )
    assert chosen(downgraded(no_fallback)) == better.ref  # quality 53 beats 52


def test_a_downgrade_ignores_escalation_and_keeps_the_verifier() -> None:
    economy, frontier, checker = version(1, tier="economy"), version(2, tier="frontier"), version(3, "beta")
    rule = {
        "name": "r",
        "action": {"tier": "economy"},
        "escalation": {"complexity": "high", "tier": "frontier"},
        "verifier": checker.ref,
    }
    snap = snapshot([economy, frontier, checker], [rule], approve_all([economy, frontier, checker], "internal"))
    assert chosen(ask(snap, complexity="high")) == frontier.ref
    result = downgraded(snap, complexity="high")
    assert isinstance(result, engine.Decision)
    assert result.model == economy and result.verifier == checker


def test_a_downgrade_with_no_economy_version_allowed_is_a_refusal_naming_each() -> None:
    frontier, cheap = version(1, tier="frontier"), version(2, tier="economy")
    approvals = approve_all([frontier], "internal", "pii") | approve_all([cheap], "internal")
    snap = snapshot([frontier, cheap], [{"name": "r", "action": {"pinned": frontier.ref}}], approvals)
    result = downgraded(snap, classification="pii")
    assert isinstance(result, engine.Refusal)
    assert "No economy model version may serve this request under rule 'r'" in result.detail
    assert [(v.ref, why) for v, why in result.excluded] == [(cheap.ref, "not approved for pii data")]


def test_a_rule_without_over_budget_refuses() -> None:
    assert engine.compile_rule({"name": "r", "action": {"tier": "economy"}}).over_budget == engine.REFUSE
