// The second way spatial verification finds its candidates: an inverted file of visual words over
// the library's local features (Sivic & Zisserman's "Video Google", 2003). The global descriptor's
// shortlist misses an original whose overall look an edit changed (a grey square over the middle,
// a tilt that adds black corners), while most of its SIFT keypoints survive the edit. Each image's
// RootSIFT descriptors are quantised to their nearest of K k-means centres (VLFeat, `lk_words`),
// and an image is represented by the set of words it holds; a query's candidates are the images
// sharing the most idf-weighted words with it (cosine of binary idf vectors). The file lives beside
// the library's snapshots (`visual-words.lkix`); `lookalike prepare verify` builds it and brings it
// up to date (images indexed or removed since), and `index` keeps it current once it exists.
import CVLFeat
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

/// k-means centres of RootSIFT descriptors and the quantiser to them.
public final class VisualVocabulary: @unchecked Sendable {  // the C quantiser serialises what it must
    public let count: Int
    let centres: [Float]
    private let quantizer: OpaquePointer

    init(centres: [Float]) throws {
        let d = LocalFeatures.dimension
        guard !centres.isEmpty, centres.count % d == 0 else { throw IndexError("visual words: \(centres.count) floats are not centres of \(d)") }
        guard let q = lk_words_quantizer_new(centres, centres.count / d, d) else { throw IndexError("visual words: out of memory") }
        self.centres = centres
        count = centres.count / d
        quantizer = q
    }

    deinit { lk_words_quantizer_free(quantizer) }

