// A trained hash encoder with its name (`hash:<bits>`, the descriptor of the index that uses it),
// kind (itq or supervised) and when it was trained; the catalogue stores it (HashModelStore), a
// `hash` index codes with it and records its stamp.
import Foundation

public struct HashModel: Sendable {
    public let name: String
    public let kind: String
    public let encoder: LinearHashEncoder
    public let summary: String
    public let trainedAt: Date

    public init(name: String, kind: String, encoder: LinearHashEncoder, summary: String, trainedAt: Date) {
        self.name = name
        self.kind = kind
        self.encoder = encoder
        self.summary = summary
        self.trainedAt = trainedAt
    }

    /// What an index file records to know it was built with this very model.
    public var stamp: String { "\(name)@\(Int64((trainedAt.timeIntervalSince1970 * 1000).rounded()))" }

    public static func name(bits: Int) -> String { "hash:\(bits)" }
}
