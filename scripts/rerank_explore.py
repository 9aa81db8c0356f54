#!/usr/bin/env python3
"""Explore label-free re-ranking settings on exported features (lookalike export --format npy):
plain cosine, database-side augmentation (DBA), alpha query expansion (QE), their mutual-neighbour
variants. Protocol as `lookalike eval`: labelled images are queries, BACKGROUND_Google is clutter
(searched against, never a query or relevant), the query itself excluded, mAP over the full ranking.

  python3 scripts/rerank_explore.py out/caltech-export [more export dirs]
"""
import sys
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


def main():
    for d in sys.argv[1:]:
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


if __name__ == "__main__":
    main()
