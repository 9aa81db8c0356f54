// The API's answer shapes (encoded snake_case). Paths are shown as `ServerServices.display` makes
// them (relative to the library's folders unless --show-private), GPS only with --show-private,
// and every image carries the URLs of its thumbnail and file, which are by id only.
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct Tag: Codable, Sendable {
    let name: String
    let probability: Double

    /// "name:prob; name:prob" (the catalogue's tags column and an embedded query's labels).
    /// Parsed on every search result, so it works on the UTF-8 bytes (Foundation's trimming was
    /// a tenth of the server's CPU under load).
    static func parse(_ text: String) -> [Tag] {
        text.utf8.split(separator: UInt8(ascii: ";")).compactMap { part in
            let item = part.drop { $0 == UInt8(ascii: " ") }.reversed().drop { $0 == UInt8(ascii: " ") }.reversed()
            guard !item.isEmpty else { return nil }
            let bytes = Array(item)
            guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")) else {
                return Tag(name: String(decoding: bytes, as: UTF8.self), probability: 0)
            }
            return Tag(name: String(decoding: bytes[..<colon], as: UTF8.self),
                       probability: Double(String(decoding: bytes[(colon + 1)...], as: UTF8.self)) ?? 0)
        }
    }
}

struct ImageItem: Codable, Sendable {
    let id: Int64
    let path: String
    let label: String
    let tags: [Tag]
    let width: Int
    let height: Int
    let thumbnail: String

    init(_ s: ImageSummary, services: ServerServices) {
        id = s.imageId
        path = services.display(s.path)
        label = s.label
        tags = Tag.parse(s.tags)
        width = s.width
        height = s.height
        thumbnail = "/api/images/\(s.imageId)/thumbnail"
    }
}

struct ImagePageResponse: ResponseEncodable, Sendable {
    let page: Int
    let perPage: Int
    let total: Int
    let pages: Int
    let label: String?
    let q: String?
    let items: [ImageItem]
}

struct Metadata: Codable, Sendable {
    let capturedAt: String?
    let cameraMake: String?
    let cameraModel: String?
    let gpsLatitude: Double?
    let gpsLongitude: Double?
    /// True when a position exists but is hidden (served without --show-private).
    let gpsHidden: Bool
}

struct DuplicateRef: Codable, Sendable {
    let id: Int64?
    let path: String
    /// "exact": the same bytes under another path; "near": another image within the threshold.
    let kind: String
    let score: Float?
    let thumbnail: String?
}

struct ImageDetailResponse: ResponseEncodable, Sendable {
    let id: Int64
    let path: String
    let paths: [String]
    let label: String
    let tags: [Tag]
    let width: Int
    let height: Int
    let bytes: Int64
    let contentType: String?
    let contentHash: String
    let metadata: Metadata
    let duplicates: [DuplicateRef]
    let thumbnail: String
    let file: String
    let search: String
}

struct QuerySummary: Codable, Sendable {
    /// "id", "random", "upload" or "url".
    let kind: String
    let id: Int64?
    let summary: String
    let label: String?
    let path: String?
    let thumbnail: String?
    let width: Int?
    let height: Int?
    let tags: [Tag]
    let box: String?
}

struct ResultItem: Codable, Sendable {
    let rank: Int
    let id: Int64
    let path: String
    let label: String
    let tags: [Tag]
    /// What the list is ordered by (1: the query itself).
    let score: Float
    let distance: Float
    /// The raw cosine similarity to the query.
    let cosine: Float
    let thumbnail: String
    /// With `verify`: the keypoints shared with the query, when enough to call it the original.
    var inliers: Int? = nil
}

struct SearchResponse: ResponseGenerator, Encodable, Sendable {
    let query: QuerySummary
    let k: Int
    let metric: String
    let method: String
    /// The re-ranking applied ("none" when none was): results are ordered by `score`, `cosine` is raw.
    let reranking: String
    /// Read from the library's answer lists (see AnswerLists) instead of computed: the same answer.
    let precomputed: Bool
    /// The re-ranking (and verification) asked for, and why what ran differs, one line a step.
    let requested: String
    let notes: [String]
    let minScore: Float?
    /// Milliseconds from the request's arrival to the answer (excluding reading an upload).
    let ms: Double
    let searchMs: Double
    let embedMs: Double
    let count: Int
    let results: [ResultItem]
    /// Set when nothing matched (e.g. every result under min_score): "no close match" is an answer.
    let note: String?

