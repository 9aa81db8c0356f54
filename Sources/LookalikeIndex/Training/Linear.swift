// Small dense linear algebra for the trainers, on row-major Float arrays: products through BLAS
// (sgemm), the symmetric eigen-decomposition and the SVD through LAPACK (OpenBLAS's ssyevd_ and
// sgesvd_, column-major: each call below says how it maps the row-major arrays).
import CBLAS
import Foundation

enum Linear {
    /// C (m x n) = alpha * op(A) op(B) + beta * C, row-major; op = transpose when the flag is set.
    static func gemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
                     alpha: Float = 1, beta: Float = 0, into c: inout [Float]) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    guard let a = ap.baseAddress, let b = bp.baseAddress, let c = cp.baseAddress else { return }
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), alpha, a, Int32(transA ? m : k), b, Int32(transB ? k : n),
                                beta, c, Int32(n))
                }
            }
        }
    }

    static func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        gemm(a, b, m: m, n: n, k: k, transA: transA, transB: transB, into: &c)
        return c
    }

    /// Eigenvalues (ascending) and eigenvectors of a symmetric n x n matrix. Row `i` of the returned
    /// `vectors` is the eigenvector of `values[i]` (LAPACK's column-major columns read as rows).
    static func symmetricEigen(_ matrix: [Float], n: Int) throws -> (values: [Float], vectors: [Float]) {
        var a = matrix
        var w = [Float](repeating: 0, count: n)
        var info: Int32 = 0
        var nn = Int32(n), lda = Int32(n)
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workSize: Float = 0
        var iworkSize: Int32 = 0
        // Workspace query first (lwork = -1), then the decomposition.
        ssyevd_("V", "U", &nn, &a, &lda, &w, &workSize, &lwork, &iworkSize, &liwork, &info, 1, 1)
        guard info == 0 else { throw IndexError("LAPACK ssyevd workspace query failed (info \(info))") }
        lwork = Int32(workSize)
        liwork = iworkSize
        var work = [Float](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        ssyevd_("V", "U", &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
        guard info == 0 else { throw IndexError("LAPACK ssyevd failed to converge (info \(info))") }
        return (w, a)
    }

    /// The orthogonal factor U V^T of a square n x n matrix M = U S V^T (row-major in and out): the
    /// rotation closest to M (orthogonal Procrustes), as ITQ needs.
    static func procrustes(_ m: [Float], n: Int) throws -> [Float] {
        // Row-major M read column-major is M^T = V S U^T, so LAPACK returns u = V and vt = U^T.
        // Their column-major product is V U^T; read back row-major it is its transpose, U V^T.
        var a = m
        var s = [Float](repeating: 0, count: n)
        var u = [Float](repeating: 0, count: n * n), vt = [Float](repeating: 0, count: n * n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0, lwork: Int32 = -1
        var workSize: Float = 0
        sgesvd_("A", "A", &nn, &nn, &a, &lda, &s, &u, &lda, &vt, &lda, &workSize, &lwork, &info, 1, 1)
        guard info == 0 else { throw IndexError("LAPACK sgesvd workspace query failed (info \(info))") }
        lwork = Int32(workSize)
        var work = [Float](repeating: 0, count: Int(lwork))
        sgesvd_("A", "A", &nn, &nn, &a, &lda, &s, &u, &lda, &vt, &lda, &work, &lwork, &info, 1, 1)
        guard info == 0 else { throw IndexError("LAPACK sgesvd failed to converge (info \(info))") }
        var r = [Float](repeating: 0, count: n * n)
        u.withUnsafeBufferPointer { up in
            vt.withUnsafeBufferPointer { vp in
                r.withUnsafeMutableBufferPointer { rp in
                    guard let up = up.baseAddress, let vp = vp.baseAddress, let rp = rp.baseAddress else { return }
                    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, up, Int32(n),
                                vp, Int32(n), 0, rp, Int32(n))
                }
            }
        }
        return r
    }
}

/// The trainers' seeded generator: SplitMix64 (same sequence on every machine for a seed) plus
/// normal samples.
struct TrainingRandom: RandomNumberGenerator {
    var base: SplitMix64
    init(seed: UInt64) { base = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { base.next() }

    /// A standard normal sample (Box-Muller).
    mutating func normal() -> Float {
        let u1 = Double(next() >> 11 + 1) / Double(1 << 53)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    /// A seeded Fisher-Yates shuffle (the standard library's shuffle may change between versions).
    mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
    }
}
