// Unsupervised binary codes: PCA to B dimensions, then the ITQ rotation (Gong & Lazebnik 2011,
// "Iterative quantization"): alternately binarise the rotated projections and re-fit the rotation
// (orthogonal Procrustes by SVD), which spreads the variance evenly over the bits so that each bit
// carries information and Hamming distance follows angular distance better than plain PCA signs.
// Deterministic for a seed (sample, initial rotation). Trains on at most `maxSamples` rows.
import Foundation

public enum ITQTrainer {
    public struct Result: Sendable {
        public let encoder: LinearHashEncoder
        /// Share of the variance kept by the B principal directions.
        public let explainedVariance: Double
        /// Mean squared quantisation error ||B - VR||^2 / n after the last iteration.
        public let quantisationError: Double
        public let samples: Int
    }

    public static func train(vectors: [Float], dimension d: Int, bits: Int, iterations: Int = 50, seed: UInt64 = 1,
                             maxSamples: Int = 100_000) throws -> Result {
        let total = vectors.count / max(1, d)
        guard total >= 2 else { throw IndexError("ITQ: need at least 2 vectors to train, got \(total)") }
        guard bits >= 1 else { throw IndexError("ITQ: \(bits) bits") }
        // More bits than dimensions (only on small synthetic data; embeddings have 1280): ITQ on
        // all d principal directions, and the extra bits are random hyperplanes through the mean.
        let rotated = min(bits, d)
        var rng = TrainingRandom(seed: seed)
        // A seeded sample when the library is larger than needed (the covariance is stable well before).
        var rows = Array(0..<total)
        if total > maxSamples {
            rng.shuffle(&rows)
            rows = Array(rows.prefix(maxSamples)).sorted()
        }
        let n = rows.count
        var x = [Float](repeating: 0, count: n * d)
        for (i, r) in rows.enumerated() { for j in 0..<d { x[i * d + j] = vectors[r * d + j] } }
        var mean = [Float](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += x[i * d + j] } }
        for j in 0..<d { mean[j] /= Float(n) }
        for i in 0..<n { for j in 0..<d { x[i * d + j] -= mean[j] } }

        // Covariance (d x d) and its top `bits` eigenvectors.
        var covariance = [Float](repeating: 0, count: d * d)
        Linear.gemm(x, x, m: d, n: d, k: n, transA: true, alpha: 1 / Float(n), into: &covariance)
        let (values, vectorsByRow) = try Linear.symmetricEigen(covariance, n: d)
        let totalVariance = values.reduce(0.0) { $0 + Double(max(0, $1)) }
        var pca = [Float](repeating: 0, count: d * rotated) // d x rotated: column j = j-th largest direction
        var kept = 0.0
        for j in 0..<rotated {
            let e = d - 1 - j
            kept += Double(max(0, values[e]))
            for i in 0..<d { pca[i * rotated + j] = vectorsByRow[e * d + i] }
        }
        let v = Linear.product(x, pca, m: n, n: rotated, k: d) // n x rotated

        // ITQ: R from a random orthogonal start, then alternate B = sign(VR) and R = procrustes.
        var r = try Linear.procrustes((0..<rotated * rotated).map { _ in rng.normal() }, n: rotated)
        var error = 0.0
        for _ in 0..<max(1, iterations) {
            let z = Linear.product(v, r, m: n, n: rotated, k: rotated)
            let b = z.map { $0 >= 0 ? Float(1) : -1 }
            error = zip(b, z).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(n)
            // min ||B - VR|| over orthogonal R: with V^T B = U S W^T, R = U W^T.
            let vtb = Linear.product(v, b, m: rotated, n: rotated, k: n, transA: true)
            r = try Linear.procrustes(vtb, n: rotated)
        }
        let rotatedProjection = Linear.product(pca, r, m: d, n: rotated, k: rotated)
        var projection = [Float](repeating: 0, count: d * bits)
        for i in 0..<d {
            for j in 0..<rotated { projection[i * bits + j] = rotatedProjection[i * rotated + j] }
            for j in rotated..<bits { projection[i * bits + j] = rng.normal() }
        }
        // bit = ((x - mean) . p >= 0) = (x . p - mean . p >= 0)
        var offset = [Float](repeating: 0, count: bits)
        for j in 0..<bits {
            var s: Float = 0
            for i in 0..<d { s += mean[i] * projection[i * bits + j] }
            offset[j] = -s
        }
        let encoder = try LinearHashEncoder(dimension: d, bits: bits, projection: projection, offset: offset)
        return Result(encoder: encoder, explainedVariance: totalVariance > 0 ? kept / totalVariance : 0,
                      quantisationError: error, samples: n)
    }
}