    // The answer every search returns: written by JSONWriter (`json`), not by the context's
    // encoder. These keys are what JSONEncoder would write (the test compares the two); the
    // nested types' keys are single words.
    enum CodingKeys: String, CodingKey {
        case query, k, metric, method, reranking, precomputed, requested, notes, ms, count, results, note
        case minScore = "min_score", searchMs = "search_ms", embedMs = "embed_ms"
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    /// The answer as JSON, written directly (see JSONWriter); equal to `encoder.encode(self)`
    /// once parsed.
    var json: [UInt8] {
        var w = JSONWriter(capacity: 512 + results.count * 400)
        w.object { w in
            w.key("query"); query.write(to: &w)
            w.member("k", k)
            w.member("metric", metric)
            w.member("method", method)
            w.member("reranking", reranking)
            w.member("precomputed", precomputed)
            w.member("requested", requested)
            w.key("notes")
            w.array { w in
                for line in notes { w.string(line) }
            }
            w.member("min_score", minScore)
            w.member("ms", ms)
            w.member("search_ms", searchMs)
            w.member("embed_ms", embedMs)
            w.member("count", count)
            w.key("results")
            w.array { w in
                for item in results { item.write(to: &w) }
            }
            w.member("note", note)
        }
        return w.bytes
    }
}

extension JSONWriter {
    mutating func member(_ name: StaticString, _ tags: [Tag]) {
        key(name)
        array { w in
            for tag in tags {
                w.object { w in
                    w.member("name", tag.name)
                    w.member("probability", tag.probability)
                }
            }
        }
    }
}

extension QuerySummary {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("kind", kind)
            w.member("id", id)
            w.member("summary", summary)
            w.member("label", label)
            w.member("path", path)
            w.member("thumbnail", thumbnail)
            w.member("width", width)
            w.member("height", height)
            w.member("tags", tags)
            w.member("box", box)
        }
    }
}

extension ResultItem {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("rank", rank)
            w.member("id", id)
            w.member("path", path)
            w.member("label", label)
            w.member("tags", tags)
            w.member("score", score)
            w.member("distance", distance)
            w.member("cosine", cosine)
            w.member("thumbnail", thumbnail)
            w.member("inliers", inliers)
        }
    }
}

struct MetricInfo: Codable, Sendable {
    let name: String
    let explanation: String
}

struct StatsResponse: ResponseEncodable, Sendable {
    /// The server's version (LookalikeVersion).
    var version = LookalikeVersion.string
    let images: Int
    let files: Int
    let searchable: Int
    let labels: [LabelCount]
    let folders: [String]
    let model: String?
    let modelChecksum: String?
    let dimension: Int
    let methods: [String]
    let metrics: [MetricInfo]
    let libraryBytes: Int64
    let thumbnailBytes: Int64
    let defaultK: Int
    let maxK: Int
    let maxUploadBytes: Int
    let thumbnailSizes: [Int]
    let duplicateThreshold: Float
    let authRequired: Bool
    let showPrivate: Bool
    /// Absent over a store (Milvus batches its own searches).
    let batcher: SearchBatcher.Statistics?
    /// The store answering (milvus://...), absent for the local library.
    let store: String?
}

struct DuplicateMember: Codable, Sendable {
    let id: Int64?
    let path: String
    let label: String?
    let thumbnail: String?
}

struct DuplicateGroupItem: Codable, Sendable {
    let kind: String
    let maxDistance: Float
    let images: [DuplicateMember]
}

struct DuplicatesResponse: ResponseEncodable, Sendable {
    let threshold: Float
    let groups: [DuplicateGroupItem]
    let ms: Double
}
