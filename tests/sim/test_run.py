"""The simulator drives the real engine day by day: outbox, policy log, statements,
arrangements and answers stored as production stores them; strategies differ; seeds
reproduce; bad arguments are refused clearly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from typer.testing import CliRunner

from parcours.cli_sim import simulate as simulate_command
from parcours.journeys.library import load_library
from parcours.settings import Settings
from parcours.sim.behaviour import CHANNELS, Population, load_behaviour
from parcours.sim.portfolio import generate_portfolio
from parcours.sim.report import SeedRun, _fmt, compare, estimate, run_metrics
from parcours.sim.run import (
    Placement,
    SimulationError,
    prepare,
    run_seed,
    simulate,
    strategies,
    strategy,
    template_tone,
)
from parcours.sim.shards import merge, split
from parcours.store.db import connect

DEBTORS = 300
DAYS = 40
AS_OF = dt.date(2026, 11, 30)
EMAIL, SMS, LETTER, PHONE, CHAT = range(5)


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("portfolio")
    generate_portfolio(folder, debtors=DEBTORS, seed=3, as_of=AS_OF)
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def placement(portfolio: Path, work: Path) -> Placement:
    return prepare(portfolio, work, settings=Settings())


def run(
    placement: Placement, work: Path, name: str, *, seed: int = 1, days: int = DAYS, **kw: Any
) -> SeedRun:
    return run_seed(
        placement, strategy(name, load_library()), days=days, seed=seed, work=work, **kw
    )


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql(sql).all()]


def test_the_portfolio_is_prepared_once(portfolio: Path, work: Path, placement: Placement) -> None:
    assert len(placement) == DEBTORS  # every generated debtor owes something
    assert placement.start == dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)  # 10:00 Brussels
    assert (placement.placed_minor > 0).all()
    assert len(set(placement.communication)) == DEBTORS  # one payable reference per case
    assert set(placement.latent) <= set(load_behaviour().personas)
    again = prepare(portfolio, work, settings=Settings())  # the cached template
    assert again.database == placement.database
    assert again.case_refs == placement.case_refs


def test_the_simulation_drives_the_real_engine(placement: Placement, work: Path) -> None:
    """Real outbox rows with the persona journeys' templates, a policy log, payments booked
    from statements for exactly what the debtors paid, and a paid debtor gets nothing
    after the statement that paid the case was booked."""
    database = work / "kept.db"
    result = run(placement, work, "persona", keep_database=database)
    engine = connect(f"sqlite:///{database}")
    try:
        templates = {
            t
            for (t,) in rows(
                engine,
                "SELECT DISTINCT template FROM outbox WHERE kind = 'send' AND status = 'sent'",
            )
        }
        library = {n.template for j in load_library() for n in j.nodes if n.type == "send"}
        assert templates and templates <= library
        assert {"pre_due", "reminder_1_friendly"} <= templates  # occasional's and engaged's
        sent = rows(engine, "SELECT COUNT(*) FROM outbox WHERE kind = 'send' AND status = 'sent'")
        assert sent[0][0] == int(result.contacts[:, [EMAIL, SMS, LETTER]].sum())
        # Every decision keeps the gate's verdict at planning; every send, its own.
        unjudged = "SELECT COUNT(*) FROM outbox WHERE plan_verdict IS NULL OR plan_reason IS NULL"
        assert rows(engine, unjudged)[0][0] == 0
        logged = rows(engine, "SELECT COUNT(*) FROM policy_log WHERE stage = 'send'")
        assert logged[0][0] >= sent[0][0]
        (booked,) = rows(
            engine, "SELECT COALESCE(SUM(amount_minor), 0) FROM payments WHERE source = 'statement'"
        )
        paid = int(result.collected_at[DAYS].sum())
        assert booked[0] >= paid > 0  # booked includes fees paid and credits
        assert (
            rows(engine, "SELECT COUNT(*) FROM bank_transactions WHERE status = 'matched'")[0][0]
            == result.engine["fed_payments_booked"]
        )
        late = rows(
            engine,
            "SELECT COUNT(*) FROM outbox o JOIN events e ON e.case_id = o.case_id "
            "AND e.type = 'case.paid' WHERE o.kind = 'send' AND o.status = 'sent' "
            "AND o.sent_at > e.occurred_at",
        )
        paid_cases = rows(
            engine, "SELECT COUNT(DISTINCT case_id) FROM events WHERE type = 'case.paid'"
        )
        assert paid_cases[0][0] > 50
        assert late[0][0] == 0
        kinds = {k for (k,) in rows(engine, "SELECT DISTINCT type FROM events")}
        assert {"payment.booked", "message.opened", "message.clicked", "promise.made"} <= kinds
        assert rows(engine, "SELECT COUNT(*) FROM csat_responses")[0][0] == int(result.csat.sum())
        assert rows(engine, "SELECT COUNT(*) FROM promises")[0][0] == int(result.promises.sum())
        enrolled = rows(engine, "SELECT COUNT(*) FROM enrolments")[0][0]
        assert enrolled == DEBTORS
    finally:
        engine.dispose()


def test_without_contacts_the_collection_curve_is_the_models_base_curve(
    placement: Placement, work: Path
) -> None:
    """Nobody contacted (every case held out): the engine sends nothing and what is
    collected is what the model's debtors pay on their own, day for day."""
    result = run(placement, work, "none", seed=4)
    assert int(result.contacts.sum()) == 0
    assert result.engine["outbox"] == {}
    alone = Population.create(list(placement.latent), placement.placed_minor, placement.due_day, 4)
    for day in range(DAYS):
        alone.day(day)
        if day + 1 in result.collected_at:
            expected = np.minimum(alone.paid_minor, placement.placed_minor)
            assert np.array_equal(result.collected_at[day + 1], expected)
    np.testing.assert_array_equal(result.paid_day, alone.paid_day)
    # ... and every payment went through the bank statement import.
    assert result.engine["statement_minor"] == int(alone.paid_minor.sum())


