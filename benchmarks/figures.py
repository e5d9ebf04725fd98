"""Two README figures drawn from the plugin's cached artifacts (nothing is trained or encoded).

``tsne_alignment.png``
    t-SNE of a seeded random sample of users and items, before alignment (the raw S1 text
    embeddings of the profiles, e.g. 384-d all-MiniLM-L6-v2) and after alignment (the S2
    vectors z', 64-d), side by side. Each panel title gives the mean cosine between a sampled
    user and each of its training items (``<data-path>/<dataset>/<dataset>.train.inter``) and,
    for scale, the mean cosine over every sampled user x sampled item pair, in that panel's space.

    Reads S2's ``<artifact-dir>/<dataset>/align/<key>/aligned.npz`` (unless ``--aligned``, the
    newest one fitted on the clean training split, else the newest; the stage's
    ``manifest.json`` names S1's key, whose manifest names the encoder, and the fingerprint of
    the training edges it was fitted on), the profile files ``<data-path>/<dataset>/<dataset>.{user,item}_profile.jsonl`` and the
    embedding cache ``<artifact-dir>/llm_cache/llm_cache.sqlite3`` (``--cache``). The raw
    vectors come from the package's own encoder, limited to the cache: a profile that is not
    cached is an error, never an encode.

``score_distributions.png``
    Density histograms of the Rec_pre score (S4) of the S5 candidates, split by the S6 label:
    (a) high-score non-interacted candidates (kind ``neg``), hard vs noisy; (b) low-score
    training candidates (kind ``pos``), hard vs noisy; (c) when the injected-noise file exists,
    the ``pos`` candidates split into injected-noise pairs vs clean pairs.

    Reads ``<artifact-dir>/<dataset>/ratings/<key>/{ratings.tsv,manifest.json}`` and follows
    ratings -> candidates -> pretrain manifests; ``<artifact-dir>/<dataset>/noise/
    injected_ratio<r>_seed<s>.tsv`` (``--noise-ratio``, ``--noise-seed``). Without
    ``--ratings``, the ratings dir is the newest one whose ``pos`` candidates overlap the
    injected pairs (a run on the clean training set overlaps none, as injected pairs are not
    in it); the overlap of every ratings dir is printed.

Command (from the repository root; a few minutes on one busy CPU core, mostly t-SNE)::

    OMP_NUM_THREADS=1 python benchmarks/figures.py
    OMP_NUM_THREADS=1 python benchmarks/figures.py --dataset ml-100k --out /tmp/figs

Everything random (the sample, t-SNE) is seeded by ``--seed`` (default 2020).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

USER_COLOR, ITEM_COLOR = "#1f77b4", "#ff7f0e"
HARD_COLOR, NOISY_COLOR = "#2ca02c", "#d62728"
INJ_COLOR, CLEAN_COLOR = "#9467bd", "#7f7f7f"


class MissingArtifact(SystemExit):
    """Exit with a message naming the missing file."""


def require(path: Path, what: str) -> Path:
    if not Path(path).exists():
        raise MissingArtifact(f"figures.py: missing {what}: {path}")
    return Path(path)


def read_pairs(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Raw (user, item) token columns of a two-column TSV with a header."""
    import pandas as pd

    frame = pd.read_csv(require(path, "interaction file"), sep="\t", dtype=str, usecols=[0, 1])
    return frame.iloc[:, 0].to_numpy(str), frame.iloc[:, 1].to_numpy(str)


# ---------------------------------------------------------------------------- t-SNE
def _aligned_files(align_dir: Path) -> List[Path]:
    """Complete S2 stage directories' ``aligned.npz`` (manifest present), oldest first."""
    root = require(align_dir, "S2 align artifact folder")
    files = [d / "aligned.npz" for d in root.iterdir() if (d / "aligned.npz").is_file() and (d / "manifest.json").is_file()]
    return sorted(files, key=lambda p: (p.parent / "manifest.json").stat().st_mtime)


def pick_aligned(align_dir: Path, explicit: Optional[str], train_pairs=None) -> Path:
    """``--aligned``, else the newest aligned file fitted on the clean training split (else the newest)."""
    if explicit:
        return require(Path(explicit), "aligned embeddings (--aligned)")
    files = _aligned_files(align_dir)
    if not files:
        raise MissingArtifact(f"figures.py: missing aligned embeddings: no {align_dir}/<key>/aligned.npz with a manifest")
    if train_pairs is not None:
        for path in reversed(files):
            if edges_label(aligned_manifest(path), train_pairs, None) == "clean training split":
                return path
    return files[-1]


