"""Benchmark: generate (and write) a synthetic org; compare with a row-by-row baseline.

    python -m bench.world --accounts 200000

The baseline draws activities (10 of every 11 generated rows) the straightforward way, one row at
a time in plain Python, on a subsample of accounts, extrapolated to the org's activity count. It
does less than the generator (no people, accounts or opportunities), so ``speedup_vs_baseline``,
the whole vectorised generation against that partial baseline, understates the gain.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from bench.common import add_world_options, emit, peak_rss_mb, progress, timed, world_of
from sandbox.generator import generate_org
from sandbox.org import save_org
from sandbox.vocab import ACTIVITY_TYPES, TOPICS

LIMIT_SECONDS = 180.0
LIMIT_RSS_MB = 4096.0


def _row_by_row_activities(accounts: int, seed: int) -> int:
    """The straightforward way: each account's bursts and background, one activity at a time."""
    rng = random.Random(seed)
    keys = [t.key for t in ACTIVITY_TYPES]
    end = 1_800_000_000
    made = []
    for account in range(accounts):
        people = [account * 5 + k for k in range(rng.randint(1, 9))]
        for _burst in range(_poisson(rng, 0.6)):
            start = end - rng.uniform(0, 516) * 86_400
            for _ in range(_poisson(rng, 12 * rng.lognormvariate(0, 0.7))):
                when = start + rng.expovariate(1 / 9) * 86_400
                kind = rng.choices(keys, weights=[1] * len(keys))[0]
                made.append((account, rng.choice(people), kind, rng.choice(TOPICS), when))
        for _ in range(_poisson(rng, 42)):
            when = end - rng.uniform(0, 456) * 86_400
            made.append((account, rng.choice(people), rng.choice(keys), rng.choice(TOPICS), when))
    made.sort(key=lambda row: row[-1])
    return len(made)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw by counting exponential gaps (what a pure-Python generator would do)."""
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count, total = count + 1, total + rng.expovariate(1.0)
    return count


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    add_world_options(parser)
    args = parser.parse_args()

    progress(f"generating an org of {args.accounts:,} accounts (seed {args.seed})")
    with timed() as generating:
        org = generate_org(args.accounts, args.seed, world=world_of(parser, args))
    counts = org.counts()
    progress(f"generated in {generating[0]:.1f} s: {counts}")
    with tempfile.TemporaryDirectory() as tmp, timed() as writing:
        save_org(org, Path(tmp) / "org")
    progress(f"written in {writing[0]:.1f} s")

    sample = min(2_000, args.accounts)
    with timed() as baseline:
        made = _row_by_row_activities(sample, args.seed)
    baseline_seconds = baseline[0] * counts["activities"] / made
    progress(
        f"row-by-row baseline: {made:,} activities in {baseline[0]:.2f} s, "
        f"extrapolated to {baseline_seconds:.1f} s for {counts['activities']:,}"
    )
    seconds = generating[0] + writing[0]
    emit(
        {
            **counts,
            "seconds": round(seconds, 2),
            "generate_seconds": round(generating[0], 2),
            "write_seconds": round(writing[0], 2),
            "seconds_vs_limit": round(seconds / LIMIT_SECONDS, 4),
            "baseline_seconds": round(baseline_seconds, 2),
            "speedup_vs_baseline": round(baseline_seconds / generating[0], 2),
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_vs_limit": round(peak_rss_mb() / LIMIT_RSS_MB, 4),
            **{k: v for k, v in org.summary().items() if k.endswith("share")},
        }
    )


if __name__ == "__main__":
    main()
