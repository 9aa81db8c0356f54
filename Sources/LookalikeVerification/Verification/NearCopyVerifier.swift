// Re-orders an outside query's shortlist by spatial verification: the candidates whose keypoints
// match the query's (or its mirror image's) under one similarity transform come first, most inliers
// first; the others keep their order after them. A verified copy's score is raised to at least
// the next result's, so the list reads in order (its raw `cosine` is kept); each verified result
// carries its inlier count. Candidates' features
// come from their files, computed in parallel when missing and kept in a byte-bounded cache, so a
// library image costs one decode and SIFT (30-40 ms of one core for a Caltech-101 photo, up to ~100
// ms at 640 px) the first time it is a candidate.
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

/// An outside query's image as it came (for spatial verification, which reads its own pixels).
public enum QueryImage: Sendable {
    case file(String)
    case bytes([UInt8], name: String)
}

/// What verification needs of a search result, and what it changes: its rank, its score (a
/// verified copy moved up scores at least what follows it) and its inlier count.
public protocol VerifiableResult: Sendable {
    var id: Int64 { get }
    var path: String { get }
    var cosine: Float { get }
    var rank: Int { get set }
    var score: Float { get set }
    var inliers: Int? { get set }
}

/// The query's side: its own features and its mirror image's.
public struct QueryFeatures: Sendable {
    public let direct: LocalFeatures
    public let mirrored: LocalFeatures
    /// Their descriptors as floats, converted once for all the candidates they are matched with.
    let directDescriptors: [Float]
    let mirroredDescriptors: [Float]

    init(direct: LocalFeatures, mirrored: LocalFeatures) {
        self.direct = direct
        self.mirrored = mirrored
        directDescriptors = direct.floatDescriptors
        mirroredDescriptors = mirrored.floatDescriptors
    }

    public init(data: [UInt8], name: String) throws {
        self.init(direct: try LocalFeatures.extract(data: data, name: name),
                  mirrored: try LocalFeatures.extract(data: data, name: name, mirrored: true))
    }

    public init(path: String) throws {
        self.init(direct: try LocalFeatures.extract(path: path), mirrored: try LocalFeatures.extract(path: path, mirrored: true))
    }

    public init(_ image: QueryImage) throws {
        switch image {
        case .file(let path): try self.init(path: path)
        case .bytes(let bytes, let name): try self.init(data: bytes, name: name)
        }
    }

    /// Inliers of the better of the two against a candidate.
    func inliers(_ candidate: LocalFeatures) -> Int {
        let descriptors = candidate.floatDescriptors
        return max(SpatialVerifier.inliers(query: direct, directDescriptors, candidate: candidate, descriptors),
                   SpatialVerifier.inliers(query: mirrored, mirroredDescriptors, candidate: candidate, descriptors))
    }
}

/// The query's keypoints in the library's visual words (its own and its mirror image's), matched
/// with candidates' stored keypoints.
public struct QueryWords: Sendable {
    public let direct: WordKeypoints
    public let mirrored: WordKeypoints
    /// The distinct words of both (a flipped copy shares the mirror's), each keypoint under its
    /// nearest word only: what the inverted file is searched with.
    public let words: [UInt32]
    let directFrames: [Float]
    let mirroredFrames: [Float]

    init(direct: WordKeypoints, mirrored: WordKeypoints, words: [UInt32]) {
        self.direct = direct
        self.mirrored = mirrored
        self.words = words
        directFrames = direct.floatFrames
        mirroredFrames = mirrored.floatFrames
    }

    /// Inliers of the better of the two against a candidate's stored keypoints.
    func inliers(_ candidate: WordKeypoints) -> Int {
        SpatialVerifier.inliers([(direct, directFrames), (mirrored, mirroredFrames)], candidate: candidate)
    }
}

public final class NearCopyVerifier: Sendable {
    /// Cache budget in bytes (features of ~10,000 Caltech-101-sized images).
    public let budget: Int

    private struct Entry: Sendable {
        let path: String
        let features: LocalFeatures?
    }
    private struct State: Sendable {
        var entries: [Int64: Entry] = [:]
        var order: [Int64] = []
        var bytes = 0
    }
    private let state = Locked(State())

    public init(budget: Int = 256 << 20) {
        self.budget = budget
    }

