// The registry of index methods: each is made from its descriptor (`exact:f16`, `hash:64`...) by
// one factory, and read back from its file by `readIndex`, which dispatches on the file's tag. A
// new method is a file in Index/ plus one entry here; the conformance tests then run it too.
import Foundation

public enum IndexFactory {
    package struct Method: Sendable {
        let summary: String
        /// Descriptors that exercise the method (the conformance suite makes each of them).
        let examples: [String]
        /// The recall@10 against exact search the method promises on synthetic data with its
        /// default settings (the conformance suite checks it).
        let minimumRecallAt10: Double
        /// Makes an empty index; coarse methods re-rank against `store` when given one.
        let make: @Sendable (IndexDescriptor, Int, VectorStore?) throws -> any VectorIndex
        package let read: @Sendable (IndexFile.Contents, VectorStore?) throws -> any VectorIndex
    }

    package static let methods: [String: Method] = [
        ExactIndex.methodName: Method(
            summary: "exact scan of every vector (all metrics; exact:f16 halves the memory)",
            // exact itself is 1.0; exact:f16 rounds the vectors, so ties may swap (0.998 measured).
            examples: ["exact", "exact:f16"], minimumRecallAt10: 0.98,
            make: { descriptor, dimension, _ in try ExactIndex(descriptor: descriptor, dimension: dimension) },
            read: { contents, _ in try ExactIndex.read(contents) }),
        LSHIndex.methodName: Method(
            summary: "random-hyperplane LSH, lsh:K:L (K bits x L tables, default lsh:10:5; probes=N nearby buckets), candidates re-ranked exactly",
            // Random hyperplanes collide rarely for neighbours that are not near-copies: 0.24 / 0.19 measured
            // on the synthetic clusters (ApproximateTests); the seed's method, kept for comparison.
            examples: ["lsh", "lsh:8:4:probes=2"], minimumRecallAt10: 0.15,
            make: { descriptor, dimension, store in try LSHIndex(descriptor: descriptor, dimension: dimension, store: store) },
            read: { contents, store in try LSHIndex.read(contents, store: store) }),
        HashIndex.methodName: Method(
            summary: "learned B-bit codes (hash:B, 16..256; PCA+ITQ or `lookalike prepare hash`), Hamming coarse search (best c=N or radius r=N), exact re-rank",
            // 0.93 / 0.77 / 0.83 measured on the synthetic clusters (ApproximateTests).
            examples: ["hash:64", "hash:128:c=300", "hash:16"], minimumRecallAt10: 0.75,
            make: { descriptor, dimension, store in try HashIndex(descriptor: descriptor, dimension: dimension, store: store) },
            read: { contents, store in try HashIndex.read(contents, store: store) }),
        HNSWIndex.methodName: Method(
            summary: "HNSW graph (hnswlib), hnsw:M[:ef=E] (default hnsw:32, construction ef 200; search efSearch 64)",
            // 0.962 / 0.942 / 0.968 measured on the synthetic clusters (ApproximateTests).
            examples: ["hnsw", "hnsw:16", "hnsw:32:ef=200"], minimumRecallAt10: 0.93,
            make: { descriptor, dimension, store in try HNSWIndex(descriptor: descriptor, dimension: dimension, store: store) },
            read: { contents, store in try HNSWIndex.read(contents, store: store) }),
    ]

    /// Every registered example descriptor with the recall@10 its method promises (conformance tests).
    public static var conformanceCases: [(descriptor: String, minimumRecallAt10: Double)] {
        names.flatMap { name in methods[name].map { m in m.examples.map { ($0, m.minimumRecallAt10) } } ?? [] }
    }

    /// Method names, sorted.
    public static var names: [String] { methods.keys.sorted() }

    /// One line per method for --help.
    public static var summaries: [String] { names.compactMap { name in methods[name].map { "\(name): \($0.summary)" } } }

    /// An empty index for `descriptor` (text form, e.g. "exact:f16").
    public static func make(_ descriptor: String, dimension: Int, metric: Metric = .cosine,
                            store: VectorStore? = nil) throws -> any VectorIndex {
        try make(IndexDescriptor(parsing: descriptor, metric: metric), dimension: dimension, store: store)
    }

    public static func make(_ descriptor: IndexDescriptor, dimension: Int, store: VectorStore? = nil) throws -> any VectorIndex {
        guard let method = methods[descriptor.method] else {
            throw IndexError("unknown index method '\(descriptor.method)'; known: \(names.joined(separator: ", "))")
        }
        return try method.make(descriptor, dimension, store)
    }
}

/// Reads any index file written by `VectorIndex.write`, verifying its checksum; coarse methods
/// re-rank against `store`.
public func readIndex(url: URL, store: VectorStore? = nil) throws -> any VectorIndex {
    let contents = try IndexFile.read(url, catalogue: nil)
    let descriptor = try contents.descriptor
    guard let method = IndexFactory.methods[descriptor.method] else {
        throw IndexError("\(url.path): index of unknown method '\(descriptor.method)'")
    }
    return try method.read(contents, store)
}