def aligned_manifest(aligned_path: Path) -> dict:
    """The S2 stage manifest beside ``aligned.npz`` (its ``material``: S1's key, train edges, settings)."""
    return json.loads(require(aligned_path.parent / "manifest.json", "S2 stage manifest").read_text())


def aligned_encoder(aligned_path: Path, meta: dict) -> str:
    """The S1 encoder of the vectors S2 aligned: from the S1 stage manifest its key names."""
    encode_key = meta.get("material", {}).get("encode")
    s1 = aligned_path.parent.parent.parent / "encode" / str(encode_key) / "manifest.json"
    return str(json.loads(require(s1, "S1 stage manifest").read_text()).get("material", {}).get("encoder"))


class _CacheOnly:
    """Mixin: a cached text encoder that refuses to compute (every vector must be cached)."""

    def _compute(self, missing):  # noqa: D401
        raise MissingArtifact(
            f"figures.py: {len(missing)} profile embedding(s) of {self.name} are not in the cache "
            f"{self.cache.path}; run the S1 encode stage first (this script never encodes)."
        )


def raw_embeddings(cache_path: Path, encoder_name: str, user_texts: Dict[str, str],
                   item_texts: Dict[str, str]) -> Tuple[np.ndarray, np.ndarray]:
    """S1 vectors of the profiles, in the order of the mappings, unit rows, from the cache only."""
    from recbole_llmhni.llm.cache import LLMCache
    from recbole_llmhni.llm.encoders import SentenceTransformerEncoder
    from recbole_llmhni.semantic.alignment import l2_normalize

    backend, _, model = encoder_name.partition("/")
    if backend != SentenceTransformerEncoder.backend:
        raise SystemExit(f"figures.py: encoder {encoder_name!r} of the aligned file is not supported here "
                         "(only sentence-transformers/<model>).")
    encoder_cls = type("CacheOnlyEncoder", (_CacheOnly, SentenceTransformerEncoder), {})
    cache = LLMCache(require(cache_path, "embedding cache (--cache)"))
    try:
        encoder = encoder_cls(cache, model=model, show_progress=False)
        users = l2_normalize(encoder.encode(user_texts, kind="user"))
        items = l2_normalize(encoder.encode(item_texts, kind="item"))
    finally:
        cache.close()
    return users, items


def mean_pair_cosine(user_vec: np.ndarray, item_vec: np.ndarray) -> float:
    """Mean cosine of row-aligned (user, item) vector pairs (rows are unit length)."""
    return float(np.mean(np.sum(user_vec * item_vec, axis=1)))


