// Descriptor owns "network output -> the vector a library stores and compares": which view of the
// image the network sees and how its head map is pooled. Two exist:
//   - `centre-crop`: the reference's (peer.py): shorter side 256, centre crop 224, average pool of the
//     head. Identical to the peer's features for JPEG; libraries indexed before `whole+rmac` existed
//     use it (their model id has no suffix) and keep using it.
//   - `whole+rmac` (the default for new libraries): the whole image resized to 224 x 224 (nothing cut
//     off), and the vector is the sum of the unit average pool and the unit R-MAC vector (Tolias et
//     al. 2016: max-pools of 14 overlapping regions of the 7x7 map at 3 scales, each unit-normalised,
//     summed), normalised. Same network run. Measured (docs/retrieval-quality.md, `lookalike eval`):
//     Caltech-101 P@20 0.8275 -> 0.8433 plain, 0.8744 -> 0.8808 with the default re-ranking (alpha 5,
//     see Descriptor.rerankingAlpha); Corel-1K 0.9790 -> 0.9793.
// A library records its descriptor in its model id, so queries are always embedded like the library.
public enum Descriptor: String, Sendable, CaseIterable {
    case centreCrop = "centre-crop"
    case wholeRMAC = "whole+rmac"

    /// What a new library is indexed with.
    public static let standard: Descriptor = .wholeRMAC

    public var geometry: InputGeometry {
        switch self {
        case .centreCrop: .centreCrop
        case .wholeRMAC: .whole
        }
    }

    /// The model id a library records: the weights' name, plus "/<descriptor>" for all but the
    /// reference's (so libraries made before descriptors existed keep their id).
    public func modelID(weights name: String) -> String {
        self == .centreCrop ? name : "\(name)/\(rawValue)"
    }

    /// The descriptor a recorded model id names (no suffix: the reference's).
    public init(modelID: String) {
        self = Descriptor.allCases.first { $0 != .centreCrop && modelID.hasSuffix("/\($0.rawValue)") } ?? .centreCrop
    }

    /// The unnormalised vector for one network output (callers L2-normalise it).
    func vector(from out: NetworkOutput) -> [Float] {
        switch self {
        case .centreCrop:
            return out.feature
        case .wholeRMAC:
            let c = out.feature.count
            let side = EfficientNetLiteGraph.headMapSide
            guard out.headMap.count == side * side * c else { return out.feature }
            var rmac = [Float](repeating: 0, count: c)
            var m = [Float](repeating: 0, count: c)
            out.headMap.withUnsafeBufferPointer { map in
                rmac.withUnsafeMutableBufferPointer { sum in
                    m.withUnsafeMutableBufferPointer { m in
                        for r in Descriptor.headMapRegions {
                            // Region max over positions, a channel row at a time (vectorises).
                            for i in 0..<c { m[i] = 0 }  // ReLU6 output: 0 is the floor
                            for y in r.top..<(r.top + r.size) {
                                for x in r.left..<(r.left + r.size) {
                                    let row = (y * side + x) * c
                                    for i in 0..<c { m[i] = Swift.max(m[i], map[row + i]) }
                                }
                            }
                            var n: Float = 0
                            for i in 0..<c { n += m[i] * m[i] }
                            let inv = 1 / Swift.max(n.squareRoot(), 1e-12)
                            for i in 0..<c { sum[i] += m[i] * inv }
                        }
                    }
                }
            }
            let a = Descriptor.unit(out.feature), u = Descriptor.unit(rmac)
            return (0..<c).map { a[$0] + u[$0] }
        }
    }

    /// The 7x7 map's regions, computed once.
    static let headMapRegions = regions(side: EfficientNetLiteGraph.headMapSide)

    /// R-MAC's square regions on a side x side map: the whole map, then at level l = 2, 3 regions of
    /// side floor(2 side / (l + 1)) on an l x l grid (7x7: 1 + 4 of 4x4 + 9 of 3x3).
    static func regions(side: Int) -> [(top: Int, left: Int, size: Int)] {
        var out = [(top: 0, left: 0, size: side)]
        for level in 2...3 {
            let size = 2 * side / (level + 1)
            guard size >= 1 else { continue }
            let step = max(1, (side - size) / (level - 1))
            for top in stride(from: 0, through: side - size, by: step) {
                for left in stride(from: 0, through: side - size, by: step) {
                    out.append((top, left, size))
                }
            }
        }
        return out
    }

    static func unit(_ v: [Float]) -> [Float] {
        var n = 0.0
        for x in v { n += Double(x) * Double(x) }
        let inv = Float(1 / max(n.squareRoot(), 1e-12))
        return v.map { $0 * inv }
    }
}
