"""LLMHNI against RecBole's baselines, one protocol, one command per suite (DESIGN.md section 5).

Every job trains one model through ``run_recbole_llmhni`` (full ranking, Recall/NDCG@{10,20},
early stopping on validation Recall@20, patience 10, seed 2020, RecBole's default
hyper-parameters), in its own process and its own working directory, and writes one JSON
file: test metrics of the best-validation checkpoint, epochs to best, wall time, seconds per
training epoch and per evaluation, the time of each offline stage (S1-S7), peak RSS and peak
GPU memory, the identification report of S6 when noise was injected, and the machine, all
from the run record the run returns (per-epoch records of the trainer, the pipeline's stage
reports), never from log text.

Suites (``--suite``):

``models``     BPR, LightGCN, NGCF, LightGCN + RecBole's dynamic hard negatives (DNS, M=8 and
               M=32), LLMHNI_LightGCN, LLMHNI_NGCF                (per ``--datasets``)
``noise``      LightGCN and LLMHNI_LightGCN with 0, 5, 10, 20% injected noise
``ablation``   LLMHNI_LightGCN w/o semantic sampling (uniform negatives; or score-only DNS),
               w/o alignment, w/o denoising, with the S8 weights on and w/o L_hal (the full
               model: the ``models`` row)
``s8``         LLMHNI_LightGCN with the S8 weights lambda1 = lambda2 in {0.1, 0.01},
               from scratch and warm-started from Rec_pre (lambda = 0: the ``models`` row)
``speed``      plain backbones next to their LLMHNI models, a fixed number of epochs, run
               one at a time with fresh artifacts: seconds per epoch, stage times, peak RSS
``rater``      at 20% noise: LightGCN, LightGCN + DNS, LLMHNI with the stand-in and simulated raters,
               and the simulated rater with a wider S5
``s3``         LLMHNI_LightGCN's S3 knobs: uniform and score-only DNS negatives, ``llmhni_fn_quantile:
               auto``, and the grid q in {0.3, 0.5, 0.7, 0.9} x k in {1, 2, 3} x M in {8, 16, 32};
               the report marks the validation-selected row and draws a heat map per dataset
``denoisers``  WBPR, T-CE, R-CE, BOD, DCF (``*_LightGCN``, ``*_NGCF``) at 20% noise beside
               LightGCN, LightGCN + DNS, LLMHNI_LightGCN and NGCF, then the LightGCN ones
               clean; identification precision / recall of what each dropped / down-weighted

Results land in ``benchmarks/results/<suite>/<dataset>/<job>.json``; a job whose file exists
is skipped (``--force`` re-runs it), so an interrupted suite resumes; a re-run on another
machine keeps the earlier result as ``<job>@<machine>.json`` (``@H100``), and the report shows
both rows, each with its machine. ``report`` turns every result file into
``benchmarks/results/RESULTS.md`` and PNG charts beside it, and rewrites the README's results
tables (each between ``<!-- results SUITE DATASET -->`` and ``<!-- /results -->``) from the
same files; a test keeps the committed README equal to them.

    python benchmarks/compare.py run --suite models --datasets ml-100k
    python benchmarks/compare.py run --suite noise --datasets amazon-books --workers 8 --device cuda
    python benchmarks/compare.py run --suite denoisers --datasets ml-100k
    python benchmarks/compare.py report

``--time-budget S`` stops a job after S seconds of wall time; its result is then the test
metrics of its best-validation checkpoint so far (the job evaluates the test split whenever
validation improves, and only reads it at the end), marked ``time budget`` in the report.
``--resume`` continues such a job from that checkpoint instead of retraining it (same machine,
same settings; the row lists each restart in ``resumed``), so a long baseline converges over
several sessions. ``--epochs N`` caps training epochs (marked ``epoch cap`` when reached). Not
part of CI.

The parts: :mod:`suites` (the jobs of each suite), :mod:`runner` (child processes, time
budgets, result files), :mod:`records` (a result file and the view the report reads: the
run record of ``run_record``, never log text; older files keep rendering) and :mod:`report`
(RESULTS.md, charts, README tables). This file is the command line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # suites, runner, records, report beside it

from records import view, where  # noqa: E402
from report import load_results, readme_table, render_readme, report, rows_by_table  # noqa: E402
from runner import REPO, keep_other_machine, run_job, run_suite  # noqa: E402
from suites import SUITES, Job, suite_jobs  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"

__all__ = ["Job", "suite_jobs", "keep_other_machine", "run_job", "run_suite", "load_results", "view", "where",
           "readme_table", "render_readme", "rows_by_table", "report", "main"]


def parser() -> argparse.ArgumentParser:
    p0 = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p0.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the jobs of one or more suites (resumable)")
    p.add_argument("--suite", nargs="+", required=True, choices=list(SUITES))
    p.add_argument("--datasets", nargs="+", default=["ml-100k"])
    p.add_argument("--only", nargs="+", default=None, help="run only the jobs with these labels")
    p.add_argument("--skip", nargs="+", default=None, help="leave out the jobs with these labels")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config key for every job (YAML value)")
    p.add_argument("--workers", type=int, default=1, help="jobs in parallel (speed: always 1)")
    p.add_argument("--epochs", type=int, default=None, help="cap on training epochs (RecBole's default: 300)")
    p.add_argument("--speed-epochs", type=int, default=5, help="epochs of each speed-suite job")
    p.add_argument("--time-budget", type=float, default=None, help="seconds of wall time per job")
    p.add_argument("--deadline", type=float, default=None, help="seconds from now after which running jobs stop")
    p.add_argument("--device", default=None, help="cpu | cuda (default: RecBole's choice)")
    p.add_argument("--data-path", default=str(REPO / "dataset"))
    p.add_argument("--artifact-dir", default=str(REPO / "llmhni_artifacts"))
    p.add_argument("--cache-dir", default=str(REPO / "llmhni_artifacts" / "llm_cache"))
    p.add_argument("--fresh-artifacts", action="store_true", help="each job computes S1-S7 in its own folder")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--force", action="store_true")
    p.add_argument("--resume", action="store_true",
                   help="continue jobs stopped by --time-budget / --deadline from their best checkpoint")
    r = sub.add_parser("report", help="RESULTS.md and PNG charts from the result files")
    r.add_argument("--results", default=str(RESULTS))
    r.add_argument("--readme", default=str(REPO / "README.md"),
                   help="rewrite its '<!-- results SUITE DATASET -->' tables ('' leaves it alone)")
    return p0


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_suite(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
