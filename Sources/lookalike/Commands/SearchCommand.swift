// `lookalike search`: ranks the library against a query image (a file, an http(s) URL, or an image
// already in the library by --id or --path) and prints a table or JSON with the query time. With
// --batch, answers one query per line of a file (or stdin) with one JSON line each, loading the
// library and the network once.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

extension Metric: ExpressibleByArgument {}
extension StoragePrecision: ExpressibleByArgument {}
extension Descriptor: ExpressibleByArgument {}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find the images in the library most similar to a query image.",
        discussion: """
            Metrics (--metric), all on the embeddings (1280-d EfficientNet-Lite0 pooled features):
              \(Metric.allCases.map(\.explanation).joined(separator: "\n  "))
            Scores are higher for more similar images; 1 means identical.
            Methods (--method):
              \(IndexFactory.summaries.joined(separator: "\n  "))
            Batch (--batch FILE, or - for stdin): one query per line, a file path, an http(s) URL, \
            or id:N for a library image; one JSON line per query (an "error" field when it failed).
            Re-ranking (--rerank, cosine only): the library's default is \(Reranking.libraryDefault) \
            (database-side augmentation with 15 neighbours, query expansion with 10, and diffusion over \
            the 30-NN graph for library images); "none" ranks by plain cosine. Every method composes \
            with it: an approximate method finds the candidates, the stored re-ranking vectors rank \
            them. Scores stay the raw cosine similarity to the query.
            Store (--store milvus://HOST:PORT/COLLECTION): the collection filled by `index --store` \
            answers (cosine = inner product of the unit vectors, in Milvus's own index; --db is not \
            read). The query is an image (a file or URL, embedded here), or a store image by --path \
            or by --id (the key search answers give). Query expansion applies; augmentation and \
            diffusion apply once `lookalike prepare rerank --store` has built their data (and while it \
            covers the collection), and the answer says what was applied.
            """)

    @Argument(help: "Query image: a file path or an http(s) URL.")
    var query: String?

    @Option(help: "Query with the library image that has this id.")
    var id: Int64?

    @Option(help: "Query with the library image stored under this path.")
    var path: String?

    @Option(help: "Answer every query listed in this file (one per line; - for stdin).")
    var batch: String?

    @OptionGroup var database: DatabaseOption

    @Option(name: .shortAndLong, help: "Number of results.")
    var k: Int = 5

    @Option(help: "Distance metric: \(Metric.allCases.map(\.rawValue).joined(separator: ", ")).")
    var metric: Metric = .cosine

    @Option(help: "Index method descriptor, e.g. exact or exact:f16 (known: \(IndexFactory.names.joined(separator: ", "))).")
    var method: String = ExactIndex.methodName

    @Option(help: "Vector storage in memory: float32 or float16 (half the memory; same as --method exact:f16).")
    var precision: StoragePrecision = .float32

    @Option(help: "Approximate methods: candidates re-ranked exactly (hash, lsh; default 1000 for hash).")
    var candidates: Int?

    @Option(help: "hnsw: search beam width (default 64).")
    var ef: Int?

    @Option(help: "lsh: nearby buckets probed per table (default 8).")
    var probes: Int?

    @Flag(help: "For a library query, keep the query image itself in the results.")
    var includeSelf = false

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    @Option(help: "Re-ranking of cosine searches: default, none, or steps like dba:15+qe:10.")
    var rerank = "default"

    @Option(help: "Spatial verification of an image or URL query: check this many best candidates' local features against the query's and put the verified copies first, with the 100 images sharing the most visual words (0: off). Default: on for every image or URL query whose best match is not already a clear copy (50 candidates).")
    var verify: Int?

    @Option(help: "Answer from this vector store: milvus://HOST:PORT/COLLECTION (default: the local library).")
    var store: String?

    struct Output: Encodable {
        let query: String
        let metric: String
        let method: String
        let reranking: String
        /// What was asked, and why what ran differs (one line a step).
        let requested: String
        let notes: [String]
        let elapsed_ms: Double
        let embed_ms: Double
        let load_ms: Double
        let results: [SearchResult]
    }

    struct BatchLine: Encodable {
        let query: String
        var method: String?
        var reranking: String?
        var notes: [String]?
        var elapsed_ms: Double?
        var embed_ms: Double?
        var results: [SearchResult]?
        var error: String?
    }

    func validate() throws {
        let given = [query != nil, id != nil, path != nil, batch != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one query: an image, a URL, --id, --path or --batch") }
        guard k > 0 else { throw ValidationError("-k must be at least 1") }
        guard (0...SearchRequest.maximumVerify).contains(verify ?? 0) else {
            throw ValidationError("--verify must be 0 (off) to \(SearchRequest.maximumVerify)")
        }
        _ = try IndexDescriptor(parsing: method)
        _ = try reranking()
        if let store {
            guard batch == nil else { throw ValidationError("--store answers one query (an image, --id or --path), not --batch") }
            guard metric == .cosine, method == ExactIndex.methodName else {
                throw ValidationError("--store ranks by cosine (inner product) with the store's own index: drop --metric and --method")
            }
            do { _ = try MilvusAddress(parsing: store) } catch { throw ValidationError(String(describing: error)) }
        }
    }

    func reranking() throws -> Reranking {
        guard rerank != "default" else { return .libraryDefault }
        do { return try Reranking(parsing: rerank) } catch { throw ValidationError("--rerank: \(error)") }
    }

    /// Asks the store for the query's top k (the query embedded here, or a store image's row).
    func runStore(_ address: MilvusAddress, source: QuerySource) async throws {
        let started = Date()
        let weights = model.map { URL(fileURLWithPath: $0) }
        let library = try await StoreLibrary.open(address) { try Embedder(weightsURL: weights, descriptor: $0) }
        // Checks the collection was built with this engine's model before comparing vectors.
        if case .id = source {} else if case .path = source {} else { _ = try library.resolver.engine() }
        let loadMs = Date().timeIntervalSince(started) * 1000
        var request = SearchRequest(k: k, includeSelf: includeSelf, reranking: try reranking())
        request.verify = verify
        let answer = try await library.search(source, request)
        try show(answer, loadMs: loadMs, showIds: true,
                 from: "from \(address), cosine (inner product, Milvus's index)", opening: nil)
    }

    /// Why what ran differs from what was asked, on stderr (the table stays what scripts read).
    func printNotes(_ answer: SearchAnswer) {
        for note in answer.notes { Console.error("note: \(note)") }
    }

    func run() async throws {
        let source: QuerySource = id.map { .id($0) } ?? path.map { .path($0) } ?? .argument(query ?? "")
        if let store {
            try await runStore(try MilvusAddress(parsing: store), source: source)
            return
        }
        let started = Date()
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let weights = model.map { URL(fileURLWithPath: $0) }
        let service = try SearchService(catalogue: catalogue, precision: precision, weightsURL: weights)
        let loadMs = Date().timeIntervalSince(started) * 1000
        var descriptor = try IndexDescriptor(parsing: method, metric: metric)
        if precision == .float16 && descriptor.method == ExactIndex.methodName && descriptor.options.isEmpty {
            descriptor = IndexDescriptor(method: ExactIndex.methodName, options: ["f16"], metric: metric)
        }
        var request = SearchRequest(k: k, metric: metric, method: descriptor, includeSelf: includeSelf,
                                    parameters: SearchParameters(candidates: candidates, efSearch: ef, probes: probes),
                                    reranking: try reranking())
        request.verify = verify
        if let batch {
            try await runBatch(batch, service: service, request: request)
            return
        }
        let answer = try await service.search(source, request)
        var opening = "load \(format(loadMs)) ms (\(service.library.opening.source))"
        if let index = service.library.opening(ofIndex: descriptor.name) {
            opening += "; index from \(index.source) in \(format(index.seconds * 1000)) ms"
            if let problem = index.fileProblem, index.source == "memory" { opening += " (\(problem))" }
        }
        try show(answer, loadMs: loadMs, showIds: false,
                 from: "from \(service.library.count) images, \(metric.rawValue), \(answer.method)", opening: opening)
    }

    /// One answer, a local library's or a store's: JSON, or a table of the score the list is
    /// ordered by, the raw cosine beside it and, when verification ran, each verified copy's
    /// inliers (the query's original first); then what ran and what it cost, and the notes.
    func show(_ answer: SearchAnswer, loadMs: Double, showIds: Bool, from: String, opening: String?) throws {
        if json {
            print(try Console.json(Output(query: answer.query, metric: answer.metric, method: answer.method,
                                          reranking: answer.reranking, requested: answer.requested, notes: answer.notes,
                                          elapsed_ms: answer.searchMilliseconds, embed_ms: answer.embedMilliseconds,
                                          load_ms: loadMs, results: answer.results)))
            return
        }
        let verified = answer.reranking.contains("verify:")
        let rows = answer.results.map { r in
            [String(r.rank), format(Double(r.score), 4), format(Double(r.cosine), 4)]
                + (verified ? [r.inliers.map { "\($0) verified" } ?? ""] : []) + (showIds ? [String(r.id)] : []) + [r.label, r.path]
        }
        let header = ["rank", "score", "cosine"] + (verified ? ["copy"] : []) + (showIds ? ["id"] : []) + ["label", "path"]
        print(table(header, rows, rightAligned: Set(0..<(3 + (verified ? 1 : 0) + (showIds ? 1 : 0)))))
        var timing = "\(answer.results.count) results \(from), re-ranking \(answer.reranking): search \(format(answer.searchMilliseconds, 2)) ms"
        if answer.embedMilliseconds > 0 { timing += ", embed \(format(answer.embedMilliseconds)) ms" }
        if let opening { timing += ", " + opening }
        print(timing)
        printNotes(answer)
    }

    /// One JSON line per query; a failed query is a line with its error, and the batch goes on.
    func runBatch(_ list: String, service: SearchService, request: SearchRequest) async throws {
        let text: String
        if list == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let read = try? String(contentsOfFile: list, encoding: .utf8) else {
                throw Failure(message: "\(list): cannot read the query list")
            }
            text = read
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var failed = 0
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let source: QuerySource
            if line.hasPrefix("id:"), let id = Int64(line.dropFirst(3)) {
                source = .id(id)
            } else if !ImageFetcher.isURL(line), (try? catalogue(service).imageId(path: absolute(line))) ?? nil != nil {
                source = .path(line)
            } else {
                source = .argument(line)
            }
            var out = BatchLine(query: line)
            do {
                let answer = try await service.search(source, request)
                out.method = answer.method
                out.reranking = answer.reranking
                out.notes = answer.notes.isEmpty ? nil : answer.notes
                out.elapsed_ms = answer.searchMilliseconds
                out.embed_ms = answer.embedMilliseconds
                out.results = answer.results
            } catch {
                failed += 1
                out.error = String(describing: error)
            }
            print(String(decoding: try encoder.encode(out), as: UTF8.self))
        }
        if failed > 0 { Console.error("search: \(failed) queries failed (see their \"error\" fields)") }
    }

    private func catalogue(_ service: SearchService) -> Catalogue { service.catalogue }
    private func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
}
