// Ranking: the distance metrics a search can rank by, and how a distance becomes a score a person
// can read (higher is more similar, 1 is identical). All metrics work on the stored L2-normalised
// embeddings; chi-square (the seeds' re-ranking metric) treats the non-negative pooled feature as a
// histogram, so it is computed on the L1-normalised vector (sum = 1), which bounds it to [0, 1].
import Foundation

public enum Metric: String, CaseIterable, Sendable, Codable {
    case cosine, euclidean, chi2, manhattan, chebyshev

    /// One line per metric, for --help.
    public var explanation: String {
        switch self {
        case .cosine:
            return "cosine: score = cosine similarity of the L2-normalised embeddings (1 = same direction, 0 = unrelated); distance = 1 - score"
        case .euclidean:
            return "euclidean: distance = L2 distance of the normalised embeddings (0..2); score = 1 - distance/2"
        case .chi2:
            return "chi2: distance = 0.5 * sum (a-b)^2/(a+b) over the non-negative pooled features scaled to sum 1 (0..1); score = 1 - distance"
        case .manhattan:
            return "manhattan: distance = L1 distance of the normalised embeddings (0..sqrt(2D), D = 1280); score = 1 - distance/sqrt(2D)"
        case .chebyshev:
            return "chebyshev: distance = largest per-dimension difference of the normalised embeddings (0..1); score = 1 - distance"
        }
    }

    /// Score from distance between unit vectors of `dimension` values: 1 for identical vectors,
    /// falling linearly to 0 at the metric's largest possible distance.
    public func score(distance: Float, dimension: Int) -> Float {
        switch self {
        case .cosine: return 1 - distance
        case .euclidean: return 1 - distance / 2
        case .chi2, .chebyshev: return 1 - distance
        // |x - y|_1 <= sqrt(D) |x - y|_2 <= sqrt(2D) for unit vectors.
        case .manhattan: return 1 - distance / (2 * Float(dimension)).squareRoot()
        }
    }
}

/// One ranked result: an id from the index and its distance under the metric used.
public struct Neighbor: Sendable, Equatable {
    public let id: Int64
    public let distance: Float
    public init(id: Int64, distance: Float) {
        self.id = id
        self.distance = distance
    }
}