def tsne_2d(x: np.ndarray, seed: int, pca_dims: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if x.shape[1] > pca_dims:
        x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
    return TSNE(n_components=2, init="pca", perplexity=30.0, random_state=seed, n_jobs=1).fit_transform(x)


def edges_label(meta: dict, train_pairs, noise_pairs) -> str:
    """Which training edges the aligned file was fitted on (S2's ``train_edges`` fingerprint)."""
    from recbole_llmhni.artifacts import edges_fingerprint

    want = meta.get("material", {}).get("train_edges")
    if want is None:
        return "unknown training edges"
    if edges_fingerprint(*train_pairs) == want:
        return "clean training split"
    if noise_pairs is not None:
        users = np.concatenate([train_pairs[0], noise_pairs[0]])
        items = np.concatenate([train_pairs[1], noise_pairs[1]])
        if edges_fingerprint(users, items) == want:
            return "training split + injected noise"
    return "training edges not recognised"


def draw_tsne(args, data_dir: Path, art: Path, train_pairs, noise_pairs, out: Path) -> Path:
    from recbole_llmhni.data.profiles import profile_path, read_profiles

    aligned_path = pick_aligned(art / "align", args.aligned, train_pairs)
    meta = aligned_manifest(aligned_path)
    encoder_name = aligned_encoder(aligned_path, meta)
    print(f"aligned vectors: {aligned_path}")
    fitted_on = edges_label(meta, train_pairs, noise_pairs)
    print(f"  encoder {encoder_name}, alignment {meta.get('material', {}).get('alignment')}, fitted on: {fitted_on}")

    with np.load(aligned_path, allow_pickle=False) as npz:
        user_ids, item_ids = npz["user_ids"].astype(str), npz["item_ids"].astype(str)
        user_z, item_z = npz["user_z"].astype(np.float32), npz["item_z"].astype(np.float32)

    rng = np.random.default_rng(args.seed)
    su = np.sort(rng.choice(len(user_ids), size=min(args.n_users, len(user_ids)), replace=False))
    si = np.sort(rng.choice(len(item_ids), size=min(args.n_items, len(item_ids)), replace=False))

    user_profiles = read_profiles(require(profile_path(data_dir, args.dataset, "user"), "user profiles"))
    item_profiles = read_profiles(require(profile_path(data_dir, args.dataset, "item"), "item profiles"))
    # encode every profile the aligned file covers (train-edge users need all their items)
    missing = [u for u in user_ids if u not in user_profiles][:3] + [i for i in item_ids if i not in item_profiles][:3]
    if missing:
        raise SystemExit(f"figures.py: ids of {aligned_path} without a profile, e.g. {missing}")
    cache_path = Path(args.cache) if args.cache else Path(args.artifact_dir) / "llm_cache" / "llm_cache.sqlite3"
    print(f"raw embeddings: {encoder_name} from the cache {cache_path}")
    raw_u, raw_i = raw_embeddings(cache_path, encoder_name,
                                  {u: user_profiles[u] for u in user_ids},
                                  {i: item_profiles[i] for i in item_ids})

    # mixing numbers: (sampled user, each of its training items) vs every sampled (user, item) pair
    upos = {u: k for k, u in enumerate(user_ids)}
    ipos = {i: k for k, i in enumerate(item_ids)}
    sampled = set(user_ids[su].tolist())
    edge_u, edge_i = [], []
    for u, i in zip(*train_pairs):
        if u in sampled and i in ipos:
            edge_u.append(upos[u])
            edge_i.append(ipos[i])
    edge_u, edge_i = np.asarray(edge_u), np.asarray(edge_i)
    numbers = {}
    for name, (uu, ii) in {"raw": (raw_u, raw_i), "aligned": (user_z, item_z)}.items():
        own = round(mean_pair_cosine(uu[edge_u], ii[edge_i]), 3) + 0.0
        every = round(float(np.mean(uu[su] @ ii[si].T)), 3) + 0.0  # every sampled user x sampled item
        numbers[name] = (own, every)
        print(f"  {name:8s} mean cos(user, its train item) = {own:.3f} over {len(edge_u):,} train edges "
              f"of the {len(su):,} sampled users; all sampled user x item pairs = {every:.3f} "
              f"({len(su) * len(si):,} pairs)")

    fig, axes = plt.subplots(1, 2, figsize=(14, 6.6))
    panels = [
        ("raw", raw_u[su], raw_i[si], f"Before alignment: raw text embeddings ({raw_u.shape[1]}-d)"),
        ("aligned", user_z[su], item_z[si], f"After alignment: aligned z' ({user_z.shape[1]}-d)"),
    ]
    for ax, (name, uu, ii, title) in zip(axes, panels):
        print(f"  t-SNE of {name} vectors ({len(uu)} users + {len(ii)} items) ...", flush=True)
        xy = tsne_2d(np.vstack([uu, ii]).astype(np.float64), args.seed, args.pca_dims)
        ax.scatter(xy[: len(uu), 0], xy[: len(uu), 1], s=4, alpha=0.55, c=USER_COLOR, label=f"users (n={len(uu):,})",
                   linewidths=0)
        ax.scatter(xy[len(uu):, 0], xy[len(uu):, 1], s=4, alpha=0.55, c=ITEM_COLOR, label=f"items (n={len(ii):,})",
                   linewidths=0)
        own, rand = numbers[name]
        ax.set_title(f"{title}\nmean cos(user, its training items) = {own:.3f};  "
                     f"all sampled user-item pairs = {rand:.3f}", fontsize=11)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.legend(loc="upper right", markerscale=4, fontsize=10)
    fig.suptitle(
        f"{args.dataset}: users and items before and after S2 alignment "
        f"(t-SNE after PCA to {args.pca_dims} dims, seed {args.seed})\n"
        f"aligned file {aligned_path.parent.name}, fitted on the {fitted_on}; cosines over the clean train edges "
        f"of the sampled users, each in its panel's own space",
        fontsize=11,
    )
    fig.tight_layout()
    path = out / "tsne_alignment.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- scores
def read_manifest(path: Path) -> dict:
    return json.loads(require(path, "manifest").read_text())


def pick_ratings(ratings_root: Path, explicit: Optional[str], noise: Optional[set]) -> Path:
    import pandas as pd

    dirs = [d for d in require(ratings_root, "ratings artifact folder").iterdir() if (d / "ratings.tsv").is_file()]
    if explicit:
        chosen = require(Path(explicit), "ratings dir (--ratings)")
        require(chosen / "ratings.tsv", "ratings file")
        dirs = [chosen]
    if not dirs:
        raise MissingArtifact(f"figures.py: missing ratings: no {ratings_root}/*/ratings.tsv")
    dirs.sort(key=lambda d: (d / "ratings.tsv").stat().st_mtime)
    overlapping = []
    for d in dirs:
        if noise is None:
            continue
        frame = pd.read_csv(d / "ratings.tsv", sep="\t", dtype={"user": str, "item": str}, usecols=["user", "item", "kind"])
        pos = frame[frame["kind"] == "pos"]
        hit = sum(p in noise for p in zip(pos["user"], pos["item"]))
        print(f"  ratings {d.name}: {hit:,} of {len(pos):,} pos candidates are injected-noise pairs ({hit / max(len(pos), 1):.1%})")
        if hit:
            overlapping.append(d)
    if explicit or noise is None:
        return dirs[-1]
    if not overlapping:
        print("  no ratings dir overlaps the injected pairs: using the newest (a clean run); panel (c) is skipped")
        return dirs[-1]
    return overlapping[-1]


def chain(ratings_dir: Path, art: Path) -> List[str]:
    """Human summary of ratings -> candidates -> pretrain manifests."""
    lines = []
    m6 = read_manifest(ratings_dir / "manifest.json")
    lines.append(f"ratings {ratings_dir.name}: rater {m6.get('rater')}, stand-in={m6.get('is_stand_in')}")
    k5 = m6.get("material", {}).get("candidates")
    if k5:
        m5_path = art / "candidates" / k5 / "manifest.json"
        if m5_path.is_file():
            m5 = read_manifest(m5_path)
            mat = m5.get("material", {})
            lines.append(f"candidates {k5}: kn={mat.get('kn')} kp={mat.get('kp')} max_pairs={mat.get('max_pairs')}")
            k4 = mat.get("pretrain")
            m4_path = art / "pretrain" / str(k4) / "manifest.json"
            if k4 and m4_path.is_file():
                m4 = read_manifest(m4_path)
                lines.append(f"pretrain {k4}: {m4.get('backbone')}, train_edges fingerprint "
                             f"{m4.get('material', {}).get('train_edges')}")
    return lines


def density_hist(ax, groups: Sequence[Tuple[np.ndarray, str, str]], xlabel: str, title: str) -> None:
    """Density histograms normalised over each group's full count; the x range stops at the
    0.2nd and 99.8th percentiles of the panel (the few values outside are not drawn)."""
    values = np.concatenate([g[0] for g in groups if len(g[0])]) if any(len(g[0]) for g in groups) else np.zeros(1)
    lo, hi = np.percentile(values, [0.2, 99.8])
    bins = np.linspace(lo, hi, 50)
    width = bins[1] - bins[0]
    for vals, label, color in groups:
        if len(vals):
            ax.hist(vals, bins=bins, weights=np.full(len(vals), 1.0 / (len(vals) * width)), alpha=0.45, color=color,
                    label=label, histtype="stepfilled", edgecolor=color, linewidth=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9)


def draw_scores(args, art: Path, noise_pairs, noise_path: Path, out: Path) -> Path:
    import pandas as pd

    noise = set(zip(*noise_pairs)) if noise_pairs is not None else None
    ratings_dir = pick_ratings(art / "ratings", args.ratings, noise)
    print(f"ratings: {ratings_dir / 'ratings.tsv'}")
    for line in chain(ratings_dir, art):
        print(f"  {line}")
    m6 = read_manifest(ratings_dir / "manifest.json")
    rater = str(m6.get("rater", "unknown rater"))
    stand_in = bool(m6.get("is_stand_in")) or "stand-in" in rater

    frame = pd.read_csv(ratings_dir / "ratings.tsv", sep="\t", dtype={"user": str, "item": str})
    neg, pos = frame[frame["kind"] == "neg"], frame[frame["kind"] == "pos"]
    show_noise = noise is not None and any(p in noise for p in zip(pos["user"], pos["item"]))
    ncols = 3 if show_noise else 2
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 5.2))

    def groups(part, what):
        out_groups = []
        for label, color in (("hard", HARD_COLOR), ("noisy", NOISY_COLOR)):
            vals = part.loc[part["label"] == label, "score"].to_numpy(float)
            print(f"  {what} labelled {label}: {len(vals):,}")
            out_groups.append((vals, f"labelled {label} (n={len(vals):,})", color))
        undetermined = int((part["label"] == "undetermined").sum())
        if undetermined:
            print(f"  {what} labelled undetermined: {undetermined:,} (not drawn)")
        return out_groups

    clip = "Rec_pre score (x range: 0.2-99.8th percentile of the panel)"
    density_hist(axes[0], groups(neg, "neg (high-score non-interacted)"), clip,
                 "(a) high-score non-interacted candidates\n(kind neg)")
    density_hist(axes[1], groups(pos, "pos (low-score training)"), clip,
                 "(b) low-score training candidates\n(kind pos)")
    if show_noise:
        injected = np.fromiter((p in noise for p in zip(pos["user"], pos["item"])), bool, len(pos))
        inj, clean = pos[injected], pos[~injected]
        share = lambda part: (part["label"] == "noisy").mean() if len(part) else float("nan")  # noqa: E731
        print(f"  pos injected-noise pairs: {len(inj):,} ({share(inj):.1%} labelled noisy); "
              f"clean pairs: {len(clean):,} ({share(clean):.1%} labelled noisy)")
        density_hist(axes[2], [
            (inj["score"].to_numpy(float), f"injected noise (n={len(inj):,}; {share(inj):.0%} labelled noisy)", INJ_COLOR),
            (clean["score"].to_numpy(float), f"clean (n={len(clean):,}; {share(clean):.0%} labelled noisy)", CLEAN_COLOR),
        ], clip, f"(c) kind pos: injected-noise vs clean pairs\n({noise_path.name})")
    who = f"labels by {rater}" + (": an OFFLINE STAND-IN for the LLM rater, not an LLM" if stand_in else "")
    fig.suptitle(f"{args.dataset}: Rec_pre scores of the S5 candidates by S6 label (ratings {ratings_dir.name})\n{who}",
                 fontsize=12)
    fig.tight_layout()
    path = out / "score_distributions.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-books")
    parser.add_argument("--artifact-dir", default=str(REPO / "llmhni_artifacts"),
                        help="llmhni_artifact_dir (holds <dataset>/ and llm_cache/)")
    parser.add_argument("--data-path", default=str(REPO / "dataset"), help="RecBole data_path (holds <dataset>/)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "figures"))
    parser.add_argument("--aligned", help="<artifact-dir>/<dataset>/align/<key>/aligned.npz to use (default: the newest fitted on the clean training split)")
    parser.add_argument("--cache", help="embedding cache (default <artifact-dir>/llm_cache/llm_cache.sqlite3)")
    parser.add_argument("--ratings", help="ratings dir to use (default: see the module docstring)")
    parser.add_argument("--noise-ratio", type=float, default=0.1)
    parser.add_argument("--noise-seed", type=int, default=2020)
    parser.add_argument("--n-users", type=int, default=1500)
    parser.add_argument("--n-items", type=int, default=1500)
    parser.add_argument("--pca-dims", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--only", choices=["tsne", "scores"], help="draw one figure only")
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    art = Path(args.artifact_dir) / args.dataset
    data_dir = Path(args.data_path) / args.dataset
    require(art, "artifact folder of the dataset")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    noise_path = art / "noise" / f"injected_ratio{args.noise_ratio:g}_seed{args.noise_seed}.tsv"
    noise_pairs = read_pairs(noise_path) if noise_path.is_file() else None
    print(f"injected noise: {noise_path} ({len(noise_pairs[0]):,} pairs)" if noise_pairs is not None
          else f"injected noise: none ({noise_path} absent)")

    written = []
    if args.only in (None, "scores"):
        written.append(draw_scores(args, art, noise_pairs, noise_path, out))
    if args.only in (None, "tsne"):
        train_pairs = read_pairs(data_dir / f"{args.dataset}.train.inter")
        written.append(draw_tsne(args, data_dir, art, train_pairs, noise_pairs, out))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
