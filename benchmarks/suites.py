"""The benchmark suites: which jobs each one runs (DESIGN.md section 5).

A :class:`Job` is one model on one dataset with its config overrides; :func:`suite_jobs`
lists a suite's jobs in the order they are started, which is also the order of the rows in
the report. Pure definitions: nothing here trains or reads results; the config overrides of
the DNS, S8, noise and ablation rows are read from the repository's top-level ``properties/``,
the same YAML files a user passes with ``--config_files`` (and every job of a dataset gets
``properties/dataset/<dataset>.yaml``, in the runner); the ``paper`` suite reads the
settings YAMLs shipped under ``recbole_llmhni/properties/paper/`` (their one home).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import yaml

PROPERTIES = Path(__file__).resolve().parents[1] / "properties"


def properties(name: str) -> Dict[str, Any]:
    """The config keys of ``properties/<name>.yaml`` (an experiment file users pass too)."""
    return yaml.safe_load((PROPERTIES / f"{name}.yaml").read_text()) or {}


def dataset_properties(dataset: str) -> Dict[str, Any]:
    """``properties/dataset/<dataset>.yaml`` (data layout, evaluation settings), ``{}`` if there is none."""
    return properties(f"dataset/{dataset}") if (PROPERTIES / "dataset" / f"{dataset}.yaml").is_file() else {}


SUITES = ("models", "noise", "ablation", "s8", "speed", "rater", "s3", "paper", "denoisers", "seeds")
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]

#: RecBole 1.2.1's dynamic hard negatives: score 8 uniform candidates, keep the best-scored.
DNS = properties("negatives/dns")
#: The same with 32 candidates, the M ``llmhni_neg_candidates: auto`` picks on amazon-books.
DNS_32 = properties("negatives/dns-32")
#: The S8 weights used where a job needs L_de / L_hal switched on.
S8_ON = properties("s8/on")
NOISE_RATIOS = [0.0, 0.05, 0.1, 0.2]
#: The rater study: injected noise, and the simulated rater's accuracies.
RATER_NOISE = 0.2
ORACLE_ACCURACIES = [0.5, 0.7, 0.9, 1.0]
#: A wider S5 for the rater study: every user's 10 lowest-scored training items rated, and one
#: high-scored candidate (about as many negatives as the default's capped half), no global cap,
#: at these accuracies. It measures how much of the noise a rater can remove when it is shown more of it.
RATER_WIDE_S5 = {"llmhni_cand_kn": 1, "llmhni_cand_kp": 10, "llmhni_cand_max_pairs": 0}
RATER_WIDE_ACCURACIES = [0.9, 1.0]
#: The S3 sweep: false-negative quantile q, top-k, candidates M.
S3_QUANTILES = [0.3, 0.5, 0.7, 0.9]
S3_TOPK = [1, 2, 3]
S3_CANDIDATES = [8, 16, 32]
#: The denoising baselines (recbole_llmhni.models.denoisers) and the noise they are compared at.
DENOISERS = ("WBPR", "TCE", "RCE", "BOD", "DCF")
DENOISER_NOISE = 0.2
#: The seed study: RecBole's ``seed`` (2020 is its default, the seed of every other row) and the
#: two rows whose gap it measures, ``(label, model, params)``: the reference first.
SEEDS = [2020, 2021, 2022, 2023, 2024]
SEED_ROWS = (("LightGCN+DNS", "LightGCN", DNS), ("LLMHNI_LightGCN", "LLMHNI_LightGCN", {}))


def seed_label(label: str, seed: int) -> str:
    """The row label of one seed of the ``seeds`` suite: ``LLMHNI_LightGCN seed=2021``."""
    return f"{label} seed={seed}"


#: The rows the ``paper`` suite shares with the ``models`` suite (same model, same settings).
MODELS_ROWS = ("BPR", "LightGCN", "NGCF", "LightGCN+DNS", "LightGCN+DNS M=32", "NGCF+DNS", "LLMHNI_LightGCN",
               "LLMHNI_NGCF")
#: Rows a suite shows from another suite's result instead of running the same job again:
#: ``{suite: {(source suite, source label): label shown}}``. Only jobs with the same model and the
#: same settings are shared; a suite's own result for that label on the same machine, when present, wins.
BORROWED = {
    "ablation": {("models", "LLMHNI_LightGCN"): "full (models row)", ("s3", "uniform"): "w/o semantic sampling"},
    "noise": {("models", "LLMHNI_LightGCN"): "LLMHNI_LightGCN noise=0", ("models", "LightGCN"): "LightGCN noise=0",
              ("rater", "LLMHNI_LightGCN, stand-in rater"): "LLMHNI_LightGCN noise=0.2",
              ("rater", "LightGCN"): "LightGCN noise=0.2"},
    "s8": {("models", "LLMHNI_LightGCN"): "lambda=0 (models row)"},
    "paper": {**{("models", label): label for label in MODELS_ROWS},
              **{("denoisers", f"{m}_LightGCN noise=0"): f"{m}_LightGCN" for m in DENOISERS}},
    "denoisers": {("rater", "LightGCN"): f"LightGCN noise={DENOISER_NOISE:g}",
                  ("rater", "LightGCN+DNS"): f"LightGCN+DNS noise={DENOISER_NOISE:g}",
                  ("rater", "LLMHNI_LightGCN, stand-in rater"): f"LLMHNI_LightGCN noise={DENOISER_NOISE:g}",
                  ("models", "LightGCN"): "LightGCN noise=0",
                  ("models", "LightGCN+DNS"): "LightGCN+DNS noise=0",
                  ("models", "LLMHNI_LightGCN"): "LLMHNI_LightGCN noise=0"},
    "seeds": {("models", label): seed_label(label, SEEDS[0]) for label, _, _ in SEED_ROWS},
}
#: Settings files of the ``paper`` suite, ``{(model, dataset): YAML under recbole_llmhni/properties/paper/}``:
#: SGL's paper's own Amazon-book run (elsewhere SGL runs with RecBole's defaults, as every RecBole
#: baseline here), and for SimGCL / XSimGCL / RLMRec-Gen the settings chosen on a dataset's validation
#: Recall@20 where the authors' shipped ones stall or settle low there (RLMRec's from the authors'
#: own settings for another dataset; each YAML says why).
PAPER_DIR = Path(__file__).resolve().parents[1] / "recbole_llmhni" / "properties" / "paper"
PAPER_YAML = {("SGL", "amazon-books"): PAPER_DIR / "SGL-amazon-book.yaml",
              ("SimGCL", "ml-100k"): PAPER_DIR / "SimGCL-ml-100k.yaml",
              ("SimGCL", "amazon-books"): PAPER_DIR / "SimGCL-amazon-books.yaml",
              ("XSimGCL", "ml-100k"): PAPER_DIR / "XSimGCL-ml-100k.yaml",
              ("RLMRec_Con", "amazon-books"): PAPER_DIR / "RLMRec_Con-amazon-books.yaml",
              ("RLMRec_Gen", "ml-100k"): PAPER_DIR / "RLMRec_Gen-ml-100k.yaml"}
#: Plugin models whose shipped defaults are their authors' settings: where the suite runs one with a
#: dataset's own YAML, the authors' settings get a row of their own beside it.
AUTHORS_DEFAULTS = ("SimGCL", "XSimGCL", "RLMRec_Con", "RLMRec_Gen")
#: Figures the LLMHNI paper (arXiv 2511.07295, gpt-4o as the rater, its own runs) reports for a row of
#: the ``paper`` suite, ``{(dataset, label): cell}``; shown in a column of their own, never mixed with
#: this harness's measurements. Only the figures known here are listed (the paper's other rows are not).
PAPER_REPORTED = {("amazon-books", "LLMHNI_LightGCN"): "R@20 0.2040, N@10 0.1168"}
#: The order of the suites in the report.
SUITE_ORDER = {suite: k for k, suite in enumerate(SUITES)}


@dataclass
class Job:
    suite: str
    label: str  #: the row label in the report
    model: str
    dataset: str
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The label as a file name (``w/o alignment`` -> ``w_o_alignment``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_")

    def result_path(self, results: Path) -> Path:
        return results / self.suite / self.dataset / f"{self.slug}.json"


def _models(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    return [
        Job(suite, "LLMHNI_LightGCN", "LLMHNI_LightGCN", ds),
        Job(suite, "LLMHNI_NGCF", "LLMHNI_NGCF", ds),
        Job(suite, "LightGCN", "LightGCN", ds),
        Job(suite, "LightGCN+DNS", "LightGCN", ds, dict(DNS)),
        Job(suite, "NGCF", "NGCF", ds),
        Job(suite, "NGCF+DNS", "NGCF", ds, dict(DNS)),
        Job(suite, "BPR", "BPR", ds),
        # RecBole's DNS at the candidate-set size LLMHNI's `auto` picks on amazon-books (last: added later)
        Job(suite, "LightGCN+DNS M=32", "LightGCN", ds, dict(DNS_32)),
    ]


def _noise(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    return [Job(suite, f"{model} noise={ratio:g}", model, ds, properties(f"noise/noise-{ratio:g}"))
            for ratio in NOISE_RATIOS for model in ("LLMHNI_LightGCN", "LightGCN")]


def _ablation(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    return [
        Job(suite, "w/o semantic sampling", "LLMHNI_LightGCN", ds, properties("ablation/wo-semantic-sampling")),
        Job(suite, "w/o semantic sampling, score-only DNS", "LLMHNI_LightGCN", ds,
            properties("ablation/wo-semantic-sampling-dns")),
        Job(suite, "w/o alignment", "LLMHNI_LightGCN", ds, properties("ablation/wo-alignment")),
        Job(suite, "w/o denoising", "LLMHNI_LightGCN", ds, properties("ablation/wo-denoising")),
        Job(suite, "full, S8 on", "LLMHNI_LightGCN", ds, dict(S8_ON)),
        Job(suite, "full, S8 on, w/o L_hal", "LLMHNI_LightGCN", ds, properties("ablation/s8-on-wo-lhal")),
        Job(suite, "full, S8 on, w/o L_de", "LLMHNI_LightGCN", ds, properties("ablation/s8-on-wo-lde")),
    ]


def _s8(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """L_de / L_hal switched on: 10 epochs from a fresh start on both backbones (the stall
    test), then converged runs at two weights, from a fresh start and warm-started."""
    ten = {"epochs": 10, "stopping_step": 10 ** 6}
    jobs = [Job(suite, f"LLMHNI_{b}, lambda=0.1, 10 epochs", f"LLMHNI_{b}", ds, {**S8_ON, **ten})
            for b in ("LightGCN", "NGCF")]
    for lam in (0.1, 0.01):
        for warm in (False, True):
            label = f"lambda={lam:g}" + (", warm start" if warm else "")
            jobs.append(Job(suite, label, "LLMHNI_LightGCN", ds,
                            {"llmhni_lambda1": lam, "llmhni_lambda2": lam, "llmhni_warm_start": warm}))
    jobs.append(Job(suite, "lambda=0, warm start", "LLMHNI_LightGCN", ds, {"llmhni_warm_start": True}))
    jobs.append(Job(suite, "lambda1=0.1, lambda2=0 (w/o L_hal), warm start", "LLMHNI_LightGCN", ds,
                    {"llmhni_lambda1": 0.1, "llmhni_lambda2": 0.0, "llmhni_warm_start": True}))
    return jobs


def _speed(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    fixed = {"epochs": speed_epochs, "stopping_step": 10 ** 6}
    jobs = []
    for backbone in ("LightGCN", "NGCF"):
        jobs += [Job(suite, f"Backbone{backbone}", f"Backbone{backbone}", ds, dict(fixed)),
                 Job(suite, f"LLMHNI_{backbone}", f"LLMHNI_{backbone}", ds, dict(fixed)),
                 Job(suite, f"LLMHNI_{backbone}, S8 on", f"LLMHNI_{backbone}", ds, {**fixed, **S8_ON})]
    return jobs


def _rater(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """What a rater must get right: LLMHNI with the stand-in and with a simulated rater of
    accuracy a, beside LightGCN and LightGCN + DNS, all at 20% injected noise; then the
    simulated rater shown more of the noise (:data:`RATER_WIDE_S5`)."""
    noise = {"llmhni_noise_ratio": RATER_NOISE}
    jobs = [Job(suite, "LightGCN", "LightGCN", ds, dict(noise)),
            Job(suite, "LightGCN+DNS", "LightGCN", ds, {**DNS, **noise}),
            Job(suite, "LLMHNI_LightGCN, stand-in rater", "LLMHNI_LightGCN", ds, dict(noise))]
    for accuracy in ORACLE_ACCURACIES:
        jobs.append(Job(suite, f"LLMHNI_LightGCN, simulated rater a={accuracy:g}", "LLMHNI_LightGCN", ds,
                        {**noise, "llmhni_rater": "oracle", "llmhni_oracle_accuracy": accuracy}))
    wide = (f"S5 kn={RATER_WIDE_S5['llmhni_cand_kn']} kp={RATER_WIDE_S5['llmhni_cand_kp']}"
            + (" no cap" if RATER_WIDE_S5["llmhni_cand_max_pairs"] == 0 else f" cap {RATER_WIDE_S5['llmhni_cand_max_pairs']}"))
    for accuracy in RATER_WIDE_ACCURACIES:
        jobs.append(Job(suite, f"LLMHNI_LightGCN, simulated rater a={accuracy:g}, {wide}", "LLMHNI_LightGCN", ds,
                        {**noise, "llmhni_rater": "oracle", "llmhni_oracle_accuracy": accuracy, **RATER_WIDE_S5}))
    return jobs


def s3_label(q: float, k: int, m: int) -> str:
    """The row label of one sweep point: ``q=0.7 k=1 M=8``."""
    return f"q={q:g} k={k} M={m}"


def _s3(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """S3's knobs: uniform and score-only DNS negatives (M=8), ``llmhni_fn_quantile: auto``
    (k=1, M=8), both automatic settings (``auto q, auto M``: the shipped defaults), then the grid
    q x k x M, M slowest, q fastest (the k=1, M=8 row first), then score-only DNS at the grid's
    other M."""
    jobs = [Job(suite, "uniform", "LLMHNI_LightGCN", ds, {"llmhni_neg_mode": "uniform"}),
            Job(suite, "score-only DNS M=8", "LLMHNI_LightGCN", ds, {"llmhni_neg_mode": "dns", "llmhni_neg_candidates": 8}),
            Job(suite, "auto k=1 M=8", "LLMHNI_LightGCN", ds,
                {"llmhni_fn_quantile": "auto", "llmhni_neg_topk": 1, "llmhni_neg_candidates": 8}),
            Job(suite, "auto q, auto M", "LLMHNI_LightGCN", ds,
                {"llmhni_fn_quantile": "auto", "llmhni_neg_topk": 1, "llmhni_neg_candidates": "auto"})]
    for m in S3_CANDIDATES:
        for k in S3_TOPK:
            jobs += [Job(suite, s3_label(q, k, m), "LLMHNI_LightGCN", ds,
                         {"llmhni_neg_mode": "semantic", "llmhni_fn_quantile": q, "llmhni_neg_topk": k,
                          "llmhni_neg_candidates": m}) for q in S3_QUANTILES]
    # score-only DNS at the larger M too: how much of a larger M's effect is the harder candidate set
    jobs += [Job(suite, f"score-only DNS M={m}", "LLMHNI_LightGCN", ds, {"llmhni_neg_mode": "dns", "llmhni_neg_candidates": m})
             for m in S3_CANDIDATES[1:]]
    return jobs


def _paper(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """The LLMHNI paper's comparison: the ``models`` rows plus graph contrastive learning (SGL,
    SimGCL, XSimGCL) and LLM-enhanced representation learning (RLMRec-Con / -Gen, with the
    S1 encoder LLMHNI uses) and the loss-based denoisers (WBPR, T-CE, R-CE, BOD, DCF) on LightGCN."""
    def settings(model: str) -> Dict[str, Any]:
        path = PAPER_YAML.get((model, ds))
        return yaml.safe_load(path.read_text()) if path else {}

    def rows(label: str, model: str) -> List[Job]:
        own = [Job(suite, label, model, ds, settings(model))]
        if model in AUTHORS_DEFAULTS and (model, ds) in PAPER_YAML:
            own.append(Job(suite, f"{label}, authors' settings", model, ds))
        return own

    return [
        Job(suite, "BPR", "BPR", ds),
        Job(suite, "LightGCN", "LightGCN", ds),
        Job(suite, "NGCF", "NGCF", ds),
        Job(suite, "LightGCN+DNS", "LightGCN", ds, dict(DNS)),
        Job(suite, "LightGCN+DNS M=32", "LightGCN", ds, dict(DNS_32)),
        Job(suite, "NGCF+DNS", "NGCF", ds, dict(DNS)),
        *rows("SGL", "SGL"),
        *rows("SimGCL", "SimGCL"),
        *rows("XSimGCL", "XSimGCL"),
        *rows("RLMRec-Con", "RLMRec_Con"),
        *rows("RLMRec-Gen", "RLMRec_Gen"),
        *[Job(suite, f"{m}_LightGCN", f"{m}_LightGCN", ds) for m in DENOISERS],
        Job(suite, "LLMHNI_LightGCN", "LLMHNI_LightGCN", ds),
        Job(suite, "LLMHNI_NGCF", "LLMHNI_NGCF", ds),
    ]


def _denoisers(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """The loss-based denoisers beside LightGCN, LightGCN + DNS and LLMHNI_LightGCN: first at
    20% injected noise (the five on LightGCN and on NGCF, with NGCF as the second reference),
    then clean (the LightGCN ones)."""
    jobs = []
    for ratio in (DENOISER_NOISE, 0.0):
        noise = {"llmhni_noise_ratio": ratio}
        tag = f"noise={ratio:g}"
        jobs += [Job(suite, f"LightGCN {tag}", "LightGCN", ds, dict(noise)),
                 Job(suite, f"LightGCN+DNS {tag}", "LightGCN", ds, {**DNS, **noise}),
                 Job(suite, f"LLMHNI_LightGCN {tag}", "LLMHNI_LightGCN", ds, dict(noise))]
        jobs += [Job(suite, f"{m}_LightGCN {tag}", f"{m}_LightGCN", ds, dict(noise)) for m in DENOISERS]
        if ratio:
            jobs.append(Job(suite, f"NGCF {tag}", "NGCF", ds, dict(noise)))
            jobs += [Job(suite, f"{m}_NGCF {tag}", f"{m}_NGCF", ds, dict(noise)) for m in DENOISERS]
    return jobs


def _seeds(suite: str, ds: str, speed_epochs: int) -> List[Job]:
    """LightGCN + DNS and LLMHNI_LightGCN under each of :data:`SEEDS`, seed-major, so a stopped
    run leaves whole pairs. The first seed is RecBole's default: those jobs carry no ``seed``
    key and are the ``models`` suite's rows."""
    return [Job(suite, seed_label(label, seed), model, ds, {**params, **({"seed": seed} if seed != SEEDS[0] else {})})
            for seed in SEEDS for label, model, params in SEED_ROWS]


