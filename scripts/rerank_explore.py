#!/usr/bin/env python3
"""Explore label-free re-ranking settings on exported features (lookalike export --format npy):
plain cosine, database-side augmentation (DBA), alpha query expansion (QE), their mutual-neighbour
variants. Protocol as `lookalike eval`: labelled images are queries, BACKGROUND_Google is clutter
(searched against, never a query or relevant), the query itself excluded, mAP over the full ranking.

  python3 scripts/rerank_explore.py out/caltech-export [more export dirs]     # the original sweep

Second round (label-free, one fixed setting for every set; see `--report`):
  python3 scripts/rerank_explore.py --clutter both --report out/rerank-explore-2.txt \\
      out/caltech-export out/corel-export out/samples-export
  python3 scripts/rerank_explore.py --method dba15+qe10+diff30 out/corel-export [--clutter exclude]

Methods (`--method`, steps joined with '+', applied in this order: DBA, QE, diffusion, csls, raw):
  plain         cosine of the raw vectors
  dbaN[aA][r][fF]  database-side augmentation over N neighbours, weights max(0,cos)^A (A=3); 'r': times
                the linear rank weight (N-i)/N; 'fF': times exp(-((best - cos) / F)^2), the neighbour's
                fade below the image's best neighbour (the product's default: F = 0.1)
  qeN[aA][fF]   alpha-QE over the N nearest augmented vectors (A=3), cosine of the normalised
                expanded query; 'fF' as for dba
  diffK[gG][lL][sX][fF]  diffusion (Iscen et al. 2017) on the mutual K-NN graph of the (augmented)
                library, edge weights max(0,cos)^G (G=3), alpha X (0.99); the query's row, divided by
                its max over the other images, is added with weight L (1) to the previous score; 'fF':
                each end's fade as for dba, the smaller kept (the product: F = 0.15)
The product's default is dba15a5f0.1+qe10a5f0.1+diff30g10f0.15 (alpha 5: whole+rmac vectors).
  cslsK[bB]     minus B (0.25) times each image's mean similarity to its K nearest (hub penalty)
  rawB          plus B times the plain cosine of the raw vectors
Samples-sized sets (< 100 images) report P@5 instead of P@20.
Set OPENBLAS_NUM_THREADS=1 on a shared machine; everything is vectorised over the similarity matrix.
"""
import argparse
import re
import sys
import time

import numpy as np

CLUTTER = {"BACKGROUND_Google"}


def load(d):
    x = np.load(f"{d}/embeddings.npy").astype(np.float32)
    labels = open(f"{d}/labels.txt").read().split("\n")[: len(x)]
    return x, np.array(labels)


def evaluate(sim_q, qidx, labels, k=20):
    """sim_q: [Q, N] similarities of queries (rows of the library) to the library."""
    valid = np.array([l not in CLUTTER for l in labels])
    counts = {}
    for l in labels[valid]:
        counts[l] = counts.get(l, 0) + 1
    P, AP = [], []
    for row, qi in zip(sim_q, qidx):
        s = row.copy()
        s[qi] = -np.inf
        order = np.argsort(-s, kind="stable")[: len(s) - 1]
        rel = labels[order] == labels[qi]
        hits = np.cumsum(rel)
        R = counts[labels[qi]] - 1
        P.append(hits[k - 1] / k)
        AP.append((rel * hits / np.arange(1, len(rel) + 1)).sum() / R)
    return np.mean(P), np.mean(AP)


def expand(x, sim, n, alpha, mutual=False):
    """Each row of x -> normalised weighted mean with its top-n neighbours by sim (self weight 1)."""
    nb = np.argsort(-sim, axis=1)[:, 1 : n + 1] if sim.shape[0] == sim.shape[1] else np.argsort(-sim, axis=1)[:, :n]
    w = np.maximum(0, np.take_along_axis(sim, nb, 1)) ** alpha
    if mutual:
        rank_sets = [set(r) for r in nb]
        for i in range(len(nb)):
            for j, c in enumerate(nb[i]):
                if i not in rank_sets[c]:
                    w[i, j] = 0
    return w, nb


