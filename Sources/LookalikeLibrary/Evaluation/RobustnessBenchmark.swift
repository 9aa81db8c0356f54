// Robustness: how often an edited copy of a library photo still finds the photo itself. For a
// seeded sample of the library's images under a folder, each standard edit (the hard cases the
// seeds name: partial crops, viewpoint (rotation), exposure, contrast, scale, compression, blur,
// occlusion, mirror image, overlaid text) is made with libvips, embedded, and searched against the
// whole library (the originals plus every other image as distractors); recall@1 and recall@5 of the
// original per edit.
import CVipsShim
import Dispatch
import Foundation
import LookalikeEngine

public struct Transformation: Sendable, Codable, Equatable {
    public let name: String
    let kind: Int32
    let amount: Double

    public static let standard: [Transformation] = [
        Transformation(name: "crop 50% centre", kind: Int32(LK_TX_CROP_CENTER), amount: 0),
        Transformation(name: "crop 50% corner", kind: Int32(LK_TX_CROP_CORNER), amount: 0),
        Transformation(name: "rotate +15", kind: Int32(LK_TX_ROTATE), amount: 15),
        Transformation(name: "rotate -15", kind: Int32(LK_TX_ROTATE), amount: -15),
        Transformation(name: "rotate 90", kind: Int32(LK_TX_ROTATE), amount: 90),
        Transformation(name: "brightness x1.4", kind: Int32(LK_TX_BRIGHTNESS), amount: 1.4),
        Transformation(name: "brightness x0.6", kind: Int32(LK_TX_BRIGHTNESS), amount: 0.6),
        Transformation(name: "contrast x0.5", kind: Int32(LK_TX_CONTRAST), amount: 0.5),
        Transformation(name: "scale x0.25", kind: Int32(LK_TX_SCALE), amount: 0.25),
        Transformation(name: "JPEG quality 10", kind: Int32(LK_TX_JPEG), amount: 10),
        Transformation(name: "blur sigma 2", kind: Int32(LK_TX_BLUR), amount: 2),
        Transformation(name: "grey square 25%", kind: Int32(LK_TX_OCCLUDE), amount: 0.25),
        Transformation(name: "horizontal flip", kind: Int32(LK_TX_FLIP), amount: 0),
        Transformation(name: "three lines of text", kind: Int32(LK_TX_TEXT), amount: 0),
    ]

    /// The edited image as JPEG bytes.
    public func apply(toFile path: String) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { m in
            lk_transform_file(path, kind, amount, &out, &length, m.baseAddress, m.count)
        }
        guard status == 0, let out else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw IndexError("\(path): cannot apply '\(name)': \(reason)")
        }
        defer { lk_transform_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}

public struct RobustnessRow: Sendable, Codable {
    public let transformation: String
    public let queries: Int
    public let recall_at_1: Double
    public let recall_at_5: Double
    /// Images the edit or the embedding failed on (left out of the recall).
    public let failures: Int
}

public struct RobustnessReport: Sendable, Codable {
    public let library: String
    public let images: Int
    public let sample: Int
    public let method: String
    public let reranking: String
    public let rows: [RobustnessRow]
    public let seconds: Double
}

