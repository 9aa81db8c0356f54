// Training/ learns binary hash codes from a library's vectors, for the `hash` index. Every learned
// code here is a linear threshold function of the L2-normalised embedding, bit j = (x . p_j + o_j >= 0),
// so one `LinearHashEncoder` (a D x B projection and B offsets) serves both trainers: unsupervised
// PCA + ITQ rotation (Gong & Lazebnik 2011; `ITQTrainer`) and the supervised latent hash layer of
// Lin et al. (CVPRW 2015; `LatentHashTrainer`: B sigmoid units + softmax over the folder labels on
// the frozen CNN features, code = activation >= 0.5, i.e. pre-activation >= 0). Products go through
// BLAS, eigen/SVD through LAPACK (OpenBLAS). A trained encoder is stored in the catalogue's
// `trainedModel` table (`HashModelStore`), so images added after training get codes from it.
import CBLAS
import CKernels
import Foundation

public struct LinearHashEncoder: Sendable, Equatable {
    public let dimension: Int
    public let bits: Int
    /// D x B, row-major: column j is the direction of bit j.
    public let projection: [Float]
    /// B offsets.
    public let offset: [Float]

    public init(dimension: Int, bits: Int, projection: [Float], offset: [Float]) throws {
        guard dimension > 0, (1...4096).contains(bits), projection.count == dimension * bits, offset.count == bits else {
            throw IndexError("hash encoder: \(projection.count) projection values and \(offset.count) offsets do not fit \(dimension) x \(bits)")
        }
        self.dimension = dimension
        self.bits = bits
        self.projection = projection
        self.offset = offset
    }

    /// 64-bit words per code.
    public var words: Int { (bits + 63) / 64 }

    /// Pre-activations x . P + o of `vectors.count / dimension` rows (rows x bits).
    public func project(_ vectors: [Float]) -> [Float] {
        let rows = vectors.count / dimension
        guard rows > 0 else { return [] }
        var out = [Float](repeating: 0, count: rows * bits)
        for r in 0..<rows { for j in 0..<bits { out[r * bits + j] = offset[j] } }
        vectors.withUnsafeBufferPointer { x in
            projection.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    guard let xp = x.baseAddress, let pp = p.baseAddress, let op = o.baseAddress else { return }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(bits), Int32(dimension),
                                1, xp, Int32(dimension), pp, Int32(bits), 1, op, Int32(bits))
                }
            }
        }
        return out
    }

    /// Packed codes of `vectors.count / dimension` rows (`words` UInt64 per row; bit j in word j/64).
    public func encode(_ vectors: [Float]) -> [UInt64] {
        let rows = vectors.count / dimension
        let values = project(vectors)
        var codes = [UInt64](repeating: 0, count: rows * words)
        values.withUnsafeBufferPointer { v in
            codes.withUnsafeMutableBufferPointer { c in
                if let vp = v.baseAddress, let cp = c.baseAddress { lk_pack_signs(vp, rows, bits, cp) }
            }
        }
        return codes
    }

    // MARK: bytes (the `parameters` blob of a trained model and part of a hash index file)

    static let magic: UInt32 = 0x4C4B_4845 // "LKHE"

    public func serialized() -> Data {
        var data = Data(capacity: 12 + 4 * (projection.count + offset.count))
        for v in [Self.magic, UInt32(dimension), UInt32(bits)] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        for v in projection + offset { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    public init(serialized data: Data, source: String) throws {
        let bytes = [UInt8](data)
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        guard bytes.count >= 12, u32(0) == Self.magic else { throw IndexError("\(source): not a hash encoder (bad magic)") }
        let d = Int(u32(4)), b = Int(u32(8))
        guard d > 0, b > 0, bytes.count == 12 + 4 * (d * b + b) else {
            throw IndexError("\(source): hash encoder of \(bytes.count) bytes does not match \(d) x \(b)")
        }
        let floats = (0..<(d * b + b)).map { Float(bitPattern: u32(12 + 4 * $0)) }
        try self.init(dimension: d, bits: b, projection: Array(floats[0..<d * b]), offset: Array(floats[(d * b)...]))
    }
}

/// Hamming distance of two packed codes (reference implementation for tests and small sets).
public func hammingDistance(_ a: ArraySlice<UInt64>, _ b: ArraySlice<UInt64>) -> Int {
    zip(a, b).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
}