    /// Features of library images (id, file path), from the cache or computed in parallel; nil for a
    /// file that cannot be read (it is then simply not verified).
    package func features(_ images: [(id: Int64, path: String)]) -> [LocalFeatures?] {
        let (cached, missing) = state.withLock { s -> ([LocalFeatures?], [Int]) in
            var cached = [LocalFeatures?](repeating: nil, count: images.count)
            var missing: [Int] = []
            for (i, image) in images.enumerated() {
                if let hit = s.entries[image.id], hit.path == image.path { cached[i] = hit.features } else { missing.append(i) }
            }
            return (cached, missing)
        }
        var found = cached
        guard !missing.isEmpty else { return found }
        let computed = Locked([Int: LocalFeatures?]())
        DispatchQueue.concurrentPerform(iterations: missing.count) { m in
            let image = images[missing[m]]
            let features = try? LocalFeatures.extract(path: image.path)
            computed.withLock { $0[missing[m]] = Optional.some(features) }
        }
        let made = computed.value
        state.withLock { s in
            for (i, features) in made {
                found[i] = features
                let image = images[i]
                if let old = s.entries[image.id] { s.bytes -= old.features?.bytes ?? 64 } else { s.order.append(image.id) }
                s.entries[image.id] = Entry(path: image.path, features: features)
                s.bytes += features?.bytes ?? 64
            }
            // Oldest first out, until within budget.
            var drop = 0
            while s.bytes > budget, drop < s.order.count {
                if let old = s.entries.removeValue(forKey: s.order[drop]) { s.bytes -= old.features?.bytes ?? 64 }
                drop += 1
            }
            if drop > 0 { s.order.removeFirst(drop) }
        }
        return found
    }

    /// `results` re-ordered: verified candidates first (most inliers first, weighed by cosine),
    /// then the rest in their order; the best `k`, ranks renumbered. A candidate the library keeps
    /// keypoints for (`stored`, with the query in the same words) is checked by them; the others
    /// by their files' features.
    public func reorder<Result: VerifiableResult>(_ results: [Result], query: QueryFeatures, k: Int,
                                                  stored: (words: QueryWords, index: VisualWordIndex)? = nil) -> [Result] {
        let kept = results.map { stored?.index.entries[$0.id] }
        let fromFiles = results.indices.filter { kept[$0] == nil }
        let loaded = features(fromFiles.map { (results[$0].id, results[$0].path) })
        var fromFile = [LocalFeatures?](repeating: nil, count: results.count)
        for (i, f) in zip(fromFiles, loaded) { fromFile[i] = f }
        let candidates = fromFile
        let counts = Locked([Int](repeating: 0, count: results.count))
        DispatchQueue.concurrentPerform(iterations: results.count) { i in
            let n: Int
            if let keypoints = kept[i], let words = stored?.words {
                // Below the stored keypoints' own bar, not a copy (see minimumWordInliers).
                let w = words.inliers(keypoints)
                n = w >= SpatialVerifier.minimumWordInliers ? w : 0
            } else if let c = candidates[i] {
                n = query.inliers(c)
            } else {
                return
            }
            counts.withLock { $0[i] = n }
        }
        let inliers = counts.value
        // Verified copies by inliers, weighed by the square of their cosine: two library photos that
        // both match (a photo and another crop or size of it) differ by a few inliers, and the one
        // whose whole picture is closer to the query is its original (Caltech-101, scale x0.25:
        // 0.96 -> 0.975 recall@1); a real copy keeps far more inliers than a look-alike anyway.
        let weight = results.map { Double(max(0.1, $0.cosine)) }
        let verified = results.indices.filter { inliers[$0] >= SpatialVerifier.minimumInliers }
            .sorted { (Double(inliers[$0]) * weight[$0] * weight[$0], -$0) > (Double(inliers[$1]) * weight[$1] * weight[$1], -$1) }
        let rest = results.indices.filter { inliers[$0] < SpatialVerifier.minimumInliers }
        var out: [Result] = (verified + rest).prefix(k).enumerated().map { rank, i in
            var r = results[i]
            r.rank = rank + 1
            r.inliers = inliers[i] >= SpatialVerifier.minimumInliers ? inliers[i] : nil
            return r
        }
        // The list reads in order: a verified copy moved up scores at least what follows it.
        for i in stride(from: min(verified.count, out.count) - 1, through: 0, by: -1) where i + 1 < out.count {
            out[i].score = max(out[i].score, out[i + 1].score)
        }
        return out
    }
}
