// The library's side of spatial verification, kept on disk: each image's keypoints as their visual
// word and their frame (position, scale, orientation), 12 bytes a keypoint instead of SIFT's 128-byte
// descriptor plus a decode and 30-100 ms of SIFT when the image is a candidate. Two keypoints are a
// tentative match when they fall in the same word (Philbin et al., "Object retrieval with large
// vocabularies and fast spatial matching", 2007), and the matches are checked for one similarity
// transform exactly as descriptor matches are (`SpatialVerifier`). A verified search then costs the
// query's own SIFT and a few microseconds a candidate, so it can run on every upload.
import Foundation
import LookalikeIndex

/// One image's keypoints, sorted by visual word.
public struct WordKeypoints: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Each keypoint's word, ascending.
    let words: [UInt32]
    /// count x 4 (x, y, sigma, orientation), in the order of `words`; half precision (positions
    /// within a 640 px image keep a quarter pixel, well inside the 3 % tolerance).
    let frames: [Float16]

    public var count: Int { words.count }
    /// Bytes on disk and in memory (for `info` and the 1M estimate).
    public static let bytesPerKeypoint = 12

    init(width: Int, height: Int, words: [UInt32], frames: [Float16]) {
        self.width = width
        self.height = height
        self.words = words
        self.frames = frames
    }

    /// An image's features with the word of each keypoint (`words[i * copies + j]`: keypoint i's
    /// j-th word; a query's keypoint is listed under each of its words).
    init(_ features: LocalFeatures, words: [UInt32], copies: Int = 1) {
        let order = words.indices.sorted { (words[$0], $0) < (words[$1], $1) }
        var frames: [Float16] = []
        frames.reserveCapacity(order.count * 4)
        for i in order { for c in 0..<4 { frames.append(Float16(features.frames[(i / copies) * 4 + c])) } }
        self.init(width: features.width, height: features.height, words: order.map { words[$0] }, frames: frames)
    }

    /// The distinct words (the inverted file's entry).
    var distinctWords: [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(words.count)
        for w in words where out.last != w { out.append(w) }
        return out
    }

    var floatFrames: [Float] { frames.map { Float($0) } }

    /// Tentative matches (query keypoint, candidate keypoint): keypoints sharing a word. A word
    /// held many times on either side (a texture, a repeated pattern) says little about which
    /// keypoint is which: its matches are left out beyond `burst` pairs.
    func matches(_ candidate: WordKeypoints, burst: Int = 9) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        var i = 0, j = 0
        let a = words, b = candidate.words
        while i < a.count && j < b.count {
            if a[i] < b[j] { i += 1; continue }
            if a[i] > b[j] { j += 1; continue }
            let w = a[i]
            var i2 = i, j2 = j
            while i2 < a.count && a[i2] == w { i2 += 1 }
            while j2 < b.count && b[j2] == w { j2 += 1 }
            if (i2 - i) * (j2 - j) <= burst {
                for p in i..<i2 { for q in j..<j2 { out.append((p, q)) } }
            }
            (i, j) = (i2, j2)
        }
        return out
    }
}

extension SpatialVerifier {
    /// Inliers that make a verified copy when matched by stored words: words match more loosely
    /// than descriptors (each query keypoint under 3 words), so a look-alike can reach 8 where
    /// descriptors give it near 0. 220 photos from outside the library (ukbench500, Corel-1K)
    /// searched against Caltech-101 verified a look-alike 6 times with 8-9 inliers and never with
    /// 10; an edited copy keeps 30-300 with its original.
    public static let minimumWordInliers = 10
    /// Hypotheses tried per candidate: each match is one; past this many, every n-th.
    static let maximumHypotheses = 400

    /// Inliers of the better of a query's two sides (its keypoints in words and their frames `q`)
    /// against a stored candidate's; the candidate's frames are converted once, and only when a
    /// side shares enough words with it.
    static func inliers(_ sides: [(query: WordKeypoints, q: [Float])], candidate: WordKeypoints) -> Int {
        let pairs = sides.map { $0.query.matches(candidate) }
        guard pairs.contains(where: { $0.count >= minimumInliers }) else { return 0 }
        let c = candidate.floatFrames, side = max(candidate.width, candidate.height)
        return zip(sides, pairs).map { s, p in
            p.count >= minimumInliers ? inliers(pairs: p, s.q, c, candidateSide: side, hypotheses: maximumHypotheses) : 0
        }.max() ?? 0
    }
}
