// The registry of index methods: each is made from its descriptor (`exact:f16`, `hash:64`...) by
// one factory, and read back from its file by `readIndex`, which dispatches on the file's tag. A
// new method is a file in Index/ plus one entry here; the conformance tests then run it too.
import Foundation

public enum IndexFactory {
    struct Method: Sendable {
        let summary: String
        /// Descriptors the conformance tests run, and the recall@10 against brute force each
        /// promises on their synthetic data.
        let examples: [String]
        let minimumRecallAt10: Double
        /// Makes an empty index; coarse methods re-rank against `store` when given one.
        let make: @Sendable (IndexDescriptor, Int, VectorStore?) throws -> any VectorIndex
        let read: @Sendable (IndexFile.Contents, VectorStore?) throws -> any VectorIndex
    }

    static let methods: [String: Method] = [
        ExactIndex.methodName: Method(
            summary: "exact scan of every vector (all metrics; exact:f16 halves the memory)",
            examples: ["exact", "exact:f16"], minimumRecallAt10: 0.98,
            make: { descriptor, dimension, _ in try ExactIndex(descriptor: descriptor, dimension: dimension) },
            read: { contents, _ in try ExactIndex.read(contents) }),
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
    let contents = try IndexFile.read(url)
    let descriptor = try contents.descriptor
    guard let method = IndexFactory.methods[descriptor.method] else {
        throw IndexError("\(url.path): index of unknown method '\(descriptor.method)'")
    }
    return try method.read(contents, store)
}
