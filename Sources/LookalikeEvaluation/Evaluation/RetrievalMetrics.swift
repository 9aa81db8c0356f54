// Evaluation/ owns measuring retrieval quality on a labelled library (labels = folder names):
// the metrics of one ranking (this file), the evaluator that runs every query through a search
// method and re-ranking (Evaluator), and the self-contained HTML report (EvaluationReport+HTML).
//
// Definitions (those of the documents Lookalike descends from, and of the reference peer):
// for a query with R relevant images (same label, the query itself excluded) and a ranking,
// P@k = hits in the top k / k; R@k = hits in the top k / R; F1@k their harmonic mean;
// AP = mean over the relevant images of the precision at each one's rank, relevant images the
// ranking does not contain counting as misses (precision 0), so a method returning only candidates
// is not flattered; precision at rank r (r = 1..k) is averaged over queries for the curve.
import Foundation
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public struct RankingMetrics: Sendable, Codable, Equatable {
    public var precisionAtK: Double
    public var recallAtK: Double
    public var f1AtK: Double
    public var averagePrecision: Double
    /// Precision after each of the first k ranks.
    public var precisionAtRank: [Double]
    /// Interpolated precision at recall 0, 0.1, ..., 1 (11 points).
    public var interpolatedPrecision: [Double]
}

public enum RetrievalMetrics {
    /// Metrics of one ranking: `relevant[i]` tells whether the result at rank i+1 is relevant;
    /// `relevantCount` is how many relevant images exist in the library (R).
    public static func evaluate(relevant: [Bool], relevantCount: Int, k: Int) -> RankingMetrics {
        guard relevantCount > 0, k > 0 else {
            return RankingMetrics(precisionAtK: 0, recallAtK: 0, f1AtK: 0, averagePrecision: 0,
                                  precisionAtRank: Array(repeating: 0, count: max(0, k)),
                                  interpolatedPrecision: Array(repeating: 0, count: 11))
        }
        var hits = 0
        var apSum = 0.0
        var precisionAtRank: [Double] = []
        precisionAtRank.reserveCapacity(k)
        // (recall, precision) after each relevant hit, for the precision-recall curve.
        var curve: [(Double, Double)] = []
        for (i, isRelevant) in relevant.enumerated() {
            if isRelevant {
                hits += 1
                let precision = Double(hits) / Double(i + 1)
                apSum += precision
                curve.append((Double(hits) / Double(relevantCount), precision))
            }
            if i < k { precisionAtRank.append(Double(hits) / Double(i + 1)) }
        }
        // A ranking shorter than k: the missing ranks hold nothing relevant.
        var last = hits
        if relevant.count < k {
            last = relevant.prefix(k).filter { $0 }.count
            for r in relevant.count..<k { precisionAtRank.append(Double(last) / Double(r + 1)) }
        }
        let hitsAtK = relevant.prefix(k).filter { $0 }.count
        let p = Double(hitsAtK) / Double(k)
        let r = Double(hitsAtK) / Double(relevantCount)
        let interpolated = (0...10).map { step -> Double in
            let level = Double(step) / 10
            return curve.filter { $0.0 >= level - 1e-12 }.map(\.1).max() ?? 0
        }
        return RankingMetrics(precisionAtK: p, recallAtK: r, f1AtK: p + r > 0 ? 2 * p * r / (p + r) : 0,
                              averagePrecision: apSum / Double(relevantCount), precisionAtRank: precisionAtRank,
                              interpolatedPrecision: interpolated)
    }
}
