// `lookalike serve`: the web app and JSON API over a library, from this one binary (LookalikeServer
// does the work). Loopback by default; anywhere else without --token gets a loud warning, since
// anyone who can reach the port could then browse the library.
import ArgumentParser
import COpenBLASCore
import Foundation
import Logging
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
import LookalikeServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the web app and the HTTP API (browse, click to search, random, upload, duplicates).",
        discussion: """
            Open http://HOST:PORT/ in a browser; the API is described at /openapi.json. The server \
            follows the library: what `lookalike index` adds, changes or deletes is searchable within \
            a second or two, without a restart. Stop it with Ctrl-C (SIGINT) or SIGTERM.
            Beyond loopback, paths are shown relative to the library's folders and GPS positions are \
            hidden (unless --show-private), and ?url= searches refuse loopback, private and \
            link-local addresses (unless --allow-private-urls).
            With --store milvus://HOST:PORT/COLLECTION the server answers from a Milvus collection \
            filled by `index --store` (no local library, no vectors in this process): search, random, \
            browsing, uploads and thumbnails (made from the rows' paths, which must be readable here: \
            shared storage) work the same; duplicate groups and the evaluation report need a local library.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port, printed at start).")
    var port = 8080

    @Option(help: "Require this token for every /api route (Authorization: Bearer, or log in at /login). Also $LOOKALIKE_TOKEN.")
    var token: String?

    @Flag(help: "Show absolute paths and GPS positions.")
    var showPrivate = false

    @Flag(help: "Allow ?url= searches of loopback, private and link-local addresses.")
    var allowPrivateUrls = false

    @Option(help: "Largest upload, in MB.")
    var maxUploadMb = 20

    @Option(help: "Largest k a search may ask for (at most \(ServerConfiguration.kCeiling)).")
    var maxK = 100

    @Flag(help: "Compute every search, never reading library images' answers from the answer lists `index` makes (to measure the live path).")
    var noAnswerLists = false

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    @Option(help: "Answer from this vector store: milvus://HOST:PORT/COLLECTION (default: the local library --db).")
    var store: String?

    @Option(help: "With --store: where thumbnails are cached (default: $XDG_CACHE_HOME or ~/.cache, lookalike/HOST_PORT_COLLECTION.thumbs).")
    var thumbnailCache: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        guard (1...ServerConfiguration.kCeiling).contains(maxK) else {
            throw ValidationError("--max-k must be from 1 to \(ServerConfiguration.kCeiling)")
        }
        guard (1...1024).contains(maxUploadMb) else { throw ValidationError("--max-upload-mb must be from 1 to 1024") }
        if let token, token.count < 8 { throw ValidationError("--token must be at least 8 characters") }
        if let store {
            do { _ = try MilvusAddress(parsing: store) } catch { throw ValidationError(String(describing: error)) }
        } else if thumbnailCache != nil {
            throw ValidationError("--thumbnail-cache goes with --store (a local library caches thumbnails beside its catalogue)")
        }
    }

    /// Default thumbnail cache of a store: per store address, in the user's cache folder.
    static func cacheFolder(for address: MilvusAddress) -> URL {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        let host = address.host.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
        return base.appendingPathComponent("lookalike")
            .appendingPathComponent("\(String(host))_\(address.port)_\(address.collection).thumbs")
    }

    func run() async throws {
        var settings = ServerConfiguration()
        settings.host = host
        settings.port = port
        settings.token = token ?? ProcessInfo.processInfo.environment["LOOKALIKE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        settings.showPrivate = showPrivate
        settings.allowPrivateURLs = allowPrivateUrls
        settings.maxUploadBytes = maxUploadMb * 1024 * 1024
        settings.maxK = maxK
        settings.answerLists = !noAnswerLists
        if !settings.isLoopback && settings.token == nil {
            Console.error("""
                WARNING: serving on \(host) without --token: anyone who can reach port \(port) can browse \
                and search this library. Pass --token SECRET (or set LOOKALIKE_TOKEN) to require it.
                """)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "lookalike.serve")
        let weights = model.map { URL(fileURLWithPath: $0) }
        // One OpenBLAS thread per product: the batcher runs a batch per core already.
        lk_openblas_set_threads(1)
        let services: ServerServices
        if let store {
            let address = try MilvusAddress(parsing: store)
            let cache = thumbnailCache.map { URL(fileURLWithPath: $0) } ?? Self.cacheFolder(for: address)
            services = try await ServerServices(store: address, thumbnailCache: cache, configuration: settings, logger: logger) {
                try Embedder(weightsURL: weights, descriptor: $0)
            }
            // The collection must hold this engine's vectors before anything is compared with them.
            _ = try services.preloadEngine()
        } else {
            let catalogue = try Catalogue(path: database.db, mustExist: true)
            services = try ServerServices(catalogue: catalogue, configuration: settings, logger: logger) {
                try Embedder(weightsURL: weights, descriptor: $0)
            }
        }
        let images = await services.searchableCount()
        let source = services.libraryName
        try await LookalikeServer.run(services: services) { host, port in
            let shown = host.contains(":") ? "[\(host)]" : host
            print("lookalike: serving \(images) images from \(source) at http://\(shown):\(port)/ (Ctrl-C to stop)")
            fflush(nil)
        }
        print("lookalike: stopped")
    }
}