def test_persona_journeys_and_the_universal_ladder_contact_differently(
    placement: Placement, work: Path
) -> None:
    persona = run(placement, work, "persona", seed=2)
    universal = run(placement, work, "universal", seed=2)
    # The ladder writes letters only; the persona journeys go digital first.
    assert int(universal.contacts[:, [EMAIL, SMS]].sum()) == 0
    assert int(universal.contacts[:, LETTER].sum()) > 0
    assert int(persona.contacts[:, [EMAIL, SMS]].sum()) > int(persona.contacts[:, LETTER].sum())
    assert int(persona.contacts.sum()) != int(universal.contacts.sum())
    silent = run(placement, work, "none", seed=2)
    report = compare([persona, universal, silent])
    overall = {g.strategy: g for g in report.groups if g.persona == "(all)"}
    rate = {s: g.metrics["collection_rate_30"].mean or 0.0 for s, g in overall.items()}
    # Contacting beats not contacting, and tailored journeys beat the ladder, on the
    # same simulated debtors.
    assert rate["persona"] > rate["universal"] > rate["none"] > 0


def test_the_same_seed_gives_exactly_the_same_report(placement: Placement, work: Path) -> None:
    first = run(placement, work, "persona", seed=7, days=25)
    second = run(placement, work, "persona", seed=7, days=25)
    other = run(placement, work, "persona", seed=8, days=25)
    for name in ("paid_day", "contacts", "sms_units", "complaints", "promises", "plans", "csat"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert first.engine == second.engine
    one = compare([first]).as_dict()
    two = compare([second]).as_dict()
    assert json.dumps(one, default=str) == json.dumps(two, default=str)
    assert not np.array_equal(first.paid_day, other.paid_day)


@pytest.mark.parametrize("shards", [2, 3])
def test_a_run_cut_into_parts_gives_the_figures_of_the_whole(
    placement: Placement, work: Path, shards: int
) -> None:
    """Each part on its own database with its own debtors, merged: the same arms and, but
    for a rare debtor whose step comes a day apart (see the note in `sim.shards`), the
    same days of payment, contacts and answers as when every debtor is simulated
    together."""
    whole = run(placement, work, "persona-vs-universal", seed=3, days=30)
    parts = split(placement, shards)
    assert sorted(np.concatenate([p.ids for p in parts]).tolist()) == list(range(DEBTORS))
    for part in parts:  # each part's database holds its own debtors only
        engine = connect(f"sqlite:///{part.placement.database}", check=False)
        refs = {ref for (ref,) in rows(engine, "SELECT ref FROM cases")}
        engine.dispose()
        assert refs == set(part.placement.case_refs) and len(refs) == len(part.ids)
    chosen = strategy("persona-vs-universal", load_library())
    merged = merge(
        [(p, run_seed(p.placement, chosen, days=30, seed=3, work=work, shard=p)) for p in parts]
    )
    assert merged.arm == whole.arm and merged.persona == whole.persona
    for name in ("paid_day", "contacts", "complaints", "promises", "plans", "csat"):
        a, b = getattr(merged, name), getattr(whole, name)
        same = (a == b).reshape(len(a), -1).all(axis=1)
        assert same.mean() >= 0.98, name  # the rare debtor a day apart, nothing broader
    collected = [float(r.collected_at[30].sum() / r.placed_minor.sum()) for r in (merged, whole)]
    assert abs(collected[0] - collected[1]) < 0.01
    outbox = [sum(r.engine["outbox"].values()) for r in (merged, whole)]
    assert abs(outbox[0] - outbox[1]) <= 0.01 * outbox[1]


def test_an_experiment_splits_cases_between_its_arms(placement: Placement, work: Path) -> None:
    result = run(placement, work, "persona-vs-universal", days=10)
    assert result.arm is not None
    arms = np.array(result.arm)
    assert set(arms) == {"persona", "universal"}
    assert 0.35 < float((arms == "persona").mean()) < 0.65
    # The universal arm is on the letter ladder: no e-mail or SMS reaches it.
    assert int(result.contacts[arms == "universal"][:, [EMAIL, SMS]].sum()) == 0
    groups = {(g.arm, g.persona) for g in compare([result]).groups}
    assert ("persona", "(all)") in groups and ("universal", "(all)") in groups


def test_bad_arguments_are_refused_with_clear_errors(
    portfolio: Path, work: Path, placement: Placement, tmp_path: Path
) -> None:
    with pytest.raises(SimulationError) as error:
        strategy("bogus", load_library())
    message = str(error.value)
    assert "bogus" in message
    assert all(name in message for name in ("persona", "universal", "none"))
    assert set(strategies(load_library())) >= {"persona", "universal", "none"}
    with pytest.raises(SimulationError, match="--days 0"):
        simulate(portfolio, ["persona"], days=0, seeds=1, work=work, settings=Settings())
    with pytest.raises(SimulationError, match="--seeds 0"):
        simulate(portfolio, ["persona"], days=5, seeds=0, work=work, settings=Settings())
    with pytest.raises(SimulationError, match=r"no debtors\.csv"):
        prepare(tmp_path, work, settings=Settings())
    with pytest.raises(SimulationError, match="only 300 debtors"):
        prepare(portfolio, work, debtors=301, settings=Settings())


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """parcours"""

    app.command("simulate")(simulate_command)
    return app


def test_the_command_compares_strategies_and_refuses_bad_arguments(
    portfolio: Path, work: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    app = _cli()
    base = ["simulate", "--portfolio", str(portfolio), "--work", str(work)]
    bad = runner.invoke(app, [*base, "--strategy", "bogus"])
    assert bad.exit_code == 2
    assert "unknown strategy 'bogus'" in bad.output and "persona-vs-universal" in bad.output
    zero = runner.invoke(app, [*base, "--days", "0"])
    assert zero.exit_code == 2 and "--days 0" in zero.output
    cost = runner.invoke(app, [*base, "--cost", "pigeon=1"])
    assert cost.exit_code == 2 and "pigeon" in cost.output
    parts = runner.invoke(app, [*base, "--shards", "2", "--keep", str(tmp_path / "no")])
    assert parts.exit_code == 2 and "--shards 2" in parts.output
    # One run cut in two parts in two processes: the figures of the run done whole.
    once = [*base, "--days", "6", "--seeds", "1", "--strategy", "persona", "--debtors", "60"]
    one, two = (runner.invoke(app, [*once, "--shards", n, "--workers", n, "--json"]) for n in "12")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    figures = [json.loads(r.stdout) for r in (one, two)]
    assert figures[0]["cases"] == figures[1]["cases"] == 60
    rates = [
        g["metrics"]["collection_rate"]["mean"]
        for f in figures
        for g in f["groups"]
        if g["persona"] == "(all)"
    ]
    assert len(rates) == 2 and abs(rates[0] - rates[1]) <= 0.05  # one debtor of 60 at most
    done = runner.invoke(
        app,
        [
            *base,
            "--days",
            "8",
            "--seeds",
            "2",
            "--debtors",
            "60",
            "--workers",
            "1",
            "--cost",
            "letter=2.50",
            "--keep",
            str(tmp_path / "runs"),
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["seeds"] == [1, 2] and report["cases"] == 60 and report["days"] == 8
    assert report["costs"]["letter"] == "2.50"
    overall = [g for g in report["groups"] if g["persona"] == "(all)"]
    assert {g["strategy"] for g in overall} == {"persona", "universal"}
    ci = overall[0]["metrics"]["contacts_per_case"]["ci95"]
    assert ci is not None and ci[0] <= overall[0]["metrics"]["contacts_per_case"]["mean"] <= ci[1]
    assert report["differences"][0]["baseline"] == "universal"
    kept = sorted(p.name for p in (tmp_path / "runs").glob("*.db"))
    assert kept == ["persona-1.db", "persona-2.db", "universal-1.db", "universal-2.db"]


def test_estimates_across_seeds_are_student_t_intervals() -> None:
    e = estimate([1.0, 2.0, 3.0, None])
    assert e.n == 3 and e.mean == pytest.approx(2.0)
    # t(0.975, 2) = 4.3027; sd = 1; half-width = 4.3027 / sqrt(3)
    assert e.high is not None and e.high - 2.0 == pytest.approx(4.3027 / 3**0.5, rel=1e-4)
    single = estimate([5.0])
    assert single.mean == 5.0 and single.low is None
    assert estimate([]).mean is None
    # A rate's interval is cut at 0 (never a negative complaint rate), and shown as such.
    rate = estimate([0.0, 0.0, 0.003], bounds=(0.0, 1.0))
    assert rate.low == 0.0 and rate.high is not None and rate.high > rate.mean
    assert _fmt("pct", rate) == "0.1 [0.0, 0.5]"  # 0.1 ± 0.43
    assert _fmt("pct", estimate([0.3, 0.4, 0.5], bounds=(0.0, 1.0))) == "40.0 ±24.8"


@given(st.lists(st.floats(0, 1), min_size=2, max_size=8))
def test_a_rates_interval_holds_its_mean_within_the_rates_range(xs: list[float]) -> None:
    e = estimate(xs, bounds=(0.0, 1.0))
    assert e.low is not None and e.high is not None and e.mean is not None
    assert 0.0 <= e.low <= e.mean + 1e-12 and e.mean - 1e-12 <= e.high <= 1.0


def test_the_figures_of_a_hand_made_run() -> None:
    """Two debtors: one placed 100.00, paid in full on day 5 (due day 0) after an SMS and
    a letter; one placed 300.00, 30.00 paid, a complaint, an answer of 2."""
    from parcours.analytics.kpis import ChannelCosts

    contacts = np.zeros((2, len(CHANNELS)), dtype=np.int64)
    contacts[0, SMS] = contacts[0, LETTER] = 1
    csat = np.zeros((2, 5), dtype=np.int64)
    csat[1, 1] = 1
    run_ = SeedRun(
        strategy="s",
        seed=1,
        days=30,
        currency="EUR",
        persona=["a", "b"],
        arm=None,
        placed_minor=np.array([10_000, 30_000]),
        due_day=np.array([0, -10]),
        collected_at={30: np.array([10_000, 3_000])},
        paid_day=np.array([5, -1]),
        contacts=contacts,
        sms_units=np.array([2, 0]),
        complaints=np.array([0, 1]),
        opted_out=np.array([False, False]),
        disputed=np.array([False, False]),
        promises=np.zeros(2, dtype=np.int64),
        plans=np.zeros(2, dtype=np.int64),
        csat=csat,
    )
    costs = ChannelCosts.from_mapping({"sms_unit": "0.10", "letter": "2.00"})
    m = run_metrics(run_, np.array([True, True]), costs)
    assert m["collection_rate_30"] == pytest.approx(13_000 / 40_000)
    assert m["paid_rate"] == 0.5
    assert m["days_to_pay_mean"] == 5.0 and m["days_to_pay_median"] == 5.0
    assert m["contacts_per_case"] == 1.0
    assert m["cost_per_euro"] == pytest.approx(2.20 / 130.0)
    assert m["complaint_rate"] == 0.5 and m["opt_out_rate"] == 0.0
    assert m["csat_mean"] == 2.0
    assert m["collection_rate_60"] is None  # not simulated that long


def test_each_template_speaks_in_one_of_the_models_tones() -> None:
    assert template_tone("reminder_1_friendly") == "friendly"
    assert template_tone("supportive_call") == "supportive"
    assert template_tone("formal_notice") == "firm"
    assert template_tone("operator_custom_firm") == "firm"
    assert template_tone("something_else") == "friendly"
    from parcours.sim.run import TEMPLATE_TONES

    used = {
        getattr(n, "template", None) or getattr(n, "script", None)
        for j in load_library()
        for n in j.nodes
        if n.type in ("send", "task")
    }
    assert used - {None} <= set(TEMPLATE_TONES)


def test_adopt_makes_a_run_the_database_and_saves_the_comparison(
    portfolio: Path, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parcours.settings import get_settings

    target = tmp_path / "demo.db"
    monkeypatch.setenv("PARCOURS_DATABASE_URL", f"sqlite:///{target}")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        base = ["simulate", "--portfolio", str(portfolio), "--work", str(work), "--days", "5"]
        base += ["--seeds", "1", "--debtors", "40", "--workers", "1", "--json"]
        adopted = runner.invoke(
            _cli(), [*base, "--strategy", "persona", "--creditor", "Demo Energy", "--adopt"]
        )
        assert adopted.exit_code == 0, adopted.output
        engine = connect(f"sqlite:///{target}")
        try:
            assert rows(engine, "SELECT name FROM creditors") == [("Demo Energy",)]
            assert rows(engine, "SELECT COUNT(*) FROM cases") == [(40,)]
            assert rows(engine, "SELECT COUNT(*) FROM outbox")[0][0] > 0
            saved = rows(engine, "SELECT label, days, seeds, cases FROM simulation_runs")
            assert saved == [("persona", 5, 1, 40)]
        finally:
            engine.dispose()
        again = runner.invoke(_cli(), [*base, "--strategy", "persona", "--adopt"])
        assert again.exit_code == 2 and "holds cases" in " ".join(again.output.split())
        nobody = runner.invoke(
            _cli(), [*base, "--strategy", "universal", "--save", "--creditor", "nobody"]
        )
        assert nobody.exit_code != 0
        assert "no creditor named 'nobody'" in " ".join(nobody.output.split())
    finally:
        get_settings.cache_clear()
