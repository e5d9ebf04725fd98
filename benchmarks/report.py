"""The benchmark report: ``RESULTS.md``, PNG charts and the README's results tables.

Everything here is built from the result files alone (:func:`load_results`), each read
through :func:`records.view`, so files of the first harness (``log`` section) and run
records (``epochs``, ``pipeline``) give the same rows.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from records import median, sec_per_epoch, view, where
from suites import (BORROWED, METRICS, PAPER_REPORTED, RATER_WIDE_S5, S3_CANDIDATES, S3_QUANTILES, S3_TOPK, SEED_ROWS, SEEDS,
                    SUITE_ORDER, SUITES, s3_label, seed_label, suite_jobs)

Record = Dict[str, Any]


def load_results(results: Path) -> List[Record]:
    """Every result file under ``results/<suite>/<dataset>/``, as :func:`records.view` reads it.

    Folders that are not a suite (``identification/``, ``standin/``: files other scripts wrote)
    are not job results and are left out.
    """
    records = []
    for path in sorted(results.glob("*/*/*.json")):
        if path.parent.parent.name not in SUITES or path.name.endswith((".progress.json", ".child.json")):
            continue  # not a suite's folder (a job's working folder, another script's files), or a job still running
        records.append(view(json.loads(path.read_text())))
    return records


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _machine_str(m: Dict[str, Any]) -> str:
    host = m.get("gpu") or f"CPU ({m.get('cpu_count')} cores, {m.get('omp_threads')} torch threads)"
    return f"{host}; Python {m.get('python')}, torch {m.get('torch')}, RecBole {m.get('recbole')}"


def _vs_backbone(rows: List[Record]) -> Dict[str, str]:
    """Each LLMHNI row's median training epoch over its plain backbone's (``1.49x``), by row label.

    The backbone is the row of the same suite whose model is ``Backbone<X>`` (``LLMHNI_<X>``'s).
    """
    backbone = {r["model"]: sec_per_epoch(r) for r in rows if r["model"].startswith("Backbone")}
    ratios = {}
    for r in rows:
        mine = sec_per_epoch(r)
        base = backbone.get(r["model"].replace("LLMHNI_", "Backbone")) if r["model"].startswith("LLMHNI_") else None
        ratios[r["label"]] = f"{mine / base:.2f}x" if base and mine else "-"
    return ratios


def _markdown(head: List[str], body: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in body]


def _metric_cells(r: Record) -> List[str]:
    t = r.get("test") or {}
    return [r["label"]] + [_fmt(t.get(k)) for k in METRICS] + [f"{r.get('best_epoch', '-')} / {r.get('epochs_trained', '-')}"]


def _table(rows: List[Record], extra_cols: List[Tuple[str, Callable[[Record], str]]]) -> List[str]:
    head = ["model", "R@10", "R@20", "N@10", "N@20", "best epoch / trained", "status", "s/epoch",
            "wall", "peak RSS", "peak GPU"] + [c[0] for c in extra_cols]
    body = []
    for r in rows:
        gpu = r.get("peak_gpu_mb")
        cells = _metric_cells(r) + [
            _status_cell(r, bold=False), _fmt(sec_per_epoch(r), 2), f"{r.get('wall_seconds_total', 0) / 60:.1f} min",
            _peak_rss(r), f"{gpu:.0f} MB" if gpu else "-"]
        cells += [fn(r) for _, fn in extra_cols]
        body.append(cells)
    return _markdown(head, body)


def _peak_rss(r: Record) -> str:
    """The job's peak resident memory (the training process's ``ru_maxrss``)."""
    return f"{r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") else "-"


def _reported(r: Record) -> str:
    """What the LLMHNI paper itself reports for this row ('' where it reports nothing known here)."""
    return PAPER_REPORTED.get((r["dataset"], r["label"]), "")


def _any_reported(rows: List[Record]) -> bool:
    return any(_reported(r) for r in rows)


def _ident(r: Record, key: str) -> str:
    """Identification precision / recall of S6's noisy label."""
    rep = r.get("ident") or {}
    return _fmt(rep.get(key), 3) if key in rep else "-"


def _stage_seconds(r: Record, stage: str) -> str:
    stages = r.get("stages") or {}
    return f"{stages[stage]['seconds']:.0f} s" if stage in stages else "-"


