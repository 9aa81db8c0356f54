// Every library image's answer under the library's re-ranking, computed for all of them at once by
// the writer (`index`), so that a click on a library image (the web app, `search --id`) reads its
// answer instead of computing it. A library image's re-ranked answer depends on the library alone:
// its augmented vector, its expansion from the diffusion graph's lists, one exact scan of the
// augmented vectors for its 300 best, and diffusion over them. It is the same for every request
// until the library changes, so it is the offline half of the split that Yang et al. ("Efficient
// image retrieval via decoupling diffusion into online and offline processing", AAAI 2019) make
// for diffusion: database-side queries offline, outside queries online.
//
// The lists are made by the code a live search runs (`Reranker.answers`: the same prepared query,
// exact scan, exclusion of the image itself and diffusion), so they are the live answers; a test
// compares them for every sample image. Each holds the best `length` (100, the thesis's top 100) as
// graph nodes with the score each was ordered by, 800 bytes an image; the raw cosines to the
// query are computed per request. A request for more than `length`, restricted to a label or folder, with the image
// itself included, another method or another re-ranking is searched live, and so is a library that
// changed since the lists were made (the file records the images and the catalogue's change counter)
// until the writer brings them up to date. Cost: about the time of one `eval` pass (seconds at
// 9,144 images on 2 cores); they exist when the diffusion graph does (up to
// `DiffusionGraph.maximumGraph` images). Why: under 64 concurrent clients on 2 cores, the live
// answer (bf16 scan, float32 ranking of the 300 best, diffusion) costs about 1 ms of CPU a click
// and kept the served p99 at the 50 ms bar; a listed one costs the raw cosines of k rows.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class AnswerLists: Sendable {
    /// Answers kept per image (best first, the image itself left out).
    public static let length = 100
    static let fileTag = "answers"

    /// What the lists were ranked with: the re-ranking's steps and alpha, and diffusion's settings.
    let reranking: String
    /// The images (`DiffusionGraph.fingerprint`) and the catalogue's change counter they were made
    /// at: an image whose file changed keeps its id, so the ids alone cannot tell.
    let fingerprint: String
    let counter: Int64
    /// Images in list order and each list's `length` entries (indices into `ids`, -1 past a short end).
    let ids: [Int64]
    let positions: NodeIndex
    let lists: [Int32]
    /// Each entry's score, what the answer is ordered by (`Reranker.score`).
    let scores: [Float]

    public var count: Int { ids.count }

    init(reranking: String, fingerprint: String, counter: Int64, ids: [Int64], lists: [Int32], scores: [Float]) {
        self.reranking = reranking
        self.fingerprint = fingerprint
        self.counter = counter
        self.ids = ids
        positions = NodeIndex(ids)
        self.lists = lists
        self.scores = scores
    }

    /// The identity of a re-ranking's answers: its steps with the alpha applied, and the diffusion
    /// constants (a build with other constants ranks differently).
    static func identity(_ options: Reranking, alpha: Double) -> String {
        var resolved = options
        resolved.alpha = alpha
        return resolved.description + ";gamma=\(DiffusionGraph.gamma),alpha=\(DiffusionGraph.alpha),steps=\(DiffusionGraph.iterations)"
            + ",weight=\(DiffusionGraph.weight),candidates=\(DiffusionGraph.candidates)"
            + ",fade=\(Reranking.neighbourhoodScale)/\(DiffusionGraph.neighbourhoodScale)"
    }

    /// The best `k` of image `id`'s answer, each with 1 - its score (nil: not listed, or `k` beyond the lists).
    public func answer(_ id: Int64, k: Int) -> [Neighbor]? {
        guard k <= Self.length, let p = positions[id] else { return nil }
        let start = Int(p) * Self.length
        var out: [Neighbor] = []
        out.reserveCapacity(k)
        for slot in start..<(start + k) {
            let node = lists[slot]
            if node < 0 { break }
            out.append(Neighbor(id: ids[Int(node)], distance: 1 - scores[slot]))
        }
        return out
    }

    public static func url(for catalogue: Catalogue, variant: String) -> URL {
        LibrarySnapshot.folder(for: catalogue).appendingPathComponent("answers-\(DerivedFiles.fileName(variant)).lkix")
    }

    func write(to url: URL, catalogue: String, model: String, variant: String) throws {
        let header = IndexFileHeader(dimension: 0, count: ids.count, origin: FileOrigin(catalogue: catalogue, counter: counter),
                                     model: model, variant: variant,
                                     payloadBytes: ids.count * 8 + lists.count * 8,
                                     fields: ["reranking": reranking, "fingerprint": fingerprint, "length": String(Self.length),
                                              "scores": "1"])
        try IndexFile.write(to: url, tag: Self.fileTag, header: header) { writer in
            try writer.append(array: ids)
            try writer.append(array: lists)
            try writer.append(array: scores)
        }
    }

    /// The lists in `url` when they were made for this catalogue, model, variant and re-ranking (any
    /// images: the fingerprint and counter say which); nil when absent, damaged or made otherwise.
    static func read(_ url: URL, catalogue: String, model: String, variant: String, reranking: String) -> AnswerLists? {
        guard FileManager.default.fileExists(atPath: url.path), let contents = try? IndexFile.read(url, catalogue: catalogue) else { return nil }
        let h = contents.header
        guard contents.tag == fileTag, h.model == model, h.variant == variant, h.fields["reranking"] == reranking,
              h.fields["length"] == String(length), h.fields["scores"] == "1", let fingerprint = h.fields["fingerprint"] else { return nil }
        let n = h.count
        guard h.payloadBytes == n * 8 + n * length * 8 else { return nil }
        let payload = contents.payload
        let ids = (0..<n).map { payload.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
        let lists = (0..<(n * length)).map { payload.loadUnaligned(fromByteOffset: n * 8 + $0 * 4, as: Int32.self) }
        let scores = (0..<(n * length)).map { payload.loadUnaligned(fromByteOffset: n * 8 + n * length * 4 + $0 * 4, as: Float.self) }
        guard lists.allSatisfy({ $0 >= -1 && Int($0) < n }) else { return nil }
        return AnswerLists(reranking: reranking, fingerprint: fingerprint, counter: h.catalogueCounter, ids: ids, lists: lists, scores: scores)
    }
}

