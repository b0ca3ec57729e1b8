"""``daq campaign FILE --sim [--jobs N | --dask ADDRESS]``: a CCD campaign, one fresh simulated cell per
test, with its CCD bracket. The tests run side by side, one worker process per core by default, or on a
Dask cluster; the results are the same as one by one."""

from __future__ import annotations

import argparse
import math

from daq.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="run a CCD campaign (current densities x repeats, a fresh cell each)")
    p.add_argument("file", help="campaign file (TOML)")
    p.add_argument("--sim", action="store_true", help="run on simulated cells")
    p.add_argument("--out", default="runs/campaign", help="folder for the run files, campaign.h5 and the plot")
    p.add_argument(
        "--jobs", type=int, metavar="N", help="tests run side by side in N worker processes (default: one per core)"
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the tests on the Dask scheduler at ADDRESS (tcp://host:8786); OUT must be a folder every "
        "worker reaches under the same path",
    )
    p.set_defaults(func=cmd_campaign)


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:g}"


def cmd_campaign(args: argparse.Namespace) -> int:
    if not args.sim:
        raise ConfigError(
            "daq campaign",
            None,
            "campaigns run on the simulator (--sim); on a rig, run the protocol once per cell with daq run --rig",
        )
    if args.jobs is not None and args.dask:
        raise ConfigError("--jobs", args.jobs, "the Dask cluster decides how many tests run at once; drop --jobs")
    from daq.engine.campaign import run_campaign  # the engine and the simulator only when a campaign runs
    from daq.engine.parallel import check_jobs, default_jobs
    from protocols.campaign import load_campaign
    from simulators.rig import simulated_channel

    jobs = check_jobs(args.jobs) if args.jobs is not None else default_jobs()
    campaign = load_campaign(args.file)
    _, summary, png = run_campaign(
        campaign,
        args.out,
        simulated_channel,
        progress=lambda line: print(f"  {line}", flush=True),
        jobs=jobs,
        dask=args.dask,
    )
    print(f"{campaign.name}: CCD brackets (mA/cm^2)")
    for row in summary:
        verdict = "inside" if row["prediction_in_bracket"] else "OUTSIDE"
        print(
            f"  {row['cell_id']} ({100 * row['relative_density']:.0f} %): never failed up to "
            f"{_fmt(row['highest_safe'])}, always failed from {_fmt(row['lowest_failed'])}; predicted "
            f"{row['predicted']:.3g} (band {row['predicted_low']:.3g}-{row['predicted_high']:.3g}), {verdict} "
            f"the bracket"
        )
    print(f"  summary: {args.out}/campaign.h5, plot: {png}")
    return 0