def _bar_chart(rows: List[Record], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [r["label"] for r in rows]
    labels = [f"{lab} ({where(r)})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, rows)]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4))
    for k, metric in enumerate(["recall@20", "ndcg@20"]):
        vals = [(r.get("test") or {}).get(metric) or 0.0 for r in rows]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=metric.replace("recall", "Recall").replace("ndcg", "NDCG"))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    top = max([(r.get("test") or {}).get("recall@20") or 0.0 for r in rows] + [1e-9])
    ax.set_ylim(0, top * 1.22)  # headroom: the legend never covers a bar's label
    ax.set_title(title)
    ax.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ident_chart(rows: List[Record], path: Path, dataset: str) -> None:
    """Identification precision / recall against the injected noise, one pair of bars per row
    that reports it (LLMHNI's S6 label; a denoiser's drops or lowest weights), with the
    precision of a random pick as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in rows if r.get("ident")]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    for k, key in enumerate(["precision", "recall"]):
        bars = ax.bar(x + (k - 0.5) * 0.38, [r["ident"].get(key) or 0.0 for r in rows], 0.38, label=key)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    random = [r["ident"].get("reference_precision_random") for r in rows]
    if any(v is not None for v in random):
        ax.axhline(max(v or 0.0 for v in random), color="grey", ls="--", lw=1, label="random pick (precision)")
    ax.set_xticks(x, [r["label"] for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.2)  # headroom: the legend never covers a bar's label
    ax.set_title(f"denoisers: identification of the injected noise, {dataset}")
    ax.legend(loc="upper left", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _noise_ratio(r: Record) -> float:
    return r["params"].get("llmhni_noise_ratio", 0.0)


def _noise_chart(rows: List[Record], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({r["model"] for r in rows}):
        pts = sorted(((_noise_ratio(r), (r.get("test") or {}).get("recall@20"))
                      for r in rows if r["model"] == model and r.get("test")), key=lambda p: p[0])
        if pts:
            ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
    ax.set_xlabel("injected noise (% of the training set)")
    ax.set_ylabel("test Recall@20")
    ax.set_title(f"Noise robustness: {dataset}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _oracle_accuracy(r: Record) -> Optional[float]:
    params = r.get("params") or {}
    return float(params["llmhni_oracle_accuracy"]) if params.get("llmhni_rater") == "oracle" else None


def _wider_s5(r: Record) -> bool:
    """Whether a row set S5's candidate budget itself (the rater suite's wider-S5 rows)."""
    return any(k in (r.get("params") or {}) for k in RATER_WIDE_S5)


def _rater_chart(rows: List[Record], path: Path, dataset: str) -> None:
    """Test Recall@20 against the simulated rater's accuracy, the other rows as lines across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    oracle = [r for r in rows if _oracle_accuracy(r) is not None and r.get("test")]
    # one line per S5 budget: the default, and any row that widens S5 (its label names how)
    for wide, name, marker in ((False, "LLMHNI_LightGCN, simulated rater", "o"),
                               (True, "LLMHNI_LightGCN, simulated rater, wider S5", "s")):
        pts = sorted((_oracle_accuracy(r), r["test"]["recall@20"]) for r in oracle if _wider_s5(r) == wide)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=name)
    refs = [r for r in rows if _oracle_accuracy(r) is None and r.get("test")]
    styles = ["--", ":", "-."]
    for i, r in enumerate(refs):
        ax.axhline(r["test"]["recall@20"], linestyle=styles[i % len(styles)], linewidth=1.2,
                   color=f"C{i + 1}", label=r["label"])
    ax.set_xlabel("simulated rater accuracy a on low-score positives")
    ax.set_ylabel("test Recall@20")
    ax.set_title(f"What a rater must get right: {dataset}, 20% injected noise")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _r20(r: Record, split: str = "test") -> Optional[float]:
    return (r.get(split) or {}).get("recall@20")


#: label -> q of every grid point (a row borrowed from an older record may lack S3's counters)
_S3_GRID = {s3_label(q, k, m): q for q in S3_QUANTILES for k in S3_TOPK for m in S3_CANDIDATES}


def _first_per_label(rows: List[Record]) -> Dict[str, Record]:
    """One row per label: the first (rows come a job's CPU row first), so a grid compares one machine."""
    out: Dict[str, Record] = {}
    for r in rows:
        out.setdefault(r["label"], r)
    return out


def s3_selected(rows: List[Record]) -> Optional[Record]:
    """The grid row (semantic, a fixed q; not ``auto``) with the best validation Recall@20, ``None`` if none ran.

    One row per setting (:func:`_first_per_label`): another machine's copy of a job is not a candidate.
    """
    semantic = [r for label, r in _first_per_label(rows).items() if label in _S3_GRID and _r20(r, "valid") is not None]
    return max(semantic, key=lambda r: _r20(r, "valid")) if semantic else None


