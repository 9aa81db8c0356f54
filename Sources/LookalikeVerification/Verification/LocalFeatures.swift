// Verification/ owns spatial verification of near-copies: an outside query (an upload, a URL, a
// file) and the library images its search ranked first are compared by their local features
// (SIFT keypoints, VLFeat through CVLFeat), and a candidate whose keypoints match the query's
// under one similarity transform (shift, scale, rotation) is the photo the query was made from.
// One global CNN descriptor cannot tell an edited copy (cropped, rotated, captioned, partly
// covered, re-encoded) from the many photos that look like it; local features with geometry can,
// which is how copy detection is done. The library keeps every image's keypoints as visual words
// and positions beside its snapshots (`VisualWordIndex`, made by the background job `index` starts:
// `LocalFeaturesJob`), so a candidate is checked without reading its file (`WordKeypoints`), and the
// inverted file of those words adds the candidates the global shortlist missed. A candidate the
// file does not cover yet is checked from its file (`NearCopyVerifier`'s cache). Searches verify an
// outside query by default unless its best match is already a clear copy (`SearchService`).
import CVLFeat
import Foundation
import LookalikeCatalogue
import LookalikeIndex

/// SIFT keypoints of one image: positions, scales and orientations in the shrunk image, and
/// RootSIFT descriptors (unit L2: a dot product is the Hellinger kernel), kept as bytes (a
/// component times 512, clamped: RootSIFT components stay well under 0.5) so that a cache of
/// candidates' features holds four times as many images.
public struct LocalFeatures: Sendable {
    public let width: Int
    public let height: Int
    /// count x 4: x, y, sigma (pixels), orientation (radians).
    let frames: [Float]
    /// count x 128, each component times `quantum`.
    let codes: [UInt8]
    static let quantum: Float = 512

    public var count: Int { frames.count / 4 }
    public static let dimension = Int(LK_SIFT_DIMENSION)

    /// Longest side features are computed at: the images are shrunk on load (a camera photo decodes
    /// in a few milliseconds). 640 px rather than 320: a copy cropped from a photo must keep more
    /// keypoints with that photo than with a tighter crop of it stored beside it (Caltech-101's
    /// Faces_easy/N is a crop of Faces/N), and at 320 px the bigger original lost half its detail
    /// (measured: crop recall@1 0.935 at 320, 0.980 at 640; SIFT costs about four times as much
    /// for images over 320 px).
    public static let maximumSide = 640
    /// Keypoints kept per image (coarsest first): bounds matching cost for busy images.
    public static let maximumKeypoints = 1000

    init(width: Int, height: Int, frames: [Float], descriptors: [Float]) {
        self.width = width
        self.height = height
        self.frames = frames
        codes = descriptors.map { v in
            let q = (v * Self.quantum).rounded()
            return q.isFinite ? UInt8(max(0, min(255, q))) : 0
        }
    }

    /// The descriptors as floats (for matching).
    var floatDescriptors: [Float] { codes.map { Float($0) / Self.quantum } }

    /// Bytes held (for the cache's budget).
    var bytes: Int { frames.count * 4 + codes.count + 64 }

    /// The features of an image file; `mirrored`: of its left-right mirror image.
    public static func extract(path: String, mirrored: Bool = false) throws -> LocalFeatures {
        try run(name: path) { out, message, size in
            lk_sift_file(path, Int32(maximumSide), mirrored ? 1 : 0, Int32(maximumKeypoints), out, message, size)
        }
    }

    /// The features of encoded image bytes (`name` only for the error message).
    public static func extract(data: [UInt8], name: String, mirrored: Bool = false) throws -> LocalFeatures {
        try data.withUnsafeBytes { bytes in
            try run(name: name) { out, message, size in
                lk_sift_data(bytes.baseAddress, bytes.count, Int32(maximumSide), mirrored ? 1 : 0,
                             Int32(maximumKeypoints), out, message, size)
            }
        }
    }

    private static func run(name: String, _ call: (UnsafeMutablePointer<lk_sift_features>, UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> LocalFeatures {
        var out = lk_sift_features()
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { m -> Int32 in
            guard let base = m.baseAddress else { return -1 }
            return call(&out, base, m.count)
        }
        defer { lk_sift_free(&out) }
        guard status == 0 else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw IndexError("\(name): no local features: \(reason)")
        }
        let n = Int(out.count)
        let frames = out.frames.map { Array(UnsafeBufferPointer(start: $0, count: n * 4)) } ?? []
        let descriptors = out.descriptors.map { Array(UnsafeBufferPointer(start: $0, count: n * dimension)) } ?? []
        return LocalFeatures(width: Int(out.width), height: Int(out.height), frames: frames, descriptors: descriptors)
    }
}
