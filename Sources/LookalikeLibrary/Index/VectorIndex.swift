// The index protocol every search method implements (exact now; LSH and learned hash codes later),
// in the spirit of faiss: add vectors under ids, search a query for the k nearest under a metric,
// remove ids, and persist to / restore from a file. Methods are registered by name so the CLI,
// benchmarks and evaluation can swap and compare them (`--method exact`).
import Foundation

public protocol VectorIndex: AnyObject, Sendable {
    /// The name the method is selected by (`exact`, ...).
    static var methodName: String { get }
    var dimension: Int { get }
    var count: Int { get }
    /// Adds `ids.count` vectors, stored row after row in `vectors` (L2-normalised, `dimension` each).
    func add(ids: [Int64], vectors: [Float]) throws
    /// Removes the given ids (unknown ids are ignored).
    func remove(ids: Set<Int64>)
    /// The `k` nearest stored vectors to `query` under `metric`, nearest first, skipping `excluding`.
    func search(_ query: [Float], k: Int, metric: Metric, excluding: Set<Int64>) throws -> [Neighbor]
    /// Writes the index to `url` and reads it back.
    func write(to url: URL) throws
    static func read(from url: URL) throws -> Self
}

public struct IndexError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The registry of index methods by name.
public enum IndexMethods {
    public static let names: [String] = [ExactIndex.methodName]

    public static func make(_ name: String, dimension: Int, precision: StoragePrecision = .float32) throws -> any VectorIndex {
        switch name {
        case ExactIndex.methodName: return ExactIndex(dimension: dimension, precision: precision)
        default: throw IndexError("unknown index method '\(name)'; known: \(names.joined(separator: ", "))")
        }
    }
}
