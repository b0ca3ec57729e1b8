"""Feed the software at least 10,000 generated bad inputs and count what happens.

Targets: protocol files, cell files, rig files, notification settings (parsed in-process), damaged run
files and damaged vendor recordings (read in a worker process), command lines (``daq.cli.main`` in a
worker process, stdout/stderr captured), and instrument replies: transducer replies through the serial
drivers and the resilient wrapper, potentiostat sample blocks through the wrapper. Each input must be
either accepted or refused with one clear line (exit code 2 for the CLI; InstrumentError for
instruments); a traceback, an internal error or any other exception is a failure. A damaged file on
which a C library never returns is counted as a hang (the worker is killed and replaced); a defect
already found in a command this suite does not own (tests.fuzz.test_fuzz_cli.KNOWN_ISSUES) is counted as
"known".

    python scripts/fuzz_all.py                  # the full run (a few minutes on 2 cores)
    python scripts/fuzz_all.py --scale 0.05     # a quick look

Writes docs/images/fuzz_counts.json and docs/images/fuzz_counts.png; exit code 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUOTAS = {
    "protocol file": 2500,
    "cell file": 1500,
    "rig file": 1000,
    "notify settings": 1000,
    "run file (HDF5)": 1500,
    "vendor recording": 1500,
    "command line": 1200,
    "instrument reply": 600,
    "sample block": 400,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every quota (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="first hypothesis seed")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"), help="directory for the JSON and PNG")
    args = ap.parse_args()

    from hypothesis import strategies as st

    import tests.fuzz.test_fuzz_cli as fc
    import tests.fuzz.test_fuzz_files as ff
    import tests.fuzz.test_fuzz_instruments as fi

    work = Path(tempfile.mkdtemp(prefix="daq-fuzz-all-"))
    run_files = ff.make_run_files(work)
    vendor = ff.vendor_files()
    root = work / "cli"
    pool = fc.make_pool(root)
    spec = fc.cli_spec()
    box_files = ff.Sandbox(timeout=3.0)
    box_cli = ff.Sandbox(timeout=60.0)

    targets = {
        "protocol file": (ff.doc_or_text(ff.PROTOCOL_TEXTS), ff.check_protocol),
        "cell file": (ff.doc_or_text(ff.CELL_TEXTS), ff.check_cell),
        "rig file": (ff.doc_or_text(ff.RIG_TEXTS), ff.check_rig),
        "notify settings": (
            st.one_of(ff.mutated_doc(ff.NOTIFY_DOC), ff.mutated_text(ff.toml_dumps(ff.NOTIFY_DOC)).map(_toml_or_text)),
            ff.check_notify,
        ),
        "run file (HDF5)": (
            st.sampled_from(run_files).flatmap(ff.damaged_bytes),
            lambda data: box_files.check("run", data),
        ),
        "vendor recording": (
            st.sampled_from(vendor).flatmap(lambda f: ff.damaged_bytes(f[0]).map(lambda b: (b, f[1]))),
            lambda item: box_files.check("vendor", item[0], item[1]),
        ),
        "command line": (fc.command_lines(spec, pool), lambda argv: box_cli.check("cli", argv, str(root))),
        "instrument reply": (
            st.tuples(st.sampled_from([fi.Mark10Gauge, fi.OmegaDP41, fi.HbmAed]), fi.REPLIES),
            lambda item: fi.check_transducer_reply(*item),
        ),
        "sample block": (st.lists(fi.blocks(), min_size=1, max_size=6), fi.check_sample_blocks),
    }
    results: dict[str, Counter] = {}
    failures: list[dict[str, str]] = []
    t_all = time.monotonic()
    for name, (strategy, check) in targets.items():
        quota = max(1, int(QUOTAS[name] * args.scale))
        counts: Counter = Counter()
        t0 = time.monotonic()
        round_seed = args.seed
        while sum(counts.values()) < quota:
            before = sum(counts.values())
            _round(strategy, check, counts, quota, name, failures, round_seed)
            round_seed += 1000
            if sum(counts.values()) == before:
                break  # the strategy has nothing new to give
        counts["seconds"] = round(time.monotonic() - t0, 1)
        results[name] = counts
        print(
            f"{name:18s} {sum(v for k, v in counts.items() if k != 'seconds'):6d} inputs: "
            f"{counts['accepted']:5d} accepted, {counts['refused']:5d} refused, {counts['hang']:3d} hangs, "
            f"{counts['known']:3d} known, {counts['failure']:3d} failures  ({counts['seconds']:.0f} s)",
            flush=True,
        )
    box_files.close()
    box_cli.close()
    total = Counter()
    for counts in results.values():
        total.update({k: v for k, v in counts.items() if k != "seconds"})
    n = sum(total.values())
    print(
        f"{'total':18s} {n:6d} inputs: {total['accepted']:5d} accepted, {total['refused']:5d} refused, "
        f"{total['hang']:3d} hangs, {total['known']:3d} known, {total['failure']:3d} failures  "
        f"({time.monotonic() - t_all:.0f} s)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hangs = [{"target": k, "input": repr(a)[:200]} for k, a in box_files.hangs + box_cli.hangs]
    (out / "fuzz_counts.json").write_text(
        json.dumps(
            {
                "targets": {k: dict(v) for k, v in results.items()},
                "total": dict(total),
                "inputs": n,
                "failures": failures,
                "hangs": hangs[:20],
            },
            indent=1,
        )
    )
    _plot(results, out / "fuzz_counts.png")
    for f in failures[:10]:
        print(f"FAILURE in {f['target']}: {f['error'].splitlines()[-1] if f['error'] else ''}\n  input: {f['input']}")
    return 1 if total["failure"] else 0


def _round(strategy, check, counts: Counter, quota: int, name: str, failures: list, round_seed: int) -> None:
    """One hypothesis run of at most what is left of the quota."""
    from hypothesis import HealthCheck, given, seed, settings

    left = quota - sum(counts.values())

    @seed(round_seed)
    @settings(max_examples=left, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(value: object) -> None:
        if sum(counts.values()) >= quota:
            return
        try:
            counts[check(value)] += 1
        except Exception as exc:  # noqa: BLE001 - a failure is what we are counting
            counts["failure"] += 1
            if len(failures) < 50:
                failures.append(
                    {"target": name, "input": repr(value)[:300], "error": f"{type(exc).__name__}: {exc}"[:2000]}
                )

    one()


def _toml_or_text(text: str) -> object:
    """Notification settings arrive as a document: parse the mutated text as the loader would."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {"notify": text}


def _plot(results: dict[str, Counter], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    left = [0] * len(names)
    for outcome, colour in (
        ("refused", "tab:blue"),
        ("accepted", "tab:green"),
        ("hang", "tab:orange"),
        ("known", "tab:purple"),
        ("failure", "tab:red"),
    ):
        values = [results[n][outcome] for n in names]
        ax.barh(names, values, left=left, color=colour, label=outcome)
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("generated inputs")
    ax.set_title(f"Fuzzing: {sum(left)} bad inputs, {sum(results[n]['failure'] for n in names)} tracebacks")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