def _share(r: Record, key: str) -> str:
    ns = r.get("negative_sampling") or {}
    value = ns.get(key) if ns.get("mode") == "semantic" else None  # uniform / dns: no filter
    return "-" if value is None else f"{100 * value:.1f}%"


def _s3_table(rows: List[Record]) -> List[str]:
    """The ``s3`` suite: validation and test Recall@20 per setting, the q used, how often the
    filter fired and how often the choice differed from score-only DNS; the validation-selected
    semantic row in bold."""
    best = s3_selected(rows)
    head = ["setting", "valid R@20", "test R@20", "test N@20", "q used", "M used", "filter fired", "differs from DNS",
            "best epoch / trained", "stopped by", "machine", "s/epoch", "wall"]
    body = []
    for r in rows:
        ns = r.get("negative_sampling") or {}
        label = f"**{r['label']}** (selected)" if r is best else r["label"]
        q = ns.get("fn_quantile") if ns.get("mode") == "semantic" else _S3_GRID.get(r["label"])
        m = ns.get("candidates") if ns.get("mode") in ("dns", "semantic") else None
        body.append([label, _fmt(_r20(r, "valid")), _fmt(_r20(r)), _fmt((r.get("test") or {}).get("ndcg@20")),
                     "-" if q is None else f"{q:g}", "-" if m is None else str(m),
                     _share(r, "fired_row_share"), _share(r, "changed_row_share"),
                     f"{r.get('best_epoch', '-')} / {r.get('epochs_trained', '-')}", _status_cell(r), where(r),
                     _fmt(sec_per_epoch(r), 2), f"{(r.get('wall_seconds_total') or 0) / 60:.0f} min"])
    return _markdown(head, body)


