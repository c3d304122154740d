"""World presets: named difficulty, deterministic per world and seed; easy = the world before."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.common import add_world_options, world_of
from sandbox.generator import generate_org
from sandbox.org import Org, load_org, save_org
from sandbox.world import PRESETS, WorldError, parse_overrides, world_from
from tests.cli_fixtures import run_cli

ACCOUNTS = 1_000
EASY = PRESETS["easy"]
REALISTIC = PRESETS["realistic"]
# What generate_org(1000, seed=5) gave before the world had presets (commit 65de114): the easy
# preset must reproduce it exactly, so figures measured on it stay comparable.
EASY_BEFORE_PRESETS = {
    "fit": 492.238887951,
    "burst_rate": 2.268566292129,
    "bursts": 1218,
    "burst_start": 2158136401476,
    "activities": 50000,
    "activity_seconds": 88706143190661,
    "opportunities": 534,
    "opened_seconds": 946575999655,
    "dispositions": 124,
}
# The constants commit 8443ec1 eased; realistic keeps their earlier values.
BEFORE_8443EC1 = {
    "hidden_fit_sd": 0.6,
    "burst_rate_fit": 0.8,
    "burst_rate_noise": 0.5,
    "intensity_sigma": 0.7,
    "burst_activities": 12.0,
    "success_fit": 1.3,
}


def _fingerprint(org: Org) -> dict[str, float | int]:
    """Figures that change whenever any draw of the generator does."""
    truth = org.truth
    return {
        "fit": round(float(truth.accounts["fit"].sum()), 9),
        "burst_rate": round(float(truth.accounts["burst_rate"].sum()), 12),
        "bursts": truth.bursts.height,
        "burst_start": int(truth.bursts["start"].sum()),
        "activities": org.activities.height,
        "activity_seconds": int(org.activities["occurred_at"].dt.epoch("s").sum()),
        "opportunities": org.opportunities.height,
        "opened_seconds": int(org.opportunities["opened_at"].dt.epoch("s").sum()),
        "dispositions": org.dispositions.height,
    }


def _frames(org: Org) -> list[pl.DataFrame]:
    return [org.accounts, org.activities, org.opportunities, org.truth.accounts, org.truth.bursts]


def test_easy_reproduces_the_world_before_presets() -> None:
    assert _fingerprint(generate_org(ACCOUNTS, 5, world=EASY)) == EASY_BEFORE_PRESETS


def test_realistic_is_the_default_and_as_hard_as_before_8443ec1() -> None:
    assert generate_org(50, 3).manifest.preset == "realistic"
    assert {k: REALISTIC.parameters()[k] for k in BEFORE_8443EC1} == BEFORE_8443EC1


WORLDS = {
    "realistic": REALISTIC,
    "easy": EASY,
    "realistic, more hidden fit": world_from("realistic", {"hidden_fit_sd": 0.9}),
    "easy, noisy burst rates": world_from("easy", {"burst_rate_noise": 0.5}),
}


@pytest.mark.parametrize("name", WORLDS)
def test_the_same_world_and_seed_give_the_same_org(name: str) -> None:
    first, again = (generate_org(300, 9, world=WORLDS[name]) for _ in range(2))
    for a, b in zip(_frames(first), _frames(again), strict=True):
        assert a.equals(b)


def test_every_world_is_a_different_org() -> None:
    prints = {name: _fingerprint(generate_org(300, 9, world=w)) for name, w in WORLDS.items()}
    assert len({json.dumps(p, sort_keys=True) for p in prints.values()}) == len(WORLDS)


def test_more_hidden_fit_leaves_less_of_fit_to_the_firmographics() -> None:
    """The share of fit's variance that industry explains falls as the hidden part grows."""

    def explained_by_industry(world_name: str) -> float:
        org = generate_org(3_000, 4, world=WORLDS[world_name])
        frame = org.truth.accounts.join(org.accounts.select("account_id", "industry"), "account_id")
        means = frame.group_by("industry").agg(pl.col("fit").mean().alias("mean_fit"))
        fitted = frame.join(means, on="industry")["mean_fit"].to_numpy()
        return float(np.var(fitted) / np.var(frame["fit"].to_numpy()))

    shares = [explained_by_industry(n) for n in ("easy", "realistic", "realistic, more hidden fit")]
    assert shares[0] > shares[1] > shares[2]


BAD_OVERRIDES = [
    (["hidden_fit_noise=0.9"], "unknown world parameter hidden_fit_noise; known: hidden_fit_sd"),
    (["hidden_fit_sd"], "expected NAME=VALUE"),
    (["hidden_fit_sd=lots"], "'lots' is not a number"),
    (["hidden_fit_sd=-0.1"], "hidden_fit_sd must be >= 0, got -0.1"),
    (["burst_activities=0"], "burst_activities must be > 0"),
    (["success_fit=nan"], "success_fit must be a finite number"),
]


@pytest.mark.parametrize(("assignments", "message"), BAD_OVERRIDES)
def test_a_bad_override_is_refused_with_the_reason(assignments: list[str], message: str) -> None:
    with pytest.raises(WorldError, match=message.replace("(", r"\(")):
        world_from("realistic", parse_overrides(assignments))


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(WorldError, match="unknown world preset 'hard'; known: realistic, easy"):
        world_from("hard")


def test_a_saved_org_says_which_world_it_is_and_keeps_its_oracle(tmp_path: Path) -> None:
    world = world_from("easy", {"hidden_fit_sd": 0.4, "success_fit": 2.0})
    org = generate_org(300, 2, world=world)
    save_org(org, tmp_path / "org")
    manifest = json.loads((tmp_path / "org" / "manifest.json").read_text())
    assert manifest["preset"] == "easy"
    assert manifest["world"] == world.parameters()
    loaded = load_org(tmp_path / "org")
    assert loaded.manifest.world_params == world
    as_of = org.manifest.end_at - timedelta(days=120)
    assert np.array_equal(
        loaded.truth.oracle_probability(as_of), org.truth.oracle_probability(as_of)
    )


def test_benchmarks_take_a_preset_and_overrides() -> None:
    parser = argparse.ArgumentParser()
    add_world_options(parser)
    args = parser.parse_args(["--preset", "easy", "--world", "hidden_fit_sd=0.9"])
    assert world_of(parser, args) == world_from("easy", {"hidden_fit_sd": 0.9})
    with pytest.raises(SystemExit):
        world_of(parser, parser.parse_args(["--world", "nope=1"]))


@pytest.mark.usefixtures("isolated_cli")
def test_sandbox_generate_takes_a_preset_and_overrides() -> None:
    code, _ = run_cli(
        "sandbox", "generate", "--out", "org", "--accounts", "20", "--preset", "easy",
        "--world", "hidden_fit_sd=0.9", "--world", "burst_rate_noise=0.3",
    )  # fmt: skip
    manifest = json.loads(Path("org/manifest.json").read_text())
    assert code == 0
    assert manifest["preset"] == "easy"
    assert (
        manifest["world"]
        == world_from("easy", {"hidden_fit_sd": 0.9, "burst_rate_noise": 0.3}).parameters()
    )


@pytest.mark.usefixtures("isolated_cli")
def test_sandbox_generate_refuses_an_unknown_parameter_naming_the_known() -> None:
    code, output = run_cli("sandbox", "generate", "--out", "org", "--world", "fit_sd=1")
    assert code == 1
    assert "unknown world parameter fit_sd; known: hidden_fit_sd, visible_fit_scale" in output
    assert not Path("org").exists()
