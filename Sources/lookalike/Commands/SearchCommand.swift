// `lookalike search`: ranks the library against a query image (a file, an http(s) URL, or an image
// already in the library by --id or --path) and prints a table or JSON with the query time.
import ArgumentParser
import Foundation
import LookalikeEngine
import LookalikeLibrary

extension Metric: ExpressibleByArgument {}
extension StoragePrecision: ExpressibleByArgument {}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find the images in the library most similar to a query image.",
        discussion: """
            Metrics (--metric), all on the embeddings (1280-d EfficientNet-Lite0 pooled features):
              \(Metric.allCases.map(\.explanation).joined(separator: "\n  "))
            Scores are higher for more similar images; 1 means identical.
            """)

    @Argument(help: "Query image: a file path or an http(s) URL.")
    var query: String?

    @Option(help: "Query with the library image that has this id.")
    var id: Int64?

    @Option(help: "Query with the library image stored under this path.")
    var path: String?

    @OptionGroup var database: DatabaseOption

    @Option(name: .shortAndLong, help: "Number of results.")
    var k: Int = 5

    @Option(help: "Distance metric: \(Metric.allCases.map(\.rawValue).joined(separator: ", ")).")
    var metric: Metric = .cosine

    @Option(help: "Index method: \(IndexMethods.names.joined(separator: ", ")).")
    var method: String = ExactIndex.methodName

    @Option(help: "Vector storage in memory: float32 or float16 (half the memory).")
    var precision: StoragePrecision = .float32

    @Flag(help: "For a library query, keep the query image itself in the results.")
    var includeSelf = false

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    struct Output: Encodable {
        let query: String
        let metric: String
        let method: String
        let elapsed_ms: Double
        let embed_ms: Double
        let load_ms: Double
        let results: [SearchResult]
    }

    func validate() throws {
        let given = [query != nil, id != nil, path != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one query: an image, a URL, --id or --path") }
        guard k > 0 else { throw ValidationError("-k must be at least 1") }
    }

    func run() async throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let service = try SearchService(catalogue: catalogue, method: method, precision: precision)
        var embedMs = 0.0
        let started: Date
        let results: [SearchResult]
        let queryName: String
        if let id {
            queryName = "id:\(id)"
            started = Date()
            results = try service.search(imageId: id, k: k, metric: metric, includeSelf: includeSelf)
        } else if let path {
            queryName = path
            started = Date()
            results = try service.search(path: path, k: k, metric: metric, includeSelf: includeSelf)
        } else {
            let source = query ?? ""
            queryName = source
            let embedder = try Embedder(weightsURL: model.map { URL(fileURLWithPath: $0) })
            try catalogue.verify(model: embedder.model)
            let embedStart = Date()
            let embedding: Embedding
            if ImageFetcher.isURL(source) {
                let bytes = try await ImageFetcher.fetch(source)
                embedding = try embedder.embed(ImageDecoder.decode(data: bytes, name: source))
            } else {
                embedding = try embedder.embed(path: source).1
            }
            embedMs = Date().timeIntervalSince(embedStart) * 1000
            started = Date()
            results = try service.search(vector: embedding.vector, k: k, metric: metric)
        }
        let elapsed = Date().timeIntervalSince(started) * 1000
        if json {
            print(try Console.json(Output(query: queryName, metric: metric.rawValue, method: method,
                                          elapsed_ms: elapsed, embed_ms: embedMs,
                                          load_ms: service.loadSeconds * 1000, results: results)))
            return
        }
        let rows = results.map { r in
            [String(r.rank), format(Double(r.score), 4), format(Double(r.distance), 4), r.label, r.path]
        }
        print(table(["rank", "score", "distance", "label", "path"], rows, rightAligned: [0, 1, 2]))
        var timing = "\(results.count) results from \(service.index.count) images, \(metric.rawValue), \(method): "
            + "search \(format(elapsed, 2)) ms"
        if embedMs > 0 { timing += ", embed \(format(embedMs)) ms" }
        timing += ", load \(format(service.loadSeconds * 1000)) ms"
        print(timing)
    }
}
