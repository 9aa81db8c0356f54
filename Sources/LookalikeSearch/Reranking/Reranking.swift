// Reranking/ owns ranking better than plain cosine without labels, by using the library's own
// neighbourhood structure (measured in ../shared/notes/retrieval.md and by `lookalike eval`):
// - database-side augmentation (DBA): each library vector is replaced by the weighted mean of
//   itself and its `augmentation` nearest neighbours, weights max(0, cos)^alpha (itself: 1);
// - alpha-weighted query expansion (alpha-QE): the query is replaced by the weighted mean of itself
//   and its `expansion` nearest (augmented) library vectors, weights max(0, cos)^alpha, and searched
//   again.
// - diffusion over the library's neighbourhood graph (DiffusionGraph), for library images;
// - every library image's answer made ahead by the writer (AnswerLists), read by a click on it.
// All change only the order: a result's reported score stays the cosine similarity of the raw
// embeddings of the query and the result. Dedupe never uses them. Unless a re-ranking names its
// alpha, it is the library descriptor's (`Descriptor.rerankingAlpha`).
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

extension Descriptor {
    /// The neighbour-weight exponent of re-rankings that name none. `whole+rmac` vectors sit closer
    /// together (mean cosine between Caltech-101 images 0.29, against 0.23 for `centre-crop`), so
    /// unrelated neighbours weigh more at a given alpha: with alpha 3 the default re-ranking fell
    /// below plain cosine on the 36 bundled samples (mAP 0.944 -> 0.893); alpha 5 beats plain cosine
    /// on the samples, Caltech-101 and Corel-1K (scripts/explore_descriptors.py,
    /// docs/retrieval-quality.md).
    public var rerankingAlpha: Double { self == .centreCrop ? 3 : 5 }
}

public struct Reranking: Sendable, Equatable, Codable, CustomStringConvertible {
    /// DBA neighbours (0: off).
    public var augmentation: Int
    /// alpha-QE neighbours (0: off).
    public var expansion: Int
    /// Neighbours of the diffusion graph (0: off; see DiffusionGraph).
    public var diffusion: Int
    /// The neighbours' weight exponent; nil: the library descriptor's (`alpha(for:)`).
    public var alpha: Double?

    public init(augmentation: Int = 0, expansion: Int = 0, diffusion: Int = 0, alpha: Double? = nil) {
        self.augmentation = augmentation
        self.expansion = expansion
        self.diffusion = diffusion
        self.alpha = alpha
    }

    enum CodingKeys: String, CodingKey { case augmentation, expansion, diffusion, alpha }