_BUILDERS = {"models": _models, "noise": _noise, "ablation": _ablation, "s8": _s8, "speed": _speed, "rater": _rater,
             "s3": _s3, "paper": _paper, "denoisers": _denoisers, "seeds": _seeds}


def suite_jobs(suite: str, datasets: List[str], speed_epochs: int = 5) -> List[Job]:
    """The jobs of one suite, in the order they are started.

    ``models``: BPR, LightGCN, NGCF, LightGCN and NGCF + RecBole's DNS, LLMHNI_LightGCN, LLMHNI_NGCF,
    LightGCN + RecBole's DNS at M=32;
    ``noise``: LightGCN and LLMHNI_LightGCN with 0, 5, 10, 20% injected noise; ``ablation``:
    LLMHNI_LightGCN without each part; ``s8``: the S8 weights, from scratch and warm-started;
    ``speed``: plain backbones next to their LLMHNI models, ``speed_epochs`` epochs each;
    ``rater``: at 20% noise, LightGCN, LightGCN + DNS, LLMHNI_LightGCN with the stand-in rater
    and with the simulated rater at accuracy 0.5, 0.7, 0.9 and 1.0, then at 0.9 and 1.0 with a
    wider S5; ``s3``: LLMHNI_LightGCN
    with uniform, score-only DNS and ``auto`` negatives, and the grid q x k x M of S3; ``paper``: the LLMHNI
    paper's comparison table (the ``models`` rows, SGL, SimGCL, XSimGCL, RLMRec-Con, RLMRec-Gen);
    ``denoisers``: WBPR, T-CE,
    R-CE, BOD, DCF on LightGCN and NGCF at 20% noise beside LightGCN, LightGCN + DNS,
    LLMHNI_LightGCN and NGCF, then the LightGCN ones clean; ``seeds``: LightGCN + DNS and
    LLMHNI_LightGCN under five seeds, to tell their gap from seed noise.
    """
    if suite not in _BUILDERS:
        raise SystemExit(f"unknown suite {suite!r}: {', '.join(SUITES)}")
    return [job for ds in datasets for job in _BUILDERS[suite](suite, ds, speed_epochs)]
