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
    /// The classifier over the hash layer of a supervised model (nil for ITQ): class posteriors
    /// give the `hash` index's fine stage a label-aware score (HashIndex.search).
    public let head: ClassHead?

    /// Softmax classifier on the hash layer's activations sigmoid(x . P + o), as trained by
    /// LatentHashTrainer: logits = h W + b over `classes` labels.
    public struct ClassHead: Sendable, Equatable {
        public let classes: Int
        /// B x classes, row-major.
        public let weights: [Float]
        public let bias: [Float]

        public init(classes: Int, weights: [Float], bias: [Float]) {
            self.classes = classes
            self.weights = weights
            self.bias = bias
        }
    }

    public init(dimension: Int, bits: Int, projection: [Float], offset: [Float], head: ClassHead? = nil) throws {
        guard dimension > 0, (1...4096).contains(bits), projection.count == dimension * bits, offset.count == bits else {
            throw IndexError("hash encoder: \(projection.count) projection values and \(offset.count) offsets do not fit \(dimension) x \(bits)")
        }
        if let head {
            guard head.classes >= 2, head.weights.count == bits * head.classes, head.bias.count == head.classes else {
                throw IndexError("hash encoder: a classifier of \(head.weights.count) weights and \(head.bias.count) biases does not fit \(bits) x \(head.classes)")
            }
        }
        self.dimension = dimension
        self.bits = bits
        self.projection = projection
        self.offset = offset
        self.head = head
    }

    /// Class posteriors of `vectors.count / dimension` rows (rows x classes), each row scaled to unit
    /// length so that a dot product of two is their cosine; nil without a classifier.
    public func posteriors(_ vectors: [Float]) -> [Float]? {
        guard let head else { return nil }
        let rows = vectors.count / dimension
        guard rows > 0 else { return [] }
        let hidden = project(vectors).map { 1 / (1 + expf(-$0)) }
        let c = head.classes
        var logits = [Float](repeating: 0, count: rows * c)
        for r in 0..<rows { for j in 0..<c { logits[r * c + j] = head.bias[j] } }
        hidden.withUnsafeBufferPointer { h in
            head.weights.withUnsafeBufferPointer { w in
                logits.withUnsafeMutableBufferPointer { o in
                    guard let hp = h.baseAddress, let wp = w.baseAddress, let op = o.baseAddress else { return }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(c), Int32(bits),
                                1, hp, Int32(bits), wp, Int32(c), 1, op, Int32(c))
                }
            }
        }
        for r in 0..<rows {
            let row = r * c
            var top = -Float.infinity
            for j in 0..<c { top = max(top, logits[row + j]) }
            var norm: Float = 0
            for j in 0..<c {
                let e = expf(logits[row + j] - top)  // the softmax's sum cancels in the normalisation
                logits[row + j] = e
                norm += e * e
            }
            let scale = norm > 0 ? 1 / norm.squareRoot() : 0
            for j in 0..<c { logits[row + j] *= scale }
        }
        return logits
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
    /// Marks the optional classifier after the projection and offsets (older blobs end before it).
    static let headMagic: UInt32 = 0x4C4B_4843 // "LKHC"

    public func serialized() -> Data {
        var data = Data(capacity: 12 + 4 * (projection.count + offset.count))
        for v in [Self.magic, UInt32(dimension), UInt32(bits)] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        for v in projection + offset { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        if let head {
            for v in [Self.headMagic, UInt32(head.classes)] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
            for v in head.weights + head.bias { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }

    public init(serialized data: Data, source: String) throws {
        let bytes = [UInt8](data)
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        guard bytes.count >= 12, u32(0) == Self.magic else { throw IndexError("\(source): not a hash encoder (bad magic)") }
        let d = Int(u32(4)), b = Int(u32(8))
        guard d > 0, b > 0, d <= 1 << 20, b <= 4096 else {
            throw IndexError("\(source): hash encoder of \(d) x \(b) is out of range")
        }
        let base = 12 + 4 * (d * b + b)
        guard bytes.count >= base else {
            throw IndexError("\(source): hash encoder of \(bytes.count) bytes does not match \(d) x \(b)")
        }
        let floats = (0..<(d * b + b)).map { Float(bitPattern: u32(12 + 4 * $0)) }
        var head: ClassHead?
        if bytes.count > base {
            guard bytes.count >= base + 8, u32(base) == Self.headMagic else {
                throw IndexError("\(source): hash encoder has \(bytes.count - base) unexpected bytes after its offsets")
            }
            let c = Int(u32(base + 4))
            guard (2...1 << 20).contains(c), bytes.count == base + 8 + 4 * (b * c + c) else {
                throw IndexError("\(source): hash encoder's classifier of \(bytes.count - base - 8) bytes does not match \(b) x \(c)")
            }
            let values = (0..<(b * c + c)).map { Float(bitPattern: u32(base + 8 + 4 * $0)) }
            head = ClassHead(classes: c, weights: Array(values[0..<b * c]), bias: Array(values[(b * c)...]))
        }
        try self.init(dimension: d, bits: b, projection: Array(floats[0..<d * b]), offset: Array(floats[(d * b)...]), head: head)
    }
}

/// Hamming distance of two packed codes (reference implementation for tests and small sets).
public func hammingDistance(_ a: ArraySlice<UInt64>, _ b: ArraySlice<UInt64>) -> Int {
    zip(a, b).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
}