    /// Older answers and reports have no `diffusion`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        augmentation = try c.decode(Int.self, forKey: .augmentation)
        expansion = try c.decode(Int.self, forKey: .expansion)
        diffusion = try c.decodeIfPresent(Int.self, forKey: .diffusion) ?? 0
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha)
    }

    public static let none = Reranking()

    /// What indexing prepares and searches and evaluation use unless told otherwise: measured to
    /// beat plain cosine on Caltech-101, Corel-1K and the bundled samples (docs/retrieval-quality.md).
    public static let libraryDefault = Reranking(augmentation: 15, expansion: 10, diffusion: 30)

    /// The alpha applied to a library of vectors made with `descriptor`.
    public func alpha(for descriptor: Descriptor) -> Double { alpha ?? descriptor.rerankingAlpha }

    public var isNone: Bool { augmentation == 0 && expansion == 0 && diffusion == 0 }

    /// `none`, or e.g. `dba:10+qe:10+diff:30` (the descriptor's alpha unless `,alpha=N`).
    public var description: String {
        if isNone { return "none" }
        var parts: [String] = []
        if augmentation > 0 { parts.append("dba:\(augmentation)") }
        if expansion > 0 { parts.append("qe:\(expansion)") }
        if diffusion > 0 { parts.append("diff:\(diffusion)") }
        return parts.joined(separator: "+") + (alpha.map { ",alpha=\($0)" } ?? "")
    }

    /// Why the steps of `requested` that `applied` lacks did not run, one line each: `reasons`
    /// says it per step ("dba", "qe", "diff"), and a step without one gets a general line.
    public static func notes(requested: Reranking, applied: Reranking, reasons: [String: String]) -> [String] {
        var notes: [String] = []
        func check(_ step: String, _ asked: Int, _ ran: Int) {
            guard asked > 0, ran != asked else { return }
            notes.append("\(step):\(asked) not applied: \(reasons[step] ?? "not available for this query")")
        }
        check("dba", requested.augmentation, applied.augmentation)
        check("qe", requested.expansion, applied.expansion)
        check("diff", requested.diffusion, applied.diffusion)
        return notes
    }

    /// How far below an image's best neighbour a neighbour may be and still count (cosine): the
    /// neighbourhood adapts to each image instead of a fixed 15 / 10 / 30. Four photos of one object
    /// sit close together and far from the rest, so a fixed count averaged each with strangers
    /// (ukbench500 P@3 0.907 against 0.982 plain); a class's members fall off gradually and keep
    /// most of their weight. Measured with scripts/rerank_explore.py (`f0.1` on dba and qe, `f0.15`
    /// on diff; docs/retrieval-quality.md): the default then beats plain cosine on every set tried
    /// (instance, class, fine-grained, mixed), for 0.005-0.02 less mAP than the fixed counts on
    /// class sets.
    public static let neighbourhoodScale: Float = 0.1

    /// A neighbour's share of its weight: 1 for the best neighbour, fading as a Gaussian of how far
    /// below the best it is (`scale` apart: e^-1).
    @inline(__always)
    package static func fade(_ similarity: Float, best: Float, scale: Float) -> Float {
        let d = (best - similarity) / scale
        return exp(-d * d)
    }

    /// What an answer whose `shortlist` best were spatially verified after this re-ranking says:
    /// `dba:15+qe:10+verify:100`, or `verify:100` alone.
    /// `words`: candidates taken from the library's visual-word index on top of the shortlist.
    public func description(verifying shortlist: Int, words: Int = 0) -> String {
        (isNone ? "" : description + "+") + "verify:\(shortlist)" + (words > 0 ? "+words:\(words)" : "")
    }

    /// Parses `none`, `dba:10`, `qe:5`, `diff:30`, `dba:10+qe:10`, optionally `,alpha=3`.
    public init(parsing text: String) throws {
        self.init()
        let pieces = text.split(separator: ",")
        for setting in pieces.dropFirst() {
            let pair = setting.split(separator: "=")
            guard pair.count == 2, pair[0] == "alpha", let a = Double(pair[1]), a >= 0 else {
                throw IndexError("re-ranking '\(text)': unknown setting '\(setting)' (expected alpha=N)")
            }
            alpha = a
        }
        let head = pieces.first.map(String.init) ?? ""
        if head == "none" || head.isEmpty { return }
        for part in head.split(separator: "+") {
            let kv = part.split(separator: ":")
            guard kv.count == 2, let n = Int(kv[1]), n > 0, n <= 100 else {
                throw IndexError("re-ranking '\(text)': '\(part)' should be dba:N, qe:N or diff:N with 1 <= N <= 100")
            }
            switch kv[0] {
            case "dba": augmentation = n
            case "qe": expansion = n
            case "diff": diffusion = n
            default: throw IndexError("re-ranking '\(text)': unknown step '\(kv[0])' (dba, qe or diff)")
            }
        }
    }

    /// Weighted sum of `neighbours` rows (weights max(0, cos)^alpha) added to `base` (weight 1),
    /// L2-normalised.
    package static func expand(_ base: [Float], neighbours: [(similarity: Float, vector: [Float])], alpha: Double) -> [Float] {
        var out = base
        let best = neighbours.map(\.similarity).max() ?? 0
        for (similarity, vector) in neighbours {
            let w = Float(pow(Double(max(0, similarity)), alpha)) * fade(similarity, best: best, scale: neighbourhoodScale)
            guard w > 0 else { continue }
            for i in out.indices { out[i] += w * vector[i] }
        }
        let norm = out.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? out.map { $0 / norm } : base
    }
}
