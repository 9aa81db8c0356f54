// Whether two images show the same picture: their SIFT descriptors are matched (nearest neighbour
// by the Hellinger kernel, Lowe's ratio test), and the matches are checked for one similarity
// transform (scale, rotation, shift) mapping the query's keypoints onto the candidate's. Every
// SIFT match carries its own scale and orientation, so one match is a whole hypothesis (Philbin et
// al. 2007): each is tried, the one most other matches agree with (position, scale and orientation)
// is refitted by least squares over its inliers and counted again. Deterministic, no sampling,
// O(matches^2), which is a few hundred matches at most (1,000 keypoints an image).
import CKernels
import Foundation
import LookalikeCatalogue
import LookalikeIndex

public enum SpatialVerifier {
    /// Lowe's ratio: the nearest descriptor must be this much closer than the second nearest.
    static let ratio: Float = 0.8
    /// Inliers (distinct candidate keypoints) that make a candidate a verified copy. Edited copies
    /// of Caltech-101 photos keep 50-100 with their original; other photos, checked for position,
    /// scale and orientation at once, stay near 0 (a studio series shot against the same backdrop
    /// can share a dozen: it is then a near-copy in a person's eyes too).
    public static let minimumInliers = 8
    /// A match agrees with a transform when it lands within this share of the candidate's longest
    /// side, its scale within a factor `scaleTolerance` and its orientation within `angleTolerance`.
    static let positionTolerance: Float = 0.03
    static let scaleTolerance: Float = 1.6
    static let angleTolerance: Float = 0.4

    /// Matches (query keypoint, candidate keypoint) passing the ratio test, from the descriptors as
    /// floats (`q` of the query, `c` of the candidate).
    static func matches(_ query: LocalFeatures, _ q: [Float], _ candidate: LocalFeatures, _ c: [Float]) -> [(Int, Int)] {
        let nq = query.count, nc = candidate.count
        guard nq > 0, nc > 1 else { return [] }
        let d = LocalFeatures.dimension
        var similarities = [Float](repeating: 0, count: nq * nc)
        // The exact index's small-batch kernel, 32 query keypoints at a time: single-threaded
        // (searches verify candidates in parallel already), no repacking.
        similarities.withUnsafeMutableBufferPointer { s in
            q.withUnsafeBufferPointer { a in
                c.withUnsafeBufferPointer { b in
                    guard let sp = s.baseAddress, let ap = a.baseAddress, let bp = b.baseAddress else { return }
                    for start in stride(from: 0, to: nq, by: 32) {
                        lk_dot_many_f32(ap + start * d, min(32, nq - start), bp, nc, d, 1, sp + start * nc, nc)
                    }
                }
            }
        }
        var found: [(Int, Int)] = []
        let ratio2 = ratio * ratio
        for i in 0..<nq {
            var best: Float = -2, second: Float = -2, at = -1
            for j in 0..<nc {
                let s = similarities[i * nc + j]
                if s > best { (second, best, at) = (best, s, j) } else if s > second { second = s }
            }
            // Squared distances of unit vectors: 2 - 2 s.
            if at >= 0, 2 - 2 * best < ratio2 * (2 - 2 * second) { found.append((i, at)) }
        }
        return found
    }

    /// A similarity transform x' = a x + t in complex form (a = scale * e^(i angle)).
    struct Similarity {
        var ar: Float, ai: Float, tx: Float, ty: Float
        var scale: Float { (ar * ar + ai * ai).squareRoot() }
        var angle: Float { atan2f(ai, ar) }
        func apply(_ x: Float, _ y: Float) -> (Float, Float) { (ar * x - ai * y + tx, ai * x + ar * y + ty) }
    }