public enum RobustnessBenchmark {
    public static func run(service: SearchService, embedder: Embedder, folder: String, sample: Int = 200, seed: UInt64 = 0,
                           transformations: [Transformation] = Transformation.standard, reranking: Reranking = .libraryDefault,
                           verify: Int = 0, progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> RobustnessReport {
        let started = Date()
        let root = URL(fileURLWithPath: folder).standardizedFileURL.path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        let summaries = try service.catalogue.allSummaries()
        let live = Set(service.library.store.liveIds)
        let candidates = summaries.values.filter { live.contains($0.imageId) && ($0.path.hasPrefix(prefix) || $0.path == root) }
            .sorted { $0.path < $1.path }
        guard !candidates.isEmpty else {
            throw IndexError("no library image under \(folder): index it first (`lookalike index \(folder)`)")
        }
        var rng = SplitMix64(seed: seed)
        let chosen = Array(candidates.shuffled(using: &rng).prefix(sample)).sorted { $0.path < $1.path }
        struct Tally: Sendable { var queries = 0, top1 = 0, top5 = 0, failures = 0 }
        let tallies = Locked([Tally](repeating: Tally(), count: transformations.count))
        let done = Locked(0)
        let total = chosen.count * transformations.count
        let request = SearchRequest(k: max(5, verify), reranking: reranking)
        let verifier = NearCopyVerifier()
        let applied = Locked(Reranking.none)
        DispatchQueue.concurrentPerform(iterations: chosen.count) { i in
            let image = chosen[i]
            for (t, transformation) in transformations.enumerated() {
                let outcome: (hit1: Bool, hit5: Bool)? = try? {
                    let bytes = try transformation.apply(toFile: image.path)
                    let vector = try embedder.embed(embedder.decode(data: bytes, name: transformation.name)).vector
                    var (results, used) = try service.rankExplained(vector: vector, libraryId: nil, request: request)
                    if verify > 0 {
                        let features = try QueryFeatures(data: bytes, name: transformation.name)
                        results = verifier.reorder(results, query: features, k: 5)
                    }
                    applied.withLock { $0 = used }
                    return (results.first?.id == image.imageId, results.prefix(5).contains { $0.id == image.imageId })
                }()
                tallies.withLock { all in
                    if let outcome {
                        all[t].queries += 1
                        if outcome.hit1 { all[t].top1 += 1 }
                        if outcome.hit5 { all[t].top5 += 1 }
                    } else {
                        all[t].failures += 1
                    }
                }
                let n = done.withLock { d -> Int in d += 1; return d }
                progress?(n, total)
            }
        }
        let rows = zip(transformations, tallies.value).map { t, tally in
            RobustnessRow(transformation: t.name, queries: tally.queries,
                          recall_at_1: tally.queries > 0 ? Double(tally.top1) / Double(tally.queries) : 0,
                          recall_at_5: tally.queries > 0 ? Double(tally.top5) / Double(tally.queries) : 0,
                          failures: tally.failures)
        }
        return RobustnessReport(library: service.catalogue.path, images: live.count, sample: chosen.count,
                                method: "exact", reranking: verify == 0 ? applied.value.description : applied.value.description(verifying: verify),
                                rows: rows,
                                seconds: Date().timeIntervalSince(started))
    }

    /// The table as a small self-contained HTML page.
    public static func html(_ r: RobustnessReport) -> String {
        var rows = ""
        for row in r.rows {
            func bar(_ v: Double) -> String {
                "<div class='b'><i style='width:\(Int(v * 100))%;background:hsl(\(Int(v * 120)),60%,45%)'></i><span>\(String(format: "%.3f", v))</span></div>"
            }
            rows += "<tr><td>\(EvaluationHTML.escape(row.transformation))</td><td>\(row.queries)</td><td>\(bar(row.recall_at_1))</td><td>\(bar(row.recall_at_5))</td><td>\(row.failures)</td></tr>"
        }
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Lookalike robustness</title><style>
            body{font:14px/1.45 system-ui,sans-serif;background:#f6f7f9;color:#1d2430;margin:0}main{max-width:900px;margin:0 auto;padding:24px}
            table{border-collapse:collapse;background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;width:100%}
            td,th{padding:6px 10px;border-bottom:1px solid #eef0f3;text-align:left}th{background:#eef2f8}
            .b{position:relative;background:#eef0f3;border-radius:4px;height:18px;min-width:160px}.b i{display:block;height:100%;border-radius:4px}
            .b span{position:absolute;left:6px;top:0;font-size:12px;color:#fff;text-shadow:0 0 2px #000}
            </style></head><body><main><h1>Robustness to edits</h1>
            <p>\(EvaluationHTML.escape(r.library)): \(r.sample) photos edited 14 ways, each searched against all \(r.images) images
            (method \(EvaluationHTML.escape(r.method)), re-ranking \(EvaluationHTML.escape(r.reranking))). Recall@k: the original is among the top k.</p>
            <table><tr><th>edit</th><th>queries</th><th>recall@1</th><th>recall@5</th><th>failed</th></tr>\(rows)</table></main></body></html>

            """
    }
}