def legacy_sweep(dirs):
    for d in dirs:
        x, labels = load(d)
        n = len(x)
        qidx = np.array([i for i, l in enumerate(labels) if l not in CLUTTER and (labels == l).sum() > 1])
        sim = x @ x.T
        np.fill_diagonal(sim, 2.0)  # self first among neighbours
        p, m = evaluate((x[qidx] @ x.T), qidx, labels)
        print(f"{d}: {len(qidx)} queries, {n} images")
        print(f"  plain                      P@20 {p:.4f} mAP {m:.4f}")
        for dba in (0, 5, 10, 15):
            for qe in (0, 5, 10):
                for alpha in (3.0,):
                    for mutual in ((False, True) if dba else (False,)):
                        if dba:
                            s = sim.copy()
                            np.fill_diagonal(s, -np.inf)
                            w, nb = expand(x, s, dba, alpha, mutual)
                            xa = x + (w[:, :, None] * x[nb]).sum(1)
                            xa /= np.linalg.norm(xa, axis=1, keepdims=True)
                        else:
                            xa = x
                        q = xa[qidx]
                        if qe:
                            s = q @ xa.T
                            s[np.arange(len(qidx)), qidx] = -np.inf
                            nb = np.argsort(-s, axis=1)[:, :qe]
                            w = np.maximum(0, np.take_along_axis(s, nb, 1)) ** alpha
                            q = q + (w[:, :, None] * xa[nb]).sum(1)
                            q /= np.linalg.norm(q, axis=1, keepdims=True)
                        if dba == 0 and qe == 0:
                            continue
                        p, m = evaluate(q @ xa.T, qidx, labels)
                        tag = f"dba:{dba}{'(mutual)' if mutual else ''}+qe:{qe} a={alpha}"
                        print(f"  {tag:26s} P@20 {p:.4f} mAP {m:.4f}", flush=True)


# ---------------------------------------------------------------------------------------------
# Second round: fast vectorised evaluation and more methods (all label-free).


class Library:
    """An export, L2-normalised, with integer labels (-1: clutter) and the raw similarity matrix."""

    def __init__(self, d, clutter="keep"):
        x, labels = load(d)
        if clutter == "exclude":
            keep = np.array([l not in CLUTTER for l in labels])
            x, labels = x[keep], labels[keep]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        self.name, self.x, self.labels, self.n = d.rstrip("/").split("/")[-1], x, labels, len(x)
        names = sorted(set(labels) - CLUTTER)
        index = {l: i for i, l in enumerate(names)}
        self.lab = np.array([index.get(l, -1) for l in labels])
        count = np.bincount(self.lab[self.lab >= 0], minlength=len(names))
        self.qidx = np.flatnonzero((self.lab >= 0) & (count[np.maximum(self.lab, 0)] > 1))
        self.members = {c: np.flatnonzero(self.lab == c) for c in range(len(names))}
        self.S0 = x @ x.T


def evaluate_fast(lib, S, k=20, chunk=1024):
    """P@k and mAP (full ranking) of rows ds.qidx of the [N, N] scores S, the query itself excluded.
    Ranks of the relevant images from one sort per row; ties broken against the relevant ones."""
    Q = len(lib.qidx)
    P, AP = np.empty(Q), np.empty(Q)
    for a in range(0, Q, chunk):
        b = min(Q, a + chunk)
        s = np.array(S[lib.qidx[a:b]], dtype=np.float32)
        s[np.arange(b - a), lib.qidx[a:b]] = -np.inf
        ascending = np.sort(s, axis=1)
        for r in range(b - a):
            qi = lib.qidx[a + r]
            rs = s[r, lib.members[lib.lab[qi]]]
            rs = np.sort(rs[rs > -np.inf])[::-1]
            rank = lib.n - np.searchsorted(ascending[r], rs, side="right") + 1
            rank = np.maximum.accumulate(np.maximum(rank, np.arange(1, len(rs) + 1)))
            P[a + r] = (rank <= k).sum() / k
            AP[a + r] = (np.arange(1, len(rs) + 1) / rank).mean()
    return P.mean(), AP.mean()