    /// Distinct candidate keypoints among the matches the transform maps onto their partner
    /// (`q`, `c`: the two sides' frames, 4 floats a keypoint).
    static func inliers(_ h: Similarity, _ pairs: [(Int, Int)], _ q: [Float], _ c: [Float], tolerance: Float) -> [Int] {
        let logScale = logf(h.scale), angle = h.angle, logTolerance = logf(scaleTolerance)
        var seen = Set<Int>()
        var kept: [Int] = []
        for (k, (i, j)) in pairs.enumerated() {
            let (x, y) = h.apply(q[i * 4], q[i * 4 + 1])
            let dx = x - c[j * 4], dy = y - c[j * 4 + 1]
            guard dx * dx + dy * dy <= tolerance * tolerance else { continue }
            let s = logf(c[j * 4 + 2] / q[i * 4 + 2])
            guard abs(s - logScale) <= logTolerance else { continue }
            var turn = c[j * 4 + 3] - q[i * 4 + 3] - angle
            turn = remainderf(turn, 2 * .pi)
            guard abs(turn) <= angleTolerance else { continue }
            if seen.insert(j).inserted { kept.append(k) }
        }
        return kept
    }

    /// Least-squares similarity through the given matches (nil when degenerate).
    static func fit(_ chosen: [Int], _ pairs: [(Int, Int)], _ q: [Float], _ c: [Float]) -> Similarity? {
        guard chosen.count >= 2 else { return nil }
        var px: Float = 0, py: Float = 0, cx: Float = 0, cy: Float = 0
        for k in chosen {
            let (i, j) = pairs[k]
            px += q[i * 4]; py += q[i * 4 + 1]
            cx += c[j * 4]; cy += c[j * 4 + 1]
        }
        let n = Float(chosen.count)
        px /= n; py /= n; cx /= n; cy /= n
        var nr: Float = 0, ni: Float = 0, den: Float = 0
        for k in chosen {
            let (i, j) = pairs[k]
            let ux = q[i * 4] - px, uy = q[i * 4 + 1] - py
            let vx = c[j * 4] - cx, vy = c[j * 4 + 1] - cy
            // sum v * conj(u)
            nr += vx * ux + vy * uy
            ni += vy * ux - vx * uy
            den += ux * ux + uy * uy
        }
        guard den > 0 else { return nil }
        let ar = nr / den, ai = ni / den
        return Similarity(ar: ar, ai: ai, tx: cx - (ar * px - ai * py), ty: cy - (ai * px + ar * py))
    }

    /// The most matches one similarity transform explains: each match's own transform is a
    /// hypothesis (every n-th past `hypotheses`), the best is refitted and counted again.
    static func inliers(pairs: [(Int, Int)], _ q: [Float], _ c: [Float], candidateSide: Int, hypotheses: Int = .max) -> Int {
        guard pairs.count >= 2 else { return 0 }
        let tolerance = positionTolerance * Float(candidateSide)
        var best: [Int] = []
        let step = max(1, pairs.count / max(1, hypotheses))
        for (i, j) in stride(from: 0, to: pairs.count, by: step).map({ pairs[$0] }) {
            let scale = c[j * 4 + 2] / q[i * 4 + 2]
            let angle = c[j * 4 + 3] - q[i * 4 + 3]
            let ar = scale * cosf(angle), ai = scale * sinf(angle)
            let qx = q[i * 4], qy = q[i * 4 + 1]
            let h = Similarity(ar: ar, ai: ai, tx: c[j * 4] - (ar * qx - ai * qy), ty: c[j * 4 + 1] - (ai * qx + ar * qy))
            let kept = inliers(h, pairs, q, c, tolerance: tolerance)
            if kept.count > best.count { best = kept }
        }
        guard best.count >= 2, let refined = fit(best, pairs, q, c) else { return best.count }
        return max(best.count, inliers(refined, pairs, q, c, tolerance: tolerance).count)
    }

    /// How many of the query's keypoints the candidate's match under one similarity transform.
    public static func inliers(query: LocalFeatures, candidate: LocalFeatures) -> Int {
        inliers(query: query, query.floatDescriptors, candidate: candidate, candidate.floatDescriptors)
    }

    /// The same with both sides' descriptors already as floats (a query matched with many candidates).
    static func inliers(query: LocalFeatures, _ q: [Float], candidate: LocalFeatures, _ c: [Float]) -> Int {
        inliers(pairs: matches(query, q, candidate, c), query.frames, candidate.frames,
                candidateSide: max(candidate.width, candidate.height))
    }
}
