// Evaluation: the metrics against rankings computed by hand, and `eval` on the sample library
// (labels = class folders) with exact search, with re-ranking, and with listed queries.
import Foundation
import Testing
@testable import LookalikeLibrary

@Suite(.serialized) struct EvaluationTests {
    @Test func metricsMatchHandComputedRankings() {
        // Ranks 1..5: relevant, not, relevant, not, not; 3 relevant images exist (one never returned).
        let m = RetrievalMetrics.evaluate(relevant: [true, false, true, false, false], relevantCount: 3, k: 4)
        #expect(m.precisionAtK == 0.5)
        #expect(abs(m.recallAtK - 2.0 / 3) < 1e-12)
        #expect(abs(m.f1AtK - 2 * 0.5 * (2.0 / 3) / (0.5 + 2.0 / 3)) < 1e-12)
        // AP = (1/1 + 2/3 + 0) / 3: the relevant image not returned counts as a miss.
        #expect(abs(m.averagePrecision - (1 + 2.0 / 3) / 3) < 1e-12)
        #expect(m.precisionAtRank.count == 4)
        #expect(zip(m.precisionAtRank, [1, 0.5, 2.0 / 3, 0.5]).allSatisfy { abs($0 - $1) < 1e-12 })
        // Interpolated precision: 1 up to recall 1/3, 2/3 up to recall 2/3, 0 beyond.
        let expected: [Double] = [1, 1, 1, 1, 2.0 / 3, 2.0 / 3, 2.0 / 3, 0, 0, 0, 0]
        #expect(zip(m.interpolatedPrecision, expected).allSatisfy { abs($0 - $1) < 1e-12 })

        // A perfect ranking.
        let perfect = RetrievalMetrics.evaluate(relevant: [true, true, false, false], relevantCount: 2, k: 2)
        #expect(perfect.precisionAtK == 1 && perfect.recallAtK == 1 && perfect.averagePrecision == 1)
        // A ranking shorter than k (a coarse method's candidates): missing ranks hold nothing.
        let short = RetrievalMetrics.evaluate(relevant: [true], relevantCount: 2, k: 3)
        #expect(abs(short.precisionAtK - 1.0 / 3) < 1e-12 && short.averagePrecision == 0.5)
        #expect(zip(short.precisionAtRank, [1, 0.5, 1.0 / 3]).allSatisfy { abs($0 - $1) < 1e-12 })
        // Nothing relevant anywhere.
        let none = RetrievalMetrics.evaluate(relevant: [false, false], relevantCount: 1, k: 2)
        #expect(none.precisionAtK == 0 && none.averagePrecision == 0 && none.f1AtK == 0)
    }

    @Test func evalOnTheSampleLibrary() throws {
        let catalogue = try SearchTests.sampleLibrary()
        let library = try LiveLibrary(catalogue: catalogue)
        var options = EvaluationOptions()
        options.k = 5
        let plain = try Evaluator.run(library: library, options: options)
        // 6 classes x 6 photos: every image is a query with 5 relevant others.
        #expect(plain.queries == 36 && plain.images == 36)
        #expect(plain.per_query.allSatisfy { $0.relevantCount == 5 })
        #expect(plain.precision_at_rank.count == 5)
        #expect(plain.per_class.count == 6)
        // The exact ranking of a library query is its search results (the query excluded).
        let service = try SearchService(catalogue: catalogue)
        let first = try #require(plain.per_query.first)
        let searched = try service.search(imageId: first.id, k: 5, metric: .cosine)
        #expect(first.top == searched.map(\.id))
        // Metrics are consistent with the per-query rows, and the classes are well separated.
        let meanP = plain.per_query.map(\.precisionAtK).reduce(0, +) / 36
        #expect(abs(meanP - plain.precision_at_k) < 1e-12)
        #expect(plain.precision_at_k >= 0.8 && plain.map >= 0.8)
        #expect(plain.per_class.map(\.precisionAtK) == plain.per_class.map(\.precisionAtK).sorted())

        // Re-ranking runs and keeps the metrics in range; listed queries restrict the set.
        options.reranking = try Reranking(parsing: "dba:3+qe:3")
        let reranked = try Evaluator.run(library: library, options: options)
        #expect(reranked.reranking == "dba:3+qe:3" && reranked.queries == 36)
        #expect(reranked.map > 0.5 && reranked.map <= 1)
        options.reranking = .none
        options.queries = .paths(["pizza/image_0001.jpg", "dalmatian/image_0002.jpg"])
        let listed = try Evaluator.run(library: library, options: options)
        #expect(listed.queries == 2 && Set(listed.per_query.map(\.label)) == ["pizza", "dalmatian"])
        options.queries = .paths(["nothere/image_0001.jpg"])
        #expect(throws: IndexError.self) { _ = try Evaluator.run(library: library, options: options) }

        // The HTML report is self-contained: inline SVG and embedded thumbnails, no external files.
        options.queries = .all
        let html = try EvaluationHTML.render(plain, thumbnails: ReportThumbnails(catalogue: catalogue))
        #expect(html.contains("<svg") && html.contains("data:image/jpeg;base64,"))
        #expect(!html.contains("src='http") && !html.contains("<script"))
    }

    @Test func rerankingParsesAndRejectsNonsense() throws {
        #expect(try Reranking(parsing: "none") == .none)
        let r = try Reranking(parsing: "dba:10+qe:5,alpha=2")
        #expect(r.augmentation == 10 && r.expansion == 5 && r.alpha == 2)
        #expect(r.description == "dba:10+qe:5,alpha=2.0")
        #expect(throws: IndexError.self) { _ = try Reranking(parsing: "dba:0") }
        #expect(throws: IndexError.self) { _ = try Reranking(parsing: "magic:3") }
    }
}