def top_neighbours(S, k):
    """k most similar other rows of a square similarity matrix, best first: (indices, similarities)."""
    s = S.copy()
    np.fill_diagonal(s, -np.inf)
    k = min(k, len(s) - 1)
    nb = np.argpartition(-s, k - 1, axis=1)[:, :k]
    v = np.take_along_axis(s, nb, 1)
    o = np.argsort(-v, axis=1, kind="stable")
    return np.take_along_axis(nb, o, 1), np.take_along_axis(v, o, 1)


def sparse_rows(nb, w, n):
    import scipy.sparse as sp
    rows = np.repeat(np.arange(nb.shape[0]), nb.shape[1])
    return sp.csr_matrix((w.ravel().astype(np.float32), (rows, nb.ravel())), shape=(nb.shape[0], n))


def neighbour_weights(sims, alpha, rank_weighted=False, fade=None):
    w = np.maximum(0, sims) ** alpha
    if fade:
        w = w * np.exp(-((sims[:, :1] - sims) / fade) ** 2)
    if rank_weighted:
        k = sims.shape[1]
        w = w * ((k - np.arange(k)) / k)
    return w.astype(np.float32)


def dba_vectors(x, S, n, alpha=3.0, rank_weighted=False, fade=None):
    """DBA: x_i -> normalise(x_i + sum_{j in NN_n(i)} w_ij x_j), w_ij = max(0, cos_ij)^alpha."""
    nb, sims = top_neighbours(S, n)
    xa = x + sparse_rows(nb, neighbour_weights(sims, alpha, rank_weighted, fade), len(x)) @ x
    return (xa / np.linalg.norm(xa, axis=1, keepdims=True)).astype(np.float32)


def qe_cosines(Sa, n, alpha=3.0, fade=None):
    """alpha-QE for every library image as the query (its own augmented vector, itself not a neighbour):
    q' = xa_q + sum_{i in NN_n(q)} w_i xa_i, w_i = max(0, cos(xa_q, xa_i))^alpha; returns cos(q', xa_j),
    computed in similarity space: q'.xa_j = Sa[q,j] + sum w_i Sa[i,j], |q'|^2 from Sa too."""
    nb, sims = top_neighbours(Sa, n)
    w = neighbour_weights(sims, alpha, fade=fade)
    S = Sa + sparse_rows(nb, w, len(Sa)) @ Sa
    norm2 = 1 + 2 * (w * sims).sum(1) + np.einsum("ni,nij,nj->n", w, Sa[nb[:, :, None], nb[:, None, :]], w)
    return S / np.sqrt(norm2)[:, None]


def diffusion_rows(Sg, k, gamma=3.0, alpha=0.99, fade=None):
    """Diffusion (Iscen et al. 2017) with the query being a library image q: f = (I - alpha A)^-1 e_q,
    A = D^-1/2 W D^-1/2, W_ij = max(0, s_ij)^gamma when i, j are each among the other's k nearest
    (mutual kNN graph, sparse, symmetric), D = diag(row sums of W). Returns F with F[q, j] = f_j / max_{j != q} f_j
    (F[q, q] = 0). Here by one dense inverse (evaluation only); a product solves the sparse system per
    query with conjugate gradients (~20-40 sparse mat-vecs over the n*k graph)."""
    import scipy.sparse as sp
    n = len(Sg)
    nb, sims = top_neighbours(Sg, k)
    W = sparse_rows(nb, neighbour_weights(sims, gamma, fade=fade), n)
    W = W.minimum(W.T)
    d = np.asarray(W.sum(1)).ravel()
    d[d == 0] = 1
    Dm = sp.diags((1 / np.sqrt(d)).astype(np.float32))
    A = (Dm @ W @ Dm).toarray()
    L = np.linalg.inv(np.eye(n, dtype=np.float32) - np.float32(alpha) * A)
    np.fill_diagonal(L, 0)
    return L / np.maximum(L.max(1, keepdims=True), 1e-12)


def hub_scores(S, k):
    """Each image's mean similarity to its k nearest others (the CSLS r_j)."""
    return top_neighbours(S, k)[1].mean(1)


STEP = re.compile(r"^(dba|qe|diff|csls|raw)(\d*\.?\d*)((?:[agrlsbf][\d.]*)*)$")