    /// Trains `words` centres on rows of RootSIFT descriptors (deterministic for a seed).
    static func train(descriptors: [Float], words: Int, seed: UInt32 = 0) throws -> VisualVocabulary {
        let d = LocalFeatures.dimension
        var centres = [Float](repeating: 0, count: words * d)
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { m in
            lk_words_train(descriptors, descriptors.count / d, d, words, seed, &centres, m.baseAddress, m.count)
        }
        guard status == 0 else {
            throw IndexError("visual words: " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return try VisualVocabulary(centres: centres)
    }

    /// Each keypoint's word, in the features' order.
    func assign(_ features: LocalFeatures) -> [UInt32] {
        guard features.count > 0 else { return [] }
        let descriptors = features.floatDescriptors
        var out = [UInt32](repeating: 0, count: features.count)
        lk_words_quantize(quantizer, descriptors, features.count, &out)
        return out
    }

    /// An image's keypoints as the library keeps them (word and frame each).
    func keypoints(_ features: LocalFeatures) -> WordKeypoints {
        WordKeypoints(features, words: assign(features))
    }

    /// A query's keypoints, each under its `nearest` nearest words: a descriptor near the border
    /// between two words often lands in the other one in the library's image (an edit moved it a
    /// little), and assigning the query's side to several words recovers those matches at no cost
    /// to the library (Philbin et al. 2008, "Lost in quantization").
    /// Also returns each keypoint's nearest word alone (what the inverted file is searched with:
    /// the other words would only blur which images share the most).
    func queryKeypoints(_ features: LocalFeatures, nearest: Int = 3) -> (keypoints: WordKeypoints, words: [UInt32]) {
        guard features.count > 0 else { return (WordKeypoints(width: features.width, height: features.height, words: [], frames: []), []) }
        let descriptors = features.floatDescriptors
        var out = [UInt32](repeating: 0, count: features.count * nearest)
        lk_words_quantize_nearest(quantizer, descriptors, features.count, nearest, &out)
        let first = stride(from: 0, to: out.count, by: nearest).map { out[$0] }
        return (WordKeypoints(features, words: out, copies: nearest), first)
    }
}

/// The inverted file: for each word, the images holding it; searched by idf-weighted overlap.
public struct VisualWordIndex: Sendable {
    public let vocabulary: VisualVocabulary
    /// Each indexed image's keypoints (word and frame): what verification checks a candidate by.
    public let entries: [Int64: WordKeypoints]
    private let ids: [Int64]
    private let postings: [[Int32]]
    private let idf: [Float]
    /// Per image (position in `ids`): the norm of its idf vector.
    private let norms: [Float]

    /// Words in a vocabulary trained by `build`: Caltech-101-sized libraries (~600 keypoints an
    /// image) keep a near-copy's words distinctive with a few thousand.
    public static let defaultWords = 8192
    /// Candidates a query takes from the inverted file, on top of the global descriptor's shortlist.
    public static let candidates = 100

    public init(vocabulary: VisualVocabulary, entries: [Int64: WordKeypoints]) {
        self.vocabulary = vocabulary
        self.entries = entries
        let ids = entries.keys.sorted()
        var postings = [[Int32]](repeating: [], count: vocabulary.count)
        let distinct = ids.map { entries[$0]?.distinctWords ?? [] }
        for (p, words) in distinct.enumerated() {
            for w in words where Int(w) < vocabulary.count { postings[Int(w)].append(Int32(p)) }
        }
        let n = Float(max(1, ids.count))
        let idf = postings.map { $0.isEmpty ? 0 : log(n / Float($0.count)) }
        self.ids = ids
        self.postings = postings
        self.idf = idf
        norms = distinct.map { words in
            let squares = words.reduce(Float(0)) { $0 + (Int($1) < idf.count ? idf[Int($1)] * idf[Int($1)] : 0) }
            return squares.squareRoot()
        }
    }

    public var count: Int { ids.count }

    /// The images sharing the most idf-weighted words with `words` (best first), those `admits`
    /// accepts, at most `limit`.
    public func candidates(words: [UInt32], limit: Int, admits: (Int64) -> Bool = { _ in true }) -> [Int64] {
        guard limit > 0, !ids.isEmpty else { return [] }
        var scores = [Float](repeating: 0, count: ids.count)
        for w in words where Int(w) < postings.count {
            let weight = idf[Int(w)] * idf[Int(w)]
            guard weight > 0 else { continue }
            for p in postings[Int(w)] { scores[Int(p)] += weight }
        }
        var ranked: [(score: Float, position: Int)] = []
        for (p, s) in scores.enumerated() where s > 0 && norms[p] > 0 { ranked.append((s / norms[p], p)) }
        ranked.sort { ($0.score, $1.position) > ($1.score, $0.position) }
        var out: [Int64] = []
        for r in ranked where admits(ids[r.position]) {
            out.append(ids[r.position])
            if out.count == limit { break }
        }
        return out
    }

    /// The query's keypoints in this index's words.
    public func keypoints(_ query: QueryFeatures) -> QueryWords {
        let direct = vocabulary.queryKeypoints(query.direct), mirrored = vocabulary.queryKeypoints(query.mirrored)
        return QueryWords(direct: direct.keypoints, mirrored: mirrored.keypoints,
                          words: Array(Set(direct.words).union(mirrored.words)).sorted())
    }

}

// MARK: - Building and the file

extension VisualWordIndex {
    public static func url(for catalogue: Catalogue) -> URL {
        catalogue.derivedFolder.appendingPathComponent("visual-words.lkix")
    }

    static let tag = "visual-words"

    public struct BuildSummary: Sendable, Codable {
        public let trained: Bool
        public let words: Int
        public let images: Int
        public let kept: Int
        public let added: Int
        public let removed: Int
        /// Images whose features could not be read (left out; they stay candidates of the global shortlist).
        public let unreadable: [String]
        /// Images still to compute (a build given a `limit`).
        public var pending = 0

        init(trained: Bool, words: Int, images: Int, kept: Int, added: Int, removed: Int, unreadable: [String], pending: Int = 0) {
            self.trained = trained
            self.words = words
            self.images = images
            self.kept = kept
            self.added = added
            self.removed = removed
            self.unreadable = unreadable
            self.pending = pending
        }

        /// Two steps of one job as one.
        func adding(_ next: BuildSummary) -> BuildSummary {
            BuildSummary(trained: trained || next.trained, words: next.words, images: next.images, kept: kept,
                         added: added + next.added, removed: removed + next.removed,
                         unreadable: (unreadable + next.unreadable).sorted(), pending: next.pending)
        }
    }

    /// The library's images brought up to date: words of the images not yet in `previous` are
    /// computed (in parallel), images no longer in the library dropped; a vocabulary is trained on
    /// a seeded sample of the library first when there is none.
    public static func build(images: [(id: Int64, path: String)], previous: VisualWordIndex?, words: Int = defaultWords,
                             seed: UInt64 = 0, limit: Int = .max, progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> (VisualWordIndex, BuildSummary) {
        let live = Set(images.map(\.id))
        var entries = (previous?.entries ?? [:]).filter { live.contains($0.key) }
        let removed = (previous?.entries.count ?? 0) - entries.count
        var trained = false
        let vocabulary: VisualVocabulary
        if let previous {
            vocabulary = previous.vocabulary
        } else {
            // Up to 2,000 images, about 200,000 descriptors in all (spread over the scales): 100 an
            // image from a big library, more from a small one, so that it still gets enough words
            // to tell keypoints apart (a word shared by many keypoints of one image matches nothing).
            var rng = SplitMix64(seed: seed)
            let sample = Array(images.shuffled(using: &rng).prefix(2000))
            let perImage = max(100, 200_000 / max(1, sample.count))
            let rows = Locked([[Float]](repeating: [], count: sample.count))
            DispatchQueue.concurrentPerform(iterations: sample.count) { i in
                guard let f = try? LocalFeatures.extract(path: sample[i].path), f.count > 0 else { return }
                let step = max(1, f.count / perImage)
                let all = f.floatDescriptors
                var picked: [Float] = []
                for k in stride(from: 0, to: f.count, by: step) { picked.append(contentsOf: all[k * LocalFeatures.dimension..<(k + 1) * LocalFeatures.dimension]) }
                rows.withLock { $0[i] = picked }
            }
            let descriptors = rows.value.flatMap { $0 }
            let available = descriptors.count / LocalFeatures.dimension
            // At least ~20 descriptors per centre, so that a small library gets a smaller vocabulary.
            let k = min(words, max(16, available / 20))
            guard available >= k else {
                throw IndexError("visual words: the library's images give \(available) local features, too few to learn words from")
            }
            vocabulary = try VisualVocabulary.train(descriptors: descriptors, words: k, seed: UInt32(truncatingIfNeeded: seed))
            trained = true
        }
        let absent = images.filter { entries[$0.id] == nil }
        let missing = Array(absent.prefix(limit))
        let made = Locked([Int64: WordKeypoints]())
        let failed = Locked([String]())
        let done = Locked(0)
        DispatchQueue.concurrentPerform(iterations: missing.count) { i in
            do {
                let w = vocabulary.keypoints(try LocalFeatures.extract(path: missing[i].path))
                made.withLock { $0[missing[i].id] = w }
            } catch {
                // Kept without keypoints, so that no later step tries it again.
                made.withLock { $0[missing[i].id] = WordKeypoints(width: 0, height: 0, words: [], frames: []) }
                failed.withLock { $0.append(missing[i].path) }
            }
            let n = done.withLock { d -> Int in d += 1; return d }
            progress?(n, missing.count)
        }
        entries.merge(made.value) { _, new in new }
        let index = VisualWordIndex(vocabulary: vocabulary, entries: entries)
        return (index, BuildSummary(trained: trained, words: vocabulary.count, images: index.count, kept: entries.count - made.value.count, added: made.value.count,
                                    removed: removed, unreadable: failed.value.sorted(), pending: absent.count - missing.count))
    }

    /// The library's live images and their files.
    public static func libraryImages(catalogue: Catalogue, liveIds: [Int64]) throws -> [(id: Int64, path: String)] {
        let summaries = try catalogue.allSummaries()
        return liveIds.sorted().compactMap { id in summaries[id].map { (id, $0.path) } }
    }

    /// After `index`: the library's file brought up to date in this process when only a few
    /// images (`LocalFeaturesJob.inline`) are missing from it and no background job is at it;
    /// nil when there is no file, nothing changed, or the work is left to the background job
    /// (`LocalFeaturesJob`, which `lookalike index` starts). A damaged file is rebuilt there.
    /// `pending`: the images still to make after this step (1 for a file holding only removed
    /// ones too many; 0 when this step made them, or a background job is at them).
    public static func refresh(catalogue: Catalogue, liveIds: [Int64]) throws -> (summary: BuildSummary?, pending: Int) {
        let state = LocalFeaturesJob.missing(catalogue: catalogue, liveIds: liveIds)
        let pending = state.missing > 0 ? state.missing : (state.stale ? 1 : 0)
        guard FileManager.default.fileExists(atPath: url(for: catalogue).path), state.missing <= LocalFeaturesJob.inline else {
            return (nil, pending)
        }
        // Read again under the job's lock: a job may have written the file since.
        return (try LocalFeaturesJob.run(catalogue: catalogue, liveIds: { liveIds }, wait: false), 0)
    }

    /// Payload: centres (K x 128 Float32), ids (Int64), keypoint counts (UInt32), sizes (UInt16
    /// width, height), words (UInt32), frames (4 x Float16), the images one after another.
    public func write(to url: URL, origin: FileOrigin) throws {
        let ids = entries.keys.sorted()
        let kept = ids.compactMap { entries[$0] }
        let counts = kept.map { UInt32($0.count) }
        let sizes = kept.flatMap { [UInt16(clamping: $0.width), UInt16(clamping: $0.height)] }
        let words = kept.flatMap(\.words)
        let frames = kept.flatMap(\.frames)
        let bytes = vocabulary.centres.count * 4 + ids.count * 16 + words.count * 4 + frames.count * 2
        let header = IndexFileHeader(dimension: LocalFeatures.dimension, count: ids.count, origin: origin,
                                     payloadBytes: bytes, fields: ["words": String(vocabulary.count),
                                                                   "maximumSide": String(LocalFeatures.maximumSide),
                                                                   "keypoints": "word,frame16"])
        try IndexFile.write(to: url, tag: Self.tag, header: header) { w in
            try w.append(array: vocabulary.centres)
            try w.append(array: ids)
            try w.append(array: counts)
            try w.append(array: sizes)
            try w.append(array: words)
            try w.append(array: frames)
        }
    }

    /// The index in `url`; nil when there is none. A damaged file, or one made with features of
    /// another size or by an older release (words without their keypoints' frames), is refused
    /// with the reason (`index` then rebuilds it).
    public static func read(_ url: URL, catalogue: String?) throws -> VisualWordIndex? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let contents = try IndexFile.read(url, catalogue: catalogue)
        let h = contents.header
        func refuse(_ why: String) -> IndexError { IndexError("\(url.path): \(why); `lookalike index` rebuilds it") }
        guard contents.tag == tag, h.dimension == LocalFeatures.dimension, let k = h.fields["words"].flatMap(Int.init), k > 0 else {
            throw refuse("not a visual-word index")
        }
        guard h.fields["maximumSide"] == String(LocalFeatures.maximumSide) else {
            throw refuse("made from features at \(h.fields["maximumSide"] ?? "?") px, this release uses \(LocalFeatures.maximumSide)")
        }
        guard h.fields["keypoints"] == "word,frame16" else { throw refuse("made by an older release (words without keypoints)") }
        let payload = contents.payload
        let centreBytes = k * h.dimension * 4
        let n = h.count
        guard payload.count >= centreBytes + n * 16 else { throw refuse("truncated") }
        func array<T>(_ type: T.Type, at offset: Int, count: Int) -> [T] {
            (0..<count).map { payload.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.stride, as: T.self) }
        }
        let centres = array(Float.self, at: 0, count: k * h.dimension)
        let ids = array(Int64.self, at: centreBytes, count: n)
        let counts = array(UInt32.self, at: centreBytes + n * 8, count: n)
        let sizes = array(UInt16.self, at: centreBytes + n * 12, count: 2 * n)
        let total = counts.reduce(0) { $0 + Int($1) }
        let wordsAt = centreBytes + n * 16
        let framesAt = wordsAt + total * 4
        guard payload.count == framesAt + total * 8 else { throw refuse("sizes do not add up") }
        let words = array(UInt32.self, at: wordsAt, count: total)
        let frames = array(Float16.self, at: framesAt, count: total * 4)
        var entries: [Int64: WordKeypoints] = [:]
        var at = 0
        for (i, (id, c)) in zip(ids, counts).enumerated() {
            let end = at + Int(c)
            entries[id] = WordKeypoints(width: Int(sizes[2 * i]), height: Int(sizes[2 * i + 1]),
                                        words: Array(words[at..<end]), frames: Array(frames[(at * 4)..<(end * 4)]))
            at = end
        }
        return VisualWordIndex(vocabulary: try VisualVocabulary(centres: centres), entries: entries)
    }
}

/// The library's visual-word index file, read on first need and again whenever it changes (another
/// process ran `prepare verify` or `index`). nil when there is none; a damaged one is left unused
/// (verification then works from the global shortlist alone) and its reason kept in `problem`.
public final class VisualWordsFile: Sendable {
    public let url: URL
    private struct State: Sendable {
        var stamp: Date?
        var size = -1
        var index: VisualWordIndex?
        var problem: String?
    }
    private let state = Locked(State())

    /// The catalogue identity the file must have been made for.
    let catalogue: String?

    public init(url: URL, catalogue: String?) {
        self.url = url
        self.catalogue = catalogue
    }

    public func index() -> VisualWordIndex? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        let stamp = attributes?[.modificationDate] as? Date
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
        return state.withLock { s in
            if s.stamp == stamp && s.size == size { return s.index }
            s.stamp = stamp
            s.size = size
            s.problem = nil
            do {
                s.index = try VisualWordIndex.read(url, catalogue: catalogue)
            } catch {
                s.index = nil
                s.problem = "\(error)"
            }
            return s.index
        }
    }

    /// Why the file present could not be used, if it could not.
    public var problem: String? { state.withLock { $0.problem } }
}