def _s3_heatmap(rows: List[Record], path: Path, dataset: str) -> None:
    """Test Recall@20 over q (columns) and (k, M) (rows); grey where the run is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by_label = _first_per_label(rows)
    ys = [(k, m) for m in S3_CANDIDATES for k in S3_TOPK]
    grid = np.full((len(ys), len(S3_QUANTILES)), np.nan)
    for a, (k, m) in enumerate(ys):
        for b, q in enumerate(S3_QUANTILES):
            r = by_label.get(s3_label(q, k, m))
            if r is not None and _r20(r) is not None:
                grid[a, b] = _r20(r)
    fig, ax = plt.subplots(figsize=(6, 6))
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    for a in range(len(ys)):
        for b in range(len(S3_QUANTILES)):
            text = "not run" if np.isnan(grid[a, b]) else f"{grid[a, b]:.4f}"
            ax.text(b, a, text, ha="center", va="center", fontsize=8, color="black" if np.isnan(grid[a, b]) else "white")
    ax.set_xticks(range(len(S3_QUANTILES)), [f"q={q:g}" for q in S3_QUANTILES])
    ax.set_yticks(range(len(ys)), [f"k={k} M={m}" for k, m in ys])
    ref_cells = [f"{r['label']} {_r20(r):.4f}" for r in by_label.values()
                 if r["label"] in ("uniform", "score-only DNS M=8", "auto k=1 M=8", "auto q, auto M")
                 and _r20(r) is not None]
    # two references per line, so the title stays within the figure's width
    refs = "\n".join(", ".join(ref_cells[i:i + 2]) for i in range(0, len(ref_cells), 2))
    ax.set_title(f"S3 sweep, test Recall@20: {dataset}" + (f"\n{refs}" if refs else ""), fontsize=9)
    if not np.isnan(grid).all():
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_std(values: List[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, var ** 0.5


def seed_table(rows: List[Record]) -> Dict[str, Any]:
    """The ``seeds`` suite as numbers: per seed, the test metrics of the two :data:`SEED_ROWS`; per
    row, mean and sample std over the seeds it ran; the paired difference (second minus first,
    seed by seed, over the seeds both ran) and how many seeds the second is above."""
    by_label = _first_per_label(rows)
    names = [label for label, _, _ in SEED_ROWS]
    per_seed = {seed: {name: (by_label[seed_label(name, seed)].get("test") or {})
                       for name in names if seed_label(name, seed) in by_label} for seed in SEEDS}
    out: Dict[str, Any] = {"names": names, "per_seed": per_seed, "summary": {}, "paired": {}}
    a, b = names
    for metric in ("recall@20", "ndcg@20"):
        value = {name: {seed: m[name][metric] for seed, m in per_seed.items() if m.get(name, {}).get(metric) is not None}
                 for name in names}
        for name in names:
            if value[name]:
                out["summary"][(name, metric)] = (*_mean_std(list(value[name].values())), len(value[name]))
        diffs = [value[b][seed] - value[a][seed] for seed in value[a] if seed in value[b]]
        if diffs:
            out["paired"][metric] = (*_mean_std(diffs), len(diffs), sum(d > 0 for d in diffs))
    return out


def _seeds_table(rows: List[Record]) -> List[str]:
    """Test R@20 / N@20 of each row seed by seed, then mean +- std and the paired difference."""
    t = seed_table(rows)
    names = t["names"]
    head = ["seed"] + [f"{n} {m}" for m in ("R@20", "N@20") for n in names]
    head += [f"{names[1]} - {names[0]} {m}" for m in ("R@20", "N@20")]
    body = []
    for seed, m in t["per_seed"].items():
        if not m:
            continue
        cells = [str(seed)] + [_fmt(m.get(n, {}).get(k)) for k in ("recall@20", "ndcg@20") for n in names]
        for k in ("recall@20", "ndcg@20"):
            a, b = (m.get(n, {}).get(k) for n in names)
            cells.append(f"{b - a:+.4f}" if a is not None and b is not None else "-")
        body.append(cells)
    summary = ["mean +- std (n)"]
    for k in ("recall@20", "ndcg@20"):
        for n in names:
            mean, std, count = t["summary"].get((n, k), (None, None, 0))
            summary.append(f"{mean:.4f} +- {std:.4f} ({count})" if count else "-")
    for k in ("recall@20", "ndcg@20"):
        mean, std, count, above = t["paired"].get(k, (None, None, 0, 0))
        summary.append(f"{mean:+.4f} +- {std:.4f}, above in {above} of {count}" if count else "-")
    body.append([f"**{c}**" if c != "-" else c for c in summary])
    return _markdown(head, body)


def _seeds_chart(rows: List[Record], path: Path, dataset: str) -> None:
    """Test Recall@20 seed by seed, one line per row, its mean dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = seed_table(rows)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, name in enumerate(t["names"]):
        pts = [(seed, m[name]["recall@20"]) for seed, m in t["per_seed"].items()
               if m.get(name, {}).get("recall@20") is not None]
        if not pts:
            continue
        color = f"C{i}"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=name)
        mean = t["summary"][(name, "recall@20")][0]
        ax.axhline(mean, color=color, linestyle="--", linewidth=1)
    ax.set_xticks(SEEDS)
    ax.set_xlabel("seed")
    ax.set_ylabel("test Recall@20")
    ax.set_title(f"seeds: {dataset} (dashed: mean over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _epoch_cap(r: Record) -> Optional[int]:
    """The ``--epochs`` cap the row's command trained under (None: RecBole's own, 300)."""
    found = re.search(r"--epochs[ =](\d+)", str(r.get("command") or ""))
    return int(found.group(1)) if found else None


def rows_by_table(records: List[Record]) -> Dict[tuple, List[Record]]:
    """Records grouped by ``(suite, dataset)``, in report order; rows in job order, borrowed rows first."""
    by_key: Dict[tuple, List[Record]] = {}
    for r in records:
        by_key.setdefault((r["suite"], r["dataset"]), []).append(r)
    for (suite, dataset), rows in by_key.items():
        own = {(r["label"], where(r)) for r in rows}  # a suite's own result wins, machine by machine
        caps = {_epoch_cap(r) for r in rows}
        for (source, label), shown in BORROWED.get(suite, {}).items():
            for r in records:  # a row trained under another epoch cap is not the same job
                if ((r["suite"], r["dataset"], r["label"]) == (source, dataset, label) and _epoch_cap(r) in caps
                        and (shown, where(r)) not in own):
                    rows.insert(0, {**r, "label": shown})
        job_order = {j.label: i for i, j in enumerate(suite_jobs(suite, [dataset]))}
        rows.sort(key=lambda r: (job_order.get(r["label"], -1), where(r)))  # a job's CPU row first
    return dict(sorted(by_key.items(), key=lambda kv: (SUITE_ORDER.get(kv[0][0], 9), kv[0][1])))


def _encoder_cell(r: Record) -> str:
    """The S1 encoder of a model that reads profile embeddings (LLMHNI, RLMRec); empty for the others."""
    return str(r.get("encoder") or "-") if r["model"].startswith(("LLMHNI", "RLMRec")) else ""


def _status_cell(r: Record, bold: bool = True) -> str:
    """How the row's run stopped; a stop short of convergence in bold (README tables)."""
    status = r.get("status", "-")
    cell = f"**{status}**" if bold and status in ("time budget", "failed") else status
    restarts = r.get("resumed") or []  # compare.py run --resume: trained over several runs
    if restarts:
        cell += " (resumed after epoch " + ", ".join(str(x["from_epoch"]) for x in restarts) + ")"
    return cell


def _speed_table(rows: List[Record]) -> List[str]:
    vs_backbone = _vs_backbone(rows)
    head = ["model", "s / training epoch", "vs its backbone", "s / evaluation", "setup (dataset + S1-S7)",
            "S2 align", "S4 pretrain", "S5-S7", "peak RSS"]
    body = []
    for r in rows:
        stages = r.get("stages") or {}
        late = [v["seconds"] for k, v in stages.items() if k.split()[0] in ("S5", "S6", "S7")]
        body.append([r["label"], _fmt(sec_per_epoch(r), 2), vs_backbone[r["label"]],
                     _fmt(median(r.get("eval_seconds") or []), 2),
                     f"{r.get('setup_seconds') or 0:.0f} s",
                     _stage_seconds(r, "S2 align"), _stage_seconds(r, "S4 pretrain"),
                     f"{sum(late):.1f} s" if late else "-",
                     _peak_rss(r)])
    return _markdown(head, body)


def readme_table(suite: str, rows: List[Record]) -> List[str]:
    """The Markdown table the README shows for one ``(suite, dataset)``: built only from result files."""
    if suite == "speed":
        return _speed_table(rows)
    if suite == "s3":
        return _s3_table(rows)
    if suite == "seeds":
        return _seeds_table(rows)
    head = ["model", "R@10", "R@20", "N@10", "N@20", "best epoch / trained", "stopped by", "machine",
            "s/epoch", "wall"]
    noise = suite in ("noise", "rater", "denoisers")
    if noise:
        head += ["ident. precision", "ident. recall"]
    reported = suite == "paper" and _any_reported(rows)
    if suite == "paper":
        head += ["peak RSS", "text encoder (S1)"] + (["LLMHNI paper reports"] if reported else [])
    body = []
    for r in rows:
        cells = _metric_cells(r) + [_status_cell(r), where(r), _fmt(sec_per_epoch(r), 2),
                                    f"{(r.get('wall_seconds_total') or 0) / 60:.0f} min"]
        if suite == "paper":
            cells += [_peak_rss(r), _encoder_cell(r)]
            if reported:
                cells.append(_reported(r))
        if noise:
            flags = "LLMHNI" in r["model"] or bool(r.get("ident"))  # LLMHNI, or a denoiser's report
            cells += [_ident(r, "precision") if flags else "", _ident(r, "recall") if flags else ""]
        body.append(cells)
    return _markdown(head, body)


#: ``<!-- results SUITE DATASET -->`` ... ``<!-- /results -->``: a README table ``report`` writes.
README_BLOCK = re.compile(r"(<!-- results (\S+) (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)


def render_readme(text: str, records: List[Record]) -> str:
    """``text`` with every results block replaced by the table of its result files."""
    tables = rows_by_table(records)

    def fill(m: "re.Match[str]") -> str:
        rows = tables.get((m.group(2), m.group(3)))
        if not rows:
            raise SystemExit(f"README block '{m.group(2)} {m.group(3)}': no result files for it under "
                             "benchmarks/results/; run that suite or remove the block")
        return m.group(1) + "\n".join(readme_table(m.group(2), rows)) + "\n" + m.group(5)

    return README_BLOCK.sub(fill, text)


def _noise_lines(rows: List[Record]) -> List[str]:
    lines = []
    for model in sorted({r["model"] for r in rows}):
        by_ratio = {_noise_ratio(r): (r.get("test") or {}).get("recall@20") for r in rows if r["model"] == model}
        clean = by_ratio.get(0.0)
        drops = [f"{100 * ratio:g}% noise {100 * (v - clean) / clean:+.1f}%"
                 for ratio, v in sorted(by_ratio.items()) if ratio > 0 and v is not None and clean]
        if drops:
            lines.append(f"- {model}: Recall@20 change against its 0% row: " + ", ".join(drops))
    return lines


def _extra_columns(suite: str, rows: List[Record]) -> List[Tuple[str, Callable[[Record], str]]]:
    if suite in ("noise", "ablation", "s8", "rater", "denoisers"):
        return [("ident. precision", lambda r: _ident(r, "precision")),
                ("ident. recall", lambda r: _ident(r, "recall"))]
    if suite == "paper":
        return [("text encoder (S1)", _encoder_cell)] + (
            [("LLMHNI paper reports", _reported)] if _any_reported(rows) else [])
    if suite == "speed":
        vs_backbone = _vs_backbone(rows)
        return [("epoch vs backbone", lambda r: vs_backbone[r["label"]]),
                ("setup (S1-S7)", lambda r: f"{r.get('setup_seconds', 0):.1f} s"),
                ("stages", lambda r: ", ".join(f"{k} {v['seconds']:.1f} s"
                                               for k, v in (r.get("stages") or {}).items()) or "-")]
    return []


#: Suites whose RESULTS.md section adds a summary of their own and a chart: ``{suite: (lines, chart)}``.
_SUMMARY_AND_CHART = {"s3": (_s3_table, _s3_heatmap), "seeds": (_seeds_table, _seeds_chart),
                      "noise": (_noise_lines, _noise_chart)}


def results_markdown(records: List[Record], results: Path, charts: bool = True) -> str:
    """``RESULTS.md``: one section per ``(suite, dataset)``; with ``charts``, the PNGs beside it."""
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/compare.py report` from the JSON files beside it; each",
             "table's rows come from the command shown under it. Test metrics are those of the",
             "best-validation checkpoint. `s/epoch` is the median training epoch (without",
             "evaluation). Single runs, seed 2020 (the seeds suite: five seeds).", ""]
    for (suite, dataset), rows in rows_by_table(records).items():
        lines += [f"## {suite}: {dataset}", ""]
        machines = sorted({_machine_str(r.get("machine") or {}) for r in rows})
        lines += [f"Machine: {m}." for m in machines]
        raters = sorted({f"encoder {r.get('encoder')}, rater {r.get('rater')}" for r in rows if r.get("rater")})
        if raters:
            lines += [f"LLMHNI runs: {x} (`semantic` is the offline stand-in rater, not an LLM)." for x in raters]
        lines.append("")
        lines += _table(rows, _extra_columns(suite, rows))
        lines += ["", "Commands:", ""] + [f"    {c}" for c in sorted({r['command'] for r in rows})] + [""]
        if suite in ("models", "ablation", "s8", "paper", "denoisers"):
            png = results / f"{suite}_{dataset}.png"
            if charts:
                _bar_chart(rows, f"{suite}: {dataset}", png)
            lines += [f"![{suite} {dataset}]({png.name})", ""]
        if suite == "denoisers" and any(r.get("ident") for r in rows):
            png = results / f"denoisers_ident_{dataset}.png"
            if charts:
                _ident_chart(rows, png, dataset)
            lines += [f"![denoisers identification {dataset}]({png.name})", ""]
        if suite == "rater":
            png = results / f"rater_{dataset}.png"
            if charts:
                _rater_chart(rows, png, dataset)
            lines += [f"![rater {dataset}]({png.name})", ""]
        if suite == "s3":
            best = s3_selected(rows)
            if best is not None:
                lines += [f"Selected by validation Recall@20: `{best['label']}` (valid {_r20(best, 'valid'):.4f}, "
                          f"test {_fmt(_r20(best))}).", ""]
        if suite in _SUMMARY_AND_CHART:  # a summary below the table, and its chart
            summary, chart = _SUMMARY_AND_CHART[suite]
            lines += summary(rows) + [""]
            png = results / f"{suite}_{dataset}.png"
            if charts:
                chart(rows, png, dataset)
            lines += [f"![{suite} {dataset}]({png.name})", ""]
        for r in rows:
            if r.get("status") == "failed":
                lines += [f"`{r['label']}` failed: " + " / ".join((r.get("stderr_tail") or r.get("log_tail") or ["?"])[-3:]), ""]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> int:
    results = Path(args.results).resolve()
    records = load_results(results)
    if not records:
        print(f"no results under {results}")
        return 1
    out = results / "RESULTS.md"
    out.write_text(results_markdown(records, results))
    print(out.read_text())
    if args.readme:
        readme = Path(args.readme)
        text = readme.read_text()
        new = render_readme(text, records)
        if new != text:
            readme.write_text(new)
            print(f"updated the results tables of {readme}")
    return 0