def parse_method(text):
    steps = {}
    for part in text.split("+"):
        m = STEP.match(part)
        if not m:
            raise SystemExit(f"unknown step '{part}' in '{text}'")
        opts = {o[0]: (float(o[1:]) if o[1:] else True) for o in re.findall(r"[agrlsbf][\d.]*", m.group(3))}
        steps[m.group(1)] = (float(m.group(2)) if m.group(2) else 1.0, opts)
    return steps


def method_scores(lib, text):
    """[N, N] ranking scores of `text` (see the module doc) for every library image as the query."""
    if text == "plain":
        return lib.S0
    steps = parse_method(text)
    x, S0 = lib.x, lib.S0
    if "dba" in steps:
        n, o = steps["dba"]
        xa = dba_vectors(x, S0, int(n), o.get("a", 3.0), bool(o.get("r", False)), o.get("f"))
        Sa = xa @ xa.T
    else:
        Sa = S0
    S = qe_cosines(Sa, int(steps["qe"][0]), steps["qe"][1].get("a", 3.0), steps["qe"][1].get("f")) if "qe" in steps else Sa
    if "diff" in steps:
        k, o = steps["diff"]
        S = S + o.get("l", 1.0) * diffusion_rows(Sa, int(k), o.get("g", 3.0), o.get("s", 0.99), o.get("f"))
    if "csls" in steps:
        k, o = steps["csls"]
        S = S - o.get("b", 0.25) * hub_scores(Sa, int(k))[None, :]
    if "raw" in steps:
        S = S + steps["raw"][0] * S0
    return S


def run_methods(libs, methods, out=None, k=None):
    lines = []

    def emit(line):
        print(line, flush=True)
        lines.append(line)

    emit("| method | " + " | ".join(f"{lib.name} P@{k or (5 if lib.n < 100 else 20)}/mAP" for lib in libs) + " | seconds |")
    emit("| --- |" + " --- |" * (len(libs) + 1))
    for m in methods:
        t = time.time()
        cells = []
        for lib in libs:
            p, ap = evaluate_fast(lib, method_scores(lib, m), k=k or (5 if lib.n < 100 else 20))
            cells.append(f"{p:.4f} / {ap:.4f}")
        emit(f"| {m} | " + " | ".join(cells) + f" | {time.time() - t:.0f} |")
    if out:
        with open(out, "a") as f:
            f.write("\n".join(lines) + "\n\n")
    return lines


REPORT_METHODS = [
    "plain",
    "dba15+qe10",                # the product default
    "dba15a2+qe10",
    "dba20+qe10",
    "dba15r+qe10",
    "dba15+qe20",
    "dba15+qe10+csls50b0.25",
    "dba15+qe10+raw0.2",
    "dba15+diff30l1000",         # diffusion alone (gamma 3; the cosine term only breaks ties)
    "dba15+qe10+diff30",         # + diffusion, gamma 3
    "dba15+qe10+diff30g10",      # + diffusion, gamma 10: the best fixed setting found
    "dba15+qe10+diff30g10l0.5",
    "dba15+qe10+diff20g10",
    "dba15+qe10+diff50g10",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="export directories (lookalike export --format npy)")
    ap.add_argument("--method", action="append", help="a method (see above); repeatable")
    ap.add_argument("--clutter", choices=["keep", "exclude", "both"], default="keep",
                    help="BACKGROUND_Google as distractors (keep), left out of the library (exclude), or both")
    ap.add_argument("--report", metavar="FILE", help="run the second-round table (or --method ones) and append to FILE")
    ap.add_argument("--k", type=int, help="P@k (default 20; 5 for sets under 100 images; 3 for ukbench's 4 photos an object)")
    args = ap.parse_args()
    if not args.method and not args.report:
        return legacy_sweep(args.dirs)
    libs = []
    for d in args.dirs:
        modes = ["keep", "exclude"] if args.clutter == "both" else [args.clutter]
        has_clutter = any(l in CLUTTER for l in load(d)[1])
        for mode in (modes if has_clutter else ["keep"]):
            lib = Library(d, mode)
            if has_clutter:
                lib.name += f" (clutter {'kept' if mode == 'keep' else 'excluded'})"
            libs.append(lib)
    run_methods(libs, args.method or REPORT_METHODS, args.report, args.k)


if __name__ == "__main__":
    main()
