// Support for the server tests: a small library indexed once per test process from the bundled
// sample photos (samples/library, 36 Caltech-101 photos in 6 labels), services and applications
// made over it with any configuration, multipart bodies, and JSON decoding of answers.
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import LookalikeEngine
import LookalikeCatalogue
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
@testable import LookalikeServer
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

enum ServerFixture {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samples = packageRoot.appendingPathComponent("samples/library")
    static let queries = packageRoot.appendingPathComponent("samples/queries")

    private static let sharedEmbedder = Result<Embedder, Error> { try Embedder() }
    static func embedder() throws -> Embedder { try sharedEmbedder.get() }

    static let tempRoot: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("lookalike-server-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: ServerFixture.tempRoot) }
        return root
    }()

    static func tempDir(_ name: String = #function) throws -> URL {
        let url = tempRoot.appendingPathComponent("\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The sample library, indexed once (read-only for the tests that share it).
    private static let sharedLibrary = Result<String, Error> {
        let dir = try tempDir("shared")
        let db = dir.appendingPathComponent("samples.db").path
        let catalogue = try Catalogue(path: db)
        _ = try Indexer(catalogue: catalogue, embedder: try embedder()).run(roots: [samples.path])
        return db
    }
    static func libraryPath() throws -> String { try sharedLibrary.get() }

    static func services(db: String? = nil, _ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> ServerServices {
        var configuration = ServerConfiguration()
        configure(&configuration)
        let catalogue = try Catalogue(path: try db ?? libraryPath(), mustExist: true)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return try ServerServices(catalogue: catalogue, configuration: configuration, logger: logger) { _ in try embedder() }
    }

    static func app(_ services: ServerServices) -> some ApplicationProtocol {
        Application(router: LookalikeServer.buildRouter(services: services))
    }

    static func multipart(_ bytes: [UInt8], field: String = "image", filename: String = "query.jpg",
                          type: String = "image/jpeg") -> (body: ByteBuffer, contentType: String) {
        let boundary = "----lookalike-test-\(UUID().uuidString)"
        var body = ByteBuffer()
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(filename)\"\r\nContent-Type: \(type)\r\n\r\n")
        body.writeBytes(bytes)
        body.writeString("\r\n--\(boundary)--\r\n")
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    static func query(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: queries.appendingPathComponent(name)))
    }
}

extension TestResponse {
    func json<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(buffer: body))
    }

    var text: String { String(buffer: body) }

    /// The `error` of a JSON error answer.
    var error: String? { (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])?["error"] as? String }
}

/// Decodable mirrors of the answers (what a client sees).
struct Page: Decodable { let page: Int; let perPage: Int; let total: Int; let pages: Int; let items: [Item] }
struct Item: Decodable { let id: Int64; let path: String; let label: String; let thumbnail: String; let tags: [TagJSON] }
struct TagJSON: Decodable { let name: String; let probability: Double }
struct Answer: Decodable {
    struct Query: Decodable { let kind: String; let id: Int64?; let summary: String; let label: String?; let width: Int?; let tags: [TagJSON]; let box: String? }
    struct Result: Decodable { let rank: Int; let id: Int64; let path: String; let label: String; let score: Float; let distance: Float; let cosine: Float; let thumbnail: String; let inliers: Int? }
    let query: Query; let k: Int; let metric: String; let method: String; let reranking: String; let ms: Double; let count: Int
    let results: [Result]; let note: String?; let precomputed: Bool
}