// MARK: the writer's step

extension AnswerLists {
    public typealias Refresh = DerivedFileRefresh

    /// Brings the answer lists of `catalogue`'s library under `reranking` in step with its images
    /// (after the augmented vectors and the diffusion graph, which they are made from).
    public static func refresh(catalogue: Catalogue, reranking: Reranking) throws -> Refresh {
        let started = Date()
        let library = try LiveLibrary(catalogue: catalogue)
        try library.refresh()  // at the catalogue's latest change counter, which the file records
        let variant = library.augmentedVariant ?? EmbeddingVariant.raw
        let url = url(for: catalogue, variant: variant)
        func skipped(_ why: String?) -> Refresh {
            try? FileManager.default.removeItem(at: url)
            return Refresh(file: url.lastPathComponent, images: library.count, rebuilt: false,
                           seconds: Date().timeIntervalSince(started), skipped: why)
        }
        guard library.count > 0 else { return skipped(nil) }  // nothing to answer, nothing to say
        let exact = try library.index(for: IndexDescriptor(method: ExactIndex.methodName).with(metric: .cosine))
        let reranker = try Reranker(library: library, index: exact, options: reranking, computeMissing: false)
        guard let graph = reranker.graph, reranker.graphIsCurrent else {
            return skipped(library.count > DiffusionGraph.maximumGraph
                ? "\(library.count) images: no diffusion graph above \(DiffusionGraph.maximumGraph)"
                : "the re-ranking \(reranking) has no diffusion graph")
        }
        let identity = identity(reranker.options, alpha: reranker.alpha)
        let fingerprint = DiffusionGraph.fingerprint(reranker.ranked)
        if let file = read(url, catalogue: catalogue.identity, model: library.model.checksum, variant: variant, reranking: identity), file.fingerprint == fingerprint,
           file.counter == library.counter {
            return Refresh(file: url.lastPathComponent, images: file.count, rebuilt: false, seconds: Date().timeIntervalSince(started))
        }
        let (lists, scores) = try reranker.answers(nodes: graph.ids, length: length)
        try AnswerLists(reranking: identity, fingerprint: fingerprint, counter: library.counter, ids: graph.ids, lists: lists, scores: scores)
            .write(to: url, catalogue: catalogue.identity, model: library.model.checksum, variant: variant)
        return Refresh(file: url.lastPathComponent, images: graph.ids.count, rebuilt: true, seconds: Date().timeIntervalSince(started))
    }
}
